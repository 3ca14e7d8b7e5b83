//! A routing instance, sans-IO: its peers (customer connections and the fabric), their
//! Adj-RIBs, the Loc-RIB and the policy of DESIGN.md §2. Events in, actions out — updates
//! to send and kernel routes to program — so every routing rule is unit-tested.
//!
//! ```text
//!  customer A ─┐  import: default deny, martians, VPC hijack, ASN rules, max-prefix
//!  customer B ─┼──▶ Adj-RIB-In ──▶ Loc-RIB (best + ECMP) ──▶ kernel routes
//!  fabric  ────┘                        │
//!                                       ├──▶ fabric:    customer routes, next hop self
//!                                       └──▶ customers: VPC prefixes while the fabric
//!                                                       covers them; never another
//!                                                       customer's routes (no transit)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::fsm::Negotiated;
use crate::policy::{self, NeighborPolicy, Reject, Role};
use crate::rib::{LocRib, Path, PeerId};
use crate::wire::{Afi, Notification, Origin, PathAttrs, Update, refresh};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrefixAction {
    Teardown,
    Discard,
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceParams {
    pub local_asn: u32,
    pub vpc_prefixes: Vec<IpNet>,
    pub max_prefixes: u32,
    pub max_prefix_action: MaxPrefixAction,
    pub max_prefix_idle: Duration,
    /// A peer's prefixes of a family reaching this share of its limit (percent, 1–100; 0:
    /// never) raise a warning ([`Action::PrefixWarning`], [`PeerStats::prefix_warning`])
    /// before the limit's action comes.
    pub max_prefix_warning: u8,
    /// Announced to every customer unconditionally (a public connection's cloud
    /// services); VPC prefixes, by contrast, only while the fabric covers them.
    pub announce: Vec<IpNet>,
    /// When set, a customer's routes are accepted only inside these (a public
    /// connection's registered prefixes).
    pub accept_only: Option<Vec<IpNet>>,
    /// We restarted with the kernel's routes kept (RFC 4724 restarting speaker): nothing
    /// is sent to any peer, and the caller keeps the kernel as it is, until every peer
    /// has sent its End-of-RIB ([`Instance::awaiting_end_of_rib`]) or the caller's
    /// selection deferral timer ends; then [`Instance::end_restart`].
    pub restarting: bool,
    /// Keep the table of kernel routes ([`Action::Route`], [`Instance::kernel_routes`]);
    /// off for a speaker that forwards nothing (`cic bgp run`).
    pub kernel: bool,
    /// Customers' routes that RPKI finds invalid (RFC 6811) are refused, once a cache has
    /// synced (a public connection's instance, and private ones where the operator says).
    pub rpki_reject_invalid: bool,
}

/// How long a restarted peer's stale routes wait for its End-of-RIB once it is back
/// (FRR's and Cisco's stale-path time).
pub const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// Which of a peer's routes the looking glass shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSet {
    Received,
    Accepted,
    Advertised,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The resource this session belongs to (connection id, or routing instance id for
    /// the fabric), for status and logs.
    pub name: String,
    pub role: Role,
    /// The peer's address: where the session goes, and for IPv4 where its routes are
    /// forwarded.
    pub address: IpAddr,
    /// Our address on the shared subnet: the session's source, and of its family the next
    /// hop we announce (unspecified: the local address of the session's connection, once
    /// it is up).
    pub local_address: IpAddr,
    /// Our IPv6 next hop toward this peer (`None`: the IPv4-mapped form of the IPv4 one,
    /// RFC 4291 §2.5.5.2, as FRR and BIRD announce over an IPv4 session).
    pub local_address6: Option<Ipv6Addr>,
    pub asn: u32,
    /// Import and export of a [`Role::Neighbor`] (ignored for the edge's roles).
    pub policy: Option<Arc<NeighborPolicy>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PeerUp {
        peer: PeerId,
        negotiated: Negotiated,
    },
    PeerDown {
        peer: PeerId,
        /// Graceful restart applies (see `fsm::Output::Down`): keep its routes as stale.
        graceful: bool,
    },
    /// A timer of [`Action::StaleTimer`] ran out.
    StaleTimer {
        peer: PeerId,
        generation: u64,
    },
    Update {
        peer: PeerId,
        update: Update,
    },
    /// A ROUTE-REFRESH of `afi` from the peer: a request for our routes, or the beginning
    /// or end of its own re-advertisement (`subtype`, see [`refresh`]).
    RouteRefresh {
        peer: PeerId,
        afi: Afi,
        subtype: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    Replace {
        prefix: IpNet,
        nexthops: Vec<IpAddr>,
    },
    Remove {
        prefix: IpNet,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The peer has something to be sent: the driver takes it ([`Instance::take`]) as the
    /// peer's connection takes data.
    Output {
        peer: PeerId,
    },
    Route(RouteChange),
    /// Send [`Event::StaleTimer`] after this long: a restarting peer's stale routes go
    /// then unless its End-of-RIB came first.
    StaleTimer {
        peer: PeerId,
        generation: u64,
        after: Duration,
    },
    /// Close the session with this notification and keep it down for a while.
    TearDown {
        peer: PeerId,
        notification: Notification,
        restart_after: Duration,
    },
    /// Ask the peer for its routes of `afi` again (a ROUTE-REFRESH request, RFC 2918).
    RequestRefresh {
        peer: PeerId,
        afi: Afi,
    },
    /// The peer's prefixes of `afi` reached the warning share of its limit (once, until
    /// they fall below it again).
    PrefixWarning {
        peer: PeerId,
        afi: Afi,
        prefixes: u32,
        limit: u32,
    },
    /// Routes of the peer ignored, not refused by policy: a NEXT_HOP that is our own
    /// address (RFC 4271 §6.3: logged, no NOTIFICATION).
    Ignored {
        peer: PeerId,
        prefixes: Vec<IpNet>,
        why: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub received: u32,
    pub accepted: u32,
    pub advertised: u32,
    /// Prefixes ignored because of the max-prefix limit (action "discard").
    pub discarded: u32,
    /// Routes policy would send the peer that its UPDATE length does not allow.
    pub too_large: u32,
    pub over_limit: bool,
    /// Its prefixes of a family are at or above the warning share of the limit.
    pub prefix_warning: bool,
    /// Routes kept from before the peer restarted, not yet sent again (RFC 4724).
    pub stale: u32,
    /// UPDATEs this session whose routes were withdrawn because an attribute was
    /// malformed (RFC 7606 "treat-as-withdraw").
    pub treated_as_withdraw: u32,
    /// Malformed attributes dropped this session, the route kept (RFC 7606).
    pub attributes_discarded: u32,
    /// The latest of either, as the decoder described it.
    pub last_malformed: Option<String>,
}

#[derive(Debug)]
struct PeerState {
    spec: PeerSpec,
    /// Our address toward the peer: the spec's, or our end of the connection.
    local_address: IpAddr,
    up: Option<Negotiated>,
    adj_in: AdjIn,
    /// What the peer was handed: its Adj-RIB-Out. (A hash map: a table goes in in the
    /// order of its attribute sets, not of its prefixes.)
    adj_out: export::AdjOut,
    /// What it is still to be sent, and the walk of its full table under way.
    outbox: export::Outbox,
    feed: Option<export::Feed>,
    feed_memo: export::FeedMemo,
    /// Routes not sent because their UPDATE would be too long for it (octets).
    too_large: rustc_hash::FxHashMap<IpNet, usize>,
    discarded: u32,
    over_limit: bool,
    /// Per family: at or above the warning share of the limit (see `warn_prefixes`).
    near_limit: [bool; 2],
    treated_as_withdraw: u32,
    attributes_discarded: u32,
    last_malformed: Option<String>,
    /// Prefixes of `adj_in` kept from before the peer restarted.
    stale: BTreeSet<IpNet>,
    /// Which stale timer counts (a newer one replaces an older).
    stale_generation: u64,
    /// End-of-RIB received in this session, per family ([`Afi`] as index).
    end_of_rib: [bool; 2],
}

impl PeerState {
    /// Our IPv4 next hop toward this peer: our address, when the session is over IPv4.
    fn local_address4(&self) -> Option<Ipv4Addr> {
        match self.local_address {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// Our IPv6 next hop toward this peer, when the session carries IPv6: the spec's, else
    /// our address when the session is over IPv6, else the IPv4-mapped form of ours.
    fn local_address6(&self) -> Option<Ipv6Addr> {
        self.up.as_ref().filter(|n| n.ipv6).map(|_| {
            self.spec
                .local_address6
                .unwrap_or(match self.local_address {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                })
        })
    }
}

#[derive(Debug)]
pub struct Instance {
    params: InstanceParams,
    peers: BTreeMap<PeerId, PeerState>,
    next_peer: PeerId,
    rib: LocRib,
    kernel: BTreeMap<IpNet, Vec<IpAddr>>,
    /// Static routes of customer connections, with the import verdict of each.
    statics: BTreeMap<PeerId, BTreeMap<IpNet, Result<(), Reject>>>,
    /// Draining for maintenance (RFC 8326): every route we send carries GRACEFUL_SHUTDOWN.
    graceful_shutdown: bool,
    /// Every distinct set of path attributes, once: a table's routes share a few of them.
    attrs: Interner,
    /// Restarting: route selection is deferred, nothing is sent (see `InstanceParams`).
    deferring: bool,
    /// The RPKI data in force (`None`: no cache has synced).
    vrps: Option<Arc<crate::rpki::Vrps>>,
}

/// Prefixes whose routes a change touched (or that are to be looked at again): sorted,
/// each once. A sorted vector, not a `BTreeSet`: an UPDATE's prefixes arrive in order, and
/// a full table makes a set of a few prefixes some 60,000 times.
#[derive(Debug, Default)]
struct Touched(Vec<IpNet>);

impl Touched {
    fn new(mut v: Vec<IpNet>) -> Self {
        // (`sort` finds an already sorted vector in one pass.)
        v.sort();
        v.dedup();
        Touched(v)
    }

    fn iter(&self) -> std::slice::Iter<'_, IpNet> {
        self.0.iter()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains(&self, n: &IpNet) -> bool {
        self.0.binary_search(n).is_ok()
    }

    fn extend(&mut self, more: impl IntoIterator<Item = IpNet>) {
        let len = self.0.len();
        self.0.extend(more);
        if self.0.len() > len {
            *self = Touched::new(std::mem::take(&mut self.0));
        }
    }
}

impl From<BTreeSet<IpNet>> for Touched {
    fn from(s: BTreeSet<IpNet>) -> Self {
        Touched(s.into_iter().collect())
    }
}

/// Shares equal path attributes between routes (BIRD's attribute cache). Sets no route
/// uses any more are dropped when the set has doubled since the last sweep.
#[derive(Debug, Default)]
struct Interner {
    set: std::collections::HashSet<Arc<PathAttrs>>,
    sweep_at: usize,
}

impl Interner {
    fn intern(&mut self, a: PathAttrs) -> Arc<PathAttrs> {
        if let Some(have) = self.set.get(&a) {
            return have.clone();
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|x| Arc::strong_count(x) > 1);
            self.sweep_at = (self.set.len() * 2).max(1024);
        }
        let a = Arc::new(a);
        self.set.insert(a.clone());
        a
    }
}

/// The GRACEFUL_SHUTDOWN well-known community, 65535:0 (RFC 8326).
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// Loc-RIB key bit of a connection's static routes: they sit beside its BGP routes, and
/// with an empty AS_PATH they win over a BGP route of the same prefix.
const STATIC: PeerId = 1 << 31;

impl Instance {
    pub fn new(params: InstanceParams) -> Self {
        Instance {
            deferring: params.restarting,
            vrps: None,
            params,
            peers: BTreeMap::new(),
            next_peer: 1,
            rib: LocRib::default(),
            kernel: BTreeMap::new(),
            statics: BTreeMap::new(),
            graceful_shutdown: false,
            attrs: Interner::default(),
        }
    }

    pub fn params(&self) -> &InstanceParams {
        &self.params
    }

    pub fn add_peer(&mut self, spec: PeerSpec) -> PeerId {
        let id = self.next_peer;
        self.next_peer = (self.next_peer + 1) % STATIC;
        self.peers.insert(
            id,
            PeerState {
                local_address: spec.local_address,
                spec,
                up: None,
                adj_in: AdjIn::default(),
                adj_out: Default::default(),
                outbox: export::Outbox::default(),
                feed: None,
                feed_memo: Default::default(),
                too_large: Default::default(),
                discarded: 0,
                over_limit: false,
                near_limit: [false; 2],
                treated_as_withdraw: 0,
                attributes_discarded: 0,
                last_malformed: None,
                stale: BTreeSet::new(),
                stale_generation: 0,
                end_of_rib: [false; 2],
            },
        );
        id
    }

    /// Whether route selection is still deferred after our restart.
    pub fn deferring(&self) -> bool {
        self.deferring
    }

    /// The peers whose routes are not all in yet: not up, or up with graceful restart
    /// and no End-of-RIB yet. (A peer without the capability sends no End-of-RIB; its
    /// routes are taken as complete once it is up.)
    pub fn awaiting_end_of_rib(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| match &p.up {
                None => true,
                Some(n) => {
                    n.graceful_restart.is_some() && n.families().any(|a| !p.end_of_rib[a as usize])
                }
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ends the deferral after our restart: every peer that is up gets the full table
    /// and End-of-RIB, and the kernel routes (as [`Instance::kernel_routes`]) are final.
    pub fn end_restart(&mut self) -> Vec<Action> {
        if !self.deferring {
            return vec![];
        }
        self.deferring = false;
        let mut out = Vec::new();
        for peer in self.up_peers() {
            out.extend(self.start_feed(peer, true));
        }
        out
    }

    /// Drops a peer's stale routes of the families `which` picks; returns the prefixes
    /// whose selection changed.
    fn flush_stale(&mut self, peer: PeerId, which: impl Fn(Afi) -> bool) -> BTreeSet<IpNet> {
        let Instance { peers, rib, .. } = self;
        let Some(p) = peers.get_mut(&peer) else {
            return BTreeSet::new();
        };
        let (stale, kept): (BTreeSet<IpNet>, BTreeSet<IpNet>) = std::mem::take(&mut p.stale)
            .into_iter()
            .partition(|n| which(Afi::of(n)));
        p.stale = kept;
        stale
            .into_iter()
            .filter(|n| p.adj_in.forget(rib, peer, *n).1)
            .collect()
    }

    /// Removes a peer and everything learned from it, and its static routes.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<Action> {
        let mut out = self.set_static_routes(peer, &[]);
        out.extend(self.handle(Event::PeerDown {
            peer,
            graceful: false,
        }));
        self.peers.remove(&peer);
        self.statics.remove(&peer);
        out
    }

    /// Sets the static routes of a customer connection: `prefix via` the customer's
    /// address, whether or not its BGP session is up. They pass the same prefix checks as
    /// announced routes (no martians, nothing overlapping a VPC prefix); refused ones are
    /// kept with the reason, see [`Instance::rejected_statics`].
    pub fn set_static_routes(&mut self, peer: PeerId, prefixes: &[IpNet]) -> Vec<Action> {
        if self.peers.get(&peer).map(|p| p.spec.role) != Some(Role::Customer) {
            return vec![];
        }
        let old = self
            .statics
            .insert(peer, prefixes.iter().map(|n| (*n, Ok(()))).collect());
        let mut touched: BTreeSet<IpNet> = BTreeSet::new();
        for n in old.into_iter().flat_map(|m| m.into_keys()) {
            if self.rib.set(n, peer | STATIC, None) {
                touched.insert(n);
            }
        }
        touched.extend(self.judge_statics(peer));
        self.apply(touched)
    }

    /// Starts or ends a maintenance drain (RFC 8326): every route is sent again, with the
    /// GRACEFUL_SHUTDOWN community (and LOCAL_PREF 0 toward an iBGP fabric) while draining,
    /// so that peers move traffic to other paths before the sessions go down.
    pub fn set_graceful_shutdown(&mut self, on: bool) -> Vec<Action> {
        if self.graceful_shutdown == on {
            return vec![];
        }
        self.graceful_shutdown = on;
        if self.deferring {
            return vec![]; // the first full table carries it
        }
        let mut out = Vec::new();
        for peer in self.up_peers() {
            out.extend(self.start_feed(peer, false));
        }
        out
    }

    /// The peers whose sessions are up.
    fn up_peers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.up.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Judges `peer`'s static routes again and puts the accepted ones in the Loc-RIB;
    /// returns the prefixes whose selection changed.
    fn judge_statics(&mut self, peer: PeerId) -> BTreeSet<IpNet> {
        let Some(p) = self.peers.get(&peer) else {
            return BTreeSet::new();
        };
        let path = Path {
            peer: peer | STATIC,
            role: Role::Customer,
            // (The edge's connections, which have static routes, are IPv4.)
            nexthop: match p.spec.address {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            },
            peer_router_id: Ipv4Addr::UNSPECIFIED,
            ebgp: true,
            attrs: Arc::new(PathAttrs {
                origin: Origin::Incomplete,
                ..Default::default()
            }),
        };
        let mut touched = BTreeSet::new();
        let Some(statics) = self.statics.get_mut(&peer) else {
            return touched;
        };
        for (n, verdict) in statics.iter_mut() {
            *verdict = policy::customer_prefix(&self.params.vpc_prefixes, n);
            if self
                .rib
                .set(*n, peer | STATIC, verdict.is_ok().then(|| path.clone()))
            {
                touched.insert(*n);
            }
        }
        touched
    }

    /// The address of our end of `peer`'s connection, for a peer configured without one
    /// (the next hop we announce to it).
    pub fn set_local_address(&mut self, peer: PeerId, addr: IpAddr) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.local_address = addr;
        }
    }

    pub fn set_vpc_prefixes(&mut self, prefixes: Vec<IpNet>) -> Vec<Action> {
        let mut touched: BTreeSet<IpNet> = self.params.vpc_prefixes.iter().copied().collect();
        touched.extend(prefixes.iter().copied());
        self.params.vpc_prefixes = prefixes;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            touched.extend(self.rejudge(id, None));
            touched.extend(self.judge_statics(id));
        }
        self.apply(touched)
    }

    pub fn handle(&mut self, ev: Event) -> Vec<Action> {
        match ev {
            Event::PeerUp { peer, negotiated } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return vec![];
                };
                // Back from a restart with its forwarding kept: its stale routes of
                // that family wait for its End-of-RIB. The others go now (RFC 4724 §4.2).
                let kept = |afi: Afi| {
                    negotiated.carries(afi)
                        && negotiated
                            .graceful_restart
                            .as_ref()
                            .and_then(|g| g.family(afi))
                            == Some(true)
                };
                let kept = [kept(Afi::Ipv4), kept(Afi::Ipv6)];
                p.up = Some(negotiated);
                p.adj_out.clear();
                p.outbox.clear();
                p.feed = None;
                p.feed_memo = Default::default();
                p.too_large.clear();
                p.over_limit = false;
                p.discarded = 0;
                p.treated_as_withdraw = 0;
                p.attributes_discarded = 0;
                p.near_limit = [false; 2];
                p.last_malformed = None;
                p.end_of_rib = [false; 2];
                let mut out = Vec::new();
                let mut touched = BTreeSet::new();
                if !p.stale.is_empty() {
                    p.stale_generation += 1;
                    if kept.contains(&true) {
                        out.push(Action::StaleTimer {
                            peer,
                            generation: p.stale_generation,
                            after: STALE_PATH_TIME,
                        });
                    }
                    touched = self.flush_stale(peer, |afi| !kept[afi as usize]);
                }
                out.extend(self.apply(touched));
                if self.deferring {
                    return out; // everything goes at the end of our restart
                }
                // The full table, then End-of-RIB.
                out.extend(self.start_feed(peer, true));
                out
            }
            Event::PeerDown { peer, graceful } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return vec![];
                };
                // Helper (RFC 4724 §4.2): a peer that lost its connection without a
                // NOTIFICATION keeps its routes of the families its capability covers,
                // marked stale, for the restart time it announced.
                let gr =
                    p.up.as_ref()
                        .and_then(|n| n.graceful_restart.clone())
                        .filter(|g| graceful && g.restart_time > 0);
                let covered = |afi: Afi| gr.as_ref().is_some_and(|g| g.family(afi).is_some());
                let any_covered = Afi::BOTH.into_iter().any(covered);
                p.up = None;
                p.adj_out.clear();
                p.outbox.clear();
                p.feed = None;
                p.feed_memo = Default::default();
                p.too_large.clear();
                let (kept, gone): (Vec<IpNet>, Vec<IpNet>) = p
                    .adj_in
                    .received(&self.rib, peer)
                    .into_iter()
                    .map(|(n, ..)| n)
                    .partition(|n| covered(Afi::of(n)));
                let mut out = Vec::new();
                match gr.filter(|_| any_covered) {
                    Some(g) => {
                        p.stale = kept.into_iter().collect();
                        p.stale_generation += 1;
                        out.push(Action::StaleTimer {
                            peer,
                            generation: p.stale_generation,
                            after: Duration::from_secs(g.restart_time.into()),
                        });
                    }
                    None => p.stale.clear(),
                }
                let touched: Vec<IpNet> = gone
                    .into_iter()
                    .filter(|n| p.adj_in.forget(&mut self.rib, peer, *n).1)
                    .collect();
                out.extend(self.apply(Touched::new(touched)));
                out
            }
            Event::StaleTimer { peer, generation } => {
                if self
                    .peers
                    .get(&peer)
                    .is_none_or(|p| p.stale_generation != generation)
                {
                    return vec![];
                }
                let touched = self.flush_stale(peer, |_| true);
                self.apply(touched)
            }
            Event::Update { peer, update } => self.update(peer, update),
            Event::RouteRefresh {
                peer,
                afi,
                subtype: refresh::BEGIN,
            } => self.begin_refresh(peer, afi),
            Event::RouteRefresh {
                peer,
                afi,
                subtype: refresh::END,
            } => {
                // What the peer did not send again between BoRR and EoRR is gone.
                let touched = self.flush_stale(peer, |a| a == afi);
                self.apply(touched)
            }
            Event::RouteRefresh { peer, afi, .. } => {
                if self.deferring {
                    // Its End-of-RIB would end the peer's wait for our table too early.
                    return vec![];
                }
                self.start_refresh(peer, afi)
            }
        }
    }

    /// After the Loc-RIB changed for `touched`: kernel routes and exports follow.
    fn apply(&mut self, touched: impl Into<Touched>) -> Vec<Action> {
        let touched = touched.into();
        let mut out = Vec::new();
        if self.params.kernel {
            for n in touched.iter() {
                let want: Vec<IpAddr> = self
                    .rib
                    .selected(n)
                    .map(|s| s.iter().map(|p| p.forward_to(Afi::of(n))).collect())
                    .unwrap_or_default();
                let have = self.kernel.get(n);
                if want.is_empty() {
                    if self.kernel.remove(n).is_some() {
                        out.push(Action::Route(RouteChange::Remove { prefix: *n }));
                    }
                } else if have != Some(&want) {
                    self.kernel.insert(*n, want.clone());
                    out.push(Action::Route(RouteChange::Replace {
                        prefix: *n,
                        nexthops: want,
                    }));
                }
            }
        }
        out.extend(self.export_changes(touched));
        out
    }
}

mod export;
mod import;
mod queries;
pub use export::{Batch, FEED_STEP};
use import::AdjIn;

#[cfg(test)]
mod replay;
#[cfg(test)]
mod tests;
