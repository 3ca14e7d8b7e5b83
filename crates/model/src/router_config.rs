//! The customer's side of a private connection: a commented configuration for their router,
//! made from everything cic knows about the connection (VLAN or VXLAN, peering addresses of
//! both families, ASNs, MD5 key, BFD timers, graceful restart, the routing instance's
//! prefixes). Pure functions: text in, text out; the server fills in [`Site`].

use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::edge::Family;

/// The router software a configuration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// BIRD 2.
    Bird,
    /// FRRouting 8 or later (`frr.conf`, integrated configuration).
    Frr,
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
    pub bfd_interval_ms: u32,
    pub bfd_multiplier: u8,
    /// The import limit on the customer's side (the cloud sends at most this many).
    pub max_prefixes: u32,
    pub graceful_restart: bool,
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
        Vendor::Bird => bird(site),
        Vendor::Frr => frr(site),
    }
}

fn of(prefixes: &[IpNet], family: Family) -> Vec<IpNet> {
    prefixes
        .iter()
        .copied()
        .filter(|p| Family::of(p.addr()) == family)
        .collect()
}

fn families(site: &Site) -> Vec<Family> {
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
fn ident(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn fam(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "4",
        Family::Ipv6 => "6",
    }
}

/// The Linux commands that make the connection's interface and addresses (BIRD and FRR
/// leave interfaces to the system), as comment lines.
fn linux_interface(out: &mut String, c: &Connection) {
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

fn header(out: &mut String, site: &Site, vendor: &str, comment: &str) {
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
            "BGP AS {} (you) ↔ AS {} (cloud); BFD {} ms × {}; graceful restart {}.",
            site.connections
                .first()
                .map(|c| c.customer_asn)
                .unwrap_or(0),
            site.cloud_asn,
            site.bfd_interval_ms,
            site.bfd_multiplier,
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

fn bird_set(prefixes: &[IpNet]) -> String {
    let v: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    format!("[ {} ]", v.join(", "))
}

fn bird(site: &Site) -> String {
    let mut out = String::new();
    header(&mut out, site, "BIRD 2", "#");
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
    let _ = writeln!(out, "protocol bfd cic_bfd {{");
    for c in &site.connections {
        let _ = writeln!(
            out,
            "  interface \"{}\" {{ min rx interval {} ms; min tx interval {} ms; multiplier {}; }};",
            c.interface, site.bfd_interval_ms, site.bfd_interval_ms, site.bfd_multiplier
        );
    }
    let _ = writeln!(out, "}}");
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
            let _ = writeln!(out, "  bfd on;");
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

fn frr(site: &Site) -> String {
    let mut out = String::new();
    header(&mut out, site, "FRR (frr.conf; bgpd, bfdd and zebra)", "!");
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
            let _ = writeln!(out, " neighbor {ip} bfd profile cic");
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
    let _ = writeln!(out, "bfd");
    let _ = writeln!(out, " profile cic");
    let _ = writeln!(out, "  receive-interval {}", site.bfd_interval_ms);
    let _ = writeln!(out, "  transmit-interval {}", site.bfd_interval_ms);
    let _ = writeln!(out, "  detect-multiplier {}", site.bfd_multiplier);
    let _ = writeln!(out, " exit");
    let _ = writeln!(out, "exit");
    let _ = writeln!(out, "!");
    out
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
            bfd_interval_ms: 300,
            bfd_multiplier: 3,
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

    #[test]
    fn bird_and_frr_configs_match_their_golden_files() {
        for (vendor, ext) in [(Vendor::Bird, "bird.conf"), (Vendor::Frr, "frr.conf")] {
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
