//! `cic server` over TLS as a user deploys it: plain HTTP refused, clients that check the
//! CA, the name and the dates (and say which failed), security headers and request ids,
//! the certificate reloaded on SIGHUP under an open long-poll, edges authenticated by
//! their certificate alone and rotated without a gap.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cic_client::tls::{ClientTls, http_client};
use serde_json::Value;

const ADMIN: &str = "tls-test-admin";

fn cic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(args)
        .env_remove("CIC_SERVER")
        .env_remove("CIC_TOKEN")
        .env_remove("CIC_CA_CERT")
        .env("CIC_CONFIG", "/nonexistent/cic-test-config.toml")
        .output()
        .expect("run cic")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "cic failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: Output) -> String {
    assert!(
        !o.status.success(),
        "cic should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cic-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn pki(dir: &Path, names: &[&str]) {
    let mut args = vec!["pki", "init", "--dir", dir.to_str().expect("utf-8")];
    for n in names {
        args.extend(["--name", n]);
    }
    ok(cic(&args));
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `cic server` with `args` on a port the kernel picks; returns once it says where.
    fn start(db_dir: &Path, args: &[&str]) -> Server {
        let db = format!("sqlite://{}/cic.db", s(db_dir));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
            .args(["server", "--listen", "127.0.0.1:0", "--database", &db])
            .args(args)
            .env("CIC_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cic server");
        let url = common::listening_url(&mut child);
        let addr = url
            .strip_prefix("https://")
            .unwrap_or_else(|| panic!("cic server listens on {url}, not https"))
            .to_string();
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Server { child, port }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }
}

fn client(url: &str, ca: &Path, identity: Option<&Path>) -> reqwest::Client {
    let tls = ClientTls {
        ca_cert: Some(ca.into()),
        identity: identity.map(|d| (d.join("edge.crt"), d.join("edge.key"))),
        insecure_http: false,
    };
    http_client(url, &tls, reqwest::Client::builder()).expect("client")
}

async fn get(c: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An expired server certificate for 127.0.0.1, signed by the CA in `ca_dir`.
fn expired_cert(ca_dir: &Path, out: &Path) {
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).expect("ca key"))
            .expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).expect("ca"),
        key,
    )
    .expect("issuer");
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    p.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(30);
    p.not_after = now - time::Duration::days(1);
    let k = rcgen::KeyPair::generate().expect("key");
    let c = p.signed_by(&k, &issuer).expect("sign");
    std::fs::write(out.join("server.crt"), c.pem()).expect("write");
    std::fs::write(out.join("server.key"), k.serialize_pem()).expect("write");
}

#[test]
fn plain_http_is_refused_and_clients_check_ca_name_and_date_saying_which() {
    let d = dir("verify");
    pki(&d, &["localhost"]);
    let other = dir("verify-other");
    pki(&other, &["localhost"]);
    let server = Server::start(
        &d,
        &[
            "--tls-cert",
            s(&d.join("server.crt")),
            "--tls-key",
            s(&d.join("server.key")),
        ],
    );
    let ca = d.join("ca.crt");
    let good = server.url("localhost");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP was answered: {got:?}"
    );

    // A CA that did not sign it.
    let e = err(cic(&[
        "--server",
        &good,
        "--ca-cert",
        s(&other.join("ca.crt")),
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    assert!(
        e.contains("not signed by the CA in") && e.contains(s(&other.join("ca.crt"))),
        "{e}"
    );
    // The edge agent says the same.
    let agent_refusal = |url: &str, ca: &Path| -> String {
        let agent = cic_edge::client::SyncClient::new(
            url,
            Some("t"),
            ClientTls {
                ca_cert: Some(ca.into()),
                identity: None,
                insecure_http: false,
            },
        )
        .expect("client");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(agent.config(0, Duration::ZERO, None))
            .expect_err("refused")
            .to_string()
    };
    let e = agent_refusal(&good, &other.join("ca.crt"));
    assert!(e.contains("not signed by the CA in"), "{e}");
    // A name it is not for: the certificate names localhost only.
    let e = err(cic(&[
        "--server",
        &server.url("127.0.0.1"),
        "--ca-cert",
        s(&ca),
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    assert!(
        e.contains("not valid for") && e.contains("127.0.0.1"),
        "{e}"
    );
    let e = agent_refusal(&server.url("127.0.0.1"), &ca);
    assert!(
        e.contains("not valid for") && e.contains("127.0.0.1"),
        "{e}"
    );
    // Plain HTTP across the network, not even tried.
    let e = err(cic(&[
        "--server",
        "http://192.0.2.1:8080",
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    assert!(
        e.contains("refusing plain HTTP") && e.contains("--insecure-http"),
        "{e}"
    );

    // An expired certificate, and the edge agent says so too.
    let exp = dir("verify-expired");
    expired_cert(&d, &exp);
    let old = Server::start(
        &exp,
        &[
            "--tls-cert",
            s(&exp.join("server.crt")),
            "--tls-key",
            s(&exp.join("server.key")),
        ],
    );
    let e = err(cic(&[
        "--server",
        &old.url("127.0.0.1"),
        "--ca-cert",
        s(&ca),
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    assert!(e.contains("expired"), "{e}");
    let e = agent_refusal(&old.url("127.0.0.1"), &ca);
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn the_server_will_not_serve_plain_http_off_loopback_unless_told() {
    let d = dir("plain");
    let db = format!("sqlite://{}/cic.db", s(&d));
    let o = cic(&["server", "--listen", "0.0.0.0:0", "--database", &db]);
    let e = err(o);
    assert!(
        e.contains("refusing to serve plain HTTP") && e.contains("--insecure-http"),
        "{e}"
    );
    assert!(
        !d.join("cic.db").exists(),
        "the refused server opened its database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_request_ids_and_a_reload_that_keeps_a_long_poll() {
    let d = dir("reload");
    pki(&d, &["localhost", "127.0.0.1"]);
    let live = dir("reload-live");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(d.join(f), live.join(f)).expect("copy");
    }
    let server = Server::start(
        &live,
        &[
            "--tls-cert",
            s(&live.join("server.crt")),
            "--tls-key",
            s(&live.join("server.key")),
        ],
    );
    let url = server.url("127.0.0.1");
    let c = client(&url, &d.join("ca.crt"), None);

    let resp = c
        .get(format!("{url}/healthz"))
        .header("X-Request-Id", "my-trace-42")
        .send()
        .await
        .expect("healthz");
    let h = resp.headers();
    assert_eq!(h["x-request-id"], "my-trace-42");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .expect("hsts")
            .contains("max-age=")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let resp = c
        .get(format!("{url}/cic/v1/edges"))
        .send()
        .await
        .expect("401");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()["x-request-id"].len() > 4,
        "a request id is made"
    );

    // An edge to long-poll as.
    let ca = d.join("ca.crt");
    ok(cic(&[
        "--server",
        &url,
        "--ca-cert",
        s(&ca),
        "--token",
        ADMIN,
        "pop",
        "create",
        "--id",
        "pop1",
        "--name",
        "p",
        "--address",
        "a",
    ]));
    let reg: Value = serde_json::from_str(&ok(cic(&[
        "--server",
        &url,
        "--ca-cert",
        s(&ca),
        "--token",
        ADMIN,
        "--json",
        "edge-router",
        "create",
        "--name",
        "e1",
        "--pop",
        "pop1",
        "--router-id",
        "10.0.0.1",
        "--fabric-remote-vtep",
        "10.9.0.2",
        "--fabric-local-vtep",
        "10.9.0.1",
    ])))
    .expect("json");
    let token = reg["token"].as_str().expect("token").to_string();
    let (st, cfg) = get(&c, &format!("{url}/cic/v1/edgeSync/config"), Some(&token)).await;
    assert_eq!(st, 200, "{cfg}");
    let rev = cfg["revision"].as_u64().expect("revision");

    // The long-poll runs on the connection the request above opened.
    let poll = {
        let c = c.clone();
        let u = format!("{url}/cic/v1/edgeSync/config?afterRevision={rev}&waitSeconds=30");
        tokio::spawn(async move { get(&c, &u, Some(&token)).await })
    };
    // A new CA's certificate in place, and SIGHUP.
    let new = dir("reload-new");
    pki(&new, &["localhost", "127.0.0.1"]);
    for f in ["server.crt", "server.key"] {
        std::fs::copy(new.join(f), live.join(f)).expect("copy");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let url2 = url.clone();
    let new_ca = new.join("ca.crt");
    tokio::task::spawn_blocking(move || {
        cic_peers::wait_until(
            Duration::from_secs(10),
            "new handshakes to use the new certificate",
            || {
                let o = cic(&[
                    "--server",
                    &url2,
                    "--ca-cert",
                    s(&new_ca),
                    "--token",
                    ADMIN,
                    "pop",
                    "list",
                ]);
                o.status.success().then_some(())
            },
        )
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("{e}"));
    let e = err(cic(&[
        "--server",
        &url,
        "--ca-cert",
        s(&ca),
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    assert!(e.contains("not signed by"), "{e}");
    assert!(!poll.is_finished(), "the long-poll ended before any change");
    // A change: the long-poll, on its old connection, answers with it.
    ok(cic(&[
        "--server",
        &url,
        "--ca-cert",
        s(&new.join("ca.crt")),
        "--token",
        ADMIN,
        "pop",
        "create",
        "--id",
        "pop2",
        "--name",
        "p2",
        "--address",
        "a",
    ]));
    let (st, cfg) = poll.await.expect("join");
    assert_eq!(st, 200, "{cfg}");
    assert!(cfg["revision"].as_u64().expect("revision") > rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_by_certificate_is_only_itself_and_rotates_without_a_gap() {
    let d = dir("mtls");
    pki(&d, &["127.0.0.1"]);
    let server = Server::start(
        &d,
        &[
            "--tls-cert",
            s(&d.join("server.crt")),
            "--tls-key",
            s(&d.join("server.key")),
            "--client-ca",
            s(&d.join("ca.crt")),
            "--client-ca-key",
            s(&d.join("ca.key")),
        ],
    );
    let url = server.url("127.0.0.1");
    let ca = d.join("ca.crt");
    let admin = |args: &[&str]| {
        let mut a = vec![
            "--server",
            &url,
            "--ca-cert",
            s(&ca),
            "--token",
            ADMIN,
            "--json",
        ];
        a.extend_from_slice(args);
        cic(&a)
    };
    ok(admin(&[
        "pop",
        "create",
        "--id",
        "pop1",
        "--name",
        "p",
        "--address",
        "a",
    ]));
    let mut edges = Vec::new();
    for (n, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        let certs = d.join(format!("edge-{n}"));
        let reg: Value = serde_json::from_str(&ok(admin(&[
            "edge-router",
            "create",
            "--name",
            n,
            "--pop",
            "pop1",
            "--router-id",
            ip,
            "--fabric-remote-vtep",
            "10.9.0.2",
            "--fabric-local-vtep",
            "10.9.0.1",
            "--certificate-out",
            s(&certs),
        ])))
        .expect("json");
        let id = reg["edge"]["id"].as_str().expect("id").to_string();
        let token = reg["token"].as_str().expect("token").to_string();
        edges.push((id, token, certs));
    }
    let (a_id, _, a_dir) = &edges[0];
    let (b_id, b_token, _) = &edges[1];
    let key_mode = std::fs::metadata(a_dir.join("edge.key"))
        .expect("key")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );

    let config = format!("{url}/cic/v1/edgeSync/config");
    let a = client(&url, &ca, Some(a_dir));
    // The edge agent's own client, as `cic edge --tls-cert --tls-key` makes it.
    let agent = cic_edge::client::SyncClient::new(
        &url,
        None,
        ClientTls {
            ca_cert: Some(ca.clone()),
            identity: Some((a_dir.join("edge.crt"), a_dir.join("edge.key"))),
            insecure_http: false,
        },
    )
    .expect("agent client");
    let first = agent
        .config(0, Duration::ZERO, None)
        .await
        .expect("agent syncs");
    assert_eq!(&first.0.config.edge_id, a_id);
    let (st, cfg) = get(&a, &config, None).await;
    assert_eq!(st, 200, "{cfg}");
    assert_eq!(cfg["edgeId"], a_id.as_str(), "the certificate is edge a");
    // Edge a's certificate with edge b's token: refused, not b.
    let (st, e) = get(&a, &config, Some(b_token)).await;
    assert_eq!(st, 401, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("different edges"),
        "{e}"
    );
    // Edge tokens alone are refused on a server that authenticates edges by certificate.
    let plain = client(&url, &ca, None);
    let (st, e) = get(&plain, &config, Some(b_token)).await;
    assert_eq!(st, 401, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("by certificate"),
        "{e}"
    );
    // An edge's certificate is no operator.
    let (st, _) = get(&a, &format!("{url}/cic/v1/edges"), None).await;
    assert_eq!(st, 403);
    assert_ne!(a_id, b_id);

    // Rotation: new files at once, the old certificate refused two seconds later.
    let old = a_dir.join("old");
    std::fs::create_dir_all(&old).expect("mkdir");
    for f in ["edge.crt", "edge.key"] {
        std::fs::copy(a_dir.join(f), old.join(f)).expect("copy");
    }
    let out: Value = serde_json::from_str(&ok(admin(&[
        "edge-router",
        "rotate-credentials",
        a_id,
        "--revoke-old-after",
        "2",
        "--out-dir",
        s(a_dir),
    ])))
    .expect("json");
    assert_eq!(out["privateKey"], "(written)");
    let old_client = client(&url, &ca, Some(&old));
    let (st, _) = get(&old_client, &config, None).await;
    assert_eq!(
        st, 200,
        "the old certificate still works until its revocation"
    );
    // The client of edge a reads its files again: its next connection is the new one.
    let (st, _) = get(&client(&url, &ca, Some(a_dir)), &config, None).await;
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let (st, e) = get(&old_client, &config, None).await;
        if st == 401 {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the old certificate was never revoked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "{refused}"
    );
    let again = agent.config(0, Duration::ZERO, None).await;
    assert!(
        again.is_ok(),
        "the agent, reading its new files, goes on after the old certificate's revocation: {:?}",
        again.err()
    );

    // The audit trail has the rotation and the refusals, the edge named where it was
    // known.
    let audit: Value =
        serde_json::from_str(&ok(admin(&["audit", "list", "--page-size", "1000"]))).expect("json");
    let evs = audit["events"].as_array().expect("events");
    assert!(
        evs.iter().any(|e| e["path"]
            .as_str()
            .unwrap_or("")
            .ends_with(":rotateCredentials")
            && e["status"] == 200),
        "{audit}"
    );
    assert!(
        evs.iter().any(|e| e["status"] == 401
            && e["path"] == "/cic/v1/edgeSync/config"
            && e["sourceAddress"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        evs.iter().any(|e| e["status"] == 403
            && e["subject"] == a_id.as_str()
            && e["subjectKind"] == "edge"),
        "{audit}"
    );

    // A CSR: only its key is taken.
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(vec!["x.example".to_string()])
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    std::fs::write(d.join("edge.csr"), csr).expect("write");
    let out: Value = serde_json::from_str(&ok(admin(&[
        "edge-router",
        "issue-certificate",
        b_id,
        "--csr",
        s(&d.join("edge.csr")),
    ])))
    .expect("json");
    assert!(out.get("privateKey").is_none(), "{out}");
    assert!(
        out["certificate"]
            .as_str()
            .unwrap_or("")
            .contains("BEGIN CERTIFICATE")
    );
    let e = err(admin(&[
        "edge-router",
        "issue-certificate",
        b_id,
        "--validity-days",
        "9999",
    ]));
    assert!(e.contains("validityDays"), "{e}");
}

#[test]
fn slow_clients_are_cut_off_and_hold_up_no_one() {
    let d = dir("slow");
    pki(&d, &["127.0.0.1"]);
    let server = Server::start(
        &d,
        &[
            "--tls-cert",
            s(&d.join("server.crt")),
            "--tls-key",
            s(&d.join("server.key")),
            "--header-timeout-secs",
            "1",
        ],
    );
    // Fifty connections that never finish a handshake (a slow-loris on TLS).
    let stalled: Vec<std::net::TcpStream> = (0..50)
        .map(|_| {
            let c = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            c
        })
        .collect();
    // Everyone else is served meanwhile.
    let url = server.url("127.0.0.1");
    ok(cic(&[
        "--server",
        &url,
        "--ca-cert",
        s(&d.join("ca.crt")),
        "--token",
        ADMIN,
        "pop",
        "list",
    ]));
    // And the stalled ones are closed by the server, not left to hold a worker.
    let started = Instant::now();
    for mut c in stalled {
        let mut b = [0u8; 16];
        match c.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("{n} bytes to a client that said nothing"),
            Err(e) => assert!(
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut,
                "a stalled connection was still open after {:?}",
                started.elapsed()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_flags_are_the_servers_limits() {
    let d = dir("limits");
    pki(&d, &["127.0.0.1"]);
    let server = Server::start(
        &d,
        &[
            "--tls-cert",
            s(&d.join("server.crt")),
            "--tls-key",
            s(&d.join("server.key")),
            "--rate-limit",
            "0.5",
            "--rate-burst",
            "2",
        ],
    );
    let url = server.url("127.0.0.1");
    let c = client(&url, &d.join("ca.crt"), None);
    let list = format!("{url}/cic/v1/pointOfPresences");
    for _ in 0..2 {
        assert_eq!(get(&c, &list, Some(ADMIN)).await.0, 200);
    }
    let resp = c.get(&list).bearer_auth(ADMIN).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
}
