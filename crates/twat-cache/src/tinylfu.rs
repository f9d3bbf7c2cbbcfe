//! W-TinyLFU: a small LRU window in front of a segmented main area, with admission by
//! frequency.
//!
//! New entries enter the *window* (1% of the capacity). When the window overflows, its
//! oldest entry becomes a *candidate* for the main area. The main area is segmented:
//! entries arrive in *probation* and move to *protected* (80% of the main area) when they
//! are hit again. When the cache is over capacity, the candidate duels the oldest entry of
//! probation: the one the frequency sketch has seen more often stays. One-hit wonders
//! therefore never push out popular entries, which is what makes the policy strong on
//! skewed (Zipf-like) workloads, while the window keeps it responsive to bursts.
//!
//! Protected is kept as a clock rather than an LRU list: a hit there marks its entry, and
//! the hand (protected's oldest end) gives marked entries a second chance when protected
//! overflows. Most hits land in protected, and a mark writes only the entry's own line,
//! where moving it to the front wrote its two neighbours' too (the same hit ratios,
//! within 0.001; 8-20% fewer ns per access on the benchmark's Zipf traces).
//!
//! Two refinements, measured on the Rust benchmark's traces (`benches/rust`):
//! - The candidate duels the least frequent of the oldest [`DUEL_FIELD`] entries of
//!   probation, not just the oldest one, so the entry that leaves is closer to the least
//!   popular in the cache (+0.001 to +0.004 on every trace). Eight are as good as
//!   sixteen (within 0.0003) and the walk, a cache miss an entry, is half as long.
//! - Every `10 * capacity` accesses the policy compares its hit ratio with the previous
//!   stretch's. A fall of more than a quarter means the popular keys have moved: the
//!   sketch forgets most of what it knew at once (four halvings) instead of waiting for
//!   its next periodic halving, while the old favourites shut out the new ones. One-off
//!   scans do not trip it (they lower the ratio by far less); on the trace whose
//!   popularity shifts half-way it lifts the ratio from 0.585 to 0.607.

use crate::list::{Chain, Links};
use crate::sketch::{FrequencySketch, SketchKey, MAX_COUNT};
use crate::window::Window;

/// Which entry of the window an insert prefetches the lines of: this many after the
/// oldest, so they have about three inserts' time to arrive (one was too little for a
/// sketch of a megabyte: 0.4-0.6 ns per access more on the 1M-key trace).
const AHEAD: usize = 2;
/// How many of probation's oldest entries the candidate may duel (the least frequent).
const DUEL_FIELD: usize = 8;
/// Accesses between two looks at the hit ratio, per entry of capacity.
const STRETCH_PER_ENTRY: u64 = 10;
/// The relative fall of the hit ratio, from one stretch to the next, that means the
/// popular keys have moved.
const SHIFT_FALL: f64 = 0.25;
/// Halvings of the sketch when they have: it keeps a sixteenth of what it knew.
const SHIFT_HALVINGS: u32 = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Region {
    #[default]
    Window,
    Probation,
    Protected,
}

/// What a hit or a duel reads and writes of an entry, in an array of its own: four bytes
/// an entry, so for thousands of entries it stays in the core's first-level cache, where
/// the entries' links (16 bytes each, with the hash) do not. The common hit, in
/// protected, touches nothing else of the policy's.
#[derive(Clone, Copy, Debug, Default)]
struct Hot {
    region: Region,
    /// For an entry in probation, how often the sketch had seen it when it got there
    /// (refreshed at every halving). Its count rises only when it is hit, which takes
    /// it out of probation, so this is the sketch's answer without asking the sketch:
    /// a duel reads one byte per opponent instead of four counters in a cold line.
    seen: u8,
    /// Its accesses not yet added to the sketch. An insert or a hit counts here, in a
    /// byte that stays in the cache, instead of in the sketch's counters (a random line
    /// of a table of 64 bytes per entry); they reach the sketch when the entry enters
    /// probation (whose line is read then anyway) or leaves, and its frequency meanwhile
    /// is the sketch's plus these.
    pending: u8,
    /// For an entry in the window or in protected: hit since it last came round (see
    /// [`TinyLfu::leave_window`] and [`TinyLfu::make_room`]).
    referenced: bool,
}

/// How many entries of probation have each count (their [`Hot::seen`]), so a duel that
/// no entry of probation could lose is settled without walking probation at all. Most
/// candidates are seen about as often as probation's weakest, and lose: without this
/// they walked the whole field, one dependent cache miss per entry, to find no one.
#[derive(Debug)]
struct SeenCounts {
    counts: [u32; MAX_COUNT as usize + 1],
    /// Bit `f` is set while some entry of probation has the count `f`.
    present: u64,
}

const _: () = assert!(MAX_COUNT < 64, "a count is a bit of `SeenCounts::present`");

impl SeenCounts {
    fn new() -> Self {
        Self {
            counts: [0; MAX_COUNT as usize + 1],
            present: 0,
        }
    }

    fn add(&mut self, f: u8) {
        self.counts[f as usize] += 1;
        self.present |= 1 << f;
    }

    fn remove(&mut self, f: u8) {
        let c = &mut self.counts[f as usize];
        *c -= 1;
        if *c == 0 {
            self.present &= !(1 << f);
        }
    }

    /// Whether some entry of probation has a count below `f`.
    fn any_below(&self, f: u8) -> bool {
        self.present & ((1 << f) - 1) != 0
    }
}

#[derive(Debug)]
pub(crate) struct TinyLfu {
    /// The chains of the main area, with each entry's place in the sketch beside its
    /// links (set when it enters probation).
    links: Links<SketchKey>,
    hot: Vec<Hot>,
    window: Window,
    probation: Chain,
    protected: Chain,
    window_cap: usize,
    protected_cap: usize,
    sketch: FrequencySketch,
    probation_seen: SeenCounts,
    /// The entry that just left the window and has not yet dueled, with its place in
    /// the sketch. It is in probation (its region, its count in `probation_seen`) but
    /// not yet linked there: most candidates lose at once, and leave without their
    /// links ever being written (a cold line, which a store waits for as a load does).
    /// It is linked when it wins, or when the next candidate comes without a duel.
    candidate: Option<(u32, SketchKey)>,
    /// Hits and misses (inserts) in the current stretch, and its length.
    hits: u64,
    misses: u64,
    stretch: u64,
    /// The hit ratio of the previous stretch.
    last_ratio: f64,
}

impl TinyLfu {
    pub(crate) fn new(capacity: usize) -> Self {
        let window_cap = (capacity / 100).max(1);
        let main_cap = capacity.saturating_sub(window_cap);
        Self {
            links: Links::default(),
            hot: Vec::new(),
            window: Window::default(),
            probation: Chain::default(),
            protected: Chain::default(),
            window_cap,
            protected_cap: main_cap * 8 / 10,
            sketch: FrequencySketch::new(capacity),
            probation_seen: SeenCounts::new(),
            candidate: None,
            hits: 0,
            misses: 0,
            stretch: capacity.max(1) as u64 * STRETCH_PER_ENTRY,
            last_ratio: 0.0,
        }
    }

    /// Ends a stretch: if the hit ratio fell by more than [`SHIFT_FALL`], the sketch
    /// forgets most of the past.
    #[cold]
    fn end_stretch(&mut self) {
        let ratio = self.hits as f64 / (self.hits + self.misses) as f64;
        if ratio < self.last_ratio * (1.0 - SHIFT_FALL) {
            for _ in 0..SHIFT_HALVINGS {
                self.sketch.halve();
            }
            self.halve_pending(SHIFT_HALVINGS);
            self.recount_probation();
        }
        self.last_ratio = ratio;
        self.hits = 0;
        self.misses = 0;
    }

    /// Counts an access of `id`, a hit or a miss, towards the stretch and the sketch
    /// (its count waits in `pending`); after a halving, probation's counts are stale.
    #[inline]
    fn count(&mut self, id: u32, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        if self.hits + self.misses >= self.stretch {
            self.end_stretch();
        }
        let p = &mut self.hot[id as usize].pending;
        *p = p.saturating_add(1);
        if self.sketch.tick() {
            self.halve_pending(1);
            self.recount_probation();
        }
    }

    /// Pending counts follow the sketch's halvings (`times` of them).
    #[cold]
    fn halve_pending(&mut self, times: u32) {
        for h in &mut self.hot {
            h.pending >>= times;
        }
    }

    #[cold]
    fn recount_probation(&mut self) {
        self.settle_candidate();
        self.probation_seen = SeenCounts::new();
        let mut cursor = self.probation.back();
        while let Some(id) = cursor {
            let f = self.freq(id);
            self.hot[id as usize].seen = f;
            self.probation_seen.add(f);
            cursor = self.links.prev(id);
        }
    }

    /// Puts `id` in probation, adding its pending accesses to the sketch on the way
    /// (the duel needs its count from the sketch's line now, and an entry that loses
    /// the duel then leaves without touching that line again); linking it in the chain
    /// is the caller's.
    fn admit(&mut self, id: u32, key: SketchKey) {
        let hot = &mut self.hot[id as usize];
        let seen = self.sketch.add(key, hot.pending);
        *hot = Hot {
            region: Region::Probation,
            seen,
            ..Hot::default()
        };
        self.probation_seen.add(seen);
    }

    fn link_probation(&mut self, id: u32, key: SketchKey) {
        self.links.push_front(&mut self.probation, id);
        *self.links.meta_mut(id) = key;
    }

    /// Links the candidate, if one is waiting, in probation: it stays without a duel.
    fn settle_candidate(&mut self) {
        if let Some((id, key)) = self.candidate.take() {
            self.link_probation(id, key);
        }
    }

    pub(crate) fn on_insert(&mut self, id: u32, hash: u64) {
        let i = id as usize;
        if self.hot.len() <= i {
            self.hot.resize(i + 1, Hot::default());
        }
        self.hot[i] = Hot::default();
        self.count(id, false);
        self.window.push(id, SketchKey::of(hash));
        if self.window.len() > self.window_cap {
            self.leave_window();
            // The next to leave will read their counts in the sketch, a random line of a
            // table that may be far larger than the core's caches: ask for one of them
            // now, to be read without waiting when it leaves. (Asking for its bytes in
            // `hot` too measured no better: the core's line-fill buffers are the limit.)
            if let Some((_, key)) = self.window.after_oldest(AHEAD) {
                self.sketch.prefetch(key);
            }
        }
    }

    /// The window's oldest entry not hit since it came round goes to probation, as the
    /// candidate; the hit ones it passes go round again, unmarked (a second chance). One
    /// round unmarks them all, so this ends.
    fn leave_window(&mut self) {
        self.settle_candidate();
        while let Some((oldest, key)) = self.window.pop_oldest() {
            let hot = &mut self.hot[oldest as usize];
            if hot.referenced {
                hot.referenced = false;
                self.window.push(oldest, key);
            } else {
                self.admit(oldest, key);
                self.candidate = Some((oldest, key));
                return;
            }
        }
    }

    #[inline(always)]
    pub(crate) fn on_hit(&mut self, id: u32) {
        self.count(id, true);
        let hot = &mut self.hot[id as usize];
        // The window and protected are clocks, not LRU lists: a hit marks the entry, and
        // the entries are moved only when they overflow (`leave_window`, `make_room`).
        // A hit then touches its own bytes alone, not its links and its two neighbours'
        // too; that much is inlined into the store's lookup.
        if hot.region == Region::Probation {
            self.promote(id);
        } else {
            hot.referenced = true;
        }
    }

    /// Moves an entry of probation that was hit to protected.
    #[inline(never)]
    fn promote(&mut self, id: u32) {
        let hot = &mut self.hot[id as usize];
        hot.region = Region::Protected;
        hot.referenced = false;
        match self.candidate {
            Some((c, key)) if c == id => {
                self.candidate = None;
                *self.links.meta_mut(id) = key;
            }
            _ => self.links.unlink(&mut self.probation, id),
        }
        self.links.push_front(&mut self.protected, id);
        self.probation_seen.remove(hot.seen);
        if self.protected.len() > self.protected_cap {
            self.make_room();
        }
    }

    /// Demotes protected's oldest entry not hit since it last came round; the hit ones
    /// it passes go back to the front, unmarked (a second chance, as a clock's hand).
    fn make_room(&mut self) {
        while let Some(oldest) = self.protected.back() {
            let hot = &mut self.hot[oldest as usize];
            if hot.referenced {
                hot.referenced = false;
                self.links.move_to_front(&mut self.protected, oldest);
            } else {
                self.links.unlink(&mut self.protected, oldest);
                let key = *self.links.meta(oldest);
                self.admit(oldest, key);
                self.link_probation(oldest, key);
                return;
            }
        }
    }

    pub(crate) fn on_remove(&mut self, id: u32) {
        let hot = self.hot[id as usize];
        let key = match hot.region {
            Region::Window => self.window.remove(id),
            Region::Probation => {
                self.probation_seen.remove(hot.seen);
                match self.candidate {
                    // Not linked: the usual end of a candidate that lost its duel.
                    Some((c, key)) if c == id => {
                        self.candidate = None;
                        Some(key)
                    }
                    _ => {
                        self.links.unlink(&mut self.probation, id);
                        Some(*self.links.meta(id))
                    }
                }
            }
            Region::Protected => {
                self.links.unlink(&mut self.protected, id);
                Some(*self.links.meta(id))
            }
        };
        if let Some(key) = key.filter(|_| hot.pending > 0) {
            self.sketch.add(key, hot.pending);
        }
    }

    pub(crate) fn victim(&mut self) -> Option<u32> {
        if let Some((candidate, _)) = self.candidate {
            // Noted when it entered probation, this very insert (or refreshed by a
            // halving since): no need to ask the sketch again.
            let strength = self.hot[candidate as usize].seen;
            if self.probation.len() > 0 && !self.probation_seen.any_below(strength) {
                // No one in probation (the candidate aside) could lose to it. It leaves,
                // and `on_remove` forgets it.
                debug_assert!(self
                    .opponent(candidate, strength)
                    .is_none_or(|(_, f)| strength <= f));
                return Some(candidate);
            }
            return Some(match self.opponent(candidate, strength) {
                Some((v, f)) if strength > f => {
                    self.settle_candidate();
                    v
                }
                _ => candidate,
            });
        }
        self.probation
            .back()
            .or_else(|| self.protected.back())
            .or_else(|| self.window.oldest().map(|(id, _)| id))
    }

    /// Whom a candidate seen `strength` times duels, and how often that one was seen:
    /// among probation's [`DUEL_FIELD`] oldest entries, the oldest one it beats if there
    /// is one (the walk stops there), else the least frequent; protected's oldest if
    /// probation holds only the candidate. A candidate seen once (most of them: one-hit
    /// wonders) can only beat an entry the sketch has forgotten, so it meets just the
    /// oldest, which keeps the common miss cheap.
    fn opponent(&self, candidate: u32, strength: u8) -> Option<(u32, u8)> {
        let field = if strength <= 1 { 1 } else { DUEL_FIELD };
        let mut weakest: Option<(u32, u8)> = None;
        let mut seen = 0;
        let mut cursor = self.probation.back();
        while let Some(id) = cursor {
            if seen == field {
                break;
            }
            if id != candidate {
                seen += 1;
                let f = self.hot[id as usize].seen;
                if weakest.is_none_or(|(_, low)| f < low) {
                    weakest = Some((id, f));
                    if f < strength {
                        break;
                    }
                }
            }
            cursor = self.links.prev(id);
        }
        weakest.or_else(|| self.protected.back().map(|id| (id, self.freq(id))))
    }

    fn freq(&self, id: u32) -> u8 {
        self.sketch
            .frequency(*self.links.meta(id))
            .saturating_add(self.hot[id as usize].pending)
            .min(MAX_COUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_know_whether_anyone_is_weaker() {
        let mut c = SeenCounts::new();
        assert!(!c.any_below(MAX_COUNT));
        c.add(5);
        c.add(5);
        c.add(9);
        assert!(!c.any_below(5), "5 is not below 5");
        assert!(c.any_below(6));
        c.remove(5);
        assert!(c.any_below(6), "one entry of count 5 is left");
        c.remove(5);
        assert!(!c.any_below(9));
        assert!(c.any_below(MAX_COUNT));
    }

    #[test]
    fn protected_demotes_its_oldest_unhit_entry() {
        // Capacity 10: a window of 1, protected holds 7 of the main area's 9.
        let mut t = TinyLfu::new(10);
        for id in 0..9 {
            t.on_insert(id, u64::from(id));
        }
        // Probation holds 0..=7 (8 is in the window); a hit moves one to protected.
        for id in 0..7 {
            t.on_hit(id);
        }
        t.on_hit(0); // 0, protected's oldest, is hit again
        t.on_hit(7); // an eighth in protected: one goes back to probation
        let region = |t: &TinyLfu, id: u32| t.hot[id as usize].region;
        assert_eq!(region(&t, 0), Region::Protected, "0 was hit: it stays");
        assert_eq!(region(&t, 1), Region::Probation, "1 is the oldest not hit");
        assert_eq!(t.protected.len(), 7);
        assert!((2..8).all(|id| region(&t, id) == Region::Protected));
    }

    #[test]
    fn the_candidate_duels_the_weakest_of_the_oldest() {
        let mut t = TinyLfu::new(100);
        let hash = |id: u32| u64::from(id) * 1_000 + 7;
        // Window of one: each insert pushes the previous newcomer into probation, which
        // notes how often the sketch has seen it. Probation, oldest first: 0, 1, 2, 3, 4;
        // id 1 is the one seen least.
        for id in 0..6 {
            let extra = match id {
                1 => 0,
                5 => 4,
                _ => 9,
            };
            for _ in 0..extra {
                t.sketch.increment(SketchKey::of(hash(id)));
            }
            t.on_insert(id, hash(id));
        }
        // 6 pushes 5 out of the window: 5 (seen 5 times) is the candidate. The oldest
        // entry of probation (0, seen 10 times) would beat it; 1 (seen once) does not.
        t.on_insert(6, hash(6));
        assert_eq!(t.victim(), Some(1));
    }

    #[test]
    fn the_window_gives_hit_entries_a_second_chance() {
        // Capacity 300: a window of 3.
        let mut t = TinyLfu::new(300);
        for id in 0..3 {
            t.on_insert(id, u64::from(id));
        }
        t.on_hit(0);
        t.on_insert(3, 3);
        let region = |t: &TinyLfu, id: u32| t.hot[id as usize].region;
        assert_eq!(
            region(&t, 0),
            Region::Window,
            "0 was hit: it goes round again"
        );
        assert_eq!(region(&t, 1), Region::Probation, "1 is the oldest not hit");
        assert_eq!(t.candidate.map(|(id, _)| id), Some(1));
        assert_eq!(t.window.len(), 3);
        // 0 lost its mark going round, behind 2 and 3: they leave first, then 0.
        t.on_insert(4, 4);
        t.on_insert(5, 5);
        assert_eq!(t.window.len(), 3);
        assert_eq!(region(&t, 0), Region::Window);
        t.on_insert(6, 6);
        assert_eq!(region(&t, 0), Region::Probation);
    }

    #[test]
    fn a_candidate_hit_or_removed_before_its_duel_leaves_the_chains_whole() {
        // Capacity 10: a window of 1, so each insert makes the previous one the candidate,
        // counted in probation but not yet linked there.
        let mut t = TinyLfu::new(10);
        t.on_insert(0, 0);
        t.on_insert(1, 1);
        assert_eq!(t.candidate.map(|(id, _)| id), Some(0));
        assert_eq!(t.probation.len(), 0, "not linked before its duel");
        t.on_hit(0);
        assert_eq!(t.hot[0].region, Region::Protected);
        assert_eq!(t.candidate, None);
        assert_eq!(t.protected.len(), 1);
        assert_eq!(
            t.links.meta(0),
            &SketchKey::of(0),
            "its place in the sketch is kept"
        );
        assert!(
            !t.probation_seen.any_below(MAX_COUNT),
            "no longer counted in probation"
        );
        t.on_remove(0);
        assert_eq!(t.protected.len(), 0);

        t.on_insert(2, 2); // 1 becomes the candidate
        assert_eq!(t.candidate.map(|(id, _)| id), Some(1));
        t.on_remove(1);
        assert_eq!(t.candidate, None);
        assert_eq!((t.probation.len(), t.protected.len()), (0, 0));
        assert!(!t.probation_seen.any_below(MAX_COUNT));
        // A candidate that meets no duel is linked when the next one comes.
        t.on_insert(3, 3);
        t.on_insert(4, 4);
        assert_eq!(t.probation.len(), 1, "2 was linked when 3 took its place");
        assert_eq!(t.probation.back(), Some(2));
        assert_eq!(
            t.victim(),
            Some(3),
            "3, seen once, loses to 2, seen once before it"
        );
    }
}
