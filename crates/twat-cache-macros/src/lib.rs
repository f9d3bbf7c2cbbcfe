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
    attribute(attr, item, options::Engine::Memory)
}

/// Caches a function's results in a folder, shared by processes: see `twat_cache::bcache`.
#[proc_macro_attribute]
pub fn bcache(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, options::Engine::Disk)
}

fn attribute(attr: TokenStream, item: TokenStream, engine: options::Engine) -> TokenStream {
    let expanded = options::Options::parse(attr.into(), engine).and_then(|options| {
        let function = syn::parse::<syn::ImplItemFn>(item)?;
        match engine {
            options::Engine::Memory => expand::memory(options, function),
            options::Engine::Disk => expand::disk(options, function),
        }
    });
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
