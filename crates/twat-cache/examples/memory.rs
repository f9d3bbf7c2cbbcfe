//! A `MemoryCache` shared by threads: a size bound kept by W-TinyLFU, a TTL, single
//! flight on misses, and the counters: `cargo run --example memory` (run by `make test`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use twat_cache::{MemoryCache, Policy};

fn main() -> Result<(), twat_cache::Error> {
    let cache: Arc<MemoryCache<u64, String>> = Arc::new(
        MemoryCache::builder()
            .max_size(1_000)
            .ttl(Duration::from_secs(60))
            .policy(Policy::TinyLfu)
            .build()?,
    );
    let computed = Arc::new(AtomicUsize::new(0));

    // Four threads ask for the same 2,000 keys; each key is computed once, by whichever
    // thread came first, while the others wait for it (not for other keys).
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, computed) = (Arc::clone(&cache), Arc::clone(&computed));
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    let key = i % 500; // 500 popular keys, asked for over and over
                    let v = cache.get_or_insert_with(key, || {
                        computed.fetch_add(1, Ordering::Relaxed);
                        format!("user-{key}")
                    });
                    assert_eq!(v, format!("user-{key}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a worker panicked");
    }
    let stats = cache.stats();
    println!(
        "8,000 lookups of 500 keys from 4 threads: computed {} times, {} hits, {} misses, {} entries",
        computed.load(Ordering::Relaxed),
        stats.hits,
        stats.misses,
        cache.len()
    );
    assert_eq!(computed.load(Ordering::Relaxed), 500);

    cache.insert_with_ttl(0, "short-lived".into(), Some(Duration::from_millis(10)));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(cache.get(&0), None);
    println!("an entry with its own 10 ms TTL is gone 20 ms later");
    Ok(())
}
