//! A count-min sketch of access frequencies with periodic halving, as W-TinyLFU uses it.
//!
//! Each key hash maps to four small counters (one byte each, saturating at 15, like the
//! 4-bit counters of the TinyLFU paper); its estimated frequency is the smallest of them.
//! After `10 * capacity` increments every counter is halved, so the sketch follows a
//! popularity that changes over time instead of remembering the distant past forever.

const MAX_COUNT: u8 = 15;
const DEPTH: u64 = 4;

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    counters: Vec<u8>,
    mask: u64,
    additions: usize,
    sample_size: usize,
}

/// A strong 64-bit finalizer (splitmix64): Python's `hash(int)` is the int itself, so
/// the raw hash of sequential keys would crowd into neighbouring counters.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FrequencySketch {
    /// A sketch sized for a cache of `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let width = (capacity.max(16) * 4).next_power_of_two();
        Self {
            counters: vec![0; width],
            mask: width as u64 - 1,
            additions: 0,
            sample_size: capacity.max(16) * 10,
        }
    }

    fn indexes(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let h1 = mix64(hash);
        let h2 = mix64(h1) | 1;
        (0..DEPTH).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & self.mask) as usize)
    }

    /// The estimated number of recent accesses of `hash` (0 to 15).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        self.indexes(hash)
            .map(|i| self.counters[i])
            .min()
            .unwrap_or(0)
    }

    /// Records one access of `hash`.
    pub(crate) fn increment(&mut self, hash: u64) {
        let idx: [usize; DEPTH as usize] = {
            let mut it = self.indexes(hash);
            std::array::from_fn(|_| it.next().unwrap_or(0))
        };
        let mut added = false;
        for i in idx {
            if self.counters[i] < MAX_COUNT {
                self.counters[i] += 1;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.halve();
            }
        }
    }

    fn halve(&mut self) {
        for c in &mut self.counters {
            *c >>= 1;
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ages() {
        let mut s = FrequencySketch::new(100);
        for _ in 0..5 {
            s.increment(42);
        }
        s.increment(7);
        assert!(s.frequency(42) >= 5);
        assert!(s.frequency(7) >= 1);
        assert!(s.frequency(42) > s.frequency(7));
        // Saturation at 15, then halving after the sample size.
        for _ in 0..40 {
            s.increment(42);
        }
        assert_eq!(s.frequency(42), 15);
        for k in 1000..3000u64 {
            s.increment(k);
        }
        assert!(s.frequency(42) < 15, "counters were never halved");
    }
}
