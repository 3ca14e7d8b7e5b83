//! The desired-state compiler: from the resources in the store to what one edge must
//! realise. Pure (a snapshot in, a config out), so it is tested without a database.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use cic_model::edge::{
    Attachment, BgpSettings, ConnectionConfig, EdgeConfig, FabricAttachment, FabricIpv6,
    InstanceConfig, PeeringConfig, TrunkConfig,
};
use cic_model::resource::{
    CloudService, Edge, PointOfPresence, PrivateConnection, PublicConnection,
    PublicServicesRouting, RoutingInstance, Status, TrunkConnection,
};
use cic_store::FabricSlot;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Everything the compiler reads, loaded in one go.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub edges: Vec<Edge>,
    pub trunks: Vec<TrunkConnection>,
    pub connections: Vec<PrivateConnection>,
    pub routing_instances: Vec<RoutingInstance>,
    pub slots: Vec<FabricSlot>,
    pub pops: Vec<PointOfPresence>,
    pub public_connections: Vec<PublicConnection>,
    pub services: Vec<CloudService>,
}

/// Operator settings that shape every edge's config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cloud_asn: u32,
    pub bgp: BgpSettings,
    pub peering_mtu: u32,
    pub public_peering_mtu: u32,
}

fn live<S>(status: Status, x: S) -> Option<S> {
    (status != Status::Deleting).then_some(x)
}

pub fn trunk_attachment(t: &TrunkConnection) -> Option<Attachment> {
    if let Some(o) = &t.overlay_joint {
        return Some(Attachment::Vxlan {
            remote_vtep: o.remote_vtep,
            port: o.port_name.clone(),
            udp_port: o.udp_port,
        });
    }
    if let Some(l) = &t.lag_direct_joint {
        return Some(Attachment::Lag {
            bond: bond_name(&t.meta.id),
            ports: l.port_names.clone(),
        });
    }
    if let Some(port) = t
        .partner_joint_info
        .as_ref()
        .and_then(|p| p.port_name.clone())
    {
        return Some(Attachment::Vlan { port });
    }
    t.single_port_direct_joint
        .as_ref()
        .map(|j| Attachment::Vlan {
            port: j.port_name.clone(),
        })
}

/// The bond device of a LAG trunk: `bd` and the trunk id's tail, within IFNAMSIZ.
pub fn bond_name(trunk_id: &str) -> String {
    let tail: String = trunk_id.chars().skip(2).take(13).collect();
    format!("bd{tail}")
}

/// What a trunk's frames share on its edge: connections of trunks on the same wire need
/// distinct VLAN ids (for VXLAN, VNIs per UDP port). A LAG is a wire of its own.
pub fn wire(t: &TrunkConnection) -> Option<String> {
    t.wire()
}

/// The fabric segment of slot `slot` on `edge`: VNI and a /31 of the edge's transit pool.
pub fn fabric_attachment(edge: &Edge, slot: u32) -> Option<FabricAttachment> {
    let subnet = nth_slash31(edge.fabric.transit_pool, slot)?;
    let ip = u32::from(subnet.network());
    let ipv6 = match edge.fabric.transit_pool6 {
        // The operator's pool: its n-th /127.
        Some(pool6) => (pool6.prefix_len() <= 127)
            .then(|| u128::from(pool6.network()).checked_add(2 * u128::from(slot)))
            .flatten()
            .map(std::net::Ipv6Addr::from)
            .filter(|a| pool6.contains(a))
            .and_then(|a| {
                Some(FabricIpv6 {
                    subnet: ipnet::Ipv6Net::new(a, 127).ok()?,
                    edge_ip: a,
                    fabric_ip: std::net::Ipv6Addr::from(u128::from(a) + 1),
                })
            }),
        // The IPv4 addresses embedded in fd63:6963::/96.
        None => {
            let base = u128::from(cic_model::resource::default_transit_pool6().network());
            let embed = |v4: u32| std::net::Ipv6Addr::from(base | u128::from(v4));
            ipnet::Ipv6Net::new(embed(ip), 127)
                .ok()
                .map(|subnet| FabricIpv6 {
                    subnet,
                    edge_ip: embed(ip),
                    fabric_ip: embed(ip + 1),
                })
        }
    };
    Some(FabricAttachment {
        vni: edge.fabric.vni_base.checked_add(slot)?,
        remote_vtep: edge.fabric.remote_vtep,
        port_name: edge.fabric.port_name.clone(),
        udp_port: cic_model::resource::default_vxlan_port(),
        subnet,
        edge_ip: ip.into(),
        fabric_ip: (ip + 1).into(),
        fabric_asn: edge.fabric.asn,
        ipv6,
        static_routing: false,
    })
}

/// The `n`-th /31 of `pool` (what `pool.subnets(31).nth(n)` gives), computed rather than
/// counted to: the compiler asks it once per routing instance.
fn nth_slash31(pool: Ipv4Net, n: u32) -> Option<Ipv4Net> {
    let len = pool.prefix_len();
    if len > 31 || u64::from(n) >= 1u64 << (31 - len) {
        return None;
    }
    Ipv4Net::new((u32::from(pool.network()) + 2 * n).into(), 31).ok()
}

/// A public connection's segment toward its PoP's public services: the VNI and transit
/// addresses of its fabric slot on `edge`, sent to the services routers' VTEP.
pub fn public_services_segment(
    snap: &Snapshot,
    edge: &Edge,
    p: &PublicConnection,
    cloud_asn: u32,
) -> Option<FabricAttachment> {
    let net = snap
        .pops
        .iter()
        .find(|x| x.id == edge.point_of_presence_id)?
        .public_services
        .as_ref()?;
    let slot = snap
        .slots
        .iter()
        .find(|s| s.edge_id == edge.id && s.routing_instance_id == p.meta.id)?;
    let f = fabric_attachment(edge, slot.slot)?;
    Some(FabricAttachment {
        remote_vtep: net.remote_vtep,
        port_name: None,
        udp_port: net.udp_port,
        fabric_asn: net.asn.unwrap_or(cloud_asn),
        ipv6: f.ipv6.filter(|_| p.ipv6_peering.is_some()),
        static_routing: net.routing == PublicServicesRouting::Static,
        ..f
    })
}

/// How many fabric slots an edge can hand out (its transit pool in /31s, within VNIs).
pub fn slot_capacity(edge: &Edge) -> u32 {
    let pool = 1u64 << (32 - u32::from(edge.fabric.transit_pool.prefix_len().min(31)));
    let by_pool = (pool / 2).min(u32::MAX as u64) as u32;
    by_pool.min((1 << 24) - 1 - edge.fabric.vni_base.min((1 << 24) - 1))
}

pub fn compile(
    snap: &Snapshot,
    edge_id: &str,
    revision: u64,
    settings: &Settings,
) -> Option<EdgeConfig> {
    let edge = snap.edges.iter().find(|e| e.id == edge_id)?;
    let trunks: BTreeMap<&str, &TrunkConnection> = snap
        .trunks
        .iter()
        .filter_map(|t| live(t.meta.status, t))
        .filter(|t| t.edge_id == edge_id)
        .map(|t| (t.meta.id.as_str(), t))
        .collect();
    let conns: Vec<&PrivateConnection> = snap
        .connections
        .iter()
        .filter_map(|c| live(c.meta.status, c))
        .filter(|c| trunks.contains_key(c.trunk_connection_id.as_str()))
        .collect();

    let conn_config = |c: &PrivateConnection| ConnectionConfig {
        id: c.meta.id.clone(),
        trunk_id: c.trunk_connection_id.clone(),
        vlan_id: c.vlan_id,
        mtu: settings.peering_mtu,
        peerings: peerings(c),
        // The newest test not stopped: the edge holds the session down until its end.
        hold_down_until: c
            .bgp_failover_tests
            .last()
            .filter(|t| t.stopped_at.is_none())
            .map(|t| t.ends_at.clone()),
        reset_seq: c.bgp_session_resets,
        ttl_security: c.ttl_security.unwrap_or(settings.bgp.ttl_security),
        bgp_role: c.bgp_role.unwrap_or(settings.bgp.bgp_role),
        bfd: c.bfd.map(|t| cic_model::edge::ConnectionBfd {
            min_interval_ms: t.min_interval_ms,
            multiplier: t.multiplier,
        }),
    };

    // Looked up by id: a routing instance's members, its slot, its members' families
    // (scanning the lists for each instance made a config at 1,000 instances quadratic).
    let conn_at: HashMap<&str, usize> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.meta.id.as_str(), i))
        .collect();
    let slot_of = slots_on(snap, edge_id);
    let v6 = ipv6_connections(snap);

    let mut instances = Vec::new();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for ri in snap
        .routing_instances
        .iter()
        .filter_map(|r| live(r.meta.status, r))
    {
        // In the order of the store's connections, each once.
        let at: BTreeSet<usize> = ri
            .cic_private_connection_info
            .iter()
            .filter_map(|r| conn_at.get(r.cic_private_connection_id.as_str()).copied())
            .collect();
        let members: Vec<&PrivateConnection> = at.into_iter().map(|i| conns[i]).collect();
        if members.is_empty() {
            continue;
        }
        let fabric = slot_of
            .get(ri.meta.id.as_str())
            .and_then(|&slot| fabric_attachment(edge, slot))
            .map(|f| ipv6_if_wanted(f, ri, &v6));
        placed.extend(members.iter().map(|c| c.meta.id.as_str()));
        instances.push(Arc::new(InstanceConfig {
            id: ri.meta.id.clone(),
            routing_instance_id: Some(ri.meta.id.clone()),
            vpc_prefixes: ri.prefixes(),
            fabric,
            connections: members.into_iter().map(conn_config).collect(),
            announce: vec![],
            accept_only: None,
        }));
    }
    // A connection in no routing instance still gets its own namespace and BGP session.
    for c in conns
        .iter()
        .filter(|c| !placed.contains(c.meta.id.as_str()))
    {
        instances.push(Arc::new(InstanceConfig {
            id: c.meta.id.clone(),
            routing_instance_id: None,
            vpc_prefixes: vec![],
            fabric: None,
            connections: vec![conn_config(c)],
            announce: vec![],
            accept_only: None,
        }));
    }
    // A public connection: its own namespace and session, and its segment toward the
    // PoP's public services. The allowed services' prefixes are what it may reach (routes
    // from the services routers outside them are refused) and what the customer is sent
    // while the segment carries them; only the customer's registered prefixes are taken
    // from it, and only packets from them are forwarded. Without a public-services
    // network at the PoP nothing is announced: no packet could follow.
    for p in snap
        .public_connections
        .iter()
        .filter_map(|p| live(p.meta.status, p))
        .filter(|p| trunks.contains_key(p.trunk_connection_id.as_str()))
    {
        // Each family's allowed services, their prefixes of that family.
        let of = |types: &[String], v6: bool| -> Vec<ipnet::IpNet> {
            snap.services
                .iter()
                .filter(|s| types.contains(&s.id))
                .flat_map(|s| s.prefixes.iter().copied())
                .filter(|n| matches!(n, ipnet::IpNet::V6(_)) == v6)
                .collect()
        };
        let announce: BTreeSet<ipnet::IpNet> = of(&p.ipv4_allowed_service_types, false)
            .into_iter()
            .chain(if p.ipv6_peering.is_some() {
                of(&p.ipv6_allowed_service_types, true)
            } else {
                vec![]
            })
            .collect();
        let mut peerings = vec![PeeringConfig {
            subnet: p.ipv4_peering.peering_subnet.into(),
            cloud_ip: p.ipv4_peering.cloud_ip.into(),
            peer_ip: p.ipv4_peering.peer_ip.into(),
            peer_asn: p.ipv4_peering.peer_bgp_asn,
            md5_key: p.ipv4_peering.peer_bgp_md5_key.clone(),
            static_routes: vec![],
        }];
        if let Some(v6) = &p.ipv6_peering {
            peerings.push(PeeringConfig {
                subnet: v6.peering_subnet.into(),
                cloud_ip: v6.cloud_ip.into(),
                peer_ip: v6.peer_ip.into(),
                peer_asn: v6.peer_bgp_asn,
                md5_key: v6.peer_bgp_md5_key.clone(),
                static_routes: vec![],
            });
        }
        let accept_only: Vec<ipnet::IpNet> = p
            .ipv4_peer_announced_prefixes
            .iter()
            .map(|n| ipnet::IpNet::V4(*n))
            .chain(
                p.ipv6_peer_announced_prefixes
                    .iter()
                    .map(|n| ipnet::IpNet::V6(*n)),
            )
            .collect();
        let segment = public_services_segment(snap, edge, p, settings.cloud_asn);
        let announce: Vec<ipnet::IpNet> = announce.into_iter().collect();
        instances.push(Arc::new(InstanceConfig {
            id: p.meta.id.clone(),
            routing_instance_id: None,
            vpc_prefixes: announce.clone(),
            announce: if segment.as_ref().is_some_and(|f| f.static_routing) {
                announce
            } else {
                vec![]
            },
            fabric: segment,
            connections: vec![ConnectionConfig {
                id: p.meta.id.clone(),
                trunk_id: p.trunk_connection_id.clone(),
                vlan_id: p.vlan_id,
                mtu: settings.public_peering_mtu,
                peerings,
                hold_down_until: p
                    .bgp_failover_tests
                    .last()
                    .filter(|t| t.stopped_at.is_none())
                    .map(|t| t.ends_at.clone()),
                reset_seq: p.bgp_session_resets,
                // Public connections take the operator's defaults.
                ttl_security: settings.bgp.ttl_security,
                bgp_role: settings.bgp.bgp_role,
                bfd: None,
            }],
            accept_only: Some(accept_only),
        }));
    }
    let mut config = EdgeConfig {
        revision,
        edge_id: edge_id.to_string(),
        router_id: edge.router_id,
        local_asn: settings.cloud_asn,
        bgp: settings.bgp.clone(),
        trunks: trunks
            .values()
            .filter_map(|t| {
                Some(TrunkConfig {
                    id: t.meta.id.clone(),
                    attachment: trunk_attachment(t)?,
                    capacity_mbps: t.capacity.mbps(),
                })
            })
            .collect(),
        instances,
        drain: edge.drain,
    };
    // In one order, which an edge's config made from updates has too.
    config.sort_instances();
    Some(config)
}

/// The ids of the connections (of any edge) with an IPv6 peering.
fn ipv6_connections(snap: &Snapshot) -> HashSet<&str> {
    snap.connections
        .iter()
        .filter(|c| c.ipv6_peering.is_some())
        .map(|c| c.meta.id.as_str())
        .collect()
}

/// Each routing instance's fabric slot on `edge_id` (the first, should there be two).
fn slots_on<'a>(snap: &'a Snapshot, edge_id: &str) -> HashMap<&'a str, u32> {
    let mut out = HashMap::new();
    for s in snap.slots.iter().filter(|s| s.edge_id == edge_id) {
        out.entry(s.routing_instance_id.as_str()).or_insert(s.slot);
    }
    out
}

/// A fabric segment carries an IPv6 session when its routing instance has IPv6: VPC
/// prefixes or a member's IPv6 peering. (An IPv4-only instance asks nothing new of the
/// fabric router.)
fn ipv6_if_wanted(
    mut f: FabricAttachment,
    ri: &RoutingInstance,
    v6_connections: &HashSet<&str>,
) -> FabricAttachment {
    let v6_prefixes = ri
        .prefixes()
        .iter()
        .any(|p| matches!(p, ipnet::IpNet::V6(_)));
    let v6_member = || {
        ri.cic_private_connection_info
            .iter()
            .any(|r| v6_connections.contains(r.cic_private_connection_id.as_str()))
    };
    if !v6_prefixes && !v6_member() {
        f.ipv6 = None;
    }
    f
}

/// A private connection's peerings as the edge realises them: IPv4 first, then IPv6.
fn peerings(c: &PrivateConnection) -> Vec<PeeringConfig> {
    let v4 = c.ipv4_peering.as_ref().map(|p| PeeringConfig {
        subnet: p.peering_subnet.into(),
        cloud_ip: p.cloud_ip.into(),
        peer_ip: p.peer_ip.into(),
        peer_asn: p.peer_bgp_asn,
        md5_key: p.peer_bgp_md5_key.clone(),
        static_routes: c
            .ipv4_static_routes
            .iter()
            .map(|r| r.prefix.into())
            .collect(),
    });
    let v6 = c.ipv6_peering.as_ref().map(|p| PeeringConfig {
        subnet: p.peering_subnet.into(),
        cloud_ip: p.cloud_ip.into(),
        peer_ip: p.peer_ip.into(),
        peer_asn: p.peer_bgp_asn,
        md5_key: p.peer_bgp_md5_key.clone(),
        static_routes: c
            .ipv6_static_routes
            .iter()
            .map(|r| r.prefix.into())
            .collect(),
    });
    v4.into_iter().chain(v6).collect()
}

/// What the operator's fabric must configure for one routing instance on one edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FabricAttachmentView {
    pub routing_instance_id: String,
    pub vpc_network_ids: Vec<String>,
    #[schemars(with = "Vec<String>")]
    pub vpc_prefixes: Vec<ipnet::IpNet>,
    pub vni: u32,
    pub udp_port: u16,
    /// The edge's VTEP (the fabric's remote).
    pub edge_vtep: std::net::Ipv4Addr,
    #[schemars(with = "String")]
    pub subnet: Ipv4Net,
    pub edge_ip: std::net::Ipv4Addr,
    pub fabric_ip: std::net::Ipv4Addr,
    pub edge_asn: u32,
    pub fabric_asn: u32,
    /// The IPv6 session's addresses on the same segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FabricIpv6>,
}

pub fn fabric_attachments(
    snap: &Snapshot,
    edge_id: &str,
    cloud_asn: u32,
) -> Vec<FabricAttachmentView> {
    let Some(edge) = snap.edges.iter().find(|e| e.id == edge_id) else {
        return vec![];
    };
    let mut live_instances: HashMap<&str, &RoutingInstance> = HashMap::new();
    for r in snap
        .routing_instances
        .iter()
        .filter_map(|r| live(r.meta.status, r))
    {
        live_instances.entry(r.meta.id.as_str()).or_insert(r);
    }
    let v6 = ipv6_connections(snap);
    let mut out = Vec::new();
    for s in snap.slots.iter().filter(|s| s.edge_id == edge_id) {
        let Some(&ri) = live_instances.get(s.routing_instance_id.as_str()) else {
            continue;
        };
        let Some(f) = fabric_attachment(edge, s.slot).map(|f| ipv6_if_wanted(f, ri, &v6)) else {
            continue;
        };
        out.push(FabricAttachmentView {
            routing_instance_id: ri.meta.id.clone(),
            vpc_network_ids: ri
                .vpc_info
                .iter()
                .map(|v| v.vpc_network_id.clone())
                .collect(),
            vpc_prefixes: ri.prefixes(),
            vni: f.vni,
            udp_port: f.udp_port,
            edge_vtep: edge.fabric.local_vtep,
            subnet: f.subnet,
            edge_ip: f.edge_ip,
            fabric_ip: f.fabric_ip,
            edge_asn: cloud_asn,
            fabric_asn: f.fabric_asn,
            ipv6: f.ipv6,
        });
    }
    out
}

/// What the public-services network must configure for one public connection on one
/// edge: its side of the segment and, with static routing, the routes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicServicesAttachmentView {
    pub public_connection_id: String,
    pub routing: PublicServicesRouting,
    pub vni: u32,
    pub udp_port: u16,
    /// The edge's VTEP (the services routers' remote).
    pub edge_vtep: std::net::Ipv4Addr,
    #[schemars(with = "String")]
    pub subnet: Ipv4Net,
    pub edge_ip: std::net::Ipv4Addr,
    /// The services routers' address on the segment.
    pub services_ip: std::net::Ipv4Addr,
    pub edge_asn: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_asn: Option<u32>,
    /// The customer's registered prefixes: with BGP the edge announces those the
    /// customer does; with static routing the services routers route them to `edgeIp`
    /// (IPv6 ones to the IPv6 side's edge address).
    #[schemars(with = "Vec<String>")]
    pub customer_prefixes: Vec<ipnet::IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FabricIpv6>,
}

pub fn public_services_attachments(
    snap: &Snapshot,
    edge_id: &str,
    cloud_asn: u32,
) -> Vec<PublicServicesAttachmentView> {
    let Some(edge) = snap.edges.iter().find(|e| e.id == edge_id) else {
        return vec![];
    };
    let trunks: BTreeSet<&str> = snap
        .trunks
        .iter()
        .filter(|t| t.edge_id == edge_id)
        .map(|t| t.meta.id.as_str())
        .collect();
    snap.public_connections
        .iter()
        .filter_map(|p| live(p.meta.status, p))
        .filter(|p| trunks.contains(p.trunk_connection_id.as_str()))
        .filter_map(|p| {
            let f = public_services_segment(snap, edge, p, cloud_asn)?;
            Some(PublicServicesAttachmentView {
                public_connection_id: p.meta.id.clone(),
                routing: if f.static_routing {
                    PublicServicesRouting::Static
                } else {
                    PublicServicesRouting::Bgp
                },
                vni: f.vni,
                udp_port: f.udp_port,
                edge_vtep: edge.fabric.local_vtep,
                subnet: f.subnet,
                edge_ip: f.edge_ip,
                services_ip: f.fabric_ip,
                edge_asn: cloud_asn,
                services_asn: (!f.static_routing).then_some(f.fabric_asn),
                customer_prefixes: p
                    .ipv4_peer_announced_prefixes
                    .iter()
                    .map(|n| ipnet::IpNet::V4(*n))
                    .chain(
                        p.ipv6_peer_announced_prefixes
                            .iter()
                            .map(|n| ipnet::IpNet::V6(*n)),
                    )
                    .collect(),
                ipv6: f.ipv6,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cic_model::edge::Family;
    use cic_model::resource::*;

    fn meta(id: &str) -> Meta {
        Meta {
            id: id.into(),
            folder_id: "f1".into(),
            status: Status::Active,
            ..Default::default()
        }
    }

    fn snapshot() -> Snapshot {
        let edge = Edge {
            id: "ed1".into(),
            name: "pop1-edge".into(),
            point_of_presence_id: "pop1".into(),
            router_id: "10.255.0.1".parse().unwrap(),
            fabric: FabricSettings {
                asn: 200_350,
                remote_vtep: "100.64.255.2".parse().unwrap(),
                local_vtep: "100.64.255.1".parse().unwrap(),
                port_name: None,
                transit_pool: "100.127.0.0/24".parse().unwrap(),
                transit_pool6: None,
                vni_base: 100_000,
            },
            customer_ports: vec![],
            drain: false,
            created_at: String::new(),
            live: None,
        };
        let trunk = TrunkConnection {
            meta: meta("tc1"),
            point_of_presence_id: "pop1".into(),
            capacity: Capacity::Capacity1Gbps,
            deletion_protection: false,
            single_port_direct_joint: None,
            overlay_joint: Some(OverlayJoint {
                remote_vtep: "100.64.1.2".parse().unwrap(),
                port_name: Some("xc0".into()),
                udp_port: 4789,
                access_device_name: None,
            }),
            lag_direct_joint: None,
            partner_joint_info: None,
            edge_id: "ed1".into(),
        };
        let conn = |id: &str, vlan: u16| PrivateConnection {
            meta: meta(id),
            trunk_connection_id: "tc1".into(),
            vlan_id: vlan,
            ipv4_peering: Some(Ipv4Peering {
                peering_subnet: "169.254.100.0/30".parse().unwrap(),
                peer_ip: "169.254.100.2".parse().unwrap(),
                cloud_ip: "169.254.100.1".parse().unwrap(),
                peer_bgp_asn: 65001,
                cloud_bgp_asn: 200_350,
                peer_bgp_md5_key: Some("k".into()),
            }),
            ipv6_peering: None,
            ipv4_static_routes: vec![],
            ipv6_static_routes: vec![],
            ttl_security: None,
            bgp_role: None,
            bfd: None,
            bgp_session_options: None,
            bgp_failover_tests: vec![],
            bgp_session_resets: 0,
            routing_instance_id: None,
            bgp: None,
            bgp_ipv6: None,
        };
        let ri = RoutingInstance {
            meta: meta("ri1"),
            vpc_info: vec![VpcInfo {
                vpc_network_id: "vpc1".into(),
                az_infos: vec![AzInfo {
                    az_id: "az-a".into(),
                    prefixes: vec!["10.128.0.0/24".parse().unwrap()],
                }],
            }],
            cic_private_connection_info: vec![PrivateConnectionRef {
                cic_private_connection_id: "pc1".into(),
            }],
            deletion_protection: false,
        };
        Snapshot {
            edges: vec![edge],
            trunks: vec![trunk],
            connections: vec![conn("pc1", 100), conn("pc2", 200)],
            routing_instances: vec![ri],
            slots: vec![FabricSlot {
                edge_id: "ed1".into(),
                routing_instance_id: "ri1".into(),
                slot: 3,
            }],
            ..Default::default()
        }
    }

    fn settings() -> Settings {
        Settings {
            cloud_asn: 200_350,
            bgp: BgpSettings::default(),
            peering_mtu: 8910,
            public_peering_mtu: 1500,
        }
    }

    /// The instance of the snapshot's routing instance (instances are in id order).
    fn joined(c: &EdgeConfig) -> &InstanceConfig {
        c.instances
            .iter()
            .find(|i| i.routing_instance_id.is_some())
            .expect("the routing instance's instance")
    }

    #[test]
    fn routing_instance_and_unattached_connection_become_instances() {
        let c = compile(&snapshot(), "ed1", 7, &settings()).expect("edge exists");
        assert_eq!(c.revision, 7);
        assert_eq!(c.local_asn, 200_350);
        assert_eq!(c.trunks.len(), 1);
        assert!(
            matches!(&c.trunks[0].attachment, Attachment::Vxlan { udp_port: 4789, port: Some(p), .. } if p == "xc0")
        );
        assert_eq!(c.instances.len(), 2);
        let ri = joined(&c);
        assert_eq!(ri.routing_instance_id.as_deref(), Some("ri1"));
        assert_eq!(
            ri.vpc_prefixes,
            vec!["10.128.0.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(
            ri.connections
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            vec!["pc1"]
        );
        assert_eq!(
            ri.connections[0].peerings[0]
                .md5_key
                .as_ref()
                .map(|k| k.expose()),
            Some("k"),
            "the edge needs the key"
        );
        let f = ri.fabric.as_ref().expect("fabric");
        assert_eq!(
            (
                f.vni,
                f.subnet.to_string(),
                f.edge_ip.to_string(),
                f.fabric_ip.to_string()
            ),
            (
                100_003,
                "100.127.0.6/31".into(),
                "100.127.0.6".into(),
                "100.127.0.7".into()
            )
        );
        let lone = &c.instances[0];
        assert_eq!(
            (
                lone.id.as_str(),
                lone.routing_instance_id.clone(),
                lone.fabric.clone()
            ),
            ("pc2", None, None)
        );
    }

    #[test]
    fn a_dual_stack_connection_has_two_peerings_and_its_instance_an_ipv6_fabric_session() {
        let mut s = snapshot();
        // IPv4 only: the fabric segment asks nothing of IPv6.
        let c = compile(&s, "ed1", 7, &settings()).expect("edge");
        assert!(joined(&c).fabric.as_ref().expect("fabric").ipv6.is_none());
        s.connections[0].ipv6_peering = Some(Ipv6Peering {
            peering_subnet: "fd00:c1c::/127".parse().unwrap(),
            peer_ip: "fd00:c1c::1".parse().unwrap(),
            cloud_ip: "fd00:c1c::".parse().unwrap(),
            peer_bgp_asn: 65001,
            cloud_bgp_asn: 200_350,
            peer_bgp_md5_key: None,
        });
        s.connections[0].ipv6_static_routes = vec![Ipv6StaticRoute {
            prefix: "2a00:1::/48".parse().unwrap(),
        }];
        let c = compile(&s, "ed1", 8, &settings()).expect("edge");
        let pc = &joined(&c).connections[0];
        let fams: Vec<_> = pc.peerings.iter().map(|p| p.family()).collect();
        assert_eq!(fams, vec![Family::Ipv4, Family::Ipv6]);
        let v6 = pc.peering(Family::Ipv6).expect("v6");
        assert_eq!(v6.cloud_address().to_string(), "fd00:c1c::/127");
        assert_eq!(v6.static_routes[0].to_string(), "2a00:1::/48");
        assert!(
            pc.peering(Family::Ipv4)
                .expect("v4")
                .static_routes
                .is_empty()
        );
        // Slot 3 (100.127.0.6/31): without a pool of its own, the IPv4 addresses
        // embedded in fd63:6963::/96 — distinct wherever the IPv4 pools are.
        let f = joined(&c).fabric.as_ref().expect("fabric");
        let f6 = f.ipv6.expect("an IPv6 fabric session");
        assert_eq!(
            (
                f6.subnet.to_string(),
                f6.edge_ip.to_string(),
                f6.fabric_ip.to_string()
            ),
            (
                "fd63:6963::647f:6/127".into(),
                "fd63:6963::647f:6".into(),
                "fd63:6963::647f:7".into()
            )
        );
        // With the operator's pool: its 4th /127.
        s.edges[0].fabric.transit_pool6 = Some("fd00:fab::/64".parse().unwrap());
        let c = compile(&s, "ed1", 8, &settings()).expect("edge");
        let f6 = joined(&c).fabric.as_ref().and_then(|f| f.ipv6).expect("v6");
        assert_eq!(
            (f6.edge_ip.to_string(), f6.fabric_ip.to_string()),
            ("fd00:fab::6".into(), "fd00:fab::7".into())
        );
        // An IPv6-only connection: one peering.
        s.connections[1].ipv4_peering = None;
        s.connections[1].ipv6_peering = s.connections[0].ipv6_peering.clone();
        let c = compile(&s, "ed1", 9, &settings()).expect("edge");
        let lone = &c.instances[0].connections[0];
        assert_eq!(lone.peerings.len(), 1);
        assert_eq!(lone.peerings[0].family(), Family::Ipv6);
    }

    #[test]
    fn a_connection_s_gtsm_and_roles_are_its_own_choice_over_the_operator_s_default() {
        use cic_model::edge::BgpRoleMode;
        let mut s = snapshot();
        let mut set = settings();
        set.bgp.ttl_security = true;
        set.bgp.bgp_role = BgpRoleMode::Announce;
        // pc1 chooses for itself; pc2 takes the operator's defaults.
        s.connections[0].ttl_security = Some(false);
        s.connections[0].bgp_role = Some(BgpRoleMode::Strict);
        let c = compile(&s, "ed1", 7, &set).expect("edge");
        let of = |id: &str| {
            let pc = c
                .instances
                .iter()
                .flat_map(|i| &i.connections)
                .find(|x| x.id == id)
                .expect("connection");
            (pc.ttl_security, pc.bgp_role)
        };
        assert_eq!(of("pc1"), (false, BgpRoleMode::Strict));
        assert_eq!(of("pc2"), (true, BgpRoleMode::Announce));
        // Without defaults, nothing.
        let c = compile(&snapshot(), "ed1", 7, &settings()).expect("edge");
        let pc2 = c
            .instances
            .iter()
            .flat_map(|i| &i.connections)
            .find(|x| x.id == "pc2")
            .expect("pc2");
        assert_eq!((pc2.ttl_security, pc2.bgp_role), (false, BgpRoleMode::Off));
    }

    #[test]
    fn deleting_resources_leave_the_config() {
        let mut s = snapshot();
        s.routing_instances[0].meta.status = Status::Deleting;
        let c = compile(&s, "ed1", 8, &settings()).expect("edge");
        assert!(
            c.instances.iter().all(|i| i.routing_instance_id.is_none()),
            "pc1 falls back to its own namespace"
        );
        s.connections[0].meta.status = Status::Deleting;
        s.connections[1].meta.status = Status::Deleting;
        let c = compile(&s, "ed1", 9, &settings()).expect("edge");
        assert!(c.instances.is_empty());
        s.trunks[0].meta.status = Status::Deleting;
        assert!(
            compile(&s, "ed1", 10, &settings())
                .expect("edge")
                .trunks
                .is_empty()
        );
    }

    #[test]
    fn other_edges_get_nothing_and_unknown_edges_no_config() {
        let mut s = snapshot();
        let mut other = s.edges[0].clone();
        other.id = "ed2".into();
        s.edges.push(other);
        let c = compile(&s, "ed2", 1, &settings()).expect("edge");
        assert!(c.trunks.is_empty() && c.instances.is_empty());
        assert!(compile(&s, "nope", 1, &settings()).is_none());
    }

    #[test]
    fn fabric_attachment_view_tells_the_fabric_what_to_build() {
        let v = fabric_attachments(&snapshot(), "ed1", 200_350);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].edge_vtep.to_string(), "100.64.255.1");
        assert_eq!(v[0].vpc_network_ids, vec!["vpc1".to_string()]);
    }

    #[test]
    fn slot_capacity_follows_the_pool() {
        let s = snapshot();
        assert_eq!(slot_capacity(&s.edges[0]), 128);
    }

    #[test]
    fn a_slot_s_slash31_is_the_pool_s_nth_as_counted() {
        for pool in [
            "100.127.0.0/24",
            "10.0.0.5/30",
            "10.0.0.0/31",
            "10.0.0.0/32",
        ] {
            let pool: Ipv4Net = pool.parse().unwrap();
            for n in [0, 1, 2, 127, 128, 129, u32::MAX] {
                let counted = pool.subnets(31).ok().and_then(|mut s| s.nth(n as usize));
                assert_eq!(nth_slash31(pool, n), counted, "{pool} slot {n}");
            }
        }
        // The whole space (too long to count): its last /31, and past it.
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert_eq!(
            nth_slash31(all, (1 << 31) - 1),
            "255.255.255.254/31".parse().ok()
        );
        assert_eq!(nth_slash31(all, 1 << 31), None);
    }

    #[test]
    fn members_keep_the_store_s_order_once_each_whatever_the_instance_lists() {
        let mut s = snapshot();
        let mut third = s.connections[0].clone();
        third.meta = meta("pc3");
        third.vlan_id = 300;
        s.connections.push(third);
        let listed = |id: &str| PrivateConnectionRef {
            cic_private_connection_id: id.into(),
        };
        s.routing_instances[0].cic_private_connection_info =
            vec![listed("pc3"), listed("pc1"), listed("pc3"), listed("nope")];
        let cfg = compile(&s, "ed1", 1, &settings()).unwrap();
        let inst = cfg.instances.iter().find(|i| i.id == "ri1").unwrap();
        let ids: Vec<&str> = inst.connections.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["pc1", "pc3"]);
    }
}
