//! Per-instance caches of a cached method.
//!
//! `self` is part of a method's key by identity and is held weakly (docs/reference.md, "Methods"): each
//! instance gets its own engine, found by the instance's address, with a weak reference
//! whose callback drops that engine when the instance is collected. Instances therefore
//! never share entries and never outlive their program-visible lifetime because of us.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyWeakrefMethods, PyWeakrefReference};

use crate::engine::{EngineConfig, MemoryEngine};
use crate::fresh::Freshness;

type Table = Mutex<HashMap<usize, (Py<PyWeakrefReference>, Arc<MemoryEngine>)>>;

pub struct InstanceCaches {
    config: EngineConfig,
    fresh: Option<Arc<Freshness>>,
    table: Arc<Table>,
}

impl InstanceCaches {
    pub fn new(config: EngineConfig, fresh: Option<Arc<Freshness>>) -> Self {
        Self {
            config,
            fresh,
            table: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The engine of `instance`, created on first use; `None` when the instance cannot be
    /// weakly referenced (a class with `__slots__` and no `__weakref__`).
    pub fn engine_for(&self, instance: &Bound<'_, PyAny>) -> PyResult<Option<Arc<MemoryEngine>>> {
        let py = instance.py();
        let id = instance.as_ptr() as usize;
        {
            let table = self.table.lock_py_attached(py);
            if let Some((wr, engine)) = table.get(&id) {
                if wr.bind(py).upgrade().is_some_and(|o| o.is(instance)) {
                    return Ok(Some(Arc::clone(engine)));
                }
            }
        }
        let reaper = InstanceReaper {
            table: Arc::downgrade(&self.table),
            id,
        };
        let Ok(wr) = PyWeakrefReference::new_with(instance, reaper) else {
            return Ok(None);
        };
        let engine = MemoryEngine::new(self.config, self.fresh.clone());
        let old = self
            .table
            .lock_py_attached(py)
            .insert(id, (wr.unbind(), Arc::clone(&engine)));
        drop(old);
        Ok(Some(engine))
    }

    /// Every live instance's engine.
    pub fn engines(&self, py: Python<'_>) -> Vec<Arc<MemoryEngine>> {
        let table = self.table.lock_py_attached(py);
        table.values().map(|(_, e)| Arc::clone(e)).collect()
    }
}

/// The weak-reference callback that forgets a collected instance's engine.
#[pyclass(frozen, module = "twat_cache._core")]
struct InstanceReaper {
    table: Weak<Table>,
    id: usize,
}

#[pymethods]
impl InstanceReaper {
    fn __call__(&self, py: Python<'_>, weakref: &Bound<'_, PyAny>) {
        let Some(table) = self.table.upgrade() else {
            return;
        };
        let mut table = table.lock_py_attached(py);
        // Only if the entry still belongs to this weakref (the address may have been
        // reused by a newer instance that registered its own).
        let ours = table
            .get(&self.id)
            .is_some_and(|(wr, _)| wr.as_ptr() == weakref.as_ptr());
        let removed = if ours { table.remove(&self.id) } else { None };
        drop(table);
        drop(removed);
    }
}
