//! `tracer doctor`: can the tracer run here, and if not, what is missing.

use std::fmt;

use crate::preflight;
use crate::{ProbeOptions, Probes, layout};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Missing,
    /// Absent, but the tracer does not need it.
    Optional,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Missing => "missing",
            Outcome::Optional => "optional",
        };
        write!(f, "{outcome:<9}{:<13}{}", self.name, self.detail)
    }
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            outcome: Outcome::Ok,
            detail,
        },
        Err(detail) => Check {
            name,
            outcome: Outcome::Missing,
            detail,
        },
    }
}

/// What the running tracer needs of the kernel once it has dropped its capabilities: nothing
/// but its memory mappings. Says why that matters here: before 5.19, a nonzero
/// `kernel.unprivileged_bpf_disabled` refuses every `bpf()` call without CAP_BPF.
fn steady_state(probes: &Probes, release: &str) -> String {
    // Reading the counters goes through the mapping, as the running tracer does.
    let _ = probes.lost_counts();
    let sysctl = std::fs::read_to_string(preflight::UNPRIVILEGED_BPF_SYSCTL)
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let strict = preflight::parse_kernel_version(release).is_some_and(|v| v < (5, 19));
    let here = if strict && sysctl != "0" {
        format!(
            "; it matters here: kernel.unprivileged_bpf_disabled = {sysctl} refuses bpf() \
             without CAP_BPF before Linux 5.19"
        )
    } else {
        format!(" (kernel.unprivileged_bpf_disabled = {sysctl})")
    };
    format!(
        "no bpf() calls after attaching (wakeup flag and lost counters are memory-mapped), \
         so every capability can be dropped{here}"
    )
}

/// Runs every check; the last one loads and attaches the real probes, so a pass means
/// `tracer watch` will start.
pub fn checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let release = preflight::kernel_release();
    checks.push(check(
        "kernel",
        preflight::require_kernel_version(&release)
            .map(|()| {
                format!(
                    "{release} (needs {}.{} or newer)",
                    preflight::MIN_KERNEL.0,
                    preflight::MIN_KERNEL.1
                )
            })
            .map_err(|e| e.to_string()),
    ));
    let privileged = preflight::require_privileges();
    checks.push(check(
        "privileges",
        privileged
            .as_ref()
            .map(|()| "can load BPF tracing programs".to_owned())
            .map_err(|e| e.to_string()),
    ));
    checks.push(check(
        "btf",
        preflight::kernel_btf()
            .map_err(|e| e.to_string())
            .and_then(|btf| {
                let table = layout::resolve(&btf)?;
                let exit = layout::check_tracepoints(&btf)?;
                Ok(format!(
                    "{}: {} layout entries resolved, exit probe {exit:?}",
                    preflight::btf_path().display(),
                    table.len()
                ))
            }),
    ));
    if privileged.is_ok() {
        checks.push(check(
            "ring buffer",
            preflight::require_ring_buffer()
                .map(|()| "BPF ring buffer maps are available".into())
                .map_err(|e| e.to_string()),
        ));
        let probes = Probes::load(&ProbeOptions::default());
        checks.push(check(
            "probes",
            probes
                .as_ref()
                .map(|probes| {
                    format!(
                        "loaded, verified and attached (exit probe {:?})",
                        probes.exit_probe
                    )
                })
                .map_err(|e| format!("{e:#}")),
        ));
        checks.push(check(
            "steady state",
            match &probes {
                Ok(probes) => Ok(steady_state(probes, &release)),
                Err(_) => Err("cannot be checked without the probes".into()),
            },
        ));
    } else {
        for name in ["ring buffer", "probes", "steady state"] {
            checks.push(check(
                name,
                Err("cannot be checked without privileges".into()),
            ));
        }
    }
    checks.push(match preflight::tracefs() {
        Some(path) => Check {
            name: "tracefs",
            outcome: Outcome::Ok,
            detail: format!("mounted at {}", path.display()),
        },
        None => Check {
            name: "tracefs",
            outcome: Outcome::Optional,
            detail: "not mounted: the probes attach through BTF and do not need it \
                     (perf does: mount -t tracefs nodev /sys/kernel/tracing)"
                .into(),
        },
    });
    checks
}
