//! Resource commands: flags in, one API call, a short summary (or `--json`) out.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Api;

pub const FORMATS: [&str; 3] = ["table", "json", "yaml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lists as tables, single resources as YAML, mutations as one line.
    Table,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

pub struct Output {
    pub format: Format,
    pub wait: bool,
    pub timeout: Duration,
    /// The folder when a command's `--folder` is not given (CIC_FOLDER, the profile).
    pub folder: Option<String>,
}

impl Output {
    pub fn print(&self, v: &Value, summary: impl FnOnce(&Value) -> String) {
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            Format::Yaml => print!("{}", yaml(v)),
            Format::Table => println!("{}", summary(v)),
        }
    }

    /// The folder of a command: its `--folder`, else CIC_FOLDER or the profile's.
    fn folder(&self, given: Option<String>) -> Result<String> {
        given.or_else(|| self.folder.clone()).ok_or_else(|| {
            anyhow!("no folder: pass --folder, set CIC_FOLDER or `cic config set folder F`")
        })
    }

    /// The folder query of a list: `--folder`, else the default folder, else none (the
    /// server then lists what the caller may see).
    fn folder_query(&self, given: Option<String>) -> String {
        given
            .or_else(|| self.folder.clone())
            .map(|f| format!("?folderId={f}"))
            .unwrap_or_default()
    }

    /// Sends a mutation; unless `--async`, waits for its operation (showing progress on
    /// stderr) and prints the result.
    async fn mutate(
        &self,
        api: &Api,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<()> {
        let op = api.call(method, path, body.as_ref()).await?;
        if !self.wait {
            self.print(&op, |o| {
                format!(
                    "operation {} started: {what}",
                    o["id"].as_str().unwrap_or("?")
                )
            });
            return Ok(());
        }
        let id = op["id"].as_str().unwrap_or("?").to_string();
        let started = std::time::Instant::now();
        let tty = std::io::stderr().is_terminal();
        let mut shown = false;
        let done = {
            let wait = api.wait(op, self.timeout);
            tokio::pin!(wait);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    r = &mut wait => break r,
                    _ = tick.tick() => {
                        // Quick operations finish without a word; slow ones say so.
                        let t = started.elapsed();
                        if t >= Duration::from_millis(500) {
                            if tty {
                                eprint!("\r{what}: operation {id} running, {:.1} s", t.as_secs_f64());
                                shown = true;
                            } else if !shown {
                                eprintln!("{what}: waiting for operation {id}");
                                shown = true;
                            }
                        }
                    }
                }
            }
        };
        if shown && tty {
            eprint!("\r\x1b[K");
        }
        let done = done?;
        let r = done.get("response").cloned().unwrap_or(Value::Null);
        let rid = done["metadata"]["resourceId"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let t = started.elapsed().as_secs_f64();
        self.print(&done, |_| match r.get("status").and_then(Value::as_str) {
            Some(status) => format!("{what}: {rid} {status} ({t:.1} s)"),
            None => format!("{what}: {rid} done ({t:.1} s)"),
        });
        Ok(())
    }
}

/// The items of a list page (lists are keyed by kind: `"trunkConnections": [...]`).
fn page_items(v: &Value) -> Vec<Value> {
    v.as_object()
        .and_then(|m| m.values().find_map(|x| x.as_array()))
        .cloned()
        .unwrap_or_default()
}

/// A list page as a table: one column per field path (`bgp.state`), headed by the path
/// in capitals. A next page is mentioned under it.
pub(crate) fn table(v: &Value, cols: &[&str]) -> String {
    let items = page_items(v);
    let cell = |it: &Value, path: &str| -> String {
        let x = path.split('.').fold(it, |x, seg| &x[seg]);
        match x {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let head: Vec<String> = cols.iter().map(|c| heading(c)).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|it| cols.iter().map(|c| cell(it, c)).collect())
        .collect();
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |r: &[String]| {
        format!(
            "|{}|",
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!(" {c:<w$} "))
                .collect::<Vec<_>>()
                .join("|")
        )
    };
    let mut out = vec![rule.clone(), line(&head), rule.clone()];
    out.extend(rows.iter().map(|r| line(r)));
    out.push(rule);
    if let Some(t) = v["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
        out.push(format!("(more: --page-token {t})"));
    }
    out.join("\n")
}

/// `pointOfPresenceId` → `POINT_OF_PRESENCE_ID`; `bgp.state` → `BGP_STATE`.
fn heading(path: &str) -> String {
    let mut h = String::new();
    for c in path.chars() {
        if c == '.' {
            h.push('_');
        } else if c.is_ascii_uppercase() {
            h.push('_');
            h.push(c);
        } else {
            h.push(c.to_ascii_uppercase());
        }
    }
    h
}

fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// A single resource in table format: YAML, like the modelled CLI.
fn pretty(v: &Value) -> String {
    yaml(v).trim_end().to_string()
}

// ---------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub enum PopCmd {
    /// Create a point of presence.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        address: String,
    },
    /// List points of presence (a table; --format json|yaml for scripts).
    List,
    /// Show one point of presence.
    Get { id: String },
    /// Delete a point of presence.
    Delete { id: String },
}

impl PopCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            PopCmd::Create { id, name, address } => {
                let v = api
                    .call(
                        Method::POST,
                        "/cic/v1/pointOfPresences",
                        Some(&json!({"id": id, "name": name, "locationAddress": address})),
                    )
                    .await?;
                out.print(&v, |v| {
                    format!(
                        "point of presence {} created",
                        v["id"].as_str().unwrap_or("?")
                    )
                });
            }
            PopCmd::List => {
                let v = api.get("/cic/v1/pointOfPresences").await?;
                out.print(&v, |v| table(v, &["id", "name", "locationAddress"]));
            }
            PopCmd::Get { id } => {
                let v = api.get(&format!("/cic/v1/pointOfPresences/{id}")).await?;
                out.print(&v, pretty);
            }
            PopCmd::Delete { id } => {
                let v = api
                    .call(
                        Method::DELETE,
                        &format!("/cic/v1/pointOfPresences/{id}"),
                        None,
                    )
                    .await?;
                out.print(&v, |_| format!("point of presence {id} deleted"));
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum EdgeRouterCmd {
    /// Register an edge router; prints its token once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        pop: String,
        #[arg(long)]
        router_id: String,
        /// ASN of the cloud fabric router (equal to the cloud ASN: iBGP).
        #[arg(long, default_value_t = 200_350)]
        fabric_asn: u32,
        #[arg(long)]
        fabric_remote_vtep: String,
        #[arg(long)]
        fabric_local_vtep: String,
        #[arg(long)]
        fabric_port: Option<String>,
        #[arg(long, default_value = "100.127.0.0/16")]
        fabric_transit_pool: String,
        /// First VNI of this edge's fabric segments (server default: 100000).
        #[arg(long)]
        fabric_vni_base: Option<u32>,
        /// Also issue the edge a client certificate from the server's CA and write it
        /// (edge.crt, edge.key, ca.crt) to this directory.
        #[arg(long)]
        certificate_out: Option<std::path::PathBuf>,
        /// With --certificate-out: certify the key of this CSR (PEM) instead of a new one.
        #[arg(long, requires = "certificate_out")]
        csr: Option<std::path::PathBuf>,
    },
    /// Issue a client certificate for an edge from the server's CA (other credentials
    /// stay valid).
    IssueCertificate {
        id: String,
        /// Certify the key of this CSR (PEM) instead of a key made by the server.
        #[arg(long)]
        csr: Option<std::path::PathBuf>,
        /// Days the certificate is valid (server default 365).
        #[arg(long)]
        validity_days: Option<u32>,
        /// Write edge.crt, edge.key and ca.crt here (atomically) instead of printing them.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// New credentials for an edge; its previous ones of that kind are refused after
    /// --revoke-old-after seconds, time for the agent to pick the new files up.
    RotateCredentials {
        id: String,
        /// certificate or token [default: certificate when the server has a CA key].
        #[arg(long, value_parser = ["certificate", "token"])]
        kind: Option<String>,
        #[arg(long)]
        csr: Option<std::path::PathBuf>,
        #[arg(long)]
        validity_days: Option<u32>,
        /// Seconds until the old credentials are refused (server default 3600; 0: now).
        #[arg(long)]
        revoke_old_after: Option<u64>,
        /// Write the new files here (edge.crt, edge.key, ca.crt, or token).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// List edge routers (a table; --format json|yaml for scripts).
    List,
    /// Show one edge router.
    Get { id: String },
    /// The desired config the edge is given now.
    Config { id: String },
    /// Drain for maintenance: its sessions send every route with GRACEFUL_SHUTDOWN.
    Drain { id: String },
    /// End a drain.
    Undrain { id: String },
    /// Delete a edge router.
    Delete { id: String },
    /// What the fabric must build per routing instance on this edge.
    FabricAttachments { id: String },
}

impl EdgeRouterCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            EdgeRouterCmd::Create {
                name,
                pop,
                router_id,
                fabric_asn,
                fabric_remote_vtep,
                fabric_local_vtep,
                fabric_port,
                fabric_transit_pool,
                fabric_vni_base,
                certificate_out,
                csr,
            } => {
                let mut fabric = json!({"asn": fabric_asn, "remoteVtep": fabric_remote_vtep, "localVtep": fabric_local_vtep,
                                        "transitPool": fabric_transit_pool});
                if let Some(v) = fabric_vni_base {
                    fabric["vniBase"] = json!(v);
                }
                if let Some(p) = fabric_port {
                    fabric["portName"] = json!(p);
                }
                let body = match &certificate_out {
                    Some(_) => Some(crate::credentials::request(
                        None,
                        csr.as_deref(),
                        None,
                        None,
                    )?),
                    None => None,
                };
                let mut v = api
                    .call(Method::POST, "/cic/v1/edges", Some(&json!({"name": name, "pointOfPresenceId": pop, "routerId": router_id, "fabric": fabric})))
                    .await?;
                if let (Some(dir), Some(body)) = (&certificate_out, body) {
                    let id = v["edge"]["id"].as_str().unwrap_or_default().to_string();
                    let issued = api
                        .call(
                            Method::POST,
                            &format!("/cic/v1/edges/{id}:issueCertificate"),
                            Some(&body),
                        )
                        .await;
                    // A failure here leaves the edge registered: its token is shown all
                    // the same, with why no certificate came.
                    match issued.and_then(|c| crate::credentials::write(&c, dir)) {
                        Ok(c) => v["credentials"] = c,
                        Err(e) => v["credentialsError"] = json!(e.to_string()),
                    }
                }
                out.print(&v, |v| {
                    let mut s = format!(
                        "edge {} ({}) registered at {}\ntoken (shown once): {}",
                        v["edge"]["name"].as_str().unwrap_or(""),
                        v["edge"]["id"].as_str().unwrap_or(""),
                        v["edge"]["pointOfPresenceId"].as_str().unwrap_or(""),
                        v["token"].as_str().unwrap_or("")
                    );
                    if let Some(files) = v["credentials"]["files"].as_array() {
                        s.push_str(&format!(
                            "\ncertificate (serial {}) written: {}",
                            v["credentials"]["serialNumber"].as_str().unwrap_or("?"),
                            files
                                .iter()
                                .filter_map(|f| f.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if let Some(e) = v["credentialsError"].as_str() {
                        s.push_str(&format!("\nno certificate: {e}"));
                    }
                    s
                });
                if let Some(e) = v["credentialsError"].as_str() {
                    anyhow::bail!("edge registered, but no certificate: {e}");
                }
            }
            EdgeRouterCmd::IssueCertificate {
                id,
                csr,
                validity_days,
                out_dir,
            } => {
                let body = crate::credentials::request(None, csr.as_deref(), validity_days, None)?;
                crate::credentials::issue(
                    api,
                    out,
                    &id,
                    "issueCertificate",
                    body,
                    out_dir.as_deref(),
                )
                .await?;
            }
            EdgeRouterCmd::RotateCredentials {
                id,
                kind,
                csr,
                validity_days,
                revoke_old_after,
                out_dir,
            } => {
                let body = crate::credentials::request(
                    kind.as_deref(),
                    csr.as_deref(),
                    validity_days,
                    revoke_old_after,
                )?;
                crate::credentials::issue(
                    api,
                    out,
                    &id,
                    "rotateCredentials",
                    body,
                    out_dir.as_deref(),
                )
                .await?;
            }
            EdgeRouterCmd::List => {
                let v = api.get("/cic/v1/edges").await?;
                out.print(&v, |v| table(v, TRUNK_COLUMNS));
            }
            EdgeRouterCmd::Get { id } => {
                out.print(&api.get(&format!("/cic/v1/edges/{id}")).await?, pretty)
            }
            EdgeRouterCmd::Config { id } => {
                let v = api.get(&format!("/cic/v1/edges/{id}/config")).await?;
                out.print(&v, pretty);
            }
            EdgeRouterCmd::Drain { id } => {
                let v = api
                    .call(Method::POST, &format!("/cic/v1/edges/{id}:drain"), None)
                    .await?;
                out.print(&v, |_| {
                    format!("edge {id} draining: its sessions carry GRACEFUL_SHUTDOWN")
                });
            }
            EdgeRouterCmd::Undrain { id } => {
                let v = api
                    .call(Method::POST, &format!("/cic/v1/edges/{id}:undrain"), None)
                    .await?;
                out.print(&v, |_| format!("edge {id} no longer drained"));
            }
            EdgeRouterCmd::Delete { id } => {
                let v = api
                    .call(Method::DELETE, &format!("/cic/v1/edges/{id}"), None)
                    .await?;
                out.print(&v, |_| format!("edge {id} deleted"));
            }
            EdgeRouterCmd::FabricAttachments { id } => out.print(
                &api.get(&format!("/cic/v1/edges/{id}/fabricAttachments"))
                    .await?,
                pretty,
            ),
        }
        Ok(())
    }
}

/// `1g`, `500m`, `10G` or the API's own `CAPACITY_1_GBPS`.
fn capacity(s: &str) -> Result<String> {
    if s.starts_with("CAPACITY_") {
        return Ok(s.to_string());
    }
    let l = s.to_ascii_lowercase();
    let (num, unit) = l.split_at(
        l.find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| anyhow!("capacity {s:?}: use e.g. 500m or 10g"))?,
    );
    let unit = match unit.trim_end_matches("bps").trim_end_matches("bit") {
        "m" => "MBPS",
        "g" => "GBPS",
        _ => bail!("capacity {s:?}: use e.g. 500m or 10g"),
    };
    Ok(format!("CAPACITY_{num}_{unit}"))
}

// Parsed once per process: the size of the Create variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum TrunkCmd {
    /// Create a trunk connection.
    Create {
        /// The folder [default: CIC_FOLDER, else the profile's].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, visible_alias = "point-of-presence-id")]
        pop: String,
        /// 50m … 500m, 1g … 200g (or CAPACITY_1_GBPS)
        #[arg(long)]
        capacity: String,
        /// Overlay trunk: the customer's (or partner's) VTEP address.
        #[arg(long)]
        overlay_remote_vtep: Option<String>,
        /// Overlay trunk: UDP port of the VXLAN segments.
        #[arg(long, default_value_t = 4789)]
        udp_port: u16,
        /// Physical trunk: the edge port (802.1Q); or the overlay's underlay port.
        #[arg(long)]
        port: Option<String>,
        #[arg(long, default_value = "TRANSCEIVER_TYPE_10GBASE_LR")]
        transceiver: String,
        /// The edge router (by name); chosen by cic when absent.
        #[arg(long)]
        edge: Option<String>,
        /// LAG trunk: a port of the bundle; repeat for each.
        #[arg(long = "lag-port", conflicts_with_all = ["lag_size", "overlay_remote_vtep", "port", "partner_id"])]
        lag_ports: Vec<String>,
        /// LAG trunk: let cic pick this many of the edge's free customer ports.
        #[arg(long, conflicts_with_all = ["overlay_remote_vtep", "port", "partner_id"])]
        lag_size: Option<u32>,
        /// Partner trunk: the partner (see `cic partner list`)…
        #[arg(long, requires = "service_key", conflicts_with_all = ["overlay_remote_vtep", "port"])]
        partner_id: Option<String>,
        /// …and the service key the partner issued.
        #[arg(long, requires = "partner_id")]
        service_key: Option<String>,
        #[arg(long)]
        deletion_protection: bool,
    },
    /// The trunk's private connections.
    ListPrivateConnections { id: String },
    /// The trunk's public connections.
    ListPublicConnections { id: String },
    /// Up to 1000 trunks by id.
    BatchGet {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List trunk connections (a table; --format json|yaml for scripts).
    List {
        /// The folder [default: CIC_FOLDER, else the profile's, else every folder you see].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
    },
    /// Show one trunk connection.
    Get { id: String },
    /// Delete a trunk connection.
    Delete { id: String },
    /// Move a trunk connection to another folder.
    Move {
        id: String,
        #[arg(long)]
        destination_folder: String,
    },
    /// The operations on a trunk connection, newest first.
    ListOperations { id: String },
}

impl TrunkCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            TrunkCmd::Move {
                id,
                destination_folder,
            } => {
                return move_to(
                    api,
                    out,
                    &format!("/cic/v1/trunkConnections/{id}"),
                    &destination_folder,
                    "trunk connection moved",
                )
                .await;
            }
            TrunkCmd::ListOperations { id } => {
                return list_operations(api, out, &format!("/cic/v1/trunkConnections/{id}")).await;
            }
            TrunkCmd::ListPrivateConnections { id } => {
                let v = api
                    .get(&format!("/cic/v1/trunkConnections/{id}/privateConnections"))
                    .await?;
                out.print(&v, |v| table(v, CONNECTION_COLUMNS));
                Ok(())
            }
            TrunkCmd::ListPublicConnections { id } => {
                let v = api
                    .get(&format!("/cic/v1/trunkConnections/{id}/publicConnections"))
                    .await?;
                out.print(&v, |v| table(v, PUBLIC_COLUMNS));
                Ok(())
            }
            TrunkCmd::BatchGet { ids } => {
                batch_get(
                    api,
                    out,
                    "/cic/v1/trunkConnections",
                    "trunkConnectionIds",
                    &ids,
                    TRUNK_COLUMNS,
                )
                .await
            }
            TrunkCmd::Create {
                folder,
                name,
                pop,
                capacity: cap,
                overlay_remote_vtep,
                udp_port,
                port,
                transceiver,
                edge,
                lag_ports,
                lag_size,
                partner_id,
                service_key,
                deletion_protection,
            } => {
                let folder = out.folder(folder)?;
                let mut body = json!({"folderId": folder, "name": name, "pointOfPresenceId": pop,
                                      "capacity": capacity(&cap)?, "deletionProtection": deletion_protection});
                if let (Some(p), Some(k)) = (&partner_id, &service_key) {
                    body["partnerJointInfo"] = json!({"partnerId": p, "serviceKey": k});
                } else if !lag_ports.is_empty() || lag_size.is_some() {
                    let mut j = json!({"transceiverType": transceiver});
                    match lag_size {
                        Some(n) => j["lagAllocationSettings"] = json!({"lagSize": n.to_string()}),
                        None => j["portNames"] = json!(lag_ports),
                    }
                    if let Some(e) = &edge {
                        j["accessDeviceName"] = json!(e);
                    }
                    body["lagDirectJoint"] = j;
                }
                match overlay_remote_vtep {
                    _ if body.get("partnerJointInfo").is_some()
                        || body.get("lagDirectJoint").is_some() => {}
                    Some(vtep) => {
                        let mut j = json!({"remoteVtep": vtep, "udpPort": udp_port});
                        if let Some(p) = port {
                            j["portName"] = json!(p);
                        }
                        if let Some(e) = edge {
                            j["accessDeviceName"] = json!(e);
                        }
                        body["overlayJoint"] = j;
                    }
                    None => {
                        let p = port.ok_or_else(|| anyhow!("give --overlay-remote-vtep (overlay trunk) or --port (physical trunk)"))?;
                        let mut j = json!({"transceiverType": transceiver, "portName": p});
                        if let Some(e) = edge {
                            j["accessDeviceName"] = json!(e);
                        }
                        body["singlePortDirectJoint"] = j;
                    }
                }
                out.mutate(
                    api,
                    Method::POST,
                    "/cic/v1/trunkConnections",
                    Some(body),
                    "trunk connection",
                )
                .await
            }
            TrunkCmd::List { folder } => {
                let q = out.folder_query(folder);
                let v = api.get(&format!("/cic/v1/trunkConnections{q}")).await?;
                out.print(&v, |v| {
                    table(
                        v,
                        &[
                            "id",
                            "name",
                            "pointOfPresenceId",
                            "capacity",
                            "edgeId",
                            "status",
                        ],
                    )
                });
                Ok(())
            }
            TrunkCmd::Get { id } => {
                out.print(
                    &api.get(&format!("/cic/v1/trunkConnections/{id}")).await?,
                    pretty,
                );
                Ok(())
            }
            TrunkCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("/cic/v1/trunkConnections/{id}"),
                    None,
                    "trunk connection deleted",
                )
                .await
            }
        }
    }
}

#[derive(Subcommand)]
pub enum ConnectionCmd {
    /// Create a private connection.
    Create {
        /// The folder [default: CIC_FOLDER, else the profile's].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, visible_alias = "trunk-id", alias = "trunk-connection-id")]
        trunk: String,
        #[arg(long, visible_alias = "vlan-id")]
        vlan: u32,
        /// The peering as the modelled CLI takes it:
        /// peering-subnet=…,peer-ip=…,cloud-ip=…,peer-bgp-asn=…[,peer-bgp-md5-key=…]
        #[arg(long, conflicts_with_all = ["subnet", "peer_ip", "cloud_ip", "peer_asn"])]
        ipv4_peering: Option<String>,
        /// Peering subnet, /30 or /31 (or use --ipv4-peering).
        #[arg(long, required_unless_present = "ipv4_peering")]
        subnet: Option<String>,
        #[arg(long, required_unless_present = "ipv4_peering")]
        peer_ip: Option<String>,
        #[arg(long, required_unless_present = "ipv4_peering")]
        cloud_ip: Option<String>,
        #[arg(long, required_unless_present = "ipv4_peering")]
        peer_asn: Option<u32>,
        #[arg(long, env = "CIC_MD5_KEY", hide_env_values = true)]
        md5_key: Option<String>,
        /// A static route (prefix via the peer IP); repeat for more.
        #[arg(long = "static-route")]
        static_routes: Vec<String>,
    },
    /// List private connections (a table; --format json|yaml for scripts).
    List {
        /// The folder [default: CIC_FOLDER, else the profile's, else every folder you see].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
    },
    /// Show one private connection.
    Get { id: String },
    /// Delete a private connection.
    Delete { id: String },
    /// Change trunk, VLAN, name, description or the session's TCP-MD5 key.
    Update {
        id: String,
        #[arg(long)]
        trunk: Option<String>,
        #[arg(long)]
        vlan: Option<u32>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A new TCP-MD5 key for the BGP session ("" removes it); the session restarts
        /// with it, so change the customer router's key at the same time.
        #[arg(long, env = "CIC_MD5_KEY", hide_env_values = true)]
        md5_key: Option<String>,
    },
    /// Move a private connection to another folder.
    Move {
        id: String,
        #[arg(long)]
        destination_folder: String,
    },
    /// The operations on a private connection, newest first.
    ListOperations { id: String },
    /// The looking glass: received (with why each refused route was), accepted or
    /// advertised routes of the session.
    Routes {
        id: String,
        #[arg(long, default_value = "received", value_parser = ["received", "accepted", "advertised"])]
        direction: String,
    },
    /// Hold the BGP session down for a while to test failover; it comes back by itself.
    StartBgpFailoverTest {
        id: String,
        #[arg(long, default_value_t = 300)]
        duration_seconds: u64,
    },
    /// End a running failover test now.
    StopBgpFailoverTest { id: String },
    /// Restart the BGP session at once (ends a max-prefix idle hold).
    ResetBgpSession { id: String },
    /// Up to 1000 private connections by id.
    BatchGet {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Route prefixes to the customer's peer address, with or without BGP.
    UpsertStaticRoutes {
        id: String,
        #[arg(long = "prefix", required = true)]
        prefixes: Vec<String>,
    },
    /// Remove static routes of a private connection.
    RemoveStaticRoutes {
        id: String,
        #[arg(long = "prefix", required = true)]
        prefixes: Vec<String>,
    },
}

const TRUNK_COLUMNS: &[&str] = &[
    "id",
    "name",
    "pointOfPresenceId",
    "capacity",
    "edgeId",
    "status",
];
const CONNECTION_COLUMNS: &[&str] = &[
    "id",
    "name",
    "trunkConnectionId",
    "vlanId",
    "status",
    "bgp.state",
    "bgp.prefixesReceived",
    "bgp.prefixesAccepted",
    "bgp.prefixesAdvertised",
];
const PUBLIC_COLUMNS: &[&str] = &[
    "id",
    "name",
    "trunkConnectionId",
    "vlanId",
    "status",
    "bgp.state",
];

/// `POST {base}:batchGet {"<field>": ids}`, printed as a table.
async fn batch_get(
    api: &Api,
    out: &Output,
    base: &str,
    field: &str,
    ids: &[String],
    cols: &[&str],
) -> Result<()> {
    let v = api
        .call(
            Method::POST,
            &format!("{base}:batchGet"),
            Some(&json!({ field: ids })),
        )
        .await?;
    out.print(&v, |v| table(v, cols));
    Ok(())
}

/// `peering-subnet=…,peer-ip=…,cloud-ip=…,peer-bgp-asn=…[,peer-bgp-md5-key=…]` → the
/// API's `ipv4Peering`. Unknown, repeated or missing keys are errors that name them.
fn peering_from_kv(s: &str) -> Result<Value> {
    const KEYS: [(&str, &str); 5] = [
        ("peering-subnet", "peeringSubnet"),
        ("peer-ip", "peerIp"),
        ("cloud-ip", "cloudIp"),
        ("peer-bgp-asn", "peerBgpAsn"),
        ("peer-bgp-md5-key", "peerBgpMd5Key"),
    ];
    let mut v = serde_json::Map::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--ipv4-peering: {part:?} is not key=value"))?;
        let (_, field) = KEYS
            .iter()
            .find(|(key, _)| *key == k.trim())
            .ok_or_else(|| {
                anyhow!(
                    "--ipv4-peering: unknown key {k:?}; keys are {}",
                    KEYS.map(|(k, _)| k).join(", ")
                )
            })?;
        if v.insert((*field).to_string(), json!(val.trim())).is_some() {
            bail!("--ipv4-peering: {k} is given twice");
        }
    }
    for (k, field) in &KEYS[..4] {
        if !v.contains_key(*field) {
            bail!("--ipv4-peering: {k}= is missing");
        }
    }
    Ok(Value::Object(v))
}

async fn static_routes(
    api: &Api,
    out: &Output,
    id: &str,
    method: &str,
    prefixes: &[String],
) -> Result<()> {
    let routes: Vec<Value> = prefixes.iter().map(|p| json!({"prefix": p})).collect();
    out.mutate(
        api,
        Method::POST,
        &format!("/cic/v1/privateConnections/{id}:{method}"),
        Some(json!({"ipv4StaticRoutes": routes})),
        "private connection",
    )
    .await
}

fn session_line(pc: &Value) -> String {
    match pc.get("bgp") {
        Some(b) => format!(
            "BGP {} with {} (AS {}), up {} s, prefixes received {} / accepted {} / advertised {}{}",
            b["state"].as_str().unwrap_or("?"),
            b["peer"].as_str().unwrap_or("?"),
            b["peerAsn"],
            b["uptimeSecs"],
            b["prefixesReceived"],
            b["prefixesAccepted"],
            b["prefixesAdvertised"],
            b["lastError"]
                .as_str()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        ),
        None => "BGP: no report from the edge yet".into(),
    }
}

impl ConnectionCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/privateConnections";
        match self {
            ConnectionCmd::Update {
                id,
                trunk,
                vlan,
                name,
                description,
                md5_key,
            } => {
                let mut body = json!({});
                if let Some(k) = md5_key {
                    // A peering in a PATCH is merged: the key alone changes ("" removes it).
                    let key = if k.is_empty() { Value::Null } else { json!(k) };
                    body["ipv4Peering"] = json!({ "peerBgpMd5Key": key });
                }
                if let Some(t) = trunk {
                    body["trunkConnectionId"] = json!(t);
                }
                if let Some(v) = vlan {
                    body["vlanId"] = json!(v.to_string());
                }
                if let Some(n) = name {
                    body["name"] = json!(n);
                }
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                out.mutate(
                    api,
                    Method::PATCH,
                    &format!("{BASE}/{id}"),
                    Some(body),
                    "private connection",
                )
                .await
            }
            ConnectionCmd::Move {
                id,
                destination_folder,
            } => {
                move_to(
                    api,
                    out,
                    &format!("{BASE}/{id}"),
                    &destination_folder,
                    "private connection moved",
                )
                .await
            }
            ConnectionCmd::ListOperations { id } => {
                list_operations(api, out, &format!("{BASE}/{id}")).await
            }
            ConnectionCmd::StartBgpFailoverTest {
                id,
                duration_seconds,
            } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{BASE}/{id}:startBgpFailoverTest"),
                    Some(json!({"durationSeconds": duration_seconds})),
                    "failover test started; session held down",
                )
                .await
            }
            ConnectionCmd::StopBgpFailoverTest { id } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{BASE}/{id}:stopBgpFailoverTest"),
                    Some(json!({})),
                    "failover test stopped",
                )
                .await
            }
            ConnectionCmd::Routes { id, direction } => {
                let v = api
                    .get(&format!("{BASE}/{id}:routes?direction={direction}"))
                    .await?;
                out.print(&v, |v| {
                    table(v, &["prefix", "nextHop", "asPath", "origin", "rejected"])
                });
                Ok(())
            }
            ConnectionCmd::ResetBgpSession { id } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{BASE}/{id}:resetBgpSession"),
                    Some(json!({})),
                    "BGP session reset",
                )
                .await
            }
            ConnectionCmd::BatchGet { ids } => {
                batch_get(
                    api,
                    out,
                    BASE,
                    "privateConnectionIds",
                    &ids,
                    CONNECTION_COLUMNS,
                )
                .await
            }
            ConnectionCmd::UpsertStaticRoutes { id, prefixes } => {
                static_routes(api, out, &id, "upsertStaticRoutes", &prefixes).await
            }
            ConnectionCmd::RemoveStaticRoutes { id, prefixes } => {
                static_routes(api, out, &id, "removeStaticRoutes", &prefixes).await
            }
            ConnectionCmd::Create {
                folder,
                name,
                description,
                trunk,
                vlan,
                ipv4_peering,
                subnet,
                peer_ip,
                cloud_ip,
                peer_asn,
                md5_key,
                static_routes,
            } => {
                let folder = out.folder(folder)?;
                let mut peering = match ipv4_peering {
                    Some(kv) => peering_from_kv(&kv)?,
                    None => json!({"peeringSubnet": subnet, "peerIp": peer_ip, "cloudIp": cloud_ip,
                                   "peerBgpAsn": peer_asn.map(|a| a.to_string())}),
                };
                if let Some(k) = md5_key {
                    peering["peerBgpMd5Key"] = json!(k);
                }
                let routes: Vec<Value> =
                    static_routes.iter().map(|p| json!({"prefix": p})).collect();
                let body = json!({"folderId": folder, "name": name, "description": description,
                    "trunkConnectionId": trunk, "vlanId": vlan.to_string(), "ipv4Peering": peering,
                    "ipv4StaticRoutes": routes});
                out.mutate(
                    api,
                    Method::POST,
                    "/cic/v1/privateConnections",
                    Some(body),
                    "private connection",
                )
                .await
            }
            ConnectionCmd::List { folder } => {
                let q = out.folder_query(folder);
                let v = api.get(&format!("/cic/v1/privateConnections{q}")).await?;
                out.print(&v, |v| table(v, CONNECTION_COLUMNS));
                Ok(())
            }
            ConnectionCmd::Get { id } => {
                let v = api.get(&format!("/cic/v1/privateConnections/{id}")).await?;
                out.print(&v, |c| format!("{}\n{}", pretty(c), session_line(c)));
                Ok(())
            }
            ConnectionCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("/cic/v1/privateConnections/{id}"),
                    None,
                    "private connection deleted",
                )
                .await
            }
        }
    }
}

#[derive(Subcommand)]
pub enum RoutingInstanceCmd {
    /// Up to 1000 routing instances by id.
    BatchGet {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Create a routing instance.
    Create {
        /// The folder [default: CIC_FOLDER, else the profile's].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        /// VPC network id.
        #[arg(long)]
        vpc: Option<String>,
        /// VPC prefix as ZONE=PREFIX (repeatable), e.g. ru-central1-a=10.128.0.0/24.
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
        /// Private connection id (repeatable).
        #[arg(long = "connection")]
        connections: Vec<String>,
    },
    /// List routing instances (a table; --format json|yaml for scripts).
    List {
        /// The folder [default: CIC_FOLDER, else the profile's, else every folder you see].
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
    },
    /// Show one routing instance.
    Get { id: String },
    /// Delete a routing instance.
    Delete { id: String },
    /// Name, description, deletion protection.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        deletion_protection: Option<bool>,
    },
    /// Add prefixes of a VPC (ZONE=PREFIX, repeatable).
    UpsertPrefixes {
        id: String,
        #[arg(long)]
        vpc: String,
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
    },
    /// Remove VPC prefixes from a routing instance.
    RemovePrefixes {
        id: String,
        #[arg(long)]
        vpc: String,
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
    },
    /// Add a private connection to a routing instance.
    AddConnection {
        id: String,
        #[arg(long)]
        connection: String,
    },
    /// Remove a private connection from a routing instance.
    RemoveConnection {
        id: String,
        #[arg(long)]
        connection: String,
    },
    /// Remove a VPC network from the routing instance.
    RemoveNetwork {
        id: String,
        #[arg(long)]
        vpc: String,
    },
    /// The routing instance that holds a VPC.
    GetByVpc { vpc: String },
    /// The routing instance that holds a private connection.
    GetByConnection { connection: String },
    /// Move a routing instance to another folder.
    Move {
        id: String,
        #[arg(long)]
        destination_folder: String,
    },
    /// The operations on a routing instance, newest first.
    ListOperations { id: String },
}

/// `ZONE=PREFIX` arguments grouped by zone.
fn zones(prefixes: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let mut zones: Vec<(String, Vec<String>)> = Vec::new();
    for p in prefixes {
        let (z, pfx) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--prefix {p:?}: use ZONE=PREFIX"))?;
        match zones.iter_mut().find(|(name, _)| name == z) {
            Some((_, v)) => v.push(pfx.to_string()),
            None => zones.push((z.to_string(), vec![pfx.to_string()])),
        }
    }
    Ok(zones)
}

/// The body of UpsertPrefixes / RemovePrefixes.
fn prefixes_body(vpc: &str, prefixes: &[String]) -> Result<Value> {
    if prefixes.is_empty() {
        bail!("give at least one --prefix ZONE=PREFIX");
    }
    Ok(
        json!({"vpcNetworkId": vpc, "vpcAzInfoPrefixes": zones(prefixes)?
        .iter()
        .map(|(z, p)| json!({"azId": z, "prefixes": p}))
        .collect::<Vec<_>>()}),
    )
}

/// `POST …/routingInstances/{id}:{method}`, waited for like every mutation.
async fn ri_method(api: &Api, out: &Output, id: &str, method: &str, body: Value) -> Result<()> {
    out.mutate(
        api,
        Method::POST,
        &format!("/cloudrouter/v1/routingInstances/{id}:{method}"),
        Some(body),
        "routing instance",
    )
    .await
}

/// `cic … list-operations ID`: a resource's operations, newest first.
async fn list_operations(api: &Api, out: &Output, path: &str) -> Result<()> {
    let v = api.get(&format!("{path}/operations")).await?;
    out.print(&v, |v| {
        let ops = v["operations"].as_array().cloned().unwrap_or_default();
        if ops.is_empty() {
            return "(none)".into();
        }
        ops.iter()
            .map(|o| {
                format!(
                    "{}\t{}\t{}\t{}",
                    o["id"].as_str().unwrap_or(""),
                    o["createdAt"].as_str().unwrap_or(""),
                    if o["done"] == true { "done" } else { "running" },
                    o["description"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn move_to(api: &Api, out: &Output, path: &str, folder: &str, what: &str) -> Result<()> {
    out.mutate(
        api,
        Method::POST,
        &format!("{path}:move"),
        Some(json!({"destinationFolderId": folder})),
        what,
    )
    .await
}

impl RoutingInstanceCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cloudrouter/v1/routingInstances";
        match self {
            RoutingInstanceCmd::Update {
                id,
                name,
                description,
                deletion_protection,
            } => {
                let mut body = json!({});
                if let Some(n) = name {
                    body["name"] = json!(n);
                }
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                if let Some(p) = deletion_protection {
                    body["deletionProtection"] = json!(p);
                }
                out.mutate(
                    api,
                    Method::PATCH,
                    &format!("{BASE}/{id}"),
                    Some(body),
                    "routing instance",
                )
                .await
            }
            RoutingInstanceCmd::UpsertPrefixes { id, vpc, prefixes } => {
                ri_method(
                    api,
                    out,
                    &id,
                    "upsertPrefixes",
                    prefixes_body(&vpc, &prefixes)?,
                )
                .await
            }
            RoutingInstanceCmd::RemovePrefixes { id, vpc, prefixes } => {
                ri_method(
                    api,
                    out,
                    &id,
                    "removePrefixes",
                    prefixes_body(&vpc, &prefixes)?,
                )
                .await
            }
            RoutingInstanceCmd::AddConnection { id, connection } => {
                ri_method(
                    api,
                    out,
                    &id,
                    "addPrivateConnection",
                    json!({"cicPrivateConnectionId": connection}),
                )
                .await
            }
            RoutingInstanceCmd::RemoveConnection { id, connection } => {
                ri_method(
                    api,
                    out,
                    &id,
                    "removePrivateConnection",
                    json!({"cicPrivateConnectionId": connection}),
                )
                .await
            }
            RoutingInstanceCmd::RemoveNetwork { id, vpc } => {
                ri_method(
                    api,
                    out,
                    &id,
                    "updateNetworks",
                    json!({"deletedVpcNetworkIds": [vpc], "strictRemove": true}),
                )
                .await
            }
            RoutingInstanceCmd::GetByVpc { vpc } => {
                out.print(
                    &api.get(&format!("{BASE}:getByVpcNetworkId/{vpc}")).await?,
                    pretty,
                );
                Ok(())
            }
            RoutingInstanceCmd::GetByConnection { connection } => {
                out.print(
                    &api.get(&format!("{BASE}:getByCicPrivateConnectionId/{connection}"))
                        .await?,
                    pretty,
                );
                Ok(())
            }
            RoutingInstanceCmd::Move {
                id,
                destination_folder,
            } => {
                move_to(
                    api,
                    out,
                    &format!("{BASE}/{id}"),
                    &destination_folder,
                    "routing instance moved",
                )
                .await
            }
            RoutingInstanceCmd::ListOperations { id } => {
                list_operations(api, out, &format!("{BASE}/{id}")).await
            }
            RoutingInstanceCmd::Create {
                folder,
                name,
                vpc,
                prefixes,
                connections,
            } => {
                let zones = zones(&prefixes)?;
                let vpc_info = match vpc {
                    Some(id) => json!([{"vpcNetworkId": id,
                        "azInfos": zones.iter().map(|(z, p)| json!({"manualInfo": {"azId": z, "prefixes": p}})).collect::<Vec<_>>()}]),
                    None if prefixes.is_empty() => json!([]),
                    None => bail!("--prefix needs --vpc"),
                };
                let folder = out.folder(folder)?;
                let body = json!({"folderId": folder, "name": name, "vpcInfo": vpc_info,
                    "cicPrivateConnectionInfo": connections.iter().map(|c| json!({"cicPrivateConnectionId": c})).collect::<Vec<_>>()});
                out.mutate(
                    api,
                    Method::POST,
                    "/cloudrouter/v1/routingInstances",
                    Some(body),
                    "routing instance",
                )
                .await
            }
            RoutingInstanceCmd::List { folder } => {
                let q = out.folder_query(folder);
                let v = api
                    .get(&format!("/cloudrouter/v1/routingInstances{q}"))
                    .await?;
                out.print(&v, |v| {
                    table(v, &["id", "name", "status", "deletionProtection"])
                });
                Ok(())
            }
            RoutingInstanceCmd::BatchGet { ids } => {
                batch_get(
                    api,
                    out,
                    "/cloudrouter/v1/routingInstances",
                    "routingInstanceIds",
                    &ids,
                    &["id", "name", "status", "deletionProtection"],
                )
                .await
            }
            RoutingInstanceCmd::Get { id } => {
                out.print(
                    &api.get(&format!("/cloudrouter/v1/routingInstances/{id}"))
                        .await?,
                    pretty,
                );
                Ok(())
            }
            RoutingInstanceCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("/cloudrouter/v1/routingInstances/{id}"),
                    None,
                    "routing instance deleted",
                )
                .await
            }
        }
    }
}

#[derive(Subcommand)]
pub enum OperationCmd {
    /// Show an operation (`cic operation wait` waits for it to finish).
    Get { id: String },
    /// Wait until the operation is done.
    Wait { id: String },
    /// Cancel an operation that is not done.
    Cancel { id: String },
}

impl OperationCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            OperationCmd::Get { id } => {
                out.print(&api.get(&format!("/operations/{id}")).await?, pretty)
            }
            OperationCmd::Cancel { id } => {
                let v = api
                    .call(Method::POST, &format!("/operations/{id}:cancel"), None)
                    .await?;
                out.print(&v, pretty);
            }
            OperationCmd::Wait { id } => {
                let op = api.get(&format!("/operations/{id}")).await?;
                let done = api.wait(op, out.timeout).await?;
                out.print(&done, pretty);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_name_them_from_the_field_paths() {
        let v = json!({"privateConnections": [
            {"id": "pc1", "vlanId": "100", "bgp": {"state": "ESTABLISHED"}},
            {"id": "pc22", "vlanId": "7"},
        ], "nextPageToken": "2"});
        let t = table(&v, &["id", "vlanId", "bgp.state"]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "| ID   | VLAN_ID | BGP_STATE   |");
        assert_eq!(lines[3], "| pc1  | 100     | ESTABLISHED |");
        assert_eq!(lines[4], "| pc22 | 7       |             |");
        assert_eq!(lines[0].len(), lines[1].len());
        assert_eq!(lines.last(), Some(&"(more: --page-token 2)"));
    }

    #[test]
    fn the_modelled_peering_flag_reads_into_the_api_shape() {
        let p = peering_from_kv(
            "peering-subnet=10.0.0.0/31, peer-ip=10.0.0.1,cloud-ip=10.0.0.0,peer-bgp-asn=4200000001",
        )
        .expect("peering");
        assert_eq!(
            p,
            json!({"peeringSubnet": "10.0.0.0/31", "peerIp": "10.0.0.1", "cloudIp": "10.0.0.0", "peerBgpAsn": "4200000001"})
        );
        for (bad, why) in [
            ("peering-subnet", "is not key=value"),
            ("peer-ip=1,peer-ip=2", "given twice"),
            ("vlan=3", "unknown key"),
        ] {
            let e = peering_from_kv(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn capacities_read_as_people_write_them() {
        assert_eq!(capacity("1g").unwrap(), "CAPACITY_1_GBPS");
        assert_eq!(capacity("500M").unwrap(), "CAPACITY_500_MBPS");
        assert_eq!(capacity("10Gbps").unwrap(), "CAPACITY_10_GBPS");
        assert_eq!(capacity("CAPACITY_2_GBPS").unwrap(), "CAPACITY_2_GBPS");
        assert!(capacity("fast").is_err());
        assert!(capacity("10x").is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Tenancy

#[derive(Subcommand)]
pub enum FolderCmd {
    /// Create a folder (operator).
    Create {
        /// Folder id; generated when absent.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Folders the caller holds a role in (the operator: all).
    List,
    /// Show a folder.
    Get { id: String },
    /// Delete an empty folder (operator).
    Delete { id: String },
    /// Who holds which role in a folder.
    ListAccessBindings { id: String },
    /// Grant a role: auditor, viewer, secretViewer, editor or admin.
    AddAccessBinding {
        id: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        subject: String,
    },
    /// Take a role in a folder away from a subject.
    RemoveAccessBinding {
        id: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        subject: String,
    },
}

impl FolderCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/resourcemanager/v1/folders";
        let delta = |action: &str, id: &str, role: &str, subject: &str| {
            (
                format!("{BASE}/{id}:updateAccessBindings"),
                json!({"accessBindingDeltas": [{"action": action,
                       "accessBinding": {"roleId": role, "subject": {"id": subject}}}]}),
            )
        };
        match self {
            FolderCmd::Create {
                id,
                name,
                description,
            } => {
                let mut body = json!({"name": name, "description": description});
                if let Some(id) = id {
                    body["id"] = json!(id);
                }
                out.mutate(api, Method::POST, BASE, Some(body), "folder")
                    .await?;
            }
            FolderCmd::List => {
                let v = api.get(BASE).await?;
                out.print(&v, |v| table(v, &["id", "name", "status", "createdAt"]));
            }
            FolderCmd::Get { id } => out.print(&api.get(&format!("{BASE}/{id}")).await?, pretty),
            FolderCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("{BASE}/{id}"),
                    None,
                    "delete folder",
                )
                .await?;
            }
            FolderCmd::ListAccessBindings { id } => {
                let v = api.get(&format!("{BASE}/{id}:listAccessBindings")).await?;
                out.print(&v, |v| {
                    let items = v["accessBindings"].as_array().cloned().unwrap_or_default();
                    if items.is_empty() {
                        return "(none)".into();
                    }
                    items
                        .iter()
                        .map(|b| {
                            format!(
                                "{}\t{}",
                                b["subject"]["id"].as_str().unwrap_or(""),
                                b["roleId"].as_str().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            FolderCmd::AddAccessBinding { id, role, subject } => {
                let (path, body) = delta("ADD", &id, &role, &subject);
                out.mutate(api, Method::POST, &path, Some(body), "access bindings")
                    .await?;
            }
            FolderCmd::RemoveAccessBinding { id, role, subject } => {
                let (path, body) = delta("REMOVE", &id, &role, &subject);
                out.mutate(api, Method::POST, &path, Some(body), "access bindings")
                    .await?;
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Issue a key for a subject (operator); the secret is printed once.
    Create {
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List API keys (a table; --format json|yaml for scripts).
    List {
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke a key: requests with it fail at once.
    Delete { id: String },
}

impl ApiKeyCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            ApiKeyCmd::Create {
                subject,
                description,
            } => {
                let v = api
                    .call(
                        Method::POST,
                        "/iam/v1/apiKeys",
                        Some(&json!({"subjectId": subject, "description": description})),
                    )
                    .await?;
                out.print(&v, |v| {
                    format!(
                        "API key {} for {}\nsecret (shown once): {}",
                        v["apiKey"]["id"].as_str().unwrap_or(""),
                        v["apiKey"]["subjectId"].as_str().unwrap_or(""),
                        v["secret"].as_str().unwrap_or("")
                    )
                });
            }
            ApiKeyCmd::List { subject } => {
                let q = subject
                    .map(|s| format!("?subjectId={s}"))
                    .unwrap_or_default();
                let v = api.get(&format!("/iam/v1/apiKeys{q}")).await?;
                out.print(&v, |v| {
                    table(v, &["id", "subjectId", "createdAt", "description"])
                });
            }
            ApiKeyCmd::Delete { id } => {
                api.call(Method::DELETE, &format!("/iam/v1/apiKeys/{id}"), None)
                    .await?;
                out.print(&json!({}), |_| format!("API key {id} revoked"));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Public connections, partners and the cloud-service catalogue.

async fn show_one(api: &Api, out: &Output, path: &str) -> Result<()> {
    out.print(&api.get(path).await?, pretty);
    Ok(())
}

async fn delete_now(api: &Api, out: &Output, path: &str, what: &str) -> Result<()> {
    let v = api.call(Method::DELETE, path, None).await?;
    out.print(&v, |_| format!("{what} deleted"));
    Ok(())
}

#[derive(Subcommand)]
pub enum PublicConnectionCmd {
    /// Create a public connection in a customer's folder (operator).
    Create {
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, visible_alias = "trunk-id")]
        trunk: String,
        #[arg(long, visible_alias = "vlan-id")]
        vlan: u32,
        /// peering-subnet=…,peer-ip=…,cloud-ip=…,peer-bgp-asn=…[,peer-bgp-md5-key=…]
        #[arg(long)]
        ipv4_peering: String,
        /// An allowed service type (see `cic cloud-service list`); repeat for more.
        #[arg(long = "service", required = true)]
        services: Vec<String>,
        /// A public prefix the customer announces; repeat for more.
        #[arg(long = "announced-prefix")]
        announced: Vec<String>,
    },
    /// List public connections (a table; --format json|yaml for scripts).
    List {
        #[arg(long, visible_alias = "folder-id")]
        folder: Option<String>,
    },
    /// Show one public connection.
    Get { id: String },
    /// Delete a public connection (operator).
    Delete { id: String },
    /// Move a public connection to another folder.
    Move {
        id: String,
        #[arg(long)]
        destination_folder: String,
    },
    /// The operations on a public connection, newest first.
    ListOperations { id: String },
}

impl PublicConnectionCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/publicConnections";
        match self {
            PublicConnectionCmd::Create {
                folder,
                name,
                trunk,
                vlan,
                ipv4_peering,
                services,
                announced,
            } => {
                let body = json!({"folderId": out.folder(folder)?, "name": name,
                    "trunkConnectionId": trunk, "vlanId": vlan.to_string(),
                    "ipv4Peering": peering_from_kv(&ipv4_peering)?,
                    "ipv4AllowedServiceTypes": services, "ipv4PeerAnnouncedPrefixes": announced});
                out.mutate(api, Method::POST, BASE, Some(body), "public connection")
                    .await
            }
            PublicConnectionCmd::List { folder } => {
                let v = api
                    .get(&format!("{BASE}{}", out.folder_query(folder)))
                    .await?;
                out.print(&v, |v| table(v, PUBLIC_COLUMNS));
                Ok(())
            }
            PublicConnectionCmd::Get { id } => show_one(api, out, &format!("{BASE}/{id}")).await,
            PublicConnectionCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("{BASE}/{id}"),
                    None,
                    "public connection deleted",
                )
                .await
            }
            PublicConnectionCmd::Move {
                id,
                destination_folder,
            } => {
                move_to(
                    api,
                    out,
                    &format!("{BASE}/{id}"),
                    &destination_folder,
                    "public connection moved",
                )
                .await
            }
            PublicConnectionCmd::ListOperations { id } => {
                list_operations(api, out, &format!("{BASE}/{id}")).await
            }
        }
    }
}

#[derive(Subcommand)]
pub enum PartnerCmd {
    /// Add a partner (operator).
    Create {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        url: String,
        /// Where the partner's port meets a PoP: pop=…,edge=…,port=…; repeat per PoP.
        #[arg(long = "joint")]
        joints: Vec<String>,
    },
    /// List partners (a table; --format json|yaml for scripts).
    List,
    /// Show one partner.
    Get { id: String },
    /// Remove a partner (operator).
    Delete { id: String },
}

/// `pop=…,edge=…,port=…` → a partner's joint.
fn joint_from_kv(s: &str) -> Result<Value> {
    let mut j = serde_json::Map::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--joint: {part:?} is not key=value"))?;
        let field = match k {
            "pop" => "pointOfPresenceId",
            "edge" => "accessDeviceName",
            "port" => "portName",
            other => bail!("--joint: unknown key {other:?}; keys are pop, edge, port"),
        };
        j.insert(field.into(), json!(v));
    }
    if j.len() != 3 {
        bail!("--joint: give pop=…,edge=…,port=…");
    }
    Ok(Value::Object(j))
}

impl PartnerCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/partners";
        match self {
            PartnerCmd::Create {
                id,
                name,
                url,
                joints,
            } => {
                let joints = joints
                    .iter()
                    .map(|j| joint_from_kv(j))
                    .collect::<Result<Vec<Value>>>()?;
                let mut pops: Vec<Value> = joints
                    .iter()
                    .map(|j| j["pointOfPresenceId"].clone())
                    .collect();
                pops.dedup();
                let v = api
                    .call(
                        Method::POST,
                        BASE,
                        Some(&json!({"id": id, "name": name, "url": url, "popIds": pops, "joints": joints})),
                    )
                    .await?;
                out.print(&v, |_| format!("partner {id} added"));
                Ok(())
            }
            PartnerCmd::List => {
                let v = api.get(BASE).await?;
                out.print(&v, |v| table(v, &["id", "name", "url", "status"]));
                Ok(())
            }
            PartnerCmd::Get { id } => show_one(api, out, &format!("{BASE}/{id}")).await,
            PartnerCmd::Delete { id } => {
                delete_now(api, out, &format!("{BASE}/{id}"), &format!("partner {id}")).await
            }
        }
    }
}

#[derive(Subcommand)]
pub enum CloudServiceCmd {
    /// Add a service to the catalogue (operator).
    Create {
        /// The service type, e.g. CLOUD_SERVICE_S3.
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// A prefix the service answers on; repeat for more.
        #[arg(long = "prefix", required = true)]
        prefixes: Vec<String>,
    },
    /// List cloud services (a table; --format json|yaml for scripts).
    List,
    /// Show one cloud service.
    Get { id: String },
    /// Remove a service (operator).
    Delete { id: String },
}

impl CloudServiceCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/cloudServices";
        match self {
            CloudServiceCmd::Create { id, name, prefixes } => {
                let v = api
                    .call(
                        Method::POST,
                        BASE,
                        Some(&json!({"id": id, "name": name, "prefixes": prefixes})),
                    )
                    .await?;
                out.print(&v, |_| format!("cloud service {id} added"));
                Ok(())
            }
            CloudServiceCmd::List => {
                let v = api.get(BASE).await?;
                out.print(&v, |v| table(v, &["id", "name", "prefixes"]));
                Ok(())
            }
            CloudServiceCmd::Get { id } => show_one(api, out, &format!("{BASE}/{id}")).await,
            CloudServiceCmd::Delete { id } => {
                delete_now(
                    api,
                    out,
                    &format!("{BASE}/{id}"),
                    &format!("cloud service {id}"),
                )
                .await
            }
        }
    }
}
