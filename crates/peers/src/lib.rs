//! Real routers as processes, for the lab and for interop tests: BIRD 2, FRR 8 (bgpd,
//! bfdd), GoBGP 3 and ExaBGP 4, from Debian's packages; Routinator (an RPKI cache) from
//! crates.io.
//!
//! Each value owns its process (started in the foreground, optionally inside a network
//! namespace) and a private directory with its config, log and control socket; it is
//! stopped and cleaned up on drop.

mod daemon;
mod exabgp;
mod frr;
mod gobgp;
mod rpki;

pub use exabgp::{ExaBgp, exabgp_available};
pub use frr::{Frr, FrrRouter, frr_available};
pub use gobgp::{GoBgp, gobgp_available};
pub use rpki::{Routinator, routinator_or_skip, routinator_path, write_slurm};

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Whether the `bird` binary is installed.
pub fn bird_available() -> bool {
    Command::new("bird")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Interop tests call this first: `false` means skip (BIRD not installed and the run did
/// not ask for real peers); with `CIC_REQUIRE_PEERS=1` a missing BIRD is a failure.
pub fn bird_or_skip(test: &str) -> bool {
    peer_or_skip(test, bird_available(), "BIRD", "bird2")
}

/// Like [`bird_or_skip`] for any of the routers: `false` (skip) when `available` is
/// false and the run did not ask for real peers; a failure with CIC_REQUIRE_PEERS=1.
pub fn peer_or_skip(test: &str, available: bool, what: &str, package: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CIC_REQUIRE_PEERS").is_err(),
        "{test}: {what} is required (CIC_REQUIRE_PEERS) but not installed"
    );
    eprintln!("{test}: skipped, {what} is not installed (apt-get install {package})");
    false
}

/// `true` when this process runs as root (tests that make namespaces, or put sockets in
/// repair mode, need it); else `false` (skip), or a failure with CIC_REQUIRE_ROOT=1 (CI).
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CIC_REQUIRE_ROOT").is_err(),
        "{test}: needs root (CIC_REQUIRE_ROOT is set)"
    );
    eprintln!("{test}: skipped, needs root");
    false
}

/// Polls `f` every 50 ms until it returns `Some`, or fails naming `what` after `timeout`.
/// For conditions only observable by asking an outside process (birdc, the kernel).
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> io::Result<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {timeout:?} waiting for {what}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Bird {
    name: String,
    dir: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
    keep_dir: bool,
}

impl Bird {
    /// Starts BIRD with `config`, in network namespace `netns` if given, in a fresh
    /// directory under `base` (the system temp dir when `None`); returns once its control
    /// socket answers.
    pub fn start(
        name: &str,
        config: &str,
        netns: Option<&str>,
        base: Option<&Path>,
    ) -> io::Result<Bird> {
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "bird-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config)?;
        let check = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&conf)
            .output()?;
        if !check.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "BIRD rejects the config of {name}: {}",
                    String::from_utf8_lossy(&check.stderr).trim()
                ),
            ));
        }
        let mut b = Bird {
            name: name.to_string(),
            dir,
            netns: netns.map(str::to_string),
            child: None,
            keep_dir: false,
        };
        b.launch(false)?;
        Ok(b)
    }

    /// Runs BIRD on the config in its directory (`-R`: in graceful restart recovery) and
    /// waits for its control socket.
    fn launch(&mut self, recovery: bool) -> io::Result<()> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("bird.log"))?;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bird"]);
                c
            }
            None => Command::new("bird"),
        };
        cmd.arg("-f")
            .arg("-c")
            .arg(self.dir.join("bird.conf"))
            .arg("-s")
            .arg(self.dir.join("bird.ctl"));
        if recovery {
            cmd.arg("-R");
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn()?);
        wait_until(
            Duration::from_secs(10),
            &format!("BIRD {} control socket", self.name),
            || self.cmd("show status").ok(),
        )
        .map(drop)
    }

    /// The first half of a graceful restart of BIRD itself: `birdc graceful restart`
    /// (BIRD exits, its sessions close without a NOTIFICATION, its kernel routes stay).
    pub fn shut_down_for_restart(&mut self) -> io::Result<()> {
        let out = self.cmd("graceful restart")?;
        if !out.to_lowercase().contains("graceful") {
            return Err(io::Error::other(format!(
                "BIRD {} refused the graceful restart: {out}",
                self.name
            )));
        }
        if let Some(mut c) = self.child.take() {
            c.wait()?;
        }
        Ok(())
    }

    /// The second half: BIRD starts again on `config` in recovery mode (`-R`),
    /// announcing the restart to its peers.
    pub fn recover(&mut self, config: &str) -> io::Result<()> {
        std::fs::write(self.dir.join("bird.conf"), config)?;
        self.launch(true)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Keep the directory (config, log) after drop, e.g. to show it after a failure.
    pub fn keep_dir(&mut self) {
        self.keep_dir = true;
    }

    /// Leaves BIRD running (and its directory) after this value is dropped; returns the
    /// process id. For the lab's `up`, whose routers outlive the command.
    pub fn detach(mut self) -> Option<u32> {
        self.keep_dir = true;
        let pid = self.pid();
        // Forget the child: dropping `Child` neither kills nor waits.
        self.child.take();
        pid
    }

    /// Path of the control socket, for `birdc -s`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    /// Runs one birdc command; Err if birdc fails or BIRD answers with an error.
    pub fn cmd(&self, command: &str) -> io::Result<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(command.split_whitespace())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || text.contains("Unable to connect") {
            return Err(io::Error::other(format!(
                "birdc {command}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(text)
    }

    /// Rewrites the config and asks BIRD to load it.
    pub fn reconfigure(&self, config: &str) -> io::Result<()> {
        std::fs::write(self.dir.join("bird.conf"), config)?;
        let out = self.cmd("configure")?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "BIRD {} did not reconfigure: {out}",
                self.name
            )))
        }
    }

    /// BGP state of protocol `proto` as BIRD shows it ("Established", "Active", …).
    pub fn bgp_state(&self, proto: &str) -> Option<String> {
        let out = self.cmd(&format!("show protocols all {proto}")).ok()?;
        out.lines().find_map(|l| {
            l.trim()
                .strip_prefix("BGP state:")
                .map(|s| s.trim().to_string())
        })
    }

    /// The "Last error" line of a protocol, if any.
    pub fn last_error(&self, proto: &str) -> Option<String> {
        let out = self.cmd(&format!("show protocols all {proto}")).ok()?;
        out.lines().find_map(|l| {
            l.trim()
                .strip_prefix("Last error:")
                .map(|s| s.trim().to_string())
        })
    }

    /// `show route all` for one prefix (empty when BIRD has no route for it).
    pub fn route(&self, prefix: &str) -> String {
        self.cmd(&format!("show route {prefix} all"))
            .unwrap_or_default()
    }

    pub fn has_route(&self, prefix: &str) -> bool {
        self.route(prefix).lines().any(|l| l.starts_with(prefix))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }

    /// Stops BIRD now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
