//! `cic lab failover`: in a running two-PoP lab, cut the cross-connect of the PoP that
//! carries the on-prem → VM flow while pings cross every 10 ms, and measure the outage;
//! then restore it and count what is lost while traffic spreads over both PoPs again.
//! `--side cloud` cuts that PoP's link to the cloud fabric instead: its customer session
//! stays up, and the PoP must withdraw the VPC prefix from the customer (it exports it
//! only while the fabric covers it), or the customer keeps sending into a dead end.
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

use crate::{NS_FABRIC, NS_HOST, NS_SITE, ONPREM_HOST, Pop, VM, kernel_next_hops};

/// Which of a PoP's links is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The cross-connect to the customer's router.
    Customer,
    /// The link to the cloud fabric router.
    Cloud,
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Side, String> {
        match s {
            "customer" => Ok(Side::Customer),
            "cloud" => Ok(Side::Cloud),
            other => Err(format!("{other:?}: use customer or cloud")),
        }
    }
}

impl Side {
    fn link(self) -> &'static str {
        match self {
            Side::Customer => "xc-site1",
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
    pub customer_session_kept: bool,
    /// Longest gap between replies after the cut.
    pub outage_ms: f64,
    pub lost_at_cut: u32,
    /// Pings lost while the PoP came back and traffic spread over both again.
    pub lost_at_restore: u32,
    /// From restoring the link until both routers use both PoPs again.
    pub rebalanced_after_ms: f64,
}

struct Pinger {
    child: Child,
}

impl Pinger {
    fn start() -> Result<Pinger> {
        let child = Command::new("ip")
            .args([
                "netns", "exec", NS_HOST, "ping", "-D", "-n", "-i", "0.01", "-W", "1", VM,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start ping")?;
        Ok(Pinger { child })
    }

    /// Stops it (SIGINT, so it prints its summary) and returns (reply times, sent).
    fn stop(mut self) -> Result<(Vec<f64>, u32)> {
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
        Ok((times, sent))
    }
}

fn set_link(pop: Pop, side: Side, up: bool) -> Result<()> {
    crate::ns(
        &pop.ns(),
        &["link", "set", side.link(), if up { "up" } else { "down" }],
    )
}

/// The PoP the customer router sends the on-prem → VM flow through.
fn carrying_pop(pops: &[Pop]) -> Result<Pop> {
    let out = Command::new("ip")
        .args([
            "-n",
            NS_SITE,
            "route",
            "get",
            VM,
            "from",
            ONPREM_HOST,
            "iif",
            "lan0",
        ])
        .output()?;
    let s = String::from_utf8_lossy(&out.stdout);
    pops.iter()
        .copied()
        .find(|p| s.contains(&format!("dev {} ", p.customer_if())))
        .ok_or_else(|| anyhow!("the flow uses no PoP of the lab: {s}"))
}

fn both_ways(n: usize, timeout: Duration, what: &str) -> Result<()> {
    for (ns, prefix) in [(NS_SITE, "10.128.0.0/24"), (NS_FABRIC, "192.168.10.0/24")] {
        wait_until(
            timeout,
            &format!("{what}: {prefix} with {n} next hop(s) in {ns}"),
            || (kernel_next_hops(ns, prefix) == n).then_some(()),
        )?;
    }
    Ok(())
}

/// One cut and restore.
pub fn once(side: Side) -> Result<Run> {
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the cut")
        .context("the lab must be up with two PoPs (cic lab up --pops 2)")?;
    let pop = carrying_pop(&pops)?;
    let site = site_bird()?;
    let established = || site.protocol(&pop.id()).contains("Established");

    let ping = Pinger::start()?;
    // Traffic flows for a second before the cut.
    std::thread::sleep(Duration::from_secs(1));
    set_link(pop, side, false)?;
    let cut = both_ways(1, Duration::from_secs(10), "after the cut");
    // The customer's session with the cut PoP, a moment after the routers moved.
    let mut kept = established();
    // A second of traffic on the remaining PoP.
    std::thread::sleep(Duration::from_secs(1));
    kept &= established();
    let (times, sent) = ping.stop()?;
    if let Err(e) = cut {
        set_link(pop, side, true)?;
        bail!("{e}");
    }
    let outage = times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
    let lost_at_cut = sent.saturating_sub(times.len() as u32);

    let ping = Pinger::start()?;
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    set_link(pop, side, true)?;
    let back = both_ways(2, Duration::from_secs(60), "after the restore");
    let rebalanced = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (times, sent) = ping.stop()?;
    back?;
    Ok(Run {
        pop: pop.id(),
        side,
        customer_session_kept: kept,
        outage_ms: outage * 1000.0,
        lost_at_cut,
        lost_at_restore: sent.saturating_sub(times.len() as u32),
        rebalanced_after_ms: rebalanced.as_secs_f64() * 1000.0,
    })
}

/// `runs` cuts and restores; prints each as a JSON line and a summary.
pub fn run(runs: usize, side: Side) -> Result<()> {
    let mut outages = Vec::new();
    for i in 1..=runs {
        let r = once(side)?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: cut {} ({:?} side): outage {:.0} ms ({} pings lost); restored: {} lost, both PoPs in use after {:.0} ms",
            r.pop, r.side, r.outage_ms, r.lost_at_cut, r.lost_at_restore, r.rebalanced_after_ms
        );
        outages.push(r.outage_ms);
    }
    outages.sort_by(f64::total_cmp);
    let q =
        |p: f64| outages[((outages.len() as f64 * p).ceil() as usize).clamp(1, outages.len()) - 1];
    eprintln!(
        "outage over {runs} runs: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        q(0.5),
        q(0.9),
        q(1.0)
    );
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

/// Gives the customer's router `standby` (none: both PoPs in use again).
fn configure_site(standby: Option<(Pop, crate::Standby)>) -> Result<()> {
    let site = site_bird()?;
    let path = format!("{}/site-standby.conf", crate::STATE_DIR);
    std::fs::write(&path, crate::site_bird_conf(&[Pop(1), Pop(2)], standby))?;
    let out = Command::new("birdc")
        .arg("-s")
        .arg(&site.0)
        .args(["configure", &format!("\"{path}\"")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !text.contains("Reconfigured") && !text.contains("Reconfiguration in progress") {
        bail!("the customer's BIRD refused {path}: {text}");
    }
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
        let (times, sent) = ping.stop()?;
        if let Err(e) = cut {
            set_link(active, Side::Customer, true)?;
            return Err(e);
        }
        let outage = times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
        let lost_at_cut = sent.saturating_sub(times.len() as u32);

        let ping = Pinger::start()?;
        std::thread::sleep(Duration::from_millis(500));
        let t = std::time::Instant::now();
        set_link(active, Side::Customer, true)?;
        let back = only_on(active, Duration::from_secs(60), "after the restore");
        let back_after = t.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        let (times, sent) = ping.stop()?;
        back?;
        Ok(StandbyRun {
            standby_by: how,
            active: active.id(),
            standby: standby.id(),
            settled_after_ms: settled.as_secs_f64() * 1000.0,
            outage_ms: outage * 1000.0,
            lost_at_cut,
            lost_at_restore: sent.saturating_sub(times.len() as u32),
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
    /// Fewest next hops the customer router had toward the VPC while the agent was
    /// away and back (2: it kept the killed PoP's routes).
    pub min_next_hops_customer: usize,
    /// The same at the fabric, toward on-prem.
    pub min_next_hops_fabric: usize,
    /// Fewest routes the killed edge's routing instance kept in its kernel table, and
    /// how many it had before.
    pub min_edge_routes: usize,
    pub edge_routes_before: usize,
    /// From the kill until the new agent's sessions are up and both routers use both
    /// PoPs.
    pub back_after_ms: f64,
}

/// A running process: pid, command line, environment.
type Process = (i32, Vec<String>, Vec<(String, String)>);

/// The pid, command line and environment of the running edge agent of `pop`.
fn edge_process(pop: Pop) -> Result<Process> {
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
        .map(|n| {
            Command::new("ip")
                .args(["-n", &n, "route", "show", "proto", "bgp"])
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
    let before = edge_routes(pop);

    let stop = AtomicBool::new(false);
    let (min_site, min_fabric, min_edge) = (
        AtomicUsize::new(usize::MAX),
        AtomicUsize::new(usize::MAX),
        AtomicUsize::new(usize::MAX),
    );
    let outcome = std::thread::scope(|s| -> Result<(Vec<f64>, u32, Duration)> {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                min_site.fetch_min(
                    kernel_next_hops(NS_SITE, "10.128.0.0/24"),
                    Ordering::Relaxed,
                );
                min_fabric.fetch_min(
                    kernel_next_hops(NS_FABRIC, "192.168.10.0/24"),
                    Ordering::Relaxed,
                );
                min_edge.fetch_min(edge_routes(pop), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let result = (|| {
            let ping = Pinger::start()?;
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
            let name = format!("edge-{}", pop.id());
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(format!("{}/{name}.log", crate::STATE_DIR))?;
            let mut cmd = Command::new(&args[0]);
            cmd.args(&args[1..])
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd.spawn().context("start the edge agent again")?;
            crate::record_pid(std::path::Path::new(crate::STATE_DIR), &name, child.id())?;
            drop(child);
            wait_until(
                Duration::from_secs(90),
                "the customer's session to the restarted edge",
                || {
                    let s = site.protocol(&pop.id());
                    (s.contains("Established") && !s.contains("graceful restart active"))
                        .then_some(())
                },
            )?;
            both_ways(2, Duration::from_secs(60), "after the restart")?;
            let back = t.elapsed();
            std::thread::sleep(Duration::from_secs(1));
            let (times, sent) = ping.stop()?;
            Ok((times, sent, back))
        })();
        stop.store(true, Ordering::Relaxed);
        result
    });
    let (times, sent, back) = outcome?;
    Ok(RestartRun {
        pop: pop.id(),
        lost: sent.saturating_sub(times.len() as u32),
        max_gap_ms: times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max) * 1000.0,
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
            "run {i}: kill -9 of the {} agent: {} pings lost (longest gap {:.0} ms); next hops kept: customer {}, fabric {}; edge routes {} of {}; back after {:.0} ms",
            r.pop,
            r.lost,
            r.max_gap_ms,
            r.min_next_hops_customer,
            r.min_next_hops_fabric,
            r.min_edge_routes,
            r.edge_routes_before,
            r.back_after_ms
        );
    }
    Ok(())
}
