//! `DiskCache::get_or_insert_*`: threads of one process that miss one key at once
//! compute it once; a leader that keeps nothing hands the work on; a computation that
//! asks for its own key does not wait for itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use twat_cache::{Counter, DiskCache};

fn open(name: &str) -> (std::path::PathBuf, DiskCache<u32, String>) {
    let dir = std::env::temp_dir().join(format!("twc-disk-cache-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cache = DiskCache::open(&dir, name).unwrap();
    (dir, cache)
}

#[test]
fn concurrent_misses_of_one_key_compute_it_once() {
    let (dir, cache) = open("flight");
    let cache = Arc::new(cache);
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, runs, start) = (cache.clone(), runs.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.get_or_insert_with(&7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    "seven".to_string()
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "seven");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let counts = cache.tally().counts();
    assert_eq!((counts[Counter::Misses], counts[Counter::Hits]), (1, 7));
    drop(cache);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_leader_that_keeps_nothing_lets_the_waiting_threads_compute() {
    let (dir, cache) = open("handover");
    let cache = Arc::new(cache);
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, runs, start) = (cache.clone(), runs.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.get_or_insert_if(
                    &1,
                    || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Err::<String, _>("down")
                    },
                    |r| r.as_ref().ok(),
                    Ok,
                )
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Err("down"));
    }
    // Nothing was stored, so every caller computed (one after another, none forever).
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(cache.get(&1).unwrap(), None);
    drop(cache);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_computation_that_asks_for_its_own_key_does_not_wait_for_itself() {
    let (dir, cache) = open("reentrant");
    let depth = AtomicUsize::new(0);
    fn value(cache: &DiskCache<u32, String>, depth: &AtomicUsize) -> String {
        cache.get_or_insert_with(&3, || {
            if depth.fetch_add(1, Ordering::SeqCst) == 0 {
                value(cache, depth) + "!"
            } else {
                "inner".to_string()
            }
        })
    }
    assert_eq!(value(&cache, &depth), "inner!");
    assert_eq!(depth.load(Ordering::SeqCst), 2);
    // The outer call stored last.
    assert_eq!(cache.get(&3).unwrap().as_deref(), Some("inner!"));
    drop(cache);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_entry_in_the_index_is_a_miss_and_is_computed_again() {
    let (dir, cache) = open("damaged");
    let runs = AtomicUsize::new(0);
    let make = || {
        runs.fetch_add(1, Ordering::SeqCst);
        "value ".repeat(20)
    };
    assert_eq!(cache.get_or_insert_with(&3, make), "value ".repeat(20));
    // One byte of the stored entry, flipped in place in its index row (a small value
    // lives there, not in a file of its own).
    let db = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    let mut entry: Vec<u8> = db
        .query_row(
            "SELECT value FROM entries WHERE value IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let middle = entry.len() / 2;
    entry[middle] ^= 0x5a;
    db.execute(
        "UPDATE entries SET value = ?1 WHERE value IS NOT NULL",
        [&entry],
    )
    .unwrap();
    drop(db);
    assert_eq!(cache.get_or_insert_with(&3, make), "value ".repeat(20));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the damaged entry was served"
    );
    assert_eq!(cache.get_or_insert_with(&3, make), "value ".repeat(20));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the new entry was not stored"
    );
    drop(cache);
    std::fs::remove_dir_all(&dir).ok();
}
