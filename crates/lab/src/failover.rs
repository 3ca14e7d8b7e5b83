//! `cic lab failover`: in a running two-PoP lab, cut the cross-connect of the PoP that
//! carries the on-prem → VM flow while pings cross every 10 ms, and measure the outage;
//! then restore it and count what is lost while traffic spreads over both PoPs again.
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The PoP whose cross-connect was cut.
    pub pop: String,
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

fn set_link(pop: Pop, up: bool) -> Result<()> {
    crate::ns(
        &pop.ns(),
        &["link", "set", "xc-site1", if up { "up" } else { "down" }],
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
pub fn once() -> Result<Run> {
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the cut")
        .context("the lab must be up with two PoPs (cic lab up --pops 2)")?;
    let pop = carrying_pop(&pops)?;

    let ping = Pinger::start()?;
    // Traffic flows for a second before the cut.
    std::thread::sleep(Duration::from_secs(1));
    set_link(pop, false)?;
    let cut = both_ways(1, Duration::from_secs(10), "after the cut");
    // A second of traffic on the remaining PoP.
    std::thread::sleep(Duration::from_secs(1));
    let (times, sent) = ping.stop()?;
    if let Err(e) = cut {
        set_link(pop, true)?;
        bail!("{e}");
    }
    let outage = times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
    let lost_at_cut = sent.saturating_sub(times.len() as u32);

    let ping = Pinger::start()?;
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    set_link(pop, true)?;
    let back = both_ways(2, Duration::from_secs(60), "after the restore");
    let rebalanced = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (times, sent) = ping.stop()?;
    back?;
    Ok(Run {
        pop: pop.id(),
        outage_ms: outage * 1000.0,
        lost_at_cut,
        lost_at_restore: sent.saturating_sub(times.len() as u32),
        rebalanced_after_ms: rebalanced.as_secs_f64() * 1000.0,
    })
}

/// `runs` cuts and restores; prints each as a JSON line and a summary.
pub fn run(runs: usize) -> Result<()> {
    let mut outages = Vec::new();
    for i in 1..=runs {
        let r = once()?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: cut {}: outage {:.0} ms ({} pings lost); restored: {} lost, both PoPs in use after {:.0} ms",
            r.pop, r.outage_ms, r.lost_at_cut, r.lost_at_restore, r.rebalanced_after_ms
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
