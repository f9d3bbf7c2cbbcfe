//! A folder's generation table: every removal or replacement of an entry, by any
//! process, leaves the copies stamped before it stale.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twat_cache::{ByteStore, DiskConfig, DiskStore, Payload, Value};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twat-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn put(store: &DiskStore, key: u128, bytes: &[u8]) {
    let payload = Payload {
        stream: bytes,
        buffers: vec![],
    };
    store.put_value("ns", key, &Value::new(&payload)).unwrap();
}

#[test]
fn every_removal_and_replacement_makes_copies_stale() {
    let dir = temp_dir("ops");
    let config = DiskConfig {
        max_bytes: 20_000,
        inline_max: 1024,
        ..DiskConfig::default()
    };
    let store = DiskStore::open(&dir, config).unwrap();
    let gens = store.generations().clone();
    put(&store, 1, b"one");
    type Op = Box<dyn Fn(&DiskStore)>;
    let ops: Vec<(&str, Op)> = vec![
        ("overwrite", Box::new(|s| put(s, 1, b"uno"))),
        ("remove", Box::new(|s| assert!(s.remove(1).unwrap()))),
        (
            "clear",
            Box::new(|s| {
                put(s, 1, b"one");
                let stamp = s.generations().stamp(1).unwrap();
                s.clear(Some("ns")).unwrap();
                assert!(!s.generations().holds(1, stamp));
            }),
        ),
    ];
    for (what, op) in ops {
        put(&store, 1, b"one");
        let stamp = gens.stamp(1).unwrap();
        assert!(gens.holds(1, stamp));
        op(&store);
        assert!(!gens.holds(1, stamp), "{what} left a copy standing");
    }
    // An eviction: filling the folder past its limit pushes key 1 out.
    put(&store, 1, b"one");
    let stamp = gens.stamp(1).unwrap();
    let big = vec![7u8; 5_000];
    for k in 10..20u128 {
        let payload = Payload {
            stream: b"v",
            buffers: vec![&big],
        };
        store.put_value("ns", k, &Value::new(&payload)).unwrap();
    }
    assert!(store.get(1).unwrap().is_none(), "evicted");
    assert!(!gens.holds(1, stamp), "an eviction left a copy standing");
    // An expiry purged by another write.
    let payload = Payload {
        stream: b"short",
        buffers: vec![],
    };
    let value = Value {
        ttl: Some(Duration::from_millis(20)),
        ..Value::new(&payload)
    };
    store.put_value("ns", 2, &value).unwrap();
    let stamp = gens.stamp(2).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    assert!(store.purge_expired().unwrap() >= 1);
    assert!(!gens.holds(2, stamp), "an expiry left a copy standing");
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

/// The other process of `a_removal_in_another_process_is_seen_here`.
fn remover(dir: &Path) {
    let store = DiskStore::open(dir, DiskConfig::default()).unwrap();
    assert!(ByteStore::remove(&store, "ns", 5).unwrap());
}

#[test]
fn a_removal_in_another_process_is_seen_here() {
    if let Ok(dir) = std::env::var("GEN_REMOVER_DIR") {
        remover(Path::new(&dir));
        return;
    }
    let dir = temp_dir("procs");
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    put(&store, 5, b"five");
    let stamp = store.generations().stamp(5).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_removal_in_another_process_is_seen_here",
            "--test-threads=1",
        ])
        .env("GEN_REMOVER_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!store.generations().holds(5, stamp));
    assert!(store.get(5).unwrap().is_none());
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
