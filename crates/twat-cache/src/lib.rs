//! # twat-cache
//!
//! Caching engines in pure Rust, and the core of the `twat_cache` Python package.
//!
//! - [`MemoryCache`]: a thread-safe, bounded in-memory cache with five eviction
//!   [`Policy`]s (LRU, LFU, FIFO, random, W-TinyLFU), a per-cache TTL on a monotonic clock,
//!   counters ([`Stats`]) and single-flight loading ([`MemoryCache::get_or_insert_with`]).
//! - [`DiskStore`]: a persistent store in a folder (an SQLite index plus files for large
//!   entries) that many processes share safely, with TTL, a byte limit and eviction by
//!   policy. Entries are framed by [`write_frame`]/[`FrameReader`]: checksummed,
//!   optionally compressed (zstd, LZ4) and signed (HMAC-SHA256, [`Signer`]).
//! - [`KeyHasher`]: stable 128-bit keys from a canonical, type-tagged encoding
//!   (XXH3-128, or BLAKE3 when collision resistance matters).
//! - [`Store`] and [`Flights`]: the unsynchronized building blocks under it, with fallible
//!   key equality, for owners that bring their own lock (the Python binding does, to
//!   release the GIL while it waits).
//!
//! ```
//! use std::time::Duration;
//! use twat_cache::{MemoryCache, Policy};
//!
//! let cache: MemoryCache<u64, String> = MemoryCache::builder()
//!     .max_size(1_000)
//!     .ttl(Duration::from_secs(300))
//!     .policy(Policy::TinyLfu)
//!     .build()?;
//! let v = cache.get_or_insert_with(7, || "seven".to_string());
//! assert_eq!(v, "seven");
//! assert_eq!(cache.get(&7).as_deref(), Some("seven"));
//! # Ok::<(), twat_cache::Error>(())
//! ```

/// The README's Rust examples, compiled and run by `cargo test`.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod async_flight;
mod background;
#[cfg(feature = "redis")]
mod breaker;
mod byte_store;
mod checksum;
mod codec;
mod connection;
mod disk;
mod disk_admin;
#[cfg(feature = "serde")]
mod disk_cache;
mod disk_lease;
mod disk_stats;
mod entry;
mod error;
mod eviction;
pub mod fork;
mod freshness;
#[doc(hidden)]
pub mod fuzzing;
mod generations;
mod index;
mod keyhash;
mod lfu;
mod list;
mod lock;
mod memory;
mod parallel;
mod policy;
mod prefetch;
mod reader;
#[cfg(feature = "redis")]
mod redis_stats;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
mod redis_tracking;
#[cfg(feature = "redis")]
mod redis_url;
#[cfg(feature = "redis")]
mod redis_wire;
mod single_flight;
mod sketch;
mod stats;
mod store;
mod tally;
mod tinylfu;
mod window;

pub use byte_store::{ByteStore, Health, Lease, Value};
pub use codec::{write_frame, write_frame_until, Compression, Header, Payload, Signer, HEADER_LEN};
pub use disk::{
    DiskConfig, DiskStore, Entry, EntrySource, DEFAULT_BUSY_TIMEOUT, DEFAULT_INLINE_MAX,
    DEFAULT_MAX_BYTES, DISK_POLICIES,
};
pub use disk_admin::{Batch, CacheSummary, EntryInfo, Selection, Verdict};
#[cfg(feature = "serde")]
pub use disk_cache::{cache_dir, DiskCache, DiskCacheBuilder};
pub use error::Error;
pub use freshness::{fresh_left, stale_for, Grace, Lifetime};
pub use generations::{Generations, Stamp, BUCKETS};
pub use keyhash::{KeyDigest, KeyHasher, Tag, KEY_FORMAT};
pub use memory::{MemoryCache, MemoryCacheBuilder, DEFAULT_MAX_SIZE};
pub use policy::Policy;
pub use reader::{
    check_frame, read_frame, small_entry, small_stream, FrameReader, Layout, Loaded, Small,
};
#[cfg(feature = "redis")]
pub use redis_store::{
    HitRequest, RedisConfig, RedisStore, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT,
};
#[cfg(feature = "redis")]
pub use redis_tracking::stop_listeners;
#[cfg(feature = "redis")]
pub use redis_url::RedisUrl;
#[cfg(feature = "redis")]
pub use redis_wire::{Reply, Wire};
pub use single_flight::{Claim, Flight, Flights, Lead};
pub use stats::Stats;
/// Caches a function's results in a [`MemoryCache`] of its own (feature `macros`, on by
/// default).
///
/// ```
/// use twat_cache::mcache;
///
/// #[mcache(max_size = 1_000, ttl = 60, policy = "tinylfu")]
/// fn word_count(text: &str) -> usize {
///     text.split_whitespace().count()
/// }
///
/// assert_eq!(word_count("a b c"), 3);
/// assert_eq!(word_count("a b c"), 3); // a hit
/// assert_eq!(word_count_cache().stats().hits, 1);
/// assert_eq!(word_count_uncached("a b"), 2); // the body itself, never cached
/// ```
///
/// - **Options**: `max_size = N` entries (default 128), `ttl = SECONDS` (an integer or
///   float literal), `policy = "lru" | "lfu" | "fifo" | "rr" | "tinylfu"`, `key = EXPR`
///   with `key_type = TYPE` to build the key yourself, `cache_err`, `cache_none`. An
///   unknown option, or a value of the wrong kind, is a compile error that says what is
///   accepted.
/// - **Keys** are the arguments, owned: `&str` becomes `String`, `&[T]` becomes `Vec<T>`,
///   `&T` and `T` are cloned (`Clone + Hash + Eq`). On a method taking `&self` the
///   receiver is left out of the key (every instance shares the cache) unless `key = ...`
///   uses it. A `&mut` argument, `impl Trait`, a destructuring pattern and a generic
///   function are compile errors, each naming the fix.
/// - **`Result<T, E>`** caches only `Ok` and **`Option<T>`** only `Some`, unless
///   `cache_err` / `cache_none`.
/// - **Single flight**: concurrent calls with one missing key run the body once; other
///   keys never wait; a call of the function with the same key from inside its own body
///   computes instead of deadlocking.
/// - **`async fn`** works the same on any runtime (it only uses wakers): tasks of one
///   key await one computation, and a caller dropped mid-computation hands the work to
///   a waiting caller, which computes anew ([`MemoryCache::get_or_insert_async`]).
/// - **Companions**: `<fn>_cache()` returns the `&'static MemoryCache` (`stats`, `clear`,
///   `remove`, `insert`, ...), and `<fn>_uncached(...)` runs the body directly.
#[cfg(feature = "macros")]
pub use twat_cache_macros::mcache;

/// Caches a function's results in a folder that outlives the process and that many
/// processes share (a [`DiskCache`]; features `macros` and `serde`, both on by default).
///
/// ```
/// use twat_cache::bcache;
/// # std::env::set_var("TWAT_CACHE_DIR", std::env::temp_dir().join(format!("twc-doc-bcache-{}", std::process::id())));
///
/// #[bcache(dir = "geo", ttl = 86_400, version = "1")]
/// fn geocode(address: &str) -> (f64, f64) {
///     (48.85, 2.35) // imagine a web API
/// }
///
/// assert_eq!(geocode("Paris"), (48.85, 2.35));
/// assert_eq!(geocode("Paris"), (48.85, 2.35)); // read from the folder, here or in any process
/// let cache = geocode_cache().expect("the folder opened");
/// assert_eq!(cache.tally().counts()[twat_cache::Counter::Hits], 1);
/// ```
///
/// - **Options**: `dir = "..."` (relative: under `$TWAT_CACHE_DIR`, else the platform
///   cache directory and `twat_cache`, as in Python; default: the cache's name),
///   `name = "..."` (its namespace in the folder; default `module::path::function`),
///   `ttl = SECONDS`, `max_bytes = N` (the folder's limit, default 1 GiB), `policy =
///   "lru" | "lfu" | "fifo"`, `version = "..."`, `key`/`key_type`, `cache_err`,
///   `cache_none`, checked at compile time.
/// - **Version**: by default a hash of the function's own tokens, so editing its body
///   starts afresh and reformatting it or editing its comments does not.
/// - **Values and keys** are serde types (`Serialize + DeserializeOwned` values,
///   `Serialize` keys made of the arguments as in [`mcache`]); `Result` stores its `Ok`
///   value and `Option` its `Some` value, unless `cache_err` / `cache_none`.
/// - **Never breaks a call**: a folder that cannot be opened, read or written makes
///   the function run uncached (`<fn>_cache()` is then `None`, or `store_errors` counts).
/// - Not for `async fn` (it does file I/O): cache the work in a plain function.
#[cfg(all(feature = "macros", feature = "serde"))]
pub use twat_cache_macros::bcache;

/// Runs a future to completion on this thread (for the documentation's examples, which
/// have no runtime); not an API.
#[doc(hidden)]
pub fn block_on_for_docs<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

pub use store::{Removed, Store};
pub use tally::{fold_all, About, Counter, Counts, Tally, COUNTERS, FOLD_EVERY};
