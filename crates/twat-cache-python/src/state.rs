//! Everything an object holds, for the content rules of both kinds of key (memory keys
//! in `content.rs`, persistent keys in `canonical.rs`): a key covers all of a value's
//! state or the value is refused, never keyed by part of it.

use crate::once::PyLazy;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

/// `Py_TPFLAGS_HEAPTYPE`: a class made by a `class` statement (or `type(...)`).
const HEAPTYPE: u64 = 1 << 9;

/// Why a value with [`Extra::Hidden`] state is refused (both kinds of key say it).
pub const HIDDEN: &str = "its class keeps state in __slots__ or in C that the cache cannot see";

/// What a subclass of a builtin container adds to it.
pub enum Extra<'py> {
    /// The builtin type itself: nothing.
    None,
    /// A Python subclass: its instance attributes (possibly none), to key beside the
    /// content.
    Attrs(Bound<'py, PyDict>),
    /// State the cache cannot see (`__slots__`, or a class written in C).
    Hidden,
}

/// The state `obj` (an instance of `base` or of a subclass of it) has beyond `base`.
pub fn extra<'py>(obj: &Bound<'py, PyAny>, base: &Bound<'py, PyType>) -> PyResult<Extra<'py>> {
    let py = obj.py();
    let t = obj.get_type();
    if t.is(base) {
        return Ok(Extra::None);
    }
    let mro = t.getattr(pyo3::intern!(py, "__mro__"))?;
    for cls in mro.cast::<PyTuple>()?.iter() {
        if cls.is(base) {
            break;
        }
        let cls = cls.cast_into::<PyType>()?;
        let flags: u64 = cls.getattr(pyo3::intern!(py, "__flags__"))?.extract()?;
        let own = cls.getattr(pyo3::intern!(py, "__dict__"))?;
        let slots = own.get_item(pyo3::intern!(py, "__slots__")).ok();
        if flags & HEAPTYPE == 0 || slots.is_some_and(|s| holds_state(&s)) {
            return Ok(Extra::Hidden);
        }
    }
    match obj.getattr(pyo3::intern!(py, "__dict__")) {
        Ok(attrs) => Ok(Extra::Attrs(attrs.cast_into::<PyDict>()?)),
        Err(_) => Ok(Extra::Attrs(PyDict::new(py))),
    }
}

/// Named parts of an object's state, in a fixed order.
pub type Items<'py> = Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>;

/// Whether a class's `__slots__` declares storage (a namedtuple's `()` does not, nor
/// do `__weakref__` and `__dict__`, whose contents are seen elsewhere).
fn holds_state(slots: &Bound<'_, PyAny>) -> bool {
    let plain = |name: &Bound<'_, PyAny>| {
        name.extract::<String>()
            .is_ok_and(|n| n == "__weakref__" || n == "__dict__")
    };
    if slots.cast::<PyString>().is_ok() {
        return !plain(slots);
    }
    match slots.try_iter() {
        Ok(names) => names.into_iter().any(|n| n.map_or(true, |n| !plain(&n))),
        Err(_) => true,
    }
}

/// A dataclass instance's state: every field (also those left out of `==`, `repr` or
/// `__init__`), then any other instance attribute, sorted by name. `None`: not a
/// dataclass instance.
pub fn dataclass_items<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Items<'py>>> {
    let py = obj.py();
    if obj.cast::<PyType>().is_ok() || !obj.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
        return Ok(None);
    }
    static FIELDS: PyLazy<Py<PyAny>> = PyLazy::new();
    let fields = FIELDS.import(py, "dataclasses", "fields")?;
    let mut items = Vec::new();
    for field in fields.bind(py).call1((obj,))?.try_iter()? {
        let name = field?.getattr("name")?.cast_into::<PyString>()?;
        let value = obj.getattr(&name)?;
        items.push((name, value));
    }
    if let Ok(attrs) = obj.getattr(pyo3::intern!(py, "__dict__")) {
        let mut others = Vec::new();
        for (k, v) in attrs.cast::<PyDict>()?.iter() {
            let k = k.cast_into::<PyString>()?;
            if !items
                .iter()
                .any(|(n, _)| n.as_any().eq(&k).unwrap_or(false))
            {
                others.push((k.to_string(), k, v));
            }
        }
        others.sort_by(|a, b| a.0.cmp(&b.0));
        items.extend(others.into_iter().map(|(_, k, v)| (k, v)));
    }
    Ok(Some(items))
}
