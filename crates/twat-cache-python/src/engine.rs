//! The memory engine as the binding uses it: the core [`Store`] and [`Flights`] over
//! Python keys and values, each behind a mutex that is only ever waited for with the
//! GIL released (`holder.rs`), so a thread inside a key's `__eq__` can never
//! deadlock with a thread waiting for the engine.
//!
//! A key's `__eq__` runs under that lock, and it is Python code: it may call the same
//! cached function (`functools`' `test_need_for_rlock`), and another thread may fork
//! while it runs. The lock records its holder, so that neither deadlocks: the holder's
//! own nested call, and any call in a child whose parent had the lock taken at the
//! fork, go straight to the function (a correct value, not cached).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use twat_cache::{Claim, Flights, Lead, Policy, Stats, Store};

use crate::errors::warn;
use crate::holder::Guarded;
use crate::key::PyKey;

/// What a leader hands to the followers of its flight: the value or the exception.
type Outcome = Result<Py<PyAny>, PyErr>;

/// Size, TTL and policy of one engine (per-instance engines of methods copy it).
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub max_size: Option<usize>,
    pub ttl: Option<Duration>,
    pub policy: Policy,
    /// A random spread added to each entry's TTL (`jitter.rs`).
    pub jitter: Option<Duration>,
}

/// The store and the flights in progress share one lock, so that a miss and the claim
/// to compute it are one step (no window in which two threads both become leaders).
struct State {
    store: Store<PyKey, Py<PyAny>>,
    flights: Flights<PyKey, Outcome>,
}

pub struct MemoryEngine {
    state: Guarded<State>,
    config: EngineConfig,
    store_errors: AtomicU64,
}

/// What a lookup found: the value, or the caller's part in computing it.
enum Lookup {
    Hit(Py<PyAny>),
    Miss(Claim<Outcome>),
}

impl MemoryEngine {
    pub fn new(config: EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Guarded::new(State {
                store: Store::new(config.max_size, config.ttl, config.policy),
                flights: Flights::default(),
            }),
            config,
            store_errors: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the store under the lock (`None`: see [`MemoryEngine::lock`]);
    /// entries it removed are dropped after the lock is released (their `__del__`
    /// must not run under it).
    #[inline]
    fn with_store<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Store<PyKey, Py<PyAny>>) -> R,
    ) -> Option<R> {
        let mut held = self.state.lock(py)?;
        let result = f(&mut held.store);
        let removed = held.store.take_removed();
        drop(held);
        drop(removed);
        Some(result)
    }

    /// Stores a value; a failing key comparison is counted and logged, not raised (the
    /// caller already has its value).
    pub fn set(&self, key: &Bound<'_, PyAny>, hash: isize, value: Py<PyAny>) {
        self.set_expiring(key, hash, value, self.entry_ttl());
    }

    /// The TTL of a new entry: the engine's, spread by its jitter (`None`: the store's).
    #[inline]
    fn entry_ttl(&self) -> Option<Duration> {
        crate::jitter::spread(self.config.ttl, self.config.jitter)
    }

    /// [`MemoryEngine::set`] with a TTL of its own (`None`: the engine's).
    pub fn set_expiring(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        value: Py<PyAny>,
        ttl: Option<Duration>,
    ) {
        let stored = self.with_store(key.py(), |store| {
            let entry = PyKey {
                obj: key.clone().unbind(),
            };
            store.insert_expiring_by(hash as u64, entry, value, ttl, |old, _| old.matches(key))
        });
        if let Some(Err(e)) = stored {
            self.store_failed(key.py(), &e);
        }
    }

    fn store_failed(&self, py: Python<'_>, e: &PyErr) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        warn(py, &format!("twat_cache: could not store a result: {e}"));
    }

    pub fn delete(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<bool> {
        self.with_store(key.py(), |store| {
            store.remove_by(hash as u64, |k| k.matches(key))
        })
        .unwrap_or(Ok(false))
    }

    pub fn clear(&self, py: Python<'_>) {
        self.with_store(py, |store| {
            store.clear();
            store.reset_stats();
        });
        self.store_errors.store(0, Ordering::Relaxed);
    }

    /// One counted miss got its value from another caller's computation: a hit.
    pub fn miss_was_shared(&self, py: Python<'_>) {
        self.with_store(py, Store::miss_was_shared);
    }

    pub fn purge_expired(&self, py: Python<'_>) -> usize {
        self.with_store(py, Store::purge_expired).unwrap_or(0)
    }

    /// Counters, after reclaiming expired entries so that `entries` counts live ones.
    pub fn stats(&self, py: Python<'_>) -> (Stats, u64) {
        let stats = self.with_store(py, |store| {
            store.purge_expired();
            store.stats()
        });
        (
            stats.unwrap_or_default(),
            self.store_errors.load(Ordering::Relaxed),
        )
    }

    /// Looks `key` up, counting a hit or a miss; no flight is joined (the async path
    /// keeps its own flights, see `python/twat_cache/_async.py`).
    #[inline]
    pub fn get(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<Option<Py<PyAny>>> {
        let py = key.py();
        self.with_store(py, |store| {
            Ok(store
                .get_by(hash as u64, |k| k.matches(key))?
                .map(|v| v.clone_ref(py)))
        })
        .unwrap_or(Ok(None))
    }

    /// Looks `key` up without counting it or touching the policy.
    pub fn peek(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<Option<Py<PyAny>>> {
        let py = key.py();
        self.with_store(py, |store| {
            Ok(store
                .peek_by(hash as u64, |k| k.matches(key))?
                .map(|v| v.clone_ref(py)))
        })
        .unwrap_or(Ok(None))
    }

    /// The value for `key`: from the store, or computed by `call` in exactly one thread
    /// (single flight) and shared with every concurrent caller of the same key.
    #[inline]
    pub fn get_or_call(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match self.lookup(key, hash)? {
            Lookup::Hit(value) => Ok(value),
            Lookup::Miss(claim) => self.compute(key, hash, claim, call),
        }
    }

    #[inline]
    fn lookup(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<Lookup> {
        let py = key.py();
        let Some(mut held) = self.state.lock(py) else {
            // Not usable from here (see the module docs): compute directly, as a
            // reentrant call does (its store is skipped for the same reason).
            return Ok(Lookup::Miss(Claim::Reentrant));
        };
        let state = &mut *held;
        let found = state
            .store
            .get_by(hash as u64, |k| k.matches(key))
            .map(|v| v.map(|v| v.clone_ref(py)));
        let result = match found {
            // A hit removes nothing, so there is nothing to drop after the lock.
            Ok(Some(value)) => return Ok(Lookup::Hit(value)),
            Ok(None) => state
                .flights
                .claim_by(
                    hash as u64,
                    || PyKey {
                        obj: key.clone().unbind(),
                    },
                    |k| k.matches(key),
                )
                .map(Lookup::Miss),
            Err(e) => Err(e),
        };
        let removed = state.store.take_removed();
        drop(held);
        drop(removed);
        result
    }

    #[cold]
    fn compute(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        mut claim: Claim<Outcome>,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = key.py();
        loop {
            match claim {
                Claim::Leader(lead) => {
                    let leader = Leader {
                        engine: self,
                        hash,
                        lead: Some(lead),
                    };
                    let outcome = call();
                    leader.finish(key, &outcome);
                    return outcome;
                }
                Claim::Reentrant => {
                    let value = call()?;
                    self.set(key, hash, value.clone_ref(py));
                    return Ok(value);
                }
                Claim::Follower(flight) => {
                    // Interrupted (Ctrl-C): this caller leaves; the flight goes on.
                    let ready = crate::waiting::wait(py, &flight)?;
                    let shared = flight.with_result(|outcome| share(py, outcome));
                    if let (true, Some(outcome)) = (ready, shared) {
                        if outcome.is_ok() {
                            // It did not run the function: a hit, as lru_cache counts it.
                            self.miss_was_shared(py);
                        }
                        return outcome;
                    }
                    // The leader vanished without an outcome: look again, maybe lead.
                    match self.lookup(key, hash)? {
                        Lookup::Hit(value) => return Ok(value),
                        Lookup::Miss(again) => claim = again,
                    }
                }
            }
        }
    }
}

/// Stores `value` under `key` (a failing `__eq__` is returned, nothing is stored).
fn insert(
    store: &mut Store<PyKey, Py<PyAny>>,
    key: &Bound<'_, PyAny>,
    hash: isize,
    value: Py<PyAny>,
    ttl: Option<Duration>,
) -> PyResult<()> {
    let entry = PyKey {
        obj: key.clone().unbind(),
    };
    store.insert_expiring_by(hash as u64, entry, value, ttl, |old, _| old.matches(key))
}

/// Another reference to the same value or the same exception, for one more caller.
fn share(py: Python<'_>, outcome: &Outcome) -> Outcome {
    match outcome {
        Ok(v) => Ok(v.clone_ref(py)),
        Err(e) => Err(e.clone_ref(py)),
    }
}

/// The leader's duty: take the flight out of the map and publish the outcome, or, if the
/// leader unwinds (a Rust panic), wake the followers empty-handed so that they retry.
struct Leader<'a> {
    engine: &'a MemoryEngine,
    hash: isize,
    /// `None` once the outcome is published.
    lead: Option<Lead>,
}

impl Leader<'_> {
    /// Stores a value and retires the flight in one step under the lock, then wakes the
    /// followers with the outcome.
    fn finish(mut self, key: &Bound<'_, PyAny>, outcome: &Outcome) {
        let py = key.py();
        let Some(lead) = self.lead.take() else {
            return;
        };
        let mut held = self.engine.state.lock_waiting(py);
        let state = &mut *held;
        let ttl = self.engine.entry_ttl();
        let stored = match outcome {
            Ok(v) => insert(&mut state.store, key, self.hash, v.clone_ref(py), ttl),
            Err(_) => Ok(()),
        };
        let finished = state.flights.remove(&lead);
        let removed = state.store.take_removed();
        drop(held);
        drop(removed);
        if let Some((flight_key, Some(flight))) = finished {
            drop(flight_key);
            flight.complete(share(py, outcome));
        }
        if let Err(e) = stored {
            self.engine.store_failed(py, &e);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(lead) = self.lead.take() {
            let finished = self.engine.state.lock_unattached().flights.remove(&lead);
            if let Some((_key, Some(flight))) = finished {
                flight.abandon();
            }
        }
    }
}
