//! Attribute macros of [twat-cache](https://docs.rs/twat-cache), re-exported by it
//! (feature `macros`, on by default): write `use twat_cache::mcache;`.
//!
//! `#[mcache]` caches a function's results in a `twat_cache::MemoryCache` of its own:
//!
//! ```ignore
//! use twat_cache::mcache;
//!
//! #[mcache(max_size = 1_000, ttl = 60, policy = "tinylfu")]
//! fn word_count(text: &str) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! assert_eq!(word_count("a b c"), 3);
//! assert_eq!(word_count("a b c"), 3); // a hit
//! assert_eq!(word_count_cache().stats().hits, 1);
//! assert_eq!(word_count_uncached("a b"), 2); // the body, not cached
//! ```
//!
//! See the documentation of `twat_cache::mcache` for every option.

use proc_macro::TokenStream;

mod expand;
mod keys;
mod options;

/// Caches a function's results in memory: see `twat_cache::mcache`.
#[proc_macro_attribute]
pub fn mcache(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match options::Options::parse(attr.into()) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let function = match syn::parse::<syn::ImplItemFn>(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error().into(),
    };
    match expand::memory(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
