//! Cisco IOS-XE and Arista EOS: the same industry-standard shape (subinterface, prefix
//! lists, route maps, `router bgp` with an address family per family), told apart where
//! they differ (BFD and max-prefix commands, large communities, which IOS-XE lacks).

use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::edge::Family;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Os {
    IosXe,
    Eos,
}

fn mask(len: u8) -> String {
    let m: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    std::net::Ipv4Addr::from(m).to_string()
}

/// The interface a connection arrives on: IOS-XE `GigabitEthernet0/0/1.100`, EOS
/// `Ethernet1.100` (the `port` the caller named, and the VLAN).
fn subif(c: &Connection) -> String {
    match &c.link {
        Link::Vlan { port } | Link::Vxlan { port, .. } => format!("{port}.{}", c.vlan),
    }
}

pub(super) fn render(site: &Site, os: Os) -> String {
    let mut out = String::new();
    let name = match os {
        Os::IosXe => "Cisco IOS-XE",
        Os::Eos => "Arista EOS",
    };
    // Both set `ttl-security hops 1` / `ttl maximum-hops 1`; neither has RFC 9234 roles
    // in the releases these configs were written from.
    header(
        &mut out,
        site,
        name,
        "!",
        Can {
            gtsm: true,
            roles: false,
        },
    );
    let asn = site
        .connections
        .first()
        .map(|c| c.customer_asn)
        .unwrap_or(0);
    if os == Os::IosXe
        && site
            .connections
            .iter()
            .any(|c| c.standby == Some(Standby::Community))
    {
        let _ = writeln!(
            out,
            "! IOS-XE has no large communities: the standby is marked by prepending instead."
        );
    }
    for c in &site.connections {
        let _ = writeln!(out, "!");
        if matches!(c.link, Link::Vxlan { .. }) {
            let _ = writeln!(
                out,
                "! {} arrives on a VXLAN overlay trunk (a lab's); on this router use an 802.1Q trunk.",
                c.id
            );
        }
        let _ = writeln!(out, "interface {}", subif(c));
        let _ = writeln!(
            out,
            " description cic {} at {} VLAN {}",
            c.id, c.point_of_presence, c.vlan
        );
        match os {
            Os::IosXe => {
                let _ = writeln!(out, " encapsulation dot1Q {}", c.vlan);
            }
            Os::Eos => {
                let _ = writeln!(out, " encapsulation dot1q vlan {}", c.vlan);
            }
        }
        for p in &c.peerings {
            match (p.customer_ip, p.subnet) {
                (IpAddr::V4(a), IpNet::V4(n)) => match os {
                    Os::IosXe => {
                        let _ = writeln!(out, " ip address {a} {}", mask(n.prefix_len()));
                    }
                    Os::Eos => {
                        let _ = writeln!(out, " ip address {a}/{}", n.prefix_len());
                    }
                },
                (a, n) => {
                    let _ = writeln!(out, " ipv6 address {a}/{}", n.prefix_len());
                }
            }
        }
        if let Some((i, m)) = c.bfd() {
            match os {
                Os::IosXe => {
                    let _ = writeln!(out, " bfd interval {i} min_rx {i} multiplier {m}");
                }
                Os::Eos => {
                    let _ = writeln!(out, " bfd interval {i} min-rx {i} multiplier {m}");
                }
            }
        }
    }
    for f in families(site) {
        let n = fam(f);
        let kw = if f == Family::Ipv4 { "ip" } else { "ipv6" };
        for (list, prefixes) in [
            (format!("CIC-VPC{n}"), of(&site.vpc_prefixes, f)),
            (format!("CIC-MINE{n}"), of(&site.announce, f)),
        ] {
            // EOS writes an IPv6 prefix list as a mode of its own.
            let submode = os == Os::Eos && f == Family::Ipv6;
            if submode {
                let _ = writeln!(out, "{kw} prefix-list {list}");
            }
            let mut line = |seq: usize, rule: String| {
                let _ = match submode {
                    true => writeln!(out, "   seq {seq} {rule}"),
                    false => writeln!(out, "{kw} prefix-list {list} seq {seq} {rule}"),
                };
            };
            if prefixes.is_empty() {
                let any = if f == Family::Ipv4 {
                    "0.0.0.0/0 le 32"
                } else {
                    "::/0 le 128"
                };
                line(5, format!("deny {any}"));
            }
            for (i, p) in prefixes.iter().enumerate() {
                line((i + 1) * 5, format!("permit {p}"));
            }
        }
        let _ = writeln!(out, "!");
    }
    for c in &site.connections {
        for p in &c.peerings {
            let n = fam(p.family());
            let kw = if p.family() == Family::Ipv4 {
                "ip"
            } else {
                "ipv6"
            };
            let name = format!("CIC-{}-V{n}", ident(&c.id).to_uppercase());
            let _ = writeln!(out, "route-map {name}-IN permit 10");
            let _ = writeln!(out, " match {kw} address prefix-list CIC-VPC{n}");
            if c.standby.is_some() {
                let _ = writeln!(out, " set local-preference 50");
            }
            let _ = writeln!(out, "route-map {name}-OUT permit 10");
            let _ = writeln!(out, " match {kw} address prefix-list CIC-MINE{n}");
            match (c.standby, os) {
                (Some(Standby::Community), Os::Eos) => {
                    let (a, b, d) = standby_community(site.cloud_asn);
                    let _ = writeln!(out, " set large-community {a}:{b}:{d} additive");
                }
                (Some(_), _) => {
                    let _ = writeln!(out, " set as-path prepend {0} {0} {0}", c.customer_asn);
                }
                (None, _) => {}
            }
            let _ = writeln!(out, "!");
        }
    }
    let _ = writeln!(out, "router bgp {asn}");
    if os == Os::IosXe {
        let _ = writeln!(out, " bgp log-neighbor-changes");
        let _ = writeln!(out, " no bgp default ipv4-unicast");
    } else {
        let _ = writeln!(out, " no bgp default ipv4-unicast");
    }
    if site.graceful_restart {
        let gr = match os {
            Os::IosXe => " bgp graceful-restart",
            Os::Eos => " graceful-restart",
        };
        let _ = writeln!(out, "{gr}");
    }
    for c in &site.connections {
        for p in &c.peerings {
            let ip = p.cloud_ip;
            let _ = writeln!(out, " neighbor {ip} remote-as {}", site.cloud_asn);
            let _ = writeln!(
                out,
                " neighbor {ip} description cic {} at {} VLAN {}",
                c.id, c.point_of_presence, c.vlan
            );
            let _ = writeln!(out, " neighbor {ip} update-source {}", subif(c));
            if let Some(k) = &c.md5_key {
                let _ = writeln!(out, " neighbor {ip} password {k}");
            }
            if c.ttl_security {
                let _ = match os {
                    Os::IosXe => writeln!(out, " neighbor {ip} ttl-security hops 1"),
                    Os::Eos => writeln!(out, " neighbor {ip} ttl maximum-hops 1"),
                };
            }
            match os {
                Os::IosXe => {
                    if c.bfd.is_some() {
                        let _ = writeln!(out, " neighbor {ip} fall-over bfd");
                    }
                }
                Os::Eos => {
                    if c.bfd.is_some() {
                        let _ = writeln!(out, " neighbor {ip} bfd");
                    }
                    let _ = writeln!(out, " neighbor {ip} maximum-routes {}", site.max_prefixes);
                }
            }
        }
    }
    for f in families(site) {
        let n = fam(f);
        let af = match (f, os) {
            (Family::Ipv4, Os::IosXe) => "ipv4",
            (Family::Ipv6, Os::IosXe) => "ipv6",
            (Family::Ipv4, Os::Eos) => "ipv4",
            (Family::Ipv6, Os::Eos) => "ipv6",
        };
        let _ = writeln!(out, " !");
        let _ = writeln!(out, " address-family {af}");
        for p in of(&site.announce, f) {
            match (p, os) {
                (IpNet::V4(p), Os::IosXe) => {
                    let _ = writeln!(
                        out,
                        "  network {} mask {}",
                        p.network(),
                        mask(p.prefix_len())
                    );
                }
                (p, _) => {
                    let _ = writeln!(out, "  network {p}");
                }
            }
        }
        let _ = writeln!(out, "  maximum-paths {}", site.connections.len().max(1));
        for c in &site.connections {
            for p in c.peerings.iter().filter(|p| p.family() == f) {
                let ip = p.cloud_ip;
                let name = format!("CIC-{}-V{n}", ident(&c.id).to_uppercase());
                let _ = writeln!(out, "  neighbor {ip} activate");
                let _ = writeln!(out, "  neighbor {ip} route-map {name}-IN in");
                let _ = writeln!(out, "  neighbor {ip} route-map {name}-OUT out");
                if os == Os::IosXe {
                    let _ = writeln!(out, "  neighbor {ip} maximum-prefix {}", site.max_prefixes);
                }
            }
        }
        let end = match os {
            Os::IosXe => " exit-address-family",
            Os::Eos => " exit",
        };
        let _ = writeln!(out, "{end}");
    }
    let _ = writeln!(out, "!");
    out
}
