//! FRR 8 daemons, each alone: `bgpd` without zebra (`-Z`, routes not installed) and
//! `bfdd`, read through `vtysh` on the daemon's own vty socket directory.

use std::io;
use std::time::Duration;

use crate::daemon::{Daemon, output};

const DIR: &str = "/usr/lib/frr";

/// Whether FRR's bgpd is installed.
pub fn frr_available() -> bool {
    std::path::Path::new(DIR).join("bgpd").exists()
}

/// `vtysh -c COMMAND` against `daemon`'s vty socket in its directory.
fn vtysh(d: &Daemon, daemon: &str, command: &str) -> io::Result<String> {
    let mut cmd = std::process::Command::new("vtysh");
    cmd.arg("--vty_socket")
        .arg(d.dir())
        .args(["-d", daemon, "-c", command]);
    let out = output(cmd, &format!("vtysh -c {command:?}"))?;
    if out.starts_with('%') {
        return Err(io::Error::other(format!("vtysh -c {command:?}: {out}")));
    }
    Ok(out)
}

pub struct Frr {
    d: Daemon,
    daemon: &'static str,
}

impl Frr {
    /// `bgpd` on `config` (FRR syntax), inside `netns` if given; returns once vtysh
    /// answers. Runs as root (`-S`), listens on port 179 of the namespace.
    pub fn bgpd(name: &str, config: &str, netns: Option<&str>) -> io::Result<Frr> {
        Frr::start("bgpd", name, config, netns, &["-Z", "-n", "-S"])
    }

    /// `bfdd` on `config` (a `bfd` block), inside `netns` if given. bfdd drops to the
    /// `frr` user, which then owns the directory.
    pub fn bfdd(name: &str, config: &str, netns: Option<&str>) -> io::Result<Frr> {
        Frr::start("bfdd", name, config, netns, &["-u", "frr", "-g", "frr"])
    }

    fn start(
        daemon: &'static str,
        name: &str,
        config: &str,
        netns: Option<&str>,
        args: &[&str],
    ) -> io::Result<Frr> {
        let mut d = Daemon::new(&format!("frr-{daemon}"), name, netns)?;
        let conf = d.path(&format!("{daemon}.conf"));
        std::fs::write(&conf, config)?;
        if daemon == "bfdd" {
            let chown = std::process::Command::new("chown")
                .args(["-R", "frr:frr"])
                .arg(d.dir())
                .output()?;
            if !chown.status.success() {
                return Err(io::Error::other("chown to frr: is FRR installed?"));
            }
        }
        let mut cmd = d.command(&format!("{DIR}/{daemon}"));
        cmd.args(args)
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(d.path(&format!("{daemon}.pid")))
            .arg("--vty_socket")
            .arg(d.dir())
            .args(["--log", "stdout", "--log-level", "info"]);
        if daemon == "bfdd" {
            cmd.arg("--bfdctl").arg(d.path("bfdd.sock"));
        }
        d.spawn(cmd, "frr.log")?;
        d.wait_ready(
            "frr.log",
            Duration::from_secs(10),
            &format!("FRR {daemon} {name} to answer vtysh"),
            |d| vtysh(d, daemon, "show version").is_ok(),
        )?;
        Ok(Frr { d, daemon })
    }

    /// One vtysh command.
    pub fn vtysh(&self, command: &str) -> io::Result<String> {
        vtysh(&self.d, self.daemon, command)
    }

    /// One vtysh command whose answer is JSON (`… json`).
    pub fn json(&self, command: &str) -> io::Result<serde_json::Value> {
        let out = self.vtysh(command)?;
        serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("vtysh -c {command:?}: {e}: {out}")))
    }

    /// Several configuration lines, entered in order from `configure terminal`.
    pub fn configure(&self, lines: &[&str]) -> io::Result<()> {
        let mut cmd = std::process::Command::new("vtysh");
        cmd.arg("--vty_socket").arg(self.d.dir()).args([
            "-d",
            self.daemon,
            "-c",
            "configure terminal",
        ]);
        for l in lines {
            cmd.args(["-c", l]);
        }
        let out = output(cmd, &format!("vtysh configure {lines:?}"))?;
        if out.contains('%') {
            return Err(io::Error::other(format!(
                "vtysh configure {lines:?}: {out}"
            )));
        }
        Ok(())
    }

    pub fn log(&self) -> String {
        self.d.read("frr.log")
    }

    pub fn keep_dir(&mut self) {
        self.d.keep_dir();
    }
}

/// A whole FRR router: zebra (routes into the kernel of the namespace), bgpd and bfdd,
/// on one integrated config (`frr.conf`: each daemon takes its part), talking through
/// zebra's socket in one directory, read through `vtysh`.
pub struct FrrRouter {
    // Dropped in reverse: bgpd and bfdd before zebra.
    daemons: Vec<Daemon>,
    dir: std::path::PathBuf,
}

impl FrrRouter {
    pub fn start(name: &str, config: &str, netns: Option<&str>) -> io::Result<FrrRouter> {
        let mut zebra = Daemon::new("frr-router", name, netns)?;
        let dir = zebra.dir().to_path_buf();
        let conf = dir.join("frr.conf");
        std::fs::write(&conf, config)?;
        let chown = std::process::Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&dir)
            .output()?;
        if !chown.status.success() {
            return Err(io::Error::other("chown to frr: is FRR installed?"));
        }
        let zsock = dir.join("zserv.api");
        let start = |d: &mut Daemon, daemon: &str, extra: &[&str]| -> io::Result<()> {
            let mut cmd = d.command(&format!("{DIR}/{daemon}"));
            cmd.args(["-u", "frr", "-g", "frr"])
                .args(extra)
                .arg("-f")
                .arg(&conf)
                .arg("-i")
                .arg(dir.join(format!("{daemon}.pid")))
                .arg("--vty_socket")
                .arg(&dir)
                .arg("-z")
                .arg(&zsock)
                .args([
                    "--log",
                    &format!("file:{}/{daemon}.log", dir.display()),
                    "--log-level",
                    "info",
                ]);
            if daemon == "bfdd" {
                cmd.arg("--bfdctl").arg(dir.join("bfdd.sock"));
            }
            d.spawn(cmd, &format!("{daemon}.out"))
        };
        start(&mut zebra, "zebra", &[])?;
        let ask = |daemon: &str| {
            let mut cmd = std::process::Command::new("vtysh");
            cmd.arg("--vty_socket")
                .arg(&dir)
                .args(["-d", daemon, "-c", "show version"]);
            output(cmd, "vtysh").is_ok()
        };
        zebra.wait_ready(
            "zebra.out",
            Duration::from_secs(10),
            "zebra to answer",
            |_| ask("zebra"),
        )?;
        let mut daemons = vec![zebra];
        for daemon in ["bfdd", "bgpd"] {
            let mut d = Daemon::new(&format!("frr-{daemon}"), name, netns)?;
            start(&mut d, daemon, &[])?;
            d.wait_ready(
                &format!("{daemon}.out"),
                Duration::from_secs(10),
                &format!("{daemon} to answer"),
                |_| ask(daemon),
            )?;
            daemons.push(d);
        }
        Ok(FrrRouter { daemons, dir })
    }

    /// One vtysh command to all the daemons (as `show …` commands are usually given).
    pub fn vtysh(&self, command: &str) -> io::Result<String> {
        let mut cmd = std::process::Command::new("vtysh");
        cmd.arg("--vty_socket").arg(&self.dir).args(["-c", command]);
        output(cmd, &format!("vtysh -c {command:?}"))
    }

    pub fn json(&self, command: &str) -> io::Result<serde_json::Value> {
        let out = self.vtysh(command)?;
        serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("vtysh -c {command:?}: {e}: {out}")))
    }

    /// The daemons' logs.
    pub fn log(&self) -> String {
        ["zebra", "bfdd", "bgpd"]
            .iter()
            .map(|d| std::fs::read_to_string(self.dir.join(format!("{d}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for FrrRouter {
    fn drop(&mut self) {
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
    }
}
