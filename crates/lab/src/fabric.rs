//! The lab's stand-in for the operator's fabric automation: it reads, through the admin
//! API, which fabric segments the edge expects (`/cic/v1/edges/{id}/fabricAttachments`)
//! and builds the fabric router's side of each (a VXLAN device with the fabric address).
//! The fabric BIRD accepts the edges' sessions dynamically (`neighbor range`). One
//! process per edge; each owns only the links whose alias names its edge, so several run
//! side by side in one fabric namespace (a lab with two PoPs).
//!
//! With `public_services`, the same for the services routers: the segments of the public
//! connections (`…/publicServicesAttachments`), in the public-services namespace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use cic_dataplane::{LinkKind, LinkSpec, Netlink};
use ipnet::Ipv4Net;
use serde::Deserialize;
use tracing::{info, warn};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    #[serde(alias = "publicConnectionId")]
    routing_instance_id: String,
    vni: u32,
    udp_port: u16,
    edge_vtep: Ipv4Addr,
    subnet: Ipv4Net,
    #[serde(alias = "servicesIp")]
    fabric_ip: Ipv4Addr,
    /// The segment's IPv6 side, when its routing instance has IPv6.
    #[serde(default)]
    ipv6: Option<Ipv6Side>,
    /// A public-services segment with static routing: the customer's prefixes are routed
    /// to the edge's address here (there is no session to learn them from).
    #[serde(default)]
    routing: Option<String>,
    #[serde(default)]
    customer_prefixes: Vec<ipnet::IpNet>,
    #[serde(default)]
    edge_ip: Option<Ipv4Addr>,
}

impl Attachment {
    fn static_routing(&self) -> bool {
        self.routing.as_deref() == Some("STATIC")
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Ipv6Side {
    subnet: ipnet::Ipv6Net,
    #[serde(alias = "servicesIp")]
    fabric_ip: std::net::Ipv6Addr,
}

#[derive(Deserialize)]
struct Items {
    items: Vec<Attachment>,
}

/// Whose segments one automation process builds, and where.
pub struct Segments<'a> {
    pub edge_id: &'a str,
    /// The fabric's (or the services routers') namespace.
    pub netns: &'a str,
    /// Its port toward the edge.
    pub underlay_dev: &'a str,
    /// The public connections' segments instead of the routing instances'.
    pub public_services: bool,
}

pub async fn run(
    server: &str,
    tls: &cic_client::tls::ClientTls,
    token: &str,
    seg: Segments<'_>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let Segments {
        edge_id,
        netns,
        underlay_dev,
        public_services,
    } = seg;
    let nl = Netlink::open(Some(netns)).context("netlink in the fabric namespace")?;
    let http = cic_client::tls::http_client(
        server,
        tls,
        reqwest::Client::builder().timeout(Duration::from_secs(10)),
    )?;
    let url = format!(
        "{}/cic/v1/edges/{edge_id}/{}",
        server.trim_end_matches('/'),
        if public_services {
            "publicServicesAttachments"
        } else {
            "fabricAttachments"
        }
    );
    info!(edge = edge_id, netns, "fabric automation running");
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        // What the kernel was last made to hold, and when: the fabric router's links are
        // read again only when the attachments changed, after a failure, or every 10 s
        // (with a thousand segments a link dump every 300 ms took a quarter of a core from
        // the machine the benches measure).
        let mut done: Option<(Vec<Attachment>, tokio::time::Instant)> = None;
        // After a failed pass, the same attachments are tried again after a wait that
        // doubles from 300 ms up to 10 s (changed ones at once).
        let mut failing: Option<(Vec<Attachment>, Duration, tokio::time::Instant)> = None;
        loop {
            tick.tick().await;
            let got = async {
                http.get(&url)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Items>()
                    .await
            }
            .await;
            match got {
                Ok(items) => {
                    let fresh = done.as_ref().is_some_and(|(was, at)| {
                        *was == items.items && at.elapsed() < Duration::from_secs(10)
                    });
                    let waiting = failing.as_ref().is_some_and(|(was, _, at)| {
                        *was == items.items && tokio::time::Instant::now() < *at
                    });
                    if fresh || waiting {
                        continue;
                    }
                    match reconcile(&nl, edge_id, underlay_dev, &items.items).await {
                        Ok(()) => {
                            done = Some((items.items, tokio::time::Instant::now()));
                            failing = None;
                        }
                        Err(e) => {
                            done = None;
                            warn!("fabric: {e:#}");
                            let wait = failing
                                .as_ref()
                                .filter(|(was, _, _)| *was == items.items)
                                .map_or(Duration::from_millis(300), |(_, w, _)| {
                                    (*w * 2).min(Duration::from_secs(10))
                                });
                            failing = Some((items.items, wait, tokio::time::Instant::now() + wait));
                        }
                    }
                }
                Err(e) => warn!("fabric: {e}"),
            }
        }
    };
    tokio::select! {
        _ = work => Ok(()),
        _ = shutdown => Ok(()),
    }
}

async fn reconcile(
    nl: &Netlink,
    edge_id: &str,
    underlay_dev: &str,
    want: &[Attachment],
) -> Result<()> {
    let mine = format!("edge:{edge_id} ");
    let mtu = nl
        .link(underlay_dev)
        .await?
        .map(|l| l.mtu.saturating_sub(50))
        .unwrap_or(1450);
    let specs: BTreeMap<String, (LinkSpec, Vec<ipnet::IpNet>)> = want
        .iter()
        .map(|a| {
            let name = format!("vx{}", a.vni);
            let spec = LinkSpec {
                name: name.clone(),
                kind: LinkKind::Vxlan {
                    vni: a.vni,
                    remote: a.edge_vtep,
                    port: a.udp_port,
                    underlay_dev: Some(underlay_dev.into()),
                },
                mtu,
                // With "v6" when it has an IPv6 side: gaining one makes the segment anew.
                // With "static" for static routing: a change of routing makes it anew
                // (and its routes go with the old device).
                alias: format!(
                    "{mine}ri:{} {}{}{}",
                    a.routing_instance_id,
                    a.edge_vtep,
                    if a.ipv6.is_some() { " v6" } else { "" },
                    if a.static_routing() { " static" } else { "" }
                ),
            };
            let mut addrs = vec![ipnet::IpNet::V4(
                Ipv4Net::new(a.fabric_ip, a.subnet.prefix_len()).unwrap_or(a.subnet),
            )];
            if let Some(v6) = &a.ipv6 {
                addrs.push(ipnet::IpNet::V6(
                    ipnet::Ipv6Net::new(v6.fabric_ip, v6.subnet.prefix_len()).unwrap_or(v6.subnet),
                ));
            }
            (name, (spec, addrs))
        })
        .collect();
    let have = nl.links().await?;
    for l in have
        .iter()
        .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(&mine)))
    {
        let keep = specs
            .get(&l.name)
            .is_some_and(|(s, _)| l.alias.as_deref() == Some(s.alias.as_str()));
        if !keep {
            info!(link = %l.name, "fabric segment removed");
            nl.del_link(l.index).await?;
        }
    }
    // New segments are built 16 at a time (a thousand routing instances made at once
    // wait on them otherwise).
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(specs.iter().filter(|(name, (spec, _))| {
        !have
            .iter()
            .any(|l| &l.name == *name && l.alias.as_deref() == Some(spec.alias.as_str()))
    }))
    .map(|(name, (spec, addr))| async move {
        let idx = nl.create_link_in(spec, nl).await?;
        for a in addr {
            nl.add_address(idx, *a).await?;
        }
        nl.set_up(idx, None).await?;
        info!(link = %name, vni = ?spec.kind, ?addr, "fabric segment built");
        Ok::<_, anyhow::Error>(())
    })
    .buffer_unordered(16)
    .try_collect::<()>()
    .await?;
    // Static routing: the customer's IPv4 prefixes via the edge, one metric per segment
    // (several edges' routes to one prefix stand side by side, the first one used). A
    // route refused makes the pass a failure, so the next tick tries again.
    let mut refused = Vec::new();
    for a in want.iter().filter(|a| a.static_routing()) {
        let (Some(edge_ip), Some(ns)) = (a.edge_ip, nl.netns()) else {
            continue;
        };
        for p in a.customer_prefixes.iter().filter(|p| p.addr().is_ipv4()) {
            let out = std::process::Command::new("ip")
                .args([
                    "-n",
                    &ns,
                    "route",
                    "replace",
                    &p.to_string(),
                    "via",
                    &edge_ip.to_string(),
                    "dev",
                    &format!("vx{}", a.vni),
                    "metric",
                    &a.vni.to_string(),
                    "proto",
                    "static",
                ])
                .output()?;
            if !out.status.success() {
                refused.push(format!(
                    "route {p} via {edge_ip}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    if !refused.is_empty() {
        anyhow::bail!("{}", refused.join("; "));
    }
    Ok(())
}
