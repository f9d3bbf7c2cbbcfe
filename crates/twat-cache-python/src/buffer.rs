//! Raw bytes of objects that expose the buffer protocol (numpy arrays, memoryviews,
//! pickle's out-of-band buffers), read in place.
//!
//! Memory keys hash them with XXH3-128 (GB/s; never pickle or md5) together with the
//! element format and shape, so two arrays with the same bytes but another dtype or shape
//! stay apart; persistent keys and values use [`Held`] and [`with_bytes`].

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use xxhash_rust::xxh3::xxh3_128;

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

/// Calls `f(format, shape, bytes)` with `obj`'s buffer laid out in C order (strided views
/// are copied once by the exporter's `tobytes()`); `None` when `obj` has no buffer.
pub fn with_bytes<R>(
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&str, &[usize], &[u8]) -> R,
) -> PyResult<Option<R>> {
    let Ok(buffer) = PyUntypedBuffer::get(obj) else {
        return Ok(None);
    };
    let format = buffer.format().to_string_lossy().into_owned();
    let shape = buffer.shape().to_vec();
    if buffer.is_c_contiguous() {
        let held = Held { buffer };
        return Ok(Some(f(&format, &shape, held.bytes())));
    }
    let raw = obj.call_method0(pyo3::intern!(obj.py(), "tobytes"))?;
    Ok(Some(f(&format, &shape, raw.cast::<PyBytes>()?.as_bytes())))
}

/// `(format, shape, digest)` of `obj`'s buffer, or `None` when it has no buffer.
pub fn digest(obj: &Bound<'_, PyAny>) -> PyResult<Option<(String, Vec<usize>, u128)>> {
    with_bytes(obj, |format, shape, bytes| {
        (format.to_string(), shape.to_vec(), xxh3_128(bytes))
    })
}
