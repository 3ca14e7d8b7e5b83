//! Checking a config as written ([`File`]) into what the speaker runs ([`Config`]): the
//! globals, the prefix lists, the policies rule by rule, the neighbors and what is
//! originated, each a step of its own. Every key is checked before anything starts; an
//! error names the key (`neighbor[2].export`) and what is wrong with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use cic_bgp::fsm::{GrConfig, SessionConfig};
use cic_bgp::instance::{InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::{
    Actions, AsPathRegex, CommunityPattern, Export, Filter, LargePattern, Matches, NeighborPolicy,
    PrefixList, PrefixRule, Role, Verdict,
};
use ipnet::IpNet;

use super::{Config, File, Neighbor, Rule};

impl Config {
    /// Checks the file as written, every key, in steps by what they are about.
    pub(super) fn check(f: File) -> Result<Config, String> {
        let (global_send_hold, max_prefix_action) = globals(&f)?;
        let lists = prefix_lists(&f)?;
        let policies = policies(&f, &lists)?;
        let mut seen = BTreeSet::new();
        let mut neighbors = Vec::new();
        for (i, n) in f.neighbor.iter().enumerate() {
            let key = format!("neighbor[{i}]");
            if !seen.insert(n.address) {
                return Err(format!("{key}.address: {} is configured twice", n.address));
            }
            neighbors.push(neighbor(&key, n, &f, &policies, global_send_hold)?);
        }
        let originate = originated(&f)?;
        Ok(Config {
            router_id: f.router_id,
            params: InstanceParams {
                local_asn: f.asn,
                vpc_prefixes: vec![],
                max_prefixes: u32::MAX,
                max_prefix_action,
                max_prefix_idle: Duration::from_secs(f.max_prefix_idle),
                max_prefix_warning: f.max_prefix_warning,
                announce: originate,
                accept_only: None,
                restarting: false,
                kernel: false,
                rpki_reject_invalid: false,
            },
            listen: f.listen,
            neighbors,
            rpki_caches: f
                .rpki_cache
                .iter()
                .map(|c| cic_bgp::driver::CacheSpec {
                    address: c.address,
                    preference: c.preference,
                })
                .collect(),
        })
    }
}

/// The keys that apply to the whole speaker; gives the send hold time of neighbors
/// without their own, and what an exceeded maximum of prefixes does.
fn globals(f: &File) -> Result<(Option<Duration>, MaxPrefixAction), String> {
    if f.asn == 0 {
        return Err("asn: 0 is not a valid AS number".into());
    }
    if f.router_id.is_unspecified() || f.router_id.is_multicast() {
        return Err(format!(
            "router_id: {} cannot identify a BGP speaker",
            f.router_id
        ));
    }
    if (1..3).contains(&f.hold_time) {
        return Err(format!(
            "hold_time: {} s is below the minimum of 3 s (0 turns keepalives off)",
            f.hold_time
        ));
    }
    if f.graceful_restart_secs > 4095 {
        return Err(format!(
            "graceful_restart_secs: {} s does not fit the capability's 12 bits (at most 4095)",
            f.graceful_restart_secs
        ));
    }
    if f.connect_retry == 0 {
        return Err("connect_retry: must be at least 1 s".into());
    }
    let global_send_hold = send_hold(f, "send_hold_time", f.send_hold_time)?;
    let max_prefix_action = match f.max_prefix_action.as_str() {
        "teardown" => MaxPrefixAction::Teardown,
        "discard" => MaxPrefixAction::Discard,
        "warn" => MaxPrefixAction::Warn,
        other => {
            return Err(format!(
                "max_prefix_action: {other:?} is not one of \"teardown\", \"discard\", \"warn\""
            ));
        }
    };

    if f.max_prefix_warning > 100 {
        return Err(format!(
            "max_prefix_warning: {} is more than 100 (percent of max_prefixes)",
            f.max_prefix_warning
        ));
    }
    Ok((global_send_hold, max_prefix_action))
}

/// A send hold time (`key`) beside the hold time: more than it, RFC 9687 §4, or 0 (off).
fn send_hold(f: &File, key: &str, v: Option<u64>) -> Result<Option<Duration>, String> {
    match v {
        Some(s) if s > 0 && f.hold_time > 0 && s <= u64::from(f.hold_time) => Err(format!(
            "{key}: {s} s must be more than hold_time ({} s), RFC 9687 §4 (0 turns it off)",
            f.hold_time
        )),
        v => Ok(v.map(Duration::from_secs)),
    }
}

/// The prefix lists, by name.
fn prefix_lists(f: &File) -> Result<BTreeMap<String, PrefixList>, String> {
    let mut lists: BTreeMap<String, PrefixList> = BTreeMap::new();
    for (i, l) in f.prefix_list.iter().enumerate() {
        let key = format!("prefix_list[{i}]");
        if l.name.is_empty() {
            return Err(format!("{key}.name: empty"));
        }
        if l.entry.is_empty() {
            return Err(format!(
                "{key}.entry: a prefix list needs at least one entry"
            ));
        }
        let mut entries = Vec::new();
        for (j, e) in l.entry.iter().enumerate() {
            let key = format!("{key}.entry[{j}]");
            length_range(&key, e.prefix, e.ge, e.le)?;
            entries.push((e.prefix.trunc(), e.ge, e.le));
        }
        let list = PrefixList {
            name: l.name.clone(),
            entries,
        };
        if lists.insert(l.name.clone(), list).is_some() {
            return Err(format!("{key}.name: {:?} is defined twice", l.name));
        }
    }
    Ok(lists)
}

/// The policies, by name, their rules checked and their prefix lists resolved.
fn policies(
    f: &File,
    lists: &BTreeMap<String, PrefixList>,
) -> Result<BTreeMap<String, Filter>, String> {
    let mut policies: BTreeMap<String, Filter> = BTreeMap::new();
    for (i, p) in f.policy.iter().enumerate() {
        let key = format!("policy[{i}]");
        if p.name.is_empty() || RESERVED.contains(&p.name.as_str()) {
            return Err(format!(
                "{key}.name: {:?} is reserved or empty; reserved names are {}",
                p.name,
                RESERVED.join(", ")
            ));
        }
        let rpki_configured = !f.rpki_cache.is_empty();
        let rules = (p.rule.iter().enumerate())
            .map(|(j, r)| rule(&format!("{key}.rule[{j}]"), r, lists, rpki_configured))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = Filter {
            name: p.name.clone(),
            rules,
            default: verdict(&format!("{key}.default"), &p.default)?,
        };
        if policies.insert(p.name.clone(), filter).is_some() {
            return Err(format!("{key}.name: {:?} is defined twice", p.name));
        }
    }
    Ok(policies)
}

/// One rule of a policy (`key`: where it is in the file).
fn rule(
    key: &str,
    r: &Rule,
    lists: &BTreeMap<String, PrefixList>,
    rpki_configured: bool,
) -> Result<PrefixRule, String> {
    if r.prefix.is_none()
        && r.community.is_none()
        && r.large_community.is_none()
        && r.prefix_list.is_none()
        && r.as_path_contains.is_none()
        && r.origin_as.is_none()
        && r.as_path_min_length.is_none()
        && r.as_path_max_length.is_none()
        && r.as_path_regex.is_none()
        && r.rpki.is_none()
    {
        return Err(format!(
            "{key}: give something to match: prefix, prefix_list, community, large_community, as_path_contains, origin_as, as_path_min_length, as_path_max_length, as_path_regex or rpki"
        ));
    }
    if r.prefix.is_some() && r.prefix_list.is_some() {
        return Err(format!(
            "{key}: prefix and prefix_list together; put the prefix in the list"
        ));
    }
    if let (Some(lo), Some(hi)) = (r.as_path_min_length, r.as_path_max_length)
        && lo > hi
    {
        return Err(format!(
            "{key}: as_path_min_length {lo} is greater than as_path_max_length {hi}"
        ));
    }
    if r.prepend > 10 {
        return Err(format!(
            "{key}.prepend: {} is more than 10 (a longer path than that moves no traffic further)",
            r.prepend
        ));
    }
    let wild = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains('*'));
    let rpki = match r.rpki.as_deref() {
        None => None,
        Some(v) => Some(cic_bgp::rpki::Validity::parse(v).ok_or_else(|| {
            format!(
                "{key}.rpki: {v:?} is not a validation state; use \"valid\", \"invalid\" or \"not-found\""
            )
        })?),
    };
    if rpki.is_some() && !rpki_configured {
        return Err(format!(
            "{key}.rpki: no [[rpki_cache]] is configured to validate by"
        ));
    }
    let also = Matches {
        rpki,
        as_path_contains: r.as_path_contains,
        origin_as: r.origin_as,
        as_path_min_len: r.as_path_min_length,
        as_path_max_len: r.as_path_max_length,
        as_path_regex: r
            .as_path_regex
            .as_deref()
            .map(|re| AsPathRegex::new(re).map_err(|e| format!("{key}.as_path_regex: {re:?}: {e}")))
            .transpose()?,
        community: r
            .community
            .as_deref()
            .filter(|_| wild(&r.community))
            .map(|c| community_pattern(&format!("{key}.community"), c))
            .transpose()?,
        large_community: r
            .large_community
            .as_deref()
            .filter(|_| wild(&r.large_community))
            .map(|c| large_pattern(&format!("{key}.large_community"), c))
            .transpose()?,
        prefix_list: r
            .prefix_list
            .as_deref()
            .map(|name| {
                lists.get(name).cloned().ok_or_else(|| {
                    let known: Vec<&str> = lists.keys().map(String::as_str).collect();
                    format!(
                        "{key}.prefix_list: no prefix list named {name:?}{}",
                        if known.is_empty() {
                            " (none is defined: add a [[prefix_list]])".to_string()
                        } else {
                            format!(" (prefix lists: {})", known.join(", "))
                        }
                    )
                })
            })
            .transpose()?,
    };
    if r.prefix.is_none() && (r.ge.is_some() || r.le.is_some()) {
        return Err(format!("{key}: ge and le need a prefix"));
    }
    if let Some(prefix) = r.prefix {
        length_range(key, prefix, r.ge, r.le)?;
    }
    let set = Actions {
        local_pref: r.set_local_pref,
        med: r.set_med,
        communities: each(key, "add_community", &r.add_community, community)?,
        large_communities: each(
            key,
            "add_large_community",
            &r.add_large_community,
            large_community,
        )?,
        remove_communities: each(
            key,
            "remove_community",
            &r.remove_community,
            community_pattern,
        )?,
        remove_large_communities: each(
            key,
            "remove_large_community",
            &r.remove_large_community,
            large_pattern,
        )?,
        prepend: r.prepend,
        replace_private_asns: r.replace_private_asns,
    };
    let verdict = verdict(&format!("{key}.action"), &r.action)?;
    if verdict == Verdict::Reject && !set.is_empty() {
        return Err(format!(
            "{key}: set_local_pref, set_med, add_community, add_large_community, remove_community, remove_large_community, prepend and replace_private_asns go with action = \"accept\""
        ));
    }
    Ok(PrefixRule {
        set,
        prefix: r.prefix.map(|p| p.trunc()),
        ge: r.ge,
        le: r.le,
        community: r
            .community
            .as_deref()
            .filter(|_| !wild(&r.community))
            .map(|c| community(&format!("{key}.community"), c))
            .transpose()?,
        large_community: r
            .large_community
            .as_deref()
            .filter(|_| !wild(&r.large_community))
            .map(|c| large_community(&format!("{key}.large_community"), c))
            .transpose()?,
        also,
        verdict,
    })
}

/// One neighbor (`key`: where it is in the file), its policies by name from `policies`.
fn neighbor(
    key: &str,
    n: &Neighbor,
    f: &File,
    policies: &BTreeMap<String, Filter>,
    global_send_hold: Option<Duration>,
) -> Result<cic_bgp::driver::PeerConfig, String> {
    if n.remote_asn == 0 {
        return Err(format!("{key}.remote_asn: 0 is not a valid AS number"));
    }
    if let Some(k) = &n.md5_key
        && !(1..=MD5_MAX_KEY).contains(&k.len())
    {
        return Err(format!(
            "{key}.md5_key: {} bytes; the kernel takes 1 to {}",
            k.len(),
            MD5_MAX_KEY
        ));
    }
    // Over IPv4: IPv4 unicast, and IPv6 if asked. Over IPv6: IPv6 unicast only (an
    // IPv4 route would need a NEXT_HOP the session does not give).
    let (ipv4, ipv6) = match (n.address, n.ipv6) {
        (IpAddr::V4(_), v6) => (true, v6.unwrap_or(false)),
        (IpAddr::V6(_), None | Some(true)) => (false, true),
        (IpAddr::V6(a), Some(false)) => {
            return Err(format!(
                "{key}.ipv6: false, but a session to {a} carries IPv6 unicast only"
            ));
        }
    };
    if let Some(l) = n.local_address
        && l.is_ipv4() != n.address.is_ipv4()
    {
        return Err(format!(
            "{key}.local_address: {l} is not of the family of the neighbor's {}",
            n.address
        ));
    }
    if n.prepend > 16 {
        return Err(format!(
            "{key}.prepend: {} is more than 16 (longer paths help nobody)",
            n.prepend
        ));
    }
    let role = match n.role.as_deref() {
        None if n.strict_role => {
            return Err(format!("{key}.strict_role: needs a role"));
        }
        None => None,
        Some(r) => Some(cic_bgp::fsm::RoleConfig {
            role: cic_bgp::wire::BgpRole::parse(r).ok_or_else(|| {
                format!(
                    "{key}.role: {r:?} is not one of \"provider\", \"customer\", \"peer\", \"rs\", \"rs-client\""
                )
            })?,
            strict: n.strict_role,
        }),
    };
    if role.is_some() && n.remote_asn == f.asn {
        return Err(format!(
            "{key}.role: roles are for external neighbors (AS {} is ours)",
            n.remote_asn
        ));
    }
    if n.prepend > 0 && n.remote_asn == f.asn {
        return Err(format!(
            "{key}.prepend: an internal neighbor (AS {}) is sent no AS path of ours",
            f.asn
        ));
    }
    if let Some(nh) = n.next_hop6 {
        if !ipv6 {
            return Err(format!(
                "{key}.next_hop6: set, but the session does not carry IPv6 (add ipv6 = true)"
            ));
        }
        if nh.is_unspecified() || nh.is_multicast() || nh.is_loopback() {
            return Err(format!("{key}.next_hop6: {nh} is not a usable next hop"));
        }
    }
    let named = |what: &str| -> Result<Filter, String> {
        policies.get(what).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = policies.keys().map(String::as_str).collect();
            known.sort();
            format!(
                "no policy named {what:?}{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (policies: {})", known.join(", "))
                }
            )
        })
    };
    let import = match n.import.as_str() {
        "none" | "reject-all" => None,
        "accept-all" => Some(Filter::accept_all()),
        other => {
            let f = named(other).map_err(|e| format!("{key}.import: {e}"))?;
            // Our AS on a path we receive would read as a loop.
            if let Some(i) = f
                .rules
                .iter()
                .position(|r| r.set.prepend > 0 || r.set.replace_private_asns)
            {
                return Err(format!(
                    "{key}.import: policy {other:?} rule {} prepends or replaces private ASNs, which only an export policy may",
                    i + 1
                ));
            }
            Some(f)
        }
    };
    let export = match n.export.as_str() {
        "none" => Export::Nothing,
        "originated" => Export::Originated,
        "all" => Export::All,
        other => Export::Filter(named(other).map_err(|e| format!("{key}.export: {e}"))?),
    };
    Ok(cic_bgp::driver::PeerConfig {
        spec: PeerSpec {
            name: n.address.to_string(),
            role: Role::Neighbor,
            address: n.address,
            local_address: n.local_address.unwrap_or(match n.address {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            }),
            local_address6: n.next_hop6,
            asn: n.remote_asn,
            policy: Some(Arc::new(NeighborPolicy {
                import,
                export,
                max_prefixes: n.max_prefixes,
                prepend: n.prepend,
            })),
        },
        session: SessionConfig {
            local_asn: f.asn,
            router_id: f.router_id,
            peer_asn: n.remote_asn,
            hold_time: f.hold_time,
            min_hold_time: 0,
            connect_retry: Duration::from_secs(f.connect_retry),
            passive: n.passive,
            graceful_restart: (f.graceful_restart_secs > 0).then_some(GrConfig {
                restart_time: f.graceful_restart_secs,
                restarting: false,
            }),
            ipv4,
            ipv6,
            role,
            damping: None,
        },
        md5_key: n.md5_key.clone(),
        ttl_security: n.ttl_security,
        port: n.port,
        send_hold_time: match n.send_hold_time {
            Some(_) => send_hold(f, &format!("{key}.send_hold_time"), n.send_hold_time)?,
            None => global_send_hold,
        },
    })
}

/// The prefixes originated, each once, in order.
fn originated(f: &File) -> Result<Vec<IpNet>, String> {
    let mut originate = Vec::new();
    for (i, o) in f.originate.iter().enumerate() {
        if o.prefix != o.prefix.trunc() {
            return Err(format!(
                "originate[{i}].prefix: {} has host bits set (did you mean {}?)",
                o.prefix,
                o.prefix.trunc()
            ));
        }
        originate.push(o.prefix);
    }
    originate.sort();
    originate.dedup();
    Ok(originate)
}

const RESERVED: [&str; 5] = ["none", "accept-all", "reject-all", "originated", "all"];

fn verdict(key: &str, v: &str) -> Result<Verdict, String> {
    match v {
        "accept" => Ok(Verdict::Accept),
        "reject" => Ok(Verdict::Reject),
        other => Err(format!(
            "{key}: {other:?} is not an action; use \"accept\" or \"reject\""
        )),
    }
}

/// `ge` and `le` of `prefix` are lengths it can have (its own up to its family's
/// longest), `ge` no more than `le`; `key` names them in the error.
fn length_range(key: &str, prefix: IpNet, ge: Option<u8>, le: Option<u8>) -> Result<(), String> {
    let (own, max) = (prefix.prefix_len(), prefix.max_prefix_len());
    for (what, v) in [("ge", ge), ("le", le)] {
        if let Some(v) = v
            && !(own..=max).contains(&v)
        {
            return Err(format!(
                "{key}.{what}: {v} is outside {own}..={max} (the prefix's length to {max})"
            ));
        }
    }
    if let (Some(ge), Some(le)) = (ge, le)
        && ge > le
    {
        return Err(format!("{key}: ge {ge} is greater than le {le}"));
    }
    Ok(())
}

/// "65001:*" (or an exact community) as a pattern; `key` names it in the error.
fn community_pattern(key: &str, text: &str) -> Result<CommunityPattern, String> {
    let bad =
        || format!("{key}: {text:?} is not a community \"asn:value\" (each 0–65535, or * for any)");
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let part = |p: &str| -> Result<Option<u16>, String> {
        match p {
            "*" => Ok(None),
            p => p.parse().map(Some).map_err(|_| bad()),
        }
    };
    Ok(CommunityPattern {
        asn: part(a)?,
        value: part(b)?,
    })
}

/// "65001:*:*" (or an exact large community) as a pattern; `key` names it in the error.
fn large_pattern(key: &str, text: &str) -> Result<LargePattern, String> {
    let bad = || {
        format!(
            "{key}: {text:?} is not a large community \"global:local1:local2\" (each 0–4294967295, or * for any)"
        )
    };
    let parts: Vec<Option<u32>> = text
        .split(':')
        .map(|p| match p {
            "*" => Ok(None),
            p => p.parse().map(Some).map_err(|_| bad()),
        })
        .collect::<Result<_, _>>()?;
    <[Option<u32>; 3]>::try_from(parts)
        .map(LargePattern)
        .map_err(|_| bad())
}

/// "65001:666" as the 32-bit community; `key` names it in the error.
/// Each item of list `field` of `key`, checked by `check` under its own key
/// (`key.field[i]`).
fn each<T>(
    key: &str,
    field: &str,
    items: &[String],
    check: impl Fn(&str, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| check(&format!("{key}.{field}[{i}]"), item))
        .collect()
}

fn community(key: &str, text: &str) -> Result<u32, String> {
    let bad = || format!("{key}: {text:?} is not a community \"asn:value\" (each 0–65535)");
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    Ok(u32::from(a) << 16 | u32::from(b))
}

/// "4200000002:1:2" as a large community; `key` names it in the error.
fn large_community(key: &str, text: &str) -> Result<[u32; 3], String> {
    let bad = || {
        format!(
            "{key}: {text:?} is not a large community \"global:local1:local2\" (each 0–4294967295)"
        )
    };
    let parts: Vec<u32> = text
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    <[u32; 3]>::try_from(parts).map_err(|_| bad())
}

/// The longest TCP-MD5 key Linux takes (TCP_MD5SIG_MAXKEYLEN).
const MD5_MAX_KEY: usize = 80;
