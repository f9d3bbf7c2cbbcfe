//! What the `twat-cache` command line sees: a cache folder ([`Folder`], over the
//! core's `DiskStore` maintenance calls) or a Redis server ([`Server`]). Plain values
//! in and out (dicts, tuples, keys as 32 hex digits); all file, database and network
//! work runs with the GIL released. The command itself is `twat_cache._cli`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use twat_cache::{
    ByteStore, CacheSummary, Counter, Counts, DiskStore, EntryInfo, KeyDigest, RedisConfig,
    RedisStore, Selection, Signer, Verdict,
};

use crate::errors::to_py_err;

fn counts_dict<'py>(py: Python<'py>, counts: &Counts) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for c in Counter::ALL {
        d.set_item(c.name(), counts[c])?;
    }
    d.set_item("hit_ratio", counts.hit_ratio())?;
    Ok(d)
}

fn summary_dict<'py>(py: Python<'py>, c: &CacheSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &c.ns)?;
    d.set_item("entries", c.entries)?;
    d.set_item("bytes", c.bytes)?;
    d.set_item("expired", c.expired)?;
    d.set_item("oldest_us", c.oldest)?;
    d.set_item("newest_us", c.newest)?;
    d.set_item("accessed_us", c.accessed)?;
    d.set_item("engine", &c.about.engine)?;
    d.set_item("policy", &c.about.policy)?;
    d.set_item("ttl", c.about.ttl)?;
    d.set_item("max_bytes", c.about.max_bytes)?;
    d.set_item("version", &c.about.version)?;
    d.set_item("since_us", c.since)?;
    d.set_item("seen_us", c.seen)?;
    match &c.counts {
        Some(counts) => d.set_item("stats", counts_dict(py, counts)?)?,
        None => d.set_item("stats", py.None())?,
    }
    Ok(d)
}

fn entry_dict<'py>(py: Python<'py>, e: &EntryInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", format!("{:032x}", e.key))?;
    d.set_item("name", &e.ns)?;
    d.set_item("bytes", e.size)?;
    d.set_item("stored_us", e.stored)?;
    d.set_item("used_us", e.used)?;
    d.set_item("expires_us", e.expires)?;
    d.set_item("file", &e.file)?;
    Ok(d)
}

fn key_of(py: Python<'_>, hex: &str) -> PyResult<KeyDigest> {
    if hex.len() == 32 {
        if let Ok(k) = u128::from_str_radix(hex, 16) {
            return Ok(k);
        }
    }
    Err(crate::options::bad_config(
        py,
        "key",
        format!("{hex:?}"),
        "32 hexadecimal digits",
    ))
}

/// Which entries of a folder a call works on (`twat_cache._core.Selection`): every
/// field left out selects all.
#[pyclass(module = "twat_cache._core", name = "Selection", frozen)]
pub struct PySelection(Selection);

#[pymethods]
impl PySelection {
    #[new]
    #[pyo3(signature = (*, ns=None, used_before=None, expired=false, key_prefix=None))]
    fn new(
        ns: Option<String>,
        used_before: Option<i64>,
        expired: bool,
        key_prefix: Option<String>,
    ) -> Self {
        PySelection(Selection {
            ns,
            used_before,
            expired,
            key_prefix,
        })
    }

    fn __repr__(&self) -> String {
        let s = &self.0;
        format!(
            "Selection(ns={:?}, used_before={:?}, expired={}, key_prefix={:?})",
            s.ns, s.used_before, s.expired, s.key_prefix
        )
    }
}

/// A cache folder opened for inspection and maintenance. Refuses (with
/// `ConfigurationError`) a folder that is not a cache, and creates nothing in one.
#[pyclass(module = "twat_cache._core", frozen)]
pub struct Folder {
    store: DiskStore,
}

#[pymethods]
impl Folder {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let store = py
            .detach(|| DiskStore::open_existing(&path))
            .map_err(|e| to_py_err(py, e))?;
        Ok(Folder { store })
    }

    /// The folder's eviction policy, as its caches last recorded it.
    #[getter]
    fn policy(&self) -> &'static str {
        self.store.config().policy.name()
    }

    /// Every cache in the folder: a dict each.
    fn caches<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let found = py
            .detach(|| self.store.caches())
            .map_err(|e| to_py_err(py, e))?;
        found.iter().map(|c| summary_dict(py, c)).collect()
    }

    /// The bytes of all entries, as the index's total keeps them.
    fn folder_bytes(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.store.folder_bytes())
            .map_err(|e| to_py_err(py, e))
    }

    /// Up to `limit` selected entries after row `after`, and the row to continue from.
    #[pyo3(signature = (sel, *, after=None, limit=1000))]
    fn entries<'py>(
        &self,
        py: Python<'py>,
        sel: &PySelection,
        after: Option<i64>,
        limit: usize,
    ) -> PyResult<(Vec<Bound<'py, PyDict>>, Option<i64>)> {
        let found = py
            .detach(|| self.store.entries(&sel.0, after, limit))
            .map_err(|e| to_py_err(py, e))?;
        let next = found.last().map(|e| e.key as u64 as i64);
        let dicts = found
            .iter()
            .map(|e| entry_dict(py, e))
            .collect::<PyResult<_>>()?;
        Ok((dicts, next))
    }

    /// The `n` largest selected entries.
    fn largest<'py>(
        &self,
        py: Python<'py>,
        sel: &PySelection,
        n: usize,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let found = py
            .detach(|| self.store.largest(&sel.0, n))
            .map_err(|e| to_py_err(py, e))?;
        found.iter().map(|e| entry_dict(py, e)).collect()
    }

    /// `(entries, bytes)` of the selection.
    fn measure(&self, py: Python<'_>, sel: &PySelection) -> PyResult<(u64, u64)> {
        py.detach(|| self.store.measure(&sel.0))
            .map_err(|e| to_py_err(py, e))
    }

    /// Removes up to `limit` selected entries after row `after` in one transaction:
    /// `(removed, bytes, next)`; call again from `next` until it is `None`.
    #[pyo3(signature = (sel, *, after=None, limit=256))]
    fn remove_batch(
        &self,
        py: Python<'_>,
        sel: &PySelection,
        after: Option<i64>,
        limit: usize,
    ) -> PyResult<(u64, u64, Option<i64>)> {
        let b = py
            .detach(|| self.store.remove_batch(&sel.0, after, limit))
            .map_err(|e| to_py_err(py, e))?;
        Ok((b.removed, b.bytes, b.next))
    }

    /// `(entries, bytes)` that eviction down to `max_bytes` would remove.
    fn eviction_plan(&self, py: Python<'_>, max_bytes: u64) -> PyResult<(u64, u64)> {
        py.detach(|| self.store.eviction_plan(max_bytes))
            .map_err(|e| to_py_err(py, e))
    }

    /// Evicts at most `limit` entries by policy towards `max_bytes`: `(removed, bytes)`.
    #[pyo3(signature = (max_bytes, limit=256))]
    fn evict_batch(&self, py: Python<'_>, max_bytes: u64, limit: usize) -> PyResult<(u64, u64)> {
        let b = py
            .detach(|| self.store.evict_batch(max_bytes, limit))
            .map_err(|e| to_py_err(py, e))?;
        Ok((b.removed, b.bytes))
    }

    /// Checks one entry: `("ok", "signed"|"unsigned"|"signed, not verified")`,
    /// `("damaged", why)` or `("gone", "")`.
    #[pyo3(signature = (key, secret=None))]
    fn verify(
        &self,
        py: Python<'_>,
        key: &str,
        secret: Option<Vec<u8>>,
    ) -> PyResult<(&'static str, String)> {
        let key = key_of(py, key)?;
        let signer = secret.map(|s| Signer::new(&s));
        let verdict = py
            .detach(|| self.store.verify(key, signer.as_ref()))
            .map_err(|e| to_py_err(py, e))?;
        Ok(match verdict {
            Verdict::Sound {
                signed,
                signature_checked,
            } => (
                "ok",
                match (signed, signature_checked) {
                    (false, _) => "unsigned",
                    (true, true) => "signed",
                    (true, false) => "signed, not verified",
                }
                .to_owned(),
            ),
            Verdict::Damaged(why) => ("damaged", why),
            Verdict::Gone => ("gone", String::new()),
        })
    }

    /// Removes entry `key` if it is (still) damaged; whether it went.
    #[pyo3(signature = (key, secret=None))]
    fn remove_damaged(&self, py: Python<'_>, key: &str, secret: Option<Vec<u8>>) -> PyResult<bool> {
        let key = key_of(py, key)?;
        let signer = secret.map(|s| Signer::new(&s));
        py.detach(|| self.store.remove_damaged(key, signer.as_ref()))
            .map_err(|e| to_py_err(py, e))
    }

    /// Files left by killed writers: `(files, bytes)`, removed when `remove` is true.
    fn leftovers(&self, py: Python<'_>, remove: bool) -> PyResult<(u64, u64)> {
        py.detach(|| self.store.leftovers(remove))
            .map_err(|e| to_py_err(py, e))
    }

    /// Sets the totals of one cache (or all) to zero; how many caches had totals.
    #[pyo3(signature = (ns=None))]
    fn reset_counts(&self, py: Python<'_>, ns: Option<String>) -> PyResult<u64> {
        py.detach(|| self.store.reset_counts(ns.as_deref()))
            .map_err(|e| to_py_err(py, e))
    }
}

/// A Redis or Valkey server's caches, for inspection and clearing.
#[pyclass(module = "twat_cache._core", frozen)]
pub struct Server {
    store: RedisStore,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (url, timeout=None))]
    fn new(py: Python<'_>, url: &str, timeout: Option<f64>) -> PyResult<Self> {
        let mut config = RedisConfig::new(url).map_err(|e| to_py_err(py, e))?;
        if let Some(t) = timeout {
            config.timeout = crate::options::seconds(py, "timeout", t)?;
        }
        let store = RedisStore::open(config).map_err(|e| to_py_err(py, e))?;
        Ok(Server { store })
    }

    /// The caches that have totals on the server (every cache of this version does,
    /// once a process used it for a few seconds).
    fn namespaces(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.store.counted_namespaces())
            .map_err(|e| to_py_err(py, e))
    }

    /// `(entries, bytes)` of one cache.
    fn usage(&self, py: Python<'_>, ns: &str) -> PyResult<(u64, u64)> {
        py.detach(|| self.store.usage(ns))
            .map_err(|e| to_py_err(py, e))
    }

    /// The totals of one cache over every process, or `None`.
    fn counts<'py>(&self, py: Python<'py>, ns: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let counts = py
            .detach(|| self.store.shared_counts(ns))
            .map_err(|e| to_py_err(py, e))?;
        counts.map(|c| counts_dict(py, &c)).transpose()
    }

    /// Removes every entry of one cache (its generation moves on at once; the old keys
    /// are unlinked in the background).
    fn clear(&self, py: Python<'_>, ns: &str) -> PyResult<()> {
        py.detach(|| self.store.clear(ns))
            .map(|_| ())
            .map_err(|e| to_py_err(py, e))
    }

    /// Sets one cache's totals to zero.
    fn reset_counts(&self, py: Python<'_>, ns: &str) -> PyResult<()> {
        py.detach(|| self.store.reset_counts(ns))
            .map_err(|e| to_py_err(py, e))
    }
}
