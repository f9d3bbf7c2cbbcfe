//! `fork()` without `exec`: a child has only the thread that forked, and a copy of every
//! lock as it was at that instant. A lock that another thread held then is held forever
//! in the child, and a thread pool's workers are simply not there.
//!
//! The core copes in two ways:
//! - **Per-process resources** notice that the process id changed and are made anew in
//!   the child: the worker pool (`parallel.rs`), the background thread
//!   (`background.rs`) and each store's SQLite connection (the parent's is never used,
//!   nor closed, in the child).
//! - **Locks** are taken around the fork by [`prepare`], and released on both sides by
//!   [`after_in_parent`] and [`after_in_child`], as `pthread_atfork` handlers do: no
//!   thread of the core is inside SQLite, the pool or a store's lock when the process
//!   is copied. The Python package registers these with `os.register_at_fork`; a Rust
//!   program that forks calls them itself around `fork()`.
//!
//! ```
//! twat_cache::fork::prepare();
//! // ... fork() here ...
//! twat_cache::fork::after_in_parent(); // or after_in_child() in the child
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// Guards taken by [`prepare`], held by the forking thread until the fork is over.
type Held = Vec<Box<dyn Any>>;

thread_local! {
    static HELD: RefCell<Held> = const { RefCell::new(Vec::new()) };
}

/// Something whose locks must not be held by another thread across a fork.
pub(crate) trait Quiesce: Send + Sync {
    /// Takes every lock, in the order the rest of the code takes them, and keeps the
    /// guards in `held`.
    fn lock_all(self: Arc<Self>, held: &mut Held);
}

/// Every live store (held weakly: a store that is dropped leaves on its own).
static QUIESCE: Mutex<Vec<Weak<dyn Quiesce>>> = Mutex::new(Vec::new());

/// Lists `item` for [`prepare`].
pub(crate) fn register(item: Weak<dyn Quiesce>) {
    let mut all = QUIESCE.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(item);
}

/// Before `fork()`: waits until no thread of the core holds one of its locks, and holds
/// them all (each is held only for short, bounded work). Call [`after_in_parent`] or
/// [`after_in_child`] once the fork is done, from the same thread.
pub fn prepare() {
    let mut held: Held = Vec::new();
    let all = QUIESCE.lock();
    let live: Vec<Arc<dyn Quiesce>> = all.iter().filter_map(Weak::upgrade).collect();
    held.push(Box::new(all));
    for item in live {
        item.lock_all(&mut held);
    }
    // The order every other path takes them in: a store's locks, then the pool, the
    // background thread's, and the open/close turn last (nothing is taken under it).
    crate::parallel::lock_all(&mut held);
    crate::background::lock_all(&mut held);
    crate::connection::lock_all(&mut held);
    HELD.with(|h| h.borrow_mut().extend(held));
}

/// After `fork()`, in the parent: releases what [`prepare`] took.
pub fn after_in_parent() {
    release();
}

/// After `fork()`, in the child: releases what [`prepare`] took. The pool, the
/// background thread and the connections are made anew on first use.
pub fn after_in_child() {
    release();
}

fn release() {
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    // In the reverse order of taking.
    for guard in held.into_iter().rev() {
        drop(guard);
    }
}
