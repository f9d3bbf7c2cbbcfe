//! WAL checkpoints off the hot path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the threshold and,
//! with `synchronous=NORMAL`, fsyncs the WAL and the database there: one insert in a few
//! hundred pays milliseconds, which doubled the average insert cost. Stores turn the
//! automatic checkpoint off and ask this one background thread (per process) to run a
//! PASSIVE checkpoint every [`EVERY`] commits instead. PASSIVE never waits for readers
//! or writers, so it cannot stall a cache call; durability is unchanged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

/// Commits between checkpoint requests (SQLite's own default is about 1000 pages).
pub(crate) const EVERY: u64 = 256;

/// The sender to the checkpoint thread, and the process it was started in (a child
/// made by `fork` has no such thread and starts its own).
static REQUESTS: Mutex<Option<(u32, Sender<PathBuf>)>> = Mutex::new(None);

/// Asks for a checkpoint of the database at `path` (best effort: one that fails now
/// happens with the next request, or SQLite's own backstop checkpoint does it).
pub(crate) fn request(path: PathBuf) {
    let Ok(mut guard) = REQUESTS.lock() else {
        return;
    };
    let pid = std::process::id();
    if guard.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        *guard = start().map(|tx| (pid, tx));
    }
    if let Some((_, sender)) = guard.as_ref() {
        if sender.send(path).is_err() {
            *guard = None;
        }
    }
}

fn start() -> Option<Sender<PathBuf>> {
    let (tx, rx) = channel::<PathBuf>();
    std::thread::Builder::new()
        .name("twat-cache-checkpoint".into())
        .spawn(move || {
            let mut conns: HashMap<PathBuf, Connection> = HashMap::new();
            while let Ok(path) = rx.recv() {
                // Requests that piled up while we worked need one checkpoint each.
                let mut paths = vec![path];
                paths.extend(rx.try_iter());
                paths.sort();
                paths.dedup();
                for path in paths {
                    run(&mut conns, path);
                }
            }
        })
        .ok()?;
    Some(tx)
}

fn run(conns: &mut HashMap<PathBuf, Connection>, path: PathBuf) {
    if !conns.contains_key(&path) {
        let Ok(db) = Connection::open(&path) else {
            return;
        };
        let _ = db.busy_timeout(Duration::from_millis(100));
        conns.insert(path.clone(), db);
    }
    if let Some(db) = conns.get(&path) {
        if db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .is_err()
        {
            // A removed folder, say: drop the connection; the next request reopens.
            conns.remove(&path);
        }
    }
}
