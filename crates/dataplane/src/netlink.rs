//! One rtnetlink connection per namespace, and the few kernel objects cic programs:
//! links (VXLAN, 802.1Q, veth), IPv4 and IPv6 addresses, neighbors; routes are in
//! [`crate::routes`], source rules in [`crate::rules`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as Rt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    BondLacpRate, BondMode, BondXmitHashPolicy, InfoBond, InfoKind, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::{AddressMessageBuilder, LinkBond, LinkUnspec, LinkVeth, LinkVlan, LinkVxlan};

use crate::rtnl::{ACK, CREATE, DUMP, GET, NlError, REPLACE, Rtnl};
use crate::{Error, Result, netns};

/// `RTPROT_BGP`: routes cic installs are marked `proto bgp`; cic owns exactly those.
pub const PROTO_BGP: u8 = 186;
pub(crate) const RT_TABLE_MAIN: u32 = 254;
const EOPNOTSUPP: i32 = 95;
/// No such device: a link asked for by name that is not there.
const ENODEV: i32 = 19;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub mtu: u32,
    pub up: bool,
    /// Carrier (IFF_LOWER_UP): the port's link is up, not only configured up.
    pub carrier: bool,
    pub counters: LinkCounters,
    /// The bond (or bridge) this link is a member of.
    pub controller: Option<u32>,
}

/// A link's packet and byte counters, as the kernel keeps them (64-bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

impl From<&netlink_packet_route::link::Stats64> for LinkCounters {
    fn from(s: &netlink_packet_route::link::Stats64) -> LinkCounters {
        LinkCounters {
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
        }
    }
}

/// A neighbor (ARP / ND) entry's state, as far as it tells whether the peer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbor {
    /// Asked, no answer yet.
    Incomplete,
    /// Asked, never answered.
    Failed,
    /// Answered at some point (reachable, stale, being re-checked, or static).
    Resolved,
}

/// What kind of link to make for a connection or a fabric segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// VXLAN with a unicast remote; `underlay_dev` pins the underlay port.
    Vxlan {
        vni: u32,
        remote: Ipv4Addr,
        port: u16,
        underlay_dev: Option<String>,
    },
    /// 802.1Q subinterface of `parent`.
    Vlan { parent: String, vlan: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    /// Stored in IFLA_IFALIAS: who owns the link and a fingerprint of its spec.
    pub alias: String,
}

/// A connection to the kernel's routing netlink, inside one namespace. Clones share the
/// socket; dumps on it are serialised, since the kernel runs one dump per socket at a time
/// (a second one gets EBUSY).
#[derive(Clone)]
pub struct Netlink {
    rtnl: Rtnl,
    netns: Option<std::sync::Arc<Namespace>>,
    dump: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The namespace a [`Netlink`] is in: a handle on it (links are placed by it, whatever
/// the namespace is named now) and its name, for messages; shared by the clones.
struct Namespace {
    name: std::sync::RwLock<String>,
    handle: std::sync::Arc<std::fs::File>,
}

impl Namespace {
    fn name(&self) -> String {
        self.name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Netlink {
    /// Opens a connection inside namespace `netns` (the current one when `None`). Needs a
    /// tokio runtime; the connection task runs on it.
    pub fn open(netns: Option<&str>) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::current();
        let (mut conn, handle, _) = netns::run_in(netns, move || {
            let _guard = rt.enter();
            rtnetlink::proto::new_connection::<Rt>(rtnetlink::sys::protocols::NETLINK_ROUTE)
        })
        .and_then(|r| r)
        .map_err(|e| {
            Error::Io(format!(
                "netlink socket in {}: {e}",
                netns.unwrap_or("the host namespace")
            ))
        })?;
        // Acknowledgements and the ends of dumps are passed on: a batch's answers are
        // told apart, and a request or dump cut off by a closed connection is not taken
        // for done.
        conn.set_forward_ack(true);
        conn.set_forward_done(true);
        tokio::spawn(conn);
        let netns = match netns {
            Some(name) => Some(std::sync::Arc::new(Namespace {
                name: std::sync::RwLock::new(name.to_string()),
                handle: std::sync::Arc::new(
                    netns::open(name).map_err(|e| Error::Io(e.to_string()))?,
                ),
            })),
            None => None,
        };
        Ok(Netlink {
            rtnl: Rtnl::new(handle),
            netns,
            dump: Default::default(),
        })
    }

    /// The namespace is now called `name` ([`netns::rename`]); this connection, and every
    /// clone of it, goes on in it.
    pub fn renamed(&self, name: &str) {
        if let Some(ns) = &self.netns {
            *ns.name
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = name.to_string();
        }
    }

    /// A handle on this connection's namespace (`None` for the current one): sockets made
    /// in it with [`netns::tcp_socket_in`] follow it through a rename. The connection's
    /// own, shared: an edge holds one per instance, not one per user of it.
    pub fn namespace_handle(&self) -> Option<std::sync::Arc<std::fs::File>> {
        self.netns.as_ref().map(|ns| ns.handle.clone())
    }

    pub(crate) fn rtnl(&self) -> &Rtnl {
        &self.rtnl
    }

    /// Held across a dump: one connection takes one dump at a time (the kernel answers a
    /// second with EBUSY).
    pub(crate) async fn one_dump(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.dump.lock().await
    }

    pub fn netns(&self) -> Option<String> {
        self.netns.as_ref().map(|ns| ns.name())
    }

    pub(crate) fn ctx(&self, what: &str) -> impl Fn(NlError) -> Error + '_ {
        let what = what.to_string();
        move |e| {
            Error::from_netlink(
                &format!(
                    "{what} in {}",
                    self.netns().as_deref().unwrap_or("the host namespace")
                ),
                e,
            )
        }
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let _one = self.one_dump().await;
        let msgs = self
            .rtnl
            .objects(Rt::GetLink(LinkMessage::default()), DUMP)
            .await
            .map_err(self.ctx("list links"))?;
        Ok(links_in(&msgs).collect())
    }

    /// Every link's counters, by index: a dump of their 64-bit counters alone
    /// (`RTM_GETSTATS`), where a dump of the links would fill and decode every attribute
    /// of every link (read for each routing instance at each periodic report).
    pub async fn counters(&self) -> Result<std::collections::BTreeMap<u32, LinkCounters>> {
        use netlink_packet_route::stats::{StatsAttribute, StatsFilterMask, StatsMessage};
        let _one = self.one_dump().await;
        let mut ask = StatsMessage::default();
        ask.header.filter_mask = StatsFilterMask::Link64;
        let msgs = self
            .rtnl
            .objects(Rt::GetStats(ask), DUMP)
            .await
            .map_err(self.ctx("read the links' counters"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                Rt::NewStats(s) => s.attributes.iter().find_map(|a| match a {
                    StatsAttribute::Link64(c) => Some((s.header.ifindex, c.into())),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, asked of the kernel by name (one message, not a dump of
    /// every link: a fabric router's namespace holds a thousand).
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        // The kernel refuses a longer name (ERANGE) rather than find nothing.
        if name.is_empty() || name.len() >= 16 {
            return Ok(None);
        }
        let mut ask = LinkMessage::default();
        ask.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.rtnl.objects(Rt::GetLink(ask), GET).await {
            Ok(msgs) => Ok(links_in(&msgs).find(|l| l.name == name)),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(self.ctx(&format!("find link {name}"))(e)),
        }
    }

    async fn index_of(&self, name: &str) -> Result<u32> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| Error::NotFound(format!("interface {name}")))
    }

    /// Creates `spec`'s link here (the underlay: parent port, VXLAN socket) and places it
    /// in `target`'s namespace, down; callers bring it up after addressing it.
    pub async fn create_link_in(&self, spec: &LinkSpec, target: &Netlink) -> Result<u32> {
        let target_ns = target
            .netns
            .as_ref()
            .ok_or_else(|| Error::Invalid("target must be a named namespace".into()))?;
        let fd = target_ns.handle.as_raw_fd();
        let msg = match &spec.kind {
            LinkKind::Vxlan {
                vni,
                remote,
                port,
                underlay_dev,
            } => {
                let mut b = LinkVxlan::new(&spec.name, *vni)
                    .remote(*remote)
                    .port(*port)
                    .learning(false);
                if let Some(dev) = underlay_dev {
                    b = b.dev(self.index_of(dev).await?);
                }
                b.mtu(spec.mtu).setns_by_fd(fd).build()
            }
            LinkKind::Vlan { parent, vlan } => {
                let parent_idx = self.index_of(parent).await?;
                LinkVlan::new(&spec.name, parent_idx, *vlan)
                    .mtu(spec.mtu)
                    .setns_by_fd(fd)
                    .build()
            }
        };
        self.rtnl
            .ack(Rt::NewLink(msg), CREATE)
            .await
            .map_err(self.ctx(&format!("create {}", spec.name)))?;
        // The kernel ignores IFLA_IFALIAS when creating a link; set it in its new home.
        let index = target.index_of(&spec.name).await?;
        let msg = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::IfAlias(spec.alias.clone()))
            .build();
        target
            .set_link(msg)
            .await
            .map_err(target.ctx(&format!("set alias of {}", spec.name)))?;
        Ok(index)
    }

    /// A veth pair; the peer end goes to namespace `peer_ns` when given.
    pub async fn create_veth(&self, name: &str, peer: &str, peer_ns: Option<&str>) -> Result<()> {
        let mut b = LinkVeth::new(name, peer);
        let ns_file;
        if let Some(ns) = peer_ns {
            ns_file = netns::open(ns).map_err(|e| Error::Io(e.to_string()))?;
            // The peer's attributes live inside IFLA_INFO_DATA; moving the peer is simplest
            // after creation.
            self.rtnl
                .ack(Rt::NewLink(b.build()), CREATE)
                .await
                .map_err(self.ctx(&format!("create veth {name}")))?;
            let idx = self.index_of(peer).await?;
            let msg = LinkUnspec::new_with_index(idx)
                .setns_by_fd(ns_file.as_raw_fd())
                .build();
            return self
                .set_link(msg)
                .await
                .map_err(self.ctx(&format!("move {peer} to {ns}")));
        }
        b = b.up();
        self.rtnl
            .ack(Rt::NewLink(b.build()), CREATE)
            .await
            .map_err(self.ctx(&format!("create veth {name}")))
    }

    /// An 802.3ad (LACP) bond named `name` with `ports` as its members, up, in this
    /// namespace; `alias` marks it as cic's. A bond that exists is left as it is, but
    /// missing members are added.
    pub async fn ensure_bond(&self, name: &str, ports: &[String], alias: &str) -> Result<u32> {
        let bond = match self.link(name).await? {
            Some(l) => l.index,
            None => {
                let msg = LinkBond::new(name)
                    .mode(BondMode::Ieee8023Ad)
                    .miimon(100)
                    .append_info_data(InfoBond::XmitHashPolicy(BondXmitHashPolicy::Layer34))
                    .append_info_data(InfoBond::AdLacpRate(BondLacpRate::Fast))
                    .build();
                self.rtnl
                    .ack(Rt::NewLink(msg), CREATE)
                    .await
                    .map_err(self.ctx(&format!("create bond {name}")))?;
                let index = self.index_of(name).await?;
                let msg = LinkUnspec::new_with_index(index)
                    .append_extra_attribute(LinkAttribute::IfAlias(alias.to_string()))
                    .build();
                self.set_link(msg)
                    .await
                    .map_err(self.ctx(&format!("set alias of {name}")))?;
                index
            }
        };
        let links = self.links().await?;
        for p in ports {
            let port = links
                .iter()
                .find(|l| l.name == *p)
                .ok_or_else(|| Error::NotFound(format!("interface {p}")))?;
            if port.controller == Some(bond) {
                continue;
            }
            // A port joins a bond while down.
            let msg = LinkUnspec::new_with_index(port.index).down().build();
            self.set_link(msg)
                .await
                .map_err(self.ctx(&format!("set {p} down")))?;
            let msg = LinkUnspec::new_with_index(port.index)
                .controller(bond)
                .build();
            self.set_link(msg)
                .await
                .map_err(self.ctx(&format!("add {p} to bond {name}")))?;
            self.set_up(port.index, None).await?;
        }
        self.set_up(bond, None).await?;
        Ok(bond)
    }

    pub async fn del_link(&self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.rtnl
            .ack(Rt::DelLink(m), ACK)
            .await
            .map_err(self.ctx(&format!("delete link {index}")))
    }

    /// Changes a link's settings, as rtnetlink's `link().set()` asks (RTM_SETLINK).
    async fn set_link(&self, msg: LinkMessage) -> std::result::Result<(), NlError> {
        self.rtnl.ack(Rt::SetLink(msg), CREATE).await
    }

    pub async fn set_up(&self, index: u32, mtu: Option<u32>) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index).up();
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.set_link(b.build())
            .await
            .map_err(self.ctx(&format!("set link {index} up")))
    }

    /// The link's addresses, IPv4 and IPv6 (link-local ones, which the kernel makes by
    /// itself, left out).
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let msgs = self
            .address_dump()
            .await
            .map_err(self.ctx("list addresses"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == index)
            .filter_map(|m| {
                // IFA_LOCAL is the address of an IPv4 one; an IPv6 one has IFA_ADDRESS only.
                let ip = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    })
                    .or_else(|| {
                        m.attributes.iter().find_map(|a| match a {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    })?;
                match ip {
                    IpAddr::V6(a) if a.is_unicast_link_local() => None,
                    ip => IpNet::new(ip, m.header.prefix_len).ok(),
                }
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// The kernel's neighbor (ARP / ND) entry for `addr` on link `index`: whether it was
    /// resolved, is being asked, or failed; `None` when there is no entry.
    pub async fn neighbor(&self, index: u32, addr: IpAddr) -> Result<Option<Neighbor>> {
        use netlink_packet_route::neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
        };
        let _one = self.one_dump().await;
        let mut ask = NeighbourMessage::default();
        ask.header.family = match addr {
            IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        let msgs = self
            .rtnl
            .objects(Rt::GetNeighbour(ask), DUMP)
            .await
            .map_err(self.ctx("list neighbors"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                Rt::NewNeighbour(n) => Some(n),
                _ => None,
            })
            .filter(|m| m.header.ifindex == index)
            .find(|m| {
                m.attributes.iter().any(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        IpAddr::V4(*a) == addr
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        IpAddr::V6(*a) == addr
                    }
                    _ => false,
                })
            })
            .map(|m| match m.header.state {
                NeighbourState::Incomplete => Neighbor::Incomplete,
                NeighbourState::Failed => Neighbor::Failed,
                NeighbourState::None => Neighbor::Incomplete,
                _ => Neighbor::Resolved,
            }))
    }

    /// Sets how link `index` asks for a neighbor it does not know, ARP for IPv4 and
    /// neighbor discovery for IPv6: again after `retrans`, `probes` times before it gives
    /// up (`ip ntable change name arp_cache dev …`). One request a family on this
    /// namespace's connection, where the sysctls under /proc/sys took a thread entering the
    /// namespace and a path walk each.
    pub async fn set_neighbor_probes(
        &self,
        index: u32,
        retrans: std::time::Duration,
        probes: u32,
    ) -> Result<()> {
        use netlink_packet_route::AddressFamily;
        use netlink_packet_route::neighbour_table::{
            NeighbourTableAttribute as Attr, NeighbourTableMessage, NeighbourTableParameter as P,
        };
        for (family, table) in [
            (AddressFamily::Inet, "arp_cache"),
            (AddressFamily::Inet6, "ndisc_cache"),
        ] {
            let mut msg = NeighbourTableMessage::default();
            msg.header.family = family;
            msg.attributes = vec![
                Attr::Name(table.into()),
                Attr::Parms(vec![
                    P::Ifindex(index),
                    P::RetransTime(retrans.as_millis() as u64),
                    P::McastProbes(probes),
                ]),
            ];
            self.rtnl
                .ack(Rt::SetNeighbourTable(msg), ACK)
                .await
                .map_err(self.ctx(&format!("neighbor probes of link {index} ({table})")))?;
        }
        Ok(())
    }

    /// Adds an address. An IPv6 one is usable at once: no duplicate address detection
    /// (the peering subnet is a point-to-point link we were given, RFC 6164), so a
    /// session can bind it without waiting a second.
    pub async fn add_address(&self, index: u32, addr: impl Into<IpNet>) -> Result<()> {
        let addr: IpNet = addr.into();
        let mut msg = match addr {
            IpNet::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a.addr(), a.prefix_len())
                .build(),
            IpNet::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a.addr(), a.prefix_len())
                .build(),
        };
        if addr.addr().is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.rtnl
            .ack(Rt::NewAddress(msg), REPLACE)
            .await
            .map_err(self.ctx(&format!("add address {addr}")))
    }

    pub async fn del_address(&self, index: u32, addr: impl Into<IpNet>) -> Result<()> {
        let addr: IpNet = addr.into();
        let msgs = self
            .address_dump()
            .await
            .map_err(self.ctx("find address"))?;
        for m in msgs.into_iter().filter(|m| {
            m.header.index == index
                && m.header.prefix_len == addr.prefix_len()
                && m.attributes.iter().any(|a| {
                    matches!(a, AddressAttribute::Address(x) | AddressAttribute::Local(x)
                        if *x == addr.addr())
                })
        }) {
            self.rtnl
                .ack(Rt::DelAddress(m), ACK)
                .await
                .map_err(self.ctx(&format!("delete address {addr}")))?;
        }
        Ok(())
    }

    /// Every address of the namespace, IPv4 and IPv6 (the kernel filters a dump by
    /// nothing: callers pick theirs).
    async fn address_dump(&self) -> std::result::Result<Vec<AddressMessage>, NlError> {
        let _one = self.one_dump().await;
        let msgs = self
            .rtnl
            .objects(Rt::GetAddress(AddressMessage::default()), DUMP)
            .await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                Rt::NewAddress(a) => Some(a),
                _ => None,
            })
            .collect())
    }
}

/// The links among the kernel's answers.
fn links_in(msgs: &[Rt]) -> impl Iterator<Item = Link> + '_ {
    msgs.iter().filter_map(|m| match m {
        Rt::NewLink(l) => Some(link_from(l)),
        _ => None,
    })
}

fn link_from(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        alias: None,
        kind: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp),
        counters: LinkCounters::default(),
        controller: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Controller(c) => l.controller = Some(*c),
            LinkAttribute::Stats64(s) => l.counters = s.into(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(match k {
                            InfoKind::Vxlan => "vxlan".into(),
                            InfoKind::Vlan => "vlan".into(),
                            InfoKind::Veth => "veth".into(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    l
}

impl Error {
    /// The error of a request about `what` the kernel refused or did not answer.
    pub(crate) fn from_netlink(what: &str, e: NlError) -> Error {
        match e.errno() {
            Some(EOPNOTSUPP) => Error::Unsupported(format!(
                "{what}: the kernel does not support this link type"
            )),
            _ if e.is_transient() => Error::Busy(format!("{what}: {e}")),
            _ => Error::Netlink(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: i32) -> NlError {
        let mut m = rtnetlink::packet_core::ErrorMessage::default();
        m.code = std::num::NonZeroI32::new(-errno);
        NlError::Refused(m)
    }

    #[test]
    fn a_kernel_that_did_not_answer_or_was_busy_is_a_transient_error() {
        for e in [
            NlError::NoAnswer,
            refused(16),
            refused(11),
            refused(105),
            NlError::DumpFailed(-16),
        ] {
            let err = Error::from_netlink("find link fab0 in ns1", e.clone());
            assert!(err.is_transient(), "{e}: {err:?}");
            assert!(
                err.to_string().starts_with("find link fab0 in ns1: "),
                "{err}"
            );
        }
        for e in [
            refused(ENODEV),
            refused(17),
            refused(EOPNOTSUPP),
            NlError::Closed,
        ] {
            let err = Error::from_netlink("add link", e.clone());
            assert!(!err.is_transient(), "{e}: {err:?}");
        }
    }
}
