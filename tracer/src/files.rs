//! Files: traces and exports are created private (mode 0600) and never written through
//! whatever stood at their path; traces and rules files are opened with errors that name
//! them.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result, anyhow};
use tracer_core::roles::Rules;
use tracer_core::trace::{TraceReader, TraceWriter};

/// Temporary files this process made, for unique names.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// A trace file being written: buffered, so that lines reach the file at each flush (once
/// per ingested batch) and a crash loses at most the batch being written.
pub type TraceFile = TraceWriter<BufWriter<File>>;

/// Creates the trace at `path` as a new private file (mode 0600). Whatever stood at that
/// path (a file someone else holds open, a FIFO, a symlink) is replaced, never opened or
/// followed (see [`PrivateFile`]). The file has its final name from the start, so a recorder
/// that is killed leaves what it wrote where it was asked to.
pub fn create_trace(path: &Path) -> Result<TraceFile> {
    let file = PrivateFile::create_beside(path)
        .and_then(PrivateFile::publish)
        .map_err(|e| anyhow!("cannot create trace {}: {e}", path.display()))?;
    Ok(TraceWriter::new(BufWriter::with_capacity(256 << 10, file)))
}

/// Flushes a trace and syncs it to disk.
pub fn finish_trace(writer: &mut TraceFile) -> std::io::Result<()> {
    writer.flush()?;
    writer.get_ref().get_ref().sync_all()
}

/// Opens a trace and reads its header; errors name the file.
pub fn open_trace(path: &Path) -> Result<TraceReader<BufReader<File>>> {
    let file =
        File::open(path).map_err(|e| anyhow!("cannot open trace {}: {e}", path.display()))?;
    Ok(TraceReader::new(
        BufReader::new(file),
        path.display().to_string(),
    )?)
}

/// The built-in rules, after the rules of a user file if one is given.
pub fn load_rules(path: Option<&Path>) -> Result<Rules> {
    let Some(path) = path else {
        return Ok(Rules::builtin());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read rules file {}", path.display()))?;
    Ok(Rules::with_user_text(&path.display().to_string(), &text)?)
}

/// Writes `bytes` to `path` as a new private file (mode 0600): written under a temporary
/// name in the same directory, synced, then renamed over `path`, so that a reader sees the
/// old file or the whole new one, and nothing at `path` is written through.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let cannot = |e: std::io::Error| anyhow!("cannot write {}: {e}", path.display());
    let mut private = PrivateFile::create_beside(path).map_err(cannot)?;
    match private
        .file
        .write_all(bytes)
        .and_then(|()| private.file.sync_all())
    {
        Ok(()) => private.publish().map(drop).map_err(cannot),
        Err(error) => {
            private.discard();
            Err(cannot(error))
        }
    }
}

/// A new private file (mode 0600) created exclusively, never through a symlink, under a
/// temporary name beside `path`, to be renamed over `path` once ready: whatever stood at
/// `path` (a file someone holds open, a FIFO, a symlink) is replaced, never opened or
/// written through, and a reader sees the old file or the new one.
pub struct PrivateFile {
    pub file: File,
    temporary: PathBuf,
    path: PathBuf,
}

impl PrivateFile {
    pub fn create_beside(path: &Path) -> std::io::Result<PrivateFile> {
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")
        })?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(
            ".{}.{}.{}.tmp",
            std::process::id(),
            TEMPORARIES.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let temporary = directory.join(temporary_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temporary)?;
        Ok(PrivateFile {
            file,
            temporary,
            path: path.to_owned(),
        })
    }

    /// Renames the file over its path; on failure, removes it.
    pub fn publish(self) -> std::io::Result<File> {
        match std::fs::rename(&self.temporary, &self.path) {
            Ok(()) => Ok(self.file),
            Err(error) => {
                self.discard();
                Err(error)
            }
        }
    }

    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_core::event::Event;
    use tracer_core::fixtures::{header, lost};

    #[test]
    fn writes_private_files_and_reads_them_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut writer = create_trace(&path).unwrap();
        writer.write_header(&header()).unwrap();
        writer.write_event(&lost(11)).unwrap();
        finish_trace(&mut writer).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );

        let reader = open_trace(&path).unwrap();
        assert_eq!(reader.header(), &header());
        let events: Vec<Event> = reader.map(Result::unwrap).collect();
        assert_eq!(events, [lost(11)]);
    }

    #[test]
    fn what_stood_at_the_path_is_replaced_never_opened() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");

        // A file someone else made, and holds open to read what gets written.
        std::fs::write(&path, "old").unwrap();
        let planted = File::open(&path).unwrap();
        let mut writer = create_trace(&path).unwrap();
        writer.write_header(&header()).unwrap();
        finish_trace(&mut writer).unwrap();
        assert_ne!(
            planted.metadata().unwrap().ino(),
            std::fs::metadata(&path).unwrap().ino()
        );
        assert_eq!(std::io::read_to_string(&planted).unwrap(), "old");

        // A symlink to a file elsewhere: replaced, not followed.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        create_trace(&path).unwrap();
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");

        // A FIFO: opening it would block or feed a reader; it is replaced too.
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        create_trace(&path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().is_file());

        // A directory cannot be replaced: a clear error, and no temporary left behind.
        let error = create_trace(dir.path()).err().unwrap().to_string();
        assert!(error.starts_with("cannot create trace"), "{error}");
        let blocker = dir.path().join("d");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "").unwrap();
        assert!(create_trace(&blocker).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
