//! The customer's side of a private connection: a commented configuration for their router,
//! made from everything cic knows about the connection (VLAN or VXLAN, peering addresses of
//! both families, ASNs, MD5 key, BFD timers, graceful restart, the routing instance's
//! prefixes). Pure functions: text in, text out; the server fills in [`Site`].

use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::edge::Family;

mod bird;
mod cisco;
mod frr;
mod junos;
mod routeros;

/// The router software a configuration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// BIRD 2.
    Bird,
    /// FRRouting 8 or later (`frr.conf`, integrated configuration).
    Frr,
    /// Cisco IOS-XE.
    #[serde(rename = "ios-xe")]
    IosXe,
    /// Juniper Junos (`set` commands).
    Junos,
    /// Arista EOS.
    Eos,
    /// MikroTik RouterOS 7.
    #[serde(rename = "routeros")]
    RouterOs,
}

/// How the customer marks a connection as the standby of two at different PoPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Standby {
    /// Prepend its own AS three times on what it announces there.
    Prepend,
    /// Tag what it announces there with the cloud's low local-preference community.
    Community,
}

/// One connection as the customer's router sees it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub point_of_presence: String,
    pub vlan: u16,
    /// The customer's interface for it (`eth1.100`, `vx100`).
    pub interface: String,
    /// How the interface is made: 802.1Q on `port`, or VXLAN toward the edge's VTEP.
    pub link: Link,
    /// One per family: (the customer's address with its prefix length, the cloud's).
    pub peerings: Vec<Peering>,
    pub customer_asn: u32,
    /// The key, or `None` when the session has none; [`MD5_PLACEHOLDER`] when the caller
    /// may not read it.
    pub md5_key: Option<String>,
    pub standby: Option<Standby>,
    /// GTSM (RFC 5082) in force on the connection: the cloud takes only BGP segments
    /// sent with TTL 255.
    pub ttl_security: bool,
    /// BGP roles (RFC 9234) in force: the cloud announces provider; the customer's
    /// local role is customer.
    pub bgp_role: crate::edge::BgpRoleMode,
    /// BFD timers in force (`None`: no BFD on this cloud).
    pub bfd: Option<crate::resource::BfdTimers>,
}

impl Connection {
    /// `(interval ms, multiplier)` of its BFD, if it has BFD.
    fn bfd(&self) -> Option<(u32, u8)> {
        self.bfd.map(|t| (t.min_interval_ms, t.multiplier))
    }
}

#[derive(Debug, Clone)]
pub enum Link {
    Vlan {
        port: String,
    },
    /// `remote_vtep`: the edge's VTEP toward the customer, when cic knows it.
    Vxlan {
        remote_vtep: Option<IpAddr>,
        udp_port: u16,
        port: String,
    },
}

#[derive(Debug, Clone)]
pub struct Peering {
    pub subnet: IpNet,
    pub customer_ip: IpAddr,
    pub cloud_ip: IpAddr,
}

impl Peering {
    fn family(&self) -> Family {
        Family::of(self.cloud_ip)
    }
    fn customer_address(&self) -> String {
        format!("{}/{}", self.customer_ip, self.subnet.prefix_len())
    }
}

/// Everything one configuration covers: a connection, or every connection of the
/// customer's site in a routing instance (both PoPs).
#[derive(Debug, Clone)]
pub struct Site {
    pub cloud_asn: u32,
    pub connections: Vec<Connection>,
    /// What the cloud announces: the routing instance's VPC prefixes (import accepts only
    /// these).
    pub vpc_prefixes: Vec<IpNet>,
    /// What the customer wants to announce (export sends only these; none until listed).
    pub announce: Vec<IpNet>,
    /// The import limit on the customer's side (the cloud sends at most this many).
    pub max_prefixes: u32,
    pub graceful_restart: bool,
}

/// The BFD timers of the site's connections, for the header: one setting for all, each
/// connection's, or off.
fn bfd_summary(site: &Site) -> String {
    let mut all: Vec<Option<(u32, u8)>> = site.connections.iter().map(Connection::bfd).collect();
    all.dedup();
    match all.as_slice() {
        [Some((i, m))] => format!("{i} ms × {m}"),
        [None] | [] => "off".into(),
        _ => site
            .connections
            .iter()
            .map(|c| match c.bfd() {
                Some((i, m)) => format!("{} {i} ms × {m}", c.id),
                None => format!("{} off", c.id),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The port a vendor's config uses when the caller names none.
pub fn default_port(v: Vendor) -> &'static str {
    match v {
        Vendor::Bird | Vendor::Frr => "eth1",
        Vendor::IosXe => "GigabitEthernet0/0/1",
        Vendor::Eos => "Ethernet1",
        Vendor::Junos => "ge-0/0/1",
        Vendor::RouterOs => "ether2",
    }
}

/// What stands for a key the caller may not read (one word: valid where a key goes in
/// every syntax, so the file still loads if it is forgotten, and the session fails then).
pub const MD5_PLACEHOLDER: &str = "REPLACE-WITH-THE-MD5-KEY";

/// The cloud's large community asking for a low local preference (the edge's standby).
pub fn standby_community(cloud_asn: u32) -> (u32, u32, u32) {
    (cloud_asn, 0, 7100)
}

pub fn render(vendor: Vendor, site: &Site) -> String {
    match vendor {
        Vendor::Bird => bird::render(site),
        Vendor::Frr => frr::render(site),
        Vendor::IosXe => cisco::render(site, cisco::Os::IosXe),
        Vendor::Eos => cisco::render(site, cisco::Os::Eos),
        Vendor::Junos => junos::render(site),
        Vendor::RouterOs => routeros::render(site),
    }
}

pub(super) fn of(prefixes: &[IpNet], family: Family) -> Vec<IpNet> {
    prefixes
        .iter()
        .copied()
        .filter(|p| Family::of(p.addr()) == family)
        .collect()
}

pub(super) fn families(site: &Site) -> Vec<Family> {
    let mut f: Vec<Family> = site
        .connections
        .iter()
        .flat_map(|c| c.peerings.iter().map(Peering::family))
        .collect();
    f.sort();
    f.dedup();
    f
}

/// A name usable in either syntax: `cic_pc…`.
pub(super) fn ident(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub(super) fn fam(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "4",
        Family::Ipv6 => "6",
    }
}

/// The Linux commands that make the connection's interface and addresses (BIRD and FRR
/// leave interfaces to the system), as comment lines.
pub(super) fn linux_interface(out: &mut String, c: &Connection) {
    let _ = writeln!(out, "#   The interface, made once (Linux, iproute2):");
    match &c.link {
        Link::Vlan { port } => {
            let _ = writeln!(
                out,
                "#     ip link add link {port} name {} type vlan id {}",
                c.interface, c.vlan
            );
        }
        Link::Vxlan {
            remote_vtep,
            udp_port,
            port,
        } => {
            let remote = remote_vtep
                .map(|a| a.to_string())
                .unwrap_or_else(|| "<the edge's VTEP address>".into());
            let _ = writeln!(
                out,
                "#     ip link add {} type vxlan id {} remote {remote} dstport {udp_port} dev {port}",
                c.interface, c.vlan
            );
        }
    }
    for p in &c.peerings {
        let nodad = if p.family() == Family::Ipv6 {
            " nodad"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "#     ip addr add {} dev {}{nodad}",
            p.customer_address(),
            c.interface
        );
    }
    let _ = writeln!(out, "#     ip link set {} up", c.interface);
}

/// Which of a connection's session options a vendor's configuration can express.
#[derive(Debug, Clone, Copy)]
pub(super) struct Can {
    /// Sending with TTL 255 on a directly connected session (`ttl-security hops 1`).
    pub gtsm: bool,
    /// A local BGP role (RFC 9234).
    pub roles: bool,
}

pub(super) fn header(out: &mut String, site: &Site, vendor: &str, comment: &str, can: Can) {
    let w = |out: &mut String, s: &str| {
        let _ = writeln!(out, "{comment} {s}");
    };
    w(
        out,
        &format!("cic: the customer's side of private connections, for {vendor}."),
    );
    for c in &site.connections {
        let addrs: Vec<String> = c
            .peerings
            .iter()
            .map(|p| format!("{} ↔ cloud {}", p.customer_address(), p.cloud_ip))
            .collect();
        w(
            out,
            &format!(
                "{} ({}) at {}, VLAN {}: {}",
                c.id,
                if c.name.is_empty() { "-" } else { &c.name },
                c.point_of_presence,
                c.vlan,
                addrs.join(", ")
            ),
        );
    }
    w(
        out,
        &format!(
            "BGP AS {} (you) ↔ AS {} (cloud); BFD {}; graceful restart {}.",
            site.connections
                .first()
                .map(|c| c.customer_asn)
                .unwrap_or(0),
            site.cloud_asn,
            bfd_summary(site),
            if site.graceful_restart { "on" } else { "off" }
        ),
    );
    w(
        out,
        "Import: only the routing instance's VPC prefixes. Export: only the prefixes you listed.",
    );
    if site.announce.is_empty() {
        w(
            out,
            "You listed no prefixes: nothing is announced until you add yours to the export lists below.",
        );
    }
    for c in &site.connections {
        if c.ttl_security {
            w(
                out,
                &if can.gtsm {
                    format!(
                        "{}: GTSM (RFC 5082) is on: the cloud takes only BGP segments sent with TTL 255 (set below).",
                        c.id
                    )
                } else {
                    format!(
                        "{}: GTSM (RFC 5082) is on: the cloud takes only BGP segments sent with TTL 255, and {vendor} has no setting for that on a directly connected session here; set the connection's ttlSecurity to false, or its sessions will not come up.",
                        c.id
                    )
                },
            );
        }
        let strict = c.bgp_role == crate::edge::BgpRoleMode::Strict;
        if !c.bgp_role.is_off() {
            w(
                out,
                &match (can.roles, strict) {
                    (true, _) => format!(
                        "{}: BGP roles (RFC 9234): the cloud is your provider, your local role is customer (set below){}.",
                        c.id,
                        if strict {
                            "; the cloud requires it"
                        } else {
                            ""
                        }
                    ),
                    (false, false) => format!(
                        "{}: the cloud announces the BGP role provider (RFC 9234); {vendor} sets no role here, which the cloud accepts.",
                        c.id
                    ),
                    (false, true) => format!(
                        "{}: the cloud requires the BGP role customer (RFC 9234, strict) and {vendor} sets no role here; set the connection's bgpRole to ANNOUNCE or OFF, or its sessions will be refused.",
                        c.id
                    ),
                },
            );
        }
    }
    if site
        .connections
        .iter()
        .any(|c| c.md5_key.as_deref() == Some(MD5_PLACEHOLDER))
    {
        w(
            out,
            &format!(
                "Replace {MD5_PLACEHOLDER} with the session's TCP-MD5 key (you may not read it here)."
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dual: bool, standby: Option<Standby>, key: Option<&str>) -> Site {
        let conn = |n: u16, standby| {
            let mut peerings = vec![Peering {
                subnet: format!("169.254.{n}.0/30").parse().expect("net"),
                customer_ip: format!("169.254.{n}.2").parse().expect("ip"),
                cloud_ip: format!("169.254.{n}.1").parse().expect("ip"),
            }];
            if dual {
                peerings.push(Peering {
                    subnet: format!("fd00:a9fe:{n}::/126").parse().expect("net"),
                    customer_ip: format!("fd00:a9fe:{n}::2").parse().expect("ip"),
                    cloud_ip: format!("fd00:a9fe:{n}::1").parse().expect("ip"),
                });
            }
            Connection {
                id: format!("pc{n}"),
                name: format!("site1-vlan{n}"),
                point_of_presence: format!("pop{}", n / 100),
                vlan: n,
                interface: format!("eth1.{n}"),
                link: Link::Vlan {
                    port: "eth1".into(),
                },
                peerings,
                customer_asn: 65001,
                md5_key: key.map(str::to_string),
                standby,
                ttl_security: false,
                bgp_role: crate::edge::BgpRoleMode::Off,
                bfd: Some(crate::resource::BfdTimers {
                    min_interval_ms: 300,
                    multiplier: 3,
                }),
            }
        };
        let mut vpc: Vec<IpNet> = vec!["10.128.0.0/24".parse().expect("net")];
        let mut announce: Vec<IpNet> = vec!["192.168.10.0/24".parse().expect("net")];
        if dual {
            vpc.push("fd80:128::/64".parse().expect("net"));
            announce.push("fd10:168:10::/64".parse().expect("net"));
        }
        Site {
            cloud_asn: 200350,
            connections: vec![conn(100, None), conn(200, standby)],
            vpc_prefixes: vpc,
            announce,
            max_prefixes: 100,
            graceful_restart: true,
        }
    }

    /// The text equals the golden file (`CIC_UPDATE_GOLDEN=1` writes it instead).
    fn golden(name: &str, text: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/router_config")
            .join(name);
        if std::env::var("CIC_UPDATE_GOLDEN").is_ok() {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, text).expect("write golden");
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (CIC_UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(text, want, "{name} differs from its golden file");
    }

    /// Golden files of every vendor. BIRD's and FRR's are also loaded by BIRD's parser and
    /// `vtysh -C` (crates/cic/tests/router_config.rs) and run in the lab. The others were
    /// written from, and are to be reviewed against, each vendor's reference:
    /// - Cisco IOS-XE: "IP Routing: BGP Configuration Guide, Cisco IOS XE" (address
    ///   families, `neighbor password`, `maximum-prefix`, `bgp graceful-restart`) and
    ///   "BFD Support for BGP" (`bfd interval … min_rx … multiplier`, `neighbor fall-over
    ///   bfd`); IOS-XE has no large communities, so its standby prepends.
    /// - Juniper Junos: "BGP User Guide" (group/neighbor `local-address`,
    ///   `authentication-key`, `family inet unicast prefix-limit maximum … teardown`,
    ///   `bfd-liveness-detection`, `multipath`, `graceful-restart`) and "Routing Policies"
    ///   (prefix-list, `as-path-prepend`, `community … members large:A:B:C`).
    /// - Arista EOS: EOS User Manual, "Border Gateway Protocol" (`neighbor … bfd`,
    ///   `maximum-routes`, `set large-community … additive`), "IPv6 prefix lists" (a mode
    ///   of their own), "Subinterfaces" (`encapsulation dot1q vlan`).
    /// - MikroTik RouterOS 7: help.mikrotik.com "BGP" (`/routing bgp connection`:
    ///   `local.role`, `remote.as`, `address-families`, `use-bfd`, `tcp-md5-key`,
    ///   `input.filter`, `output.filter-chain`, `output.network`,
    ///   `input.limit-process-routes-ipv4`), "Route Selection and Filters"
    ///   (`/routing filter rule`, `bgp-path-prepend`, `bgp-large-communities`), "BFD".
    #[test]
    fn every_vendor_s_configs_match_their_golden_files() {
        for (vendor, ext) in [
            (Vendor::Bird, "bird.conf"),
            (Vendor::Frr, "frr.conf"),
            (Vendor::IosXe, "ios-xe.txt"),
            (Vendor::Eos, "eos.txt"),
            (Vendor::Junos, "junos.txt"),
            (Vendor::RouterOs, "routeros.rsc"),
        ] {
            // Each vendor's own port name, as the server gives it.
            let on = |mut s: Site| {
                for c in &mut s.connections {
                    c.link = Link::Vlan {
                        port: default_port(vendor).into(),
                    };
                    c.interface = format!("{}.{}", default_port(vendor), c.vlan);
                }
                s
            };
            let site = |dual, standby, key| on(site(dual, standby, key));
            golden(
                &format!("single-stack.{ext}"),
                &render(vendor, &site(false, None, Some("s3cret"))),
            );
            golden(
                &format!("dual-stack-standby-prepend.{ext}"),
                &render(
                    vendor,
                    &site(true, Some(Standby::Prepend), Some(MD5_PLACEHOLDER)),
                ),
            );
            golden(
                &format!("dual-stack-standby-community.{ext}"),
                &render(vendor, &site(true, Some(Standby::Community), None)),
            );
            // GTSM and strict roles on the first connection, roles announced on the
            // second.
            let mut s = site(true, None, None);
            s.connections[0].ttl_security = true;
            s.connections[0].bgp_role = crate::edge::BgpRoleMode::Strict;
            s.connections[1].bgp_role = crate::edge::BgpRoleMode::Announce;
            golden(&format!("gtsm-and-roles.{ext}"), &render(vendor, &s));
            // Faster BFD on the first connection (100 ms × 3), the default on the second.
            let mut s = site(true, None, None);
            s.connections[0].bfd = Some(crate::resource::BfdTimers {
                min_interval_ms: 100,
                multiplier: 3,
            });
            golden(&format!("bfd-per-connection.{ext}"), &render(vendor, &s));
            // An operator without BFD: none on either connection.
            let mut s = site(false, None, None);
            for c in &mut s.connections {
                c.bfd = None;
            }
            golden(&format!("bfd-off.{ext}"), &render(vendor, &s));
        }
    }

    #[test]
    fn each_family_gets_its_session_filters_and_nothing_leaks_into_the_other() {
        let c = render(Vendor::Bird, &site(true, None, None));
        assert_eq!(c.matches("protocol bgp ").count(), 4, "2 PoPs × 2 families");
        assert!(c.contains("neighbor fd00:a9fe:100::1 as 200350;"));
        assert!(c.contains("define CIC_VPC6 = [ fd80:128::/64 ];"));
        assert!(!c.contains("password"), "no key, no password");
        let c = render(Vendor::Bird, &site(false, None, None));
        assert!(!c.contains("ipv6"), "{c}");
        let f = render(Vendor::Frr, &site(true, None, Some("k")));
        assert!(f.contains(" neighbor fd00:a9fe:200::1 password k"));
        assert!(f.contains("ipv6 prefix-list CIC-VPC6 seq 5 permit fd80:128::/64"));
        // Nothing announced until the customer lists prefixes: the export denies all.
        let mut s = site(false, None, None);
        s.announce.clear();
        let b = render(Vendor::Bird, &s);
        assert!(
            b.contains("export none;") && b.contains("nothing is announced"),
            "{b}"
        );
        let f = render(Vendor::Frr, &s);
        assert!(
            f.contains("ip prefix-list CIC-MINE4 seq 5 deny 0.0.0.0/0 le 32"),
            "{f}"
        );
    }
}
