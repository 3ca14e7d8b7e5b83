//! The lab's network: its namespaces (the on-prem site, each PoP's edge, the cloud
//! fabric, the cloud VM), the links between them, and the cross-connects.

use super::*;

pub(crate) fn check_prerequisites() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (it makes network namespaces and links)");
    }
    for (bin, pkg) in [
        ("ip", "iproute2"),
        ("bird", "bird2"),
        ("birdc", "bird2"),
        ("ping", "iputils-ping"),
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .stdout(Stdio::null())
            .status()?
            .success();
        if !found {
            bail!("`{bin}` is missing: apt-get install {pkg}");
        }
    }
    Ok(())
}

/// Namespaces, links and addresses of the lab; the customer's and the cloud's hosts.
pub(crate) fn build_topology(pop_list: &[Pop]) -> Result<()> {
    let mut all = vec![
        NS_HOST.to_string(),
        NS_SITE.into(),
        NS_FABRIC.into(),
        NS_VM.into(),
    ];
    all.extend(pop_list.iter().map(|p| p.ns()));
    for n in &all {
        cic_dataplane::netns::add(n).map_err(|e| anyhow!("{e}"))?;
        ns(n, &["link", "set", "lo", "up"])?;
        // Links made from here on use their IPv6 addresses at once, link-local ones too
        // (neighbor discovery speaks from them): without this the first IPv6 packets of
        // the lab wait a second or more for duplicate address detection.
        for scope in ["default", "all"] {
            sysctl(n, &format!("net/ipv6/conf/{scope}/accept_dad"), "0")?;
        }
    }
    // On-prem LAN: server ── customer router.
    ip(&[
        "link", "add", "eth0", "netns", NS_HOST, "type", "veth", "peer", "name", "lan0", "netns",
        NS_SITE,
    ])?;
    ns(
        NS_HOST,
        &["addr", "add", &format!("{ONPREM_HOST}/24"), "dev", "eth0"],
    )?;
    ns(NS_SITE, &["addr", "add", "192.168.10.1/24", "dev", "lan0"])?;
    ns(
        NS_HOST,
        &[
            "addr",
            "add",
            &format!("{ONPREM_HOST6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    // More sources on the server: `cic lab failover` picks one whose IPv6 flow crosses
    // the PoP it cuts (ECMP hashes each flow to one PoP).
    for host in 0x11..0x20 {
        ns(
            NS_HOST,
            &[
                "addr",
                "add",
                &format!("fd10:168:10::{host:x}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        )?;
    }
    ns(
        NS_SITE,
        &["addr", "add", "fd10:168:10::1/64", "dev", "lan0", "nodad"],
    )?;
    let mut up: Vec<(String, String)> = vec![
        (NS_HOST.into(), "eth0".into()),
        (NS_SITE.into(), "lan0".into()),
    ];
    for &p in pop_list {
        let (pns, site_port) = (p.ns(), p.site_port());
        // Cross-connect at the PoP, jumbo frames: customer router ══ edge.
        ip(&[
            "link", "add", &site_port, "netns", NS_SITE, "mtu", "9000", "type", "veth", "peer",
            "name", "xc-site1", "netns", &pns, "mtu", "9000",
        ])?;
        ns(
            NS_SITE,
            &["addr", "add", &format!("{}/30", p.xc(2)), "dev", &site_port],
        )?;
        ns(
            &pns,
            &["addr", "add", &format!("{}/30", p.xc(1)), "dev", "xc-site1"],
        )?;
        // Edge ══ cloud fabric router.
        ip(&[
            "link",
            "add",
            "fab0",
            "netns",
            &pns,
            "mtu",
            "9000",
            "type",
            "veth",
            "peer",
            "name",
            &p.id(),
            "netns",
            NS_FABRIC,
            "mtu",
            "9000",
        ])?;
        ns(
            &pns,
            &["addr", "add", &format!("{}/30", p.fab(1)), "dev", "fab0"],
        )?;
        ns(
            NS_FABRIC,
            &["addr", "add", &format!("{}/30", p.fab(2)), "dev", &p.id()],
        )?;
        up.extend([
            (NS_SITE.to_string(), site_port),
            (pns.clone(), "xc-site1".into()),
            (pns, "fab0".into()),
            (NS_FABRIC.into(), p.id()),
        ]);
    }
    // Cloud VPC subnet: fabric router ── VM.
    ip(&[
        "link", "add", "vpc0", "netns", NS_FABRIC, "type", "veth", "peer", "name", "eth0", "netns",
        NS_VM,
    ])?;
    ns(NS_FABRIC, &["addr", "add", "10.128.0.1/24", "dev", "vpc0"])?;
    ns(NS_VM, &["addr", "add", &format!("{VM}/24"), "dev", "eth0"])?;
    ns(
        NS_FABRIC,
        &["addr", "add", "fd80:128::1/64", "dev", "vpc0", "nodad"],
    )?;
    ns(
        NS_VM,
        &["addr", "add", &format!("{VM6}/64"), "dev", "eth0", "nodad"],
    )?;
    up.extend([
        (NS_FABRIC.to_string(), "vpc0".to_string()),
        (NS_VM.into(), "eth0".into()),
    ]);
    for (n, d) in &up {
        ns(n, &["link", "set", d, "up"])?;
    }
    ns(NS_HOST, &["route", "add", "default", "via", "192.168.10.1"])?;
    ns(NS_VM, &["route", "add", "default", "via", "10.128.0.1"])?;
    ns(
        NS_HOST,
        &["-6", "route", "add", "default", "via", "fd10:168:10::1"],
    )?;
    ns(
        NS_VM,
        &["-6", "route", "add", "default", "via", "fd80:128::1"],
    )?;
    // The end hosts send IPv6 without automatic flow labels. Computing one stores the
    // sending kernel's own flow hash in the packet's buffer, marked as an L4 hash; a veth
    // hands that buffer to the router's namespace as it is, and the router's ECMP then
    // takes that hash instead of hashing the packet itself (as it would off a wire), so
    // `ip route get` — how `cic lab failover` finds a flow through the PoP it cuts —
    // answered for another path than the packets took (seen on kernel 6.18).
    for n in [NS_HOST, NS_VM] {
        sysctl(n, "net/ipv6/auto_flowlabels", "0")?;
    }
    for n in [NS_SITE, NS_FABRIC] {
        sysctl(n, "net/ipv4/ip_forward", "1")?;
        sysctl(n, "net/ipv6/conf/all/forwarding", "1")?;
        // ECMP over the PoPs hashes on addresses and ports (L4), as routers do.
        sysctl(n, "net/ipv4/fib_multipath_hash_policy", "1")?;
        sysctl(n, "net/ipv6/fib_multipath_hash_policy", "1")?;
        // A router's IPv6 addresses stay through a link failure, as its IPv4 ones do.
        sysctl(n, "net/ipv6/conf/default/keep_addr_on_down", "1")?;
        sysctl(n, "net/ipv6/conf/all/keep_addr_on_down", "1")?;
    }
    // The customer's side of each private connection, as their engineer would set it up
    // on a router without 802.1Q here: a VXLAN VNI (= the VLAN) over the cross-connect.
    for &p in pop_list {
        customer_vlan(
            p,
            &p.customer_if(),
            p.vlan(),
            8910,
            &[
                format!("{}/30", p.peering(2)),
                format!("{}/126", p.peering6(2)),
            ],
        )?;
    }
    Ok(())
}

/// A connection's interface on the customer's router at PoP `p`: VXLAN VNI `vlan` over the
/// cross-connect (this kernel has no 802.1Q), with `addresses`, up.
pub(crate) fn customer_vlan(
    p: Pop,
    dev: &str,
    vlan: u32,
    mtu: u32,
    addresses: &[String],
) -> Result<()> {
    ns(
        NS_SITE,
        &[
            "link",
            "add",
            dev,
            "mtu",
            &mtu.to_string(),
            "type",
            "vxlan",
            "id",
            &vlan.to_string(),
            "remote",
            &p.xc(1),
            "dstport",
            "4789",
            "dev",
            &p.site_port(),
        ],
    )?;
    for a in addresses {
        let mut args = vec!["addr", "add", a.as_str(), "dev", dev];
        if a.contains(':') {
            args.push("nodad");
        }
        ns(NS_SITE, &args)?;
    }
    ns(NS_SITE, &["link", "set", dev, "up"])
}
