//! FRRouting (integrated `frr.conf`).

use std::fmt::Write;

use ipnet::IpNet;

use super::*;
use crate::edge::Family;

pub(super) fn render(site: &Site) -> String {
    let mut out = String::new();
    header(
        &mut out,
        site,
        "FRR (frr.conf; bgpd, bfdd and zebra)",
        "!",
        Can {
            gtsm: true,
            roles: true,
        },
    );
    let _ = writeln!(out, "!");
    let _ = writeln!(
        out,
        "! Your routes must be in zebra's table (connected, static, …) for `network` to announce them."
    );
    for c in &site.connections {
        let _ = writeln!(out, "!");
        let mut block = String::new();
        linux_interface(&mut block, c);
        for l in block.lines() {
            let _ = writeln!(out, "!{}", l.trim_start_matches('#'));
        }
    }
    let asn = site
        .connections
        .first()
        .map(|c| c.customer_asn)
        .unwrap_or(0);
    let _ = writeln!(out, "frr defaults traditional");
    let _ = writeln!(out, "!");
    for f in families(site) {
        let n = fam(f);
        let list = |prefixes: &[IpNet], name: &str, out: &mut String| {
            let kw = if f == Family::Ipv4 { "ip" } else { "ipv6" };
            if prefixes.is_empty() {
                let any = if f == Family::Ipv4 {
                    "0.0.0.0/0"
                } else {
                    "::/0"
                };
                let _ = writeln!(
                    out,
                    "{kw} prefix-list {name} seq 5 deny {any} le {}",
                    if f == Family::Ipv4 { 32 } else { 128 }
                );
            }
            for (i, p) in prefixes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{kw} prefix-list {name} seq {} permit {p}",
                    (i + 1) * 5
                );
            }
        };
        list(&of(&site.vpc_prefixes, f), &format!("CIC-VPC{n}"), &mut out);
        list(&of(&site.announce, f), &format!("CIC-MINE{n}"), &mut out);
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
            match c.standby {
                Some(Standby::Prepend) => {
                    let _ = writeln!(out, " set as-path prepend {0} {0} {0}", c.customer_asn);
                }
                Some(Standby::Community) => {
                    let (a, b, d) = standby_community(site.cloud_asn);
                    let _ = writeln!(out, " set large-community {a}:{b}:{d} additive");
                }
                None => {}
            }
            let _ = writeln!(out, "!");
        }
    }
    let _ = writeln!(out, "router bgp {asn}");
    let _ = writeln!(out, " no bgp default ipv4-unicast");
    if site.graceful_restart {
        let _ = writeln!(out, " bgp graceful-restart");
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
            let _ = writeln!(out, " neighbor {ip} update-source {}", p.customer_ip);
            if let Some(k) = &c.md5_key {
                let _ = writeln!(out, " neighbor {ip} password {k}");
            }
            if c.ttl_security {
                let _ = writeln!(out, " neighbor {ip} ttl-security hops 1");
            }
            match c.bgp_role {
                crate::edge::BgpRoleMode::Off => {}
                crate::edge::BgpRoleMode::Announce => {
                    let _ = writeln!(out, " neighbor {ip} local-role customer");
                }
                crate::edge::BgpRoleMode::Strict => {
                    let _ = writeln!(out, " neighbor {ip} local-role customer strict-mode");
                }
            }
            if let Some((i, m)) = c.bfd() {
                let _ = writeln!(out, " neighbor {ip} bfd profile cic-{i}x{m}");
            }
        }
    }
    for f in families(site) {
        let n = fam(f);
        let af = if f == Family::Ipv4 { "ipv4" } else { "ipv6" };
        let _ = writeln!(out, " !");
        let _ = writeln!(out, " address-family {af} unicast");
        for p in of(&site.announce, f) {
            let _ = writeln!(out, "  network {p}");
        }
        let _ = writeln!(out, "  maximum-paths {}", site.connections.len().max(1));
        for c in &site.connections {
            for p in c.peerings.iter().filter(|p| p.family() == f) {
                let ip = p.cloud_ip;
                let name = format!("CIC-{}-V{n}", ident(&c.id).to_uppercase());
                let _ = writeln!(out, "  neighbor {ip} activate");
                let _ = writeln!(out, "  neighbor {ip} route-map {name}-IN in");
                let _ = writeln!(out, "  neighbor {ip} route-map {name}-OUT out");
                let _ = writeln!(out, "  neighbor {ip} maximum-prefix {}", site.max_prefixes);
            }
        }
        let _ = writeln!(out, " exit-address-family");
    }
    let _ = writeln!(out, "exit");
    let _ = writeln!(out, "!");
    // Last: a daemon that reads the integrated file and does not know the `bfd` node
    // (bgpd, zebra) loses only what follows it.
    let profiles: std::collections::BTreeSet<(u32, u8)> =
        site.connections.iter().filter_map(|c| c.bfd()).collect();
    if !profiles.is_empty() {
        let _ = writeln!(out, "bfd");
        for (i, m) in profiles {
            let _ = writeln!(out, " profile cic-{i}x{m}");
            let _ = writeln!(out, "  receive-interval {i}");
            let _ = writeln!(out, "  transmit-interval {i}");
            let _ = writeln!(out, "  detect-multiplier {m}");
            let _ = writeln!(out, " exit");
        }
        let _ = writeln!(out, "exit");
        let _ = writeln!(out, "!");
    }
    out
}
