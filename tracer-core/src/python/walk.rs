//! The walk: `_PyRuntime` → the main interpreter → `sys.modules` →
//! `multiprocessing.process` → `_current_process` → its attributes.

use super::layout::{
    InstanceLayout, KeysLayout, Layout, LongLayout, TPFLAGS_INLINE_VALUES, TPFLAGS_MANAGED_DICT,
    ValuesLayout,
};
use super::{Found, Memory, Read, Unknown};
use crate::event::CurrentProcess;

/// How much one walk may read: a bound on system calls and on bytes, whatever the memory
/// holds. A walk takes about 50 reads (however big its dicts: their keys are read in
/// batches) and a few tens of KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub reads: u32,
    pub bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            reads: 96,
            bytes: 1 << 20,
        }
    }
}

/// Largest entry table read from one dict: `sys.modules` of a big application has a few
/// thousand entries (24 bytes each).
const MAX_TABLE_BYTES: usize = 256 << 10;
/// Longest string read (a process name, a module name).
const MAX_STRING: usize = 256;
/// Longest C string read (a type's name).
const MAX_CSTRING: usize = 128;

const MODULE: &str = "multiprocessing.process";
const CURRENT_PROCESS: &str = "_current_process";

/// Reads multiprocessing's current process from the interpreter whose `_PyRuntime` is at
/// `runtime`, within `budget`.
pub fn read_current_process(
    memory: &mut impl Memory,
    runtime: u64,
    layout: &Layout,
    budget: Budget,
) -> Result<Found, Unknown> {
    let mut walker = Walker {
        memory,
        layout,
        reads_left: budget.reads,
        bytes_left: budget.bytes,
        types: Vec::new(),
    };
    walker.current_process(runtime)
}

struct Walker<'a, M> {
    memory: &'a mut M,
    layout: &'a Layout,
    reads_left: u32,
    bytes_left: usize,
    /// Type objects already named: (address, `tp_name`).
    types: Vec<(u64, String)>,
}

/// A (key, value) pair of a dict, as object addresses.
type Item = (u64, u64);

fn is_object_address(address: u64) -> bool {
    // User space of x86-64 and arm64 with 48-bit addresses; objects are 8-aligned.
    (0x1000..1 << 47).contains(&address) && address.is_multiple_of(8)
}

/// The `N` bytes at `at`, or unknown when they are not all there.
fn bytes_at<const N: usize>(bytes: &[u8], at: u64) -> Result<[u8; N], Unknown> {
    let at = usize::try_from(at).map_err(|_| Unknown::new("an offset out of range"))?;
    bytes
        .get(at..at.saturating_add(N))
        .map(|b| b.try_into().expect("N bytes"))
        .ok_or(Unknown::new("an offset out of range"))
}

fn u64_at(bytes: &[u8], at: u64) -> Result<u64, Unknown> {
    bytes_at(bytes, at).map(u64::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: u64) -> Result<u32, Unknown> {
    bytes_at(bytes, at).map(u32::from_le_bytes)
}

impl<M: Memory> Walker<'_, M> {
    fn current_process(&mut self, runtime: u64) -> Result<Found, Unknown> {
        if !is_object_address(runtime) {
            return Err(Unknown::new("no _PyRuntime"));
        }
        // `interpreters.main`, right after `head` (the newest, a sub-interpreter's if any).
        let interpreter = self.pointer(runtime + self.layout.runtime_interpreters_head + 8)?;
        let modules = self.pointer(interpreter + self.layout.interpreter_modules)?;
        let items = self.dict_items(modules)?;
        let [module] = self.find_keys(&items, [MODULE])?;
        let Some(module) = module else {
            return Ok(Found::NoMultiprocessing);
        };
        self.expect_type(module, "module")?;
        let globals = self.pointer(module + self.layout.md_dict)?;
        let items = self.dict_items(globals)?;
        let [current] = self.find_keys(&items, [CURRENT_PROCESS])?;
        let current = current.ok_or(Unknown::new(
            "multiprocessing.process has no _current_process (still importing?)",
        ))?;
        self.process(current).map(Found::Process)
    }

    fn process(&mut self, process: u64) -> Result<CurrentProcess, Unknown> {
        let type_object = self.type_of(process)?;
        let class = self.type_name(type_object)?;
        let header = self.type_header(type_object)?;
        let attributes = self.instance_items(process, &header)?;
        let [config, name, parent_pid] =
            self.find_keys(&attributes, ["_config", "_name", "_parent_pid"])?;
        let config = config.ok_or(Unknown::new("the current process has no _config"))?;
        let config = self.dict_items(config)?;
        // Only the daemon entry's value is read: `_config` also holds the authkey.
        let [daemon] = self.find_keys(&config, ["daemon"])?;
        let daemon = match daemon {
            Some(value) => self.truth(value)?,
            None => false,
        };
        let name = match name {
            Some(name) => self.string(name)?,
            None => return Err(Unknown::new("the current process has no _name")),
        };
        // Every process object has one (None for the main process).
        let parent_pid =
            self.pid(parent_pid.ok_or(Unknown::new("the current process has no _parent_pid"))?)?;
        let module = match header.dict {
            0 => None,
            dict => {
                let items = self.dict_items(dict)?;
                // A class statement always sets it.
                let [module] = self.find_keys(&items, ["__module__"])?;
                Some(self.string(module.ok_or(Unknown::new("a class without __module__"))?)?)
            }
        };
        // A spawned child names its main process object before `_bootstrap` replaces it
        // with its own: what that object says is not yet true of the child.
        if class == "_MainProcess" && name != "MainProcess" {
            return Err(Unknown::new(crate::event::STILL_STARTING));
        }
        let class = match module {
            Some(module) if module != "builtins" => format!("{module}.{class}"),
            _ => class,
        };
        Ok(CurrentProcess::new(daemon, name, class, parent_pid))
    }

    fn charge(&mut self, bytes: usize) -> Result<(), Unknown> {
        if self.reads_left == 0 || bytes > self.bytes_left {
            return Err(Unknown::new("the read budget ran out"));
        }
        self.reads_left -= 1;
        self.bytes_left -= bytes;
        Ok(())
    }

    fn read(&mut self, address: u64, len: usize) -> Result<Vec<u8>, Unknown> {
        if address
            .checked_add(len as u64)
            .is_none_or(|end| end > 1 << 47)
        {
            return Err(Unknown::new("an address out of range"));
        }
        self.charge(len)?;
        let mut buffer = vec![0; len];
        let mut read = [Read::new(address, &mut buffer)];
        self.memory.read_many(&mut read);
        if !read[0].done {
            return Err(Unknown::new("memory that could not be read"));
        }
        Ok(buffer)
    }

    /// Reads each (address, length), in one request; `None` where that part failed.
    fn read_each(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Option<Vec<u8>>>, Unknown> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        if ranges
            .iter()
            .any(|&(at, len)| at.checked_add(len as u64).is_none_or(|end| end > 1 << 47))
        {
            return Err(Unknown::new("an address out of range"));
        }
        self.charge(ranges.iter().map(|&(_, len)| len).sum())?;
        let mut buffers: Vec<Vec<u8>> = ranges.iter().map(|&(_, len)| vec![0; len]).collect();
        let mut reads: Vec<Read<'_>> = ranges
            .iter()
            .zip(buffers.iter_mut())
            .map(|(&(address, _), buffer)| Read::new(address, buffer))
            .collect();
        self.memory.read_many(&mut reads);
        let done: Vec<bool> = reads.iter().map(|r| r.done).collect();
        Ok(buffers
            .into_iter()
            .zip(done)
            .map(|(buffer, done)| done.then_some(buffer))
            .collect())
    }

    /// The object address stored at `address`.
    fn pointer(&mut self, address: u64) -> Result<u64, Unknown> {
        let value = u64_at(&self.read(address, 8)?, 0)?;
        if !is_object_address(value) {
            return Err(Unknown::new("a pointer that points nowhere"));
        }
        Ok(value)
    }

    fn type_of(&mut self, object: u64) -> Result<u64, Unknown> {
        if !is_object_address(object) {
            return Err(Unknown::new("a pointer that points nowhere"));
        }
        self.pointer(object + self.layout.ob_type)
    }

    fn type_name(&mut self, type_object: u64) -> Result<String, Unknown> {
        if let Some((_, name)) = self.types.iter().find(|(t, _)| *t == type_object) {
            return Ok(name.clone());
        }
        if !is_object_address(type_object) {
            return Err(Unknown::new("an object without a type"));
        }
        let name_at = u64_at(&self.read(type_object + self.layout.tp_name, 8)?, 0)?;
        if !(0x1000..1 << 47).contains(&name_at) {
            return Err(Unknown::new("a type without a name"));
        }
        // Not past the end of the page: the name may end just before an unmapped one. A name
        // that goes on into the next page is read on from there.
        let to_page_end = 4096 - (name_at % 4096) as usize;
        let mut bytes = self.read(name_at, MAX_CSTRING.min(to_page_end))?;
        if bytes.len() < MAX_CSTRING && !bytes.contains(&0) {
            let rest = self.read(name_at + bytes.len() as u64, MAX_CSTRING - bytes.len())?;
            bytes.extend(rest);
        }
        let Some(end) = bytes.iter().position(|&b| b == 0) else {
            return Err(Unknown::new("a type name without an end"));
        };
        bytes.truncate(end);
        let name = String::from_utf8(bytes)
            .ok()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(Unknown::new("a type name that is not one"))?;
        self.types.push((type_object, name.clone()));
        Ok(name)
    }

    /// The first `len` bytes of `object`, which must be of the type `name`.
    fn object(&mut self, object: u64, len: usize, name: &str) -> Result<Vec<u8>, Unknown> {
        let (type_name, bytes) = self.typed(object, len)?;
        if type_name != name {
            return Err(Unknown::new("an object of another type than expected"));
        }
        Ok(bytes)
    }

    /// The type's name and the first `len` bytes of `object`.
    fn typed(&mut self, object: u64, len: usize) -> Result<(String, Vec<u8>), Unknown> {
        if !is_object_address(object) {
            return Err(Unknown::new("a pointer that points nowhere"));
        }
        let bytes = self.read(object, len.max(self.layout.ob_type as usize + 8))?;
        let type_object = u64_at(&bytes, self.layout.ob_type)?;
        if !is_object_address(type_object) {
            return Err(Unknown::new("an object without a type"));
        }
        Ok((self.type_name(type_object)?, bytes))
    }

    fn expect_type(&mut self, object: u64, name: &str) -> Result<(), Unknown> {
        let type_object = self.type_of(object)?;
        if self.type_name(type_object)? != name {
            return Err(Unknown::new("an object of another type than expected"));
        }
        Ok(())
    }

    fn type_header(&mut self, type_object: u64) -> Result<TypeHeader, Unknown> {
        let layout = self.layout;
        let end = [
            layout.tp_flags,
            layout.tp_basicsize,
            layout.tp_dict,
            layout.tp_dictoffset,
            layout.ht_cached_keys,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 8;
        let bytes = self.read(type_object, end as usize)?;
        Ok(TypeHeader {
            flags: u64_at(&bytes, layout.tp_flags)?,
            basicsize: u64_at(&bytes, layout.tp_basicsize)?,
            dict: u64_at(&bytes, layout.tp_dict)?,
            dictoffset: u64_at(&bytes, layout.tp_dictoffset)? as i64,
            cached_keys: u64_at(&bytes, layout.ht_cached_keys)?,
        })
    }

    /// The items of the dict at `dict`, split tables included.
    fn dict_items(&mut self, dict: u64) -> Result<Vec<Item>, Unknown> {
        let header = self.object(dict, (self.layout.ma_values + 8) as usize, "dict")?;
        let keys = u64_at(&header, self.layout.ma_keys)?;
        let values = u64_at(&header, self.layout.ma_values)?;
        if !is_object_address(keys) {
            return Err(Unknown::new("a dict without keys"));
        }
        let values = match values {
            0 => None,
            values if is_object_address(values) => Some(self.values_start(values)),
            _ => return Err(Unknown::new("a dict with values nowhere")),
        };
        self.keys_items(keys, values)
    }

    fn values_start(&self, values: u64) -> u64 {
        match self.layout.values {
            ValuesLayout::Array => values,
            ValuesLayout::Prefixed => values + 8,
        }
    }

    /// The items of a keys object; with `values`, a split table's values array.
    fn keys_items(&mut self, keys: u64, values: Option<u64>) -> Result<Vec<Item>, Unknown> {
        let bad = || Unknown::new("a dict keys object that is not one");
        let (entries_at, count, entry_size, key_at) = match self.layout.keys {
            KeysLayout::Sized => {
                let header = self.read(keys, 40)?;
                let size = u64_at(&header, 8)?;
                let count = u64_at(&header, 32)?;
                if !size.is_power_of_two() || !(8..=1 << 24).contains(&size) || count > size {
                    return Err(bad());
                }
                let width = if size <= 0xff {
                    1
                } else if size <= 0xffff {
                    2
                } else {
                    4
                };
                (keys + 40 + size * width, count, 24, 8)
            }
            KeysLayout::Log2 => {
                let header = self.read(keys, 32)?;
                let (log2_size, log2_index_bytes, kind) = (header[8], header[9], header[10]);
                let count = u64_at(&header, 24)?;
                if !(3..=24).contains(&log2_size)
                    || !(log2_size..=log2_size + 3).contains(&log2_index_bytes)
                    || kind > 2
                    || count > 1 << log2_size
                {
                    return Err(bad());
                }
                // DICT_KEYS_GENERAL entries carry the hash; unicode and split ones do not.
                let (entry_size, key_at) = if kind == 0 { (24, 8) } else { (16, 0) };
                (
                    keys + 32 + (1 << log2_index_bytes),
                    count,
                    entry_size,
                    key_at,
                )
            }
        };
        let table_bytes = (count * entry_size) as usize;
        if table_bytes > MAX_TABLE_BYTES {
            return Err(Unknown::new("a dict too big to read"));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let table = self.read(entries_at, table_bytes)?;
        let values = match values {
            Some(at) => Some(self.read(at, (count * 8) as usize)?),
            None => None,
        };
        let mut items = Vec::with_capacity(count as usize);
        for index in 0..count {
            let entry = index * entry_size;
            let key = u64_at(&table, entry + key_at)?;
            let value = match &values {
                Some(values) => u64_at(values, index * 8)?,
                None => u64_at(&table, entry + key_at + 8)?,
            };
            // A deleted entry, or a split table's key this object has no value for.
            if key == 0 || value == 0 {
                continue;
            }
            if !is_object_address(key) || !is_object_address(value) {
                return Err(bad());
            }
            items.push((key, value));
        }
        Ok(items)
    }

    /// The attributes of an instance of a Python class.
    fn instance_items(&mut self, object: u64, header: &TypeHeader) -> Result<Vec<Item>, Unknown> {
        let managed = header.flags & TPFLAGS_MANAGED_DICT != 0;
        let cached_keys = || {
            if is_object_address(header.cached_keys) {
                Ok(header.cached_keys)
            } else {
                Err(Unknown::new("a class without shared keys"))
            }
        };
        match self.layout.instance {
            InstanceLayout::Managed311 if managed => {
                let words = self.read(object - 32, 16)?;
                let (values, dict) = (u64_at(&words, 0)?, u64_at(&words, 8)?);
                if values != 0 {
                    let keys = cached_keys()?;
                    return self.keys_items(keys, Some(self.values_start(values)));
                }
                self.dict_items(dict)
            }
            InstanceLayout::Managed312 if managed => {
                let word = u64_at(&self.read(object - 24, 8)?, 0)?;
                // Tagged: the values pointer less one (`_PyDictOrValues_SetValues`).
                if word & 1 == 1 {
                    let values = word.wrapping_add(1);
                    if !is_object_address(values) {
                        return Err(Unknown::new("managed values nowhere"));
                    }
                    let keys = cached_keys()?;
                    return self.keys_items(keys, Some(self.values_start(values)));
                }
                self.dict_items(word)
            }
            InstanceLayout::Inline313 if managed => {
                if header.flags & TPFLAGS_INLINE_VALUES != 0 {
                    if !(16..=1 << 16).contains(&header.basicsize) {
                        return Err(Unknown::new("a class of an implausible size"));
                    }
                    let values = object + header.basicsize;
                    let prefix = self.read(values, 4)?;
                    // `valid`: the values still hold the attributes (no dict took them over).
                    if prefix[3] != 0 {
                        let keys = cached_keys()?;
                        return self.keys_items(keys, Some(self.values_start(values)));
                    }
                }
                let dict = self.pointer(object - 24)?;
                self.dict_items(dict)
            }
            _ => {
                let offset = header.dictoffset;
                if !(8..=1 << 16).contains(&offset) {
                    return Err(Unknown::new("an object without a __dict__"));
                }
                let dict = self.pointer(object + offset as u64)?;
                self.dict_items(dict)
            }
        }
    }

    /// Finds each of `wanted` among the string keys of `items`: its value, or `None` when
    /// the dict has no such key. Every key is read, so a key that could not be read makes
    /// the answer unknown rather than absent.
    fn find_keys<const N: usize>(
        &mut self,
        items: &[Item],
        wanted: [&str; N],
    ) -> Result<[Option<u64>; N], Unknown> {
        let unreadable = || Unknown::new("memory that could not be read");
        let mut found = [None; N];
        // The fixed part of each key first, then the characters of those as long as a key
        // sought: never past the end of a string, which may end just before unmapped memory.
        let head = self.layout.ascii_data as usize;
        let heads: Vec<(u64, usize)> = items.iter().map(|&(key, _)| (key, head)).collect();
        let heads = self.read_each(&heads)?;
        let mut candidates = Vec::new();
        for (&(key, value), bytes) in items.iter().zip(heads) {
            let bytes = bytes.ok_or_else(unreadable)?;
            let type_object = u64_at(&bytes, self.layout.ob_type)?;
            if self.type_name(type_object)? != "str" {
                // A key of another type cannot be one sought.
                continue;
            }
            let length = u64_at(&bytes, self.layout.unicode_length)?;
            let state = u32_at(&bytes, self.layout.unicode_state)?;
            if self.is_ascii(state)? && wanted.iter().any(|w| w.len() as u64 == length) {
                candidates.push((key + head as u64, length as usize, value));
            }
        }
        let ranges: Vec<(u64, usize)> = candidates.iter().map(|&(at, len, _)| (at, len)).collect();
        let texts = self.read_each(&ranges)?;
        for (&(_, _, value), text) in candidates.iter().zip(texts) {
            let text = text.ok_or_else(unreadable)?;
            if let Some(slot) = wanted.iter().position(|w| w.as_bytes() == text) {
                found[slot] = Some(value);
            }
        }
        Ok(found)
    }

    /// Whether a string's `state` says compact ASCII; unknown for a state no string has.
    fn is_ascii(&self, state: u32) -> Result<bool, Unknown> {
        let (kind, compact, ascii) = ((state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1);
        // Before 3.12 a compact string is always `ready`.
        let ready = self.layout.minor >= 12 || (state >> 7) & 1 == 1;
        if !matches!(kind, 1 | 2 | 4) || compact != 1 || !ready || (ascii == 1 && kind != 1) {
            return Err(Unknown::new("a string that is not one"));
        }
        Ok(ascii == 1)
    }

    /// A `str` object's text, ASCII only.
    fn string(&mut self, object: u64) -> Result<String, Unknown> {
        let data = self.layout.ascii_data as usize;
        let head = self.object(object, data, "str")?;
        let length = u64_at(&head, self.layout.unicode_length)?;
        let state = u32_at(&head, self.layout.unicode_state)?;
        if !self.is_ascii(state)? {
            return Ok("(a name not in ASCII)".to_owned());
        }
        if length > MAX_STRING as u64 {
            return Err(Unknown::new("a name too long to be one"));
        }
        let bytes = self.read(object + data as u64, length as usize)?;
        if !bytes.iter().all(u8::is_ascii) {
            return Err(Unknown::new("an ASCII string that is not"));
        }
        Ok(String::from_utf8(bytes).expect("ASCII"))
    }

    /// The bytes to read of an `int` (or `bool`) object.
    fn integer_len(&self) -> usize {
        (self.layout.long_digits + 8) as usize
    }

    /// An `int` (or `bool`) object's value from its bytes, when it fits in 60 bits.
    fn integer(&self, bytes: &[u8]) -> Result<i64, Unknown> {
        let bad = || Unknown::new("an int that is not one");
        let at = self.layout.long_digits;
        let (negative, digits) = match self.layout.long {
            LongLayout::SignedSize => {
                let size = u64_at(bytes, 16)? as i64;
                (size < 0, size.unsigned_abs())
            }
            LongLayout::Tagged => {
                let tag = u64_at(bytes, 16)?;
                let digits = tag >> 3;
                match tag & 3 {
                    0 if digits > 0 => (false, digits),
                    1 if digits == 0 => (false, 0),
                    2 if digits > 0 => (true, digits),
                    _ => return Err(bad()),
                }
            }
        };
        if digits > 2 {
            return Err(Unknown::new("an int too big to be a pid"));
        }
        let mut value: u64 = 0;
        for index in (0..digits).rev() {
            let digit = u32_at(bytes, at + 4 * index)?;
            // 30-bit digits, normalized: the top one is not zero.
            if digit >= 1 << 30 || (index == digits - 1 && digit == 0) {
                return Err(bad());
            }
            value = value << 30 | u64::from(digit);
        }
        let value = value as i64;
        Ok(if negative { -value } else { value })
    }

    /// Python's truth of `_config['daemon']`, for the types it is ever set to.
    fn truth(&mut self, object: u64) -> Result<bool, Unknown> {
        let (type_name, bytes) = self.typed(object, self.integer_len())?;
        match type_name.as_str() {
            "bool" => match self.integer(&bytes)? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(Unknown::new("a bool that is neither True nor False")),
            },
            "int" => Ok(self.integer(&bytes)? != 0),
            "NoneType" => Ok(false),
            _ => Err(Unknown::new("a daemon flag of an unexpected type")),
        }
    }

    /// `_parent_pid`: an int, or None for the main process.
    fn pid(&mut self, object: u64) -> Result<Option<u32>, Unknown> {
        let (type_name, bytes) = self.typed(object, self.integer_len())?;
        match type_name.as_str() {
            "NoneType" => Ok(None),
            "int" => u32::try_from(self.integer(&bytes)?)
                .ok()
                .filter(|&pid| pid > 0)
                .map(Some)
                .ok_or(Unknown::new("a parent pid out of range")),
            _ => Err(Unknown::new("a parent pid of an unexpected type")),
        }
    }
}

struct TypeHeader {
    flags: u64,
    basicsize: u64,
    dict: u64,
    dictoffset: i64,
    cached_keys: u64,
}
