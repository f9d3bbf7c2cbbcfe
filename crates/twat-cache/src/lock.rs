//! [`Lock`]: the mutex around a [`MemoryCache`](crate::MemoryCache)'s store, whose
//! release is one plain store.
//!
//! A hit holds the store's lock for a few nanoseconds, and a general-purpose mutex
//! (`parking_lot`'s, `std`'s) spends more than that on its two atomic read-modify-writes:
//! one to take the lock and one to release it (the release must also learn, atomically,
//! whether a thread went to sleep waiting). Measured on the Rust benchmark's warm-hit
//! loop, the release alone was 5-6 ns of a 17 ns LRU hit.
//!
//! Here taking the lock is one compare-exchange and releasing it is a store and a load,
//! neither of them a read-modify-write. A waiter spins briefly, yields, then sleeps in
//! `parking_lot_core`'s parking lot and is woken by the release. The price of the cheap
//! release is a possible missed wake-up: a waiter that registers as a sleeper at the
//! very moment of a release may not be seen by it. Every sleep therefore has a short
//! timeout ([`NAP`]), after which the waiter looks again; a missed wake-up costs that
//! waiter at most one nap, never a deadlock, and the lock is never held by two threads.
//!
//! This is one of the two modules of the crate that allow `unsafe`: the cell access the
//! lock protects, and the calls into `parking_lot_core` (whose contract is about what
//! the callbacks may do). Each block says why it is sound.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Rounds of spinning (1, 2, 4, ... pauses, then `1 << LONGEST_SPIN` a round) on a
/// contended lock.
const SPIN_ROUNDS: u32 = 24;
/// The longest spin between two looks at the lock: 256 pauses, a few microseconds.
const LONGEST_SPIN: u32 = 8;
/// Then rounds of yielding the CPU, before sleeping.
const YIELD_ROUNDS: u32 = 16;
/// The longest a waiter sleeps before it looks at the lock again.
const NAP: Duration = Duration::from_micros(500);

/// A mutual-exclusion lock around a `T`. Never poisoned: a panic while it is held
/// releases it (the guard's drop runs during unwinding).
pub(crate) struct Lock<T> {
    held: AtomicBool,
    /// Waiters that are asleep, or about to be.
    sleepers: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to the `T` to one thread at a time (see `lock`), so
// sharing a `Lock<T>` between threads is sharing a `T` that moves between them: that
// needs `T: Send`, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: a `Lock<T>` owns its `T`; sending the lock sends the `T`.
unsafe impl<T: Send> Send for Lock<T> {}

/// Access to the locked value; dropping it releases the lock.
pub(crate) struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            held: AtomicBool::new(false),
            sleepers: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting for it if another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        if self
            .held
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        LockGuard { lock: self }
    }

    fn try_take(&self) -> bool {
        !self.held.load(Ordering::Relaxed)
            && self
                .held
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// The parking lot's key for this lock: its address, unique while it lives.
    fn key(&self) -> usize {
        std::ptr::from_ref(&self.held) as usize
    }

    #[cold]
    fn lock_contended(&self) {
        let mut round = 0;
        loop {
            if self.try_take() {
                return;
            }
            // Holds are a few nanoseconds: spin, then yield (the holder may be waiting
            // for this core), and sleep only when that did not do. Sleeping early made
            // every release of a busy lock pay for a wake-up call (two threads of hits:
            // 15 M/s). Looking again soon after each release, with spins of at most 8
            // pauses, handed the lock over at almost every hit, and the store's lines
            // with it: 15-25 M/s. Spins growing to 256 pauses let the holder run a
            // streak of hits on a warm cache between two hand-overs: 45-60 M/s, where
            // quick_cache's shards make 31 and `std`'s mutex 33, in the same run.
            if round < SPIN_ROUNDS {
                for _ in 0..(1 << round.min(LONGEST_SPIN)) {
                    std::hint::spin_loop();
                }
                round += 1;
                continue;
            }
            if round < SPIN_ROUNDS + YIELD_ROUNDS {
                std::thread::yield_now();
                round += 1;
                continue;
            }
            round = 0;
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `park`'s contract is that the key is an address this code owns
            // (the lock's own field) and that the `validate` and `timed_out` callbacks,
            // which run with the parking lot's queue locked, neither panic nor call
            // into `parking_lot`: they are an atomic load and nothing.
            unsafe {
                parking_lot_core::park(
                    self.key(),
                    || self.held.load(Ordering::SeqCst),
                    || {},
                    |_, _| {},
                    parking_lot_core::DEFAULT_PARK_TOKEN,
                    Some(Instant::now() + NAP),
                );
            }
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    #[cold]
    fn wake_one(&self) {
        // SAFETY: the same key as `park`'s, and the callback does nothing (it runs with
        // the queue locked and must not panic or call into `parking_lot`).
        unsafe {
            parking_lot_core::unpark_one(self.key(), |_| parking_lot_core::DEFAULT_UNPARK_TOKEN);
        }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
        // Not a read-modify-write, so it may miss a waiter registering right now; that
        // waiter's nap ends on its own (see the module docs).
        if self.lock.sleepers.load(Ordering::Relaxed) != 0 {
            self.lock.wake_one();
        }
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a guard exists only while `held` is true and was set by the thread
        // that made it (`lock`'s compare-exchange succeeded), so no other reference to
        // the value exists; the `Acquire` of that exchange pairs with the `Release` of
        // the previous guard's drop, so the previous holder's writes are visible.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only borrow through the
        // guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn threads_take_turns() {
        // A plain (non-atomic) counter: lost updates would show a broken exclusion.
        let lock = Arc::new(Lock::new(0u64));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*lock.lock(), 400_000);
    }

    #[test]
    fn waiters_sleep_and_are_woken() {
        let lock = Arc::new(Lock::new(Vec::new()));
        let held = lock.lock();
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || lock.lock().push(i))
            })
            .collect();
        // The waiters spin, yield, then sleep: wait (up to a generous bound, on a busy
        // machine yields take long) until one is asleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock.sleepers.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no waiter ever went to sleep");
            thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        let mut got = lock.lock().clone();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(lock.sleepers.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panic_while_held_releases_it() {
        let lock = Arc::new(Lock::new(1));
        let l = Arc::clone(&lock);
        let r = thread::spawn(move || {
            let mut g = l.lock();
            *g = 2;
            panic!("while holding the lock");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 2);
    }
}
