//! `cic lab restart-edge`: an edge agent killed with `kill -9` and started again, and what
//! its customers and the fabric lost meanwhile.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cic_peers::wait_until;
use serde::Serialize;

use super::{Flow, Pinger, Replies, both_ways, carrying_pop, outage, site_bird, source6_through};
use crate::{LAN6, NS_FABRIC, NS_SITE, Pop, VPC6, kernel_next_hops};

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
    let name = format!("edge-{}", pop.id());
    let pid = crate::processes()?
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p as i32)
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
