//! `#[mcache]` on a recursive function, a fallible one and a method, and `#[bcache]`
//! keeping results in a folder: `cargo run --example macros` (run by `make test`).

use std::time::Instant;

use twat_cache::{bcache, mcache};

/// Naive Fibonacci: exponential without a cache, linear with one.
#[mcache(max_size = 1_000)]
fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Only successes are kept: a failed lookup is tried again next time.
#[mcache(ttl = 300, policy = "tinylfu")]
fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
    text.trim().parse()
}

struct Catalog {
    prices: Vec<u32>,
}

impl Catalog {
    /// Every `Catalog` shares this cache (`&self` is not part of the key).
    #[mcache]
    fn total(&self, items: &[usize]) -> u32 {
        items.iter().map(|&i| self.prices[i]).sum()
    }
}

/// Kept in `$TWAT_CACHE_DIR/examples.word_lengths` (or `~/.cache/twat_cache/...`),
/// shared by every run and every process of this program.
#[bcache(dir = "examples.word_lengths", ttl = 3600)]
fn word_lengths(text: &str) -> Vec<usize> {
    text.split_whitespace().map(str::len).collect()
}

fn main() {
    let started = Instant::now();
    let f = fib(90);
    println!(
        "fib(90) = {f} in {:?}: {:?}",
        started.elapsed(),
        fib_cache().stats()
    );

    assert!(parse_port("80x").is_err());
    assert_eq!(parse_port(" 8080 "), Ok(8080));
    assert_eq!(parse_port(" 8080 "), Ok(8080));
    println!(
        "parse_port: {} entry kept (the error was not)",
        parse_port_cache().len()
    );

    let catalog = Catalog {
        prices: vec![5, 7, 11],
    };
    assert_eq!(catalog.total(&[0, 2]), 16);
    assert_eq!(catalog.total(&[0, 2]), 16);
    println!("Catalog::total: {:?}", Catalog::total_cache().stats());

    let lengths = word_lengths("a folder cache outlives the process");
    assert_eq!(lengths, [1, 6, 5, 8, 3, 7]);
    assert_eq!(word_lengths("a folder cache outlives the process"), lengths);
    if let Some(cache) = word_lengths_cache() {
        println!(
            "word_lengths: {:?} (a second run of this program hits at once)",
            cache.tally().counts()
        );
    }
}
