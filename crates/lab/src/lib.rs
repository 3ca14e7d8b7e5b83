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
mod up;
pub use up::{LAB_REPORT_EVERY, up, up_opts, up_with};

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

/// The lab's processes by name (its pid file); of a name written twice (an agent started
/// again), the last one alive.
pub(crate) fn processes() -> Result<Vec<(String, u32)>> {
    let mut pids: Vec<(String, u32)> = Vec::new();
    for l in fs::read_to_string(Path::new(STATE_DIR).join("pids"))?.lines() {
        let Some((name, pid)) = l.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if crate::is_zombie(pid as i32) {
            continue;
        }
        pids.retain(|(n, _)| n != name);
        pids.push((name.to_string(), pid));
    }
    Ok(pids)
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

/// The config the edge agent of PoP `pop` (`pop1`, …) keeps in its state directory for a
/// restart while the server is away, read as the agent reads it (the whole config and
/// the journal of changes since).
pub fn edge_kept_config(pop: &str) -> Result<cic_model::edge::EdgeConfig> {
    use cic_model::edge::kept;
    let dir = Path::new(STATE_DIR).join(format!("edge-{pop}"));
    let whole_path = dir.join(kept::WHOLE);
    // The journal first: the agent writes a new whole config before the journal that
    // follows it, so read in this order the two match, or the whole one is the newer.
    let journal = fs::read(dir.join(kept::JOURNAL)).ok();
    let whole = fs::read(&whole_path)
        .with_context(|| format!("the edge's kept config {}", whole_path.display()))?;
    Ok(kept::read(&whole, journal.as_deref())
        .with_context(|| format!("the edge's kept config {}", whole_path.display()))?
        .config)
}

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

fn id_of(op: &Value, what: &str) -> Result<String> {
    op["metadata"]["resourceId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no {what} id in {op}"))
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
