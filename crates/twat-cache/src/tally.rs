//! Counters that span processes. Every process counts each cache's hits, misses and the
//! rest in memory ([`Tally`], a few atomics: a call never writes for them) and folds
//! what it counted since the last fold into the cache's store - a row of the folder's
//! index, or a hash on the Redis server - in one batch per store: every [`FOLD_EVERY`]
//! from one thread of the process, and at exit ([`fold_all`]). The store's totals are
//! then the sums over every process that used the cache, which `cache_stats()` and the
//! `twat-cache stats` command show.
//!
//! A fold that fails (a busy index, a dead server) gives its counts back to be folded
//! next time; a process killed by SIGKILL loses at most its last few seconds of counts.
//! A child made by `fork` starts with nothing to fold (its parent folds what it
//! inherited).
//!
//! ```
//! use twat_cache::{Counter, Tally};
//!
//! let tally = Tally::new("my_function");
//! tally.add(Counter::Hits, 2);
//! tally.add(Counter::Misses, 1);
//! assert_eq!(tally.counts()[Counter::Hits], 2);
//! assert_eq!(tally.counts().hit_ratio(), 2.0 / 3.0);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fork::Locked;
use crate::Error;

/// How often a process folds its counts into the stores.
pub const FOLD_EVERY: Duration = Duration::from_secs(2);

/// The counters of a cache, in the order of [`Counter::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Lookups that found a live (or served a stale) entry.
    Hits,
    /// Lookups that found nothing usable.
    Misses,
    /// Hits that served a stale entry (counted in `Hits` too).
    StaleHits,
    /// Entries removed to keep the size limit.
    Evictions,
    /// Entries removed because their time-to-live had passed.
    Expirations,
    /// Store operations that failed (the call ran uncached or its result went unstored).
    StoreErrors,
    /// Bytes of entries written.
    BytesWritten,
    /// Bytes of entries read.
    BytesRead,
}

/// How many counters a [`Tally`] has.
pub const COUNTERS: usize = 8;

impl Counter {
    /// Every counter, in storage order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::Hits,
        Counter::Misses,
        Counter::StaleHits,
        Counter::Evictions,
        Counter::Expirations,
        Counter::StoreErrors,
        Counter::BytesWritten,
        Counter::BytesRead,
    ];

    /// The counter's name, as `cache_stats()`, the index and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Hits => "hits",
            Counter::Misses => "misses",
            Counter::StaleHits => "stale_hits",
            Counter::Evictions => "evictions",
            Counter::Expirations => "expirations",
            Counter::StoreErrors => "store_errors",
            Counter::BytesWritten => "bytes_written",
            Counter::BytesRead => "bytes_read",
        }
    }
}

/// A snapshot of the counters of a cache.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; COUNTERS]);

impl std::fmt::Debug for Counts {
    /// `{hits: 1, misses: 1, ...}`: each counter by name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for c in Counter::ALL {
            map.entry(&format_args!("{}", c.name()), &self[c]);
        }
        map.finish()
    }
}

impl std::ops::Index<Counter> for Counts {
    type Output = u64;
    fn index(&self, c: Counter) -> &u64 {
        &self.0[c as usize]
    }
}

impl Counts {
    /// `hits / (hits + misses)`, or 0.0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let (h, m) = (self[Counter::Hits], self[Counter::Misses]);
        if h + m == 0 {
            0.0
        } else {
            h as f64 / (h + m) as f64
        }
    }

    /// These counts and `other`'s, added.
    pub fn plus(&self, other: &Counts) -> Counts {
        Counts(std::array::from_fn(|i| {
            self.0[i].saturating_add(other.0[i])
        }))
    }

    fn minus(&self, other: &Counts) -> Counts {
        Counts(std::array::from_fn(|i| {
            self.0[i].saturating_sub(other.0[i])
        }))
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }
}

/// What a cache is, recorded with its counts so that a tool that finds the store can
/// describe it (`twat-cache ls`). `None` fields are left as the store has them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct About {
    /// `"bcache"`, `"fcache"`, `"rcache"`, ...
    pub engine: Option<String>,
    /// The eviction policy's name.
    pub policy: Option<String>,
    /// The entries' time-to-live, in seconds.
    pub ttl: Option<f64>,
    /// The store's byte limit.
    pub max_bytes: Option<u64>,
    /// The version of the function's code that its keys include.
    pub version: Option<String>,
}

/// One cache's counters in this process, and how much of them its store already holds.
#[derive(Debug)]
pub struct Tally {
    ns: String,
    about: About,
    cells: [AtomicU64; COUNTERS],
    /// The counts already folded into the store (or, in a forked child, inherited).
    folded: Mutex<Counts>,
}

impl Tally {
    /// A tally for the cache `ns` (its namespace in the store), with nothing said about it.
    pub fn new(ns: &str) -> Arc<Tally> {
        Self::describing(ns, About::default())
    }

    /// A tally for the cache `ns`, recording `about` with its counts.
    pub fn describing(ns: &str, about: About) -> Arc<Tally> {
        Arc::new(Tally {
            ns: ns.to_owned(),
            about,
            cells: Default::default(),
            folded: Mutex::new(Counts::default()),
        })
    }

    /// The cache's namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// What the cache is.
    pub fn about(&self) -> &About {
        &self.about
    }

    /// Counts `n` more of `counter`.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.cells[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Takes one back from `counter` if it is above zero; whether it was.
    pub fn take_one(&self, counter: Counter) -> bool {
        self.cells[counter as usize]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// What this process counted (since the tally was made or reset).
    pub fn counts(&self) -> Counts {
        Counts(std::array::from_fn(|i| {
            self.cells[i].load(Ordering::Relaxed)
        }))
    }

    /// What this process counted and has not folded into the store yet.
    pub fn unfolded(&self) -> Counts {
        self.counts().minus(&self.folded())
    }

    /// Starts every counter from zero (a cleared cache). Counts not folded yet are dropped.
    pub fn reset(&self) {
        let mut folded = self.folded();
        for c in &self.cells {
            c.store(0, Ordering::Relaxed);
        }
        *folded = Counts::default();
    }

    fn folded(&self) -> Locked<'_, Counts> {
        crate::fork::lock(&self.folded)
    }

    /// The counts since the last fold, now counted as folded.
    fn take(&self) -> Counts {
        let mut folded = self.folded();
        let now = self.counts();
        let delta = now.minus(&folded);
        *folded = now;
        delta
    }

    /// A fold of `delta` failed: it is folded next time.
    fn give_back(&self, delta: &Counts) {
        let mut folded = self.folded();
        *folded = folded.minus(delta);
    }

    /// In a forked child: what the parent counted is the parent's to fold.
    fn inherited(&self) {
        *self.folded() = self.counts();
    }
}

/// The tallies a store counts its own removals in, by cache.
pub(crate) type Tallies = Mutex<std::collections::HashMap<String, Arc<Tally>>>;

/// Where a store's totals are kept: one batch of `(tally, counts)` is added in one go.
pub(crate) trait Sink: Send + Sync {
    fn fold(&self, batch: &[(&Tally, Counts)]) -> Result<(), Error>;
}

struct Tracked {
    /// The store's place (an index file, a server and prefix): one sink each.
    place: String,
    sink: Arc<dyn Sink>,
    /// Kept until folded, even after their cache is gone (a context closed, a tool's
    /// process about to exit): what was counted is never dropped unfolded.
    tallies: Vec<Arc<Tally>>,
}

struct Registry {
    /// The process whose thread folds (a forked child starts its own).
    folder_pid: Option<u32>,
    tracked: Vec<Tracked>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    folder_pid: None,
    tracked: Vec::new(),
});

fn registry() -> Locked<'static, Registry> {
    crate::fork::lock(&REGISTRY)
}

/// Folds `tally` into the store at `place` from now on (`sink` makes that store's sink,
/// the first time the place is seen).
pub(crate) fn track(place: &str, sink: impl FnOnce() -> Arc<dyn Sink>, tally: &Arc<Tally>) {
    // Held with the fork gate, so that no fork copies the registry locked.
    let _pass = crate::fork::pass();
    let mut reg = registry();
    let t = match reg.tracked.iter().position(|t| t.place == place) {
        Some(i) => &mut reg.tracked[i],
        None => {
            reg.tracked.push(Tracked {
                place: place.to_owned(),
                sink: sink(),
                tallies: Vec::new(),
            });
            reg.tracked.last_mut().expect("just pushed")
        }
    };
    let new = !t.tallies.iter().any(|held| Arc::ptr_eq(held, tally));
    if new {
        t.tallies.push(Arc::clone(tally));
    }
    let sink = Arc::clone(&t.sink);
    start_folding(&mut reg);
    drop(reg);
    if new {
        // The cache is known to the store (engine, policy, limits) from its first use,
        // not from its first fold: `twat-cache ls` names it while the program still runs.
        // A failure here is the next fold's to retry.
        let _ = sink.fold(&[(&**tally, Counts::default())]);
    }
}

/// Starts this process's folding thread, unless it runs.
fn start_folding(reg: &mut Registry) {
    let pid = std::process::id();
    if reg.folder_pid == Some(pid) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("twat-cache-tally".into())
        .spawn(move || loop {
            std::thread::sleep(FOLD_EVERY);
            if std::process::id() != pid {
                return;
            }
            fold_all();
        });
    if started.is_ok() {
        reg.folder_pid = Some(pid);
    }
}

/// A sink and the live tallies to fold into it.
type Work = (Arc<dyn Sink>, Vec<Arc<Tally>>);

/// Folds what every cache of this process counted into its store now (each process
/// does it every [`FOLD_EVERY`], and the Python package at exit).
pub fn fold_all() {
    let _pass = crate::fork::pass();
    let work: Vec<Work> = {
        let mut reg = registry();
        reg.tracked.retain_mut(|t| {
            // A tally only the registry holds (its cache is gone) goes once folded.
            t.tallies
                .retain(|held| Arc::strong_count(held) > 1 || !held.unfolded().is_zero());
            !t.tallies.is_empty()
        });
        reg.tracked
            .iter()
            .map(|t| (Arc::clone(&t.sink), t.tallies.clone()))
            .collect()
    };
    for (sink, tallies) in work {
        let batch: Vec<(&Tally, Counts)> = tallies
            .iter()
            .map(|t| (&**t, t.take()))
            .filter(|(_, d)| !d.is_zero())
            .collect();
        if !batch.is_empty() && sink.fold(&batch).is_err() {
            for (t, d) in &batch {
                t.give_back(d);
            }
        }
    }
}

/// After `fork()`, in the child: nothing inherited is folded twice, and the child's own
/// counts are folded by a thread of its own (started with the next tracked tally, or now).
pub(crate) fn after_in_child() {
    let mut reg = registry();
    reg.folder_pid = None;
    for t in &reg.tracked {
        for tally in &t.tallies {
            tally.inherited();
        }
    }
    if reg.tracked.iter().any(|t| !t.tallies.is_empty()) {
        start_folding(&mut reg);
    }
}
