//! `#[mcache]` on a recursive function, a fallible one and a method:
//! `cargo run --example macros` (run by `make test`).

use std::time::Instant;

use twat_cache::mcache;

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
}
