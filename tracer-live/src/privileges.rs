//! Giving up root's powers once the probes are attached. The running tracer only reads the
//! ring buffer and maps it already holds, `/proc` files any user may read, and writes a trace
//! file it already opened; none of that needs a capability. So it keeps none, except
//! `CAP_SYS_PTRACE` where it must read other users' `/proc/PID/environ` (`--capture-env`),
//! `/proc` hides other users' processes (`hidepid`), or it reads Python interpreters'
//! memory (`--python-inspect on`, the default).
//!
//! Capabilities belong to a thread: this runs before the tracer starts any other thread, so
//! every thread it ever has inherits the reduced set.

use anyhow::{Context as _, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// What was kept, for the log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub kept: Vec<String>,
    /// Why, for those kept on purpose.
    pub because: Vec<&'static str>,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The maps it reads while running are memory-mapped: no bpf() call needs a
        // capability, whatever the kernel's unprivileged_bpf_disabled says.
        if self.kept.is_empty() {
            write!(
                f,
                "all capabilities dropped (maps memory-mapped, no bpf() calls)"
            )
        } else {
            write!(f, "capabilities dropped except {}", self.kept.join(", "))?;
            for why in &self.because {
                write!(f, " ({why})")?;
            }
            write!(f, " (maps memory-mapped, no bpf() calls)")
        }
    }
}

/// Whether `/proc` hides other users' processes (a `hidepid` mount option).
pub fn proc_hides_pids(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(separator) = fields.iter().position(|f| *f == "-") else {
            return false;
        };
        fields.get(4) == Some(&"/proc")
            && fields.get(separator + 1) == Some(&"proc")
            && fields.get(separator + 3).is_some_and(|options| {
                options
                    .split(',')
                    .any(|o| o.starts_with("hidepid=") && o != "hidepid=0" && o != "hidepid=off")
            })
    })
}

/// Drops every capability except those in `keep`, from every set, and forbids regaining any
/// through exec (`no_new_privs`).
pub fn drop_all_except(keep: &[Capability]) -> Result<Dropped> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    let cannot = |what: &str| format!("cannot drop capabilities ({what})");
    nix::sys::prctl::set_no_new_privs().with_context(|| cannot("no_new_privs"))?;
    // The bounding set needs CAP_SETPCAP to shrink; without it (a tracer started with only
    // CAP_BPF and CAP_PERFMON) no_new_privs already keeps exec from granting anything.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .with_context(|| cannot("reading the effective set"))?
    {
        for capability in caps::all() {
            if !keep.contains(&capability) {
                caps::drop(None, CapSet::Bounding, capability)
                    .with_context(|| cannot("bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).with_context(|| cannot("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).with_context(|| cannot("inheritable set"))?;
    let permitted = caps::read(None, CapSet::Permitted).with_context(|| cannot("reading"))?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &kept).with_context(|| cannot("effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).with_context(|| cannot("permitted set"))?;
    let mut names: Vec<String> = kept.iter().map(ToString::to_string).collect();
    names.sort();
    Ok(Dropped {
        kept: names,
        because: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidepid_mounts_are_recognised() {
        let plain = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";
        assert!(!proc_hides_pids(plain));
        let hidden = "22 1 0:21 / /proc rw,relatime shared:12 - proc proc rw,hidepid=invisible\n";
        assert!(proc_hides_pids(hidden));
        let numeric = "22 1 0:21 / /proc rw - proc proc rw,hidepid=2,gid=10\n";
        assert!(proc_hides_pids(numeric));
        let elsewhere = "40 22 0:44 / /srv/proc rw - proc proc rw,hidepid=2\n";
        assert!(!proc_hides_pids(elsewhere));
        assert!(!proc_hides_pids("garbage\n"));
    }
}
