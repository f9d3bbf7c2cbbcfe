//! The memory engine as the binding uses it: the core [`Store`] and [`Flights`] over
//! Python keys and values, each behind a mutex that is only ever waited for with the
//! GIL released (`lock_py_attached`), so a thread inside a key's `__eq__` can never
//! deadlock with a thread waiting for the engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use twat_cache::{Claim, Flight, Flights, Policy, Stats, Store};

use crate::errors::warn;
use crate::key::PyKey;

/// What a leader hands to the followers of its flight: the value or the exception.
type Outcome = Result<Py<PyAny>, PyErr>;

/// Size, TTL and policy of one engine (per-instance engines of methods copy it).
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub max_size: Option<usize>,
    pub ttl: Option<Duration>,
    pub policy: Policy,
}

pub struct MemoryEngine {
    store: Mutex<Store<PyKey, Py<PyAny>>>,
    flights: Mutex<Flights<PyKey, Outcome>>,
    store_errors: AtomicU64,
}

impl MemoryEngine {
    pub fn new(config: EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            store: Mutex::new(Store::new(config.max_size, config.ttl, config.policy)),
            flights: Mutex::new(Flights::default()),
            store_errors: AtomicU64::new(0),
        })
    }

    /// The live value for `key`, counting a hit or a miss.
    #[inline]
    pub fn get(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<Option<Py<PyAny>>> {
        let py = key.py();
        let mut store = self.store.lock_py_attached(py);
        let found = store
            .get_by(hash as u64, |k| k.matches(key))
            .map(|v| v.map(|v| v.clone_ref(py)));
        let removed = store.take_removed();
        drop(store);
        drop(removed);
        found
    }

    /// Stores a value; a failing key comparison is counted and logged, not raised (the
    /// caller already has its value).
    pub fn set(&self, key: &Bound<'_, PyAny>, hash: isize, value: Py<PyAny>) {
        let py = key.py();
        let entry = PyKey {
            obj: key.clone().unbind(),
        };
        let mut store = self.store.lock_py_attached(py);
        let stored = store.insert_by(hash as u64, entry, value, |old, _| old.matches(key));
        let removed = store.take_removed();
        drop(store);
        drop(removed);
        if let Err(e) = stored {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
            warn(py, &format!("twat_cache: could not store a result: {e}"));
        }
    }

    pub fn delete(&self, key: &Bound<'_, PyAny>, hash: isize) -> PyResult<bool> {
        let mut store = self.store.lock_py_attached(key.py());
        let found = store.remove_by(hash as u64, |k| k.matches(key));
        let removed = store.take_removed();
        drop(store);
        drop(removed);
        found
    }

    pub fn clear(&self, py: Python<'_>) {
        let mut store = self.store.lock_py_attached(py);
        store.clear();
        store.reset_stats();
        let removed = store.take_removed();
        drop(store);
        drop(removed);
        self.store_errors.store(0, Ordering::Relaxed);
    }

    pub fn purge_expired(&self, py: Python<'_>) -> usize {
        let mut store = self.store.lock_py_attached(py);
        let n = store.purge_expired();
        let removed = store.take_removed();
        drop(store);
        drop(removed);
        n
    }

    pub fn stats(&self, py: Python<'_>) -> (Stats, u64) {
        let stats = self.store.lock_py_attached(py).stats();
        (stats, self.store_errors.load(Ordering::Relaxed))
    }

    /// The value for a key that just missed: computed by `call` in exactly one thread
    /// (single flight) and shared with every concurrent caller of the same key.
    pub fn compute(
        &self,
        key: &Bound<'_, PyAny>,
        hash: isize,
        call: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = key.py();
        let mut call = Some(call);
        loop {
            let claim = self.flights.lock_py_attached(py).claim_by(
                hash as u64,
                || PyKey {
                    obj: key.clone().unbind(),
                },
                |k| k.matches(key),
            )?;
            match claim {
                Claim::Follower(flight) => {
                    let ready = py.detach(|| flight.wait());
                    let shared = flight.with_result(|r| match r {
                        Ok(v) => Ok(v.clone_ref(py)),
                        Err(e) => Err(e.clone_ref(py)),
                    });
                    if let (true, Some(outcome)) = (ready, shared) {
                        return outcome;
                    }
                    // The leader vanished without an outcome: take over.
                    if let Some(v) = self.get(key, hash)? {
                        return Ok(v);
                    }
                }
                Claim::Reentrant => {
                    let call = call.take().expect("called once");
                    let value = call()?;
                    self.set(key, hash, value.clone_ref(py));
                    return Ok(value);
                }
                Claim::Leader(flight) => {
                    let leader = Leader {
                        engine: self,
                        hash,
                        flight: Some(flight),
                    };
                    // A previous leader may have stored the value between our miss and
                    // our claim.
                    let earlier = self
                        .store
                        .lock_py_attached(py)
                        .peek_by(hash as u64, |k| k.matches(key))?
                        .map(|v| v.clone_ref(py));
                    let outcome = match earlier {
                        Some(v) => Ok(v),
                        None => {
                            let call = call.take().expect("called once");
                            let outcome = call();
                            if let Ok(v) = &outcome {
                                self.set(key, hash, v.clone_ref(py));
                            }
                            outcome
                        }
                    };
                    leader.finish(py, &outcome);
                    return outcome;
                }
            }
        }
    }
}

/// The leader's duty: take the flight out of the map and publish the outcome, or, if the
/// leader unwinds (a Rust panic), wake the followers empty-handed so that they retry.
struct Leader<'a> {
    engine: &'a MemoryEngine,
    hash: isize,
    /// `None` once the outcome is published.
    flight: Option<Arc<Flight<Outcome>>>,
}

impl Leader<'_> {
    fn finish(mut self, py: Python<'_>, outcome: &Outcome) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let shared = match outcome {
            Ok(v) => Ok(v.clone_ref(py)),
            Err(e) => Err(e.clone_ref(py)),
        };
        let key = self
            .engine
            .flights
            .lock_py_attached(py)
            .remove(self.hash as u64, &flight);
        drop(key);
        flight.complete(shared);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            let key = self.engine.flights.lock().remove(self.hash as u64, &flight);
            drop(key);
            flight.abandon();
        }
    }
}
