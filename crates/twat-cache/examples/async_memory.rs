//! An `async` computation behind a `MemoryCache`: callers of one missing key await one
//! computation: `cargo run --example async_memory` (run by `make test`).
//!
//! `get_or_insert_async` works on any runtime; this example has none, so it drives its
//! future with the crate's hidden `block_on_for_docs` (a dozen lines of `std`, for the
//! docs and examples); a real program awaits it on tokio, smol, async-std...

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use twat_cache::MemoryCache;

static FETCHED: AtomicUsize = AtomicUsize::new(0);

/// A future that is pending once before it is ready, as an I/O call would be.
struct OneYield(bool);

impl Future for OneYield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn fetch(page: u32) -> String {
    FETCHED.fetch_add(1, Ordering::SeqCst);
    OneYield(false).await;
    format!("<h1>page {page}</h1>")
}

fn main() -> Result<(), twat_cache::Error> {
    let cache: MemoryCache<u32, String> = MemoryCache::builder().max_size(100).build()?;
    let pages = async {
        let mut out = Vec::new();
        for page in [1, 2, 1, 1, 2, 3] {
            out.push(
                cache
                    .get_or_insert_async(page, || fetch(page), |_| true)
                    .await,
            );
        }
        out
    };
    let pages = twat_cache::block_on_for_docs(pages);
    assert_eq!(pages[2], "<h1>page 1</h1>");
    println!(
        "6 awaits of 3 pages: fetched {} times",
        FETCHED.load(Ordering::SeqCst)
    );
    assert_eq!(FETCHED.load(Ordering::SeqCst), 3);
    Ok(())
}
