//! The persistent engine as the binding uses it: Python values pickled (protocol 5,
//! large buffers out of band and written raw) into one of the core's byte stores, a
//! folder ([`DiskStore`]) or a Redis server ([`RedisStore`]), behind [`ByteStore`].
//!
//! Every failure inside the cache becomes a miss or a skipped store with a warning on
//! the `twat_cache` logger, never an exception in the user's call (docs/reference.md,
//! "Behaviour, in every engine"). File, database and network work runs with the GIL
//! released.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::once::PyLazy;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView, PySlice};
use twat_cache::{
    read_frame, stale_for, write_frame, ByteStore, Compression, Counter, Counts, DiskConfig,
    DiskStore, Entry, EntrySource, Error, Grace, Health, KeyDigest, Lease, Payload, RedisConfig,
    RedisStore, Signer, Tally, Value,
};

use crate::fresh::{Freshness, OnStale};

use crate::buffer::{Fresh, Held};
use crate::errors::warn;

/// Python callables the engine uses, looked up once.
struct Py3 {
    dumps: Py<PyAny>,
    loads: Py<PyAny>,
    mmap: Py<PyAny>,
    access_read: Py<PyAny>,
}

fn py3(py: Python<'_>) -> PyResult<&Py3> {
    static FNS: PyLazy<Py3> = PyLazy::new();
    FNS.get_or_try_init(py, || {
        let pickle = py.import("pickle")?;
        let mmap = py.import("mmap")?;
        Ok(Py3 {
            dumps: pickle.getattr("dumps")?.unbind(),
            loads: pickle.getattr("loads")?.unbind(),
            mmap: mmap.getattr("mmap")?.unbind(),
            access_read: mmap.getattr("ACCESS_READ")?.unbind(),
        })
    })
}

/// Kinds of store failure, each warned about once per cache.
#[derive(Clone, Copy)]
enum Failure {
    Pickle = 1,
    TooLarge = 2,
    Write = 4,
    Folder = 8,
    Read = 16,
}

/// How often a folder that could not be opened is tried again.
const FOLDER_RETRY: Duration = Duration::from_secs(1);

/// How values are written and read.
pub struct ValueOptions {
    pub compression: Compression,
    pub signer: Option<Signer>,
    pub mmap: bool,
    /// A serializer other than pickle (`serializer=`): its name, `dumps` and `loads`.
    pub serializer: Option<Serializer>,
}

/// `serializer=`: an object whose `dumps(value)` returns bytes and `loads(bytes)` the
/// value. Its name is part of every key, so an entry is only ever read by the
/// serializer that wrote it.
pub struct Serializer {
    pub name: String,
    pub dumps: Py<PyAny>,
    pub loads: Py<PyAny>,
}

/// Where an engine's entries live.
pub enum Backing {
    /// A folder, shared by the processes of one machine.
    Disk { folder: PathBuf, config: DiskConfig },
    /// A Redis or Valkey server (or cluster), shared by every machine that reaches it.
    Redis(RedisConfig),
}

impl Backing {
    /// The store, and for Redis a second handle on it (for the event loops' wires).
    fn open(&self) -> Result<(Box<dyn ByteStore>, Option<RedisStore>), Error> {
        Ok(match self {
            Backing::Disk { folder, config } => {
                (Box::new(DiskStore::open(folder, config.clone())?), None)
            }
            Backing::Redis(config) => {
                let store = RedisStore::open(config.clone())?;
                (Box::new(store.clone()), Some(store))
            }
        })
    }

    /// The store's place, for messages (a URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Backing::Disk { folder, .. } => format!("the folder {}", folder.display()),
            Backing::Redis(config) => format!("the Redis at {}", config.url.shown),
        }
    }

    /// The TTL of entries stored without one of their own.
    pub fn ttl(&self) -> Option<Duration> {
        match self {
            Backing::Disk { config, .. } => config.ttl,
            Backing::Redis(config) => config.ttl,
        }
    }
}

/// Cross-process single flight: how long a computation's lease lasts (it is extended
/// while the computation runs) and how long other processes wait for its value.
#[derive(Clone, Copy)]
pub struct LockSpec {
    pub lease: Duration,
    pub wait: Duration,
}

/// One cache's view of a store: its namespace, codec options and counters.
///
/// A store that cannot be used (a folder whose parent is a file, a read-only
/// filesystem) never breaks the program: the cache is made anyway, calls go straight
/// to the function (counted in `store_errors`, warned about once), and the store is
/// tried again at most every [`FOLDER_RETRY`] until it opens. A Redis that fails is
/// warned about once per outage.
pub struct StoreEngine {
    store: OnceLock<Box<dyn ByteStore>>,
    redis: OnceLock<RedisStore>,
    backing: Backing,
    retry_at: Mutex<Instant>,
    lock: Option<LockSpec>,
    /// An outage of a networked store is going on (it was warned about).
    outage: std::sync::atomic::AtomicBool,
    /// A random spread added to each entry's TTL (`jitter.rs`).
    jitter: Option<Duration>,
    /// The cache's counters in this process (its namespace too), folded into the
    /// store's totals of every process (`twat_cache::Tally`).
    tally: Arc<Tally>,
    options: ValueOptions,
    /// `stale_ttl`, `stale_if_error`, `ttl=` a callable, `cache_if` (`fresh.rs`).
    fresh: Option<Freshness>,
    warned: AtomicU8,
}

/// Why a found entry could not be used.
enum LoadFail {
    Store(Error),
    Python(PyErr),
}

impl From<Error> for LoadFail {
    fn from(e: Error) -> Self {
        LoadFail::Store(e)
    }
}

impl From<PyErr> for LoadFail {
    fn from(e: PyErr) -> Self {
        LoadFail::Python(e)
    }
}

/// A pickled value: the stream and the out-of-band buffers, held open for writing.
struct Pickled<'py> {
    stream: Bound<'py, PyBytes>,
    buffers: Vec<Held>,
}

fn dumps<'py>(value: &Bound<'py, PyAny>) -> PyResult<Pickled<'py>> {
    let py = value.py();
    let f = py3(py)?;
    let out_of_band = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item("protocol", 5)?;
    kwargs.set_item("buffer_callback", out_of_band.getattr("append")?)?;
    let stream = f
        .dumps
        .bind(py)
        .call((value,), Some(&kwargs))?
        .cast_into::<PyBytes>()?;
    let mut buffers = Vec::with_capacity(out_of_band.len());
    for pb in out_of_band.iter() {
        // `raw()` is a flat byte view of a contiguous buffer (it raises otherwise).
        let raw = pb.call_method0("raw")?;
        buffers.push(Held::get(&raw).ok_or_else(|| {
            pyo3::exceptions::PyBufferError::new_err("an out-of-band buffer is not contiguous")
        })?);
    }
    Ok(Pickled { stream, buffers })
}

impl Drop for StoreEngine {
    /// The store's last write (pending access records) may wait for other processes:
    /// never with the GIL held.
    fn drop(&mut self) {
        if let Some(store) = self.store.get() {
            Python::attach(|py| py.detach(|| store.flush())).ok();
        }
    }
}

/// Runs the hit path's code once on a tiny value (entry codec, unpickling), so that a
/// new process pays for loading that code at decoration time rather than in its first
/// call. Failures do not matter here.
fn warm_up(py: Python<'_>, signer: Option<&Signer>) {
    let Ok(stream) = dumps(&py.None().into_bound(py)).map(|p| p.stream) else {
        return;
    };
    let payload = Payload {
        stream: stream.as_bytes(),
        buffers: Vec::new(),
    };
    let mut frame = std::io::Cursor::new(Vec::new());
    if write_frame(&mut frame, &payload, Compression::None, signer).is_ok() {
        if let Ok(loaded) = read_frame(&frame.get_ref()[..], signer) {
            let _ = loads(py, &loaded.stream, Vec::new());
        }
    }
}

fn loads(py: Python<'_>, stream: &[u8], buffers: Vec<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    let f = py3(py)?;
    let stream = PyBytes::new(py, stream);
    if buffers.is_empty() {
        return Ok(f.loads.bind(py).call1((stream,))?.unbind());
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("buffers", buffers)?;
    Ok(f.loads.bind(py).call((stream,), Some(&kwargs))?.unbind())
}

impl StoreEngine {
    pub fn open(
        py: Python<'_>,
        backing: Backing,
        tally: Arc<Tally>,
        options: ValueOptions,
        jitter: Option<Duration>,
        lock: Option<LockSpec>,
        fresh: Option<Freshness>,
    ) -> Result<Self, Error> {
        // Import what loads need now, at decoration time, not in the first call.
        py3(py).map_err(|e| Error::Database(format!("cannot import pickle or mmap: {e}")))?;
        warm_up(py, options.signer.as_ref());
        let engine = StoreEngine {
            store: OnceLock::new(),
            redis: OnceLock::new(),
            backing,
            retry_at: Mutex::new(Instant::now()),
            lock,
            outage: std::sync::atomic::AtomicBool::new(false),
            jitter,
            tally,
            options,
            fresh,
            warned: AtomicU8::new(0),
        };
        match engine.open_store(py) {
            // A bad option is the caller's mistake: it fails at decoration time.
            Err(e @ Error::InvalidConfig { .. }) => Err(e),
            _ => Ok(engine),
        }
    }

    /// The store, opened now if it could not be before (`None`: not usable yet).
    pub fn store(&self, py: Python<'_>) -> Option<&dyn ByteStore> {
        match self.store.get() {
            Some(store) => Some(&**store),
            None => self.open_store(py).ok().flatten(),
        }
    }

    fn open_store(&self, py: Python<'_>) -> Result<Option<&dyn ByteStore>, Error> {
        {
            let mut at = self.retry_at.lock();
            let now = Instant::now();
            if now < *at {
                return Ok(None);
            }
            *at = now + FOLDER_RETRY;
        }
        match py.detach(|| self.backing.open()) {
            Ok((store, redis)) => {
                if let Some(redis) = redis {
                    let _ = self.redis.set(redis);
                }
                // Its first fold writes to the store: not with the GIL held.
                py.detach(|| store.track(&self.tally));
                let _ = self.store.set(store);
                Ok(self.store.get().map(|s| &**s))
            }
            Err(e @ Error::InvalidConfig { .. }) => Err(e),
            Err(e) => {
                let why = format!(
                    "{} cannot be used ({e}); calls run the function without caching \
                     until it can",
                    self.backing.describe()
                );
                self.store_failed(py, Failure::Folder, &why);
                Err(e)
            }
        }
    }

    /// The Redis store behind this engine, for the event loops' wires (`wire.rs`).
    pub fn redis(&self, py: Python<'_>) -> Option<&RedisStore> {
        self.store(py)?;
        self.redis.get()
    }

    /// The value of an entry's bytes that arrived on a wire, counted as a hit or miss
    /// by the caller.
    pub fn value_of_bytes(
        &self,
        py: Python<'_>,
        key: KeyDigest,
        bytes: Vec<u8>,
    ) -> Option<Py<PyAny>> {
        let store = self.store(py)?;
        self.succeeded();
        let entry = Entry {
            len: bytes.len() as u64,
            source: EntrySource::Inline(bytes),
        };
        // A stale value takes the executor path, which serves and refreshes it.
        self.value_of(py, store, key, entry)
            .and_then(|(v, until)| stale_for(until).is_none().then_some(v))
    }

    /// A wire lookup failed: warned about once per outage, like any other.
    pub fn wire_failed(&self, py: Python<'_>, e: &Error) {
        self.failed(py, Failure::Read, e, "a lookup failed, treated as a miss");
    }

    /// Whether calls take a cross-process lease before computing (Redis with `lock`).
    pub fn leases(&self) -> bool {
        self.lock.is_some()
    }

    /// The namespace of this cache's entries.
    pub fn namespace(&self) -> &str {
        self.tally.ns()
    }

    /// This process's counters of the cache.
    pub fn counts(&self) -> Counts {
        self.tally.counts()
    }

    /// The cache's totals over every process: what the store holds, and what this
    /// process has not folded into it yet. `None` when the store keeps none or cannot
    /// be reached.
    pub fn shared_counts(&self, py: Python<'_>) -> Option<Counts> {
        let store = self.store.get()?;
        let held = py.detach(|| store.shared_counts(self.tally.ns())).ok()?;
        Some(held.unwrap_or_default().plus(&self.tally.unfolded()))
    }

    /// Where the entries live.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The folder, for a disk engine.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.backing {
            Backing::Disk { folder, .. } => Some(folder),
            Backing::Redis(_) => None,
        }
    }

    /// The connection health of a networked store.
    pub fn health(&self) -> Option<Health> {
        self.store.get().and_then(|s| s.health())
    }

    /// A failed store operation: counted, and warned about once per kind (a networked
    /// store: once per outage, until an operation succeeds again).
    fn failed(&self, py: Python<'_>, kind: Failure, e: &Error, message: &str) {
        if let Error::Remote(_) = e {
            self.tally.add(Counter::StoreErrors, 1);
            if !self.outage.swap(true, Ordering::Relaxed) {
                warn(
                    py,
                    &format!(
                        "twat_cache: {}: {message} ({e}); calls run the function without \
                         caching until {} answers again",
                        self.tally.ns(),
                        self.backing.describe()
                    ),
                );
            }
            return;
        }
        self.store_failed(py, kind, &format!("{message}: {e}"));
    }

    /// A networked store failed since its last success: writes and leases are skipped
    /// until a lookup succeeds again, so that a call pays at most one timeout.
    fn in_outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    /// A store operation succeeded: an outage (if one was going on) is over.
    fn succeeded(&self) {
        if self.outage.load(Ordering::Relaxed) {
            self.outage.store(false, Ordering::Relaxed);
        }
    }

    /// The fresh value stored for `key`, or `None` (missing, expired or stale,
    /// unreadable). A damaged entry is removed and logged.
    pub fn load(&self, py: Python<'_>, key: KeyDigest) -> Option<Py<PyAny>> {
        self.load_fresh(py, key).map(|(v, _)| v)
    }

    /// [`StoreEngine::load`], with how long the entry stays fresh (`None`: forever;
    /// an entry that does not say, in a cache with a TTL, gives `Some(0)`).
    pub fn load_fresh(
        &self,
        py: Python<'_>,
        key: KeyDigest,
    ) -> Option<(Py<PyAny>, Option<Duration>)> {
        let (value, until) = self.lookup(py, key)?;
        if stale_for(until).is_some() {
            return None;
        }
        Some((value, self.left(until)))
    }

    /// Whether entries expire (a TTL, or `ttl=` a callable).
    fn has_ttl(&self) -> bool {
        self.backing.ttl().is_some() || self.fresh.as_ref().is_some_and(|f| f.ttl_of.is_some())
    }

    /// The store's generation table, for a local tier (`None`: the store is not open,
    /// or keeps none).
    pub fn generations(&self, py: Python<'_>) -> Option<std::sync::Arc<twat_cache::Generations>> {
        self.store(py)?.generations(self.tally.ns())
    }

    /// The freshness options.
    pub fn freshness(&self) -> Option<&Freshness> {
        self.fresh.as_ref()
    }

    /// What a call finds for `key` in a cache with freshness options: `(value, false)`
    /// for a fresh one (counted as a hit), `(value, true)` for a stale one to serve
    /// while it is refreshed (counted as a stale hit), `None` to compute (a miss).
    pub fn serve(&self, py: Python<'_>, key: KeyDigest) -> Option<Served> {
        let served = self.find(py, key);
        self.count(served.is_some());
        served
    }

    /// [`StoreEngine::serve`] with only stale hits counted (the async path counts the
    /// call when it ends).
    pub fn find(&self, py: Python<'_>, key: KeyDigest) -> Option<Served> {
        let Some(fresh) = self.fresh.as_ref() else {
            return self.load_fresh(py, key).map(|(value, left)| Served {
                value,
                stale: false,
                left,
            });
        };
        let (value, until) = self.lookup(py, key)?;
        let served = match stale_for(until) {
            None => Served {
                value,
                stale: false,
                left: self.left(until),
            },
            Some(age) if fresh.on_stale(age) == OnStale::Serve => {
                self.tally.add(Counter::StaleHits, 1);
                Served {
                    value,
                    stale: true,
                    left: Some(Duration::ZERO),
                }
            }
            Some(_) => return None,
        };
        Some(served)
    }

    /// How long an entry whose freshness ends at `until` stays fresh (`None`: forever;
    /// an entry that does not say, in a cache with a TTL, gives zero).
    fn left(&self, until: Option<u64>) -> Option<Duration> {
        match until {
            Some(until) => Some(twat_cache::fresh_left(until)),
            None if self.has_ttl() => Some(Duration::ZERO),
            None => None,
        }
    }

    /// The answer to a computation of `key` that raised `e`: with `stale_if_error`, the
    /// value kept (fresh, or stale within the option's time), with a warning; else `e`.
    pub fn fall_back(&self, py: Python<'_>, key: KeyDigest, e: PyErr) -> PyResult<Py<PyAny>> {
        let Some(fresh) = self.fresh.as_ref().filter(|f| f.answers(py, &e)) else {
            return Err(e);
        };
        match self.lookup(py, key) {
            Some((v, until)) if fresh.falls_back(stale_for(until)) => {
                fresh.warn_fallback(py, self.tally.ns(), &e);
                Ok(v)
            }
            _ => Err(e),
        }
    }

    /// The cross-process right to refresh `key`: `None` when another process is
    /// refreshing it (then this one serves the stale value and lets it be). A store
    /// that cannot say (no leases, unreachable) leaves it to this process.
    pub fn refresh_lease(&self, py: Python<'_>, key: KeyDigest) -> Option<Lease> {
        let Some(store) = self.store(py) else {
            return Some(Lease::Local);
        };
        if self.in_outage() {
            return Some(Lease::Local);
        }
        // Extended while it runs on Redis; on a folder a refresh longer than this may
        // be run a second time by another process.
        let span = self.lock.map_or(REFRESH_LEASE, |l| l.lease);
        match py.detach(|| store.lease(self.tally.ns(), key, span)) {
            Ok(Lease::Busy) => None,
            Ok(lease) => Some(lease),
            Err(_) => Some(Lease::Local),
        }
    }

    /// The value stored for `key` and the end of its freshness (Unix microseconds), or
    /// `None` (missing, past its grace, unreadable).
    fn lookup(&self, py: Python<'_>, key: KeyDigest) -> Option<(Py<PyAny>, Option<u64>)> {
        // A lookup that needs no waiting takes a microsecond or two: done with the GIL
        // held (releasing and taking it back costs more than the lookup). One that
        // might wait (a busy connection or index) runs without it.
        let store = self.store(py)?;
        let ns = self.tally.ns();
        let found = match store.try_get(ns, key) {
            Some(found) => found,
            None => py.detach(|| store.get(ns, key)),
        };
        let entry = match found {
            Ok(Some(entry)) => {
                self.succeeded();
                entry
            }
            Ok(None) => {
                self.succeeded();
                return None;
            }
            Err(e) => {
                self.failed(py, Failure::Read, &e, "a lookup failed, treated as a miss");
                return None;
            }
        };
        self.value_of(py, store, key, entry)
    }

    /// The value of a found entry and the end of its freshness (when it has one); a
    /// damaged one (bad checksum or signature, or one that cannot be unpickled) is
    /// removed, logged, and `None`.
    fn value_of(
        &self,
        py: Python<'_>,
        store: &dyn ByteStore,
        key: KeyDigest,
        entry: Entry,
    ) -> Option<(Py<PyAny>, Option<u64>)> {
        let ns = self.tally.ns();
        self.tally.add(Counter::BytesRead, entry.len);
        // Most small values: checked and unpickled straight from the index row (a signed
        // cache reads every entry through the reader, which checks the signature).
        let small = match self.options.signer {
            None => entry.small(),
            Some(_) => Ok(None),
        };
        let value = match small {
            Ok(Some(small)) => self
                .loads(py, small.stream, Vec::new())
                .map(|v| (v, small.fresh_until))
                .map_err(LoadFail::Python),
            Ok(None) => self.decode(py, &entry),
            Err(e) => Err(LoadFail::Store(e)),
        };
        match value {
            Ok(value) => Some(value),
            Err(fail) => {
                let why = match fail {
                    LoadFail::Store(e) => e.to_string(),
                    LoadFail::Python(e) => format!("it cannot be unpickled: {e}"),
                };
                warn(
                    py,
                    &format!(
                        "twat_cache: {}: removed an unusable entry ({why}); recomputing",
                        self.tally.ns()
                    ),
                );
                let _ = py.detach(|| store.discard(ns, key, &entry));
                None
            }
        }
    }

    /// Reads an entry through the general reader, with the GIL released for the I/O:
    /// each out-of-band buffer into fresh memory (one copy), or, with `mmap`, as
    /// read-only views of the mapped file (no copy).
    fn decode(&self, py: Python<'_>, entry: &Entry) -> Result<(Py<PyAny>, Option<u64>), LoadFail> {
        let signer = self.options.signer.as_ref();
        let (mut reader, layout) = py.detach(|| {
            let mut reader = entry.frame(signer)?;
            let layout = reader.layout()?;
            Ok::<_, Error>((reader, layout))
        })?;
        let header = *reader.header();
        let f = py3(py)?;
        let mut buffers: Vec<Bound<'_, PyAny>> = Vec::with_capacity(layout.buffer_lens.len());
        let mappable = self.options.mmap
            && header.codec == Compression::None
            && !layout.buffer_lens.is_empty();
        match (&entry.source, mappable) {
            (EntrySource::File { file, .. }, true) => {
                // Only a signed entry is read through (to verify it); otherwise the
                // header and length checks stand in for the body checksum.
                use std::os::fd::AsRawFd;
                let kwargs = PyDict::new(py);
                kwargs.set_item("access", f.access_read.bind(py))?;
                let map = f.mmap.bind(py).call((file.as_raw_fd(), 0), Some(&kwargs))?;
                let view = py.get_type::<PyMemoryView>().call1((map,))?;
                for (&offset, &len) in layout.buffer_offsets.iter().zip(&layout.buffer_lens) {
                    let start = offset as isize;
                    let slice = PySlice::new(py, start, start + len as isize, 1);
                    buffers.push(view.get_item(slice)?);
                }
                if header.signed {
                    py.detach(|| reader.finish())?;
                }
            }
            _ => {
                for &len in &layout.buffer_lens {
                    let mut fresh = Fresh::new(py, len)?;
                    let out = fresh.bytes_mut();
                    py.detach(|| reader.read_buffer(out))?;
                    buffers.push(fresh.into_object());
                }
                py.detach(|| reader.finish())?;
            }
        }
        let value = self.loads(py, &layout.stream, buffers)?;
        Ok((value, layout.fresh_until))
    }

    /// Counts one call as a hit or a miss.
    pub fn count(&self, hit: bool) {
        self.tally
            .add(if hit { Counter::Hits } else { Counter::Misses }, 1);
    }

    /// [`StoreEngine::load`], counted as a hit or a miss.
    pub fn load_counted(&self, py: Python<'_>, key: KeyDigest) -> Option<Py<PyAny>> {
        let value = self.load(py, key);
        self.count(value.is_some());
        value
    }

    /// One counted miss got its value from another caller's computation (or store):
    /// a hit, as `functools.lru_cache` counts it.
    pub fn miss_was_shared(&self) {
        if self.tally.take_one(Counter::Misses) {
            self.tally.add(Counter::Hits, 1);
        }
    }

    /// Stores `value` under `key`; on failure the caller still has its value: the
    /// failure is counted and logged (once per kind), and `false` returned.
    pub fn save(&self, value: &Bound<'_, PyAny>, key: KeyDigest) -> bool {
        self.save_releasing(value, key, Lease::Local)
    }

    /// Stores a value given to `cache_set` (stored as given: `cache_if` is not asked).
    pub fn save_given(&self, value: &Bound<'_, PyAny>, key: KeyDigest) -> bool {
        match self.keep(value, false) {
            Some(ttl) => self.store_value(value, key, ttl, Lease::Local),
            None => false,
        }
    }

    /// How a value is kept: `None` to leave it out, else its TTL (`None`: the store's),
    /// spread by the jitter. `check`: a computed result, judged by `cache_if`.
    fn keep(&self, value: &Bound<'_, PyAny>, check: bool) -> Option<Option<Duration>> {
        let ttl = match &self.fresh {
            None => None,
            Some(f) => f.keep(value, check)?,
        };
        Some(crate::jitter::spread(
            ttl.or(self.backing.ttl()),
            self.jitter,
        ))
    }

    /// The spread added to each entry's TTL.
    pub fn jitter(&self) -> Option<Duration> {
        self.jitter
    }

    /// [`StoreEngine::save`] with a TTL of its own (`None`: the store's).
    pub fn save_expiring(
        &self,
        value: &Bound<'_, PyAny>,
        key: KeyDigest,
        ttl: Option<std::time::Duration>,
    ) -> bool {
        self.store_value(value, key, ttl, Lease::Local)
    }

    /// [`StoreEngine::save`], then gives back the lease from [`StoreEngine::claim`]
    /// (in the same round trip where the store can).
    /// A computed result: `cache_if` may leave it out, `ttl=` may give its TTL.
    pub fn save_releasing(&self, value: &Bound<'_, PyAny>, key: KeyDigest, lease: Lease) -> bool {
        match self.keep(value, true) {
            Some(ttl) => self.store_value(value, key, ttl, lease),
            None => {
                self.release(value.py(), lease);
                false
            }
        }
    }

    fn store_value(
        &self,
        value: &Bound<'_, PyAny>,
        key: KeyDigest,
        ttl: Option<std::time::Duration>,
        lease: Lease,
    ) -> bool {
        let py = value.py();
        // Whatever happens before the store, the lease goes back.
        let mut lease = Some(lease);
        let mut give_back = |this: &Self| {
            if let Some(lease) = lease.take() {
                this.release(py, lease);
            }
        };
        let pickled = match self.dumps(value) {
            Ok(p) => p,
            Err(e) => {
                let t = value
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string());
                let how = match &self.options.serializer {
                    Some(s) => format!("serialized with {}", s.name),
                    None => "pickled".to_owned(),
                };
                self.store_failed(
                    py,
                    Failure::Pickle,
                    &format!("a result of type {t} cannot be {how} ({e})"),
                );
                give_back(self);
                return false;
            }
        };
        let stream = pickled.stream.as_bytes();
        let payload = Payload {
            stream,
            buffers: pickled.buffers.iter().map(Held::bytes).collect(),
        };
        if self.in_outage() {
            // The lookup of this call failed just now: one timeout per call is enough.
            self.tally.add(Counter::StoreErrors, 1);
            give_back(self);
            return false;
        }
        let Some(store) = self.store(py) else {
            let why = format!("not stored: {} cannot be used", self.backing.describe());
            self.store_failed(py, Failure::Folder, &why);
            give_back(self);
            return false;
        };
        let lease = lease.take().unwrap_or(Lease::Local);
        let value = Value {
            payload: &payload,
            compression: self.options.compression,
            signer: self.options.signer.as_ref(),
            ttl,
            grace: self.fresh.as_ref().map_or(Grace::None, Freshness::grace),
        };
        let stored = py.detach(|| store.put_and_release(self.tally.ns(), key, &value, lease));
        match stored {
            Ok(written) => {
                self.tally.add(Counter::BytesWritten, written);
                self.succeeded();
                true
            }
            Err(e @ Error::TooLarge { .. }) => {
                self.failed(py, Failure::TooLarge, &e, "not stored");
                false
            }
            Err(e) => {
                self.failed(py, Failure::Write, &e, "could not store a result");
                false
            }
        }
    }

    fn store_failed(&self, py: Python<'_>, kind: Failure, message: &str) {
        self.tally.add(Counter::StoreErrors, 1);
        let first = self.warned.fetch_or(kind as u8, Ordering::Relaxed) & kind as u8 == 0;
        if first {
            warn(py, &format!("twat_cache: {}: {message}", self.tally.ns()));
        }
    }

    /// Removes this cache's entries (not other caches' in the same store) and resets
    /// its counters.
    pub fn clear(&self, py: Python<'_>) -> Result<u64, Error> {
        let n = match self.store(py) {
            Some(store) => py.detach(|| store.clear(self.tally.ns()))?,
            None => 0,
        };
        self.tally.reset();
        Ok(n)
    }

    /// `(entries, bytes)` of this cache; `None` when its server cannot be reached (the
    /// counters of this process are still worth showing).
    pub fn usage_if_reachable(&self, py: Python<'_>) -> Result<Option<(u64, u64)>, Error> {
        match self.usage(py) {
            Ok(usage) => Ok(Some(usage)),
            Err(Error::Remote(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `(entries, bytes)` of this cache.
    pub fn usage(&self, py: Python<'_>) -> Result<(u64, u64), Error> {
        match self.store(py) {
            Some(store) => py.detach(|| store.usage(self.tally.ns())),
            None => Ok((0, 0)),
        }
    }

    /// Removes the entry of `key`.
    pub fn delete(&self, py: Python<'_>, key: KeyDigest) -> Result<bool, Error> {
        match self.store(py) {
            Some(store) => py.detach(|| store.remove(self.tally.ns(), key)),
            None => Ok(false),
        }
    }

    /// Removes every expired entry of the store now (a folder; Redis expires its own);
    /// returns how many.
    pub fn purge_expired(&self, py: Python<'_>) -> Result<u64, Error> {
        match self.store(py) {
            Some(store) => py.detach(|| store.purge_expired()),
            None => Ok(0),
        }
    }

    /// Whether `key` is stored and live (the index only, not the value).
    pub fn contains(&self, py: Python<'_>, key: KeyDigest) -> Result<bool, Error> {
        match self.store(py) {
            // An unreachable server: a call would not find it either.
            Some(store) => match py.detach(|| store.get(self.tally.ns(), key)) {
                Ok(found) => Ok(found.is_some()),
                Err(Error::Remote(_)) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }

    /// Writes pending access records.
    pub fn flush(&self, py: Python<'_>) -> Result<(), Error> {
        match self.store(py) {
            Some(store) => py.detach(|| store.flush()),
            None => Ok(()),
        }
    }
}

impl StoreEngine {
    /// The value's bytes: pickled (large buffers out of band), or by `serializer=`.
    fn dumps<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Pickled<'py>> {
        match &self.options.serializer {
            None => dumps(value),
            Some(s) => Ok(Pickled {
                stream: s
                    .dumps
                    .bind(value.py())
                    .call1((value,))?
                    .cast_into::<PyBytes>()?,
                buffers: Vec::new(),
            }),
        }
    }

    fn loads(
        &self,
        py: Python<'_>,
        stream: &[u8],
        buffers: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match &self.options.serializer {
            None => loads(py, stream, buffers),
            Some(s) => Ok(s
                .loads
                .bind(py)
                .call1((PyBytes::new(py, stream),))?
                .unbind()),
        }
    }
}

/// A value a call is answered with (see [`StoreEngine::serve`]).
pub struct Served {
    pub value: Py<PyAny>,
    /// Stale (within `stale_ttl`): to be refreshed.
    pub stale: bool,
    /// How long it stays fresh (`None`: forever).
    pub left: Option<Duration>,
}

/// How a caller stands after [`StoreEngine::claim`].
pub enum Claimed {
    /// Another process computed the value while this one waited.
    Found(Py<PyAny>),
    /// Compute it (holding this lease, if any, until the value is stored).
    Compute(Lease),
}

/// How long a refresh holds a store's lease where no `lock` lease is set.
const REFRESH_LEASE: Duration = Duration::from_secs(60);

/// Followers poll for the leader's value from this pause up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(50);

impl StoreEngine {
    /// Cross-process single flight, for a caller about to compute `key`: takes the
    /// key's lease, or waits (with the GIL released, bounded back-off, at most
    /// `lock_wait`) for the process holding it to store the value. A store without
    /// leases, a lease that cannot be taken (a dead Redis), or a wait that runs out
    /// all end in `Compute`: nothing is ever lost by waiting.
    pub fn claim(&self, py: Python<'_>, key: KeyDigest) -> PyResult<Claimed> {
        let (Some(lock), Some(store)) = (self.lock, self.store(py)) else {
            return Ok(Claimed::Compute(Lease::Local));
        };
        if self.in_outage() {
            return Ok(Claimed::Compute(Lease::Local));
        }
        let deadline = Instant::now() + lock.wait;
        let mut pause = FIRST_PAUSE;
        loop {
            match py.detach(|| store.lease_and_get(self.tally.ns(), key, lock.lease)) {
                Ok((Lease::Busy, _)) if Instant::now() < deadline => {}
                Ok((Lease::Busy, _)) | Err(_) => return Ok(Claimed::Compute(Lease::Local)),
                // The holder may have stored the value and let go since our lookup.
                Ok((lease, Some(entry))) => {
                    let found = self.value_of(py, store, key, entry);
                    match found.filter(|(_, until)| stale_for(*until).is_none()) {
                        Some((v, _)) => {
                            py.detach(|| store.release(lease));
                            return Ok(Claimed::Found(v));
                        }
                        None => return Ok(Claimed::Compute(lease)),
                    }
                }
                Ok((lease, None)) => return Ok(Claimed::Compute(lease)),
            }
            py.detach(|| std::thread::sleep(pause));
            py.check_signals()?;
            pause = (pause * 2).min(MAX_PAUSE);
            if let Some(v) = self.load(py, key) {
                return Ok(Claimed::Found(v));
            }
        }
    }

    /// Gives back a lease from [`StoreEngine::claim`] (after storing the value, or at
    /// once when the computation raised).
    pub fn release(&self, py: Python<'_>, lease: Lease) {
        if lease == Lease::Local {
            return;
        }
        if let Some(store) = self.store(py) {
            py.detach(|| store.release(lease));
        }
    }
}
