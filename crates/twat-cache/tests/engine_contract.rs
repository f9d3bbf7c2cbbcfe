//! The behaviour every policy of the memory engine must show, run once per policy.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::Duration;

use twat_cache::{MemoryCache, Policy, Store};

fn cache(policy: Policy, max: usize) -> MemoryCache<u64, u64> {
    MemoryCache::builder()
        .max_size(max)
        .policy(policy)
        .build()
        .unwrap()
}

#[test]
fn insert_get_remove_for_every_policy() {
    for policy in Policy::ALL {
        let c = cache(policy, 8);
        assert_eq!(c.get(&1), None, "{policy}");
        c.insert(1, 10);
        c.insert(2, 20);
        assert_eq!(c.get(&1), Some(10), "{policy}");
        assert!(c.contains_key(&2), "{policy}");
        c.insert(1, 11);
        assert_eq!(c.len(), 2, "{policy}: replacing must not add an entry");
        assert_eq!(c.get(&1), Some(11), "{policy}");
        assert!(c.remove(&1), "{policy}");
        assert!(!c.remove(&1), "{policy}");
        assert_eq!(c.get(&1), None, "{policy}");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (2, 2, 1), "{policy}");
        c.clear();
        assert!(c.is_empty(), "{policy}");
    }
}

#[test]
fn max_size_is_a_hard_bound_after_every_insert() {
    for policy in Policy::ALL {
        for max in [1usize, 2, 3, 10, 100] {
            let c = cache(policy, max);
            for k in 0..(max as u64 * 20) {
                c.insert(k % (max as u64 * 3), k);
                if k % 3 == 0 {
                    c.get(&(k / 2));
                }
                assert!(c.len() <= max, "{policy} max={max}: len {}", c.len());
            }
            assert_eq!(c.len(), max, "{policy} max={max}: the cache should be full");
            let s = c.stats();
            assert!(s.evictions > 0, "{policy}");
        }
    }
}

#[test]
fn zero_size_stores_nothing_and_unbounded_keeps_everything() {
    for policy in Policy::ALL {
        let none = cache(policy, 0);
        none.insert(1, 1);
        assert_eq!(none.get(&1), None);
        assert!(none.is_empty());

        let all: MemoryCache<u64, u64> = MemoryCache::builder()
            .unbounded()
            .policy(policy)
            .build()
            .unwrap();
        for k in 0..10_000 {
            all.insert(k, k);
        }
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.stats().evictions, 0);
    }
}

#[test]
fn lru_fifo_lfu_evict_what_they_promise() {
    // LRU: touching 1 makes 2 the least recently used.
    let c = cache(Policy::Lru, 2);
    c.insert(1, 1);
    c.insert(2, 2);
    c.get(&1);
    c.insert(3, 3);
    assert!(c.contains_key(&1) && !c.contains_key(&2) && c.contains_key(&3));

    // FIFO: hits do not matter; the first inserted goes first.
    let c = cache(Policy::Fifo, 2);
    c.insert(1, 1);
    c.insert(2, 2);
    c.get(&1);
    c.insert(3, 3);
    assert!(!c.contains_key(&1) && c.contains_key(&2) && c.contains_key(&3));

    // LFU: 1 is used three times, 2 once; 2 goes.
    let c = cache(Policy::Lfu, 2);
    c.insert(1, 1);
    c.insert(2, 2);
    for _ in 0..3 {
        c.get(&1);
    }
    c.get(&2);
    c.insert(3, 3);
    assert!(c.contains_key(&1) && !c.contains_key(&2) && c.contains_key(&3));
}

#[test]
fn tinylfu_keeps_hot_keys_through_a_scan() {
    let c = cache(Policy::TinyLfu, 100);
    for round in 0..20 {
        for k in 0..50u64 {
            if c.get(&k).is_none() {
                c.insert(k, k);
            }
        }
        let _ = round;
    }
    // A scan of 10,000 keys seen once each.
    for k in 1_000..11_000u64 {
        if c.get(&k).is_none() {
            c.insert(k, k);
        }
    }
    let kept = (0..50u64).filter(|k| c.contains_key(k)).count();
    assert!(kept >= 45, "only {kept} of 50 hot keys survived the scan");

    let lru = cache(Policy::Lru, 100);
    for k in 0..50u64 {
        lru.insert(k, k);
    }
    for k in 1_000..11_000u64 {
        lru.insert(k, k);
    }
    assert_eq!((0..50u64).filter(|k| lru.contains_key(k)).count(), 0);
}

/// A Zipf(1.0) stream from a fixed-seed generator (inverse CDF over precomputed weights).
fn zipf_stream(n_keys: usize, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n_keys);
    let mut total = 0.0;
    for i in 1..=n_keys {
        total += 1.0 / i as f64;
        cdf.push(total);
    }
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

fn hit_ratio(policy: Policy, stream: &[u64]) -> f64 {
    let c = cache(policy, 1_000);
    for &k in stream {
        if c.get(&k).is_none() {
            c.insert(k, k);
        }
    }
    c.stats().hit_ratio()
}

#[test]
fn tinylfu_beats_lru_on_a_zipf_workload() {
    let stream = zipf_stream(100_000, 300_000, 0x5EED);
    let lru = hit_ratio(Policy::Lru, &stream);
    let tiny = hit_ratio(Policy::TinyLfu, &stream);
    assert!(tiny > lru + 0.03, "tinylfu {tiny:.3} vs lru {lru:.3}");
}

#[test]
fn tinylfu_lets_new_favourites_in_when_popularity_moves() {
    let c = cache(Policy::TinyLfu, 100);
    let access = |k: u64| {
        if c.get(&k).is_some() {
            return true;
        }
        c.insert(k, k);
        false
    };
    // 100 keys that fill the cache and saturate their counters...
    for _ in 0..80 {
        for k in 0..100u64 {
            access(k);
        }
    }
    // ...then 100 others, the only ones asked for from now on. The sketch halves on its
    // own only after 250 x 100 accesses; without noticing the move, the old keys
    // would win every duel until then and the new ones would only ever hit the window.
    for _ in 0..40 {
        for k in 1_000..1_100u64 {
            access(k);
        }
    }
    let hits = (0..10)
        .flat_map(|_| 1_000..1_100u64)
        .filter(|&k| access(k))
        .count();
    assert!(hits >= 900, "{hits} hits of 1,000 on the new favourites");
}

#[test]
fn ttl_expires_entries_on_read_and_by_sweeps() {
    for policy in Policy::ALL {
        let c: MemoryCache<u64, u64> = MemoryCache::builder()
            .max_size(100)
            .ttl(Duration::from_millis(150))
            .policy(policy)
            .build()
            .unwrap();
        c.insert(1, 1);
        c.insert(2, 2);
        assert_eq!(c.get(&1), Some(1));
        thread::sleep(Duration::from_millis(300));
        assert_eq!(c.get(&1), None, "{policy}: an expired entry was returned");
        assert!(!c.contains_key(&2));
        assert_eq!(c.purge_expired(), 1, "{policy}");
        assert!(c.is_empty());
        let s = c.stats();
        assert_eq!(s.expirations, 2, "{policy}");

        // Inserts reclaim expired entries on their way, without reads.
        for k in 0..10 {
            c.insert(k, k);
        }
        thread::sleep(Duration::from_millis(300));
        for k in 100..103 {
            c.insert(k, k);
        }
        assert!(
            c.len() < 13,
            "{policy}: inserts did not sweep ({})",
            c.len()
        );
    }
    let zero = MemoryCache::<u64, u64>::builder()
        .ttl(Duration::ZERO)
        .build();
    assert!(zero.is_err());
}

#[test]
fn single_flight_runs_init_once_for_concurrent_callers() {
    let c: Arc<MemoryCache<u64, u64>> = Arc::new(cache(Policy::Lru, 10));
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (c, runs, barrier) = (c.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                c.get_or_insert_with(5, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(50));
                    55
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 55);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn reentrant_init_does_not_deadlock_and_panics_do_not_poison() {
    let c = cache(Policy::Lru, 10);
    let v = c.get_or_insert_with(1, || c.get_or_insert_with(1, || 3) + 1);
    assert_eq!(v, 4);

    let c = Arc::new(cache(Policy::Lru, 10));
    let c2 = c.clone();
    let r = thread::spawn(move || c2.get_or_insert_with(9, || panic!("boom"))).join();
    assert!(r.is_err());
    assert_eq!(c.get_or_insert_with(9, || 99), 99);
    c.insert(1, 1);
    assert_eq!(c.get(&1), Some(1));
}

struct DropProbe(u64);

static PROBED: OnceLock<MemoryCache<u64, Arc<DropProbe>>> = OnceLock::new();
static DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for DropProbe {
    fn drop(&mut self) {
        // Would deadlock if the cache dropped evicted values while holding its lock.
        let _ = PROBED.get().map(|c| c.len());
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn evicted_values_are_dropped_after_the_lock_is_released() {
    let c = PROBED.get_or_init(|| MemoryCache::builder().max_size(2).build().unwrap());
    for k in 0..5 {
        c.insert(k, Arc::new(DropProbe(k)));
    }
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    assert!(c.remove(&4));
    c.clear();
    assert_eq!(DROPS.load(Ordering::SeqCst), 5);
    assert_eq!(c.get(&1).map(|p| p.0), None);
}

#[test]
fn a_failing_key_comparison_propagates_its_error() {
    let mut store: Store<u64, u64> = Store::new(Some(4), None, Policy::Lru);
    store
        .insert_by(7, 1, 1, |a, b| Ok::<_, Infallible>(a == b))
        .unwrap();
    let r = store.get_by(7, |_| Err::<bool, &str>("__eq__ raised"));
    assert_eq!(r, Err("__eq__ raised"));
    assert_eq!(store.get_by(7, |k| Ok::<_, ()>(*k == 1)), Ok(Some(&1)));
}

#[test]
fn an_entry_may_have_a_ttl_of_its_own_under_every_policy() {
    for policy in Policy::ALL {
        let c: MemoryCache<u64, u64> = MemoryCache::builder()
            .max_size(8)
            .ttl(Duration::from_secs(60))
            .policy(policy)
            .build()
            .unwrap();
        c.insert(1, 10);
        c.insert_with_ttl(2, 20, Some(Duration::from_millis(20)));
        c.insert_with_ttl(3, 30, None); // the default: 60 s
        thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&2), None, "{policy}: its own TTL passed");
        assert_eq!((c.get(&1), c.get(&3)), (Some(10), Some(30)), "{policy}");
        // Replacing an entry gives it the new TTL.
        c.insert_with_ttl(1, 11, Some(Duration::from_millis(20)));
        thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&1), None, "{policy}");
        assert_eq!(c.len(), 1, "{policy}: only key 3 is left");
    }
}

#[test]
fn a_store_without_default_ttl_expires_entries_given_one_and_sweeps_them() {
    let mut s: Store<u64, u64> = Store::new(Some(100), None, Policy::Lru);
    let eq = |a: &u64, b: &u64| Ok::<_, Infallible>(a == b);
    s.insert_by(1, 1, 10, eq).unwrap();
    s.insert_expiring_by(2, 2, 20, Some(Duration::from_millis(10)), eq)
        .unwrap();
    s.insert_expiring_by(3, 3, 30, Some(Duration::from_millis(10)), eq)
        .unwrap();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        s.purge_expired(),
        2,
        "both deadlines passed; key 1 has none"
    );
    assert_eq!(s.len(), 1);
    assert_eq!(
        s.get_by(1, |k| Ok::<_, Infallible>(*k == 1)).unwrap(),
        Some(&10)
    );
}

#[test]
fn entries_stored_before_the_table_grew_are_still_found_evicted_and_removed() {
    // A store notes the table bucket of each entry to remove it without a probe; the
    // table moves its buckets when it grows. Entries from every stage of growth, with
    // hashes that collide in bunches (long probe sequences), must still leave cleanly.
    for policy in Policy::ALL {
        for spread_hashes in [true, false] {
            let hash = |k: u64| if spread_hashes { k } else { k % 7 };
            let same = |a: &u64, b: &u64| Ok::<_, Infallible>(a == b);
            let mut store: Store<u64, u64> = Store::new(Some(1_500), None, policy);
            for k in 0..4_000u64 {
                store.insert_by(hash(k), k, k * 2, same).unwrap();
                assert!(store.len() <= 1_500, "{policy}");
            }
            let evicted = store.stats().evictions;
            assert_eq!(evicted, 4_000 - 1_500, "{policy}");
            let mut present = 0;
            for k in 0..4_000u64 {
                let eq = |x: &u64| Ok::<_, Infallible>(*x == k);
                match store.peek_by(hash(k), eq).unwrap().copied() {
                    Some(v) => {
                        assert_eq!(v, k * 2, "{policy}: key {k}");
                        present += 1;
                        assert!(store.remove_by(hash(k), eq).unwrap(), "{policy}: key {k}");
                        assert_eq!(store.peek_by(hash(k), eq).unwrap(), None, "{policy}");
                    }
                    None => assert!(!store.remove_by(hash(k), eq).unwrap(), "{policy}"),
                }
            }
            assert_eq!(present, 1_500, "{policy}");
            assert!(
                store.is_empty(),
                "{policy}: every entry was removed from the table"
            );
        }
    }
}
