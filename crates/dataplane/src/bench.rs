//! `cic bench routes`: installing and removing many routes in a namespace, cic's batches
//! against cic a route at a time and against iproute2's `ip -batch` (the same routes,
//! each contender in a fresh namespace of its own, made the same way). Needs root.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::{Value, json};

use crate::{Error, Netlink, PROTO_BGP, Result, RouteChange, netns};

/// The contenders, in the order each round runs them.
const CONTENDERS: [&str; 3] = ["cic-batch", "cic-one-at-a-time", "ip-batch"];

/// `routes` IPv4 /24s of 10.0.0.0/8 (every third one ECMP over two next hops), installed and then
/// removed by each contender, `rounds` times; wall time and the CPU time it cost (the
/// process's own for cic, the `ip` child's for iproute2, user and system apart). `ip
/// -batch` is timed as a process, its start and reading its file included: what it costs
/// with an empty file is reported beside it.
pub async fn routes(routes: usize, rounds: usize) -> Result<Value> {
    if !crate::is_root() {
        return Err(Error::Invalid("cic bench routes needs root".into()));
    }
    if routes == 0 || routes > 1 << 16 || rounds == 0 {
        return Err(Error::Invalid(
            "--routes must be 1–65536 and --rounds at least 1".into(),
        ));
    }
    let table: Vec<RouteChange> = (0..routes as u32)
        .map(|i| {
            let p =
                IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).expect("a /24");
            let hops = match i % 3 {
                0 => vec![hop(2), hop(3)],
                _ => vec![hop(2)],
            };
            RouteChange::Replace(p, hops)
        })
        .collect();
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..rounds {
        // Each round in another order: a namespace's teardown (the kernel's, after the
        // bench has gone on) weighs on whichever contender comes next.
        for k in 0..CONTENDERS.len() {
            let who = CONTENDERS[(round + k) % CONTENDERS.len()];
            let ns = format!("cicbench-rt{}-{round}-{who}", std::process::id());
            let r = one(who, &ns, &table).await;
            let _ = crate::purge(&format!("{ns}-peer")).await;
            let _ = crate::purge(&ns).await;
            let (install, remove, empty) = r?;
            let mut run = json!({
                "contender": who,
                "round": round,
                "install": install.json(routes),
                "remove": remove.json(routes),
            });
            if let Some(e) = empty {
                run["emptyBatch"] = e.json(0);
            }
            runs.push(run);
        }
    }
    Ok(json!({
        "routes": routes,
        "ecmpEveryThird": true,
        // cic-batch's requests to a datagram; cic-one-at-a-time and `ip -batch` wait
        // for each request's answer before the next.
        "cicBatch": crate::rtnl::BATCH,
        "runs": runs,
    }))
}

fn hop(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 255, last))
}

/// What one step cost: wall time and CPU time (user, system).
struct Cost {
    wall: Duration,
    user: Duration,
    system: Duration,
}

impl Cost {
    fn json(&self, routes: usize) -> Value {
        let mut j = json!({
            "seconds": round6(self.wall.as_secs_f64()),
            "cpuUserSeconds": round6(self.user.as_secs_f64()),
            "cpuSystemSeconds": round6(self.system.as_secs_f64()),
        });
        if routes > 0 {
            j["routesPerSecond"] = json!((routes as f64 / self.wall.as_secs_f64()).round());
        }
        j
    }
}

/// To the microsecond.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn cpu(who: UsageWho) -> Result<(Duration, Duration)> {
    let u = getrusage(who).map_err(|e| Error::Io(format!("getrusage: {e}")))?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_micros(t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64)
    };
    Ok((d(u.user_time()), d(u.system_time())))
}

/// Times `f`, and the CPU time of `who` it took.
async fn timed<F: std::future::Future<Output = Result<()>>>(who: UsageWho, f: F) -> Result<Cost> {
    let (u0, s0) = cpu(who)?;
    let t = Instant::now();
    f.await?;
    let wall = t.elapsed();
    let (u1, s1) = cpu(who)?;
    Ok(Cost {
        wall,
        user: u1.saturating_sub(u0),
        system: s1.saturating_sub(s0),
    })
}

/// A fresh namespace `ns` with a link to a peer namespace on 192.168.255.1/24, then the
/// table installed and removed by `who`; each checked by a dump afterwards (not timed).
async fn one(who: &str, ns: &str, table: &[RouteChange]) -> Result<(Cost, Cost, Option<Cost>)> {
    let io = |e: std::io::Error| Error::Io(e.to_string());
    netns::add(ns).map_err(io)?;
    netns::add(&format!("{ns}-peer")).map_err(io)?;
    let nl = Netlink::open(Some(ns))?;
    nl.create_veth("rt0", "rt1", Some(&format!("{ns}-peer")))
        .await?;
    let link = nl
        .link("rt0")
        .await?
        .ok_or_else(|| Error::NotFound("rt0".into()))?;
    nl.add_address(
        link.index,
        "192.168.255.1/24".parse::<IpNet>().expect("prefix"),
    )
    .await?;
    nl.set_up(link.index, None).await?;
    let removal: Vec<RouteChange> = table
        .iter()
        .map(|c| RouteChange::Delete(c.prefix()))
        .collect();
    let install = run(who, ns, &nl, table).await?;
    let want: std::collections::BTreeMap<IpNet, Vec<IpAddr>> = table
        .iter()
        .filter_map(|c| match c {
            RouteChange::Replace(p, hops) => Some((*p, hops.clone())),
            RouteChange::Delete(_) => None,
        })
        .collect();
    let held = nl.routes(PROTO_BGP).await?;
    if held != want {
        let wrong = want
            .iter()
            .filter(|(p, h)| held.get(*p) != Some(*h))
            .count();
        return Err(Error::Invalid(format!(
            "{who}: after the install {} routes, {wrong} of the {} wanted missing or with other next hops",
            held.len(),
            want.len()
        )));
    }
    let remove = run(who, ns, &nl, &removal).await?;
    if !nl.routes(PROTO_BGP).await?.is_empty() {
        return Err(Error::Invalid(format!(
            "{who}: routes left after the removal"
        )));
    }
    let empty = match who {
        "ip-batch" => Some(run(who, ns, &nl, &[]).await?),
        _ => None,
    };
    Ok((install, remove, empty))
}

/// `changes` made by `who`, timed.
async fn run(who: &str, ns: &str, nl: &Netlink, changes: &[RouteChange]) -> Result<Cost> {
    match who {
        "cic-batch" => timed(UsageWho::RUSAGE_SELF, apply(nl, changes)).await,
        "cic-one-at-a-time" => timed(UsageWho::RUSAGE_SELF, one_at_a_time(nl, changes)).await,
        _ => {
            let file = std::env::temp_dir().join(format!("{ns}.batch"));
            std::fs::write(&file, ip_lines(changes)).map_err(|e| Error::Io(e.to_string()))?;
            let r = timed(UsageWho::RUSAGE_CHILDREN, ip_batch(ns, &file)).await;
            let _ = std::fs::remove_file(file);
            r
        }
    }
}

async fn apply(nl: &Netlink, changes: &[RouteChange]) -> Result<()> {
    match nl.apply_routes(changes, PROTO_BGP).await.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

async fn one_at_a_time(nl: &Netlink, changes: &[RouteChange]) -> Result<()> {
    for c in changes {
        match c {
            RouteChange::Replace(p, hops) => nl.replace_route(*p, hops, PROTO_BGP).await?,
            RouteChange::Delete(p) => nl.del_route(*p, PROTO_BGP).await?,
        }
    }
    Ok(())
}

/// The changes as `ip -batch` lines.
fn ip_lines(changes: &[RouteChange]) -> String {
    let mut out = String::new();
    for c in changes {
        match c {
            RouteChange::Replace(p, hops) if hops.len() == 1 => {
                out += &format!("route replace {p} via {} proto bgp\n", hops[0]);
            }
            RouteChange::Replace(p, hops) => {
                out += &format!("route replace {p} proto bgp");
                for h in hops {
                    out += &format!(" nexthop via {h}");
                }
                out += "\n";
            }
            RouteChange::Delete(p) => out += &format!("route del {p} proto bgp\n"),
        }
    }
    out
}

async fn ip_batch(ns: &str, file: &std::path::Path) -> Result<()> {
    let out = tokio::process::Command::new("ip")
        .args(["-n", ns, "-batch"])
        .arg(file)
        .output()
        .await
        .map_err(|e| Error::Io(format!("ip: {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
