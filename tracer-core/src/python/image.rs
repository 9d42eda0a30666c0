//! A memory image of an interpreter, built the way CPython lays its objects out for a given
//! [`Layout`]: what the walk is tested and fuzzed on.

use super::layout::{
    DEBUG_COOKIE, DebugFields, InstanceLayout, KeysLayout, Layout, LongLayout,
    TPFLAGS_INLINE_VALUES, TPFLAGS_MANAGED_DICT, ValuesLayout,
};
use super::{Memory, Read};

pub const BASE: u64 = 0x5555_0000_0000;

#[derive(Clone)]
pub struct Image {
    pub layout: Layout,
    pub bytes: Vec<u8>,
    /// Every range read, to prove what never is.
    pub reads: Vec<(u64, usize)>,
    pub calls: u32,
    /// Where each string's length and characters are: changing them makes another string,
    /// not a corrupt one.
    pub texts: Vec<(u64, u64)>,
    str_type: u64,
    dict_type: u64,
    int_type: u64,
    bool_type: u64,
}

/// What the image's current process is.
#[derive(Clone, Debug)]
pub struct Spec {
    pub daemon: Option<bool>,
    pub name: &'static str,
    pub class: &'static str,
    pub module: &'static str,
    pub parent_pid: Option<u32>,
    /// Without `multiprocessing.process` in `sys.modules`.
    pub no_multiprocessing: bool,
    /// The instance's attributes in a dict of its own rather than in managed values.
    pub materialized: bool,
    /// Modules in `sys.modules` besides those the walk looks for.
    pub filler_modules: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            daemon: Some(true),
            name: "Process-1",
            class: "ForkProcess",
            module: "billiard.context",
            parent_pid: Some(4242),
            no_multiprocessing: false,
            materialized: false,
            filler_modules: 40,
        }
    }
}

/// Where the built image keeps what the tests look for.
#[derive(Clone)]
pub struct Built {
    pub image: Image,
    pub runtime: u64,
    /// The authkey's value object: it must never be read.
    pub authkey: (u64, usize),
}

impl Image {
    fn new(layout: Layout) -> Image {
        Image {
            layout,
            bytes: Vec::new(),
            reads: Vec::new(),
            calls: 0,
            texts: Vec::new(),
            str_type: 0,
            dict_type: 0,
            int_type: 0,
            bool_type: 0,
        }
    }

    /// `size` zeroed bytes, 16-aligned, with `before` bytes in front of the address returned.
    fn alloc(&mut self, before: usize, size: usize) -> u64 {
        let start = self.bytes.len().next_multiple_of(16) + before.next_multiple_of(16);
        self.bytes.resize(start + size.next_multiple_of(16) + 16, 0);
        BASE + start as u64
    }

    fn at(&mut self, address: u64) -> usize {
        (address - BASE) as usize
    }

    pub fn put(&mut self, address: u64, bytes: &[u8]) {
        let at = self.at(address);
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
    }

    pub fn word(&mut self, address: u64, value: u64) {
        self.put(address, &value.to_le_bytes());
    }

    fn object(&mut self, type_object: u64, before: usize, size: usize) -> u64 {
        let object = self.alloc(before, size);
        self.word(object, 1);
        self.word(object + self.layout.ob_type, type_object);
        object
    }

    fn type_object(&mut self, name: &str, flags: u64, basicsize: u64, dictoffset: i64) -> u64 {
        let name_at = self.alloc(0, name.len() + 1);
        self.put(name_at, name.as_bytes());
        let type_object = self.alloc(0, 1024);
        self.word(type_object, 1);
        self.word(type_object + self.layout.tp_name, name_at);
        self.word(type_object + self.layout.tp_basicsize, basicsize);
        self.word(type_object + self.layout.tp_flags, flags);
        self.word(type_object + self.layout.tp_dictoffset, dictoffset as u64);
        type_object
    }

    pub fn str(&mut self, text: &str) -> u64 {
        let data = self.layout.ascii_data;
        let object = self.object(self.str_type, 0, data as usize + text.len() + 1);
        self.word(object + self.layout.unicode_length, text.len() as u64);
        // compact, ASCII, kind 1; `ready` too before 3.12.
        let mut state: u32 = 1 << 2 | 1 << 5 | 1 << 6;
        if self.layout.minor < 12 {
            state |= 1 << 7;
        }
        self.put(object + self.layout.unicode_state, &state.to_le_bytes());
        self.put(object + data, text.as_bytes());
        self.texts.push((
            object + self.layout.unicode_length,
            object + data + text.len() as u64,
        ));
        object
    }

    fn long(&mut self, type_object: u64, value: u32) -> u64 {
        let at = self.layout.long_digits;
        let object = self.object(type_object, 0, at as usize + 8);
        let digits: Vec<u32> = match value {
            0 => vec![],
            v if v < 1 << 30 => vec![v],
            v => vec![v & ((1 << 30) - 1), v >> 30],
        };
        let size = match self.layout.long {
            LongLayout::SignedSize => digits.len() as u64,
            LongLayout::Tagged if digits.is_empty() => 1,
            LongLayout::Tagged => (digits.len() as u64) << 3,
        };
        self.word(object + 16, size);
        for (index, digit) in digits.iter().enumerate() {
            self.put(object + at + 4 * index as u64, &digit.to_le_bytes());
        }
        object
    }

    pub fn int(&mut self, value: u32) -> u64 {
        self.long(self.int_type, value)
    }

    pub fn bool(&mut self, value: bool) -> u64 {
        self.long(self.bool_type, value.into())
    }

    /// A keys object with `items` (key, value), values in the entries unless `split`.
    fn keys(&mut self, items: &[(u64, u64)], split: bool) -> (u64, u64) {
        let count = items.len() as u64;
        let mut size = 8;
        while size * 2 / 3 < count.max(1) {
            size *= 2;
        }
        let (keys, entries, entry_size, key_at) = match self.layout.keys {
            KeysLayout::Sized => {
                let keys = self.alloc(0, (40 + size + count * 24) as usize);
                self.word(keys + 8, size);
                self.word(keys + 24, size * 2 / 3 - count);
                self.word(keys + 32, count);
                (keys, keys + 40 + size, 24, 8)
            }
            KeysLayout::Log2 => {
                let keys = self.alloc(0, (32 + size + count * 16) as usize);
                let log2 = size.trailing_zeros() as u8;
                let kind = if split { 2 } else { 1 };
                self.put(keys + 8, &[log2, log2, kind]);
                self.word(keys + 16, size * 2 / 3 - count);
                self.word(keys + 24, count);
                (keys, keys + 32 + size, 16, 0)
            }
        };
        self.word(keys, 1);
        for (index, (key, value)) in items.iter().enumerate() {
            let entry = entries + index as u64 * entry_size;
            if entry_size == 24 {
                self.word(entry, 0x1234_5678 + index as u64);
            }
            self.word(entry + key_at, *key);
            if !split {
                self.word(entry + key_at + 8, *value);
            }
        }
        (keys, count)
    }

    fn values(&mut self, items: &[(u64, u64)]) -> u64 {
        let prefix = match self.layout.values {
            ValuesLayout::Array => 0,
            ValuesLayout::Prefixed => 8,
        };
        let values = self.alloc(0, prefix + items.len() * 8);
        if prefix > 0 {
            self.put(values, &[items.len() as u8, items.len() as u8, 0, 1]);
        }
        for (index, (_, value)) in items.iter().enumerate() {
            self.word(values + prefix as u64 + 8 * index as u64, *value);
        }
        values
    }

    pub fn dict(&mut self, items: &[(u64, u64)]) -> u64 {
        let (keys, count) = self.keys(items, false);
        let dict = self.object(self.dict_type, 0, 48);
        self.word(dict + 16, count);
        self.word(dict + self.layout.ma_keys, keys);
        dict
    }

    /// Named string keys to values.
    pub fn dict_of(&mut self, items: &[(&str, u64)]) -> u64 {
        let items: Vec<(u64, u64)> = items.iter().map(|(k, v)| (self.str(k), *v)).collect();
        self.dict(&items)
    }

    /// An instance of a new class `class` (defined in `module`) with `attributes`.
    fn instance(&mut self, spec: &Spec, attributes: &[(u64, u64)]) -> u64 {
        let layout = self.layout;
        let (flags, basicsize, dictoffset) = match layout.instance {
            InstanceLayout::DictOffset => (0, 32, 16),
            InstanceLayout::Managed311 | InstanceLayout::Managed312 => {
                (TPFLAGS_MANAGED_DICT, 16, -1)
            }
            InstanceLayout::Inline313 => (TPFLAGS_MANAGED_DICT | TPFLAGS_INLINE_VALUES, 16, -1),
        };
        let class = self.type_object(spec.class, flags, basicsize, dictoffset);
        let module = self.str(spec.module);
        let class_dict = self.dict_of(&[("__module__", module)]);
        self.word(class + layout.tp_dict, class_dict);
        let materialized = spec.materialized || layout.instance == InstanceLayout::DictOffset;
        let inline = if layout.instance == InstanceLayout::Inline313 {
            8 + attributes.len() * 8
        } else {
            0
        };
        let object = self.object(class, 32, basicsize as usize + inline);
        if materialized {
            let dict = self.dict(attributes);
            match layout.instance {
                InstanceLayout::DictOffset => self.word(object + 16, dict),
                _ => self.word(object - 24, dict),
            }
            return object;
        }
        let (keys, _) = self.keys(attributes, true);
        self.word(class + layout.ht_cached_keys, keys);
        match layout.instance {
            InstanceLayout::Managed311 => {
                let values = self.values(attributes);
                self.word(object - 32, values);
            }
            InstanceLayout::Managed312 => {
                let values = self.values(attributes);
                self.word(object - 24, values - 1);
            }
            InstanceLayout::Inline313 => {
                let values = object + basicsize;
                let count = attributes.len() as u8;
                self.put(values, &[count, count, 1, 1]);
                for (index, (_, value)) in attributes.iter().enumerate() {
                    self.word(values + 8 + 8 * index as u64, *value);
                }
            }
            InstanceLayout::DictOffset => unreachable!("materialized above"),
        }
        object
    }

    /// An interpreter whose current process is as `spec` says.
    pub fn build(layout: Layout, spec: &Spec) -> Built {
        let mut image = Image::new(layout);
        // Types first: the rest refer to them.
        image.str_type = image.type_object("str", 0, 0, 0);
        image.dict_type = image.type_object("dict", 0, 48, 0);
        image.int_type = image.type_object("int", 0, 24, 0);
        image.bool_type = image.type_object("bool", 0, 24, 0);
        let none_type = image.type_object("NoneType", 0, 16, 0);
        let module_type = image.type_object("module", 0, 48, 0);
        let none = image.object(none_type, 0, 16);

        let authkey = image.str("AUTHKEY-SECRET-BYTES");
        let authkey_size = image.layout.ascii_data as usize + 20;
        let mut config = vec![("authkey", authkey), ("semprefix", image.str("/mp"))];
        if let Some(daemon) = spec.daemon {
            config.push(("daemon", image.bool(daemon)));
        }
        let config = image.dict_of(&config);
        let parent_pid = match spec.parent_pid {
            Some(pid) => image.int(pid),
            None => none,
        };
        let name = image.str(spec.name);
        let identity = image.dict(&[]);
        let attributes: Vec<(u64, u64)> = [
            ("_identity", identity),
            ("_config", config),
            ("_parent_pid", parent_pid),
            ("_popen", none),
            ("_name", name),
        ]
        .iter()
        .map(|(k, v)| (image.str(k), *v))
        .collect();
        let process = image.instance(spec, &attributes);

        let mut modules = Vec::new();
        for index in 0..spec.filler_modules {
            let globals = image.dict(&[]);
            let module = image.object(module_type, 0, 48);
            image.word(module + layout.md_dict, globals);
            modules.push((format!("filler{index}"), module));
        }
        if !spec.no_multiprocessing {
            let globals = image.dict_of(&[
                ("__name__", 0),
                ("_current_process", process),
                ("_process_counter", 0),
            ]);
            let module = image.object(module_type, 0, 48);
            image.word(module + layout.md_dict, globals);
            modules.insert(
                modules.len() / 2,
                ("multiprocessing.process".to_owned(), module),
            );
        }
        let modules: Vec<(u64, u64)> = modules
            .iter()
            .map(|(name, module)| (image.str(name), *module))
            .collect();
        // A dict with holes where `__name__` had no value: such entries are skipped.
        let modules = image.dict(&modules);
        let interpreter = image.alloc(0, layout.interpreter_modules as usize + 8);
        image.word(interpreter + layout.interpreter_modules, modules);
        // A sub-interpreter is the newest, at `head`; the main one comes after it.
        let sub = image.alloc(0, layout.interpreter_modules as usize + 8);
        let runtime = image.alloc(0, 4096);
        if let Some(fields) = DebugFields::for_minor(layout.minor) {
            image.put(runtime, DEBUG_COOKIE);
            image.word(
                runtime + 8,
                0x030d_00f0 + ((layout.minor as u64 - 13) << 16),
            );
            for (index, value) in [
                (
                    fields.runtime_interpreters_head,
                    layout.runtime_interpreters_head,
                ),
                (fields.interpreter_modules, layout.interpreter_modules),
                (fields.ob_type, layout.ob_type),
                (fields.tp_name, layout.tp_name),
                (fields.tp_flags, layout.tp_flags),
                (fields.ma_keys, layout.ma_keys),
                (fields.ma_values, layout.ma_values),
                (fields.unicode_length, layout.unicode_length),
                (fields.unicode_ascii_size, layout.ascii_data),
                (fields.unicode_state, layout.unicode_state),
                (fields.long_digits, layout.long_digits),
            ] {
                image.word(runtime + 8 * index as u64, value);
            }
            // free_threaded: 0; the runtime state's size after it.
            image.word(runtime + 24, 283_376);
        }
        image.word(runtime + layout.runtime_interpreters_head, sub);
        image.word(runtime + layout.runtime_interpreters_head + 8, interpreter);
        Built {
            image,
            runtime,
            authkey: (authkey, authkey_size),
        }
    }
}

impl Memory for Image {
    fn read_many(&mut self, reads: &mut [Read<'_>]) {
        self.calls += 1;
        for read in reads {
            self.reads.push((read.address, read.buffer.len()));
            let Some(start) = read.address.checked_sub(BASE) else {
                continue;
            };
            let end = start.saturating_add(read.buffer.len() as u64);
            if let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end))
                && let Some(bytes) = self.bytes.get(start..end)
            {
                read.buffer.copy_from_slice(bytes);
                read.done = true;
            }
        }
    }
}
