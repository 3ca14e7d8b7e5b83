//! `cic server` as a process: killed with SIGKILL in the middle of writes, it loses nothing
//! it acknowledged. Runs on SQLite, and on PostgreSQL too when `CIC_TEST_POSTGRES` is set.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

const TOKEN: &str = "crash-test-admin";

struct Server {
    child: Child,
    url: String,
}

/// A secrets key file for `database` (made by the server on first start).
fn key_file(database: &str) -> String {
    let tag: String = database
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir()
        .join(format!("cic-test-{tag}.secrets-key"))
        .display()
        .to_string()
}

impl Server {
    /// Starts `cic server` on a port the kernel picks and returns once it says, in its
    /// log, where it listens.
    async fn start(database: &str) -> Server {
        Server::start_with(database, &key_file(database)).await
    }

    /// [`Server::start`] with secrets sealed by the key in `key`.
    async fn start_with(database: &str, key: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
            .args(["server", "--listen", "127.0.0.1:0", "--database", database])
            .args(["--secrets-key-file", key])
            .env("CIC_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cic server");
        let url = tokio::task::spawn_blocking(move || {
            let url = common::listening_url(&mut child);
            (child, url)
        })
        .await
        .expect("join");
        let (child, url) = url;
        Server { child, url }
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut r = http.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("{status}: {v}"))
    }
}

async fn kill_during_writes(database: &str) {
    let server = Server::start(database).await;
    let http = cic_client::tls::local_client(reqwest::Client::builder()).expect("client");
    let base = server.url.clone();
    use reqwest::Method;
    call(
        &http,
        Method::POST,
        &format!("{base}/resourcemanager/v1/folders"),
        Some(json!({"id": "f1"})),
    )
    .await
    .expect("folder");
    call(
        &http,
        Method::POST,
        &format!("{base}/cic/v1/pointOfPresences"),
        Some(json!({"id": "pop1"})),
    )
    .await
    .expect("pop");
    call(
        &http,
        Method::POST,
        &format!("{base}/cic/v1/edges"),
        Some(json!({"name": "e1", "pointOfPresenceId": "pop1", "routerId": "10.255.0.1",
                    "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": "100.64.255.1",
                               "transitPool": "100.127.0.0/24"}})),
    )
    .await
    .expect("edge");

    // Four writers create trunks as fast as the server takes them; the server is killed
    // once 60 creations have been acknowledged, with requests still in flight.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, base, acked, stop) = (http.clone(), base.clone(), acked.clone(), stop.clone());
        let count_tx = count_tx.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"folderId": "f1", "name": format!("t-{w}-{i}"), "pointOfPresenceId": "pop1",
                                  "capacity": "CAPACITY_1_GBPS", "overlayJoint": {"remoteVtep": "100.64.1.2"}});
                match call(&http, Method::POST, &format!("{base}/cic/v1/trunkConnections"), Some(body)).await {
                    Ok(op) => {
                        let id = op["metadata"]["resourceId"].as_str().expect("id").to_string();
                        let mut a = acked.lock().await;
                        a.push(id);
                        count_tx.send_replace(a.len());
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), count_rx.wait_for(|n| *n >= 60))
        .await
        .expect("60 writes acknowledged within a minute")
        .expect("writers alive");
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().await.clone();

    let server = Server::start(database).await;
    let v = call(
        &http,
        Method::GET,
        &format!(
            "{}/cic/v1/trunkConnections?folderId=f1&pageSize=1000",
            server.url
        ),
        None,
    )
    .await
    .expect("list after restart");
    let stored: Vec<&str> = v["trunkConnections"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(&id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{database}: acknowledged but lost after kill -9: {lost:?}"
    );
    assert!(stored.len() >= acked.len());
    // And it keeps working.
    call(&http, Method::POST, &format!("{}/cic/v1/trunkConnections", server.url),
        Some(json!({"folderId": "f1", "name": "after", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                    "overlayJoint": {"remoteVtep": "100.64.1.2"}}))).await.expect("write after restart");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_nothing_it_acknowledged() {
    let path = std::env::temp_dir().join(format!("cic-crash-{}.db", std::process::id()));
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    kill_during_writes(&format!("sqlite://{}", path.display())).await;
    if let Ok(pg) = std::env::var("CIC_TEST_POSTGRES") {
        let name = format!("cic_crash_{}", std::process::id());
        let url = cic_store::Store::create_postgres_database(&pg, &name)
            .await
            .expect("database");
        kill_during_writes(&url).await;
    }
}

/// Runs `cic ARGS --json` against `server` with `token`; returns (exit code, JSON or text).
fn cli(server: &str, token: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(args)
        .args(["--json", "--server", server])
        .env("CIC_TOKEN", token)
        .env_remove("CIC_FOLDER")
        .output()
        .expect("run cic");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| {
        Value::String(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    });
    (out.status.code().unwrap_or(-1), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_tenancy_and_routing_instance_methods() {
    let path = std::env::temp_dir().join(format!("cic-cli-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = Server::start(&format!("sqlite://{}", path.display())).await;
    let url = server.url.clone();
    let admin = |args: &[&str]| cli(&url, TOKEN, args);

    assert_eq!(
        admin(&["folder", "create", "--id", "f1", "--name", "team"]).0,
        0
    );
    assert_eq!(
        admin(&[
            "folder",
            "add-access-binding",
            "f1",
            "--role",
            "editor",
            "--subject",
            "ann"
        ])
        .0,
        0
    );
    let (code, key) = admin(&["api-key", "create", "--subject", "ann"]);
    assert_eq!(code, 0, "{key}");
    let ann_token = key["secret"].as_str().expect("secret").to_string();
    let ann = |args: &[&str]| cli(&url, &ann_token, args);

    // A routing instance without connections is done at once (no edge to wait for).
    let (code, op) = ann(&[
        "routing-instance",
        "create",
        "--folder",
        "f1",
        "--name",
        "r1",
        "--vpc",
        "vpc-a",
        "--prefix",
        "zone-a=10.128.0.0/24",
    ]);
    assert_eq!(code, 0, "{op}");
    let ri = op["metadata"]["resourceId"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        ann(&[
            "routing-instance",
            "upsert-prefixes",
            &ri,
            "--vpc",
            "vpc-a",
            "--prefix",
            "zone-b=10.129.0.0/24"
        ])
        .0,
        0
    );
    let (code, r) = ann(&["routing-instance", "get-by-vpc", "vpc-a"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["id"], ri.as_str());
    assert!(r.to_string().contains("10.129.0.0/24"), "{r}");
    let (code, ops) = ann(&["routing-instance", "list-operations", &ri]);
    assert_eq!(code, 0, "{ops}");
    assert_eq!(ops["operations"].as_array().map(|a| a.len()), Some(2));
    // The verbs every resource shares: get, list in a folder, move (an operation the
    // CLI waits for), and the catalogue's list and get.
    let (code, got) = ann(&["routing-instance", "get", &ri]);
    assert_eq!((code, got["name"].as_str()), (0, Some("r1")), "{got}");
    let (code, listed) = ann(&["routing-instance", "list", "--folder", "f1"]);
    assert_eq!(code, 0, "{listed}");
    assert_eq!(listed["routingInstances"][0]["id"], ri.as_str(), "{listed}");
    assert_eq!(
        admin(&["folder", "create", "--id", "f9", "--name", "other"]).0,
        0
    );
    let (code, moved) = admin(&[
        "routing-instance",
        "move",
        &ri,
        "--destination-folder",
        "f9",
    ]);
    assert_eq!(code, 0, "{moved}");
    let (_, got) = admin(&["routing-instance", "get", &ri]);
    assert_eq!(got["folderId"], "f9", "{got}");
    let (code, _) = ann(&["routing-instance", "get", &ri]);
    assert_eq!(code, 3, "moved out of ann's folder");
    let (_, _) = admin(&[
        "routing-instance",
        "move",
        &ri,
        "--destination-folder",
        "f1",
    ]);
    let (code, pops) = admin(&["pop", "list"]);
    assert_eq!(code, 0, "{pops}");
    let (code, missing) = admin(&["pop", "get", "no-such-pop"]);
    assert_eq!(code, 3, "{missing}");
    // Refused requests exit 3 and change nothing.
    let (code, msg) = ann(&[
        "routing-instance",
        "upsert-prefixes",
        &ri,
        "--vpc",
        "vpc-a",
        "--prefix",
        "zone-a=10.128.0.0/25",
    ]);
    assert_eq!(code, 3, "{msg}");
    let (code, _) = ann(&["folder", "create", "--name", "mine"]);
    assert_eq!(code, 3, "only the operator makes folders");
    let (code, list) = admin(&["api-key", "list", "--subject", "ann"]);
    assert_eq!(code, 0);
    let id = list["apiKeys"][0]["id"]
        .as_str()
        .expect("key id")
        .to_string();
    assert_eq!(admin(&["api-key", "delete", &id]).0, 0);
    let (code, _) = ann(&["routing-instance", "get", &ri]);
    assert_eq!(code, 3, "a revoked key is refused");
    server.kill();
    let _ = std::fs::remove_file(&path);
}

/// Runs `cic ARGS` with only the settings of the config file at `config`.
fn cli_with_profile(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(args)
        .env("CIC_CONFIG", config)
        .env_remove("CIC_TOKEN")
        .env_remove("CIC_SERVER")
        .env_remove("CIC_FOLDER")
        .env_remove("CIC_PROFILE")
        .output()
        .expect("run cic");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_takes_a_profile_speaks_the_modelled_shapes_and_prints_three_formats() {
    let dir = std::env::temp_dir().join(format!("cic-cli-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let server = Server::start(&format!("sqlite://{}", dir.join("cic.db").display())).await;
    let config = dir.join("config.toml");
    let run = |args: &[&str]| cli_with_profile(&config, args);

    // Without a profile there is no token: a clear error.
    let (code, _, err) = run(&["folder", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("no token"), "{err}");
    for (k, v) in [
        ("server", server.url.as_str()),
        ("token", TOKEN),
        ("folder", "f1"),
        ("format", "yaml"),
    ] {
        let (code, out, err) = run(&["config", "set", "--profile", "lab", k, v]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, _, err) = run(&["config", "set", "format", "xml"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("format \"xml\" is not one of table, json, yaml"),
        "{err}"
    );
    let (_, shown, _) = run(&["config", "show"]);
    assert!(
        shown.contains("profile: lab") && shown.contains("token: ********"),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "the token is not printed");
    let (code, _, err) = run(&["--profile", "nosuch", "folder", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("no profile \"nosuch\""), "{err}");

    // The profile's server, token, folder and format are used.
    let (code, out, err) = run(&["folder", "create", "--id", "f1", "--name", "team"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["pop", "create", "--id", "pop1", "--name", "pop1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "edge-router",
        "create",
        "--name",
        "edge1",
        "--pop",
        "pop1",
        "--router-id",
        "10.255.0.1",
        "--fabric-asn",
        "200350",
        "--fabric-remote-vtep",
        "100.64.255.1",
        "--fabric-local-vtep",
        "100.64.255.2",
        "--fabric-transit-pool",
        "100.127.0.0/24",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "trunk-connection",
        "create",
        "--point-of-presence-id",
        "pop1",
        "--capacity",
        "1g",
        "--overlay-remote-vtep",
        "100.64.1.2",
        "--async",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let op: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).expect("YAML operation");
    let trunk = op["metadata"]["resourceId"]
        .as_str()
        .expect("trunk id")
        .to_string();
    // The modelled CLI's shape of a private connection.
    let create = |peering: &str| {
        run(&[
            "private-connection",
            "create",
            "--trunk-id",
            &trunk,
            "--vlan-id",
            "100",
            "--ipv4-peering",
            peering,
            "--async",
            "--format",
            "json",
        ])
    };
    let (code, _, err) = create(
        "peering-subnet=169.254.100.0/30,peer-ip=169.254.100.2,cloud-ip=169.254.100.1,peer-bgp-asm=65001",
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown key \"peer-bgp-asm\""), "{err}");
    let (code, _, err) =
        create("peering-subnet=169.254.100.0/30,peer-ip=169.254.100.2,cloud-ip=169.254.100.1");
    assert_eq!(code, 1);
    assert!(err.contains("peer-bgp-asn= is missing"), "{err}");
    let (code, _, err) = create(
        "peering-subnet=169.254.100.0/30,peer-ip=169.254.100.2,cloud-ip=169.254.100.1,peer-bgp-asn=64500,peer-bgp-asn=65001",
    );
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = create(
        "peering-subnet=169.254.100.0/30,peer-ip=169.254.100.3,cloud-ip=169.254.100.1,peer-bgp-asn=65001",
    );
    assert_eq!(code, 3, "the server's refusal: {out}{err}");
    assert!(err.contains("peerIp"), "{err}");
    let (code, out, err) = create(
        "peering-subnet=169.254.100.0/30,peer-ip=169.254.100.2,cloud-ip=169.254.100.1,peer-bgp-asn=65001",
    );
    assert_eq!(code, 0, "{out}{err}");
    let op: Value = serde_json::from_str(&out).expect("JSON operation");
    let pc = op["metadata"]["resourceId"]
        .as_str()
        .expect("pc")
        .to_string();

    // Three formats of one list.
    let (code, table, err) = run(&["private-connection", "list", "--format", "table"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[1].starts_with("| ID ") && lines[1].contains("| VLAN_ID |"),
        "{table}"
    );
    assert_eq!(lines.len(), 5, "rule, header, rule, one row, rule: {table}");
    assert!(
        lines[3].contains(&pc) && lines[3].contains("| 100 "),
        "{table}"
    );
    let (_, json_out, _) = run(&["private-connection", "list", "--format", "json"]);
    let v: Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(v["privateConnections"][0]["vlanId"], "100");
    let (_, yaml_out, _) = run(&["private-connection", "list"]);
    let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml_out).expect("yaml (the profile's)");
    assert_eq!(y["privateConnections"][0]["id"].as_str(), Some(pc.as_str()));
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_covers_partners_public_connections_and_the_service_catalogue() {
    let path = std::env::temp_dir().join(format!("cic-cli-catalog-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = Server::start(&format!("sqlite://{}", path.display())).await;
    let url = server.url.clone();
    let admin = |args: &[&str]| cli(&url, TOKEN, args);
    let ok = |args: &[&str]| {
        let (code, v) = admin(args);
        assert_eq!(code, 0, "cic {}: {v}", args.join(" "));
        v
    };
    ok(&["folder", "create", "--id", "f1", "--name", "team"]);
    ok(&["pop", "create", "--id", "pop1", "--name", "pop1"]);
    ok(&[
        "edge-router",
        "create",
        "--name",
        "edge1",
        "--pop",
        "pop1",
        "--router-id",
        "10.255.0.1",
        "--fabric-remote-vtep",
        "100.64.255.1",
        "--fabric-local-vtep",
        "100.64.255.2",
    ]);
    let (code, v) = admin(&["partner", "create", "--id", "acme", "--joint", "pop=pop1"]);
    assert_eq!(code, 1, "{v}");
    assert!(v.to_string().contains("give pop=…,edge=…,port=…"), "{v}");
    ok(&[
        "partner",
        "create",
        "--id",
        "acme",
        "--name",
        "Acme",
        "--joint",
        "pop=pop1,edge=edge1,port=nni0",
    ]);
    assert_eq!(ok(&["partner", "get", "acme"])["popIds"], json!(["pop1"]));
    ok(&[
        "cloud-service",
        "create",
        "--id",
        "CLOUD_SERVICE_S3",
        "--prefix",
        "213.180.193.243/32",
    ]);
    let op = ok(&[
        "trunk-connection",
        "create",
        "--folder",
        "f1",
        "--pop",
        "pop1",
        "--capacity",
        "100m",
        "--partner-id",
        "acme",
        "--service-key",
        "ACME-42",
        "--async",
    ]);
    let trunk = op["metadata"]["resourceId"]
        .as_str()
        .expect("trunk")
        .to_string();
    let got = ok(&["trunk-connection", "batch-get", &trunk]);
    assert_eq!(
        got["trunkConnections"][0]["partnerJointInfo"]["portName"],
        "nni0"
    );
    ok(&[
        "public-connection",
        "create",
        "--folder",
        "f1",
        "--trunk-id",
        &trunk,
        "--vlan-id",
        "300",
        "--ipv4-peering",
        "peering-subnet=5.45.200.0/31,peer-ip=5.45.200.1,cloud-ip=5.45.200.0,peer-bgp-asn=65001",
        "--service",
        "CLOUD_SERVICE_S3",
        "--announced-prefix",
        "5.45.192.0/22",
        "--async",
    ]);
    let list = ok(&["public-connection", "list", "--folder", "f1"]);
    assert_eq!(list["publicConnections"][0]["vlanId"], "300");
    let on_trunk = ok(&["trunk-connection", "list-public-connections", &trunk]);
    assert_eq!(
        on_trunk["publicConnections"].as_array().map(Vec::len),
        Some(1)
    );
    let (code, v) = admin(&["cloud-service", "delete", "CLOUD_SERVICE_S3"]);
    assert_eq!(code, 3, "in use: {v}");
    server.kill();
    let _ = std::fs::remove_file(&path);
}

/// The key ids of the sealed secrets in `raw` (a database file, a dump).
fn sealed_key_ids(raw: &str) -> std::collections::BTreeSet<String> {
    raw.match_indices("sealed:v1:")
        .filter_map(|(i, m)| raw.get(i + m.len()..i + m.len() + 8))
        .map(String::from)
        .collect()
}

/// Everything the database holds, as bytes an attacker with a copy would read: the
/// SQLite file and its WAL, or a pg_dump.
fn raw_database(database: &str) -> String {
    if let Some(file) = database.strip_prefix("sqlite://") {
        let mut all = Vec::new();
        for ext in ["", "-wal"] {
            all.extend(std::fs::read(format!("{file}{ext}")).unwrap_or_default());
        }
        return String::from_utf8_lossy(&all).to_string();
    }
    let dump = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("bin/pg_dump"))
        .expect("pg_dump");
    let out = Command::new(dump)
        .args(["--data-only", database])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn secrets_sealed_at_rest(database: &str, tag: &str) {
    const MD5: &str = "Sealed-Md5-Key-Never-In-Clear";
    let k1 = std::env::temp_dir().join(format!("cic-seal-{tag}-{}-1.key", std::process::id()));
    let k2 = std::env::temp_dir().join(format!("cic-seal-{tag}-{}-2.key", std::process::id()));
    for k in [&k1, &k2] {
        let _ = std::fs::remove_file(k);
    }
    let (k1s, k2s) = (k1.display().to_string(), k2.display().to_string());
    let server = Server::start_with(database, &k1s).await;
    let http = cic_client::tls::local_client(reqwest::Client::builder()).expect("client");
    let base = server.url.clone();
    const GET: reqwest::Method = reqwest::Method::GET;
    const POST: reqwest::Method = reqwest::Method::POST;
    let mut edge = Value::Null;
    for (path, body) in [
        ("/resourcemanager/v1/folders", json!({"id": "f1"})),
        ("/cic/v1/pointOfPresences", json!({"id": "pop1"})),
        (
            "/cic/v1/edges",
            json!({"name": "e1", "pointOfPresenceId": "pop1", "routerId": "10.255.0.1",
            "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": "100.64.255.1", "transitPool": "100.127.0.0/24"}}),
        ),
    ] {
        edge = call(&http, POST, &format!("{base}{path}"), Some(body))
            .await
            .expect(path);
    }
    let edge = edge["edge"]["id"].as_str().expect("edge id").to_string();
    let op = call(&http, POST, &format!("{base}/cic/v1/trunkConnections"),
        Some(json!({"folderId": "f1", "name": "t", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                    "overlayJoint": {"remoteVtep": "100.64.1.2"}}))).await.expect("trunk");
    let trunk = op["metadata"]["resourceId"]
        .as_str()
        .expect("id")
        .to_string();
    let op = call(&http, POST, &format!("{base}/cic/v1/privateConnections"),
        Some(json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": "100",
                    "ipv4Peering": {"peeringSubnet": "169.254.0.0/30", "peerIp": "169.254.0.1", "cloudIp": "169.254.0.2",
                                    "peerBgpAsn": 65001, "peerBgpMd5Key": MD5}}))).await.expect("connection");
    assert!(op["metadata"]["resourceId"].is_string(), "{op}");
    // The edge is given the key in clear (it sets it on its socket).
    let config = |base: &str| {
        let (http, url) = (http.clone(), format!("{base}/cic/v1/edges/{edge}/config"));
        async move {
            call(&http, GET, &url, None)
                .await
                .expect("config")
                .to_string()
        }
    };
    assert!(config(&base).await.contains(MD5));
    server.kill();

    let raw = raw_database(database);
    assert!(
        !raw.contains(MD5),
        "the TCP-MD5 key is in the database in clear"
    );
    let before = sealed_key_ids(&raw);
    assert_eq!(before.len(), 1, "{before:?}");

    // Another key cannot open them: the server says so and does not start.
    let wrong = std::env::temp_dir().join(format!("cic-seal-{tag}-{}-w.key", std::process::id()));
    let _ = std::fs::remove_file(&wrong);
    let o = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(["server", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--secrets-key-file", &wrong.display().to_string()])
        .env("CIC_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("cic server");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("sealed with key")
            && e.contains(before.iter().next().expect("id").as_str()),
        "{e}"
    );

    // Rotation: everything sealed again under the new key, and read with it.
    let o = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args([
            "server",
            "rotate-secrets-key",
            "--database",
            database,
            "--secrets-key-file",
            &k1s,
            "--new-secrets-key-file",
            &k2s,
        ])
        .output()
        .expect("rotate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = raw_database(database);
    let after = sealed_key_ids(&raw);
    assert!(!raw.contains(MD5));
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after.is_disjoint(&before), "{before:?} {after:?}");
    let server = Server::start_with(database, &k2s).await;
    assert!(
        config(&server.url).await.contains(MD5),
        "read with the new key"
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_keys_are_sealed_at_rest_and_sealed_again_under_a_new_key() {
    let path = std::env::temp_dir().join(format!("cic-seal-{}.db", std::process::id()));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    secrets_sealed_at_rest(&format!("sqlite://{}", path.display()), "sqlite").await;
    if let Ok(pg) = std::env::var("CIC_TEST_POSTGRES") {
        let name = format!("cic_seal_{}", std::process::id());
        let url = cic_store::Store::create_postgres_database(&pg, &name)
            .await
            .expect("database");
        secrets_sealed_at_rest(&url, "pg").await;
    }
}

/// `--quiet`: a mutation waiting for an edge shows no progress, and one that succeeds
/// prints no summary; errors are still said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_shows_no_progress_and_no_summary_but_still_the_error() {
    let path = std::env::temp_dir().join(format!("cic-quiet-{}.db", std::process::id()));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let server = Server::start(&format!("sqlite://{}", path.display())).await;
    let http = cic_client::tls::local_client(reqwest::Client::builder()).expect("client");
    let base = server.url.clone();
    for (p, body) in [
        ("/resourcemanager/v1/folders", json!({"id": "f1"})),
        ("/cic/v1/pointOfPresences", json!({"id": "pop1"})),
        (
            "/cic/v1/edges",
            json!({"name": "e1", "pointOfPresenceId": "pop1", "routerId": "10.255.0.1",
            "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": "100.64.255.1", "transitPool": "100.127.0.0/24"}}),
        ),
    ] {
        call(
            &http,
            reqwest::Method::POST,
            &format!("{base}{p}"),
            Some(body),
        )
        .await
        .expect(p);
    }
    let run = |extra: &[&str], name: &str| {
        Command::new(env!("CARGO_BIN_EXE_cic"))
            .args(extra)
            .args([
                "--server",
                &base,
                "--timeout",
                "1",
                "trunk-connection",
                "create",
                "--folder-id",
                "f1",
            ])
            .args([
                "--name",
                name,
                "--point-of-presence-id",
                "pop1",
                "--capacity",
                "1g",
            ])
            .args(["--overlay-remote-vtep", "100.64.1.2"])
            .env("CIC_TOKEN", TOKEN)
            .env("CIC_CONFIG", "/nonexistent/cic.toml")
            .output()
            .expect("cic")
    };
    // No edge applies anything here: the operation waits, and times out after a second.
    let loud = run(&[], "t1");
    let loud_err = String::from_utf8_lossy(&loud.stderr);
    assert!(!loud.status.success());
    assert!(loud_err.contains("waiting for operation"), "{loud_err}");
    let quiet = run(&["--quiet"], "t2");
    let quiet_err = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet.status.success());
    assert!(!quiet_err.contains("waiting for operation"), "{quiet_err}");
    assert!(
        quiet_err.contains("is not done after"),
        "the error is still said: {quiet_err}"
    );
    // A mutation that succeeds at once says nothing when quiet.
    let ok = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args([
            "-q",
            "--server",
            &base,
            "routing-instance",
            "create",
            "--folder-id",
            "f1",
        ])
        .args([
            "--name",
            "r1",
            "--vpc",
            "vpc-q",
            "--prefix",
            "zone-a=10.128.0.0/24",
        ])
        .env("CIC_TOKEN", TOKEN)
        .env("CIC_CONFIG", "/nonexistent/cic.toml")
        .output()
        .expect("cic");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(ok.stdout.is_empty() && ok.stderr.is_empty(), "{:?}", ok);
    server.kill();
}
