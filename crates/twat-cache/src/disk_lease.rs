//! Leases in a folder: the right to compute one key, taken by one process at a time
//! among all those sharing the folder (a refresh of a stale entry runs once, not once
//! per process). A lease is a row of the index's `leases` table, taken by an insert
//! that only succeeds when no live row is there, and given back by its holder alone
//! (its token). A holder that dies leaves its row to expire.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::byte_store::{random_token, Lease};
use crate::disk::{now_us, DiskStore};
use crate::index::key_blob;
use crate::keyhash::KeyDigest;
use crate::Error;

impl DiskStore {
    /// Takes the lease on `key` for `lease`: [`Lease::Held`] (give it back with
    /// [`DiskStore::release`]) or [`Lease::Busy`] (another holder's is live).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twat_cache::{DiskConfig, DiskStore, Lease};
    ///
    /// let dir = std::env::temp_dir().join(format!("twc-doc-lease-{}", std::process::id()));
    /// let store = DiskStore::open(&dir, DiskConfig::default())?;
    /// let held = store.lease(7, Duration::from_secs(60))?;
    /// assert!(matches!(held, Lease::Held { .. }));
    /// assert_eq!(store.lease(7, Duration::from_secs(60))?, Lease::Busy);
    /// store.release(held)?;
    /// assert!(matches!(store.lease(7, Duration::from_secs(60))?, Lease::Held { .. }));
    /// # drop(store); std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), twat_cache::Error>(())
    /// ```
    pub fn lease(&self, key: KeyDigest, lease: Duration) -> Result<Lease, Error> {
        let token = random_token();
        let now = now_us();
        let until = now.saturating_add(lease.as_micros().min(i64::MAX as u128) as i64);
        let taken = self.with_write_conn(|db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let blob = &key_blob(key)[..];
            tx.execute(
                "DELETE FROM leases WHERE key = ?1 AND expires <= ?2",
                params![blob, now],
            )?;
            let n = tx.execute(
                "INSERT OR IGNORE INTO leases (key, token, expires) VALUES (?1, ?2, ?3)",
                params![blob, &token.to_be_bytes()[..], until],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })?;
        Ok(if taken {
            Lease::Held {
                name: format!("{key:032x}"),
                token,
            }
        } else {
            Lease::Busy
        })
    }

    /// Gives back a lease from [`DiskStore::lease`], if it is still the holder's.
    pub fn release(&self, lease: Lease) -> Result<(), Error> {
        let Lease::Held { name, token } = lease else {
            return Ok(());
        };
        let Ok(key) = KeyDigest::from_str_radix(&name, 16) else {
            return Ok(()); // not a lease of a folder
        };
        self.with_write_conn(|db| {
            db.execute(
                "DELETE FROM leases WHERE key = ?1 AND token = ?2",
                params![&key_blob(key)[..], &token.to_be_bytes()[..]],
            )?;
            Ok(())
        })
    }

    /// Whether a live lease is held on `key` (by any process).
    pub fn leased(&self, key: KeyDigest) -> Result<bool, Error> {
        self.with_write_conn(|db| {
            Ok(db
                .query_row(
                    "SELECT 1 FROM leases WHERE key = ?1 AND expires > ?2",
                    params![&key_blob(key)[..], now_us()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }
}
