//! A short, deterministic run of every fuzz target (`crates/twat-cache/fuzz`) on
//! random bytes and on mutations of real entries: part of `cargo test`, so that a
//! crash the fuzzer found once stays fixed. `make fuzz` runs the real fuzzer.

use twat_cache::{fuzzing, write_frame, Compression, Payload, Signer};

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn real_entries() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    for codec in [Compression::None, Compression::Zstd, Compression::Lz4] {
        for signer in [None, Some(Signer::new(b"fuzzing"))] {
            let payload = Payload {
                stream: b"a pickle stream",
                buffers: vec![&big[..1000], &[], &big],
            };
            let mut w = std::io::Cursor::new(Vec::new());
            write_frame(&mut w, &payload, codec, signer.as_ref()).unwrap();
            out.push(w.into_inner());
        }
    }
    out
}

#[test]
fn the_frame_reader_survives_random_and_mutated_entries() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        fuzzing::frame(&rng.bytes(300));
    }
    for entry in real_entries() {
        fuzzing::frame(&entry);
        for _ in 0..300 {
            let mut m = entry.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % m.len();
                m[at] = rng.next() as u8;
            }
            if rng.next() % 4 == 0 {
                m.truncate((rng.next() as usize) % m.len());
            }
            fuzzing::frame(&m);
        }
    }
}

#[test]
fn index_rows_survive_random_bytes() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        fuzzing::row(&rng.bytes(200));
    }
    let good = b"\x34ab/ab0123456789abcdef0123456789abcdef-0123456789abcdef.twc";
    fuzzing::row(good);
}

#[test]
fn the_key_encoder_is_deterministic_on_random_operations() {
    let mut rng = Rng(7);
    for _ in 0..3000 {
        fuzzing::keyhash(&rng.bytes(120));
    }
}
