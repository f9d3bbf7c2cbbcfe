//! [`MemoryCache`]: the thread-safe in-memory engine for Rust programs.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use std::time::Duration;

use hashbrown::DefaultHashBuilder;
use parking_lot::Mutex;

use std::future::Future;
use std::sync::Arc;

use crate::async_flight::{AsyncFlight, Leading};
use crate::lock::Lock;
use crate::single_flight::{infallible, Claim, Flight, FlightHome, Flights, Lead, LeaderGuard};
use crate::{Error, Grace, Policy, Stats, Store};

/// The default size bound, the same as the Python decorators' `maxsize=128`.
pub const DEFAULT_MAX_SIZE: usize = 128;

/// A thread-safe, bounded, in-memory cache with an eviction [`Policy`] and an optional TTL.
///
/// Values are returned by clone (wrap large values in an [`Arc`](std::sync::Arc)). Locks never poison: a
/// panic in another thread leaves the cache usable. Evicted values are dropped after the
/// lock is released.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use twat_cache::{MemoryCache, Policy};
///
/// let cache: MemoryCache<String, u64> = MemoryCache::builder()
///     .max_size(128)
///     .ttl(Duration::from_secs(60))
///     .policy(Policy::Lru)
///     .build()?;
/// cache.insert("answer".to_string(), 42);
/// assert_eq!(cache.get("answer"), Some(42));
/// assert_eq!(cache.get_or_insert_with("other".to_string(), || 7), 7);
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), twat_cache::Error>(())
/// ```
pub struct MemoryCache<K, V> {
    /// The entries and the computations in progress, under one lock: a miss claims its
    /// flight in the lookup's critical section, and the leader's insert retires it in
    /// its own (two lock round trips a miss, where a lock of their own cost four). Its
    /// own lock, not a `Mutex`: a hit is mostly lock traffic (`lock`).
    state: Lock<State<K, V>>,
    /// The computations of [`MemoryCache::get_or_insert_async`] in progress.
    async_flights: AsyncFlights<K, V>,
    hasher: DefaultHashBuilder,
}

type AsyncFlights<K, V> = Mutex<hashbrown::HashMap<K, Arc<AsyncFlight<V>>>>;

/// What [`MemoryCache`]'s lock guards.
struct State<K, V> {
    store: Store<K, V>,
    /// The [`MemoryCache::get_or_insert_if`] computations in progress.
    flights: Flights<K, V>,
}

impl<K, V> FlightHome<K, V> for Lock<State<K, V>> {
    fn take(&self, lead: &Lead) -> Option<(K, Option<Arc<Flight<V>>>)> {
        self.lock().flights.remove(lead)
    }
}

impl<K: Hash + Eq, V: Clone> MemoryCache<K, V> {
    /// Starts a [`MemoryCacheBuilder`] with the defaults: 128 entries, no TTL, LRU.
    pub fn builder() -> MemoryCacheBuilder<K, V> {
        MemoryCacheBuilder {
            max_size: Some(DEFAULT_MAX_SIZE),
            ttl: None,
            grace: Grace::None,
            policy: Policy::Lru,
            _types: PhantomData,
        }
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// A clone of the live value for `key`, counting a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(self.hash(key), key)
    }

    /// [`MemoryCache::get`] for a key whose hash is known.
    #[inline]
    fn get_hashed<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.with_store(|store| infallible(store.get_by(hash, |k| Ok(k.borrow() == key))).cloned())
    }

    /// The value for `key` even when it has expired, within the grace the cache was
    /// built with ([`MemoryCacheBuilder::stale`]): `(value, None)` when fresh,
    /// `(value, Some(age))` when it has been stale for `age` (counted as a stale hit).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twat_cache::{Grace, MemoryCache};
    ///
    /// let cache = MemoryCache::builder()
    ///     .ttl(Duration::from_millis(10))
    ///     .stale(Grace::For(Duration::from_secs(60)))
    ///     .build()?;
    /// cache.insert("rates", 1.07);
    /// std::thread::sleep(Duration::from_millis(20));
    /// assert_eq!(cache.get(&"rates"), None); // expired...
    /// let (rate, stale_for) = cache.get_stale(&"rates").expect("...and still kept");
    /// assert_eq!(rate, 1.07);
    /// assert!(stale_for.is_some()); // serve it, and refresh it
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn get_stale<Q>(&self, key: &Q) -> Option<(V, Option<Duration>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.with_store(|store| {
            let found = infallible(store.get_stale_by(hash, |k| Ok(k.borrow() == key)))
                .map(|(v, age)| (v.clone(), age));
            if let Some((_, Some(_))) = found {
                store.count_stale_hit();
            }
            found
        })
    }

    /// Whether a live entry exists for `key` (not counted as a hit or a miss).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let state = self.state.lock();
        infallible(state.store.peek_by(hash, |k| Ok(k.borrow() == key))).is_some()
    }

    /// Stores `value` under `key`, evicting by policy if the cache is full.
    pub fn insert(&self, key: K, value: V) {
        self.insert_hashed(self.hash(&key), key, value);
    }

    /// [`MemoryCache::insert`] for a key whose hash is known.
    fn insert_hashed(&self, hash: u64, key: K, value: V) {
        self.with_store(|store| {
            infallible(store.insert_by(hash, key, value, |old, new| Ok(old == new)))
        });
    }

    /// Stores `value` under `key` with a TTL of its own (`None`: the cache's default).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twat_cache::MemoryCache;
    ///
    /// let cache: MemoryCache<&str, u32> = MemoryCache::builder().max_size(8).build().unwrap();
    /// cache.insert_with_ttl("token", 7, Some(Duration::from_millis(20)));
    /// assert_eq!(cache.get("token"), Some(7));
    /// std::thread::sleep(Duration::from_millis(30));
    /// assert_eq!(cache.get("token"), None);
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Option<Duration>) {
        let hash = self.hash(&key);
        self.with_store(|store| {
            infallible(store.insert_expiring_by(hash, key, value, ttl, |old, new| Ok(old == new)))
        });
    }

    /// Removes `key`; `true` if a live entry was there.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.with_store(|store| infallible(store.remove_by(hash, |k| Ok(k.borrow() == key))))
    }

    /// The cached value for `key`, or the value of `init` stored under it. Concurrent
    /// callers for the same missing key run `init` once and all receive its value; a
    /// recursive call for the same key from inside `init` runs `init` again instead of
    /// deadlocking.
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V
    where
        K: Clone,
    {
        self.get_or_insert_if(key, init, |_| true)
    }

    /// [`MemoryCache::get_or_insert_with`] for a computation whose results are only
    /// sometimes worth keeping (an `Ok`, a `Some`): the value of `init` is stored when
    /// `keep` says so. Callers waiting for a computation whose value was not kept
    /// compute again, one at a time.
    ///
    /// ```
    /// use twat_cache::MemoryCache;
    ///
    /// let cache: MemoryCache<u32, Result<u32, String>> = MemoryCache::builder().build()?;
    /// let failed = cache.get_or_insert_if(1, || Err("down".to_string()), Result::is_ok);
    /// assert!(failed.is_err() && cache.get(&1).is_none());
    /// assert_eq!(cache.get_or_insert_if(1, || Ok(7), Result::is_ok), Ok(7));
    /// assert_eq!(cache.get(&1), Some(Ok(7)));
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn get_or_insert_if(&self, key: K, init: impl FnOnce() -> V, keep: impl Fn(&V) -> bool) -> V
    where
        K: Clone,
    {
        let hash = self.hash(&key);
        let mut init = Some(init);
        loop {
            // The lookup and, on a miss, the claim, in one critical section: no leader
            // can store the value between the two.
            let claim = match self.with_state(|state| {
                match infallible(state.store.get_by(hash, |k| Ok(k == &key))) {
                    Some(v) => Ok(v.clone()),
                    None => Err(infallible(state.flights.claim_by(
                        hash,
                        || key.clone(),
                        |k| Ok(k == &key),
                    ))),
                }
            }) {
                Ok(hit) => return hit,
                Err(claim) => claim,
            };
            match claim {
                Claim::Follower(flight) => {
                    if flight.wait() {
                        if let Some(v) = flight.with_result(V::clone) {
                            return v;
                        }
                    }
                    // The leader gave up, or kept nothing: try again (possibly as the
                    // new leader).
                }
                Claim::Reentrant => {
                    let value = (init.take().expect("computed once"))();
                    if keep(&value) {
                        self.insert_hashed(hash, key, value.clone());
                    }
                    return value;
                }
                Claim::Leader(lead) => {
                    // Dropped unfinished (`init` panicked, or the value is not kept), it
                    // sends the followers to compute.
                    let guard = LeaderGuard::new(&self.state, lead);
                    let value = (init.take().expect("computed once"))();
                    if keep(&value) {
                        let lead = guard.disarm();
                        let stored = value.clone();
                        let finished = self.with_state(|state| {
                            infallible(
                                state
                                    .store
                                    .insert_by(hash, key, stored, |old, new| Ok(old == new)),
                            );
                            state.flights.remove(&lead)
                        });
                        // Its key is dropped here, after the lock.
                        if let Some((_key, Some(flight))) = finished {
                            flight.complete(value.clone());
                        }
                    }
                    return value;
                }
            }
        }
    }

    /// [`MemoryCache::get_or_insert_if`] for an `async` computation, on any runtime:
    /// concurrent callers of one missing key await one computation and get clones of its
    /// value; other keys never wait. A caller dropped while it computes hands the work
    /// to a waiting caller (which computes anew); a computation that asks for its own key
    /// computes instead of waiting for itself.
    ///
    /// ```
    /// use twat_cache::MemoryCache;
    ///
    /// let cache: MemoryCache<u32, String> = MemoryCache::builder().build()?;
    /// let value = async {
    ///     cache
    ///         .get_or_insert_async(1, || async { "one".to_string() }, |_| true)
    ///         .await
    /// };
    /// # let value = twat_cache::block_on_for_docs(value);
    /// assert_eq!(value, "one");
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub async fn get_or_insert_async<Fut>(
        &self,
        key: K,
        init: impl FnOnce() -> Fut,
        keep: impl Fn(&V) -> bool,
    ) -> V
    where
        K: Clone,
        Fut: Future<Output = V>,
    {
        enum Role<V> {
            Lead(Arc<AsyncFlight<V>>),
            Wait(Arc<AsyncFlight<V>>),
            Recurse,
        }
        let mut init = Some(init);
        loop {
            if let Some(v) = self.get(&key) {
                return v;
            }
            let role = {
                let mut flights = self.async_flights.lock();
                match flights.get(&key) {
                    Some(f) if f.led_here() => Role::Recurse,
                    Some(f) => Role::Wait(Arc::clone(f)),
                    None => {
                        let f = AsyncFlight::new();
                        flights.insert(key.clone(), Arc::clone(&f));
                        Role::Lead(f)
                    }
                }
            };
            match role {
                Role::Wait(flight) => {
                    if let Some(v) = flight.wait().await {
                        return v;
                    }
                    // The leader went away, or kept nothing: try again.
                }
                Role::Recurse => {
                    let value = (init.take().expect("computed once"))().await;
                    if keep(&value) {
                        self.insert(key, value.clone());
                    }
                    return value;
                }
                Role::Lead(flight) => {
                    let guard = AsyncLead {
                        flights: &self.async_flights,
                        key: Some(key.clone()),
                        flight: Arc::clone(&flight),
                    };
                    let hash = self.hash(&key);
                    let stored =
                        infallible(self.state.lock().store.peek_by(hash, |k| Ok(k == &key)))
                            .cloned();
                    if let Some(v) = stored {
                        guard.finish(v.clone());
                        return v;
                    }
                    let inner = Box::pin((init.take().expect("computed once"))());
                    let value = Leading {
                        serial: flight.serial,
                        inner,
                    }
                    .await;
                    if keep(&value) {
                        self.insert(key, value.clone());
                        guard.finish(value.clone());
                    }
                    // Not kept, or this future dropped before here: the guard's drop
                    // wakes the waiters to compute.
                    return value;
                }
            }
        }
    }
}

impl<K, V> MemoryCache<K, V> {
    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.state.lock().store.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.state.lock().store.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.with_store(Store::clear);
    }

    /// Reclaims every expired entry now (inserts already do this a little at a time);
    /// returns how many were reclaimed.
    pub fn purge_expired(&self) -> usize {
        self.with_store(Store::purge_expired)
    }

    /// Runs `f` on the store under the lock; the entries it removed are dropped after the
    /// lock is released (a value's `Drop` may use this cache).
    fn with_store<R>(&self, f: impl FnOnce(&mut Store<K, V>) -> R) -> R {
        self.with_state(|state| f(&mut state.store))
    }

    /// [`MemoryCache::with_store`] with the flights too.
    #[inline]
    fn with_state<R>(&self, f: impl FnOnce(&mut State<K, V>) -> R) -> R {
        let mut state = self.state.lock();
        let result = f(&mut state);
        if !state.store.has_removed() {
            // Nothing left (most calls), or nothing worth parking (types without drop
            // glue, see `Removed`): no hand-back to do.
            return result;
        }
        let removed = state.store.take_removed();
        drop(state);
        drop(removed);
        result
    }

    /// The cache's counters.
    pub fn stats(&self) -> Stats {
        self.state.lock().store.stats()
    }
}

impl<K, V> std::fmt::Debug for MemoryCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("store", &self.state.lock().store)
            .finish()
    }
}

/// An async leader's hold on its flight: finished with the value, or dropped (its caller
/// was cancelled, or the value is not kept), which wakes the waiters to compute.
struct AsyncLead<'a, K: Hash + Eq, V: Clone> {
    flights: &'a AsyncFlights<K, V>,
    /// `None` once finished.
    key: Option<K>,
    flight: Arc<AsyncFlight<V>>,
}

impl<K: Hash + Eq, V: Clone> AsyncLead<'_, K, V> {
    fn take_out(&mut self) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        let mut flights = self.flights.lock();
        if flights
            .get(&key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&key);
        }
        true
    }

    fn finish(mut self, value: V) {
        if self.take_out() {
            self.flight.complete(value);
        }
    }
}

impl<K: Hash + Eq, V: Clone> Drop for AsyncLead<'_, K, V> {
    fn drop(&mut self) {
        if self.take_out() {
            self.flight.abandon();
        }
    }
}

/// Builds a [`MemoryCache`]; see [`MemoryCache::builder`].
#[derive(Debug)]
pub struct MemoryCacheBuilder<K, V> {
    max_size: Option<usize>,
    ttl: Option<Duration>,
    grace: Grace,
    policy: Policy,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Hash + Eq, V: Clone> MemoryCacheBuilder<K, V> {
    /// At most `n` entries (0: the cache stores nothing).
    pub fn max_size(mut self, n: usize) -> Self {
        self.max_size = Some(n);
        self
    }

    /// No size bound: entries leave only by TTL, removal or `clear`.
    pub fn unbounded(mut self) -> Self {
        self.max_size = None;
        self
    }

    /// Entries expire `ttl` after they were last written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Expired entries are kept `grace` longer, for [`MemoryCache::get_stale`].
    pub fn stale(mut self, grace: Grace) -> Self {
        self.grace = grace;
        self
    }

    /// The eviction policy (default LRU).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The cache, or [`Error::InvalidConfig`] for a zero TTL.
    pub fn build(self) -> Result<MemoryCache<K, V>, Error> {
        if self.ttl == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig {
                param: "ttl",
                value: "0s".into(),
                accepted: "a positive duration, or none for no expiry",
            });
        }
        let mut store = Store::new(self.max_size, self.ttl, self.policy);
        store.set_grace(self.grace);
        // Its hasher (foldhash) mixes every bit.
        store.trust_hashes();
        Ok(MemoryCache {
            state: Lock::new(State {
                store,
                flights: Flights::default(),
            }),
            async_flights: Mutex::new(hashbrown::HashMap::new()),
            hasher: DefaultHashBuilder::default(),
        })
    }
}
