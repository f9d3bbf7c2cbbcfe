//! Content keys: hashable stand-ins for unhashable arguments, derived from their content.
//!
//! Lists, dicts (in any order; an `OrderedDict` in its order, a `defaultdict` with its
//! factory), sets, bytearrays, arrays (see `arrays.rs`: element type, shape and an
//! XXH3-128 digest of the raw bytes) and dataclasses (every field and attribute) are
//! keyed by what they hold; a Python subclass of a container adds its class and
//! attributes, and one that keeps state where the cache cannot see it is refused. A
//! content key for a type that Python does not consider equal to its hashable twin (a
//! list is never equal to a tuple) starts with a private [`KeyTag`], so the two cannot
//! collide; `set` and `bytearray` become `frozenset` and `bytes`, which they equal.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyList, PySet, PySlice, PyString,
    PyTuple,
};
use twox_hash::XxHash3_128;

use crate::arrays::{ArrayValue, Found};
use crate::once::{loaded, PyLazy, DEFAULT_DICT, ORDERED_DICT};
use crate::state::Extra;

/// How deep content keys may nest before the argument is refused (cycles end here).
const MAX_DEPTH: usize = 64;

/// A private marker that starts a content key, so that content keys never equal user values.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct KeyTag {
    name: &'static str,
}

#[pymethods]
impl KeyTag {
    fn __repr__(&self) -> String {
        format!("<twat_cache key tag {}>", self.name)
    }
}

pub(crate) struct Tags {
    list: Py<KeyTag>,
    dict: Py<KeyTag>,
    buffer: Py<KeyTag>,
    dataclass: Py<KeyTag>,
    masked: Py<KeyTag>,
    ordered: Py<KeyTag>,
    defaultdict: Py<KeyTag>,
    subclass: Py<KeyTag>,
    nan: Py<KeyTag>,
    slice: Py<KeyTag>,
    pub(crate) kwargs: Py<KeyTag>,
}

pub(crate) fn tags(py: Python<'_>) -> PyResult<&Tags> {
    static TAGS: PyLazy<Tags> = PyLazy::new();
    TAGS.get_or_try_init(py, || {
        let tag = |name| Py::new(py, KeyTag { name });
        Ok(Tags {
            list: tag("list")?,
            dict: tag("dict")?,
            buffer: tag("buffer")?,
            dataclass: tag("dataclass")?,
            masked: tag("masked array")?,
            ordered: tag("OrderedDict")?,
            defaultdict: tag("defaultdict")?,
            subclass: tag("subclass")?,
            nan: tag("NaN")?,
            slice: tag("slice")?,
            kwargs: tag("kwargs")?,
        })
    })
}

/// `obj` if it is hashable, else a hashable stand-in derived from its content (every
/// NaN float becomes one stand-in, so that NaN arguments share an entry as they do in
/// the persistent engines).
pub fn hashable<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    depth: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if is_plain_key(obj) {
        return Ok(obj.clone());
    }
    if depth > MAX_DEPTH {
        return Err(PyTypeError::new_err(format!(
            "argument {name} nests deeper than {MAX_DEPTH} levels (or contains itself) and \
             cannot be turned into a cache key; pass ignore=({name:?},) or key=..."
        )));
    }
    let t = tags(py)?;
    if is_nan(obj) {
        return tagged(py, &t.nan, Vec::new());
    }
    let exact_tuple = obj.cast_exact::<PyTuple>().ok();
    // A tuple holding a NaN is hashable but needs its NaNs replaced.
    let needs_items = exact_tuple.is_some() && has_nan(obj, 0);
    if !needs_items {
        match obj.hash() {
            Ok(_) => return Ok(obj.clone()),
            Err(e) if !unhashable(py, &e) => return Err(e),
            Err(_) => {}
        }
    }
    if let Some(tuple) = exact_tuple {
        let items = tuple.iter().map(|x| hashable(&x, name, depth + 1));
        return Ok(PyTuple::new(py, items.collect::<PyResult<Vec<_>>>()?)?.into_any());
    }
    if let Some(key) = container(obj, name, depth)? {
        return Ok(key);
    }
    match crate::arrays::classify(obj)? {
        Found::Array(ArrayValue::Raw {
            type_name,
            format,
            shape,
            data,
        }) => {
            let hash = data.read(XxHash3_128::oneshot)?;
            let parts = vec![
                PyString::new(py, type_name).into_any(),
                PyString::new(py, &format).into_any(),
                PyTuple::new(py, shape)?.into_any(),
                hash.into_pyobject(py)?.into_any(),
            ];
            return tagged(py, &t.buffer, parts);
        }
        Found::Array(ArrayValue::Masked {
            data,
            mask,
            fill_value,
            hard,
        }) => {
            let parts = vec![
                hashable(&data, name, depth + 1)?,
                hashable(&mask, name, depth + 1)?,
                hashable(&fill_value, name, depth + 1)?,
                PyBool::new(py, hard).to_owned().into_any(),
            ];
            return tagged(py, &t.masked, parts);
        }
        Found::Refused(why) => return Err(refused(obj, name, &why)),
        Found::NotArray => {}
    }
    if let Ok(s) = obj.cast::<PySlice>() {
        // Slices compare by (start, stop, step); they are hashable from Python 3.12.
        let parts = ["start", "stop", "step"]
            .map(|part| s.getattr(part).and_then(|v| hashable(&v, name, depth + 1)));
        return tagged(py, &t.slice, parts.into_iter().collect::<PyResult<_>>()?);
    }
    if let Some(items) = crate::state::dataclass_items(obj)? {
        let mut parts = vec![obj.get_type().into_any()];
        for (field, value) in items {
            parts.push(field.into_any());
            parts.push(hashable(&value, name, depth + 1)?);
        }
        return tagged(py, &t.dataclass, parts);
    }
    Err(refused(
        obj,
        name,
        "it is unhashable and has no content rule",
    ))
}

/// The content key of a builtin container (or of a Python subclass of one: then its
/// class and attributes are part of the key); `None` when `obj` is no container.
fn container<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    depth: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let t = tags(py)?;
    let inner = |items: Vec<Bound<'py, PyAny>>| -> PyResult<Vec<Bound<'py, PyAny>>> {
        items.iter().map(|x| hashable(x, name, depth + 1)).collect()
    };
    let pairs = |dict: &Bound<'py, PyDict>| -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            pairs.push(PyTuple::new(py, [k, hashable(&v, name, depth + 1)?])?);
        }
        Ok(pairs)
    };
    let (base, key) = if let Ok(list) = obj.cast::<PyList>() {
        let items = inner(list.iter().collect())?;
        let key = tagged(py, &t.list, vec![PyTuple::new(py, items)?.into_any()])?;
        (py.get_type::<PyList>(), key)
    } else if ORDERED_DICT.holds(obj)? {
        // Order is part of an OrderedDict's value (two of them compare by order).
        let key = tagged(
            py,
            &t.ordered,
            vec![PyTuple::new(py, pairs(obj.cast()?)?)?.into_any()],
        )?;
        (loaded(&ORDERED_DICT, py)?, key)
    } else if DEFAULT_DICT.holds(obj)? {
        let factory = obj.getattr("default_factory")?;
        let parts = vec![
            hashable(&factory, name, depth + 1)?,
            PyFrozenSet::new(py, pairs(obj.cast()?)?)?.into_any(),
        ];
        (
            loaded(&DEFAULT_DICT, py)?,
            tagged(py, &t.defaultdict, parts)?,
        )
    } else if let Ok(dict) = obj.cast::<PyDict>() {
        // A frozenset of (key, value) pairs: equal dicts give equal keys in any order.
        let key = tagged(
            py,
            &t.dict,
            vec![PyFrozenSet::new(py, pairs(dict)?)?.into_any()],
        )?;
        (py.get_type::<PyDict>(), key)
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        // An unhashable tuple subclass (a namedtuple holding a list).
        let items = inner(tuple.iter().collect())?;
        (
            py.get_type::<PyTuple>(),
            PyTuple::new(py, items)?.into_any(),
        )
    } else if let Ok(set) = obj.cast::<PySet>() {
        // set({1}) == frozenset({1}) in Python, so no tag.
        (
            py.get_type::<PySet>(),
            PyFrozenSet::new(py, set.iter())?.into_any(),
        )
    } else if let Ok(ba) = obj.cast::<PyByteArray>() {
        // bytearray(b"x") == b"x" in Python, so no tag.
        (
            py.get_type::<PyByteArray>(),
            PyBytes::new(py, &ba.to_vec()).into_any(),
        )
    } else {
        return Ok(None);
    };
    match crate::state::extra(obj, &base)? {
        Extra::None => Ok(Some(key)),
        Extra::Attrs(attrs) => {
            let parts = vec![
                obj.get_type().into_any(),
                key,
                hashable(attrs.as_any(), name, depth + 1)?,
            ];
            tagged(py, &t.subclass, parts).map(Some)
        }
        Extra::Hidden => Err(refused(obj, name, crate::state::HIDDEN)),
    }
}

/// The `TypeError` for an argument that cannot be keyed, and why.
fn refused(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>, why: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "argument {name} of type {} cannot be turned into a cache key ({why}); pass \
         ignore=({name:?},) or key=...",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string())
    ))
}

/// Whether `hash()` failed because the value is unhashable: a `TypeError`, or the
/// `ValueError` of a writable `memoryview`.
#[inline]
pub(crate) fn unhashable(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<pyo3::exceptions::PyValueError>(py)
}

/// A float (or float subclass, like `numpy.float64`) that is NaN.
#[inline]
fn is_nan(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyFloat>().is_ok_and(|f| f.value().is_nan())
}

/// Whether a NaN float sits in `obj` or in the tuples it is made of (those are hashable
/// but need their NaNs replaced).
#[inline]
pub(crate) fn has_nan(obj: &Bound<'_, PyAny>, depth: usize) -> bool {
    // The hot path: plain scalars are answered from their exact type alone.
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return f.value().is_nan();
    }
    if is_plain_scalar(obj) {
        return false;
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return depth < MAX_DEPTH && t.iter().any(|x| has_nan(&x, depth + 1));
    }
    is_nan(obj)
}
/// A plain scalar that is its own key as it is (every one but a NaN float).
#[inline]
pub(crate) fn is_plain_key(obj: &Bound<'_, PyAny>) -> bool {
    match obj.cast_exact::<PyFloat>() {
        Ok(f) => !f.value().is_nan(),
        Err(_) => is_plain_scalar(obj),
    }
}

/// Exact `int`, `str`, `float`, `bool`, `bytes` or `None`: hashable without asking.
#[inline]
pub(crate) fn is_plain_scalar(obj: &Bound<'_, PyAny>) -> bool {
    use pyo3::types::{PyBool, PyFloat, PyInt};
    obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_none()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyBytes>()
}

fn tagged<'py>(
    py: Python<'py>,
    tag: &Py<KeyTag>,
    parts: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut all = Vec::with_capacity(parts.len() + 1);
    all.push(tag.bind(py).clone().into_any());
    all.extend(parts);
    Ok(PyTuple::new(py, all)?.into_any())
}
