//! The persistent store: an SQLite index in a folder, small entries inline in it and
//! large ones in files of their own, shared safely by every process that opens the folder.
//!
//! Why it is built this way:
//! - **SQLite in WAL mode** lets readers run while one writer commits, across processes;
//!   an operation that finds the index locked is retried with backoff for a bounded
//!   time (`busy_timeout`) and then gives up with [`Error::Busy`], which the Python
//!   front turns into a miss or a skipped store (never an exception). [`DiskStore::try_get`]
//!   never waits at all, for callers that must not.
//! - **Large values go to files**, written to `tmp/`, then renamed into `data/`; the row
//!   that points at a file is committed only after the rename. A writer killed at any
//!   moment leaves either the old entry, or the new complete one, or an orphan file that
//!   no row points at - never a readable partial entry. Every entry carries a checksum
//!   ([`crate::codec`]) so damage from outside is caught too.
//! - **The size limit holds after every insert**: the insert's own transaction evicts by
//!   policy (`lru`, `lfu`, `fifo`) until the new entry fits.
//! - **Reads do not write**: a hit is one `SELECT`. The access times and counts that LRU
//!   and LFU need are kept in memory and written with the next insert (or every 256
//!   hits), so a warm hit costs microseconds.
//!
//! ```
//! use twat_cache::{DiskStore, DiskConfig, Payload, Compression, read_frame};
//!
//! let dir = std::env::temp_dir().join(format!("twat-cache-doc-{}", std::process::id()));
//! let store = DiskStore::open(&dir, DiskConfig::default())?;
//! let payload = Payload { stream: b"value", buffers: vec![] };
//! store.put("my_function", 42, &payload, Compression::None, None)?;
//! let entry = store.get(42)?.expect("stored");
//! assert_eq!(read_frame(entry.reader()?, None)?.stream, b"value");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), twat_cache::Error>(())
//! ```

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::background::{self, Job};
use crate::byte_store::Value;
use crate::codec::{write_frame_until, Compression, Payload, Signer};
use crate::connection::Db;
use crate::entry::{
    data_name, make_private_dir, remove_stale_tmp, sweep_orphans, unique, valid_data_name,
    ORPHAN_AGE,
};
pub use crate::entry::{Entry, EntrySource};
use crate::fork::Gated;
use crate::freshness::Grace;
use crate::generations::Generations;
use crate::index::{
    adjust_total, delete_returning, key_blob, policy_order, row_id, write_touches, Dead, SCHEMA,
};
use crate::keyhash::KeyDigest;
use crate::tally::{Counter, Tallies};
use crate::{Error, Policy};

/// The default size limit of a persistent cache: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Payloads up to this size are kept inside the index; larger ones get a file.
pub const DEFAULT_INLINE_MAX: usize = 64 * 1024;
/// How long a writer waits for other processes' transactions before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending access records (one per key hit since the last write) that trigger a write
/// of their own. They reach the index anyway with this process's next insert and with
/// every fold of the counters (every 2 s, `tally`), so this bound is for memory (about
/// 200 KB) more than for freshness. At 256, hits cycling over 1,000 warm keys paid a
/// write transaction every 256 hits: 10.8 µs a hit in the Rust benchmark, 4.6 at 4096.
const TOUCH_FLUSH: usize = 4096;
/// Expired entries removed per insert (the rest go with later inserts).
const PURGE_BATCH: i64 = 32;

/// How a [`DiskStore`] behaves.
#[derive(Clone, Debug)]
pub struct DiskConfig {
    /// The bound on the bytes of all entries in the folder.
    pub max_bytes: u64,
    /// How long an entry lives after it is written (wall clock: it must mean the same
    /// in every process).
    pub ttl: Option<Duration>,
    /// Which entries make room: `Lru`, `Lfu` or `Fifo`.
    pub policy: Policy,
    /// Entries whose payload is at most this many bytes stay inside the index.
    pub inline_max: usize,
    /// Whether value files are flushed to the device (`fsync`) before they are renamed
    /// into place (the entry then survives a power cut as soon as the call returns), or
    /// by the background thread right after (`false`, the default: a store costs no
    /// device round trip; a power cut in between loses or truncates the file, which
    /// its checksum catches). Process crashes are safe either way.
    pub durable: bool,
    /// How long an operation waits for other processes' transactions (SQLite retries
    /// with backoff meanwhile) before it gives up with [`Error::Busy`].
    pub busy_timeout: Duration,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            ttl: None,
            policy: Policy::Lru,
            inline_max: DEFAULT_INLINE_MAX,
            durable: false,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// Accepted disk policies, for error messages.
pub const DISK_POLICIES: &str = "'lru', 'lfu' or 'fifo'";

struct Conn {
    db: Db,
    pid: u32,
    /// The index file this connection opened (device, inode), and when that was last
    /// checked: a folder removed (or replaced) under a running process is noticed
    /// within [`FOLDER_CHECK`], and the store starts afresh instead of serving the
    /// deleted index.
    file: (u64, u64),
    checked: std::time::Instant,
}

/// How often a connection checks that its index file is still the folder's.
const FOLDER_CHECK: Duration = Duration::from_secs(1);
/// Commits between two sweeps of unreferenced value files.
const SWEEP_EVERY: u64 = 8192;

/// The (device, inode) of a file, or `None` when it is gone.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// The access records a store keeps in memory until they are written.
pub(crate) type Touches = Mutex<HashMap<KeyDigest, Touch>>;

#[derive(Clone, Copy, Default)]
pub(crate) struct Touch {
    pub(crate) used: i64,
    pub(crate) hits: i64,
}

/// A folder of entries, safe to share between threads and processes.
pub struct DiskStore {
    dir: PathBuf,
    config: DiskConfig,
    conn: Mutex<Option<Conn>>,
    /// Shared with the folder's sink (`disk_stats.rs`), which writes them every few
    /// seconds with the counts.
    touches: Arc<Touches>,
    commits: AtomicU64,
    /// The tallies that this store's own evictions and expirations are counted in.
    tallies: Tallies,
    /// Bumped for every entry removed or replaced, for the local tiers of every process
    /// on the folder (`generations.rs`).
    generations: std::sync::Arc<Generations>,
}

/// An index row: size, expiry, file, inline value.
type Row = (i64, Option<i64>, Option<String>, Option<Vec<u8>>);

fn select_entry(db: &Connection, key: KeyDigest) -> Result<Option<Row>, Error> {
    let mut st = db.prepare_cached(
        "SELECT size, expires, file, value FROM entries WHERE id = ?1 AND key = ?2",
    )?;
    Ok(st
        .query_row(params![row_id(key), &key_blob(key)[..]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?)
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`. New folders are owner-only.
    pub fn open(dir: impl AsRef<Path>, config: DiskConfig) -> Result<Self, Error> {
        Self::open_sweeping(dir, config, true)
    }

    /// [`DiskStore::open`]; with `sweep` false, leaves the files of killed writers for
    /// later (a tool that only looks must change nothing).
    pub(crate) fn open_sweeping(
        dir: impl AsRef<Path>,
        config: DiskConfig,
        sweep: bool,
    ) -> Result<Self, Error> {
        if !matches!(config.policy, Policy::Lru | Policy::Lfu | Policy::Fifo) {
            return Err(Error::InvalidConfig {
                param: "policy",
                value: format!("'{}'", config.policy.name()),
                accepted: DISK_POLICIES,
            });
        }
        if config.max_bytes == 0 {
            return Err(Error::InvalidConfig {
                param: "maxsize",
                value: "0".into(),
                accepted: "a positive number of bytes, or None for the default limit",
            });
        }
        let dir = dir.as_ref().to_path_buf();
        for sub in ["", "data", "tmp"] {
            make_private_dir(&dir.join(sub))?;
        }
        if sweep {
            remove_stale_tmp(&dir.join("tmp"));
        }
        let generations = std::sync::Arc::new(Generations::shared(&dir.join("generations"))?);
        let store = DiskStore {
            dir,
            config,
            conn: Mutex::new(None),
            touches: Arc::new(Mutex::new(HashMap::new())),
            commits: AtomicU64::new(0),
            tallies: Tallies::default(),
            generations,
        };
        // The first lookup prepares its statement and maps the shared WAL index: done
        // now (at decoration time), not in the first call.
        store.get(0)?;
        // Files left by writers killed mid-insert in an earlier run: swept by the
        // background thread (a large folder takes a while to list).
        if sweep {
            background::request(Job::Sweep(store.dir.clone()));
        }
        Ok(store)
    }

    pub(crate) fn tallies_cell(&self) -> &Tallies {
        &self.tallies
    }

    pub(crate) fn touches_cell(&self) -> &Arc<Touches> {
        &self.touches
    }

    /// The folder's generation table, shared by every process that opens it.
    pub fn generations(&self) -> &std::sync::Arc<Generations> {
        &self.generations
    }

    /// Copies of these rows' entries are stale now.
    fn bump_dead(&self, dead: &Dead) {
        for row in dead {
            self.generations.bump(row.2 as u64);
        }
    }

    fn conn(&self) -> Gated<MutexGuard<'_, Option<Conn>>> {
        crate::fork::gated(|| self.conn.lock())
    }

    fn try_conn(&self) -> Option<Gated<MutexGuard<'_, Option<Conn>>>> {
        crate::fork::try_gated(|| self.conn.try_lock())
    }

    fn touches(&self) -> Gated<MutexGuard<'_, HashMap<KeyDigest, Touch>>> {
        crate::fork::gated(|| self.touches.lock())
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &DiskConfig {
        &self.config
    }

    /// Opens the index. Another process setting up a fresh index makes SQLite answer
    /// "busy" at once (it changes the journal mode or creates tables): that is an
    /// [`Error::Busy`] like any other, retried by `with_conn`.
    fn connect(&self) -> Result<Db, Error> {
        let db = Db::open(&self.dir.join("index.sqlite"))?;
        // SQLite never sleeps on a lock: `with_conn` retries instead, so that a lookup
        // can also be tried without any waiting (`try_get`).
        db.busy_timeout(Duration::ZERO)?;
        // WAL: readers never wait for the writer; NORMAL: a commit survives a process
        // crash without an fsync per transaction.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints run in the background (`background.rs`); this is only the backstop.
        db.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        db.set_prepared_statement_cache_capacity(32);
        db.execute_batch(SCHEMA)?;
        // Only the first opener writes the totals row (a write here would make every
        // open wait for the writer lock).
        let has_totals: bool = db.query_row("SELECT count(*) FROM totals", [], |r| r.get(0))?;
        if !has_totals {
            db.execute("INSERT OR IGNORE INTO totals VALUES (0, 0)", [])?;
        }
        db.execute_batch(policy_order(self.config.policy).1)?;
        Ok(db)
    }

    /// Runs `f` on this process's connection (a connection must not cross a `fork`, so
    /// a child opens its own). While other processes hold the index locked, `f` is run
    /// again after a pause (1 ms, doubling up to 50 ms) until `busy_timeout` has passed;
    /// then the caller gets [`Error::Busy`]. The connection is free during the pauses.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnMut(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with_conn_checked(false, f)
    }

    /// [`DiskStore::with_conn`] for a write: the index file is checked first every time
    /// (a stat, against a write's milliseconds), so a write never lands in an index
    /// that was removed, and its file is never left unreferenced by one.
    pub(crate) fn with_write_conn<T>(
        &self,
        f: impl FnMut(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with_conn_checked(true, f)
    }

    fn with_conn_checked<T>(
        &self,
        always: bool,
        mut f: impl FnMut(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.with_conn_once(always, &mut f) {
                Err(Error::Busy) if started.elapsed() < self.config.busy_timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn with_conn_once<T>(
        &self,
        always: bool,
        f: &mut impl FnMut(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut guard = self.conn();
        let pid = std::process::id();
        let index = self.dir.join("index.sqlite");
        match guard.as_mut() {
            Some(c) if c.pid != pid => {
                // Inherited from the parent: closing it could disturb the parent's locks.
                std::mem::forget(guard.take());
            }
            Some(c) if always || c.checked.elapsed() >= FOLDER_CHECK => {
                if file_id(&index) == Some(c.file) {
                    c.checked = std::time::Instant::now();
                } else {
                    // Removed (`rm -rf`) or replaced: start afresh in a new folder.
                    *guard = None;
                    self.touches().clear();
                    for sub in ["", "data", "tmp"] {
                        make_private_dir(&self.dir.join(sub))?;
                    }
                }
            }
            _ => {}
        }
        if guard.is_none() {
            let db = self.connect()?;
            *guard = Some(Conn {
                db,
                pid,
                file: file_id(&index).unwrap_or_default(),
                checked: std::time::Instant::now(),
            });
        }
        f(&mut guard.as_mut().expect("connected").db)
    }

    /// Finds the entry of `key`; `None` when it is missing or expired.
    pub fn get(&self, key: KeyDigest) -> Result<Option<Entry>, Error> {
        let row = self.with_conn(|db| select_entry(db, key))?;
        self.entry_from_row(key, row)
    }

    /// Like [`DiskStore::get`], but only when the answer needs no waiting: `None` if
    /// another thread is using this store's connection or another process holds a lock
    /// on the index. For a caller that holds a lock of its own (the Python binding holds
    /// the GIL): it tries this first and falls back to `get` after releasing its lock.
    pub fn try_get(&self, key: KeyDigest) -> Option<Result<Option<Entry>, Error>> {
        // Held until the entry is made (its access record too): nothing here waits.
        let _pass = crate::fork::try_pass()?;
        let mut guard = self.try_conn()?;
        let conn = guard
            .as_mut()
            .filter(|c| c.pid == std::process::id() && c.checked.elapsed() < FOLDER_CHECK)?;
        let row = select_entry(&conn.db, key);
        drop(guard);
        match row {
            Err(Error::Busy) => None,
            Err(e) => Some(Err(e)),
            Ok(row) => Some(self.entry_from_row(key, row)),
        }
    }

    fn entry_from_row(&self, key: KeyDigest, row: Option<Row>) -> Result<Option<Entry>, Error> {
        let now = now_us();
        let Some((size, expires, file, value)) = row else {
            return Ok(None);
        };
        if expires.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let Some(entry) = self.entry_of(size, file, value)? else {
            return Ok(None);
        };
        self.touch(key, now);
        Ok(Some(entry))
    }

    /// The entry a row describes; `None` when its file went since the row was read.
    pub(crate) fn entry_of(
        &self,
        size: i64,
        file: Option<String>,
        value: Option<Vec<u8>>,
    ) -> Result<Option<Entry>, Error> {
        let source = match (file, value) {
            (Some(rel), _) if !valid_data_name(&rel) => {
                return Err(Error::Corrupt(format!(
                    "an index row names a foreign file {rel:?}"
                )))
            }
            (Some(rel), _) => {
                let path = self.dir.join("data").join(rel);
                match File::open(&path) {
                    Ok(file) => EntrySource::File { file, path },
                    // Replaced or removed by another process since the SELECT.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            (None, Some(bytes)) => EntrySource::Inline(bytes),
            (None, None) => return Err(Error::Corrupt("an index row without a value".into())),
        };
        Ok(Some(Entry {
            source,
            len: size as u64,
        }))
    }

    fn touch(&self, key: KeyDigest, now: i64) {
        if self.config.policy == Policy::Fifo {
            return;
        }
        let full = {
            let mut t = self.touches();
            let e = t.entry(key).or_default();
            e.used = now;
            e.hits += 1;
            t.len() >= TOUCH_FLUSH
        };
        if full {
            // Best effort: a busy index only delays these records.
            let _ = self.flush();
        }
    }

    /// Writes the access records kept in memory to the index.
    pub fn flush(&self) -> Result<(), Error> {
        let touches = std::mem::take(&mut *self.touches());
        if touches.is_empty() {
            return Ok(());
        }
        self.with_write_conn(|db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_touches(&tx, &touches)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Stores an entry for `key`, replacing any older one, and evicts until the folder
    /// is within its limit. `ns` names the cache the entry belongs to.
    pub fn put(
        &self,
        ns: &str,
        key: KeyDigest,
        payload: &Payload<'_>,
        compression: Compression,
        signer: Option<&Signer>,
    ) -> Result<u64, Error> {
        self.put_expiring(ns, key, payload, compression, signer, None)
    }

    /// [`DiskStore::put`] with a TTL of its own for this entry (`None`: the store's).
    pub fn put_expiring(
        &self,
        ns: &str,
        key: KeyDigest,
        payload: &Payload<'_>,
        compression: Compression,
        signer: Option<&Signer>,
        ttl: Option<Duration>,
    ) -> Result<u64, Error> {
        let value = Value {
            payload,
            compression,
            signer,
            ttl,
            grace: Grace::None,
        };
        self.put_value(ns, key, &value)
    }

    /// [`DiskStore::put`] of a [`Value`]: its own TTL (`None`: the store's), and a stale
    /// entry kept until the end of its grace (the frame says when it stopped being
    /// fresh).
    pub fn put_value(&self, ns: &str, key: KeyDigest, value: &Value<'_>) -> Result<u64, Error> {
        let (payload, compression, signer) = (value.payload, value.compression, value.signer);
        let life = value.lifetime(self.config.ttl);
        // Before and after the commit: a copy read meanwhile is stale either way, and one
        // made long before is stale even if this process dies between the two.
        self.generations.bump(key as u64);
        let (ttl, fresh_until) = (life.keep, life.fresh_until);
        let limit = self.config.max_bytes;
        let estimate = payload.len() as u64 + crate::codec::HEADER_LEN as u64;
        if compression == Compression::None && estimate > limit {
            return Err(Error::TooLarge {
                size: estimate,
                limit,
            });
        }
        if payload.len() <= self.config.inline_max {
            let bytes = value.frame(&life)?;
            let size = bytes.len() as u64;
            self.commit(ns, key, size, ttl, None, Some(bytes))?;
            return Ok(size);
        }
        let (tmp, file) = self.temp_file()?;
        let written = (|| {
            let mut w = BufWriter::with_capacity(256 * 1024, file);
            let size = write_frame_until(&mut w, payload, compression, signer, fresh_until)?;
            let file = w.into_inner().map_err(|e| Error::io(e.into_error()))?;
            if self.config.durable {
                file.sync_data()?;
            }
            Ok::<u64, Error>(size)
        })();
        let size = match written {
            Ok(size) if size > limit => Err(Error::TooLarge { size, limit }),
            other => other,
        };
        let size = match size {
            Ok(size) => size,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let rel = data_name(key);
        let dest = self.dir.join("data").join(&rel);
        let placed = (|| {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&tmp, &dest)
        })();
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        if let Err(e) = self.commit(ns, key, size, ttl, Some(&rel), None) {
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        if !self.config.durable {
            background::request(Job::Flush(dest));
        }
        Ok(size)
    }

    fn temp_file(&self) -> Result<(PathBuf, File), Error> {
        let path = self.dir.join("tmp").join(format!("{}.part", unique()));
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        };
        let file = match open() {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The folder was removed under us: make it again (the index notices too).
                for sub in ["", "data", "tmp"] {
                    make_private_dir(&self.dir.join(sub))?;
                }
                open()?
            }
            Err(e) => return Err(e.into()),
        };
        Ok((path, file))
    }

    /// The insert transaction: drop the old entry, purge some expired ones, evict by
    /// policy until the new one fits, insert it. Files of removed entries are unlinked
    /// after the commit (a crash before that leaves orphans, never dangling rows).
    fn commit(
        &self,
        ns: &str,
        key: KeyDigest,
        size: u64,
        ttl: Option<Duration>,
        file: Option<&str>,
        value: Option<Vec<u8>>,
    ) -> Result<(), Error> {
        let limit = self.config.max_bytes;
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
        let touches = std::mem::take(&mut *self.touches());
        let now = now_us();
        let expires = ttl.map(|t| now + t.as_micros() as i64);
        let order = policy_order(self.config.policy).0;
        let purge = ttl.is_some() || self.commits.load(Ordering::Relaxed) % 16 == 0;
        let dead = self.with_write_conn(|db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_touches(&tx, &touches)?;
            let mut dead: Dead = Vec::new();
            // By id alone: a different key with the same low 64 bits is replaced too.
            let old = tx
                .prepare_cached("DELETE FROM entries WHERE id = ?1 RETURNING size, file, id, ns")?
                .query_row([row_id(key)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            dead.extend(old);
            let mut expired: Dead = Vec::new();
            if purge {
                // Other processes' expired entries too (the partial index finds them).
                expired = delete_returning(
                    &tx,
                    "SELECT id FROM entries WHERE expires <= ?1 LIMIT ?2",
                    params![now, PURGE_BATCH],
                )?;
            }
            tx.prepare_cached(
                "INSERT INTO entries (id, key, ns, size, stored, used, hits, expires, file, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, ?6, ?7, ?8)",
            )?
            .execute(params![
                row_id(key),
                &key_blob(key)[..],
                ns,
                size as i64,
                now,
                expires,
                file,
                value
            ])?;
            let freed: i64 = dead.iter().chain(&expired).map(|d| d.0).sum();
            let delta = size as i64 - freed;
            let mut total: i64 = tx
                .prepare_cached(
                    "UPDATE totals SET bytes = bytes + ?1 WHERE id = 0 RETURNING bytes",
                )?
                .query_row([delta], |r| r.get(0))?;
            let evict_sql =
                format!("SELECT id FROM entries WHERE id != ?1 ORDER BY {order} LIMIT 1");
            let mut evicted: Dead = Vec::new();
            while total > limit as i64 {
                // One victim at a time (never the new entry): the policy decides each.
                let victim = delete_returning(&tx, &evict_sql, [row_id(key)])?;
                if victim.is_empty() {
                    break;
                }
                let freed: i64 = victim.iter().map(|d| d.0).sum();
                total = tx
                    .prepare_cached(
                        "UPDATE totals SET bytes = bytes - ?1 WHERE id = 0 RETURNING bytes",
                    )?
                    .query_row([freed], |r| r.get(0))?;
                evicted.extend(victim);
            }
            tx.commit()?;
            Ok((dead, expired, evicted))
        })?;
        let (mut dead, expired, evicted) = dead;
        self.count_removed(&expired, Counter::Expirations);
        self.count_removed(&evicted, Counter::Evictions);
        dead.extend(expired);
        dead.extend(evicted);
        self.generations.bump(key as u64);
        self.bump_dead(&dead);
        let commits = self.commits.fetch_add(1, Ordering::Relaxed);
        if commits % background::EVERY == 0 {
            background::request(Job::Checkpoint(self.dir.join("index.sqlite")));
        }
        self.unlink_files(&dead);
        if commits % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let _ = self.sweep();
        }
        Ok(())
    }

    /// Removes value files that no entry refers to (a writer killed between placing
    /// its file and committing its row, or between a commit and the unlink of the
    /// replaced file leaves one); returns how many. Runs when the store is opened,
    /// with [`DiskStore::purge_expired`] and every few thousand inserts, so the bytes
    /// in `data/` are the bytes the index counts.
    pub fn sweep(&self) -> Result<u64, Error> {
        self.with_conn(|db| sweep_orphans(&self.dir, db, ORPHAN_AGE, true).map(|(n, _)| n))
    }

    /// Unlinks the value files of removed rows (only names of the shape this store
    /// gives, under `data/`: a row never makes it remove anything else).
    fn unlink_files(&self, dead: &Dead) {
        for (_, file, _, _) in dead {
            if let Some(rel) = file.as_deref().filter(|rel| valid_data_name(rel)) {
                let _ = fs::remove_file(self.dir.join("data").join(rel));
            }
        }
    }

    /// Removes the entry of `key`; whether there was one.
    pub fn remove(&self, key: KeyDigest) -> Result<bool, Error> {
        self.touches().remove(&key);
        self.generations.bump(key as u64);
        let sql = "SELECT id FROM entries WHERE id = ?1 AND key = ?2";
        Ok(self.delete_matching(sql, params![row_id(key), &key_blob(key)[..]])? > 0)
    }

    /// Deletes the rows that `select` (a query of ids) finds, in one transaction that
    /// keeps the byte total right, then unlinks their files; returns how many went.
    fn delete_matching(
        &self,
        select: &str,
        params: impl rusqlite::Params + Copy,
    ) -> Result<u64, Error> {
        Ok(self.delete_rows(select, params)?.len() as u64)
    }

    /// [`DiskStore::delete_matching`], giving back the rows that went (their files are
    /// unlinked already).
    pub(crate) fn delete_rows(
        &self,
        select: &str,
        params: impl rusqlite::Params + Copy,
    ) -> Result<Dead, Error> {
        let dead = self.with_write_conn(|db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let dead = delete_returning(&tx, select, params)?;
            adjust_total(&tx, &dead)?;
            tx.commit()?;
            Ok(dead)
        })?;
        self.bump_dead(&dead);
        self.unlink_files(&dead);
        Ok(dead)
    }

    /// Removes the entries of one cache (`Some(ns)`) or of every cache in the folder;
    /// returns how many went. Nothing outside the folder is touched.
    pub fn clear(&self, ns: Option<&str>) -> Result<u64, Error> {
        self.touches().clear();
        match ns {
            Some(ns) => self.delete_matching("SELECT id FROM entries WHERE ns = ?1", [ns]),
            None => self.delete_matching("SELECT id FROM entries", []),
        }
    }

    /// Removes every expired entry; returns how many went.
    pub fn purge_expired(&self) -> Result<u64, Error> {
        let dead = self.delete_rows("SELECT id FROM entries WHERE expires <= ?1", [now_us()])?;
        self.count_removed(&dead, Counter::Expirations);
        self.sweep()?;
        Ok(dead.len() as u64)
    }

    /// Live entries and their bytes, for one cache or the whole folder.
    pub fn usage(&self, ns: Option<&str>) -> Result<(u64, u64), Error> {
        let now = now_us();
        self.with_conn(|db| {
            let sql = "SELECT count(*), coalesce(sum(size), 0) FROM entries
                       WHERE (?1 IS NULL OR ns = ?1) AND (expires IS NULL OR expires > ?2)";
            let (n, bytes): (i64, i64) = db
                .prepare_cached(sql)?
                .query_row(params![ns, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok((n as u64, bytes as u64))
        })
    }

    /// Removes the entry of `key` if it is still the one that was found broken (another
    /// process may have replaced it in the meantime).
    pub fn discard(&self, key: KeyDigest, entry: &Entry) -> Result<(), Error> {
        let file = match &entry.source {
            EntrySource::File { path, .. } => path
                .strip_prefix(self.dir.join("data"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            EntrySource::Inline(_) => None,
        };
        let sql = "SELECT id FROM entries WHERE id = ?1 AND key = ?2 AND file IS ?3";
        self.delete_matching(sql, params![row_id(key), &key_blob(key)[..], file])?;
        Ok(())
    }
}

impl Drop for DiskStore {
    /// Writes the pending access records, if that can be done without waiting (they
    /// only steer eviction; an owner that may wait calls [`DiskStore::flush`] first).
    fn drop(&mut self) {
        // Its owner may hold a lock of its own (the GIL): no waiting at the fork gate.
        let Some(_pass) = crate::fork::try_pass() else {
            return;
        };
        if self.touches().is_empty() {
            return;
        }
        let Some(mut guard) = self.try_conn() else {
            return;
        };
        if let Some(c) = guard.as_mut().filter(|c| c.pid == std::process::id()) {
            let touches = std::mem::take(&mut *self.touches());
            if let Ok(tx) =
                c.db.transaction_with_behavior(TransactionBehavior::Immediate)
            {
                if write_touches(&tx, &touches).is_ok() {
                    let _ = tx.commit();
                }
            }
        }
    }
}
