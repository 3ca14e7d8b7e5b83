//! `GET …/privateConnections/{id}:routerConfig` and `…/routingInstances/{id}:routerConfig`:
//! the customer's router configuration for one connection, or for every connection of a
//! routing instance at once (both PoPs). The text comes from `cic_model::router_config`;
//! this module gathers what it needs and decides whether the caller sees the MD5 key.

use axum::Json;
use cic_model::resource::{PrivateConnection, RoutingInstance, TrunkConnection};
use cic_model::router_config::{self as rc, Link, Site, Standby, Vendor};
use cic_model::{ApiError, Code};
use cic_store::rel;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{fetch, fetch_for};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::ApiResult;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterConfigQuery {
    /// bird, frr, ios-xe, junos, eos or routeros.
    pub vendor: Vendor,
    /// The prefixes the customer announces, comma-separated (IPv4 and IPv6): the export
    /// filter sends only these. None: nothing is announced until they are added.
    #[serde(default)]
    pub announce: Option<String>,
    /// The router's port the connections arrive on (default per vendor: `eth1`,
    /// `GigabitEthernet0/0/1`, `ge-0/0/1`, `Ethernet1`, `ether2`).
    #[serde(default)]
    pub port: Option<String>,
    /// The name of each connection's interface, with `{vlan}` and `{port}` filled in
    /// (default `{port}.{vlan}` for 802.1Q, `vx{vlan}` for a VXLAN overlay).
    #[serde(default)]
    pub interface: Option<String>,
    /// Make a connection the standby: `prepend` or `community` (a private connection's
    /// own config), or `PC:prepend` / `PC:community` naming one of a routing instance's.
    #[serde(default)]
    pub standby: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterConfig {
    pub vendor: String,
    /// The configuration text, commented.
    pub config: String,
}

fn vendor_name(v: Vendor) -> &'static str {
    match v {
        Vendor::Bird => "bird",
        Vendor::Frr => "frr",
        Vendor::IosXe => "ios-xe",
        Vendor::Eos => "eos",
        Vendor::Junos => "junos",
        Vendor::RouterOs => "routeros",
    }
}

fn standby_of(s: &str) -> ApiResult<Standby> {
    match s {
        "prepend" => Ok(Standby::Prepend),
        "community" => Ok(Standby::Community),
        other => {
            Err(ApiError::field("standby", format!("{other:?}: use prepend or community")).into())
        }
    }
}

fn announced(q: &RouterConfigQuery) -> ApiResult<Vec<IpNet>> {
    let Some(list) = &q.announce else {
        return Ok(vec![]);
    };
    let mut out: Vec<IpNet> = Vec::new();
    for (i, p) in list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let n: IpNet = p.parse().map_err(|_| {
            ApiError::field(
                &format!("announce[{i}]"),
                format!("{p:?} is not a prefix (address/length)"),
            )
        })?;
        cic_model::validate::canonical(&format!("announce[{i}]"), &n)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// One connection's side, as the customer's router sees it.
async fn connection(
    st: &AppState,
    pc: &PrivateConnection,
    q: &RouterConfigQuery,
    secrets: bool,
    standby: Option<Standby>,
) -> ApiResult<rc::Connection> {
    let trunk = fetch::<TrunkConnection>(st, &pc.trunk_connection_id).await?;
    let port = q
        .port
        .clone()
        .unwrap_or_else(|| rc::default_port(q.vendor).into());
    let (link, default_if) = match &trunk.overlay_joint {
        Some(o) => (
            Link::Vxlan {
                remote_vtep: None,
                udp_port: o.udp_port,
                port: port.clone(),
            },
            "vx{vlan}",
        ),
        None => (Link::Vlan { port: port.clone() }, "{port}.{vlan}"),
    };
    let interface = q
        .interface
        .as_deref()
        .unwrap_or(default_if)
        .replace("{vlan}", &pc.vlan_id.to_string())
        .replace("{port}", &port);
    let mut peerings = Vec::new();
    let mut key = None;
    let mut asn = 0;
    if let Some(p) = &pc.ipv4_peering {
        peerings.push(rc::Peering {
            subnet: p.peering_subnet.into(),
            customer_ip: p.peer_ip.into(),
            cloud_ip: p.cloud_ip.into(),
        });
        key = key.or(p.peer_bgp_md5_key.clone());
        asn = p.peer_bgp_asn;
    }
    if let Some(p) = &pc.ipv6_peering {
        peerings.push(rc::Peering {
            subnet: p.peering_subnet.into(),
            customer_ip: p.peer_ip.into(),
            cloud_ip: p.cloud_ip.into(),
        });
        key = key.or(p.peer_bgp_md5_key.clone());
        asn = p.peer_bgp_asn;
    }
    let options = cic_model::resource::BgpSessionOptions::of(pc, &st.config.bgp);
    Ok(rc::Connection {
        id: pc.meta.id.clone(),
        name: pc.meta.name.clone(),
        point_of_presence: trunk.point_of_presence_id.clone(),
        vlan: pc.vlan_id,
        interface,
        link,
        peerings,
        customer_asn: asn,
        md5_key: key.map(|k| match secrets {
            true => k.expose().to_string(),
            false => rc::MD5_PLACEHOLDER.to_string(),
        }),
        standby,
        ttl_security: options.ttl_security,
        bgp_role: options.bgp_role,
        bfd: options.bfd,
    })
}

fn site(
    st: &AppState,
    connections: Vec<rc::Connection>,
    vpc: Vec<IpNet>,
    announce: Vec<IpNet>,
) -> Site {
    let bgp = &st.config.bgp;
    Site {
        cloud_asn: st.config.cloud_asn,
        connections,
        vpc_prefixes: vpc,
        announce,
        max_prefixes: u32::try_from(st.config.max_prefixes_per_instance).unwrap_or(u32::MAX),
        graceful_restart: bgp.graceful_restart_secs > 0,
    }
}

/// `GET /cic/v1/privateConnections/{id}:routerConfig` (viewer; the key for secretViewer).
pub async fn of_connection(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: RouterConfigQuery,
) -> ApiResult<Json<RouterConfig>> {
    let (pc, view) = fetch_for::<PrivateConnection>(st, who, id, Need::Read).await?;
    let standby = q.standby.as_deref().map(standby_of).transpose()?;
    let announce = announced(&q)?;
    let vpc = st
        .store
        .linked::<RoutingInstance>(rel::MEMBER, id)
        .await?
        .into_iter()
        .next()
        .map(|ri| ri.prefixes())
        .unwrap_or_default();
    let c = connection(st, &pc, &q, view.secrets, standby).await?;
    let text = rc::render(q.vendor, &site(st, vec![c], vpc, announce));
    Ok(Json(RouterConfig {
        vendor: vendor_name(q.vendor).into(),
        config: text,
    }))
}

/// `GET /cloudrouter/v1/routingInstances/{id}:routerConfig`: every connection of the
/// routing instance in one configuration (the customer's site at both PoPs).
pub async fn of_instance(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: RouterConfigQuery,
) -> ApiResult<Json<RouterConfig>> {
    let (ri, view) = fetch_for::<RoutingInstance>(st, who, id, Need::Read).await?;
    let standby = match q.standby.as_deref() {
        None => None,
        Some(s) => {
            let (pc, how) = s.split_once(':').ok_or_else(|| {
                ApiError::field(
                    "standby",
                    format!("{s:?}: name the connection, PC:prepend or PC:community"),
                )
            })?;
            if !ri
                .cic_private_connection_info
                .iter()
                .any(|r| r.cic_private_connection_id == pc)
            {
                return Err(ApiError::field(
                    "standby",
                    format!("{pc} is not a connection of routing instance {id}"),
                )
                .into());
            }
            Some((pc.to_string(), standby_of(how)?))
        }
    };
    let announce = announced(&q)?;
    let ids: Vec<String> = ri
        .cic_private_connection_info
        .iter()
        .map(|r| r.cic_private_connection_id.clone())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            format!("routing instance {id} has no private connections to configure"),
        )
        .into());
    }
    let mut conns = Vec::new();
    for pc in st.store.get_many::<PrivateConnection>(&ids).await? {
        let s = standby
            .as_ref()
            .filter(|(id, _)| *id == pc.meta.id)
            .map(|(_, how)| *how);
        conns.push(connection(st, &pc, &q, view.secrets, s).await?);
    }
    let text = rc::render(q.vendor, &site(st, conns, ri.prefixes(), announce));
    Ok(Json(RouterConfig {
        vendor: vendor_name(q.vendor).into(),
        config: text,
    }))
}
