//! Stable 128-bit keys for persistent caches: a canonical, type-tagged encoding of a
//! value, hashed as it is written.
//!
//! Persistent keys must agree across processes, machines and `PYTHONHASHSEED` values,
//! so nothing here depends on memory addresses, hash seeds or insertion order. Every
//! item is written as a one-byte [`Tag`] followed by a fixed-width or length-prefixed
//! body, so two different sequences of items never produce the same byte stream.
//! Unordered collections (dicts, sets) hash each member on its own and write the
//! sorted member digests, so their order never matters.
//!
//! The Python binding walks Python objects and calls these methods
//! (`crates/twat-cache-python/src/canonical.rs`); Rust users can key anything the same way.
//!
//! ```
//! use twat_cache::KeyHasher;
//!
//! let key = |secure| {
//!     let mut h = KeyHasher::new(secure);
//!     h.str("mymodule.load");
//!     h.int(42);
//!     h.bytes(b"payload");
//!     h.finish()
//! };
//! assert_eq!(key(false), key(false));
//! assert_ne!(key(false), key(true)); // XXH3-128 and BLAKE3 are different functions
//! ```

use twox_hash::XxHash3_128;

/// Bumped whenever the encoding changes, so old entries become misses instead of
/// colliding with new ones. It is the first thing every key hashes.
pub const KEY_FORMAT: u8 = 2;

/// The type tag written before each item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Tag {
    /// `None`.
    None = 1,
    /// `True`/`False` under `typed=True` (untyped, they are ints).
    Bool = 2,
    /// An integer that fits in 64 bits.
    Int = 3,
    /// A larger integer: its little-endian two's complement bytes.
    BigInt = 4,
    /// A float that is not integral (integral floats are ints unless typed).
    Float = 5,
    /// A string, UTF-8.
    Str = 6,
    /// Bytes (and `bytearray`, which compares equal to bytes).
    Bytes = 7,
    /// A tuple: its length, then its items.
    Tuple = 8,
    /// A list: its length, then its items.
    List = 9,
    /// A dict: the sorted digests of its (key, value) pairs.
    Dict = 10,
    /// A set or frozenset: the sorted digests of its members.
    Set = 11,
    /// An array through the buffer protocol: type name, item format, shape, raw bytes.
    Array = 12,
    /// An object encoded through a named constructor: type name, then its fields
    /// (dataclasses, enums, dates, paths, decimals).
    Object = 13,
    /// A parameter name, before that parameter's value.
    Name = 14,
    /// A type, under `typed=True`.
    Type = 15,
}

/// A digest of one key: 128 bits.
pub type KeyDigest = u128;

/// Writes an encoding into XXH3-128 (fast) or BLAKE3 (collision-resistant, for
/// `secure=True`) as it goes; nothing is buffered.
pub struct KeyHasher {
    inner: Inner,
}

enum Inner {
    Fast(Box<XxHash3_128>),
    Secure(Box<blake3::Hasher>),
}

impl KeyHasher {
    /// A hasher that starts with [`KEY_FORMAT`]; BLAKE3 when `secure`.
    pub fn new(secure: bool) -> Self {
        let inner = if secure {
            Inner::Secure(Box::default())
        } else {
            Inner::Fast(Box::new(XxHash3_128::new()))
        };
        let mut h = KeyHasher { inner };
        h.raw(&[KEY_FORMAT]);
        h
    }

    /// A fresh hasher of the same kind, for one member of an unordered collection.
    pub fn child(&self) -> Self {
        KeyHasher::new(self.is_secure())
    }

    /// Whether this hasher is BLAKE3.
    pub fn is_secure(&self) -> bool {
        matches!(self.inner, Inner::Secure(_))
    }

    fn raw(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            Inner::Fast(h) => h.write(bytes),
            Inner::Secure(h) => {
                // BLAKE3 spreads large inputs over its SIMD lanes; below a few KiB the
                // plain update is as fast.
                h.update(bytes);
            }
        }
    }

    fn len(&mut self, n: usize) {
        self.raw(&(n as u64).to_le_bytes());
    }

    /// Writes a tag alone (the start of a tuple, list or object).
    pub fn tag(&mut self, tag: Tag) {
        self.raw(&[tag as u8]);
    }

    /// `None`.
    pub fn none(&mut self) {
        self.tag(Tag::None);
    }

    /// A bool kept apart from ints (typed keys).
    pub fn bool(&mut self, b: bool) {
        self.raw(&[Tag::Bool as u8, b as u8]);
    }

    /// An integer that fits in 64 bits.
    pub fn int(&mut self, v: i64) {
        self.tag(Tag::Int);
        self.raw(&v.to_le_bytes());
    }

    /// A larger integer as little-endian two's complement bytes (shortest form).
    pub fn big_int(&mut self, le_bytes: &[u8]) {
        self.tag(Tag::BigInt);
        self.len(le_bytes.len());
        self.raw(le_bytes);
    }

    /// A float. `-0.0` is written as `0.0` and every NaN alike, as Python compares them.
    pub fn float(&mut self, v: f64) {
        let v = if v == 0.0 {
            0.0
        } else if v.is_nan() {
            f64::NAN
        } else {
            v
        };
        self.tag(Tag::Float);
        self.raw(&v.to_bits().to_le_bytes());
    }

    /// A string.
    pub fn str(&mut self, s: &str) {
        self.tagged_bytes(Tag::Str, s.as_bytes());
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) {
        self.tagged_bytes(Tag::Bytes, b);
    }

    /// A parameter name (so `f(a=1, b=2)` and a call binding the values the other way
    /// round differ).
    pub fn name(&mut self, s: &str) {
        self.tagged_bytes(Tag::Name, s.as_bytes());
    }

    /// A type's qualified name (typed keys).
    pub fn type_name(&mut self, s: &str) {
        self.tagged_bytes(Tag::Type, s.as_bytes());
    }

    fn tagged_bytes(&mut self, tag: Tag, b: &[u8]) {
        self.tag(tag);
        self.len(b.len());
        self.raw(b);
    }

    /// The start of a sequence (`Tag::Tuple`, `Tag::List`) or object (`Tag::Object`,
    /// followed by its type name): its tag and how many items follow.
    pub fn begin(&mut self, tag: Tag, len: usize) {
        self.tag(tag);
        self.len(len);
    }

    /// An unordered collection (`Tag::Dict`, `Tag::Set`) from its members' digests
    /// (each made with [`KeyHasher::child`]); they are sorted here.
    pub fn unordered(&mut self, tag: Tag, mut digests: Vec<KeyDigest>) {
        digests.sort_unstable();
        self.begin(tag, digests.len());
        for d in digests {
            self.raw(&d.to_le_bytes());
        }
    }

    /// An array: its type name, item format (as the buffer protocol gives it), shape,
    /// then its raw bytes in C order. Hashing runs at memory speed.
    pub fn array(&mut self, type_name: &str, format: &str, shape: &[usize], data: &[u8]) {
        self.tag(Tag::Array);
        self.str(type_name);
        self.str(format);
        self.len(shape.len());
        for &d in shape {
            self.len(d);
        }
        self.len(data.len());
        match &mut self.inner {
            // Large buffers go over every core: one core alone is far from memory speed.
            // BLAKE3 has a tree mode for this; XXH3 hashes fixed-size chunks (so the key
            // does not depend on the number of cores) and then their digests in order.
            Inner::Secure(h) if data.len() >= PARALLEL_MIN => {
                crate::parallel::install(|parallel| {
                    if parallel {
                        h.update_rayon(data);
                    } else {
                        h.update(data);
                    }
                });
            }
            Inner::Fast(h) if data.len() >= PARALLEL_MIN => {
                use rayon::prelude::*;
                let digests: Vec<u128> = crate::parallel::install(|parallel| {
                    if parallel {
                        data.par_chunks(CHUNK).map(XxHash3_128::oneshot).collect()
                    } else {
                        data.chunks(CHUNK).map(XxHash3_128::oneshot).collect()
                    }
                });
                for d in digests {
                    h.write(&d.to_le_bytes());
                }
            }
            _ => self.raw(data),
        }
    }

    /// The 128-bit digest.
    pub fn finish(self) -> KeyDigest {
        match self.inner {
            Inner::Fast(h) => h.finish_128(),
            Inner::Secure(h) => {
                let out = h.finalize();
                let mut first = [0u8; 16];
                first.copy_from_slice(&out.as_bytes()[..16]);
                u128::from_le_bytes(first)
            }
        }
    }
}

/// Arrays at least this large are hashed on several cores.
const PARALLEL_MIN: usize = 1 << 20;
/// The chunk size of the parallel XXH3 mode (part of the key format).
const CHUNK: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(secure: bool, f: impl Fn(&mut KeyHasher)) -> KeyDigest {
        let mut h = KeyHasher::new(secure);
        f(&mut h);
        h.finish()
    }

    #[test]
    fn framing_keeps_items_apart() {
        for secure in [false, true] {
            let a = digest(secure, |h| {
                h.str("ab");
                h.str("c");
            });
            let b = digest(secure, |h| {
                h.str("a");
                h.str("bc");
            });
            assert_ne!(a, b);
            assert_ne!(digest(secure, |h| h.int(1)), digest(secure, |h| h.str("1")));
        }
    }

    #[test]
    fn unordered_ignores_order_and_zero_signs() {
        let d1 = vec![3u128, 1, 2];
        let d2 = vec![2u128, 3, 1];
        assert_eq!(
            digest(false, |h| h.unordered(Tag::Dict, d1.clone())),
            digest(false, |h| h.unordered(Tag::Dict, d2.clone()))
        );
        assert_eq!(
            digest(true, |h| h.float(-0.0)),
            digest(true, |h| h.float(0.0))
        );
    }

    #[test]
    fn large_arrays_hash_the_same_in_parallel() {
        let data = vec![7u8; (PARALLEL_MIN * 3) + 5];
        let mut a = data.clone();
        a[PARALLEL_MIN * 2] = 8;
        for secure in [false, true] {
            let key = |d: &[u8]| {
                digest(secure, |h| {
                    h.array("numpy.ndarray", "<d", &[d.len() / 8], d)
                })
            };
            assert_eq!(key(&data), key(&data));
            assert_ne!(key(&data), key(&a));
        }
    }
}
