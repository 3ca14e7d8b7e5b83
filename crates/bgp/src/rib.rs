//! Loc-RIB: the candidate paths per prefix and the selected set — the best path and
//! the paths equal to it for ECMP (RFC 4271 §9.1.2).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use smallvec::SmallVec;

use crate::policy::Role;
use crate::wire::PathAttrs;

pub type PeerId = u32;

pub const DEFAULT_LOCAL_PREF: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    pub role: Role,
    /// Where the kernel forwards: the peer's address on the shared subnet.
    pub nexthop: Ipv4Addr,
    pub peer_router_id: Ipv4Addr,
    pub ebgp: bool,
    pub attrs: Arc<PathAttrs>,
}

impl Path {
    fn local_pref(&self) -> u32 {
        self.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }
}

/// Decision steps a–e of RFC 4271 §9.1.2.2 (after LOCAL_PREF); `Equal` means the two paths
/// may share traffic (multipath).
fn compare_multipath(a: &Path, b: &Path) -> Ordering {
    b.local_pref()
        .cmp(&a.local_pref())
        .then(a.attrs.as_path_len().cmp(&b.attrs.as_path_len()))
        .then(a.attrs.origin.cmp(&b.attrs.origin))
        .then_with(|| {
            // MED is compared only between paths from the same neighbouring AS.
            if a.attrs.first_as() == b.attrs.first_as() {
                a.attrs.med.unwrap_or(0).cmp(&b.attrs.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        .then(b.ebgp.cmp(&a.ebgp))
}

/// Full order: multipath criteria, then the tie-breakers (lowest router id, lowest
/// peer address), so the best path is deterministic.
pub fn compare(a: &Path, b: &Path) -> Ordering {
    compare_multipath(a, b)
        .then(a.peer_router_id.cmp(&b.peer_router_id))
        .then(a.nexthop.cmp(&b.nexthop))
}

/// Best path first, then every path equal to it on the multipath criteria.
pub fn select(paths: &[Path]) -> Vec<Path> {
    let mut v: Vec<Path> = paths.to_vec();
    v.sort_by(compare);
    if let Some(best) = v.first().cloned() {
        v.retain(|p| compare_multipath(p, &best) == Ordering::Equal);
    }
    v
}

/// The paths of one prefix, best first (in [`compare`] order); the first `selected` are
/// the selected set. One path, the common case, is stored inline.
#[derive(Debug, Clone, Default)]
struct Entry {
    paths: SmallVec<[Path; 1]>,
    selected: u8,
}

impl Entry {
    fn selected(&self) -> &[Path] {
        &self.paths[..self.selected as usize]
    }
}

/// The Loc-RIB: every candidate path of every prefix, and which are selected. Keyed by
/// [`key`], in prefix order: one integer comparison per step of a search.
#[derive(Debug, Default)]
pub struct LocRib {
    entries: BTreeMap<u64, Entry>,
}

/// A prefix as one integer that sorts as `Ipv4Net` does (address, then length).
fn key(n: &Ipv4Net) -> u64 {
    (u64::from(n.addr().to_bits()) << 8) | u64::from(n.prefix_len())
}

fn prefix(k: u64) -> Ipv4Net {
    Ipv4Net::new(
        std::net::Ipv4Addr::from_bits((k >> 8) as u32),
        (k & 0xFF) as u8,
    )
    .unwrap_or_default()
}

impl LocRib {
    /// Sets (or with `None` removes) `peer`'s path for `prefix`. Returns whether the
    /// selected set changed.
    pub fn set(&mut self, prefix: Ipv4Net, peer: PeerId, path: Option<Path>) -> bool {
        let k = key(&prefix);
        let e = match self.entries.entry(k) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => match path {
                // First path of a prefix: selected alone.
                Some(p) => {
                    v.insert(Entry {
                        paths: smallvec::smallvec![p],
                        selected: 1,
                    });
                    return true;
                }
                None => return false,
            },
        };
        let old: SmallVec<[Path; 1]> = e.selected().iter().cloned().collect();
        e.paths.retain(|p| p.peer != peer);
        if let Some(p) = path {
            let at = e
                .paths
                .partition_point(|q| compare(q, &p) == Ordering::Less);
            e.paths.insert(at, p);
        }
        let Some(best) = e.paths.first() else {
            self.entries.remove(&k);
            return true;
        };
        let n = e
            .paths
            .iter()
            .take_while(|p| compare_multipath(p, best) == Ordering::Equal)
            .count();
        e.selected = n.min(u8::MAX as usize) as u8;
        e.selected() != old.as_slice()
    }

    pub fn selected(&self, prefix: &Ipv4Net) -> Option<&[Path]> {
        self.entries.get(&key(prefix)).map(Entry::selected)
    }

    pub fn best(&self, prefix: &Ipv4Net) -> Option<&Path> {
        self.entries.get(&key(prefix)).and_then(|e| e.paths.first())
    }

    /// The prefixes inside `n` (itself included) with their selected paths.
    pub fn within(&self, n: &Ipv4Net) -> impl Iterator<Item = (Ipv4Net, &[Path])> {
        let last = key(&Ipv4Net::new(n.broadcast(), 32).unwrap_or(*n));
        self.entries
            .range(key(n)..=last)
            .map(|(k, e)| (prefix(*k), e.selected()))
            .filter(move |(q, _)| n.contains(q))
    }

    /// Every prefix with its selected paths, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, &[Path])> {
        self.entries.iter().map(|(k, e)| (prefix(*k), e.selected()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPathSegment, Origin};

    fn p(peer: PeerId, asns: &[u32], f: impl FnOnce(&mut PathAttrs)) -> Path {
        let mut a = PathAttrs {
            as_path: vec![AsPathSegment::Sequence(asns.to_vec())],
            ..Default::default()
        };
        f(&mut a);
        Path {
            peer,
            role: Role::Customer,
            nexthop: Ipv4Addr::new(169, 254, 0, peer as u8),
            peer_router_id: Ipv4Addr::new(10, 0, 0, peer as u8),
            ebgp: true,
            attrs: Arc::new(a),
        }
    }

    fn peers(v: &[Path]) -> Vec<PeerId> {
        v.iter().map(|p| p.peer).collect()
    }

    #[test]
    fn keys_sort_as_prefixes_do_and_convert_back() {
        let ps: Vec<Ipv4Net> = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.0.0/16",
            "10.1.0.0/16",
            "255.255.255.255/32",
        ]
        .iter()
        .map(|s| s.parse().expect("prefix"))
        .collect();
        for w in ps.windows(2) {
            assert!(key(&w[0]) < key(&w[1]), "{} < {}", w[0], w[1]);
        }
        for p in &ps {
            assert_eq!(prefix(key(p)), *p);
        }
    }

    #[test]
    fn shorter_as_path_wins() {
        let s = select(&[p(1, &[65001, 65001, 65001], |_| {}), p(2, &[65001], |_| {})]);
        assert_eq!(peers(&s), vec![2]);
    }

    #[test]
    fn equal_paths_over_two_connections_are_ecmp() {
        let s = select(&[p(1, &[65001], |_| {}), p(2, &[65001], |_| {})]);
        assert_eq!(
            peers(&s),
            vec![1, 2],
            "best first (lower router id), both kept"
        );
    }

    #[test]
    fn prepending_makes_a_connection_standby() {
        let s = select(&[p(1, &[65001, 65001], |_| {}), p(2, &[65001], |_| {})]);
        assert_eq!(peers(&s), vec![2]);
    }

    #[test]
    fn higher_local_pref_beats_shorter_path() {
        let s = select(&[
            p(1, &[65001, 65001], |a| a.local_pref = Some(200)),
            p(2, &[65001], |_| {}),
        ]);
        assert_eq!(peers(&s), vec![1]);
    }

    #[test]
    fn lower_origin_wins() {
        let s = select(&[
            p(1, &[65001], |a| a.origin = Origin::Incomplete),
            p(2, &[65001], |_| {}),
        ]);
        assert_eq!(peers(&s), vec![2]);
    }

    #[test]
    fn med_compared_only_within_the_same_neighbour_as() {
        let s = select(&[
            p(1, &[65001], |a| a.med = Some(10)),
            p(2, &[65001], |a| a.med = Some(5)),
        ]);
        assert_eq!(peers(&s), vec![2]);
        let s = select(&[
            p(1, &[65001], |a| a.med = Some(10)),
            p(2, &[65002], |a| a.med = Some(5)),
        ]);
        assert_eq!(peers(&s), vec![1, 2], "different neighbour AS: MED ignored");
    }

    #[test]
    fn ebgp_beats_ibgp() {
        let mut i = p(1, &[65001], |_| {});
        i.ebgp = false;
        let s = select(&[i, p(2, &[65001], |_| {})]);
        assert_eq!(peers(&s), vec![2]);
    }

    #[test]
    fn loc_rib_reports_changes_of_the_selected_set_only() {
        let mut r = LocRib::default();
        let n: Ipv4Net = "192.168.0.0/16".parse().expect("prefix");
        assert!(r.set(n, 1, Some(p(1, &[65001], |_| {}))));
        assert!(
            !r.set(n, 1, Some(p(1, &[65001], |_| {}))),
            "same path again: no change"
        );
        assert!(
            !r.set(n, 2, Some(p(2, &[65001, 65001], |_| {}))),
            "a worse candidate: no change"
        );
        assert!(r.set(n, 1, None), "best withdrawn: standby takes over");
        assert_eq!(r.best(&n).map(|p| p.peer), Some(2));
        assert!(r.set(n, 2, None));
        assert!(r.is_empty());
    }
}
