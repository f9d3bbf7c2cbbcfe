//! [`prefetch`]: asks the CPU to start loading a cache line that the caller will read
//! later, so the load overlaps other work instead of stalling it.
//!
//! W-TinyLFU reads one line of its frequency sketch per miss, at a random place in a
//! table that outgrows the core's caches for large capacities (640 KiB for 10,000
//! entries): the count of the entry leaving the window. Which entries leave next is known
//! inserts ahead (the window is a ring, `window`), so an insert asks for the line of
//! one that leaves a few inserts later, and it waits in the core's caches for the read. A plain load cannot do it: the
//! core does not retire the work after a load until the load has completed.
//!
//! The prefetch intrinsic is `unsafe` to call (it is a `#[target_feature]` function),
//! which is why this is one of the crate's few modules that allow `unsafe`.

#![allow(unsafe_code)]

/// Hints that `value`'s cache line will be read soon: it is brought into every level of
/// the core's cache. It changes nothing the program can observe.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: `_mm_prefetch` needs SSE, which this build has (the `cfg` above). It is a
    // hint: it reads nothing the program can observe and never faults, whatever the
    // address, and this one comes from a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefetch_changes_nothing() {
        let table: Vec<u8> = (0..=255).collect();
        for i in (0..table.len()).step_by(64) {
            prefetch(&table[i]);
        }
        assert!(table.iter().enumerate().all(|(i, &b)| b as usize == i));
    }
}
