//! The result of an async cached function's hit: an awaitable that is already done.
//!
//! A hit must not build a Python coroutine (that is what makes `async_lru` cost ~0.8 us a
//! call): the native call returns a [`Ready`] holding the value, and `await` finishes
//! at its first step by raising `StopIteration(value)`, the protocol by which every
//! awaitable returns. `Ready` also has `send`, `throw` and `close`, so `asyncio` takes it
//! for a coroutine (`asyncio.run`, `create_task` and `gather` accept it). Unlike a
//! coroutine it may be awaited any number of times.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

/// An awaitable whose value is already known (a cache hit of an async function).
// A free list: a hit allocates one of these, and reusing freed ones skips the allocator.
#[pyclass(frozen, freelist = 64, module = "twat_cache._core")]
pub struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub fn wrap(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        Ok(Py::new(py, Ready { value })?.into_any())
    }

    /// `await` ends at the first step, with the value.
    fn finish(&self, py: Python<'_>) -> PyErr {
        PyStopIteration::new_err((self.value.clone_ref(py),))
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(self.finish(py))
    }

    /// The coroutine protocol: any value sent in finishes the await.
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _ = value;
        Err(self.finish(py))
    }

    /// The coroutine protocol: an exception thrown in is raised (there is nothing to
    /// clean up).
    #[pyo3(signature = (exc, value=None, traceback=None))]
    fn throw(
        &self,
        exc: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = traceback;
        let err = match value.filter(|v| !v.is_none()) {
            Some(v) if v.is_instance_of::<pyo3::exceptions::PyBaseException>() => {
                PyErr::from_value(v.clone())
            }
            Some(v) => PyErr::from_value(exc.call1((v,))?),
            None if exc.is_instance_of::<pyo3::types::PyType>() => PyErr::from_value(exc.call0()?),
            None => PyErr::from_value(exc.clone()),
        };
        Err(err)
    }

    /// The coroutine protocol: nothing is running, so nothing to close.
    fn close(&self) {}

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("<cached result {}>", self.value.bind(py).repr()?))
    }
}
