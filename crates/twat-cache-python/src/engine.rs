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
use twat_cache::{Claim, Flights, Grace, Lead, Policy, Stats, Store};

use crate::errors::warn;
use crate::fresh::{Freshness, OnStale};
use crate::holder::Guarded;
use crate::key::PyKey;
use crate::release::Release;

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
    /// `stale_ttl`, `stale_if_error`, `ttl=` a callable, `cache_if` (`fresh.rs`).
    fresh: Option<Arc<Freshness>>,
}

/// What a lookup found: the value, or the caller's part in computing it.
enum Lookup {
    Hit(Py<PyAny>),
    Miss(Claim<Outcome>),
    /// A stale value to serve, and the lead of its refresh when this caller won it.
    Stale(Py<PyAny>, Option<Lead>),
}

/// A value found by [`MemoryEngine::get_serving`].
pub enum Serving {
    Fresh(Py<PyAny>),
    /// Stale within `stale_ttl`: serve it, and refresh it.
    Stale(Py<PyAny>),
}

impl MemoryEngine {
    pub fn new(config: EngineConfig, fresh: Option<Arc<Freshness>>) -> Arc<Self> {
        let mut store = Store::new(config.max_size, config.ttl, config.policy);
        store.set_grace(fresh.as_ref().map_or(Grace::None, |f| f.grace()));
        Arc::new(Self {
            state: Guarded::new(State {
                store,
                flights: Flights::default(),
            }),
            config,
            store_errors: AtomicU64::new(0),
            fresh,
        })
    }

    /// The freshness options (shared by a method's per-instance engines).
    pub fn freshness(&self) -> Option<&Arc<Freshness>> {
        self.fresh.as_ref()
    }

    /// How a value is kept: `None` to leave it out, else its TTL (`None`: the engine's).
    /// `check`: a computed result, judged by `cache_if`.
    fn keep(&self, value: &Bound<'_, PyAny>, check: bool) -> Option<Option<Duration>> {
        match &self.fresh {
            None => Some(self.entry_ttl()),
            Some(f) => f
                .keep(value, check)
                .map(|ttl| crate::jitter::spread(ttl.or(self.config.ttl), self.config.jitter)),
        }
    }

    /// Stores a computed result (judged by `cache_if`; its TTL by `ttl=`).
    pub fn store_result(&self, key: &Bound<'_, PyAny>, hash: isize, value: Py<PyAny>) {
        if let Some(ttl) = self.keep(value.bind(key.py()), true) {
            self.set_expiring(key, hash, value, ttl);
        }
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
        removed.release(py);
        Some(result)
    }

    /// Stores a value; a failing key comparison is counted and logged, not raised (the
    /// caller already has its value).
    pub fn set(&self, key: &Bound<'_, PyAny>, hash: isize, value: Py<PyAny>) {
        if let Some(ttl) = self.keep(value.bind(key.py()), false) {
            self.set_expiring(key, hash, value, ttl);
        }
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

    /// [`MemoryEngine::get`] for the async hit path of a cache with `stale_ttl`: a fresh
    /// value, or a stale one to serve while it is refreshed (counted as a stale hit).
    /// One stale past `stale_ttl` is a miss.
    pub fn get_serving(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<Option<Serving>> {
        let py = key.py();
        let Some(fresh) = &self.fresh else {
            return Ok(self.get(key, hash)?.map(Serving::Fresh));
        };
        self.with_store(py, |store| {
            let found = store
                .get_stale_by(hash as u64, |k| k.matches(key))?
                .map(|(v, age)| (v.clone_ref(py), age));
            Ok(match found {
                None => None,
                Some((v, None)) => Some(Serving::Fresh(v)),
                Some((v, Some(age))) if fresh.on_stale(age) == OnStale::Serve => {
                    store.count_stale_hit();
                    Some(Serving::Stale(v))
                }
                Some(_) => {
                    store.count_miss();
                    None
                }
            })
        })
        .unwrap_or(Ok(None))
    }

    /// The answer to a computation that raised `e`: with `stale_if_error`, the value
    /// kept for `key` (fresh, or stale within the option's time), with a warning;
    /// otherwise `e`.
    pub fn fall_back(&self, key: &Bound<'_, PyAny>, hash: isize, e: PyErr) -> PyResult<Py<PyAny>> {
        let py = key.py();
        let Some(fresh) = self.fresh.as_ref().filter(|f| f.answers(py, &e)) else {
            return Err(e);
        };
        let kept = self.with_store(py, |store| {
            Ok::<_, PyErr>(
                store
                    .peek_stale_by(hash as u64, |k| k.matches(key))?
                    .filter(|(_, age)| fresh.falls_back(*age))
                    .map(|(v, _)| v.clone_ref(py)),
            )
        });
        match kept {
            Some(Ok(Some(v))) => {
                fresh.warn_fallback(py, "a cached function", &e);
                Ok(v)
            }
            _ => Err(e),
        }
    }

    /// Ends a refresh started from a stale hit: its value is stored (and handed to any
    /// caller that waited for it); a failure keeps the stale value, with a warning.
    pub fn finish_refresh(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        lead: Lead,
        outcome: &Outcome,
    ) {
        if let Err(e) = outcome {
            warn(
                key.py(),
                &format!("twat_cache: refreshing a stale entry raised {e}; the stale value stays"),
            );
        }
        Leader {
            engine: self,
            hash,
            lead: Some(lead),
        }
        .finish(key, outcome);
    }

    /// A refresh that will never run (its worker is gone): its flight ends empty.
    pub fn abandon(&self, lead: Lead) {
        drop(Leader {
            engine: self,
            hash: 0,
            lead: Some(lead),
        });
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
    /// A stale value (within `stale_ttl`) is returned at once, and `refresh` is given
    /// the lead of its refresh when no other caller has it.
    #[inline]
    pub fn get_or_call(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
        refresh: impl FnOnce(Lead),
    ) -> PyResult<Py<PyAny>> {
        match self.lookup(key, hash)? {
            Lookup::Hit(value) => Ok(value),
            Lookup::Miss(claim) if self.fresh.is_none() => self.compute(key, hash, claim, call),
            Lookup::Miss(claim) => self
                .compute(key, hash, claim, call)
                .or_else(|e| self.fall_back(key, hash, e)),
            Lookup::Stale(value, lead) => {
                if let Some(lead) = lead {
                    refresh(lead);
                }
                Ok(value)
            }
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
        // With freshness options, an entry kept stale is found too (with its age).
        let found = match &self.fresh {
            None => state
                .store
                .get_by(hash as u64, |k| k.matches(key))
                .map(|v| v.map(|v| (v.clone_ref(py), None))),
            Some(_) => state
                .store
                .get_stale_by(hash as u64, |k| k.matches(key))
                .map(|v| v.map(|(v, age)| (v.clone_ref(py), age))),
        };
        let mut claim = || {
            state.flights.claim_by(
                hash as u64,
                || PyKey {
                    obj: key.clone().unbind(),
                },
                |k| k.matches(key),
            )
        };
        let result = match found {
            // A hit removes nothing, so there is nothing to drop after the lock.
            Ok(Some((value, None))) => return Ok(Lookup::Hit(value)),
            Ok(Some((value, Some(age)))) => {
                let serve = self
                    .fresh
                    .as_ref()
                    .is_some_and(|f| f.on_stale(age) == OnStale::Serve);
                if serve {
                    state.store.count_stale_hit();
                    // Another caller's refresh (or computation) is under way: serve.
                    claim().map(|c| match c {
                        Claim::Leader(lead) => Lookup::Stale(value, Some(lead)),
                        _ => Lookup::Stale(value, None),
                    })
                } else {
                    state.store.count_miss();
                    claim().map(Lookup::Miss)
                }
            }
            Ok(None) => claim().map(Lookup::Miss),
            Err(e) => Err(e),
        };
        let removed = state.store.take_removed();
        drop(held);
        removed.release(py);
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
                    self.store_result(key, hash, value.clone_ref(py));
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
                        Lookup::Stale(value, lead) => {
                            // Served as it is; the next stale hit starts the refresh.
                            if let Some(lead) = lead {
                                self.abandon(lead);
                            }
                            return Ok(value);
                        }
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
        // Judged before the lock: `cache_if` and `ttl=` are Python code.
        let keep = match outcome {
            Ok(v) => self.engine.keep(v.bind(py), true),
            Err(_) => None,
        };
        let mut held = self.engine.state.lock_waiting(py);
        let state = &mut *held;
        let stored = match (outcome, keep) {
            (Ok(v), Some(ttl)) => insert(&mut state.store, key, self.hash, v.clone_ref(py), ttl),
            _ => Ok(()),
        };
        let finished = state.flights.remove(&lead);
        let removed = state.store.take_removed();
        drop(held);
        removed.release(py);
        if let Some((flight_key, flight)) = finished {
            flight_key.release(py);
            if let Some(flight) = flight {
                flight.complete(share(py, outcome));
            }
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
