//! Loads and attaches the probes, and reads what they report: ring-buffer records and the
//! per-CPU counts of records that did not fit.

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Btf as AyaBtf, Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{BtfTracePoint, ProgramError},
};
use tokio::io::{Interest, unix::AsyncFd};
use tracer_common::{DEFAULT_RING_BYTES, DEFAULT_SIGNAL_MASK, RECORD_KINDS, RecordKind};

use crate::{
    decode::decode,
    layout::{self, ExitProbe},
    mapped::MappedArray,
    preflight,
};
use tracer_core::event::{Event, LostCounts};

/// The compiled probes (`tracer-ebpf`), built for the BPF target by the build script; empty
/// when it was built without the BPF toolchain.
static PROBES_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_bytes: u32,
    /// Signals reported by the signal probe (bit N = signal N).
    pub signal_mask: u64,
    /// Which exit probe to use; `None` picks the one that fits the kernel's tracepoint
    /// prototype. Forcing the live-thread-count probe lets tests run the fallback for older
    /// kernels on a new one.
    pub exit_probe: Option<ExitProbe>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            ring_bytes: DEFAULT_RING_BYTES,
            signal_mask: DEFAULT_SIGNAL_MASK,
            exit_probe: None,
        }
    }
}

/// Attached probes. Dropping this detaches them.
pub struct Probes {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Tells the probes to wake the reader with the next record (slot 0 = 1).
    reader_asleep: MappedArray,
    /// Records that did not fit, by `RecordKind`.
    lost: MappedArray,
    /// Records the decoder rejected (a layout mismatch between probes and daemon).
    pub malformed: u64,
    pub exit_probe: ExitProbe,
    // Owns the programs and their links: they stay attached while this lives.
    _ebpf: Ebpf,
}

/// Widens the start-up window on purpose: the tests set `TRACER_TEST_ATTACH_PAUSE_MS` to
/// pause after each probe attaches, so that processes coming and going between two attaches
/// are not a matter of luck.
pub const ATTACH_PAUSE_ENV: &str = "TRACER_TEST_ATTACH_PAUSE_MS";

fn attach_pause() -> Option<std::time::Duration> {
    let ms: u64 = std::env::var(ATTACH_PAUSE_ENV).ok()?.parse().ok()?;
    (ms > 0).then(|| std::time::Duration::from_millis(ms.min(10_000)))
}

fn verifier_summary(program: &str, error: ProgramError) -> anyhow::Error {
    match error {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let reason = verifier_reason(&verifier_log.to_string());
            anyhow!("the kernel rejected probe {program} ({io_error}): {reason}")
        }
        other => anyhow!("cannot load probe {program}: {other}"),
    }
}

/// The verifier's reason for a refusal, in one line: the message after the last instruction
/// it checked, and that instruction. The log ends with statistics ("processed N insns",
/// "stack depth N", "verification time"), which say nothing about why.
fn verifier_reason(log: &str) -> String {
    let is_statistic = |line: &str| {
        [
            "processed ",
            "stack depth ",
            "verification time ",
            "max_states_per_insn",
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix))
    };
    let is_instruction = |line: &str| {
        line.split_once(": (").is_some_and(|(index, _)| {
            !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_statistic(line))
        .collect();
    let Some(last_instruction) = lines.iter().rposition(|line| is_instruction(line)) else {
        return lines
            .last()
            .map_or("no verifier log".into(), |line| (*line).to_owned());
    };
    // Source lines (`; ...`) and register states (`R0=inv0 R1_w=...`) are context, not reason.
    let is_register_state = |line: &str| {
        line.strip_prefix('R').is_some_and(|rest| {
            let name_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            name_end > 0
                && (rest[name_end..].starts_with('=') || rest[name_end..].starts_with("_w="))
        })
    };
    let message: Vec<&str> = lines[last_instruction + 1..]
        .iter()
        .copied()
        .filter(|line| !line.starts_with(';') && !is_register_state(line))
        .collect();
    let instruction = lines[last_instruction];
    if message.is_empty() {
        format!("refused at {instruction}")
    } else {
        format!("{} (at {instruction})", message.join("; "))
    }
}

impl Probes {
    /// Checks the kernel, resolves its layout, loads and attaches every probe.
    pub fn load(options: &ProbeOptions) -> Result<Probes> {
        Self::load_then_attach(options, || {})
    }

    /// Loads and verifies every probe, calls `before_attach`, then attaches them.
    pub fn load_then_attach(
        options: &ProbeOptions,
        before_attach: impl FnOnce(),
    ) -> Result<Probes> {
        if PROBES_OBJECT.is_empty() {
            bail!(
                "this tracer was built without its kernel probes (no BPF toolchain, or AYA_BUILD_SKIP): \
                 build it with `cargo xtask run`"
            );
        }
        preflight::require_kernel_version(&preflight::kernel_release())?;
        preflight::require_privileges()?;
        // Before 5.11 BPF maps count against RLIMIT_MEMLOCK, far below the ring buffer's size.
        let _ = nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_MEMLOCK,
            nix::sys::resource::RLIM_INFINITY,
            nix::sys::resource::RLIM_INFINITY,
        );
        preflight::require_ring_buffer()?;
        let ring_bytes = options.ring_bytes;
        if !ring_bytes.is_power_of_two() || ring_bytes < 4096 {
            bail!("ring buffer size {ring_bytes} must be a power of two of at least 4096 bytes");
        }
        let btf = preflight::kernel_btf()?;
        let unsupported = |e: String| {
            anyhow!(
                "{e}: this kernel is not supported; please report it with the output of `tracer doctor`"
            )
        };
        let table = layout::resolve(&btf).map_err(unsupported)?;
        let fitting = layout::check_tracepoints(&btf).map_err(unsupported)?;
        let exit_probe = options.exit_probe.unwrap_or(fitting);
        drop(btf);
        let aya_btf = AyaBtf::from_sys_fs().context("cannot read the kernel's BTF")?;

        let mut ebpf = EbpfLoader::new()
            .btf(Some(&aya_btf))
            .override_global("LAYOUT", &table, true)
            .override_global("SIGNAL_MASK", &options.signal_mask, true)
            .override_global("WAKEUP_BYTES", &(u64::from(ring_bytes) / 4), true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(PROBES_OBJECT)
            .map_err(|e| anyhow!("cannot load the probes into the kernel: {e}"))?;

        let exit_program = match exit_probe {
            ExitProbe::GroupDeadArgument => "sched_process_exit",
            ExitProbe::LiveThreadCount => "sched_process_exit_legacy",
        };
        // The order they attach in: exit first, so that every process whose start is seen
        // has its exit seen too (none can start after the fork probe and end before the
        // exit probe); the rest describe processes the first two already cover.
        let programs = [
            (exit_program, "sched_process_exit"),
            ("sched_process_fork", "sched_process_fork"),
            ("sched_process_exec", "sched_process_exec"),
            ("task_rename", "task_rename"),
            ("signal_generate", "signal_generate"),
        ];
        // Every program is verified before any attaches: a refusal attaches nothing, and the
        // window between the first attach and the last stays short.
        for (name, tracepoint) in programs {
            let program: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("the probe object lacks program {name}"))?
                .try_into()
                .with_context(|| format!("program {name} is not a BTF tracepoint"))?;
            program
                .load(tracepoint, &aya_btf)
                .map_err(|e| verifier_summary(name, e))?;
        }
        before_attach();
        let pause = attach_pause();
        for (name, tracepoint) in programs {
            let program: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("the probe object lacks program {name}"))?
                .try_into()
                .with_context(|| format!("program {name} is not a BTF tracepoint"))?;
            program
                .attach()
                .with_context(|| format!("cannot attach probe {name} to {tracepoint}"))?;
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        }

        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("no EVENTS map")?)
            .context("EVENTS is not a ring buffer")?;
        let lost = MappedArray::new(ebpf.take_map("LOST").context("no LOST map")?, "LOST")?;
        let reader_asleep = MappedArray::new(
            ebpf.take_map("READER_ASLEEP")
                .context("no READER_ASLEEP map")?,
            "READER_ASLEEP",
        )?;
        // SAFETY: the ring buffer owns its map fd (an OwnedFd inside MapData) for as long as it
        // lives, and always reports that same fd; the AsyncFd owns the ring buffer.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow!("cannot watch the ring buffer: {e}"))?;
        Ok(Probes {
            ring,
            reader_asleep,
            lost,
            malformed: 0,
            exit_probe,
            _ebpf: ebpf,
        })
    }

    /// Asks the probes to wake the reader with the next record. Until then they wake it only
    /// when the ring is a quarter full, and the reader polls on its own timer.
    pub fn request_wakeup(&mut self) {
        self.reader_asleep.store_u32(0, 1);
    }

    /// Waits for a wakeup from the probes: the record after [`Probes::request_wakeup`], or a
    /// ring a quarter full. Read the records with [`Probes::drain_now`].
    pub async fn wait_for_wakeup(&mut self) -> Result<()> {
        let mut guard = self
            .ring
            .readable_mut()
            .await
            .context("ring buffer wait failed")?;
        // A wakeup that comes after this sets the readiness again.
        guard.clear_ready();
        Ok(())
    }

    /// Decodes up to `max` of the records in the ring buffer now, without waiting.
    pub fn drain_now(&mut self, out: &mut Vec<Event>, max: usize) -> usize {
        let ring = self.ring.get_mut();
        let mut read = 0;
        while read < max {
            let Some(item) = ring.next() else { break };
            read += 1;
            match decode(&item) {
                Ok(event) => out.push(event),
                Err(_) => self.malformed += 1,
            }
        }
        read
    }

    /// Empties the ring without decoding more than each record's kind, and counts what was
    /// there: the records a stop had no time left to read.
    pub fn discard_now(&mut self) -> LostCounts {
        let ring = self.ring.get_mut();
        let mut unread = LostCounts::default();
        while let Some(item) = ring.next() {
            let kind = item
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
                .and_then(RecordKind::from_u32);
            match kind {
                Some(RecordKind::ProcessStart) => unread.process_start += 1,
                Some(RecordKind::Exec) => unread.exec += 1,
                Some(RecordKind::Exit) => unread.exit += 1,
                Some(RecordKind::Rename) => unread.rename += 1,
                Some(RecordKind::Signal) => unread.signal += 1,
                None => unread.malformed += 1,
            }
        }
        unread
    }

    /// Records lost since the probes were attached, by kind; and records received that could
    /// not be decoded.
    pub fn lost_counts(&self) -> LostCounts {
        let read = |kind: RecordKind| self.lost.load_u64(kind as usize);
        debug_assert!((RecordKind::Signal as u32) < RECORD_KINDS);
        let mut lost = LostCounts::default();
        lost.process_start = read(RecordKind::ProcessStart);
        lost.exec = read(RecordKind::Exec);
        lost.exit = read(RecordKind::Exit);
        lost.rename = read(RecordKind::Rename);
        lost.signal = read(RecordKind::Signal);
        lost.malformed = self.malformed;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::verifier_reason;

    /// The end of Linux 5.10's log for the exec probe before its lengths were masked.
    const REFUSAL: &str = "\
; fun(ringbuf, data, size, flags)
258: (18) r1 = 0xffff932381e7a800
260: (bf) r2 = r8
261: (bf) r3 = r7
262: (85) call bpf_ringbuf_output#130
 R0=inv0 R1_w=map_ptr(id=0,off=0,ks=0,vs=0,imm=0) R3_w=inv(id=0)
R3 min value is negative, either use unsigned or 'var &= const'
verification time 8507 usec
stack depth 24
processed 417 insns (limit 1000000) max_states_per_insn 2 total_states 30 peak_states 30 mark_read 7
";

    #[test]
    fn the_reason_is_the_message_after_the_last_instruction_not_the_statistics() {
        assert_eq!(
            verifier_reason(REFUSAL),
            "R3 min value is negative, either use unsigned or 'var &= const' \
             (at 262: (85) call bpf_ringbuf_output#130)"
        );
    }

    #[test]
    fn a_log_without_instructions_gives_its_last_words() {
        assert_eq!(
            verifier_reason("unknown func bpf_foo#999\nprocessed 3 insns\n"),
            "unknown func bpf_foo#999"
        );
        assert_eq!(verifier_reason("\n"), "no verifier log");
    }
}
