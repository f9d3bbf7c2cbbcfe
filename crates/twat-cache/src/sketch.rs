//! A count-min sketch of access frequencies with periodic halving, as W-TinyLFU uses it.
//!
//! Each key hash maps to four one-byte counters (saturating at 63) that lie in one
//! 64-byte block of the table, so an access touches one cache line; its estimated
//! frequency is the smallest of the four. Updates are *conservative*: only the counters
//! at that minimum go up, which keeps keys that share a counter with a popular one from
//! looking popular themselves. After `250 * capacity` accesses every counter is halved,
//! so the sketch follows a popularity that changes over time instead of remembering the
//! distant past forever (and [`FrequencySketch::halve`] lets the policy forget faster).
//!
//! Why these sizes (measured on the Rust benchmark's traces, `benches/rust`, with
//! `RUST_BENCH_ONLY=ratios`): the TinyLFU paper's 16 four-bit counters per entry and a
//! reset every `10 * capacity` see the keys near the admission boundary of a Zipf stream
//! about once per period, too few to tell apart, and crowd 100,000 distinct keys into
//! 16,000 counters. 64 counters per entry, counting to 63 over a 25 times longer
//! period, raised the hit ratio on Zipf(1.0) from 0.599-0.605 (it moved with the hasher's
//! seed) to 0.614, within 0.002 of a cache that counts every key exactly; the policy
//! makes up for the longer memory when popularity moves (see `tinylfu`). The table is
//! capped at 4 MiB: a cache of more than 65,536 entries gets fewer counters per entry.

/// The highest count (the policy adds its own pending counts up to it too).
pub(crate) const MAX_COUNT: u8 = 63;
/// Counters per entry of capacity.
const COUNTERS_PER_ENTRY: usize = 64;
/// Increments between two halvings, per entry of capacity.
const PERIOD_PER_ENTRY: usize = 300;
/// The largest table, in counters (bytes).
const MAX_COUNTERS: usize = 1 << 22;
/// Counters in one block: one cache line.
const BLOCK: usize = 64;

/// One cache line of counters, aligned as one: a `Vec<u8>` is only as aligned as the
/// allocator makes it (glibc: 16 bytes), and then every block straddled two lines,
/// which an access had to fetch both of.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Block([u8; BLOCK]);

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    blocks: Vec<Block>,
    /// Blocks in the table, minus one (their number is a power of two).
    block_mask: u64,
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

/// A key's place in the sketch: its hash, mixed ([`mix64`]) once when the policy first
/// sees the key, which keeps it; its every access then skips the mixing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SketchKey(u64);

impl SketchKey {
    pub(crate) fn of(hash: u64) -> Self {
        Self(mix64(hash))
    }
}

impl FrequencySketch {
    /// A sketch sized for a cache of `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(16);
        let width = (capacity * COUNTERS_PER_ENTRY)
            .next_power_of_two()
            .min(MAX_COUNTERS);
        Self {
            blocks: vec![Block([0; BLOCK]); width / BLOCK],
            block_mask: (width / BLOCK) as u64 - 1,
            additions: 0,
            sample_size: capacity * PERIOD_PER_ENTRY,
        }
    }

    /// The four counters of `key`: a block from the low bits of its mix, and a counter
    /// in that block from each of four 6-bit fields of the high bits.
    #[inline]
    fn indexes(&self, key: SketchKey) -> (usize, [usize; 4]) {
        let h = key.0;
        let block = (h & self.block_mask) as usize;
        let high = (h >> 40) as usize;
        (
            block,
            std::array::from_fn(|i| (high >> (6 * i)) & (BLOCK - 1)),
        )
    }

    /// Starts bringing the block of `key` closer to the core, for a read a while later
    /// (see [`crate::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, key: SketchKey) {
        crate::prefetch::prefetch(&self.blocks[self.indexes(key).0]);
    }

    /// The estimated number of recent accesses of `key` (0 to 63).
    pub(crate) fn frequency(&self, key: SketchKey) -> u8 {
        let (block, idx) = self.indexes(key);
        let counters = &self.blocks[block].0;
        idx.iter().map(|&i| counters[i]).min().unwrap_or(0)
    }

    /// Records one access of `key`; `true` if that made the sketch halve.
    #[cfg(test)]
    pub(crate) fn increment(&mut self, key: SketchKey) -> bool {
        let halved = self.tick();
        self.add(key, 1);
        halved
    }

    /// Adds `n` accesses of `key` that were already counted by [`Self::tick`], and
    /// returns its frequency after them. The conservative update of `n` at once is the
    /// same as `n` of them one by one: every counter of `key` below `min + n` rises to
    /// it (written unconditionally, as a `max`, so the update has no branches).
    #[inline]
    pub(crate) fn add(&mut self, key: SketchKey, n: u8) -> u8 {
        let (block, idx) = self.indexes(key);
        let counters = &mut self.blocks[block].0;
        let low = idx.iter().map(|&i| counters[i]).min().unwrap_or(0);
        let to = low.saturating_add(n).min(MAX_COUNT);
        for i in idx {
            counters[i] = counters[i].max(to);
        }
        to
    }

    /// Counts one access towards the next halving (its key is added later, with
    /// [`Self::add`]); `true` if this one made the sketch halve.
    #[inline]
    pub(crate) fn tick(&mut self) -> bool {
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.halve();
            return true;
        }
        false
    }

    /// Halves every counter: the sketch remembers half as much of the past.
    pub(crate) fn halve(&mut self) {
        for c in self.blocks.iter_mut().flat_map(|b| &mut b.0) {
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
            s.increment(SketchKey::of(42));
        }
        s.increment(SketchKey::of(7));
        assert!(s.frequency(SketchKey::of(42)) >= 5);
        assert!(s.frequency(SketchKey::of(7)) >= 1);
        assert!(s.frequency(SketchKey::of(42)) > s.frequency(SketchKey::of(7)));
        // Saturation, then halving after the sample size.
        for _ in 0..100 {
            s.increment(SketchKey::of(42));
        }
        assert_eq!(s.frequency(SketchKey::of(42)), MAX_COUNT);
        for k in 1000..(1000 + 100 * PERIOD_PER_ENTRY as u64) {
            s.increment(SketchKey::of(k));
        }
        assert!(
            s.frequency(SketchKey::of(42)) < MAX_COUNT,
            "counters were never halved"
        );
    }

    #[test]
    fn halving_on_demand_forgets() {
        let mut s = FrequencySketch::new(100);
        for _ in 0..20 {
            s.increment(SketchKey::of(9));
        }
        let before = s.frequency(SketchKey::of(9));
        s.halve();
        assert_eq!(s.frequency(SketchKey::of(9)), before / 2);
    }

    #[test]
    fn a_key_touches_one_cache_line() {
        let s = FrequencySketch::new(1_000);
        for key in 0..1_000u64 {
            let (block, idx) = s.indexes(SketchKey::of(key));
            assert!(block < s.blocks.len());
            assert!(idx.iter().all(|&i| i < BLOCK));
        }
        // Each block starts a line of its own, wherever the allocator put the table.
        let addr = |b: &Block| std::ptr::from_ref(b) as usize;
        assert!(s.blocks.iter().all(|b| addr(b) % 64 == 0));
    }
}
