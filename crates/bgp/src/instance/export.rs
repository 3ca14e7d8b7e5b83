//! The export half of the instance: what each peer should have (the export decision),
//! and what it still has to be sent (its outbox, [`outbox`]).
//!
//! ```text
//!   Loc-RIB change ──▶ desired(peer, prefix) ──▶ Outbox (per peer) ──take(budget)──▶ Batch
//!   peer up / refresh ─▶ Feed: a walk of the Loc-RIB, in steps  ──┘        (the driver encodes
//!                                                                           it when the peer's
//!                                                                           socket has room)
//! ```
//!
//! A change is not turned into messages when it happens: it marks the prefix in the peer's
//! outbox with what the peer should have (the attribute set, or a withdrawal), grouped by
//! attribute set as BIRD's buckets are, and the driver takes from the outbox as the peer's
//! connection takes data. So a slow peer costs an entry per prefix, not a queue of
//! messages; a route that changes ten times while the peer is slow is sent once; nothing is
//! dropped; and what was handed to the session is the Adj-RIB-Out (`adj_out`). A new
//! peer's full table is a [`Feed`]: a walk of the Loc-RIB in steps, so the instance answers
//! everything else between them.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{GRACEFUL_SHUTDOWN, Instance, PeerState, Touched};
use crate::policy::{self, Export, Role};
use crate::rib::{DEFAULT_LOCAL_PREF, PeerId};
use crate::wire::{Afi, AsPathSegment, Origin, PathAttrs};

/// Prefixes a feed looks at in one step (a few milliseconds).
pub const FEED_STEP: usize = 4096;

mod outbox;
pub use outbox::Batch;
pub(super) use outbox::{AdjOut, Feed, FeedMemo, Memo, Outbox};
use outbox::{Refresh, drain, enqueue, enqueue_all};

impl Instance {
    /// After the Loc-RIB changed for `touched`: every peer that is up gets what changed
    /// for it. (A change inside a VPC prefix may change whether the fabric covers it.)
    pub(super) fn export_changes(&mut self, touched: Touched) -> Vec<super::Action> {
        let mut eval = touched;
        let covering: Vec<IpNet> = self
            .params
            .vpc_prefixes
            .iter()
            .filter(|v| eval.iter().any(|t| v.contains(t)))
            .copied()
            .collect();
        eval.extend(covering);
        let mut out = Vec::new();
        if self.deferring {
            return out;
        }
        for peer in self.up_peers() {
            if self.export_to(peer, &eval) {
                out.push(super::Action::Output { peer });
            }
        }
        out
    }

    /// Puts into `peer`'s outbox what it should have for `prefixes`. True when the peer
    /// has something to be sent.
    pub(super) fn export_to(&mut self, peer: PeerId, prefixes: &Touched) -> bool {
        // Only the families the session carries.
        let Some(up) = self.peers.get(&peer).and_then(|p| p.up.as_ref()) else {
            return false;
        };
        let carried = |n: &IpNet| up.carries(Afi::of(n));
        let mut memo = Memo::default();
        let desired: Vec<(IpNet, Option<Arc<PathAttrs>>)> = match self.only_own(peer) {
            None => prefixes
                .iter()
                .filter(|n| carried(n))
                .map(|n| (*n, self.desired_memo(peer, n, self.rib.best(n), &mut memo)))
                .collect(),
            // A peer that takes only our own prefixes (or nothing): of the changes, only
            // those and what it has or is to get can matter. With many feeds this keeps a
            // change from costing a judgement per peer.
            // Whichever side is smaller is looked through: a feed that is sent nothing
            // costs nothing per change.
            Some(own) => {
                let p = &self.peers[&peer];
                let few = p.adj_out.len() + p.outbox.pending.len() + own.len();
                let mut c: Vec<IpNet> = if few < prefixes.len() {
                    p.adj_out
                        .keys()
                        .chain(p.outbox.pending.keys().copied())
                        .filter(|n| prefixes.contains(n))
                        .chain(
                            own.iter()
                                .copied()
                                .filter(|n| prefixes.contains(n) && carried(n)),
                        )
                        .collect()
                } else {
                    prefixes
                        .iter()
                        .filter(|n| {
                            p.adj_out.contains_key(n)
                                || p.outbox.pending.contains_key(n)
                                || own.contains(n) && carried(n)
                        })
                        .copied()
                        .collect()
                };
                c.sort();
                c.dedup();
                c.into_iter().map(|n| (n, self.desired(peer, &n))).collect()
            }
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        enqueue_all(p, desired, false);
        !p.outbox.is_empty() || p.outbox.refresh.iter().any(Option::is_some) || p.outbox.end_of_rib
    }

    /// Starts sending `peer` everything it should have: the first table of a session
    /// (with End-of-RIB after it), or again after a policy change or a drain. A walk
    /// under way goes on as part of the new one (its families, and a refresh's force).
    pub(super) fn start_feed(&mut self, peer: PeerId, end_of_rib: bool) -> Vec<super::Action> {
        let own = self.only_own(peer);
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        if p.up.is_none() {
            return vec![];
        }
        p.outbox.end_of_rib |= end_of_rib;
        p.feed_memo = FeedMemo::default();
        // What an earlier walk found and has not sent is judged again below (or found
        // again by the new walk).
        p.outbox.unfeed();
        let mut judge: Vec<IpNet> = self
            .params
            .vpc_prefixes
            .iter()
            .chain(&self.params.announce)
            .copied()
            .collect();
        match &own {
            // Our own prefixes only: a handful, looked at now — and everything the peer
            // has or is to get, which may be what it should no longer have (its export
            // became "originated" or "none").
            Some(own) => {
                judge.extend(own.iter().copied());
                judge.extend(p.adj_out.keys());
                judge.extend(p.outbox.pending.keys().copied());
                judge.extend(p.too_large.keys().copied());
                p.feed = None;
            }
            None => {
                // Room for the table at once, not by doubling (each a rehash of it all).
                let table = self.rib.len();
                p.adj_out.reserve(table.saturating_sub(p.adj_out.len()));
                p.feed = Some(Feed::and(p.feed.as_ref(), [true; 2], [false; 2]));
            }
        }
        // (Our own prefixes, VPC and announced, may be in no Loc-RIB entry.)
        self.export_to(peer, &Touched::new(judge));
        vec![super::Action::Output { peer }]
    }

    /// The peer asked for our routes of `afi` again (RFC 2918): everything of that family
    /// is sent again, framed by BoRR and EoRR with enhanced route refresh (RFC 7313), else
    /// followed by End-of-RIB (RFC 7313 §4 asks nothing; BIRD and FRR send it).
    pub(super) fn start_refresh(&mut self, peer: PeerId, afi: Afi) -> Vec<super::Action> {
        let own = self.only_own(peer);
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        let Some(up) = &p.up else {
            return vec![];
        };
        // (A refresh already owed for the family stays: its BoRR may have gone, and what
        // goes before its EoRR now includes everything again.)
        let enhanced = up.enhanced_route_refresh;
        p.outbox.refresh[afi as usize].get_or_insert(Refresh {
            enhanced,
            begun: false,
        });
        // The walk goes through the Loc-RIB; what the peer has that is in no entry of it
        // (our own prefixes, or a route withdrawal still queued) is judged here: sent
        // again as it should be now, or withdrawn.
        let had: Vec<IpNet> = p.adj_out.keys().filter(|n| Afi::of(n) == afi).collect();
        let judged: Vec<(IpNet, Option<Arc<PathAttrs>>)> = had
            .into_iter()
            .filter(|n| own.is_some() || self.rib.best(n).is_none())
            .map(|n| (n, self.desired(peer, &n)))
            .collect();
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        for (n, want) in judged {
            let want = want.map(|a| p.outbox.intern(a));
            enqueue(p, n, want, true);
        }
        if own.is_none() {
            p.outbox.unfeed();
            p.feed_memo = FeedMemo::default();
            let mut only = [false; 2];
            only[afi as usize] = true;
            p.feed = Some(Feed::and(p.feed.as_ref(), only, only));
        }
        vec![super::Action::Output { peer }]
    }

    /// Whether a feed is under way (the driver gives it steps when idle).
    pub fn feeding(&self) -> bool {
        self.peers.values().any(|p| p.feed.is_some())
    }

    /// A step of every feed under way: up to `budget` prefixes looked at in all. Returns
    /// the peers that got something to send.
    pub fn step_feeds(&mut self, budget: usize) -> Vec<PeerId> {
        let feeding: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.feed.is_some())
            .map(|(id, _)| *id)
            .collect();
        if feeding.is_empty() {
            return vec![];
        }
        let each = (budget / feeding.len()).max(256);
        feeding
            .into_iter()
            .filter(|peer| self.step_feed(*peer, each))
            .collect()
    }

    /// Looks at up to `budget` more prefixes for `peer`'s feed. True if its outbox has
    /// something.
    fn step_feed(&mut self, peer: PeerId, budget: usize) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(feed) = p.feed.clone() else {
            return false;
        };
        let mut memo = std::mem::take(&mut p.feed_memo);
        let mut ob = std::mem::take(&mut p.outbox);
        let p = &self.peers[&peer];
        let Some(up) = p.up.as_ref() else {
            p_restore(self, peer, ob, memo);
            return false;
        };
        // Whether the decision depends on the route's attributes alone (see
        // `desired_memo`): then it is made once per set.
        let by_attrs = match p.spec.role {
            Role::Fabric => true,
            Role::Neighbor => matches!(
                p.spec.policy.as_deref().map(|x| &x.export),
                Some(Export::All)
            ),
            Role::Customer => false,
        };
        let (adj_out, too_large) = (&p.adj_out, &p.too_large);
        let (mut looked, mut last, mut past_end) = (0, None, false);
        // What the walk changes besides the buckets, applied after it.
        let (mut superseded, mut withdraw, mut fits_now) = (vec![], vec![], vec![]);
        for (n, selected) in self.rib.iter_after(feed.after) {
            if looked == budget {
                break;
            }
            looked += 1;
            last = Some(n);
            let afi = Afi::of(&n);
            if !feed.families[afi as usize] || !up.carries(afi) {
                if afi == Afi::Ipv6 && !feed.families[afi as usize] {
                    // (IPv6 comes last: nothing more for this walk.)
                    past_end = true;
                    break;
                }
                continue;
            }
            // A refresh owed for the family: everything again.
            let force = feed.force[afi as usize] || ob.refresh[afi as usize].is_some();
            // (The walk has the route's paths at hand: no second lookup of it.)
            let best = selected.first();
            let bucket = match best {
                Some(best) if by_attrs && !self.params.announce.contains(&n) => {
                    let key = (Arc::as_ptr(&best.attrs) as usize, best.peer);
                    match memo.0.get(&key) {
                        Some((_, bucket)) => *bucket,
                        None => {
                            let bucket = self
                                .desired(peer, &n)
                                .map(|a| ob.fed.bucket(&ob.attrs.intern(a)));
                            memo.0.insert(key, (best.attrs.clone(), bucket));
                            bucket
                        }
                    }
                }
                _ => self
                    .desired(peer, &n)
                    .map(|a| ob.fed.bucket(&ob.attrs.intern(a))),
            };
            if !ob.pending.is_empty() && ob.pending.contains_key(&n) {
                superseded.push(n);
            }
            let sent = if adj_out.is_empty() {
                None
            } else {
                adj_out.get(&n)
            };
            match bucket {
                Some(k) => {
                    let a = &ob.fed.sets[k];
                    let same = sent.is_some_and(|s| Arc::ptr_eq(s, a) || **s == **a);
                    if !same || force {
                        ob.fed.found.push((k as u32, n));
                    }
                }
                None => {
                    if sent.is_some() {
                        withdraw.push(n);
                    }
                    if !too_large.is_empty() && too_large.contains_key(&n) {
                        fits_now.push(n);
                    }
                }
            }
        }
        let done = past_end || looked < budget;
        for n in superseded {
            ob.pending.remove(&n);
        }
        for n in withdraw {
            ob.push_withdraw(n);
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        for n in fits_now {
            p.too_large.remove(&n);
        }
        p.outbox = ob;
        // Kept for the next step; dropped with the walk (its attributes go with it).
        p.feed_memo = if done { FeedMemo::default() } else { memo };
        p.feed = match (done, last.as_ref()) {
            (true, _) | (_, None) => None,
            (false, Some(last)) => Some(Feed {
                after: Some(*last),
                ..feed
            }),
        };
        if p.feed.is_none() {
            p.outbox.fed.group();
        }
        !p.outbox.is_empty()
    }

    /// Whether `peer` has anything to be sent now.
    pub fn has_output(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| {
            p.up.is_some()
                && (!p.outbox.is_empty()
                    || p.feed.is_some()
                    || p.outbox.end_of_rib
                    || p.outbox.refresh.iter().any(Option::is_some))
        })
    }

    /// Takes from `peer`'s outbox what fits in about `budget` octets (feeding it on when
    /// it runs dry); None when there is nothing to send. What is taken is the peer's
    /// Adj-RIB-Out from here on. A route whose UPDATE would be longer than the peer
    /// accepts (RFC 8654 negotiated or not) is not sent: it is withdrawn if the peer had
    /// it, and kept among the routes not sent, with why.
    pub fn take(&mut self, peer: PeerId, budget: usize) -> Option<Batch> {
        let max = self.max_message_len(peer);
        let mut b = Batch::default();
        let mut used = 0usize;
        let p = self.peers.get_mut(&peer)?;
        p.up.as_ref()?;
        for afi in Afi::BOTH {
            if let Some(r) = &mut p.outbox.refresh[afi as usize]
                && !r.begun
            {
                r.begun = true;
                if r.enhanced {
                    b.begin_refresh.push(afi);
                    used += 23;
                }
            }
        }
        if p.feed.is_some() {
            // The table is walked to its end before its routes go: the prefixes of an
            // attribute set are scattered over the table, and sent together they take
            // one UPDATE, not one each. (A step per call: the walk goes on between.)
            self.step_feed(peer, FEED_STEP);
        }
        let p = self.peers.get_mut(&peer)?;
        if p.feed.is_some() {
            return (!b.is_empty()).then_some(b);
        }
        // (The walk is done: on to its routes.)
        drain(p, &mut b, &mut used, budget, max);
        if p.outbox.is_empty() {
            // A table's worth of room, no longer needed.
            p.outbox.shrink();
            if std::mem::take(&mut p.outbox.end_of_rib) {
                b.end_of_rib =
                    p.up.as_ref()
                        .map(|n| n.families().collect())
                        .unwrap_or_default();
            }
            for afi in Afi::BOTH {
                match p.outbox.refresh[afi as usize].take() {
                    Some(r) if r.enhanced => b.end_refresh.push(afi),
                    // (RFC 7313 §4 asks nothing; BIRD and FRR send an End-of-RIB.)
                    Some(_) if !b.end_of_rib.contains(&afi) => b.end_of_rib.push(afi),
                    _ => {}
                }
            }
        }
        (!b.is_empty()).then_some(b)
    }

    /// The only prefixes `peer` can be sent, when it is not every route: a customer gets
    /// the public services and the VPC prefixes; a neighbor that exports "originated"
    /// our own prefixes, and one that exports nothing none.
    pub(super) fn only_own(&self, peer: PeerId) -> Option<Vec<IpNet>> {
        let p = self.peers.get(&peer)?;
        let params = &self.params;
        match p.spec.role {
            Role::Customer => Some(
                params
                    .announce
                    .iter()
                    .chain(&params.vpc_prefixes)
                    .copied()
                    .collect(),
            ),
            Role::Fabric => None,
            Role::Neighbor => match p.spec.policy.as_deref().map(|x| &x.export) {
                None | Some(Export::Nothing) => Some(vec![]),
                Some(Export::Originated) => Some(params.announce.clone()),
                Some(Export::All | Export::Filter(_)) => None,
            },
        }
    }

    /// [`Instance::desired`], computed once per attribute set where the export decision
    /// depends on the route's attributes alone (the fabric; a neighbor that takes every
    /// route): a table's routes share a few sets, and what is sent of them shares one
    /// `Arc` each — one bucket, one copy in the Adj-RIB-Out.
    fn desired_memo(
        &self,
        peer: PeerId,
        n: &IpNet,
        best: Option<&crate::rib::Path>,
        memo: &mut Memo,
    ) -> Option<Arc<PathAttrs>> {
        let by_attrs = self.peers.get(&peer).is_some_and(|p| match p.spec.role {
            Role::Fabric => true,
            Role::Neighbor => {
                matches!(
                    p.spec.policy.as_deref().map(|x| &x.export),
                    Some(Export::All)
                ) && !self.params.announce.contains(n)
            }
            Role::Customer => false,
        });
        let best = if by_attrs { best } else { None };
        let Some(best) = best else {
            return self.desired(peer, n);
        };
        let key = (Arc::as_ptr(&best.attrs) as usize, best.peer);
        memo.0
            .entry(key)
            .or_insert_with(|| (best.attrs.clone(), self.desired(peer, n)))
            .1
            .clone()
    }

    /// What `peer` should have for `n` under the export policy, marked while draining.
    pub(super) fn desired(&self, peer: PeerId, n: &IpNet) -> Option<Arc<PathAttrs>> {
        let a = self.exported(peer, n)?;
        if !self.graceful_shutdown {
            return Some(a);
        }
        let mut a = (*a).clone();
        if !a.communities.contains(&GRACEFUL_SHUTDOWN) {
            a.communities.push(GRACEFUL_SHUTDOWN);
        }
        if a.local_pref.is_some() {
            a.local_pref = Some(0);
        }
        Some(Arc::new(a))
    }

    fn exported(&self, peer: PeerId, n: &IpNet) -> Option<Arc<PathAttrs>> {
        let p = &self.peers[&peer];
        match p.spec.role {
            Role::Customer => {
                // The public services, always; the VPC prefixes only while the fabric has
                // a route inside them.
                let covered = self.params.announce.contains(n)
                    || self.params.vpc_prefixes.contains(n)
                        && self.rib.within(n).any(|(_, paths)| {
                            paths.first().is_some_and(|b| b.role == Role::Fabric)
                        });
                covered.then(|| {
                    Arc::new(PathAttrs {
                        origin: Origin::Igp,
                        as_path: vec![AsPathSegment::Sequence(vec![self.params.local_asn])],
                        next_hop: p.local_address4(),
                        next_hop6: p.local_address6(),
                        ..Default::default()
                    })
                })
            }
            Role::Fabric => {
                let best = self.rib.best(n)?;
                if best.role != Role::Customer {
                    return None;
                }
                Some(self.outbound((*best.attrs).clone(), p))
            }
            Role::Neighbor => {
                let policy = p.spec.policy.as_deref()?;
                let ibgp = p.spec.asn == self.params.local_asn;
                let own = self.params.announce.contains(n);
                let a = match (&policy.export, own) {
                    (Export::Nothing, _) | (Export::Originated, false) => return None,
                    (_, true) => PathAttrs {
                        origin: Origin::Igp,
                        ..Default::default()
                    },
                    (Export::All | Export::Filter(_), false) => {
                        let best = self.rib.best(n)?;
                        // Not back to where it came from; iBGP routes not to iBGP peers.
                        if best.peer == peer || ibgp && !best.ebgp {
                            return None;
                        }
                        (*best.attrs).clone()
                    }
                };
                // The filter sees the route as it stands, before our prepend.
                if let Export::Filter(f) = &policy.export
                    && !f.permits(n, Some(&a))
                {
                    return None;
                }
                let actions = match &policy.export {
                    Export::Filter(f) => f.actions(n, Some(&a)).map(|(_, x)| x.clone()),
                    _ => None,
                };
                let a = match p.up.as_ref().and_then(|u| u.local_role) {
                    Some(r) => policy::otc_egress(r, self.params.local_asn, a)?,
                    None => a,
                };
                let out = self.outbound(a, p);
                // The export rule's changes, on the route as sent (no LOCAL_PREF to an
                // external neighbor).
                Some(match actions {
                    Some(x) => {
                        let mut a = (*out).clone();
                        x.apply(&mut a, self.params.local_asn);
                        if !ibgp {
                            a.local_pref = None;
                        }
                        Arc::new(a)
                    }
                    None => out,
                })
            }
        }
    }

    /// Attributes as sent to `p`: next hop self; toward eBGP our AS prepended and
    /// LOCAL_PREF and MED dropped, toward iBGP a LOCAL_PREF always.
    fn outbound(&self, mut a: PathAttrs, p: &PeerState) -> Arc<PathAttrs> {
        a.next_hop = p.local_address4();
        a.next_hop6 = p.local_address6();
        a.link_local6 = None;
        if p.spec.asn == self.params.local_asn {
            a.local_pref = Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
        } else {
            let extra = p.spec.policy.as_ref().map_or(0, |x| x.prepend);
            for _ in 0..=extra {
                a.prepend(self.params.local_asn);
            }
            a.local_pref = None;
            a.med = None;
        }
        Arc::new(a)
    }

    /// Prefixes that policy would send `peer` but that do not fit in an UPDATE it takes,
    /// with the UPDATE's length.
    pub(super) fn too_large(&self, peer: PeerId) -> Vec<(IpNet, usize)> {
        self.peers
            .get(&peer)
            .map(|p| {
                let mut v: Vec<_> = p.too_large.iter().map(|(n, l)| (*n, *l)).collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Our address toward `peer` in `n`'s family: a NEXT_HOP equal to it is our own.
    pub(super) fn own_address(&self, peer: PeerId, afi: Afi) -> Option<IpAddr> {
        let p = self.peers.get(&peer)?;
        match afi {
            Afi::Ipv4 => p.local_address4().map(IpAddr::V4),
            Afi::Ipv6 => match p.local_address {
                IpAddr::V6(a) => Some(IpAddr::V6(a)),
                IpAddr::V4(_) => p.spec.local_address6.map(IpAddr::V6),
            },
        }
    }
}

/// Puts back what `step_feed` took out of `peer`'s state.
fn p_restore(i: &mut Instance, peer: PeerId, ob: Outbox, memo: FeedMemo) {
    if let Some(p) = i.peers.get_mut(&peer) {
        p.outbox = ob;
        p.feed_memo = memo;
    }
}
