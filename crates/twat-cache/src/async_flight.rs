//! Single flight for `async` computations, on any runtime (no runtime is named: only
//! `std::task::Waker`s).
//!
//! - A computation's first caller leads; later callers of the same key wait on a
//!   future woken when the leader is done, and get a clone of its value.
//! - A leader that is dropped mid-computation (its caller cancelled) gives the flight
//!   up: its waiters wake and one of them leads a new computation, so no waiter fails
//!   because another caller went away.
//! - A computation that calls itself with the same key is noticed while the leader's
//!   future is being polled (a thread-local list of the flights being led, set around
//!   each poll), and computes instead of waiting for itself forever. Another task that
//!   happens to run on the same thread is not inside that poll, and waits as it should.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

enum State<V> {
    Running(Vec<Waker>),
    Done(V),
    Abandoned,
}

/// One computation in progress, that other callers can wait for.
pub(crate) struct AsyncFlight<V> {
    /// Unique in the process: what the thread-local list of led flights holds.
    pub(crate) serial: u64,
    state: Mutex<State<V>>,
}

thread_local! {
    /// The flights whose leader's future this thread is polling right now.
    static LEADING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl<V: Clone> AsyncFlight<V> {
    pub(crate) fn new() -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(AsyncFlight {
            serial: NEXT.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State::Running(Vec::new())),
        })
    }

    /// Whether the caller is inside this flight's own computation.
    pub(crate) fn led_here(&self) -> bool {
        LEADING.with(|l| l.borrow().contains(&self.serial))
    }

    /// The leader's value: waiters wake with a clone of it.
    pub(crate) fn complete(&self, value: V) {
        let wakers = match std::mem::replace(&mut *self.state.lock(), State::Done(value)) {
            State::Running(w) => w,
            _ => Vec::new(),
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The leader gave up (dropped, or its value is not kept): waiters wake and retry.
    pub(crate) fn abandon(&self) {
        let mut state = self.state.lock();
        if !matches!(*state, State::Running(_)) {
            return; // done already: stays done
        }
        if let State::Running(w) = std::mem::replace(&mut *state, State::Abandoned) {
            drop(state);
            w.into_iter().for_each(Waker::wake);
        }
    }

    /// Waits for the leader: `Some(value)`, or `None` when it gave up.
    pub(crate) fn wait(self: &Arc<Self>) -> Wait<V> {
        Wait {
            flight: Arc::clone(self),
        }
    }
}

/// The future of [`AsyncFlight::wait`].
pub(crate) struct Wait<V> {
    flight: Arc<AsyncFlight<V>>,
}

impl<V: Clone> Future for Wait<V> {
    type Output = Option<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        let mut state = self.flight.state.lock();
        match &mut *state {
            State::Done(v) => Poll::Ready(Some(v.clone())),
            State::Abandoned => Poll::Ready(None),
            State::Running(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// The leader's computation, polled with its flight marked as led on this thread.
pub(crate) struct Leading<F> {
    pub(crate) serial: u64,
    pub(crate) inner: Pin<Box<F>>,
}

impl<F: Future> Future for Leading<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let serial = self.serial;
        LEADING.with(|l| l.borrow_mut().push(serial));
        // Popped even if the computation panics.
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                LEADING.with(|l| {
                    l.borrow_mut().pop();
                });
            }
        }
        let _pop = Pop;
        self.inner.as_mut().poll(cx)
    }
}
