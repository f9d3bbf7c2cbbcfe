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

use std::sync::Arc;
use std::thread::{self, ThreadId};

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex};

enum State<V> {
    Running,
    Done(V),
    Abandoned,
}

/// One computation in progress, shared by its leader and its followers.
pub struct Flight<V> {
    leader: ThreadId,
    state: Mutex<State<V>>,
    done: Condvar,
}

impl<V> Flight<V> {
    fn new() -> Self {
        Self {
            leader: thread::current().id(),
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

    /// Reads the published value, if there is one.
    pub fn with_result<R>(&self, f: impl FnOnce(&V) -> R) -> Option<R> {
        match &*self.state.lock() {
            State::Done(v) => Some(f(v)),
            _ => None,
        }
    }
}

/// What [`Flights::claim_by`] decided for the caller.
pub enum Claim<V> {
    /// Nobody was computing this key: the caller computes it, then calls
    /// [`Flights::remove`] and [`Flight::complete`].
    Leader(Arc<Flight<V>>),
    /// Another thread is computing it: wait on the flight, then read its value.
    Follower(Arc<Flight<V>>),
    /// The calling thread is itself computing this key further up its stack: compute
    /// directly (waiting would deadlock).
    Reentrant,
}

/// The flights in progress, by key. Not synchronized: see the module docs.
pub struct Flights<K, V> {
    table: HashTable<(u64, K, Arc<Flight<V>>)>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
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
        let found = self.table.find(hash, |(h, k, _)| {
            *h == hash
                && failure.is_none()
                && eq(k).unwrap_or_else(|e| {
                    failure = Some(e);
                    false
                })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some((_, _, flight)) = found {
            return Ok(if flight.leader == thread::current().id() {
                Claim::Reentrant
            } else {
                Claim::Follower(Arc::clone(flight))
            });
        }
        let flight = Arc::new(Flight::new());
        self.table
            .insert_unique(hash, (hash, make_key(), Arc::clone(&flight)), |e| e.0);
        Ok(Claim::Leader(flight))
    }

    /// Takes a finished flight out of the map (found by identity, so no key comparison
    /// runs) and hands back its key, to be dropped by the caller outside its lock.
    pub fn remove(&mut self, hash: u64, flight: &Arc<Flight<V>>) -> Option<K> {
        let hash = crate::store::spread(hash);
        self.table
            .find_entry(hash, |(_, _, f)| Arc::ptr_eq(f, flight))
            .ok()
            .map(|e| e.remove().0 .1)
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
