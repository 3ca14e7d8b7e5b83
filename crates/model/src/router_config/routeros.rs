//! MikroTik RouterOS 7: CLI commands (paste into a terminal, or `/import` a file).

use std::fmt::Write;

use super::*;
use crate::edge::Family;

pub(super) fn render(site: &Site) -> String {
    let mut out = String::new();
    // RouterOS 7 takes a role per connection (`local.role=ebgp-customer`); it has no
    // GTSM setting.
    header(
        &mut out,
        site,
        "MikroTik RouterOS 7",
        "#",
        Can {
            gtsm: false,
            roles: true,
        },
    );
    let mut w = |s: String| {
        let _ = writeln!(out, "{s}");
    };
    for f in families(site) {
        let n = fam(f);
        let list = if f == Family::Ipv4 {
            "/ip firewall address-list"
        } else {
            "/ipv6 firewall address-list"
        };
        for p in of(&site.announce, f) {
            w(format!("{list} add list=cic-mine{n} address={p}"));
        }
    }
    for c in &site.connections {
        let port = match &c.link {
            Link::Vlan { port } | Link::Vxlan { port, .. } => port.clone(),
        };
        let vif = format!("vlan{}", c.vlan);
        w(format!(
            "# {} at {}, VLAN {}",
            c.id, c.point_of_presence, c.vlan
        ));
        w(format!(
            "/interface vlan add name={vif} vlan-id={} interface={port}",
            c.vlan
        ));
        for p in &c.peerings {
            match p.family() {
                Family::Ipv4 => w(format!(
                    "/ip address add address={}/{} interface={vif}",
                    p.customer_ip,
                    p.subnet.prefix_len()
                )),
                Family::Ipv6 => w(format!(
                    "/ipv6 address add address={}/{} interface={vif} advertise=no",
                    p.customer_ip,
                    p.subnet.prefix_len()
                )),
            }
        }
        if let Some((i, m)) = c.bfd() {
            w(format!(
                "/routing bfd configuration add interfaces={vif} min-rx={i}ms min-tx={i}ms multiplier={m}"
            ));
        }
        for p in &c.peerings {
            let n = fam(p.family());
            let chain = format!("cic-{}-v{n}", ident(&c.id).to_lowercase());
            let pref = if c.standby.is_some() {
                "set bgp-local-pref 50; "
            } else {
                ""
            };
            for v in of(&site.vpc_prefixes, p.family()) {
                w(format!(
                    "/routing filter rule add chain={chain}-in rule=\"if (dst=={v}) {{ {pref}accept }}\""
                ));
            }
            w(format!(
                "/routing filter rule add chain={chain}-in rule=\"reject\""
            ));
            let mark = match c.standby {
                Some(Standby::Prepend) => "set bgp-path-prepend 3; ".to_string(),
                Some(Standby::Community) => {
                    let (a, b, d) = standby_community(site.cloud_asn);
                    format!("append bgp-large-communities {a}:{b}:{d}; ")
                }
                None => String::new(),
            };
            for m in of(&site.announce, p.family()) {
                w(format!(
                    "/routing filter rule add chain={chain}-out rule=\"if (dst=={m}) {{ {mark}accept }}\""
                ));
            }
            w(format!(
                "/routing filter rule add chain={chain}-out rule=\"reject\""
            ));
            let (afi, limit) = match p.family() {
                Family::Ipv4 => ("ip", "ipv4"),
                Family::Ipv6 => ("ipv6", "ipv6"),
            };
            let key = c
                .md5_key
                .as_ref()
                .map(|k| format!(" tcp-md5-key=\"{k}\""))
                .unwrap_or_default();
            let role = if c.bgp_role.is_off() {
                "ebgp"
            } else {
                "ebgp-customer"
            };
            let bfd = if c.bfd.is_some() { "yes" } else { "no" };
            let network = if of(&site.announce, p.family()).is_empty() {
                String::new()
            } else {
                format!(" output.network=cic-mine{n}")
            };
            w(format!(
                "/routing bgp connection add name={chain} as={} local.role={role} local.address={} remote.address={} remote.as={} address-families={afi} use-bfd={bfd}{key} input.filter={chain}-in input.limit-process-routes-{limit}={} output.filter-chain={chain}-out{network}",
                c.customer_asn, p.customer_ip, p.cloud_ip, site.cloud_asn, site.max_prefixes
            ));
        }
    }
    if site.graceful_restart {
        w("# Graceful restart: RouterOS 7 keeps no routes for a restarting peer; BFD and the other PoP carry traffic meanwhile.".to_string());
    }
    out
}
