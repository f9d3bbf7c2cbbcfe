//! The worker threads that hash, checksum and pipeline large buffers over every core.
//!
//! rayon's global pool is made once per program and cannot be made again: in a child
//! made by `fork()` its workers do not exist, and the first parallel job waits for them
//! forever. So the core keeps a pool of its own, per process: a child that needs one
//! makes a new one (the parent's is forgotten, never dropped: dropping it would signal
//! threads that are not there). Code run through [`install`] uses it for every rayon
//! call inside (`join`, parallel iterators, BLAKE3's tree hashing).

use std::sync::Arc;

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::Mutex;

use crate::fork::PerProcess;

/// This process's pool (a child made by `fork()` makes its own).
static POOL: Mutex<PerProcess<Arc<ThreadPool>>> = Mutex::new(PerProcess::new());

fn pool() -> Option<Arc<ThreadPool>> {
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_make(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(16));
        let pool = ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("twat-cache-worker-{i}"))
            .build()
            .ok()?;
        Some(Arc::new(pool))
    })
    .map(Arc::clone)
}

/// Runs `op(true)` on this process's pool, or `op(false)` on the calling thread when no
/// pool can be had (no threads may be started): then `op` must not use rayon.
pub(crate) fn install<R: Send>(op: impl FnOnce(bool) -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(|| op(true)),
        None => op(false),
    }
}

/// For [`crate::fork::prepare`]: no thread is making the pool while the process forks.
pub(crate) fn lock_all(held: &mut Vec<Box<dyn std::any::Any>>) {
    held.push(Box::new(POOL.lock().unwrap_or_else(|e| e.into_inner())));
}
