//! `cic lab`: DESIGN.md's picture in network namespaces on one machine, one PoP.
//!
//! ```text
//!  cicl-host ── cicl-site ══ cross-connect ══ cicl-pop1 ══ fabric link ══ cicl-fabric ── cicl-vm
//!  on-prem      customer     100.64.1.0/30     edge host    100.64.255.0/30  cloud fabric   cloud VM
//!  server       router                        (cic edge)                     router (BIRD,  10.128.0.10
//!  192.168.10.10 (BIRD,       VXLAN VNI 100 = VLAN 100         │             AS 200350)
//!               AS 65001)     169.254.100.0/30 peering    cicl-pop1-<ri>: the routing
//!                                                          instance's namespace, made by
//!                                                          cic edge, VXLAN to the fabric
//! ```
//!
//! The server and the edge are the real `cic` processes; the customer router and the
//! fabric router are BIRD. The customer's steps go through the `cic` CLI, printed as run.

pub mod fabric;

pub mod bench;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cic_peers::{Bird, wait_until};
use serde_json::Value;

pub const PREFIX: &str = "cicl-";
pub const STATE_DIR: &str = "/run/cic-lab";
const NS_HOST: &str = "cicl-host";
const NS_SITE: &str = "cicl-site";
const NS_POP: &str = "cicl-pop1";
const NS_FABRIC: &str = "cicl-fabric";
const NS_VM: &str = "cicl-vm";
const FOLDER: &str = "lab-folder";
const CLOUD_ASN: u32 = 200_350;
const CUSTOMER_ASN: u32 = 65_001;
const VLAN: u32 = 100;
const ONPREM_HOST: &str = "192.168.10.10";
const VM: &str = "10.128.0.10";
const WAIT: Duration = Duration::from_secs(60);

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

fn check_prerequisites() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (it makes network namespaces and links)");
    }
    for (bin, pkg) in [
        ("ip", "iproute2"),
        ("bird", "bird2"),
        ("birdc", "bird2"),
        ("ping", "iputils-ping"),
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .stdout(Stdio::null())
            .status()?
            .success();
        if !found {
            bail!("`{bin}` is missing: apt-get install {pkg}");
        }
    }
    Ok(())
}

/// Namespaces, links and addresses of the lab; the customer's and the cloud's hosts.
fn build_topology() -> Result<()> {
    for n in [NS_HOST, NS_SITE, NS_POP, NS_FABRIC, NS_VM] {
        cic_dataplane::netns::add(n).map_err(|e| anyhow!("{e}"))?;
        ns(n, &["link", "set", "lo", "up"])?;
    }
    // On-prem LAN: server ── customer router.
    ip(&[
        "link", "add", "eth0", "netns", NS_HOST, "type", "veth", "peer", "name", "lan0", "netns",
        NS_SITE,
    ])?;
    ns(
        NS_HOST,
        &["addr", "add", &format!("{ONPREM_HOST}/24"), "dev", "eth0"],
    )?;
    ns(NS_SITE, &["addr", "add", "192.168.10.1/24", "dev", "lan0"])?;
    // Cross-connect at the PoP, jumbo frames: customer router ══ edge.
    ip(&[
        "link", "add", "xc0", "netns", NS_SITE, "mtu", "9000", "type", "veth", "peer", "name",
        "xc-site1", "netns", NS_POP, "mtu", "9000",
    ])?;
    ns(NS_SITE, &["addr", "add", "100.64.1.2/30", "dev", "xc0"])?;
    ns(NS_POP, &["addr", "add", "100.64.1.1/30", "dev", "xc-site1"])?;
    // Edge ══ cloud fabric router.
    ip(&[
        "link", "add", "fab0", "netns", NS_POP, "mtu", "9000", "type", "veth", "peer", "name",
        "pop1", "netns", NS_FABRIC, "mtu", "9000",
    ])?;
    ns(NS_POP, &["addr", "add", "100.64.255.1/30", "dev", "fab0"])?;
    ns(
        NS_FABRIC,
        &["addr", "add", "100.64.255.2/30", "dev", "pop1"],
    )?;
    // Cloud VPC subnet: fabric router ── VM.
    ip(&[
        "link", "add", "vpc0", "netns", NS_FABRIC, "type", "veth", "peer", "name", "eth0", "netns",
        NS_VM,
    ])?;
    ns(NS_FABRIC, &["addr", "add", "10.128.0.1/24", "dev", "vpc0"])?;
    ns(NS_VM, &["addr", "add", &format!("{VM}/24"), "dev", "eth0"])?;
    for (n, d) in [
        (NS_HOST, "eth0"),
        (NS_SITE, "lan0"),
        (NS_SITE, "xc0"),
        (NS_POP, "xc-site1"),
        (NS_POP, "fab0"),
        (NS_FABRIC, "pop1"),
        (NS_FABRIC, "vpc0"),
        (NS_VM, "eth0"),
    ] {
        ns(n, &["link", "set", d, "up"])?;
    }
    ns(NS_HOST, &["route", "add", "default", "via", "192.168.10.1"])?;
    ns(NS_VM, &["route", "add", "default", "via", "10.128.0.1"])?;
    for n in [NS_SITE, NS_FABRIC] {
        sysctl(n, "net/ipv4/ip_forward", "1")?;
    }
    // The customer's side of private connection VLAN 100, as their engineer would set it
    // up on a router without 802.1Q here: VXLAN VNI 100 over the cross-connect.
    ns(
        NS_SITE,
        &[
            "link",
            "add",
            "vl100",
            "mtu",
            "8910",
            "type",
            "vxlan",
            "id",
            &VLAN.to_string(),
            "remote",
            "100.64.1.1",
            "dstport",
            "4789",
            "dev",
            "xc0",
        ],
    )?;
    ns(
        NS_SITE,
        &["addr", "add", "169.254.100.2/30", "dev", "vl100"],
    )?;
    ns(NS_SITE, &["link", "set", "vl100", "up"])?;
    Ok(())
}

fn site_bird_conf() -> String {
    format!(
        r#"# The customer's router (AS {CUSTOMER_ASN}) at the on-prem site.
router id 192.168.10.1;
protocol device {{}}
protocol direct lan {{ ipv4; interface "lan0"; }}
protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; }}
protocol bgp cloud {{
  description "cic private connection, VLAN {VLAN}";
  local 169.254.100.2 as {CUSTOMER_ASN};
  neighbor 169.254.100.1 as {CLOUD_ASN};
  connect retry time 2;
  ipv4 {{
    import all;
    export where proto = "lan";
  }};
}}
"#
    )
}

fn fabric_bird_conf() -> String {
    format!(
        r#"# The cloud's fabric router for the demo VPC (AS {CLOUD_ASN}, iBGP with the edges).
router id 100.64.255.2;
protocol device {{}}
protocol direct vpc {{ ipv4; interface "vpc0"; }}
protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; }}
protocol bgp edges {{
  description "routing instances of cic edges (dynamic)";
  local as {CLOUD_ASN};
  neighbor range 100.127.0.0/16 internal;
  direct;
  ipv4 {{
    import all;
    export where proto = "vpc";
    gateway direct;
  }};
}}
"#
    )
}

/// A process of the lab, recorded so `down` can stop it.
fn record_pid(dir: &Path, name: &str, pid: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pids"))?;
    writeln!(f, "{name} {pid}")?;
    Ok(())
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

struct Cli {
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

/// Builds the lab and runs the customer's steps; everything stays up.
pub async fn up() -> Result<LabInfo> {
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

    say("[1/7] Building the lab in network namespaces");
    build_topology()?;
    say("      on-prem server 192.168.10.10 ─ customer router (BIRD, AS 65001) ═ cross-connect ═");
    say(
        "      PoP pop1 edge (cic edge) ═ cloud fabric router (BIRD, AS 200350) ─ cloud VM 10.128.0.10",
    );

    let port = free_port()?;
    let server = format!("http://127.0.0.1:{port}");
    let token = random_token()?;
    say(&format!(
        "[2/7] Starting cic server on {server} (SQLite {STATE_DIR}/cic.db)"
    ));
    let db = format!("sqlite://{STATE_DIR}/cic.db");
    let listen = format!("127.0.0.1:{port}");
    spawn(
        &dir,
        "server",
        &bin,
        &["server", "--listen", &listen, "--database", &db],
        &[("CIC_ADMIN_TOKEN", &token), ("RUST_LOG", "info")],
    )?;
    fs::write(dir.join("server"), &server)?;
    fs::write(dir.join("admin-token"), &token)?;
    let http = reqwest::Client::new();
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

    say("[3/7] Operator: the point of presence, its edge router, the cloud fabric");
    cli.run(
        true,
        &[
            "pop",
            "create",
            "--id",
            "pop1",
            "--name",
            "PoP 1",
            "--address",
            "lab, network namespace cicl-pop1",
        ],
    )?;
    let reg = cli.run(
        true,
        &[
            "edge-router",
            "create",
            "--name",
            "pop1-edge1",
            "--pop",
            "pop1",
            "--router-id",
            "10.255.0.1",
            "--fabric-remote-vtep",
            "100.64.255.2",
            "--fabric-local-vtep",
            "100.64.255.1",
            "--fabric-port",
            "fab0",
            "--fabric-transit-pool",
            "100.127.0.0/24",
        ],
    )?;
    let edge_token = reg["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no edge token in {reg}"))?
        .to_string();
    let edge_id = reg["edge"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no edge id"))?
        .to_string();
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
    let edge_metrics = format!("127.0.0.1:{}", free_port()?);
    spawn(
        &dir,
        "edge-pop1",
        &bin,
        &[
            "edge",
            "--server",
            &server,
            "--netns",
            NS_POP,
            "--netns-prefix",
            "cicl-pop1-",
            "--report-every",
            "1",
            "--metrics-listen",
            &edge_metrics,
        ],
        &[("CIC_EDGE_TOKEN", &edge_token), ("RUST_LOG", "info")],
    )?;
    spawn(
        &dir,
        "fabric-automation",
        &bin,
        &[
            "lab",
            "fabric",
            "--server",
            &server,
            "--edge-id",
            &edge_id,
            "--netns",
            NS_FABRIC,
            "--underlay-dev",
            "pop1",
        ],
        &[("CIC_TOKEN", &token), ("RUST_LOG", "info")],
    )?;
    let fabric = Bird::start("fabric", &fabric_bird_conf(), Some(NS_FABRIC), Some(&dir))?;
    let fabric_sock = fabric.socket();
    if let Some(pid) = fabric.detach() {
        record_pid(&dir, "bird-fabric", pid)?;
    }
    let site = Bird::start("site", &site_bird_conf(), Some(NS_SITE), Some(&dir))?;
    let site_sock = site.socket();
    if let Some(pid) = site.detach() {
        record_pid(&dir, "bird-site", pid)?;
    }
    say("      cic edge started for pop1; customer router and fabric router (BIRD) started");

    say("[4/7] Customer: a trunk at pop1 (a VXLAN overlay trunk: this kernel has no 802.1Q)");
    let (op, took) = timed(|| {
        customer.run(
            true,
            &[
                "trunk",
                "create",
                "--folder",
                FOLDER,
                "--name",
                "site1-trunk",
                "--pop",
                "pop1",
                "--capacity",
                "1g",
                "--overlay-remote-vtep",
                "100.64.1.2",
                "--port",
                "xc-site1",
            ],
        )
    })?;
    let trunk = op["metadata"]["resourceId"]
        .as_str()
        .ok_or_else(|| anyhow!("no trunk id"))?
        .to_string();
    say(&format!(
        "      ✓ trunk {trunk} ACTIVE, applied by the edge in {:.2} s",
        took.as_secs_f64()
    ));

    say(
        "[5/7] Customer: a private connection, VLAN 100, peering 169.254.100.0/30, BGP AS 65001 ↔ 200350",
    );
    let (op, took) = timed(|| {
        customer.run(
            true,
            &[
                "connection",
                "create",
                "--folder",
                FOLDER,
                "--name",
                "site1-vlan100",
                "--trunk",
                &trunk,
                "--vlan",
                "100",
                "--subnet",
                "169.254.100.0/30",
                "--peer-ip",
                "169.254.100.2",
                "--cloud-ip",
                "169.254.100.1",
                "--peer-asn",
                "65001",
            ],
        )
    })?;
    let pc = op["metadata"]["resourceId"]
        .as_str()
        .ok_or_else(|| anyhow!("no connection id"))?
        .to_string();
    say(&format!(
        "      ✓ private connection {pc} ACTIVE in {:.2} s",
        took.as_secs_f64()
    ));

    say("[6/7] Customer: a routing instance joining it to VPC vpc-demo (10.128.0.0/24)");
    let (op, took) = timed(|| {
        customer.run(
            true,
            &[
                "routing-instance",
                "create",
                "--folder",
                FOLDER,
                "--name",
                "demo-router",
                "--vpc",
                "vpc-demo",
                "--prefix",
                "zone-a=10.128.0.0/24",
                "--connection",
                &pc,
            ],
        )
    })?;
    let ri = op["metadata"]["resourceId"]
        .as_str()
        .ok_or_else(|| anyhow!("no routing instance id"))?
        .to_string();
    say(&format!(
        "      ✓ routing instance {ri} ACTIVE in {:.2} s",
        took.as_secs_f64()
    ));

    say("[7/7] Waiting for BGP and routes");
    let t = Instant::now();
    let c = wait_until(WAIT, "the customer BGP session to be ESTABLISHED", || {
        let v = customer.run(false, &["connection", "get", &pc]).ok()?;
        (v["bgp"]["state"] == "ESTABLISHED").then_some(v)
    })
    .map_err(|e| anyhow!("{e}; see {STATE_DIR}/edge-pop1.log"))?;
    say(&format!(
        "      ✓ BGP with the customer router ESTABLISHED after {:.2} s (seen through the API)",
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
    // The edge reports every second: wait until the API shows what the routers show.
    let c = wait_until(WAIT, "the edge to report the exchanged prefixes", || {
        let v = customer.run(false, &["connection", "get", &pc]).ok()?;
        let b = &v["bgp"];
        (b["prefixesAccepted"].as_u64() >= Some(1) && b["prefixesAdvertised"].as_u64() >= Some(1))
            .then_some(v)
    })
    .unwrap_or(c);
    say(
        "      ✓ customer router learned 10.128.0.0/24 from AS 200350 via 169.254.100.1; cloud fabric learned 192.168.10.0/24 via the edge",
    );
    say(&format!(
        "      ✓ session: prefixes received {} / accepted {} / advertised {}",
        c["bgp"]["prefixesReceived"], c["bgp"]["prefixesAccepted"], c["bgp"]["prefixesAdvertised"]
    ));
    say(&format!(
        "      lab is up after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let made = serde_json::json!({
        "server": server, "adminTokenFile": format!("{STATE_DIR}/admin-token"),
        "customerTokenFile": format!("{STATE_DIR}/customer-token"), "folderId": FOLDER,
        "trunkConnectionId": trunk, "privateConnectionId": pc, "routingInstanceId": ri, "edgeId": edge_id,
        "edgeMetrics": format!("http://{edge_metrics}/metrics"),
        "namespaces": {"onpremHost": NS_HOST, "customerRouter": NS_SITE, "edge": NS_POP, "fabric": NS_FABRIC, "vm": NS_VM},
        "bird": {"customer": site_sock, "fabric": fabric_sock},
    });
    fs::write(dir.join("lab.json"), serde_json::to_string_pretty(&made)?)?;
    Ok(LabInfo {
        server,
        connection_id: pc,
        site_bird: site_sock,
        fabric_bird: fabric_sock,
    })
}

struct BirdCtl(PathBuf);

impl BirdCtl {
    fn route(&self, prefix: &str) -> Option<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.0)
            .args(["show", "route", prefix, "all"])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        s.lines().any(|l| l.starts_with(prefix)).then_some(s)
    }
}

/// Pings `to` from namespace `from`; Ok((received, sent, avg rtt ms)).
fn ping(from: &str, to: &str) -> Result<(u32, u32, String)> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", from, "ping", "-c", "3", "-i", "0.2", "-W", "2", to,
        ])
        .output()?;
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
pub async fn up_and_explain() -> Result<()> {
    let info = up().await?;
    say(&format!(
        r#"
The lab stays up. Try:
  ip netns exec {NS_HOST} ping {VM}        # on-prem server → cloud VM
  ip netns exec {NS_VM} ping {ONPREM_HOST}      # and back
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
pub async fn demo() -> Result<()> {
    say(
        "cic lab demo: a customer's on-prem server reaches a cloud VM through cic, every part real\n",
    );
    let result = async {
        let info = up().await?;
        say("\nTraffic:");
        let (r1, s1, rtt1) = ping(NS_HOST, VM)?;
        say(&format!(
            "      on-prem server {ONPREM_HOST} → cloud VM {VM}: {r1}/{s1} replies, avg rtt {rtt1}"
        ));
        let (r2, s2, rtt2) = ping(NS_VM, ONPREM_HOST)?;
        say(&format!(
            "      cloud VM {VM} → on-prem server {ONPREM_HOST}: {r2}/{s2} replies, avg rtt {rtt2}"
        ));
        if r1 == 0 || r2 == 0 {
            let path = keep_logs();
            bail!(
                "ping failed ({r1}/{s1} and {r2}/{s2}); logs kept in {}; BIRD: {} {}",
                path.display(),
                info.site_bird.display(),
                info.fabric_bird.display()
            );
        }
        Ok(())
    }
    .await;
    if let Err(e) = &result {
        let path = keep_logs();
        say(&format!(
            "\nDemo FAILED: {e:#}\n(logs kept in {})",
            path.display()
        ));
    }
    say("\nTearing the lab down");
    down()?;
    if result.is_ok() {
        say(
            "Demo succeeded: IP connectivity both ways through a private connection set up in seconds.",
        );
    }
    result
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

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}
