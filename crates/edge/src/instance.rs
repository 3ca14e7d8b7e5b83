//! One routing instance on this edge: its namespace, links, addresses, BGP speaker, BFD
//! sessions beside the BGP sessions, and the task that keeps the kernel's routes equal to
//! the speaker's.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use cic_bfd::driver::Bfd;
use cic_bgp::driver::{InstanceHandle, KernelRoutes, PeerConfig, spawn_instance_listening};
use cic_bgp::instance::RouteSet;
use cic_bgp::rib::PeerId;
use cic_dataplane::{Netlink, PROTO_BGP, netns};
use cic_model::edge::{
    BfdSettings, BfdStatus, ConnectionConfig, EdgeConfig, Family, InstanceConfig, ResourceError,
    RouteDirection, RouteEntry,
};
use ipnet::IpNet;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::failure::Failure;

mod bfd;
mod bfd_book;
mod links;
mod peers;
mod routes;

use self::bfd::{BfdLink, bfd_config, take_down_on_failure};
pub use self::bfd_book::{BFD_STATE_DIR, BfdBook};
use self::links::wanted_links;
use self::peers::{customer_peer, fabric_peer, params};
use self::routes::{
    PROTO_STATIC, program_routes, source_rules, static_service_routes, sync_routes,
};

/// Name of a connection's interface: the first 15 characters of its id (IFNAMSIZ).
pub fn ifname(connection_id: &str) -> String {
    connection_id.chars().take(15).collect()
}

pub const FABRIC_IF: &str = "fabric0";

/// Set in each instance's namespace. IPv4 forwarding; IPv6: forwarding, and links made
/// from here on take no router advertisements, skip duplicate address detection (a
/// point-to-point peering, RFC 6164) and keep their addresses while their carrier is
/// down, as IPv4 does.
const NAMESPACE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv6/conf/default/forwarding", "1"),
    ("net/ipv6/conf/all/accept_ra", "0"),
    ("net/ipv6/conf/default/accept_ra", "0"),
    ("net/ipv6/conf/all/accept_dad", "0"),
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/keep_addr_on_down", "1"),
    ("net/ipv6/conf/default/keep_addr_on_down", "1"),
];

/// The key of a peer in an instance: the connection id (or `fabric:<instance>`) for its
/// IPv4 session, with `/ipv6` for its IPv6 one.
pub fn peer_key(resource: &str, family: Family) -> String {
    match family {
        Family::Ipv4 => resource.to_string(),
        Family::Ipv6 => format!("{resource}/ipv6"),
    }
}

pub struct Instance {
    pub id: String,
    pub ns: String,
    nl: Netlink,
    bgp: InstanceHandle,
    vpc_prefixes: Vec<IpNet>,
    /// What the speaker was started with and cannot change while running: the accepted
    /// prefixes (of a public connection).
    fixed: Option<Vec<IpNet>>,
    /// What it announces unconditionally (a public connection's services, with static
    /// routing), changed in the running speaker.
    announce: Vec<IpNet>,
    /// The speaker's peers by connection id (or `fabric:…`).
    peers: BTreeMap<String, Peer>,
    routes_task: JoinHandle<()>,
    route_error: Arc<Mutex<Option<Failure>>>,
    /// Tells the routes task to read the kernel's routes again: links or addresses
    /// changed, and the kernel removes the routes through a link that goes away.
    resync: Arc<tokio::sync::Notify>,
    /// The namespace's BFD task, or why it could not start.
    bfd: Result<Bfd, String>,
    /// Started after `cic edge` restarted: BFD sessions carry on where they were.
    restarted: bool,
    /// Where the BFD sessions' snapshots are kept for a restarted agent.
    bfd_book: Arc<BfdBook>,
    /// The connections of the config it was last applied with.
    connections: Vec<String>,
    /// Whose each of its links is, by index (see [`TrafficSource`]).
    traffic_links: Arc<Mutex<BTreeMap<u32, Option<String>>>>,
}

/// An instance's namespace and its connections, for reading their interface counters.
pub struct TrafficSource {
    nl: Netlink,
    connections: std::collections::BTreeSet<String>,
    /// Whose each of the namespace's links is (by its alias), by index, as the last dump
    /// of them said.
    links: Arc<Mutex<BTreeMap<u32, Option<String>>>>,
}

impl TrafficSource {
    /// Each connection's interface counters, by connection id. The counters alone are
    /// read (`RTM_GETSTATS`) while the namespace has the links of the last dump of them,
    /// by index; the links again (whose aliases say whose they are) when one was made or
    /// removed since.
    pub async fn read(&self) -> Vec<(String, cic_model::metrics::Traffic)> {
        if let Ok(counters) = self.nl.counters().await {
            let known = self.links.lock().unwrap_or_else(|e| e.into_inner());
            if !known.is_empty() && known.keys().eq(counters.keys()) {
                return counters
                    .iter()
                    .filter_map(|(index, c)| {
                        let owner = known.get(index)?.as_ref()?;
                        self.connections
                            .contains(owner)
                            .then(|| (owner.clone(), traffic(c)))
                    })
                    .collect();
            }
        }
        let Ok(links) = self.nl.links().await else {
            return vec![];
        };
        let owner = |l: &cic_dataplane::Link| {
            let o = l.alias.as_deref()?.split(' ').next()?;
            (!o.starts_with("fabric:")).then(|| o.to_string())
        };
        // A link made a moment ago may not have its alias yet (it is set by a second
        // request, in the link's new namespace): the next read dumps the links again
        // rather than keep it as no one's.
        let whole = links.iter().all(|l| l.name == "lo" || l.alias.is_some());
        *self.links.lock().unwrap_or_else(|e| e.into_inner()) = if whole {
            links.iter().map(|l| (l.index, owner(l))).collect()
        } else {
            BTreeMap::new()
        };
        links
            .iter()
            .filter_map(|l| {
                let o = owner(l)?;
                self.connections
                    .contains(&o)
                    .then(|| (o, traffic(&l.counters)))
            })
            .collect()
    }
}

/// A connection's traffic from its link's counters: what the link receives goes to the
/// cloud.
fn traffic(c: &cic_dataplane::LinkCounters) -> cic_model::metrics::Traffic {
    cic_model::metrics::Traffic {
        bytes_to_cloud: c.rx_bytes,
        bytes_from_cloud: c.tx_bytes,
        packets_to_cloud: c.rx_packets,
        packets_from_cloud: c.tx_packets,
        dropped_packets_to_cloud: c.rx_dropped,
        dropped_packets_from_cloud: c.tx_dropped,
        error_packets_to_cloud: c.rx_errors,
        error_packets_from_cloud: c.tx_errors,
    }
}

/// What a peer was added under; any change but BFD's timers or BGP damping makes a new
/// session (those are given to the running BFD or BGP session).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerWant {
    config: PeerConfig,
    /// The connection's reset sequence (`:resetBgpSession`).
    seq: u64,
    bfd: Option<BfdSettings>,
}

struct Peer {
    id: PeerId,
    want: PeerWant,
    bfd: Option<BfdLink>,
}

impl Instance {
    /// Creates the namespace (or adopts it after a restart) and starts the speaker.
    ///
    /// A namespace adopted with our routes in it means `cic edge` restarted: with graceful
    /// restart on, the speaker starts as a restarting speaker (RFC 4724) and the kernel
    /// routes are left exactly as they are until it has every peer's routes again.
    pub async fn start(
        id: &str,
        ns: &str,
        cfg: &EdgeConfig,
        ic: &InstanceConfig,
        bfd_book: Arc<BfdBook>,
    ) -> Result<Instance, Failure> {
        // The namespace and its sysctls: one blocking thread, which enters it once.
        let name = ns.to_string();
        let adopted = tokio::task::spawn_blocking(move || netns::ensure(&name, NAMESPACE_SYSCTLS))
            .await
            .map_err(|e| format!("namespace task: {e}"))??;
        let nl = Netlink::open(Some(ns))?;
        if let Ok(Some(lo)) = nl.link("lo").await {
            nl.set_up(lo.index, None).await?;
        }
        let kept = match adopted {
            true => nl.routes(PROTO_BGP).await.map(|r| r.len()).unwrap_or(0),
            false => 0,
        };
        let restarting = kept > 0 && cfg.bgp.graceful_restart_secs > 0;
        if restarting {
            info!(
                instance = id,
                routes = kept,
                "restarting: the kernel's routes are kept until every peer has sent its routes again"
            );
        }
        let params = params(&cfg.bgp, cfg.local_asn, ic, restarting);
        // Sockets are made in the namespace by a handle on it, which follows it through a
        // rename (a connection's namespace taken over by the routing instance it joins).
        let handle = nl
            .namespace_handle()
            .ok_or("an instance's namespace has a name")?;
        let h = handle.clone();
        let sockets: cic_bgp::driver::SocketFactory =
            Arc::new(move |domain| netns::tcp_socket_in(&h, domain));
        // Each family's listener with its first peer: an instance of IPv4 peers holds no
        // IPv6 socket.
        let bgp = spawn_instance_listening(
            params,
            sockets,
            &[],
            &[
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, cic_bgp::driver::BGP_PORT)),
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, cic_bgp::driver::BGP_PORT)),
            ],
        );
        let bfd = Bfd::spawn(
            Arc::new(move |domain| netns::udp_socket_in(&handle, domain)),
            cic_bfd::driver::PORT,
        )
        .map_err(|e| e.to_string());
        if let Err(e) = &bfd {
            warn!(netns = ns, "BFD: {e}");
        }
        let route_error = Arc::new(Mutex::new(None));
        let resync = Arc::new(tokio::sync::Notify::new());
        // Peers are sent a route once it is in the kernel: the programmer acknowledges.
        let acks = bgp.kernel_acks(cic_bgp::driver::KERNEL_ACK_WAIT).await.ok();
        let routes_task = tokio::spawn(program_routes(
            nl.clone(),
            bgp.routes(),
            acks,
            route_error.clone(),
            resync.clone(),
            ns.to_string(),
            restarting,
        ));
        info!(instance = id, netns = ns, "routing instance started");
        Ok(Instance {
            id: id.to_string(),
            ns: ns.to_string(),
            nl,
            bgp,
            vpc_prefixes: ic.vpc_prefixes.clone(),
            fixed: ic.accept_only.clone(),
            announce: ic.announce.clone(),
            peers: BTreeMap::new(),
            routes_task,
            route_error,
            resync,
            bfd,
            restarted: restarting,
            bfd_book,
            connections: ic.connections.iter().map(|c| c.id.clone()).collect(),
            traffic_links: Arc::default(),
        })
    }

    /// A connection's routes for the looking glass, each with its RPKI state when `vrps`
    /// (the data in force) is given; `None` when it has no session here.
    pub async fn looking_glass(
        &self,
        connection: &str,
        family: Family,
        direction: RouteDirection,
        vrps: Option<&cic_bgp::rpki::Vrps>,
    ) -> Option<Result<Vec<RouteEntry>, String>> {
        let peer = &self.peers.get(&peer_key(connection, family))?.id;
        let which = match direction {
            RouteDirection::Received => RouteSet::Received,
            RouteDirection::Accepted => RouteSet::Accepted,
            RouteDirection::Advertised => RouteSet::Advertised,
        };
        Some(
            self.bgp
                .looking_glass(*peer, which)
                .await
                .map_err(|e| e.to_string())
                .map(|routes| {
                    routes
                        .into_iter()
                        .map(|(prefix, a, rejected)| RouteEntry {
                            prefix,
                            next_hop: match prefix {
                                IpNet::V4(_) => a.next_hop.map(Into::into),
                                IpNet::V6(_) => a.next_hop6.map(Into::into),
                            },
                            as_path: a.path_asns().collect(),
                            origin: match a.origin {
                                cic_bgp::wire::Origin::Igp => "IGP",
                                cic_bgp::wire::Origin::Egp => "EGP",
                                cic_bgp::wire::Origin::Incomplete => "INCOMPLETE",
                            }
                            .into(),
                            med: a.med,
                            local_pref: a.local_pref,
                            communities: a
                                .communities
                                .iter()
                                .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                                .collect(),
                            rejected,
                            rpki: vrps.map(|v| {
                                v.validate(&prefix, cic_bgp::policy::origin_as(&a))
                                    .name()
                                    .to_string()
                            }),
                        })
                        .collect()
                }),
        )
    }

    /// What reading the interface counters of this instance's connections (not the
    /// fabric segment) needs, to read them without the agent's lock: a thousand
    /// namespaces take a thousand netlink dumps.
    pub fn traffic_source(&self) -> TrafficSource {
        TrafficSource {
            nl: self.nl.clone(),
            connections: self
                .peers
                .values()
                .map(|p| p.want.config.spec.name.clone())
                .collect(),
            links: self.traffic_links.clone(),
        }
    }

    /// The RPKI data in force (see `cic_bgp::instance::Instance::set_vrps`).
    /// The speaker's handle (for work that must not hold the agent's lock).
    pub fn speaker(&self) -> InstanceHandle {
        self.bgp.clone()
    }

    pub async fn set_vrps(&self, v: Option<Arc<cic_bgp::rpki::Vrps>>) {
        let _ = self.bgp.set_vrps(v).await;
    }

    /// The instance namespace's netlink connection (for reading its links and neighbors).
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The connections of the config it was last applied with.
    pub fn connections(&self) -> &[String] {
        &self.connections
    }

    /// Becomes instance `id` in namespace `ns`, keeping all it has: the namespace is
    /// renamed (its links, addresses and routes stay), the speaker and its sessions run
    /// on, and the BFD sessions' snapshots move with it. A connection joining a routing
    /// instance that is new on this edge takes its namespace along this way, and its
    /// customer sees no session drop.
    pub async fn rename(&mut self, id: &str, ns: &str) -> Result<(), Failure> {
        let (from, to) = (self.ns.clone(), ns.to_string());
        tokio::task::spawn_blocking(move || netns::rename(&from, &to))
            .await
            .map_err(|e| format!("rename task: {e}"))??;
        self.nl.renamed(ns);
        for p in self.peers.values() {
            let Some(l) = &p.bfd else { continue };
            // Moved under the session's lock: its watcher keeps it under one name or the
            // other, never the old one after the move.
            let mut held =
                l.ns.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            let peer = p.want.config.spec.address;
            self.bfd_book.move_session(&held, ns, peer);
            *held = ns.to_string();
        }
        self.bfd_book.forget(&self.ns);
        info!(from = %self.id, to = id, netns = ns, "routing instance renamed");
        self.id = id.to_string();
        self.ns = ns.to_string();
        Ok(())
    }

    /// Every peer of the config is added (a restarting speaker waits for this).
    pub async fn peers_added(&self) {
        let _ = self.bgp.peers_added().await;
    }

    /// Starts or ends the maintenance drain of this instance's sessions.
    pub async fn set_drain(&self, on: bool) -> Result<(), String> {
        self.bgp
            .set_graceful_shutdown(on)
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether `ic` needs a new speaker (its fixed policy changed).
    pub fn needs_restart(&self, ic: &InstanceConfig) -> bool {
        self.fixed != ic.accept_only
    }

    pub fn status(&self) -> watch::Receiver<cic_bgp::driver::InstanceStatus> {
        self.bgp.status()
    }

    pub fn route_error(&self) -> Option<Failure> {
        self.route_error.lock().ok().and_then(|g| g.clone())
    }

    /// Why BFD is not running in this instance, if it is not.
    pub fn bfd_error(&self) -> Option<String> {
        self.bfd.as_ref().err().cloned()
    }

    /// The BFD session beside a peer (`key`: a connection id, or `fabric:<instance>`).
    pub fn bfd_status(&self, key: &str) -> Option<BfdStatus> {
        self.peers.get(key)?.bfd.as_ref().map(BfdLink::status)
    }

    /// Brings links, addresses and peers to `ic`. Returns per-resource errors.
    pub async fn apply(
        &mut self,
        underlay: &Netlink,
        cfg: &EdgeConfig,
        ic: &InstanceConfig,
        trunks: &crate::Trunks,
    ) -> Vec<ResourceError> {
        self.connections = ic.connections.iter().map(|c| c.id.clone()).collect();
        let mut errors = Vec::new();
        let mut wanted = wanted_links(ic, trunks, &mut errors);
        // A public connection's source validation is in place before its link carries
        // anything; checked against the kernel at every apply (public connections are
        // few), and without it the customer gets no session (fail closed).
        let public = ic.accept_only.is_some();
        let mut validated = true;
        if public && let Err(e) = self.nl.set_source_rules(&source_rules(ic)).await {
            errors.push(err(&ic.id, Failure::from(e).within("source validation")));
            validated = false;
        }
        let failed = match self.reconcile_links(underlay, &mut wanted).await {
            Ok(failed) => failed,
            // The links unknown, nothing else is touched (the sessions stay as they
            // are); the failure is the instance's and each of its connections'.
            Err(e) => {
                errors.push(err(&ic.id, e.clone()));
                errors.extend(
                    ic.connections
                        .iter()
                        .filter(|c| c.id != ic.id)
                        .map(|c| err(&c.id, e.clone())),
                );
                return errors;
            }
        };
        errors.extend(failed.iter().cloned());
        // The links that are there: the connections' by connection id, the segment apart
        // (a public connection's instance has the connection's id).
        let segment_up = wanted.iter().any(|w| w.spec.name == FABRIC_IF);
        let up: Vec<&str> = wanted
            .iter()
            .filter(|w| w.spec.name != FABRIC_IF && validated)
            .map(|w| w.owner.as_str())
            .collect();
        if public {
            let statics = match &ic.fabric {
                Some(f) if f.static_routing && segment_up => static_service_routes(ic, f),
                _ => KernelRoutes::new(),
            };
            if let Err(e) = sync_routes(&self.nl, &statics, None, PROTO_STATIC).await {
                errors.push(err(&ic.id, e.within("routes to the public services")));
            }
        }
        self.set_announcements(ic, &mut errors).await;
        // BGP: one peer per connection whose link is up, plus the fabric.
        let desired = desired_peers(cfg, ic, &up, segment_up);
        self.take_live_changes(&desired, &mut errors).await;
        self.replace_peers(desired, &mut errors).await;
        self.set_static_routes(ic, &mut errors).await;
        errors
    }

    /// What the speaker announces besides the VPC's routes, and the VPC's prefixes, when
    /// they changed.
    async fn set_announcements(&mut self, ic: &InstanceConfig, errors: &mut Vec<ResourceError>) {
        if self.announce != ic.announce {
            match self.bgp.set_announce(ic.announce.clone()).await {
                Ok(()) => self.announce = ic.announce.clone(),
                Err(e) => errors.push(err(&ic.id, e.to_string())),
            }
        }
        if self.vpc_prefixes != ic.vpc_prefixes {
            if let Err(e) = self.bgp.set_vpc_prefixes(ic.vpc_prefixes.clone()).await {
                errors.push(err(&ic.id, e.to_string()));
            }
            self.vpc_prefixes = ic.vpc_prefixes.clone();
        }
    }

    /// Running sessions that differ from `desired` only in their BFD timers or damping
    /// take the new ones.
    async fn take_live_changes(
        &mut self,
        desired: &BTreeMap<String, PeerWant>,
        errors: &mut Vec<ResourceError>,
    ) {
        // New BFD timers or a new damping setting, and nothing else: the running
        // sessions take them (BFD by a Poll Sequence), the BGP session stays. Each is
        // recorded as taken only once it is; what is not taken makes a new session below.
        for (k, p) in self.peers.iter_mut() {
            let Some(w) = desired.get(k) else { continue };
            if p.want == *w {
                continue;
            }
            let mut same_but_live = p.want.clone();
            same_but_live.bfd = w.bfd;
            same_but_live.config.session.damping = w.config.session.damping;
            if same_but_live != *w {
                continue;
            }
            if let (Some(new), Some(old), Ok(bfd), Some(_)) = (w.bfd, p.want.bfd, &self.bfd, &p.bfd)
                && new != old
            {
                match bfd
                    .reconfigure(w.config.spec.address, bfd_config(&new))
                    .await
                {
                    Ok(true) => p.want.bfd = w.bfd,
                    Ok(false) => {}
                    Err(e) => errors.push(err(k, format!("BFD: {e}"))),
                }
            }
            let damping = w.config.session.damping;
            if damping != p.want.config.session.damping {
                match self.bgp.set_damping(p.id, damping).await {
                    Ok(()) => p.want.config.session.damping = damping,
                    Err(e) => errors.push(err(k, format!("BGP damping: {e}"))),
                }
            }
        }
    }

    /// Removes the peers not wanted as they are, and adds the wanted ones not there.
    async fn replace_peers(
        &mut self,
        desired: BTreeMap<String, PeerWant>,
        errors: &mut Vec<ResourceError>,
    ) {
        let gone: Vec<String> = self
            .peers
            .iter()
            .filter(|(k, p)| desired.get(*k) != Some(&p.want))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(p) = self.peers.remove(&k) {
                self.remove_peer(p).await;
                debug!(peer = k, "peer removed");
            }
        }
        for (k, want) in desired {
            if self.peers.contains_key(&k) {
                continue;
            }
            match self.add_peer(want).await {
                Ok((p, bfd_error)) => {
                    if let Some(e) = bfd_error {
                        errors.push(err(&k, e));
                    }
                    self.peers.insert(k, p);
                }
                Err(e) => errors.push(err(&k, e)),
            }
        }
    }

    /// Each session's static routes (the speaker ignores a set equal to the last and tells
    /// which it refused).
    async fn set_static_routes(&self, ic: &InstanceConfig, errors: &mut Vec<ResourceError>) {
        for c in &ic.connections {
            for p in &c.peerings {
                let Some(Peer { id, .. }) = self.peers.get(&peer_key(&c.id, p.family())) else {
                    continue;
                };
                match self
                    .bgp
                    .set_static_routes(*id, p.static_routes.clone())
                    .await
                {
                    Ok(refused) => errors.extend(
                        refused
                            .into_iter()
                            .map(|(n, why)| err(&c.id, format!("static route {n}: {why}"))),
                    ),
                    Err(e) => errors.push(err(&c.id, e.to_string())),
                }
            }
        }
    }

    /// Adds a BGP peer and, with BFD on, its BFD session and the task that takes the BGP
    /// session down the moment BFD fails. A BFD that cannot start is reported, and BGP
    /// runs without it.
    async fn add_peer(&self, want: PeerWant) -> Result<(Peer, Option<String>), String> {
        let id = self
            .bgp
            .add_peer(want.config.clone())
            .await
            .map_err(|e| e.to_string())?;
        let (mut link, mut bfd_error) = (None, None);
        if let Some(b) = want.bfd {
            let spec = &want.config.spec;
            let cfg = bfd_config(&b);
            // After a restart, the session the last agent had Up carries on, so the peer
            // sees no failure if we were back within its detection time.
            let resume = self
                .restarted
                .then(|| self.bfd_book.get(&self.ns, spec.address))
                .flatten();
            let added = match &self.bfd {
                Ok(bfd) => bfd
                    .add_resumed(spec.local_address, spec.address, cfg, resume)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            match added {
                Ok(state) => {
                    let ns = Arc::new(Mutex::new(self.ns.clone()));
                    let watcher = tokio::spawn(take_down_on_failure(
                        self.bgp.clone(),
                        id,
                        state.clone(),
                        self.bfd_book.clone(),
                        ns.clone(),
                        spec.address,
                    ));
                    link = Some(BfdLink { state, watcher, ns });
                }
                Err(e) => bfd_error = Some(format!("BFD: {e}")),
            }
        }
        Ok((
            Peer {
                id,
                want,
                bfd: link,
            },
            bfd_error,
        ))
    }

    /// BGP first (its Cease is sent before this returns), then BFD: a peer that takes a
    /// BFD AdminDown for a failure (BIRD 2.0 does) sees its BGP session already closed.
    async fn remove_peer(&self, p: Peer) {
        if let Some(l) = &p.bfd {
            l.watcher.abort();
        }
        let _ = self.bgp.remove_peer(p.id).await;
        if let (Some(_), Ok(bfd)) = (&p.bfd, &self.bfd) {
            let _ = bfd.remove(p.want.config.spec.address).await;
        }
        self.bfd_book
            .set(&self.ns, p.want.config.spec.address, None);
    }

    /// The agent is stopping: every BGP session ends with Cease / Administrative Shutdown
    /// and `why` (RFC 9003), so peers withdraw our routes at once; the namespace, links
    /// and kernel routes stay and keep forwarding what still arrives.
    pub async fn stop_announcing(&self, why: &str) {
        // The kernel's routes stay as they are: the route programmer stops before the
        // speaker drops what its peers sent.
        self.routes_task.abort();
        self.bgp
            .shutdown_with(cic_bgp::fsm::admin_shutdown(why))
            .await;
    }

    /// Stops the speaker (Cease to every peer) and removes the namespace and its links.
    pub async fn stop(self) {
        for p in self.peers.values() {
            if let Some(l) = &p.bfd {
                l.watcher.abort();
            }
        }
        // BGP first, for the reason in `remove_peer`.
        self.bgp.shutdown().await;
        if let Ok(bfd) = &self.bfd {
            bfd.shutdown().await;
        }
        self.routes_task.abort();
        self.bfd_book.forget(&self.ns);
        if let Err(e) = cic_dataplane::purge(&self.ns).await {
            warn!(netns = %self.ns, "delete namespace: {e}");
        }
        info!(instance = %self.id, "routing instance removed");
    }
}

/// The peers `ic` wants: one a family for each connection whose link is `up` (and not
/// held down), and the fabric's when its segment is up.
fn desired_peers(
    cfg: &EdgeConfig,
    ic: &InstanceConfig,
    up: &[&str],
    segment_up: bool,
) -> BTreeMap<String, PeerWant> {
    // A connection held down (a failover test) has no peer until the hold ends; a new
    // reset sequence makes a new session.
    let now = std::time::SystemTime::now();
    let bfd = cfg.bgp.bfd.enabled.then_some(cfg.bgp.bfd);
    let mut desired: BTreeMap<String, PeerWant> = BTreeMap::new();
    for c in ic
        .connections
        .iter()
        .filter(|c| up.contains(&c.id.as_str()))
        .filter(|c| hold_down_end(c).is_none_or(|end| end <= now))
    {
        // The connection's own BFD timers over the operator's.
        let bfd = bfd.map(|b| match c.bfd {
            Some(t) => BfdSettings {
                interval_ms: t.min_interval_ms,
                multiplier: t.multiplier,
                ..b
            },
            None => b,
        });
        for p in &c.peerings {
            desired.insert(
                peer_key(&c.id, p.family()),
                PeerWant {
                    config: customer_peer(cfg, c, p),
                    seq: c.reset_seq,
                    bfd,
                },
            );
        }
    }
    if let (Some(f), true) = (ic.fabric.as_ref().filter(|f| !f.static_routing), segment_up) {
        let fabric = format!("fabric:{}", ic.id);
        desired.insert(
            peer_key(&fabric, Family::Ipv4),
            PeerWant {
                config: fabric_peer(cfg, ic, f.fabric_ip.into(), f.edge_ip.into(), f.fabric_asn),
                seq: 0,
                bfd,
            },
        );
        if let Some(v6) = &f.ipv6 {
            desired.insert(
                peer_key(&fabric, Family::Ipv6),
                PeerWant {
                    config: fabric_peer(
                        cfg,
                        ic,
                        v6.fabric_ip.into(),
                        v6.edge_ip.into(),
                        f.fabric_asn,
                    ),
                    seq: 0,
                    bfd,
                },
            );
        }
    }
    desired
}

/// When a connection's hold-down (failover test) ends, if it has one.
pub fn hold_down_end(c: &ConnectionConfig) -> Option<std::time::SystemTime> {
    let t = time::OffsetDateTime::parse(
        c.hold_down_until.as_deref()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(std::time::SystemTime::from(t))
}

fn err(id: &str, why: impl Into<Failure>) -> ResourceError {
    why.into().of(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's counters are read by the links' counters alone once its link is
    /// known, and a link seen before its alias was set is not taken for no one's.
    #[tokio::test]
    async fn a_connection_s_counters_follow_its_link_once_it_has_its_alias() {
        if !cic_peers::root_or_skip("traffic source") {
            return;
        }
        let ns = format!("cictest-edge-traffic-{}", std::process::id());
        netns::add(&ns).expect("netns");
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = netns::del(&self.0);
            }
        }
        let _gone = Gone(ns.clone());
        let nl = Netlink::open(Some(&ns)).expect("netlink");
        nl.create_veth("c1", "c1p", None).await.expect("veth");
        let alias = |link: &str, alias: &str| {
            let ok = std::process::Command::new("ip")
                .args(["-n", &ns, "link", "set", link, "alias", alias])
                .status()
                .expect("ip");
            assert!(ok.success());
        };
        alias("c1p", "someone-else 0000");
        let source = TrafficSource {
            nl: nl.clone(),
            connections: ["pc1".to_string()].into(),
            links: Arc::default(),
        };
        let owners = |read: Vec<(String, cic_model::metrics::Traffic)>| {
            read.into_iter().map(|(o, _)| o).collect::<Vec<_>>()
        };
        // Made, its alias not yet set: no one's connection.
        assert!(owners(source.read().await).is_empty());
        alias("c1", "pc1 0123");
        assert_eq!(owners(source.read().await), ["pc1"], "its alias read");
        assert!(
            !source.links.lock().unwrap().is_empty(),
            "the links known, every one with its alias"
        );
        assert_eq!(
            owners(source.read().await),
            ["pc1"],
            "by the counters alone"
        );
    }

    #[test]
    fn ifnames_fit_the_kernel_limit() {
        assert_eq!(ifname("pcabcdefghijklmnopqr"), "pcabcdefghijklm");
        assert!(ifname("pcabcdefghijklmnopqr").len() <= 15);
    }
}
