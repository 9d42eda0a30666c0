//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct
//! member offsets, type sizes, enum values and tracepoint prototypes, so that the probes never
//! carry a compiled-in kernel layout.
//!
//! Format reference: the kernel's `Documentation/bpf/btf.rst`.

use std::collections::HashMap;
use std::fmt;

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfError {
    Truncated(&'static str),
    BadMagic(u16),
    UnknownKind { kind: u32, type_id: u32 },
    BadString(u32),
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::Truncated(what) => write!(f, "BTF is truncated ({what})"),
            BtfError::BadMagic(magic) => write!(f, "not BTF (magic {magic:#06x})"),
            BtfError::UnknownKind { kind, type_id } => {
                write!(f, "BTF type {type_id} has unknown kind {kind}")
            }
            BtfError::BadString(offset) => write!(f, "BTF string offset {offset} is invalid"),
        }
    }
}

impl std::error::Error for BtfError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: u32,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero for bitfields.
    pub bit_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Int { size: u32 },
    Ptr(u32),
    Array { element: u32, len: u32 },
    Struct { size: u32, members: Vec<Member> },
    Union { size: u32, members: Vec<Member> },
    Enum { size: u32, values: Vec<(u32, i64)> },
    Fwd,
    Typedef(u32),
    Volatile(u32),
    Const(u32),
    Restrict(u32),
    Func(u32),
    FuncProto { ret: u32, params: Vec<u32> },
    Var(u32),
    Datasec,
    Float { size: u32 },
    DeclTag(u32),
    TypeTag(u32),
}

#[derive(Debug, Clone)]
struct Type {
    name: u32,
    kind: Kind,
}

/// Parsed BTF. Type id 0 is `void`.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<String, Vec<u32>>,
}

/// Where a struct member lives, relative to the start of the struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLocation {
    pub bit_offset: u32,
    pub bit_size: u32,
    pub type_id: u32,
}

impl MemberLocation {
    pub fn byte_offset(&self) -> u32 {
        self.bit_offset / 8
    }
}

/// A readable description of a parameter or member type, for prototype checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Pointer to a named struct or union.
    PtrTo(String),
    /// Pointer to anything else (`char *`, `void *`).
    Ptr,
    Int(u32),
    Other,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self, what: &'static str) -> Result<u32, BtfError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or(BtfError::Truncated(what))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let header = data
            .get(..HEADER_LEN)
            .ok_or(BtfError::Truncated("header"))?;
        let magic = u16::from_le_bytes([header[0], header[1]]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic(magic));
        }
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
                as usize
        };
        let header_len = word(4);
        let (type_off, type_len, str_off, str_len) = (word(8), word(12), word(16), word(20));
        let section = |off: usize, len: usize, what| {
            let start = header_len
                .checked_add(off)
                .ok_or(BtfError::Truncated(what))?;
            let end = start.checked_add(len).ok_or(BtfError::Truncated(what))?;
            data.get(start..end).ok_or(BtfError::Truncated(what))
        };
        let type_data = section(type_off, type_len, "type section")?;
        let strings = section(str_off, str_len, "string section")?.to_vec();

        let mut types = vec![Type {
            name: 0,
            kind: Kind::Int { size: 0 },
        }];
        let mut cursor = Cursor {
            data: type_data,
            pos: 0,
        };
        while cursor.pos < type_data.len() {
            let type_id = types.len() as u32;
            let name = cursor.u32("type name")?;
            let info = cursor.u32("type info")?;
            let size_or_type = cursor.u32("type size")?;
            let vlen = info & 0xffff;
            let kind_flag = info >> 31 != 0;
            let members = |cursor: &mut Cursor| -> Result<Vec<Member>, BtfError> {
                (0..vlen)
                    .map(|_| {
                        let name = cursor.u32("member name")?;
                        let type_id = cursor.u32("member type")?;
                        let offset = cursor.u32("member offset")?;
                        Ok(if kind_flag {
                            Member {
                                name,
                                type_id,
                                bit_offset: offset & 0x00ff_ffff,
                                bit_size: offset >> 24,
                            }
                        } else {
                            Member {
                                name,
                                type_id,
                                bit_offset: offset,
                                bit_size: 0,
                            }
                        })
                    })
                    .collect()
            };
            let kind = match (info >> 24) & 0x1f {
                1 => {
                    cursor.u32("int encoding")?;
                    Kind::Int { size: size_or_type }
                }
                2 => Kind::Ptr(size_or_type),
                3 => {
                    let element = cursor.u32("array element")?;
                    cursor.u32("array index")?;
                    let len = cursor.u32("array length")?;
                    Kind::Array { element, len }
                }
                4 => Kind::Struct {
                    size: size_or_type,
                    members: members(&mut cursor)?,
                },
                5 => Kind::Union {
                    size: size_or_type,
                    members: members(&mut cursor)?,
                },
                6 => {
                    let values = (0..vlen)
                        .map(|_| {
                            let name = cursor.u32("enum name")?;
                            let value = cursor.u32("enum value")? as i32 as i64;
                            Ok((name, value))
                        })
                        .collect::<Result<_, BtfError>>()?;
                    Kind::Enum {
                        size: size_or_type,
                        values,
                    }
                }
                7 => Kind::Fwd,
                8 => Kind::Typedef(size_or_type),
                9 => Kind::Volatile(size_or_type),
                10 => Kind::Const(size_or_type),
                11 => Kind::Restrict(size_or_type),
                12 => Kind::Func(size_or_type),
                13 => {
                    let params = (0..vlen)
                        .map(|_| {
                            cursor.u32("param name")?;
                            cursor.u32("param type")
                        })
                        .collect::<Result<_, BtfError>>()?;
                    Kind::FuncProto {
                        ret: size_or_type,
                        params,
                    }
                }
                14 => {
                    cursor.u32("var linkage")?;
                    Kind::Var(size_or_type)
                }
                15 => {
                    for _ in 0..vlen * 3 {
                        cursor.u32("datasec entry")?;
                    }
                    Kind::Datasec
                }
                16 => Kind::Float { size: size_or_type },
                17 => {
                    cursor.u32("decl tag index")?;
                    Kind::DeclTag(size_or_type)
                }
                18 => Kind::TypeTag(size_or_type),
                19 => {
                    let values = (0..vlen)
                        .map(|_| {
                            let name = cursor.u32("enum64 name")?;
                            let low = cursor.u32("enum64 low")? as u64;
                            let high = cursor.u32("enum64 high")? as u64;
                            Ok((name, ((high << 32) | low) as i64))
                        })
                        .collect::<Result<_, BtfError>>()?;
                    Kind::Enum {
                        size: size_or_type,
                        values,
                    }
                }
                kind => return Err(BtfError::UnknownKind { kind, type_id }),
            };
            types.push(Type { name, kind });
        }

        let mut btf = Btf {
            types,
            strings,
            by_name: HashMap::new(),
        };
        for id in 1..btf.types.len() as u32 {
            let ty = &btf.types[id as usize];
            let named = matches!(
                ty.kind,
                Kind::Struct { .. } | Kind::Union { .. } | Kind::Enum { .. } | Kind::Typedef(_)
            );
            if named && ty.name != 0 {
                let name = btf.string(ty.name)?.to_owned();
                btf.by_name.entry(name).or_default().push(id);
            }
        }
        Ok(btf)
    }

    fn string(&self, offset: u32) -> Result<&str, BtfError> {
        let tail = self
            .strings
            .get(offset as usize..)
            .ok_or(BtfError::BadString(offset))?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::BadString(offset))?;
        std::str::from_utf8(&tail[..end]).map_err(|_| BtfError::BadString(offset))
    }

    fn kind(&self, id: u32) -> Option<&Kind> {
        self.types.get(id as usize).map(|ty| &ty.kind)
    }

    fn name_of(&self, id: u32) -> Option<&str> {
        self.types
            .get(id as usize)
            .and_then(|ty| self.string(ty.name).ok())
    }

    /// Follows typedefs and qualifiers to the underlying type.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.kind(id) {
                Some(
                    Kind::Typedef(next)
                    | Kind::Volatile(next)
                    | Kind::Const(next)
                    | Kind::Restrict(next)
                    | Kind::TypeTag(next),
                ) => id = *next,
                _ => break,
            }
        }
        id
    }

    /// Size in bytes of a type, if it has one.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        match self.kind(self.resolve(id))? {
            Kind::Int { size }
            | Kind::Struct { size, .. }
            | Kind::Union { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => Some(*size),
            Kind::Ptr(_) => Some(8),
            Kind::Array { element, len } => self.size_of(*element)?.checked_mul(*len),
            _ => None,
        }
    }

    /// The struct or union of that name (the first one, when a name repeats).
    pub fn composite(&self, name: &str) -> Option<u32> {
        self.by_name.get(name)?.iter().copied().find(|&id| {
            matches!(
                self.kind(id),
                Some(Kind::Struct { .. } | Kind::Union { .. })
            )
        })
    }

    fn members(&self, id: u32) -> &[Member] {
        match self.kind(self.resolve(id)) {
            Some(Kind::Struct { members, .. } | Kind::Union { members, .. }) => members,
            _ => &[],
        }
    }

    /// Finds a member by name, looking through anonymous structs and unions the way C does.
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<MemberLocation> {
        if depth > 8 {
            return None;
        }
        for member in self.members(id) {
            if member.name == 0 {
                if let Some(inner) = self.find_member(member.type_id, name, depth + 1) {
                    return Some(MemberLocation {
                        bit_offset: member.bit_offset + inner.bit_offset,
                        ..inner
                    });
                }
            } else if self.string(member.name).ok() == Some(name) {
                return Some(MemberLocation {
                    bit_offset: member.bit_offset,
                    bit_size: member.bit_size,
                    type_id: member.type_id,
                });
            }
        }
        None
    }

    /// Locates `path` (members separated by dots) inside the struct or union `composite`.
    pub fn member(&self, composite: &str, path: &str) -> Option<MemberLocation> {
        let mut id = self.composite(composite)?;
        let mut location: Option<MemberLocation> = None;
        for name in path.split('.') {
            let found = self.find_member(id, name, 0)?;
            let base = location.map_or(0, |l| l.bit_offset);
            location = Some(MemberLocation {
                bit_offset: base + found.bit_offset,
                ..found
            });
            id = found.type_id;
        }
        location
    }

    /// The value of an enumerator of the named enum.
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Option<i64> {
        self.by_name.get(enum_name)?.iter().find_map(|&id| {
            let Some(Kind::Enum { values, .. }) = self.kind(id) else {
                return None;
            };
            values
                .iter()
                .find(|(name, _)| self.string(*name).ok() == Some(variant))
                .map(|(_, value)| *value)
        })
    }

    pub fn shape(&self, id: u32) -> Shape {
        match self.kind(self.resolve(id)) {
            Some(Kind::Ptr(target)) => {
                let target = self.resolve(*target);
                match self.kind(target) {
                    Some(Kind::Struct { .. } | Kind::Union { .. } | Kind::Fwd) => self
                        .name_of(target)
                        .map_or(Shape::Ptr, |name| Shape::PtrTo(name.to_owned())),
                    _ => Shape::Ptr,
                }
            }
            Some(Kind::Int { size }) | Some(Kind::Enum { size, .. }) => Shape::Int(*size),
            _ => Shape::Other,
        }
    }

    /// The arguments a BTF tracepoint program receives for `tracepoint`: the parameters of the
    /// kernel's `btf_trace_<tracepoint>` prototype after its leading context pointer.
    pub fn tracepoint_args(&self, tracepoint: &str) -> Option<Vec<Shape>> {
        let typedef = self
            .by_name
            .get(&format!("btf_trace_{tracepoint}"))?
            .iter()
            .copied()
            .find(|&id| matches!(self.kind(id), Some(Kind::Typedef(_))))?;
        let Some(Kind::Ptr(proto)) = self.kind(self.resolve(typedef)) else {
            return None;
        };
        let Some(Kind::FuncProto { params, .. }) = self.kind(self.resolve(*proto)) else {
            return None;
        };
        Some(params.iter().skip(1).map(|&p| self.shape(p)).collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF blobs for tests, type by type.
    #[derive(Default)]
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Builder {
                strings: vec![0],
                ..Default::default()
            }
        }

        pub(crate) fn name(&mut self, name: &str) -> u32 {
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            offset
        }

        fn push(&mut self, words: &[u32]) -> u32 {
            for word in words {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
            self.count += 1;
            self.count
        }

        pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
            let name = self.name(name);
            self.push(&[name, 1 << 24, size, size * 8])
        }

        pub(crate) fn ptr(&mut self, to: u32) -> u32 {
            self.push(&[0, 2 << 24, to])
        }

        /// Members are (name, type, bit offset, bitfield size).
        pub(crate) fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let name = self.name(name);
            let bitfields = members.iter().any(|m| m.3 != 0);
            let mut words = vec![
                name,
                (kind << 24) | ((bitfields as u32) << 31) | members.len() as u32,
                size,
            ];
            for (member, ty, offset, bits) in members {
                let member = if member.is_empty() {
                    0
                } else {
                    self.name(member)
                };
                let offset = if bitfields {
                    (bits << 24) | offset
                } else {
                    *offset
                };
                words.extend([member, *ty, offset]);
            }
            self.push(&words)
        }

        pub(crate) fn enumeration(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
            let name = self.name(name);
            let mut words = vec![name, (6 << 24) | values.len() as u32, 4];
            for (variant, value) in values {
                let variant = self.name(variant);
                words.extend([variant, *value as u32]);
            }
            self.push(&words)
        }

        pub(crate) fn typedef(&mut self, name: &str, to: u32) -> u32 {
            let name = self.name(name);
            self.push(&[name, 8 << 24, to])
        }

        pub(crate) fn func_proto(&mut self, params: &[u32]) -> u32 {
            let mut words = vec![0, (13 << 24) | params.len() as u32, 0];
            for param in params {
                words.extend([0, *param]);
            }
            self.push(&words)
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for word in [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    #[test]
    fn finds_members_through_anonymous_structs_and_paths() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let long = b.int("long", 8);
        let inner = b.composite(
            4,
            "",
            16,
            &[("arg_start", long, 0, 0), ("arg_end", long, 64, 0)],
        );
        let mm = b.composite(4, "mm_struct", 64, &[("", inner, 128, 0)]);
        let upid = b.composite(4, "upid", 16, &[("nr", int, 0, 0)]);
        let pid = b.composite(
            4,
            "pid",
            32,
            &[("level", int, 32, 0), ("numbers", upid, 128, 0)],
        );
        let btf = Btf::parse(&b.build()).unwrap();

        let arg_end = btf.member("mm_struct", "arg_end").unwrap();
        assert_eq!(arg_end.byte_offset(), 24);
        assert_eq!(btf.size_of(arg_end.type_id), Some(8));
        assert_eq!(btf.member("pid", "numbers.nr").unwrap().byte_offset(), 16);
        assert_eq!(btf.size_of(mm), Some(64));
        assert_eq!(btf.size_of(pid), Some(32));
        assert!(btf.member("mm_struct", "env_end").is_none());
        assert!(btf.member("no_such_struct", "x").is_none());
    }

    #[test]
    fn reads_bitfields_enums_and_tracepoint_prototypes() {
        let mut b = Builder::new();
        let uint = b.int("unsigned int", 4);
        let signal = b.composite(
            4,
            "signal_struct",
            8,
            &[
                ("is_child_subreaper", uint, 33, 1),
                ("has_child_subreaper", uint, 34, 1),
            ],
        );
        b.enumeration("pid_type", &[("PIDTYPE_PID", 0), ("PIDTYPE_PGID", 2)]);
        let task = b.composite(4, "task_struct", 8, &[("signal", signal, 0, 0)]);
        let task_ptr = b.ptr(task);
        let void_ptr = b.ptr(0);
        let proto = b.func_proto(&[void_ptr, task_ptr, uint]);
        let proto_ptr = b.ptr(proto);
        b.typedef("btf_trace_sched_process_exit", proto_ptr);
        let btf = Btf::parse(&b.build()).unwrap();

        let has = btf.member("signal_struct", "has_child_subreaper").unwrap();
        assert_eq!((has.bit_offset, has.bit_size), (34, 1));
        assert_eq!(btf.enum_value("pid_type", "PIDTYPE_PGID"), Some(2));
        assert_eq!(btf.enum_value("pid_type", "PIDTYPE_SID"), None);
        assert_eq!(
            btf.tracepoint_args("sched_process_exit"),
            Some(vec![Shape::PtrTo("task_struct".into()), Shape::Int(4)])
        );
        assert_eq!(btf.tracepoint_args("sched_process_fork"), None);
    }

    #[test]
    fn rejects_damaged_input_without_panicking() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.composite(4, "s", 4, &[("x", int, 0, 0)]);
        let good = b.build();
        for len in 0..good.len() {
            let _ = Btf::parse(&good[..len]);
        }
        assert_eq!(Btf::parse(&[0u8; 24]).unwrap_err(), BtfError::BadMagic(0));
        let mut bad_kind = good.clone();
        bad_kind[HEADER_LEN + 7] = 0x1f;
        assert!(Btf::parse(&bad_kind).is_err());
    }

    #[test]
    fn parses_this_kernel_btf() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("the tracer needs kernel BTF");
        let btf = Btf::parse(&data).unwrap();
        assert!(btf.member("task_struct", "tgid").is_some());
        assert!(btf.tracepoint_args("sched_process_fork").is_some());
    }
}
