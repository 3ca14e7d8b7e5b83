//! The export half of the instance: what each peer should have (the export decision),
//! and what it still has to be sent (its outbox).
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

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{GRACEFUL_SHUTDOWN, Instance, PeerState, Touched};
use crate::policy::{self, Export, Role};
use crate::rib::{DEFAULT_LOCAL_PREF, PeerId};
use crate::wire::{self, Afi, AsPathSegment, Origin, PathAttrs};

/// Prefixes a feed looks at in one step (a few milliseconds).
pub const FEED_STEP: usize = 4096;

/// What goes to a peer's session at once, in this order on the wire: BoRR, withdrawals,
/// announcements, EoRR, End-of-RIB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The peer asked for our routes of these families (RFC 7313): BoRR before them.
    pub begin_refresh: Vec<Afi>,
    pub withdrawn: Vec<IpNet>,
    pub announce: Vec<(Arc<PathAttrs>, Vec<IpNet>)>,
    /// Every route of these refreshed families was sent again: EoRR after them.
    pub end_refresh: Vec<Afi>,
    /// End-of-RIB of these families, after the first full table (RFC 4724).
    pub end_of_rib: Vec<Afi>,
    /// Routes not sent, as their UPDATE would be longer than the peer takes: prefix and
    /// the UPDATE's length.
    pub too_large: Vec<(IpNet, usize)>,
    /// How many routes the peer holds after this batch, minus before.
    pub delta: i64,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.begin_refresh.is_empty()
            && self.withdrawn.is_empty()
            && self.announce.is_empty()
            && self.end_refresh.is_empty()
            && self.end_of_rib.is_empty()
            && self.too_large.is_empty()
    }
}

/// What a peer is still to be sent.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Prefix → what the peer should get: an announcement with these attributes (the
    /// bucket's own `Arc`), or a withdrawal (None).
    pending: HashMap<IpNet, Option<Arc<PathAttrs>>>,
    /// Announcements by attribute set, keyed by the set's interned `Arc` (see `attrs`),
    /// and the order the buckets filled in. A bucket's prefix that `pending` no longer
    /// agrees with was changed again since, and is skipped.
    buckets: HashMap<usize, (Arc<PathAttrs>, Vec<IpNet>)>,
    order: VecDeque<usize>,
    /// Every attribute set this peer is sent, once: equal sets are one `Arc`, so a bucket
    /// is found by pointer (a table's million routes hash no attributes), and the
    /// Adj-RIB-Out holds a pointer per route.
    attrs: OutAttrs,
    withdraw: VecDeque<IpNet>,
    /// What a walk of the Loc-RIB found, grouped by attribute set: drained before
    /// anything else (see [`Fed`]).
    fed: Fed,
    /// Per family, a refresh asked for by the peer and not yet answered to its end: until
    /// its EoRR (or End-of-RIB) goes, every route of the family is sent again, even one
    /// that changes back to what the peer had meanwhile.
    refresh: [Option<Refresh>; 2],
    /// End-of-RIB owed after the feed (the first table of the session).
    end_of_rib: bool,
}

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.fed.is_empty()
    }

    pub(super) fn clear(&mut self) {
        *self = Outbox::default();
    }

    /// Gives back the room of an emptied outbox (a full table's, after a feed).
    fn shrink(&mut self) {
        if self.pending.capacity() > 4096 {
            self.pending = HashMap::default();
            self.buckets = HashMap::default();
            self.order = VecDeque::new();
            self.withdraw = VecDeque::new();
        }
    }

    /// `a` as this peer's one `Arc` of that set.
    pub(super) fn intern(&mut self, a: Arc<PathAttrs>) -> Arc<PathAttrs> {
        self.attrs.intern(a)
    }

    /// Queues `n` for announcement with `a`, interned ([`Outbox::intern`]).
    fn push_announce(&mut self, n: IpNet, a: Arc<PathAttrs>) {
        let key = Arc::as_ptr(&a) as usize;
        let (_, bucket) = self
            .buckets
            .entry(key)
            .or_insert_with(|| (a.clone(), Vec::new()));
        if bucket.is_empty() {
            self.order.push_back(key);
        }
        bucket.push(n);
        self.pending.insert(n, Some(a));
    }

    fn push_withdraw(&mut self, n: IpNet) {
        self.withdraw.push_back(n);
        self.pending.insert(n, None);
    }

    /// Before a new walk: what the last one found and has not gone yet joins the other
    /// announcements (the new walk's finds go first, and a prefix it finds again is
    /// taken from there).
    fn unfeed(&mut self) {
        let fed = std::mem::take(&mut self.fed);
        let found = fed.found.iter().map(|(k, n)| (*k as usize, *n));
        // (Grouped only once its walk was done.)
        let buckets = if fed.starts.is_empty() {
            0..0
        } else {
            fed.next..fed.sets.len()
        };
        let grouped = buckets.flat_map(|k| {
            let from = fed.at.max(fed.starts[k] as usize);
            fed.grouped[from..fed.starts[k + 1] as usize]
                .iter()
                .map(move |n| (k, *n))
        });
        for (k, n) in found.chain(grouped) {
            if !self.pending.contains_key(&n) {
                self.push_announce(n, fed.sets[k].clone());
            }
        }
    }
}

/// A refresh owed to the peer (RFC 2918, RFC 7313).
#[derive(Debug, Clone, Copy)]
struct Refresh {
    /// Framed by BoRR and EoRR (both sides announced enhanced route refresh); else an
    /// End-of-RIB follows the routes.
    enhanced: bool,
    /// Its BoRR went (or, without markers, its first routes may go).
    begun: bool,
}

/// What a walk of the Loc-RIB found for a peer: its routes grouped by the attribute set
/// it is sent (interned: one bucket per set, found by pointer), in the order the sets
/// were first seen. A table's prefixes go in here without an entry each in `pending`
/// (a million hash insertions and removals less); in exchange the rules are:
/// - the walk's view of a prefix is the latest when it looks: it drops the prefix's
///   entry in `pending`;
/// - a change after the walk looked is an entry in `pending`, which wins: a found prefix
///   with an entry there is skipped (while anything is found and unsent, [`enqueue`]
///   always records the change, even one back to what the peer has);
/// - what was found goes before the rest of the outbox.
#[derive(Debug, Default)]
pub(super) struct Fed {
    /// Bucket → its set (interned).
    sets: Vec<Arc<PathAttrs>>,
    /// The set's interned pointer → its bucket (during the walk).
    index: HashMap<usize, usize>,
    /// The walk's finds as it goes: bucket and prefix (one flat vector: no allocation
    /// per set).
    found: Vec<(u32, IpNet)>,
    /// Once the walk is done: the finds grouped by bucket, in walk order within each,
    /// bucket `k` at `grouped[starts[k]..starts[k + 1]]`.
    grouped: Vec<IpNet>,
    starts: Vec<u32>,
    /// The bucket being sent, and the first prefix of `grouped` not yet sent.
    next: usize,
    at: usize,
}

impl Fed {
    fn is_empty(&self) -> bool {
        self.found.is_empty() && self.at >= self.grouped.len()
    }

    /// The bucket of interned set `a`.
    fn bucket(&mut self, a: &Arc<PathAttrs>) -> usize {
        let sets = &mut self.sets;
        *self
            .index
            .entry(Arc::as_ptr(a) as usize)
            .or_insert_with(|| {
                sets.push(a.clone());
                sets.len() - 1
            })
    }

    /// The walk is done: its finds grouped by bucket (a counting sort; stable).
    fn group(&mut self) {
        if self.found.is_empty() {
            // Nothing found: nothing held (the sets' `Arc`s go, so they can be swept).
            *self = Fed::default();
            return;
        }
        self.index = HashMap::default();
        let mut starts = vec![0u32; self.sets.len() + 1];
        for (k, _) in &self.found {
            starts[*k as usize + 1] += 1;
        }
        for k in 1..starts.len() {
            starts[k] += starts[k - 1];
        }
        let mut fill: Vec<u32> = starts[..self.sets.len()].to_vec();
        let mut grouped = vec![IpNet::default(); self.found.len()];
        for (k, n) in std::mem::take(&mut self.found) {
            grouped[fill[k as usize] as usize] = n;
            fill[k as usize] += 1;
        }
        self.grouped = grouped;
        self.starts = starts;
        self.next = 0;
        self.at = 0;
    }
}

/// What a peer was handed (its Adj-RIB-Out): prefix → the attribute set, per family. An
/// IPv4 prefix is one integer key (16 octets an entry with its pointer, half of what an
/// `IpNet` key takes, and one multiplication to hash).
#[derive(Debug, Default)]
pub(super) struct AdjOut {
    v4: HashMap<u64, Arc<PathAttrs>>,
    v6: HashMap<ipnet::Ipv6Net, Arc<PathAttrs>>,
}

fn key4(n: &ipnet::Ipv4Net) -> u64 {
    (u64::from(u32::from(n.addr())) << 8) | u64::from(n.prefix_len())
}

fn from_key4(k: u64) -> IpNet {
    let addr = std::net::Ipv4Addr::from((k >> 8) as u32);
    IpNet::V4(ipnet::Ipv4Net::new(addr, (k & 0xff) as u8).expect("a stored prefix"))
}

impl AdjOut {
    pub(super) fn get(&self, n: &IpNet) -> Option<&Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.get(&key4(n)),
            IpNet::V6(n) => self.v6.get(n),
        }
    }

    pub(super) fn contains_key(&self, n: &IpNet) -> bool {
        self.get(n).is_some()
    }

    pub(super) fn insert(&mut self, n: IpNet, a: Arc<PathAttrs>) -> Option<Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.insert(key4(&n), a),
            IpNet::V6(n) => self.v6.insert(n, a),
        }
    }

    pub(super) fn remove(&mut self, n: &IpNet) -> Option<Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.remove(&key4(n)),
            IpNet::V6(n) => self.v6.remove(n),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub(super) fn clear(&mut self) {
        *self = AdjOut::default();
    }

    /// Room for `n` more routes (of IPv4, the table's bulk).
    pub(super) fn reserve(&mut self, n: usize) {
        self.v4.reserve(n);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (IpNet, &Arc<PathAttrs>)> {
        self.v4
            .iter()
            .map(|(k, a)| (from_key4(*k), a))
            .chain(self.v6.iter().map(|(n, a)| (IpNet::V6(*n), a)))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(n, _)| n)
    }
}

/// The attribute sets a peer is sent, each once (BIRD's attribute cache, per peer). Sets
/// nothing holds any more go when the set has doubled since the last sweep.
#[derive(Debug, Default)]
pub(super) struct OutAttrs {
    set: std::collections::HashSet<Arc<PathAttrs>, rustc_hash::FxBuildHasher>,
    sweep_at: usize,
}

impl OutAttrs {
    fn intern(&mut self, a: Arc<PathAttrs>) -> Arc<PathAttrs> {
        if let Some(have) = self.set.get(&a) {
            return have.clone();
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|x| Arc::strong_count(x) > 1);
            self.sweep_at = (self.set.len() * 2).max(1024);
        }
        self.set.insert(a.clone());
        a
    }
}

/// A walk of the Loc-RIB for one peer: after the last prefix it looked at.
#[derive(Debug, Clone)]
pub(super) struct Feed {
    after: Option<IpNet>,
    /// The families it goes through (by `Afi as usize`).
    families: [bool; 2],
    /// Per family: send what the peer has again even where it is unchanged (a refresh).
    force: [bool; 2],
}

impl Feed {
    /// A walk of `families` from the start (an IPv6-only walk starts past IPv4: the
    /// Loc-RIB walks IPv4 first).
    fn new(families: [bool; 2], force: [bool; 2]) -> Feed {
        let after = (!families[Afi::Ipv4 as usize]).then(|| {
            IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::BROADCAST, 32).expect("a /32"))
        });
        Feed {
            after,
            families,
            force,
        }
    }

    /// A walk that does what this one was doing and also `families`, forced where
    /// either was: from the start again (what the old one found is in the outbox).
    fn and(old: Option<&Feed>, families: [bool; 2], force: [bool; 2]) -> Feed {
        let (f, x) = old.map_or(([false; 2], [false; 2]), |o| (o.families, o.force));
        Feed::new(
            [f[0] || families[0], f[1] || families[1]],
            [x[0] || force[0], x[1] || force[1]],
        )
    }
}

/// Export decisions by attribute set: (the best path's attributes, as a pointer, and its
/// peer) → the attributes it holds alive (so that no other set can take its address) and
/// what is sent. A feed keeps one over its steps (a table's sets are scattered: a step
/// sees most of them for the first time); a policy change starts a new feed, and a new
/// memo with it.
#[derive(Debug, Default)]
pub(super) struct Memo(HashMap<(usize, PeerId), Decided>);

/// A walk's export decisions by attribute set (as [`Memo`]): the attributes held alive,
/// and the bucket of [`Fed`] their routes go to (None: not sent).
#[derive(Debug, Default)]
pub(super) struct FeedMemo(HashMap<(usize, PeerId), (Arc<PathAttrs>, Option<usize>)>);

/// A memo's entry: the attributes it was decided for (held alive), and what is sent.
type Decided = (Arc<PathAttrs>, Option<Arc<PathAttrs>>);

/// Octets a prefix takes on the wire (RFC 4271 §4.3: length, then the significant octets).
fn prefix_len(n: &IpNet) -> usize {
    1 + usize::from(n.prefix_len()).div_ceil(8)
}

/// The length of an UPDATE carrying `attrs` and `n` alone, as the encoder makes it.
fn update_len(attrs: &PathAttrs, n: &IpNet) -> usize {
    wire::encode_updates_within(&[], Some(attrs), &[*n], wire::MAX_EXTENDED_LEN)
        .first()
        .map_or(0, |m| m.len())
}

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

/// Marks `n` in `p`'s outbox with what the peer should have (`want`: announce, or None:
/// withdraw). What the peer already has cancels a queued change; `force` sends it again
/// all the same (a refresh).
fn enqueue(p: &mut PeerState, n: IpNet, want: Option<Arc<PathAttrs>>, force: bool) {
    if !p.outbox.fed.is_empty()
        || p.feed.is_some()
        || p.outbox.refresh[Afi::of(&n) as usize].is_some()
    {
        // A walk's find for `n` may be waiting: only an entry in `pending` overrides it,
        // so the change is recorded as it is, whatever the peer has now. (And while a
        // refresh of the family is owed, a route is sent again even if it is back to
        // what the peer has: the peer drops at EoRR what was not.)
        match want {
            Some(a) => p.outbox.push_announce(n, a),
            None => {
                if !p.too_large.is_empty() {
                    p.too_large.remove(&n);
                }
                p.outbox.push_withdraw(n);
            }
        }
        return;
    }
    // (A new session's first table: nothing sent yet, nothing to look up.)
    let sent = if p.adj_out.is_empty() {
        None
    } else {
        p.adj_out.get(&n)
    };
    let same = match (sent, &want) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
        _ => false,
    };
    if same && !(force && want.is_some()) {
        // What was queued is moot; a route not sent for its size may fit now, or be gone.
        p.outbox.pending.remove(&n);
        if want.is_none() {
            p.too_large.remove(&n);
        }
        return;
    }
    match want {
        None => {
            p.too_large.remove(&n);
            if sent.is_some() {
                p.outbox.push_withdraw(n);
            } else {
                p.outbox.pending.remove(&n);
            }
        }
        Some(a) => p.outbox.push_announce(n, a),
    }
}

/// [`enqueue`] of many, their attributes interned for `p` once per `Arc` they come in
/// (the memo's: once per attribute set, not per route).
fn enqueue_all(p: &mut PeerState, wants: Vec<(IpNet, Option<Arc<PathAttrs>>)>, force: bool) {
    let mut seen: HashMap<usize, Arc<PathAttrs>> = HashMap::default();
    for (n, want) in wants {
        let want = want.map(|a| {
            seen.entry(Arc::as_ptr(&a) as usize)
                .or_insert_with(|| p.outbox.intern(a))
                .clone()
        });
        enqueue(p, n, want, force);
    }
}

/// The withdrawals of the outbox that fit in `budget`, into `b`.
fn drain_withdrawals(p: &mut PeerState, b: &mut Batch, used: &mut usize, budget: usize) {
    let o = &mut p.outbox;
    while *used < budget {
        let Some(n) = o.withdraw.pop_front() else {
            break;
        };
        if o.pending.get(&n) != Some(&None) {
            continue; // changed again since
        }
        o.pending.remove(&n);
        if p.adj_out.remove(&n).is_some() {
            b.delta -= 1;
            b.withdrawn.push(n);
            *used += prefix_len(&n);
        }
    }
}

/// Moves what fits in `budget` from the outbox into `b`: withdrawals first, then the
/// buckets in the order they filled.
fn drain(p: &mut PeerState, b: &mut Batch, used: &mut usize, budget: usize, max: usize) {
    drain_fed(p, b, used, budget, max);
    if !p.outbox.fed.is_empty() {
        return;
    }
    drain_withdrawals(p, b, used, budget);
    let o = &mut p.outbox;
    while *used < budget {
        let Some(ptr) = o.order.pop_front() else {
            break;
        };
        let Some((key, mut prefixes)) = o.buckets.remove(&ptr) else {
            continue;
        };
        // The UPDATE's length without its NLRI, per family, once per bucket.
        let mut base: [Option<usize>; 2] = [None, None];
        let mut sent = Vec::new();
        let mut rest = Vec::new();
        let mut it = prefixes.drain(..);
        for n in it.by_ref() {
            // One lookup: taken out, and put back in the rare case it changed again since
            // (then it waits in another bucket, or is a withdrawal).
            match o.pending.remove(&n) {
                Some(Some(a)) if Arc::ptr_eq(&a, &key) => {}
                Some(other) => {
                    o.pending.insert(n, other);
                    continue;
                }
                None => continue,
            }
            if !admit(&mut p.adj_out, &mut p.too_large, b, n, &key, &mut base, max) {
                continue;
            }
            sent.push(n);
            *used += prefix_len(&n);
            if *used >= budget {
                rest.extend(it.by_ref());
                break;
            }
        }
        drop(it);
        if !sent.is_empty() {
            // (The bucket's header is paid once per message, about once per bucket.)
            *used += base.iter().flatten().max().copied().unwrap_or(0);
            b.announce.push((key.clone(), sent));
        }
        if !rest.is_empty() {
            // What did not fit goes first next time (the bucket was out of `order` and
            // out of the map; nothing joined it meanwhile).
            o.buckets.insert(ptr, (key, rest));
            o.order.push_front(ptr);
        }
    }
}

/// Puts `n` with `key` into the peer's Adj-RIB-Out, unless its UPDATE would be longer
/// than `max`: then (RFC 8654 §4) it is not sent, the peer must not keep an older version
/// of it either, and it is counted with its length. `base`: the UPDATE's length without
/// NLRI, per family, worked out once per bucket.
fn admit(
    adj_out: &mut AdjOut,
    too_large: &mut HashMap<IpNet, usize>,
    b: &mut Batch,
    n: IpNet,
    key: &Arc<PathAttrs>,
    base: &mut [Option<usize>; 2],
    max: usize,
) -> bool {
    let afi = Afi::of(&n);
    let overhead = *base[afi as usize].get_or_insert_with(|| wire::update_overhead(key, afi));
    let mut len = overhead + prefix_len(&n);
    if len + 1 >= max {
        // Near the limit: the UPDATE itself, to the octet.
        len = update_len(key, &n);
    }
    if len > max {
        b.too_large.push((n, len));
        too_large.insert(n, len);
        if adj_out.remove(&n).is_some() {
            b.delta -= 1;
            b.withdrawn.push(n);
        }
        return false;
    }
    if !too_large.is_empty() {
        too_large.remove(&n);
    }
    if adj_out.insert(n, key.clone()).is_none() {
        b.delta += 1;
    }
    true
}

/// Moves what fits in `budget` of what the walk found into `b`, bucket by bucket.
fn drain_fed(p: &mut PeerState, b: &mut Batch, used: &mut usize, budget: usize, max: usize) {
    let o = &mut p.outbox;
    let f = &mut o.fed;
    if !f.found.is_empty() {
        return; // (still walking)
    }
    while *used < budget && f.at < f.grouped.len() {
        let k = f.next;
        let end = f.starts[k + 1] as usize;
        if f.at >= end {
            f.next += 1;
            continue;
        }
        let key = f.sets[k].clone();
        let mut base: [Option<usize>; 2] = [None, None];
        let mut sent = Vec::new();
        while f.at < end && *used < budget {
            let n = f.grouped[f.at];
            f.at += 1;
            // Changed since the walk looked: that change goes instead, later.
            if !o.pending.is_empty() && o.pending.contains_key(&n) {
                continue;
            }
            if !admit(&mut p.adj_out, &mut p.too_large, b, n, &key, &mut base, max) {
                continue;
            }
            sent.push(n);
            *used += prefix_len(&n);
        }
        if !sent.is_empty() {
            // (The bucket's header is paid once per message, about once per bucket.)
            *used += base.iter().flatten().max().copied().unwrap_or(0);
            b.announce.push((key, sent));
        }
    }
    if f.at >= f.grouped.len() && !f.grouped.is_empty() {
        // All gone: the room back.
        *f = Fed::default();
    }
}
