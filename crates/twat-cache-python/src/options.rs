//! Options that arrive from Python already checked (python/twat_cache/_options.py) and
//! are converted here once more, defensively, into the core's types: a bad value still
//! becomes a `ConfigurationError`, never a panic.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use twat_cache::{Compression, DiskConfig, Policy, Signer};

use crate::disk_engine::{DiskEngine, ValueOptions};
use crate::errors::to_py_err;

pub fn bad_config(
    py: Python<'_>,
    param: &'static str,
    value: String,
    accepted: &'static str,
) -> PyErr {
    to_py_err(
        py,
        twat_cache::Error::InvalidConfig {
            param,
            value,
            accepted,
        },
    )
}

/// Seconds as a TTL: `None` (no expiry) or a positive, finite number.
/// `jitter=`: a non-negative number of seconds, or None.
pub fn jitter(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(bad_config(
            py,
            "jitter",
            t.to_string(),
            "a number of seconds >= 0, or None",
        )),
    }
}

pub fn ttl(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(bad_config(
            py,
            "ttl",
            t.to_string(),
            "a positive number of seconds, or None",
        )),
    }
}

pub fn policy(py: Python<'_>, name: &str) -> PyResult<Policy> {
    name.parse().map_err(|e| to_py_err(py, e))
}

/// Everything that opens a folder as a persistent engine (`bcache`, `fcache` and the
/// `disk`/`file` handles of `CacheContext`).
pub struct DiskSpec {
    /// `"bcache"` (small values inline in the index) or `"fcache"` (a file per entry).
    pub kind: &'static str,
    pub folder: PathBuf,
    /// The namespace of the entries inside the folder.
    pub ns: String,
    pub maxsize: Option<u64>,
    pub ttl: Option<f64>,
    pub jitter: Option<f64>,
    pub policy: String,
    pub compress: String,
    pub mmap: bool,
    pub secret: Option<Vec<u8>>,
    pub durable: bool,
}

impl DiskSpec {
    pub fn kind(py: Python<'_>, kind: &str) -> PyResult<&'static str> {
        match kind {
            "bcache" => Ok("bcache"),
            "fcache" => Ok("fcache"),
            other => Err(bad_config(
                py,
                "kind",
                format!("{other:?}"),
                "'bcache' or 'fcache'",
            )),
        }
    }

    pub fn open(self, py: Python<'_>) -> PyResult<DiskEngine> {
        let compression: Compression = self.compress.parse().map_err(|e| to_py_err(py, e))?;
        let config = DiskConfig {
            max_bytes: self.maxsize.unwrap_or(twat_cache::DEFAULT_MAX_BYTES),
            ttl: ttl(py, self.ttl)?,
            policy: policy(py, &self.policy)?,
            // fcache gives every entry a file of its own, in the raw layout that maps.
            inline_max: if self.kind == "fcache" {
                0
            } else {
                twat_cache::DEFAULT_INLINE_MAX
            },
            durable: self.durable,
            busy_timeout: twat_cache::DEFAULT_BUSY_TIMEOUT,
        };
        let options = ValueOptions {
            compression,
            signer: self.secret.map(|s| Signer::new(&s)),
            mmap: self.mmap,
        };
        let jitter = jitter(py, self.jitter)?;
        DiskEngine::open(py, self.folder, self.ns, config, options, jitter)
            .map_err(|e| to_py_err(py, e))
    }
}
