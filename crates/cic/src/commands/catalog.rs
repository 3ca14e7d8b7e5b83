//! `cic pop` and `cic edge-router`: the operator's points of presence and edge routers.

use super::*;

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
    /// Describe the PoP's network toward the cloud's public services: where its edges
    /// send what public connections carry (a VXLAN segment per connection).
    SetPublicServices {
        /// The point of presence.
        pop: String,
        /// The services routers' VTEP.
        #[arg(long)]
        vtep: std::net::Ipv4Addr,
        /// BGP with the services routers (needs --asn), or static routes.
        #[arg(long, value_parser = ["bgp", "static"])]
        routing: String,
        /// The services routers' ASN (BGP routing).
        #[arg(long)]
        asn: Option<u32>,
        #[arg(long, default_value_t = 4789)]
        udp_port: u16,
    },
    /// Remove the PoP's public-services network: its public connections announce nothing.
    ClearPublicServices {
        /// The point of presence.
        pop: String,
    },
    #[command(flatten)]
    Common(CatalogVerbs<Pops>),
}

impl PopCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            PopCmd::Common(v) => return v.run(api, out).await,
            PopCmd::SetPublicServices {
                pop,
                vtep,
                routing,
                asn,
                udp_port,
            } => {
                let mut net = json!({"remoteVtep": vtep, "routing": routing.to_uppercase(),
                                     "udpPort": udp_port});
                if let Some(a) = asn {
                    net["asn"] = json!(a);
                }
                let v = replace_public_services(api, &pop, net).await?;
                out.print(&v, |v| {
                    format!(
                        "point of presence {}: public services over {}",
                        v["id"].as_str().unwrap_or("?"),
                        v["publicServices"]["remoteVtep"].as_str().unwrap_or("?")
                    )
                });
            }
            PopCmd::ClearPublicServices { pop } => {
                let v = replace_public_services(api, &pop, Value::Null).await?;
                out.print(&v, |v| {
                    format!(
                        "point of presence {}: no public-services network",
                        v["id"].as_str().unwrap_or("?")
                    )
                });
            }
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
        }
        Ok(())
    }
}

/// The PoP as it is, with `net` as its public-services network (`null`: none).
async fn replace_public_services(api: &Api, pop: &str, net: Value) -> Result<Value> {
    let path = format!("/cic/v1/pointOfPresences/{pop}");
    let mut p = api.call(Method::GET, &path, None).await?;
    match net {
        Value::Null => {
            if let Some(o) = p.as_object_mut() {
                o.remove("publicServices");
            }
        }
        net => p["publicServices"] = net,
    }
    api.call(Method::PUT, &path, Some(&p)).await
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
        /// The IPv6 transit pool (/127s) [default: the IPv4 addresses embedded in
        /// fd63:6963::/96].
        #[arg(long)]
        fabric_transit_pool6: Option<String>,
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
    #[command(flatten)]
    Common(CatalogVerbs<EdgeRouters>),
    /// The desired config the edge is given now.
    Config { id: String },
    /// Drain for maintenance: its sessions send every route with GRACEFUL_SHUTDOWN.
    Drain { id: String },
    /// End a drain.
    Undrain { id: String },
    /// What the fabric must build per routing instance on this edge.
    FabricAttachments { id: String },
}

impl EdgeRouterCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            EdgeRouterCmd::Common(v) => return v.run(api, out).await,
            EdgeRouterCmd::Create {
                name,
                pop,
                router_id,
                fabric_asn,
                fabric_remote_vtep,
                fabric_local_vtep,
                fabric_port,
                fabric_transit_pool,
                fabric_transit_pool6,
                fabric_vni_base,
                certificate_out,
                csr,
            } => {
                let mut fabric = json!({"asn": fabric_asn, "remoteVtep": fabric_remote_vtep, "localVtep": fabric_local_vtep,
                                        "transitPool": fabric_transit_pool});
                if let Some(v) = fabric_vni_base {
                    fabric["vniBase"] = json!(v);
                }
                if let Some(p) = fabric_transit_pool6 {
                    fabric["transitPool6"] = json!(p);
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
            EdgeRouterCmd::FabricAttachments { id } => out.print(
                &api.get(&format!("/cic/v1/edges/{id}/fabricAttachments"))
                    .await?,
                pretty,
            ),
        }
        Ok(())
    }
}
