//! The native part of the `twat_cache` Python package (`twat_cache._core`).
//!
//! A thin binding over the `twat-cache` crate: argument-to-key conversion, the cached
//! callable whose hit path runs without Python bytecode, and error mapping.

mod admin;
mod arrays;
mod async_slot;
mod buffer;
mod cached;
mod canonical;
mod content;
mod counters;
mod engine;
mod errors;
mod fresh;
mod handle;
mod holder;
mod instances;
mod jitter;
mod key;
mod local;
mod once;
mod options;
mod persistent;
mod ready;
mod refresh;
mod release;
mod state;
mod store_engine;
mod vectorcall;
mod waiting;
mod wire;

use pyo3::prelude::*;

/// Before `os.fork()`: waits until no thread of the engines holds one of their locks,
/// and holds them (see `twat_cache::fork`). Registered by `twat_cache._fork`.
#[pyfunction]
fn fork_prepare(py: Python<'_>) {
    py.detach(twat_cache::fork::prepare);
}

/// After `os.fork()`, in the parent.
#[pyfunction]
fn fork_after_in_parent(py: Python<'_>) {
    py.detach(twat_cache::fork::after_in_parent);
}

/// After `os.fork()`, in the child: locks released, and every per-process resource
/// (worker pool, background thread, SQLite connections) made anew on first use.
#[pyfunction]
fn fork_after_in_child(py: Python<'_>) {
    holder::forked();
    py.detach(twat_cache::fork::after_in_child);
}

/// At interpreter exit: stops the Redis invalidation listeners and waits briefly for
/// them, so that none is inside OpenSSL while the process tears it down. Registered
/// by `twat_cache.redis`.
#[pyfunction]
fn stop_listeners(py: Python<'_>) {
    py.detach(|| twat_cache::stop_listeners(std::time::Duration::from_secs(1)));
}

/// Folds what this process counted into every store's totals now (every few seconds
/// otherwise). Registered to run at exit by `twat_cache._persistent`.
#[pyfunction]
fn fold_stats(py: Python<'_>) {
    py.detach(twat_cache::fold_all);
}

/// The extension module. It keeps no global mutable state of its own beyond locks, so it
/// declares itself safe for free-threaded Python.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The key tags are compared by identity: made here, before any thread can race.
    content::tags(m.py())?;
    m.add_function(wrap_pyfunction!(fork_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(stop_listeners, m)?)?;
    m.add_function(wrap_pyfunction!(fold_stats, m)?)?;
    m.add_class::<admin::Folder>()?;
    m.add_class::<admin::PySelection>()?;
    m.add_class::<admin::Server>()?;
    m.add_function(wrap_pyfunction!(fork_after_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(fork_after_in_child, m)?)?;
    m.add("DEFAULT_LOCAL", local::DEFAULT_LOCAL)?;
    m.add_class::<cached::CachedFunction>()?;
    vectorcall::install(m.py())?;
    m.add_class::<cached::BoundCachedFunction>()?;
    m.add_class::<content::KeyTag>()?;
    m.add_class::<persistent::PersistentFunction>()?;
    m.add_class::<ready::Ready>()?;
    m.add_class::<handle::MemoryHandle>()?;
    m.add_class::<handle::DiskHandle>()?;
    m.add_class::<async_slot::MemorySlot>()?;
    m.add_class::<async_slot::DiskSlot>()?;
    m.add_class::<wire::LoopWire>()?;
    m.add(
        "POLICIES",
        twat_cache::Policy::ALL.map(|p| p.name()).to_vec(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
