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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                param,
                value,
                accepted,
            } => write!(f, "invalid {param}={value}: expected {accepted}"),
        }
    }
}

impl std::error::Error for Error {}
