//! The entry checksum: XXH3-64 over the XXH3-64 digests of each 1 MiB chunk of the body.
//!
//! Hashing chunk by chunk gives the same result however the bytes arrive (a stream of
//! small writes, or one 100 MB buffer), and lets a large buffer be hashed on every core:
//! one core alone checks about 10 GB/s, which is a tenth of a second per gigabyte and
//! as much as the read itself. XXH3 comes from `twox-hash`, which picks AVX2 at run time.

use rayon::prelude::*;
use std::hash::Hasher as _;
use twox_hash::XxHash3_64;

/// The chunk size (part of the entry format, `codec.rs`).
const CHUNK: usize = 1 << 20;

/// A running chunked checksum.
pub(crate) struct ChunkSum {
    current: XxHash3_64,
    filled: usize,
    digests: XxHash3_64,
}

impl Default for ChunkSum {
    fn default() -> Self {
        ChunkSum {
            current: XxHash3_64::new(),
            filled: 0,
            digests: XxHash3_64::new(),
        }
    }
}

impl ChunkSum {
    /// Adds the next bytes of the body.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.filled > 0 {
            let take = (CHUNK - self.filled).min(bytes.len());
            self.current.write(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == CHUNK {
                self.close_chunk();
            }
        }
        let whole = bytes.len() / CHUNK * CHUNK;
        let (middle, tail) = bytes.split_at(whole);
        if middle.len() >= 4 * CHUNK {
            let digests: Vec<u64> = crate::parallel::install(|parallel| {
                if parallel {
                    middle.par_chunks(CHUNK).map(XxHash3_64::oneshot).collect()
                } else {
                    middle.chunks(CHUNK).map(XxHash3_64::oneshot).collect()
                }
            });
            for d in digests {
                self.digests.write(&d.to_le_bytes());
            }
        } else {
            for chunk in middle.chunks(CHUNK) {
                self.digests
                    .write(&XxHash3_64::oneshot(chunk).to_le_bytes());
            }
        }
        if !tail.is_empty() {
            self.current.write(tail);
            self.filled = tail.len();
        }
    }

    fn close_chunk(&mut self) {
        let done = std::mem::replace(&mut self.current, XxHash3_64::new());
        self.digests.write(&done.finish().to_le_bytes());
        self.filled = 0;
    }

    /// The checksum of everything added.
    pub(crate) fn digest(mut self) -> u64 {
        if self.filled > 0 {
            self.close_chunk();
        }
        self.digests.finish()
    }
}

/// The checksum of a whole body in memory (equal to a [`ChunkSum`] fed the same
/// bytes); a body of one chunk or less costs two one-shot hashes and no allocation.
pub(crate) fn checksum_of(bytes: &[u8]) -> u64 {
    if bytes.is_empty() || bytes.len() > CHUNK {
        let mut sum = ChunkSum::default();
        sum.update(bytes);
        return sum.digest();
    }
    XxHash3_64::oneshot(&XxHash3_64::oneshot(bytes).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_shot_checksum_equals_the_running_one() {
        let data: Vec<u8> = (0..(CHUNK + 10)).map(|i| (i % 241) as u8).collect();
        for len in [0, 1, 64, 4096, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 10] {
            let mut sum = ChunkSum::default();
            sum.update(&data[..len]);
            assert_eq!(checksum_of(&data[..len]), sum.digest(), "length {len}");
        }
    }

    #[test]
    fn the_checksum_does_not_depend_on_how_bytes_arrive() {
        let data: Vec<u8> = (0..(CHUNK * 6 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = {
            let mut s = ChunkSum::default();
            s.update(&data);
            s.digest()
        };
        for piece in [1, 1000, CHUNK - 1, CHUNK, 3 * CHUNK + 7] {
            let mut s = ChunkSum::default();
            for part in data.chunks(piece) {
                s.update(part);
            }
            assert_eq!(s.digest(), whole, "pieces of {piece}");
        }
        let mut changed = data.clone();
        changed[CHUNK * 5 + 3] ^= 1;
        let mut s = ChunkSum::default();
        s.update(&changed);
        assert_ne!(s.digest(), whole);
    }
}
