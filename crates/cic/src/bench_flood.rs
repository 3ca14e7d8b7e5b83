//! `cic bench flood`: what one tenant's flood costs everyone else. Against `cic server` as
//! a process on loopback (SQLite), tenant B lists its trunks and an edge fetches its
//! config, twenty times a second each, for a fixed time: first quiet, then while tenant A's
//! flooders send requests as fast as they are answered — once with the server's default
//! rate limit, once with none (`--rate-limit 0`). Each row is measured the same way: the
//! same requests, the same clients, in the same process. It prints the others' latency and
//! what became of the flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bench::{TOKEN, ms, start_server, stat};

pub struct Options {
    pub seconds: u64,
    pub flooders: usize,
}

struct Row {
    what: &'static str,
    tenant: Vec<Duration>,
    edge: Vec<Duration>,
    served: u64,
    refused: u64,
    seconds: f64,
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut r = http.request(m, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await?;
    let s = resp.status();
    Ok((s, resp.json().await.unwrap_or(Value::Null)))
}

/// One server (with `args`), seeded; the quiet and flood rows measured on it.
async fn run_one(o: &Options, limited: bool) -> Result<Vec<Row>> {
    let tmp = std::env::temp_dir().join(format!(
        "cic-bench-flood-{}-{limited}.db",
        std::process::id()
    ));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    let args: &[&str] = if limited { &[] } else { &["--rate-limit", "0"] };
    let server = start_server(&format!("sqlite://{}", tmp.display()), args)?;
    let base = server.url.clone();
    let http =
        cic_client::tls::local_client(reqwest::Client::builder().pool_max_idle_per_host(64))?;
    let admin = |m: Method, path: &'static str, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let (s, v) = call(&http, &base, TOKEN, m, path, Some(body)).await?;
            anyhow::ensure!(s.is_success(), "{path}: {s} {v}");
            Ok::<Value, anyhow::Error>(v)
        }
    };
    let mut keys = Vec::new();
    for (f, who) in [("fa", "tenant-a"), ("fb", "tenant-b")] {
        admin(
            Method::POST,
            "/resourcemanager/v1/folders",
            json!({"id": f}),
        )
        .await?;
        let (s, v) = call(
            &http,
            &base,
            TOKEN,
            Method::POST,
            &format!("/resourcemanager/v1/folders/{f}:updateAccessBindings"),
            Some(json!({"accessBindingDeltas": [{"action": "ADD",
                "accessBinding": {"roleId": "editor", "subject": {"id": who}}}]})),
        )
        .await?;
        anyhow::ensure!(s.is_success(), "binding: {v}");
        let k = admin(Method::POST, "/iam/v1/apiKeys", json!({"subjectId": who})).await?;
        keys.push(k["secret"].as_str().context("secret")?.to_string());
    }
    admin(
        Method::POST,
        "/cic/v1/pointOfPresences",
        json!({"id": "pop1"}),
    )
    .await?;
    let reg = admin(
        Method::POST,
        "/cic/v1/edges",
        json!({"name": "e1", "pointOfPresenceId": "pop1", "routerId": "10.255.0.1",
               "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": "100.64.255.1",
                          "transitPool": "100.127.0.0/24"}}),
    )
    .await?;
    let edge = reg["token"].as_str().context("edge token")?.to_string();
    for (i, f) in ["fa", "fb"].iter().enumerate() {
        let (s, v) = call(
            &http,
            &base,
            &keys[i],
            Method::POST,
            "/cic/v1/trunkConnections",
            Some(
                json!({"folderId": f, "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                        "overlayJoint": {"remoteVtep": format!("100.64.1.{}", i + 2)}}),
            ),
        )
        .await?;
        anyhow::ensure!(s.is_success(), "trunk: {v}");
    }
    let (a, b) = (keys[0].clone(), keys[1].clone());
    let mut rows = Vec::new();
    for flood in [false, true] {
        if !flood && !limited {
            continue; // the quiet row once
        }
        // Let the flooder's bucket fill again between rows.
        tokio::time::sleep(Duration::from_secs(if flood { 1 } else { 0 })).await;
        let stop = Arc::new(AtomicBool::new(false));
        let (served, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut flooders = Vec::new();
        if flood {
            for _ in 0..o.flooders {
                let (http, base, a, stop) = (http.clone(), base.clone(), a.clone(), stop.clone());
                let (served, refused) = (served.clone(), refused.clone());
                flooders.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match call(
                            &http,
                            &base,
                            &a,
                            Method::GET,
                            "/cic/v1/trunkConnections?folderId=fa",
                            None,
                        )
                        .await
                        {
                            Ok((s, _)) if s == StatusCode::TOO_MANY_REQUESTS => {
                                refused.fetch_add(1, Ordering::Relaxed)
                            }
                            Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                            Err(_) => 0,
                        };
                    }
                }));
            }
        }
        let start = Instant::now();
        let end = start + Duration::from_secs(o.seconds);
        let (mut tenant, mut edge_t) = (Vec::new(), Vec::new());
        // Tenant B and the edge at 20 requests a second each: well within their limits,
        // as a busy script and an edge are.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while Instant::now() < end {
            tick.tick().await;
            let t = Instant::now();
            let (s, _) = call(
                &http,
                &base,
                &b,
                Method::GET,
                "/cic/v1/trunkConnections?folderId=fb",
                None,
            )
            .await?;
            anyhow::ensure!(s.is_success(), "tenant B refused: {s}");
            tenant.push(t.elapsed());
            let t = Instant::now();
            let (s, _) = call(
                &http,
                &base,
                &edge,
                Method::GET,
                "/cic/v1/edgeSync/config",
                None,
            )
            .await?;
            anyhow::ensure!(s.is_success(), "the edge refused: {s}");
            edge_t.push(t.elapsed());
        }
        let seconds = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for f in flooders {
            let _ = f.await;
        }
        rows.push(Row {
            what: match (flood, limited) {
                (false, _) => "quiet",
                (true, true) => "A floods, rate limit on (100/s, burst 400)",
                (true, false) => "A floods, no rate limit",
            },
            tenant,
            edge: edge_t,
            served: served.load(Ordering::Relaxed),
            refused: refused.load(Ordering::Relaxed),
            seconds,
        });
    }
    drop(server);
    for ext in ["", "-wal", "-shm", ".secrets-key"] {
        let _ = std::fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    Ok(rows)
}

pub async fn flood(o: Options) -> Result<()> {
    eprintln!(
        "tenant B and an edge, 20 requests a second each for {} s per row; tenant A: {} flooders",
        o.seconds, o.flooders
    );
    let mut rows = run_one(&o, true).await?;
    rows.extend(run_one(&o, false).await?);
    println!(
        "| row | tenant B list p50 / p99 ms | edge config p50 / p99 ms | A served / s | A refused / s |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        let (t, e) = (stat("b", r.tenant), stat("e", r.edge));
        println!(
            "| {} | {} / {} | {} / {} | {:.0} | {:.0} |",
            r.what,
            ms(t.p50),
            ms(t.p99),
            ms(e.p50),
            ms(e.p99),
            r.served as f64 / r.seconds,
            r.refused as f64 / r.seconds
        );
    }
    Ok(())
}
