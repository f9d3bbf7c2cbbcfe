//! A folder's side of the counters that span processes ([`crate::tally`]): each
//! process folds its counts into the index's `stats` table, one row per cache, in one
//! small transaction per fold (not one write per call). The store itself counts the
//! evictions and expirations it carries out, into the tally of the cache whose entry
//! went.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::connection::Db;
use crate::disk::{now_us, DiskStore, Touch, Touches};
use crate::index::{write_touches, Dead};
use crate::keyhash::KeyDigest;
use crate::tally::{Counter, Counts, Sink, Tally, COUNTERS};
use crate::Error;

/// How long a fold waits for the index (it is retried at the next fold anyway).
const FOLD_WAIT: Duration = Duration::from_millis(250);

/// The counter columns of the `stats` table, in [`Counter::ALL`] order.
pub(crate) fn counter_columns() -> String {
    Counter::ALL.map(Counter::name).join(", ")
}

/// The folding thread's connection to one folder's index, and the access records of
/// this process's stores on it (written with the counts: a process that only reads
/// still records its reads for `lru`/`lfu` and for `twat-cache`).
pub(crate) struct DiskSink {
    index: PathBuf,
    conn: Mutex<Option<(u32, Db)>>,
    touches: Mutex<Vec<Weak<Touches>>>,
}

/// One sink per index file in this process.
static SINKS: Mutex<Vec<Arc<DiskSink>>> = Mutex::new(Vec::new());

impl DiskSink {
    /// The sink of `index`, made on first use, now writing `touches` too.
    fn of(index: PathBuf, touches: &Arc<Touches>) -> Arc<DiskSink> {
        let mut sinks = crate::fork::lock(&SINKS);
        let sink = match sinks.iter().find(|s| s.index == index) {
            Some(sink) => Arc::clone(sink),
            None => {
                let sink = Arc::new(DiskSink {
                    index,
                    conn: Mutex::new(None),
                    touches: Mutex::new(Vec::new()),
                });
                sinks.push(Arc::clone(&sink));
                sink
            }
        };
        let mut held = crate::fork::lock(&sink.touches);
        held.retain(|w| w.strong_count() > 0);
        let weak = Arc::downgrade(touches);
        if !held.iter().any(|w| w.ptr_eq(&weak)) {
            held.push(weak);
        }
        drop(held);
        sink
    }

    /// The access records gathered so far, taken out of their stores.
    fn take_touches(&self) -> HashMap<KeyDigest, Touch> {
        let mut all: HashMap<KeyDigest, Touch> = HashMap::new();
        let held = crate::fork::lock(&self.touches);
        for touches in held.iter().filter_map(Weak::upgrade) {
            for (key, t) in std::mem::take(&mut *touches.lock()) {
                let e = all.entry(key).or_default();
                e.used = e.used.max(t.used);
                e.hits += t.hits;
            }
        }
        all
    }
}

fn upsert_sql() -> String {
    let cols = counter_columns();
    let marks: Vec<String> = (2..2 + COUNTERS).map(|i| format!("?{i}")).collect();
    let adds: Vec<String> = Counter::ALL
        .iter()
        .map(|c| format!("{0} = {0} + excluded.{0}", c.name()))
        .collect();
    let abouts: Vec<String> = ["engine", "policy", "ttl", "max_bytes", "version"]
        .iter()
        .map(|c| format!("{c} = coalesce(excluded.{c}, {c})"))
        .collect();
    let a = 2 + COUNTERS;
    format!(
        "INSERT INTO stats (ns, {cols}, engine, policy, ttl, max_bytes, version, since, seen)
         VALUES (?1, {}, ?{a}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})
         ON CONFLICT(ns) DO UPDATE SET {}, {}, seen = excluded.seen",
        marks.join(", "),
        a + 1,
        a + 2,
        a + 3,
        a + 4,
        a + 5,
        a + 5,
        adds.join(", "),
        abouts.join(", "),
    )
}

impl Sink for DiskSink {
    fn fold(&self, batch: &[(&Tally, Counts)]) -> Result<(), Error> {
        let mut guard = crate::fork::lock(&self.conn);
        let pid = std::process::id();
        if guard.as_ref().is_some_and(|(owner, _)| *owner != pid) {
            // The parent's connection: never used, nor closed, in a child.
            std::mem::forget(guard.take());
        }
        if guard.is_none() {
            // Never creates an index: a folder removed meanwhile gets none from a fold.
            let db = Db::open_existing(&self.index)?;
            db.busy_timeout(FOLD_WAIT)?;
            *guard = Some((pid, db));
        }
        let db = &mut guard.as_mut().expect("connected").1;
        let result = (|| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_touches(&tx, &self.take_touches())?;
            {
                let mut st = tx.prepare_cached(&upsert_sql())?;
                let now = now_us();
                for (tally, counts) in batch {
                    let about = tally.about();
                    let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(tally.ns())];
                    values.extend(counts.0.iter().map(|&n| Box::new(n as i64) as Box<_>));
                    values.push(Box::new(about.engine.clone()));
                    values.push(Box::new(about.policy.clone()));
                    values.push(Box::new(about.ttl));
                    values.push(Box::new(about.max_bytes.map(|b| b as i64)));
                    values.push(Box::new(about.version.clone()));
                    values.push(Box::new(now));
                    st.execute(rusqlite::params_from_iter(values.iter()))?;
                }
            }
            tx.commit()?;
            Ok::<(), Error>(())
        })();
        if result.is_err() {
            // A removed folder, say: the next fold opens afresh.
            *guard = None;
        }
        result
    }
}

/// The counters of a `stats` row, read from columns `first..first + COUNTERS`.
pub(crate) fn counts_of(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    let mut counts = Counts::default();
    for (i, slot) in counts.0.iter_mut().enumerate() {
        *slot = row.get::<_, i64>(first + i)?.max(0) as u64;
    }
    Ok(counts)
}

impl DiskStore {
    /// Folds `tally` into this folder's totals from now on, and counts the evictions
    /// and expirations of its cache's entries that this store carries out in it.
    pub fn track(&self, tally: &Arc<Tally>) {
        self.fold_into_index(tally);
        self.tallies()
            .entry(tally.ns().to_owned())
            .or_insert_with(|| Arc::clone(tally));
    }

    fn fold_into_index(&self, tally: &Arc<Tally>) {
        let index = self.dir().join("index.sqlite");
        let place = index.to_string_lossy().into_owned();
        let sink = DiskSink::of(index, self.touches_cell());
        crate::tally::track(&place, move || sink, tally);
    }

    fn tallies(&self) -> crate::fork::Locked<'_, HashMap<String, Arc<Tally>>> {
        crate::fork::lock(self.tallies_cell())
    }

    /// Counts the removal of these rows as `counter`, in the tally of each row's cache.
    pub(crate) fn count_removed(&self, dead: &Dead, counter: Counter) {
        if dead.is_empty() {
            return;
        }
        let mut fresh = Vec::new();
        {
            let mut tallies = self.tallies();
            for row in dead {
                let tally = tallies.entry(row.3.clone()).or_insert_with(|| {
                    // A cache that this process does not use: its removals count too.
                    let t = Tally::new(&row.3);
                    fresh.push(Arc::clone(&t));
                    t
                });
                tally.add(counter, 1);
            }
        }
        for tally in fresh {
            self.fold_into_index(&tally);
        }
    }

    /// The totals of cache `ns` over every process that folded its counts (this one's
    /// last [`crate::tally::FOLD_EVERY`] may not be in yet); `None` before the first fold.
    pub fn shared_counts(&self, ns: &str) -> Result<Option<Counts>, Error> {
        let sql = format!("SELECT {} FROM stats WHERE ns = ?1", counter_columns());
        self.with_conn(|db| {
            Ok(db
                .prepare_cached(&sql)?
                .query_row([ns], |r| counts_of(r, 0))
                .optional()?)
        })
    }

    /// Sets the totals of one cache (`Some(ns)`) or of every cache to zero; returns how
    /// many caches had totals. What running processes have not folded yet comes later.
    pub fn reset_counts(&self, ns: Option<&str>) -> Result<u64, Error> {
        let zeros = Counter::ALL.map(|c| format!("{} = 0", c.name())).join(", ");
        let sql = format!("UPDATE stats SET {zeros}, since = ?2 WHERE ?1 IS NULL OR ns = ?1");
        self.with_write_conn(|db| Ok(db.execute(&sql, params![ns, now_us()])? as u64))
    }
}
