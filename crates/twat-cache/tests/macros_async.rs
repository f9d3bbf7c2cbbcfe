//! `#[mcache]` on `async fn`: single flight on any executor (here, a minimal one that
//! runs several tasks on one thread), recursion, and a leader dropped mid-computation.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use twat_cache::mcache;

struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls every future in turn on this thread until all are done (one "task" each).
fn run_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
    let mut cx = Context::from_waker(&waker);
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    while out.iter().any(Option::is_none) {
        for (i, f) in futures.iter_mut().enumerate() {
            if out[i].is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                    out[i] = Some(v);
                }
            }
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// Pending for `n` polls, then ready (a stand-in for I/O).
struct Yields(usize);
impl Future for Yields {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

#[mcache(max_size = 64)]
async fn fetch(id: u32) -> String {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    Yields(5).await;
    format!("item {id}")
}

#[test]
fn tasks_on_one_thread_share_one_computation_per_key() {
    let tasks: Vec<Pin<Box<dyn Future<Output = String>>>> = vec![
        Box::pin(fetch(1)),
        Box::pin(fetch(1)),
        Box::pin(fetch(2)),
        Box::pin(fetch(1)),
    ];
    let got = run_all(tasks);
    assert_eq!(got, ["item 1", "item 1", "item 2", "item 1"]);
    assert_eq!(
        FETCHES.load(Ordering::SeqCst),
        2,
        "once per key, not once per task"
    );
    assert_eq!(fetch_cache().len(), 2);
    assert_eq!(run_all(vec![Box::pin(fetch(1))]), ["item 1"]);
    assert_eq!(FETCHES.load(Ordering::SeqCst), 2);
}

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

#[mcache]
async fn lookup(id: u32) -> Option<u32> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    Yields(3).await;
    (id > 0).then_some(id * 10)
}

#[test]
fn a_leader_dropped_mid_computation_hands_the_work_to_a_waiter() {
    let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
    let mut cx = Context::from_waker(&waker);
    let mut leader = Box::pin(lookup(7));
    let mut waiter = Box::pin(lookup(7));
    assert!(leader.as_mut().poll(&mut cx).is_pending()); // computing
    assert!(waiter.as_mut().poll(&mut cx).is_pending()); // waiting for it
    drop(leader); // its caller went away
    let value = loop {
        if let Poll::Ready(v) = waiter.as_mut().poll(&mut cx) {
            break v;
        }
    };
    assert_eq!(value, Some(70));
    assert_eq!(
        LOOKUPS.load(Ordering::SeqCst),
        2,
        "the waiter computed it anew"
    );
    // A None is not kept; concurrent waiters of a None compute for themselves.
    assert_eq!(
        run_all(vec![Box::pin(lookup(0)), Box::pin(lookup(0))]),
        [None, None]
    );
    assert!(lookup_cache().get(&(0,)).is_none());
}

static DEPTH: AtomicUsize = AtomicUsize::new(0);

#[mcache]
async fn recursive(x: u32) -> u32 {
    if DEPTH.fetch_add(1, Ordering::SeqCst) == 0 {
        let inner: Pin<Box<dyn Future<Output = u32>>> = Box::pin(recursive(x));
        inner.await + 1 // the same key, from inside its own computation
    } else {
        Yields(2).await;
        100
    }
}

#[test]
fn an_async_fn_calling_itself_with_the_same_key_does_not_wait_for_itself() {
    assert_eq!(run_all(vec![Box::pin(recursive(1))]), [101]);
    assert_eq!(run_all(vec![Box::pin(recursive(1))]), [101]);
    assert_eq!(DEPTH.load(Ordering::SeqCst), 2);
}

struct Client {
    base: String,
}

impl Client {
    #[mcache]
    async fn get(&self, path: &str) -> Result<String, String> {
        Yields(1).await;
        if path.is_empty() {
            Err("empty path".into())
        } else {
            Ok(format!("{}/{path}", self.base))
        }
    }
}

#[test]
fn an_async_method_caches_only_ok() {
    let client = Client {
        base: "https://example.test".into(),
    };
    let got = run_all(vec![Box::pin(client.get("a")), Box::pin(client.get(""))]);
    assert_eq!(got[0].as_deref(), Ok("https://example.test/a"));
    assert!(got[1].is_err());
    assert_eq!(Client::get_cache().len(), 1);
}

#[test]
fn threads_blocking_on_one_key_share_one_computation() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[mcache]
    async fn slow(x: u32) -> u32 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(100));
        x
    }
    let threads: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(|| twat_cache::block_on_for_docs(slow(3))))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 3);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}
