//! Raw bytes of objects that expose the buffer protocol (numpy arrays, memoryviews,
//! pickle's out-of-band buffers), read in place.
//!
//! Keys hash them (`arrays.rs` says which objects are keyed by their buffer) through
//! [`Exported`], and persistent values write them through [`Held`].

use crate::once::PyLazy;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

/// A C-contiguous buffer held open (the exporter keeps its memory in place and alive
/// while the view exists), whose bytes can be read with the GIL released.
pub struct Held {
    buffer: PyUntypedBuffer,
}

impl Held {
    /// Holds `obj`'s buffer when it has a C-contiguous one.
    pub fn get(obj: &Bound<'_, PyAny>) -> Option<Held> {
        let buffer = PyUntypedBuffer::get(obj).ok()?;
        buffer.is_c_contiguous().then_some(Held { buffer })
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        let len = self.buffer.len_bytes();
        let ptr = self.buffer.buf_ptr() as *const u8;
        if len == 0 || ptr.is_null() {
            return &[];
        }
        // SAFETY: the exporter guarantees `len` readable, C-contiguous bytes at `ptr` for
        // as long as our Py_buffer view (`self.buffer`) is alive, and the returned slice
        // borrows `self`. We only read; a caller that mutates the array from another
        // thread meanwhile gets a torn value, exactly as with `pickle`.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(ptr, len)
        }
    }
}

/// Fresh, writable memory for a buffer read from a cache file: a numpy `uint8` array
/// when numpy is there (no zeroing, and numpy asks the kernel for huge pages, which
/// makes a 100 MB load several times cheaper), else a `bytearray`.
pub struct Fresh<'py> {
    obj: Bound<'py, PyAny>,
    buffer: PyUntypedBuffer,
}

impl<'py> Fresh<'py> {
    pub fn new(py: Python<'py>, len: usize) -> PyResult<Self> {
        static EMPTY: PyLazy<Option<Py<PyAny>>> = PyLazy::new();
        let empty = EMPTY.get_or_init(py, || {
            let numpy = py.import("numpy").ok()?;
            Some(numpy.getattr("empty").ok()?.unbind())
        });
        let obj = match empty {
            Some(empty) => empty.bind(py).call1((len, "uint8"))?,
            None => PyByteArray::new_with(py, len, |_| Ok(()))?.into_any(),
        };
        let buffer = PyUntypedBuffer::get(&obj)?;
        if buffer.readonly() || !buffer.is_c_contiguous() || buffer.len_bytes() != len {
            return Err(pyo3::exceptions::PyBufferError::new_err(
                "no writable memory",
            ));
        }
        Ok(Fresh { obj, buffer })
    }

    /// The memory to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.len_bytes();
        let ptr = self.buffer.buf_ptr() as *mut u8;
        if len == 0 || ptr.is_null() {
            return &mut [];
        }
        // SAFETY: `obj` was created just now by us and has not been handed to any other
        // code, so nothing else reads or writes it; the exporter keeps `len` writable,
        // contiguous bytes at `ptr` while our view (`self.buffer`) lives, and the slice
        // borrows `self` mutably.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(ptr, len)
        }
    }

    /// The object that owns the memory, to hand to `pickle.loads(buffers=...)`.
    pub fn into_object(self) -> Bound<'py, PyAny> {
        drop(self.buffer);
        self.obj
    }
}

/// An object's buffer, held open once for all a key needs of it: element format, shape
/// and bytes (read in place when C-contiguous; strided views are copied once by the
/// exporter's `tobytes()`).
pub struct Exported<'py> {
    owner: Bound<'py, PyAny>,
    buffer: PyUntypedBuffer,
}

impl<'py> Exported<'py> {
    /// `obj`'s buffer, if it exports one.
    pub fn get(obj: &Bound<'py, PyAny>) -> Option<Self> {
        let buffer = PyUntypedBuffer::get(obj).ok()?;
        Some(Exported {
            owner: obj.clone(),
            buffer,
        })
    }

    /// The element format (`struct` syntax, as the exporter gives it).
    pub fn format(&self) -> String {
        self.buffer.format().to_string_lossy().into_owned()
    }

    pub fn shape(&self) -> &[usize] {
        self.buffer.shape()
    }

    /// Calls `f` with the bytes in C order.
    pub fn read<R>(self, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
        if self.buffer.is_c_contiguous() {
            return Ok(f(Held {
                buffer: self.buffer,
            }
            .bytes()));
        }
        drop(self.buffer);
        let raw = self
            .owner
            .call_method0(pyo3::intern!(self.owner.py(), "tobytes"))?;
        Ok(f(raw.cast::<PyBytes>()?.as_bytes()))
    }
}
