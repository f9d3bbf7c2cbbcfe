//! Counters as Python sees them: `cache_info()` (a `CacheInfo` named tuple) and
//! `cache_stats()` (a dict), for memory engines and folders alike.

use std::sync::Arc;

use crate::once::PyLazy;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use twat_cache::{Counter, Counts, Stats};

use crate::engine::{EngineConfig, MemoryEngine};
use crate::errors::to_py_err;
use crate::store_engine::StoreEngine;

fn total(py: Python<'_>, engines: &[Arc<MemoryEngine>]) -> (Stats, u64) {
    engines
        .iter()
        .fold((Stats::default(), 0), |(acc, errs), e| {
            let (s, se) = e.stats(py);
            (
                Stats {
                    hits: acc.hits + s.hits,
                    misses: acc.misses + s.misses,
                    evictions: acc.evictions + s.evictions,
                    expirations: acc.expirations + s.expirations,
                    stale_hits: acc.stale_hits + s.stale_hits,
                    entries: acc.entries + s.entries,
                },
                errs + se,
            )
        })
}

pub fn cache_info(
    py: Python<'_>,
    engines: &[Arc<MemoryEngine>],
    config: EngineConfig,
) -> PyResult<Py<PyAny>> {
    static CACHE_INFO: PyLazy<Py<PyAny>> = PyLazy::new();
    let class = CACHE_INFO.import(py, "twat_cache._types", "CacheInfo")?;
    let (s, _) = total(py, engines);
    Ok(class
        .bind(py)
        .call1((s.hits, s.misses, config.max_size, s.entries))?
        .unbind())
}

pub fn cache_stats<'py>(
    py: Python<'py>,
    engines: &[Arc<MemoryEngine>],
) -> PyResult<Bound<'py, PyDict>> {
    let (s, store_errors) = total(py, engines);
    let d = PyDict::new(py);
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("hit_ratio", s.hit_ratio())?;
    d.set_item("stale_hits", s.stale_hits)?;
    d.set_item("evictions", s.evictions)?;
    d.set_item("expirations", s.expirations)?;
    d.set_item("entries", s.entries)?;
    // The memory engine does not measure the size of Python objects.
    d.set_item("bytes", py.None())?;
    d.set_item("store_errors", store_errors)?;
    Ok(d)
}

/// The counters of `counts` into `d`, by their names, with the hit ratio.
fn set_counts(d: &Bound<'_, PyDict>, counts: &Counts) -> PyResult<()> {
    for c in Counter::ALL {
        d.set_item(c.name(), counts[c])?;
    }
    d.set_item("hit_ratio", counts.hit_ratio())
}

/// Counters as a dict: this process's hits, misses, hit_ratio, stale_hits, evictions
/// and expirations it carried out, store_errors, bytes_written and bytes_read; the
/// cache's entries and bytes now; `all_processes`, the same counters summed over every
/// process that used the cache (folded in every few seconds; `None` when the store
/// cannot be reached); and for Redis, `errors` and `breaker`.
pub fn disk_stats<'py>(py: Python<'py>, engine: &StoreEngine) -> PyResult<Bound<'py, PyDict>> {
    let usage = engine
        .usage_if_reachable(py)
        .map_err(|e| to_py_err(py, e))?;
    let (entries, bytes) = (usage.map(|u| u.0), usage.map(|u| u.1));
    let d = PyDict::new(py);
    set_counts(&d, &engine.counts())?;
    d.set_item("entries", entries)?;
    d.set_item("bytes", bytes)?;
    match engine.shared_counts(py) {
        Some(all) => {
            let shared = PyDict::new(py);
            set_counts(&shared, &all)?;
            d.set_item("all_processes", shared)?;
        }
        None => d.set_item("all_processes", py.None())?,
    }
    if let Some(health) = engine.health() {
        // A networked store: its failed commands and its circuit breaker.
        d.set_item("errors", health.errors)?;
        d.set_item("breaker", health.breaker)?;
    }
    Ok(d)
}
