//! Content digests of objects that expose the buffer protocol (numpy arrays, memoryviews).
//!
//! The raw bytes are hashed in place with XXH3-128 (GB/s; never pickle or md5). The
//! digest goes into the key together with the buffer's element format and shape, so two
//! arrays with the same bytes but another dtype or shape stay apart.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use xxhash_rust::xxh3::xxh3_128;

/// `(format, shape, digest)` of `obj`'s buffer, or `None` when it has no buffer.
pub fn digest(obj: &Bound<'_, PyAny>) -> PyResult<Option<(String, Vec<usize>, u128)>> {
    let Ok(buffer) = PyUntypedBuffer::get(obj) else {
        return Ok(None);
    };
    let format = buffer.format().to_string_lossy().into_owned();
    let shape = buffer.shape().to_vec();
    let digest = if buffer.is_c_contiguous() {
        let len = buffer.len_bytes();
        let ptr = buffer.buf_ptr() as *const u8;
        if len == 0 || ptr.is_null() {
            xxh3_128(&[])
        } else {
            // SAFETY: the exporter guarantees `len` readable bytes at `ptr` for as long as
            // `buffer` (our Py_buffer) is alive, and it lives until the end of this scope.
            // We hold the GIL, so no Python code runs while we read.
            #[allow(unsafe_code)]
            let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
            xxh3_128(bytes)
        }
    } else {
        // Strided views (a[::2]): let the exporter lay the bytes out in C order once.
        let raw = obj.call_method0(pyo3::intern!(obj.py(), "tobytes"))?;
        xxh3_128(raw.cast::<PyBytes>()?.as_bytes())
    };
    Ok(Some((format, shape, digest)))
}
