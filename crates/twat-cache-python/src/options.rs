//! Options that arrive from Python already checked (python/twat_cache/_options.py) and
//! are converted here once more, defensively, into the core's types: a bad value still
//! becomes a `ConfigurationError`, never a panic.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use twat_cache::{About, Compression, DiskConfig, Policy, RedisConfig, Signer, Tally};

use crate::errors::to_py_err;
use crate::store_engine::{Backing, LockSpec, Serializer, StoreEngine, ValueOptions};

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

/// Where a persistent engine keeps its entries, as Python gives it.
pub enum Place {
    /// `bcache`, `fcache` and the `disk`/`file` handles: a folder.
    Folder(PathBuf),
    /// `rcache` and the `redis` handle: a server, with the timeout of every command.
    Redis { url: String, timeout: Option<f64> },
}

/// Everything that opens a persistent engine (`bcache`, `fcache`, `rcache` and the
/// `disk`/`file`/`redis` handles of `CacheContext`).
pub struct StoreSpec {
    /// `"bcache"` (small values inline in the index), `"fcache"` (a file per entry) or
    /// `"rcache"` (a Redis server).
    pub kind: &'static str,
    pub place: Place,
    /// The namespace of the entries inside the store.
    pub ns: String,
    pub maxsize: Option<u64>,
    pub ttl: Option<f64>,
    pub jitter: Option<f64>,
    pub policy: String,
    pub compress: String,
    pub mmap: bool,
    pub secret: Option<Vec<u8>>,
    pub durable: bool,
    /// Cross-process single flight: `Some(lock_wait seconds)` when on.
    pub lock_wait: Option<f64>,
    /// `serializer=` other than pickle: `(name, dumps, loads)`.
    pub serializer: Option<SerializerSpec>,
    /// `stale_ttl`, `stale_if_error`, `ttl=` a callable, `cache_if`.
    pub fresh: Option<crate::fresh::Freshness>,
    /// The version of the function's code that keys include (recorded with the cache's
    /// counts, for `twat-cache ls`); `None` for a context's handle.
    pub version: Option<String>,
}

/// `serializer=` as Python passes it: `(name, dumps, loads)`.
pub type SerializerSpec = (String, Py<PyAny>, Py<PyAny>);

/// The part of every key that names the serializer (nothing for pickle, so keys
/// written before `serializer=` existed still match).
pub fn serializer_identity(serializer: &Option<SerializerSpec>) -> String {
    match serializer {
        Some((name, _, _)) => format!("\0serializer={name}"),
        None => String::new(),
    }
}

/// How long a computation's lease lasts between two extensions.
const LEASE: Duration = Duration::from_secs(5);

pub fn seconds(py: Python<'_>, param: &'static str, value: f64) -> PyResult<Duration> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(bad_config(
            py,
            param,
            value.to_string(),
            "a positive number of seconds",
        ))
    }
}

impl StoreSpec {
    pub fn kind(py: Python<'_>, kind: &str) -> PyResult<&'static str> {
        match kind {
            "bcache" => Ok("bcache"),
            "fcache" => Ok("fcache"),
            "rcache" => Ok("rcache"),
            other => Err(bad_config(
                py,
                "kind",
                format!("{other:?}"),
                "'bcache', 'fcache' or 'rcache'",
            )),
        }
    }

    pub fn open(self, py: Python<'_>) -> PyResult<StoreEngine> {
        let compression: Compression = self.compress.parse().map_err(|e| to_py_err(py, e))?;
        let ttl = ttl(py, self.ttl)?;
        let backing = match self.place {
            Place::Folder(folder) => Backing::Disk {
                folder,
                config: DiskConfig {
                    max_bytes: self.maxsize.unwrap_or(twat_cache::DEFAULT_MAX_BYTES),
                    ttl,
                    policy: policy(py, &self.policy)?,
                    // fcache gives every entry a file of its own, in the raw layout that maps.
                    inline_max: if self.kind == "fcache" {
                        0
                    } else {
                        twat_cache::DEFAULT_INLINE_MAX
                    },
                    durable: self.durable,
                    busy_timeout: twat_cache::DEFAULT_BUSY_TIMEOUT,
                },
            },
            Place::Redis { url, timeout } => {
                let mut config = RedisConfig::new(&url).map_err(|e| to_py_err(py, e))?;
                if let Some(t) = timeout {
                    config.timeout = seconds(py, "timeout", t)?;
                }
                config.ttl = ttl;
                Backing::Redis(config)
            }
        };
        let options = ValueOptions {
            compression,
            signer: self.secret.map(|s| Signer::new(&s)),
            mmap: self.mmap,
            serializer: self.serializer.map(|(name, dumps, loads)| Serializer {
                name,
                dumps,
                loads,
            }),
        };
        let jitter = jitter(py, self.jitter)?;
        let lock = match self.lock_wait {
            Some(wait) => Some(LockSpec {
                lease: LEASE,
                wait: seconds(py, "lock_wait", wait)?,
            }),
            None => None,
        };
        let about = About {
            engine: Some(self.kind.to_owned()),
            policy: matches!(backing, Backing::Disk { .. }).then(|| self.policy.clone()),
            ttl: self.ttl,
            max_bytes: match &backing {
                Backing::Disk { config, .. } => Some(config.max_bytes),
                Backing::Redis(_) => None,
            },
            version: self.version,
        };
        let tally = Tally::describing(&self.ns, about);
        StoreEngine::open(py, backing, tally, options, jitter, lock, self.fresh)
            .map_err(|e| to_py_err(py, e))
    }
}
