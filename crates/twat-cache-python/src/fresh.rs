//! The freshness options of one cache, in every engine: `stale_ttl` (serve an expired
//! value while one refresh runs), `stale_if_error` (serve it when computing anew
//! raises), `ttl=` as a callable of the result, and `cache_if=` (store a result or
//! not). The engines keep stale entries for [`Freshness::grace`] (the core's
//! [`Grace`]); this module decides what a stale entry is for, and how a result is
//! kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use twat_cache::Grace;

use crate::errors::warn;
use crate::options::seconds;

/// The freshness options of one cache (each may be absent).
pub struct Freshness {
    /// For this long after its TTL, an entry is served at once while one refresh runs.
    pub stale_ttl: Option<Duration>,
    /// For this long after its TTL, an entry is served when computing anew raises.
    pub stale_if_error: Grace,
    /// `ttl=` a callable: the result's TTL in seconds (`None`: no expiry).
    pub ttl_of: Option<Py<PyAny>>,
    /// `cache_if=`: whether a result is stored.
    pub cache_if: Option<Py<PyAny>>,
    /// A callable option failed (warned about once).
    warned: AtomicBool,
}

/// What a stale entry found by a call is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStale {
    /// Serve it, and refresh it in the background.
    Serve,
    /// Compute anew (and fall back to it if that raises, within `stale_if_error`).
    Compute,
}

impl Freshness {
    /// The options as Python gives them; `None` when none is set (the engines' plain
    /// paths). `stale_if_error` is in seconds, infinite for `True`.
    pub fn new(
        py: Python<'_>,
        stale_ttl: Option<f64>,
        stale_if_error: Option<f64>,
        ttl_of: Option<Py<PyAny>>,
        cache_if: Option<Py<PyAny>>,
    ) -> PyResult<Option<Self>> {
        if stale_ttl.is_none() && stale_if_error.is_none() && ttl_of.is_none() && cache_if.is_none()
        {
            return Ok(None);
        }
        // Checked in Python already (`_freshness.py`); again here, defensively.
        let stale_ttl = match stale_ttl {
            None => None,
            Some(s) => Some(seconds(py, "stale_ttl", s)?),
        };
        let stale_if_error = match stale_if_error {
            None => Grace::None,
            Some(s) if s == f64::INFINITY => Grace::Forever, // `True`
            Some(s) => Grace::For(seconds(py, "stale_if_error", s)?),
        };
        Ok(Some(Freshness {
            stale_ttl,
            stale_if_error,
            ttl_of,
            cache_if,
            warned: AtomicBool::new(false),
        }))
    }

    /// How long an engine keeps an entry after its TTL.
    pub fn grace(&self) -> Grace {
        let serve = self.stale_ttl.map_or(Grace::None, Grace::For);
        serve.max(self.stale_if_error)
    }

    /// What an entry stale for `age` is for.
    pub fn on_stale(&self, age: Duration) -> OnStale {
        match self.stale_ttl {
            Some(window) if age < window => OnStale::Serve,
            _ => OnStale::Compute,
        }
    }

    /// Whether an entry stale for `age` (`None`: fresh) may stand in for a result whose
    /// computation raised.
    pub fn falls_back(&self, age: Option<Duration>) -> bool {
        age.is_none_or(|age| self.stale_if_error.covers(age))
    }

    /// Whether `e` is an error `stale_if_error` answers: an `Exception` (not a
    /// `KeyboardInterrupt` or `SystemExit`), and the option is set.
    pub fn answers(&self, py: Python<'_>, e: &PyErr) -> bool {
        self.stale_if_error != Grace::None && e.is_instance_of::<PyException>(py)
    }

    /// Logs that a stale value stands in for a failed computation.
    pub fn warn_fallback(&self, py: Python<'_>, name: &str, e: &PyErr) {
        warn(
            py,
            &format!(
                "twat_cache: {name}: computing a fresh value raised {e}; serving the stale one"
            ),
        );
    }

    /// How a computed `value` is kept: `None` to leave it out of the cache
    /// (`cache_if` said no, or `ttl=` gave no positive time), or `Some(ttl)` (`None`: the
    /// engine's own). A callable that raises or answers nonsense leaves the value out,
    /// with one warning. `check`: ask `cache_if` (a computed result; a value given to
    /// `cache_set` is stored as asked).
    pub fn keep(&self, value: &Bound<'_, PyAny>, check: bool) -> Option<Option<Duration>> {
        let py = value.py();
        if check {
            if let Some(cache_if) = &self.cache_if {
                match cache_if
                    .bind(py)
                    .call1((value,))
                    .and_then(|r| r.is_truthy())
                {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        self.warn_once(py, "cache_if", &e.to_string());
                        return None;
                    }
                }
            }
        }
        let Some(ttl_of) = &self.ttl_of else {
            return Some(None);
        };
        let seconds = ttl_of.bind(py).call1((value,)).and_then(|r| seconds_of(&r));
        match seconds {
            Ok(None) => Some(None),
            Ok(Some(s)) if s > 0.0 => Some(Some(Duration::from_secs_f64(s.min(1e12)))),
            Ok(Some(_)) => None, // expired at once: not worth storing
            Err(e) => {
                self.warn_once(py, "ttl", &e.to_string());
                None
            }
        }
    }

    fn warn_once(&self, py: Python<'_>, option: &str, why: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            warn(
                py,
                &format!(
                    "twat_cache: the {option}= callable failed ({why}); the result is not cached"
                ),
            );
        }
    }
}

/// A callable TTL's answer: `None`, or a real number of seconds (not a bool).
fn seconds_of(r: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if r.is_none() {
        return Ok(None);
    }
    if r.is_instance_of::<pyo3::types::PyBool>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "it returned a bool, not seconds",
        ));
    }
    let s: f64 = r.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "it returned {}, not a number of seconds or None",
            r.repr().map_or_else(|_| "?".into(), |r| r.to_string())
        ))
    })?;
    if s.is_nan() {
        return Err(pyo3::exceptions::PyValueError::new_err("it returned NaN"));
    }
    Ok(Some(s))
}

/// Runs `job` on the package's refresh workers (`twat_cache._refresh`), off the
/// caller's thread.
pub fn submit(py: Python<'_>, job: Bound<'_, PyAny>) -> PyResult<()> {
    static SUBMIT: crate::once::PyLazy<Py<PyAny>> = crate::once::PyLazy::new();
    let submit = SUBMIT.import(py, "twat_cache._refresh", "submit")?;
    submit.bind(py).call1((job,))?;
    Ok(())
}

/// Starts one refresh of an async function's stale key as a task of the running loop
/// (`twat_cache._async.refresh`, which keeps it single-flight with the misses).
pub fn refresh_async(
    py: Python<'_>,
    slot: &Bound<'_, PyAny>,
    func: &Py<PyAny>,
    args: &Bound<'_, pyo3::types::PyTuple>,
    kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    stale: &Py<PyAny>,
) -> PyResult<()> {
    static REFRESH: crate::once::PyLazy<Py<PyAny>> = crate::once::PyLazy::new();
    let refresh = REFRESH.import(py, "twat_cache._async", "refresh")?;
    let kwargs = crate::async_slot::kwargs_or_empty(py, kwargs);
    refresh.bind(py).call1((slot, func, args, kwargs, stale))?;
    Ok(())
}

/// The freshness options in `cache_parameters()`.
pub fn parameters(d: &Bound<'_, pyo3::types::PyDict>, fresh: Option<&Freshness>) -> PyResult<()> {
    let py = d.py();
    let seconds = |g: Grace| match g {
        Grace::None => None,
        Grace::For(d) => Some(d.as_secs_f64()),
        Grace::Forever => Some(f64::INFINITY),
    };
    d.set_item(
        "stale_ttl",
        fresh.and_then(|f| f.stale_ttl).map(|t| t.as_secs_f64()),
    )?;
    let on_error = fresh.and_then(|f| seconds(f.stale_if_error));
    match on_error {
        Some(s) if s.is_infinite() => d.set_item("stale_if_error", true)?,
        other => d.set_item("stale_if_error", other)?,
    }
    d.set_item(
        "cache_if",
        fresh
            .and_then(|f| f.cache_if.as_ref())
            .map(|c| c.clone_ref(py)),
    )?;
    if let Some(ttl_of) = fresh.and_then(|f| f.ttl_of.as_ref()) {
        d.set_item("ttl", ttl_of.clone_ref(py))?;
    }
    Ok(())
}
