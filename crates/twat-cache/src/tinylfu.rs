//! W-TinyLFU: a small LRU window in front of a segmented LRU, with admission by frequency.
//!
//! New entries enter the *window* (1% of the capacity). When the window overflows, its
//! oldest entry becomes a *candidate* for the main area. The main area is a segmented LRU:
//! entries arrive in *probation* and move to *protected* (80% of the main area) when they
//! are hit again. When the cache is over capacity, the candidate duels the oldest entry of
//! probation: the one the frequency sketch has seen more often stays. One-hit wonders
//! therefore never push out popular entries, which is what makes the policy strong on
//! skewed (Zipf-like) workloads, while the window keeps it responsive to bursts.

use crate::list::{Chain, Links};
use crate::sketch::FrequencySketch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Window,
    Probation,
    Protected,
}

#[derive(Debug)]
pub(crate) struct TinyLfu {
    links: Links,
    window: Chain,
    probation: Chain,
    protected: Chain,
    window_cap: usize,
    protected_cap: usize,
    region: Vec<Region>,
    hashes: Vec<u64>,
    sketch: FrequencySketch,
    /// The entry that just left the window and has not yet won or lost its duel.
    candidate: Option<u32>,
}

impl TinyLfu {
    pub(crate) fn new(capacity: usize) -> Self {
        let window_cap = (capacity / 100).max(1);
        let main_cap = capacity.saturating_sub(window_cap);
        Self {
            links: Links::default(),
            window: Chain::default(),
            probation: Chain::default(),
            protected: Chain::default(),
            window_cap,
            protected_cap: main_cap * 8 / 10,
            region: Vec::new(),
            hashes: Vec::new(),
            sketch: FrequencySketch::new(capacity),
            candidate: None,
        }
    }

    fn set_meta(&mut self, id: u32, region: Region, hash: u64) {
        let i = id as usize;
        if self.region.len() <= i {
            self.region.resize(i + 1, Region::Window);
            self.hashes.resize(i + 1, 0);
        }
        self.region[i] = region;
        self.hashes[i] = hash;
    }

    pub(crate) fn on_insert(&mut self, id: u32, hash: u64) {
        self.sketch.increment(hash);
        self.set_meta(id, Region::Window, hash);
        self.links.push_front(&mut self.window, id);
        if self.window.len() > self.window_cap {
            if let Some(oldest) = self.window.back() {
                self.links.unlink(&mut self.window, oldest);
                self.links.push_front(&mut self.probation, oldest);
                self.region[oldest as usize] = Region::Probation;
                self.candidate = Some(oldest);
            }
        }
    }

    pub(crate) fn on_hit(&mut self, id: u32) {
        let i = id as usize;
        self.sketch.increment(self.hashes[i]);
        match self.region[i] {
            Region::Window => self.links.move_to_front(&mut self.window, id),
            Region::Protected => self.links.move_to_front(&mut self.protected, id),
            Region::Probation => {
                if self.candidate == Some(id) {
                    self.candidate = None;
                }
                self.links.unlink(&mut self.probation, id);
                self.links.push_front(&mut self.protected, id);
                self.region[i] = Region::Protected;
                if self.protected.len() > self.protected_cap {
                    if let Some(demoted) = self.protected.back() {
                        self.links.unlink(&mut self.protected, demoted);
                        self.links.push_front(&mut self.probation, demoted);
                        self.region[demoted as usize] = Region::Probation;
                    }
                }
            }
        }
    }

    pub(crate) fn on_remove(&mut self, id: u32) {
        if self.candidate == Some(id) {
            self.candidate = None;
        }
        let chain = match self.region[id as usize] {
            Region::Window => &mut self.window,
            Region::Probation => &mut self.probation,
            Region::Protected => &mut self.protected,
        };
        self.links.unlink(chain, id);
    }

    pub(crate) fn victim(&mut self) -> Option<u32> {
        if let Some(candidate) = self.candidate.take() {
            let opponent = match self.probation.back() {
                Some(v) if v != candidate => Some(v),
                _ => self.protected.back(),
            };
            return Some(match opponent {
                Some(v) if self.freq(candidate) > self.freq(v) => v,
                _ => candidate,
            });
        }
        self.probation
            .back()
            .or_else(|| self.protected.back())
            .or_else(|| self.window.back())
    }

    fn freq(&self, id: u32) -> u8 {
        self.sketch.frequency(self.hashes[id as usize])
    }
}
