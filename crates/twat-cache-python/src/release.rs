//! Dropping Python references where the thread is known to be attached.
//!
//! `Py<T>`'s own drop decrements the count at once only when PyO3 counts the thread as
//! attached. A call that CPython makes straight into the vectorcall entry
//! (`vectorcall.rs`) is attached without PyO3 knowing (`Python::assume_attached`), so
//! every `Py` dropped under it went to PyO3's pool instead: a mutex and a push per
//! object, drained at the next PyO3 entry. An `mcache` miss drops three (the evicted
//! key and value, the flight's key): 6% of its time went there. With a token in hand,
//! [`Release::release`] decrements at once.

use pyo3::prelude::*;
use twat_cache::Removed;

use crate::key::PyKey;

/// Python references given up now, with the thread attached (`py` says so).
pub trait Release {
    fn release(self, py: Python<'_>);
}

impl<T> Release for Py<T> {
    #[inline]
    fn release(self, py: Python<'_>) {
        // A `Bound`'s drop decrements unconditionally: its token proves attachment.
        drop(self.into_bound(py));
    }
}

impl Release for PyKey {
    #[inline]
    fn release(self, py: Python<'_>) {
        self.obj.release(py);
    }
}

impl<K: Release, V: Release> Release for Removed<K, V> {
    #[inline]
    fn release(self, py: Python<'_>) {
        if self.is_empty() {
            // Every hit hands back an empty one: no iterator to build and drop.
            return;
        }
        for (key, value) in self {
            key.release(py);
            value.release(py);
        }
    }
}
