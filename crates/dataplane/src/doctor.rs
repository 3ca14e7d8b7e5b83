//! `cic doctor`: what this host's kernel gives the edge, found by trying each feature in a
//! throwaway namespace (the way [`crate::probe`] finds link types), and what the edge does
//! without each. Link types go through our netlink code where it has them; the rest
//! through iproute2 and nft, as an operator would try them.

use std::process::Command;

use crate::netns;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found (or why it failed).
    pub detail: String,
    /// What cic does when it is missing.
    pub without: &'static str,
}

fn run(args: &[&str]) -> Result<(), String> {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("{}: {e}", args[0])),
    }
}

fn check(name: &'static str, r: Result<(), String>, yes: &str, without: &'static str) -> Check {
    Check {
        name,
        ok: r.is_ok(),
        detail: match r {
            Ok(()) => yes.to_string(),
            Err(e) => e.lines().next().unwrap_or("").to_string(),
        },
        without,
    }
}

/// The kernel's features, tried in a namespace of our own (removed after).
pub async fn kernel() -> Vec<Check> {
    let ns = format!("cic-doctor-{}", std::process::id());
    if let Err(e) = netns::add(&ns) {
        return vec![Check {
            name: "network namespaces",
            ok: false,
            detail: e.to_string(),
            without: "nothing: the edge needs namespaces (and root) for its routing instances",
        }];
    }
    let ip = |rest: &[&str]| {
        let mut a = vec!["ip", "-n", ns.as_str()];
        a.extend_from_slice(rest);
        run(&a)
    };
    let mut out = vec![Check {
        name: "network namespaces",
        ok: true,
        detail: "made and removed one".into(),
        without: "",
    }];
    let veth = ip(&["link", "add", "dr0", "type", "veth", "peer", "name", "dr1"]);
    out.push(check(
        "veth",
        veth.clone(),
        "a pair made",
        "nothing: the edge links its namespaces to the host by veth",
    ));
    let caps = crate::probe::probe().await;
    let (vlan, vxlan, bond) = match &caps {
        Ok(c) => (c.vlan, c.vxlan, c.bond),
        Err(_) => (false, false, false),
    };
    let said = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("the kernel refused a {what} link"))
        }
    };
    out.push(check(
        "802.1Q VLAN",
        said(vlan, "vlan"),
        "a subinterface made",
        "physical trunks cannot be realised (the edge reports it for each); overlay trunks work",
    ));
    out.push(check(
        "VXLAN",
        said(vxlan, "vxlan"),
        "a device made",
        "no overlay trunks and no fabric segments (the fabric needs them)",
    ));
    out.push(check(
        "bonding (802.3ad)",
        said(bond, "bond"),
        "a bond made",
        "LAG trunks cannot be realised (the edge reports it); single-port trunks work",
    ));
    out.push(check(
        "VRF",
        ip(&["link", "add", "drvrf", "type", "vrf", "table", "10"]),
        "a device made",
        "none: the edge separates routing instances by namespace, not VRF",
    ));
    out.push(check(
        "dummy",
        ip(&["link", "add", "drdum", "type", "dummy"]),
        "a device made",
        "none: the edge does not need dummy devices",
    ));
    let _ = ip(&["link", "set", "lo", "up"]);
    // Dual stack: IPv6 forwarding, and an address usable at once (no DAD) on a veth.
    let ipv6 = crate::netns::sysctl(Some(&ns), "net/ipv6/conf/all/forwarding", "1")
        .map_err(|e| format!("IPv6 forwarding: {e}"))
        .and_then(|()| veth.clone())
        .and_then(|()| ip(&["addr", "add", "fd00:d0c::1/127", "dev", "dr0", "nodad"]));
    out.push(check(
        "IPv6",
        ipv6,
        "forwarding on, an address made without DAD",
        "no IPv6 peerings: the edge reports each as an error; IPv4 works",
    ));
    out.push(check(
        "nexthop objects",
        ip(&["nexthop", "add", "id", "1", "blackhole"]),
        "one made",
        "none today: routes carry their next hops",
    ));
    let on_veth = |rest: &[&str]| -> Result<(), String> {
        veth.clone()?;
        let mut a = vec!["tc", "-n", ns.as_str()];
        a.extend_from_slice(rest);
        run(&a)
    };
    out.push(check(
        "tc tbf",
        on_veth(&[
            "qdisc", "add", "dev", "dr0", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "50ms",
        ]),
        "a qdisc made",
        "trunks are not shaped to their capacity (the edge reports it)",
    ));
    let _ = on_veth(&["qdisc", "del", "dev", "dr0", "root"]);
    let ingress = on_veth(&["qdisc", "add", "dev", "dr0", "ingress"]);
    let filter = |rest: &[&str]| -> Result<(), String> {
        ingress.clone()?;
        let mut a = vec!["filter", "add", "dev", "dr0", "parent", "ffff:"];
        a.extend_from_slice(rest);
        on_veth(&a)
    };
    out.push(check(
        "tc classifier matchall",
        filter(&["protocol", "all", "matchall", "classid", "1:1"]),
        "a filter made",
        "no ingress policing of a connection's bandwidth",
    ));
    out.push(check(
        "tc actions (police)",
        filter(&[
            "protocol", "ip", "u32", "match", "u32", "0", "0", "police", "rate", "1mbit", "burst",
            "10k", "drop",
        ]),
        "a policer made",
        "no ingress policing of a connection's bandwidth",
    ));
    let nft = match run(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "nft",
        "add",
        "table",
        "inet",
        "cicdoctor",
    ]) {
        Err(e) if e.contains("No such file") => {
            Err(if std::path::Path::new("/sys/module/nf_tables").exists() {
                "unknown: nf_tables is loaded but there is no nft tool to try it (apt install nftables)".to_string()
            } else {
                "unknown: no nft tool to try it (apt install nftables), and nf_tables is not loaded"
                    .to_string()
            })
        }
        r => r,
    };
    out.push(check(
        "nftables",
        nft,
        "a table made",
        "none today (public connections will need it or policy routing for source checks)",
    ));
    let _ = netns::del(&ns);
    out
}

/// The socket options the edge's BGP needs, tried on a socket.
pub fn sockets() -> Vec<Check> {
    use std::os::fd::AsFd;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
    let md5 = sock.as_ref().map_err(|e| e.to_string()).and_then(|s| {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 179));
        cic_sockopt::set_tcp_md5sig(s.as_fd(), peer, b"cic-doctor").map_err(|e| e.to_string())
    });
    let minttl = sock
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|s| cic_sockopt::set_gtsm(s.as_fd(), false, 1).map_err(|e| e.to_string()));
    vec![
        check(
            "TCP-MD5 (RFC 2385)",
            md5,
            "set on a socket",
            "connections with an MD5 key cannot come up (the edge reports it on each)",
        ),
        check(
            "IP_MINTTL (GTSM, RFC 5082)",
            minttl,
            "set on a socket",
            "ttl_security cannot be enforced",
        ),
    ]
}

/// Whether the clock is synchronised (certificates, audit times and BGP timers rely on it).
pub fn clock() -> Check {
    let r = match Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
    {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "yes" => Ok(()),
        Ok(o) if o.status.success() => Err("not synchronised (timedatectl)".to_string()),
        Ok(o) => Err(format!(
            "unknown: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(_) => Err("unknown: no timedatectl here".to_string()),
    };
    check(
        "clock synchronised",
        r,
        "NTP synchronised",
        "certificates may look expired or not yet valid, and audit times drift",
    )
}

/// The sysctls the edge sets, with this host's values (the edge sets them inside its own
/// namespaces, never on the host).
pub fn sysctls() -> Vec<(String, String, &'static str)> {
    [
        (
            "net/ipv4/ip_forward",
            "1 in each routing instance's namespace",
        ),
        (
            "net/ipv4/neigh/*/retrans_time_ms",
            "100 on each fabric segment",
        ),
        (
            "net/ipv4/neigh/*/mcast_solicit",
            "30 on each fabric segment",
        ),
    ]
    .iter()
    .map(|(k, what)| {
        let host = if k.contains('*') {
            "per device".to_string()
        } else {
            std::fs::read_to_string(format!("/proc/sys/{k}"))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        (k.replace('/', "."), host, *what)
    })
    .collect()
}
