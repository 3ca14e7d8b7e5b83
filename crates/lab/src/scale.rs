//! `cic bench scale`: many private connections on one edge. On a one-PoP lab it adds
//! `connections` private connections to the lab's trunk, each in a routing instance of its
//! own (a VPC allows one connection per PoP) — each its own VLAN (a VXLAN VNI here), /30,
//! namespace, BGP session with BFD to the customer's BIRD (which announces 10 prefixes on
//! each) and BGP session with the fabric router — and measures:
//! - the time from the first API call until the edge has every session Established, with
//!   its phases (connections created, attached to the routing instance);
//! - the memory of `cic edge` (RSS and its peak) once they are;
//! - how many customer sessions stayed up while their connection joined its routing
//!   instance (the customer's BIRD says when each last came up);
//! - when a sample of the connections carries a ping to the cloud VM (from one of the
//!   connection's own prefixes, so the answer comes back over that connection);
//! - propagation: a VPC subnet added to every routing instance (one API call each,
//!   `--in-flight` at once, 16 unless told), and for each the time from its call until
//!   the customer's BIRD has the route from that connection's session; then removed,
//!   until it is gone;
//! - a cold start: the edge agent killed, every namespace it made deleted (a rebooted
//!   box), the agent started again, and the time until every session is Established
//!   and the sample pings again;
//! - the kernel's own memory per connection (`/proc/meminfo`), for the whole lab's
//!   bring-up and for the edge's instances alone (freed by the cold start's clean-up,
//!   taken again by its start), beside the agent's RSS;
//! - how long the edge takes to apply a revision that changes nothing on it (a
//!   description is edited), and how long its periodic full reconcile takes (not with
//!   `--bring-up-only`).

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::Api;
use crate::kmem::{KernelMemory, PerConnection};
use crate::{CLOUD_ASN, CUSTOMER_ASN, FOLDER, NS_SITE, Pop, STATE_DIR, site_bird_conf};

mod bfd;
mod cold;
mod propagation;

pub use self::bfd::BfdWatch;
use self::bfd::bfd_watch;
use self::cold::cold_start;
pub use self::propagation::Propagation;
use self::propagation::{PROPAGATED_FABRIC_IP, propagation};

/// Prefixes the customer announces on each connection.
const PREFIXES_EACH: usize = 10;
/// API calls in flight at once, unless told otherwise.
pub const IN_FLIGHT: usize = 16;
const WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRun {
    pub connections: usize,
    /// API calls in flight at once.
    pub in_flight: usize,
    /// Seconds between the edge's reports.
    pub report_every: u64,
    /// The flap damping the edge ran with (`bgp.flapDampingMaxSecs` of the config it kept
    /// after the bring-up; 0: off).
    pub flap_damping_max_secs: u64,
    pub prefixes_each: usize,
    /// Seconds from the first API call until every connection exists (operations done).
    pub created_secs: f64,
    /// Where the connections' calls spent their time.
    pub create_calls: crate::api::Calls,
    /// … until every connection is in a routing instance of its own (operations done).
    pub attached_secs: f64,
    /// Where the routing instances' calls spent their time.
    pub instance_calls: crate::api::Calls,
    /// … until the edge has every session Established: each connection's with the
    /// customer's router, and each routing instance's with the fabric router.
    pub established_secs: f64,
    /// The machine's CPU time from the first API call to every session Established (all
    /// CPUs together): how busy it was, and how much the host took away (steal).
    pub bring_up_cpu: crate::cpu::CpuSpent,
    /// … and each of the lab's processes' share of it, in CPU seconds by name (`server`,
    /// `edge-pop1`, `fabric-automation-pop1`, `bird-fabric` (the cloud fabric's router),
    /// `bird-site` (the customer's routers) and `bench`, this process): where the time
    /// went.
    pub bring_up_cpu_by_process: std::collections::BTreeMap<String, f64>,
    /// … of which the connections' phase (from the first call to every customer session
    /// Established): the rest is the routing instances'.
    pub connections_cpu_by_process: std::collections::BTreeMap<String, f64>,
    /// … until each of a sample of the connections carried a ping to the cloud VM and its
    /// answer.
    pub pinged_secs: f64,
    /// The connections in that sample.
    pub ping_sample: usize,
    /// Customer sessions (of the `connections`) that came up before the routing
    /// instances were created and stayed up through joining them.
    pub customer_sessions_kept: usize,
    /// Networks in the fabric router's table at that point (the customers' prefixes, which
    /// the edge passed on, and its own).
    pub fabric_routes: usize,
    pub edge_rss_mib: f64,
    pub edge_peak_rss_mib: f64,
    /// The kernel's memory per connection for the whole bring-up: the edge's instances
    /// (namespace, links, addresses, routes, sockets), the customer's interfaces, the
    /// fabric's segments and both BIRDs' sockets.
    pub kernel_lab_per_connection: crate::kmem::PerConnection,
    /// … for the edge's instances: what the kernel gave back when the agent was killed
    /// and its namespaces deleted (the cold start's first step), per namespace deleted —
    /// their links, addresses, routes and sockets, the agent's own page tables and stacks,
    /// and the peers' sockets of the sessions that ended with them…
    pub kernel_edge_freed_per_connection: crate::kmem::PerConnection,
    /// … and what it took again when the agent started and made them anew (the sessions
    /// up again).
    pub kernel_edge_taken_per_connection: crate::kmem::PerConnection,
    /// A VPC prefix added to every routing instance, then removed.
    pub propagation: Propagation,
    /// BFD Down events while nothing failed (with `--bfd-watch-secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdWatch>,
    /// The cold start: seconds from starting the agent again (its namespaces gone) until
    /// every session is Established, and until the sample pings again.
    pub cold_start_established_secs: f64,
    pub cold_start_pinged_secs: f64,
    /// The most instances the agent made at the same time in that cold start (its
    /// `cic_edge_instances_reconciled_at_once_peak`).
    pub cold_start_at_once: usize,
    /// The machine's CPU time over the cold start (from starting the agent to every
    /// session Established), and each process's share, as for the bring-up (the agent's
    /// is all the new agent's time).
    pub cold_start_cpu: crate::cpu::CpuSpent,
    pub cold_start_cpu_by_process: std::collections::BTreeMap<String, f64>,
    /// What the edge does with everything up (not measured with `--bring-up-only`).
    #[serde(flatten)]
    pub steady: Option<Steady>,
}

/// The edge with every session up.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Steady {
    /// The apply of a new revision that changes nothing on the edge (its own measure),
    /// and how many instances it reconciled.
    pub noop_apply_secs: f64,
    pub noop_apply_reconciled: usize,
    /// The edge's periodic full reconcile (every instance against the kernel and its
    /// speaker; once a minute, to undo drift).
    pub full_apply_secs: f64,
    /// `GET /metrics` on the edge, once a second for 20 s with every session up: the
    /// median and the slowest scrape (each reads every namespace's counters).
    pub metrics_scrape_p50_secs: f64,
    pub metrics_scrape_max_secs: f64,
    /// Lines in one scrape.
    pub metrics_lines: usize,
}

/// What `cic bench scale` runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub connections: usize,
    /// Bring-up, propagation and the cold start only (no no-op apply, full reconcile or
    /// scrape series).
    pub bring_up_only: bool,
    /// BFD timers of every connection (and of the customer's BIRD): this interval × 3.
    /// The operator's default (300 ms) when `None`.
    pub bfd_ms: Option<u32>,
    /// With every session up, this many seconds of watching for BFD Down events
    /// (false ones: nothing fails) while the metrics are scraped every second.
    pub bfd_watch_secs: u64,
    /// API calls in flight at once (each to its operation's end).
    pub in_flight: usize,
    /// How often the edge reports, in seconds (`cic edge --report-every`; the lab's 1
    /// unless told).
    pub report_every: u64,
    /// The server's flap damping (`cic server --flap-damping-max-secs`; 0: off, its
    /// default).
    pub flap_damping_max_secs: u32,
}

/// Connection `i`'s VLAN, its /30 and the cloud's and the customer's addresses in it.
fn plan(i: usize) -> (u32, String, String, String) {
    let vlan = 1000 + i as u32;
    let (third, fourth) = (128 + i / 64, (i % 64) * 4);
    (
        vlan,
        format!("169.254.{third}.{fourth}/30"),
        format!("169.254.{third}.{}", fourth + 1),
        format!("169.254.{third}.{}", fourth + 2),
    )
}

/// The `j`th prefix of connection `i`: /24s from 10.0.0.0, in order.
fn prefix(i: usize, j: usize) -> String {
    let k = i * PREFIXES_EACH + j;
    format!("10.{}.{}.0/24", k / 256, k % 256)
}

fn read(path: &str) -> Result<String> {
    Ok(fs::read_to_string(format!("{STATE_DIR}/{path}"))
        .with_context(|| format!("{STATE_DIR}/{path}: is the lab up?"))?
        .trim()
        .to_string())
}

/// `ip -n NS -batch -` with these lines.
fn ip_batch(ns: &str, lines: &[String]) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(lines.join("\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("ip -batch: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The connections whose path is pinged: up to 10, spread over them.
fn ping_sample(n: usize) -> Vec<usize> {
    let k = n.min(10);
    (0..k).map(|j| j * n / k).collect()
}

/// The address connection `i`'s pings come from: the first of its first prefix, which
/// the cloud routes back over that connection.
fn ping_source(i: usize) -> String {
    prefix(i, 0).replace(".0/24", ".1")
}

/// The customer's side: a VXLAN interface per connection over the cross-connect, and
/// BIRD told about every session (its times to the millisecond).
fn customer_side(pop: Pop, n: usize, bird_socket: &str, bfd_ms: Option<u32>) -> Result<()> {
    let mut lines: Vec<String> = ping_sample(n)
        .into_iter()
        .map(|i| format!("addr add {}/32 dev lo", ping_source(i)))
        .collect();
    for i in 0..n {
        let (vlan, subnet, _, me) = plan(i);
        let len = subnet.rsplit('/').next().unwrap_or("30");
        lines.push(format!(
            "link add vl{vlan} mtu 8910 type vxlan id {vlan} remote {} dstport 4789 dev {}",
            pop.xc(1),
            pop.site_port()
        ));
        lines.push(format!("addr add {me}/{len} dev vl{vlan}"));
        lines.push(format!("link set vl{vlan} up"));
    }
    ip_batch(NS_SITE, &lines)?;
    let mut conf = site_bird_conf(&[pop], None);
    if let Some(ms) = bfd_ms {
        let lab = "min rx interval 300 ms; min tx interval 300 ms;";
        if !conf.contains(lab) {
            bail!("the lab's customer BIRD has no BFD interval of 300 ms to change");
        }
        conf = conf.replace(
            lab,
            &format!("min rx interval {ms} ms; min tx interval {ms} ms;"),
        );
    }
    conf.push_str("timeformat protocol iso long ms;\ntimeformat base iso long ms;\n");
    for i in 0..n {
        let (vlan, _, cloud, me) = plan(i);
        let routes: String = (0..PREFIXES_EACH)
            .map(|j| format!("route {} blackhole; ", prefix(i, j)))
            .collect();
        conf.push_str(&format!(
            "protocol static s{vlan} {{ ipv4; {routes}}}\n\
             protocol bgp c{vlan} {{\n  local {me} as {CUSTOMER_ASN};\n  neighbor {cloud} as {CLOUD_ASN};\n  \
             connect retry time 2;\n  error wait time 1, 30;\n  bfd on;\n  \
             ipv4 {{ import all; export where proto = \"s{vlan}\"; }};\n}}\n"
        ));
    }
    let path = format!("{STATE_DIR}/site-scale.conf");
    fs::write(&path, conf)?;
    let text = crate::BirdCtl(bird_socket.into()).ask(&["configure", &format!("\"{path}\"")])?;
    if !text.contains("Reconfigured") && !text.contains("Reconfiguration in progress") {
        bail!("the customer's BIRD refused {path}: {text}");
    }
    Ok(())
}

/// Pings the cloud VM from each sample connection's address until each has an answer
/// (one ping at a time per connection, all connections at once); an error after `within`.
fn ping_until_answered(n: usize, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    std::thread::scope(|s| {
        let runs: Vec<_> = ping_sample(n)
            .into_iter()
            .map(|i| {
                s.spawn(move || {
                    let src = ping_source(i);
                    while Instant::now() < deadline {
                        let ok = Command::new("ip")
                            .args(["netns", "exec", NS_SITE, "ping", "-n", "-q", "-c", "1"])
                            .args(["-W", "1", "-I", &src, crate::VM])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        if ok {
                            return Ok(());
                        }
                    }
                    bail!(
                        "no answer from {} to pings from {src} (connection {i}) within {within:?}",
                        crate::VM
                    )
                })
            })
            .collect();
        runs.into_iter()
            .try_for_each(|r| r.join().unwrap_or_else(|_| bail!("a ping thread panicked")))
    })
}

/// BIRD's clock (`show status`, in its base time format).
fn bird_now(socket: &str) -> Result<String> {
    crate::BirdCtl(socket.into())
        .ask(&["show", "status"])?
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Current server time is ")
                .map(str::to_string)
        })
        .context("the customer's BIRD's time (show status)")
}

/// The scale sessions of the customer's BIRD that are up and came up before `since`
/// (both in its millisecond ISO format, which sorts as text).
fn up_since_before(socket: &str, since: &str) -> Result<usize> {
    let text = crate::BirdCtl(socket.into()).ask(&["show", "protocols"])?;
    Ok(text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // name  proto  table  state  date time  info
            f.len() >= 7
                && f[0].starts_with('c')
                && f[0][1..].parse::<u32>().is_ok()
                && f[1] == "BGP"
                && f[3] == "up"
                && format!("{} {}", f[4], f[5]).as_str() < since
        })
        .count())
}

/// The edge's Established IPv4 sessions, customer and fabric, from its `/readyz` (a
/// count it keeps; `/metrics` would read every interface's counters and render every
/// session: a tenth of a CPU-second a scrape at 1,000 connections, every 250 ms).
async fn established(http: &reqwest::Client, metrics: &str) -> (usize, usize) {
    let Ok(r) = http
        .get(metrics.replace("/metrics", "/readyz"))
        .send()
        .await
    else {
        return (0, 0);
    };
    let ready: serde_json::Value = r.json().await.unwrap_or_default();
    let up = |kind: &str| ready[kind]["ipv4"]["established"].as_u64().unwrap_or(0) as usize;
    (up("customer"), up("fabric"))
}

async fn metric(http: &reqwest::Client, metrics: &str, name: &str) -> Option<f64> {
    let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn rss_mib(pid: u32, key: &str) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The flap damping in the config `pop`'s edge kept (what it runs; 0: off).
fn kept_damping(pop: Pop) -> Result<u64> {
    let cfg = crate::edge_kept_config(&pop.id())?;
    Ok(u64::from(cfg.bgp.flap_damping_max_secs))
}

/// Seconds of CPU each of the lab's processes took since `before`, and a line saying so.
fn by_process(
    phase: &str,
    before: &crate::cpu::ProcessTimes,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let spent = crate::cpu::ProcessTimes::read(&crate::processes()?).since(before);
    eprintln!(
        "{phase}: CPU by process: {}",
        spent
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(spent)
}

/// Brings a one-PoP lab up, runs [`run`] on it, and takes it down (unless `keep`).
pub async fn bench(opts: Options, keep: bool) -> Result<ScaleRun> {
    let n = opts.connections;
    if !(1..=3000).contains(&n) {
        bail!("--connections {n}: from 1 to 3000");
    }
    // The modelled service allows 5 private connections per trunk: an operator raises it.
    let quota = (n + 1).to_string();
    let damping = opts.flap_damping_max_secs.to_string();
    // The benchmark measures the edge, not the API's rate limit: off for its customer.
    crate::up_opts(
        1,
        &[
            "--quota-private-connections-per-trunk",
            &quota,
            "--rate-limit",
            "0",
            "--flap-damping-max-secs",
            &damping,
        ],
        false,
        opts.report_every,
    )
    .await?;
    let r = run(opts).await;
    if !keep {
        crate::down()?;
    }
    r
}

/// Adds `n` connections to a running one-PoP lab and measures (see the module's doc).
pub async fn run(opts: Options) -> Result<ScaleRun> {
    let n = opts.connections;
    let lab: Value = serde_json::from_str(&read("lab.json")?)?;
    let pops = lab["pops"].as_array().context("lab.json: pops")?;
    if pops.len() != 1 {
        bail!("the scale benchmark runs on a one-PoP lab: cic lab up --pops 1");
    }
    let pop = Pop(1);
    let trunk = lab["trunkConnectionId"].as_str().context("trunk")?;
    let metrics = lab["edgeMetrics"]
        .as_str()
        .context("edge metrics")?
        .to_string();
    let bird = lab["bird"]["customer"].as_str().context("customer BIRD")?;
    let pids = crate::processes()?;
    let edge_name = format!("edge-{}", pop.id());
    let edge_pid = pids
        .iter()
        .find(|(name, _)| *name == edge_name)
        .map(|(_, pid)| *pid)
        .context("the edge's pid")?;
    let api = Api {
        http: crate::lab_client(lab["server"].as_str().context("server")?, crate::CA_CERT)?,
        base: lab["server"].as_str().context("server")?.to_string(),
        token: read("customer-token")?,
        polls: Api::polls(),
    };
    let already = established(&api.http, &metrics).await;
    let kernel_before = KernelMemory::read()?;

    customer_side(pop, n, bird, opts.bfd_ms)?;
    eprintln!("customer side ready: {n} interfaces and BGP sessions in {NS_SITE}");

    let t0 = Instant::now();
    let cpu0 = crate::cpu::CpuTimes::read()?;
    let processes0 = crate::cpu::ProcessTimes::read(&pids);
    let creates = (0..n)
        .map(|i| {
            let (vlan, subnet, cloud, me) = plan(i);
            let mut body = json!({"folderId": FOLDER, "name": format!("scale-vlan{vlan}"),
                "trunkConnectionId": trunk, "vlanId": vlan.to_string(),
                "ipv4Peering": {"peeringSubnet": subnet, "peerIp": me, "cloudIp": cloud,
                                "peerBgpAsn": CUSTOMER_ASN.to_string()}});
            if let Some(ms) = opts.bfd_ms {
                body["bfd"] = json!({"minIntervalMs": ms, "multiplier": 3});
            }
            (
                reqwest::Method::POST,
                "/cic/v1/privateConnections".to_string(),
                body,
            )
        })
        .collect();
    let (ops, create_calls) = api.all(opts.in_flight, creates).await?;
    let created = t0.elapsed();
    eprintln!(
        "{n} connections created in {:.1} s ({create_calls})",
        created.as_secs_f64()
    );
    let ids: Vec<String> = ops
        .iter()
        .map(|op| crate::id_of(op, "connection"))
        .collect::<Result<_>>()?;
    // Every customer session is up before the routing instances come: those that are
    // still up at the end, since before now, were kept through joining.
    wait_established(&api.http, &metrics, (already.0 + n, already.1), t0).await?;
    let connections_cpu_by_process = by_process("connections' phase", &processes0)?;
    let attach_from = bird_now(bird)?;
    // One routing instance per connection: a VPC allows one connection per PoP, so on
    // one edge every connection is another customer's (its own namespace, its own
    // session with the fabric). Each VPC has the lab's 10.128.0.0/24, which the fabric
    // router announces to every instance.
    let instance_requests: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let body = json!({"folderId": FOLDER, "name": format!("scale-{i}"),
                "vpcInfo": [{"vpcNetworkId": format!("vpc-scale-{i}"),
                             "azInfos": [{"manualInfo": {"azId": "zone-a", "prefixes": ["10.128.0.0/24"]}}]}],
                "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": id}]});
            (
                reqwest::Method::POST,
                "/cloudrouter/v1/routingInstances".to_string(),
                body,
            )
        })
        .collect();
    let (instance_ops, instance_calls) = api.all(opts.in_flight, instance_requests).await?;
    let instances: Vec<String> = instance_ops
        .iter()
        .map(|op| crate::id_of(op, "routing instance"))
        .collect::<Result<_>>()?;
    let attached = t0.elapsed();
    eprintln!(
        "{n} routing instances created at {:.1} s ({instance_calls})",
        attached.as_secs_f64()
    );
    let want = (already.0 + n, already.1 + n);
    let established_at = wait_established(&api.http, &metrics, want, t0).await?;
    let bring_up_cpu = crate::cpu::CpuSpent::between(&cpu0, &crate::cpu::CpuTimes::read()?);
    let bring_up_cpu_by_process = by_process("bring-up", &processes0)?;
    eprintln!("bring-up: {bring_up_cpu}");
    let kept = up_since_before(bird, &attach_from)?;
    ping_until_answered(n, WAIT)?;
    let pinged = t0.elapsed();
    eprintln!(
        "a ping across each of {} connections answered at {:.1} s; {kept} of {n} customer sessions kept through joining",
        ping_sample(n).len(),
        pinged.as_secs_f64()
    );
    let fabric_routes =
        crate::BirdCtl(lab["bird"]["fabric"].as_str().context("fabric")?.into()).count_routes();
    let (rss, peak) = (rss_mib(edge_pid, "VmRSS:"), rss_mib(edge_pid, "VmHWM:"));
    let kernel_lab = PerConnection::between(&kernel_before, &KernelMemory::read()?, n);
    eprintln!(
        "the kernel's memory for the lab's bring-up: {:.0} KiB a connection held ({:.0} of it unreclaimable slab, {:.1} per-CPU), {:.0} reclaimable; the edge's RSS {rss:.1} MiB",
        kernel_lab.held_kib,
        kernel_lab.slab_unreclaimable_kib,
        kernel_lab.percpu_kib,
        kernel_lab.slab_reclaimable_kib
    );

    let bfd = match opts.bfd_watch_secs {
        0 => None,
        secs => Some(bfd_watch(&api.http, &metrics, bird, opts.bfd_ms.unwrap_or(300), secs).await?),
    };
    let out = Command::new("ip")
        .args([
            "-n",
            crate::NS_FABRIC,
            "addr",
            "replace",
            PROPAGATED_FABRIC_IP,
            "dev",
            "vpc0",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "a second VPC subnet on the fabric router: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let flap_damping_max_secs = kept_damping(pop)?;
    let propagation = propagation(&api, bird, &instances, opts.in_flight).await?;
    let cold = cold_start(pop, &api.http, &metrics, want, n).await?;
    let steady = if opts.bring_up_only {
        None
    } else {
        Some(steady(&api, &metrics, &ids[0]).await?)
    };
    Ok(ScaleRun {
        connections: n,
        in_flight: opts.in_flight,
        report_every: opts.report_every,
        flap_damping_max_secs,
        prefixes_each: PREFIXES_EACH,
        created_secs: created.as_secs_f64(),
        create_calls,
        attached_secs: attached.as_secs_f64(),
        instance_calls,
        established_secs: established_at.as_secs_f64(),
        bring_up_cpu,
        bring_up_cpu_by_process,
        connections_cpu_by_process,
        pinged_secs: pinged.as_secs_f64(),
        ping_sample: ping_sample(n).len(),
        customer_sessions_kept: kept,
        fabric_routes,
        edge_rss_mib: rss,
        edge_peak_rss_mib: peak,
        kernel_lab_per_connection: kernel_lab,
        kernel_edge_freed_per_connection: cold.kernel_freed,
        kernel_edge_taken_per_connection: cold.kernel_taken,
        propagation,
        bfd,
        cold_start_established_secs: cold.established,
        cold_start_pinged_secs: cold.pinged,
        cold_start_at_once: cold.at_once,
        cold_start_cpu: cold.cpu,
        cold_start_cpu_by_process: cold.by_process,
        steady,
    })
}

/// Waits until the edge has `want` (customer, fabric) sessions Established; the time
/// since `t0` then.
async fn wait_established(
    http: &reqwest::Client,
    metrics: &str,
    want: (usize, usize),
    t0: Instant,
) -> Result<Duration> {
    let mut last = (0, 0);
    let at = loop {
        let up = established(http, metrics).await;
        if up.0 >= want.0 && up.1 >= want.1 {
            break t0.elapsed();
        }
        if up != last {
            eprintln!(
                "  customer sessions {}/{}, fabric sessions {}/{} Established at {:.1} s",
                up.0,
                want.0,
                up.1,
                want.1,
                t0.elapsed().as_secs_f64()
            );
            last = up;
        }
        if t0.elapsed() > WAIT {
            bail!(
                "{up:?} of {want:?} sessions Established after {WAIT:?}; see {STATE_DIR}/edge-pop1.log"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "all {} customer and {} fabric sessions Established at {:.1} s",
        want.0,
        want.1,
        at.as_secs_f64()
    );
    Ok(at)
}

/// The no-op apply, the full reconcile and the scrapes, with every session up.
async fn steady(api: &Api, metrics: &str, connection: &str) -> Result<Steady> {
    // A new revision with the same content for the edge: a full reconcile of nothing.
    let applies = metric(&api.http, metrics, "cic_edge_applies_total")
        .await
        .unwrap_or(0.0);
    let op = api
        .call(
            reqwest::Method::PATCH,
            &format!("/cic/v1/privateConnections/{connection}"),
            Some(json!({"description": "edited by cic bench scale"})),
        )
        .await?;
    api.done(op).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&api.http, metrics, "cic_edge_applies_total")
        .await
        .unwrap_or(0.0)
        <= applies
    {
        if Instant::now() > deadline {
            bail!("the edge did not apply the edited revision");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noop = metric(&api.http, metrics, "cic_edge_last_apply_seconds")
        .await
        .context("cic_edge_last_apply_seconds")?;
    let noop_reconciled = metric(
        &api.http,
        metrics,
        "cic_edge_last_apply_reconciled_instances",
    )
    .await
    .unwrap_or(0.0) as usize;
    // The next full reconcile comes within a minute.
    let applies = metric(&api.http, metrics, "cic_edge_applies_total")
        .await
        .unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(90);
    let full = loop {
        let text = api.http.get(metrics).send().await?.text().await?;
        let full_line = text.lines().any(|l| {
            l.starts_with("cic_edge_last_apply_reconciled_instances{")
                && l.contains("full=\"true\"")
        });
        let now = metric(&api.http, metrics, "cic_edge_applies_total")
            .await
            .unwrap_or(0.0);
        if full_line && now > applies {
            break metric(&api.http, metrics, "cic_edge_last_apply_seconds")
                .await
                .context("cic_edge_last_apply_seconds")?;
        }
        if Instant::now() > deadline {
            bail!("no full reconcile within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Scrapes at 1 s resolution, the issue's, with everything up.
    let mut scrapes = Vec::new();
    let mut lines = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let text = api.http.get(metrics).send().await?.text().await?;
        scrapes.push(t.elapsed().as_secs_f64());
        lines = text.lines().count();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    scrapes.sort_by(f64::total_cmp);
    Ok(Steady {
        metrics_scrape_p50_secs: scrapes[scrapes.len() / 2],
        metrics_scrape_max_secs: scrapes[scrapes.len() - 1],
        metrics_lines: lines,
        noop_apply_secs: noop,
        noop_apply_reconciled: noop_reconciled,
        full_apply_secs: full,
    })
}
