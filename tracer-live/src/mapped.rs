//! BPF array maps read and written through a shared memory mapping (`BPF_F_MMAPABLE`).
//!
//! Before Linux 5.19 a `kernel.unprivileged_bpf_disabled` other than 0 (Debian's default is 2)
//! makes every `bpf()` command need `CAP_BPF` or `CAP_SYS_ADMIN`, map lookups and updates on
//! descriptors already held included. The tracer gives up its capabilities once the probes
//! are attached, so what it reads and writes while running (the wakeup flag, the lost-record
//! counters) lives in mapped memory: no system call at all, on any kernel.

use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Bytes per element in an array map's mapping: the kernel rounds each value up to 8.
const ELEMENT_STRIDE: usize = 8;

/// An array map of `entries` 4- or 8-byte values, mapped shared and writable.
pub struct MappedArray {
    base: NonNull<std::ffi::c_void>,
    len: usize,
    entries: usize,
    // Keeps the map alive as long as the mapping (the mapping also holds a reference, but the
    // descriptor is what the programs' links were made with).
    _map: MapData,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics; nothing in it is
// tied to the thread that created it.
unsafe impl Send for MappedArray {}

impl MappedArray {
    /// Maps an array map the probes declared with `BPF_F_MMAPABLE`.
    pub fn new(map: Map, name: &str) -> Result<MappedArray> {
        let Map::Array(data) = map else {
            bail!("{name} is not an array map");
        };
        let info = data
            .info()
            .with_context(|| format!("cannot read the definition of map {name}"))?;
        let entries = info.max_entries() as usize;
        let page = page_size();
        let len = (entries * ELEMENT_STRIDE).div_ceil(page).max(1) * page;
        let length = NonZeroUsize::new(len).expect("at least one page");
        // SAFETY: a fresh shared mapping of a map descriptor we own, at an address the kernel
        // picks; it is only ever accessed in bounds (`slot`) and unmapped once, in Drop.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                data.fd().as_fd(),
                0,
            )
        }
        .with_context(|| {
            format!(
                "cannot map {name} into memory (the kernel needs BPF_F_MMAPABLE arrays, Linux 5.5+)"
            )
        })?;
        Ok(MappedArray {
            base,
            len,
            entries,
            _map: data,
        })
    }

    fn slot(&self, index: usize) -> *mut u8 {
        assert!(index < self.entries, "slot {index} of {}", self.entries);
        // SAFETY: index < entries, and the mapping holds entries * ELEMENT_STRIDE bytes.
        unsafe { self.base.as_ptr().cast::<u8>().add(index * ELEMENT_STRIDE) }
    }

    /// Sets a `u32` value, as the probes see it at once.
    pub fn store_u32(&self, index: usize, value: u32) {
        let slot = self.slot(index).cast::<u32>();
        // SAFETY: the slot is 8-byte aligned (page-aligned base, 8-byte stride), in bounds and
        // lives as long as self; the probes write it too, so it is only accessed atomically.
        unsafe { AtomicU32::from_ptr(slot) }.store(value, Ordering::SeqCst);
    }

    /// Reads a `u64` value the probes add to.
    pub fn load_u64(&self, index: usize) -> u64 {
        let slot = self.slot(index).cast::<u64>();
        // SAFETY: as in store_u32; the probes update it with atomic adds.
        unsafe { AtomicU64::from_ptr(slot) }.load(Ordering::Relaxed)
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: base and len are exactly what mmap returned and took; nothing uses the
        // mapping after this.
        let _ = unsafe { munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(4096)
}
