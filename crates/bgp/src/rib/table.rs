//! A sorted map built for routing tables: a B+-tree of two levels. The leaves are sorted
//! runs of up to [`LEAF`] entries in one allocation each; the top level is a `BTreeMap`
//! from each leaf's lower bound to the leaf.
//!
//! Why not `BTreeMap` alone: a full table arrives in prefix order, and `BTreeMap` splits a
//! full node in the middle even when the new key goes at the end, so a table filled in
//! order sits in nodes a little over half full (≈ 61 octets a route of 32). Its search is
//! a linear scan of up to 11 keys on each of some six levels. Here a leaf filled in order
//! stays full — the next key starts a new leaf — and a search is a short walk of the top
//! level (a million routes are 4,000 leaves) and a binary search of one leaf. A key
//! inserted in the middle of a leaf moves the rest of the leaf (at most 8 KiB), and a
//! full leaf met that way is split in halves as a B-tree's would be.
//!
//! Invariants (checked by `check` in the tests): no leaf is empty or longer than
//! [`LEAF`]; each leaf is sorted; every key of a leaf is at least the leaf's bound and
//! below the next leaf's bound.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Entries a leaf holds at most (32-octet entries: 8 KiB).
pub(crate) const LEAF: usize = 256;

/// A leaf shrinks its allocation when it uses less than this share of it (1/n).
const SHRINK_BELOW: usize = 4;

#[derive(Debug, Clone)]
struct Leaf<K, V> {
    /// The keys this leaf holds: from `lo` (its key in the index) up to, not including,
    /// `hi` (the next leaf's `lo`; `None` for the last leaf).
    lo: K,
    hi: Option<K>,
    entries: Vec<(K, V)>,
}

impl<K: Ord, V> Leaf<K, V> {
    fn holds(&self, k: &K) -> bool {
        self.lo <= *k && self.hi.as_ref().is_none_or(|hi| k < hi)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Table<K, V> {
    /// Each leaf's `lo` → its slot.
    index: BTreeMap<K, usize>,
    slots: Vec<Option<Leaf<K, V>>>,
    free: Vec<usize>,
    /// The slot of the leaf used last: a table arriving in order finds its leaf here,
    /// without a search of the index.
    last: usize,
    len: usize,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            index: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            last: 0,
            len: 0,
        }
    }
}

/// What [`Table::modify`]'s closure asks for.
pub(crate) enum Change<V> {
    /// Leave the table as it is (the closure may have changed the value in place).
    Keep,
    /// Put this value in (for a key that has none; for one that has, replace it).
    Insert(V),
    /// Take the key out.
    Remove,
}

impl<K: Ord + Copy, V> Table<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn leaf(&self, slot: usize) -> &Leaf<K, V> {
        self.slots[slot]
            .as_ref()
            .expect("the index names live slots")
    }

    fn leaf_mut(&mut self, slot: usize) -> &mut Leaf<K, V> {
        self.slots[slot]
            .as_mut()
            .expect("the index names live slots")
    }

    /// The slot of the leaf whose range holds `k`, if any leaf's `lo` is at most `k`.
    fn find(&self, k: &K) -> Option<usize> {
        self.index.range(..=*k).next_back().map(|(_, s)| *s)
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        let leaf = self.leaf(self.find(k)?);
        let i = leaf.entries.binary_search_by(|(x, _)| x.cmp(k)).ok()?;
        Some(&leaf.entries[i].1)
    }

    fn add_leaf(&mut self, leaf: Leaf<K, V>) -> usize {
        let lo = leaf.lo;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(leaf);
                s
            }
            None => {
                self.slots.push(Some(leaf));
                self.slots.len() - 1
            }
        };
        self.index.insert(lo, slot);
        slot
    }

    /// Finds `k`'s place and calls `f` with its value (or `None`); carries out the change
    /// `f` returns. One search for reading, changing, inserting or removing (and none for
    /// a key in the leaf used last).
    pub(crate) fn modify<R>(
        &mut self,
        k: K,
        f: impl FnOnce(Option<&mut V>) -> (R, Change<V>),
    ) -> R {
        let hit = self
            .slots
            .get(self.last)
            .and_then(Option::as_ref)
            .is_some_and(|l| l.holds(&k));
        let slot = if hit { Some(self.last) } else { self.find(&k) };
        let Some(slot) = slot else {
            // Below every leaf (or the table is empty): nothing is here to change.
            let (r, change) = f(None);
            if let Change::Insert(v) = change {
                self.insert_first(k, v);
            }
            return r;
        };
        self.last = slot;
        // (The slot itself, not `leaf_mut`: `len` changes while the leaf is held.)
        let leaf = self.slots[slot]
            .as_mut()
            .expect("the index names live slots");
        // A key past the last is the common case of a table arriving in order.
        let at = match leaf.entries.last() {
            Some((last, _)) if *last < k => Err(leaf.entries.len()),
            _ => leaf.entries.binary_search_by(|(x, _)| x.cmp(&k)),
        };
        match at {
            Ok(i) => {
                let (r, change) = f(Some(&mut leaf.entries[i].1));
                match change {
                    Change::Keep => {}
                    Change::Insert(v) => leaf.entries[i].1 = v,
                    Change::Remove => {
                        leaf.entries.remove(i);
                        self.len -= 1;
                        if leaf.entries.is_empty() {
                            self.remove_leaf(slot);
                        } else if leaf.entries.len() < leaf.entries.capacity() / SHRINK_BELOW {
                            leaf.entries.shrink_to(leaf.entries.len() * 2);
                        }
                    }
                }
                r
            }
            Err(i) => {
                let (r, change) = f(None);
                if let Change::Insert(v) = change {
                    self.len += 1;
                    if leaf.entries.len() < LEAF {
                        leaf.entries.insert(i, (k, v));
                    } else {
                        // A full leaf. Past its end (a table arriving in order) it stays
                        // full and the key starts the next leaf; else it splits in halves.
                        let right = if i == LEAF {
                            vec![(k, v)]
                        } else {
                            let mut right = leaf.entries.split_off(LEAF / 2);
                            if i <= LEAF / 2 {
                                leaf.entries.insert(i, (k, v));
                            } else {
                                right.insert(i - LEAF / 2, (k, v));
                            }
                            right
                        };
                        let lo = right[0].0;
                        let hi = leaf.hi.replace(lo);
                        let new = self.add_leaf(Leaf {
                            lo,
                            hi,
                            entries: right,
                        });
                        if i >= LEAF / 2 {
                            self.last = new;
                        }
                    }
                }
                r
            }
        }
    }

    /// Drops an emptied leaf; the leaf before it takes over its range.
    fn remove_leaf(&mut self, slot: usize) {
        let Some(leaf) = self.slots[slot].take() else {
            return;
        };
        self.index.remove(&leaf.lo);
        self.free.push(slot);
        if let Some((_, &prev)) = self.index.range(..leaf.lo).next_back() {
            self.leaf_mut(prev).hi = leaf.hi;
        } else if let Some((&lo, &first)) = self.index.iter().next() {
            // It was the first leaf: the next one is first now, and holds what it held.
            self.index.remove(&lo);
            self.index.insert(leaf.lo, first);
            self.leaf_mut(first).lo = leaf.lo;
        }
    }

    /// Inserts `k` below every leaf: into the first leaf (whose range then starts at
    /// `k`), or as the first leaf.
    fn insert_first(&mut self, k: K, v: V) {
        self.len += 1;
        let Some((lo, first)) = self.index.pop_first() else {
            self.last = self.add_leaf(Leaf {
                lo: k,
                hi: None,
                entries: vec![(k, v)],
            });
            return;
        };
        let leaf = self.leaf_mut(first);
        if leaf.entries.len() < LEAF {
            leaf.lo = k;
            leaf.entries.insert(0, (k, v));
            self.index.insert(k, first);
        } else {
            self.index.insert(lo, first);
            self.add_leaf(Leaf {
                lo: k,
                hi: Some(lo),
                entries: vec![(k, v)],
            });
        }
    }

    /// The entries with keys in `r`, in order.
    pub(crate) fn range(&self, r: RangeInclusive<K>) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (lo, hi) = r.into_inner();
        // From the leaf holding `lo` (or the first, if `lo` is below every leaf).
        let from = self
            .index
            .range(..=lo)
            .next_back()
            .or_else(|| self.index.iter().next())
            .map(|(b, _)| *b);
        from.into_iter()
            .flat_map(move |from| self.index.range(from..))
            .flat_map(|(_, s)| self.leaf(*s).entries.iter())
            .skip_while(move |(k, _)| *k < lo)
            .take_while(move |(k, _)| *k <= hi)
            .map(|(k, v)| (k, v))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.index
            .values()
            .flat_map(|s| self.leaf(*s).entries.iter())
            .map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<K: Ord + Copy + std::fmt::Debug, V> Table<K, V> {
        fn check(&self) {
            let mut prev: Option<K> = None;
            let mut n = 0;
            let mut next_lo: Option<K> = None;
            for (lo, slot) in self.index.iter().rev() {
                let leaf = self.leaf(*slot);
                assert_eq!(leaf.lo, *lo);
                assert_eq!(
                    leaf.hi, next_lo,
                    "leaf at {lo:?} ends where the next starts"
                );
                next_lo = Some(*lo);
            }
            for (lo, slot) in &self.index {
                let leaf = self.leaf(*slot);
                let e = &leaf.entries;
                assert!(!e.is_empty() && e.len() <= LEAF, "leaf at {lo:?}");
                for (k, _) in e {
                    assert!(leaf.holds(k), "{k:?} outside its leaf at {lo:?}");
                    assert!(prev.is_none_or(|p| p < *k), "{k:?} out of order");
                    prev = Some(*k);
                }
                n += e.len();
            }
            assert_eq!(n, self.len);
            let live = self.slots.iter().filter(|s| s.is_some()).count();
            assert_eq!(live, self.index.len());
            assert_eq!(live + self.free.len(), self.slots.len());
        }
    }

    fn insert(t: &mut Table<u64, u64>, k: u64, v: u64) {
        t.modify(k, |_| ((), Change::Insert(v)));
    }

    fn remove(t: &mut Table<u64, u64>, k: u64) -> Option<u64> {
        t.modify(k, |v| match v {
            Some(v) => (Some(*v), Change::Remove),
            None => (None, Change::Keep),
        })
    }

    #[test]
    fn keys_in_order_fill_every_leaf() {
        let mut t = Table::default();
        for k in 0..10 * LEAF as u64 {
            insert(&mut t, k, k);
        }
        t.check();
        assert_eq!(t.index.len(), 10);
        assert!(
            t.slots
                .iter()
                .flatten()
                .all(|l| l.entries.len() == LEAF && l.entries.capacity() == LEAF)
        );
    }

    #[test]
    fn keys_in_reverse_order_split_leaves_in_halves() {
        let mut t = Table::default();
        for k in (0..4 * LEAF as u64).rev() {
            insert(&mut t, k, k);
        }
        t.check();
        assert!(
            t.slots
                .iter()
                .flatten()
                .all(|l| l.entries.len() >= LEAF / 2)
        );
        assert_eq!(
            t.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            (0..4 * LEAF as u64).collect::<Vec<_>>()
        );
    }

    /// Random inserts, replacements, removals and reads against `BTreeMap`.
    #[test]
    fn behaves_as_a_sorted_map() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = Table::default();
        let mut model = BTreeMap::new();
        for round in 0..60_000 {
            // Phases of growth and of shrinking, over a key space that makes both
            // collisions and new keys common.
            let k = next() % 5_000;
            let grow = (round / 10_000) % 2 == 0;
            if next() % 3 != 0 && grow || next() % 4 == 0 {
                let v = next();
                insert(&mut t, k, v);
                model.insert(k, v);
            } else {
                assert_eq!(remove(&mut t, k), model.remove(&k));
            }
            if round % 997 == 0 {
                t.check();
                let lo = next() % 5_000;
                let hi = lo + next() % 300;
                assert!(
                    t.range(lo..=hi)
                        .map(|(k, v)| (*k, *v))
                        .eq(model.range(lo..=hi).map(|(k, v)| (*k, *v)))
                );
            }
            assert_eq!(t.get(&k), model.get(&k));
        }
        t.check();
        assert!(
            t.iter()
                .map(|(k, v)| (*k, *v))
                .eq(model.iter().map(|(k, v)| (*k, *v)))
        );
        assert_eq!(t.len(), model.len());
    }

    #[test]
    fn emptied_table_has_no_leaves_and_ranges_over_nothing() {
        let mut t = Table::default();
        for k in (0..1_000).rev() {
            insert(&mut t, k * 3, k);
        }
        for k in 0..1_000 {
            assert_eq!(remove(&mut t, k * 3), Some(k));
            assert_eq!(remove(&mut t, k * 3), None);
        }
        t.check();
        assert!(t.index.is_empty());
        assert_eq!(t.range(0..=u64::MAX).count(), 0);
        assert_eq!(t.get(&0), None);
    }

    #[test]
    fn a_range_below_every_key_starts_at_the_first_leaf() {
        let mut t = Table::default();
        for k in 100..200 {
            insert(&mut t, k, k);
        }
        assert_eq!(
            t.range(0..=102).map(|(k, _)| *k).collect::<Vec<_>>(),
            [100, 101, 102]
        );
        assert_eq!(t.range(0..=99).count(), 0);
        assert_eq!(t.range(199..=u64::MAX).count(), 1);
    }
}
