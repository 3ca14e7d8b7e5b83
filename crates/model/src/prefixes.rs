//! Special-purpose address space (the IANA IPv4 and IPv6 special-purpose registries): what
//! no customer may route toward its side, by BGP or by a static route. One table, read by
//! the API's checks and by the BGP speaker's import policy, so the two cannot disagree.

use ipnet::IpNet;

/// Address space no customer route may fall in, with what it is.
pub const MARTIANS: [(&str, &str); 19] = [
    ("0.0.0.0/8", "this network"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
    ("::/8", "loopback, unspecified and IPv4-mapped"),
    ("100::/64", "discard only"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fe80::/10", "link local"),
    ("ff00::/8", "multicast"),
];

/// The special-purpose range `p` falls in, and what it is. The default route is not a
/// martian (a customer may announce it over BGP).
pub fn martian(p: &IpNet) -> Option<(IpNet, &'static str)> {
    if p.prefix_len() == 0 {
        return None;
    }
    MARTIANS.iter().find_map(|(r, what)| {
        let r: IpNet = r.parse().ok()?;
        // (Ranges of the other family neither contain nor are contained.)
        r.contains(p).then_some((r, *what))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses() {
        for (r, _) in MARTIANS {
            assert!(r.parse::<IpNet>().is_ok(), "{r}");
        }
    }

    #[test]
    fn martians_are_named_and_the_rest_is_not() {
        let n = |s: &str| s.parse::<IpNet>().expect("prefix");
        assert_eq!(martian(&n("127.0.0.0/8")).map(|m| m.1), Some("loopback"));
        assert_eq!(martian(&n("224.0.0.0/4")).map(|m| m.1), Some("multicast"));
        assert_eq!(martian(&n("fe80::/64")).map(|m| m.1), Some("link local"));
        for ok in ["0.0.0.0/0", "10.0.0.0/8", "8.8.8.0/24", "2a00::/16"] {
            assert_eq!(martian(&n(ok)), None, "{ok}");
        }
    }
}
