//! A folder seen from outside its caches (what `twat-cache` does): totals folded from
//! several tallies, selections removed in batches, eviction to a size, verification of
//! damaged and signed entries, and the files killed writers leave.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use twat_cache::{
    fold_all, ByteStore, Compression, Counter, DiskConfig, DiskStore, Payload, Selection, Signer,
    Tally, Value, Verdict,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twat-admin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn put(store: &DiskStore, ns: &str, key: u128, bytes: &[u8]) {
    let payload = Payload {
        stream: bytes,
        buffers: vec![],
    };
    store.put_value(ns, key, &Value::new(&payload)).unwrap();
}

fn small_files() -> DiskConfig {
    DiskConfig {
        inline_max: 16,
        ..DiskConfig::default()
    }
}

#[test]
fn totals_are_the_sum_of_every_tally_folded_into_the_folder() {
    let dir = temp_dir("totals");
    let a = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let b = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let (ta, tb) = (Tally::new("f"), Tally::new("f"));
    ByteStore::track(&a, &ta);
    ByteStore::track(&b, &tb);
    // Known to the folder from its first use, with nothing counted yet.
    let known = a
        .shared_counts("f")
        .unwrap()
        .expect("tracked caches are listed");
    assert!(known.is_zero());
    assert_eq!(a.shared_counts("never-used").unwrap(), None);
    ta.add(Counter::Hits, 3);
    ta.add(Counter::Misses, 1);
    tb.add(Counter::Hits, 4);
    fold_all();
    let all = b.shared_counts("f").unwrap().expect("folded");
    assert_eq!((all[Counter::Hits], all[Counter::Misses]), (7, 1));
    assert!(ta.unfolded().is_zero());
    // Folding again adds only what was counted since.
    tb.add(Counter::Misses, 2);
    fold_all();
    fold_all();
    let all = a.shared_counts("f").unwrap().unwrap();
    assert_eq!((all[Counter::Hits], all[Counter::Misses]), (7, 3));
    assert_eq!(a.reset_counts(Some("f")).unwrap(), 1);
    assert!(a.shared_counts("f").unwrap().unwrap().is_zero());
    drop((a, b));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_tally_whose_cache_is_gone_is_still_folded() {
    let dir = temp_dir("gone");
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    let tally = Tally::new("short-lived");
    ByteStore::track(&store, &tally);
    tally.add(Counter::Hits, 5);
    drop(tally);
    fold_all();
    let all = store.shared_counts("short-lived").unwrap().unwrap();
    assert_eq!(all[Counter::Hits], 5);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn evictions_are_counted_for_the_cache_whose_entry_went() {
    let dir = temp_dir("evict");
    let config = DiskConfig {
        max_bytes: 2_000,
        ..DiskConfig::default()
    };
    let store = DiskStore::open(&dir, config).unwrap();
    let victim_tally = Tally::new("victim");
    ByteStore::track(&store, &victim_tally);
    for k in 0..5 {
        put(&store, "victim", k, &[1u8; 300]);
    }
    for k in 10..15 {
        put(&store, "newcomer", k, &[2u8; 300]);
    }
    let evicted = victim_tally.counts()[Counter::Evictions];
    assert!(evicted >= 3, "{evicted}");
    fold_all();
    let caches = store.caches().unwrap();
    let victim = caches.iter().find(|c| c.ns == "victim").unwrap();
    assert_eq!(victim.counts.unwrap()[Counter::Evictions], evicted);
    assert_eq!(victim.entries, 5 - evicted);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_selection_is_removed_in_batches_and_the_total_stays_right() {
    let dir = temp_dir("batches");
    let store = DiskStore::open(&dir, small_files()).unwrap();
    for k in 0..50u128 {
        put(
            &store,
            if k % 2 == 0 { "even" } else { "odd" },
            k << 100 | k,
            &[7u8; 40],
        );
    }
    drop(store);
    let folder = DiskStore::open_existing(&dir).unwrap();
    let even = Selection {
        ns: Some("even".into()),
        ..Selection::default()
    };
    assert_eq!(folder.measure(&even).unwrap().0, 25);
    let (mut removed, mut after, mut rounds) = (0, None, 0);
    loop {
        let b = folder.remove_batch(&even, after, 4).unwrap();
        removed += b.removed;
        rounds += 1;
        if b.removed < 4 {
            break;
        }
        after = b.next;
    }
    assert_eq!((removed, rounds), (25, 7));
    let caches = folder.caches().unwrap();
    assert_eq!(caches.len(), 1);
    assert_eq!(caches[0].ns, "odd");
    assert_eq!(folder.folder_bytes().unwrap(), caches[0].bytes);
    let files = walk(&dir.join("data"));
    assert_eq!(files, 25, "each removed entry's file went too");
    // A key prefix names entries by the first hex digits of their keys.
    let prefix = Selection {
        key_prefix: Some(format!("{:032x}", 3u128 << 100 | 3)[..10].to_owned()),
        ..Selection::default()
    };
    assert_eq!(folder.measure(&prefix).unwrap().0, 1);
    let bad = Selection {
        key_prefix: Some("xyz".into()),
        ..Selection::default()
    };
    assert!(folder.measure(&bad).is_err());
    drop(folder);
    std::fs::remove_dir_all(&dir).ok();
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn eviction_to_a_size_follows_the_policy() {
    let dir = temp_dir("size");
    let store = DiskStore::open(&dir, DiskConfig::default()).unwrap();
    for k in 0..10 {
        put(&store, "f", k, &[0u8; 1000]);
    }
    let total = store.folder_bytes().unwrap();
    let (n, bytes) = store.eviction_plan(total / 2).unwrap();
    assert!(n >= 5 && bytes >= total / 2, "{n} {bytes} {total}");
    let mut gone = 0;
    loop {
        let b = store.evict_batch(total / 2, 2).unwrap();
        if b.removed == 0 {
            break;
        }
        gone += b.removed;
    }
    assert_eq!(gone, n);
    assert!(store.folder_bytes().unwrap() <= total / 2);
    // Least recently used first: the first keys written went.
    assert!(store.get(0).unwrap().is_none());
    assert!(store.get(9).unwrap().is_some());
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn verify_finds_damage_and_checks_signatures() {
    let dir = temp_dir("verify");
    let store = DiskStore::open(&dir, small_files()).unwrap();
    put(&store, "plain", 1, &[5u8; 500]);
    put(&store, "plain", 2, &[6u8; 500]);
    let signer = Signer::new(b"secret");
    let payload = Payload {
        stream: b"signed value, long enough for a file",
        buffers: vec![],
    };
    let signed = Value {
        payload: &payload,
        compression: Compression::None,
        signer: Some(&signer),
        ttl: None,
        grace: twat_cache::Grace::None,
    };
    store.put_value("signed", 3, &signed).unwrap();

    let sound = |v: Verdict| matches!(v, Verdict::Sound { .. });
    assert!(sound(store.verify(1, None).unwrap()));
    assert_eq!(
        store.verify(3, None).unwrap(),
        Verdict::Sound {
            signed: true,
            signature_checked: false
        }
    );
    assert_eq!(
        store.verify(3, Some(&signer)).unwrap(),
        Verdict::Sound {
            signed: true,
            signature_checked: true
        }
    );
    // An unsigned entry is checked as written, with or without a secret.
    assert!(sound(store.verify(1, Some(&signer)).unwrap()));
    let wrong = Signer::new(b"wrong");
    assert!(matches!(
        store.verify(3, Some(&wrong)).unwrap(),
        Verdict::Damaged(_)
    ));

    // Flip one byte of entry 2's file.
    let entry = store.get(2).unwrap().unwrap();
    let path = match &entry.source {
        twat_cache::EntrySource::File { path, .. } => path.clone(),
        _ => panic!("a file entry"),
    };
    drop(entry);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[300] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    match store.verify(2, None).unwrap() {
        Verdict::Damaged(why) => assert!(why.contains("checksum"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !store.remove_damaged(1, None).unwrap(),
        "a sound entry stays"
    );
    assert!(store.remove_damaged(2, None).unwrap());
    assert_eq!(store.verify(2, None).unwrap(), Verdict::Gone);
    assert!(!path.exists());
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn leftovers_of_dead_writers_go_and_live_ones_stay() {
    let dir = temp_dir("leftovers");
    // Opening a store asks the background thread to sweep the folder's orphans, at a
    // time of its choosing: the leftovers below must be planted after that sweep, or it
    // may take one of them first. An old orphan planted before the open tells when it
    // has run.
    let bucket = dir.join("data").join("ab");
    std::fs::create_dir_all(&bucket).unwrap();
    let probe = bucket.join(format!("ab{}-{}.twc", "0".repeat(30), "2".repeat(16)));
    let file = std::fs::File::create(&probe).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let store = DiskStore::open(&dir, small_files()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while probe.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the open's sweep never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    put(&store, "f", 1, &[1u8; 100]);
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let tmp = dir.join("tmp");
    let dead_part = tmp.join(format!("{dead}-0-0.part"));
    let live_part = tmp.join(format!("{}-0-0.part", std::process::id()));
    std::fs::write(&dead_part, b"half").unwrap();
    std::fs::write(&live_part, b"being written").unwrap();
    // An orphan in data/ (its writer died between the rename and the commit), old enough.
    let orphan = bucket.join(format!("ab{}-{}.twc", "0".repeat(30), "1".repeat(16)));
    let file = std::fs::File::create(&orphan).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    assert_eq!(store.leftovers(false).unwrap().0, 2);
    assert!(dead_part.exists() && orphan.exists(), "only counted");
    assert_eq!(store.leftovers(true).unwrap().0, 2);
    assert!(!dead_part.exists() && !orphan.exists());
    assert!(live_part.exists());
    assert!(store.get(1).unwrap().is_some());
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_that_is_not_a_cache_is_refused_and_left_alone() {
    let dir = temp_dir("plain");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"keep").unwrap();
    let refused = DiskStore::open_existing(&dir);
    assert!(matches!(
        refused,
        Err(twat_cache::Error::InvalidConfig { param: "dir", .. })
    ));
    std::fs::write(dir.join("index.sqlite"), b"not a database").unwrap();
    assert!(DiskStore::open_existing(&dir).is_err());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["index.sqlite", "notes.txt"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_arc_tally_is_counted_by_its_methods() {
    let t: Arc<Tally> = Tally::new("x");
    t.add(Counter::Misses, 2);
    assert!(t.take_one(Counter::Misses));
    t.add(Counter::Hits, 1);
    assert_eq!(t.counts()[Counter::Misses], 1);
    t.reset();
    assert!(t.counts().is_zero());
}
