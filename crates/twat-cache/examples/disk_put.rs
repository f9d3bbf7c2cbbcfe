//! Times inserts and lookups of small entries in a [`twat_cache::DiskStore`]:
//! `cargo run --release --example disk_put`.
use std::time::Instant;
use twat_cache::{read_frame, Compression, DiskConfig, DiskStore, Payload};

fn main() -> Result<(), twat_cache::Error> {
    let dir = std::env::temp_dir().join(format!("twat-put-{}", std::process::id()));
    let store = DiskStore::open(&dir, DiskConfig::default())?;
    let value = vec![7u8; 1000];
    let payload = Payload {
        stream: &value,
        buffers: vec![],
    };
    let n = 3000u128;
    let key = |i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    let t = Instant::now();
    for i in 0..n {
        store.put("bench", key(i), &payload, Compression::None, None)?;
    }
    println!("put: {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..100_000 {
        store.get(key(5))?;
    }
    println!(
        "get (one key): {:.2} us",
        t.elapsed().as_secs_f64() * 1e5 / 1e5 * 10.0
    );
    let t = Instant::now();
    for _ in 0..100_000 {
        let entry = store.get(key(5))?.expect("stored");
        read_frame(entry.reader()?, None)?;
    }
    println!(
        "get + read (one key): {:.2} us",
        t.elapsed().as_secs_f64() * 10.0
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
