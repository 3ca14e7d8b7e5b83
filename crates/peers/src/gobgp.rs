//! GoBGP 3: `gobgpd` on a TOML config, read and driven through the `gobgp` CLI.

use std::io;
use std::time::Duration;

use crate::daemon::{Daemon, output};

/// Whether gobgpd and the gobgp CLI are installed.
pub fn gobgp_available() -> bool {
    ["gobgpd", "gobgp"].iter().all(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok()
    })
}

/// `gobgp -u HOST -p PORT ARGS…`, run in the daemon's namespace.
fn cli(d: &Daemon, api: &str, args: &[&str]) -> io::Result<String> {
    let (host, port) = api.split_once(':').unwrap_or((api, "50051"));
    let mut cmd = d.command("gobgp");
    cmd.args(["-u", host, "-p", port]).args(args);
    output(cmd, &format!("gobgp {}", args.join(" ")))
}

pub struct GoBgp {
    d: Daemon,
    api: String,
}

impl GoBgp {
    /// `gobgpd` on `config` (TOML), inside `netns` if given, its gRPC API on
    /// 127.0.0.1:`api_port` (of the namespace); returns once the CLI answers.
    pub fn start(
        name: &str,
        config: &str,
        netns: Option<&str>,
        api_port: u16,
    ) -> io::Result<GoBgp> {
        let mut d = Daemon::new("gobgp", name, netns)?;
        let conf = d.path("gobgpd.toml");
        std::fs::write(&conf, config)?;
        let api = format!("127.0.0.1:{api_port}");
        let mut cmd = d.command("gobgpd");
        cmd.arg("-f")
            .arg(&conf)
            .args(["-t", "toml", "--api-hosts", &api, "--log-plain"]);
        d.spawn(cmd, "gobgpd.log")?;
        d.wait_ready(
            "gobgpd.log",
            Duration::from_secs(10),
            &format!("gobgpd {name} to answer"),
            |d| cli(d, &api, &["global"]).is_ok(),
        )?;
        Ok(GoBgp { d, api })
    }

    /// `gobgp ARGS…` against this daemon.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        cli(&self.d, &self.api, args)
    }

    /// `gobgp -j ARGS…`, parsed.
    pub fn json(&self, args: &[&str]) -> io::Result<serde_json::Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let out = self.cli(&all)?;
        serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("gobgp {}: {e}: {out}", args.join(" "))))
    }

    pub fn log(&self) -> String {
        self.d.read("gobgpd.log")
    }

    pub fn keep_dir(&mut self) {
        self.d.keep_dir();
    }
}
