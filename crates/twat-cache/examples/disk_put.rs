//! Times inserts and lookups of small entries in a [`twat_cache::DiskStore`].
use std::time::Instant;
use twat_cache::{Compression, DiskConfig, DiskStore, Payload};

fn main() -> Result<(), twat_cache::Error> {
    let dir = std::env::temp_dir().join(format!("twat-put-{}", std::process::id()));
    let store = DiskStore::open(&dir, DiskConfig::default())?;
    let value = vec![7u8; 700];
    let payload = Payload {
        stream: &value,
        buffers: vec![],
    };
    let n = 3000u128;
    let t = Instant::now();
    for i in 0..n {
        store.put(
            "bench",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
            &payload,
            Compression::None,
            None,
        )?;
    }
    println!("put: {:.1} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for i in 0..n {
        store.get(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))?;
    }
    println!("get: {:.1} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
