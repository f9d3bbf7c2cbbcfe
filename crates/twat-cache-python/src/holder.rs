//! A mutex that knows which thread holds it, for the locks under which Python code runs
//! (a key's `__eq__` under the memory engine's lock).
//!
//! That code may call back into the same cache on the same thread, and another thread
//! may fork while it runs: a plain lock would then hang the nested call, or every call
//! in the child. Here the lock records its holder (a thread of this process
//! generation), so [`Guarded::lock`] can tell both cases and the caller goes straight
//! to the function instead. The holder is recorded before the waiting thread takes the
//! GIL back, so a child never mistakes a lock taken at the fork for a free one.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use pyo3::Python;

/// Bumped in a child made by `fork()`: a holder of an older generation is a thread
/// that does not exist in this process.
static GENERATION: AtomicU32 = AtomicU32::new(1);

/// A new process generation began (called in the child after `fork()`).
pub fn forked() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This thread in this process generation: the generation, then a per-thread number.
#[inline]
fn me() -> u64 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local!(static THREAD: Cell<u32> = const { Cell::new(0) });
    let thread = THREAD.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    });
    (u64::from(GENERATION.load(Ordering::Relaxed)) << 32) | u64::from(thread)
}

/// A mutex with its holder.
pub struct Guarded<T> {
    mutex: Mutex<T>,
    /// [`me`] of the holder, or 0.
    holder: AtomicU64,
}

/// The lock, held; it clears the holder when dropped.
pub struct Held<'a, T> {
    guard: MutexGuard<'a, T>,
    holder: &'a AtomicU64,
}

impl<T: Send> Guarded<T> {
    pub fn new(value: T) -> Self {
        Guarded {
            mutex: Mutex::new(value),
            holder: AtomicU64::new(0),
        }
    }

    /// Takes the lock, waiting with the GIL released; `None` when this thread holds it
    /// already, or a thread lost in a `fork()` held it.
    #[inline]
    pub fn lock(&self, py: Python<'_>) -> Option<Held<'_, T>> {
        let me = me();
        let holder = self.holder.load(Ordering::Relaxed);
        if holder != 0 && (holder == me || holder >> 32 != me >> 32) {
            return None;
        }
        Some(self.take(py, me))
    }

    /// Takes the lock, waiting as long as it takes (for a caller that knows it is not
    /// nested in its own hold, like a leader finishing the flight it claimed).
    pub fn lock_waiting(&self, py: Python<'_>) -> Held<'_, T> {
        self.take(py, me())
    }

    #[inline]
    fn take(&self, py: Python<'_>, me: u64) -> Held<'_, T> {
        let guard = match self.mutex.try_lock() {
            Some(guard) => guard,
            None => py.detach(|| {
                let guard = self.mutex.lock();
                self.holder.store(me, Ordering::Release);
                guard
            }),
        };
        self.holder.store(me, Ordering::Relaxed);
        Held {
            guard,
            holder: &self.holder,
        }
    }

    /// Takes the lock without the GIL (a leader unwinding from a panic).
    pub fn lock_unattached(&self) -> Held<'_, T> {
        let guard = self.mutex.lock();
        self.holder.store(me(), Ordering::Release);
        Held {
            guard,
            holder: &self.holder,
        }
    }
}

impl<T> Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for Held<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed is enough: only the holder itself reads its own token back, and the
        // mutex orders everything else.
        self.holder.store(0, Ordering::Relaxed);
    }
}
