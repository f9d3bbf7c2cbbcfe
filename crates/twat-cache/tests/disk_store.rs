//! The persistent store's contract: values survive, limits hold, damage is caught, and
//! several processes can share one folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twat_cache::{read_frame, Compression, DiskConfig, DiskStore, Error, Payload, Policy, Signer};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twat-disk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn payload_of(bytes: &[u8]) -> Payload<'_> {
    Payload {
        stream: b"v",
        buffers: vec![bytes],
    }
}

fn load(store: &DiskStore, key: u128) -> Option<Vec<u8>> {
    let entry = store.get(key).unwrap()?;
    let loaded = read_frame(entry.reader().unwrap(), None).unwrap();
    Some(loaded.buffers.into_iter().next().unwrap())
}

fn config(max_bytes: u64, policy: Policy) -> DiskConfig {
    DiskConfig {
        max_bytes,
        policy,
        inline_max: 1024,
        ..DiskConfig::default()
    }
}

#[test]
fn inline_and_file_entries_round_trip_and_survive_reopening() {
    let dir = temp_dir("roundtrip");
    let small = vec![1u8; 100];
    let large = vec![2u8; 50_000];
    {
        let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
        store
            .put("f", 1, &payload_of(&small), Compression::None, None)
            .unwrap();
        store
            .put("f", 2, &payload_of(&large), Compression::None, None)
            .unwrap();
    }
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    assert_eq!(load(&store, 1).unwrap(), small);
    assert_eq!(load(&store, 2).unwrap(), large);
    assert!(load(&store, 3).is_none());
    let files: Vec<_> = walk(&dir.join("data"));
    assert_eq!(files.len(), 1, "only the large entry has a file");
    assert_eq!(store.usage(Some("f")).unwrap().0, 2);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn replacing_an_entry_removes_its_old_file() {
    let dir = temp_dir("replace");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    store
        .put("f", 7, &payload_of(&[1u8; 5000]), Compression::None, None)
        .unwrap();
    store
        .put("f", 7, &payload_of(&[2u8; 6000]), Compression::None, None)
        .unwrap();
    assert_eq!(load(&store, 7).unwrap(), vec![2u8; 6000]);
    assert_eq!(walk(&dir.join("data")).len(), 1);
    let (n, bytes) = store.usage(None).unwrap();
    assert_eq!(n, 1);
    assert!(bytes > 6000 && bytes < 7000, "{bytes}");
}

#[test]
fn the_byte_limit_holds_and_evicts_by_policy() {
    for policy in [Policy::Lru, Policy::Lfu, Policy::Fifo] {
        let dir = temp_dir(&format!("limit-{}", policy.name()));
        let store = DiskStore::open(&dir, config(10_000, policy)).unwrap();
        let value = vec![0u8; 2000];
        for key in 0..4u128 {
            store
                .put("f", key, &payload_of(&value), Compression::None, None)
                .unwrap();
        }
        // Key 0 is read often: LRU and LFU keep it, FIFO does not care.
        for _ in 0..3 {
            assert!(load(&store, 0).is_some());
        }
        for key in 4..7u128 {
            store
                .put("f", key, &payload_of(&value), Compression::None, None)
                .unwrap();
            let (_, bytes) = store.usage(None).unwrap();
            assert!(
                bytes <= 10_000,
                "{policy:?}: {bytes} bytes after insert {key}"
            );
        }
        let kept_zero = load(&store, 0).is_some();
        assert_eq!(kept_zero, policy != Policy::Fifo, "{policy:?}");
        assert!(load(&store, 6).is_some(), "the newest entry is kept");
    }
}

#[test]
fn an_entry_larger_than_the_limit_is_refused() {
    let dir = temp_dir("too-large");
    let store = DiskStore::open(&dir, config(4096, Policy::Lru)).unwrap();
    store
        .put("f", 1, &payload_of(&[1u8; 100]), Compression::None, None)
        .unwrap();
    let err = store
        .put("f", 2, &payload_of(&[0u8; 5000]), Compression::None, None)
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: 4096, .. }),
        "{err:?}"
    );
    assert!(load(&store, 1).is_some(), "nothing was evicted for it");
    assert!(
        walk(&dir.join("tmp")).is_empty(),
        "no temporary file is left behind"
    );
}

#[test]
fn entries_expire_on_the_wall_clock() {
    let dir = temp_dir("ttl");
    let cfg = DiskConfig {
        ttl: Some(Duration::from_millis(200)),
        ..config(1 << 20, Policy::Lru)
    };
    let store = DiskStore::open(&dir, cfg).unwrap();
    store
        .put("f", 1, &payload_of(&[1u8; 5000]), Compression::None, None)
        .unwrap();
    assert!(load(&store, 1).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(load(&store, 1).is_none());
    assert_eq!(store.purge_expired().unwrap(), 1);
    assert!(
        walk(&dir.join("data")).is_empty(),
        "the expired entry's file is gone"
    );
}

#[test]
fn an_entry_may_have_a_ttl_of_its_own() {
    let dir = temp_dir("ttl-per-entry");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    let short = Some(Duration::from_millis(100));
    store
        .put_expiring(
            "f",
            1,
            &payload_of(&[1u8; 10]),
            Compression::None,
            None,
            short,
        )
        .unwrap();
    store
        .put_expiring(
            "f",
            2,
            &payload_of(&[2u8; 5000]),
            Compression::None,
            None,
            short,
        )
        .unwrap();
    store
        .put("f", 3, &payload_of(&[3u8; 10]), Compression::None, None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(load(&store, 1).is_none() && load(&store, 2).is_none());
    assert_eq!(load(&store, 3).unwrap(), vec![3u8; 10], "no TTL: no expiry");
    assert_eq!(store.purge_expired().unwrap(), 2);
    assert!(walk(&dir.join("data")).is_empty());
}

#[test]
fn a_damaged_file_is_detected_and_discarded() {
    let dir = temp_dir("damage");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    store
        .put("f", 1, &payload_of(&[3u8; 8000]), Compression::None, None)
        .unwrap();
    let file = walk(&dir.join("data")).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4000] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let entry = store.get(1).unwrap().unwrap();
    let err = read_frame(entry.reader().unwrap(), None).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    store.discard(1, &entry).unwrap();
    assert!(store.get(1).unwrap().is_none());
    assert!(walk(&dir.join("data")).is_empty());

    store
        .put("f", 2, &payload_of(&[3u8; 8000]), Compression::None, None)
        .unwrap();
    let file = walk(&dir.join("data")).pop().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let entry = store.get(2).unwrap().unwrap();
    assert!(
        matches!(entry.reader(), Err(Error::Corrupt(_))),
        "a short file is refused"
    );
}

#[test]
fn signed_stores_refuse_foreign_entries() {
    let dir = temp_dir("signed");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    let key = Signer::new(b"k1");
    store
        .put(
            "f",
            1,
            &payload_of(&[5u8; 10]),
            Compression::None,
            Some(&key),
        )
        .unwrap();
    let entry = store.get(1).unwrap().unwrap();
    assert!(read_frame(entry.reader().unwrap(), Some(&key)).is_ok());
    assert!(read_frame(entry.reader().unwrap(), Some(&Signer::new(b"k2"))).is_err());
}

#[test]
fn clear_removes_one_namespace_only() {
    let dir = temp_dir("clear");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    store
        .put("f", 1, &payload_of(&[1u8; 5000]), Compression::None, None)
        .unwrap();
    store
        .put("g", 2, &payload_of(&[1u8; 5000]), Compression::None, None)
        .unwrap();
    assert_eq!(store.clear(Some("f")).unwrap(), 1);
    assert!(store.get(1).unwrap().is_none());
    assert!(store.get(2).unwrap().is_some());
    assert_eq!(walk(&dir.join("data")).len(), 1);
}

/// Child role: `WORKER_DIR` and `WORKER_ID` set; writes and reads its share of keys.
fn worker(dir: &Path, id: u128) {
    let store = DiskStore::open(dir, config(64 << 20, Policy::Lru)).unwrap();
    for round in 0..60u128 {
        let key = round % 20;
        // Every process writes the same value for a key, so any reader may check it.
        let value = vec![key as u8; if key % 2 == 0 { 200 } else { 3000 }];
        if (round + id) % 3 == 0 {
            store
                .put("shared", key, &payload_of(&value), Compression::Zstd, None)
                .unwrap();
        }
        if let Some(entry) = store.get(key).unwrap() {
            let loaded = read_frame(entry.reader().unwrap(), None).unwrap();
            assert_eq!(loaded.buffers[0], value, "worker {id} key {key}");
        }
    }
}

#[test]
fn four_processes_share_one_folder() {
    if let (Ok(dir), Ok(id)) = (std::env::var("WORKER_DIR"), std::env::var("WORKER_ID")) {
        worker(Path::new(&dir), id.parse().unwrap());
        return;
    }
    let dir = temp_dir("procs");
    DiskStore::open(&dir, config(64 << 20, Policy::Lru)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "four_processes_share_one_folder", "--nocapture"])
                .env("WORKER_DIR", &dir)
                .env("WORKER_ID", id.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker failed");
    }
    let store = DiskStore::open(&dir, config(64 << 20, Policy::Lru)).unwrap();
    for key in 0..20u128 {
        let expected = vec![key as u8; if key % 2 == 0 { 200 } else { 3000 }];
        assert_eq!(load(&store, key).unwrap(), expected);
    }
}

#[test]
fn an_entry_can_be_read_twice() {
    let dir = temp_dir("twice");
    let store = DiskStore::open(&dir, config(1 << 20, Policy::Lru)).unwrap();
    store
        .put("f", 3, &payload_of(&[9u8; 4000]), Compression::None, None)
        .unwrap();
    let entry = store.get(3).unwrap().unwrap();
    for _ in 0..2 {
        let loaded = read_frame(entry.reader().unwrap(), None).unwrap();
        assert_eq!(loaded.buffers[0], vec![9u8; 4000]);
    }
}

#[test]
fn a_locked_index_gives_up_after_the_busy_timeout() {
    let dir = temp_dir("busy");
    let cfg = DiskConfig {
        busy_timeout: Duration::from_millis(200),
        ..config(1 << 20, Policy::Lru)
    };
    let store = DiskStore::open(&dir, cfg).unwrap();
    store
        .put("f", 1, &payload_of(&[1u8; 10]), Compression::None, None)
        .unwrap();
    // Another connection (as another process would) holds the write lock.
    let other = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let err = store
        .put("f", 2, &payload_of(&[2u8; 10]), Compression::None, None)
        .unwrap_err();
    assert_eq!(err, Error::Busy);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Readers are not blocked by a writer (WAL).
    assert!(load(&store, 1).is_some());
    other.execute_batch("COMMIT").unwrap();
    store
        .put("f", 2, &payload_of(&[2u8; 10]), Compression::None, None)
        .unwrap();
}
