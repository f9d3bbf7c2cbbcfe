//! The eviction policies a bounded cache can use, by name.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Which entry a full cache gives up to make room for a new one.
///
/// | policy | evicts | good at | weak at |
/// |---|---|---|---|
/// | [`Lru`](Policy::Lru) | the least recently used entry | recency-heavy workloads; the safe default | one scan of cold keys flushes the hot ones |
/// | [`Lfu`](Policy::Lfu) | the least frequently used entry (LRU among ties) | stable, skewed popularity | slow to forget keys that were hot once |
/// | [`Fifo`](Policy::Fifo) | the oldest inserted entry | cheapest hit (nothing moves on a hit) | ignores popularity |
/// | [`Rr`](Policy::Rr) | a random entry | no bookkeeping, no pathological pattern | ignores recency and popularity |
/// | [`TinyLfu`](Policy::TinyLfu) | W-TinyLFU: a small LRU window in front of a segmented LRU, admission by a frequency sketch | skewed workloads (Zipf): near-optimal hit ratio, scan resistant | a little more work per call |
///
/// # Examples
/// ```
/// use twat_cache::Policy;
/// assert_eq!("tinylfu".parse::<Policy>().unwrap(), Policy::TinyLfu);
/// assert_eq!(Policy::Lru.to_string(), "lru");
/// assert!("mru".parse::<Policy>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Least recently used.
    #[default]
    Lru,
    /// Least frequently used.
    Lfu,
    /// First in, first out.
    Fifo,
    /// Random replacement.
    Rr,
    /// Window TinyLFU: frequency-aware admission in front of a segmented LRU.
    TinyLfu,
}

impl Policy {
    /// Every policy, in the order they are documented.
    pub const ALL: [Policy; 5] = [
        Policy::Lru,
        Policy::Lfu,
        Policy::Fifo,
        Policy::Rr,
        Policy::TinyLfu,
    ];

    /// The name accepted by [`FromStr`] and by the Python `policy=` option.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Fifo => "fifo",
            Policy::Rr => "rr",
            Policy::TinyLfu => "tinylfu",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase();
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| Error::InvalidConfig {
                param: "policy",
                value: format!("{s:?}"),
                accepted: "one of 'lru', 'lfu', 'fifo', 'rr', 'tinylfu'",
            })
    }
}
