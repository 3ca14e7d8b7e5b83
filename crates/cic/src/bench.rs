//! `cic bench api`: API latency with many private connections in the store, driven from
//! this process against `cic server` running as a separate process on loopback.
//!
//! It starts the server on a fresh database and builds what a busy control plane holds:
//! five PoPs with an edge each, trunks (5 connections each, the default quota), N private
//! connections (created one at a time, each timed), and N/5 routing instances, each with
//! a VPC and one connection at every PoP (also timed). The edges are played by this
//! process: every 1,000 creates, and at the end, each reports the revision it applied and
//! an ESTABLISHED session for every connection it carries — so operations settle, and
//! every Get and page presents live state from reports of thousands of sessions. Then it
//! times Gets of random connections and full listings in pages of 1000. No data plane
//! runs: what is measured is the API and the store.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "bench-admin-token";

pub struct Options {
    pub connections: usize,
    /// `sqlite://PATH` or `postgres://…` of an empty database; a temporary SQLite file
    /// when absent.
    pub database: Option<String>,
    pub gets: usize,
    pub list_rounds: usize,
}

pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cic server` on `database` with `args` (limits, say), on a port the kernel picks.
pub(crate) fn start_server(database: &str, args: &[&str]) -> Result<Server> {
    let exe = std::env::current_exe().context("the cic binary")?;
    // Secrets sealed as in production, with a key of the benchmark's own.
    let key =
        std::env::temp_dir().join(format!("cic-bench-api-{}.secrets-key", std::process::id()));
    let _ = std::fs::remove_file(&key);
    let mut child = Command::new(exe)
        .args(["server", "--listen", "127.0.0.1:0", "--database", database])
        .arg("--secrets-key-file")
        .arg(&key)
        .args(args)
        .env("CIC_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn,cic_server=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start cic server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split(',').next().unwrap_or_default().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("cic server did not start"))?;
    Ok(Server { child, url })
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// The same server, as the edge whose token this is.
    fn as_edge(&self, token: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.to_string(),
        }
    }

    /// One request; returns the body and how long it took.
    async fn call(&self, m: Method, path: &str, body: Option<&Value>) -> Result<(Value, Duration)> {
        let mut req = self
            .http
            .request(m.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let t = Instant::now();
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let took = t.elapsed();
        if !status.is_success() {
            bail!("{m} {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok((serde_json::from_slice(&bytes)?, took))
    }
}

/// PoPs, each with one edge.
const POPS: usize = 5;

/// An edge played by the bench: its token and a session per connection it carries.
struct BenchEdge {
    token: String,
    sessions: Vec<Value>,
}

/// An established session, as an edge reports it.
fn session(id: &str, peer: &str) -> Value {
    json!({"resourceId": id, "kind": "customer", "peer": peer, "peerAsn": 65001,
           "state": "ESTABLISHED", "uptimeSecs": 3600, "prefixesReceived": 2,
           "prefixesAccepted": 2, "prefixesAdvertised": 1,
           "bfd": {"state": "UP", "detectionTimeMs": 900}})
}

/// Every edge reports: the current revision applied, and its sessions.
async fn report_all(c: &Client, edges: &[BenchEdge]) -> Result<()> {
    for e in edges {
        let edge = c.as_edge(&e.token);
        let cfg = edge
            .call(Method::GET, "/cic/v1/edgeSync/config", None)
            .await?
            .0;
        let report = json!({"appliedRevision": cfg["revision"], "dataplane": "bench",
                            "sessions": e.sessions, "errors": []});
        edge.call(Method::PUT, "/cic/v1/edgeSync/status", Some(&report))
            .await?;
    }
    Ok(())
}

pub(crate) struct Stat {
    pub what: String,
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub(crate) fn stat(what: &str, mut v: Vec<Duration>) -> Stat {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Stat {
        what: what.to_string(),
        n: v.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: *v.last().unwrap_or(&Duration::ZERO),
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub async fn api(o: Options) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("cic-bench-{}.db", std::process::id()));
    let database = o
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.display()));
    let backend = if database.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let _ = std::fs::remove_file(&tmp);
    // The benchmark measures the API, not its rate limit.
    let server = start_server(&database, &["--rate-limit", "0"])?;
    let c = Client {
        http: cic_client::tls::local_client(
            reqwest::Client::builder().timeout(Duration::from_secs(60)),
        )?,
        base: server.url.clone(),
        token: TOKEN.to_string(),
    };
    eprintln!("{backend}: server at {}, seeding…", server.url);
    c.call(
        Method::POST,
        "/resourcemanager/v1/folders",
        Some(&json!({"id": "bench", "name": "bench"})),
    )
    .await?;
    let mut edges = Vec::with_capacity(POPS);
    for p in 0..POPS {
        c.call(
            Method::POST,
            "/cic/v1/pointOfPresences",
            Some(&json!({"id": format!("pop{p}"), "name": format!("pop{p}")})),
        )
        .await?;
        let (reg, _) = c
            .call(
                Method::POST,
                "/cic/v1/edges",
                Some(
                    &json!({"name": format!("edge{p}"), "pointOfPresenceId": format!("pop{p}"),
                    "routerId": format!("10.255.0.{}", p + 1),
                    "fabric": {"asn": 200350, "remoteVtep": "100.64.255.1",
                               "localVtep": format!("100.64.255.{}", p + 2),
                               "transitPool": "100.127.0.0/16"}}),
                ),
            )
            .await?;
        edges.push(BenchEdge {
            token: reg["token"].as_str().context("edge token")?.to_string(),
            sessions: Vec::new(),
        });
    }

    // Connection i is at PoP i % 5, in routing instance i / 5: every instance has one
    // connection at each PoP, as a VPC allows.
    let per_trunk = 5;
    let per_pop = o.connections.div_ceil(POPS);
    let trunks_per_pop = per_pop.div_ceil(per_trunk);
    let mut trunks: Vec<Vec<String>> = (0..POPS)
        .map(|_| Vec::with_capacity(trunks_per_pop))
        .collect();
    let mut trunk_times = Vec::with_capacity(trunks_per_pop * POPS);
    for i in 0..trunks_per_pop {
        for (p, pop_trunks) in trunks.iter_mut().enumerate() {
            let (op, t) = c
                .call(
                    Method::POST,
                    "/cic/v1/trunkConnections",
                    Some(
                        &json!({"folderId": "bench", "name": format!("trunk-{p}-{i}"),
                        "pointOfPresenceId": format!("pop{p}"), "capacity": "CAPACITY_1_GBPS",
                        "singlePortDirectJoint": {"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR",
                                                  "portName": format!("xe{i}")}}),
                    ),
                )
                .await?;
            trunk_times.push(t);
            pop_trunks.push(
                op["metadata"]["resourceId"]
                    .as_str()
                    .context("trunk id")?
                    .to_string(),
            );
        }
    }

    let mut create_times = Vec::with_capacity(o.connections);
    let mut ids = Vec::with_capacity(o.connections);
    let started = Instant::now();
    for i in 0..o.connections {
        let (pop, k) = (i % POPS, i / POPS);
        let base = (i as u32) * 4;
        let (a, b, d) = (base >> 16, (base >> 8) & 255, base & 255);
        let peer = format!("10.{a}.{b}.{}", d + 2);
        let body = json!({"folderId": "bench", "name": format!("pc-{i}"),
            "trunkConnectionId": trunks[pop][k / per_trunk], "vlanId": 100 + (k % per_trunk),
            "ipv4Peering": {"peeringSubnet": format!("10.{a}.{b}.{d}/30"),
                "peerIp": peer, "cloudIp": format!("10.{a}.{b}.{}", d + 1),
                "peerBgpAsn": 65001}});
        let (op, t) = c
            .call(Method::POST, "/cic/v1/privateConnections", Some(&body))
            .await?;
        create_times.push(t);
        let id = op["metadata"]["resourceId"]
            .as_str()
            .context("pc id")?
            .to_string();
        edges[pop].sessions.push(session(&id, &peer));
        ids.push(id);
        if (i + 1) % 1000 == 0 {
            report_all(&c, &edges).await?;
        }
        if (i + 1) % 2000 == 0 {
            eprintln!(
                "  {} connections created ({:.1} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // The last tenth of the creates ran with 90%+ of the connections stored.
    let tail: Vec<Duration> = create_times[o.connections * 9 / 10..].to_vec();

    let mut instance_times = Vec::with_capacity(o.connections / POPS);
    for (r, members) in ids.chunks(POPS).enumerate() {
        let members: Vec<Value> = members
            .iter()
            .map(|id| json!({"cicPrivateConnectionId": id}))
            .collect();
        let (_, t) = c
            .call(
                Method::POST,
                "/cloudrouter/v1/routingInstances",
                Some(&json!({"folderId": "bench", "name": format!("ri-{r}"),
                    "vpcInfo": [{"vpcNetworkId": format!("vpc-{r}"), "azInfos": [
                        {"manualInfo": {"azId": "zone-a", "prefixes": [
                            format!("10.{}.{}.0/24", 128 + (r >> 8), r & 255)]}}]}],
                    "cicPrivateConnectionInfo": members})),
            )
            .await?;
        instance_times.push(t);
        if (r + 1) % 1000 == 0 {
            report_all(&c, &edges).await?;
        }
    }
    report_all(&c, &edges).await?;

    let mut get_times = Vec::with_capacity(o.gets);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..o.gets {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = &ids[(x % ids.len() as u64) as usize];
        let (v, t) = c
            .call(
                Method::GET,
                &format!("/cic/v1/privateConnections/{id}"),
                None,
            )
            .await?;
        if v["id"] != id.as_str() {
            bail!("GET {id} returned {v}");
        }
        get_times.push(t);
    }

    let mut list_times = Vec::new();
    for _ in 0..o.list_rounds {
        let mut token = String::new();
        let mut seen = 0;
        loop {
            let q = if token.is_empty() {
                String::new()
            } else {
                format!("&pageToken={token}")
            };
            let (v, t) = c
                .call(
                    Method::GET,
                    &format!("/cic/v1/privateConnections?folderId=bench&pageSize=1000{q}"),
                    None,
                )
                .await?;
            list_times.push(t);
            seen += v["privateConnections"].as_array().map_or(0, Vec::len);
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        if seen != o.connections {
            bail!("listing returned {seen} connections, not {}", o.connections);
        }
    }

    let rss = peak_rss_mib(server.child.id());
    let stats = [
        stat("create trunk", trunk_times),
        stat("create private connection (all)", create_times),
        stat("create private connection (last 10%)", tail),
        stat("create routing instance (5 connections)", instance_times),
        stat("get private connection", get_times),
        stat("list, page of 1000", list_times),
    ];
    println!(
        "\n{backend}, {} private connections in {} routing instances, {POPS} edges reporting \
         every session; server peak RSS {}",
        o.connections,
        o.connections.div_ceil(POPS),
        rss.map(|r| format!("{r:.0} MiB"))
            .unwrap_or_else(|| "?".into())
    );
    println!("| backend | request | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for s in &stats {
        println!(
            "| {backend} | {} | {} | {} | {} | {} |",
            s.what,
            s.n,
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    }
    drop(server);
    let _ = std::fs::remove_file(&tmp);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ranks_of_the_sorted_samples() {
        let v: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        let s = stat("x", v);
        assert_eq!(s.p50, Duration::from_millis(100));
        assert_eq!(s.p99, Duration::from_millis(198));
        assert_eq!(s.max, Duration::from_millis(200));
        let one = stat("y", vec![Duration::from_millis(7)]);
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
    }
}
