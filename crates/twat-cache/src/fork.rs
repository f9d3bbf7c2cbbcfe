//! `fork()` without `exec`: a child has only the thread that forked, and a copy of every
//! lock as it was at that instant. A lock that another thread held then is held forever
//! in the child, and a thread pool's workers are simply not there.
//!
//! The core copes in two ways:
//! - **Per-process resources** notice that the process id changed and are made anew in
//!   the child: the worker pool (`parallel.rs`), the background thread
//!   (`background.rs`) and each store's SQLite connection. The parent's is never used,
//!   nor dropped, in the child (`PerProcess`): its drop could wait for a lock one of
//!   the parent's threads held.
//! - **Locks** are taken around the fork by [`prepare`], and released on both sides by
//!   [`after_in_parent`] and [`after_in_child`], as `pthread_atfork` handlers do: no
//!   thread of the core is inside SQLite, the pool or a store's lock when the process
//!   is copied. The locks held across the fork are `std` locks: their unlock in the
//!   child never hands them to a waiter that does not exist there (`parking_lot`'s
//!   fair unlock can). Every other lock of the persistent and Redis stores is taken
//!   inside the fork gate (`fork::gated`, `fork::lock`), which [`prepare`] closes: a lock taken
//!   outside it (the count of an eviction, once) was seen held for ever in a child.
//!   The Python package registers these with `os.register_at_fork`; a Rust program
//!   that forks calls them itself around `fork()`. (`MemoryCache`'s hot lock stays out
//!   of the gate: a shared counter on every hit would cost more than the hit.)
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

/// A lock's guard held inside the fork gate: a fork waits until it is let go, so no
/// child inherits the lock taken by a thread it does not have. Every lock of the core
/// that [`prepare`] does not take itself is taken through [`gated`] (or [`lock`]).
/// The guard is dropped before the pass (fields drop in order).
pub(crate) struct Gated<G> {
    guard: G,
    _pass: Pass,
}

impl<G: std::ops::Deref> std::ops::Deref for Gated<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: std::ops::DerefMut> std::ops::DerefMut for Gated<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// Enters the gate, then takes a lock with `take`.
pub(crate) fn gated<G>(take: impl FnOnce() -> G) -> Gated<G> {
    let pass = pass();
    Gated {
        guard: take(),
        _pass: pass,
    }
}

/// [`gated`] without waiting: `None` while a fork is being prepared, or when `take`
/// finds the lock held.
pub(crate) fn try_gated<G>(take: impl FnOnce() -> Option<G>) -> Option<Gated<G>> {
    let pass = try_pass()?;
    Some(Gated {
        guard: take()?,
        _pass: pass,
    })
}

/// A `std` mutex's guard, held inside the gate.
pub(crate) type Locked<'a, T> = Gated<std::sync::MutexGuard<'a, T>>;

/// A `std` mutex taken inside the gate. A poisoned one is used as it is: what it
/// guards is kept valid by every holder (a panic leaves no half-made state).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> Locked<'_, T> {
    gated(|| mutex.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The value a process made, in a slot that a child made by `fork()` inherits: the
/// child makes its own, and the parent's is forgotten, never dropped. Dropping it
/// would reach for the parent's threads through locks that one of them may have held
/// at the fork (a channel's, a pool's), and wait forever.
pub(crate) struct PerProcess<T> {
    made: Option<(u32, T)>,
}

impl<T> PerProcess<T> {
    pub(crate) const fn new() -> Self {
        PerProcess { made: None }
    }

    /// This process's value, made by `make` if there is none yet (`None` if `make`
    /// fails; the next call tries again).
    pub(crate) fn get_or_make(&mut self, make: impl FnOnce() -> Option<T>) -> Option<&T> {
        let pid = std::process::id();
        if self.made.as_ref().is_some_and(|(owner, _)| *owner != pid) {
            std::mem::forget(self.made.take());
        }
        if self.made.is_none() {
            self.made = make().map(|value| (pid, value));
        }
        self.made.as_ref().map(|(_, value)| value)
    }

    /// Drops this process's value (one that no longer works); the next use makes a
    /// new one.
    pub(crate) fn reset(&mut self) {
        if self
            .made
            .as_ref()
            .is_some_and(|(owner, _)| *owner == std::process::id())
        {
            self.made = None;
        } else {
            std::mem::forget(self.made.take());
        }
    }
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
