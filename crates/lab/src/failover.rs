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

mod restart;
mod standby;
pub use restart::*;
pub use standby::*;

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
    /// The sequence numbers answered (each once).
    answered: std::collections::BTreeSet<u32>,
    window: (f64, f64),
}

impl Replies {
    /// Requests lost: those unanswered before the last one answered. A request still on
    /// its way when the pinger was stopped (sent a moment before, its reply not yet read)
    /// is not a loss; counting every request sent less the replies took it for one, a
    /// race with the stop that a busy machine loses (one "lost at restore" in a suite run
    /// of 2026-12-08).
    pub(crate) fn lost(&self) -> u32 {
        // ping numbers its requests from 1: all up to the last answered were sent before
        // it, and those of them unanswered are lost (none answered: every one).
        match self.answered.last() {
            Some(&last) => last.saturating_sub(self.answered.len() as u32),
            None => self.sent,
        }
    }
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
        let replies: Vec<&str> = out.lines().filter(|l| l.contains("bytes from")).collect();
        let times: Vec<f64> = replies
            .iter()
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        let answered = replies.iter().filter_map(|l| icmp_seq(l)).collect();
        let sent = out
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no ping summary in: {out}"))?;
        Ok(Replies {
            times,
            sent,
            answered,
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
        r.lost(),
    )
}

/// The request number of a reply line of ping's (`… icmp_seq=12 ttl=63 …`).
fn icmp_seq(line: &str) -> Option<u32> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("icmp_seq="))?
        .parse()
        .ok()
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

#[cfg(test)]
mod replies_tests {
    use super::*;

    #[test]
    fn a_request_on_its_way_at_the_stop_is_not_lost_one_unanswered_before_the_last_is() {
        let r = |seqs: &[u32], sent| Replies {
            times: vec![],
            sent,
            answered: seqs.iter().copied().collect(),
            window: (0.0, 1.0),
        };
        assert_eq!(
            r(&[1, 2, 3, 4], 5).lost(),
            0,
            "the fifth on its way at the stop"
        );
        assert_eq!(r(&[1, 2, 4, 5], 5).lost(), 1);
        assert_eq!(r(&[3, 4], 4).lost(), 2, "the first two unanswered");
        assert_eq!(r(&[], 7).lost(), 7, "none answered");
        assert_eq!(
            icmp_seq("[1733616000.123456] 64 bytes from fd10::1: icmp_seq=12 ttl=63 time=0.1 ms"),
            Some(12)
        );
    }
}
