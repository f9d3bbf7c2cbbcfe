//! The Rust side of `make bench`: twat-cache's memory engine (three policies) against
//! quick_cache, moka and cached on the same traces in the same run, and `#[mcache]`
//! against `#[cached]`. Prints Markdown tables. Repeats are interleaved (every
//! contender once, then again) and the median and minimum are kept.

mod bound;
mod disk;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use cached::Cached;
use twat_cache::{mcache, MemoryCache, Policy};

const REPEATS: usize = 9;

/// xorshift64*: a small, fast generator, seeded, so every contender sees one trace.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Ranks 0..n drawn with probability proportional to 1/(rank+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}
impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u) as u64
    }
    /// The hit ratio of a cache that holds the `size` most popular keys forever.
    fn optimum(&self, size: usize) -> f64 {
        self.cdf[size - 1]
    }
}

/// A cache under test: a lookup that inserts on a miss; whether it hit.
trait Contender: Sync {
    fn name(&self) -> &'static str;
    fn access(&self, key: u64) -> bool;
}

struct Ours(&'static str, MemoryCache<u64, u64>);
impl Contender for Ours {
    fn name(&self) -> &'static str {
        self.0
    }
    fn access(&self, key: u64) -> bool {
        if self.1.get(&key).is_some() {
            return true;
        }
        self.1.insert(key, key);
        false
    }
}

struct Quick(quick_cache::sync::Cache<u64, u64>);
impl Contender for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn access(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, key);
        false
    }
}

struct Moka(moka::sync::Cache<u64, u64>);
impl Contender for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn access(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, key);
        false
    }
}

/// The store `#[cached(max_size = N)]` makes: an LRU behind a lock.
struct CachedLru(Mutex<cached::LruCache<u64, u64>>);
impl Contender for CachedLru {
    fn name(&self) -> &'static str {
        "cached (LruCache)"
    }
    fn access(&self, key: u64) -> bool {
        let mut c = self.0.lock().unwrap();
        if c.cache_get(&key).is_some() {
            return true;
        }
        c.cache_set(key, key);
        false
    }
}

fn contenders(size: usize) -> Vec<Box<dyn Contender>> {
    let ours = |name, policy| -> Box<dyn Contender> {
        let cache = MemoryCache::builder()
            .max_size(size)
            .policy(policy)
            .build()
            .expect("valid");
        Box::new(Ours(name, cache))
    };
    vec![
        ours("twat lru", Policy::Lru),
        ours("twat lfu", Policy::Lfu),
        ours("twat tinylfu", Policy::TinyLfu),
        Box::new(Quick(quick_cache::sync::Cache::new(size))),
        Box::new(Moka(moka::sync::Cache::new(size as u64))),
        Box::new(CachedLru(Mutex::new(cached::LruCache::new(size)))),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `trace` through fresh caches of every contender: hit ratio and ns per access,
/// repeats interleaved.
fn replay(trace: &[u64], size: usize) -> Vec<(&'static str, f64, f64, f64)> {
    let mut ratios: Vec<f64> = Vec::new();
    let mut times: Vec<Vec<f64>> = Vec::new();
    let mut names = Vec::new();
    for round in 0..REPEATS {
        for (i, c) in contenders(size).into_iter().enumerate() {
            let started = Instant::now();
            let hits = trace.iter().filter(|&&k| c.access(black_box(k))).count();
            let ns = started.elapsed().as_nanos() as f64 / trace.len() as f64;
            if round == 0 {
                names.push(c.name());
                ratios.push(hits as f64 / trace.len() as f64);
                times.push(Vec::new());
            }
            times[i].push(ns);
        }
    }
    names
        .into_iter()
        .zip(ratios)
        .zip(times)
        .map(|((n, r), t)| {
            let min = t.iter().copied().fold(f64::INFINITY, f64::min);
            (n, r, median(t), min)
        })
        .collect()
}

/// ns per hit on a warm cache of 1,000 keys, one thread; and total hits per second of
/// two threads.
/// A contender's median and minimum.
type Timed = (&'static str, f64, f64);
/// A contender's median.
type Rate = (&'static str, f64);

fn hits() -> (Vec<Timed>, Vec<Rate>) {
    const KEYS: u64 = 1_000;
    const OPS: u64 = 4_000_000;
    let mut single: Vec<Vec<f64>> = Vec::new();
    let mut double: Vec<Vec<f64>> = Vec::new();
    let mut names = Vec::new();
    for round in 0..REPEATS {
        for (i, c) in contenders(KEYS as usize * 2).into_iter().enumerate() {
            for k in 0..KEYS {
                c.access(k);
            }
            let started = Instant::now();
            let mut found = 0u64;
            for i in 0..OPS {
                found += c.access(black_box(i % KEYS)) as u64;
            }
            assert_eq!(found, OPS);
            let ns = started.elapsed().as_nanos() as f64 / OPS as f64;
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let c = &c;
                    s.spawn(move || {
                        for i in 0..OPS / 2 {
                            black_box(c.access(black_box((i + t * 500) % KEYS)));
                        }
                    });
                }
            });
            let mops = OPS as f64 / started.elapsed().as_secs_f64() / 1e6;
            if round == 0 {
                names.push(c.name());
                single.push(Vec::new());
                double.push(Vec::new());
            }
            single[i].push(ns);
            double[i].push(mops);
        }
    }
    let one = names
        .iter()
        .zip(&single)
        .map(|(n, t)| {
            (
                *n,
                median(t.clone()),
                t.iter().copied().fold(f64::INFINITY, f64::min),
            )
        })
        .collect();
    let two = names
        .iter()
        .zip(double)
        .map(|(n, t)| (*n, median(t)))
        .collect();
    (one, two)
}

fn zipf_trace(keys: usize, s: f64, ops: usize, seed: u64) -> (Vec<u64>, Zipf) {
    let zipf = Zipf::new(keys, s);
    let mut rng = Rng(seed);
    ((0..ops).map(|_| zipf.sample(&mut rng)).collect(), zipf)
}

/// A Zipf(1.0) stream with a scan of 2,000 keys never seen again after every 10,000
/// accesses.
fn scan_trace() -> Vec<u64> {
    let (base, _) = zipf_trace(100_000, 1.0, 1_000_000, 7);
    let mut out = Vec::with_capacity(base.len() * 6 / 5);
    let mut fresh = 10_000_000u64;
    for (i, k) in base.into_iter().enumerate() {
        out.push(k);
        if i % 10_000 == 9_999 {
            out.extend(fresh..fresh + 2_000);
            fresh += 2_000;
        }
    }
    out
}

/// A Zipf(1.0) stream whose popular keys change half-way.
fn shifting_trace() -> Vec<u64> {
    let (mut trace, _) = zipf_trace(100_000, 1.0, 1_000_000, 11);
    let half = trace.len() / 2;
    for k in &mut trace[half..] {
        *k = (*k).wrapping_mul(2_654_435_761) % 1_000_003 + 200_000;
    }
    trace
}

#[mcache(max_size = 1_000)]
fn ours_hit(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[cached::proc_macro::cached(max_size = 1_000)]
fn cached_hit(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[mcache(max_size = 128)]
fn ours_miss(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[cached::proc_macro::cached(max_size = 128)]
fn cached_miss(x: u64) -> u64 {
    x.wrapping_mul(3)
}

fn time_calls(f: impl Fn(u64) -> u64, keys: impl Fn(u64) -> u64) -> f64 {
    const OPS: u64 = 2_000_000;
    let started = Instant::now();
    for i in 0..OPS {
        black_box(f(black_box(keys(i))));
    }
    started.elapsed().as_nanos() as f64 / OPS as f64
}

fn macros() -> Vec<(&'static str, f64, f64)> {
    for k in 0..1_000 {
        ours_hit(k);
        cached_hit(k);
    }
    let mut rows: Vec<(&'static str, Vec<f64>, Vec<f64>)> = vec![
        ("hit, f(x) on 1,000 warm keys", Vec::new(), Vec::new()),
        ("miss + store, evicting (size 128)", Vec::new(), Vec::new()),
    ];
    for round in 0..REPEATS {
        let base = 1_000_000 * (round as u64 + 1);
        rows[0].1.push(time_calls(ours_hit, |i| i % 1_000));
        rows[0].2.push(time_calls(cached_hit, |i| i % 1_000));
        rows[1].1.push(time_calls(ours_miss, |i| base * 10 + i));
        rows[1].2.push(time_calls(cached_miss, |i| base * 10 + i));
    }
    rows.into_iter()
        .map(|(n, a, b)| (n, median(a), median(b)))
        .collect()
}

/// A trace: its name, the keys, the cache size, the static optimum if known.
type Trace = (String, Vec<u64>, usize, Option<f64>);

fn traces() -> Vec<Trace> {
    let (a, za) = zipf_trace(100_000, 1.0, 1_000_000, 1);
    let (b, zb) = zipf_trace(1_000_000, 1.0, 2_000_000, 2);
    let (c, zc) = zipf_trace(100_000, 0.8, 1_000_000, 3);
    vec![
        (
            "Zipf(1.0), 100k keys, 1,000 entries".into(),
            a,
            1_000,
            Some(za.optimum(1_000)),
        ),
        (
            "Zipf(1.0), 1M keys, 10,000 entries".into(),
            b,
            10_000,
            Some(zb.optimum(10_000)),
        ),
        (
            "Zipf(0.8), 100k keys, 1,000 entries".into(),
            c,
            1_000,
            Some(zc.optimum(1_000)),
        ),
        (
            "Zipf(1.0) with one-off scans, 1,000 entries".into(),
            scan_trace(),
            1_000,
            None,
        ),
        (
            "Zipf(1.0), popularity shifts half-way, 1,000 entries".into(),
            shifting_trace(),
            1_000,
            None,
        ),
    ]
}

/// Hit ratios alone (no timing), for tuning the policies: `RUST_BENCH_ONLY=ratios`.
fn ratios_only(traces: &[Trace]) {
    for (name, trace, size, optimum) in traces {
        let cells: Vec<String> = contenders(*size)
            .iter()
            .map(|c| {
                let hits = trace.iter().filter(|&&k| c.access(k)).count();
                format!("{} {:.4}", c.name(), hits as f64 / trace.len() as f64)
            })
            .collect();
        println!(
            "{name}: {} | perfect lfu {:.4} | optimum {}",
            cells.join(" | "),
            bound::perfect_lfu(trace, *size),
            optimum.map_or("-".to_string(), |o| format!("{o:.4}"))
        );
    }
}

/// The best of ten runs (`RUST_BENCH_ROUNDS`: of that many; 1 for `valgrind`) of `access`
/// over `trace`, in ns per access.
fn min_ns_per_access(trace: &[u64], mut run: impl FnMut(&[u64]) -> usize) -> f64 {
    let mut best = f64::MAX;
    let rounds: usize =
        std::env::var("RUST_BENCH_ROUNDS").map_or(10, |r| r.parse().expect("a count"));
    for _ in 0..rounds {
        let started = Instant::now();
        black_box(run(trace));
        best = best.min(started.elapsed().as_nanos() as f64 / trace.len() as f64);
    }
    best
}

/// For tuning a policy's speed (`RUST_BENCH_STORE=<policy>`): ns per access on the first
/// Zipf trace (with `RUST_BENCH_BIG=1`, the second: 1M keys, 10,000 entries; with
/// `RUST_BENCH_MISS=1`, keys that all miss; with `RUST_BENCH_HITS=1`, keys that all hit
/// but the first round), best of ten, for
/// quick_cache, our `MemoryCache` and our bare `Store` (no lock, no stats), so a change
/// to a policy shows without the noise of the whole table. `RUST_BENCH_BARE=1` times the
/// bare store alone (for `perf record`).
fn tuning(policy: Policy) {
    let big = std::env::var("RUST_BENCH_BIG").is_ok();
    let size = if big { 10_000 } else { 1_000 };
    let trace: Vec<u64> = if std::env::var("RUST_BENCH_MISS").is_ok() {
        (0..1_000_000).collect()
    } else if std::env::var("RUST_BENCH_HITS").is_ok() {
        // Hits alone, at random among the resident keys (after the first round).
        let mut rng = Rng(7);
        (0..size as u64)
            .chain((0..2_000_000).map(|_| rng.next() % size as u64))
            .collect()
    } else if big {
        zipf_trace(1_000_000, 1.0, 2_000_000, 2).0
    } else {
        zipf_trace(100_000, 1.0, 1_000_000, 1).0
    };
    let bare = std::env::var("RUST_BENCH_BARE").is_ok();
    let quick = if bare {
        0.0
    } else {
        min_ns_per_access(&trace, |t| {
            let c = Quick(quick_cache::sync::Cache::new(size));
            t.iter().filter(|&&k| c.access(black_box(k))).count()
        })
    };
    let ours = if bare {
        0.0
    } else {
        min_ns_per_access(&trace, |t| {
            let c = Ours(
                "x",
                MemoryCache::builder()
                    .max_size(size)
                    .policy(policy)
                    .build()
                    .expect("valid"),
            );
            t.iter().filter(|&&k| c.access(black_box(k))).count()
        })
    };
    let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let store = min_ns_per_access(&trace, |t| {
        let mut s: twat_cache::Store<u64, u64> = twat_cache::Store::new(Some(size), None, policy);
        t.iter()
            .filter(|&&k| {
                let k = black_box(k);
                let found = s.get_by(hash(k), |x| Ok::<_, ()>(*x == k));
                if found.expect("infallible").is_some() {
                    return true;
                }
                s.insert_by(hash(k), k, k, |a, b| Ok::<_, ()>(a == b))
                    .expect("infallible");
                drop(s.take_removed());
                false
            })
            .count()
    });
    // quick_cache's own single-threaded cache: its store without the shards' locks.
    let quick_unsync = if bare {
        0.0
    } else {
        min_ns_per_access(&trace, |t| {
            let mut c = quick_cache::unsync::Cache::<u64, u64>::new(size);
            t.iter()
                .filter(|&&k| {
                    let k = black_box(k);
                    if c.get(&k).is_some() {
                        return true;
                    }
                    c.insert(k, k);
                    false
                })
                .count()
        })
    };
    println!("quick_cache {quick:.1} | ours {policy} {ours:.1} | store {policy} {store:.1} | quick_cache unsync {quick_unsync:.1} ns/access (best of 10)");
}

fn main() {
    if std::env::var("RUST_BENCH_ONLY").as_deref() == Ok("disk") {
        // For profiling the disk rows alone.
        for (name, ours, theirs) in disk::compare(REPEATS) {
            println!(
                "| {name} | {ours:.2} | {theirs:.2} | {:.2} x |",
                ours / theirs
            );
        }
        return;
    }
    if std::env::var("RUST_BENCH_ONLY").as_deref() == Ok("disk-hits") {
        let (ours, theirs) = disk::hits_only();
        println!("disk hit: #[bcache] {ours:.2} µs, cached (redb) {theirs:.2} µs");
        return;
    }
    if let Ok(policy) = std::env::var("RUST_BENCH_STORE") {
        tuning(policy.parse().expect("a policy name"));
        return;
    }
    if let Ok(policy) = std::env::var("RUST_BENCH_PROFILE") {
        // For `perf record`: one policy on the first Zipf trace, ten times over.
        let policy: Policy = policy.parse().expect("a policy name");
        let trace: Vec<u64> = if std::env::var("RUST_BENCH_HITS").is_ok() {
            (0..1_000_000).map(|i| i % 500).collect()
        } else {
            zipf_trace(100_000, 1.0, 1_000_000, 1).0
        };
        let started = Instant::now();
        for _ in 0..10 {
            let c = Ours(
                "profiled",
                MemoryCache::builder()
                    .max_size(1_000)
                    .policy(policy)
                    .build()
                    .expect("valid"),
            );
            black_box(trace.iter().filter(|&&k| c.access(black_box(k))).count());
        }
        println!(
            "{policy}: {:.1} ns/access",
            started.elapsed().as_nanos() as f64 / 1e7
        );
        return;
    }
    if std::env::var("RUST_BENCH_ONLY").as_deref() == Ok("macros") {
        // For tuning the macros' paths: their two rows alone.
        for (name, ours, theirs) in macros() {
            println!("{name}: #[mcache] {ours:.1} ns, #[cached] {theirs:.1} ns");
        }
        return;
    }
    if std::env::var("RUST_BENCH_ONLY").as_deref() == Ok("ratios") {
        ratios_only(&traces());
        return;
    }
    if std::env::var("RUST_BENCH_ONLY").as_deref() == Ok("hits") {
        // For tuning the hit path and the lock: the two hit rows alone.
        let (one, two) = hits();
        for ((name, ns, min), (_, mops)) in one.iter().zip(&two) {
            println!("{name}: hit {ns:.1} ns (min {min:.1}), 2 threads {mops:.1} M/s");
        }
        return;
    }
    let names: Vec<&str> = contenders(10).iter().map(|c| c.name()).collect();
    let header = |first: &str, last: Option<&str>| {
        let last_cell = last.map_or(String::new(), |l| format!(" {l} |"));
        println!("| {first} | {} |{last_cell}", names.join(" | "));
        let last_rule = if last.is_some() { "---|" } else { "" };
        println!("|---|{}{last_rule}", "---:|".repeat(names.len()));
    };
    println!("## Rust: the memory engine against quick_cache, moka and cached\n");
    println!(
        "`cargo run --release` in `benches/rust` (run by `make bench`): u64 keys, every contender on the same \
         trace in the same run, {REPEATS} interleaved repeats; times are the median (and minimum) ns per \
         access, a miss inserting. Hit ratios are the same in every repeat. The last column holds two yardsticks: the static optimum (the most popular keys, known in advance) and a cache that counts every key it has ever seen exactly (unbounded memory), about the best an online policy can do on a stream whose popularity does not change.\n"
    );
    eprintln!("rust bench: hits ...");
    let (one, two) = hits();
    header("workload", None);
    let cells: Vec<String> = one
        .iter()
        .map(|(_, m, lo)| format!("{m:.1} ({lo:.1})"))
        .collect();
    println!("| hit, 1 thread, ns | {} |", cells.join(" | "));
    let cells: Vec<String> = two.iter().map(|(_, m)| format!("{m:.1}")).collect();
    println!(
        "| hits, 2 threads, total M/s (higher is better) | {} |",
        cells.join(" | ")
    );

    eprintln!("rust bench: traces ...");
    let traces = traces();
    println!();
    header(
        "trace: hit ratio (ns/access)",
        Some("static optimum / perfect-count LFU"),
    );
    for (name, trace, size, optimum) in &traces {
        eprintln!("rust bench: {name} ...");
        let results = replay(trace, *size);
        let cells: Vec<String> = results
            .iter()
            .map(|(_, r, m, _)| format!("{r:.3} ({m:.0})"))
            .collect();
        let opt = optimum.map_or("-".to_string(), |o| format!("{o:.3}"));
        let opt = format!("{opt} / {:.3}", bound::perfect_lfu(trace, *size));
        println!("| {name} | {} | {opt} |", cells.join(" | "));
    }

    eprintln!("rust bench: macros ...");
    println!("\n## Rust: `#[mcache]` against `#[cached]`\n");
    println!("| workload | #[mcache] ns | #[cached] ns | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, ours, theirs) in macros() {
        println!(
            "| {name} | {ours:.1} | {theirs:.1} | {:.2} x |",
            ours / theirs
        );
    }

    eprintln!("rust bench: disk ...");
    println!(
        "\n## Rust: `#[bcache]` against `cached`'s `#[concurrent_cached(disk = true)]` (redb)\n"
    );
    println!("Each with its defaults (redb commits every write durably; twat-cache's folder store writes without fsync, as the Python `bcache` does).\n");
    println!("| workload | #[bcache] µs | cached (redb) µs | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, ours, theirs) in disk::compare(REPEATS) {
        println!(
            "| {name} | {ours:.2} | {theirs:.2} | {:.2} x |",
            ours / theirs
        );
    }
}
