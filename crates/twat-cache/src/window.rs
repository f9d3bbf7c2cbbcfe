//! [`Window`]: W-TinyLFU's admission window, a FIFO ring of its newest entries.
//!
//! The window is where every new entry waits (1% of the capacity) before it duels for
//! a place in the main area. As a linked list it cost a cache miss per insert: the
//! entry leaving it had arrived `capacity / 100` inserts earlier, and unlinking it read
//! its links, long gone from the core's nearest cache, and wrote its neighbour's. A ring
//! of ids is one small array, always near: the oldest entry is at one end, with its
//! place in the sketch beside it, so the policy can also ask for that entry's lines one
//! insert ahead of the read.
//!
//! A hit in the window marks its entry (see `tinylfu`) instead of moving it; a marked
//! entry that comes to the end of the ring goes round again, unmarked (a second chance),
//! so the window keeps recently used entries about as an LRU list would.

use std::collections::VecDeque;

use crate::sketch::SketchKey;

#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Oldest first, with each entry's place in the sketch.
    ring: VecDeque<(u32, SketchKey)>,
}

impl Window {
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Adds a newest entry.
    pub(crate) fn push(&mut self, id: u32, key: SketchKey) {
        self.ring.push_back((id, key));
    }

    /// The oldest entry, without taking it out.
    pub(crate) fn oldest(&self) -> Option<(u32, SketchKey)> {
        self.ring.front().copied()
    }

    /// The entry that comes `n` after the oldest.
    pub(crate) fn after_oldest(&self, n: usize) -> Option<(u32, SketchKey)> {
        self.ring.get(n).copied()
    }

    /// Takes the oldest entry out.
    pub(crate) fn pop_oldest(&mut self) -> Option<(u32, SketchKey)> {
        self.ring.pop_front()
    }

    /// Takes `id` out, wherever it is, and gives its place in the sketch. Entries leave
    /// from the middle only when they are removed or expire young; expiry goes in write
    /// order, so the search starts at the oldest end, where such an entry is.
    pub(crate) fn remove(&mut self, id: u32) -> Option<SketchKey> {
        let at = self.ring.iter().position(|&(i, _)| i == id)?;
        self.ring.remove(at).map(|(_, key)| key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_and_removal_from_anywhere() {
        let mut w = Window::default();
        for id in 0..5 {
            w.push(id, SketchKey::of(u64::from(id)));
        }
        assert_eq!(w.oldest(), Some((0, SketchKey::of(0))));
        assert_eq!(w.remove(2), Some(SketchKey::of(2)));
        assert_eq!(w.remove(9), None); // not there: nothing happens
        assert_eq!(w.len(), 4);
        let order: Vec<u32> = std::iter::from_fn(|| w.pop_oldest().map(|(id, _)| id)).collect();
        assert_eq!(order, vec![0, 1, 3, 4]);
        assert_eq!(w.oldest(), None);
    }
}
