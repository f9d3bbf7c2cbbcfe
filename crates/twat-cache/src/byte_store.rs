//! The seam between the persistent engines and where their bytes live: a folder
//! ([`DiskStore`]) or a Redis / Valkey server ([`crate::RedisStore`], feature `redis`).
//!
//! Both stores keep the same checksummed frame ([`crate::write_frame`]), compressed and
//! signed the same way, under a 128-bit key inside a namespace (one cache's entries).
//! An owner (the Python binding) holds a `Box<dyn ByteStore>` and never needs to know
//! which one it has.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::{Compression, Payload, Signer};
use crate::disk::{DiskStore, Entry};
use crate::freshness::{Grace, Lifetime};
use crate::generations::Generations;
use crate::keyhash::KeyDigest;
use crate::tally::{Counts, Tally};
use crate::Error;

/// A persistent store of framed entries.
///
/// ```
/// use twat_cache::{ByteStore, DiskConfig, DiskStore, Payload, Value};
///
/// let dir = std::env::temp_dir().join(format!("twc-doc-byte-store-{}", std::process::id()));
/// let store: Box<dyn ByteStore> = Box::new(DiskStore::open(&dir, DiskConfig::default())?);
/// let payload = Payload { stream: b"hello", buffers: Vec::new() };
/// store.put("greetings", 7, &Value::new(&payload))?;
/// let entry = store.get("greetings", 7)?.expect("stored");
/// let loaded = twat_cache::read_frame(entry.reader()?, None)?;
/// assert_eq!(loaded.stream, b"hello");
/// assert!(store.remove("greetings", 7)?);
/// # drop(store); std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), twat_cache::Error>(())
/// ```
pub trait ByteStore: Send + Sync {
    /// The entry of `key` in namespace `ns`; `None` when it is missing or expired.
    fn get(&self, ns: &str, key: KeyDigest) -> Result<Option<Entry>, Error>;

    /// [`ByteStore::get`] only when the answer needs no waiting (`None` otherwise), for
    /// a caller holding a lock of its own. A network store always waits.
    fn try_get(&self, ns: &str, key: KeyDigest) -> Option<Result<Option<Entry>, Error>> {
        let _ = (ns, key);
        None
    }

    /// Stores an entry, replacing any older one; returns the bytes written.
    fn put(&self, ns: &str, key: KeyDigest, value: &Value<'_>) -> Result<u64, Error>;

    /// Removes the entry of `key`; whether there was one.
    fn remove(&self, ns: &str, key: KeyDigest) -> Result<bool, Error>;

    /// Removes `entry` if it is still the one stored for `key` (it was found damaged).
    fn discard(&self, ns: &str, key: KeyDigest, entry: &Entry) -> Result<(), Error>;

    /// Removes every entry of one namespace; returns how many went (a store that
    /// removes them in the background reports the ones it knew of).
    fn clear(&self, ns: &str) -> Result<u64, Error>;

    /// `(entries, bytes)` of one namespace.
    fn usage(&self, ns: &str) -> Result<(u64, u64), Error>;

    /// Removes expired entries now, where the store does not do it itself.
    fn purge_expired(&self) -> Result<u64, Error> {
        Ok(0)
    }

    /// Writes what the store buffers (access records).
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Takes the right to compute `key` across processes for `lease`, where the store
    /// can arbitrate that: [`Lease::Held`] (extend it while computing, then
    /// [`ByteStore::release`]), [`Lease::Busy`] (another process computes), or
    /// [`Lease::Local`] (no arbitration; the caller's own single flight is all).
    fn lease(&self, ns: &str, key: KeyDigest, lease: Duration) -> Result<Lease, Error> {
        let _ = (ns, key, lease);
        Ok(Lease::Local)
    }

    /// Gives back a lease taken by [`ByteStore::lease`] (only if it is still ours).
    fn release(&self, lease: Lease) {
        let _ = lease;
    }

    /// [`ByteStore::lease`] and, when the lease is ours, the entry as it is now (the
    /// last holder may have stored it just before letting go). A store may do both in
    /// one round trip.
    fn lease_and_get(
        &self,
        ns: &str,
        key: KeyDigest,
        lease: Duration,
    ) -> Result<(Lease, Option<Entry>), Error> {
        lease_then_get(self, ns, key, lease)
    }

    /// [`ByteStore::put`], then [`ByteStore::release`] of `lease` (after the value is
    /// in place, so that whoever waits for the lease finds it); in one round trip where
    /// the store can. The lease goes even when the value cannot be stored: given back,
    /// or, on a store that cannot be reached, left to expire.
    fn put_and_release(
        &self,
        ns: &str,
        key: KeyDigest,
        value: &Value<'_>,
        lease: Lease,
    ) -> Result<u64, Error> {
        put_then_release(self, ns, key, value, lease)
    }

    /// The health of the store's connection, for a store that has one.
    fn health(&self) -> Option<Health> {
        None
    }

    /// The generation table that tells copies of entries kept elsewhere (a local tier)
    /// whether they are still current ([`Generations`]); `None` for a store that has
    /// none. A store may start what keeps it current (a listener) on the first call.
    fn generations(&self, ns: &str) -> Option<Arc<Generations>> {
        let _ = ns;
        None
    }

    /// Folds `tally` (one cache's counters in this process) into the store's totals
    /// from now on, every few seconds and at exit (see [`crate::Tally`]).
    fn track(&self, tally: &Arc<Tally>) {
        let _ = tally;
    }

    /// The totals of cache `ns` over every process that folded its counts into the
    /// store; `None` where the store keeps none, or before the first fold.
    fn shared_counts(&self, ns: &str) -> Result<Option<Counts>, Error> {
        let _ = ns;
        Ok(None)
    }
}

/// [`ByteStore::lease_and_get`] in two steps, for stores that cannot do better.
pub(crate) fn lease_then_get<S: ByteStore + ?Sized>(
    store: &S,
    ns: &str,
    key: KeyDigest,
    lease: Duration,
) -> Result<(Lease, Option<Entry>), Error> {
    let taken = store.lease(ns, key, lease)?;
    let entry = match taken {
        Lease::Held { .. } => store.get(ns, key)?,
        _ => None,
    };
    Ok((taken, entry))
}

/// [`ByteStore::put_and_release`] in two steps, for stores that cannot do better.
pub(crate) fn put_then_release<S: ByteStore + ?Sized>(
    store: &S,
    ns: &str,
    key: KeyDigest,
    value: &Value<'_>,
    lease: Lease,
) -> Result<u64, Error> {
    let stored = store.put(ns, key, value);
    store.release(lease);
    stored
}

/// A value to store: its payload, how it is framed, and how long it lives.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    /// The bytes (a stream and its out-of-band buffers).
    pub payload: &'a Payload<'a>,
    /// How the frame is compressed.
    pub compression: Compression,
    /// Signs the frame (HMAC-SHA256) when given.
    pub signer: Option<&'a Signer>,
    /// How long the entry is fresh; `None`: the store's own TTL.
    pub ttl: Option<Duration>,
    /// How long the store keeps it, stale, after that ([`Grace`]).
    pub grace: Grace,
}

impl<'a> Value<'a> {
    /// `payload`, raw, unsigned, with the store's TTL.
    pub fn new(payload: &'a Payload<'a>) -> Self {
        Self {
            payload,
            compression: Compression::None,
            signer: None,
            ttl: None,
            grace: Grace::None,
        }
    }

    /// How a store whose own TTL is `store_ttl` keeps this value.
    pub fn lifetime(&self, store_ttl: Option<Duration>) -> Lifetime {
        Lifetime::of(self.ttl.or(store_ttl), self.grace)
    }

    /// The checksummed frame of the value, in memory.
    pub(crate) fn frame(&self, life: &Lifetime) -> Result<Vec<u8>, Error> {
        let mut frame = std::io::Cursor::new(Vec::with_capacity(self.payload.len() + 128));
        crate::codec::write_frame_until(
            &mut frame,
            self.payload,
            self.compression,
            self.signer,
            life.fresh_until,
        )?;
        Ok(frame.into_inner())
    }
}

/// The outcome of [`ByteStore::lease`].
#[derive(Debug, PartialEq, Eq)]
pub enum Lease {
    /// No cross-process arbitration in this store.
    Local,
    /// Another process holds the lease: wait for its value.
    Busy,
    /// Ours: `name` is the lease's key in the store, `token` proves it is ours.
    Held {
        /// The lease's key.
        name: String,
        /// A random token only this holder knows.
        token: u128,
    },
}

/// A networked store's connection health (`cache_stats()` reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// `"closed"` (calls go to the server), `"open"` (calls skip it after repeated
    /// failures) or `"half-open"` (one probe is on its way).
    pub breaker: &'static str,
    /// Failed commands since the store was made.
    pub errors: u64,
    /// Whether the last command failed: an outage is going on.
    pub failing: bool,
}

impl ByteStore for DiskStore {
    fn get(&self, _ns: &str, key: KeyDigest) -> Result<Option<Entry>, Error> {
        DiskStore::get(self, key)
    }

    fn try_get(&self, _ns: &str, key: KeyDigest) -> Option<Result<Option<Entry>, Error>> {
        DiskStore::try_get(self, key)
    }

    fn put(&self, ns: &str, key: KeyDigest, value: &Value<'_>) -> Result<u64, Error> {
        self.put_value(ns, key, value)
    }

    fn remove(&self, _ns: &str, key: KeyDigest) -> Result<bool, Error> {
        DiskStore::remove(self, key)
    }

    fn discard(&self, _ns: &str, key: KeyDigest, entry: &Entry) -> Result<(), Error> {
        DiskStore::discard(self, key, entry)
    }

    fn clear(&self, ns: &str) -> Result<u64, Error> {
        DiskStore::clear(self, Some(ns))
    }

    fn usage(&self, ns: &str) -> Result<(u64, u64), Error> {
        DiskStore::usage(self, Some(ns))
    }

    fn purge_expired(&self) -> Result<u64, Error> {
        DiskStore::purge_expired(self)
    }

    fn flush(&self) -> Result<(), Error> {
        DiskStore::flush(self)
    }

    fn lease(&self, _ns: &str, key: KeyDigest, lease: Duration) -> Result<Lease, Error> {
        DiskStore::lease(self, key, lease)
    }

    fn generations(&self, _ns: &str) -> Option<Arc<Generations>> {
        Some(Arc::clone(DiskStore::generations(self)))
    }

    fn release(&self, lease: Lease) {
        // A lease that cannot be given back (a busy index) expires on its own.
        let _ = DiskStore::release(self, lease);
    }

    fn track(&self, tally: &Arc<Tally>) {
        DiskStore::track(self, tally);
    }

    fn shared_counts(&self, ns: &str) -> Result<Option<Counts>, Error> {
        DiskStore::shared_counts(self, ns)
    }
}

/// A token no other holder guesses: two std hashers with random keys (seeded by the
/// operating system) over the process id and a counter.
pub(crate) fn random_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(n);
        h.finish()
    };
    (u128::from(half()) << 64) | u128::from(half())
}
