//! `cic routing-instance`: routing instances (Cloud Router).

use super::*;

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
    #[command(flatten)]
    Common(FolderVerbs<RoutingInstances>),
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
    /// The configuration of the customer's router for every connection of the routing
    /// instance at once (both PoPs), as text.
    RouterConfig {
        id: String,
        #[command(flatten)]
        args: super::connections::RouterConfigArgs,
    },
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
            RoutingInstanceCmd::RouterConfig { id, args } => {
                super::connections::router_config(
                    api,
                    out,
                    &format!("{BASE}/{id}:routerConfig"),
                    &args,
                )
                .await
            }
            RoutingInstanceCmd::GetByConnection { connection } => {
                out.print(
                    &api.get(&format!("{BASE}:getByCicPrivateConnectionId/{connection}"))
                        .await?,
                    pretty,
                );
                Ok(())
            }
            RoutingInstanceCmd::Common(v) => v.run(api, out).await,
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
        }
    }
}
