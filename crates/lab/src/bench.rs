//! `cic bench provision`: how long from the API calls that create a private connection (and
//! attach it to its routing instance) until its BGP session is Established and the first
//! ping crosses from the on-prem server to the cloud VM. Runs in the lab, with the
//! customer's BIRD waiting on the far side, as a real customer router would.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::api::Api;
use crate::{NS_HOST, STATE_DIR, VM};

fn ping_once() -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", NS_HOST, "ping", "-c", "1", "-W", "0.1", VM])
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
    let r = run(runs).await;
    crate::down()?;
    r
}

async fn run(runs: usize) -> Result<()> {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{STATE_DIR}/lab.json"))?)?;
    let api = Api {
        http: crate::lab_client(info["server"].as_str().context("server")?, crate::CA_CERT)?,
        base: info["server"].as_str().context("server")?.to_string(),
        token: std::fs::read_to_string(format!("{STATE_DIR}/admin-token"))?,
    };
    let ri = info["routingInstanceId"]
        .as_str()
        .context("ri")?
        .to_string();
    let mut pc = info["privateConnectionId"]
        .as_str()
        .context("pc")?
        .to_string();
    let get = api
        .call(
            reqwest::Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await?;
    let p = &get["ipv4Peering"];
    let body = json!({"folderId": get["folderId"], "name": "bench", "trunkConnectionId": get["trunkConnectionId"],
        "vlanId": get["vlanId"], "ipv4Peering": {"peeringSubnet": p["peeringSubnet"], "peerIp": p["peerIp"],
        "cloudIp": p["cloudIp"], "peerBgpAsn": p["peerBgpAsn"]}});
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
        if ping_once() {
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
                if c["bgp"]["state"] == "ESTABLISHED" {
                    up = Some(t0.elapsed());
                }
            }
            if up.is_some() && ping_once() {
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
    println!("\nProvisioning in the lab, {runs} runs (create + attach → …)");
    println!("| to | p50 s | p90 s | max s |");
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        ("BGP Established (seen through the API)", &mut established),
        ("first ping across", &mut pinged),
    ] {
        let (p50, p90, max) = (pct(v, 0.5), pct(v, 0.9), pct(v, 1.0));
        println!(
            "| {what} | {:.2} | {:.2} | {:.2} |",
            p50.as_secs_f64(),
            p90.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    Ok(())
}
