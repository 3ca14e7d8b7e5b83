//! `cic lab`: DESIGN.md's picture in network namespaces on one machine, with two PoPs
//! (or one, `--pops 1`).
//!
//! ```text
//!                            ══ xc 100.64.1.0/30 ══ cicl-pop1 ══ 100.64.255.0/30 ══
//!  cicl-host ── cicl-site                            (cic edge)                      cicl-fabric ── cicl-vm
//!  on-prem      customer     ══ xc 100.64.2.0/30 ══ cicl-pop2 ══ 100.64.254.0/30 ══  cloud fabric   cloud VM
//!  server       router (BIRD,                        (cic edge)                       router (BIRD,  10.128.0.10
//!  192.168.10.10 AS 65001,   VLAN 100 at pop1: 169.254.100.0/30 peering           AS 200350,
//!               BFD, ECMP)   VLAN 200 at pop2: 169.254.200.0/30 peering           BFD, ECMP)
//!                            (each a VXLAN VNI over its cross-connect)
//!                            cicl-popN-<ri>: the routing instance's namespace, made by
//!                            cic edge, with a VXLAN segment to the fabric
//! ```
//!
//! The server and the edges are the real `cic` processes; the customer router and the
//! fabric router are BIRD. The customer's steps go through the `cic` CLI, printed as run.
//! Both PoPs carry traffic (ECMP on both routers); BFD at 300 ms × 3 on every session.

pub mod fabric;
pub mod public;
pub mod public_failover;

mod api;
pub mod bench;
mod bird;

pub mod cpu;
pub mod failover;
pub mod kmem;
pub mod scale;
mod topology;

pub use bird::Standby;
use bird::*;
use topology::*;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cic_model::edge::Family;
use cic_peers::{Bird, wait_until};
use serde_json::Value;

pub const PREFIX: &str = "cicl-";
pub const STATE_DIR: &str = "/run/cic-lab";
const NS_HOST: &str = "cicl-host";
const NS_SITE: &str = "cicl-site";
const NS_FABRIC: &str = "cicl-fabric";
const NS_VM: &str = "cicl-vm";
const FOLDER: &str = "lab-folder";
const CLOUD_ASN: u32 = 200_350;
const CUSTOMER_ASN: u32 = 65_001;
const ONPREM_HOST: &str = "192.168.10.10";
const VM: &str = "10.128.0.10";
/// The same hosts' IPv6 (unique local) addresses: the lab is dual stack.
const ONPREM_HOST6: &str = "fd10:168:10::10";
const VM6: &str = "fd80:128::10";
/// The VPC's IPv6 prefix and the on-prem LAN's.
const VPC6: &str = "fd80:128::/64";
const LAN6: &str = "fd10:168:10::/64";
const WAIT: Duration = Duration::from_secs(60);

/// The numbers of PoP `n` (1 or 2) of the lab.
#[derive(Debug, Clone, Copy)]
pub struct Pop(pub u32);

impl Pop {
    pub fn id(self) -> String {
        format!("pop{}", self.0)
    }
    /// The edge host's namespace.
    pub fn ns(self) -> String {
        format!("{PREFIX}pop{}", self.0)
    }
    /// The customer router's port of the cross-connect.
    fn site_port(self) -> String {
        format!("xc{}", self.0 - 1)
    }
    fn xc(self, host: u8) -> String {
        format!("100.64.{}.{host}", self.0)
    }
    fn fab(self, host: u8) -> String {
        format!("100.64.{}.{host}", 256 - self.0)
    }
    pub fn vlan(self) -> u32 {
        100 * self.0
    }
    /// The customer's interface of the private connection at this PoP.
    pub fn customer_if(self) -> String {
        format!("vl{}", self.vlan())
    }
    fn peering(self, host: u8) -> String {
        format!("169.254.{}.{host}", self.vlan())
    }
    /// The IPv6 peering: a /126 of unique local space per VLAN.
    fn peering6(self, host: u8) -> String {
        format!("fd00:a9fe:{}::{host}", self.vlan())
    }
}

fn pops(n: u32) -> Vec<Pop> {
    (1..=n).map(Pop).collect()
}

/// What `up` made, for `demo` and for people.
pub struct LabInfo {
    pub server: String,
    pub connection_id: String,
    site_bird: PathBuf,
    fabric_bird: PathBuf,
}

fn say(s: &str) {
    println!("{s}");
    let _ = std::io::stdout().flush();
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ns(n: &str, args: &[&str]) -> Result<()> {
    let mut a = vec!["-n", n];
    a.extend_from_slice(args);
    ip(&a)
}

fn sysctl(n: &str, key: &str, val: &str) -> Result<()> {
    cic_dataplane::netns::sysctl(Some(n), key, val).map_err(|e| anyhow!("{e}"))
}

/// The lab's customer, from what `up` left (lab.json and the tokens): for the commands
/// that change a running lab.
pub(crate) fn lab_cli() -> Result<Cli> {
    let info: Value = serde_json::from_str(&fs::read_to_string(format!("{STATE_DIR}/lab.json"))?)?;
    Ok(Cli {
        bin: std::env::current_exe()?,
        server: info["server"]
            .as_str()
            .context("server in lab.json")?
            .to_string(),
        token: fs::read_to_string(format!("{STATE_DIR}/customer-token"))?
            .trim()
            .to_string(),
    })
}

/// A process of the lab, recorded so `down` can stop it.
pub(crate) fn record_pid(dir: &Path, name: &str, pid: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pids"))?;
    writeln!(f, "{name} {pid}")?;
    Ok(())
}

/// The log levels of the lab's server, edges and fabric automation: `CIC_LAB_LOG` when
/// set (`info,cic_edge=debug,cic_server=debug` shows where each sync round's time goes),
/// else `info`.
fn daemon_log() -> String {
    std::env::var("CIC_LAB_LOG").unwrap_or_else(|_| "info".into())
}

fn spawn(dir: &Path, name: &str, bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<u32> {
    let log = fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().with_context(|| format!("start {name}"))?;
    let pid = child.id();
    record_pid(dir, name, pid)?;
    // Not waited for here: `down` stops it by pid; the `Child` handle is just dropped.
    drop(child);
    Ok(pid)
}

/// The lab's CA certificate (made by `cic pki init` when the lab comes up).
pub const CA_CERT: &str = "/run/cic-lab/pki/ca.crt";

/// An HTTP client of the lab's server, trusting the lab's CA.
pub fn lab_client(server: &str, ca: &str) -> Result<reqwest::Client> {
    let tls = cic_client::tls::ClientTls {
        ca_cert: Some(ca.into()),
        identity: None,
        insecure_http: false,
    };
    Ok(cic_client::tls::http_client(
        server,
        &tls,
        reqwest::Client::builder(),
    )?)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn random_token() -> Result<String> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact_into(&mut b)?;
    Ok(format!(
        "cic-lab-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

trait ReadExact {
    fn read_exact_into(&mut self, b: &mut [u8]) -> std::io::Result<()>;
}
impl ReadExact for fs::File {
    fn read_exact_into(&mut self, b: &mut [u8]) -> std::io::Result<()> {
        std::io::Read::read_exact(self, b)
    }
}

pub(crate) struct Cli {
    bin: PathBuf,
    server: String,
    token: String,
}

impl Cli {
    /// Runs `cic ARGS --json`, printing the command as a person would type it.
    fn run(&self, show: bool, args: &[&str]) -> Result<Value> {
        if show {
            let quoted: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.contains(|c: char| c.is_whitespace() || c == ',') {
                        format!("'{a}'")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            say(&format!("      $ cic {}", quoted.join(" ")));
        }
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--json", "--server", &self.server])
            .env("CIC_TOKEN", &self.token)
            .env("CIC_CA_CERT", CA_CERT)
            .output()
            .context("run cic")?;
        if !out.status.success() {
            bail!(
                "cic {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("cic {}: output is not JSON", args.join(" ")))
    }
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed()))
}

/// What the lab made at one PoP.
struct PopMade {
    pop: Pop,
    edge_id: String,
    edge_metrics: String,
    trunk: String,
    connection: String,
}

fn id_of(op: &Value, what: &str) -> Result<String> {
    op["metadata"]["resourceId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no {what} id in {op}"))
}

/// Builds the lab with `n_pops` PoPs (1 or 2) and runs the customer's steps; everything
/// stays up.
pub async fn up(n_pops: u32) -> Result<LabInfo> {
    up_with(n_pops, &[]).await
}

/// [`up`], with more arguments for `cic server` (quotas, as a rule).
pub async fn up_with(n_pops: u32, server_args: &[&str]) -> Result<LabInfo> {
    up_opts(n_pops, server_args, false, LAB_REPORT_EVERY).await
}

/// How often the lab's edges report, in seconds: every second, so that tests see a
/// session's state through the API soon (`cic edge`'s own default is 5).
pub const LAB_REPORT_EVERY: u64 = 1;

/// [`up_with`]; with `public`, the public services too ([`public`]): their namespace and
/// routers, the PoPs' public-services network, a public connection at each PoP. The edges
/// report every `report_every` seconds.
pub async fn up_opts(
    n_pops: u32,
    server_args: &[&str],
    public: bool,
    report_every: u64,
) -> Result<LabInfo> {
    let report_every = report_every.to_string();
    if !(1..=2).contains(&n_pops) {
        bail!("--pops {n_pops}: the lab has 1 or 2 PoPs");
    }
    check_prerequisites()?;
    if Path::new(STATE_DIR).exists()
        || !cic_dataplane::netns::list(PREFIX)
            .unwrap_or_default()
            .is_empty()
    {
        say("A previous lab is still here; removing it first.");
        down()?;
    }
    let dir = PathBuf::from(STATE_DIR);
    fs::create_dir_all(&dir)?;
    let bin = std::env::current_exe()?;
    let started = Instant::now();
    let pop_list = pops(n_pops);

    say(&format!(
        "[1/8] Building the lab in network namespaces ({n_pops} PoP{})",
        if n_pops > 1 { "s" } else { "" }
    ));
    build_topology(&pop_list)?;
    if public {
        public::build(&pop_list, &dir, &bin)?;
    }
    say("      on-prem server 192.168.10.10 ─ customer router (BIRD, AS 65001) ═ cross-connect ═");
    for p in &pop_list {
        say(&format!(
            "      PoP {} edge (cic edge) ═ cloud fabric router (BIRD, AS 200350) ─ cloud VM 10.128.0.10",
            p.id()
        ));
    }

    let port = free_port()?;
    let server = format!("https://127.0.0.1:{port}");
    let token = random_token()?;
    // The lab runs what an operator deploys: TLS, and edges known by their certificates,
    // from a CA of its own.
    let pki = format!("{STATE_DIR}/pki");
    let out = Command::new(&bin)
        .args([
            "pki",
            "init",
            "--dir",
            &pki,
            "--name",
            "127.0.0.1",
            "--days",
            "30",
        ])
        .output()
        .context("cic pki init")?;
    if !out.status.success() {
        bail!(
            "cic pki init: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let ca = format!("{pki}/ca.crt");
    say(&format!(
        "[2/8] Starting cic server on {server} (TLS; edges by certificate; CA {ca}; SQLite {STATE_DIR}/cic.db)"
    ));
    let db = format!("sqlite://{STATE_DIR}/cic.db");
    let listen = format!("127.0.0.1:{port}");
    let (cert, key, ca_key) = (
        format!("{pki}/server.crt"),
        format!("{pki}/server.key"),
        format!("{pki}/ca.key"),
    );
    let polls = api::LONG_POLLS.to_string();
    let mut args = vec![
        "server",
        "--listen",
        &listen,
        "--max-long-polls",
        &polls,
        "--database",
        &db,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &ca,
        "--client-ca-key",
        &ca_key,
    ];
    args.extend_from_slice(server_args);
    if public {
        args.extend(["--treat-as-public", public::LAB_PUBLIC_SPACE]);
    }
    spawn(
        &dir,
        "server",
        &bin,
        &args,
        &[("CIC_ADMIN_TOKEN", &token), ("RUST_LOG", &daemon_log())],
    )?;
    fs::write(dir.join("server"), &server)?;
    fs::write(dir.join("admin-token"), &token)?;
    let http = lab_client(&server, &ca)?;
    let health = format!("{server}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http
            .get(&health)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("cic server did not answer on {server}; see {STATE_DIR}/server.log");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cli = Cli {
        bin: bin.clone(),
        server: server.clone(),
        token: token.clone(),
    };

    say("[3/8] Operator: the points of presence, their edge routers, the cloud fabric");
    let mut edges = Vec::new();
    for p in &pop_list {
        let (id, pns) = (p.id(), p.ns());
        cli.run(
            true,
            &[
                "pop",
                "create",
                "--id",
                &id,
                "--name",
                &format!("PoP {}", p.0),
                "--address",
                &format!("lab, network namespace {pns}"),
            ],
        )?;
        let reg = cli.run(
            true,
            &[
                "edge-router",
                "create",
                "--name",
                &format!("{id}-edge1"),
                "--pop",
                &id,
                "--router-id",
                &format!("10.255.0.{}", p.0),
                "--fabric-remote-vtep",
                &p.fab(2),
                "--fabric-local-vtep",
                &p.fab(1),
                "--fabric-port",
                "fab0",
                "--fabric-transit-pool",
                // A /19 each: 4,096 /31s, room for the scale benchmark's instances.
                &format!("100.127.{}.0/19", (p.0 - 1) * 32),
                "--fabric-vni-base",
                &(100_000 * p.0).to_string(),
                "--certificate-out",
                &format!("{STATE_DIR}/edge-{id}-pki"),
            ],
        )?;
        // The edge's certificate is in --certificate-out; its token (shown once) is not
        // needed: the server takes edges by certificate.
        if reg["credentials"]["serialNumber"].as_str().is_none() {
            bail!("no certificate issued for the edge of {id}: {reg}");
        }
        let edge_id = reg["edge"]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no edge id"))?
            .to_string();
        edges.push((*p, edge_id));
    }
    // The customer is a tenant: its own folder, an editor there, and nothing else.
    cli.run(
        true,
        &["folder", "create", "--id", FOLDER, "--name", "customer"],
    )?;
    cli.run(
        true,
        &[
            "folder",
            "add-access-binding",
            FOLDER,
            "--role",
            "editor",
            "--subject",
            "customer",
        ],
    )?;
    let key = cli.run(true, &["api-key", "create", "--subject", "customer"])?;
    let customer_token = key["secret"]
        .as_str()
        .ok_or_else(|| anyhow!("no API key secret in {key}"))?
        .to_string();
    fs::write(dir.join("customer-token"), &customer_token)?;
    let customer = Cli {
        bin: bin.clone(),
        server: server.clone(),
        token: customer_token,
    };
    let mut metrics_of = Vec::new();
    for (p, edge_id) in &edges {
        let edge_metrics = format!("127.0.0.1:{}", free_port()?);
        let (pns, prefix) = (p.ns(), format!("{}-", p.ns()));
        spawn(
            &dir,
            &format!("edge-{}", p.id()),
            &bin,
            &[
                "edge",
                "--server",
                &server,
                "--netns",
                &pns,
                "--netns-prefix",
                &prefix,
                "--report-every",
                &report_every,
                "--metrics-listen",
                &edge_metrics,
                "--state-dir",
                &format!("{STATE_DIR}/edge-{}", p.id()),
                "--tls-cert",
                &format!("{STATE_DIR}/edge-{}-pki/edge.crt", p.id()),
                "--tls-key",
                &format!("{STATE_DIR}/edge-{}-pki/edge.key", p.id()),
            ],
            &[("CIC_CA_CERT", &ca), ("RUST_LOG", &daemon_log())],
        )?;
        spawn(
            &dir,
            &format!("fabric-automation-{}", p.id()),
            &bin,
            &[
                "lab",
                "fabric",
                "--server",
                &server,
                "--edge-id",
                edge_id,
                "--netns",
                NS_FABRIC,
                "--underlay-dev",
                &p.id(),
            ],
            &[
                ("CIC_TOKEN", &token),
                ("CIC_CA_CERT", &ca),
                ("RUST_LOG", &daemon_log()),
            ],
        )?;
        metrics_of.push(edge_metrics);
    }
    let services_sock = if public {
        say(
            "      Operator: the public services (Object Storage, Container Registry) and each PoP's public-services network",
        );
        Some(public::operator(&cli, &edges, &dir, &bin, &ca)?)
    } else {
        None
    };
    let fabric = Bird::start("fabric", &fabric_bird_conf(), Some(NS_FABRIC), Some(&dir))?;
    let fabric_sock = fabric.socket();
    if let Some(pid) = fabric.detach() {
        record_pid(&dir, "bird-fabric", pid)?;
    }
    // The customer's router starts with its own part only (its LAN, its kernel); the
    // BGP part comes from cic once the connections exist (step 7).
    let site = Bird::start("site", &site_preamble(), Some(NS_SITE), Some(&dir))?;
    let site_sock = site.socket();
    if let Some(pid) = site.detach() {
        record_pid(&dir, "bird-site", pid)?;
    }
    say("      cic edge started at each PoP; customer router and fabric router (BIRD) started");

    // The customer's steps, as they would type them (the CLI's modelled names).
    say("[4/8] Customer: a trunk at each PoP (a VXLAN overlay trunk: this kernel has no 802.1Q)");
    let mut trunks = Vec::new();
    let mut trunk_of = Vec::new();
    for (p, _) in &edges {
        let (op, took) = timed(|| {
            customer.run(
                true,
                &[
                    "trunk-connection",
                    "create",
                    "--folder-id",
                    FOLDER,
                    "--name",
                    &format!("site1-{}", p.id()),
                    "--point-of-presence-id",
                    &p.id(),
                    "--capacity",
                    "1g",
                    "--overlay-remote-vtep",
                    &p.xc(2),
                    "--port",
                    "xc-site1",
                ],
            )
        })?;
        let trunk = id_of(&op, "trunk")?;
        say(&format!(
            "      ✓ trunk {trunk} at {} ACTIVE, applied by the edge in {:.2} s",
            p.id(),
            took.as_secs_f64()
        ));
        trunk_of.push((*p, trunk.clone()));
        trunks.push(trunk);
    }
    say(
        "[5/8] Customer: a private connection on each trunk, dual stack: a BGP session per family, AS 65001 ↔ 200350",
    );
    let mut made: Vec<PopMade> = Vec::new();
    for (((p, edge_id), edge_metrics), trunk) in edges.iter().zip(metrics_of).zip(trunks) {
        let subnet = format!("169.254.{}.0/30", p.vlan());
        let peering = format!(
            "peering-subnet={subnet},peer-ip={},cloud-ip={},peer-bgp-asn=65001",
            p.peering(2),
            p.peering(1)
        );
        let subnet6 = format!("fd00:a9fe:{}::/126", p.vlan());
        let peering6 = format!(
            "peering-subnet={subnet6},peer-ip={},cloud-ip={},peer-bgp-asn=65001",
            p.peering6(2),
            p.peering6(1)
        );
        let (op, took) = timed(|| {
            customer.run(
                true,
                &[
                    "private-connection",
                    "create",
                    "--folder-id",
                    FOLDER,
                    "--name",
                    &format!("site1-vlan{}", p.vlan()),
                    "--trunk-id",
                    &trunk,
                    "--vlan-id",
                    &p.vlan().to_string(),
                    "--ipv4-peering",
                    &peering,
                    "--ipv6-peering",
                    &peering6,
                ],
            )
        })?;
        let connection = id_of(&op, "connection")?;
        say(&format!(
            "      ✓ private connection {connection} at {} (VLAN {}, {subnet} and {subnet6}) ACTIVE in {:.2} s",
            p.id(),
            p.vlan(),
            took.as_secs_f64()
        ));
        made.push(PopMade {
            pop: *p,
            edge_id: edge_id.clone(),
            edge_metrics,
            trunk,
            connection,
        });
    }

    say(&format!(
        "[6/8] Customer: a routing instance joining them to VPC vpc-demo (10.128.0.0/24, {VPC6})"
    ));
    let zone6 = format!("zone-a={VPC6}");
    let mut args = vec![
        "routing-instance",
        "create",
        "--folder-id",
        FOLDER,
        "--name",
        "demo-router",
        "--vpc",
        "vpc-demo",
        "--prefix",
        "zone-a=10.128.0.0/24",
        "--prefix",
        &zone6,
    ];
    for m in &made {
        args.extend(["--connection", m.connection.as_str()]);
    }
    let (op, took) = timed(|| customer.run(true, &args))?;
    let ri = id_of(&op, "routing instance")?;
    say(&format!(
        "      ✓ routing instance {ri} ACTIVE in {:.2} s",
        took.as_secs_f64()
    ));

    let public_ids = if public {
        say(&format!(
            "      Operator: a public connection on each trunk for the customer, {} registered",
            public::PUBLIC_PREFIX
        ));
        let ids = public::connections(&cli, &trunk_of)?;
        fs::write(public::site_conf_path(), public::site_conf(&pop_list))?;
        ids
    } else {
        vec![]
    };

    say("[7/8] Customer: the router configured from the configuration cic generates for it");
    let lines = configure_site(&customer, true, &ri, None, &site_sock)?;
    say(&format!(
        "      ✓ the customer's BIRD runs cic's generated config ({lines} lines: BFD, 2 sessions per PoP, filters)"
    ));

    say("[8/8] Waiting for BGP, BFD and routes");
    let t = Instant::now();
    let mut last = Value::Null;
    for m in &made {
        last = wait_until(
            WAIT,
            &format!("both BGP sessions at {} to be ESTABLISHED", m.pop.id()),
            || {
                let v = customer
                    .run(false, &["private-connection", "get", &m.connection])
                    .ok()?;
                (v["bgp"]["state"] == "ESTABLISHED" && v["bgpIpv6"]["state"] == "ESTABLISHED")
                    .then_some(v)
            },
        )
        .map_err(|e| anyhow!("{e}; see {STATE_DIR}/edge-{}.log", m.pop.id()))?;
    }
    say(&format!(
        "      ✓ BGP with the customer router ESTABLISHED at every PoP, IPv4 and IPv6, after {:.2} s (seen through the API)",
        t.elapsed().as_secs_f64()
    ));
    let site_bird = BirdCtl(site_sock.clone());
    let fabric_bird = BirdCtl(fabric_sock.clone());
    wait_until(WAIT, "the customer router to learn 10.128.0.0/24", || {
        site_bird
            .route("10.128.0.0/24")
            .filter(|r| r.contains("200350"))
    })
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(WAIT, "the fabric to learn 192.168.10.0/24", || {
        fabric_bird.route("192.168.10.0/24")
    })
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(
        WAIT,
        &format!("the customer router to learn {VPC6}"),
        || site_bird.route(VPC6).filter(|r| r.contains("200350")),
    )
    .map_err(|e| anyhow!("{e}"))?;
    wait_until(WAIT, &format!("the fabric to learn {LAN6}"), || {
        fabric_bird.route(LAN6)
    })
    .map_err(|e| anyhow!("{e}"))?;
    // Each router's kernel uses every PoP: as many next hops as PoPs (ECMP).
    for (n, prefix) in [
        (NS_SITE, "10.128.0.0/24"),
        (NS_FABRIC, "192.168.10.0/24"),
        (NS_SITE, VPC6),
        (NS_FABRIC, LAN6),
    ] {
        wait_until(WAIT, &format!("{prefix} over every PoP in {n}"), || {
            (kernel_next_hops(n, prefix) >= made.len()).then_some(())
        })
        .map_err(|e| anyhow!("{e}"))?;
    }
    // The edges report every second: wait until the API shows what the routers show.
    for m in &made {
        last = wait_until(
            WAIT,
            &format!("the edge at {} to report prefixes and BFD Up", m.pop.id()),
            || {
                let v = customer
                    .run(false, &["private-connection", "get", &m.connection])
                    .ok()?;
                let ok = |b: &Value| {
                    b["prefixesAccepted"].as_u64() >= Some(1)
                        && b["prefixesAdvertised"].as_u64() >= Some(1)
                        && b["bfd"]["state"] == "UP"
                };
                (ok(&v["bgp"]) && ok(&v["bgpIpv6"])).then_some(v)
            },
        )
        .unwrap_or(last);
    }
    say(&format!(
        "      ✓ customer router learned 10.128.0.0/24 and {VPC6} from AS 200350 via {} PoP(s); cloud fabric learned 192.168.10.0/24 and {LAN6} via the edges",
        made.len()
    ));
    for (family, b) in [("IPv4", &last["bgp"]), ("IPv6", &last["bgpIpv6"])] {
        say(&format!(
            "      ✓ {family} session: prefixes received {} / accepted {} / advertised {}; BFD {} (detection {} ms)",
            b["prefixesReceived"],
            b["prefixesAccepted"],
            b["prefixesAdvertised"],
            b["bfd"]["state"],
            b["bfd"]["detectionTimeMs"]
        ));
    }
    if public {
        public::wait_up(&customer, &public_ids, &pop_list)?;
        say(&format!(
            "      ✓ public connections ESTABLISHED at every PoP: the customer router learned {} (Object Storage) from each; each PoP's services routers learned {} over their own PoP",
            public::OBJECT_STORAGE_PREFIX,
            public::PUBLIC_PREFIX
        ));
    }
    say(&format!(
        "      lab is up after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let first = &made[0];
    let pops_json: Vec<Value> = made
        .iter()
        .map(|m| {
            serde_json::json!({
                "pop": m.pop.id(), "edgeId": m.edge_id, "namespace": m.pop.ns(),
                "edgeMetrics": format!("http://{}/metrics", m.edge_metrics),
                "trunkConnectionId": m.trunk, "privateConnectionId": m.connection,
                "vlan": m.pop.vlan(), "customerInterface": m.pop.customer_if(),
                "customerBgpProtocol": customer_protocol(&m.connection, Family::Ipv4),
                "customerBgpProtocol6": customer_protocol(&m.connection, Family::Ipv6),
                "crossConnect": {"namespace": m.pop.ns(), "port": "xc-site1"},
            })
        })
        .collect();
    let info = serde_json::json!({
        "server": server, "caCert": CA_CERT, "adminTokenFile": format!("{STATE_DIR}/admin-token"),
        "customerTokenFile": format!("{STATE_DIR}/customer-token"), "folderId": FOLDER,
        "routingInstanceId": ri,
        // PoP 1's, for scripts written for a one-PoP lab.
        "trunkConnectionId": first.trunk, "privateConnectionId": first.connection, "edgeId": first.edge_id,
        "edgeMetrics": format!("http://{}/metrics", first.edge_metrics),
        "pops": pops_json,
        "namespaces": {"onpremHost": NS_HOST, "customerRouter": NS_SITE, "edge": first.pop.ns(), "fabric": NS_FABRIC, "vm": NS_VM},
        "bird": {"customer": site_sock, "fabric": fabric_sock, "services": services_sock},
        "public": public.then(|| serde_json::json!({
            "publicConnectionIds": public_ids,
            "namespaces": pop_list.iter().map(|p| public::services_ns(p.0)).collect::<Vec<_>>(),
            "allowedService": {"id": public::OBJECT_STORAGE, "prefix": public::OBJECT_STORAGE_PREFIX, "http": public::OBJECT_STORAGE_HOST},
            "otherService": {"id": public::REGISTRY, "prefix": public::REGISTRY_PREFIX, "http": public::REGISTRY_HOST},
            "customerPrefix": public::PUBLIC_PREFIX, "onpremPublicAddress": public::PUBLIC_HOST,
        })),
    });
    fs::write(dir.join("lab.json"), serde_json::to_string_pretty(&info)?)?;
    Ok(LabInfo {
        server,
        connection_id: first.connection.clone(),
        site_bird: site_sock,
        fabric_bird: fabric_sock,
    })
}

/// How many next hops the kernel of namespace `n` has for `prefix` (0 without a route).
pub fn kernel_next_hops(n: &str, prefix: &str) -> usize {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let Ok(out) = Command::new("ip")
        .args(["-n", n, "-j", family, "route", "show", prefix])
        .output()
    else {
        return 0;
    };
    let routes: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    routes
        .iter()
        .map(|r| match r["nexthops"].as_array() {
            Some(h) => h.len(),
            None => usize::from(r.get("gateway").is_some() || r.get("dev").is_some()),
        })
        .sum()
}

pub(crate) struct BirdCtl(pub(crate) PathBuf);

impl BirdCtl {
    /// `birdc -s SOCKET COMMAND…`: what BIRD answered (its exit status says nothing: it is
    /// 0 for an error too).
    pub(crate) fn ask(&self, command: &[&str]) -> std::io::Result<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.0)
            .args(command)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `show protocols all NAME` (empty when BIRD does not answer).
    pub(crate) fn protocol(&self, name: &str) -> String {
        self.ask(&["show", "protocols", "all", name])
            .unwrap_or_default()
    }

    /// Networks in BIRD's main table (`show route count`).
    pub(crate) fn count_routes(&self) -> usize {
        let out = self.ask(&["show", "route", "count"]).unwrap_or_default();
        // "1234 of 1234 routes for 1234 networks in table master4"
        out.split(" for ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn route(&self, prefix: &str) -> Option<String> {
        let s = self.ask(&["show", "route", prefix, "all"]).ok()?;
        s.lines().any(|l| l.starts_with(prefix)).then_some(s)
    }
}

/// Pings `to` from namespace `from`; Ok((received, sent, avg rtt ms)).
fn ping(from: &str, to: &str) -> Result<(u32, u32, String)> {
    ping_src(from, None, to)
}

/// 3 pings from namespace `from` (from address `src`, when given) to `to`: replies,
/// sent, average round trip.
pub(crate) fn ping_src(from: &str, src: Option<&str>, to: &str) -> Result<(u32, u32, String)> {
    let mut args = vec![
        "netns", "exec", from, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2",
    ];
    if let Some(s) = src {
        args.extend(["-I", s]);
    }
    args.push(to);
    let out = Command::new("ip").args(&args).output()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let stats = s
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let num = |key: &str| -> u32 {
        stats
            .split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let rtt = s
        .lines()
        .find(|l| l.starts_with("rtt"))
        .and_then(|l| l.split('/').nth(4))
        .map(|v| format!("{v} ms"))
        .unwrap_or("-".into());
    Ok((num("received"), num("transmitted"), rtt))
}

/// `cic lab up`: build, run the customer's steps, and say how to look around.
pub async fn up_and_explain(n_pops: u32, server_args: &[String], public: bool) -> Result<()> {
    let args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let info = up_opts(n_pops, &args, public, LAB_REPORT_EVERY).await?;
    if public {
        say(&format!(
            r#"
Public services:
  ip netns exec {NS_HOST} curl --interface {h} http://{s}/   # Object Storage over the public connection
  ip netns exec {NS_HOST} ping -I {h} {s}"#,
            h = public::PUBLIC_HOST,
            s = public::OBJECT_STORAGE_HOST,
        ));
    }
    say(&format!(
        r#"
The lab stays up. Try:
  ip netns exec {NS_HOST} ping {VM}        # on-prem server → cloud VM
  ip netns exec {NS_VM} ping {ONPREM_HOST}      # and back
  ip netns exec {NS_HOST} ping {VM6}      # the same over IPv6
  export CIC_SERVER={server} CIC_TOKEN=$(cat {STATE_DIR}/customer-token) CIC_FOLDER={FOLDER}
  cic connection get {pc}         # BGP state, prefix counts (as the customer)
  CIC_TOKEN=$(cat {STATE_DIR}/admin-token) cic edge-router list   # the operator's view
  birdc -s {site} show route     # the customer router's view
  ip netns list | grep cicl-                     # every namespace of the lab
What was made: {STATE_DIR}/lab.json; logs: {STATE_DIR}/*.log
Remove it all with: cic lab down"#,
        server = info.server,
        pc = info.connection_id,
        site = info.site_bird.display(),
    ));
    Ok(())
}

/// Up, ping both ways, down. Ok only if both directions answer.
/// `keep`: leave the lab up after a demo that worked, with the console's address and a
/// key to sign in with.
pub async fn demo(n_pops: u32, public: bool, keep: bool) -> Result<()> {
    say(
        "cic lab demo: a customer's on-prem server reaches a cloud VM through cic, every part real\n",
    );
    let result = async {
        let info = up_opts(n_pops, &[], public, LAB_REPORT_EVERY).await?;
        say(&format!(
            "      console: {}/console/ (cic lab demo --keep leaves it up to look at)",
            info.server.trim_end_matches('/')
        ));
        say("\nTraffic:");
        let (r1, s1, rtt1) = ping(NS_HOST, VM)?;
        say(&format!(
            "      on-prem server {ONPREM_HOST} → cloud VM {VM}: {r1}/{s1} replies, avg rtt {rtt1}"
        ));
        let (r2, s2, rtt2) = ping(NS_VM, ONPREM_HOST)?;
        say(&format!(
            "      cloud VM {VM} → on-prem server {ONPREM_HOST}: {r2}/{s2} replies, avg rtt {rtt2}"
        ));
        let (r3, s3, rtt3) = ping(NS_HOST, VM6)?;
        say(&format!(
            "      on-prem server {ONPREM_HOST6} → cloud VM {VM6}: {r3}/{s3} replies, avg rtt {rtt3}"
        ));
        let (r4, s4, rtt4) = ping(NS_VM, ONPREM_HOST6)?;
        say(&format!(
            "      cloud VM {VM6} → on-prem server {ONPREM_HOST6}: {r4}/{s4} replies, avg rtt {rtt4}"
        ));
        if r1 == 0 || r2 == 0 || r3 == 0 || r4 == 0 {
            let path = keep_logs();
            bail!(
                "ping failed (IPv4 {r1}/{s1} and {r2}/{s2}, IPv6 {r3}/{s3} and {r4}/{s4}); logs kept in {}; BIRD: {} {}",
                path.display(),
                info.site_bird.display(),
                info.fabric_bird.display()
            );
        }
        if public {
            say("\nPublic services:");
            public::demo()?;
        }
        Ok(info)
    }
    .await;
    if let Err(e) = &result {
        let path = keep_logs();
        say(&format!(
            "\nDemo FAILED: {e:#}\n(logs kept in {})",
            path.display()
        ));
    }
    if keep && let Ok(info) = &result {
        let key = fs::read_to_string(format!("{STATE_DIR}/customer-token")).unwrap_or_default();
        say(&format!(
            "\nThe lab stays up (--keep). The console: {}/console/\n      \
             sign in as the customer with its API key: {}\n      \
             or as the operator with the token in {STATE_DIR}/admin-token\n      \
             (the server's certificate is the lab's own CA's, {CA_CERT}; from another \
             machine: ssh -L PORT:127.0.0.1:PORT this-machine)\n\
             Take it down with: cic lab down",
            info.server.trim_end_matches('/'),
            key.trim()
        ));
        return Ok(());
    }
    say("\nTearing the lab down");
    down()?;
    if result.is_ok() {
        say(
            "Demo succeeded: IPv4 and IPv6 connectivity both ways through private connections set up in seconds.",
        );
        if public {
            say(
                "Public connections reached the allowed service, and nothing else, from the registered address.",
            );
        }
    }
    result.map(|_| ())
}

/// Copies the lab's logs somewhere `down` does not remove.
fn keep_logs() -> PathBuf {
    let to = PathBuf::from(format!("/tmp/cic-lab-logs-{}", std::process::id()));
    let _ = fs::create_dir_all(&to);
    if let Ok(rd) = fs::read_dir(STATE_DIR) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let _ = fs::copy(&p, to.join(e.file_name()));
            }
            if p.is_dir()
                && let Ok(inner) = fs::read_dir(&p)
            {
                for f in inner.flatten() {
                    if f.path()
                        .extension()
                        .is_some_and(|x| x == "log" || x == "conf")
                    {
                        let _ = fs::copy(
                            f.path(),
                            to.join(format!(
                                "{}-{}",
                                e.file_name().to_string_lossy(),
                                f.file_name().to_string_lossy()
                            )),
                        );
                    }
                }
            }
        }
    }
    to
}

/// Stops every process the lab started and removes every namespace (and so every link)
/// it made, including the routing-instance namespaces the edge made. Safe to run twice.
pub fn down() -> Result<()> {
    let dir = Path::new(STATE_DIR);
    let mut pids: Vec<(String, i32)> = Vec::new();
    if let Ok(s) = fs::read_to_string(dir.join("pids")) {
        for l in s.lines() {
            if let Some((name, pid)) = l.split_once(' ')
                && let Ok(p) = pid.trim().parse()
            {
                pids.push((name.to_string(), p));
            }
        }
    }
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for (_, p) in &pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let alive = |p: i32| kill(Pid::from_raw(p), None).is_ok() && !is_zombie(p);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|(_, p)| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, p) in &pids {
        if alive(*p) {
            say(&format!("      {name} ({p}) did not stop; killing it"));
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
    let mut removed = 0;
    for n in cic_dataplane::netns::list(PREFIX).unwrap_or_default() {
        cic_dataplane::netns::del(&n).map_err(|e| anyhow!("{e}"))?;
        removed += 1;
    }
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    say(&format!(
        "      stopped {} processes, removed {removed} network namespaces",
        pids.len()
    ));
    Ok(())
}

pub(crate) fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}
