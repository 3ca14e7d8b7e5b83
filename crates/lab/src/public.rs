//! The lab's public services (`cic lab up --public`): what a public connection reaches.
//!
//! A "public services" namespace per PoP stands for the cloud's services routers there: a
//! BIRD (AS 65530) that announces two services, each with an HTTP endpoint in the
//! benchmarking range 198.18.0.0/15 (RFC 2544: nothing real is addressed) — Object
//! Storage on 198.18.0.0/24, which the customer's public connections allow, and a
//! container registry on 198.18.1.0/24, which they do not. The services are anycast: the
//! same addresses at every PoP, so what enters at a PoP is answered from that PoP and goes
//! back over it. Each is reached from its PoP's edge over a link of its own, and the
//! operator describes it as the PoP's public-services network (a VXLAN segment per public
//! connection, BGP over it). The lab's stand-in for the operator's automation builds the
//! services routers' side of each segment from `…/publicServicesAttachments`.
//!
//! The customer's side: the on-prem server has a public address, 198.19.10.10 of the
//! customer's registered 198.19.10.0/24, and the customer's router a public connection at
//! each PoP (VLAN 101 / 201) announcing that prefix. The lab's server takes the
//! benchmarking range as public (`--treat-as-public`), as an operator's test network would.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cic_peers::{Bird, wait_until};
use serde_json::Value;

use crate::{
    BIRD_BFD, CUSTOMER_ASN, Cli, FOLDER, NS_HOST, NS_SITE, Pop, STATE_DIR, ns, record_pid, say,
    spawn, sysctl,
};

/// The services routers' namespace at PoP `n` (1, 2).
pub fn services_ns(n: u32) -> String {
    format!("{}svc{n}", crate::PREFIX)
}

/// Echo requests that reached the services routers of every PoP.
pub fn echoes_at_services() -> u64 {
    (1..=2)
        .map(services_ns)
        .filter(|n| cic_dataplane::netns::exists(n))
        .map(|n| echoes_in(&n))
        .sum()
}
pub const SERVICES_ASN: u32 = 65_530;
/// What the lab's server takes as public space besides the Internet's.
pub const LAB_PUBLIC_SPACE: &str = "198.18.0.0/15";
pub const OBJECT_STORAGE: &str = "CLOUD_SERVICE_OBJECT_STORAGE";
pub const OBJECT_STORAGE_PREFIX: &str = "198.18.0.0/24";
/// The allowed service's HTTP endpoint.
pub const OBJECT_STORAGE_HOST: &str = "198.18.0.10";
pub const REGISTRY: &str = "CLOUD_SERVICE_CONTAINER_REGISTRY";
pub const REGISTRY_PREFIX: &str = "198.18.1.0/24";
/// A service the public connections do not allow.
pub const REGISTRY_HOST: &str = "198.18.1.10";
/// The customer's registered public prefix, and the on-prem server's address in it.
pub const PUBLIC_PREFIX: &str = "198.19.10.0/24";
pub const PUBLIC_HOST: &str = "198.19.10.10";

impl Pop {
    pub fn public_vlan(self) -> u32 {
        self.vlan() + 1
    }
    /// The customer's interface of the public connection at this PoP.
    pub fn public_if(self) -> String {
        format!("vl{}", self.public_vlan())
    }
    /// The public connection's peering /30 (1: the cloud, 2: the customer).
    pub fn public_peering(self, host: u8) -> String {
        format!("198.19.255.{}", 4 * (self.0 - 1) + u32::from(host))
    }
    /// The link between the PoP's edge and the services routers (1: edge, 2: services).
    fn services_link(self, host: u8) -> String {
        format!("100.66.{}.{host}", self.0)
    }
    /// The services routers' VTEP as this PoP reaches it.
    fn services_vtep(self) -> String {
        self.services_link(2)
    }
}

/// The namespace, its links to each PoP, the HTTP endpoints, and the customer's public
/// addresses and interfaces (added to the topology `build_topology` made).
pub(crate) fn build(pops: &[Pop], dir: &Path, bin: &Path) -> Result<()> {
    for &p in pops {
        let svc = services_ns(p.0);
        cic_dataplane::netns::add(&svc).map_err(|e| anyhow!("{e}"))?;
        ns(&svc, &["link", "set", "lo", "up"])?;
        sysctl(&svc, "net/ipv4/ip_forward", "1")?;
        for host in [OBJECT_STORAGE_HOST, REGISTRY_HOST] {
            ns(&svc, &["addr", "add", &format!("{host}/32"), "dev", "lo"])?;
        }
        let mut args = vec!["lab", "http", "--netns", svc.as_str()];
        let listens: Vec<String> = [OBJECT_STORAGE_HOST, REGISTRY_HOST]
            .iter()
            .map(|h| format!("{h}:80"))
            .collect();
        for l in &listens {
            args.extend(["--listen", l.as_str()]);
        }
        spawn(dir, &format!("http-services-{}", p.id()), bin, &args, &[])?;
        crate::ip(&[
            "link",
            "add",
            "svc0",
            "netns",
            &p.ns(),
            "mtu",
            "9000",
            "type",
            "veth",
            "peer",
            "name",
            &p.id(),
            "netns",
            &svc,
            "mtu",
            "9000",
        ])?;
        ns(
            &p.ns(),
            &[
                "addr",
                "add",
                &format!("{}/30", p.services_link(1)),
                "dev",
                "svc0",
            ],
        )?;
        ns(
            &svc,
            &[
                "addr",
                "add",
                &format!("{}/30", p.services_link(2)),
                "dev",
                &p.id(),
            ],
        )?;
        ns(&p.ns(), &["link", "set", "svc0", "up"])?;
        ns(&svc, &["link", "set", &p.id(), "up"])?;
        // The edge's VTEP (its fabric address) is reached over the PoP's link.
        ns(
            &svc,
            &[
                "route",
                "add",
                &format!("{}/32", p.fab(1)),
                "via",
                &p.services_link(1),
            ],
        )?;
        // The customer's public connection: VLAN (VNI) 1 above the private one's.
        crate::customer_vlan(
            p,
            &p.public_if(),
            p.public_vlan(),
            1500,
            &[format!("{}/30", p.public_peering(2))],
        )?;
    }
    // The customer's public prefix on its LAN: the server has an address in it.
    ns(NS_SITE, &["addr", "add", "198.19.10.1/24", "dev", "lan0"])?;
    ns(
        NS_HOST,
        &["addr", "add", &format!("{PUBLIC_HOST}/24"), "dev", "eth0"],
    )?;
    Ok(())
}

/// The services routers' BIRD at PoP `p`: sessions with its edge's segments (dynamic),
/// the two services announced, the customers' prefixes taken.
fn services_bird_conf(p: Pop) -> String {
    format!(
        r#"# The cloud's public-services routers at {pop} (AS {SERVICES_ASN}).
router id {id};
log stderr all;
debug protocols {{ states, events }};
protocol device {{}}
protocol static services {{
  ipv4;
  route {OBJECT_STORAGE_PREFIX} unreachable;
  route {REGISTRY_PREFIX} unreachable;
}}
protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}
protocol bfd {{ interface "vx*" {{ {BIRD_BFD} }}; }}
protocol bgp edges {{
  description "public connections' segments of cic edges (dynamic)";
  local as {SERVICES_ASN};
  neighbor range 100.127.0.0/16 as {cloud};
  error wait time 1, 30;
  bfd on;
  ipv4 {{
    import all;
    export where proto = "services";
  }};
}}
"#,
        cloud = crate::CLOUD_ASN,
        pop = p.id(),
        id = p.services_link(2),
    )
}

/// The customer router's public sessions: one per PoP, its registered prefix announced,
/// the allowed services taken; BFD as on its private sessions.
pub(crate) fn site_conf(pops: &[Pop]) -> String {
    let mut c = String::from("# The customer's public connections (written by the lab).\n");
    for p in pops {
        c.push_str(&format!(
            r#"protocol bgp public_{id} {{
  description "cic public connection at {id}, VLAN {vlan}";
  local {me} as {CUSTOMER_ASN};
  neighbor {cloud} as {cloud_asn};
  connect retry time 2;
  error wait time 1, 30;
  bfd {{ {BIRD_BFD} }};
  ipv4 {{
    import all;
    export where net = {PUBLIC_PREFIX};
  }};
}}
"#,
            id = p.id(),
            vlan = p.public_vlan(),
            me = p.public_peering(2),
            cloud = p.public_peering(1),
            cloud_asn = crate::CLOUD_ASN,
        ));
    }
    c
}

/// Where the customer's public part of its BIRD config is kept (appended by
/// `configure_site` whenever the lab writes the customer's config).
pub(crate) fn site_conf_path() -> String {
    format!("{STATE_DIR}/site-public.conf")
}

/// The operator's steps: the services in the catalogue, each PoP's public-services
/// network; the services routers and the lab's stand-in for their automation started.
/// Returns each PoP's services BIRD's control socket.
pub(crate) fn operator(
    admin: &Cli,
    edges: &[(Pop, String)],
    dir: &Path,
    bin: &Path,
    ca: &str,
) -> Result<Vec<std::path::PathBuf>> {
    let mut socks = Vec::new();
    for (id, name, prefix) in [
        (OBJECT_STORAGE, "Object Storage", OBJECT_STORAGE_PREFIX),
        (REGISTRY, "Container Registry", REGISTRY_PREFIX),
    ] {
        admin.run(
            true,
            &[
                "cloud-service",
                "create",
                "--id",
                id,
                "--name",
                name,
                "--prefix",
                prefix,
            ],
        )?;
    }
    for (p, edge_id) in edges {
        admin.run(
            true,
            &[
                "pop",
                "set-public-services",
                &p.id(),
                "--vtep",
                &p.services_vtep(),
                "--routing",
                "bgp",
                "--asn",
                &SERVICES_ASN.to_string(),
            ],
        )?;
        spawn(
            dir,
            &format!("services-automation-{}", p.id()),
            bin,
            &[
                "lab",
                "fabric",
                "--public-services",
                "--server",
                &admin.server,
                "--edge-id",
                edge_id,
                "--netns",
                &services_ns(p.0),
                "--underlay-dev",
                &p.id(),
            ],
            &[
                ("CIC_TOKEN", &admin.token),
                ("CIC_CA_CERT", ca),
                ("RUST_LOG", "info"),
            ],
        )?;
        let bird = Bird::start(
            &format!("services-{}", p.id()),
            &services_bird_conf(*p),
            Some(&services_ns(p.0)),
            Some(dir),
        )?;
        socks.push(bird.socket());
        if let Some(pid) = bird.detach() {
            record_pid(dir, &format!("bird-services-{}", p.id()), pid)?;
        }
    }
    Ok(socks)
}

/// The operator makes a public connection on the customer's trunk at each PoP (public
/// connections are the operator's to make); returns their ids.
pub(crate) fn connections(admin: &Cli, trunks: &[(Pop, String)]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for (p, trunk) in trunks {
        let peering = format!(
            "peering-subnet={},peer-ip={},cloud-ip={},peer-bgp-asn={CUSTOMER_ASN}",
            format_args!("{}/30", p.public_peering(0)),
            p.public_peering(2),
            p.public_peering(1),
        );
        let op = admin.run(
            true,
            &[
                "public-connection",
                "create",
                "--folder-id",
                FOLDER,
                "--name",
                &format!("site1-public-{}", p.id()),
                "--trunk-id",
                trunk,
                "--vlan-id",
                &p.public_vlan().to_string(),
                "--ipv4-peering",
                &peering,
                "--service",
                OBJECT_STORAGE,
                "--announced-prefix",
                PUBLIC_PREFIX,
            ],
        )?;
        ids.push(crate::id_of(&op, "public connection")?);
    }
    Ok(ids)
}

/// Until every public session is Established (through the API), the customer's router
/// has the allowed service over every PoP, and each PoP's services routers the
/// customer's prefix over their own PoP.
pub(crate) fn wait_up(customer: &Cli, ids: &[String], pops: &[Pop]) -> Result<()> {
    for id in ids {
        wait_until(
            crate::WAIT,
            &format!("public connection {id}'s session to be ESTABLISHED"),
            || {
                let v: Value = customer
                    .run(false, &["public-connection", "get", id])
                    .ok()?;
                (v["bgp"]["state"] == "ESTABLISHED").then_some(())
            },
        )?;
    }
    wait_until(
        crate::WAIT,
        &format!("{OBJECT_STORAGE_PREFIX} over every PoP in {NS_SITE}"),
        || (crate::kernel_next_hops(NS_SITE, OBJECT_STORAGE_PREFIX) >= pops.len()).then_some(()),
    )?;
    for p in pops {
        let n = services_ns(p.0);
        wait_until(crate::WAIT, &format!("{PUBLIC_PREFIX} in {n}"), || {
            (crate::kernel_next_hops(&n, PUBLIC_PREFIX) >= 1).then_some(())
        })?;
    }
    Ok(())
}

/// `GET /` over HTTP from namespace `ns`, from source address `from`: the body, or why not
/// (within `timeout`).
pub fn fetch(ns: &str, from: &str, to: &str, timeout: Duration) -> Result<String> {
    let from: Ipv4Addr = from.parse().context("source address")?;
    let to: SocketAddr = format!("{to}:80").parse().context("address")?;
    let s = cic_dataplane::netns::tcp_socket(Some(ns)).context("socket")?;
    s.bind(&SocketAddr::from((from, 0)).into())
        .with_context(|| format!("bind {from}"))?;
    s.connect_timeout(&to.into(), timeout)
        .with_context(|| format!("connect to {to} from {from}"))?;
    let mut stream: std::net::TcpStream = s.into();
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {}\r\n\r\n", to.ip())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .with_context(|| format!("read the answer of {to}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(head, body)| (head.starts_with("HTTP/1.0 200"), body))
        .filter(|(ok, _)| *ok)
        .ok_or_else(|| anyhow!("{to} answered {out:?}"))?
        .1;
    Ok(body.to_string())
}

/// `cic lab http`: a minimal HTTP endpoint on each of `listens`, inside namespace `netns`,
/// answering every request with which service it is. Runs until killed.
pub fn serve_http(netns: &str, listens: &[SocketAddr]) -> Result<()> {
    let mut threads = Vec::new();
    for &at in listens {
        let l = cic_dataplane::netns::run_in(Some(netns), || TcpListener::bind(at))
            .map_err(|e| anyhow!("{netns}: {e}"))?
            .with_context(|| format!("listen on {at} in {netns}"))?;
        threads.push(std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || answer(c, at));
            }
        }));
    }
    if threads.is_empty() {
        bail!("nothing to listen on: give --listen ADDR:PORT");
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn answer(mut c: std::net::TcpStream, at: SocketAddr) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.len() > 64 * 1024 {
            return;
        }
    }
    let body = format!("cic lab public service at {}\n", at.ip());
    let _ = write!(
        c,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// Echo requests that reached namespace `n` (its `IcmpInEchos`): to tell a packet dropped
/// on the way from one that arrived and could not be answered.
pub fn echoes_in(n: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", n, "nstat", "-az", "IcmpInEchos"])
        .output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("IcmpInEchos")).then(|| w.next()?.parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// Runs `f` while the customer's router sends `to` into `pop`'s public connection
/// whatever the cloud announces (as a mistaken or malicious customer would): what the
/// edge must refuse.
pub fn through_public<T>(pop: Pop, to: &str, f: impl FnOnce() -> T) -> Result<T> {
    let via = pop.public_peering(1);
    ns(NS_SITE, &["route", "replace", to, "via", &via])?;
    let r = f();
    ns(NS_SITE, &["route", "del", to, "via", &via])?;
    Ok(r)
}

/// Echo replies to 3 pings from namespace `n`, source `from`, to `to`.
pub fn pings_answered(n: &str, from: &str, to: &str) -> u32 {
    crate::ping_src(n, Some(from), to).map_or(0, |(replies, _, _)| replies)
}

/// What the demo shows: the fetch over the public connection, and the same request
/// toward the VPC VM refused.
pub(crate) fn demo() -> Result<()> {
    let body = fetch(
        NS_HOST,
        PUBLIC_HOST,
        OBJECT_STORAGE_HOST,
        Duration::from_secs(3),
    )?;
    say(&format!(
        "      ✓ on-prem server {PUBLIC_HOST} → Object Storage http://{OBJECT_STORAGE_HOST}/ over the public connection: {}",
        body.trim()
    ));
    // The customer's router sends the registry's prefix into the public connection too,
    // though the cloud does not announce it there.
    let before = echoes_at_services();
    let (fetched, answered) = through_public(Pop(1), REGISTRY_PREFIX, || {
        (
            fetch(NS_HOST, PUBLIC_HOST, REGISTRY_HOST, Duration::from_secs(2)),
            pings_answered(NS_HOST, PUBLIC_HOST, REGISTRY_HOST),
        )
    })?;
    let arrived = echoes_at_services() - before;
    match fetched {
        Err(_) if answered == 0 && arrived == 0 => say(&format!(
            "      ✓ on-prem server {PUBLIC_HOST} → Container Registry http://{REGISTRY_HOST}/ refused at the edge: not a service this connection allows (0/3 pings, none reached the services)"
        )),
        other => bail!(
            "the registry, not allowed, was reached: {other:?}, {answered} pings answered, {arrived} arrived"
        ),
    }
    // The customer's router sends the VM's address into the public connection anyway.
    let vm = crate::VM;
    let before = echoes_in(crate::NS_VM);
    let answered = through_public(Pop(1), &format!("{vm}/32"), || {
        pings_answered(NS_HOST, PUBLIC_HOST, vm)
    })?;
    let arrived = echoes_in(crate::NS_VM) - before;
    if answered > 0 || arrived > 0 {
        bail!(
            "the VPC VM was reached over a public connection ({answered} replies, {arrived} echoes arrived)"
        );
    }
    say(&format!(
        "      ✓ on-prem server {PUBLIC_HOST} → cloud VM {vm} over the public connection refused at the edge: 0/3 replies, none reached the VPC"
    ));
    Ok(())
}
