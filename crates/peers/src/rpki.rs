//! Routinator (from crates.io) as an RPKI cache serving the local assertions of a SLURM
//! file (RFC 8416) over RTR: no trust anchors, no network.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Routinator: `CIC_ROUTINATOR`, else `routinator` on PATH.
pub fn routinator_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CIC_ROUTINATOR") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("routinator"))
            .find(|p| p.exists())
    })
}

/// Writes the SLURM file at `path` with `(asn, prefix, max_len)` assertions: whole, then
/// moved in place, so the cache never reads half of it.
pub fn write_slurm(path: &Path, roas: &[(u32, &str, u8)]) -> io::Result<()> {
    let assertions: Vec<serde_json::Value> = roas
        .iter()
        .map(|(asn, prefix, max)| {
            serde_json::json!({"asn": asn, "prefix": prefix, "maxPrefixLength": max})
        })
        .collect();
    let doc = serde_json::json!({
        "slurmVersion": 1,
        "validationOutputFilters": {"prefixFilters": [], "bgpsecFilters": []},
        "locallyAddedAssertions": {"prefixAssertions": assertions, "bgpsecAssertions": []}
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string())?;
    std::fs::rename(&tmp, path)
}

/// A running Routinator; killed on drop.
pub struct Routinator {
    child: Child,
    pub dir: PathBuf,
    pub slurm: PathBuf,
}

impl Routinator {
    /// Routinator serving `roas` (see [`write_slurm`]) over RTR at 127.0.0.1:`port`,
    /// validating again (reading the file again) every second. Its files are in `dir`.
    pub fn start(bin: &Path, dir: &Path, port: u16, roas: &[(u32, &str, u8)]) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let slurm = dir.join("slurm.json");
        write_slurm(&slurm, roas)?;
        let log = std::fs::File::create(dir.join("routinator.log"))?;
        let child = Command::new(bin)
            .args(["--no-rir-tals", "--disable-rsync", "--disable-rrdp"])
            .arg("--repository-dir")
            .arg(dir.join("repository"))
            .arg("--exceptions")
            .arg(&slurm)
            .args([
                "server",
                "--rtr",
                &format!("127.0.0.1:{port}"),
                "--refresh",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut r = Routinator {
            child,
            dir: dir.to_path_buf(),
            slurm,
        };
        // Ready when its RTR port takes a connection: a client that came sooner would be
        // refused and try again only after its retry wait (30 s for ours).
        let rtr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        crate::wait_until(Duration::from_secs(30), "Routinator's RTR port", || {
            if let Ok(Some(status)) = r.child.try_wait() {
                return Some(Err(io::Error::other(format!(
                    "Routinator exited ({status}): {}",
                    r.log()
                ))));
            }
            std::net::TcpStream::connect_timeout(&rtr, Duration::from_millis(200))
                .ok()
                .map(|_| Ok(()))
        })??;
        Ok(r)
    }

    /// Replaces the assertions it serves (in force at its next validation, within a
    /// second).
    pub fn set(&self, roas: &[(u32, &str, u8)]) -> io::Result<()> {
        write_slurm(&self.slurm, roas)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("routinator.log")).unwrap_or_default()
    }
}

impl Drop for Routinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests that need Routinator call this first: its path, or `None` (skip) when it is
/// missing and the run did not ask for real peers (CIC_REQUIRE_PEERS=1 makes that a
/// failure).
pub fn routinator_or_skip(test: &str) -> Option<PathBuf> {
    let found = routinator_path();
    if found.is_none() {
        crate::peer_or_skip(
            test,
            false,
            "Routinator",
            "routinator from crates.io: cargo install routinator",
        );
    }
    found
}
