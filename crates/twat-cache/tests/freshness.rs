//! Stale entries: every store keeps an expired entry for its grace and tells it from a
//! fresh one; a folder's lease lets one process of many refresh a key.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twat_cache::{
    read_frame, small_entry, stale_for, ByteStore, Compression, DiskConfig, DiskStore, Grace,
    Lease, Payload, Policy, Signer, Store, Value,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twat-fresh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn eq(k: u32) -> impl Fn(&u32) -> Result<bool, Infallible> {
    move |x| Ok(*x == k)
}

fn same(a: &u32, b: &u32) -> Result<bool, Infallible> {
    Ok(a == b)
}

#[test]
fn the_memory_store_keeps_stale_entries_for_their_grace_only() {
    let mut store: Store<u32, &str> = Store::new(Some(10), None, Policy::Lru);
    store.set_grace(Grace::For(Duration::from_millis(200)));
    store
        .insert_expiring_by(1, 1, "one", Some(Duration::from_millis(50)), same)
        .unwrap();
    store.insert_expiring_by(2, 2, "two", None, same).unwrap();
    // Fresh: a plain hit either way.
    assert_eq!(store.get_stale_by(1, eq(1)).unwrap(), Some((&"one", None)));
    std::thread::sleep(Duration::from_millis(80));
    // Stale: get_by misses it, without reclaiming it; get_stale_by finds it.
    assert_eq!(store.get_by(1, eq(1)).unwrap(), None);
    assert_eq!(store.peek_by(1, eq(1)).unwrap(), None);
    let (v, age) = store.get_stale_by(1, eq(1)).unwrap().expect("kept");
    assert_eq!(*v, "one");
    assert!(age.unwrap() >= Duration::from_millis(30));
    assert_eq!(store.len(), 2);
    assert_eq!(store.purge_expired(), 0);
    store.count_stale_hit();
    std::thread::sleep(Duration::from_millis(200));
    // Past the grace: gone, counted as an expiration.
    assert_eq!(store.get_stale_by(1, eq(1)).unwrap(), None);
    let stats = store.stats();
    assert_eq!(
        (stats.expirations, stats.stale_hits, stats.entries),
        (1, 1, 1)
    );
    // An entry without a TTL never goes stale.
    assert_eq!(store.get_stale_by(2, eq(2)).unwrap(), Some((&"two", None)));
}

#[test]
fn a_forever_grace_keeps_expired_entries_until_evicted() {
    let mut store: Store<u32, u32> = Store::new(Some(2), None, Policy::Lru);
    store.set_grace(Grace::Forever);
    for k in 1..=2 {
        store
            .insert_expiring_by(k.into(), k, k * 10, Some(Duration::ZERO), same)
            .unwrap();
    }
    assert_eq!(store.purge_expired(), 0);
    assert!(store.get_stale_by(1, eq(1)).unwrap().is_some());
    store.insert_by(3, 3, 30, same).unwrap();
    assert_eq!(store.len(), 2, "the bound still holds");
}

#[test]
fn frames_carry_their_freshness_in_every_layout() {
    let big = vec![3u8; 200_000];
    let signer = Signer::new(b"secret");
    for (buffers, codec, signed) in [
        (vec![], Compression::None, false),
        (vec![&big[..]], Compression::None, false),
        (vec![&big[..]], Compression::Zstd, true),
        (vec![], Compression::Lz4, true),
    ] {
        let payload = Payload {
            stream: b"stream",
            buffers: buffers.clone(),
        };
        let signer = signed.then_some(&signer);
        for until in [None, Some(1_234_567_890_123_456u64)] {
            let mut out = std::io::Cursor::new(Vec::new());
            twat_cache::write_frame_until(&mut out, &payload, codec, signer, until).unwrap();
            let loaded = read_frame(out.get_ref().as_slice(), signer).unwrap();
            assert_eq!(loaded.stream, b"stream");
            assert_eq!(loaded.buffers.len(), buffers.len());
            assert_eq!(loaded.fresh_until, until);
            if buffers.is_empty() && codec == Compression::None && !signed {
                let small = small_entry(out.get_ref()).unwrap().expect("small");
                assert_eq!((small.stream, small.fresh_until), (&b"stream"[..], until));
            }
            // The deadline is inside the checked body: changing it is caught.
            if let Some(until) = until {
                let mut bytes = out.into_inner();
                let at = bytes
                    .windows(8)
                    .position(|w| w == until.to_le_bytes())
                    .filter(|_| codec == Compression::None);
                if let Some(at) = at {
                    bytes[at] ^= 1;
                    assert!(read_frame(bytes.as_slice(), signer).is_err());
                }
            }
        }
    }
}

fn fresh_until_of(store: &DiskStore, key: u128) -> Option<Option<u64>> {
    let entry = store.get(key).unwrap()?;
    Some(
        read_frame(entry.reader().unwrap(), None)
            .unwrap()
            .fresh_until,
    )
}

#[test]
fn a_folder_keeps_stale_entries_until_their_grace_ends() {
    let dir = temp_dir("disk");
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let big = vec![1u8; 100_000]; // a file entry, beside the inline ones
    for (key, buffers) in [(1u128, vec![]), (2, vec![&big[..]])] {
        let payload = Payload {
            stream: b"v",
            buffers,
        };
        let value = Value {
            ttl: Some(Duration::from_millis(50)),
            grace: Grace::For(Duration::from_millis(600)),
            ..Value::new(&payload)
        };
        store.put_value("ns", key, &value).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    for key in [1, 2] {
        let until = fresh_until_of(&store, key).expect("kept while stale");
        assert!(stale_for(until).expect("stale") >= Duration::from_millis(40));
    }
    assert_eq!(store.purge_expired().unwrap(), 0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(fresh_until_of(&store, 1), None);
    assert_eq!(fresh_until_of(&store, 2), None);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

/// A worker process of `one_process_of_many_takes_a_folder_lease`: tries the lease and
/// prints whether it got it.
fn lease_worker(dir: &Path) {
    let store = DiskStore::open(dir, DiskConfig::default()).unwrap();
    let lease = store.lease(42, Duration::from_secs(30)).unwrap();
    println!("LEASE {}", matches!(lease, Lease::Held { .. }));
    // Held past the other workers' attempts (they start together).
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn one_process_of_many_takes_a_folder_lease() {
    if let Ok(dir) = std::env::var("LEASE_WORKER_DIR") {
        lease_worker(Path::new(&dir));
        return;
    }
    let dir = temp_dir("lease");
    DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "one_process_of_many_takes_a_folder_lease"])
                .args(["--nocapture", "--test-threads=1"])
                .env("LEASE_WORKER_DIR", &dir)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let held = children
        .into_iter()
        .map(|c| String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap())
        .filter(|out| out.contains("LEASE true"))
        .count();
    assert_eq!(held, 1, "exactly one process holds the lease");
    // Its holder is gone without giving it back: it lasts until it expires.
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    assert!(store.leased(42).unwrap());
    assert_eq!(
        store.lease(42, Duration::from_secs(1)).unwrap(),
        Lease::Busy
    );
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_expired_folder_lease_is_taken_over() {
    let dir = temp_dir("lease-expiry");
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let first = store.lease(1, Duration::from_millis(50)).unwrap();
    assert!(matches!(first, Lease::Held { .. }));
    assert_eq!(store.lease(1, Duration::from_secs(5)).unwrap(), Lease::Busy);
    std::thread::sleep(Duration::from_millis(80));
    let second = store.lease(1, Duration::from_secs(5)).unwrap();
    assert!(matches!(second, Lease::Held { .. }));
    // The first holder's late release does not free the second's lease.
    store.release(first).unwrap();
    assert!(store.leased(1).unwrap());
    ByteStore::release(&store, second);
    assert!(!store.leased(1).unwrap());
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
