//! [`DiskCache`]: a typed persistent cache for Rust programs (feature `serde`), over the
//! same folder store as the Python `bcache` ([`DiskStore`]): many processes may share
//! one folder, and Python and Rust caches may share one folder in namespaces of their
//! own.
//!
//! - **Values** are stored in [postcard](https://docs.rs/postcard)'s encoding (its 1.x
//!   wire format is documented and stable), inside the store's checksummed frame.
//! - **Keys** are the 128-bit BLAKE3 digest ([`KeyHasher`]) of the namespace, the
//!   version, and the postcard encoding of the key value: stable across runs, builds
//!   and machines for a key type whose serialization is deterministic (use `BTreeMap`,
//!   not `HashMap`, inside keys).
//! - **Changing `version`** starts afresh: entries of other versions are never read
//!   (they age out by the folder's limit and TTL).
//! - **A failure inside the cache never breaks a call**: [`DiskCache::get_or_insert_with`]
//!   computes and returns the value when the folder cannot be read or written, and
//!   counts the failure ([`DiskCache::tally`], `store_errors`).

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::byte_store::{ByteStore, Value};
use crate::codec::Payload;
use crate::disk::{DiskConfig, DiskStore};
use crate::keyhash::{KeyDigest, KeyHasher};
use crate::reader::read_frame;
use crate::single_flight::{infallible, Claim, Flights, LeaderGuard};
use crate::tally::{About, Counter, Tally};
use crate::{Error, Policy};

/// A typed persistent cache in a folder.
///
/// ```
/// use std::time::Duration;
/// use twat_cache::{DiskCache, DiskCacheBuilder};
///
/// let dir = std::env::temp_dir().join(format!("twc-doc-disk-cache-{}", std::process::id()));
/// let cache: DiskCache<(String, u32), Vec<u64>> = DiskCacheBuilder::new(&dir, "docs.powers")
///     .ttl(Duration::from_secs(3600))
///     .version("2")
///     .open()?;
/// let key = ("base".to_string(), 3);
/// let powers = cache.get_or_insert_with(&key, || (0..4).map(|i| 3u64.pow(i)).collect());
/// assert_eq!(powers, [1, 3, 9, 27]);
/// assert_eq!(cache.get(&key)?, Some(vec![1, 3, 9, 27])); // read back from the folder
/// assert_eq!(cache.tally().counts()[twat_cache::Counter::Hits], 1);
/// # drop(cache); std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), twat_cache::Error>(())
/// ```
pub struct DiskCache<K, V> {
    store: DiskStore,
    ns: String,
    version: String,
    tally: Arc<Tally>,
    /// This process's computations in progress, by key: concurrent misses of one key
    /// compute it once (other processes may compute it too; the last write stays).
    flights: Mutex<Flights<KeyDigest, ()>>,
    /// Flights finished so far: a new leader looks in the folder again only when one
    /// finished since its own miss (a miss then costs one read, not two).
    finished: AtomicU64,
    _types: PhantomData<fn(&K) -> V>,
}

/// Builds a [`DiskCache`]: `DiskCacheBuilder::new(dir, name)`, options, then `open()`.
#[derive(Debug, Clone)]
pub struct DiskCacheBuilder<'a> {
    dir: &'a Path,
    ns: String,
    version: String,
    config: DiskConfig,
}

impl<'a> DiskCacheBuilder<'a> {
    /// A builder for the cache named `ns` in folder `dir` (TTL none, 1 GiB, LRU, version
    /// empty).
    pub fn new(dir: &'a Path, ns: &str) -> Self {
        DiskCacheBuilder {
            dir,
            ns: ns.to_owned(),
            version: String::new(),
            config: DiskConfig::default(),
        }
    }

    /// A builder for the cache named `ns` in `folder` under the cache directory:
    /// `$TWAT_CACHE_DIR`, else `$XDG_CACHE_HOME/twat_cache` or `~/.cache/twat_cache`, as
    /// the Python package places its folders (an absolute `folder` is used as given).
    pub fn in_cache_dir(folder: &str, ns: &str) -> DiskCacheBuilder<'static> {
        let dir: &'static Path = Box::leak(cache_dir(folder).into_boxed_path());
        DiskCacheBuilder::new(dir, ns)
    }

    /// How long an entry lives (wall clock, the same for every process).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// The folder's byte limit (default 1 GiB), kept by evicting by `policy`.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.config.max_bytes = max_bytes;
        self
    }

    /// `Policy::Lru` (the default), `Lfu` or `Fifo`.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// The version of the computation: part of every key, so a new version starts
    /// afresh (`#[bcache]` passes a hash of the function's tokens).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Opens (creating if needed) the folder.
    pub fn open<K, V>(self) -> Result<DiskCache<K, V>, Error> {
        let store = DiskStore::open(self.dir, self.config.clone())?;
        let about = About {
            engine: Some("rust DiskCache".into()),
            policy: Some(self.config.policy.name().into()),
            ttl: self.config.ttl.map(|t| t.as_secs_f64()),
            max_bytes: Some(self.config.max_bytes),
            version: Some(self.version.clone()),
        };
        let tally = Tally::describing(&self.ns, about);
        store.track(&tally);
        Ok(DiskCache {
            store,
            ns: self.ns,
            version: self.version,
            tally,
            flights: Mutex::new(Flights::default()),
            finished: AtomicU64::new(0),
            _types: PhantomData,
        })
    }
}

impl<K, V> DiskCache<K, V> {
    /// The cache named `ns` in folder `dir`, with the defaults of [`DiskCacheBuilder`].
    pub fn open(dir: &Path, ns: &str) -> Result<Self, Error> {
        DiskCacheBuilder::new(dir, ns).open()
    }

    /// This process's counters of the cache (folded into the folder's totals that
    /// `twat-cache stats` shows).
    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }

    /// The cache's namespace in the folder.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Removes every entry of this cache (not other caches' in the folder).
    pub fn clear(&self) -> Result<u64, Error> {
        self.store.clear(Some(&self.ns))
    }
}

impl<K: Serialize, V: Serialize + DeserializeOwned> DiskCache<K, V> {
    /// The 128-bit key of `key` in this cache.
    pub fn key_of(&self, key: &K) -> Result<KeyDigest, Error> {
        let encoded = postcard::to_stdvec(key).map_err(|e| Error::InvalidConfig {
            param: "key",
            value: format!("a key that cannot be encoded ({e})"),
            accepted: "a key type that serde serializes",
        })?;
        let mut h = KeyHasher::new(true);
        h.name(&self.ns);
        h.str(&self.version);
        h.bytes(&encoded);
        Ok(h.finish())
    }

    /// The value stored for `key`; `None` when missing or expired. A damaged entry is
    /// removed and is a miss.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let found = self.load(self.key_of(key)?)?;
        let counter = if found.is_some() {
            Counter::Hits
        } else {
            Counter::Misses
        };
        self.tally.add(counter, 1);
        Ok(found)
    }

    /// The value stored under `digest`, counted in bytes read but neither a hit nor a miss.
    fn load(&self, digest: KeyDigest) -> Result<Option<V>, Error> {
        let Some(entry) = self.store.get(digest)? else {
            return Ok(None);
        };
        self.tally.add(Counter::BytesRead, entry.len);
        let decode = |stream: &[u8]| {
            postcard::from_bytes::<V>(stream)
                .map_err(|e| Error::Corrupt(format!("the value cannot be decoded: {e}")))
        };
        // Most values are small and inline in the index row: decoded where they are (a
        // hit in the Rust bench: 4.5-5.0 -> 3.6 us, against a reader and a copy).
        let decoded = match entry.small() {
            Ok(Some(small)) => decode(small.stream),
            Ok(None) => entry
                .reader()
                .and_then(|r| read_frame(r, None))
                .and_then(|loaded| decode(&loaded.stream)),
            Err(e) => Err(e),
        };
        match decoded {
            Ok(value) => Ok(Some(value)),
            Err(Error::Corrupt(_)) => {
                let _ = self.store.discard(digest, &entry);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// [`DiskCache::load`] for a call that must not fail: a failure is a miss, counted
    /// in `store_errors`.
    fn load_or_miss(&self, digest: KeyDigest) -> Option<V> {
        self.load(digest).unwrap_or_else(|_| {
            self.tally.add(Counter::StoreErrors, 1);
            None
        })
    }

    /// Stores `value` for `key`, replacing any older one.
    pub fn insert(&self, key: &K, value: &V) -> Result<(), Error> {
        self.insert_at(self.key_of(key)?, value)
    }

    /// [`DiskCache::insert`] under a key already hashed.
    fn insert_at(&self, digest: KeyDigest, value: &V) -> Result<(), Error> {
        let bytes = postcard::to_stdvec(value).map_err(|e| Error::InvalidConfig {
            param: "value",
            value: format!("a value that cannot be encoded ({e})"),
            accepted: "a value type that serde serializes",
        })?;
        let payload = Payload {
            stream: &bytes,
            buffers: Vec::new(),
        };
        let written = ByteStore::put(&self.store, &self.ns, digest, &Value::new(&payload))?;
        self.tally.add(Counter::BytesWritten, written);
        Ok(())
    }

    /// Removes the entry of `key`; whether there was one.
    pub fn remove(&self, key: &K) -> Result<bool, Error> {
        self.store.remove(self.key_of(key)?)
    }

    /// The stored value of `key`, or `init`'s value, stored. Threads of this process
    /// that miss one key at once compute it once: the others wait and read the stored
    /// value (other processes sharing the folder may compute it too). A failure of the
    /// folder never fails the call: the value is computed, returned and (if it can be)
    /// stored; the failure is counted in `store_errors`.
    pub fn get_or_insert_with(&self, key: &K, init: impl FnOnce() -> V) -> V {
        self.get_or_insert_if(key, init, |v: &V| Some(v), |v| v)
    }

    /// [`DiskCache::get_or_insert_with`] for a computation whose result `R` holds the
    /// value to keep only sometimes (`Ok(v)`, `Some(v)`): `kept` finds it, `from_stored`
    /// makes a result of a stored value.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("twc-doc-disk-if-{}", std::process::id()));
    /// let cache: twat_cache::DiskCache<u32, u32> = twat_cache::DiskCache::open(&dir, "docs.parse")?;
    /// let parse = |s: &str| s.parse::<u32>().map_err(|e| e.to_string());
    /// let failed = cache.get_or_insert_if(&1, || parse("x"), |r| r.as_ref().ok(), Ok);
    /// assert!(failed.is_err() && cache.get(&1)?.is_none()); // an Err is not kept
    /// assert_eq!(cache.get_or_insert_if(&1, || parse("7"), |r| r.as_ref().ok(), Ok), Ok(7));
    /// assert_eq!(cache.get(&1)?, Some(7));
    /// # drop(cache); std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn get_or_insert_if<R, I: FnOnce() -> R>(
        &self,
        key: &K,
        init: I,
        kept: impl FnOnce(&R) -> Option<&V>,
        from_stored: impl FnOnce(V) -> R,
    ) -> R {
        let Ok(digest) = self.key_of(key) else {
            self.tally.add(Counter::StoreErrors, 1);
            return init();
        };
        let compute = |init: I| {
            self.tally.add(Counter::Misses, 1);
            let result = init();
            if let Some(value) = kept(&result) {
                if self.insert_at(digest, value).is_err() {
                    self.tally.add(Counter::StoreErrors, 1);
                }
            }
            result
        };
        loop {
            let seen = self.finished.load(Ordering::Acquire);
            if let Some(v) = self.load_or_miss(digest) {
                self.tally.add(Counter::Hits, 1);
                return from_stored(v);
            }
            let claim = infallible(self.flights.lock().claim_by(
                digest as u64,
                || digest,
                |d| Ok(*d == digest),
            ));
            match claim {
                Claim::Follower(flight) => {
                    // The value is in the folder now, or the leader kept none (an
                    // `Err`, a panic): look again, and compute if it is still missing.
                    flight.wait();
                }
                // `init` calls this function for its own key: waiting would deadlock.
                Claim::Reentrant => return compute(init),
                Claim::Leader(lead) => {
                    let guard = LeaderGuard::new(&self.flights, lead);
                    // A leader that finished between our miss and our claim may have
                    // stored it: look again then, and only then.
                    if self.finished.load(Ordering::Acquire) != seen {
                        if let Some(v) = self.load_or_miss(digest) {
                            self.tally.add(Counter::Hits, 1);
                            self.finish(guard);
                            return from_stored(v);
                        }
                    }
                    let result = compute(init);
                    self.finish(guard);
                    return result;
                }
            }
        }
    }

    fn finish(&self, guard: LeaderGuard<'_, KeyDigest, ()>) {
        // Counted before the followers wake, so that a leader claiming after them sees it.
        self.finished.fetch_add(1, Ordering::Release);
        guard.finish(());
    }
}

/// Where `folder` is: under `$TWAT_CACHE_DIR`, else the platform's cache directory
/// (`$XDG_CACHE_HOME` or `~/.cache`, `~/Library/Caches` on macOS) and `twat_cache`; an
/// absolute `folder` as given.
pub fn cache_dir(folder: &str) -> std::path::PathBuf {
    let folder = Path::new(folder);
    if folder.is_absolute() {
        return folder.to_path_buf();
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match env("TWAT_CACHE_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let home = || std::path::PathBuf::from(env("HOME").unwrap_or_else(|| ".".into()));
            let platform = if cfg!(target_os = "macos") {
                home().join("Library").join("Caches")
            } else {
                env("XDG_CACHE_HOME").map_or_else(|| home().join(".cache"), Into::into)
            };
            platform.join("twat_cache")
        }
    };
    base.join(folder)
}

impl<K, V> std::fmt::Debug for DiskCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.store.dir())
            .field("ns", &self.ns)
            .field("version", &self.version)
            .finish()
    }
}
