//! Routes of a namespace's main table: listed, installed and removed one at a time, or
//! many in a batch ([`Netlink::apply_routes`]: up to [`BATCH`] in a datagram, one
//! round trip to the kernel for each datagram instead of each route).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as Rt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use crate::netlink::RT_TABLE_MAIN;
pub use crate::rtnl::BATCH;
use crate::rtnl::{ACK, DUMP, REPLACE};
use crate::{Error, Netlink, Result};

/// No such process: a route to delete that is not there.
const ESRCH: i32 = 3;

/// One change of a namespace's routes of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Install or replace the prefix via these next hops (ECMP when several), which
    /// must be of its family.
    Replace(IpNet, Vec<IpAddr>),
    /// Remove the prefix (done when it is not there).
    Delete(IpNet),
}

impl RouteChange {
    pub fn prefix(&self) -> IpNet {
        match self {
            RouteChange::Replace(p, _) | RouteChange::Delete(p) => *p,
        }
    }
}

impl Netlink {
    /// IPv4 and IPv6 routes of the main table installed with `proto`: prefix → next
    /// hops.
    pub async fn routes(&self, proto: u8) -> Result<BTreeMap<IpNet, Vec<IpAddr>>> {
        let mut out = BTreeMap::new();
        for req in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let _one = self.one_dump().await;
            let msgs = self
                .rtnl()
                .objects(Rt::GetRoute(req), DUMP)
                .await
                .map_err(self.ctx("list routes"))?;
            for m in msgs.into_iter().filter_map(|m| match m {
                Rt::NewRoute(r) => Some(r),
                _ => None,
            }) {
                if u8::from(m.header.protocol) != proto || table_of(&m) != RT_TABLE_MAIN {
                    continue;
                }
                let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
                let dst = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(a) => address(a),
                    _ => None,
                });
                let unspecified = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                let Ok(prefix) = IpNet::new(
                    dst.unwrap_or(unspecified),
                    m.header.destination_prefix_length,
                ) else {
                    continue;
                };
                let mut hops: Vec<IpAddr> = Vec::new();
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Gateway(gw) => hops.extend(address(gw)),
                        RouteAttribute::MultiPath(nhs) => {
                            for nh in nhs {
                                for na in &nh.attributes {
                                    if let RouteAttribute::Gateway(gw) = na {
                                        hops.extend(address(gw));
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                hops.sort();
                // The kernel lists an IPv6 multipath route once per next hop (with
                // RTA_GATEWAY each); they make one route.
                let e: &mut Vec<IpAddr> = out.entry(prefix).or_default();
                e.extend(hops);
                e.sort();
                e.dedup();
            }
        }
        Ok(out)
    }

    /// Installs or replaces `prefix` via `nexthops` (ECMP when more than one), which
    /// must be of the prefix's family.
    pub async fn replace_route(
        &self,
        prefix: impl Into<IpNet>,
        nexthops: &[IpAddr],
        proto: u8,
    ) -> Result<()> {
        let change = RouteChange::Replace(prefix.into(), nexthops.to_vec());
        self.apply_one(change, proto).await
    }

    /// Removes `prefix` (done when it is not there).
    pub async fn del_route(&self, prefix: impl Into<IpNet>, proto: u8) -> Result<()> {
        self.apply_one(RouteChange::Delete(prefix.into()), proto)
            .await
    }

    /// One change, as [`Netlink::apply_routes`] makes it.
    async fn apply_one(&self, change: RouteChange, proto: u8) -> Result<()> {
        match self.apply_routes(&[change], proto).await.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Applies `changes` to the routes of `proto`, [`BATCH`] to a datagram: the kernel
    /// applies each in order and goes on past one it refuses. The changes that failed,
    /// each with what is wrong (the others are applied); a change the kernel is never
    /// asked (no next hop, or one of the other family) is among them.
    pub async fn apply_routes(&self, changes: &[RouteChange], proto: u8) -> Vec<(IpNet, Error)> {
        let mut failed = Vec::new();
        let mut sent = Vec::with_capacity(changes.len());
        let mut requests = Vec::with_capacity(changes.len());
        for c in changes {
            match c {
                RouteChange::Replace(p, hops) => match replace_message(*p, hops, proto) {
                    Ok(m) => {
                        requests.push((Rt::NewRoute(m), REPLACE));
                        sent.push(c);
                    }
                    Err(e) => failed.push((*p, e)),
                },
                RouteChange::Delete(p) => {
                    requests.push((Rt::DelRoute(delete_message(*p, proto)), ACK));
                    sent.push(c);
                }
            }
        }
        let answers = self.rtnl().batch(requests).await;
        for (c, r) in sent.into_iter().zip(answers) {
            let Err(e) = r else { continue };
            let (what, gone_is_done) = match c {
                RouteChange::Replace(p, _) => (format!("install route {p}"), false),
                RouteChange::Delete(p) => (format!("delete route {p}"), true),
            };
            if gone_is_done && e.errno() == Some(ESRCH) {
                continue;
            }
            failed.push((c.prefix(), self.ctx(&what)(e)));
        }
        failed
    }
}

/// The request that installs or replaces `prefix` via `nexthops`.
fn replace_message(prefix: IpNet, nexthops: &[IpAddr], proto: u8) -> Result<RouteMessage> {
    if nexthops.is_empty() {
        return Err(Error::Invalid(format!("route {prefix} has no next hop")));
    }
    if let Some(h) = nexthops
        .iter()
        .find(|h| h.is_ipv4() != prefix.addr().is_ipv4())
    {
        return Err(Error::Invalid(format!(
            "route {prefix}: next hop {h} is of the other address family"
        )));
    }
    let mut msg = match prefix {
        IpNet::V4(p) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(p.network(), p.prefix_len())
            .protocol(RouteProtocol::from(proto))
            .scope(RouteScope::Universe)
            .kind(RouteType::Unicast)
            .build(),
        IpNet::V6(p) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(p.network(), p.prefix_len())
            .protocol(RouteProtocol::from(proto))
            .scope(RouteScope::Universe)
            .kind(RouteType::Unicast)
            .build(),
    };
    match nexthops {
        [one] => msg
            .attributes
            .push(RouteAttribute::Gateway(route_address(*one))),
        many => {
            let hops = many
                .iter()
                .map(|gw| {
                    let mut nh = RouteNextHop::default();
                    nh.attributes
                        .push(RouteAttribute::Gateway(route_address(*gw)));
                    nh
                })
                .collect();
            msg.attributes.push(RouteAttribute::MultiPath(hops));
        }
    }
    Ok(msg)
}

/// The request that removes `prefix` of `proto` from the main table.
// RouteHeader is #[non_exhaustive]: it cannot be built with a struct expression.
#[allow(clippy::field_reassign_with_default)]
fn delete_message(prefix: IpNet, proto: u8) -> RouteMessage {
    let mut m = RouteMessage::default();
    let mut h = RouteHeader::default();
    h.address_family = match prefix {
        IpNet::V4(_) => netlink_packet_route::AddressFamily::Inet,
        IpNet::V6(_) => netlink_packet_route::AddressFamily::Inet6,
    };
    h.destination_prefix_length = prefix.prefix_len();
    h.table = RT_TABLE_MAIN as u8;
    h.protocol = RouteProtocol::from(proto);
    h.scope = RouteScope::Universe;
    h.kind = RouteType::Unicast;
    m.header = h;
    m.attributes
        .push(RouteAttribute::Destination(route_address(prefix.network())));
    m
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn table_of(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(m.header.table as u32)
}
