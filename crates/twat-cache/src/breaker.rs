//! A circuit breaker for a store behind a network: after a few consecutive failures,
//! calls skip the server entirely (no timeout paid) until a probe after a back-off
//! succeeds. Atomics only, so a `fork()` can never leave it locked.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub const OPEN_AFTER: u32 = 3;
/// The first back-off; each failed probe doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The breaker of one store.
#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    /// Consecutive failures.
    failures: AtomicU32,
    /// While open: when the next probe may go (microseconds since `epoch`).
    probe_at: AtomicU64,
    /// The current back-off in microseconds.
    backoff: AtomicU64,
    /// A probe is on its way (half-open): other calls still skip.
    probing: AtomicBool,
    errors: AtomicU64,
}

/// What a call may do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Go to the server.
    Go,
    /// Go to the server as the one probe of an open breaker.
    Probe,
    /// Skip the server: it is failing.
    Skip,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            probe_at: AtomicU64::new(0),
            backoff: AtomicU64::new(FIRST_BACKOFF.as_micros() as u64),
            probing: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        }
    }
}

impl Breaker {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn is_open(&self) -> bool {
        self.failures.load(Ordering::Acquire) >= OPEN_AFTER
    }

    /// Whether a call may go to the server now.
    pub fn admit(&self) -> Admit {
        if !self.is_open() {
            return Admit::Go;
        }
        if self.now() < self.probe_at.load(Ordering::Acquire) {
            return Admit::Skip;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Skip,
        }
    }

    /// A call that went to the server succeeded: the breaker closes.
    pub fn success(&self, admitted: &Admit) {
        if self.failures.load(Ordering::Acquire) != 0 {
            self.failures.store(0, Ordering::Release);
            self.backoff
                .store(FIRST_BACKOFF.as_micros() as u64, Ordering::Release);
            // Closed now, whoever probed: the next opening starts without a probe out.
            self.probing.store(false, Ordering::Release);
        }
        if *admitted == Admit::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A call that went to the server failed.
    pub fn failure(&self, admitted: &Admit) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if *admitted == Admit::Probe {
            // The probe failed: wait twice as long for the next one.
            let backoff = self.backoff.load(Ordering::Acquire);
            let next = (backoff * 2).min(MAX_BACKOFF.as_micros() as u64);
            self.backoff.store(next, Ordering::Release);
            self.probe_at.store(self.now() + next, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        } else if failures == OPEN_AFTER {
            let backoff = self.backoff.load(Ordering::Acquire);
            self.probe_at.store(self.now() + backoff, Ordering::Release);
        }
    }

    /// `"closed"`, `"open"` or `"half-open"`.
    pub fn state(&self) -> &'static str {
        if !self.is_open() {
            "closed"
        } else if self.probing.load(Ordering::Acquire) {
            "half-open"
        } else {
            "open"
        }
    }

    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether the last call failed.
    pub fn failing(&self) -> bool {
        self.failures.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_probe() {
        let b = Breaker::default();
        for _ in 0..OPEN_AFTER - 1 {
            assert_eq!(b.admit(), Admit::Go);
            b.failure(&Admit::Go);
        }
        assert_eq!(b.state(), "closed");
        b.failure(&Admit::Go);
        assert_eq!(b.state(), "open");
        assert_eq!(b.admit(), Admit::Skip);
        std::thread::sleep(FIRST_BACKOFF + Duration::from_millis(20));
        let probe = b.admit();
        assert_eq!(probe, Admit::Probe);
        assert_eq!(b.admit(), Admit::Skip, "one probe at a time");
        assert_eq!(b.state(), "half-open");
        b.success(&probe);
        assert_eq!(b.state(), "closed");
        assert_eq!(b.admit(), Admit::Go);
        assert_eq!(b.errors(), u64::from(OPEN_AFTER));
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff() {
        let b = Breaker::default();
        for _ in 0..OPEN_AFTER {
            b.failure(&Admit::Go);
        }
        std::thread::sleep(FIRST_BACKOFF + Duration::from_millis(20));
        let probe = b.admit();
        assert_eq!(probe, Admit::Probe);
        b.failure(&probe);
        assert_eq!(b.state(), "open");
        // Still skipping after the first back-off has passed again.
        std::thread::sleep(FIRST_BACKOFF + Duration::from_millis(20));
        assert_eq!(b.admit(), Admit::Skip);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::default();
        b.failure(&Admit::Go);
        b.failure(&Admit::Go);
        b.success(&Admit::Go);
        b.failure(&Admit::Go);
        assert_eq!(b.state(), "closed");
        assert!(b.failing());
    }
}
