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

/// This process's pool, with the id of the process that made it.
static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

fn pool() -> Option<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some((owner, pool)) if *owner == pid => return Some(Arc::clone(pool)),
        Some(_) => std::mem::forget(slot.take()),
        None => {}
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(16));
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("twat-cache-worker-{i}"))
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    *slot = Some((pid, Arc::clone(&pool)));
    Some(pool)
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
