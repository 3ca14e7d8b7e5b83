//! `cic public-connection`, `cic partner` and `cic cloud-service`.

use super::*;

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
        /// An IPv6 session beside the IPv4 one (the same keys; a global /125-/127).
        #[arg(long, requires = "services6")]
        ipv6_peering: Option<String>,
        /// A service reached over IPv6 (it must have IPv6 prefixes); repeat for more.
        #[arg(long = "ipv6-service", requires = "ipv6_peering")]
        services6: Vec<String>,
        /// An IPv6 prefix the customer announces; repeat for more.
        #[arg(long = "ipv6-announced-prefix", requires = "ipv6_peering")]
        announced6: Vec<String>,
    },
    #[command(flatten)]
    Session(super::connections::SessionCmd),
    #[command(flatten)]
    Common(FolderVerbs<PublicConnections>),
}

impl PublicConnectionCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/publicConnections";
        match self {
            PublicConnectionCmd::Common(v) => v.run(api, out).await,
            PublicConnectionCmd::Session(c) => c.run(api, out, BASE).await,
            PublicConnectionCmd::Create {
                folder,
                name,
                trunk,
                vlan,
                ipv4_peering,
                services,
                announced,
                ipv6_peering,
                services6,
                announced6,
            } => {
                let mut body = json!({"folderId": out.folder(folder)?, "name": name,
                    "trunkConnectionId": trunk, "vlanId": vlan.to_string(),
                    "ipv4Peering": peering_from_kv(&ipv4_peering)?,
                    "ipv4AllowedServiceTypes": services, "ipv4PeerAnnouncedPrefixes": announced});
                if let Some(kv) = ipv6_peering {
                    body["ipv6Peering"] = super::connections::peering_kv("--ipv6-peering", &kv)?;
                    body["ipv6AllowedServiceTypes"] = json!(services6);
                    body["ipv6PeerAnnouncedPrefixes"] = json!(announced6);
                }
                out.mutate(api, Method::POST, BASE, Some(body), "public connection")
                    .await
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
    #[command(flatten)]
    Common(CatalogVerbs<Partners>),
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
            PartnerCmd::Common(v) => v.run(api, out).await,
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
    #[command(flatten)]
    Common(CatalogVerbs<CloudServices>),
}

impl CloudServiceCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/cic/v1/cloudServices";
        match self {
            CloudServiceCmd::Common(v) => v.run(api, out).await,
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
        }
    }
}
