//! Loc-RIB: the candidate paths per prefix and the selected set — the best path and
//! the paths equal to it for ECMP (RFC 4271 §9.1.2).

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use smallvec::SmallVec;

use crate::policy::Role;
use crate::wire::{Afi, PathAttrs};

mod table;
use table::{Change, Table};

pub type PeerId = u32;

pub const DEFAULT_LOCAL_PREF: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    pub role: Role,
    /// Where the kernel forwards an IPv4 route: the peer's address on the shared subnet
    /// (a neighbor's NEXT_HOP as sent). IPv6 routes: [`Path::forward_to`].
    pub nexthop: Ipv4Addr,
    pub peer_router_id: Ipv4Addr,
    pub ebgp: bool,
    pub attrs: Arc<PathAttrs>,
}

impl Path {
    /// Where the kernel forwards a route of `afi` on this path: for IPv4 [`Path::nexthop`];
    /// for IPv6 the next hop the peer sent (its global address, else its link-local one),
    /// else the IPv4-mapped form of `nexthop`. (Kept out of the path itself: a full table
    /// is a million paths, and an `IpAddr` would cost each 16 more octets.)
    pub fn forward_to(&self, afi: Afi) -> IpAddr {
        match afi {
            Afi::Ipv4 => self.nexthop.into(),
            Afi::Ipv6 => match (self.attrs.next_hop6, self.attrs.link_local6) {
                (Some(g), _) if !g.is_unspecified() => g.into(),
                (_, Some(ll)) => ll.into(),
                _ => self.nexthop.to_ipv6_mapped().into(),
            },
        }
    }

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

/// The paths of one prefix, best first (in [`compare`] order). One path — the common
/// case, and a full table's every entry — is the whole entry: 24 octets (the path's
/// non-null attribute pointer tells the two kinds apart), not the 40 of a small vector
/// and a count.
#[derive(Debug, Clone)]
enum Entry {
    One(Path),
    /// Two or more paths; the first `selected` are the selected set.
    Many(Box<Many>),
}

#[derive(Debug, Clone)]
struct Many {
    paths: Vec<Path>,
    selected: u8,
}

impl Entry {
    fn paths(&self) -> &[Path] {
        match self {
            Entry::One(p) => std::slice::from_ref(p),
            Entry::Many(m) => &m.paths,
        }
    }

    fn selected(&self) -> &[Path] {
        match self {
            Entry::One(p) => std::slice::from_ref(p),
            Entry::Many(m) => &m.paths[..m.selected as usize],
        }
    }
}

/// The Loc-RIB: every candidate path of every prefix, and which are selected. One table
/// per family, each in prefix order; an IPv4 prefix is keyed by [`key`], one integer
/// comparison per step of a search.
#[derive(Debug, Default)]
pub struct LocRib {
    v4: Table<u64, Entry>,
    v6: Table<Ipv6Net, Entry>,
}

/// An IPv4 prefix as one integer that sorts as `Ipv4Net` does (address, then length).
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

impl Entry {
    /// Sets (or with `None` removes) `peer`'s path; returns whether the selected set
    /// changed, whether no path is left (the caller then removes the entry), and whether
    /// `peer` had a path here before.
    fn set(&mut self, peer: PeerId, path: Option<Path>) -> (bool, bool, bool) {
        match (&mut *self, path) {
            // Replacing or removing the only path: the fast path of a full table.
            (Entry::One(old), Some(new)) if old.peer == peer => {
                let changed = *old != new;
                *old = new;
                (changed, false, true)
            }
            (Entry::One(old), None) if old.peer == peer => (true, true, true),
            (Entry::One(_), None) => (false, false, false),
            (_, path) => {
                let had = self.paths().iter().any(|p| p.peer == peer);
                let was: SmallVec<[Path; 2]> = self.selected().iter().cloned().collect();
                let mut paths = match self {
                    Entry::One(p) => vec![p.clone()],
                    Entry::Many(m) => std::mem::take(&mut m.paths),
                };
                paths.retain(|p| p.peer != peer);
                if let Some(p) = path {
                    let at = paths.partition_point(|q| compare(q, &p) == Ordering::Less);
                    paths.insert(at, p);
                }
                *self = match paths.len() {
                    0 => return (true, true, had),
                    1 => Entry::One(paths.remove(0)),
                    _ => {
                        let best = &paths[0];
                        let n = paths
                            .iter()
                            .take_while(|p| compare_multipath(p, best) == Ordering::Equal)
                            .count();
                        Entry::Many(Box::new(Many {
                            selected: n.min(u8::MAX as usize) as u8,
                            paths,
                        }))
                    }
                };
                (self.selected() != was.as_slice(), false, had)
            }
        }
    }
}

/// [`LocRib::replace`] on one family's table.
fn set_in<K: Ord + Copy>(
    table: &mut Table<K, Entry>,
    k: K,
    peer: PeerId,
    path: Option<Path>,
) -> (bool, bool) {
    table.modify(k, |entry| match entry {
        Some(e) => {
            let (changed, empty, had) = e.set(peer, path);
            let change = if empty { Change::Remove } else { Change::Keep };
            ((changed, had), change)
        }
        // First path of a prefix: selected alone.
        None => match path {
            Some(p) => ((true, false), Change::Insert(Entry::One(p))),
            None => ((false, false), Change::Keep),
        },
    })
}

impl LocRib {
    /// Sets (or with `None` removes) `peer`'s path for `prefix`. Returns whether the
    /// selected set changed.
    pub fn set(&mut self, prefix: IpNet, peer: PeerId, path: Option<Path>) -> bool {
        self.replace(prefix, peer, path).0
    }

    /// [`LocRib::set`], and whether `peer` had a path for `prefix` before.
    pub fn replace(&mut self, prefix: IpNet, peer: PeerId, path: Option<Path>) -> (bool, bool) {
        match prefix {
            IpNet::V4(n) => set_in(&mut self.v4, key(&n), peer, path),
            IpNet::V6(n) => set_in(&mut self.v6, n, peer, path),
        }
    }

    /// `peer`'s path for `prefix`, selected or not.
    pub fn path_of(&self, prefix: &IpNet, peer: PeerId) -> Option<&Path> {
        self.entry(prefix)?.paths().iter().find(|p| p.peer == peer)
    }

    /// Every path of `peer`, in prefix order. (A walk of the whole table: for the looking
    /// glass and for a peer that goes, not for every UPDATE.)
    pub fn paths_of(&self, peer: PeerId) -> impl Iterator<Item = (IpNet, &Path)> {
        let v4 = self.v4.iter().map(|(k, e)| (IpNet::V4(prefix(*k)), e));
        let v6 = self.v6.iter().map(|(k, e)| (IpNet::V6(*k), e));
        v4.chain(v6)
            .filter_map(move |(n, e)| e.paths().iter().find(|p| p.peer == peer).map(|p| (n, p)))
    }

    fn entry(&self, prefix: &IpNet) -> Option<&Entry> {
        match prefix {
            IpNet::V4(n) => self.v4.get(&key(n)),
            IpNet::V6(n) => self.v6.get(n),
        }
    }

    pub fn selected(&self, prefix: &IpNet) -> Option<&[Path]> {
        self.entry(prefix).map(Entry::selected)
    }

    pub fn best(&self, prefix: &IpNet) -> Option<&Path> {
        self.entry(prefix).and_then(|e| e.paths().first())
    }

    /// The prefixes inside `n` (itself included) with their selected paths.
    pub fn within(&self, n: &IpNet) -> Box<dyn Iterator<Item = (IpNet, &[Path])> + '_> {
        let n = *n;
        match n {
            IpNet::V4(v) => {
                let last = key(&Ipv4Net::new(v.broadcast(), 32).unwrap_or(v));
                Box::new(
                    self.v4
                        .range(key(&v)..=last)
                        .map(|(k, e)| (IpNet::V4(prefix(*k)), e.selected()))
                        .filter(move |(q, _)| n.contains(q)),
                )
            }
            IpNet::V6(v) => {
                let last = Ipv6Net::new(v.broadcast(), 128).unwrap_or(v);
                Box::new(
                    self.v6
                        .range(v..=last)
                        .map(|(k, e)| (IpNet::V6(*k), e.selected()))
                        .filter(move |(q, _)| n.contains(q)),
                )
            }
        }
    }

    /// Every prefix with its selected paths, IPv4 then IPv6, each in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &[Path])> {
        self.v4
            .iter()
            .map(|(k, e)| (IpNet::V4(prefix(*k)), e.selected()))
            .chain(self.v6.iter().map(|(k, e)| (IpNet::V6(*k), e.selected())))
    }

    /// Every prefix after `after` (from the first when None) with its selected paths,
    /// in the order of [`LocRib::iter`]: where a walk in steps goes on.
    pub fn iter_after(
        &self,
        after: Option<IpNet>,
    ) -> Box<dyn Iterator<Item = (IpNet, &[Path])> + '_> {
        let v6 = |from: Option<Ipv6Net>| {
            let first = from.unwrap_or_default();
            self.v6
                .range(
                    first..=Ipv6Net::new(std::net::Ipv6Addr::from(u128::MAX), 128).unwrap_or(first),
                )
                .filter(move |(k, _)| from.is_none_or(|f| **k > f))
                .map(|(k, e)| (IpNet::V6(*k), e.selected()))
        };
        match after {
            None => Box::new(self.iter()),
            Some(IpNet::V4(n)) => Box::new(
                self.v4
                    .range(key(&n).saturating_add(1)..=u64::MAX)
                    .map(|(k, e)| (IpNet::V4(prefix(*k)), e.selected()))
                    .chain(v6(None)),
            ),
            Some(IpNet::V6(n)) => Box::new(v6(Some(n))),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod walk_tests {
    use super::*;

    #[test]
    fn a_walk_in_steps_sees_every_prefix_once_in_order() {
        let mut rib = LocRib::default();
        let prefixes: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.1.0/24",
            "192.168.0.0/16",
            "::/0",
            "2001:db8::/32",
            "2001:db8::/48",
        ]
        .iter()
        .map(|s| s.parse().expect("prefix"))
        .collect();
        for n in &prefixes {
            rib.set(*n, 1, Some(tests_path()));
        }
        for step in 1..=4 {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let next: Vec<IpNet> = rib.iter_after(after).map(|(n, _)| n).take(step).collect();
                seen.extend(next.iter().copied());
                match next.last() {
                    Some(l) if next.len() == step => after = Some(*l),
                    _ => break,
                }
            }
            let all: Vec<IpNet> = rib.iter().map(|(n, _)| n).collect();
            assert_eq!(seen, all, "steps of {step}");
            assert_eq!(all.len(), prefixes.len());
        }
    }

    fn tests_path() -> Path {
        Path {
            peer: 1,
            role: crate::policy::Role::Neighbor,
            nexthop: std::net::Ipv4Addr::LOCALHOST,
            peer_router_id: std::net::Ipv4Addr::LOCALHOST,
            ebgp: true,
            attrs: Arc::new(crate::wire::PathAttrs::default()),
        }
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
    fn a_prefix_with_one_path_costs_the_path_alone() {
        assert_eq!(std::mem::size_of::<Path>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn entries_grow_to_many_paths_and_back_to_one() {
        let mut r = LocRib::default();
        let n: IpNet = "192.168.0.0/16".parse().expect("prefix");
        assert!(r.set(n, 1, Some(p(1, &[65001], |_| {}))));
        assert!(
            r.set(n, 2, Some(p(2, &[65001], |_| {}))),
            "ECMP: both selected"
        );
        assert!(!r.set(n, 3, Some(p(3, &[65001, 65001], |_| {}))));
        assert_eq!(r.selected(&n).map(peers), Some(vec![1, 2]));
        assert!(r.set(n, 1, None));
        assert!(r.set(n, 2, None), "the standby alone");
        assert_eq!(r.selected(&n).map(peers), Some(vec![3]));
        assert!(matches!(
            r.v4.iter().next().map(|(_, e)| e),
            Some(Entry::One(_))
        ));
        assert!(r.set(n, 3, None));
        assert!(r.is_empty());
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
        let n: IpNet = "192.168.0.0/16".parse().expect("prefix");
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
