//! Reading a CPython interpreter from outside: multiprocessing's (and billiard's) notion of
//! the current process, the one place where a process's daemonic flag lives
//! (`sys.modules['multiprocessing.process']._current_process._config['daemon']`).
//!
//! Pure: the caller hands over a [`Memory`] (the live tracer's reads another process's memory
//! with `process_vm_readv`; the tests' is a memory image) and the address of `_PyRuntime`.
//! Every read is bounded, every object's type is checked by name before it is trusted, and
//! anything inconsistent ends the walk with [`Unknown`], never with a guess. The value of
//! `_config['authkey']` is never read: only the keys of that dict are compared, and the one
//! value read is the `daemon` entry's.

mod layout;
mod walk;

pub use layout::{
    DEBUG_COOKIE, InstanceLayout, KeysLayout, Layout, LongLayout, NEWEST_MINOR, OLDEST_MINOR,
    TPFLAGS_INLINE_VALUES, TPFLAGS_MANAGED_DICT, ValuesLayout,
};
pub use walk::{Budget, read_current_process};

/// Another process's memory, as the reader sees it.
pub trait Memory {
    /// Fills each buffer from its address in the target, and says for each whether it was
    /// read whole. Many ranges at once: the live reader makes one system call of them.
    fn read_many(&mut self, reads: &mut [Read<'_>]);
}

/// One range to read, and whether it was.
#[derive(Debug)]
pub struct Read<'a> {
    pub address: u64,
    pub buffer: &'a mut [u8],
    pub done: bool,
}

impl<'a> Read<'a> {
    pub fn new(address: u64, buffer: &'a mut [u8]) -> Read<'a> {
        Read {
            address,
            buffer,
            done: false,
        }
    }
}

/// Why the reader gave no answer, for the evidence line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub reason: &'static str,
}

impl Unknown {
    pub const fn new(reason: &'static str) -> Unknown {
        Unknown { reason }
    }
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

/// What the walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// multiprocessing's current process.
    Process(crate::event::CurrentProcess),
    /// `multiprocessing.process` is not imported: no multiprocessing or billiard process
    /// started this one, and it has not made itself one.
    NoMultiprocessing,
}

#[cfg(test)]
mod image;
#[cfg(test)]
mod tests;
