//! A Redis namespace's side of the counters that span processes ([`crate::tally`]):
//! one hash per cache, `<prefix>-stats:<namespace>`, that each process adds its counts
//! to with `HINCRBY` (one pipeline per fold). The key is outside the entries' prefix,
//! so folds never reach the invalidation listeners of local tiers.

use std::sync::Arc;

use crate::disk::now_us;
use crate::redis_store::{ns_text, RedisStore};
use crate::tally::{Counter, Counts, Sink, Tally};
use crate::Error;

impl RedisStore {
    fn stats_key(&self, ns: &str) -> String {
        format!("{}-stats:{}", self.config().prefix, ns_text(ns))
    }

    /// Folds `tally` into the server's totals of its cache from now on.
    pub fn track(&self, tally: &Arc<Tally>) {
        let place = format!("redis {} {}", self.config().url.shown, self.config().prefix);
        let store = self.clone();
        crate::tally::track(&place, move || Arc::new(store), tally);
    }

    /// The totals of cache `ns` over every process that folded into this server.
    pub fn shared_counts(&self, ns: &str) -> Result<Option<Counts>, Error> {
        let key = self.stats_key(ns);
        self.with_conn(|conn, _| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&key);
            for c in Counter::ALL {
                cmd.arg(c.name());
            }
            let got: Vec<Option<u64>> = cmd.query(conn)?;
            if got.iter().all(Option::is_none) {
                return Ok(None);
            }
            let mut counts = Counts::default();
            for (slot, v) in counts.0.iter_mut().zip(got) {
                *slot = v.unwrap_or(0);
            }
            Ok(Some(counts))
        })
    }

    /// The caches that have totals on the server, by name.
    pub fn counted_namespaces(&self) -> Result<Vec<String>, Error> {
        let head = format!("{}-stats:", self.config().prefix);
        let mut found = Vec::new();
        self.scan(&format!("{head}*"), |_, keys| {
            found.extend(keys.iter().map(|k| unescape(&k[head.len()..])));
            Ok(())
        })?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// Sets the totals of cache `ns` to zero.
    pub fn reset_counts(&self, ns: &str) -> Result<(), Error> {
        let key = self.stats_key(ns);
        self.with_conn(|conn, _| {
            let mut pipe = redis::pipe();
            for c in Counter::ALL {
                pipe.cmd("HSET").arg(&key).arg(c.name()).arg(0).ignore();
            }
            pipe.cmd("HSET")
                .arg(&key)
                .arg("since")
                .arg(now_us())
                .ignore();
            pipe.query::<()>(conn)
        })
    }
}

/// A namespace as [`ns_text`] escaped it.
fn unescape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Sink for RedisStore {
    fn fold(&self, batch: &[(&Tally, Counts)]) -> Result<(), Error> {
        let now = now_us();
        self.with_conn(|conn, _| {
            let mut pipe = redis::pipe();
            for (tally, counts) in batch {
                let key = self.stats_key(tally.ns());
                for c in Counter::ALL {
                    if counts[c] > 0 {
                        pipe.cmd("HINCRBY")
                            .arg(&key)
                            .arg(c.name())
                            .arg(counts[c])
                            .ignore();
                    }
                }
                let about = tally.about();
                let fields = [
                    ("engine", about.engine.clone()),
                    ("ttl", about.ttl.map(|t| t.to_string())),
                    ("version", about.version.clone()),
                ];
                for (name, value) in fields {
                    if let Some(v) = value {
                        pipe.cmd("HSET").arg(&key).arg(name).arg(v).ignore();
                    }
                }
                pipe.cmd("HSETNX").arg(&key).arg("since").arg(now).ignore();
                pipe.cmd("HSET").arg(&key).arg("seen").arg(now).ignore();
            }
            pipe.query::<()>(conn)
        })
    }
}
