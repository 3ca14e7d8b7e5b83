//! `cic bench provision`: how long from the API calls that create a private connection (and
//! attach it to its routing instance) until its BGP session is Established and the first
//! ping crosses from the on-prem server to the cloud VM. Runs in the lab, with the
//! customer's BIRD waiting on the far side, as a real customer router would: first with an
//! IPv4 peering alone, then dual stack (both sessions Established, both pings across).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::api::Api;
use crate::{NS_HOST, STATE_DIR, VM, VM6};

fn ping_once(to: &str) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", NS_HOST, "ping", "-c", "1", "-W", "0.1", to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

pub async fn provision(runs: usize) -> Result<()> {
    // One PoP: the routing instance has only the connection the benchmark makes, so each
    // run also builds its fabric segment (the slowest case).
    crate::up(1).await?;
    let r = async {
        let pc = run(runs, false, None).await?;
        run(runs, true, Some(pc)).await
    }
    .await;
    crate::down()?;
    r.map(|_| ())
}

/// `runs` provisionings of the lab's connection, with an IPv4 peering alone or (`dual`)
/// with both.
/// `pc`: the connection to start from (the lab's, when `None`); returns the one left.
async fn run(runs: usize, dual: bool, pc: Option<String>) -> Result<String> {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{STATE_DIR}/lab.json"))?)?;
    let api = Api {
        http: crate::lab_client(info["server"].as_str().context("server")?, crate::CA_CERT)?,
        base: info["server"].as_str().context("server")?.to_string(),
        token: std::fs::read_to_string(format!("{STATE_DIR}/admin-token"))?,
        polls: Api::polls(),
    };
    let ri = info["routingInstanceId"]
        .as_str()
        .context("ri")?
        .to_string();
    let mut pc = match pc {
        Some(pc) => pc,
        None => info["privateConnectionId"]
            .as_str()
            .context("pc")?
            .to_string(),
    };
    let get = api
        .call(
            reqwest::Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await?;
    let peering = |p: &Value| {
        json!({"peeringSubnet": p["peeringSubnet"], "peerIp": p["peerIp"],
               "cloudIp": p["cloudIp"], "peerBgpAsn": p["peerBgpAsn"]})
    };
    let mut body = json!({"folderId": get["folderId"], "name": "bench", "trunkConnectionId": get["trunkConnectionId"],
        "vlanId": get["vlanId"], "ipv4Peering": peering(&get["ipv4Peering"])});
    let mut targets = vec![VM];
    if dual {
        // The lab's IPv6 peering at its PoP, as the customer's BIRD expects it.
        let p = crate::Pop(1);
        body["ipv6Peering"] = json!({"peeringSubnet": format!("fd00:a9fe:{}::/126", p.vlan()),
            "peerIp": p.peering6(2), "cloudIp": p.peering6(1), "peerBgpAsn": "65001"});
        targets.push(VM6);
    }
    let sessions: &[&str] = if dual { &["bgp", "bgpIpv6"] } else { &["bgp"] };
    let (mut established, mut pinged) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Take the connection away: out of the routing instance, then deleted.
        let op = api
            .call(
                reqwest::Method::POST,
                &format!("/cloudrouter/v1/routingInstances/{ri}:removePrivateConnection"),
                Some(json!({"cicPrivateConnectionId": pc})),
            )
            .await?;
        api.done(op).await?;
        let op = api
            .call(
                reqwest::Method::DELETE,
                &format!("/cic/v1/privateConnections/{pc}"),
                None,
            )
            .await?;
        api.done(op).await?;
        if targets.iter().any(|t| ping_once(t)) {
            bail!("the VM still answers without the connection");
        }
        // Provision it again: create and attach, as a customer would.
        let t0 = Instant::now();
        let op = api
            .call(
                reqwest::Method::POST,
                "/cic/v1/privateConnections",
                Some(body.clone()),
            )
            .await?;
        pc = op["metadata"]["resourceId"]
            .as_str()
            .context("pc id")?
            .to_string();
        api.call(
            reqwest::Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{ri}:addPrivateConnection"),
            Some(json!({"cicPrivateConnectionId": pc})),
        )
        .await?;
        let deadline = t0 + Duration::from_secs(60);
        let mut up = None;
        loop {
            if up.is_none() {
                let c = api
                    .call(
                        reqwest::Method::GET,
                        &format!("/cic/v1/privateConnections/{pc}"),
                        None,
                    )
                    .await?;
                if sessions.iter().all(|s| c[*s]["state"] == "ESTABLISHED") {
                    up = Some(t0.elapsed());
                }
            }
            if up.is_some() && targets.iter().all(|t| ping_once(t)) {
                break;
            }
            if Instant::now() > deadline {
                bail!("run {i}: no traffic after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (e, p) = (up.unwrap_or_default(), t0.elapsed());
        eprintln!(
            "run {}: Established after {:.2} s, first ping after {:.2} s",
            i + 1,
            e.as_secs_f64(),
            p.as_secs_f64()
        );
        established.push(e);
        pinged.push(p);
    }
    println!(
        "\nProvisioning in the lab, {}, {runs} runs (create + attach → …)",
        if dual {
            "dual stack (IPv4 and IPv6 peerings)"
        } else {
            "IPv4 peering"
        }
    );
    println!("| to | p50 s | p90 s | max s |");
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        (
            if dual {
                "both BGP sessions Established (seen through the API)"
            } else {
                "BGP Established (seen through the API)"
            },
            &mut established,
        ),
        (
            if dual {
                "a ping across over IPv4 and over IPv6"
            } else {
                "first ping across"
            },
            &mut pinged,
        ),
    ] {
        let (p50, p90, max) = (pct(v, 0.5), pct(v, 0.9), pct(v, 1.0));
        println!(
            "| {what} | {:.2} | {:.2} | {:.2} |",
            p50.as_secs_f64(),
            p90.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    Ok(pc)
}
