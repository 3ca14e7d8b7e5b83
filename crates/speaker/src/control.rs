//! The control socket: a Unix stream socket; a client writes one request (a JSON line)
//! and reads one JSON answer until the speaker closes the connection.
//!
//! ```text
//! → {"show":"summary"}   ← {"asn":65002,"routerId":"10.99.0.1","prefixes":2,"neighbors":[…]}
//! → {"show":"routes"}    ← [{"prefix":"10.1.0.0/16","nextHop":"10.99.1.1","asPath":[65001],"peer":"10.99.1.1",…}]
//! → {"show":"count"}     ← 2
//! → {"show":"neighbor","address":"10.99.1.1","which":"received"}
//!                        ← [{"prefix":…,"refused":"refused by policy feed-in, rule 1",…}]
//! ← {"error":"…"}        for a request it cannot read
//! ```

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cic_bgp::driver::InstanceHandle;
use cic_bgp::wire::{AsPathSegment, Origin};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::debug;

use crate::Config;

/// The longest request line read.
const MAX_REQUEST: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "show", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Summary,
    Routes,
    Count,
    /// A neighbor's routes: what it sent (each refused one with why), what was accepted
    /// of it, or what it is sent.
    Neighbor {
        address: std::net::IpAddr,
        which: Which,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    Received,
    Accepted,
    Advertised,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Prefixes in the Loc-RIB.
    pub prefixes: usize,
    pub neighbors: Vec<NeighborSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NeighborSummary {
    pub address: std::net::IpAddr,
    pub remote_asn: u32,
    pub state: String,
    /// Seconds since the session was established (0 when it is not).
    pub uptime_secs: u64,
    pub received: u32,
    pub accepted: u32,
    pub advertised: u32,
    /// Routes kept from before the neighbor restarted (RFC 4724).
    pub stale: u32,
    pub over_limit: bool,
    /// Its prefixes of a family are at or above `max_prefix_warning` percent of its limit.
    #[serde(default)]
    pub prefix_warning: bool,
    pub last_error: Option<String>,
    /// UPDATEs whose routes were withdrawn for a malformed attribute (RFC 7606).
    #[serde(default)]
    pub treated_as_withdraw: u32,
    /// Malformed attributes dropped, their routes kept (RFC 7606).
    #[serde(default)]
    pub attributes_discarded: u32,
    /// The latest malformation, as decoded.
    #[serde(default)]
    pub last_malformed: Option<String>,
    /// Routes not sent because their UPDATE would be longer than the peer takes (RFC 8654).
    #[serde(default)]
    pub too_large: u32,
}

/// A best route of the Loc-RIB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub prefix: ipnet::IpNet,
    /// NEXT_HOP for IPv4, the MP_REACH_NLRI global next hop for IPv6.
    pub next_hop: std::net::IpAddr,
    /// The AS_PATH, with an AS_SET as a nested array.
    pub as_path: Vec<serde_json::Value>,
    /// The neighbor it came from.
    pub peer: std::net::IpAddr,
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local_pref: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub med: Option<u32>,
    /// Standard communities as "asn:value".
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub communities: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub large_communities: Vec<String>,
    /// ONLY_TO_CUSTOMER (RFC 9234): the AS that sent it down or across.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub only_to_customer: Option<u32>,
    /// A neighbor's received route that was refused: why.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refused: Option<String>,
    /// Its origin validation state (RFC 6811), when an RPKI cache has synced:
    /// "valid", "invalid" or "not-found".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rpki: Option<String>,
}

impl Route {
    /// `prefix` with attributes `a`, from (or to) `peer`; `next_hop` where it goes.
    fn new(
        prefix: ipnet::IpNet,
        a: &cic_bgp::wire::PathAttrs,
        next_hop: std::net::IpAddr,
        peer: std::net::IpAddr,
    ) -> Route {
        Route {
            prefix,
            next_hop,
            as_path: a
                .as_path
                .iter()
                .flat_map(|s| match s {
                    AsPathSegment::Sequence(v) => v.iter().map(|x| (*x).into()).collect(),
                    AsPathSegment::Set(v) => vec![v.clone().into()],
                })
                .collect(),
            peer,
            origin: match a.origin {
                Origin::Igp => "igp",
                Origin::Egp => "egp",
                Origin::Incomplete => "incomplete",
            }
            .to_string(),
            local_pref: a.local_pref,
            med: a.med,
            communities: a
                .communities
                .iter()
                .map(|c| format!("{}:{}", c >> 16, c & 0xFFFF))
                .collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(|[g, l1, l2]| format!("{g}:{l1}:{l2}"))
                .collect(),
            only_to_customer: a.otc,
            refused: None,
            rpki: None,
        }
    }
}

/// Binds the control socket at `path`. A file there is replaced when nothing answers on
/// it (a speaker that did not stop cleanly); a live speaker is never displaced.
pub async fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another speaker answers on {}; stop it or choose another --socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing stale {}: {e}", path.display()))?;
    }
    let l =
        UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    // Only its owner (root, as a rule) may read the speaker's state.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    Ok(l)
}

/// Answers requests until the task is aborted.
/// The RPKI data in force, as the speaker follows it.
pub type RpkiData = tokio::sync::watch::Receiver<Option<std::sync::Arc<cic_bgp::rpki::Vrps>>>;

pub async fn serve(listener: UnixListener, instance: InstanceHandle, cfg: Config, rpki: RpkiData) {
    let cfg = std::sync::Arc::new(cfg);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, as a rule: try again shortly, do not spin.
                debug!("control socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let instance = instance.clone();
        let cfg = cfg.clone();
        let rpki = rpki.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &instance, &cfg, &rpki).await {
                debug!("control connection: {e}");
            }
        });
    }
}

async fn answer(
    stream: UnixStream,
    instance: &InstanceHandle,
    cfg: &Config,
    rpki: &RpkiData,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let body = match serde_json::from_str::<Request>(line.trim()) {
        Err(e) => error(&format!(
            "bad request {:?}: {e}; send {{\"show\":\"summary\"}}, {{\"show\":\"routes\"}}, {{\"show\":\"count\"}} or {{\"show\":\"neighbor\",\"address\":…,\"which\":\"received\"|\"accepted\"|\"advertised\"}}",
            line.trim()
        )),
        Ok(req) => match respond(req, instance, cfg, rpki).await {
            Ok(b) => b,
            Err(e) => error(&e.to_string()),
        },
    };
    w.write_all(&body).await?;
    w.shutdown().await
}

fn error(msg: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": msg })).unwrap_or_default()
}

async fn respond(
    req: Request,
    instance: &InstanceHandle,
    cfg: &Config,
    rpki: &RpkiData,
) -> std::io::Result<Vec<u8>> {
    Ok(match req {
        Request::Count => json(&instance.rib_size().await?),
        Request::Summary => {
            let status = instance.status().borrow().clone();
            json(&Summary {
                asn: cfg.params.local_asn,
                router_id: cfg.router_id,
                prefixes: instance.rib_size().await?,
                neighbors: status
                    .peers
                    .iter()
                    .map(|p| NeighborSummary {
                        address: p.spec.address,
                        remote_asn: p.spec.asn,
                        state: p.state.name().to_string(),
                        uptime_secs: p.established_at.map(|t| t.elapsed().as_secs()).unwrap_or(0),
                        received: p.stats.received,
                        accepted: p.stats.accepted,
                        advertised: p.stats.advertised,
                        stale: p.stats.stale,
                        over_limit: p.stats.over_limit,
                        prefix_warning: p.stats.prefix_warning,
                        last_error: p.last_error.clone(),
                        treated_as_withdraw: p.stats.treated_as_withdraw,
                        attributes_discarded: p.stats.attributes_discarded,
                        last_malformed: p.stats.last_malformed.clone(),
                        too_large: p.stats.too_large,
                    })
                    .collect(),
            })
        }
        Request::Routes => {
            let status = instance.status().borrow().clone();
            let peer_address = |id| {
                status
                    .peers
                    .iter()
                    .find(|p| p.id == id)
                    .map(|p| p.spec.address)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED.into())
            };
            let routes = instance.best_routes().await?;
            // Written as it goes: a full table is a large answer.
            let mut out = Vec::with_capacity(routes.len() * 96 + 2);
            out.push(b'[');
            for (i, (prefix, path)) in routes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let a = &path.attrs;
                let next_hop = match prefix {
                    ipnet::IpNet::V4(_) => a.next_hop.unwrap_or(path.nexthop).into(),
                    ipnet::IpNet::V6(_) => path.forward_to(cic_bgp::wire::Afi::Ipv6),
                };
                let r = Route::new(*prefix, a, next_hop, peer_address(path.peer));
                serde_json::to_writer(&mut out, &r).map_err(std::io::Error::other)?;
            }
            out.push(b']');
            out
        }
        Request::Neighbor { address, which } => {
            let status = instance.status().borrow().clone();
            let Some(id) = status
                .peers
                .iter()
                .find(|p| p.spec.address == address)
                .map(|p| p.id)
            else {
                return Ok(error(&format!("no neighbor {address} is configured")));
            };
            let set = match which {
                Which::Received => cic_bgp::instance::RouteSet::Received,
                Which::Accepted => cic_bgp::instance::RouteSet::Accepted,
                Which::Advertised => cic_bgp::instance::RouteSet::Advertised,
            };
            let vrps = rpki.borrow().clone();
            let routes: Vec<Route> = instance
                .looking_glass(id, set)
                .await?
                .into_iter()
                .map(|(prefix, a, why)| {
                    let rpki = vrps.as_ref().map(|v| {
                        v.validate(&prefix, cic_bgp::policy::origin_as(&a))
                            .name()
                            .to_string()
                    });
                    let next_hop = match prefix {
                        ipnet::IpNet::V4(_) => a.next_hop.map_or(address, Into::into),
                        ipnet::IpNet::V6(_) => a.next_hop6.map_or(address, Into::into),
                    };
                    Route {
                        refused: why,
                        rpki,
                        ..Route::new(prefix, &a, next_hop, address)
                    }
                })
                .collect();
            json(&routes)
        }
    })
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Sends `req` to the speaker at `socket` and returns its JSON answer (an `{"error"}`
/// answer becomes the error).
pub async fn query(socket: &Path, req: Request) -> Result<Vec<u8>, String> {
    let mut s = UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "no speaker answers on {}: {e} (is `cic bgp run --socket {}` running?)",
            socket.display(),
            socket.display()
        )
    })?;
    let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.map_err(|e| e.to_string())?;
    if body.starts_with(b"{\"error\"") {
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        return Err(v["error"].as_str().unwrap_or("error").to_string());
    }
    Ok(body)
}

/// `cic bgp show summary` as a table.
pub fn summary_table(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "BGP speaker AS{} router-id {}, {} prefixes in the Loc-RIB",
        s.asn, s.router_id, s.prefixes
    );
    let _ = writeln!(
        out,
        "{:<16} {:>10} {:<12} {:>9} {:>9} {:>9} {:>10}  LAST ERROR",
        "NEIGHBOR", "AS", "STATE", "UPTIME", "RECEIVED", "ACCEPTED", "ADVERTISED"
    );
    for n in &s.neighbors {
        let up = n.uptime_secs;
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:<12} {:>9} {:>9} {:>9} {:>10}  {}",
            n.address,
            n.remote_asn,
            n.state,
            format!("{:02}:{:02}:{:02}", up / 3600, up / 60 % 60, up % 60),
            n.received,
            n.accepted,
            n.advertised,
            n.last_error.as_deref().unwrap_or("-")
        );
    }
    for n in s.neighbors.iter().filter(|n| n.too_large > 0) {
        let _ = writeln!(
            out,
            "{}: {} route(s) not sent, their UPDATE longer than it takes (cic bgp show neighbor {} advertised)",
            n.address, n.too_large, n.address
        );
    }
    out
}

/// `cic bgp show routes` as a table.
pub fn routes_table(routes: &[Route]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:<16} AS PATH",
        "PREFIX", "NEXT HOP", "PEER"
    );
    for r in routes {
        let path: Vec<String> = r.as_path.iter().map(|a| a.to_string()).collect();
        let _ = write!(
            out,
            "{:<20} {:<16} {:<16} {}",
            r.prefix.to_string(),
            r.next_hop.to_string(),
            r.peer.to_string(),
            path.join(" ")
        );
        match &r.refused {
            Some(why) => {
                let _ = writeln!(out, "  (refused: {why})");
            }
            None => out.push('\n'),
        }
    }
    out
}
