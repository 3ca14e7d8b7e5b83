//! `cic private-connection`: the customer's private connections.

use super::*;

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
        /// The IPv4 peering as the modelled CLI takes it:
        /// peering-subnet=…,peer-ip=…,cloud-ip=…,peer-bgp-asn=…[,peer-bgp-md5-key=…]
        #[arg(long, conflicts_with_all = ["subnet", "peer_ip", "cloud_ip", "peer_asn"])]
        ipv4_peering: Option<String>,
        /// The IPv6 peering, the same keys (a /125, /126 or /127 subnet): its own BGP
        /// session beside the IPv4 one, or the only one.
        #[arg(long)]
        ipv6_peering: Option<String>,
        /// IPv4 peering subnet, /30 or /31 (or use --ipv4-peering).
        #[arg(long, required_unless_present_any = ["ipv4_peering", "ipv6_peering"])]
        subnet: Option<String>,
        #[arg(long, required_unless_present_any = ["ipv4_peering", "ipv6_peering"])]
        peer_ip: Option<String>,
        #[arg(long, required_unless_present_any = ["ipv4_peering", "ipv6_peering"])]
        cloud_ip: Option<String>,
        #[arg(long, required_unless_present_any = ["ipv4_peering", "ipv6_peering"])]
        peer_asn: Option<u32>,
        /// The sessions' TCP-MD5 key (each peering's own peer-bgp-md5-key wins).
        #[arg(long, env = "CIC_MD5_KEY", hide_env_values = true)]
        md5_key: Option<String>,
        /// A static route (prefix via the peer address of its family); repeat for more.
        #[arg(long = "static-route")]
        static_routes: Vec<String>,
        /// GTSM (RFC 5082) on the sessions: on (the router sends with TTL 255,
        /// `ttl-security hops 1`) or off [default: the operator's].
        #[arg(long, value_parser = ["on", "off"])]
        ttl_security: Option<String>,
        /// BGP roles (RFC 9234), the cloud as provider: off, announce or strict
        /// [default: the operator's].
        #[arg(long, value_parser = ["off", "announce", "strict"])]
        bgp_role: Option<String>,
        /// BFD timers of the sessions, INTERVAL_MSxMULTIPLIER (`100x3`: down after 300 ms
        /// without a packet) [default: the operator's, 300x3].
        #[arg(long, value_parser = parse_bfd)]
        bfd: Option<String>,
    },
    #[command(flatten)]
    Common(FolderVerbs<PrivateConnections>),
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
        /// The same for the IPv6 session's key.
        #[arg(long, hide_env_values = true)]
        ipv6_md5_key: Option<String>,
        /// GTSM on the sessions: on, off, or default (the operator's again).
        #[arg(long, value_parser = ["on", "off", "default"])]
        ttl_security: Option<String>,
        /// BGP roles: off, announce, strict, or default (the operator's again).
        #[arg(long, value_parser = ["off", "announce", "strict", "default"])]
        bgp_role: Option<String>,
        /// BFD timers, INTERVAL_MSxMULTIPLIER (`100x3`), or default (the operator's again).
        #[arg(long, value_parser = parse_bfd)]
        bfd: Option<String>,
    },
    #[command(flatten)]
    Session(SessionCmd),
    /// Onboarding diagnostics: from what the edge sees of each session, which step of
    /// bringing it up is missing (carrier, ARP/ND, TCP to 179, ASN, MD5, hold time,
    /// prefixes) and what to change.
    Diagnose {
        id: String,
        /// One session: ipv4 or ipv6 [default: each the connection has].
        #[arg(long, value_parser = ["ipv4", "ipv6"])]
        family: Option<String>,
    },
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
    /// The configuration of the customer's router for this connection (BIRD, FRR,
    /// IOS-XE, Junos, EOS, RouterOS), printed as text: interface, peerings, BGP, BFD,
    /// filters.
    RouterConfig {
        id: String,
        #[command(flatten)]
        args: RouterConfigArgs,
    },
    /// Remove static routes of a private connection.
    RemoveStaticRoutes {
        id: String,
        #[arg(long = "prefix", required = true)]
        prefixes: Vec<String>,
    },
}

pub(crate) const TRUNK_COLUMNS: &[&str] = &[
    "id",
    "name",
    "pointOfPresenceId",
    "capacity",
    "edgeId",
    "status",
];
pub(crate) const CONNECTION_COLUMNS: &[&str] = &[
    "id",
    "name",
    "trunkConnectionId",
    "vlanId",
    "status",
    "bgp.state",
    "bgp.prefixesReceived",
    "bgp.prefixesAccepted",
    "bgp.prefixesAdvertised",
    "bgpIpv6.state",
];
pub(crate) const PUBLIC_COLUMNS: &[&str] = &[
    "id",
    "name",
    "trunkConnectionId",
    "vlanId",
    "status",
    "bgp.state",
];

/// `POST {base}:batchGet {"<field>": ids}`, printed as a table.
pub(crate) async fn batch_get(
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
pub(crate) fn peering_from_kv(s: &str) -> Result<Value> {
    peering_kv("--ipv4-peering", s)
}

/// [`peering_from_kv`] for the option `flag` (`--ipv6-peering` takes the same keys).
pub(crate) fn peering_kv(flag: &str, s: &str) -> Result<Value> {
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
            .ok_or_else(|| anyhow!("{flag}: {part:?} is not key=value"))?;
        let (_, field) = KEYS
            .iter()
            .find(|(key, _)| *key == k.trim())
            .ok_or_else(|| {
                anyhow!(
                    "{flag}: unknown key {k:?}; keys are {}",
                    KEYS.map(|(k, _)| k).join(", ")
                )
            })?;
        if v.insert((*field).to_string(), json!(val.trim())).is_some() {
            bail!("{flag}: {k} is given twice");
        }
    }
    for (k, field) in &KEYS[..4] {
        if !v.contains_key(*field) {
            bail!("{flag}: {k}= is missing");
        }
    }
    Ok(Value::Object(v))
}

/// What `router-config` takes, for a connection or a routing instance.
#[derive(clap::Args)]
pub struct RouterConfigArgs {
    #[arg(long, value_parser = ["bird", "frr", "ios-xe", "junos", "eos", "routeros"])]
    pub vendor: String,
    /// A prefix you announce (the export filter sends only these); repeat for more.
    #[arg(long = "announce")]
    pub announce: Vec<String>,
    /// The router's port the connections arrive on [default per vendor: eth1,
    /// GigabitEthernet0/0/1, ge-0/0/1, Ethernet1, ether2].
    #[arg(long)]
    pub port: Option<String>,
    /// Each connection's interface name, with {vlan} and {port} [default: {port}.{vlan},
    /// or vx{vlan} on an overlay trunk].
    #[arg(long)]
    pub interface: Option<String>,
    /// Make a connection the standby: prepend or community (for a routing instance,
    /// PC:prepend or PC:community).
    #[arg(long)]
    pub standby: Option<String>,
}

/// `GET {path}?…`: the configuration, printed as its text (or as JSON/YAML).
pub(crate) async fn router_config(
    api: &Api,
    out: &Output,
    path: &str,
    a: &RouterConfigArgs,
) -> Result<()> {
    let mut url = reqwest::Url::parse("http://query.invalid/")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("vendor", &a.vendor);
        if !a.announce.is_empty() {
            q.append_pair("announce", &a.announce.join(","));
        }
        for (k, v) in [
            ("port", &a.port),
            ("interface", &a.interface),
            ("standby", &a.standby),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    let v = api
        .get(&format!("{path}?{}", url.query().unwrap_or_default()))
        .await?;
    out.print(&v, |v| v["config"].as_str().unwrap_or_default().to_string());
    Ok(())
}

/// Static routes as the API takes them: each prefix in the list of its family.
pub(crate) fn routes_by_family(prefixes: &[String]) -> Value {
    let (v6, v4): (Vec<&String>, Vec<&String>) = prefixes.iter().partition(|p| p.contains(':'));
    let list = |v: Vec<&String>| -> Vec<Value> { v.iter().map(|p| json!({"prefix": p})).collect() };
    let mut body = json!({});
    if !v4.is_empty() {
        body["ipv4StaticRoutes"] = json!(list(v4));
    }
    if !v6.is_empty() {
        body["ipv6StaticRoutes"] = json!(list(v6));
    }
    body
}

pub(crate) async fn static_routes(
    api: &Api,
    out: &Output,
    id: &str,
    method: &str,
    prefixes: &[String],
) -> Result<()> {
    out.mutate(
        api,
        Method::POST,
        &format!("/cic/v1/privateConnections/{id}:{method}"),
        Some(routes_by_family(prefixes)),
        "private connection",
    )
    .await
}

fn one_session(family: &str, b: &Value) -> String {
    format!(
        "BGP {family} {} with {} (AS {}), up {} s, prefixes received {} / accepted {} / advertised {}{}",
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
    )
}

/// A line per session of the connection (IPv4, IPv6).
pub(crate) fn session_line(pc: &Value) -> String {
    let mut lines = Vec::new();
    for (family, peering, status) in [
        ("IPv4", "ipv4Peering", "bgp"),
        ("IPv6", "ipv6Peering", "bgpIpv6"),
    ] {
        match pc.get(status) {
            Some(b) => lines.push(one_session(family, b)),
            None if pc.get(peering).is_some()
                || (family == "IPv4" && pc.get("ipv6Peering").is_none()) =>
            {
                lines.push(format!("BGP {family}: no report from the edge yet"))
            }
            None => {}
        }
    }
    lines.join("\n")
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
                ipv6_md5_key,
                ttl_security,
                bgp_role,
                bfd,
            } => {
                let mut body = json!({});
                session_options(&mut body, ttl_security, bgp_role, bfd);
                for (field, k) in [("ipv4Peering", md5_key), ("ipv6Peering", ipv6_md5_key)] {
                    if let Some(k) = k {
                        // A peering in a PATCH is merged: the key alone changes ("" removes
                        // it).
                        let key = if k.is_empty() { Value::Null } else { json!(k) };
                        body[field] = json!({ "peerBgpMd5Key": key });
                    }
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
            ConnectionCmd::Common(v) => v.run(api, out).await,
            ConnectionCmd::Session(c) => c.run(api, out, BASE).await,
            ConnectionCmd::Diagnose { id, family } => {
                let family = family.map(|f| format!("?family={f}")).unwrap_or_default();
                let v = api.get(&format!("{BASE}/{id}:diagnose{family}")).await?;
                out.print(&v, diagnosis_text);
                Ok(())
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
            ConnectionCmd::RouterConfig { id, args } => {
                router_config(api, out, &format!("{BASE}/{id}:routerConfig"), &args).await
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
                ipv6_peering,
                subnet,
                peer_ip,
                cloud_ip,
                peer_asn,
                md5_key,
                static_routes,
                ttl_security,
                bgp_role,
                bfd,
            } => {
                let folder = out.folder(folder)?;
                let v4 = match (ipv4_peering, subnet) {
                    (Some(kv), _) => Some(peering_from_kv(&kv)?),
                    (None, Some(subnet)) => Some(
                        json!({"peeringSubnet": subnet, "peerIp": peer_ip, "cloudIp": cloud_ip,
                               "peerBgpAsn": peer_asn.map(|a| a.to_string())}),
                    ),
                    (None, None) => None,
                };
                let v6 = ipv6_peering
                    .map(|kv| peering_kv("--ipv6-peering", &kv))
                    .transpose()?;
                let mut body = json!({"folderId": folder, "name": name, "description": description,
                    "trunkConnectionId": trunk, "vlanId": vlan.to_string()});
                for (field, p) in [("ipv4Peering", v4), ("ipv6Peering", v6)] {
                    if let Some(mut p) = p {
                        if let Some(k) = &md5_key
                            && p.get("peerBgpMd5Key").is_none()
                        {
                            p["peerBgpMd5Key"] = json!(k);
                        }
                        body[field] = p;
                    }
                }
                if let Value::Object(routes) = routes_by_family(&static_routes) {
                    for (k, v) in routes {
                        body[k] = v;
                    }
                }
                session_options(&mut body, ttl_security, bgp_role, bfd);
                out.mutate(
                    api,
                    Method::POST,
                    "/cic/v1/privateConnections",
                    Some(body),
                    "private connection",
                )
                .await
            }
        }
    }
}

/// `--ttl-security` and `--bgp-role` into a request body ("default": `null`, the
/// operator's default again).
/// `100x3` (or `default`), as `--bfd` takes it: checked here for its shape; the server
/// judges the numbers against the operator's bounds.
fn parse_bfd(s: &str) -> std::result::Result<String, String> {
    if s == "default" || bfd_timers(s).is_some() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: give INTERVAL_MSxMULTIPLIER, such as 100x3, or default"
        ))
    }
}

fn bfd_timers(s: &str) -> Option<Value> {
    let (i, m) = s.split_once('x')?;
    let (i, m): (u32, u8) = (i.trim().parse().ok()?, m.trim().parse().ok()?);
    Some(json!({"minIntervalMs": i, "multiplier": m}))
}

fn session_options(
    body: &mut Value,
    ttl_security: Option<String>,
    bgp_role: Option<String>,
    bfd: Option<String>,
) {
    if let Some(b) = bfd {
        body["bfd"] = bfd_timers(&b).unwrap_or(Value::Null);
    }
    if let Some(t) = ttl_security {
        body["ttlSecurity"] = match t.as_str() {
            "default" => Value::Null,
            t => json!(t == "on"),
        };
    }
    if let Some(r) = bgp_role {
        body["bgpRole"] = match r.as_str() {
            "default" => Value::Null,
            r => json!(r.to_uppercase()),
        };
    }
}

/// A `:diagnose` answer for people: per session its step, what the edge sees, what to do.
fn diagnosis_text(v: &Value) -> String {
    let mut out = String::new();
    for s in v["sessions"].as_array().into_iter().flatten() {
        let family = match s["family"].as_str() {
            Some("ipv6") => "IPv6",
            _ => "IPv4",
        };
        out.push_str(&format!(
            "{family}  {}  {}\n",
            s["step"].as_str().unwrap_or("?"),
            s["summary"].as_str().unwrap_or_default()
        ));
        if let Some(fix) = s["fix"].as_str() {
            out.push_str(&format!("      fix: {fix}\n"));
        }
        for w in s["warnings"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "      warning: {}\n",
                w.as_str().unwrap_or_default()
            ));
        }
    }
    out.trim_end().to_string()
}

/// What a connection's BGP session can be asked, private or public: the looking glass, a
/// failover test, a reset.
#[derive(Subcommand)]
pub enum SessionCmd {
    /// The looking glass: received (with why each refused route was), accepted or
    /// advertised routes of the session.
    Routes {
        id: String,
        #[arg(long, default_value = "received", value_parser = ["received", "accepted", "advertised"])]
        direction: String,
        /// Which session: ipv4 or ipv6 [default: IPv4 when the connection has it].
        #[arg(long, value_parser = ["ipv4", "ipv6"])]
        family: Option<String>,
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
}

impl SessionCmd {
    /// Runs the command on the connections under `base` (`/cic/v1/privateConnections`, …).
    pub async fn run(self, api: &Api, out: &Output, base: &str) -> Result<()> {
        match self {
            SessionCmd::StartBgpFailoverTest {
                id,
                duration_seconds,
            } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{base}/{id}:startBgpFailoverTest"),
                    Some(json!({"durationSeconds": duration_seconds})),
                    "failover test started; session held down",
                )
                .await
            }
            SessionCmd::StopBgpFailoverTest { id } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{base}/{id}:stopBgpFailoverTest"),
                    Some(json!({})),
                    "failover test stopped",
                )
                .await
            }
            SessionCmd::ResetBgpSession { id } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{base}/{id}:resetBgpSession"),
                    Some(json!({})),
                    "BGP session reset",
                )
                .await
            }
            SessionCmd::Routes {
                id,
                direction,
                family,
            } => {
                let family = family.map(|f| format!("&family={f}")).unwrap_or_default();
                let v = api
                    .get(&format!("{base}/{id}:routes?direction={direction}{family}"))
                    .await?;
                out.print(&v, |v| {
                    table(
                        v,
                        &["prefix", "nextHop", "asPath", "origin", "rpki", "rejected"],
                    )
                });
                Ok(())
            }
        }
    }
}
