//! Generation counters that tell a process-local copy of an entry whether the shared
//! store still holds the same one (the *local tier* in front of a folder or a Redis).
//!
//! Keys fall into [`BUCKETS`] buckets by their low 64 bits. Every removal or
//! replacement of an entry bumps its bucket's counter; a copy remembers the counters it
//! saw *before* it read the entry (a [`Stamp`]), and is good while they are unchanged.
//! A change that lands while a copy is being read therefore never leaves that copy
//! standing: the counter it is checked against has moved on.
//!
//! A folder's table is a file beside its index, mapped by every process that opens the
//! folder, so a bump in one process is seen by the next check in every other (one
//! machine, a local filesystem: a network filesystem does not share mappings). A Redis
//! store's table is private to the process and bumped by its invalidation listener;
//! while the listener is not connected the table is not *live* and no copy is good.
//!
//! ```
//! use twat_cache::Generations;
//!
//! let table = Generations::private();
//! let stamp = table.stamp(42).expect("a live table");
//! assert!(table.holds(42, stamp));
//! table.bump(42); // the entry was replaced
//! assert!(!table.holds(42, stamp));
//! ```
//!
//! This is the one module that maps memory: the `unsafe` here is the mapping of the
//! table file and the view of its bytes as atomics.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::keyhash::KeyDigest;
use crate::Error;

/// Counters per table; counter 0 is the table's *epoch*, bumped to invalidate
/// everything at once.
pub const BUCKETS: usize = 1 << 16;

const TABLE_BYTES: u64 = (BUCKETS * 8) as u64;

/// What a copy saw of the table before its entry was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    epoch: u64,
    bucket: u64,
}

enum Table {
    /// A file mapped shared: bumps reach every process that maps it.
    Shared(memmap2::MmapMut),
    /// Memory of this process alone.
    Private(Box<[AtomicU64]>),
}

/// A table of generation counters (see the module docs).
pub struct Generations {
    table: Table,
    live: AtomicBool,
}

impl std::fmt::Debug for Generations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.table {
            Table::Shared(_) => "shared",
            Table::Private(_) => "private",
        };
        write!(f, "Generations({kind}, live: {})", self.is_live())
    }
}

impl Generations {
    /// A table in this process's memory, live.
    pub fn private() -> Self {
        let slots = (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Generations {
            table: Table::Private(slots),
            live: AtomicBool::new(true),
        }
    }

    /// The table in the file at `path`, created (zeroed) if missing, mapped shared.
    pub fn shared(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Only ever grown, never shrunk: a mapping beyond a file's end would fault.
        if file.metadata()?.len() < TABLE_BYTES {
            file.set_len(TABLE_BYTES)?;
        }
        // SAFETY: the file is ours (in the cache folder) and at least TABLE_BYTES long;
        // no process of this library truncates it (the length check above only grows
        // it), so the mapping stays backed. Its bytes are only ever accessed as atomics
        // (`slots`), so concurrent writes by other processes are not data races.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(TABLE_BYTES as usize)
                .map_mut(&file)?
        };
        Ok(Generations {
            table: Table::Shared(map),
            live: AtomicBool::new(true),
        })
    }

    fn slots(&self) -> &[AtomicU64] {
        match &self.table {
            Table::Private(slots) => slots,
            Table::Shared(map) => {
                let ptr = map.as_ptr();
                debug_assert_eq!(ptr as usize % std::mem::align_of::<AtomicU64>(), 0);
                // SAFETY: the mapping is page-aligned (so aligned for u64), BUCKETS * 8
                // bytes long, lives as long as `self` (the returned slice borrows
                // `self`), and is only accessed through these atomics, here and in every
                // other process; AtomicU64 has the size and layout of u64.
                unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), BUCKETS) }
            }
        }
    }

    fn bucket(key: u64) -> usize {
        1 + (key as usize % (BUCKETS - 1))
    }

    /// The counters for a copy of `key` about to be read; `None` when the table is not
    /// live (no copy may be kept now).
    #[inline]
    pub fn stamp(&self, key: KeyDigest) -> Option<Stamp> {
        if !self.is_live() {
            return None;
        }
        let slots = self.slots();
        Some(Stamp {
            epoch: slots[0].load(Ordering::Acquire),
            bucket: slots[Self::bucket(key as u64)].load(Ordering::Acquire),
        })
    }

    /// Whether a copy of `key` stamped `stamp` is still the stored entry.
    #[inline]
    pub fn holds(&self, key: KeyDigest, stamp: Stamp) -> bool {
        let slots = self.slots();
        self.is_live()
            && slots[0].load(Ordering::Acquire) == stamp.epoch
            && slots[Self::bucket(key as u64)].load(Ordering::Acquire) == stamp.bucket
    }

    /// The entry of the key whose low 64 bits are `key` was (or is about to be)
    /// removed or replaced: copies of it, and of its bucket's other keys, are stale.
    #[inline]
    pub fn bump(&self, key: u64) {
        self.slots()[Self::bucket(key)].fetch_add(1, Ordering::AcqRel);
    }

    /// Every copy is stale (a flush, a lost listener).
    pub fn bump_all(&self) {
        self.slots()[0].fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the table sees every change now.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the table live or not; either way every copy made so far is stale.
    pub fn set_live(&self, live: bool) {
        self.bump_all();
        self.live.store(live, Ordering::Release);
        self.bump_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_bumps() {
        let dir = std::env::temp_dir().join(format!("twc-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("generations");
        let a = Generations::shared(&path).unwrap();
        let b = Generations::shared(&path).unwrap();
        let key: KeyDigest = 0xdead_beef_0000_0001;
        let seen = b.stamp(key).unwrap();
        a.bump(key as u64);
        assert!(!b.holds(key, seen));
        let again = b.stamp(key).unwrap();
        // Another bucket's bump leaves it alone; the epoch does not.
        a.bump(key as u64 + 1);
        assert!(b.holds(key, again));
        a.bump_all();
        assert!(!b.holds(key, again));
        drop((a, b));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_table_that_is_not_live_holds_nothing() {
        let t = Generations::private();
        let s = t.stamp(1).unwrap();
        t.set_live(false);
        assert_eq!(t.stamp(1), None);
        assert!(!t.holds(1, s));
        t.set_live(true);
        assert!(!t.holds(1, s), "copies made before the outage stay stale");
        assert!(t.holds(1, t.stamp(1).unwrap()));
    }
}
