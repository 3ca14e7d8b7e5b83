//! BIRD 2.

use std::fmt::Write;

use ipnet::IpNet;

use super::*;
use crate::edge::Family;

fn bird_set(prefixes: &[IpNet]) -> String {
    let v: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    format!("[ {} ]", v.join(", "))
}

pub(super) fn render(site: &Site) -> String {
    let mut out = String::new();
    header(
        &mut out,
        site,
        "BIRD 2",
        "#",
        Can {
            gtsm: true,
            roles: true,
        },
    );
    let _ = writeln!(out, "#");
    let _ = writeln!(
        out,
        "# Your routes reach BIRD from your own protocols (direct, static, kernel); ECMP over"
    );
    let _ = writeln!(
        out,
        "# two connections needs `merge paths on` in your kernel protocol."
    );
    for f in families(site) {
        let n = fam(f);
        let vpc = of(&site.vpc_prefixes, f);
        let mine = of(&site.announce, f);
        let _ = writeln!(out);
        let _ = writeln!(out, "# What the cloud may send (IPv{n}).");
        match vpc.is_empty() {
            true => {
                let _ = writeln!(
                    out,
                    "#   none yet: the routing instance has no IPv{n} prefixes."
                );
            }
            false => {
                let _ = writeln!(out, "define CIC_VPC{n} = {};", bird_set(&vpc));
            }
        }
        let _ = writeln!(out, "# What you announce (IPv{n}).");
        match mine.is_empty() {
            true => {
                let _ = writeln!(
                    out,
                    "#   none yet: define CIC_MINE{n} = [ <your prefixes> ]; and use it in the export filters."
                );
            }
            false => {
                let _ = writeln!(out, "define CIC_MINE{n} = {};", bird_set(&mine));
            }
        }
    }
    let _ = writeln!(out);
    if site.connections.iter().any(|c| c.bfd.is_some()) {
        let _ = writeln!(out, "protocol bfd cic_bfd {{");
        for c in &site.connections {
            if let Some((i, m)) = c.bfd() {
                let _ = writeln!(
                    out,
                    "  interface \"{}\" {{ min rx interval {i} ms; min tx interval {i} ms; multiplier {m}; }};",
                    c.interface
                );
            }
        }
        let _ = writeln!(out, "}}");
    }
    for c in &site.connections {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# {} at {}, VLAN {}{}",
            c.id,
            c.point_of_presence,
            c.vlan,
            match c.standby {
                None => String::new(),
                Some(Standby::Prepend) => ": the standby (AS path prepended three times)".into(),
                Some(Standby::Community) =>
                    ": the standby (the cloud's low preference community)".into(),
            }
        );
        linux_interface(&mut out, c);
        for p in &c.peerings {
            let n = fam(p.family());
            let family = match p.family() {
                Family::Ipv4 => "ipv4",
                Family::Ipv6 => "ipv6",
            };
            let (pref, mark) = match c.standby {
                None => (String::new(), String::new()),
                Some(s) => (
                    " bgp_local_pref = 50;".to_string(),
                    match s {
                        Standby::Prepend => format!(
                            " bgp_path.prepend({0}); bgp_path.prepend({0}); bgp_path.prepend({0});",
                            c.customer_asn
                        ),
                        Standby::Community => {
                            let (a, b, d) = standby_community(site.cloud_asn);
                            format!(" bgp_large_community.add(({a}, {b}, {d}));")
                        }
                    },
                ),
            };
            let _ = writeln!(out, "protocol bgp cic_{}_v{n} {{", ident(&c.id));
            let _ = writeln!(
                out,
                "  description \"cic {} at {}, VLAN {}, IPv{n}\";",
                c.id, c.point_of_presence, c.vlan
            );
            let _ = writeln!(out, "  local {} as {};", p.customer_ip, c.customer_asn);
            let _ = writeln!(out, "  neighbor {} as {};", p.cloud_ip, site.cloud_asn);
            if let Some(k) = &c.md5_key {
                let _ = writeln!(out, "  password \"{k}\";");
            }
            if c.ttl_security {
                let _ = writeln!(out, "  ttl security on;");
            }
            if !c.bgp_role.is_off() {
                let _ = writeln!(out, "  local role customer;");
            }
            if c.bgp_role == crate::edge::BgpRoleMode::Strict {
                let _ = writeln!(out, "  require roles on;");
            }
            if c.bfd.is_some() {
                let _ = writeln!(out, "  bfd on;");
            }
            let _ = writeln!(
                out,
                "  graceful restart {};",
                if site.graceful_restart { "on" } else { "off" }
            );
            // The first connection a second after the protocol starts (BIRD waits 5 s by
            // default): a new connection comes up as soon as this config is loaded.
            let _ = writeln!(out, "  connect delay time 1;");
            let _ = writeln!(out, "  connect retry time 5;");
            let _ = writeln!(out, "  error wait time 1, 30;");
            let _ = writeln!(out, "  {family} {{");
            let fam_of = p.family();
            match of(&site.vpc_prefixes, fam_of).is_empty() {
                true => {
                    let _ = writeln!(out, "    import none;");
                }
                false => {
                    let _ = writeln!(
                        out,
                        "    import filter {{ if net ~ CIC_VPC{n} then {{{pref} accept; }} reject; }};"
                    );
                }
            }
            match of(&site.announce, fam_of).is_empty() {
                true => {
                    let _ = writeln!(out, "    export none;");
                }
                false => {
                    let _ = writeln!(
                        out,
                        "    export filter {{ if net ~ CIC_MINE{n} then {{{mark} accept; }} reject; }};"
                    );
                }
            }
            let _ = writeln!(
                out,
                "    import limit {} action restart;",
                site.max_prefixes
            );
            let _ = writeln!(out, "  }};");
            let _ = writeln!(out, "}}");
        }
    }
    out
}
