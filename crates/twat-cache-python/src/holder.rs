//! A lock that knows which thread holds it, for the state under which Python code runs
//! (a key's `__eq__` under the memory engine's lock).
//!
//! That code may call back into the same cache on the same thread, and another thread
//! may fork while it runs: a plain lock would then hang the nested call, or every call
//! in the child. Here the lock records its holder (a thread of this process
//! generation), so [`Guarded::lock`] can tell both cases and the caller goes straight
//! to the function instead.
//!
//! With the GIL (every CPython but a free-threaded one), the holder *is* the lock: a
//! thread takes it only while attached to the interpreter, and only one thread is
//! attached at a time, so testing and setting the holder cannot interleave with another
//! thread's, and no atomic read-modify-write is needed. That takes two `lock cmpxchg`
//! off every hit (measured: 9 of the 55 ns of an `mcache` hit on these machines). A
//! holder that releases the GIL inside (a key's `__eq__` doing I/O) keeps the lock; a
//! thread that finds it held then waits with the GIL released. A free-threaded build
//! (`Py_GIL_DISABLED`) keeps a mutex, as the GIL orders nothing there.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Whether a lock held by `holder` cannot be waited for by thread `me`: it is `me`
/// (a nested call), or a thread lost in a `fork()`.
#[inline]
fn unusable(holder: u64, me: u64) -> bool {
    holder != 0 && (holder == me || holder >> 32 != me >> 32)
}

#[cfg(not(Py_GIL_DISABLED))]
mod imp {
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    use pyo3::Python;

    /// The state, and [`super::me`] of its holder (0: free). Aligned to a cache line, so
    /// no other allocation shares its lines: when one did (it moved with the sizes of the
    /// policies' structs), a thread writing there (OpenBLAS's spinning workers, after
    /// `import numpy`) pulled the line away at every hit, and `f(1)` took 46 ns, not 32.
    #[repr(align(64))]
    pub struct Guarded<T> {
        value: UnsafeCell<T>,
        pub(super) holder: AtomicU64,
    }

    // SAFETY: the value is reached only through a `Held`, and `take` hands out one
    // `Held` at a time (see there), so `&Guarded` shared by threads never gives two
    // threads the value at once; `T: Send` lets the value be used from any thread.
    unsafe impl<T: Send> Sync for Guarded<T> {}

    impl<T> Guarded<T> {
        pub fn new(value: T) -> Self {
            Guarded {
                value: UnsafeCell::new(value),
                holder: AtomicU64::new(0),
            }
        }

        /// Makes `me` the holder, waiting (with the GIL released) while another thread
        /// is. Test and set are two plain accesses: the `py` token says this thread
        /// holds the GIL, which no other thread holds meanwhile, and every taker holds
        /// it (`lock_unattached` attaches first).
        #[inline]
        pub(super) fn take(&self, py: Python<'_>, me: u64) {
            // Acquire: see what the previous holder wrote before it let go (Release).
            let mut spins = 0u32;
            while self.holder.load(Ordering::Acquire) != 0 {
                spins = spins.wrapping_add(1);
                super::wait_a_little(py, spins);
            }
            self.holder.store(me, Ordering::Relaxed);
        }

        /// The value, for the holder.
        ///
        /// # Safety
        /// The caller is the holder (it made `take` return) and lets go only after the
        /// reference is gone.
        #[inline]
        pub(super) unsafe fn value(&self) -> *mut T {
            self.value.get()
        }

        #[inline]
        pub(super) fn release(&self) {
            self.holder.store(0, Ordering::Release);
        }
    }
}

#[cfg(Py_GIL_DISABLED)]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};

    use pyo3::Python;

    /// The state behind a mutex, and [`super::me`] of its holder (0: free); aligned to a
    /// cache line for the reason given in the other build's `Guarded`.
    #[repr(align(64))]
    pub struct Guarded<T> {
        mutex: parking_lot::Mutex<T>,
        pub(super) holder: AtomicU64,
    }

    impl<T> Guarded<T> {
        pub fn new(value: T) -> Self {
            Guarded {
                mutex: parking_lot::Mutex::new(value),
                holder: AtomicU64::new(0),
            }
        }

        #[inline]
        pub(super) fn take(&self, py: Python<'_>, me: u64) {
            use parking_lot::lock_api::RawMutex as _;
            // SAFETY: not one: `raw()` is unsafe only because a raw unlock could
            // release a guard; the lock taken here is released by `release` alone.
            let raw = unsafe { self.mutex.raw() };
            if !raw.try_lock() {
                py.detach(|| raw.lock());
            }
            self.holder.store(me, Ordering::Relaxed);
        }

        /// # Safety
        /// The caller holds the mutex (it made `take` return).
        #[inline]
        pub(super) unsafe fn value(&self) -> *mut T {
            self.mutex.data_ptr()
        }

        #[inline]
        pub(super) fn release(&self) {
            use parking_lot::lock_api::RawMutex as _;
            self.holder.store(0, Ordering::Relaxed);
            // SAFETY: called once per `take`, by the holder (`Held::drop`).
            unsafe { self.mutex.raw().unlock() };
        }
    }
}

pub use imp::Guarded;

/// Lets the holder run: the GIL released, then a yield, or a short sleep every 64th
/// time (a holder waits inside Python code, which is slow next to a cache hit).
#[cfg_attr(Py_GIL_DISABLED, allow(dead_code))]
fn wait_a_little(py: Python<'_>, spins: u32) {
    py.detach(|| {
        if spins % 64 == 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        } else {
            std::thread::yield_now();
        }
    });
}

/// The lock, held; it lets go when dropped.
pub struct Held<'a, T> {
    cell: &'a Guarded<T>,
}

impl<T: Send> Guarded<T> {
    /// Takes the lock, waiting with the GIL released; `None` when this thread holds it
    /// already, or a thread lost in a `fork()` held it.
    #[inline]
    pub fn lock(&self, py: Python<'_>) -> Option<Held<'_, T>> {
        let me = me();
        if unusable(self.holder.load(Ordering::Relaxed), me) {
            return None;
        }
        self.take(py, me);
        Some(Held { cell: self })
    }

    /// Takes the lock, waiting as long as it takes (for a caller that knows it is not
    /// nested in its own hold, like a leader finishing the flight it claimed).
    pub fn lock_waiting(&self, py: Python<'_>) -> Held<'_, T> {
        self.take(py, me());
        Held { cell: self }
    }

    /// Takes the lock from a thread that may not be attached (a leader unwinding from a
    /// panic): it attaches to take it.
    pub fn lock_unattached(&self) -> Held<'_, T> {
        Python::attach(|py| self.take(py, me()));
        Held { cell: self }
    }
}

impl<T> Deref for Held<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this `Held` is the holder's, made right after `take`, and lets go
        // only when dropped, after every borrow of it ended.
        unsafe { &*self.cell.value() }
    }
}

impl<T> DerefMut for Held<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow of the value.
        unsafe { &mut *self.cell.value() }
    }
}

impl<T> Drop for Held<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.cell.release();
    }
}
