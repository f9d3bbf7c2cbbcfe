//! # twat-cache
//!
//! Caching engines in pure Rust, and the core of the `twat_cache` Python package.
//!
//! - [`MemoryCache`]: a thread-safe, bounded in-memory cache with five eviction
//!   [`Policy`]s (LRU, LFU, FIFO, random, W-TinyLFU), a per-cache TTL on a monotonic clock,
//!   counters ([`Stats`]) and single-flight loading ([`MemoryCache::get_or_insert_with`]).
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

mod error;
mod eviction;
mod list;
mod memory;
mod policy;
mod single_flight;
mod sketch;
mod stats;
mod store;
mod tinylfu;

pub use error::Error;
pub use memory::{MemoryCache, MemoryCacheBuilder, DEFAULT_MAX_SIZE};
pub use policy::Policy;
pub use single_flight::{Claim, Flight, Flights, Lead};
pub use stats::Stats;
pub use store::{Removed, Store};
