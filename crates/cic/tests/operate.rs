//! Operating cic: `cic server --config` and `cic edge --config` (a TOML file of the flags,
//! the command line and the environment winning over it, every mistake named by file and
//! key, `--check-config` reading what the process would read before it serves), JSON logs,
//! shell completions and man pages.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn cic(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cic"));
    c.args(args)
        .env_remove("CIC_SERVER")
        .env_remove("CIC_TOKEN")
        .env_remove("CIC_CA_CERT")
        .env_remove("CIC_SECRETS_KEY_FILE")
        .env_remove("CIC_EDGE_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run cic")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cic-conf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn pki(d: &Path) {
    let o = cic(&["pki", "init", "--dir", s(d), "--name", "127.0.0.1"], &[]);
    assert!(o.status.success(), "{}", text(&o));
}

fn server_toml(d: &Path, extra: &str) -> PathBuf {
    let f = d.join("server.toml");
    std::fs::write(
        &f,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"sqlite://{db}\"\ntls-cert = \"{c}\"\ntls-key = \"{k}\"\n\
             secrets-key-file = \"{sk}\"\nrate-limit = 0.5\nrate-burst = 2\n{extra}",
            db = s(&d.join("cic.db")),
            c = s(&d.join("server.crt")),
            k = s(&d.join("server.key")),
            sk = s(&d.join("from-file.key")),
        ),
    )
    .expect("write");
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_from_its_file_and_the_command_line_and_environment_win() {
    let d = dir("run");
    pki(&d);
    let f = server_toml(&d, "");
    let env_key = d.join("from-env.key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(["server", "--config", s(&f), "--rate-burst", "3"])
        .env("CIC_ADMIN_TOKEN", "conf-admin")
        .env("CIC_SECRETS_KEY_FILE", s(&env_key))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic server");
    let url = common::listening_url(&mut child);
    assert!(
        url.starts_with("https://127.0.0.1:"),
        "TLS from the file: {url}"
    );
    // The environment's key file, not the file's.
    assert!(env_key.exists() && !d.join("from-file.key").exists());
    // The command line's burst (3), not the file's (2).
    let tls = cic_client::tls::ClientTls {
        ca_cert: Some(d.join("ca.crt")),
        identity: None,
        insecure_http: false,
    };
    let http =
        cic_client::tls::http_client(&url, &tls, reqwest::Client::builder()).expect("client");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{url}/cic/v1/pointOfPresences"))
            .bearer_auth("conf-admin")
            .send()
            .await
            .expect("send");
        statuses.push(r.status().as_u16());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(statuses, [200, 200, 200, 429]);
}

#[test]
fn check_config_reads_what_the_server_would_and_names_every_mistake() {
    let d = dir("check");
    pki(&d);
    let f = server_toml(&d, "");
    let o = cic(&["server", "--config", s(&f), "--check-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("config OK (https://127.0.0.1:0"),
        "{}",
        text(&o)
    );
    assert!(!d.join("cic.db").exists(), "a check opens no database");
    assert!(!d.join("from-file.key").exists(), "a check makes no key");

    // A TLS file that is not there.
    let bad = server_toml(&d, "");
    let t = std::fs::read_to_string(&bad)
        .expect("read")
        .replace("server.crt", "nope.crt");
    std::fs::write(&bad, t).expect("write");
    let o = cic(&["server", "--config", s(&bad), "--check-config"], &[]);
    assert!(
        !o.status.success() && text(&o).contains("nope.crt"),
        "{}",
        text(&o)
    );

    // An unknown key, a wrong type, a value the flag refuses.
    for (extra, says) in [
        ("listn = \"x\"\n", "unknown key `listn`"),
        ("insecure-http = 1\n", "`insecure-http` is true or false"),
        ("format = \"json\"\n", "unknown key `format`"),
        (
            "allow-edge-tokens = \"yes\"\n",
            "`allow-edge-tokens` is true or false",
        ),
        ("bfd-multiplier = 99\n", "--bfd-multiplier"),
        ("max-prefix-action = \"drop\"\n", "--max-prefix-action"),
    ] {
        let f = d.join("bad.toml");
        std::fs::write(&f, extra).expect("write");
        let o = cic(&["server", "--config", s(&f), "--check-config"], &[]);
        assert!(!o.status.success(), "{extra}: {}", text(&o));
        assert!(text(&o).contains(says), "{extra}: {}", text(&o));
    }
    let o = cic(&["server", "--config", "/nonexistent/server.toml"], &[]);
    assert!(
        text(&o).contains("cannot read the config file /nonexistent/server.toml"),
        "{}",
        text(&o)
    );

    // Plain HTTP across the network, refused by the check as by the server.
    let f = d.join("plain.toml");
    std::fs::write(&f, "listen = \"0.0.0.0:8080\"\n").expect("write");
    let o = cic(&["server", "--config", s(&f), "--check-config"], &[]);
    assert!(
        !o.status.success() && text(&o).contains("--insecure-http"),
        "{}",
        text(&o)
    );

    // PostgreSQL without a secrets key.
    let f = d.join("pg.toml");
    std::fs::write(&f, "database = \"postgres://cic@127.0.0.1/cic\"\n").expect("write");
    let o = cic(&["server", "--config", s(&f), "--check-config"], &[]);
    assert!(
        !o.status.success() && text(&o).contains("--secrets-key-file is required"),
        "{}",
        text(&o)
    );
}

#[test]
fn an_edge_checks_its_config_file_too() {
    let d = dir("edge");
    pki(&d);
    let f = d.join("edge.toml");
    std::fs::write(
        &f,
        format!(
            "server = \"https://127.0.0.1:8443\"\ntls-cert = \"{c}\"\ntls-key = \"{k}\"\nstate-dir = \"{sd}\"\n",
            c = s(&d.join("server.crt")),
            k = s(&d.join("server.key")),
            sd = s(&d.join("state")),
        ),
    )
    .expect("write");
    let o = cic(
        &[
            "--ca-cert",
            s(&d.join("ca.crt")),
            "edge",
            "--config",
            s(&f),
            "--check-config",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("by certificate"), "{}", text(&o));
    // The command line's server wins, and plain HTTP off loopback is refused.
    let o = cic(
        &[
            "edge",
            "--config",
            s(&f),
            "--server",
            "http://192.0.2.1:8080",
            "--check-config",
        ],
        &[],
    );
    assert!(
        !o.status.success() && text(&o).contains("refusing plain HTTP"),
        "{}",
        text(&o)
    );
    // A key the edge has not.
    std::fs::write(&f, "rate-limit = 5\n").expect("write");
    let o = cic(&["edge", "--config", s(&f), "--check-config"], &[]);
    assert!(
        text(&o).contains("unknown key `rate-limit`"),
        "{}",
        text(&o)
    );
}

#[test]
fn logs_are_one_json_object_a_line_when_asked() {
    let d = dir("json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(["server", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--database", &format!("sqlite://{}", s(&d.join("cic.db")))])
        .env("CIC_ADMIN_TOKEN", "json-admin")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a log line");
        if l.contains("listening on") {
            break l;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["level"], "INFO", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("cic server listening on http://127.0.0.1:"),
        "{v}"
    );
    assert!(v["timestamp"].is_string() && v["target"].is_string(), "{v}");
}

#[test]
fn shell_completions_and_man_pages_cover_every_command() {
    let o = cic(&["completion", "bash"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let d = dir("completion");
    let script = d.join("cic.bash");
    std::fs::write(&script, &o.stdout).expect("write");
    // The script is valid bash, and completes a subcommand and a flag.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(cic edge-r); COMP_CWORD=1; _cic cic edge-r cic; echo \"${{COMPREPLY[@]}}\"; \
             COMP_WORDS=(cic server --tls-c); COMP_CWORD=2; _cic cic --tls-c server; echo \"${{COMPREPLY[@]}}\"",
            s(&script)
        ))
        .output()
        .expect("bash");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains("edge-router") && got.contains("--tls-cert"),
        "{got}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        let o = cic(&["completion", shell], &[]);
        assert!(o.status.success() && o.stdout.len() > 1000, "{shell}");
    }
    let o = cic(&["completion", "tcsh"], &[]);
    assert!(!o.status.success(), "an unknown shell is refused");

    let man = d.join("man");
    let o = cic(&["man", "--dir", s(&man)], &[]);
    assert!(o.status.success(), "{}", text(&o));
    for page in [
        "cic.1",
        "cic-server.1",
        "cic-edge.1",
        "cic-edge-router-rotate-credentials.1",
        "cic-audit-list.1",
    ] {
        let t = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(t.starts_with(".ie") || t.contains(".TH"), "{page}");
    }
}

#[test]
fn doctor_reports_what_this_kernel_lacks_and_what_the_edge_does_without() {
    if !cic_peers::root_or_skip("cic doctor") {
        return;
    }
    let o = cic(&["doctor", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let checks = v["checks"].as_array().expect("checks");
    let state = |name: &str| {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {v}"));
        assert!(
            !c["without"].as_str().unwrap_or("").is_empty() || c["ok"] == true,
            "{c}"
        );
        c["ok"] == true
    };
    // This machine's kernel (DESIGN: no 802.1Q, VRF, dummy, bond devices or tc
    // classifiers; namespaces, veth, VXLAN, nexthop objects, tbf, TCP-MD5, IP_MINTTL).
    for lacking in [
        "802.1Q VLAN",
        "VRF",
        "dummy",
        "bonding (802.3ad)",
        "tc classifier matchall",
    ] {
        assert!(!state(lacking), "{lacking} reported present: {v}");
    }
    for present in [
        "network namespaces",
        "veth",
        "VXLAN",
        "nexthop objects",
        "tc tbf",
        "TCP-MD5 (RFC 2385)",
        "IP_MINTTL (GTSM, RFC 5082)",
    ] {
        assert!(state(present), "{present} reported missing: {v}");
    }
    assert!(
        v["sysctls"]
            .as_array()
            .expect("sysctls")
            .iter()
            .any(|s| s["key"] == "net.ipv4.ip_forward"),
        "{v}"
    );
    // No namespace of the doctor's is left behind.
    let left = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("cic-doctor-"))
        })
        .unwrap_or(false);
    assert!(!left, "a cic-doctor namespace was left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_config_file_again_and_a_broken_one_changes_nothing() {
    let d = dir("hup");
    let db = format!("sqlite://{}", s(&d.join("cic.db")));
    let f = d.join("server.toml");
    let write = |rate: &str, burst: &str, level: &str| {
        std::fs::write(
            &f,
            format!(
                "listen = \"127.0.0.1:0\"\ndatabase = \"{db}\"\nrate-limit = {rate}\nrate-burst = {burst}\nlog-level = \"{level}\"\n"
            ),
        )
        .expect("write");
    };
    write("0.1", "1", "info");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(["server", "--config", s(&f)])
        .env("CIC_ADMIN_TOKEN", "hup-admin")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {what:?}"));
        if l.contains(what) {
            return l;
        }
    };
    let listening = wait_for("listening on http://");
    let url = listening
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("url")
        .to_string();
    let http = cic_client::tls::local_client(reqwest::Client::builder()).expect("client");
    let status = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/cic/v1/pointOfPresences"))
            .bearer_auth("hup-admin")
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    };
    assert_eq!(status(http.clone(), url.clone()).await, 200);
    assert_eq!(
        status(http.clone(), url.clone()).await,
        429,
        "burst 1 from the file"
    );
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP")
    };
    // A broken file: refused, said so, the limits stay.
    std::fs::write(&f, "rate-limit = \"fast\"\n").expect("write");
    hup();
    let e = wait_for("config not reloaded");
    assert!(e.contains("--rate-limit"), "{e}");
    // The file fixed and raised: in force after SIGHUP, without a restart.
    write("100", "50", "debug");
    hup();
    let ok = wait_for("config reloaded");
    assert!(ok.contains("rate limit 100/s, burst 50"), "{ok}");
    for _ in 0..10 {
        assert_eq!(status(http.clone(), url.clone()).await, 200);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Two agents on one machine with one namespace prefix would each take the other's
/// namespaces for leftovers and delete them: the second refuses to start, naming the
/// first, and starts once the first has stopped.
#[test]
fn a_second_edge_with_the_same_namespace_prefix_refuses_to_start() {
    if !cic_peers::root_or_skip("edge namespace claim") {
        return;
    }
    let d = dir("edge-claim");
    let f = d.join("edge.toml");
    std::fs::write(
        &f,
        format!(
            "server = \"http://127.0.0.1:9\"\ntoken = \"t\"\nstate-dir = \"{}\"\nnetns-prefix = \"cicclaim-\"\n",
            s(&d.join("state")),
        ),
    )
    .expect("write");
    let edge = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cic"));
        c.args(["edge", "--config", s(&f)])
            .env_remove("RUST_LOG")
            .env_remove("CIC_SERVER")
            .env("NO_COLOR", "1");
        c
    };
    let started = |child: &mut std::process::Child| {
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let claimed = lines
            .find(|l| l.contains("namespace prefix"))
            .expect("the agent's claim logged");
        // Its kernel probe done (killed in the middle, it would leave its namespace).
        lines
            .find(|l| l.contains("kernel probed"))
            .expect("the agent's probe logged");
        // Drain the rest, so the agent never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        claimed
    };
    let mut first = edge()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic edge");
    let claimed = started(&mut first);
    assert!(claimed.contains("\"cicclaim-\" claimed"), "{claimed}");
    // It waits up to 10 s for an agent on its way out, then gives up.
    let mut second = edge()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cic edge again");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            let _ = first.kill();
            let _ = first.wait();
            panic!("a second agent with the prefix of a running one did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = second.wait_with_output().expect("its output");
    let said = text(&second);
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains(&format!("pid {}", first.id()))
            && said.contains("--netns-prefix \"cicclaim-\""),
        "{said}"
    );
    // Once the first has gone (however: here by SIGKILL), another starts.
    let _ = first.kill();
    let _ = first.wait();
    let mut third = edge()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic edge a third time");
    started(&mut third);
    let _ = third.kill();
    let _ = third.wait();
}

/// SIGHUP of `cic edge`: the log levels of its file in force at once, a change to what
/// only a restart changes named, and a broken file refused with nothing changed.
#[test]
fn an_edge_reloads_its_log_levels_on_sighup_and_names_what_waits_for_a_restart() {
    // (The agent probes the kernel in a namespace.)
    if !cic_peers::root_or_skip("edge SIGHUP") {
        return;
    }
    let d = dir("edge-hup");
    let f = d.join("edge.toml");
    let write = |server: &str, level: &str| {
        std::fs::write(
            &f,
            format!(
                "server = \"{server}\"\ntoken = \"t\"\nstate-dir = \"{sd}\"\nnetns-prefix = \"cicop-\"\nlog-level = \"{level}\"\n",
                sd = s(&d.join("state")),
            ),
        )
        .expect("write");
    };
    // A server that is not there: the agent retries, logging at debug what it retries.
    write("http://127.0.0.1:9", "info");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(["edge", "--config", s(&f)])
        .env_remove("RUST_LOG")
        .env_remove("CIC_SERVER")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cic edge");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {what:?}"));
        if l.contains(what) {
            return l;
        }
    };
    wait_for("kernel probed");
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP")
    };
    // At info nothing of the retries shows; a broken file changes nothing.
    std::fs::write(&f, "report-every = \"often\"\n").expect("write");
    hup();
    let e = wait_for("config not reloaded");
    assert!(e.contains("report-every"), "{e}");
    // Debug from the file, and another server: the level at once, the server named.
    write("http://127.0.0.1:10", "debug");
    hup();
    let ok = wait_for("config reloaded");
    assert!(
        ok.contains("log level debug; changed, in force after a restart: server"),
        "{ok}"
    );
    // The looking glass's retries are logged at debug only; the agent still asks the
    // server it was started with.
    let debug = wait_for("looking glass:");
    assert!(
        debug.contains("DEBUG") && debug.contains("127.0.0.1:9/"),
        "{debug}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
