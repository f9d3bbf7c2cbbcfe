//! `#[bcache]` against `cached`'s `#[concurrent_cached(disk = true)]` (redb), each with
//! its defaults, on the same keys: hits of warm keys, and misses that compute and store.

use std::hint::black_box;
use std::time::Instant;

use twat_cache::bcache;

const OURS_DIR: &str = "/tmp/twc-rust-bench-bcache";
const THEIRS_DIR: &str = "/tmp/twc-rust-bench-redb";

#[derive(Debug, Clone)]
pub struct BenchError(#[allow(dead_code)] String);

impl From<cached::RedbCacheError> for BenchError {
    fn from(e: cached::RedbCacheError) -> Self {
        BenchError(format!("{e:?}"))
    }
}

/// A value of some size (100 u64s), as a disk cache holds.
fn row(x: u64) -> Vec<u64> {
    (0..100)
        .map(|i| x.wrapping_mul(31).wrapping_add(i))
        .collect()
}

#[bcache(dir = "/tmp/twc-rust-bench-bcache", name = "bench.row", version = "1")]
fn ours(x: u64) -> Result<Vec<u64>, String> {
    Ok(row(x))
}

#[cached::macros::concurrent_cached(disk = true, disk_dir = "/tmp/twc-rust-bench-redb")]
fn theirs(x: u64) -> Result<Vec<u64>, BenchError> {
    Ok(row(x))
}

fn time(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        f(black_box(i));
    }
    started.elapsed().as_nanos() as f64 / n as f64 / 1_000.0
}

/// Keys stored in both caches, fresh folders for both.
const WARM: u64 = 1_000;

/// Empties both folders and stores the [`WARM`] keys in each.
fn warm() {
    let _ = std::fs::remove_dir_all(OURS_DIR);
    let _ = std::fs::remove_dir_all(THEIRS_DIR);
    for k in 0..WARM {
        assert_eq!(ours(k).unwrap(), row(k));
        assert_eq!(theirs(k).unwrap(), row(k));
    }
}

/// For profiling the hit path alone (`RUST_BENCH_ONLY=disk-hits`): 200,000 hits of warm
/// keys, ours then theirs, in µs per hit.
pub fn hits_only() -> (f64, f64) {
    warm();
    let o = time(200_000, |i| drop(black_box(ours(i % WARM))));
    let t = time(200_000, |i| drop(black_box(theirs(i % WARM))));
    (o, t)
}

/// `(workload, ours µs, theirs µs)`, medians of `repeats` interleaved rounds.
pub fn compare(repeats: usize) -> Vec<(&'static str, f64, f64)> {
    warm();
    let (mut hit_o, mut hit_t, mut miss_o, mut miss_t) = (vec![], vec![], vec![], vec![]);
    for round in 0..repeats as u64 {
        let fresh = 1_000_000 * (round + 1);
        hit_o.push(time(20_000, |i| drop(black_box(ours(i % WARM)))));
        hit_t.push(time(20_000, |i| drop(black_box(theirs(i % WARM)))));
        miss_o.push(time(500, |i| drop(black_box(ours(fresh + i)))));
        miss_t.push(time(500, |i| drop(black_box(theirs(fresh + i)))));
    }
    let _ = std::fs::remove_dir_all(OURS_DIR);
    let _ = std::fs::remove_dir_all(THEIRS_DIR);
    vec![
        (
            "hit, 1,000 warm keys (100 x u64 values)",
            crate::median(hit_o),
            crate::median(hit_t),
        ),
        (
            "miss: compute and store",
            crate::median(miss_o),
            crate::median(miss_t),
        ),
    ]
}
