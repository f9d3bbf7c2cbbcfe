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
//!   is copied. The locks held across the fork are `std` locks: their unlock in the
//!   child never hands them to a waiter that does not exist there (`parking_lot`'s
//!   fair unlock can). The Python package registers these with `os.register_at_fork`; a Rust
//!   program that forks calls them itself around `fork()`.
//!
//! ```
//! twat_cache::fork::prepare();
//! // ... fork() here ...
//! twat_cache::fork::after_in_parent(); // or after_in_child() in the child
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::{RwLock, RwLockReadGuard};

/// Guards taken by [`prepare`], held by the forking thread until the fork is over.
type Held = Vec<Box<dyn Any>>;

thread_local! {
    static HELD: RefCell<Held> = const { RefCell::new(Vec::new()) };
    /// How many [`Pass`]es this thread holds (a pass inside a pass takes nothing).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// The fork gate: every use of a store's locks holds it shared; [`prepare`] holds it
/// exclusively, so at the fork no thread holds, or waits for, a store's lock. It is a
/// `std` lock, whose unlock in the child never hands it to a thread that is not there.
static GATE: RwLock<()> = RwLock::new(());

/// A thread's shared hold on the fork gate (see [`pass`]).
pub(crate) struct Pass {
    _shared: Option<RwLockReadGuard<'static, ()>>,
}

/// Enters the fork gate for the time the pass lives: before taking a store's lock.
pub(crate) fn pass() -> Pass {
    let depth = DEPTH.with(|d| d.replace(d.get() + 1));
    if depth > 0 {
        // Already inside: taking it again could wait behind a waiting `prepare`.
        return Pass { _shared: None };
    }
    Pass {
        _shared: Some(GATE.read().unwrap_or_else(|e| e.into_inner())),
    }
}

/// [`pass`] without waiting, for a caller that holds a lock of its own (the Python
/// binding holds the GIL, which [`prepare`]'s caller needs back): `None` while a fork
/// is being prepared.
pub(crate) fn try_pass() -> Option<Pass> {
    let depth = DEPTH.with(|d| d.get());
    if depth > 0 {
        DEPTH.with(|d| d.set(depth + 1));
        return Some(Pass { _shared: None });
    }
    let shared = GATE.try_read().ok()?;
    DEPTH.with(|d| d.set(1));
    Some(Pass {
        _shared: Some(shared),
    })
}

impl Drop for Pass {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Before `fork()`: waits until no thread of the core holds one of its locks, and holds
/// them all (each is held only for short, bounded work). Call [`after_in_parent`] or
/// [`after_in_child`] once the fork is done, from the same thread.
pub fn prepare() {
    let mut held: Held = vec![Box::new(GATE.write().unwrap_or_else(|e| e.into_inner()))];
    // The order every other path takes them in: the gate (and a store's locks), then
    // the pool, the background thread's, and the open/close turn last.
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
    crate::tally::after_in_child();
}

fn release() {
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    // In the reverse order of taking.
    for guard in held.into_iter().rev() {
        drop(guard);
    }
}
