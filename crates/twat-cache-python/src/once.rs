//! Python objects the binding looks up once (classes, functions, key tags), made without
//! making other threads wait.
//!
//! `pyo3::sync::PyOnceLock` lets one thread initialize while the others block, and the
//! initializer runs Python code (imports, attribute lookups) that may release the GIL.
//! If another thread forks meanwhile, the child inherits a lock that is "being
//! initialized" forever, and its first call that needs it hangs. Here racing threads
//! each compute the value and the first one stored wins: nothing ever waits.

use std::sync::OnceLock;

use pyo3::Python;

/// A value computed on first use (see the module docs).
pub struct PyLazy<T>(OnceLock<T>);

impl<T> PyLazy<T> {
    pub const fn new() -> Self {
        PyLazy(OnceLock::new())
    }

    /// The value, if it has been made.
    #[inline]
    pub fn get(&self, _py: Python<'_>) -> Option<&T> {
        self.0.get()
    }

    /// The value, made by `f` if it is not there yet (a value another thread stored
    /// meanwhile wins; ours is dropped, with the GIL held).
    #[inline]
    pub fn get_or_try_init<E>(
        &self,
        py: Python<'_>,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<&T, E> {
        if let Some(v) = self.get(py) {
            return Ok(v);
        }
        let made = f()?;
        let _ = self.0.set(made);
        Ok(self.0.get().expect("stored just now"))
    }

    /// [`PyLazy::get_or_try_init`] for a value that cannot fail.
    #[inline]
    pub fn get_or_init(&self, py: Python<'_>, f: impl FnOnce() -> T) -> &T {
        match self.get_or_try_init(py, || Ok::<T, std::convert::Infallible>(f())) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
}

impl PyLazy<pyo3::Py<pyo3::PyAny>> {
    /// `module.name` (a function of the package's Python side, say), imported the
    /// first time it is needed and kept.
    pub fn import(
        &self,
        py: Python<'_>,
        module: &str,
        name: &str,
    ) -> pyo3::PyResult<&pyo3::Py<pyo3::PyAny>> {
        use pyo3::prelude::*;
        self.get_or_try_init(py, || Ok(py.import(module)?.getattr(name)?.unbind()))
    }
}

/// The module `name` if the program has imported it (`sys.modules` is looked up once:
/// this runs for every argument that is not of a builtin type).
pub fn imported<'py>(
    py: Python<'py>,
    name: &str,
) -> pyo3::PyResult<Option<pyo3::Bound<'py, pyo3::PyAny>>> {
    use pyo3::prelude::*;
    static MODULES: PyLazy<pyo3::Py<pyo3::types::PyDict>> = PyLazy::new();
    let modules = MODULES.get_or_try_init(py, || -> pyo3::PyResult<_> {
        let modules = py.import("sys")?.getattr("modules")?;
        Ok(modules.cast_into::<pyo3::types::PyDict>()?.unbind())
    })?;
    modules.bind(py).get_item(name)
}

/// A class of the standard library or of numpy, looked up only once its module has
/// been imported by the program (no instance of it can exist before): a cache call
/// never imports a module, so it never waits for another thread's import, nor leaves
/// a half-done one behind for a forked child.
pub struct LoadedClass {
    module: &'static str,
    name: &'static str,
    class: PyLazy<pyo3::Py<pyo3::types::PyType>>,
}

impl LoadedClass {
    pub const fn new(module: &'static str, name: &'static str) -> Self {
        LoadedClass {
            module,
            name,
            class: PyLazy::new(),
        }
    }

    /// The class, or `None` while its module is not imported.
    pub fn get<'py>(
        &self,
        py: Python<'py>,
    ) -> pyo3::PyResult<Option<&pyo3::Bound<'py, pyo3::types::PyType>>> {
        use pyo3::prelude::*;
        if let Some(class) = self.class.get(py) {
            return Ok(Some(class.bind(py)));
        }
        let Some(module) = imported(py, self.module)? else {
            return Ok(None);
        };
        let class = module
            .getattr(self.name)?
            .cast_into::<pyo3::types::PyType>()?;
        Ok(Some(self.class.get_or_init(py, || class.unbind()).bind(py)))
    }

    /// Whether `obj` is an instance of the class (`false` while it is not imported).
    pub fn holds(&self, obj: &pyo3::Bound<'_, pyo3::PyAny>) -> pyo3::PyResult<bool> {
        use pyo3::prelude::*;
        match self.get(obj.py())? {
            Some(class) => obj.is_instance(class),
            None => Ok(false),
        }
    }
}

/// The class of `known`, for a caller that just saw an instance of it.
pub fn loaded<'py>(
    known: &LoadedClass,
    py: Python<'py>,
) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyType>> {
    match known.get(py)? {
        Some(class) => Ok(class.clone()),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "{}.{} is no longer imported",
            known.module, known.name
        ))),
    }
}

/// The classes the key rules know.
pub static ENUM: LoadedClass = LoadedClass::new("enum", "Enum");
pub static ORDERED_DICT: LoadedClass = LoadedClass::new("collections", "OrderedDict");
pub static DEFAULT_DICT: LoadedClass = LoadedClass::new("collections", "defaultdict");
pub static FRACTION: LoadedClass = LoadedClass::new("fractions", "Fraction");
pub static DECIMAL: LoadedClass = LoadedClass::new("decimal", "Decimal");
pub static PURE_PATH: LoadedClass = LoadedClass::new("pathlib", "PurePath");
pub static DATE: LoadedClass = LoadedClass::new("datetime", "date");
pub static TIME: LoadedClass = LoadedClass::new("datetime", "time");
pub static TIMEDELTA: LoadedClass = LoadedClass::new("datetime", "timedelta");
pub static MASKED_ARRAY: LoadedClass = LoadedClass::new("numpy.ma", "MaskedArray");
