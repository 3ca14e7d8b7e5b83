//! Running `cic bgp run` as a user does and reading it through `cic bgp show`; shared by
//! the speaker's tests (bgp.rs, interop.rs).
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use cic_peers::wait_until;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn cic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cic"))
        .args(args)
        .env_remove("CIC_SERVER")
        .env_remove("CIC_TOKEN")
        .output()
        .expect("run cic")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A running `cic bgp run`; killed on drop.
pub struct Running {
    pub child: Child,
    pub socket: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `cic bgp run` on `config` written to `dir`, inside `netns` if given; returns once its
/// control socket exists. Its log is `dir/speaker.log`.
pub fn run_speaker(dir: &Path, config: &str, netns: Option<&str>) -> Running {
    let conf = dir.join("speaker.toml");
    std::fs::write(&conf, config).expect("write config");
    let socket = dir.join("speaker.sock");
    let log = std::fs::File::create(dir.join("speaker.log")).expect("log");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_cic")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_cic")),
    };
    let child = cmd
        .args(["bgp", "run", "--config"])
        .arg(&conf)
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("cic bgp run");
    let s = socket.clone();
    wait_until(WAIT, "the control socket", || s.exists().then_some(())).expect("socket");
    Running { child, socket }
}

pub fn show(socket: &Path, args: &[&str]) -> String {
    let mut all = vec!["bgp", "show"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--socket", socket.to_str().expect("path")]);
    let o = cic(&all);
    assert!(o.status.success(), "cic {all:?}: {}", stderr(&o));
    stdout(&o)
}

pub fn count(socket: &Path) -> u64 {
    show(socket, &["routes", "--count"])
        .trim()
        .parse()
        .expect("an integer")
}

pub fn routes(socket: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&show(socket, &["routes", "--json"])).expect("a JSON array")
}

/// The summary row of one neighbor (`cic bgp show summary --json`).
/// (Null until the neighbor is in the summary: a speaker just started publishes its
/// status within 50 ms, so a test waiting on a field of it simply waits on.)
pub fn neighbor(socket: &Path, address: &str) -> serde_json::Value {
    let js: serde_json::Value =
        serde_json::from_str(&show(socket, &["summary", "--json"])).expect("json");
    js["neighbors"]
        .as_array()
        .expect("neighbors")
        .iter()
        .find(|n| n["address"] == address)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Where a `cic server` started with its stdout piped says it listens (its "listening on
/// URL, …" log line), waited for up to 30 s; its log keeps being drained after, so the
/// server never blocks on a full pipe.
pub fn listening_url(child: &mut Child) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("the server's stdout, piped");
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
    rx.recv_timeout(WAIT)
        .expect("cic server said where it listens")
}
