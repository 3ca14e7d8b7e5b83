//! `cic lab failover`: in a running two-PoP lab, cut the cross-connect of the PoP that
//! carries the on-prem → VM flow while pings cross every 10 ms, and measure the outage;
//! then restore it and count what is lost while traffic spreads over both PoPs again.
//! `--side cloud` cuts that PoP's link to the cloud fabric instead: its customer session
//! stays up, and the PoP must withdraw the VPC prefix from the customer (it exports it
//! only while the fabric covers it), or the customer keeps sending into a dead end.
//!
//! `--side silent` blackholes that PoP's cross-connect both ways with no change of
//! carrier (a failed transport in between): only BFD can see it.
//!
//! IPv4 and IPv6 are measured at once, each with its own flow; the IPv6 flow's source is
//! chosen among the server's addresses so that it crosses the PoP that is cut.
//!
//! The outage is the longest time between two consecutive replies (`ping -D`
//! timestamps), so it includes one ping interval. BFD at 300 ms × 3 bounds it from
//! above by the detection time plus the routers' reaction.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cic_peers::wait_until;
use serde::Serialize;

use crate::{LAN6, NS_FABRIC, NS_HOST, NS_SITE, ONPREM_HOST, Pop, VM, VM6, VPC6, kernel_next_hops};

/// Which of a PoP's links is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The cross-connect to the customer's router.
    Customer,
    /// The link to the cloud fabric router.
    Cloud,
    /// The cross-connect's underlay blackholed both ways; its carrier stays up.
    Silent,
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Side, String> {
        match s {
            "customer" => Ok(Side::Customer),
            "cloud" => Ok(Side::Cloud),
            "silent" => Ok(Side::Silent),
            other => Err(format!("{other:?}: use customer, cloud or silent")),
        }
    }
}

impl Side {
    fn link(self) -> &'static str {
        match self {
            Side::Customer | Side::Silent => "xc-site1",
            Side::Cloud => "fab0",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The PoP whose link was cut.
    pub pop: String,
    pub side: Side,
    /// The customer's BGP session with the cut PoP stayed Established throughout (the
    /// cloud side cut: what moved traffic away was the PoP withdrawing the VPC prefix).
    /// Absent when the customer's router is not the lab's BIRD (the FRR variant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_session_kept: Option<bool>,
    /// Longest gap between replies after the cut.
    pub outage_ms: f64,
    pub lost_at_cut: u32,
    /// Pings lost while the PoP came back and traffic spread over both again.
    pub lost_at_restore: u32,
    /// From restoring the link until both routers use both PoPs again.
    pub rebalanced_after_ms: f64,
    /// The same for the IPv6 flow, which crossed the cut PoP too.
    pub ipv6: FamilyRun,
}

/// What one family's flow saw of a cut and restore.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyRun {
    /// The source address of the flow on the on-prem server.
    pub source: String,
    /// Replies received in the cut's window (0: the family does not work at all).
    pub replies: u32,
    pub outage_ms: f64,
    pub lost_at_cut: u32,
    pub lost_at_restore: u32,
}

/// Which flow a pinger sends: on-prem → VM over IPv4, or over IPv6 from a source, or
/// from the server's public address to the public service (`cic lab failover --public`).
#[derive(Debug, Clone)]
pub(crate) enum Flow {
    V4,
    V6(String),
    Public,
}

pub(crate) struct Pinger {
    child: Child,
    /// When it started (seconds since the epoch, as `ping -D` stamps replies).
    started: f64,
}

/// Now, as `ping -D` stamps replies.
fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// What a pinger saw: reply times, how many it sent, and the window it ran in.
pub(crate) struct Replies {
    times: Vec<f64>,
    sent: u32,
    window: (f64, f64),
}

impl Pinger {
    fn start() -> Result<Pinger> {
        Pinger::flow(&Flow::V4)
    }

    pub(crate) fn flow(flow: &Flow) -> Result<Pinger> {
        let mut args = vec![
            "netns", "exec", NS_HOST, "ping", "-D", "-n", "-i", "0.01", "-W", "1",
        ];
        match flow {
            Flow::V4 => args.push(VM),
            Flow::V6(src) => args.extend(["-6", "-I", src.as_str(), VM6]),
            Flow::Public => args.extend([
                "-I",
                crate::public::PUBLIC_HOST,
                crate::public::OBJECT_STORAGE_HOST,
            ]),
        }
        let started = epoch_secs();
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start ping")?;
        Ok(Pinger { child, started })
    }

    /// Stops it (SIGINT, so it prints its summary) and returns what it saw.
    pub(crate) fn stop(mut self) -> Result<Replies> {
        let ended = epoch_secs();
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out)?;
        }
        let _ = self.child.wait();
        let times: Vec<f64> = out
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        let sent = out
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no ping summary in: {out}"))?;
        Ok(Replies {
            times,
            sent,
            window: (self.started, ended),
        })
    }
}

pub(crate) fn set_link(pop: Pop, side: Side, up: bool) -> Result<()> {
    if side == Side::Silent {
        // A /32 blackhole at each end beats the connected /30: the VXLAN packets of the
        // cross-connect go nowhere, both ways, and both ports stay up.
        let (verb, mut failed) = (if up { "del" } else { "add" }, None);
        for (ns, far) in [(pop.ns(), pop.xc(2)), (NS_SITE.to_string(), pop.xc(1))] {
            if let Err(e) = crate::ns(&ns, &["route", verb, "blackhole", &format!("{far}/32")]) {
                failed.get_or_insert(e);
            }
        }
        return failed.map_or(Ok(()), Err);
    }
    crate::ns(
        &pop.ns(),
        &["link", "set", side.link(), if up { "up" } else { "down" }],
    )
}

/// A source address of the on-prem server whose IPv6 flow to the VM leaves the
/// customer's router through `pop`.
fn source6_through(pop: Pop) -> Result<String> {
    for host in std::iter::once(0x10).chain(0x11..0x20) {
        let src = format!("fd10:168:10::{host:x}");
        let out = Command::new("ip")
            .args([
                "-n",
                NS_SITE,
                "-6",
                "route",
                "get",
                VM6,
                "from",
                &src,
                "iif",
                "lan0",
                "ipproto",
                "ipv6-icmp",
            ])
            .output()?;
        if String::from_utf8_lossy(&out.stdout).contains(&format!("dev {} ", pop.customer_if())) {
            return Ok(src);
        }
    }
    bail!(
        "no source of the on-prem server sends its IPv6 flow through {}",
        pop.id()
    )
}

/// The PoP the customer router sends the on-prem → VM flow through.
fn carrying_pop(pops: &[Pop]) -> Result<Pop> {
    carrying(pops, VM, ONPREM_HOST, Pop::customer_if)
}

/// The PoP whose interface `dev_of` the customer router sends the ICMP flow from `from`
/// to `to` through.
pub(crate) fn carrying(
    pops: &[Pop],
    to: &str,
    from: &str,
    dev_of: impl Fn(Pop) -> String,
) -> Result<Pop> {
    let out = Command::new("ip")
        .args([
            "-n", NS_SITE, "route", "get", to, "from", from, "iif", "lan0",
            // The routers hash flows on L4 (with the protocol): without it the kernel
            // answers for another flow than the pings (which it may send elsewhere).
            "ipproto", "icmp",
        ])
        .output()?;
    let s = String::from_utf8_lossy(&out.stdout);
    pops.iter()
        .copied()
        .find(|p| s.contains(&format!("dev {} ", dev_of(*p))))
        .ok_or_else(|| anyhow!("the flow {from} → {to} uses no PoP of the lab: {s}"))
}

/// Both routers have `n` next hops toward the other side, for both families.
fn both_ways(n: usize, timeout: Duration, what: &str) -> Result<()> {
    for (ns, prefix) in [
        (NS_SITE, "10.128.0.0/24"),
        (NS_FABRIC, "192.168.10.0/24"),
        (NS_SITE, VPC6),
        (NS_FABRIC, LAN6),
    ] {
        wait_until(
            timeout,
            &format!("{what}: {prefix} with {n} next hop(s) in {ns}"),
            || (kernel_next_hops(ns, prefix) == n).then_some(()),
        )?;
    }
    Ok(())
}

/// The longest time without a reply — between two replies, and from the start of the
/// window to the first one and from the last one to its end (a flow that never worked,
/// or never came back, is an outage, not none) — and how many were lost.
pub(crate) fn outage(r: &Replies) -> (f64, u32) {
    let (start, end) = r.window;
    let mut edges = vec![start];
    edges.extend(r.times.iter().copied());
    edges.push(end);
    (
        edges.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max),
        r.sent.saturating_sub(r.times.len() as u32),
    )
}

/// One cut and restore.
pub fn once(side: Side) -> Result<Run> {
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the cut")
        .context("the lab must be up with two PoPs (cic lab up --pops 2)")?;
    let pop = carrying_pop(&pops)?;
    let site = site_bird()?;
    let protocol = crate::customer_protocol_at(pop)?;
    let established = || site.protocol(&protocol).contains("Established");
    let bird_answers = !site.protocol(&protocol).is_empty();

    let src6 = source6_through(pop)?;
    let flow6 = Flow::V6(src6.clone());
    let (ping, ping6) = (Pinger::start()?, Pinger::flow(&flow6)?);
    // Traffic flows for a second before the cut.
    std::thread::sleep(Duration::from_secs(1));
    set_link(pop, side, false)?;
    let cut = both_ways(1, Duration::from_secs(10), "after the cut");
    // The customer's session with the cut PoP, a moment after the routers moved.
    let mut kept = established();
    // A second of traffic on the remaining PoP.
    std::thread::sleep(Duration::from_secs(1));
    kept &= established();
    let (r4, r6) = (ping.stop()?, ping6.stop()?);
    if let Err(e) = cut {
        set_link(pop, side, true)?;
        bail!("{e}");
    }
    let (gap, lost_at_cut) = outage(&r4);
    let (gap6, lost6_at_cut) = outage(&r6);
    let times6_cut = r6.times.len() as u32;

    let (ping, ping6) = (Pinger::start()?, Pinger::flow(&flow6)?);
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    set_link(pop, side, true)?;
    let back = both_ways(2, Duration::from_secs(60), "after the restore");
    let rebalanced = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (back4, back6) = (ping.stop()?, ping6.stop()?);
    back?;
    Ok(Run {
        pop: pop.id(),
        side,
        customer_session_kept: bird_answers.then_some(kept),
        outage_ms: gap * 1000.0,
        lost_at_cut,
        lost_at_restore: outage(&back4).1,
        rebalanced_after_ms: rebalanced.as_secs_f64() * 1000.0,
        ipv6: FamilyRun {
            source: src6,
            replies: times6_cut,
            outage_ms: gap6 * 1000.0,
            lost_at_cut: lost6_at_cut,
            lost_at_restore: outage(&back6).1,
        },
    })
}

/// `runs` cuts and restores; prints each as a JSON line and a summary.
pub fn run(runs: usize, side: Side) -> Result<()> {
    let (mut outages, mut outages6) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let r = once(side)?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: cut {} ({:?} side): IPv4 outage {:.0} ms ({} pings lost), IPv6 {:.0} ms ({} lost); restored: {} + {} lost, both PoPs in use after {:.0} ms",
            r.pop,
            r.side,
            r.outage_ms,
            r.lost_at_cut,
            r.ipv6.outage_ms,
            r.ipv6.lost_at_cut,
            r.lost_at_restore,
            r.ipv6.lost_at_restore,
            r.rebalanced_after_ms
        );
        outages.push(r.outage_ms);
        outages6.push(r.ipv6.outage_ms);
    }
    for (family, mut v) in [("IPv4", outages), ("IPv6", outages6)] {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        eprintln!(
            "{family} outage over {runs} runs: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    Ok(())
}

/// One run of the active/standby variant (`cic lab failover --standby …`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyRun {
    /// How the customer made one PoP the standby.
    pub standby_by: crate::Standby,
    pub active: String,
    pub standby: String,
    /// From the customer's new config until both routers used the active PoP alone.
    pub settled_after_ms: f64,
    /// Longest gap between replies after the active PoP's cross-connect was cut.
    pub outage_ms: f64,
    pub lost_at_cut: u32,
    /// Pings lost while traffic went back to the active PoP once it returned.
    pub lost_at_restore: u32,
    pub back_on_active_after_ms: f64,
}

/// The PoP whose route `ns` uses for `prefix`, when it uses exactly one (`None`: none,
/// or both). The customer's routes go out of vl<VLAN>; the fabric's to an edge's
/// address in that PoP's transit pool (100.127.0.0/19 for pop1, 100.127.32.0/19 for
/// pop2).
fn sole_pop(ns: &str, prefix: &str) -> Option<u32> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "route", "show", prefix])
        .output()
        .ok()?;
    let routes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    let r = routes.first()?;
    if r.get("nexthops").is_some() || routes.len() != 1 {
        return None;
    }
    if let Some(dev) = r["dev"].as_str().and_then(|d| d.strip_prefix("vl"))
        && ns == NS_SITE
    {
        return dev.parse::<u32>().ok().map(|vlan| vlan / 100);
    }
    let gw: std::net::Ipv4Addr = r["gateway"].as_str()?.parse().ok()?;
    let [100, 127, third, _] = gw.octets() else {
        return None;
    };
    Some(u32::from(third) / 32 + 1)
}

/// Both directions on `pop` alone: on-prem → VM at the customer's router, VM → on-prem
/// at the fabric's.
fn only_on(pop: Pop, timeout: Duration, what: &str) -> Result<()> {
    for (ns, prefix) in [(NS_SITE, "10.128.0.0/24"), (NS_FABRIC, "192.168.10.0/24")] {
        wait_until(
            timeout,
            &format!("{what}: {prefix} through {} alone in {ns}", pop.id()),
            || (sole_pop(ns, prefix) == Some(pop.0)).then_some(()),
        )?;
    }
    Ok(())
}

/// Has the customer's router run cic's generated config again, as it is now (both PoPs
/// in use): after a change of the connections' session options, say.
/// `cic` is the binary to ask (the one this process is, when it is `cic`).
pub fn reconfigure_site(cic: &std::path::Path) -> Result<()> {
    let mut cli = crate::lab_cli()?;
    cli.bin = cic.to_path_buf();
    configure_site_with(&cli, None)
}

/// Gives each of the lab's private connections BFD timers of its own (`100x3`, or
/// `default`), as the customer would through the API, and has the customer's router run
/// the config cic generates for them; returns once both PoPs carry traffic again.
pub fn set_bfd(timers: &str) -> Result<()> {
    let cli = crate::lab_cli()?;
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}/lab.json",
        crate::STATE_DIR
    ))?)?;
    for p in info["pops"].as_array().into_iter().flatten() {
        let pc = p["privateConnectionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no connection in lab.json"))?;
        cli.run(true, &["private-connection", "update", pc, "--bfd", timers])?;
    }
    configure_site_with(&cli, None)?;
    both_ways(2, Duration::from_secs(60), "after the new BFD timers")?;
    // Until both sides run them: each session's detection time as the edge reports it.
    let (interval, mult) = match timers.split_once('x') {
        Some((i, m)) => (
            i.parse::<u64>().unwrap_or(300),
            m.parse::<u64>().unwrap_or(3),
        ),
        None => (300, 3),
    };
    for p in info["pops"].as_array().into_iter().flatten() {
        let pc = p["privateConnectionId"].as_str().unwrap_or_default();
        wait_until(
            Duration::from_secs(30),
            &format!("{pc}'s BFD sessions detecting in {} ms", interval * mult),
            || {
                let v = cli.run(false, &["private-connection", "get", pc]).ok()?;
                let ok = |b: &serde_json::Value| {
                    b["bfd"]["detectionTimeMs"].as_u64() == Some(interval * mult)
                };
                (ok(&v["bgp"]) && ok(&v["bgpIpv6"])).then_some(())
            },
        )?;
    }
    Ok(())
}

/// Gives the customer's router `standby` (none: both PoPs in use again).
/// As a customer would: asks cic for the router config with that PoP's connection as the
/// standby (or none), and has the customer's BIRD run it.
fn configure_site(standby: Option<(Pop, crate::Standby)>) -> Result<()> {
    configure_site_with(&crate::lab_cli()?, standby)
}

fn configure_site_with(cli: &crate::Cli, standby: Option<(Pop, crate::Standby)>) -> Result<()> {
    let site = site_bird()?;
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}/lab.json",
        crate::STATE_DIR
    ))?)?;
    let ri = info["routingInstanceId"]
        .as_str()
        .ok_or_else(|| anyhow!("no routing instance in lab.json"))?;
    let standby = match standby {
        None => None,
        Some((pop, how)) => {
            let pc = info["pops"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["pop"] == pop.id().as_str())
                .and_then(|p| p["privateConnectionId"].as_str())
                .ok_or_else(|| anyhow!("no connection at {} in lab.json", pop.id()))?;
            Some(format!(
                "{pc}:{}",
                match how {
                    crate::Standby::Prepend => "prepend",
                    crate::Standby::Community => "community",
                }
            ))
        }
    };
    crate::configure_site(cli, false, ri, standby.as_deref(), &site.0)?;
    Ok(())
}

/// Active/standby: the customer makes the PoP that does not carry the flow its standby
/// (`how`), both routers move to the active one alone; its cross-connect is cut while
/// pinging (the standby takes over), then restored (traffic goes back to the active).
/// The customer's ECMP config is put back at the end.
pub fn standby_once(how: crate::Standby) -> Result<StandbyRun> {
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the run")
        .context("the lab must be up with two PoPs (cic lab up --pops 2)")?;
    let active = carrying_pop(&pops)?;
    let standby = Pop(3 - active.0);
    let t = std::time::Instant::now();
    configure_site(Some((standby, how)))?;
    let result = (|| {
        only_on(active, Duration::from_secs(30), "the standby config")?;
        let settled = t.elapsed();
        let ping = Pinger::start()?;
        std::thread::sleep(Duration::from_secs(1));
        set_link(active, Side::Customer, false)?;
        let cut = only_on(standby, Duration::from_secs(10), "after the cut");
        std::thread::sleep(Duration::from_secs(1));
        let at_cut = ping.stop()?;
        if let Err(e) = cut {
            set_link(active, Side::Customer, true)?;
            return Err(e);
        }
        let (gap, lost_at_cut) = outage(&at_cut);

        let ping = Pinger::start()?;
        std::thread::sleep(Duration::from_millis(500));
        let t = std::time::Instant::now();
        set_link(active, Side::Customer, true)?;
        let back = only_on(active, Duration::from_secs(60), "after the restore");
        let back_after = t.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        let at_restore = ping.stop()?;
        back?;
        Ok(StandbyRun {
            standby_by: how,
            active: active.id(),
            standby: standby.id(),
            settled_after_ms: settled.as_secs_f64() * 1000.0,
            outage_ms: gap * 1000.0,
            lost_at_cut,
            lost_at_restore: outage(&at_restore).1,
            back_on_active_after_ms: back_after.as_secs_f64() * 1000.0,
        })
    })();
    // ECMP again, whatever happened.
    configure_site(None)?;
    both_ways(2, Duration::from_secs(60), "back to both PoPs")?;
    result
}

/// `runs` active/standby runs; prints each as a JSON line and a summary.
pub fn run_standby(runs: usize, how: crate::Standby) -> Result<()> {
    for i in 1..=runs {
        let r = standby_once(how)?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: {} standby by {:?}; both routers on {} alone after {:.0} ms; its cut: outage {:.0} ms ({} pings lost); restored: {} lost, back on it after {:.0} ms",
            r.standby,
            r.standby_by,
            r.active,
            r.settled_after_ms,
            r.outage_ms,
            r.lost_at_cut,
            r.lost_at_restore,
            r.back_on_active_after_ms
        );
    }
    Ok(())
}

/// One `kill -9` and restart of an edge agent (`cic lab restart-edge`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartRun {
    /// The PoP whose `cic edge` was killed (the one carrying on-prem → VM).
    pub pop: String,
    pub lost: u32,
    /// Longest gap between replies.
    pub max_gap_ms: f64,
    /// Replies received, of each family (0: it does not work at all).
    pub replies: u32,
    pub replies_ipv6: u32,
    /// The same for an IPv6 flow through the same PoP.
    pub lost_ipv6: u32,
    pub max_gap_ipv6_ms: f64,
    /// Fewest next hops the customer router had toward the VPC (either family) while
    /// the agent was away and back (2: it kept the killed PoP's routes).
    pub min_next_hops_customer: usize,
    /// The same at the fabric, toward on-prem.
    pub min_next_hops_fabric: usize,
    /// Fewest routes (IPv4 and IPv6) the killed edge's routing instance kept in its
    /// kernel table, and how many it had before.
    pub min_edge_routes: usize,
    pub edge_routes_before: usize,
    /// From the kill until the new agent's sessions are up and both routers use both
    /// PoPs.
    pub back_after_ms: f64,
}

/// A running process: pid, command line, environment.
pub(crate) type Process = (i32, Vec<String>, Vec<(String, String)>);

/// Starts `pop`'s edge agent again with the arguments and environment it had (from
/// [`edge_process`]), its output appended to its log, recorded for `cic lab down`.
pub(crate) fn start_edge_again(pop: Pop, args: &[String], env: &[(String, String)]) -> Result<()> {
    let name = format!("edge-{}", pop.id());
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(format!("{}/{name}.log", crate::STATE_DIR))?;
    let (bin, rest) = args.split_first().context("the edge's command line")?;
    let mut cmd = Command::new(bin);
    cmd.args(rest)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("start the edge agent again")?;
    crate::record_pid(std::path::Path::new(crate::STATE_DIR), &name, child.id())?;
    Ok(())
}

/// The running edge agent of `pop`: its pid, command line and environment.
pub(crate) fn edge_process(pop: Pop) -> Result<Process> {
    let pids = std::fs::read_to_string(format!("{}/pids", crate::STATE_DIR))?;
    let name = format!("edge-{}", pop.id());
    let pid: i32 = pids
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == name)
        .filter_map(|(_, p)| p.trim().parse().ok())
        .rfind(|p| !crate::is_zombie(*p))
        .ok_or_else(|| anyhow!("no running {name} in the lab"))?;
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|c| *c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let args = split(std::fs::read(format!("/proc/{pid}/cmdline"))?);
    let env = split(std::fs::read(format!("/proc/{pid}/environ"))?)
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    Ok((pid, args, env))
}

/// Routes the edge agent programmed (`proto bgp`) in the routing instances of `pop`.
fn edge_routes(pop: Pop) -> usize {
    let prefix = format!("{}-", pop.ns());
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .flat_map(|n| [(n.clone(), "-4"), (n, "-6")])
        .map(|(n, family)| {
            Command::new("ip")
                .args(["-n", &n, family, "route", "show", "proto", "bgp"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
                .unwrap_or(0)
        })
        .sum()
}

/// The customer's BIRD of the running lab (its control socket from lab.json).
fn site_bird() -> Result<crate::BirdCtl> {
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}/lab.json",
        crate::STATE_DIR
    ))?)?;
    let sock = info["bird"]["customer"]
        .as_str()
        .ok_or_else(|| anyhow!("no customer BIRD socket in lab.json"))?;
    Ok(crate::BirdCtl(sock.into()))
}

/// Kills the agent of the PoP carrying traffic with SIGKILL, starts it again with the
/// same command line, and watches traffic and routes meanwhile.
pub fn restart_once() -> Result<RestartRun> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the restart")
        .context("the lab must be up with two PoPs (cic lab up --pops 2)")?;
    let pop = carrying_pop(&pops)?;
    let (pid, args, env) = edge_process(pop)?;
    let site = site_bird()?;
    let protocol = crate::customer_protocol_at(pop)?;
    let before = edge_routes(pop);

    let stop = AtomicBool::new(false);
    let (min_site, min_fabric, min_edge) = (
        AtomicUsize::new(usize::MAX),
        AtomicUsize::new(usize::MAX),
        AtomicUsize::new(usize::MAX),
    );
    let flow6 = Flow::V6(source6_through(pop)?);
    let outcome = std::thread::scope(|s| -> Result<(Replies, Replies, Duration)> {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for (ns, prefix, min) in [
                    (NS_SITE, "10.128.0.0/24", &min_site),
                    (NS_SITE, VPC6, &min_site),
                    (NS_FABRIC, "192.168.10.0/24", &min_fabric),
                    (NS_FABRIC, LAN6, &min_fabric),
                ] {
                    min.fetch_min(kernel_next_hops(ns, prefix), Ordering::Relaxed);
                }
                min_edge.fetch_min(edge_routes(pop), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let result = (|| {
            let (ping, ping6) = (Pinger::start()?, Pinger::flow(&flow6)?);
            std::thread::sleep(Duration::from_secs(1));
            let t = std::time::Instant::now();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            wait_until(
                Duration::from_secs(5),
                "the killed agent to be gone",
                || crate::is_zombie(pid).then_some(()),
            )?;
            start_edge_again(pop, &args, &env)?;
            wait_until(
                Duration::from_secs(90),
                "the customer's session to the restarted edge",
                || {
                    let s = site.protocol(&protocol);
                    (s.contains("Established") && !s.contains("graceful restart active"))
                        .then_some(())
                },
            )?;
            both_ways(2, Duration::from_secs(60), "after the restart")?;
            let back = t.elapsed();
            std::thread::sleep(Duration::from_secs(1));
            Ok((ping.stop()?, ping6.stop()?, back))
        })();
        stop.store(true, Ordering::Relaxed);
        result
    });
    let (r4, r6, back) = outcome?;
    let ((gap, lost), (gap6, lost6)) = (outage(&r4), outage(&r6));
    Ok(RestartRun {
        pop: pop.id(),
        lost,
        replies: r4.times.len() as u32,
        replies_ipv6: r6.times.len() as u32,
        max_gap_ms: gap * 1000.0,
        lost_ipv6: lost6,
        max_gap_ipv6_ms: gap6 * 1000.0,
        min_next_hops_customer: min_site.into_inner(),
        min_next_hops_fabric: min_fabric.into_inner(),
        min_edge_routes: min_edge.into_inner(),
        edge_routes_before: before,
        back_after_ms: back.as_secs_f64() * 1000.0,
    })
}

/// `runs` restarts; prints each as a JSON line.
pub fn restart_runs(runs: usize) -> Result<()> {
    for i in 1..=runs {
        let r = restart_once()?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: kill -9 of the {} agent: {} pings lost (longest gap {:.0} ms), IPv6 {} ({:.0} ms); next hops kept: customer {}, fabric {}; edge routes {} of {}; back after {:.0} ms",
            r.pop,
            r.lost,
            r.max_gap_ms,
            r.lost_ipv6,
            r.max_gap_ipv6_ms,
            r.min_next_hops_customer,
            r.min_next_hops_fabric,
            r.min_edge_routes,
            r.edge_routes_before,
            r.back_after_ms
        );
    }
    Ok(())
}
