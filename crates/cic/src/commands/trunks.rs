//! `cic trunk-connection`: the customer's trunks.

use super::*;

/// `1g`, `500m`, `10G` or the API's own `CAPACITY_1_GBPS`.
pub(crate) fn capacity(s: &str) -> Result<String> {
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
    #[command(flatten)]
    Common(FolderVerbs<Trunks>),
}

impl TrunkCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            TrunkCmd::Common(v) => v.run(api, out).await,
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
        }
    }
}
