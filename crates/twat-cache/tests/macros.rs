//! `#[mcache]`: keys from arguments, what is cached, single flight, companions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use twat_cache::mcache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[mcache(max_size = 16)]
fn double(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[test]
fn a_free_function_runs_once_per_key() {
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(double(21), 42);
    assert_eq!(double(21), 42);
    assert_eq!(double(4), 8);
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2);
    assert_eq!(double_cache().stats().hits, 1);
    assert_eq!(double_uncached(21), 42);
    assert_eq!(
        RUNS.load(Ordering::SeqCst) - before,
        3,
        "the body itself runs every time"
    );
    assert!(double_cache().remove(&(21,)));
    assert_eq!(double(21), 42);
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 4);
    double_cache().insert((5,), 99);
    assert_eq!(
        double(5),
        99,
        "a value inserted through the companion is served"
    );
}

static BORROWED: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[mcache]
fn describe(name: &str, tags: &[u8], at: &Point, n: usize) -> String {
    BORROWED.fetch_add(1, Ordering::SeqCst);
    format!("{name}:{tags:?}:{}:{}:{n}", at.x, at.y)
}

#[test]
fn borrowed_arguments_are_owned_in_the_key() {
    let p = Point { x: 1, y: 2 };
    let name = String::from("a");
    let first = describe(&name, &[1, 2], &p, 3);
    assert_eq!(first, "a:[1, 2]:1:2:3");
    assert_eq!(
        describe("a", vec![1, 2].as_slice(), &Point { x: 1, y: 2 }, 3),
        first
    );
    assert_eq!(BORROWED.load(Ordering::SeqCst), 1);
    describe("a", &[1, 2, 3], &p, 3);
    assert_eq!(BORROWED.load(Ordering::SeqCst), 2);
}

static FALLIBLE: AtomicUsize = AtomicUsize::new(0);

#[mcache]
fn fallible(x: u32) -> Result<u32, String> {
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    if x == 0 {
        Err("zero".into())
    } else {
        Ok(x)
    }
}

#[mcache(cache_err)]
fn fallible_kept(x: u32) -> Result<u32, String> {
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    Err(format!("{x}"))
}

#[mcache]
fn maybe(x: u32) -> Option<u32> {
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    (x > 0).then_some(x)
}

#[mcache(cache_none)]
fn maybe_kept(x: u32) -> Option<u32> {
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    (x > 0).then_some(x)
}

#[test]
fn only_ok_and_some_are_cached_unless_asked() {
    let runs = || FALLIBLE.load(Ordering::SeqCst);
    let start = runs();
    assert!(fallible(0).is_err());
    assert!(fallible(0).is_err());
    assert_eq!(runs() - start, 2, "an Err is not cached");
    assert_eq!(fallible(3), Ok(3));
    assert_eq!(fallible(3), Ok(3));
    assert_eq!(runs() - start, 3);
    assert!(fallible_kept(1).is_err());
    assert!(fallible_kept(1).is_err());
    assert_eq!(runs() - start, 4, "cache_err keeps the Err");
    assert_eq!(maybe(0), None);
    assert_eq!(maybe(0), None);
    assert_eq!(runs() - start, 6, "a None is not cached");
    assert_eq!(maybe_kept(0), None);
    assert_eq!(maybe_kept(0), None);
    assert_eq!(runs() - start, 7, "cache_none keeps the None");
}

struct Greeter {
    greeting: String,
    calls: AtomicUsize,
}

impl Greeter {
    #[mcache]
    fn greet(&self, who: &str) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{} {who}", self.greeting)
    }

    #[mcache(key = (self.greeting.clone(), who.to_owned()), key_type = (String, String))]
    fn greet_own(&self, who: &str) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{} {who}", self.greeting)
    }
}

#[test]
fn a_method_leaves_its_receiver_out_of_the_key_unless_key_says() {
    let hello = Greeter {
        greeting: "hello".into(),
        calls: AtomicUsize::new(0),
    };
    let hi = Greeter {
        greeting: "hi".into(),
        calls: AtomicUsize::new(0),
    };
    assert_eq!(hello.greet("ann"), "hello ann");
    assert_eq!(
        hi.greet("ann"),
        "hello ann",
        "the receiver is not in the key"
    );
    assert_eq!(hi.calls.load(Ordering::SeqCst), 0);
    assert_eq!(hello.greet_own("bob"), "hello bob");
    assert_eq!(
        hi.greet_own("bob"),
        "hi bob",
        "key = ... includes the receiver's field"
    );
    assert_eq!(hello.greet_own("bob"), "hello bob");
    assert_eq!(hello.calls.load(Ordering::SeqCst), 2);
    assert_eq!(Greeter::greet_own_cache().len(), 2);
}

static SLOW: AtomicUsize = AtomicUsize::new(0);

#[mcache]
fn slow(x: u32, wait: Duration) -> u32 {
    SLOW.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(wait);
    x
}

#[test]
fn concurrent_misses_of_one_key_run_once() {
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                slow(1, Duration::from_millis(200))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 1);
    }
    assert_eq!(SLOW.load(Ordering::SeqCst), 1);
}

#[mcache]
fn gate(x: u32, release: usize) -> u32 {
    let (tx, rx) = GATES.lock().unwrap()[release].take().unwrap();
    tx.send(()).unwrap();
    rx.recv().unwrap();
    x
}

#[mcache]
fn gate_bystander(x: u64) -> u64 {
    x * 2
}

type Gate = Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>;
static GATES: std::sync::Mutex<Vec<Gate>> = std::sync::Mutex::new(Vec::new());

#[test]
fn a_computation_never_blocks_other_keys() {
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (other_started, _ignored) = mpsc::channel();
    let (other_go_tx, other_go) = mpsc::channel();
    other_go_tx.send(()).unwrap(); // the second key's computation never waits
    GATES.lock().unwrap().push(Some((started_tx, go_rx)));
    GATES.lock().unwrap().push(Some((other_started, other_go)));
    let first = std::thread::spawn(|| gate(1, 0));
    started_rx.recv().unwrap(); // key 1 is being computed, and waits
    assert_eq!(
        gate(2, 1),
        2,
        "another key of the same function is computed meanwhile"
    );
    assert_eq!(gate_bystander(1000), 2000, "and another function is served");
    go_tx.send(()).unwrap();
    assert_eq!(first.join().unwrap(), 1);
}

static SELF_CALLS: AtomicUsize = AtomicUsize::new(0);

#[mcache]
fn calls_itself(x: u32) -> u32 {
    if SELF_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        calls_itself(x) + 1 // the same key, from inside its own computation
    } else {
        10
    }
}

#[test]
fn calling_itself_with_the_same_key_does_not_deadlock() {
    assert_eq!(calls_itself(7), 11);
    assert_eq!(calls_itself(7), 11);
    assert_eq!(SELF_CALLS.load(Ordering::SeqCst), 2);
}

static TIMED: AtomicUsize = AtomicUsize::new(0);

#[mcache(ttl = 0.05, policy = "lru")]
fn expiring(x: u32) -> u32 {
    TIMED.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn entries_expire_after_their_ttl() {
    expiring(1);
    expiring(1);
    assert_eq!(TIMED.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(120));
    expiring(1);
    assert_eq!(TIMED.load(Ordering::SeqCst), 2);
    expiring_cache().clear();
    expiring(1);
    assert_eq!(TIMED.load(Ordering::SeqCst), 3);
}
