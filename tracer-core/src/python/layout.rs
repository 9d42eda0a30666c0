//! Where CPython keeps what the reader needs, per version, on 64-bit Linux builds without
//! debug or free-threading options (what distributions ship). 3.13 and newer publish most of
//! it themselves at the start of `_PyRuntime` (`_Py_DebugOffsets`); the rest are facts from
//! CPython's headers for each version (`offsetof` in each version's headers, checked against
//! running interpreters: 3.8.18, 3.9.2, 3.9.18, 3.10.13, 3.11.2, 3.11.7, 3.12.1, 3.13.0,
//! 3.13.5, 3.13.18 and 3.14.10).

use super::Unknown;

/// The `_Py_DebugOffsets` cookie that starts `_PyRuntime` from 3.13 on.
pub const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";

/// The oldest and newest minor versions of Python 3 the reader knows.
pub const OLDEST_MINOR: u8 = 8;
pub const NEWEST_MINOR: u8 = 14;

/// How a dict's keys object is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysLayout {
    /// 3.8 to 3.10: `dk_size` at 8, `dk_nentries` at 32, indices at 40 in a width that
    /// depends on the size; entries of (hash, key, value).
    Sized,
    /// 3.11 on: `dk_log2_size` at 8, `dk_log2_index_bytes` at 9, `dk_kind` at 10,
    /// `dk_nentries` at 24, indices at 32; entries of (key, value) unless the kind is general.
    Log2,
}

/// Where the values of a split dict (or an object's managed values) start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValuesLayout {
    /// 3.8 to 3.12: an array of object pointers.
    Array,
    /// 3.13 on: `capacity`, `size`, `embedded`, `valid` bytes, then the pointers at 8.
    Prefixed,
}

/// Where an instance of a plain class keeps its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceLayout {
    /// 3.8 to 3.10: a dict pointer at the type's `tp_dictoffset`.
    DictOffset,
    /// 3.11: with `Py_TPFLAGS_MANAGED_DICT`, the dict pointer 3 words before the object and
    /// the values pointer 4 words before it.
    Managed311,
    /// 3.12: one word 3 words before the object, a values pointer when its low bit is set,
    /// else the dict.
    Managed312,
    /// 3.13 on: with `Py_TPFLAGS_INLINE_VALUES`, values right after the object
    /// (`tp_basicsize`), while they are valid; the managed dict 3 words before it.
    Inline313,
}

/// How an `int` stores its size and sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongLayout {
    /// Up to 3.11: a signed digit count in `ob_size`.
    SignedSize,
    /// 3.12 on: `lv_tag`, the digit count shifted left by 3 over two sign bits.
    Tagged,
}

/// Byte offsets for one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub minor: u8,
    /// `_PyRuntime.interpreters.head`
    pub runtime_interpreters_head: u64,
    /// `PyInterpreterState.modules` (`imports.modules` from 3.12): `sys.modules`.
    pub interpreter_modules: u64,
    pub ob_type: u64,
    pub tp_name: u64,
    pub tp_basicsize: u64,
    pub tp_flags: u64,
    pub tp_dict: u64,
    pub tp_dictoffset: u64,
    /// `PyHeapTypeObject.ht_cached_keys`: the keys an instance's managed values go with.
    pub ht_cached_keys: u64,
    pub md_dict: u64,
    pub ma_keys: u64,
    pub ma_values: u64,
    pub keys: KeysLayout,
    pub values: ValuesLayout,
    pub instance: InstanceLayout,
    pub unicode_length: u64,
    pub unicode_state: u64,
    /// Where a compact ASCII string's characters start (`sizeof(PyASCIIObject)`).
    pub ascii_data: u64,
    pub long: LongLayout,
    pub long_digits: u64,
}

/// `Py_TPFLAGS_MANAGED_DICT` (3.11 on) and `Py_TPFLAGS_INLINE_VALUES` (3.13 on).
pub const TPFLAGS_MANAGED_DICT: u64 = 1 << 4;
pub const TPFLAGS_INLINE_VALUES: u64 = 1 << 2;

impl Layout {
    /// The layout of Python 3.`minor`, from the headers; 3.13 and newer take their offsets
    /// from the interpreter itself ([`Layout::from_debug_offsets`]) where it publishes them.
    pub fn for_minor(minor: u8) -> Option<Layout> {
        // The same in every version the reader knows: `PyObject`, `PyTypeObject` up to
        // `tp_dictoffset`, `PyModuleObject`, `PyDictObject`, `PyASCIIObject` up to `state`.
        let base = Layout {
            minor,
            runtime_interpreters_head: 0,
            interpreter_modules: 0,
            ob_type: 8,
            tp_name: 24,
            tp_basicsize: 32,
            tp_flags: 168,
            tp_dict: 264,
            tp_dictoffset: 288,
            ht_cached_keys: 0,
            md_dict: 16,
            ma_keys: 32,
            ma_values: 40,
            keys: KeysLayout::Log2,
            values: ValuesLayout::Array,
            instance: InstanceLayout::DictOffset,
            unicode_length: 16,
            unicode_state: 32,
            ascii_data: 48,
            long: LongLayout::SignedSize,
            long_digits: 24,
        };
        let layout = match minor {
            8 => Layout {
                runtime_interpreters_head: 32,
                interpreter_modules: 56,
                keys: KeysLayout::Sized,
                ..base
            },
            9 => Layout {
                runtime_interpreters_head: 32,
                interpreter_modules: 856,
                keys: KeysLayout::Sized,
                ..base
            },
            10 => Layout {
                runtime_interpreters_head: 32,
                interpreter_modules: 856,
                keys: KeysLayout::Sized,
                ..base
            },
            11 => Layout {
                runtime_interpreters_head: 40,
                interpreter_modules: 888,
                ht_cached_keys: 872,
                instance: InstanceLayout::Managed311,
                ..base
            },
            12 => Layout {
                runtime_interpreters_head: 40,
                interpreter_modules: 944,
                ht_cached_keys: 880,
                instance: InstanceLayout::Managed312,
                ascii_data: 40,
                long: LongLayout::Tagged,
                ..base
            },
            // The interpreter publishes the rest: these are Debian's 3.13.5 and 3.14.10's.
            13 | 14 => Layout {
                runtime_interpreters_head: if minor == 13 { 632 } else { 808 },
                interpreter_modules: if minor == 13 { 7656 } else { 7688 },
                ht_cached_keys: 880,
                values: ValuesLayout::Prefixed,
                instance: InstanceLayout::Inline313,
                ascii_data: 40,
                long: LongLayout::Tagged,
                ..base
            },
            _ => return None,
        };
        Some(layout)
    }

    /// The layout of a 3.13 or newer interpreter from the `_Py_DebugOffsets` that start its
    /// `_PyRuntime`: the offsets it publishes override the table's.
    pub fn from_debug_offsets(image: &[u8]) -> Result<Layout, Unknown> {
        if image.get(..8) != Some(&DEBUG_COOKIE[..]) {
            return Err(Unknown::new("no _Py_DebugOffsets cookie at _PyRuntime"));
        }
        let word = |index: usize| -> Result<u64, Unknown> {
            let at = 8 * index;
            image
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or(Unknown::new("_Py_DebugOffsets cut short"))
        };
        let version = word(1)?;
        let (major, minor) = ((version >> 24) & 0xff, ((version >> 16) & 0xff) as u8);
        if major != 3 {
            return Err(Unknown::new("_Py_DebugOffsets of a Python other than 3"));
        }
        let fields = DebugFields::for_minor(minor).ok_or(Unknown::new(
            "a Python newer than the reader knows (its debug offsets may have moved)",
        ))?;
        // `free_threaded` follows the version where the release has it; else the runtime
        // state's size, never 0 or 1, does.
        let free_threaded = word(2)?;
        let shift = match free_threaded {
            0 => 0,
            1 => return Err(Unknown::new("a free-threaded build")),
            _ => 1,
        };
        let mut layout = Layout::for_minor(minor).expect("the table has every debug version");
        let field = |index: usize| -> Result<u64, Unknown> {
            let value = word(index - shift)?;
            // Every offset the reader takes lies within its structure.
            if value >= 1 << 20 {
                return Err(Unknown::new("an implausible offset in _Py_DebugOffsets"));
            }
            Ok(value)
        };
        layout.runtime_interpreters_head = field(fields.runtime_interpreters_head)?;
        layout.interpreter_modules = field(fields.interpreter_modules)?;
        layout.ob_type = field(fields.ob_type)?;
        layout.tp_name = field(fields.tp_name)?;
        layout.tp_flags = field(fields.tp_flags)?;
        layout.ma_keys = field(fields.ma_keys)?;
        layout.ma_values = field(fields.ma_values)?;
        layout.unicode_length = field(fields.unicode_length)?;
        layout.ascii_data = field(fields.unicode_ascii_size)?;
        layout.unicode_state = field(fields.unicode_state)?;
        layout.long_digits = field(fields.long_digits)?;
        Ok(layout)
    }
}

/// Indexes (in 8-byte words from the start of `_Py_DebugOffsets`, with `free_threaded`
/// after the version) of the fields the reader takes, per version.
pub(super) struct DebugFields {
    pub runtime_interpreters_head: usize,
    pub interpreter_modules: usize,
    pub ob_type: usize,
    pub tp_name: usize,
    pub tp_flags: usize,
    pub ma_keys: usize,
    pub ma_values: usize,
    pub unicode_state: usize,
    pub unicode_length: usize,
    pub unicode_ascii_size: usize,
    pub long_digits: usize,
}

impl DebugFields {
    pub(super) fn for_minor(minor: u8) -> Option<DebugFields> {
        match minor {
            // cookie, version, free_threaded; runtime_state {size, finalizing,
            // interpreters_head}; interpreter_state {size, id, next, threads_head, gc,
            // imports_modules, ...}; ...; pyobject {size, ob_type}; type_object {size,
            // tp_name, tp_repr, tp_flags}; tuple, list; dict_object {size, ma_keys,
            // ma_values}; float; long_object {size, lv_tag, ob_digit}; bytes;
            // unicode_object {size, state, length, asciiobject_size}.
            13 => Some(DebugFields {
                runtime_interpreters_head: 5,
                interpreter_modules: 11,
                ob_type: 45,
                tp_name: 47,
                tp_flags: 49,
                ma_keys: 57,
                ma_values: 58,
                long_digits: 63,
                unicode_state: 68,
                unicode_length: 69,
                unicode_ascii_size: 70,
            }),
            // 3.14 adds `threads_main` to the interpreter state, fields of its own to the
            // thread state and frames, and a set_object before dict_object.
            14 => Some(DebugFields {
                runtime_interpreters_head: 5,
                interpreter_modules: 12,
                ob_type: 51,
                tp_name: 53,
                tp_flags: 55,
                ma_keys: 67,
                ma_values: 68,
                long_digits: 73,
                unicode_state: 78,
                unicode_length: 79,
                unicode_ascii_size: 80,
            }),
            _ => None,
        }
    }
}
