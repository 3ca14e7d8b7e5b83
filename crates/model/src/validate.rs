//! The rules of REFERENCE.md "Rules to enforce", one function per rule. Each returns an
//! `ApiError` naming the field (camelCase JSON path) and what is wrong with it.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::{ApiError, ApiResult};
use crate::resource::Labels;

/// RFC 1918 and link-local ranges that may hold a peering subnet.
pub const PEERING_RANGES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
];

/// 802.1Q VLAN id reserved for the special stitching connection.
pub const STITCHING_VLAN: u32 = 4095;
pub const MAX_CUSTOMER_VLAN: u32 = 4000;
pub const MIN_CUSTOMER_VLAN: u32 = 2;
/// Linux `TCP_MD5SIG_MAXKEYLEN`: a longer key cannot be installed on the edge's socket.
pub const MAX_MD5_KEY_LEN: usize = 80;
pub const AS_TRANS: u32 = 23456;

fn net(s: &str) -> Ipv4Net {
    // Constants above are valid literals; a typo there is a bug caught by the unit tests.
    s.parse().unwrap_or_default()
}

/// `name`: empty, or a letter then up to 62 of `[-_a-zA-Z0-9]`, ending alphanumeric.
pub fn name(field: &str, v: &str) -> ApiResult<()> {
    if v.is_empty() {
        return Ok(());
    }
    let ok = v.len() <= 63
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!(
                "{v:?} is not a valid name: a letter, then up to 62 of [-_a-zA-Z0-9], ending with a letter or digit"
            ),
        ))
    }
}

pub fn description(field: &str, v: &str) -> ApiResult<()> {
    let n = v.chars().count();
    if n > 256 {
        return Err(ApiError::field(
            field,
            format!("is {n} characters long; at most 256 are allowed"),
        ));
    }
    Ok(())
}

/// Labels: at most 64; key 1–63 of `[a-z][-_0-9a-z]*`, value at most 63 of `[-_0-9a-z]*`.
pub fn labels(field: &str, v: &Labels) -> ApiResult<()> {
    if v.len() > 64 {
        return Err(ApiError::field(
            field,
            format!("has {} labels; at most 64 are allowed", v.len()),
        ));
    }
    let low = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    for (k, val) in v {
        let key_ok = (1..=63).contains(&k.len())
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars().all(low);
        if !key_ok {
            return Err(ApiError::field(
                &format!("{field}.{k}"),
                "label key must be 1-63 characters of [-_0-9a-z] starting with a letter",
            ));
        }
        if val.len() > 63 || !val.chars().all(low) {
            return Err(ApiError::field(
                &format!("{field}.{k}"),
                format!("label value {val:?} must be at most 63 characters of [-_0-9a-z]"),
            ));
        }
    }
    Ok(())
}

/// Folder ids and other references: non-empty, at most 50 of `[-_a-zA-Z0-9]`.
pub fn id_ref(field: &str, v: &str) -> ApiResult<()> {
    if v.is_empty() {
        return Err(ApiError::field(field, "is required"));
    }
    if v.len() > 50
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::field(
            field,
            format!("{v:?} is not a valid id: at most 50 of [-_a-zA-Z0-9]"),
        ));
    }
    Ok(())
}

/// Customer VLAN: 2–4000; 4095 is reserved for the stitching connection.
pub fn vlan_id(field: &str, v: u32) -> ApiResult<u16> {
    if v == STITCHING_VLAN {
        return Err(ApiError::field(
            field,
            "VLAN 4095 is reserved for the stitching connection",
        ));
    }
    if !(MIN_CUSTOMER_VLAN..=MAX_CUSTOMER_VLAN).contains(&v) {
        return Err(ApiError::field(
            field,
            format!(
                "VLAN {v} is out of range: customer VLANs are {MIN_CUSTOMER_VLAN}-{MAX_CUSTOMER_VLAN}"
            ),
        ));
    }
    Ok(v as u16)
}

/// A prefix written with host bits set (10.0.0.1/30) is refused, not silently truncated.
pub fn canonical<N: Into<IpNet> + Copy>(field: &str, p: &N) -> ApiResult<()> {
    let p: IpNet = (*p).into();
    if p.trunc() != p {
        return Err(ApiError::field(
            field,
            format!("{p} has host bits set; did you mean {}?", p.trunc()),
        ));
    }
    Ok(())
}

/// Peering subnet /30 or /31, canonical, inside RFC 1918 or 169.254.0.0/16; `peerIp` and
/// `cloudIp` distinct usable hosts of it.
pub fn peering(
    field: &str,
    subnet: &Ipv4Net,
    peer_ip: Ipv4Addr,
    cloud_ip: Ipv4Addr,
) -> ApiResult<()> {
    let sf = format!("{field}.peeringSubnet");
    if !PEERING_RANGES.iter().any(|r| net(r).contains(subnet)) {
        return Err(ApiError::field(
            &sf,
            format!(
                "{subnet} must be inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 169.254.0.0/16"
            ),
        ));
    }
    peering_hosts(field, subnet, peer_ip, cloud_ip)
}

/// A public connection's peering: the same shape, on public addresses (it carries
/// Internet-routable traffic to the cloud's public services).
pub fn public_peering(
    field: &str,
    subnet: &Ipv4Net,
    peer_ip: Ipv4Addr,
    cloud_ip: Ipv4Addr,
    also: &[IpNet],
) -> ApiResult<()> {
    public_prefix(&format!("{field}.peeringSubnet"), subnet, also)?;
    peering_hosts(field, subnet, peer_ip, cloud_ip)
}

/// Space an operator may take as public besides the Internet's (`--treat-as-public`): at
/// most a /8 (IPv4) or /16 (IPv6), and never space no unicast route may be in (this
/// network, loopback, link local, multicast, reserved).
pub fn treatable_as_public(p: &IpNet) -> Result<(), String> {
    const NEVER: [&str; 8] = [
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/3",
        "::/8",
        "fe80::/10",
        "ff00::/8",
        "100::/64",
    ];
    let widest = if p.addr().is_ipv4() { 8 } else { 16 };
    if p.prefix_len() < widest {
        return Err(format!(
            "{p} is too wide: name the lab's or test network's range (at most /{widest})"
        ));
    }
    if let Some(r) = NEVER
        .iter()
        .filter_map(|r| r.parse::<IpNet>().ok())
        .find(|r| r.contains(p) || p.contains(r))
    {
        return Err(format!(
            "{p} overlaps {r}, which no unicast route may be in"
        ));
    }
    Ok(())
}

/// Whether `p` lies in space the operator treats as public besides the Internet's
/// (`cic server --treat-as-public`: a lab's or a test network's benchmarking range).
pub fn treated_as_public(also: &[IpNet], p: &IpNet) -> bool {
    also.iter().any(|a| a.contains(p))
}

/// Not private, shared, loopback, link-local, documentation, multicast or reserved space
/// (unless inside `also`, space the operator treats as public).
pub fn public_prefix(field: &str, p: &Ipv4Net, also: &[IpNet]) -> ApiResult<()> {
    const NOT_PUBLIC: [&str; 13] = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
    ];
    canonical(field, p)?;
    if p.prefix_len() < 8 {
        return Err(ApiError::field(
            field,
            format!("{p} is too wide for one customer (at most /8)"),
        ));
    }
    if let Some(r) = NOT_PUBLIC
        .iter()
        .map(|r| net(r))
        .find(|r| r.contains(p) || p.contains(r))
        .filter(|_| !treated_as_public(also, &IpNet::V4(*p)))
    {
        return Err(ApiError::field(
            field,
            format!("{p} overlaps {r}, which is not public address space"),
        ));
    }
    Ok(())
}

/// An IPv6 prefix a public connection may carry: global unicast (2000::/3), not
/// documentation, benchmarking or other special-purpose space, at most a /16.
pub fn public_prefix6(field: &str, p: &Ipv6Net, also: &[IpNet]) -> ApiResult<()> {
    canonical(field, p)?;
    if treated_as_public(also, &IpNet::V6(*p)) {
        return Ok(());
    }
    if p.prefix_len() < 16 {
        return Err(ApiError::field(
            field,
            format!("{p} is too wide for one customer (at most /16)"),
        ));
    }
    let global: Ipv6Net = "2000::/3".parse().unwrap_or_default();
    if !global.contains(p) {
        return Err(ApiError::field(
            field,
            format!("{p} is not global unicast space (2000::/3)"),
        ));
    }
    if let Some((r, what)) = crate::prefixes::martian(&IpNet::V6(*p)) {
        return Err(ApiError::field(
            field,
            format!("{p} is inside {r} ({what}), which is not public address space"),
        ));
    }
    Ok(())
}

/// A public connection's IPv6 peering: the shape of [`peering6`], on public (global
/// unicast) space.
pub fn public_peering6(
    field: &str,
    subnet: &Ipv6Net,
    peer_ip: Ipv6Addr,
    cloud_ip: Ipv6Addr,
    also: &[IpNet],
) -> ApiResult<()> {
    public_prefix6(&format!("{field}.peeringSubnet"), subnet, also)?;
    peering6(field, subnet, peer_ip, cloud_ip)
}

/// /30 or /31, canonical; `peerIp` and `cloudIp` distinct usable hosts of it.
fn peering_hosts(
    field: &str,
    subnet: &Ipv4Net,
    peer_ip: Ipv4Addr,
    cloud_ip: Ipv4Addr,
) -> ApiResult<()> {
    let sf = format!("{field}.peeringSubnet");
    if !matches!(subnet.prefix_len(), 30 | 31) {
        return Err(ApiError::field(
            &sf,
            format!("{subnet} must be a /30 or a /31"),
        ));
    }
    canonical(&sf, subnet)?;
    for (name, ip) in [("peerIp", peer_ip), ("cloudIp", cloud_ip)] {
        let f = format!("{field}.{name}");
        if !subnet.contains(&ip) {
            return Err(ApiError::field(
                &f,
                format!("{ip} is not in the peering subnet {subnet}"),
            ));
        }
        if subnet.prefix_len() == 30 && (ip == subnet.network() || ip == subnet.broadcast()) {
            let what = if ip == subnet.network() {
                "network"
            } else {
                "broadcast"
            };
            return Err(ApiError::field(
                &f,
                format!("{ip} is the {what} address of {subnet}, not a usable host"),
            ));
        }
    }
    if peer_ip == cloud_ip {
        return Err(ApiError::field(
            &format!("{field}.cloudIp"),
            format!("must differ from peerIp ({peer_ip})"),
        ));
    }
    Ok(())
}

/// RFC 5398 documentation ASNs (and AS_TRANS) never belong to a real network.
pub fn is_reserved_asn(asn: u32) -> bool {
    asn == 0
        || asn == AS_TRANS
        || (64496..=64511).contains(&asn)
        || (65536..=65551).contains(&asn)
        || asn == 4_294_967_295
}

/// A PoP's public-services network: a usable VTEP and UDP port; an ASN for BGP routing
/// and none for static.
pub fn public_services(field: &str, n: &crate::resource::PublicServicesNetwork) -> ApiResult<()> {
    use crate::resource::PublicServicesRouting;
    let v = n.remote_vtep;
    let o = v.octets();
    if o[0] == 0 || o[0] >= 224 || v.is_loopback() || v.is_link_local() {
        return Err(ApiError::field(
            &format!("{field}.remoteVtep"),
            format!("{v} is not a unicast address a VXLAN segment can be sent to"),
        ));
    }
    if n.udp_port == 0 {
        return Err(ApiError::field(
            &format!("{field}.udpPort"),
            "0 is not a UDP port (VXLAN's is 4789)",
        ));
    }
    match (n.routing, n.asn) {
        (PublicServicesRouting::Bgp, None) => Err(ApiError::field(
            &format!("{field}.asn"),
            "is required with BGP routing: the services routers' ASN",
        )),
        (PublicServicesRouting::Bgp, Some(a)) if a == 0 || a == AS_TRANS || a == u32::MAX => {
            Err(ApiError::field(
                &format!("{field}.asn"),
                format!("{a} is not a usable ASN: use 1-4294967294, not 23456"),
            ))
        }
        (PublicServicesRouting::Static, Some(_)) => Err(ApiError::field(
            &format!("{field}.asn"),
            "is for BGP routing; static routing has no session",
        )),
        _ => Ok(()),
    }
}

/// A connection's BFD timers: an interval from the operator's minimum to 10 s, a
/// multiplier of 2 to 50 (one lost packet must not be a failure; the operator's own
/// setting goes to 50).
pub fn bfd_timers(
    field: &str,
    t: &crate::resource::BfdTimers,
    min_interval_ms: u32,
) -> ApiResult<()> {
    if t.min_interval_ms < min_interval_ms || t.min_interval_ms > 10_000 {
        return Err(ApiError::field(
            &format!("{field}.minIntervalMs"),
            format!(
                "{} ms is out of range {min_interval_ms}-10000 ms (this cloud's minimum is {min_interval_ms} ms)",
                t.min_interval_ms
            ),
        ));
    }
    if !(2..=50).contains(&t.multiplier) {
        return Err(ApiError::field(
            &format!("{field}.multiplier"),
            format!(
                "{} is out of range 2-50 (1: one lost packet would take the session down)",
                t.multiplier
            ),
        ));
    }
    Ok(())
}

/// Peer ASN: 1–4294967294, not 23456, not a documentation ASN, not the cloud's own.
pub fn peer_asn(field: &str, asn: u32, cloud_asn: u32) -> ApiResult<()> {
    if asn == 0 || asn == 4_294_967_295 {
        return Err(ApiError::field(
            field,
            format!("{asn} is not a valid ASN: use 1-4294967294"),
        ));
    }
    if asn == AS_TRANS {
        return Err(ApiError::field(
            field,
            "23456 is AS_TRANS (RFC 6793), not a real ASN",
        ));
    }
    if is_reserved_asn(asn) {
        return Err(ApiError::field(
            field,
            format!("{asn} is a documentation ASN (RFC 5398: 64496-64511, 65536-65551)"),
        ));
    }
    if asn == cloud_asn {
        return Err(ApiError::field(
            field,
            format!("{asn} is the cloud's own ASN; the session is eBGP"),
        ));
    }
    Ok(())
}

pub fn md5_key(field: &str, key: &Option<crate::Secret>) -> ApiResult<()> {
    if let Some(k) = key.as_ref().map(|k| k.expose()) {
        if k.is_empty() {
            return Err(ApiError::field(
                field,
                "must not be empty when present (omit it for no key)",
            ));
        }
        if k == crate::SECRET_MASK {
            return Err(ApiError::field(
                field,
                format!(
                    "{:?} is how a hidden key is shown, not a key; send the key itself (or leave the field out)",
                    crate::SECRET_MASK
                ),
            ));
        }
        if k.len() > MAX_MD5_KEY_LEN {
            return Err(ApiError::field(
                field,
                format!(
                    "is {} bytes long; at most {MAX_MD5_KEY_LEN} (the Linux TCP-MD5 key limit)",
                    k.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A connection's static routes of one family (`ipv4StaticRoutes` or `ipv6StaticRoutes`):
/// the quota counts each family on its own.
pub fn static_routes<N: Into<IpNet> + Copy + PartialEq + std::fmt::Display>(
    field: &str,
    routes: &[N],
    max: usize,
) -> ApiResult<()> {
    if routes.len() > max {
        return Err(ApiError::field(
            field,
            format!(
                "has {} routes; the quota is {max} per private connection",
                routes.len()
            ),
        ));
    }
    for (i, p) in routes.iter().enumerate() {
        let f = format!("{field}[{i}].prefix");
        canonical(&f, p)?;
        // The checks of a route the customer announces (the speaker's import policy uses
        // the same table), and no default: a static route cannot be withdrawn when the
        // customer's side fails, so it would blackhole every destination of the instance.
        if (*p).into().prefix_len() == 0 {
            return Err(ApiError::field(
                &f,
                format!(
                    "{p} is the default route; announce it over BGP instead, so that it goes when the session does"
                ),
            ));
        }
        if let Some((r, what)) = crate::prefixes::martian(&(*p).into()) {
            return Err(ApiError::field(
                &f,
                format!("{p} is inside {r} ({what}), which no customer may route"),
            ));
        }
        if routes[..i].contains(p) {
            return Err(ApiError::field(
                &format!("{field}[{i}].prefix"),
                format!("{p} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Routing-instance prefixes, IPv4 and IPv6: canonical, not overlapping each other, and
/// at most `max` of each family.
pub fn vpc_prefixes(field: &str, prefixes: &[IpNet], max: usize) -> ApiResult<()> {
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        let n = prefixes
            .iter()
            .filter(|p| matches!(p, IpNet::V6(_)) == v6)
            .count();
        if n > max {
            return Err(ApiError::field(
                field,
                format!(
                    "has {n} {family} prefixes; the quota is {max} per family per routing instance"
                ),
            ));
        }
    }
    for p in prefixes {
        canonical(field, p)?;
        if p.prefix_len() == 0 {
            return Err(ApiError::field(
                field,
                format!("{p} is a default route, not a VPC prefix"),
            ));
        }
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if overlaps(a, b) {
                return Err(ApiError::field(
                    field,
                    format!("prefixes {a} and {b} overlap"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether one contains the other (prefixes of different families never overlap).
pub fn overlaps<N: Into<IpNet> + Copy>(a: &N, b: &N) -> bool {
    let (a, b): (IpNet, IpNet) = ((*a).into(), (*b).into());
    a.contains(&b) || b.contains(&a)
}

/// Where an IPv6 peering subnet may be: unique local (RFC 4193) or global unicast.
pub const PEERING_RANGES_V6: [&str; 2] = ["fc00::/7", "2000::/3"];

/// IPv6 space that is neither: each with what it is, for the message.
const NOT_PEERING_V6: [(&str, &str); 6] = [
    ("::/128", "the unspecified address"),
    ("::1/128", "the loopback address"),
    ("::ffff:0:0/96", "IPv4-mapped space"),
    ("fe80::/10", "link-local space"),
    ("ff00::/8", "multicast space"),
    ("2001:db8::/32", "documentation space (RFC 3849)"),
];

/// An IPv6 peering (RFC 6164): subnet /125, /126 or /127, canonical, unique local or
/// global unicast (not documentation); `peerIp` and `cloudIp` distinct addresses of it,
/// neither the subnet-router anycast address (the all-zeros one) of a /125 or /126 — a
/// /127 uses both of its addresses (RFC 6164 §5).
pub fn peering6(
    field: &str,
    subnet: &Ipv6Net,
    peer_ip: Ipv6Addr,
    cloud_ip: Ipv6Addr,
) -> ApiResult<()> {
    let sf = format!("{field}.peeringSubnet");
    if !matches!(subnet.prefix_len(), 125..=127) {
        return Err(ApiError::field(
            &sf,
            format!("{subnet} must be a /125, /126 or /127 (RFC 6164)"),
        ));
    }
    canonical(&sf, subnet)?;
    let v6 = |s: &str| s.parse::<Ipv6Net>().unwrap_or_default();
    if let Some((_, what)) = NOT_PEERING_V6
        .iter()
        .find(|(r, _)| v6(r).contains(subnet) || subnet.contains(&v6(r)))
    {
        return Err(ApiError::field(
            &sf,
            format!(
                "{subnet} is in {what}; use a unique local (fc00::/7) or global unicast subnet"
            ),
        ));
    }
    if !PEERING_RANGES_V6.iter().any(|r| v6(r).contains(subnet)) {
        return Err(ApiError::field(
            &sf,
            format!(
                "{subnet} is neither unique local (fc00::/7) nor global unicast (2000::/3) space"
            ),
        ));
    }
    for (name, ip) in [("peerIp", peer_ip), ("cloudIp", cloud_ip)] {
        let f = format!("{field}.{name}");
        if !subnet.contains(&ip) {
            return Err(ApiError::field(
                &f,
                format!("{ip} is not in the peering subnet {subnet}"),
            ));
        }
        if subnet.prefix_len() < 127 && ip == subnet.network() {
            return Err(ApiError::field(
                &f,
                format!(
                    "{ip} is the subnet-router anycast address of {subnet}, not a host (a /127 may use it)"
                ),
            ));
        }
    }
    if peer_ip == cloud_ip {
        return Err(ApiError::field(
            &format!("{field}.cloudIp"),
            format!("must differ from peerIp ({peer_ip})"),
        ));
    }
    Ok(())
}

/// Both families go to one customer router: one ASN.
pub fn same_asn(v4: Option<u32>, v6: Option<u32>) -> ApiResult<()> {
    match (v4, v6) {
        (Some(a), Some(b)) if a != b => Err(ApiError::field(
            "ipv6Peering.peerBgpAsn",
            format!(
                "{b} differs from ipv4Peering.peerBgpAsn ({a}); both sessions go to the same customer router and need the same ASN"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().expect("test prefix")
    }
    fn a(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn range_constants_parse() {
        for r in PEERING_RANGES {
            assert!(r.parse::<Ipv4Net>().is_ok(), "{r}");
        }
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["", "a", "trunk-1", "A_b-9", &format!("a{}", "b".repeat(62))] {
            assert!(name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "1abc",
            "-a",
            "a-",
            "a b",
            "a.b",
            &format!("a{}", "b".repeat(63)),
        ] {
            let e = name("name", bad).unwrap_err();
            assert_eq!(e.details[0].field, "name", "{bad}");
        }
    }

    #[test]
    fn labels_follow_the_rule() {
        let mut l = Labels::new();
        l.insert("env".into(), "prod-1".into());
        assert!(labels("labels", &l).is_ok());
        l.insert("Env".into(), "x".into());
        assert!(labels("labels", &l).is_err());
        let mut l = Labels::new();
        l.insert("env".into(), "Prod".into());
        assert!(labels("labels", &l).unwrap_err().message.contains("Prod"));
        let many: Labels = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(labels("labels", &many).is_err());
    }

    #[test]
    fn vlan_range_and_reserved() {
        assert_eq!(vlan_id("vlanId", 2).ok(), Some(2));
        assert_eq!(vlan_id("vlanId", 4000).ok(), Some(4000));
        assert!(vlan_id("vlanId", 1).is_err());
        assert!(vlan_id("vlanId", 0).is_err());
        assert!(vlan_id("vlanId", 4001).is_err());
        assert!(
            vlan_id("vlanId", 4095)
                .unwrap_err()
                .message
                .contains("reserved")
        );
    }

    #[test]
    fn peering_accepts_slash30_and_slash31() {
        assert!(
            peering(
                "p",
                &n("169.254.100.0/30"),
                a("169.254.100.2"),
                a("169.254.100.1")
            )
            .is_ok()
        );
        assert!(peering("p", &n("10.1.1.0/31"), a("10.1.1.0"), a("10.1.1.1")).is_ok());
    }

    #[test]
    fn peering_rejects_each_broken_rule() {
        let cases = [
            ("10.0.0.0/29", "10.0.0.1", "10.0.0.2", "/30 or a /31"),
            ("10.0.0.1/30", "10.0.0.1", "10.0.0.2", "host bits"),
            ("100.64.0.0/30", "100.64.0.1", "100.64.0.2", "inside"),
            ("10.0.0.0/30", "10.0.0.0", "10.0.0.2", "network address"),
            ("10.0.0.0/30", "10.0.0.1", "10.0.0.3", "broadcast address"),
            ("10.0.0.0/30", "10.0.0.1", "10.0.0.1", "must differ"),
            (
                "10.0.0.0/30",
                "10.0.0.5",
                "10.0.0.1",
                "not in the peering subnet",
            ),
        ];
        for (s, p, c, want) in cases {
            let e = peering("ipv4Peering", &n(s), a(p), a(c)).unwrap_err();
            assert!(e.message.contains(want), "{s} {p} {c}: {}", e.message);
            assert!(e.details[0].field.starts_with("ipv4Peering."));
        }
    }

    #[test]
    fn asn_rules() {
        for ok in [
            1,
            65001,
            64512,
            65534,
            4_200_000_000,
            4_294_967_294,
            200_349,
        ] {
            assert!(peer_asn("asn", ok, 200_350).is_ok(), "{ok}");
        }
        for bad in [0, 23456, 64496, 64511, 65536, 65551, 4_294_967_295, 200_350] {
            assert!(peer_asn("asn", bad, 200_350).is_err(), "{bad}");
        }
    }

    #[test]
    fn md5_key_length() {
        assert!(md5_key("k", &None).is_ok());
        let k = |s: String| Some(crate::Secret::new(s));
        assert!(md5_key("k", &k("x".repeat(80))).is_ok());
        assert!(md5_key("k", &k("x".repeat(81))).is_err());
        assert!(md5_key("k", &k(String::new())).is_err());
        let e = md5_key("k", &k(crate::SECRET_MASK.into())).unwrap_err();
        assert!(
            e.message.contains("how a hidden key is shown"),
            "{}",
            e.message
        );
    }

    #[test]
    fn static_routes_refuse_what_an_announcement_may_not_hold_and_the_default() {
        assert!(static_routes("r", &[n("192.168.10.0/24"), n("8.8.8.0/24")], 100).is_ok());
        for (bad, says) in [
            ("0.0.0.0/0", "default route"),
            ("127.0.0.0/8", "loopback"),
            ("224.0.0.0/4", "multicast"),
            ("169.254.7.0/24", "link local"),
            ("192.0.2.0/24", "documentation"),
            ("255.255.255.255/32", "reserved"),
        ] {
            let e =
                static_routes("ipv4StaticRoutes", &[n("10.9.0.0/16"), n(bad)], 100).unwrap_err();
            assert_eq!(e.details[0].field, "ipv4StaticRoutes[1].prefix", "{bad}");
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn vpc_prefixes_must_not_overlap() {
        let n = |s: &str| s.parse::<IpNet>().expect("prefix");
        assert!(vpc_prefixes("p", &[n("10.0.0.0/24"), n("10.0.1.0/24")], 100).is_ok());
        let e = vpc_prefixes("p", &[n("10.0.0.0/16"), n("10.0.1.0/24")], 100).unwrap_err();
        assert!(e.message.contains("overlap"));
        assert!(vpc_prefixes("p", &[n("10.0.0.0/24"), n("10.0.1.0/24")], 1).is_err());
        assert!(vpc_prefixes("p", &[n("10.0.0.1/24")], 100).is_err());
        // IPv6 the same way, and each family against its own quota.
        let e = vpc_prefixes("p", &[n("fd00:1::/32"), n("fd00:1:2::/64")], 100).unwrap_err();
        assert!(e.message.contains("overlap"), "{}", e.message);
        assert!(vpc_prefixes("p", &[n("fd00:1::1/64")], 100).is_err());
        assert!(vpc_prefixes("p", &[n("10.0.0.0/24"), n("fd00:1::/64")], 1).is_ok());
        let e = vpc_prefixes("p", &[n("fd00:1::/64"), n("fd00:2::/64")], 1).unwrap_err();
        assert!(e.message.contains("2 IPv6 prefixes"), "{}", e.message);
        assert!(vpc_prefixes("p", &[n("::/0")], 10).is_err());
    }

    #[test]
    fn ipv6_peering_accepts_slash125_to_slash127_in_ula_and_global_space() {
        let n6 = |s: &str| s.parse::<Ipv6Net>().expect("net");
        let a6 = |s: &str| s.parse::<Ipv6Addr>().expect("addr");
        for (s, p, c) in [
            ("fd00:c1c::/127", "fd00:c1c::1", "fd00:c1c::"),
            ("fd00:c1c::/126", "fd00:c1c::2", "fd00:c1c::1"),
            ("fd00:c1c::/125", "fd00:c1c::7", "fd00:c1c::1"),
            ("2a02:6b8:c00::/127", "2a02:6b8:c00::1", "2a02:6b8:c00::"),
        ] {
            assert!(peering6("ipv6Peering", &n6(s), a6(p), a6(c)).is_ok(), "{s}");
        }
    }

    #[test]
    fn ipv6_peering_rejects_each_broken_rule() {
        let n6 = |s: &str| s.parse::<Ipv6Net>().expect("net");
        let a6 = |s: &str| s.parse::<Ipv6Addr>().expect("addr");
        let cases = [
            (
                "fd00::/64",
                "fd00::1",
                "fd00::2",
                "peeringSubnet",
                "/125, /126 or /127",
            ),
            (
                "fd00::/124",
                "fd00::1",
                "fd00::2",
                "peeringSubnet",
                "/125, /126 or /127",
            ),
            (
                "fd00::1/126",
                "fd00::1",
                "fd00::2",
                "peeringSubnet",
                "host bits",
            ),
            (
                "fe80::/127",
                "fe80::1",
                "fe80::",
                "peeringSubnet",
                "link-local",
            ),
            (
                "ff02::/127",
                "ff02::1",
                "ff02::",
                "peeringSubnet",
                "multicast",
            ),
            ("::/127", "::1", "::", "peeringSubnet", "unspecified"),
            (
                "::ffff:10.0.0.0/127",
                "::ffff:10.0.0.1",
                "::ffff:10.0.0.0",
                "peeringSubnet",
                "IPv4-mapped",
            ),
            (
                "2001:db8::/127",
                "2001:db8::1",
                "2001:db8::",
                "peeringSubnet",
                "documentation",
            ),
            (
                "4000::/127",
                "4000::1",
                "4000::",
                "peeringSubnet",
                "neither unique local",
            ),
            (
                "fd00::/126",
                "fd00::",
                "fd00::1",
                "peerIp",
                "subnet-router anycast",
            ),
            (
                "fd00::/125",
                "fd00::1",
                "fd00::",
                "cloudIp",
                "subnet-router anycast",
            ),
            (
                "fd00::/127",
                "fd00::2",
                "fd00::",
                "peerIp",
                "not in the peering subnet",
            ),
            ("fd00::/127", "fd00::1", "fd00::1", "cloudIp", "must differ"),
        ];
        for (s, p, c, field, want) in cases {
            let e = peering6("ipv6Peering", &n6(s), a6(p), a6(c)).unwrap_err();
            assert!(e.message.contains(want), "{s} {p} {c}: {}", e.message);
            assert_eq!(e.details[0].field, format!("ipv6Peering.{field}"), "{s}");
        }
    }

    #[test]
    fn both_families_need_the_same_asn() {
        assert!(same_asn(Some(65001), Some(65001)).is_ok());
        assert!(same_asn(Some(65001), None).is_ok());
        assert!(same_asn(None, Some(65002)).is_ok());
        let e = same_asn(Some(65001), Some(65002)).unwrap_err();
        assert_eq!(e.details[0].field, "ipv6Peering.peerBgpAsn");
    }

    #[test]
    fn ipv6_static_routes_follow_the_ipv4_rules() {
        let n6 = |s: &str| s.parse::<Ipv6Net>().expect("net");
        assert!(static_routes("ipv6StaticRoutes", &[n6("2a00:1::/48")], 10).is_ok());
        for bad in ["::/0", "fe80::/64", "2001:db8::/48", "2a00:1::1/48"] {
            let e =
                static_routes("ipv6StaticRoutes", &[n6("2a00:2::/48"), n6(bad)], 10).unwrap_err();
            assert_eq!(e.details[0].field, "ipv6StaticRoutes[1].prefix", "{bad}");
        }
        let e = static_routes(
            "ipv6StaticRoutes",
            &[n6("2a00:1::/48"), n6("2a00:2::/48")],
            1,
        )
        .unwrap_err();
        assert!(e.message.contains("quota"));
    }
}

#[cfg(test)]
mod public_space_tests {
    use super::*;
    use crate::resource::{PublicServicesNetwork, PublicServicesRouting};

    #[test]
    fn only_a_narrow_unicast_range_may_be_taken_as_public() {
        let n = |s: &str| s.parse::<IpNet>().expect("prefix");
        for ok in [
            "198.18.0.0/15",
            "10.0.0.0/8",
            "2001:db8::/32",
            "2001:2::/48",
        ] {
            assert_eq!(treatable_as_public(&n(ok)), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("0.0.0.0/0", "too wide"),
            ("2000::/3", "too wide"),
            ("ff00::/8", "too wide"),
            ("ff02::/16", "overlaps ff00::/8"),
            ("fe80::/16", "overlaps fe80::/10"),
            ("224.0.0.0/8", "overlaps 224.0.0.0/3"),
            ("127.0.0.0/8", "overlaps 127.0.0.0/8"),
        ] {
            let e = treatable_as_public(&n(bad)).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_services_vtep_is_a_unicast_address_and_the_asn_goes_with_bgp() {
        let net = |vtep: &str, routing, asn| PublicServicesNetwork {
            remote_vtep: vtep.parse().expect("address"),
            udp_port: 4789,
            routing,
            asn,
        };
        let bgp = PublicServicesRouting::Bgp;
        assert!(public_services("p", &net("100.66.0.2", bgp, Some(64999))).is_ok());
        for vtep in [
            "0.1.2.3",
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.5",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            let e = public_services("p", &net(vtep, bgp, Some(64999))).expect_err(vtep);
            assert!(e.to_string().contains("p.remoteVtep"), "{vtep}: {e}");
        }
        assert!(public_services("p", &net("100.66.0.2", bgp, None)).is_err());
        let st = PublicServicesRouting::Static;
        assert!(public_services("p", &net("100.66.0.2", st, Some(1))).is_err());
        assert!(public_services("p", &net("100.66.0.2", st, None)).is_ok());
    }
}
