//! SQLite connections of this process, opened and closed one at a time.
//!
//! SQLite's unix layer takes its global lock and a per-file lock in one order when it
//! opens a file and in the other when a connection in WAL mode closes: a thread opening
//! the index while another closes its connection to the same file could wait for each
//! other forever (seen as a hang in our tests, between a store being dropped and the
//! background thread opening its checkpoint connection). Opens and closes are rare (a
//! store's first use, its drop), so they simply take turns under one lock.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use rusqlite::Connection;
use std::sync::{Mutex, MutexGuard};

static OPEN_CLOSE: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection that is closed under the same lock it was opened under.
pub(crate) struct Db(Option<Connection>);

impl Db {
    pub(crate) fn open(path: &Path) -> rusqlite::Result<Db> {
        let _turn = turn();
        Connection::open(path).map(|c| Db(Some(c)))
    }

    /// Opens an index that must exist already (a tool must not make one in a folder
    /// that is not a cache, nor in one removed meanwhile).
    pub(crate) fn open_existing(path: &Path) -> rusqlite::Result<Db> {
        use rusqlite::OpenFlags;
        let _turn = turn();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags(path, flags).map(|c| Db(Some(c)))
    }
}

impl Deref for Db {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0.as_ref().expect("open until dropped")
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        self.0.as_mut().expect("open until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _turn = turn();
        drop(self.0.take());
    }
}

/// For [`crate::fork::prepare`]: no thread is inside SQLite's open or close (they hold
/// SQLite's global lock) while the process forks.
pub(crate) fn lock_all(held: &mut Vec<Box<dyn std::any::Any>>) {
    held.push(Box::new(turn()));
}
