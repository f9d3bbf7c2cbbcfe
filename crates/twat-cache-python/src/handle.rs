//! Engines used directly as key-value stores: what `CacheContext` hands out
//! (python/twat_cache/context.py wraps them). Keys go through the same key builder as
//! a cached function's single argument, so any value a decorator accepts as an
//! argument is a key (lists and dicts by content, `1 == 1.0` unless `typed`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use twat_cache::KeyDigest;

use crate::canonical::call_digest;
use crate::counters::cache_stats;
use crate::counters::disk_stats;
use crate::engine::{EngineConfig, MemoryEngine};
use crate::errors::to_py_err;
use crate::key::KeyBuilder;
use crate::local::LocalTier;
use crate::options::{self, serializer_identity, SerializerSpec, StoreSpec};
use crate::persistent::place;
use crate::store_engine::StoreEngine;

/// A key builder for one positional parameter, `key`.
fn one_key(py: Python<'_>, typed: bool) -> KeyBuilder {
    let param = (
        PyString::intern(py, "key").unbind(),
        1,
        false,
        py.None(),
        false,
    );
    KeyBuilder::new(vec![param], typed, None)
}

/// One positional argument always binds to `(key)`; this is only a guard.
fn unbound() -> PyErr {
    pyo3::exceptions::PyTypeError::new_err("a cache key must be one value")
}

/// A memory engine used directly.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct MemoryHandle {
    engine: Arc<MemoryEngine>,
    keys: KeyBuilder,
}

impl MemoryHandle {
    fn key<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, isize)> {
        let args = PyTuple::new(key.py(), [key])?;
        self.keys.build(&args, None, 0)?.ok_or_else(unbound)
    }
}

#[pymethods]
impl MemoryHandle {
    #[new]
    #[pyo3(signature = (*, maxsize, ttl, policy, typed))]
    fn new(
        py: Python<'_>,
        maxsize: Option<usize>,
        ttl: Option<f64>,
        policy: &str,
        typed: bool,
    ) -> PyResult<Self> {
        let config = EngineConfig {
            max_size: maxsize,
            ttl: options::ttl(py, ttl)?,
            policy: options::policy(py, policy)?,
            jitter: None,
        };
        Ok(Self {
            engine: MemoryEngine::new(config, None),
            keys: one_key(py, typed),
        })
    }

    /// `(True, value)` when `key` is stored (counted as a hit), else `(False, None)`.
    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<(bool, Py<PyAny>)> {
        let (key, hash) = self.key(key)?;
        Ok(match self.engine.get(&key, hash)? {
            Some(v) => (true, v),
            None => (false, key.py().None()),
        })
    }

    /// Stores `value`; `ttl` seconds overrides the handle's TTL for this entry.
    #[pyo3(signature = (key, value, ttl=None))]
    fn set(&self, key: &Bound<'_, PyAny>, value: Py<PyAny>, ttl: Option<f64>) -> PyResult<bool> {
        let ttl = options::ttl(key.py(), ttl)?;
        let (key, hash) = self.key(key)?;
        self.engine.set_expiring(&key, hash, value, ttl);
        Ok(true)
    }

    fn delete(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (key, hash) = self.key(key)?;
        self.engine.delete(&key, hash)
    }

    /// Whether `key` is stored (not counted).
    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (key, hash) = self.key(key)?;
        Ok(self.engine.peek(&key, hash)?.is_some())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.engine.stats(py).0.entries
    }

    fn clear(&self, py: Python<'_>) {
        self.engine.clear(py);
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        cache_stats(py, std::slice::from_ref(&self.engine))
    }

    /// Reclaims expired entries now; returns how many (the registry's sweeper calls it).
    fn purge_expired(&self, py: Python<'_>) -> usize {
        self.engine.purge_expired(py)
    }

    /// Entries of a memory handle live as long as it is open.
    fn close(&self, py: Python<'_>) {
        self.engine.clear(py);
    }
}

/// A persistent store (the `disk`, `file` or `redis` engine) used directly. Entries of
/// one handle name are shared by every process that opens the store with that name.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct DiskHandle {
    engine: StoreEngine,
    keys: KeyBuilder,
    identity: String,
    secure: bool,
    /// `local=`: copies of recent values in this process (`local.rs`).
    local: Option<LocalTier>,
}

impl DiskHandle {
    fn key(&self, key: &Bound<'_, PyAny>) -> PyResult<KeyDigest> {
        let args = PyTuple::new(key.py(), [key])?;
        call_digest(&self.keys, &self.identity, self.secure, &args, None)?.ok_or_else(unbound)
    }
}

#[pymethods]
impl DiskHandle {
    #[new]
    #[pyo3(signature = (*, kind, folder=None, name, maxsize, ttl, policy, compress, mmap, secret, typed, secure, durable, url=None, namespace=None, timeout=None, serializer=None, local=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        folder: Option<PathBuf>,
        name: String,
        maxsize: Option<u64>,
        ttl: Option<f64>,
        policy: &str,
        compress: &str,
        mmap: bool,
        secret: Option<Vec<u8>>,
        typed: bool,
        secure: bool,
        durable: bool,
        url: Option<String>,
        namespace: Option<String>,
        timeout: Option<f64>,
        serializer: Option<SerializerSpec>,
        local: Option<usize>,
    ) -> PyResult<Self> {
        // Handles of one namespace share their entries, whatever their registry names.
        let ns = namespace.unwrap_or(name);
        let identity = format!("{ns}\0context{}", serializer_identity(&serializer));
        let engine = StoreSpec {
            kind: StoreSpec::kind(py, kind)?,
            place: place(py, folder, url, timeout)?,
            ns,
            maxsize,
            ttl,
            jitter: None,
            policy: policy.to_owned(),
            compress: compress.to_owned(),
            mmap,
            secret,
            durable,
            lock_wait: None,
            serializer,
            fresh: None,
            version: None,
        }
        .open(py)?;
        let local = local
            .filter(|&n| n > 0)
            .map(|size| LocalTier::open(py, size, &engine));
        Ok(Self {
            engine,
            keys: one_key(py, typed),
            identity,
            secure,
            local,
        })
    }

    /// `(True, value)` when `key` is stored (counted as a hit), else `(False, None)`.
    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<(bool, Py<PyAny>)> {
        let py = key.py();
        let args = PyTuple::new(py, [key])?;
        let local_key = match &self.local {
            Some(tier) => tier.key(&self.keys, &args, None)?,
            None => None,
        };
        if let (Some(tier), Some((k, hash))) = (&self.local, &local_key) {
            if let Some(v) = tier.get(k, *hash) {
                self.engine.count(true);
                return Ok((true, v));
            }
        }
        let digest = self.key(key)?;
        let Some(tier) = self.local.as_ref() else {
            return Ok(match self.engine.load_counted(py, digest) {
                Some(v) => (true, v),
                None => (false, py.None()),
            });
        };
        // Stamped before the store is read, as a cached function's tier is.
        let fill = local_key.and_then(|(k, hash)| tier.fill(&self.engine, &k, hash, digest));
        let found = self.engine.load_fresh(py, digest);
        self.engine.count(found.is_some());
        Ok(match found {
            Some((v, left)) => {
                if let Some(fill) = fill {
                    tier.put(py, fill, digest, &v, left);
                }
                (true, v)
            }
            None => (false, py.None()),
        })
    }

    /// Stores `value`; `False` if it could not be (a warning says why). `ttl` seconds
    /// overrides the handle's TTL for this entry.
    #[pyo3(signature = (key, value, ttl=None))]
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<bool> {
        let ttl = options::ttl(key.py(), ttl)?;
        let digest = self.key(key)?;
        Ok(self.engine.save_expiring(value, digest, ttl))
    }

    fn delete(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let digest = self.key(key)?;
        self.engine.delete(py, digest).map_err(|e| to_py_err(py, e))
    }

    /// Whether `key` is stored and live; reads the index only, not the value.
    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let digest = self.key(key)?;
        self.engine
            .contains(py, digest)
            .map_err(|e| to_py_err(py, e))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let (entries, _) = self.engine.usage(py).map_err(|e| to_py_err(py, e))?;
        Ok(entries as usize)
    }

    /// Removes this handle's entries (other names in the folder keep theirs).
    fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        if let Some(tier) = &self.local {
            tier.clear(py);
        }
        self.engine.clear(py).map_err(|e| to_py_err(py, e))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = disk_stats(py, &self.engine)?;
        if let Some(tier) = &self.local {
            d.set_item(
                "local_hits",
                tier.hits.load(std::sync::atomic::Ordering::Relaxed),
            )?;
            d.set_item("local_entries", tier.len(py))?;
        }
        Ok(d)
    }

    /// Writes pending access records; the entries stay on disk.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.engine.flush(py).map_err(|e| to_py_err(py, e))
    }

    /// The folder of a disk or file handle (`None` for Redis).
    #[getter]
    fn folder(&self) -> Option<PathBuf> {
        self.engine.dir().map(std::path::Path::to_path_buf)
    }
}
