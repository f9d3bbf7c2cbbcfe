//! A folder seen from outside its caches: what the `twat-cache` command line lists,
//! checks, prunes and removes. Every change goes through the same transactions as the
//! caches' own (the index's write lock, the byte total, the generation bumps that tell
//! local tiers), so it is safe while other processes use the folder; work is done in
//! batches of rows, each batch one transaction, so a tool can show progress and stop
//! between two batches with nothing half-done.
//!
//! ```
//! use twat_cache::{DiskConfig, DiskStore, Payload, Selection, Value};
//!
//! let dir = std::env::temp_dir().join(format!("twc-doc-admin-{}", std::process::id()));
//! let store = DiskStore::open(&dir, DiskConfig::default())?;
//! let payload = Payload { stream: b"value", buffers: vec![] };
//! store.put_value("f", 1, &Value::new(&payload))?;
//! drop(store);
//!
//! let folder = DiskStore::open_existing(&dir)?;
//! let caches = folder.caches()?;
//! assert_eq!((caches[0].ns.as_str(), caches[0].entries), ("f", 1));
//! let all = Selection::default();
//! assert_eq!(folder.remove_batch(&all, None, 100)?.removed, 1);
//! # drop(folder); std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), twat_cache::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{named_params, params, OptionalExtension};

use crate::codec::Signer;
use crate::disk::{now_us, DiskConfig, DiskStore};
use crate::disk_stats::{counter_columns, counts_of};
use crate::entry::{left_tmp, sweep_orphans, ORPHAN_AGE};
use crate::index::{key_blob, policy_order, row_id};
use crate::keyhash::KeyDigest;
use crate::tally::{About, Counts};
use crate::{Error, Policy};

/// One cache of a folder: its entries now, and its totals over every process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheSummary {
    /// The cache's name (its namespace: `module.qualname` unless `name=` was given).
    pub ns: String,
    /// Entries held (expired ones not removed yet included).
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries whose time-to-live has passed (removed by later inserts, or `prune`).
    pub expired: u64,
    /// When the oldest and the newest entry were written (microseconds since the epoch).
    pub oldest: Option<i64>,
    /// See `oldest`.
    pub newest: Option<i64>,
    /// The last read or write of an entry, as far as the index knows (reads are
    /// recorded with a process's next write, every 256 reads, and at its exit).
    pub accessed: Option<i64>,
    /// Totals over every process that folded its counts; `None` if none did.
    pub counts: Option<Counts>,
    /// What the cache's last process said it is.
    pub about: About,
    /// When the totals started (the first fold, or the last reset).
    pub since: Option<i64>,
    /// The last fold of counts into the folder.
    pub seen: Option<i64>,
}

/// One entry, as the index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The 128-bit key.
    pub key: KeyDigest,
    /// The cache it belongs to.
    pub ns: String,
    /// Its bytes.
    pub size: u64,
    /// When it was written, and last read or written (microseconds since the epoch).
    pub stored: i64,
    /// See `stored`.
    pub used: i64,
    /// When it expires; `None`: never.
    pub expires: Option<i64>,
    /// Its file under `data/`, for a large entry.
    pub file: Option<String>,
}

/// Which entries an operation applies to: all of them, narrowed by each field given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this cache's.
    pub ns: Option<String>,
    /// Only those not read nor written since this time (microseconds since the epoch).
    pub used_before: Option<i64>,
    /// Only expired ones.
    pub expired: bool,
    /// Only those whose key, in hex, begins with these digits.
    pub key_prefix: Option<String>,
}

/// What one batch of [`DiskStore::remove_batch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Entries removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Where the next batch starts (`None`: nothing was left to look at).
    pub next: Option<i64>,
}

/// How one entry fared in [`DiskStore::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its checksum (and signature, if it is signed and a secret was given) holds.
    Sound {
        /// Whether the entry is signed.
        signed: bool,
        /// Whether the signature was checked too.
        signature_checked: bool,
    },
    /// It is damaged: why.
    Damaged(String),
    /// It went (replaced or removed by another process) before it could be read.
    Gone,
}

const WHERE_SELECTED: &str = "(:ns IS NULL OR ns = :ns)
    AND (:used_before IS NULL OR used < :used_before)
    AND (:expired = 0 OR expires <= :now)
    AND (:prefix IS NULL OR hex(key) LIKE :prefix || '%')";

impl Selection {
    fn check(&self) -> Result<Option<String>, Error> {
        match &self.key_prefix {
            None => Ok(None),
            Some(p)
                if !p.is_empty() && p.len() <= 32 && p.bytes().all(|c| c.is_ascii_hexdigit()) =>
            {
                Ok(Some(p.to_ascii_uppercase()))
            }
            Some(p) => Err(Error::InvalidConfig {
                param: "key_prefix",
                value: format!("{p:?}"),
                accepted: "1 to 32 hexadecimal digits of an entry's key",
            }),
        }
    }
}

fn entry_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryInfo> {
    let blob: Vec<u8> = r.get(0)?;
    let mut key = [0u8; 16];
    let n = blob.len().min(16);
    key[..n].copy_from_slice(&blob[..n]);
    Ok(EntryInfo {
        key: u128::from_be_bytes(key),
        ns: r.get(1)?,
        size: r.get::<_, i64>(2)?.max(0) as u64,
        stored: r.get(3)?,
        used: r.get(4)?,
        expires: r.get(5)?,
        file: r.get(6)?,
    })
}

impl DiskStore {
    /// Opens a folder that must already be a cache (an `index.sqlite` with the
    /// entries table); anything else is refused with [`Error::InvalidConfig`] naming
    /// `dir`, and nothing is created in it. The store takes the policy its caches last
    /// recorded, so that it adds no index of its own to the folder, and sweeps nothing
    /// on opening (see [`DiskStore::leftovers`]).
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<DiskStore, Error> {
        let dir = dir.as_ref();
        let refuse = || Error::InvalidConfig {
            param: "dir",
            value: format!("'{}'", dir.display()),
            accepted: "a twat-cache folder (one with the index.sqlite a cache made)",
        };
        let index = dir.join("index.sqlite");
        if !index.symlink_metadata().is_ok_and(|m| m.is_file()) {
            return Err(refuse());
        }
        let policy = {
            let db = crate::connection::Db::open_existing(&index).map_err(|_| refuse())?;
            db.prepare("SELECT id, key, ns, size, stored, used, hits, expires, file, value FROM entries LIMIT 0")
                .map_err(|_| refuse())?;
            let recorded: Option<String> = db
                .query_row(
                    "SELECT policy FROM stats WHERE policy IS NOT NULL ORDER BY seen DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .unwrap_or(None);
            match recorded.as_deref() {
                Some("lfu") => Policy::Lfu,
                Some("fifo") => Policy::Fifo,
                _ => Policy::Lru,
            }
        };
        let config = DiskConfig {
            policy,
            ..DiskConfig::default()
        };
        DiskStore::open_sweeping(dir, config, false)
    }

    /// Every cache with entries or totals in the folder, by name.
    pub fn caches(&self) -> Result<Vec<CacheSummary>, Error> {
        let now = now_us();
        let mut found: BTreeMap<String, CacheSummary> = BTreeMap::new();
        self.with_conn(|db| {
            let mut st = db.prepare_cached(
                "SELECT ns, count(*), sum(size), sum(expires IS NOT NULL AND expires <= ?1),
                        min(stored), max(stored), max(used)
                 FROM entries GROUP BY ns",
            )?;
            let rows = st.query_map([now], |r| {
                Ok(CacheSummary {
                    ns: r.get(0)?,
                    entries: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)?.max(0) as u64,
                    expired: r.get::<_, i64>(3)? as u64,
                    oldest: r.get(4)?,
                    newest: r.get(5)?,
                    accessed: r.get(6)?,
                    ..CacheSummary::default()
                })
            })?;
            for row in rows {
                let row = row?;
                found.insert(row.ns.clone(), row);
            }
            let sql = format!(
                "SELECT ns, {}, engine, policy, ttl, max_bytes, version, since, seen FROM stats",
                counter_columns()
            );
            let mut st = db.prepare_cached(&sql)?;
            let rows = st.query_map([], |r| {
                let counts = counts_of(r, 1)?;
                let at = 1 + crate::tally::COUNTERS;
                let about = About {
                    engine: r.get(at)?,
                    policy: r.get(at + 1)?,
                    ttl: r.get(at + 2)?,
                    max_bytes: r.get::<_, Option<i64>>(at + 3)?.map(|b| b.max(0) as u64),
                    version: r.get(at + 4)?,
                };
                Ok((
                    r.get::<_, String>(0)?,
                    counts,
                    about,
                    r.get(at + 5)?,
                    r.get(at + 6)?,
                ))
            })?;
            for row in rows {
                let (ns, counts, about, since, seen) = row?;
                let c = found.entry(ns.clone()).or_insert_with(|| CacheSummary {
                    ns,
                    ..CacheSummary::default()
                });
                c.counts = Some(counts);
                c.about = about;
                c.since = since;
                c.seen = seen;
            }
            Ok(())
        })?;
        Ok(found.into_values().collect())
    }

    /// The bytes of every entry of the folder, as its byte total keeps them.
    pub fn folder_bytes(&self) -> Result<u64, Error> {
        self.with_conn(|db| {
            let b: Option<i64> = db
                .query_row("SELECT bytes FROM totals WHERE id = 0", [], |r| r.get(0))
                .optional()?;
            Ok(b.unwrap_or(0).max(0) as u64)
        })
    }

    /// Up to `limit` selected entries, in key order after row `after` (`None`: from
    /// the first), for a tool that walks them in batches.
    pub fn entries(
        &self,
        sel: &Selection,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, Error> {
        let sql = format!(
            "SELECT key, ns, size, stored, used, expires, file FROM entries
             WHERE id > :after AND {WHERE_SELECTED} ORDER BY id LIMIT :limit"
        );
        self.select_entries(&sql, sel, after, limit)
    }

    /// The `n` largest selected entries, largest first.
    pub fn largest(&self, sel: &Selection, n: usize) -> Result<Vec<EntryInfo>, Error> {
        let sql = format!(
            "SELECT key, ns, size, stored, used, expires, file FROM entries
             WHERE id > :after AND {WHERE_SELECTED} ORDER BY size DESC LIMIT :limit"
        );
        self.select_entries(&sql, sel, None, n)
    }

    fn select_entries(
        &self,
        sql: &str,
        sel: &Selection,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, Error> {
        let prefix = sel.check()?;
        let now = now_us();
        self.with_conn(|db| {
            let mut st = db.prepare_cached(sql)?;
            let rows = st.query_map(
                named_params! {
                    ":after": after.unwrap_or(i64::MIN),
                    ":ns": sel.ns,
                    ":used_before": sel.used_before,
                    ":expired": sel.expired,
                    ":now": now,
                    ":prefix": prefix,
                    ":limit": limit as i64,
                },
                entry_info,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// How many entries, of how many bytes, the selection holds.
    pub fn measure(&self, sel: &Selection) -> Result<(u64, u64), Error> {
        let prefix = sel.check()?;
        let now = now_us();
        let sql =
            format!("SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE {WHERE_SELECTED}");
        self.with_conn(|db| {
            let (n, b): (i64, i64) = db.prepare_cached(&sql)?.query_row(
                named_params! {
                    ":ns": sel.ns,
                    ":used_before": sel.used_before,
                    ":expired": sel.expired,
                    ":now": now,
                    ":prefix": prefix,
                },
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((n as u64, b.max(0) as u64))
        })
    }

    /// Removes up to `limit` selected entries after row `after`, in one transaction
    /// (the selection is checked again inside it, so an entry rewritten meanwhile by
    /// another process is judged as it is now). Call again from `next` until it is
    /// `None`.
    pub fn remove_batch(
        &self,
        sel: &Selection,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Batch, Error> {
        let prefix = sel.check()?;
        let select = "SELECT id FROM entries WHERE id > ?1 AND
                (?2 IS NULL OR ns = ?2) AND (?3 IS NULL OR used < ?3)
                AND (?4 = 0 OR expires <= ?5) AND (?6 IS NULL OR hex(key) LIKE ?6 || '%')
             ORDER BY id LIMIT ?7";
        let dead = self.delete_rows(
            select,
            params![
                after.unwrap_or(i64::MIN),
                sel.ns,
                sel.used_before,
                sel.expired,
                now_us(),
                prefix,
                limit as i64
            ],
        )?;
        if sel.expired {
            self.count_removed(&dead, crate::tally::Counter::Expirations);
        }
        Ok(Batch {
            removed: dead.len() as u64,
            bytes: dead.iter().map(|d| d.0.max(0) as u64).sum(),
            next: dead.iter().map(|d| d.2).max(),
        })
    }

    /// How many entries, of how many bytes, eviction by the folder's policy would
    /// remove to bring it down to `max_bytes`.
    pub fn eviction_plan(&self, max_bytes: u64) -> Result<(u64, u64), Error> {
        let sql = format!(
            "SELECT count(*), coalesce(sum(size), 0) FROM ({})",
            self.victims_sql("?2")
        );
        self.with_conn(|db| {
            let (n, b): (i64, i64) = db
                .prepare_cached(&sql)?
                .query_row(params![max_bytes as i64, i64::MAX], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok((n as u64, b.max(0) as u64))
        })
    }

    /// Evicts by the folder's policy (oldest access for `lru`, fewest hits for `lfu`,
    /// oldest write for `fifo`) towards `max_bytes`: at most `limit` entries, in one
    /// transaction. Call again until it removes nothing.
    pub fn evict_batch(&self, max_bytes: u64, limit: usize) -> Result<Batch, Error> {
        let select = format!("SELECT id FROM ({})", self.victims_sql("?2"));
        let dead = self.delete_rows(&select, params![max_bytes as i64, limit as i64])?;
        self.count_removed(&dead, crate::tally::Counter::Evictions);
        Ok(Batch {
            removed: dead.len() as u64,
            bytes: dead.iter().map(|d| d.0.max(0) as u64).sum(),
            next: None,
        })
    }

    /// The rows that must go, in policy order, for the byte total to fall to `?1`
    /// (the total is read inside the same statement, so it is the one of the moment).
    fn victims_sql(&self, limit: &str) -> String {
        let order = policy_order(self.config().policy).0;
        format!(
            "SELECT id, size FROM (
                 SELECT id, size, sum(size) OVER (ORDER BY {order}, id ROWS UNBOUNDED PRECEDING) AS run
                 FROM entries)
             WHERE run - size < (SELECT bytes FROM totals WHERE id = 0) - ?1
             LIMIT {limit}"
        )
    }

    /// Reads entry `key` whole and checks it ([`crate::check_frame`]), with `signer`
    /// when the cache is signed. Expired entries are checked too. Reading does not
    /// count as an access.
    pub fn verify(&self, key: KeyDigest, signer: Option<&Signer>) -> Result<Verdict, Error> {
        let row: Option<(i64, Option<String>, Option<Vec<u8>>)> = self.with_conn(|db| {
            Ok(db
                .prepare_cached("SELECT size, file, value FROM entries WHERE id = ?1 AND key = ?2")?
                .query_row(params![row_id(key), &key_blob(key)[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?)
        })?;
        let Some((size, file, value)) = row else {
            return Ok(Verdict::Gone);
        };
        let entry = match self.entry_of(size, file, value) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(Verdict::Gone),
            Err(Error::Corrupt(why)) => return Ok(Verdict::Damaged(why)),
            Err(e) => return Err(e),
        };
        let checked = entry
            .reader()
            .and_then(|r| crate::reader::check_frame(r, signer));
        Ok(match checked {
            Ok(signed) => Verdict::Sound {
                signed,
                signature_checked: signed && signer.is_some(),
            },
            Err(Error::Corrupt(why)) => Verdict::Damaged(why),
            Err(Error::Io { message, .. }) => {
                Verdict::Damaged(format!("cannot be read: {message}"))
            }
            Err(e) => return Err(e),
        })
    }

    /// Removes entry `key` if it is still the damaged one [`DiskStore::verify`] read
    /// (not a sound one written since); whether it went.
    pub fn remove_damaged(&self, key: KeyDigest, signer: Option<&Signer>) -> Result<bool, Error> {
        match self.verify(key, signer)? {
            Verdict::Damaged(_) => self.remove(key),
            _ => Ok(false),
        }
    }

    /// Files that killed writers left: temporary files whose writer is gone (or older
    /// than an hour), and value files older than a minute that no entry refers to.
    /// With `remove`, they are removed. Gives back `(files, bytes)`.
    pub fn leftovers(&self, remove: bool) -> Result<(u64, u64), Error> {
        let (tmp_n, tmp_b) = left_tmp(&self.dir().join("tmp"), remove);
        let (n, b) = self.with_conn(|db| sweep_orphans(self.dir(), db, ORPHAN_AGE, remove))?;
        Ok((tmp_n + n, tmp_b + b))
    }
}
