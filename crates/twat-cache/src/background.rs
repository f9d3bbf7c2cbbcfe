//! The one background thread of a process's persistent stores: work that must happen
//! but need not delay a cache call.
//!
//! - **WAL checkpoints.** SQLite's automatic checkpoint runs inside whichever commit
//!   crosses the threshold and, with `synchronous=NORMAL`, fsyncs the WAL and the
//!   database there: one insert in a few hundred paid milliseconds, which doubled the
//!   average insert cost. Stores ask for a PASSIVE checkpoint every [`EVERY`] commits
//!   instead (it never waits for readers or writers); SQLite's own stays as a backstop.
//! - **Sweeping unreferenced value files** of a store just opened (`DiskStore::sweep`).
//! - **Flushing value files** (`fsync`) of stores that are not `durable`: the entry is
//!   usable as soon as it is renamed into place, and reaches the device shortly after.
//!   Until then a power cut can only lose or truncate the file, which its checksum
//!   catches (a miss), never return a wrong value.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Duration;

use crate::connection::Db;
use crate::fork::PerProcess;

/// Commits between checkpoint requests (SQLite's own default is about 1000 pages).
pub(crate) const EVERY: u64 = 256;

/// The sender to the background thread (a child made by `fork` has no such thread and
/// starts its own; the parent's sender is forgotten there, never dropped: its drop
/// would take the channel's lock, which the parent's thread may have held at the fork).
static REQUESTS: Mutex<PerProcess<Sender<Job>>> = Mutex::new(PerProcess::new());

/// Held by the background thread while it works (it is inside SQLite then), so that
/// [`crate::fork::prepare`] can wait for it to be idle.
static WORKING: Mutex<()> = Mutex::new(());

/// For [`crate::fork::prepare`]: no job is being handed over or worked on while the
/// process forks.
pub(crate) fn lock_all(held: &mut Vec<Box<dyn std::any::Any>>) {
    held.push(Box::new(REQUESTS.lock().unwrap_or_else(|e| e.into_inner())));
    held.push(Box::new(WORKING.lock().unwrap_or_else(|e| e.into_inner())));
}

/// Work for the background thread.
pub(crate) enum Job {
    /// A PASSIVE checkpoint of the database at this path.
    Checkpoint(PathBuf),
    /// `fsync` of this value file (gone already: nothing to do).
    Flush(PathBuf),
    /// Removal of the unreferenced value files of the store in this folder.
    Sweep(PathBuf),
}

/// Hands `job` to the background thread (best effort: a checkpoint that fails now
/// happens with the next request, or SQLite's own backstop checkpoint does it).
pub(crate) fn request(job: Job) {
    let Ok(mut guard) = REQUESTS.lock() else {
        return;
    };
    let sent = guard
        .get_or_make(start)
        .map(|sender| sender.send(job).is_ok());
    if sent == Some(false) {
        guard.reset();
    }
}

fn start() -> Option<Sender<Job>> {
    let (tx, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("twat-cache-background".into())
        .spawn(move || {
            let mut conns: HashMap<PathBuf, Db> = HashMap::new();
            while let Ok(job) = rx.recv() {
                let _working = WORKING.lock().unwrap_or_else(|e| e.into_inner());
                // Checkpoint requests that piled up while we worked need one each.
                let mut checkpoints = Vec::new();
                let mut sweeps = Vec::new();
                for job in std::iter::once(job).chain(rx.try_iter()) {
                    match job {
                        Job::Checkpoint(path) => checkpoints.push(path),
                        Job::Sweep(dir) => sweeps.push(dir),
                        Job::Flush(path) => {
                            if let Ok(file) = std::fs::File::open(&path) {
                                let _ = file.sync_data();
                            }
                        }
                    }
                }
                checkpoints.sort();
                checkpoints.dedup();
                for path in checkpoints {
                    checkpoint(&mut conns, path);
                }
                sweeps.sort();
                sweeps.dedup();
                for dir in sweeps {
                    if let Some(db) = connection(&mut conns, dir.join("index.sqlite")) {
                        let _ =
                            crate::entry::sweep_orphans(&dir, db, crate::entry::ORPHAN_AGE, true);
                    }
                }
            }
        })
        .ok()?;
    Some(tx)
}

/// The background thread's own connection to the index at `path`.
fn connection(conns: &mut HashMap<PathBuf, Db>, path: PathBuf) -> Option<&Db> {
    if !conns.contains_key(&path) {
        let db = Db::open(&path).ok()?;
        let _ = db.busy_timeout(Duration::from_millis(100));
        conns.insert(path.clone(), db);
    }
    conns.get(&path)
}

fn checkpoint(conns: &mut HashMap<PathBuf, Db>, path: PathBuf) {
    if let Some(db) = connection(conns, path.clone()) {
        if db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .is_err()
        {
            // A removed folder, say: drop the connection; the next request reopens.
            conns.remove(&path);
        }
    }
}
