//! A yardstick, not a contender: the hit ratio of a cache that remembers how often it has
//! seen every key so far (unbounded memory) and holds the most frequent ones. On a stream
//! whose popularity does not change this is about the best any online policy can do; the
//! static optimum is higher because it knows the popularity before the first access.

use std::collections::{BTreeSet, HashMap};

/// Replays `trace` through a `size`-entry cache with perfect frequency counts; its hit ratio.
pub fn perfect_lfu(trace: &[u64], size: usize) -> f64 {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    // Resident keys by (count, last access), the least frequent (then oldest) first.
    let mut resident: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
    let mut stamp: HashMap<u64, u64> = HashMap::new();
    let mut hits = 0usize;
    for (t, &key) in trace.iter().enumerate() {
        let t = t as u64;
        let count = seen.entry(key).or_insert(0);
        let before = *count;
        *count += 1;
        if let Some(old) = stamp.get(&key).copied() {
            hits += 1;
            resident.remove(&(before, old, key));
            resident.insert((before + 1, t, key));
            stamp.insert(key, t);
            continue;
        }
        if resident.len() < size {
            resident.insert((before + 1, t, key));
            stamp.insert(key, t);
            continue;
        }
        let &(low, low_t, low_key) = resident.first().expect("size > 0");
        if before + 1 > low {
            resident.remove(&(low, low_t, low_key));
            stamp.remove(&low_key);
            resident.insert((before + 1, t, key));
            stamp.insert(key, t);
        }
    }
    hits as f64 / trace.len() as f64
}
