//! Counters every engine keeps.

/// A snapshot of a cache's counters.
///
/// # Examples
/// ```
/// use twat_cache::Stats;
/// let s = Stats { hits: 3, misses: 1, ..Stats::default() };
/// assert_eq!(s.hit_ratio(), 0.75);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries removed to keep the size bound.
    pub evictions: u64,
    /// Entries removed because their time-to-live had passed.
    pub expirations: u64,
    /// Hits that served a stale entry (a refresh ran, or computing failed); counted in
    /// `hits` too.
    pub stale_hits: u64,
    /// Entries held when the snapshot was taken.
    pub entries: usize,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0.0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}
