//! Egress shaping toward customers: a token bucket (`tbf`) at the root of a port, through
//! `tc` (iproute2; rtnetlink has no builder for tbf). cic's qdiscs carry the handle
//! `cafe:`, so it removes only what it made.

use std::process::Command;

use crate::{Error, Result};

/// The handle of the qdiscs cic makes.
pub const HANDLE: &str = "cafe:";

fn tc(netns: Option<&str>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("tc");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| Error::Io(format!("tc: {e}")))?;
    if !out.status.success() {
        return Err(Error::Netlink(format!(
            "tc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The root qdiscs cic made in `netns`: (device, rate in bytes per second).
pub fn shaped(netns: Option<&str>) -> Result<Vec<(String, u64)>> {
    let text = tc(netns, &["-j", "qdisc", "show"])?;
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| Error::Io(format!("tc -j qdisc show: {e}")))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["root"] == true && q["handle"] == HANDLE && q["kind"] == "tbf")
        .filter_map(|q| {
            Some((
                q["dev"].as_str()?.to_string(),
                q["options"]["rate"].as_u64()?,
            ))
        })
        .collect())
}

/// Limits what `dev` sends to `mbps` Mbit/s (a no-op when it already is).
pub fn shape(netns: Option<&str>, dev: &str, mbps: u64) -> Result<()> {
    shape_from(netns, &shaped(netns)?, dev, mbps)
}

/// Makes the shaped ports of `netns` exactly `want` (device → Mbit/s), reading the
/// qdiscs once; returns the ports that failed, with why.
pub fn reconcile(
    netns: Option<&str>,
    want: &std::collections::BTreeMap<String, u64>,
) -> Result<Vec<(String, Error)>> {
    let have = shaped(netns)?;
    let mut failed = Vec::new();
    for (dev, mbps) in want {
        if let Err(e) = shape_from(netns, &have, dev, *mbps) {
            failed.push((dev.clone(), e));
        }
    }
    for (dev, _) in have.iter().filter(|(d, _)| !want.contains_key(d)) {
        if let Err(e) = tc(netns, &["qdisc", "del", "dev", dev, "root"]) {
            failed.push((dev.clone(), e));
        }
    }
    Ok(failed)
}

/// `shape` given what is shaped already.
fn shape_from(netns: Option<&str>, have: &[(String, u64)], dev: &str, mbps: u64) -> Result<()> {
    let rate = mbps * 125_000; // bytes per second
    if have.iter().any(|(d, r)| d == dev && *r == rate) {
        return Ok(());
    }
    // 10 ms of traffic, and never less than a few jumbo frames.
    let burst = (rate / 100).max(64 * 1024).to_string();
    tc(
        netns,
        &[
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "handle",
            HANDLE,
            "tbf",
            "rate",
            &format!("{mbps}mbit"),
            "burst",
            &burst,
            "latency",
            "50ms",
        ],
    )
    .map(|_| ())
}

/// Removes cic's shaping from `dev`.
pub fn unshape(netns: Option<&str>, dev: &str) -> Result<()> {
    if !shaped(netns)?.iter().any(|(d, _)| d == dev) {
        return Ok(());
    }
    tc(netns, &["qdisc", "del", "dev", dev, "root"]).map(|_| ())
}
