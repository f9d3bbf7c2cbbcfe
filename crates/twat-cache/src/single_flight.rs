//! Single flight: concurrent requests for one missing key compute it once.
//!
//! [`Flights`] maps keys to the [`Flight`] in progress for them. The first caller of a key
//! becomes its leader and computes the value; later callers become followers and block in
//! [`Flight::wait`] until the leader calls [`Flight::complete`]. A thread that asks again
//! for a key it is itself computing (a recursive function) is told so
//! ([`Claim::Reentrant`]) instead of waiting for itself forever.
//!
//! `Flights` is not synchronized, like [`Store`](crate::Store), so that its owner picks the
//! lock; each `Flight` carries its own mutex and condition variable, so waiting on one key
//! never blocks another.

use std::cell::Cell;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex};

enum State<V> {
    Running,
    Done(V),
    Abandoned,
}

/// A cheap per-thread id (`thread::current()` clones an `Arc` on every call).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TOKEN: Cell<u64> = const { Cell::new(0) });
    TOKEN.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// The rendezvous of the followers of one computation: created only when a second caller
/// arrives, so an uncontended miss allocates nothing.
pub struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
}

impl<V> Flight<V> {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::Running),
            done: Condvar::new(),
        }
    }

    /// Publishes the leader's outcome and wakes every follower.
    pub fn complete(&self, value: V) {
        *self.state.lock() = State::Done(value);
        self.done.notify_all();
    }

    /// Wakes every follower without a value (the leader gave up, e.g. it panicked); they
    /// should try again.
    pub fn abandon(&self) {
        let mut state = self.state.lock();
        if matches!(*state, State::Running) {
            *state = State::Abandoned;
        }
        drop(state);
        self.done.notify_all();
    }

    /// Blocks until the leader completes or abandons; `true` when a value is ready.
    pub fn wait(&self) -> bool {
        let mut state = self.state.lock();
        while matches!(*state, State::Running) {
            self.done.wait(&mut state);
        }
        matches!(*state, State::Done(_))
    }

    /// Like [`Flight::wait`], for at most `timeout`: `None` while the leader is still
    /// computing (so that a waiter can look at signals and wait again).
    pub fn wait_for(&self, timeout: std::time::Duration) -> Option<bool> {
        let mut state = self.state.lock();
        if matches!(*state, State::Running) {
            self.done.wait_for(&mut state, timeout);
        }
        match *state {
            State::Running => None,
            State::Done(_) => Some(true),
            State::Abandoned => Some(false),
        }
    }

    /// Reads the published value, if there is one.
    pub fn with_result<R>(&self, f: impl FnOnce(&V) -> R) -> Option<R> {
        match &*self.state.lock() {
            State::Done(v) => Some(f(v)),
            _ => None,
        }
    }
}

/// The leader's receipt for the flight it started; hand it back to [`Flights::remove`].
#[derive(Debug, PartialEq, Eq)]
pub struct Lead {
    hash: u64,
    serial: u64,
}

/// What [`Flights::claim_by`] decided for the caller.
pub enum Claim<V> {
    /// Nobody was computing this key: the caller computes it, then calls
    /// [`Flights::remove`] and, if that returns a flight, [`Flight::complete`].
    Leader(Lead),
    /// Another thread is computing it: wait on the flight, then read its value.
    Follower(Arc<Flight<V>>),
    /// The calling thread is itself computing this key further up its stack: compute
    /// directly (waiting would deadlock).
    Reentrant,
}

struct Entry<K, V> {
    hash: u64,
    key: K,
    leader: u64,
    serial: u64,
    /// Created by the first follower.
    flight: Option<Arc<Flight<V>>>,
}

/// The flights in progress, by key. Not synchronized: see the module docs.
pub struct Flights<K, V> {
    table: HashTable<Entry<K, V>>,
    serial: u64,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            serial: 0,
        }
    }
}

impl<K, V> Flights<K, V> {
    /// Joins the flight for a key or starts one; `make_key` is called only when the
    /// caller becomes the leader. `eq` may fail, and its error is returned as is.
    pub fn claim_by<E>(
        &mut self,
        hash: u64,
        make_key: impl FnOnce() -> K,
        mut eq: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Claim<V>, E> {
        let hash = crate::store::spread(hash);
        let mut failure = None;
        let found = self.table.find_mut(hash, |e| {
            e.hash == hash
                && failure.is_none()
                && eq(&e.key).unwrap_or_else(|err| {
                    failure = Some(err);
                    false
                })
        });
        if let Some(err) = failure {
            return Err(err);
        }
        let me = thread_token();
        if let Some(entry) = found {
            if entry.leader == me {
                return Ok(Claim::Reentrant);
            }
            let flight = entry.flight.get_or_insert_with(|| Arc::new(Flight::new()));
            return Ok(Claim::Follower(Arc::clone(flight)));
        }
        self.serial += 1;
        let entry = Entry {
            hash,
            key: make_key(),
            leader: me,
            serial: self.serial,
            flight: None,
        };
        self.table.insert_unique(hash, entry, |e| e.hash);
        Ok(Claim::Leader(Lead {
            hash,
            serial: self.serial,
        }))
    }

    /// Takes a finished flight out of the map (found by its receipt, so no key comparison
    /// runs). Returns its key, to be dropped by the caller outside its lock, and the
    /// followers' rendezvous if any follower came.
    pub fn remove(&mut self, lead: &Lead) -> Option<(K, Option<Arc<Flight<V>>>)> {
        self.table
            .find_entry(lead.hash, |e| e.serial == lead.serial)
            .ok()
            .map(|e| {
                let entry = e.remove().0;
                (entry.key, entry.flight)
            })
    }

    /// Number of flights in progress.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no flight is in progress.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The value of a [`Flights::claim_by`] whose key comparison cannot fail.
pub(crate) fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// Where a leader's flight is kept, for [`LeaderGuard`]: behind a mutex of its own, or
/// beside an engine's store, under the engine's lock.
pub(crate) trait FlightHome<K, V> {
    /// Takes the flight of `lead` out (see [`Flights::remove`]), releasing whatever lock
    /// it took before it returns.
    fn take(&self, lead: &Lead) -> Option<(K, Option<Arc<Flight<V>>>)>;
}

impl<K, V> FlightHome<K, V> for Mutex<Flights<K, V>> {
    fn take(&self, lead: &Lead) -> Option<(K, Option<Arc<Flight<V>>>)> {
        self.lock().remove(lead)
    }
}

/// Removes the leader's flight and wakes its followers, with the value or, if the leader
/// unwinds (its `init` panicked) or keeps nothing, without one so that they retry.
pub(crate) struct LeaderGuard<'a, K, V> {
    home: &'a dyn FlightHome<K, V>,
    /// `None` once finished.
    lead: Option<Lead>,
}

impl<'a, K, V> LeaderGuard<'a, K, V> {
    pub(crate) fn new(home: &'a dyn FlightHome<K, V>, lead: Lead) -> Self {
        LeaderGuard {
            home,
            lead: Some(lead),
        }
    }

    /// Publishes `value` to the followers. (Only `DiskCache`, of the `serde` feature,
    /// finishes this way: `MemoryCache` retires its flight with its insert.)
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn finish(mut self, value: V) {
        if let Some(lead) = self.lead.take() {
            if let Some((_key, Some(flight))) = self.home.take(&lead) {
                flight.complete(value);
            }
        }
    }

    /// Gives the lead back to a caller that retires the flight itself (in the same
    /// critical section as its store's insert) and then wakes its followers.
    pub(crate) fn disarm(mut self) -> Lead {
        self.lead.take().expect("a guard is armed until finished")
    }
}

impl<K, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(lead) = self.lead.take() {
            if let Some((_key, Some(flight))) = self.home.take(&lead) {
                flight.abandon();
            }
        }
    }
}
