//! ExaBGP 4: a route injector that sends what it is told, malformed attributes included
//! (`attribute [ code flags value ]`). Commands go through a file its `feed` process
//! follows; NOTIFICATIONs and state changes it receives are written to `received`.

use std::io::{self, Write};
use std::time::Duration;

use crate::daemon::Daemon;

/// Whether exabgp is installed.
pub fn exabgp_available() -> bool {
    std::process::Command::new("exabgp")
        .arg("--version")
        .output()
        .is_ok()
}

pub struct ExaBgp {
    d: Daemon,
}

impl ExaBgp {
    /// ExaBGP with `neighbors` (ExaBGP syntax: `neighbor … { … }` blocks; each should
    /// say `api { processes [ feed ]; }` to take commands and
    /// `api { processes [ watch ]; receive { notification; } neighbor-changes; }` to
    /// report), inside `netns` if given; returns once it has loaded the config.
    pub fn start(name: &str, neighbors: &str, netns: Option<&str>) -> io::Result<ExaBgp> {
        let mut d = Daemon::new("exabgp", name, netns)?;
        let commands = d.path("commands");
        let received = d.path("received");
        std::fs::write(&commands, "")?;
        std::fs::write(&received, "")?;
        // (The shell stays as the helper: ExaBGP counts a helper whose stdout closes as
        // dead, and gives up after five deaths.)
        let conf = d.path("exabgp.conf");
        std::fs::write(
            &conf,
            format!(
                "process feed {{\n  run /usr/bin/tail -n +1 -F {};\n  encoder text;\n}}\n\
                 process watch {{\n  run /bin/sh -c \"cat >> {}; exit 0\";\n  encoder json;\n}}\n{neighbors}\n",
                commands.display(),
                received.display()
            ),
        )?;
        let mut cmd = d.command("exabgp");
        cmd.arg(&conf)
            .env("exabgp.daemon.user", "root")
            .env("exabgp.log.destination", "stdout")
            .env("exabgp.api.cli", "false");
        d.spawn(cmd, "exabgp.log")?;
        d.wait_ready(
            "exabgp.log",
            Duration::from_secs(20),
            &format!("ExaBGP {name} to load its config"),
            |d| {
                d.read("exabgp.log")
                    .contains("loaded new configuration successfully")
            },
        )?;
        Ok(ExaBgp { d })
    }

    /// One API command, e.g. `announce route 10.0.0.0/24 next-hop self`.
    pub fn send(&self, command: &str) -> io::Result<()> {
        let mut f = std::fs::File::options()
            .append(true)
            .open(self.d.path("commands"))?;
        writeln!(f, "{command}")
    }

    /// What the `watch` process was told, one JSON object per line.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.d
            .read("received")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn log(&self) -> String {
        self.d.read("exabgp.log")
    }

    pub fn keep_dir(&mut self) {
        self.d.keep_dir();
    }
}
