//! The one error type of the core.

use std::fmt;

/// Everything that can go wrong in the core. The Python binding maps each variant to
/// one Python exception in a single function (`crates/twat-cache-python/src/errors.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is outside what is accepted (Python: `ConfigurationError`,
    /// a `ValueError`).
    InvalidConfig {
        /// The parameter's name, as the user spells it (`"policy"`, `"ttl"`, ...).
        param: &'static str,
        /// The value that was given, as written in the message.
        value: String,
        /// What the parameter accepts.
        accepted: &'static str,
    },
    /// A file operation failed (Python: `OSError`). Persistent engines turn it into a
    /// miss or a skipped store, with a warning.
    Io {
        /// What kind of failure (`PermissionError`, disk full, ...).
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// A stored entry failed its checks (bad magic, truncated, checksum or signature
    /// mismatch); it is treated as a miss and removed.
    Corrupt(String),
    /// The index database stayed locked by other processes past the retry budget.
    Busy,
    /// The index database failed in another way.
    Database(String),
    /// A networked store (Redis) failed, timed out or was skipped by its circuit
    /// breaker; the message names the server, never its password. Persistent engines
    /// turn it into a miss or a skipped store, with a warning once per outage.
    Remote(String),
    /// A value larger than the whole size limit: it is not stored.
    TooLarge {
        /// The entry's size in bytes.
        size: u64,
        /// The cache's limit in bytes.
        limit: u64,
    },
}

impl Error {
    /// An I/O error, kept as its kind and message (so `Error` stays `Clone + Eq`).
    pub fn io(e: std::io::Error) -> Self {
        Error::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy
            }
            _ => Error::Database(e.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                param,
                value,
                accepted,
            } => write!(f, "invalid {param}={value}: expected {accepted}"),
            Error::Io { message, .. } => write!(f, "I/O error: {message}"),
            Error::Corrupt(why) => write!(f, "corrupted entry: {why}"),
            Error::Busy => f.write_str("the cache index stayed locked by other processes"),
            Error::Database(why) => write!(f, "cache index error: {why}"),
            Error::Remote(why) => write!(f, "Redis: {why}"),
            Error::TooLarge { size, limit } => write!(
                f,
                "an entry of {size} bytes is larger than the whole cache limit of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {}
