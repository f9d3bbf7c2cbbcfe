//! The bookkeeping behind each [`Policy`]: which slot id to give up next.
//!
//! A policy sees only slot ids (and key hashes for W-TinyLFU), never keys or values, so
//! this module is not generic and every policy is O(1) per operation.

use crate::lfu::Lfu;
use crate::list::{Chain, Links};
use crate::tinylfu::TinyLfu;
use crate::Policy;

// W-TinyLFU's state is held inline, not boxed, though it makes this enum a few hundred
// bytes (one per cache): a hit then reaches the policy without first loading the box's
// pointer, a dependent load on the path (warm hit 10.3-10.5 -> 9.7-9.9 ns).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Eviction {
    /// No size bound: nothing is ever evicted, so nothing is tracked.
    Unbounded,
    /// LRU (`move_on_hit`) or FIFO.
    Recency {
        links: Links,
        chain: Chain,
        move_on_hit: bool,
    },
    Lfu(Lfu),
    Random(Random),
    TinyLfu(TinyLfu),
}

impl Eviction {
    pub(crate) fn new(policy: Policy, max_size: Option<usize>) -> Self {
        let Some(capacity) = max_size else {
            return Eviction::Unbounded;
        };
        match policy {
            Policy::Lru | Policy::Fifo => Eviction::Recency {
                links: Links::default(),
                chain: Chain::default(),
                move_on_hit: policy == Policy::Lru,
            },
            Policy::Lfu => Eviction::Lfu(Lfu::default()),
            Policy::Rr => Eviction::Random(Random::new()),
            Policy::TinyLfu => Eviction::TinyLfu(TinyLfu::new(capacity)),
        }
    }

    pub(crate) fn on_insert(&mut self, id: u32, hash: u64) {
        match self {
            Eviction::Unbounded => {}
            Eviction::Recency { links, chain, .. } => links.push_front(chain, id),
            Eviction::Lfu(p) => p.insert(id),
            Eviction::Random(p) => p.insert(id),
            Eviction::TinyLfu(p) => p.on_insert(id, hash),
        }
    }

    #[inline(always)]
    pub(crate) fn on_hit(&mut self, id: u32) {
        match self {
            Eviction::Recency {
                links,
                chain,
                move_on_hit: true,
            } => links.move_to_front(chain, id),
            Eviction::Lfu(p) => p.hit(id),
            Eviction::TinyLfu(p) => p.on_hit(id),
            _ => {}
        }
    }

    pub(crate) fn on_remove(&mut self, id: u32) {
        match self {
            Eviction::Unbounded => {}
            Eviction::Recency { links, chain, .. } => links.unlink(chain, id),
            Eviction::Lfu(p) => p.remove(id),
            Eviction::Random(p) => p.remove(id),
            Eviction::TinyLfu(p) => p.on_remove(id),
        }
    }

    /// Whether room is made before a new entry goes in (so it cannot be its own victim).
    /// W-TinyLFU instead admits first and then lets the newcomer duel for its place.
    pub(crate) fn evicts_before_insert(&self) -> bool {
        !matches!(self, Eviction::TinyLfu(_))
    }

    /// The id to evict next; the caller removes it (which calls [`Self::on_remove`]).
    pub(crate) fn victim(&mut self) -> Option<u32> {
        match self {
            Eviction::Unbounded => None,
            Eviction::Recency { chain, .. } => chain.back(),
            Eviction::Lfu(p) => p.victim(),
            Eviction::Random(p) => p.victim(),
            Eviction::TinyLfu(p) => p.victim(),
        }
    }
}

/// Random replacement: a dense array of live ids, so a uniform pick is one index.
#[derive(Debug)]
pub(crate) struct Random {
    dense: Vec<u32>,
    pos: Vec<u32>,
    state: u64,
}

impl Random {
    fn new() -> Self {
        // Any odd non-zero seed works for xorshift; take one from the allocator's address
        // space and the clock so two caches do not evict in lockstep.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x2545_F491_4F6C_DD1D);
        Self {
            dense: Vec::new(),
            pos: Vec::new(),
            state: crate::sketch::mix64(t) | 1,
        }
    }

    fn insert(&mut self, id: u32) {
        let i = id as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, 0);
        }
        self.pos[i] = self.dense.len() as u32;
        self.dense.push(id);
    }

    fn remove(&mut self, id: u32) {
        let p = self.pos[id as usize] as usize;
        self.dense.swap_remove(p);
        if let Some(&moved) = self.dense.get(p) {
            self.pos[moved as usize] = p as u32;
        }
    }

    fn victim(&mut self) -> Option<u32> {
        if self.dense.is_empty() {
            return None;
        }
        // xorshift64*: fast, good enough to pick a victim.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        Some(self.dense[(r % self.dense.len() as u64) as usize])
    }
}
