//! [`Store`]: the single-threaded heart of the memory engine.
//!
//! A slab of slots indexed by `u32` ids, a hash table from key hash to slot id, an
//! eviction policy over the ids, and (with a TTL) a write-order chain whose back is always
//! the next entry to expire. `Store` takes `&mut self` and leaves locking to its owner:
//! [`MemoryCache`](crate::MemoryCache) wraps it in a mutex for Rust users, and the Python
//! binding wraps it in its own mutex so that it can release the GIL while waiting.
//!
//! Lookups take the key's hash and a *fallible* equality closure, so keys whose equality
//! can fail (a Python `__eq__` that raises) propagate the error instead of panicking.
//!
//! Entries that leave the store (evicted, expired, replaced, removed, cleared) are not
//! dropped inside it: they are parked and handed back by [`Store::take_removed`], so the
//! owner can drop them after releasing its lock (a Python `__del__` must never run under
//! an engine lock).

use std::time::{Duration, Instant};

use hashbrown::hash_table::{self, HashTable};

use crate::eviction::Eviction;
use crate::freshness::Grace;
use crate::list::{Chain, Links};
use crate::{Policy, Stats};

/// How many expired entries an insert reclaims on its way (amortised sweeping).
const SWEEP_PER_INSERT: usize = 4;

/// Spreads a caller's hash over all 64 bits. The hash table takes its bucket from the low
/// bits and a tag from the top 7; Python hashes of small ints are the ints themselves, so
/// without this every entry would share one tag and lookups would compare keys in vain.
#[inline]
pub(crate) fn spread(hash: u64) -> u64 {
    let m = u128::from(hash) * 0x9E37_79B9_7F4A_7C15;
    (m as u64) ^ ((m >> 64) as u64)
}

/// The 32 bits of a caller's hash a slot keeps: its [`spread`], cut down, or (from a
/// caller whose hashes are mixed already, [`Store::trust_hashes`]) its two halves folded.
#[inline]
fn short_hash(hash: u64, mixed: bool) -> u32 {
    if mixed {
        (hash ^ (hash >> 32)) as u32
    } else {
        spread(hash) as u32
    }
}

/// Where the table places an entry: from its 32-bit [`short_hash`] alone, so the slot
/// can give it back (for a move when the table grows) from 4 bytes. The table takes the
/// bucket from the low bits and a tag from the top 7: the short hash is both halves, so
/// they are as mixed as it is, and the lookup waits for no multiply (a hit's start is a
/// chain of them: the caller's hasher, then [`spread`]).
#[inline]
fn table_hash(short: u32) -> u64 {
    u64::from(short) << 32 | u64::from(short)
}

/// What [`Store::look`] found.
enum Look {
    Fresh(u32),
    Stale(u32, Option<Duration>),
    Missing,
}

/// An entry, where the table holds its id, and its key's short hash: 32 bytes for `u64`
/// keys and values, two to a cache line (the alignment keeps them from straddling two).
/// Deadlines live apart, in the store's `deadlines`, so a store without a TTL does not
/// carry them.
#[repr(align(32))]
struct Slot<K, V> {
    short: u32,
    /// The table's bucket that holds this id, noted at insertion. Removing an entry
    /// (most often an eviction, of an entry whose lines are cold) then reads its bucket
    /// directly, instead of a probe that must first read the slot for the hash and then
    /// the table's tags before it finds the bucket: one dependent cache miss instead of
    /// three. A table that grew or rehashed since has moved its buckets; the bucket is
    /// checked to hold this id, and a probe by hash finds it otherwise.
    bucket: u32,
    entry: Option<(K, V)>,
}

/// A bounded key-value store with an eviction policy and an optional TTL. Not
/// synchronized: see the module docs.
///
/// # Examples
/// ```
/// use twat_cache::{Policy, Store};
/// use std::convert::Infallible;
///
/// let mut store: Store<&str, i32> = Store::new(Some(2), None, Policy::Lru);
/// let eq = |k: &&str| -> Result<bool, Infallible> { Ok(*k == "a") };
/// store.insert_by(1, "a", 10, |old, new| Ok::<_, Infallible>(old == new)).unwrap();
/// assert_eq!(store.get_by(1, eq).unwrap(), Some(&10));
/// assert_eq!(store.stats().hits, 1);
/// ```
pub struct Store<K, V> {
    table: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    eviction: Eviction,
    policy: Policy,
    max_size: Option<usize>,
    ttl: Option<Duration>,
    /// How long an expired entry is kept, stale (`get_stale_by` still finds it).
    grace: Grace,
    /// Some entry may have a deadline (a default TTL, or one given to an insert): reads
    /// must look at the clock. Entries with a deadline, and only they, are chained in
    /// write order for the sweeps.
    expiring: bool,
    /// The caller's hashes are well mixed in every bit ([`Store::trust_hashes`]).
    mixed: bool,
    /// When each entry stops being fresh (it is kept [`Store::grace`] longer), by id;
    /// empty until some entry has a deadline, and no longer than the last id that had one.
    deadlines: Vec<Option<Instant>>,
    expiry_links: Links,
    expiry: Chain,
    stats: Stats,
    removed: Removed<K, V>,
}

/// Entries that left a [`Store`], handed back by [`Store::take_removed`] to be dropped
/// outside the owner's lock (only of types that need a drop). The first one is held
/// inline: the usual insert evicts one entry, and this keeps that path free of
/// allocation.
pub struct Removed<K, V> {
    first: Option<(K, V)>,
    rest: Vec<(K, V)>,
}

impl<K, V> Default for Removed<K, V> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<K, V> Removed<K, V> {
    #[inline]
    fn push(&mut self, entry: (K, V)) {
        if !std::mem::needs_drop::<(K, V)>() {
            // Dropping it does nothing, under a lock or not: nothing to hand back.
            return;
        }
        if self.first.is_none() {
            self.first = Some(entry);
        } else {
            self.rest.push(entry);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<K, V> IntoIterator for Removed<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::Chain<std::option::IntoIter<(K, V)>, std::vec::IntoIter<(K, V)>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<K, V> Store<K, V> {
    /// An empty store holding at most `max_size` entries (`None`: unbounded; `Some(0)`:
    /// stores nothing), each living `ttl` after its last write (`None`: forever).
    pub fn new(max_size: Option<usize>, ttl: Option<Duration>, policy: Policy) -> Self {
        Self {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            eviction: Eviction::new(policy, max_size),
            policy,
            max_size,
            ttl,
            grace: Grace::None,
            expiring: ttl.is_some(),
            mixed: false,
            deadlines: Vec::new(),
            expiry_links: Links::default(),
            expiry: Chain::default(),
            stats: Stats::default(),
            removed: Removed::default(),
        }
    }

    /// Tells the store that the hashes it is given are well mixed in every bit (as a
    /// `BuildHasher` like foldhash's makes them), so it uses them as they are instead of
    /// spreading them first: a lookup then waits for one multiply fewer. Hashes that are
    /// not (Python's `hash(int)` is the int itself) would crowd into a few buckets.
    /// Call it before the first insert.
    pub(crate) fn trust_hashes(&mut self) {
        debug_assert!(self.is_empty(), "the hashes of stored entries would change");
        self.mixed = true;
    }

    /// The size bound this store was built with.
    pub fn max_size(&self) -> Option<usize> {
        self.max_size
    }

    /// The time-to-live this store was built with.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Keeps expired entries for `grace` after their TTL, stale: [`Store::get_by`]
    /// misses them, [`Store::get_stale_by`] finds them.
    ///
    /// ```
    /// use std::{convert::Infallible, time::Duration};
    /// use twat_cache::{Grace, Policy, Store};
    ///
    /// let mut store: Store<u32, &str> = Store::new(None, None, Policy::Lru);
    /// store.set_grace(Grace::For(Duration::from_secs(60)));
    /// let eq = |k: &u32| Ok::<_, Infallible>(*k == 1);
    /// let same = |a: &u32, b: &u32| Ok::<_, Infallible>(a == b);
    /// store.insert_expiring_by(1, 1, "old", Some(Duration::ZERO), same).unwrap();
    /// assert_eq!(store.get_by(1, eq).unwrap(), None); // expired...
    /// let (value, stale_for) = store.get_stale_by(1, eq).unwrap().expect("...but kept");
    /// assert_eq!(*value, "old");
    /// assert!(stale_for.is_some());
    /// ```
    pub fn set_grace(&mut self, grace: Grace) {
        self.grace = grace;
    }

    /// How long expired entries are kept.
    pub fn grace(&self) -> Grace {
        self.grace
    }

    /// The eviction policy this store was built with.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Number of entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Counters since creation (or the last [`Store::reset_stats`]), and the entry count.
    pub fn stats(&self) -> Stats {
        Stats {
            entries: self.len(),
            ..self.stats
        }
    }

    /// Turns one counted miss into a hit: the caller missed, then got its value from
    /// another caller's computation of the same key (single flight), as a hit of
    /// `functools.lru_cache` would have given it.
    pub fn miss_was_shared(&mut self) {
        if self.stats.misses > 0 {
            self.stats.misses -= 1;
            self.stats.hits += 1;
        }
    }

    /// Sets the hit, miss, eviction and expiration counters back to zero.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Entries that left the store since the last call; drop them outside any lock.
    /// Entries whose type needs no drop (`u64` keys and values, say) are not parked:
    /// dropping them does nothing, so there is nothing to defer and this is empty.
    #[inline]
    pub fn take_removed(&mut self) -> Removed<K, V> {
        std::mem::take(&mut self.removed)
    }

    /// Whether [`Store::take_removed`] has anything to hand back.
    #[inline]
    pub(crate) fn has_removed(&self) -> bool {
        !self.removed.is_empty()
    }

    fn now_if_ttl(&self) -> Option<Instant> {
        self.expiring.then(Instant::now)
    }

    /// When an entry stops being fresh (`None`: never).
    #[inline]
    fn deadline(&self, id: u32) -> Option<Instant> {
        self.deadlines.get(id as usize).copied().flatten()
    }

    fn set_deadline(&mut self, id: u32, at: Option<Instant>) {
        let i = id as usize;
        if at.is_some() && self.deadlines.len() <= i {
            self.deadlines.resize(i + 1, None);
        }
        if let Some(d) = self.deadlines.get_mut(i) {
            *d = at;
        }
    }

    fn find<E>(
        &self,
        hash: u64,
        mut eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<u32>, E> {
        let hash = table_hash(short_hash(hash, self.mixed));
        let mut failure = None;
        let found = self
            .table
            .find(hash, matching(&self.slots, &mut failure, &mut eq));
        match failure {
            Some(e) => Err(e),
            None => Ok(found.copied()),
        }
    }

    /// Whether an entry is no longer fresh (it may still be kept, stale).
    fn is_expired(&self, id: u32, now: Option<Instant>) -> bool {
        match (self.deadline(id), now) {
            (Some(at), Some(now)) => now >= at,
            _ => false,
        }
    }

    /// Whether an entry is past its grace too: it is to be reclaimed.
    fn is_gone(&self, id: u32, now: Option<Instant>) -> bool {
        match (self.deadline(id), now) {
            (Some(at), Some(now)) => self.grace.extend(at).is_some_and(|end| now >= end),
            _ => false,
        }
    }

    /// Finds a key: a fresh entry is counted as a hit (and told to the policy), a
    /// missing one as a miss, one past its grace is reclaimed (an expiration and a
    /// miss); one kept stale is left for the caller to count.
    #[inline]
    fn look<E>(&mut self, hash: u64, eq: impl FnMut(&K) -> Result<bool, E>) -> Result<Look, E> {
        let now = self.now_if_ttl();
        Ok(match self.find(hash, eq)? {
            Some(id) if !self.is_expired(id, now) => {
                self.stats.hits += 1;
                self.eviction.on_hit(id);
                Look::Fresh(id)
            }
            Some(id) if !self.is_gone(id, now) => {
                let age = now.zip(self.deadline(id)).map(|(n, at)| n - at);
                Look::Stale(id, age)
            }
            found => {
                if let Some(id) = found {
                    self.remove_slot(id);
                    self.stats.expirations += 1;
                }
                self.stats.misses += 1;
                Look::Missing
            }
        })
    }

    fn value(&self, id: u32) -> Option<&V> {
        self.slots[id as usize].entry.as_ref().map(|(_, v)| v)
    }

    /// Looks a key up, counting a hit or a miss and telling the policy. An expired entry
    /// is never returned: past its grace it is reclaimed and counted as an expiration;
    /// within it, it stays for [`Store::get_stale_by`].
    #[inline]
    pub fn get_by<E>(
        &mut self,
        hash: u64,
        eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<&V>, E> {
        Ok(match self.look(hash, eq)? {
            Look::Fresh(id) => self.value(id),
            Look::Stale(..) => {
                self.stats.misses += 1;
                None
            }
            Look::Missing => None,
        })
    }

    /// [`Store::get_by`] that also finds an entry kept stale (see [`Store::set_grace`]):
    /// `(value, None)` for a fresh one (a hit), `(value, Some(age))` for one that has
    /// been stale for `age`. A stale entry is not counted: the caller decides whether it
    /// serves it ([`Store::count_stale_hit`]) or computes anew (a miss,
    /// [`Store::count_miss`]).
    pub fn get_stale_by<E>(
        &mut self,
        hash: u64,
        eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<(&V, Option<Duration>)>, E> {
        Ok(match self.look(hash, eq)? {
            Look::Fresh(id) => self.value(id).map(|v| (v, None)),
            Look::Stale(id, age) => self.value(id).map(|v| (v, age)),
            Look::Missing => None,
        })
    }

    /// [`Store::get_stale_by`] without counting or touching the policy.
    pub fn peek_stale_by<E>(
        &self,
        hash: u64,
        eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<(&V, Option<Duration>)>, E> {
        let now = self.now_if_ttl();
        let Some(id) = self.find(hash, eq)? else {
            return Ok(None);
        };
        if self.is_gone(id, now) {
            return Ok(None);
        }
        let age = match (now, self.deadline(id)) {
            (Some(n), Some(at)) if n >= at => Some(n - at),
            _ => None,
        };
        Ok(self.value(id).map(|v| (v, age)))
    }

    /// Counts a stale entry from [`Store::get_stale_by`] as served: a hit.
    pub fn count_stale_hit(&mut self) {
        self.stats.hits += 1;
        self.stats.stale_hits += 1;
    }

    /// Counts a lookup from [`Store::get_stale_by`] that the caller computes anew.
    pub fn count_miss(&mut self) {
        self.stats.misses += 1;
    }

    /// Looks a key up without counting it or touching the policy (expired: `None`).
    pub fn peek_by<E>(
        &self,
        hash: u64,
        eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<&V>, E> {
        let now = self.now_if_ttl();
        Ok(self
            .find(hash, eq)?
            .filter(|&id| !self.is_expired(id, now))
            .and_then(|id| self.slots[id as usize].entry.as_ref().map(|(_, v)| v)))
    }

    /// Stores `value` under `key`, replacing an existing value (which is parked for
    /// [`Store::take_removed`]), then evicts by policy until the size bound holds again.
    /// `eq(stored, new)` compares a stored key with `key`.
    pub fn insert_by<E>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        eq: impl FnMut(&K, &K) -> Result<bool, E>,
    ) -> Result<(), E> {
        self.insert_expiring_by(hash, key, value, None, eq)
    }

    /// [`Store::insert_by`] with a TTL of its own for this entry (`None`: the store's).
    ///
    /// Sweeps reclaim expired entries in write order, stopping at the first live one, so
    /// with mixed TTLs an expired entry may wait in memory for those written before it
    /// (it is never returned meanwhile, and the size bound still holds).
    pub fn insert_expiring_by<E>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        ttl: Option<Duration>,
        mut eq: impl FnMut(&K, &K) -> Result<bool, E>,
    ) -> Result<(), E> {
        if self.max_size == Some(0) {
            self.removed.push((key, value));
            return Ok(());
        }
        let ttl = ttl.or(self.ttl);
        self.expiring |= ttl.is_some();
        let now = self.now_if_ttl();
        let expires = now.zip(ttl).map(|(n, t)| n + t);
        // One probe finds the key, or the bucket where it goes.
        let short = short_hash(hash, self.mixed);
        let slots = &self.slots;
        let mut failure = None;
        let place = self.table.entry(
            table_hash(short),
            matching(slots, &mut failure, |k| eq(k, &key)),
            placement(slots),
        );
        if let Some(e) = failure {
            return Err(e);
        }
        let slot = Slot {
            short,
            bucket: 0,
            entry: Some((key, value)),
        };
        let new_id = match place {
            hash_table::Entry::Occupied(found) => {
                let id = *found.get();
                self.replace(id, slot, expires);
                None
            }
            hash_table::Entry::Vacant(place) if !self.eviction.evicts_before_insert() => {
                let id = claim(&mut self.slots, &mut self.free, slot);
                let bucket = place.insert(id).bucket_index();
                Some((id, bucket))
            }
            hash_table::Entry::Vacant(_) => {
                // The newcomer is not a candidate: LFU would otherwise evict it at once
                // (it has the lowest count) and random replacement might. The eviction
                // may move the table's buckets, so the newcomer's is found anew.
                self.evict_while(|len, max| len >= max);
                let id = claim(&mut self.slots, &mut self.free, slot);
                let slots = &self.slots;
                let bucket = self
                    .table
                    .insert_unique(table_hash(short), id, placement(slots))
                    .bucket_index();
                Some((id, bucket))
            }
        };
        if let Some((id, bucket)) = new_id {
            // (A bucket past `u32::MAX`, never seen in practice, is found by its hash.)
            self.slots[id as usize].bucket = u32::try_from(bucket).unwrap_or(u32::MAX);
            self.eviction.on_insert(id, hash);
            self.set_deadline(id, expires);
            if expires.is_some() {
                self.expiry_links.push_front(&mut self.expiry, id);
            }
        }
        if let Some(now) = now {
            self.sweep(now, SWEEP_PER_INSERT);
        }
        self.evict_while(|len, max| len > max);
        Ok(())
    }

    /// Puts a new value (with the caller's key) in the slot of an existing entry; the
    /// old pair is parked for [`Store::take_removed`]. A write counts as a use.
    fn replace(&mut self, id: u32, slot: Slot<K, V>, expires: Option<Instant>) {
        let was_chained = self.deadline(id).is_some();
        self.set_deadline(id, expires);
        if let (Some((_, old)), Some((key, value))) =
            (self.slots[id as usize].entry.as_mut(), slot.entry)
        {
            let old = std::mem::replace(old, value);
            self.removed.push((key, old));
        }
        self.eviction.on_hit(id);
        if was_chained {
            self.expiry_links.unlink(&mut self.expiry, id);
        }
        if expires.is_some() {
            self.expiry_links.push_front(&mut self.expiry, id);
        }
    }

    fn evict_while(&mut self, over: impl Fn(usize, usize) -> bool) {
        let Some(max) = self.max_size else { return };
        while over(self.len(), max) {
            let Some(victim) = self.eviction.victim() else {
                break;
            };
            self.remove_slot(victim);
            self.stats.evictions += 1;
        }
    }

    /// Removes a key; `true` if it was there (and not expired).
    pub fn remove_by<E>(
        &mut self,
        hash: u64,
        eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let now = self.now_if_ttl();
        Ok(match self.find(hash, eq)? {
            Some(id) => {
                let live = !self.is_gone(id, now);
                self.remove_slot(id);
                live
            }
            None => false,
        })
    }

    /// Removes every entry (parked for [`Store::take_removed`]); counters are kept.
    pub fn clear(&mut self) {
        for slot in self.slots.drain(..) {
            if let Some(entry) = slot.entry {
                self.removed.push(entry);
            }
        }
        self.table.clear();
        self.free.clear();
        self.eviction = Eviction::new(self.policy, self.max_size);
        self.deadlines.clear();
        self.expiry_links = Links::default();
        self.expiry = Chain::default();
    }

    /// Reclaims every expired entry now; returns how many there were.
    pub fn purge_expired(&mut self) -> usize {
        match self.now_if_ttl() {
            Some(now) => self.sweep(now, usize::MAX),
            None => 0,
        }
    }

    fn sweep(&mut self, now: Instant, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            match self.expiry.back() {
                Some(id) if self.is_gone(id, Some(now)) => {
                    self.remove_slot(id);
                    self.stats.expirations += 1;
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    fn remove_slot(&mut self, id: u32) {
        let slot = &self.slots[id as usize];
        match self.table.get_bucket_entry(slot.bucket as usize) {
            Ok(entry) if *entry.get() == id => {
                entry.remove();
            }
            _ => {
                if let Ok(entry) = self.table.find_entry(table_hash(slot.short), |&i| i == id) {
                    entry.remove();
                }
            }
        }
        self.eviction.on_remove(id);
        if self.deadline(id).is_some() {
            self.expiry_links.unlink(&mut self.expiry, id);
            self.set_deadline(id, None);
        }
        if let Some(entry) = self.slots[id as usize].entry.take() {
            self.removed.push(entry);
        }
        self.free.push(id);
    }
}

/// The table's test for an id: whether its slot holds a key that `eq` accepts. The
/// first failure of `eq` is kept in `failure`, and every later id is refused, so the
/// probe ends without calling `eq` again.
fn matching<'a, K, V, E>(
    slots: &'a [Slot<K, V>],
    failure: &'a mut Option<E>,
    mut eq: impl FnMut(&K) -> Result<bool, E> + 'a,
) -> impl FnMut(&u32) -> bool + 'a {
    move |&id| {
        if failure.is_some() {
            return false;
        }
        match &slots[id as usize].entry {
            Some((k, _)) => eq(k).unwrap_or_else(|e| {
                *failure = Some(e);
                false
            }),
            None => false,
        }
    }
}

/// Where the table places an id (for its moves when it grows): the slot's short hash.
fn placement<K, V>(slots: &[Slot<K, V>]) -> impl Fn(&u32) -> u64 + '_ {
    |&id| table_hash(slots[id as usize].short)
}

/// A slot for a new entry: a freed one, or one more. (A function of the two fields, not
/// a method: the caller holds the table, borrowed for the entry's bucket.)
fn claim<K, V>(slots: &mut Vec<Slot<K, V>>, free: &mut Vec<u32>, slot: Slot<K, V>) -> u32 {
    match free.pop() {
        Some(id) => {
            slots[id as usize] = slot;
            id
        }
        None => {
            slots.push(slot);
            (slots.len() - 1) as u32
        }
    }
}

impl<K, V> std::fmt::Debug for Store<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("policy", &self.policy)
            .field("max_size", &self.max_size)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}
