//! `cic lab failover --public`: the same cut as [`crate::failover`], for the flow from the
//! on-prem server's public address to the public service: the customer's router and the
//! services routers must both move to the other PoP's public connection (BFD on the
//! customer's session, the edge withdrawing the customer's prefix from the services
//! routers when it goes down).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use cic_peers::wait_until;
use serde::Serialize;

use crate::failover::{Flow, Pinger, Side, outage, set_link};
use crate::public::{
    OBJECT_STORAGE_HOST, OBJECT_STORAGE_PREFIX, PUBLIC_HOST, PUBLIC_PREFIX, services_ns,
};
use crate::{NS_SITE, Pop, kernel_next_hops};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicRun {
    /// The PoP whose link was cut.
    pub pop: String,
    pub side: Side,
    /// Longest gap between replies after the cut.
    pub outage_ms: f64,
    pub lost_at_cut: u32,
    /// Pings lost while the PoP came back and traffic spread over both again.
    pub lost_at_restore: u32,
    /// From restoring the link until both routers use both PoPs again.
    pub rebalanced_after_ms: f64,
}

/// The customer's router has `n` next hops toward the service, and the services routers
/// of `n` PoPs a route back over their own.
fn both_ways(n: usize, timeout: Duration, what: &str) -> Result<()> {
    wait_until(
        timeout,
        &format!("{what}: {OBJECT_STORAGE_PREFIX} with {n} next hop(s) in {NS_SITE}"),
        || (kernel_next_hops(NS_SITE, OBJECT_STORAGE_PREFIX) == n).then_some(()),
    )?;
    wait_until(
        timeout,
        &format!("{what}: {PUBLIC_PREFIX} at the services routers of {n} PoP(s)"),
        || {
            let back: usize = (1..=2)
                .map(|p| kernel_next_hops(&services_ns(p), PUBLIC_PREFIX))
                .sum();
            (back == n).then_some(())
        },
    )?;
    Ok(())
}

/// One cut and restore of the PoP carrying the public flow.
pub fn once(side: Side) -> Result<PublicRun> {
    if side == Side::Cloud {
        bail!("--public cuts the customer's side (customer or silent)");
    }
    let pops = [Pop(1), Pop(2)];
    both_ways(2, Duration::from_secs(60), "before the cut").map_err(|e| {
        anyhow!("{e}: the lab must be up with two PoPs and --public (cic lab up --public)")
    })?;
    let pop = crate::failover::carrying(&pops, OBJECT_STORAGE_HOST, PUBLIC_HOST, Pop::public_if)?;
    let ping = Pinger::flow(&Flow::Public)?;
    // Traffic flows for a second before the cut.
    std::thread::sleep(Duration::from_secs(1));
    set_link(pop, side, false)?;
    let cut = both_ways(1, Duration::from_secs(10), "after the cut");
    // A second of traffic on the remaining PoP.
    std::thread::sleep(Duration::from_secs(1));
    let r = ping.stop()?;
    if let Err(e) = cut {
        set_link(pop, side, true)?;
        bail!("{e}");
    }
    let (gap, lost_at_cut) = outage(&r);
    let ping = Pinger::flow(&Flow::Public)?;
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    set_link(pop, side, true)?;
    let back = both_ways(2, Duration::from_secs(60), "after the restore");
    let rebalanced = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let back_r = ping.stop()?;
    back?;
    Ok(PublicRun {
        pop: pop.id(),
        side,
        outage_ms: gap * 1000.0,
        lost_at_cut,
        lost_at_restore: outage(&back_r).1,
        rebalanced_after_ms: rebalanced.as_secs_f64() * 1000.0,
    })
}

/// `runs` cuts and restores; a JSON line each and a summary.
pub fn run(runs: usize, side: Side) -> Result<()> {
    let mut outages = Vec::new();
    for i in 1..=runs {
        let r = once(side)?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "run {i}: cut {} ({:?} side), public flow {PUBLIC_HOST} → {OBJECT_STORAGE_HOST}: outage {:.0} ms ({} pings lost); restored: {} lost, both PoPs in use after {:.0} ms",
            r.pop, r.side, r.outage_ms, r.lost_at_cut, r.lost_at_restore, r.rebalanced_after_ms
        );
        outages.push(r.outage_ms);
    }
    outages.sort_by(f64::total_cmp);
    let q =
        |p: f64| outages[((outages.len() as f64 * p).ceil() as usize).clamp(1, outages.len()) - 1];
    eprintln!(
        "public outage over {runs} runs: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        q(0.5),
        q(0.9),
        q(1.0)
    );
    Ok(())
}
