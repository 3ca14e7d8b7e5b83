//! Juniper Junos: `set` commands (load with `load set terminal`, then `commit check`).

use std::fmt::Write;

use super::*;
use crate::edge::Family;

pub(super) fn render(site: &Site) -> String {
    let mut out = String::new();
    // Junos has no GTSM statement for single-hop eBGP (it takes a firewall filter), and
    // these configs set no RFC 9234 role.
    header(
        &mut out,
        site,
        "Juniper Junos (set commands)",
        "#",
        Can {
            gtsm: false,
            roles: false,
        },
    );
    let asn = site
        .connections
        .first()
        .map(|c| c.customer_asn)
        .unwrap_or(0);
    let mut w = |s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(format!("set routing-options autonomous-system {asn}"));
    for f in families(site) {
        let n = fam(f);
        for (list, prefixes) in [
            (format!("CIC-VPC{n}"), of(&site.vpc_prefixes, f)),
            (format!("CIC-MINE{n}"), of(&site.announce, f)),
        ] {
            if prefixes.is_empty() {
                w(format!("# {list}: none yet (its terms match nothing)"));
            }
            for p in prefixes {
                w(format!("set policy-options prefix-list {list} {p}"));
            }
        }
    }
    let (a, b, d) = standby_community(site.cloud_asn);
    if site
        .connections
        .iter()
        .any(|c| c.standby == Some(Standby::Community))
    {
        w(format!(
            "set policy-options community CIC-STANDBY members large:{a}:{b}:{d}"
        ));
    }
    for c in &site.connections {
        let port = match &c.link {
            Link::Vlan { port } | Link::Vxlan { port, .. } => port.clone(),
        };
        let unit = format!("{port} unit {}", c.vlan);
        w(format!(
            "# {} at {}, VLAN {}",
            c.id, c.point_of_presence, c.vlan
        ));
        w(format!("set interfaces {port} vlan-tagging"));
        w(format!("set interfaces {unit} vlan-id {}", c.vlan));
        for p in &c.peerings {
            let fam_kw = if p.family() == Family::Ipv4 {
                "inet"
            } else {
                "inet6"
            };
            w(format!(
                "set interfaces {unit} family {fam_kw} address {}/{}",
                p.customer_ip,
                p.subnet.prefix_len()
            ));
        }
        for p in &c.peerings {
            let n = fam(p.family());
            let fam_kw = if p.family() == Family::Ipv4 {
                "inet"
            } else {
                "inet6"
            };
            let name = format!("CIC-{}-V{n}", ident(&c.id).to_uppercase());
            let vpc = !of(&site.vpc_prefixes, p.family()).is_empty();
            let mine = !of(&site.announce, p.family()).is_empty();
            if vpc {
                w(format!(
                    "set policy-options policy-statement {name}-IN term vpc from prefix-list CIC-VPC{n}"
                ));
                if c.standby.is_some() {
                    w(format!(
                        "set policy-options policy-statement {name}-IN term vpc then local-preference 50"
                    ));
                }
                w(format!(
                    "set policy-options policy-statement {name}-IN term vpc then accept"
                ));
            }
            w(format!(
                "set policy-options policy-statement {name}-IN then reject"
            ));
            if mine {
                let term = format!("set policy-options policy-statement {name}-OUT term mine");
                w(format!("{term} from prefix-list CIC-MINE{n}"));
                match c.standby {
                    Some(Standby::Prepend) => w(format!(
                        "{term} then as-path-prepend \"{0} {0} {0}\"",
                        c.customer_asn
                    )),
                    Some(Standby::Community) => w(format!("{term} then community add CIC-STANDBY")),
                    None => {}
                }
                w(format!("{term} then accept"));
            }
            w(format!(
                "set policy-options policy-statement {name}-OUT then reject"
            ));
            let g = "set protocols bgp group cic";
            let nb = format!("{g} neighbor {}", p.cloud_ip);
            w(format!(
                "{nb} description \"cic {} at {} VLAN {}\"",
                c.id, c.point_of_presence, c.vlan
            ));
            w(format!("{nb} local-address {}", p.customer_ip));
            if let Some(k) = &c.md5_key {
                w(format!("{nb} authentication-key \"{k}\""));
            }
            w(format!("{nb} import {name}-IN"));
            w(format!("{nb} export {name}-OUT"));
            w(format!(
                "{nb} family {fam_kw} unicast prefix-limit maximum {} teardown",
                site.max_prefixes
            ));
            if let Some((i, m)) = c.bfd() {
                w(format!("{nb} bfd-liveness-detection minimum-interval {i}"));
                w(format!("{nb} bfd-liveness-detection multiplier {m}"));
            }
        }
    }
    let g = "set protocols bgp group cic";
    w(format!("{g} type external"));
    w(format!("{g} peer-as {}", site.cloud_asn));
    w(format!("{g} multipath"));
    if site.graceful_restart {
        w(format!("{g} graceful-restart"));
    }
    out
}
