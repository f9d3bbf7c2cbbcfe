//! The local tier of a persistent cache (`local=` on `bcache`, `fcache`, `rcache`): the
//! values of recent calls, ready as Python objects, in this process, in front of the
//! shared store. A hit costs what an `mcache` hit costs, plus a check that the shared
//! store still holds the same entry.
//!
//! Coherence comes from the store's generation table ([`Generations`]): a copy is
//! stamped with its key's counters *before* the store is read, and served only while
//! they are unchanged; every process bumps them when it removes or replaces an entry
//! (a folder: a mapped file; Redis: the invalidations the server pushes). So no copy
//! outlives the entry it was read from, even one read while the entry was replaced.
//!
//! Only calls whose arguments are plain values (exact `int`, `str`, `bytes`, `float`,
//! `bool`, `None`, and tuples of them) use the tier, keyed by those values and their
//! types: for them Python's equality is the persistent key's equality. Other calls go
//! to the shared store, keyed by content as always.
//!
//! Copies are only made from entries read from the store, never from a value this
//! process just computed: a stamp taken after our own write could hide another
//! process's later one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use twat_cache::{Generations, KeyDigest, Policy, Stamp, Store};

use crate::content::{is_plain_key, KeyTag};
use crate::holder::Guarded;
use crate::key::{KeyBuilder, PyKey};
use crate::release::Release;
use crate::store_engine::StoreEngine;

/// `local=True`: this many entries.
pub const DEFAULT_LOCAL: usize = 1024;

/// A copy of one stored entry.
struct Copy {
    value: Py<PyAny>,
    digest: KeyDigest,
    stamp: Stamp,
}

impl Release for Copy {
    fn release(self, py: Python<'_>) {
        self.value.release(py);
    }
}

/// A persistent cache's local tier.
pub struct LocalTier {
    store: Guarded<Store<PyKey, Copy>>,
    generations: OnceLock<Arc<Generations>>,
    size: usize,
    /// Calls answered here.
    pub hits: AtomicU64,
}

/// What a call that missed the tier needs to fill it from the store's answer.
pub struct Fill {
    key: Py<PyAny>,
    hash: isize,
    stamp: Stamp,
}

impl LocalTier {
    /// A tier of `size` entries in front of `engine`'s store (for Redis this starts
    /// the invalidation listeners now, rather than in a call).
    pub fn open(py: Python<'_>, size: usize, engine: &StoreEngine) -> Self {
        let tier = LocalTier {
            store: Guarded::new(Store::new(Some(size), None, Policy::TinyLfu)),
            generations: OnceLock::new(),
            size,
            hits: AtomicU64::new(0),
        };
        tier.table(py, engine);
        tier
    }

    /// The store's generation table, taken from the engine the first time it has one
    /// (a store that could not be opened at decoration time may open later).
    fn table(&self, py: Python<'_>, engine: &StoreEngine) -> Option<&Arc<Generations>> {
        if let Some(table) = self.generations.get() {
            return Some(table);
        }
        let _ = self.generations.set(engine.generations(py)?);
        self.generations.get()
    }

    /// The number of entries it holds at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The tier's key of a call, when its arguments are plain values.
    #[inline]
    pub fn key<'py>(
        &self,
        keys: &KeyBuilder,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, isize)>> {
        Ok(keys.build(args, kwargs, 0)?.filter(|(k, _)| is_plain(k, 0)))
    }

    /// The copy for `key`, while the store still holds its entry (a stale copy goes).
    #[inline]
    pub fn get(&self, key: &Bound<'_, PyAny>, hash: isize) -> Option<Py<PyAny>> {
        let generations = self.generations.get()?;
        let py = key.py();
        let mut store = self.store.lock(py)?;
        let same = |k: &PyKey| {
            k.matches(key)
                .map(|eq| eq && same_types(k.obj.bind(py), key))
        };
        let found = match store.get_by(hash as u64, same) {
            Ok(Some(copy)) if generations.holds(copy.digest, copy.stamp) => {
                Some(copy.value.clone_ref(py))
            }
            Ok(Some(_)) => {
                let _ = store.remove_by(hash as u64, same);
                None
            }
            _ => None,
        };
        let removed = store.take_removed();
        drop(store);
        removed.release(py);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Before `engine`'s store is read for `digest`: what a copy of its answer needs.
    pub fn fill(
        &self,
        engine: &StoreEngine,
        key: &Bound<'_, PyAny>,
        hash: isize,
        digest: KeyDigest,
    ) -> Option<Fill> {
        let stamp = self.table(key.py(), engine)?.stamp(digest)?;
        Some(Fill {
            key: key.clone().unbind(),
            hash,
            stamp,
        })
    }

    /// Keeps a copy of a fresh value read from the store for `digest`, for `ttl` (its
    /// entry's time left; `None`: no expiry).
    pub fn put(
        &self,
        py: Python<'_>,
        fill: Fill,
        digest: KeyDigest,
        value: &Py<PyAny>,
        ttl: Option<Duration>,
    ) {
        if ttl.is_some_and(|t| t.is_zero()) {
            return;
        }
        let Some(mut store) = self.store.lock(py) else {
            return;
        };
        let copy = Copy {
            value: value.clone_ref(py),
            digest,
            stamp: fill.stamp,
        };
        let key = fill.key.bind(py).clone();
        let entry = PyKey {
            obj: fill.key.clone_ref(py),
        };
        let _ = store.insert_expiring_by(fill.hash as u64, entry, copy, ttl, |old, _| {
            old.matches(&key)
                .map(|eq| eq && same_types(old.obj.bind(py), &key))
        });
        let removed = store.take_removed();
        drop(store);
        removed.release(py);
    }

    /// Drops every copy (the store was cleared by this process).
    pub fn clear(&self, py: Python<'_>) {
        let Some(mut store) = self.store.lock(py) else {
            return;
        };
        store.clear();
        let removed = store.take_removed();
        drop(store);
        removed.release(py);
        self.hits.store(0, Ordering::Relaxed);
    }

    /// How many copies it holds.
    pub fn len(&self, py: Python<'_>) -> usize {
        self.store.lock(py).map_or(0, |s| s.len())
    }
}

/// Whether a key is made of plain values only (see the module docs).
fn is_plain(key: &Bound<'_, PyAny>, depth: usize) -> bool {
    if is_plain_key(key) || key.is_exact_instance_of::<KeyTag>() {
        return true;
    }
    match key.cast_exact::<PyTuple>() {
        Ok(t) if depth < 8 => t.iter().all(|x| is_plain(&x, depth + 1)),
        _ => false,
    }
}

/// Whether two equal plain keys also have the same types throughout (`1`, `1.0` and
/// `True` are equal in Python, and different keys in the store).
#[inline]
fn same_types(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> bool {
    if a.is(b) {
        return true;
    }
    if !a.get_type().is(b.get_type()) {
        return false;
    }
    match (a.cast_exact::<PyTuple>(), b.cast_exact::<PyTuple>()) {
        (Ok(x), Ok(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_types(&p, &q))
        }
        _ => true,
    }
}
