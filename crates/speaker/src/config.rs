//! The speaker's config file (TOML). Every key is checked before anything starts: an
//! error names the key (`neighbor[2].export`) and what is wrong with it.
//!
//! ```toml
//! asn = 65002
//! router_id = "10.99.0.1"
//! listen = ["10.99.0.1:179"]
//!
//! [[neighbor]]
//! address = "10.99.1.1"
//! remote_asn = 65001
//! passive = true
//! import = "accept-all"    # "none" | "accept-all" | a policy name
//! export = "none"          # "none" | "originated" | "all" | a policy name
//!
//! [[neighbor]]
//! address = "10.99.3.1"
//! remote_asn = 65003
//! ipv6 = true                # IPv6 unicast too (MP-BGP on this IPv4 session)
//! next_hop6 = "2001:db8:3::2"
//! import = "accept-all"
//! export = "originated"
//!
//! [[originate]]
//! prefix = "198.51.100.0/24"
//!
//! [[originate]]
//! prefix = "2001:db8:100::/48"
//!
//! [[policy]]
//! name = "onprem"
//! default = "reject"
//! rule = [
//!   { community = "65001:666", action = "reject" },
//!   { prefix = "10.0.0.0/8", le = 24, action = "accept" },
//! ]
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cic_bgp::instance::InstanceParams;
use ipnet::IpNet;
use serde::Deserialize;

mod check;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Where to accept connections (none: the speaker only connects out).
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Hold time we propose, seconds (0 or 3–65535).
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// Seconds between connection attempts.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    /// RFC 9687: a session whose neighbor takes none of our data for this long is closed
    /// (seconds; more than `hold_time`; 0: never). Default: the greater of 8 minutes and
    /// twice the negotiated hold time.
    #[serde(default)]
    pub send_hold_time: Option<u64>,
    /// Restart time announced in the Graceful Restart capability (0: not announced).
    #[serde(default)]
    pub graceful_restart_secs: u16,
    /// What a neighbor over its `max_prefixes` gets: "teardown", "discard" or "warn".
    #[serde(default = "default_max_prefix_action")]
    pub max_prefix_action: String,
    /// How long a torn-down neighbor is held idle, seconds.
    #[serde(default = "default_max_prefix_idle")]
    pub max_prefix_idle: u64,
    /// A warning (log, `prefixWarning` in the summary) when a neighbor's prefixes reach
    /// this share of its `max_prefixes`, percent; 0 for none.
    #[serde(default = "default_max_prefix_warning")]
    pub max_prefix_warning: u8,
    #[serde(default)]
    pub neighbor: Vec<Neighbor>,
    #[serde(default)]
    pub originate: Vec<Originate>,
    #[serde(default)]
    pub policy: Vec<Policy>,
    #[serde(default)]
    pub prefix_list: Vec<PrefixListFile>,
    #[serde(default)]
    pub rpki_cache: Vec<RpkiCacheFile>,
}

/// An RPKI cache to take validated ROA payloads from (RTR, RFC 8210).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpkiCacheFile {
    /// "127.0.0.1:3323"
    pub address: SocketAddr,
    /// Lower is preferred; the most preferred cache that is synced is used.
    #[serde(default = "default_preference")]
    pub preference: u8,
}

fn default_preference() -> u8 {
    100
}

/// A named list of prefixes that rules match with `prefix_list = "NAME"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixListFile {
    pub name: String,
    pub entry: Vec<PrefixEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixEntry {
    pub prefix: IpNet,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

fn default_hold() -> u16 {
    90
}
fn default_connect_retry() -> u64 {
    5
}
fn default_max_prefix_action() -> String {
    "teardown".into()
}
fn default_max_prefix_idle() -> u64 {
    1800
}
/// Cisco's and FRR's default threshold.
fn default_max_prefix_warning() -> u8 {
    75
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    /// IPv4 or IPv6: the session's transport.
    pub address: IpAddr,
    pub remote_asn: u32,
    /// Wait for the neighbor to connect; never connect out.
    #[serde(default)]
    pub passive: bool,
    /// "none" (the default: RFC 8212), "accept-all" or a policy name.
    #[serde(default = "none")]
    pub import: String,
    /// "none" (the default), "originated", "all" or a policy name.
    #[serde(default = "none")]
    pub export: String,
    /// TCP MD5 signature (RFC 2385), 1–80 bytes.
    pub md5_key: Option<String>,
    /// Our address toward the neighbor: connections are made from it, and it is the
    /// next hop we announce (default: whichever address the connection uses).
    pub local_address: Option<IpAddr>,
    /// The neighbor's TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Exchange IPv6 unicast routes too (RFC 4760 MP-BGP) on a session over IPv4. A session
    /// over IPv6 carries IPv6 unicast only.
    pub ipv6: Option<bool>,
    /// The IPv6 next hop we announce to the neighbor (default: the IPv4-mapped form of
    /// our IPv4 address, `::ffff:a.b.c.d`, as FRR does).
    pub next_hop6: Option<Ipv6Addr>,
    /// Prefixes accepted from it at most (see `max_prefix_action`).
    pub max_prefixes: Option<u32>,
    /// Our AS prepended this many times more on what it is sent (an external neighbor):
    /// the path through us becomes a standby. 0–16.
    #[serde(default)]
    pub prepend: u8,
    /// GTSM (RFC 5082): the neighbor is directly connected and sends with TTL 255; its
    /// packets with less are dropped, ours leave with 255.
    #[serde(default)]
    pub ttl_security: bool,
    /// Our BGP role toward the neighbor (RFC 9234): "provider", "customer", "peer", "rs"
    /// or "rs-client". Announced in the OPEN (a neighbor announcing a role that does not
    /// match is refused) and enforced with the ONLY_TO_CUSTOMER attribute (leaks refused,
    /// routes marked).
    pub role: Option<String>,
    /// With `role`: refuse a neighbor that announces no role.
    #[serde(default)]
    pub strict_role: bool,
    /// This neighbor's send hold time (see the top-level `send_hold_time`).
    #[serde(default)]
    pub send_hold_time: Option<u64>,
}

fn none() -> String {
    "none".into()
}
fn default_port() -> u16 {
    179
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Originate {
    pub prefix: IpNet,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// What a prefix no rule matches gets: "accept" or "reject" (the default).
    #[serde(default = "reject")]
    pub default: String,
    #[serde(default)]
    pub rule: Vec<Rule>,
}

fn reject() -> String {
    "reject".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The prefix (with `ge`/`le`) the route must fall in; none: any route, of either
    /// family.
    pub prefix: Option<IpNet>,
    pub ge: Option<u8>,
    pub le: Option<u8>,
    /// A standard community the route must carry, "asn:value" (RFC 1997); `*` for any
    /// part ("65001:*").
    pub community: Option<String>,
    /// A large community the route must carry, "global:local1:local2" (RFC 8092); `*`
    /// for any part.
    pub large_community: Option<String>,
    /// The prefix is in this `[[prefix_list]]`.
    pub prefix_list: Option<String>,
    /// The AS_PATH holds this ASN.
    pub as_path_contains: Option<u32>,
    /// The route originated in this AS (the last of its AS_PATH).
    pub origin_as: Option<u32>,
    /// The AS_PATH is at least / at most this long (an AS_SET counts one).
    pub as_path_min_length: Option<usize>,
    pub as_path_max_length: Option<usize>,
    /// The AS_PATH matches this regular expression in the common syntax ("^65001_",
    /// "_65002$", "^$" for our own routes).
    pub as_path_regex: Option<String>,
    /// The route's origin validation state (RFC 6811) by the `[[rpki_cache]]`s:
    /// "valid", "invalid" or "not-found". Matches nothing while no cache has synced.
    pub rpki: Option<String>,
    /// "accept" or "reject".
    pub action: String,
    /// With "accept": LOCAL_PREF set on the routes the rule accepts (import: as we keep
    /// them; export: sent to internal neighbors only).
    pub set_local_pref: Option<u32>,
    /// With "accept": MULTI_EXIT_DISC set.
    pub set_med: Option<u32>,
    /// With "accept": standard communities added, "asn:value".
    #[serde(default)]
    pub add_community: Vec<String>,
    /// With "accept": large communities added, "global:local1:local2".
    #[serde(default)]
    pub add_large_community: Vec<String>,
    /// With "accept": standard communities removed, by value or pattern ("65001:*").
    #[serde(default)]
    pub remove_community: Vec<String>,
    /// With "accept": large communities removed, by value or pattern ("65001:*:*").
    #[serde(default)]
    pub remove_large_community: Vec<String>,
    /// With "accept", export only: our AS prepended this many times more (1–10).
    #[serde(default)]
    pub prepend: u8,
    /// With "accept", export only: private ASNs (RFC 6996) in the AS_PATH replaced by ours.
    #[serde(default)]
    pub replace_private_asns: bool,
}

/// A checked config: what the speaker runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub router_id: Ipv4Addr,
    pub params: InstanceParams,
    pub listen: Vec<SocketAddr>,
    pub neighbors: Vec<cic_bgp::driver::PeerConfig>,
    /// The RPKI caches, by preference.
    pub rpki_caches: Vec<cic_bgp::driver::CacheSpec>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks the text of a config file.
    pub fn parse(text: &str) -> Result<Config, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        Config::check(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cic_bgp::policy::{Actions, CommunityPattern, Export, Filter, LargePattern, Verdict};

    const EXAMPLE: &str = r#"
asn = 65002
router_id = "10.99.0.1"
listen = ["10.99.0.1:179"]

[[neighbor]]
address = "10.99.1.1"
remote_asn = 65001
passive = true
import = "accept-all"    # or the name of a policy defined in the file
export = "none"          # "none" | "originated" | "all" | a policy name

[[neighbor]]
address = "10.99.2.1"
remote_asn = 4200000002
md5_key = "a-long-shared-secret"
import = "accept-all"
export = "originated"

[[originate]]
prefix = "198.51.100.0/24"
"#;

    #[test]
    fn the_documented_example_loads() {
        let c = Config::parse(EXAMPLE).expect("example");
        assert_eq!(c.params.local_asn, 65002);
        assert_eq!(
            c.listen,
            ["10.99.0.1:179".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(c.neighbors.len(), 2);
        let n = &c.neighbors[0];
        assert!(n.session.passive);
        let p = n.spec.policy.as_deref().expect("policy");
        assert_eq!(p.import, Some(Filter::accept_all()));
        assert_eq!(p.export, Export::Nothing);
        let n = &c.neighbors[1];
        assert_eq!(n.spec.asn, 4_200_000_002);
        assert_eq!(n.md5_key.as_deref(), Some("a-long-shared-secret"));
        assert_eq!(
            n.spec.policy.as_deref().expect("policy").export,
            Export::Originated
        );
        assert_eq!(
            c.params.announce,
            ["198.51.100.0/24".parse::<IpNet>().expect("prefix")]
        );
    }

    #[test]
    fn named_policies_are_resolved() {
        let c = Config::parse(
            r#"
asn = 65002
router_id = "10.99.0.1"
[[neighbor]]
address = "10.99.1.1"
remote_asn = 65001
import = "onprem"
export = "onprem"
[[policy]]
name = "onprem"
rule = [{ prefix = "10.0.0.0/8", le = 24, action = "accept" }]
"#,
        )
        .expect("config");
        let p = c.neighbors[0].spec.policy.as_deref().expect("policy");
        let f = p.import.as_ref().expect("import");
        assert_eq!(f.default, Verdict::Reject);
        assert!(f.permits(&"10.1.2.0/24".parse().expect("prefix"), None));
        assert!(!f.permits(&"10.1.2.0/25".parse().expect("prefix"), None));
        assert!(matches!(&p.export, Export::Filter(e) if e.name == "onprem"));
    }

    #[test]
    fn a_rule_may_match_communities_alone() {
        let c = Config::parse(
            r#"
asn = 65002
router_id = "10.99.0.1"
[[neighbor]]
address = "10.99.1.1"
remote_asn = 65001
import = "feed"
[[policy]]
name = "feed"
default = "accept"
rule = [
  { community = "65001:666", action = "reject" },
  { large_community = "4200000002:0:666", action = "reject" },
]
"#,
        )
        .expect("config");
        let p = c.neighbors[0].spec.policy.as_deref().expect("policy");
        let f = p.import.as_ref().expect("import");
        assert_eq!(f.rules[0].community, Some(65001 << 16 | 666));
        assert_eq!(f.rules[1].large_community, Some([4_200_000_002, 0, 666]));
        let any: IpNet = "192.0.2.0/24".parse().expect("prefix");
        let mut a = cic_bgp::wire::PathAttrs::default();
        assert!(f.permits(&any, Some(&a)));
        a.communities = vec![65001 << 16 | 666];
        assert_eq!(f.judge(&any, Some(&a)), (Verdict::Reject, 1));
    }

    #[test]
    fn ipv6_sessions_prefixes_and_rules() {
        let c = Config::parse(
            r#"
asn = 65002
router_id = "10.99.0.1"
[[neighbor]]
address = "10.99.1.1"
remote_asn = 65001
ipv6 = true
next_hop6 = "2001:db8:1::2"
import = "v6"
[[neighbor]]
address = "10.99.2.1"
remote_asn = 65003
[[originate]]
prefix = "2001:db8:100::/48"
[[policy]]
name = "v6"
rule = [{ prefix = "2001:db8::/32", le = 64, action = "accept" }]
"#,
        )
        .expect("config");
        let (dual, plain) = (&c.neighbors[0], &c.neighbors[1]);
        assert!(dual.session.ipv6 && !plain.session.ipv6);
        assert_eq!(
            dual.spec.local_address6,
            Some("2001:db8:1::2".parse().expect("address"))
        );
        assert_eq!(
            c.params.announce,
            ["2001:db8:100::/48".parse::<IpNet>().expect("prefix")]
        );
        let f = dual
            .spec
            .policy
            .as_deref()
            .and_then(|p| p.import.as_ref())
            .expect("import");
        let p = |s: &str| s.parse::<IpNet>().expect("prefix");
        assert!(f.permits(&p("2001:db8:7::/48"), None));
        assert!(!f.permits(&p("2001:db8:7::/96"), None), "longer than le");
        assert!(!f.permits(&p("10.0.0.0/8"), None), "another family");
    }

    #[test]
    fn every_mistake_names_its_key() {
        let base = "asn = 65002\nrouter_id = \"10.99.0.1\"\n";
        let nb = "[[neighbor]]\naddress = \"10.99.1.1\"\nremote_asn = 65001\n";
        for (text, want) in [
            (
                "router_id = \"10.99.0.1\"\n".to_string(),
                "missing field `asn`",
            ),
            (format!("{base}colour = 1\n"), "unknown field `colour`"),
            (format!("{base}asn_typo = 1\n"), "asn_typo"),
            ("asn = 0\nrouter_id = \"10.99.0.1\"\n".into(), "asn: 0"),
            ("asn = 1\nrouter_id = \"0.0.0.0\"\n".into(), "router_id"),
            ("asn = 1\nrouter_id = \"10.1\"\n".into(), "router_id"),
            (format!("{base}hold_time = 2\n"), "hold_time: 2 s"),
            (
                format!("{base}hold_time = 30\nsend_hold_time = 30\n"),
                "send_hold_time: 30 s must be more than hold_time",
            ),
            (
                format!("{base}{nb}send_hold_time = 60\n"),
                "neighbor[0].send_hold_time: 60 s must be more than hold_time",
            ),
            (
                format!("{base}graceful_restart_secs = 5000\n"),
                "graceful_restart_secs: 5000 s does not fit",
            ),
            (
                format!("{base}{nb}local_address = \"fd00::1\"\n"),
                "neighbor[0].local_address: fd00::1 is not of the family",
            ),
            (
                format!(
                    "{base}[[neighbor]]\naddress = \"fd00::2\"\nremote_asn = 65001\nipv6 = false\n"
                ),
                "neighbor[0].ipv6: false, but a session to fd00::2 carries IPv6 unicast only",
            ),
            (
                format!("{base}{nb}export = \"everything\"\n"),
                "neighbor[0].export: no policy named \"everything\"",
            ),
            (format!("{base}{nb}import = \"x\"\n"), "neighbor[0].import"),
            (
                format!("{base}{nb}{nb}"),
                "neighbor[1].address: 10.99.1.1 is configured twice",
            ),
            (format!("{base}{nb}md5_key = \"\"\n"), "neighbor[0].md5_key"),
            (format!("{base}{nb}remote_asn2 = 1\n"), "remote_asn2"),
            (
                format!("{base}[[originate]]\nprefix = \"10.0.0.1/8\"\n"),
                "originate[0].prefix: 10.0.0.1/8 has host bits set",
            ),
            (
                format!("{base}[[originate]]\nprefix = \"10.0.0.0/33\"\n"),
                "prefix",
            ),
            (
                format!("{base}[[policy]]\nname = \"all\"\n"),
                "policy[0].name",
            ),
            (
                format!("{base}[[policy]]\nname = \"p\"\ndefault = \"maybe\"\n"),
                "policy[0].default",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"10.0.0.0/8\", le = 4, action = \"accept\" }}]\n"
                ),
                "policy[0].rule[0].le: 4 is outside 8..=32",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"10.0.0.0/8\", ge = 24, le = 16, action = \"accept\" }}]\n"
                ),
                "ge 24 is greater than le 16",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"10.0.0.0/8\", action = \"permit\" }}]\n"
                ),
                "policy[0].rule[0].action",
            ),
            (
                format!("{base}[[policy]]\nname = \"p\"\nrule = [{{ action = \"reject\" }}]\n"),
                "policy[0].rule[0]: give something to match: prefix, prefix_list, community",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ community = \"65001:70000\", action = \"reject\" }}]\n"
                ),
                "policy[0].rule[0].community: \"65001:70000\" is not a community",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ large_community = \"1:2\", action = \"reject\" }}]\n"
                ),
                "policy[0].rule[0].large_community: \"1:2\" is not a large community",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ community = \"1:2\", le = 24, action = \"reject\" }}]\n"
                ),
                "policy[0].rule[0]: ge and le need a prefix",
            ),
            (
                format!("{base}[[policy]]\nname = \"p\"\n[[policy]]\nname = \"p\"\n"),
                "policy[1].name: \"p\" is defined twice",
            ),
            (
                format!("{base}{nb}prepend = 17\n"),
                "neighbor[0].prepend: 17 is more than 16",
            ),
            (
                format!(
                    "{base}[[neighbor]]\naddress = \"10.99.1.1\"\nremote_asn = 65002\nprepend = 2\n"
                ),
                "neighbor[0].prepend: an internal neighbor",
            ),
            (
                format!("{base}{nb}next_hop6 = \"2001:db8::1\"\n"),
                "neighbor[0].next_hop6: set, but the session does not carry IPv6",
            ),
            (
                format!("{base}{nb}ipv6 = true\nnext_hop6 = \"ff02::1\"\n"),
                "neighbor[0].next_hop6: ff02::1 is not a usable next hop",
            ),
            (
                format!("{base}[[originate]]\nprefix = \"2001:db8::1/32\"\n"),
                "originate[0].prefix: 2001:db8::1/32 has host bits set",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"2001:db8::/32\", le = 129, action = \"accept\" }}]\n"
                ),
                "policy[0].rule[0].le: 129 is outside 32..=128",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"10.0.0.0/8\", action = \"reject\", set_med = 5 }}]\n"
                ),
                "policy[0].rule[0]: set_local_pref, set_med, add_community, add_large_community, remove_community, remove_large_community, prepend and replace_private_asns go with action = \"accept\"",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix = \"10.0.0.0/8\", action = \"accept\", add_community = [\"1:2\", \"x\"] }}]\n"
                ),
                "policy[0].rule[0].add_community[1]: \"x\" is not a community",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ as_path_regex = \"^(65001\", action = \"accept\" }}]\n"
                ),
                "policy[0].rule[0].as_path_regex: \"^(65001\": unclosed group",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ prefix_list = \"nope\", action = \"accept\" }}]\n"
                ),
                "policy[0].rule[0].prefix_list: no prefix list named \"nope\" (none is defined",
            ),
            (
                format!(
                    "{base}[[prefix_list]]\nname = \"l\"\nentry = [{{ prefix = \"10.0.0.0/8\", ge = 4 }}]\n"
                ),
                "prefix_list[0].entry[0].ge: 4 is outside 8..=32",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ as_path_min_length = 4, as_path_max_length = 2, action = \"accept\" }}]\n"
                ),
                "policy[0].rule[0]: as_path_min_length 4 is greater than as_path_max_length 2",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ origin_as = 1, action = \"accept\", remove_community = [\"65001:x\"] }}]\n"
                ),
                "policy[0].rule[0].remove_community[0]: \"65001:x\" is not a community",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ origin_as = 1, action = \"accept\", prepend = 11 }}]\n"
                ),
                "policy[0].rule[0].prepend: 11 is more than 10",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ origin_as = 1, action = \"accept\" }}, {{ origin_as = 2, action = \"accept\", prepend = 1 }}]\n{nb}import = \"p\"\n"
                ),
                "neighbor[0].import: policy \"p\" rule 2 prepends or replaces private ASNs, which only an export policy may",
            ),
            (
                format!(
                    "{base}[[policy]]\nname = \"p\"\nrule = [{{ rpki = \"invalid\", action = \"reject\" }}]\n"
                ),
                "policy[0].rule[0].rpki: no [[rpki_cache]] is configured to validate by",
            ),
            (
                format!(
                    "{base}[[rpki_cache]]\naddress = \"127.0.0.1:3323\"\n[[policy]]\nname = \"p\"\nrule = [{{ rpki = \"bogus\", action = \"reject\" }}]\n"
                ),
                "policy[0].rule[0].rpki: \"bogus\" is not a validation state",
            ),
            (
                format!("{base}[[rpki_cache]]\naddress = \"cache.example\"\n"),
                "address = \"cache.example\"\n  |           ^^^^^^^^^^^^^^^\ninvalid socket address syntax",
            ),
            (
                format!("{base}max_prefix_action = \"shrug\"\n"),
                "max_prefix_action",
            ),
            (
                format!("{base}max_prefix_warning = 101\n"),
                "max_prefix_warning: 101 is more than 100",
            ),
        ] {
            let e = Config::parse(&text).expect_err(&text);
            assert!(e.contains(want), "{text}\n→ {e}\n(wanted {want:?})");
        }
    }

    #[test]
    fn accepting_rules_carry_their_changes() {
        let c = Config::parse(
            "asn = 65002\nrouter_id = \"10.99.0.1\"\n\
             [[policy]]\nname = \"tag\"\ndefault = \"reject\"\n\
             rule = [{ prefix = \"10.0.0.0/8\", le = 24, action = \"accept\", set_local_pref = 200, set_med = 7, add_community = [\"65002:1\"], add_large_community = [\"65002:1:2\"] }]\n\
             [[neighbor]]\naddress = \"10.99.1.1\"\nremote_asn = 65001\nimport = \"tag\"\n",
        )
        .expect("parses");
        let import = c.neighbors[0]
            .spec
            .policy
            .as_ref()
            .and_then(|p| p.import.clone())
            .expect("an import filter");
        assert_eq!(
            import.rules[0].set,
            Actions {
                local_pref: Some(200),
                med: Some(7),
                communities: vec![65002 << 16 | 1],
                large_communities: vec![[65002, 1, 2]],
                ..Default::default()
            }
        );
    }

    #[test]
    fn route_server_rules_read_every_key() {
        let c = Config::parse(
            "asn = 65002\nrouter_id = \"10.99.0.1\"\n\
             [[prefix_list]]\nname = \"customers\"\nentry = [{ prefix = \"10.0.0.0/8\", ge = 16, le = 24 }, { prefix = \"192.168.0.0/16\" }]\n\
             [[policy]]\nname = \"rs\"\nrule = [\n\
               { community = \"65535:*\", action = \"reject\" },\n\
               { large_community = \"65002:*:*\", as_path_regex = \"^65001_\", action = \"accept\", remove_large_community = [\"65002:*:*\"] },\n\
               { prefix_list = \"customers\", as_path_contains = 174, origin_as = 3356, as_path_min_length = 2, as_path_max_length = 6, action = \"accept\", remove_community = [\"174:*\", \"*:666\"], prepend = 2, replace_private_asns = true },\n\
             ]\n\
             [[neighbor]]\naddress = \"10.99.1.1\"\nremote_asn = 65001\nexport = \"rs\"\n",
        )
        .expect("config");
        let Export::Filter(f) = &c.neighbors[0].spec.policy.as_ref().expect("policy").export else {
            panic!("an export filter");
        };
        assert_eq!(
            f.rules[0].community, None,
            "a pattern is not an exact community"
        );
        assert_eq!(
            f.rules[0].also.community,
            Some(CommunityPattern {
                asn: Some(65535),
                value: None
            })
        );
        let r1 = &f.rules[1];
        assert_eq!(
            r1.also.large_community,
            Some(LargePattern([Some(65002), None, None]))
        );
        assert_eq!(
            r1.also.as_path_regex.as_ref().map(|r| r.source.as_str()),
            Some("^65001_")
        );
        let r2 = &f.rules[2];
        assert_eq!(
            r2.also.prefix_list.as_ref().map(|l| l.entries.len()),
            Some(2)
        );
        assert_eq!(
            (
                r2.also.as_path_contains,
                r2.also.origin_as,
                r2.also.as_path_min_len,
                r2.also.as_path_max_len
            ),
            (Some(174), Some(3356), Some(2), Some(6))
        );
        assert_eq!(r2.set.remove_communities.len(), 2);
        let c = Config::parse(
            "asn = 65002\nrouter_id = \"10.99.0.1\"\n\
             [[rpki_cache]]\naddress = \"127.0.0.1:3323\"\npreference = 1\n\
             [[rpki_cache]]\naddress = \"[::1]:3323\"\n\
             [[policy]]\nname = \"rov\"\nrule = [{ rpki = \"invalid\", action = \"reject\" }]\n",
        )
        .expect("config");
        assert_eq!(
            c.rpki_caches
                .iter()
                .map(|c| (c.address.to_string(), c.preference))
                .collect::<Vec<_>>(),
            vec![("127.0.0.1:3323".into(), 1), ("[::1]:3323".into(), 100)]
        );
        assert_eq!((r2.set.prepend, r2.set.replace_private_asns), (2, true));
    }
}
