//! Waiting for another thread's computation of the same key (single flight), with the
//! GIL released and signals looked at: Ctrl-C reaches a waiter at once, not when the
//! computation ends, and the interrupted waiter simply leaves the flight.

use std::time::Duration;

use pyo3::prelude::*;
use twat_cache::Flight;

/// How often a waiter wakes to let Python run its signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Waits until the leader of `flight` completes (`true`) or abandons it (`false`); an
/// exception raised by a signal handler (`KeyboardInterrupt`) is returned instead.
pub fn wait<V: Send>(py: Python<'_>, flight: &Flight<V>) -> PyResult<bool> {
    loop {
        if let Some(ready) = py.detach(|| flight.wait_for(SIGNAL_CHECK)) {
            return Ok(ready);
        }
        py.check_signals()?;
    }
}
