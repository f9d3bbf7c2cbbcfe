//! Freshness: an entry is *fresh* for its TTL, then *stale* for a grace period during
//! which a store still keeps it, so that a caller may serve it while one refresh runs
//! (`stale_ttl`) or when computing a fresh value fails (`stale_if_error`).
//!
//! Every store keeps a stale entry until the end of its grace (the memory [`Store`],
//! a folder's index, a Redis key's `PX`); the persistent stores write the end of
//! freshness into the entry's frame ([`crate::write_frame_until`]), so that every
//! process, on every machine, tells a stale entry from a fresh one the same way.
//!
//! ```
//! use std::time::Duration;
//! use twat_cache::{Grace, Lifetime};
//!
//! // Fresh for 60 s, then stale (still kept) for 30 s more.
//! let life = Lifetime::of(Some(Duration::from_secs(60)), Grace::For(Duration::from_secs(30)));
//! assert_eq!(life.keep, Some(Duration::from_secs(90)));
//! assert!(life.fresh_until.is_some());
//!
//! // Without a grace the entry is gone when it stops being fresh.
//! let plain = Lifetime::of(Some(Duration::from_secs(60)), Grace::None);
//! assert_eq!(plain.keep, Some(Duration::from_secs(60)));
//! // Without a TTL it is never stale, and nothing needs to say when.
//! assert_eq!(Lifetime::of(None, Grace::Forever).fresh_until, None);
//! ```
//!
//! [`Store`]: crate::Store

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an entry is kept, stale, after its TTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grace {
    /// Not at all: an expired entry is gone.
    #[default]
    None,
    /// For this long.
    For(Duration),
    /// Until it is evicted, removed or replaced (`stale_if_error=True`).
    Forever,
}

impl Grace {
    /// The longer of two graces.
    pub fn max(self, other: Grace) -> Grace {
        match (self, other) {
            (Grace::Forever, _) | (_, Grace::Forever) => Grace::Forever,
            (Grace::For(a), Grace::For(b)) => Grace::For(a.max(b)),
            (Grace::None, g) | (g, Grace::None) => g,
        }
    }

    /// Whether an entry stale for `age` is still within this grace.
    pub fn covers(self, age: Duration) -> bool {
        match self {
            Grace::None => false,
            Grace::For(d) => age < d,
            Grace::Forever => true,
        }
    }

    /// `deadline + grace`, `None` for never (forever, or a sum past the clock's range).
    pub fn extend(self, deadline: std::time::Instant) -> Option<std::time::Instant> {
        match self {
            Grace::None => Some(deadline),
            Grace::For(d) => deadline.checked_add(d),
            Grace::Forever => None,
        }
    }
}

/// How a persistent store keeps one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// How long the store keeps the entry (TTL and grace); `None`: until evicted.
    pub keep: Option<Duration>,
    /// When the entry stops being fresh, in Unix microseconds, written into the frame
    /// of every entry with a TTL: a reader in any process tells a stale entry (kept for
    /// a grace) from a fresh one, and a process-local copy expires when the entry does.
    pub fresh_until: Option<u64>,
}

impl Lifetime {
    /// The lifetime of an entry fresh for `ttl` (`None`: forever) with `grace` after.
    pub fn of(ttl: Option<Duration>, grace: Grace) -> Lifetime {
        let Some(ttl) = ttl else {
            // Never expires, so never stale.
            return Lifetime {
                keep: None,
                fresh_until: None,
            };
        };
        let keep = match grace {
            Grace::None => Some(ttl),
            Grace::For(g) => ttl.checked_add(g),
            Grace::Forever => None,
        };
        let fresh_until = Some(now_us().saturating_add(micros(ttl)));
        Lifetime { keep, fresh_until }
    }
}

/// How long ago an entry stopped being fresh (`None`: it is fresh, or never expires).
pub fn stale_for(fresh_until: Option<u64>) -> Option<Duration> {
    let until = fresh_until?;
    let now = now_us();
    (now >= until).then(|| Duration::from_micros(now - until))
}

/// How long an entry stays fresh from now (zero when it no longer is).
pub fn fresh_left(fresh_until: u64) -> Duration {
    Duration::from_micros(fresh_until.saturating_sub(now_us()))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The wall clock in Unix microseconds (entries are shared by processes and machines).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graces_combine_and_cover() {
        let s = Duration::from_secs;
        assert_eq!(Grace::For(s(1)).max(Grace::For(s(5))), Grace::For(s(5)));
        assert_eq!(Grace::None.max(Grace::For(s(2))), Grace::For(s(2)));
        assert_eq!(Grace::For(s(2)).max(Grace::Forever), Grace::Forever);
        assert!(Grace::For(s(2)).covers(s(1)));
        assert!(!Grace::For(s(2)).covers(s(2)));
        assert!(!Grace::None.covers(Duration::ZERO));
        assert!(Grace::Forever.covers(s(1_000_000)));
    }

    #[test]
    fn lifetimes() {
        let s = Duration::from_secs;
        let forever = Lifetime::of(Some(s(10)), Grace::Forever);
        assert_eq!(forever.keep, None);
        let until = forever.fresh_until.expect("a deadline");
        assert!(until > now_us() + 9_000_000 && until <= now_us() + 10_000_000);
        assert_eq!(stale_for(Some(until)), None);
        assert!(stale_for(Some(now_us() - 2_000_000)).unwrap() >= s(2));
        let no_ttl = Lifetime::of(None, Grace::Forever);
        assert_eq!((no_ttl.keep, no_ttl.fresh_until), (None, None));
    }
}
