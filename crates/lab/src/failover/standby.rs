//! `cic lab failover --standby`: one PoP active, the other standby (the customer prepends
//! its AS path toward it, or tags its routes with the local-preference community), and the
//! active one cut.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cic_peers::wait_until;
use serde::Serialize;

use super::{Pinger, Side, both_ways, carrying_pop, outage, set_link, site_bird};
use crate::{NS_FABRIC, NS_SITE, Pop};

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
