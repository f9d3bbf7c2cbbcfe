//! The one place where core errors become Python exceptions.
//!
//! The exception classes are defined in Python (`python/twat_cache/exceptions.py`) so that
//! they can subclass two bases (`ConfigurationError(TwatCacheError, ValueError)`); this
//! module looks them up by name.

use crate::once::PyLazy;
use pyo3::prelude::*;
use pyo3::types::PyType;

fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyLazy<Py<PyModule>> = PyLazy::new();
    let module =
        MODULE.get_or_try_init(py, || py.import("twat_cache.exceptions").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// Maps a core [`twat_cache::Error`] to its Python exception.
pub fn to_py_err(py: Python<'_>, err: twat_cache::Error) -> PyErr {
    let class = match &err {
        twat_cache::Error::InvalidConfig { .. } => "ConfigurationError",
        _ => "TwatCacheError",
    };
    match exception_class(py, class) {
        Ok(cls) => PyErr::from_type(cls, err.to_string()),
        Err(import_failed) => import_failed,
    }
}

/// Logs a warning on the `twat_cache` logger (a failure inside the cache that the
/// caller does not see as an exception).
pub fn warn(py: Python<'_>, message: &str) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("twat_cache",)))
        .and_then(|logger| logger.call_method1("warning", (message,)));
    if let Err(e) = logged {
        e.write_unraisable(py, None);
    }
}
