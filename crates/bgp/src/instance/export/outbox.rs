//! A peer's outbox: what it is still to be sent (grouped by attribute set, as BIRD's
//! buckets are), what a walk of the Loc-RIB found for it, and what it was handed (its
//! Adj-RIB-Out); and how changes go in ([`enqueue`]) and batches come out ([`drain`]).
//! The export decision, which fills it, is the parent module's; its memos ([`Memo`],
//! [`FeedMemo`]) are here, kept in each peer's state beside its outbox.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::instance::PeerState;
use crate::rib::PeerId;
use crate::wire::{self, Afi, PathAttrs};

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
    pub(super) fn is_empty(&self) -> bool {
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
pub(in crate::instance) struct Outbox {
    /// Prefix → what the peer should get: an announcement with these attributes (the
    /// bucket's own `Arc`), or a withdrawal (None).
    pub(super) pending: HashMap<IpNet, Option<Arc<PathAttrs>>>,
    /// Announcements by attribute set, keyed by the set's interned `Arc` (see `attrs`),
    /// and the order the buckets filled in. A bucket's prefix that `pending` no longer
    /// agrees with was changed again since, and is skipped.
    buckets: HashMap<usize, (Arc<PathAttrs>, Vec<IpNet>)>,
    order: VecDeque<usize>,
    /// Every attribute set this peer is sent, once: equal sets are one `Arc`, so a bucket
    /// is found by pointer (a table's million routes hash no attributes), and the
    /// Adj-RIB-Out holds a pointer per route.
    pub(super) attrs: OutAttrs,
    withdraw: VecDeque<IpNet>,
    /// What a walk of the Loc-RIB found, grouped by attribute set: drained before
    /// anything else (see [`Fed`]).
    pub(super) fed: Fed,
    /// Per family, a refresh asked for by the peer and not yet answered to its end: until
    /// its EoRR (or End-of-RIB) goes, every route of the family is sent again, even one
    /// that changes back to what the peer had meanwhile.
    pub(super) refresh: [Option<Refresh>; 2],
    /// End-of-RIB owed after the feed (the first table of the session).
    pub(super) end_of_rib: bool,
}

impl Outbox {
    pub(in crate::instance) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.fed.is_empty()
    }

    pub(in crate::instance) fn clear(&mut self) {
        *self = Outbox::default();
    }

    /// Gives back the room of an emptied outbox (a full table's, after a feed).
    pub(super) fn shrink(&mut self) {
        if self.pending.capacity() > 4096 {
            self.pending = HashMap::default();
            self.buckets = HashMap::default();
            self.order = VecDeque::new();
            self.withdraw = VecDeque::new();
        }
    }

    /// `a` as this peer's one `Arc` of that set.
    pub(in crate::instance) fn intern(&mut self, a: Arc<PathAttrs>) -> Arc<PathAttrs> {
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

    pub(super) fn push_withdraw(&mut self, n: IpNet) {
        self.withdraw.push_back(n);
        self.pending.insert(n, None);
    }

    /// Before a new walk: what the last one found and has not gone yet joins the other
    /// announcements (the new walk's finds go first, and a prefix it finds again is
    /// taken from there).
    pub(super) fn unfeed(&mut self) {
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
pub(super) struct Refresh {
    /// Framed by BoRR and EoRR (both sides announced enhanced route refresh); else an
    /// End-of-RIB follows the routes.
    pub(super) enhanced: bool,
    /// Its BoRR went (or, without markers, its first routes may go).
    pub(super) begun: bool,
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
pub(in crate::instance) struct Fed {
    /// Bucket → its set (interned).
    pub(super) sets: Vec<Arc<PathAttrs>>,
    /// The set's interned pointer → its bucket (during the walk).
    index: HashMap<usize, usize>,
    /// The walk's finds as it goes: bucket and prefix (one flat vector: no allocation
    /// per set).
    pub(super) found: Vec<(u32, IpNet)>,
    /// Once the walk is done: the finds grouped by bucket, in walk order within each,
    /// bucket `k` at `grouped[starts[k]..starts[k + 1]]`.
    grouped: Vec<IpNet>,
    starts: Vec<u32>,
    /// The bucket being sent, and the first prefix of `grouped` not yet sent.
    next: usize,
    at: usize,
}

impl Fed {
    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty() && self.at >= self.grouped.len()
    }

    /// The bucket of interned set `a`.
    pub(super) fn bucket(&mut self, a: &Arc<PathAttrs>) -> usize {
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
    pub(super) fn group(&mut self) {
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
pub(in crate::instance) struct AdjOut {
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
    pub(in crate::instance) fn get(&self, n: &IpNet) -> Option<&Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.get(&key4(n)),
            IpNet::V6(n) => self.v6.get(n),
        }
    }

    pub(in crate::instance) fn contains_key(&self, n: &IpNet) -> bool {
        self.get(n).is_some()
    }

    pub(in crate::instance) fn insert(
        &mut self,
        n: IpNet,
        a: Arc<PathAttrs>,
    ) -> Option<Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.insert(key4(&n), a),
            IpNet::V6(n) => self.v6.insert(n, a),
        }
    }

    pub(in crate::instance) fn remove(&mut self, n: &IpNet) -> Option<Arc<PathAttrs>> {
        match n {
            IpNet::V4(n) => self.v4.remove(&key4(n)),
            IpNet::V6(n) => self.v6.remove(n),
        }
    }

    pub(in crate::instance) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(in crate::instance) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub(in crate::instance) fn clear(&mut self) {
        *self = AdjOut::default();
    }

    /// Room for `n` more routes (of IPv4, the table's bulk).
    pub(in crate::instance) fn reserve(&mut self, n: usize) {
        self.v4.reserve(n);
    }

    pub(in crate::instance) fn iter(&self) -> impl Iterator<Item = (IpNet, &Arc<PathAttrs>)> {
        self.v4
            .iter()
            .map(|(k, a)| (from_key4(*k), a))
            .chain(self.v6.iter().map(|(n, a)| (IpNet::V6(*n), a)))
    }

    pub(in crate::instance) fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(n, _)| n)
    }
}

/// The attribute sets a peer is sent, each once (BIRD's attribute cache, per peer). Sets
/// nothing holds any more go when the set has doubled since the last sweep.
#[derive(Debug, Default)]
pub(in crate::instance) struct OutAttrs {
    set: std::collections::HashSet<Arc<PathAttrs>, rustc_hash::FxBuildHasher>,
    sweep_at: usize,
}

impl OutAttrs {
    pub(super) fn intern(&mut self, a: Arc<PathAttrs>) -> Arc<PathAttrs> {
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
pub(in crate::instance) struct Feed {
    pub(super) after: Option<IpNet>,
    /// The families it goes through (by `Afi as usize`).
    pub(super) families: [bool; 2],
    /// Per family: send what the peer has again even where it is unchanged (a refresh).
    pub(super) force: [bool; 2],
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
    pub(super) fn and(old: Option<&Feed>, families: [bool; 2], force: [bool; 2]) -> Feed {
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
pub(in crate::instance) struct Memo(pub(super) HashMap<(usize, PeerId), Decided>);

/// A walk's export decisions by attribute set (as [`Memo`]): the attributes held alive,
/// and the bucket of [`Fed`] their routes go to (None: not sent).
#[derive(Debug, Default)]
pub(in crate::instance) struct FeedMemo(
    pub(super) HashMap<(usize, PeerId), (Arc<PathAttrs>, Option<usize>)>,
);

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

/// Marks `n` in `p`'s outbox with what the peer should have (`want`: announce, or None:
/// withdraw). What the peer already has cancels a queued change; `force` sends it again
/// all the same (a refresh).
pub(super) fn enqueue(p: &mut PeerState, n: IpNet, want: Option<Arc<PathAttrs>>, force: bool) {
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
pub(super) fn enqueue_all(
    p: &mut PeerState,
    wants: Vec<(IpNet, Option<Arc<PathAttrs>>)>,
    force: bool,
) {
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
pub(super) fn drain(p: &mut PeerState, b: &mut Batch, used: &mut usize, budget: usize, max: usize) {
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
