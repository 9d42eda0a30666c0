//! Reading live Python interpreters (`--python-inspect`): where a process's `_PyRuntime` is
//! (the ELF symbols of its executable or `libpython`, opened through `/proc/PID/root` so that
//! containers work), which CPython it is, and the reads themselves, with `process_vm_readv`:
//! never a ptrace attach, never a stopped target. The walk over the interpreter's objects is
//! [`tracer_core::python`]'s.
//!
//! Reads run on a thread of their own, a bounded number per second, so that a fork storm of
//! Python processes never holds up the ring buffer's reader.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
use tracer_core::analysis::Wanted;
use tracer_core::event::{InterpreterRead, ProcessKey, ReadOutcome};
use tracer_core::python::{self, Budget, DEBUG_COOKIE, Found, Layout, Memory, Read};

use crate::host;
use crate::procfs::ProcFs;

/// Processes read per second, by default: a burst of new Python parents is read at once, a
/// storm of them costs at most this many reads a second.
pub const DEFAULT_READS_PER_SECOND: u32 = 200;

/// Requests waiting for the reader thread; past this they are answered "unknown" at once.
const QUEUE: usize = 1024;

/// Most remote ranges in one `process_vm_readv` (the kernel's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// Largest executable or library whose symbols are read (Debian's python3.X is 7 MiB).
const MAX_ELF_BYTES: u64 = 128 << 20;

/// What a process's interpreter file says: where `_PyRuntime` and `Py_Version` are, relative
/// to where the file is mapped.
#[derive(Clone, Debug)]
struct Interpreter {
    runtime: u64,
    version_symbol: Option<u64>,
    /// The virtual address of the segment that maps the file's start.
    first_segment: u64,
    /// `3.N` from the file's name (`python3.11`, `libpython3.11.so.1.0`).
    minor_from_name: Option<u8>,
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    start: u64,
    offset: u64,
    /// `st_dev` of the mapped file.
    device: u64,
    inode: u64,
    path: String,
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let _perms = fields.next()?;
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let (major, minor) = fields.next()?.split_once(':')?;
            let device = libc::makedev(
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            );
            let inode = fields.next()?.parse().ok()?;
            let path = fields.next()?.trim_start().to_owned();
            let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
            // A deleted file is not opened by its old name.
            (inode != 0 && path.starts_with('/') && !path.ends_with(" (deleted)")).then_some(
                Mapping {
                    start,
                    offset,
                    device,
                    inode,
                    path,
                },
            )
        })
        .collect()
}

/// `11` of `python3.11`, `libpython3.11.so.1.0`, `python3.11d`.
fn minor_in_name(path: &str) -> Option<u8> {
    let name = path.rsplit('/').next()?;
    let rest = &name[name.find("python3.")? + "python3.".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn is_libpython(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("libpython3.") && name.contains(".so"))
}

/// Reads with `process_vm_readv`: many ranges per call.
struct ProcessMemory {
    pid: i32,
    calls: u32,
}

impl ProcessMemory {
    /// Reads `reads` in order in one call; returns how many were read whole before the
    /// first that was not.
    fn read_run(&mut self, reads: &mut [Read<'_>]) -> usize {
        let local: Vec<libc::iovec> = reads
            .iter_mut()
            .map(|r| libc::iovec {
                iov_base: r.buffer.as_mut_ptr().cast(),
                iov_len: r.buffer.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = reads
            .iter()
            .map(|r| libc::iovec {
                iov_base: r.address as usize as *mut libc::c_void,
                iov_len: r.buffer.len(),
            })
            .collect();
        self.calls += 1;
        // SAFETY: each local iovec points at a buffer this function holds mutably for the
        // call, with its exact length; the kernel writes at most that many bytes into each.
        // The remote iovecs are addresses in the target, which the kernel checks itself.
        let copied = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        let Ok(mut left) = usize::try_from(copied) else {
            return 0;
        };
        let mut whole = 0;
        for read in reads.iter_mut() {
            if left < read.buffer.len() {
                break;
            }
            left -= read.buffer.len();
            read.done = true;
            whole += 1;
        }
        whole
    }
}

impl Memory for ProcessMemory {
    /// Stops at the first range that fails: the walk needs every range of a request, and a
    /// hostile one must not cost a system call per bad pointer.
    fn read_many(&mut self, reads: &mut [Read<'_>]) {
        let mut next = 0;
        while next < reads.len() {
            let end = (next + MAX_IOV).min(reads.len());
            let whole = self.read_run(&mut reads[next..end]);
            if next + whole < end {
                return;
            }
            next = end;
        }
    }
}

/// Reads bounded per second: a token bucket as deep as a second's worth.
struct Rate {
    per_second: u32,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new(per_second: u32) -> Rate {
        Rate {
            per_second,
            tokens: f64::from(per_second),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * f64::from(self.per_second);
        self.tokens = (self.tokens + refill).min(f64::from(self.per_second));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where the time of reads goes, for the bench.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadStats {
    pub reads: u64,
    pub cached: u64,
    pub over_budget: u64,
    /// System calls into the targets' memory.
    pub calls: u64,
    pub busy: Duration,
}

/// Reads interpreters, caching what each file and each process said.
pub struct InterpreterReader {
    procfs: ProcFs,
    files: HashMap<(u64, u64), Option<Interpreter>>,
    /// By identity and exec count: an exec makes another entry.
    processes: HashMap<(ProcessKey, u32), InterpreterRead>,
    budget: Budget,
    pub stats: ReadStats,
}

/// Entries past which the caches start over: a host's processes, and more.
const MAX_CACHED: usize = 1 << 16;

impl InterpreterReader {
    pub fn new(procfs: ProcFs) -> InterpreterReader {
        InterpreterReader {
            procfs,
            files: HashMap::new(),
            processes: HashMap::new(),
            budget: Budget::default(),
            stats: ReadStats::default(),
        }
    }

    fn proc_path(&self, pid: u32, file: &str) -> PathBuf {
        self.procfs.root().join(pid.to_string()).join(file)
    }

    /// What `wanted`'s interpreter says, from the cache when the same process runs the same
    /// program (after the same number of execs).
    pub fn inspect(&mut self, wanted: Wanted) -> InterpreterRead {
        let started = Instant::now();
        let key = wanted.process;
        let cache_key = (key, wanted.execs);
        if let Some(read) = self.processes.get(&cache_key) {
            self.stats.cached += 1;
            return read.clone();
        }
        let (python, mut outcome) = match self.procfs.ppid_of(key) {
            Some(_) => self.read_process(key),
            None => (None, unknown("the process is gone")),
        };
        // Its pid may have gone to another process while it was read.
        if self.procfs.ppid_of(key).is_none() {
            outcome = unknown("the process is gone");
        }
        let mut read = InterpreterRead::new(host::boottime_ns(), key, python, outcome);
        read.execs = wanted.execs;
        if self.processes.len() >= MAX_CACHED {
            self.processes.clear();
        }
        self.processes.insert(cache_key, read.clone());
        self.stats.reads += 1;
        self.stats.busy += started.elapsed();
        read
    }

    fn read_process(&mut self, key: ProcessKey) -> (Option<String>, ReadOutcome) {
        let Ok(maps) = std::fs::read_to_string(self.proc_path(key.pid, "maps")) else {
            return (None, unknown("its memory map could not be read"));
        };
        let maps = parse_maps(&maps);
        let exe = std::fs::read_link(self.proc_path(key.pid, "exe")).ok();
        let exe = exe
            .as_deref()
            .and_then(Path::to_str)
            .map(|p| p.strip_suffix(" (deleted)").unwrap_or(p).to_owned());
        // The symbols are in libpython when the interpreter is linked against it, else in
        // the executable (Debian's python3.X).
        let (path, opened) = if let Some(library) = maps.iter().find(|m| is_libpython(&m.path)) {
            (library.path.clone(), self.open_mapped(key.pid, library))
        } else if let Some(exe) = exe {
            (
                exe,
                std::fs::File::open(self.proc_path(key.pid, "exe")).ok(),
            )
        } else {
            return (None, unknown("its executable could not be found"));
        };
        let Some(file) = opened else {
            return (None, unknown("its interpreter's file could not be opened"));
        };
        let Some(metadata) = file.metadata().ok().filter(std::fs::Metadata::is_file) else {
            return (None, unknown("its interpreter's file could not be opened"));
        };
        let identity = (metadata.dev(), metadata.ino());
        if !self.files.contains_key(&identity) {
            if self.files.len() >= MAX_CACHED {
                self.files.clear();
            }
            let facts = interpreter_of(file, metadata.len(), &path);
            self.files.insert(identity, facts);
        }
        let Some(interpreter) = self.files[&identity].clone() else {
            return (None, ReadOutcome::NotPython);
        };
        let Some(base) = maps
            .iter()
            .find(|m| m.inode == metadata.ino() && m.offset == 0)
            .map(|m| m.start)
        else {
            return (None, unknown("its interpreter is not mapped"));
        };
        // The segment mapping the file's start is mapped page-aligned at `base`.
        let bias = base.wrapping_sub(interpreter.first_segment & !0xfff);
        let mut memory = ProcessMemory {
            pid: key.pid as i32,
            calls: 0,
        };
        let outcome = read_with(&mut memory, &interpreter, bias, self.budget);
        self.stats.calls += u64::from(memory.calls);
        outcome
    }

    /// A mapped library, opened as the process sees it (its root: a container's) or as the
    /// tracer does, whichever is the very file mapped: a regular file with the mapping's
    /// device and inode. The path is the process's to choose: the open never blocks (a FIFO),
    /// follows no final symlink and takes no terminal.
    fn open_mapped(&self, pid: u32, mapping: &Mapping) -> Option<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let inside = self
            .proc_path(pid, "root")
            .join(mapping.path.trim_start_matches('/'));
        [inside, PathBuf::from(&mapping.path)]
            .into_iter()
            .find_map(|candidate| {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
                    .open(candidate)
                    .ok()?;
                let metadata = file.metadata().ok()?;
                (metadata.is_file()
                    && metadata.ino() == mapping.inode
                    && metadata.dev() == mapping.device)
                    .then_some(file)
            })
    }
}

fn unknown(reason: &str) -> ReadOutcome {
    ReadOutcome::Unknown {
        reason: reason.to_owned(),
    }
}

/// The interpreter facts of an ELF file, or none if it has no `_PyRuntime`. Only the parts
/// the symbols need are read (headers, symbol and string tables), not the whole file.
fn interpreter_of(file: std::fs::File, len: u64, path: &str) -> Option<Interpreter> {
    if len > MAX_ELF_BYTES {
        return None;
    }
    let cache = object::read::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let symbol = |name: &str| {
        elf.dynamic_symbols()
            .chain(elf.symbols())
            .find(|s| s.name() == Ok(name) && s.address() != 0)
            .map(|s| s.address())
    };
    let runtime = symbol("_PyRuntime")?;
    let first_segment = elf
        .segments()
        .find(|s| s.file_range().0 == 0)
        .map(|s| s.address())?;
    Some(Interpreter {
        runtime,
        version_symbol: symbol("Py_Version"),
        first_segment,
        minor_from_name: minor_in_name(path),
    })
}

/// The layout of the interpreter and the walk, within `budget`.
fn read_with(
    memory: &mut ProcessMemory,
    interpreter: &Interpreter,
    bias: u64,
    budget: Budget,
) -> (Option<String>, ReadOutcome) {
    let runtime = bias.wrapping_add(interpreter.runtime);
    let mut head = vec![0; 4096];
    let mut reads = [Read::new(runtime, &mut head)];
    memory.read_many(&mut reads);
    let done = reads[0].done;
    if !done {
        return (None, unknown("its _PyRuntime could not be read"));
    }
    let layout = if head.starts_with(DEBUG_COOKIE) {
        match Layout::from_debug_offsets(&head) {
            Ok(layout) => layout,
            Err(why) => return (None, unknown(why.reason)),
        }
    } else {
        // 3.11 and 3.12 say their version in memory; older ones only in their file's name.
        let minor = interpreter
            .version_symbol
            .and_then(|at| {
                let mut word = [0u8; 8];
                let mut reads = [Read::new(bias.wrapping_add(at), &mut word)];
                memory.read_many(&mut reads);
                let done = reads[0].done;
                let version = u64::from_le_bytes(word);
                (done && version >> 24 == 3).then_some(((version >> 16) & 0xff) as u8)
            })
            .or(interpreter.minor_from_name);
        match minor.filter(|&m| m < 13).and_then(Layout::for_minor) {
            Some(layout) => layout,
            None => return (None, ReadOutcome::NotPython),
        }
    };
    let python = Some(format!("3.{}", layout.minor));
    let outcome = match python::read_current_process(memory, runtime, &layout, budget) {
        Ok(Found::Process(process)) => ReadOutcome::Process(process),
        Ok(Found::NoMultiprocessing) => ReadOutcome::NoMultiprocessing,
        Err(why) => unknown(why.reason),
    };
    (python, outcome)
}

/// The reader thread, as the capture loop holds it.
pub struct Inspector {
    requests: SyncSender<Wanted>,
    pub results: tokio::sync::mpsc::Receiver<InterpreterRead>,
}

impl Inspector {
    /// Starts the reader thread, reading at most `per_second` processes a second.
    pub fn start(procfs: ProcFs, per_second: u32) -> std::io::Result<Inspector> {
        let (requests, queue): (SyncSender<Wanted>, Receiver<Wanted>) = sync_channel(QUEUE);
        let (answers, results) = tokio::sync::mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("python-inspect".into())
            .spawn(move || {
                let mut reader = InterpreterReader::new(procfs);
                let mut rate = Rate::new(per_second.max(1));
                for wanted in queue {
                    let read = if rate.take() {
                        reader.inspect(wanted)
                    } else {
                        let mut read = InterpreterRead::new(
                            host::boottime_ns(),
                            wanted.process,
                            None,
                            unknown(&format!(
                                "over the budget of {per_second} interpreter reads a second"
                            )),
                        );
                        read.execs = wanted.execs;
                        read
                    };
                    if answers.blocking_send(read).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Inspector { requests, results })
    }

    /// Asks for a read; when the queue is full, the answer is "unknown" at once.
    pub fn request(&self, wanted: Wanted) -> Option<InterpreterRead> {
        match self.requests.try_send(wanted) {
            Ok(()) => None,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let mut read = InterpreterRead::new(
                    host::boottime_ns(),
                    wanted.process,
                    None,
                    unknown("too many interpreter reads waiting"),
                );
                read.execs = wanted.execs;
                Some(read)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_file_mappings_with_spaces_in_paths() {
        let maps = "\
55d0c0a00000-55d0c0a7f000 r--p 00000000 fe:01 1311 /usr/bin/python3.11
55d0c0a7f000-55d0c0d41000 r-xp 0007f000 fe:01 1311 /usr/bin/python3.11
7f1c00000000-7f1c00021000 rw-p 00000000 00:00 0 
7f1c10000000-7f1c10001000 r--p 00000000 fe:01 77 /opt/my env/lib/libpython3.12.so.1.0
7ffd1000-7ffd2000 r-xp 00000000 00:00 0                          [vdso]
";
        let maps = parse_maps(maps);
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].start, 0x55d0_c0a0_0000);
        assert_eq!(maps[1].offset, 0x7f000);
        assert_eq!(maps[2].path, "/opt/my env/lib/libpython3.12.so.1.0");
        assert_eq!(maps[2].device, libc::makedev(0xfe, 0x01));
        assert!(is_libpython(&maps[2].path));
        assert!(!is_libpython(&maps[0].path));
    }

    #[test]
    fn the_version_is_in_the_names_of_interpreters_and_libraries() {
        assert_eq!(minor_in_name("/usr/bin/python3.9"), Some(9));
        assert_eq!(minor_in_name("/usr/lib/libpython3.12.so.1.0"), Some(12));
        assert_eq!(minor_in_name("/usr/bin/python3.13d"), Some(13));
        assert_eq!(minor_in_name("/usr/bin/python3"), None);
        assert_eq!(minor_in_name("/usr/bin/sleep"), None);
    }

    /// More ranges than one system call takes, one of them unreadable: those before it are
    /// read, across the batches, and the read stops there.
    #[test]
    fn many_ranges_are_read_in_batches_up_to_a_failing_one() {
        let values: Vec<u64> = (0..2500).collect();
        let mut buffers = vec![[0u8; 8]; values.len()];
        let mut reads: Vec<Read<'_>> = values
            .iter()
            .zip(buffers.iter_mut())
            .map(|(value, buffer)| Read::new(std::ptr::from_ref(value) as u64, buffer))
            .collect();
        reads[1500].address = 8;
        let mut memory = ProcessMemory {
            pid: std::process::id() as i32,
            calls: 0,
        };
        memory.read_many(&mut reads);
        let done = reads.iter().take_while(|r| r.done).count();
        assert_eq!(done, 1500);
        assert!(reads[1500..].iter().all(|r| !r.done));
        drop(reads);
        for (index, buffer) in buffers.iter().enumerate().take(1500) {
            assert_eq!(u64::from_le_bytes(*buffer), index as u64);
        }
        assert_eq!(memory.calls, 2, "1024, then 476 up to the hole");
    }

    #[test]
    fn the_rate_allows_a_burst_then_refills() {
        let mut rate = Rate::new(5);
        assert_eq!((0..10).filter(|_| rate.take()).count(), 5);
        rate.at -= Duration::from_millis(400);
        assert_eq!((0..10).filter(|_| rate.take()).count(), 2);
    }
}
