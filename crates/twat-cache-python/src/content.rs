//! Content keys: hashable stand-ins for unhashable arguments, derived from their content.
//!
//! Lists, dicts (in any order), sets, bytearrays, buffers (numpy arrays: format, shape and
//! an XXH3-128 digest of the raw bytes) and dataclasses are keyed by what they hold. A
//! content key for a type that Python does not consider equal to its hashable twin (a
//! list is never equal to a tuple) starts with a private [`KeyTag`], so the two cannot
//! collide; `set` and `bytearray` become `frozenset` and `bytes`, which they equal.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple};

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
    pub(crate) kwargs: Py<KeyTag>,
}

pub(crate) fn tags(py: Python<'_>) -> PyResult<&Tags> {
    static TAGS: PyOnceLock<Tags> = PyOnceLock::new();
    TAGS.get_or_try_init(py, || {
        let tag = |name| Py::new(py, KeyTag { name });
        Ok(Tags {
            list: tag("list")?,
            dict: tag("dict")?,
            buffer: tag("buffer")?,
            dataclass: tag("dataclass")?,
            kwargs: tag("kwargs")?,
        })
    })
}

/// `obj` if it is hashable, else a hashable stand-in derived from its content.
pub fn hashable<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    depth: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if is_plain_scalar(obj) {
        return Ok(obj.clone());
    }
    match obj.hash() {
        Ok(_) => return Ok(obj.clone()),
        Err(e) if !e.is_instance_of::<PyTypeError>(py) => return Err(e),
        Err(_) => {}
    }
    if depth > MAX_DEPTH {
        return Err(PyTypeError::new_err(format!(
            "argument {name} nests deeper than {MAX_DEPTH} levels (or contains itself) and \
             cannot be turned into a cache key; pass ignore=({name:?},) or key=..."
        )));
    }
    let inner = |items: Vec<Bound<'py, PyAny>>| -> PyResult<Vec<Bound<'py, PyAny>>> {
        items.iter().map(|x| hashable(x, name, depth + 1)).collect()
    };
    let t = tags(py)?;
    if let Ok(list) = obj.cast::<PyList>() {
        let items = inner(list.iter().collect())?;
        return tagged(py, &t.list, vec![PyTuple::new(py, items)?.into_any()]);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return Ok(PyTuple::new(py, inner(tuple.iter().collect())?)?.into_any());
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        // A frozenset of (key, value) pairs: equal dicts give equal keys in any order.
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let v = hashable(&v, name, depth + 1)?;
            pairs.push(PyTuple::new(py, [k, v])?);
        }
        return tagged(py, &t.dict, vec![PyFrozenSet::new(py, pairs)?.into_any()]);
    }
    if let Ok(set) = obj.cast::<PySet>() {
        // set({1}) == frozenset({1}) in Python, so no tag.
        return Ok(PyFrozenSet::new(py, set.iter())?.into_any());
    }
    if let Ok(ba) = obj.cast::<PyByteArray>() {
        // bytearray(b"x") == b"x" in Python, so no tag.
        return Ok(PyBytes::new(py, &ba.to_vec()).into_any());
    }
    if let Some(digest) = crate::buffer::digest(obj)? {
        let (format, shape, hash) = digest;
        let parts = vec![
            obj.get_type().into_any(),
            PyString::new(py, &format).into_any(),
            PyTuple::new(py, shape)?.into_any(),
            hash.into_pyobject(py)?.into_any(),
        ];
        return tagged(py, &t.buffer, parts);
    }
    if let Ok(fields) = obj.getattr(pyo3::intern!(py, "__dataclass_fields__")) {
        let mut parts = vec![obj.get_type().into_any()];
        for field in fields.cast::<PyDict>()?.keys() {
            let field = field.cast_into::<PyString>()?;
            parts.push(hashable(&obj.getattr(&field)?, name, depth + 1)?);
        }
        return tagged(py, &t.dataclass, parts);
    }
    Err(PyTypeError::new_err(format!(
        "argument {name} of type {} is unhashable and has no content rule, so it cannot be \
         turned into a cache key; pass ignore=({name:?},) or key=...",
        obj.get_type().name()?
    )))
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
