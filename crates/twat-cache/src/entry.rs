//! Entries as the store hands them out, and the files behind the large ones: where
//! they are written, how they are named, and how a folder is made.

use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::keyhash::KeyDigest;
use crate::reader::{small_entry, FrameReader, Small};
use crate::{Error, Signer};

/// Temporary files older than this belong to writers that died; `open` removes them.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Where a found entry's bytes are.
#[derive(Debug)]
pub enum EntrySource {
    /// Inside the index.
    Inline(Vec<u8>),
    /// In a file of its own (open, so a concurrent replacement cannot pull it away).
    File {
        /// The open file.
        file: File,
        /// Its path.
        path: PathBuf,
    },
}

/// An entry found by [`crate::DiskStore::get`]: read it with [`Entry::reader`].
#[derive(Debug)]
pub struct Entry {
    /// Its bytes.
    pub source: EntrySource,
    /// Its length as recorded in the index.
    pub len: u64,
}

impl Entry {
    /// A reader over the entry's bytes, for [`FrameReader::open`] or
    /// [`crate::read_frame`]. A file shorter or longer than the index says is refused.
    pub fn reader(&self) -> Result<Box<dyn Read + Send + '_>, Error> {
        match &self.source {
            EntrySource::Inline(bytes) => Ok(Box::new(&bytes[..])),
            EntrySource::File { file, .. } => {
                if file.metadata()?.len() != self.len {
                    return Err(Error::Corrupt(
                        "the entry's file has the wrong length".into(),
                    ));
                }
                // Each reader starts at the beginning, even if an earlier one read on.
                let mut file = file;
                file.seek(std::io::SeekFrom::Start(0))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    file,
                )))
            }
        }
    }

    /// The entry read where it is, when it is small and inside the index (see
    /// [`crate::small_entry`]): the path of most hits, with no reader, no buffer and no
    /// copy. `Ok(None)` for one to read with [`Entry::frame`] or [`crate::read_frame`]:
    /// in a file, compressed, with out-of-band buffers, or signed (a signed cache must
    /// always read through [`FrameReader`], which refuses unsigned entries).
    ///
    /// ```
    /// use std::io::Cursor;
    /// use twat_cache::{write_frame, Compression, Entry, EntrySource, Payload};
    ///
    /// let payload = Payload { stream: b"pickle", buffers: vec![] };
    /// let mut frame = Cursor::new(Vec::new());
    /// let len = write_frame(&mut frame, &payload, Compression::None, None)?;
    /// let entry = Entry { source: EntrySource::Inline(frame.into_inner()), len };
    /// assert_eq!(entry.small()?.expect("small and inline").stream, b"pickle");
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn small(&self) -> Result<Option<Small<'_>>, Error> {
        match &self.source {
            EntrySource::Inline(bytes) => small_entry(bytes),
            EntrySource::File { .. } => Ok(None),
        }
    }

    /// Opens a [`FrameReader`] over the entry.
    pub fn frame(
        &self,
        signer: Option<&Signer>,
    ) -> Result<FrameReader<Box<dyn Read + Send + '_>>, Error> {
        let reader = FrameReader::open(self.reader()?, signer)?;
        if reader.header().entry_len() != self.len {
            return Err(Error::Corrupt(
                "the entry's length does not match its header".into(),
            ));
        }
        Ok(reader)
    }
}

/// A name no other writer (thread or process) uses at the same moment.
pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos:x}", std::process::id())
}

/// `ab/abcdef...-<unique>.twc`: a fresh name for every write, so a reader holding the
/// previous file keeps reading a whole entry while it is replaced.
pub(crate) fn data_name(key: KeyDigest) -> String {
    let hex = format!("{key:032x}");
    let salt = twox_hash::XxHash3_64::oneshot(unique().as_bytes());
    format!("{}/{hex}-{salt:016x}.twc", &hex[..2])
}

/// Whether `rel` has the shape [`data_name`] gives (`ab/<32 hex>-<16 hex>.twc`, the
/// bucket being the key's first two digits). An index row is as untrusted as the
/// files once a folder is shared: a name that points anywhere else (`../..`, an
/// absolute path) is never opened, nor removed.
pub(crate) fn valid_data_name(rel: &str) -> bool {
    let b = rel.as_bytes();
    let hex = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    b.len() == 2 + 1 + 32 + 1 + 16 + 4
        && b[2] == b'/'
        && b[3..5] == b[..2]
        && hex(&b[..2])
        && hex(&b[3..35])
        && b[35] == b'-'
        && hex(&b[36..52])
        && &b[52..] == b".twc"
}

pub(crate) fn make_private_dir(path: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    Ok(())
}

pub(crate) fn remove_stale_tmp(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether the process that wrote a temporary file is gone, from the process id its
/// name begins with ([`unique`]); `None` where that cannot be told (no `/proc`).
fn writer_gone(name: &str) -> Option<bool> {
    let pid: u32 = name.split('-').next()?.parse().ok()?;
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(!proc.join(pid.to_string()).exists())
}

/// The temporary files in `tmp` that no live writer can still be writing: their writer
/// process is gone (it was killed mid-write), or they are older than [`STALE_TMP`].
/// Only regular files named `*.part` are considered (a symlink is never followed). With
/// `remove`, they are removed; gives back how many and their bytes.
pub(crate) fn left_tmp(tmp: &Path, remove: bool) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return (0, 0);
    };
    let (mut n, mut bytes) = (0, 0);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || !name.ends_with(".part") {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if (old || writer_gone(&name) == Some(true))
            && (!remove || fs::remove_file(e.path()).is_ok())
        {
            n += 1;
            bytes += meta.len();
        }
    }
    (n, bytes)
}

/// A value file younger than this may belong to a writer that has placed it and not yet
/// committed its row (which waits at most `busy_timeout`): a sweep leaves it.
pub(crate) const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// Removes the files under `dir/data` older than `min_age` that no row of the index
/// refers to (with `remove` false, only finds them); gives back how many and their bytes.
pub(crate) fn sweep_orphans(
    dir: &Path,
    db: &rusqlite::Connection,
    min_age: Duration,
    remove: bool,
) -> Result<(u64, u64), Error> {
    let referenced: std::collections::HashSet<String> = {
        let mut st = db.prepare_cached("SELECT file FROM entries WHERE file IS NOT NULL")?;
        let files = st.query_map([], |r| r.get::<_, String>(0))?;
        files.collect::<Result<_, _>>()?
    };
    let (mut removed, mut bytes) = (0, 0);
    for bucket in fs::read_dir(dir.join("data"))?.flatten() {
        let Ok(files) = fs::read_dir(bucket.path()) else {
            continue;
        };
        for file in files.flatten() {
            let rel = format!(
                "{}/{}",
                bucket.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            let Ok(meta) = file.path().symlink_metadata() else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            let ours = meta.is_file() && valid_data_name(&rel);
            if ours
                && old
                && !referenced.contains(&rel)
                && (!remove || fs::remove_file(file.path()).is_ok())
            {
                removed += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((removed, bytes))
}
