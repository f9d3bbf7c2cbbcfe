//! Background refreshes of stale entries (`stale_ttl=`) for sync functions: the caller
//! that wins a stale key's refresh hands one of these to the refresh workers
//! (`twat_cache._refresh`) and returns the stale value. The refresh holds the lead of
//! the key's flight, so callers that miss meanwhile wait for it rather than compute
//! again; a persistent one holds the store's lease too, so other processes serve the
//! stale value rather than refresh it again.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use twat_cache::{KeyDigest, Lead, Lease};

use crate::engine::MemoryEngine;
use crate::persistent::PersistentFunction;

/// The function call to make again: the callable and its arguments (the instance
/// first, for a method).
pub struct Recall {
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
    pub kwargs: Option<Py<PyDict>>,
}

impl Recall {
    pub fn new(
        func: &Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> Self {
        Recall {
            func: func.clone_ref(args.py()),
            args: args.clone().unbind(),
            kwargs: kwargs.map(|k| k.clone().unbind()),
        }
    }

    fn call(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let kwargs = self.kwargs.as_ref().map(|k| k.bind(py));
        Ok(self
            .func
            .bind(py)
            .call(self.args.bind(py), kwargs)?
            .unbind())
    }
}

/// A refresh of one key of a memory engine.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct MemoryRefresh {
    engine: Arc<MemoryEngine>,
    key: Py<PyAny>,
    hash: isize,
    lead: Mutex<Option<Lead>>,
    recall: Recall,
}

#[pymethods]
impl MemoryRefresh {
    fn __call__(&self, py: Python<'_>) {
        let Some(lead) = self.lead.lock().take() else {
            return;
        };
        let outcome = self.recall.call(py);
        self.engine
            .finish_refresh(self.key.bind(py), self.hash, lead, &outcome);
    }
}

impl Drop for MemoryRefresh {
    /// Never run (the workers shut down): callers waiting for it look again.
    fn drop(&mut self) {
        if let Some(lead) = self.lead.get_mut().take() {
            self.engine.abandon(lead);
        }
    }
}

/// Starts the refresh of a memory engine's key on a worker thread; a refresh that
/// cannot be started ends its flight (the stale value is served either way).
pub fn refresh_memory(
    engine: &Arc<MemoryEngine>,
    key: &Bound<'_, PyAny>,
    hash: isize,
    lead: Lead,
    recall: Recall,
) {
    let py = key.py();
    let job = MemoryRefresh {
        engine: Arc::clone(engine),
        key: key.clone().unbind(),
        hash,
        lead: Mutex::new(Some(lead)),
        recall,
    };
    if let Err(e) = Bound::new(py, job).and_then(|job| crate::fresh::submit(py, job.into_any())) {
        crate::errors::warn(py, &format!("twat_cache: a refresh could not start: {e}"));
    }
}

/// A refresh of one key of a persistent store.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct StoreRefresh {
    owner: Py<PersistentFunction>,
    key: KeyDigest,
    lead: Mutex<Option<Lead>>,
    lease: Mutex<Option<Lease>>,
    recall: Recall,
}

#[pymethods]
impl StoreRefresh {
    fn __call__(&self, py: Python<'_>) {
        let (Some(lead), Some(lease)) = (self.lead.lock().take(), self.lease.lock().take()) else {
            return;
        };
        let outcome = self.recall.call(py);
        self.owner
            .get()
            .finish_refresh(py, self.key, lead, lease, &outcome);
    }
}

impl Drop for StoreRefresh {
    fn drop(&mut self) {
        let (lead, lease) = (self.lead.get_mut().take(), self.lease.get_mut().take());
        if lead.is_none() && lease.is_none() {
            return;
        }
        Python::attach(|py| {
            let owner = self.owner.get();
            if let Some(lease) = lease {
                owner.engine().release(py, lease);
            }
            if let Some(lead) = lead {
                owner.abandon(lead);
            }
        });
    }
}

impl StoreRefresh {
    pub fn new(
        owner: Py<PersistentFunction>,
        key: KeyDigest,
        lead: Lead,
        lease: Lease,
        recall: Recall,
    ) -> Self {
        StoreRefresh {
            owner,
            key,
            lead: Mutex::new(Some(lead)),
            lease: Mutex::new(Some(lease)),
            recall,
        }
    }
}
