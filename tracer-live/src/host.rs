//! Facts about the host: clocks and identity.

use nix::time::{ClockId, clock_gettime};

fn clock_ns(clock: ClockId) -> u64 {
    clock_gettime(clock)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// `CLOCK_BOOTTIME` in nanoseconds: the clock of every event timestamp and start time.
pub fn boottime_ns() -> u64 {
    clock_ns(ClockId::CLOCK_BOOTTIME)
}

/// Wall clock in nanoseconds since the Unix epoch.
pub fn wall_clock_ns() -> u64 {
    clock_ns(ClockId::CLOCK_REALTIME)
}

/// Nanoseconds per clock tick of `/proc` times (USER_HZ).
pub fn clock_tick_ns() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    1_000_000_000 / hz as u64
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}
