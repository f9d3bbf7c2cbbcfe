//! A typed `DiskCache<K, V>` in a folder: values survive the process and are shared by
//! every process that opens the folder: `cargo run --example disk` (run by `make test`;
//! run it twice and the second run computes nothing).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use twat_cache::{Counter, DiskCache, DiskCacheBuilder};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Forecast {
    city: String,
    hourly: Vec<f32>,
}

/// Stands in for a slow call (a web service, a simulation).
fn forecast(city: &str) -> Forecast {
    std::thread::sleep(Duration::from_millis(20));
    Forecast {
        city: city.to_owned(),
        hourly: (0..24)
            .map(|h| 10.0 + (h as f32 / 3.0).sin() * 5.0)
            .collect(),
    }
}

fn main() -> Result<(), twat_cache::Error> {
    // Under $TWAT_CACHE_DIR, else ~/.cache/twat_cache, like the Python package's folders.
    let cache: DiskCache<String, Forecast> =
        DiskCacheBuilder::in_cache_dir("examples", "examples.forecast")
            .ttl(Duration::from_secs(3600))
            .max_bytes(10 << 20)
            .version("1") // bump it when `forecast` changes what it returns
            .open()?;
    let cities = ["Lisbon", "Oslo", "Quito"];
    for round in ["first", "second"] {
        let t = Instant::now();
        for city in cities {
            let f = cache.get_or_insert_with(&city.to_string(), || forecast(city));
            assert_eq!(f.city, city);
            assert_eq!(f.hourly.len(), 24);
        }
        println!("{round} round: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    let counts = cache.tally().counts();
    println!(
        "hits {}, misses {} (a second run of this example misses nothing)",
        counts[Counter::Hits],
        counts[Counter::Misses]
    );
    assert!(counts[Counter::Hits] >= 3);
    Ok(())
}
