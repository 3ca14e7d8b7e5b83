//! Probes the kernel for the link types cic can use, in a scratch namespace, by trying.

use nix::fcntl::{Flock, FlockArg};

use crate::netlink::{LinkKind, LinkSpec, Netlink};
use crate::{Error, netns};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// 802.1Q VLAN subinterfaces (physical trunks).
    pub vlan: bool,
    /// VXLAN (overlay trunks, fabric segments).
    pub vxlan: bool,
    /// Bonding (LAG trunks).
    pub bond: bool,
}

impl Capabilities {
    /// How a trunk's connections are carried on this kernel, for people and reports.
    pub fn mode(&self) -> &'static str {
        match (self.vlan, self.vxlan) {
            (true, true) => "802.1q+vxlan",
            (true, false) => "802.1q",
            (false, true) => "vxlan-overlay",
            (false, false) => "none",
        }
    }
}

/// The scratch namespaces' names: this, the prober's pid and a count of its probes.
pub const SCRATCH_PREFIX: &str = "cic-probe-";

/// Tries to create each link type on a veth in a throwaway namespace (and first removes
/// those of probes that did not finish: killed in the middle of probing).
pub async fn probe() -> Result<Capabilities, Error> {
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    sweep();
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = format!("{SCRATCH_PREFIX}{}-{n}", std::process::id());
    // One of an earlier process that had this pid is not ours to reuse.
    let _ = netns::del(&ns);
    netns::add(&ns).map_err(|e| Error::Io(e.to_string()))?;
    // Held while probing: a sweep leaves a namespace whose lock is held.
    let held = netns::open(&ns)
        .ok()
        .and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok());
    let r = run(&ns).await;
    let _ = netns::del(&ns);
    drop(held);
    r
}

/// Removes the scratch namespaces of probes that did not finish: no process holds its
/// lock and its prober's pid is not running (each holds a veth pair for as long as its
/// name stays mounted). The lock tells a live prober in another pid namespace, whose pid
/// is not in this `/proc`; the pid, one between making its namespace and locking it.
fn sweep() {
    for name in netns::list(SCRATCH_PREFIX).unwrap_or_default() {
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Ok(file) = netns::open(&name) else {
            continue;
        };
        let Ok(unheld) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        match netns::del(&name) {
            Ok(()) => {
                tracing::info!(netns = %name, "removed the scratch namespace of a probe that did not finish (its process is gone)")
            }
            Err(e) => tracing::warn!(netns = %name, "{e}"),
        }
        drop(unheld);
    }
}

async fn run(ns: &str) -> Result<Capabilities, Error> {
    let nl = Netlink::open(Some(ns))?;
    nl.create_veth("probe0", "probe1", None).await?;
    let try_kind = |kind: LinkKind, name: &str| {
        let spec = LinkSpec {
            name: name.to_string(),
            kind,
            mtu: 1500,
            alias: "probe".into(),
        };
        let nl = nl.clone();
        async move { nl.create_link_in(&spec, &nl).await.map(|_| ()) }
    };
    let vlan = match try_kind(
        LinkKind::Vlan {
            parent: "probe0".into(),
            vlan: 100,
        },
        "probe0.100",
    )
    .await
    {
        Ok(()) => true,
        Err(Error::Unsupported(_)) => false,
        Err(e) => return Err(e),
    };
    let vxlan = match try_kind(
        LinkKind::Vxlan {
            vni: 100,
            remote: std::net::Ipv4Addr::new(192, 0, 2, 1),
            port: 4789,
            underlay_dev: None,
        },
        "probevx",
    )
    .await
    {
        Ok(()) => true,
        Err(Error::Unsupported(_)) => false,
        Err(e) => return Err(e),
    };
    let bond = match nl.ensure_bond("probebd", &[], "probe").await {
        Ok(_) => true,
        Err(Error::Unsupported(_)) => false,
        Err(e) => return Err(e),
    };
    Ok(Capabilities { vlan, vxlan, bond })
}

/// Open files an instance with one connection and a fabric session holds in `cic edge`
/// (IPv4, BFD on both sessions): its namespace, its rtnetlink socket, BGP's IPv4 listener
/// and two sessions, BFD's IPv4 receiver and a sender per session — counted on a running
/// edge (BENCHMARKS.md, issue 17). A family's listener and BFD receiver come with its
/// first session: an instance with IPv6 sessions holds two more, and their sessions and
/// senders.
pub const FILES_PER_INSTANCE: u64 = 8;

/// Raises this process's soft limit of open files to its hard limit (an edge holds about
/// [`FILES_PER_INSTANCE`] per instance; the usual soft limit of 1,024 would stop it near
/// a hundred). Returns the limits it found: (soft, hard).
pub fn raise_open_files() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    // nextest runs each test in a process of its own: lowering the limit here touches
    // no other test.
    #[test]
    fn the_soft_limit_of_open_files_is_raised_to_the_hard_one() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let low = hard.min(256);
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
        assert_eq!(raise_open_files().unwrap(), (low, hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    }
}
