//! Intrusive doubly linked lists over slot ids.
//!
//! Every eviction policy keeps its entries in one or more recency lists. Instead of
//! heap-allocated nodes, a [`Links`] table stores `prev`/`next` for each slot id of the
//! store, and a [`Chain`] is the head/tail/len of one list. Several chains may share one
//! `Links` table as long as every id is in at most one of them (W-TinyLFU keeps window,
//! probation and protected chains that way). All operations are O(1).
//!
//! A policy may keep its own per-id data in the same table (`Links<M>`): one entry's
//! links and data then share a cache line, where two arrays would take two (W-TinyLFU
//! keeps each entry's hash there: 16 bytes an entry, four to a line, none straddling
//! two).

/// "No slot": the end of a chain.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, Default)]
struct Link<M> {
    prev: u32,
    next: u32,
    meta: M,
}

/// One list: its ends and its length. The links themselves live in a [`Links`] table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl Chain {
    /// Number of ids in this chain.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most recently pushed-to-front id, if any.
    #[cfg(test)]
    pub(crate) fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The oldest id (the usual eviction candidate), if any.
    pub(crate) fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }
}

/// The `prev`/`next` table shared by the chains of one policy, indexed by slot id, with
/// the policy's own data `M` for each id beside them.
#[derive(Debug)]
pub(crate) struct Links<M = ()> {
    links: Vec<Link<M>>,
}

impl<M> Default for Links<M> {
    fn default() -> Self {
        Self { links: Vec::new() }
    }
}

impl<M: Copy + Default> Links<M> {
    fn grow_to(&mut self, id: u32) {
        let need = id as usize + 1;
        if self.links.len() < need {
            self.links.resize(
                need,
                Link {
                    prev: NIL,
                    next: NIL,
                    meta: M::default(),
                },
            );
        }
    }

    /// The data of `id` (the default until it is set), growing the table to hold it.
    pub(crate) fn meta_mut(&mut self, id: u32) -> &mut M {
        self.grow_to(id);
        &mut self.links[id as usize].meta
    }

    /// The data of `id`, which must have been set with [`Self::meta_mut`].
    pub(crate) fn meta(&self, id: u32) -> &M {
        &self.links[id as usize].meta
    }

    /// Puts `id` (not in any chain) at the front of `chain`.
    pub(crate) fn push_front(&mut self, chain: &mut Chain, id: u32) {
        self.grow_to(id);
        let old = chain.head;
        let link = &mut self.links[id as usize];
        link.prev = NIL;
        link.next = old;
        if old == NIL {
            chain.tail = id;
        } else {
            self.links[old as usize].prev = id;
        }
        chain.head = id;
        chain.len += 1;
    }

    /// Takes `id` out of `chain`, which must contain it.
    pub(crate) fn unlink(&mut self, chain: &mut Chain, id: u32) {
        let Link { prev, next, .. } = self.links[id as usize];
        if prev == NIL {
            chain.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            chain.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        chain.len -= 1;
    }

    /// Moves `id`, already in `chain`, to its front.
    pub(crate) fn move_to_front(&mut self, chain: &mut Chain, id: u32) {
        if chain.head != id {
            self.unlink(chain, id);
            self.push_front(chain, id);
        }
    }

    /// The id before `id`, towards the front of its chain.
    pub(crate) fn prev(&self, id: u32) -> Option<u32> {
        let p = self.links[id as usize].prev;
        (p != NIL).then_some(p)
    }

    /// The id after `id` towards the back of its chain.
    #[cfg(test)]
    pub(crate) fn next(&self, id: u32) -> Option<u32> {
        let n = self.links[id as usize].next;
        (n != NIL).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect<M: Copy + Default>(links: &Links<M>, chain: &Chain) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = chain.front();
        while let Some(id) = cur {
            out.push(id);
            cur = links.next(id);
        }
        out
    }

    #[test]
    fn push_unlink_move() {
        let mut links: Links = Links::default();
        let mut c = Chain::default();
        for id in [3, 1, 7] {
            links.push_front(&mut c, id);
        }
        assert_eq!(collect(&links, &c), vec![7, 1, 3]);
        links.move_to_front(&mut c, 3);
        assert_eq!(collect(&links, &c), vec![3, 7, 1]);
        links.unlink(&mut c, 7);
        assert_eq!(collect(&links, &c), vec![3, 1]);
        assert_eq!((c.front(), c.back(), c.len()), (Some(3), Some(1), 2));
        links.unlink(&mut c, 3);
        links.unlink(&mut c, 1);
        assert_eq!((c.front(), c.back(), c.len()), (None, None, 0));
    }

    #[test]
    fn data_stays_with_its_id_across_moves() {
        let mut links: Links<u16> = Links::default();
        let mut c = Chain::default();
        for id in [2, 5, 9] {
            *links.meta_mut(id) = id as u16 * 10;
            links.push_front(&mut c, id);
        }
        links.move_to_front(&mut c, 2);
        links.unlink(&mut c, 5);
        assert_eq!(collect(&links, &c), vec![2, 9]);
        assert_eq!(
            [*links.meta(2), *links.meta(5), *links.meta(9)],
            [20, 50, 90]
        );
        *links.meta_mut(9) /= 2;
        assert_eq!(*links.meta(9), 45);
        assert_eq!(*links.meta(0), 0, "ids never set hold the default");
    }
}
