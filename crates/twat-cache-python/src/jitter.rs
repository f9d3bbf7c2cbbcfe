//! `jitter=`: a random spread added to each entry's TTL, so that entries stored together
//! (a warm-up, a burst after a deploy) do not all expire in the same instant and send
//! every caller to the backend at once.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The TTL of one new entry: `ttl` plus a uniform random part of `jitter`; `None` when
/// there is no TTL.
pub fn spread(ttl: Option<Duration>, jitter: Option<Duration>) -> Option<Duration> {
    match (ttl, jitter) {
        (Some(ttl), Some(jitter)) => Some(ttl + jitter.mul_f64(unit())),
        (ttl, _) => ttl,
    }
}

/// A number in [0, 1) from a per-thread xorshift (no need for a strong generator).
fn unit() -> f64 {
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            x = now ^ (s as *const Cell<u64> as u64).rotate_left(32) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}
