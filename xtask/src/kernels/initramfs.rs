//! The guest's whole root filesystem, as an initramfs: busybox, the test programs at the very
//! paths cargo compiled into them, the shared libraries they load, and an init script that
//! runs the suite and reports on the second serial port. No kernel modules: everything the
//! tests touch is built into Debian's kernels.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Lines the init script writes around the suite's output, so the host can tell a finished
/// run from one that died.
pub const RELEASE_MARK: &str = "TRACER-GUEST-RELEASE ";
pub const EXIT_MARK: &str = "TRACER-GUEST-EXIT ";

/// What goes where in the guest.
enum Entry {
    Directory,
    File { source: PathBuf, executable: bool },
    Text { text: String, executable: bool },
    Symlink { target: String },
}

#[derive(Default)]
pub struct Initramfs {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Initramfs {
    fn add_parents(&mut self, path: &Path) {
        let mut parent = PathBuf::new();
        for component in path.parent().into_iter().flat_map(Path::components) {
            if let Component::Normal(name) = component {
                parent.push(name);
                self.entries
                    .entry(parent.clone())
                    .or_insert(Entry::Directory);
            }
        }
    }

    fn insert(&mut self, path: &Path, entry: Entry) {
        let relative: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        self.add_parents(&relative);
        self.entries.insert(relative, entry);
    }

    pub fn directory(&mut self, path: impl AsRef<Path>) {
        self.insert(path.as_ref(), Entry::Directory);
    }

    pub fn text(&mut self, path: impl AsRef<Path>, text: String, executable: bool) {
        self.insert(path.as_ref(), Entry::Text { text, executable });
    }

    pub fn symlink(&mut self, path: impl AsRef<Path>, target: &str) {
        self.insert(
            path.as_ref(),
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
    }

    /// A host program at the same path in the guest, with every shared library it loads.
    pub fn program(&mut self, path: &Path) -> Result<()> {
        self.insert(
            path,
            Entry::File {
                source: path.to_owned(),
                executable: true,
            },
        );
        for library in shared_libraries(path)? {
            let resolved = std::fs::canonicalize(&library)
                .with_context(|| format!("cannot resolve {}", library.display()))?;
            self.insert(
                &library,
                Entry::File {
                    source: resolved,
                    executable: true,
                },
            );
        }
        Ok(())
    }

    /// Writes the archive (`newc` cpio, uncompressed: the kernel unpacks it without a
    /// decompressor and qemu loads it at memory speed).
    pub fn write(&self, path: &Path) -> Result<u64> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = Newc {
            out: BufWriter::new(file),
            inode: 1,
            written: 0,
        };
        for (name, entry) in &self.entries {
            let name = name.to_str().context("non-UTF-8 path in the initramfs")?;
            match entry {
                Entry::Directory => out.entry(name, 0o040_755, &[])?,
                Entry::Symlink { target } => out.entry(name, 0o120_777, target.as_bytes())?,
                Entry::Text { text, executable } => {
                    out.entry(name, file_mode(*executable), text.as_bytes())?;
                }
                Entry::File { source, executable } => {
                    let data = std::fs::read(source)
                        .with_context(|| format!("cannot read {}", source.display()))?;
                    out.entry(name, file_mode(*executable), &data)?;
                }
            }
        }
        out.entry("TRAILER!!!", 0, &[])?;
        out.out.flush()?;
        Ok(out.written)
    }
}

fn file_mode(executable: bool) -> u32 {
    if executable { 0o100_755 } else { 0o100_644 }
}

struct Newc {
    out: BufWriter<File>,
    inode: u32,
    written: u64,
}

impl Newc {
    fn pad(&mut self) -> Result<()> {
        while !self.written.is_multiple_of(4) {
            self.out.write_all(&[0])?;
            self.written += 1;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        let size = u32::try_from(data.len()).context("a file over 4 GiB in the initramfs")?;
        let name_size = name.len() as u32 + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.inode,
            mode,
            0,
            0,
            if mode & 0o040_000 != 0 { 2 } else { 1 },
            0,
            size,
            0,
            0,
            0,
            0,
            name_size,
            0
        );
        self.inode += 1;
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += (header.len() + name.len() + 1) as u64;
        self.pad()?;
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad()
    }
}

/// The shared libraries a program loads, and its interpreter, as `ldd` resolves them here.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .context("cannot run ldd")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.contains("not a dynamic executable")
        || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
    {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!(
            "ldd {} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(stdout
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
