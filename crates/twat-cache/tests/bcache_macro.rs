//! `#[bcache]`: typed results in a folder, shared by processes, versioned by the body.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use twat_cache::{bcache, Counter};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    scores: Vec<f64>,
}

static BUILT: AtomicUsize = AtomicUsize::new(0);

#[bcache(
    dir = "/tmp/twat-bcache-shared-test",
    name = "tests.report",
    version = "1"
)]
fn report(title: &str, n: usize) -> Report {
    BUILT.fetch_add(1, Ordering::SeqCst);
    Report {
        title: title.to_owned(),
        scores: (0..n).map(|i| i as f64 / 2.0).collect(),
    }
}

#[test]
fn a_second_process_reads_what_the_first_stored() {
    if std::env::var("BCACHE_CHILD").is_ok() {
        // In the child: the entry is there; the body does not run.
        let r = report("weekly", 4);
        assert_eq!(r.scores, [0.0, 0.5, 1.0, 1.5]);
        assert_eq!(BUILT.load(Ordering::SeqCst), 0, "read from the folder");
        return;
    }
    if let Some(cache) = report_cache() {
        cache.clear().unwrap();
    }
    assert_eq!(report("weekly", 4).title, "weekly");
    assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_reads_what_the_first_stored",
            "--test-threads=1",
        ])
        .env("BCACHE_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(report("weekly", 4).scores.len(), 4);
    assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    assert_eq!(report_cache().unwrap().tally().counts()[Counter::Hits], 1);
}

static PARSED: AtomicUsize = AtomicUsize::new(0);

#[bcache(dir = "/tmp/twat-bcache-result-test", version = "1")]
fn parse(text: &str) -> Result<u32, String> {
    PARSED.fetch_add(1, Ordering::SeqCst);
    text.parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

#[test]
fn only_ok_is_stored() {
    if let Some(cache) = parse_cache() {
        cache.clear().unwrap();
    }
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(PARSED.load(Ordering::SeqCst), 2);
    assert_eq!(parse("12"), Ok(12));
    assert_eq!(parse("12"), Ok(12));
    assert_eq!(PARSED.load(Ordering::SeqCst), 3);
    assert_eq!(
        parse_cache().unwrap().get(&("12".to_string(),)).unwrap(),
        Some(12)
    );
}

#[bcache(dir = "/nonexistent-root-for-tests/\0bad", version = "1")]
fn unusable_folder(x: u32) -> u32 {
    x + 1
}

#[test]
fn a_folder_that_cannot_be_opened_runs_the_function_uncached() {
    assert!(unusable_folder_cache().is_none());
    assert_eq!(unusable_folder(1), 2);
    assert_eq!(unusable_folder(1), 2);
}

#[test]
fn the_default_version_follows_the_body() {
    // Two functions with one name and folder but different bodies do not share entries.
    mod a {
        #[twat_cache::bcache(dir = "/tmp/twat-bcache-version-test", name = "tests.versioned")]
        pub fn f(x: u32) -> u32 {
            x + 1
        }
    }
    mod b {
        #[twat_cache::bcache(dir = "/tmp/twat-bcache-version-test", name = "tests.versioned")]
        pub fn f(x: u32) -> u32 {
            x + 2
        }
    }
    a::f_cache().unwrap().clear().unwrap();
    assert_eq!(a::f(1), 2);
    assert_eq!(
        b::f(1),
        3,
        "another body: another version, not the first one's entry"
    );
    assert_eq!(a::f(1), 2);
}
