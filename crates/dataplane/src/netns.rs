//! Named network namespaces, compatible with `ip netns` (bind mounts under /run/netns, a
//! shared mount point of its own as iproute2 makes it),
//! made without forking: a scoped thread unshares or enters the namespace, since a
//! thread's network namespace is its own (setns(2), unshare(2)).

use std::fs::File;
use std::io;
use std::path::PathBuf;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

pub const RUN_DIR: &str = "/run/netns";
/// `NSFS_MAGIC` from linux/magic.h: a file that is a mounted namespace.
const NSFS_MAGIC: i64 = 0x6e73_6673;

fn path(name: &str) -> io::Result<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name != "."
        && name != "..";
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid namespace name {name:?}"),
        ));
    }
    Ok(PathBuf::from(RUN_DIR).join(name))
}

/// Whether `name` exists as a live namespace mount.
pub fn exists(name: &str) -> bool {
    let Ok(p) = path(name) else { return false };
    match nix::sys::statfs::statfs(&p) {
        Ok(s) => s.filesystem_type().0 == NSFS_MAGIC,
        Err(_) => false,
    }
}

/// Creates namespace `name` (idempotent: an existing one is kept as it is).
pub fn add(name: &str) -> io::Result<()> {
    ensure(name, &[] as &[(&str, &str)]).map(|_| ())
}

/// Writes `pairs` (`key`, `value` under /proc/sys) in the calling thread's namespace,
/// which errors name as `place`.
fn write_sysctls<K: AsRef<str>, V: AsRef<str>>(place: &str, pairs: &[(K, V)]) -> io::Result<()> {
    for (key, value) in pairs {
        let (key, value) = (key.as_ref(), value.as_ref());
        std::fs::write(format!("/proc/sys/{key}"), value).map_err(|e| {
            io::Error::new(e.kind(), format!("sysctl {key}={value} in {place}: {e}"))
        })?;
    }
    Ok(())
}

/// Makes namespace `name` (or keeps the one there) with `sysctls` (`key`, `value` under
/// /proc/sys) set in it, on one thread: the new namespace is entered by the thread that
/// unshared it, so setting it up costs one thread, not one per sysctl. Returns whether it
/// was there already. Blocking: call it from a blocking thread.
pub fn ensure<K: AsRef<str> + Sync, V: AsRef<str> + Sync>(
    name: &str,
    sysctls: &[(K, V)],
) -> io::Result<bool> {
    let p = path(name)?;
    if exists(name) {
        if !sysctls.is_empty() {
            run_in(Some(name), || write_sysctls(name, sysctls))??;
        }
        return Ok(true);
    }
    std::fs::create_dir_all(RUN_DIR)?;
    shared_run_dir()?;
    // A stale file from an earlier unclean exit is replaced.
    let _ = std::fs::remove_file(&p);
    File::options().write(true).create_new(true).open(&p)?;
    let target = p.clone();
    let res = std::thread::scope(|s| {
        s.spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            write_sysctls(name, sysctls)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&p);
    }
    res.map(|()| false)
        .map_err(|e| io::Error::new(e.kind(), format!("create network namespace {name}: {e}")))
}

/// Makes /run/netns a mount point of its own with shared propagation, as iproute2's `ip
/// netns add` does before it mounts a namespace. Left a plain directory, the first `ip
/// netns add` after ours (an operator's, a test's) bind-mounts it over itself, copying our
/// namespaces' mounts above: a delete then unmounts the copy, and the mount beneath — out
/// of reach of any path, keeping the namespace alive — makes the name undeletable (EBUSY).
/// One system call when it is one already (each namespace made asks again: another
/// process may have made it a mount point, or taken it away).
fn shared_run_dir() -> io::Result<()> {
    let mut made = false;
    loop {
        match mount(
            None::<&str>,
            RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            // Not a mount point: made one, carrying any namespace mounted there already.
            Err(nix::errno::Errno::EINVAL) if !made => {
                mount(
                    Some(RUN_DIR),
                    RUN_DIR,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| io::Error::other(format!("bind-mount {RUN_DIR} on itself: {e}")))?;
                made = true;
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "make {RUN_DIR} a shared mount point: {e}"
                )));
            }
        }
    }
}

/// Gives namespace `from` the name `to`: the namespace itself (its links, sockets,
/// routes) is untouched; it is mounted under the new name before the old one is taken
/// away, so it is never without a name. Fails when `to` is a live namespace already.
pub fn rename(from: &str, to: &str) -> io::Result<()> {
    let (src, dst) = (path(from)?, path(to)?);
    if !exists(from) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("rename network namespace {from}: it does not exist"),
        ));
    }
    if exists(to) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("rename network namespace {from} to {to}: {to} exists"),
        ));
    }
    let _ = std::fs::remove_file(&dst);
    File::options().write(true).create_new(true).open(&dst)?;
    if let Err(e) = mount(
        Some(&src),
        &dst,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&dst);
        return Err(io::Error::other(format!(
            "rename network namespace {from} to {to}: {e}"
        )));
    }
    // An error means it is still under its old name (and only there): a failed unmount
    // takes the new name away again; once the old name is unmounted the rename is done,
    // and a file left behind is only a file.
    if let Err(e) = umount2(&src, MntFlags::MNT_DETACH) {
        let _ = umount2(&dst, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&dst);
        return Err(io::Error::other(format!(
            "rename network namespace {from} to {to}: unmount {}: {e}",
            src.display()
        )));
    }
    let _ = std::fs::remove_file(&src);
    Ok(())
}

/// Deletes namespace `name`; its virtual links go with it, but only when the kernel's
/// cleanup work runs, later: use [`crate::purge`] when they must be gone at once (a VXLAN
/// VNI to be reused, say). Missing is fine, and so is a file no longer mounted: another
/// process (an agent, `ip netns del`) may unmount it between a look and the unmount, so
/// there is no look first.
pub fn del(name: &str) -> io::Result<()> {
    let p = path(name)?;
    // Not through a symlink: only what is mounted at the name itself.
    match umount2(&p, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        // EINVAL: not a mount point (any more); ENOENT: no file.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::other(format!("unmount {}: {e}", p.display()))),
    }
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Names of the namespaces under /run/netns that start with `prefix`.
pub fn list(prefix: &str) -> io::Result<Vec<String>> {
    let rd = match std::fs::read_dir(RUN_DIR) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    Ok(v)
}

/// An open handle on a namespace (to place links into it).
pub fn open(name: &str) -> io::Result<File> {
    let p = path(name)?;
    File::open(&p)
        .map_err(|e| io::Error::new(e.kind(), format!("open network namespace {name}: {e}")))
}

/// Runs `f` on a thread inside namespace `name` (the current one when `None`). Sockets
/// made by `f` stay in that namespace for their whole life.
pub fn run_in<T: Send>(name: Option<&str>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let Some(name) = name else { return Ok(f()) };
    let ns = open(name)?;
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<T> {
            setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("enter {name}: {e}")))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Runs `f` on a thread inside the namespace `ns` is a handle on (see [`open`]): unlike
/// [`run_in`], it follows the namespace whatever it is named now.
pub fn run_in_handle<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<T> {
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("enter a network namespace: {e}")))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// A new TCP socket of `domain` inside the namespace `ns` is a handle on.
pub fn tcp_socket_in(ns: &File, domain: socket2::Domain) -> io::Result<socket2::Socket> {
    run_in_handle(ns, || {
        socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
    })?
}

/// A new UDP socket of `domain` inside the namespace `ns` is a handle on.
pub fn udp_socket_in(ns: &File, domain: socket2::Domain) -> io::Result<socket2::Socket> {
    run_in_handle(ns, || {
        socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
    })?
}

/// Writes sysctls under /proc/sys inside namespace `name` (the host's when `None`), on
/// one thread.
pub fn sysctls<K: AsRef<str> + Sync, V: AsRef<str> + Sync>(
    name: Option<&str>,
    pairs: &[(K, V)],
) -> io::Result<()> {
    run_in(name, || write_sysctls(name.unwrap_or("the host"), pairs))?
}

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`) inside namespace `name`.
pub fn sysctl(name: Option<&str>, key: &str, value: &str) -> io::Result<()> {
    sysctls(name, &[(key, value)])
}

/// A new TCP/IPv4 socket inside namespace `name`.
pub fn tcp_socket(name: Option<&str>) -> io::Result<socket2::Socket> {
    tcp_socket_of(name, socket2::Domain::IPV4)
}

/// A new TCP socket of `domain` (IPv4 or IPv6) inside namespace `name`.
pub fn tcp_socket_of(name: Option<&str>, domain: socket2::Domain) -> io::Result<socket2::Socket> {
    run_in(name, || {
        socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
    })?
}

/// A new UDP/IPv4 socket inside namespace `name`.
pub fn udp_socket(name: Option<&str>) -> io::Result<socket2::Socket> {
    udp_socket_of(name, socket2::Domain::IPV4)
}

/// A new UDP socket of `domain` (IPv4 or IPv6) inside namespace `name`.
pub fn udp_socket_of(name: Option<&str>, domain: socket2::Domain) -> io::Result<socket2::Socket> {
    run_in(name, || {
        socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
    })?
}

/// What a namespace's TCP dropped before any socket saw it: segments failing TCP-MD5
/// (a key mismatch) and segments below a socket's minimum TTL (GTSM, RFC 5082).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpDrops {
    pub md5: u64,
    pub min_ttl: u64,
}

/// The namespace's [`TcpDrops`] (its own `/proc/net/netstat`).
pub fn tcp_drops(name: Option<&str>) -> io::Result<TcpDrops> {
    let text = run_in(name, || {
        std::fs::read_to_string("/proc/thread-self/net/netstat")
    })??;
    Ok(drops_of(&text))
}

/// The namespace's TCP-MD5 drops.
pub fn tcp_md5_drops(name: Option<&str>) -> io::Result<u64> {
    tcp_drops(name).map(|d| d.md5)
}

/// The drop counters of a `/proc/net/netstat` text (0 where it has none).
fn drops_of(netstat: &str) -> TcpDrops {
    let mut lines = netstat.lines();
    let mut d = TcpDrops::default();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            let v = v.parse::<u64>().unwrap_or(0);
            match n {
                "TCPMD5Failure" | "TCPMD5NotFound" | "TCPMD5Unexpected" => d.md5 += v,
                "TCPMinTTLDrop" => d.min_ttl += v,
                _ => {}
            }
        }
    }
    d
}

/// The kernel's neighbor (ARP) table holds at most `gc_thresh3` entries for the whole host,
/// every namespace together; past it, a new neighbor cannot be resolved (`ENOBUFS`) and
/// the sessions behind it never come up. The default, 1,024, is reached by a few hundred
/// private connections. Makes room for `entries`, with headroom (×4, at least 1,024):
/// raises gc_thresh3 (and gc_thresh2, gc_thresh1 in proportion) for IPv4 and IPv6 if it
/// is lower, never lowers it. Returns the old and new gc_thresh3 when it raised it.
/// Must run in the host's first namespace, where these sysctls live.
pub fn ensure_neighbor_room(entries: usize) -> io::Result<Option<(u64, u64)>> {
    let want = (entries as u64 * 4).max(1024).next_power_of_two();
    let mut raised = None;
    for family in ["ipv4", "ipv6"] {
        let key = |k: &str| format!("/proc/sys/net/{family}/neigh/default/{k}");
        let read = |k: &str| -> io::Result<u64> {
            std::fs::read_to_string(key(k))?
                .trim()
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", key(k))))
        };
        let have = read("gc_thresh3")?;
        if have >= want {
            continue;
        }
        // Highest first: the kernel keeps thresh1 ≤ thresh2 ≤ thresh3 meaningful.
        for (k, v) in [
            ("gc_thresh3", want),
            ("gc_thresh2", want / 2),
            ("gc_thresh1", want / 8),
        ] {
            if read(k)? < v {
                std::fs::write(key(k), v.to_string())
                    .map_err(|e| io::Error::new(e.kind(), format!("{}={v}: {e}", key(k))))?;
            }
        }
        if family == "ipv4" {
            raised = Some((have, want));
        }
    }
    Ok(raised)
}

#[cfg(test)]
mod tests {
    #[test]
    fn drops_are_read_from_the_tcpext_lines() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop\n\
                    TcpExt: 1 3 4 5 9\n\
                    IpExt: InNoRoutes TCPMD5Failure TCPMinTTLDrop\n\
                    IpExt: 7 100 100\n";
        assert_eq!(
            super::drops_of(text),
            super::TcpDrops {
                md5: 12,
                min_ttl: 9
            }
        );
        assert_eq!(super::drops_of(""), super::TcpDrops::default());
    }
}
