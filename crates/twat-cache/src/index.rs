//! The SQLite index of a [`crate::DiskStore`]: its schema and the statements that more
//! than one operation uses. One row per entry; the byte total of all rows is kept in
//! `totals` by the same transactions that change the rows, so the size limit can be
//! checked without a scan.

use std::collections::HashMap;

use rusqlite::{params, Transaction};

use crate::disk::Touch;
use crate::keyhash::KeyDigest;
use crate::{Error, Policy};

/// The sizes, files, ids and caches of deleted rows.
pub(crate) type Dead = Vec<(i64, Option<String>, i64, String)>;

// One b-tree per table and as few indexes as the policy needs: every index is another
// page written by each insert. `id` is the key's low 64 bits (the rowid, so lookups
// need no separate key index); `key` holds all 128 bits and is checked on every read.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    id      INTEGER PRIMARY KEY, -- low 64 bits of the key
    key     BLOB NOT NULL,       -- the whole 128-bit digest of the call
    ns      TEXT NOT NULL,       -- the cache (function) that wrote it: clear() removes one
    size    INTEGER NOT NULL,    -- bytes, inline or in its file
    stored  INTEGER NOT NULL,    -- microseconds since the epoch (fifo)
    used    INTEGER NOT NULL,    -- last read or write (lru)
    hits    INTEGER NOT NULL DEFAULT 0, -- reads (lfu)
    expires INTEGER,             -- NULL: never
    file    TEXT,                -- path under data/ when the value has a file
    value   BLOB                 -- the entry itself when it is small
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    key     BLOB PRIMARY KEY,    -- the 128-bit key being computed
    token   BLOB NOT NULL,       -- the holder's random token
    expires INTEGER NOT NULL     -- microseconds since the epoch
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    ns            TEXT PRIMARY KEY, -- the cache
    hits          INTEGER NOT NULL DEFAULT 0, -- summed over every process (tally.rs)
    misses        INTEGER NOT NULL DEFAULT 0,
    stale_hits    INTEGER NOT NULL DEFAULT 0,
    evictions     INTEGER NOT NULL DEFAULT 0,
    expirations   INTEGER NOT NULL DEFAULT 0,
    store_errors  INTEGER NOT NULL DEFAULT 0,
    bytes_written INTEGER NOT NULL DEFAULT 0,
    bytes_read    INTEGER NOT NULL DEFAULT 0,
    engine        TEXT,              -- what the cache is, as its last process said
    policy        TEXT,
    ttl           REAL,
    max_bytes     INTEGER,
    version       TEXT,
    since         INTEGER NOT NULL,  -- microseconds: the first fold, or the last reset
    seen          INTEGER NOT NULL   -- the last fold
) WITHOUT ROWID;
";

/// The eviction order of a policy, and the index that serves it (created by the first
/// store that opens the folder with that policy).
pub(crate) fn policy_order(policy: Policy) -> (&'static str, &'static str) {
    match policy {
        Policy::Lfu => (
            "hits, used",
            "CREATE INDEX IF NOT EXISTS entries_lfu ON entries(hits, used)",
        ),
        Policy::Fifo => (
            "stored",
            "CREATE INDEX IF NOT EXISTS entries_fifo ON entries(stored)",
        ),
        _ => (
            "used",
            "CREATE INDEX IF NOT EXISTS entries_lru ON entries(used)",
        ),
    }
}

pub(crate) fn row_id(key: KeyDigest) -> i64 {
    key as u64 as i64
}

pub(crate) fn key_blob(key: KeyDigest) -> [u8; 16] {
    key.to_be_bytes()
}

pub(crate) fn write_touches(
    tx: &Transaction<'_>,
    touches: &HashMap<KeyDigest, Touch>,
) -> Result<(), Error> {
    if touches.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "UPDATE entries SET used = max(used, ?3), hits = hits + ?4 WHERE id = ?1 AND key = ?2",
    )?;
    for (key, t) in touches {
        st.execute(params![row_id(*key), &key_blob(*key)[..], t.used, t.hits])?;
    }
    Ok(())
}

/// Deletes the rows whose keys `select` returns; gives back their sizes and files.
pub(crate) fn delete_returning(
    tx: &Transaction<'_>,
    select: &str,
    params: impl rusqlite::Params,
) -> Result<Dead, Error> {
    let sql = format!("DELETE FROM entries WHERE id IN ({select}) RETURNING size, file, id, ns");
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn adjust_total(tx: &Transaction<'_>, dead: &Dead) -> Result<(), Error> {
    if !dead.is_empty() {
        let freed: i64 = dead.iter().map(|d| d.0).sum();
        tx.prepare_cached("UPDATE totals SET bytes = bytes - ?1 WHERE id = 0")?
            .execute([freed])?;
    }
    Ok(())
}
