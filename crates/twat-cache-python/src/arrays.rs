//! What an array argument is made of, for both kinds of key (memory keys in
//! `content.rs`, persistent keys in `canonical.rs`).
//!
//! The rule is sound by construction: an array is keyed by content only where all of
//! its content is known. That is its element type (the buffer format, or numpy's full
//! dtype description: byte order, datetime unit, field names and offsets), its shape and
//! its raw bytes - for exact `numpy.ndarray`, `numpy.matrix`, `memoryview` and
//! `array.array`. A `numpy.ma.MaskedArray` is its data, its whole mask, its fill value
//! and its hard-mask flag. Any other `ndarray` subclass, and any other object exporting
//! a buffer, may hold more than the buffer (a unit, a mask, attributes) and is refused;
//! so are arrays of Python objects, whose bytes are addresses.

use crate::buffer::Exported;
use crate::once::{imported, PyLazy, MASKED_ARRAY};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// numpy's classes, once numpy has been imported by the program.
struct Numpy {
    ndarray: Py<PyType>,
    matrix: Py<PyType>,
    generic: Py<PyType>,
    dtype: Py<PyType>,
    ascontiguousarray: Py<PyAny>,
    uint8: Py<PyAny>,
}

/// numpy, if the program uses it (an argument can only be a numpy object then); never
/// imported here.
fn numpy(py: Python<'_>) -> PyResult<Option<&Numpy>> {
    static NUMPY: PyLazy<Numpy> = PyLazy::new();
    if let Some(np) = NUMPY.get(py) {
        return Ok(Some(np));
    }
    if imported(py, "numpy")?.is_none() {
        return Ok(None);
    }
    NUMPY
        .get_or_try_init(py, || {
            let np = py.import("numpy")?;
            let class = |m: &Bound<'_, PyModule>, name: &str| -> PyResult<Py<PyType>> {
                Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
            };
            Ok(Numpy {
                ndarray: class(&np, "ndarray")?,
                matrix: class(&np, "matrix")?,
                generic: class(&np, "generic")?,
                dtype: class(&np, "dtype")?,
                ascontiguousarray: np.getattr("ascontiguousarray")?.unbind(),
                uint8: np.getattr("uint8")?.unbind(),
            })
        })
        .map(Some)
}

/// An array argument, as a key sees it.
pub enum ArrayValue<'py> {
    /// Raw data: `type_name` (the exact class), element `format`, `shape`, and the
    /// buffer that holds the bytes.
    Raw {
        type_name: &'static str,
        format: String,
        shape: Vec<usize>,
        data: Exported<'py>,
    },
    /// A masked array: its data and its whole boolean mask (both [`ArrayValue::Raw`]
    /// arrays), its fill value and whether the mask is hard.
    Masked {
        data: Bound<'py, PyAny>,
        mask: Bound<'py, PyAny>,
        fill_value: Bound<'py, PyAny>,
        hard: bool,
    },
}

/// What [`classify`] found.
pub enum Found<'py> {
    /// Not an array nor a buffer: other rules apply.
    NotArray,
    /// An array whose content is known.
    Array(ArrayValue<'py>),
    /// An array or buffer that cannot be keyed, and why.
    Refused(String),
}

/// Whether `obj` is a numpy scalar (`np.float64(1.5)`, `np.datetime64(...)`).
pub fn is_numpy_scalar(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    match numpy(obj.py())? {
        Some(np) => obj.is_instance(np.generic.bind(obj.py())),
        None => Ok(false),
    }
}

/// numpy's full description of `obj` when it is a dtype (`np.dtype("<f8")`): its
/// byte order, size, fields and units.
pub fn dtype_description(obj: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    match numpy(obj.py())? {
        Some(np) if obj.is_instance(np.dtype.bind(obj.py()))? => Ok(Some(format!(
            "{} {}",
            obj.getattr("str")?.str()?,
            obj.getattr("descr")?.str()?
        ))),
        _ => Ok(None),
    }
}

/// Looks at `obj` as an array (see the module docs for the rule).
pub fn classify<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Found<'py>> {
    let py = obj.py();
    let t = obj.get_type();
    if let Some(np) = numpy(py)? {
        if t.is(np.ndarray.bind(py)) {
            return raw(np, obj, "numpy.ndarray");
        }
        if t.is(np.matrix.bind(py)) {
            return raw(np, obj, "numpy.matrix");
        }
        if MASKED_ARRAY.get(py)?.is_some_and(|m| t.is(m)) {
            return masked(np, obj);
        }
        if obj.is_instance(np.ndarray.bind(py))? {
            return Ok(Found::Refused(format!(
                "it is a subclass of numpy.ndarray ({}) that may hold more than its data; \
                 pass numpy.asarray(...) of it, or key=...",
                t.qualname()?
            )));
        }
    }
    let exact_buffer = if t.is(py.get_type::<pyo3::types::PyMemoryView>()) {
        Some("memoryview")
    } else if t.qualname()? == "array" && t.module()?.to_str()? == "array" {
        Some("array.array")
    } else {
        None
    };
    let Some(buffer) = Exported::get(obj) else {
        return Ok(Found::NotArray);
    };
    let Some(type_name) = exact_buffer else {
        return Ok(Found::Refused(format!(
            "it exports a buffer, but its type ({}) may hold more than that buffer",
            t.qualname()?
        )));
    };
    let format = buffer.format();
    if format.contains('O') {
        return Ok(Found::Refused(objects_refused()));
    }
    Ok(Found::Array(ArrayValue::Raw {
        type_name,
        format,
        shape: buffer.shape().to_vec(),
        data: buffer,
    }))
}

fn objects_refused() -> String {
    "it holds Python objects, whose bytes are only their addresses".to_string()
}

/// An exact ndarray or matrix: its buffer when numpy exports one (every dtype but
/// datetimes, and not 0-d everywhere), else its dtype description and its bytes seen as
/// `uint8` (one copy only when it is not C-contiguous).
fn raw<'py>(np: &Numpy, obj: &Bound<'py, PyAny>, type_name: &'static str) -> PyResult<Found<'py>> {
    let py = obj.py();
    if let Some(buffer) = Exported::get(obj) {
        let format = buffer.format();
        if format.contains('O') {
            return Ok(Found::Refused(objects_refused()));
        }
        return Ok(Found::Array(ArrayValue::Raw {
            type_name,
            format,
            shape: buffer.shape().to_vec(),
            data: buffer,
        }));
    }
    let shape: Vec<usize> = obj.getattr(pyo3::intern!(py, "shape"))?.extract()?;
    let dtype = obj.getattr(pyo3::intern!(py, "dtype"))?;
    if dtype.getattr("hasobject")?.is_truthy()? {
        return Ok(Found::Refused(objects_refused()));
    }
    // `descr` spells every part of the dtype (datetime units, fields, padding).
    let format = format!("numpy:{}", dtype.getattr("descr")?.str()?);
    let data = np
        .ascontiguousarray
        .bind(py)
        .call1((obj,))?
        .call_method1("reshape", (-1,))?
        .call_method1("view", (np.uint8.bind(py),))?;
    let data = Exported::get(&data).ok_or_else(|| {
        pyo3::exceptions::PyBufferError::new_err("numpy gave a uint8 view without a buffer")
    })?;
    Ok(Found::Array(ArrayValue::Raw {
        type_name,
        format,
        shape,
        data,
    }))
}

fn masked<'py>(np: &Numpy, obj: &Bound<'py, PyAny>) -> PyResult<Found<'py>> {
    let py = obj.py();
    let data = obj.getattr("data")?;
    // numpy.ma is imported: `obj` is a MaskedArray.
    let mask = py
        .import("numpy.ma")?
        .call_method1("getmaskarray", (obj,))?;
    for part in [&data, &mask] {
        let t = part.get_type();
        if !(t.is(np.ndarray.bind(py)) || t.is(np.matrix.bind(py))) {
            return Ok(Found::Refused(format!(
                "its data is a {} that may hold more than its bytes",
                t.qualname()?
            )));
        }
    }
    Ok(Found::Array(ArrayValue::Masked {
        data,
        mask,
        fill_value: obj.getattr("fill_value")?,
        hard: obj.getattr("hardmask")?.is_truthy()?,
    }))
}
