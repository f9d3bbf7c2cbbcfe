//! The miss path of async cached functions. The hit path stays native (a [`Ready`]
//! awaitable); a miss hands a *slot* (one engine and one key) to the coroutine
//! `twat_cache._async.cached_call`, which runs the single flight across tasks, threads
//! and event loops in Python, where `asyncio` lives. Nothing loop-bound is stored in an
//! engine: the slot only reads and writes values.
//!
//! [`Ready`]: crate::ready::Ready

use std::sync::Arc;

use crate::once::PyLazy;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use twat_cache::{KeyDigest, Lease};

use crate::store_engine::Claimed;

use crate::engine::MemoryEngine;
use crate::local::Fill;
use crate::persistent::PersistentFunction;

/// One key of a memory engine, for the async miss path. Lookups are cheap and never
/// wait, so they run on the event loop (`blocking` is false).
#[pyclass(frozen, module = "twat_cache._core")]
pub struct MemorySlot {
    engine: Arc<MemoryEngine>,
    key: Py<PyAny>,
    hash: isize,
}

#[pymethods]
impl MemorySlot {
    /// Identifies the (engine, key) pair among all flights of the process.
    #[getter]
    fn flight_key(&self, py: Python<'_>) -> (usize, Py<PyAny>) {
        (Arc::as_ptr(&self.engine) as usize, self.key.clone_ref(py))
    }

    #[getter]
    fn blocking(&self) -> bool {
        false
    }

    /// One process: no cross-process lease.
    #[getter]
    fn leases(&self) -> bool {
        false
    }

    /// `(True, value, False)` when the engine has a fresh value for the key (a flight
    /// may have stored it since the native lookup); not counted. A stale one was dealt
    /// with by the native call (served, or left to be computed).
    fn peek(&self, py: Python<'_>) -> PyResult<(bool, Py<PyAny>, bool)> {
        let (found, value) = unwrap_found(py, self.engine.peek(self.key.bind(py), self.hash)?);
        Ok((found, value, false))
    }

    /// `(True, value)` when a kept value may stand in for a computation that raised
    /// `exc` (`stale_if_error`; a warning is logged).
    fn fallback(&self, py: Python<'_>, exc: Bound<'_, PyAny>) -> (bool, Py<PyAny>) {
        let e = PyErr::from_value(exc);
        unwrap_found(
            py,
            self.engine.fall_back(self.key.bind(py), self.hash, e).ok(),
        )
    }

    /// Before a refresh: one process, so the flight is all the arbitration there is.
    fn claim_refresh(&self) -> bool {
        true
    }

    /// Nothing to give back: one process holds no lease.
    fn release(&self) {}

    /// The native call counted this call as a miss; one that got its value without
    /// running the function (a waiter of the flight) is a hit.
    fn tally(&self, py: Python<'_>, hit: bool) {
        if hit {
            self.engine.miss_was_shared(py);
        }
    }

    /// Stores a computed value (`cache_if` and `ttl=` decide how).
    fn store(&self, py: Python<'_>, value: Py<PyAny>) -> bool {
        self.engine
            .store_result(self.key.bind(py), self.hash, value);
        true
    }
}

/// One key of a disk or file store. Its methods do I/O (with the GIL released), so the
/// coroutine runs them in the loop's executor, off the loop (`blocking` is true).
#[pyclass(frozen, module = "twat_cache._core")]
pub struct DiskSlot {
    owner: Py<PersistentFunction>,
    key: KeyDigest,
    lease: parking_lot::Mutex<Option<Lease>>,
    /// A local tier to fill from the store's answer.
    fill: parking_lot::Mutex<Option<Fill>>,
}

#[pymethods]
impl DiskSlot {
    #[getter]
    fn flight_key(&self) -> (usize, KeyDigest) {
        (self.owner.as_ptr() as usize, self.key)
    }

    /// The 128-bit key.
    #[getter]
    fn key(&self) -> KeyDigest {
        self.key
    }

    /// The cached function whose key this is.
    #[getter]
    fn owner(&self, py: Python<'_>) -> Py<PersistentFunction> {
        self.owner.clone_ref(py)
    }

    #[getter]
    fn blocking(&self) -> bool {
        true
    }

    /// Whether a miss takes a cross-process lease (`claim`/`release`) before computing.
    #[getter]
    fn leases(&self) -> bool {
        self.owner.get().engine().leases()
    }

    /// `(True, value, stale)` when the store has a value to serve: fresh, or stale
    /// within `stale_ttl` (then it is refreshed); not counted (see `tally`).
    fn peek(&self, py: Python<'_>) -> (bool, Py<PyAny>, bool) {
        let owner = self.owner.get();
        match owner.engine().find(py, self.key) {
            Some(served) => {
                let fill = self.fill.lock().take().filter(|_| !served.stale);
                if let (Some(tier), Some(fill)) = (owner.local(), fill) {
                    tier.put(py, fill, self.key, &served.value, served.left);
                }
                (true, served.value, served.stale)
            }
            None => (false, py.None(), false),
        }
    }

    /// `(True, value)` when a kept value may stand in for a computation that raised
    /// `exc` (`stale_if_error`; a warning is logged).
    fn fallback(&self, py: Python<'_>, exc: Bound<'_, PyAny>) -> (bool, Py<PyAny>) {
        let e = PyErr::from_value(exc);
        let engine = self.owner.get().engine();
        unwrap_found(py, engine.fall_back(py, self.key, e).ok())
    }

    /// Before a refresh: takes the key's lease across processes; `False` when another
    /// process is refreshing it.
    fn claim_refresh(&self, py: Python<'_>) -> bool {
        match self.owner.get().engine().refresh_lease(py, self.key) {
            Some(lease) => {
                *self.lease.lock() = Some(lease);
                true
            }
            None => false,
        }
    }

    /// Counts one call: a hit (served from the store) or a miss.
    fn tally(&self, hit: bool) {
        self.owner.get().engine().count(hit);
    }

    /// `False` when the value could not be stored (a warning said why). A lease taken by
    /// `claim` goes back in the same round trip.
    fn store(&self, value: &Bound<'_, PyAny>) -> bool {
        let engine = self.owner.get().engine();
        match self.lease.lock().take() {
            Some(lease) => engine.save_releasing(value, self.key, lease),
            None => engine.save(value, self.key),
        }
    }

    /// Before computing: takes the key's cross-process lease, or waits for the process
    /// that holds it; `(True, value)` when that process stored the value meanwhile.
    fn claim(&self, py: Python<'_>) -> PyResult<(bool, Py<PyAny>)> {
        match self.owner.get().engine().claim(py, self.key)? {
            Claimed::Found(v) => Ok((true, v)),
            Claimed::Compute(lease) => {
                *self.lease.lock() = Some(lease);
                Ok((false, py.None()))
            }
        }
    }

    /// After computing (and storing, or raising): gives the lease back.
    fn release(&self, py: Python<'_>) {
        if let Some(lease) = self.lease.lock().take() {
            self.owner.get().engine().release(py, lease);
        }
    }
}

impl DiskSlot {
    pub fn new(owner: Py<PersistentFunction>, key: KeyDigest, fill: Option<Fill>) -> Self {
        Self {
            owner,
            key,
            lease: parking_lot::Mutex::new(None),
            fill: parking_lot::Mutex::new(fill),
        }
    }
}

impl MemorySlot {
    pub fn new(engine: Arc<MemoryEngine>, key: Py<PyAny>, hash: isize) -> Self {
        Self { engine, key, hash }
    }
}

fn unwrap_found(py: Python<'_>, value: Option<Py<PyAny>>) -> (bool, Py<PyAny>) {
    match value {
        Some(v) => (true, v),
        None => (false, py.None()),
    }
}

/// A call's keyword arguments as the Python side takes them: a dict, empty for none.
pub fn kwargs_or_empty<'py>(
    py: Python<'py>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> Bound<'py, PyAny> {
    match kwargs {
        Some(k) => k.clone().into_any(),
        None => PyDict::new(py).into_any(),
    }
}

/// Which coroutine serves an async call the native side could not answer.
#[derive(Clone, Copy)]
pub enum MissPath {
    /// `twat_cache._async.cached_call`: single flight, I/O in the loop's executor.
    Executor,
    /// `twat_cache._wire.wire_call`: an `rcache` function on one server looks the key
    /// up on the event loop's own connection first, then goes on to `cached_call`.
    Wire,
}

/// The coroutine for a call: `cached_call(slot, func, args, kwargs)` or
/// `wire_call(slot, func, args, kwargs)`.
pub fn miss_coroutine(
    py: Python<'_>,
    path: MissPath,
    slot: Bound<'_, PyAny>,
    func: &Py<PyAny>,
    args: Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    static CACHED_CALL: PyLazy<Py<PyAny>> = PyLazy::new();
    static WIRE_CALL: PyLazy<Py<PyAny>> = PyLazy::new();
    let (cell, module, name) = match path {
        MissPath::Executor => (&CACHED_CALL, "twat_cache._async", "cached_call"),
        MissPath::Wire => (&WIRE_CALL, "twat_cache._wire", "wire_call"),
    };
    let coroutine = cell.import(py, module, name)?;
    let kwargs = kwargs_or_empty(py, kwargs);
    Ok(coroutine
        .bind(py)
        .call1((slot, func.clone_ref(py), args, kwargs))?
        .unbind())
}
