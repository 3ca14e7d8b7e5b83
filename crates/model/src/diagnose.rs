//! Onboarding diagnostics: from what an edge sees of one BGP session of a private
//! connection, which step of bringing it up is missing, said for the customer with what
//! to change. Pure: the edge gathers the facts ([`SessionFacts`]), the server asks here.
//!
//! The steps in the order a first session climbs them: the port's carrier, the
//! connection's interface, the peer answering ARP (ND), TCP reaching port 179, the OPEN
//! exchange (ASN, hold time, the peer's own refusals), then prefixes announced, accepted
//! and within the limit.

use std::net::IpAddr;

use serde::Serialize;

use crate::edge::{Family, NeighborState, SessionFacts, SessionFailure};

/// What the diagnosis knows of the connection besides the edge's facts.
#[derive(Debug, Clone)]
pub struct Context {
    pub family: Family,
    /// The customer's address and ours on the peering subnet.
    pub peer_ip: IpAddr,
    pub cloud_ip: IpAddr,
    pub vlan: u16,
    /// The customer's ASN as configured on the connection, and the cloud's.
    pub peer_asn: u32,
    pub cloud_asn: u32,
    pub max_prefixes: u32,
    /// The connection's session options in force (GTSM, BGP roles).
    pub ttl_security: bool,
    pub bgp_role: crate::edge::BgpRoleMode,
}

/// The step a session is at, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Step {
    /// The edge has not built this connection (its config is not applied yet).
    NotApplied,
    /// The trunk names a port the edge does not have.
    NoPort,
    /// The trunk's port has no carrier: the cross-connect is down.
    NoCarrier,
    /// The connection's interface is not up on the edge.
    InterfaceDown,
    /// A BGP failover test holds the session down (on purpose, until its end).
    FailoverTest,
    /// The session is held idle after the customer sent more prefixes than allowed.
    MaxPrefixHold,
    /// TCP-MD5: the customer's router signs with another key, or not at all.
    Md5Mismatch,
    /// GTSM is on and the customer's segments arrive with a TTL below 255.
    GtsmDrops,
    /// The peer address does not answer ARP (IPv4) or neighbor solicitation (IPv6).
    NoNeighborReply,
    /// TCP to port 179 is refused (RST).
    TcpRefused,
    /// TCP to port 179 gets no answer.
    TcpNoAnswer,
    /// TCP reaches port 179 and the router closes it before any OPEN.
    TcpClosedByPeer,
    /// The customer's OPEN names another ASN than the connection's.
    WrongAsn,
    /// The customer's BGP role (RFC 9234) is not Customer, or it announces none where the
    /// connection requires one.
    RoleMismatch,
    /// The customer's hold time is below what the edge accepts.
    HoldTimeRefused,
    /// The customer's router refused the cloud's OPEN.
    OpenRefusedByPeer,
    /// The edge refused the customer's OPEN for another reason.
    OpenRefused,
    /// The session went down for another reason, or is still being set up.
    Connecting,
    /// Established, and the customer announces nothing.
    NoPrefixes,
    /// Established, and some of what the customer announces is refused.
    PrefixesRefused,
    /// Established, prefixes accepted: nothing to do.
    Ok,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub family: Family,
    pub step: Step,
    /// The session works: established with prefixes accepted.
    pub ok: bool,
    /// What the edge sees, in a sentence.
    pub summary: String,
    /// What to change, on the customer's router (or here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What works but will hurt later (no BFD, near the prefix limit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn arp(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ARP",
        Family::Ipv6 => "neighbor solicitation (ND)",
    }
}

/// The step `facts` show the session at.
pub fn diagnose(ctx: &Context, facts: &SessionFacts) -> Diagnosis {
    let mut d = step(ctx, facts);
    // GTSM drops what arrives with a lower TTL before TCP or BGP see it: a session that
    // gets no answer, or no OPEN, may be a router that does not send with TTL 255.
    if ctx.ttl_security
        && matches!(
            d.step,
            Step::TcpNoAnswer | Step::Connecting | Step::TcpClosedByPeer
        )
    {
        let gtsm = format!(
            "GTSM is on for this connection (ttlSecurity): the edge drops BGP segments from \
             {} that arrive with a TTL below 255; configure `neighbor {} ttl-security hops 1` \
             (BIRD: `ttl security on;`) on the customer's router, or set the connection's \
             ttlSecurity to false",
            ctx.peer_ip, ctx.cloud_ip
        );
        d.fix = Some(match d.fix.take() {
            Some(f) => format!("{f}; {gtsm}"),
            None => gtsm,
        });
    }
    if let Some(s) = facts.session.as_ref().filter(|s| s.state == "ESTABLISHED") {
        if let Some(b) = &s.bfd
            && b.state != "UP"
        {
            d.warnings.push(format!(
                "BFD is {} toward {}: the customer's router runs no BFD for this session (or \
                 blocks UDP 3784), so a silent failure of this path takes the BGP hold time \
                 to detect instead of under a second; enable BFD on the neighbor",
                b.state, ctx.peer_ip
            ));
        }
        if s.prefix_limit_warning && !s.prefix_limit_exceeded {
            d.warnings.push(format!(
                "{} prefixes received, near the limit of {}: beyond it the session is torn \
                 down and held idle",
                s.prefixes_received, ctx.max_prefixes
            ));
        }
    }
    d
}

fn step(ctx: &Context, facts: &SessionFacts) -> Diagnosis {
    let fam = ctx.family;
    let d = |step: Step, summary: String, fix: Option<String>| Diagnosis {
        family: fam,
        step,
        ok: step == Step::Ok,
        summary,
        fix,
        warnings: Vec::new(),
    };
    if let Some(port) = &facts.missing_port {
        return d(
            Step::NoPort,
            format!("the edge has no port {port}, which the trunk names"),
            Some("the operator must fix the trunk's port or the edge's cabling".into()),
        );
    }
    if let Some(p) = facts.port.as_ref().filter(|p| !p.carrier) {
        return d(
            Step::NoCarrier,
            format!(
                "no carrier on the trunk's port {}{}: the cross-connect to the customer's router is down",
                p.name,
                if p.up { "" } else { " (administratively down)" }
            ),
            Some(
                "check that the customer's port is enabled (no shutdown), the optics and the \
                 cross-connect; the edge sees the link as soon as light arrives"
                    .into(),
            ),
        );
    }
    let Some(interface) = &facts.interface else {
        return d(
            Step::NotApplied,
            "the edge has not built this connection's interface yet".into(),
            Some("wait for the edge to apply the config (see the edge's status and errors)".into()),
        );
    };
    if !interface.up || !interface.carrier {
        return d(
            Step::InterfaceDown,
            format!(
                "the connection's interface {} is down on the edge",
                interface.name
            ),
            Some("the edge reports why in its errors; the operator must look".into()),
        );
    }
    let s = facts.session.as_ref();
    if let Some(s) = s.filter(|s| s.prefix_limit_exceeded) {
        return d(
            Step::MaxPrefixHold,
            format!(
                "the customer's router sent more than {} prefixes: the session was torn down{}",
                ctx.max_prefixes,
                match s.idle_hold_remaining_secs {
                    Some(n) if n > 0 => format!(" and is held idle for {n} s more"),
                    _ => String::new(),
                }
            ),
            Some(format!(
                "announce at most {} prefixes (aggregate them), then reset the session \
                 (`:resetBgpSession`) to end the hold at once",
                ctx.max_prefixes
            )),
        );
    }
    let established = s.is_some_and(|s| s.state == "ESTABLISHED");
    if !established {
        if let Some(SessionFailure::Md5Mismatch) = s.and_then(|s| s.last_failure.as_ref()) {
            return d(
                Step::Md5Mismatch,
                format!(
                    "TCP segments from {} fail the TCP-MD5 check: the customer's router signs with \
                     another key than the connection's, or only one side has a key",
                    ctx.peer_ip
                ),
                Some(
                    "set the neighbor's password to the connection's peerBgpMd5Key exactly (or \
                     remove the key on both sides)"
                        .into(),
                ),
            );
        }
        if matches!(
            facts.neighbor,
            NeighborState::Failed | NeighborState::Incomplete
        ) {
            return d(
                Step::NoNeighborReply,
                format!(
                    "no {} reply from {} on VLAN {}: nothing on the customer's side holds that address",
                    arp(fam),
                    ctx.peer_ip,
                    ctx.vlan
                ),
                Some(format!(
                    "configure {} on the customer's subinterface of VLAN {} (check the VLAN id, \
                     the address and the prefix length)",
                    ctx.peer_ip, ctx.vlan
                )),
            );
        }
        if let Some(f) = s.and_then(|s| s.last_failure.as_ref())
            && let Some((step, summary, fix)) = failure(ctx, facts, f)
        {
            return d(step, summary, fix);
        }
        let state = s.map(|s| s.state.as_str()).unwrap_or("not running");
        return d(
            Step::Connecting,
            match s.and_then(|s| s.last_error.as_deref()) {
                Some(e) => format!("the session is {state}; it last failed: {e}"),
                None => format!("the session is {state}: no failure seen yet"),
            },
            None,
        );
    }
    let s = s.expect("established");
    if s.prefixes_received == 0 {
        return d(
            Step::NoPrefixes,
            format!(
                "the session is up and the customer's router announces no prefixes (the cloud \
                 announces {})",
                s.prefixes_advertised
            ),
            Some(
                "export the on-premises prefixes to this neighbor (an export filter or prefix \
                 list naming them)"
                    .into(),
            ),
        );
    }
    if facts.refused_total > 0 || s.prefixes_accepted < s.prefixes_received {
        let refused = facts
            .refused_total
            // Facts from an edge: counts that disagree are not a panic.
            .max(s.prefixes_received.saturating_sub(s.prefixes_accepted));
        let examples: Vec<String> = facts
            .refused
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r.prefix,
                    r.rejected.as_deref().unwrap_or("refused")
                )
            })
            .collect();
        return d(
            Step::PrefixesRefused,
            format!(
                "the session is up; {refused} of the {} prefixes the customer announces are refused{}",
                s.prefixes_received,
                if examples.is_empty() {
                    String::new()
                } else {
                    format!(": {}", examples.join("; "))
                }
            ),
            Some(
                "announce only the site's own prefixes (not the cloud's, not private-use space \
                 the cloud refuses, not too specific); the looking glass lists every refused \
                 route with why"
                    .into(),
            ),
        );
    }
    d(
        Step::Ok,
        format!(
            "the session is up: {} prefixes accepted, {} advertised to the customer",
            s.prefixes_accepted, s.prefixes_advertised
        ),
        None,
    )
}

/// The step a session's last failure shows, if it names one.
fn failure(
    ctx: &Context,
    facts: &SessionFacts,
    f: &SessionFailure,
) -> Option<(Step, String, Option<String>)> {
    let peer = ctx.peer_ip;
    let cloud = ctx.cloud_ip;
    Some(match f {
        SessionFailure::ConnectRefused => (
            Step::TcpRefused,
            format!(
                "TCP to {peer} port 179 is refused: the router answers but takes no BGP connection from {cloud}"
            ),
            Some(format!(
                "configure a BGP neighbor {cloud} (remote AS {}) on the customer's router, and \
                 let TCP port 179 from {cloud} through its ACLs",
                ctx.cloud_asn
            )),
        ),
        SessionFailure::ConnectTimedOut => (
            Step::TcpNoAnswer,
            format!(
                "TCP to {peer} port 179 gets no answer, though {peer} answers {}: a filter drops it",
                arp(ctx.family)
            ),
            Some(format!(
                "let TCP port 179 between {cloud} and {peer} through the customer's ACLs or \
                 firewall (both directions)"
            )),
        ),
        SessionFailure::ConnectFailed { error } => (
            Step::TcpNoAnswer,
            format!("TCP to {peer} port 179 fails: {error}"),
            None,
        ),
        SessionFailure::ClosedBeforeOpen => (
            Step::TcpClosedByPeer,
            format!(
                "TCP to {peer} port 179 connects and the router closes it before any OPEN: it \
                 has no BGP neighbor {cloud}, or that neighbor is shut down"
            ),
            Some(format!(
                "configure the neighbor as {cloud} (remote AS {}) with source address {peer}, \
                 and enable it",
                ctx.cloud_asn
            )),
        ),
        SessionFailure::WrongAsn { received, expected } => (
            Step::WrongAsn,
            format!(
                "the customer's router opened the session as AS {received}; the connection \
                 expects AS {expected}"
            ),
            Some(format!(
                "set the router's local AS to {expected}, or change the connection's \
                 peerBgpAsn to {received} if that is the site's AS"
            )),
        ),
        SessionFailure::HoldTimeRefused { offered, minimum } => (
            Step::HoldTimeRefused,
            format!(
                "the customer's router offers a hold time of {offered} s; the edge accepts \
                 {minimum} s or more"
            ),
            Some(format!(
                "set the neighbor's hold time to {minimum} s or more (fast failure detection \
                 is BFD's job, not the hold timer's)"
            )),
        ),
        SessionFailure::PeerRefusedOpen {
            code: 2,
            subcode: 2,
            ..
        } => (
            Step::OpenRefusedByPeer,
            format!(
                "the customer's router refused the cloud's OPEN with Bad Peer AS: it expects \
                 another AS than the cloud's {}",
                ctx.cloud_asn
            ),
            Some(format!(
                "set the neighbor {cloud}'s remote AS to {}",
                ctx.cloud_asn
            )),
        ),
        SessionFailure::PeerRefusedOpen {
            code: 2,
            subcode: 6,
            ..
        } => (
            Step::OpenRefusedByPeer,
            format!(
                "the customer's router refused the cloud's hold time of {} s or more",
                facts.min_hold_time_secs
            ),
            Some("lower the neighbor's minimum hold time".into()),
        ),
        SessionFailure::GtsmDrops => (
            Step::GtsmDrops,
            format!(
                "BGP segments from {peer} arrive with a TTL below 255, and GTSM (on for this \
                 connection) drops them"
            ),
            Some(format!(
                "configure `neighbor {cloud} ttl-security hops 1` (BIRD: `ttl security on;`) on \
                 the customer's router, so that it sends with TTL 255, or set the \
                 connection's ttlSecurity to false"
            )),
        ),
        SessionFailure::RoleMismatch { expected, received } => (
            Step::RoleMismatch,
            match received {
                Some(r) => format!(
                    "the customer's router announces the BGP role {r}; the connection expects \
                     {expected} (RFC 9234)"
                ),
                None => format!(
                    "the customer's router announces no BGP role, and the connection requires \
                     the role {expected} (bgpRole STRICT, RFC 9234)"
                ),
            },
            Some(format!(
                "set the neighbor {cloud}'s local role to {expected} (FRR: `neighbor {cloud} \
                 local-role {expected}`; BIRD: `local role {expected};`), or set the \
                 connection's bgpRole to ANNOUNCE (a router without roles is then taken) or OFF"
            )),
        ),
        SessionFailure::PeerRefusedOpen {
            code: 2,
            subcode: 11,
            ..
        } => (
            Step::OpenRefusedByPeer,
            "the customer's router refused the cloud's OPEN with Role Mismatch (RFC 9234): it \
             requires a BGP role the cloud does not announce, or expects another"
                .to_string(),
            Some(
                "set the connection's bgpRole to ANNOUNCE or STRICT (the cloud is the \
                 provider; the customer's local role is customer), or turn the router's \
                 strict mode off"
                    .into(),
            ),
        ),
        SessionFailure::PeerRefusedOpen { notification, .. } => (
            Step::OpenRefusedByPeer,
            format!("the customer's router refused the cloud's OPEN: {notification}"),
            None,
        ),
        SessionFailure::OpenRefused { notification } => (
            Step::OpenRefused,
            format!("the edge refused the customer's OPEN: {notification}"),
            None,
        ),
        SessionFailure::Md5Mismatch
        | SessionFailure::PeerNotification { .. }
        | SessionFailure::Ended { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{BfdStatus, LinkFacts, RouteEntry, SessionKind, SessionStatus};

    fn ctx() -> Context {
        Context {
            family: Family::Ipv4,
            peer_ip: "169.254.100.2".parse().unwrap(),
            cloud_ip: "169.254.100.1".parse().unwrap(),
            vlan: 100,
            peer_asn: 65001,
            cloud_asn: 200350,
            max_prefixes: 500,
            ttl_security: false,
            bgp_role: crate::edge::BgpRoleMode::Off,
        }
    }

    fn link(name: &str) -> LinkFacts {
        LinkFacts {
            name: name.into(),
            up: true,
            carrier: true,
        }
    }

    fn session(state: &str) -> SessionStatus {
        SessionStatus {
            resource_id: "pc1".into(),
            kind: SessionKind::Customer,
            family: Family::Ipv4,
            peer: "169.254.100.2".parse().unwrap(),
            peer_asn: 65001,
            state: state.into(),
            uptime_secs: 0,
            established_at: None,
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 1,
            prefix_limit_exceeded: false,
            prefix_limit_warning: false,
            idle_hold_remaining_secs: None,
            last_error: None,
            last_failure: None,
            bfd: None,
        }
    }

    /// A connection whose link and neighbor are fine, with `s` as its session.
    fn facts(s: SessionStatus) -> SessionFacts {
        SessionFacts {
            port: Some(link("xc-site1")),
            missing_port: None,
            interface: Some(link("cic-pc1")),
            neighbor: NeighborState::Resolved,
            session: Some(s),
            refused: vec![],
            refused_total: 0,
            min_hold_time_secs: 90,
        }
    }

    fn failed(f: SessionFailure) -> SessionFacts {
        let mut s = session("ACTIVE");
        s.last_failure = Some(f);
        facts(s)
    }

    fn up(received: u32, accepted: u32) -> SessionFacts {
        let mut s = session("ESTABLISHED");
        s.prefixes_received = received;
        s.prefixes_accepted = accepted;
        facts(s)
    }

    #[test]
    fn each_broken_step_is_named_with_what_to_change() {
        let c = ctx();
        let mut no_carrier = up(1, 1);
        no_carrier.port.as_mut().unwrap().carrier = false;
        let mut no_arp = failed(SessionFailure::ConnectTimedOut);
        no_arp.neighbor = NeighborState::Failed;
        let mut held = session("IDLE");
        held.prefix_limit_exceeded = true;
        held.idle_hold_remaining_secs = Some(42);
        let cases: Vec<(SessionFacts, Step, &str)> = vec![
            (
                no_carrier,
                Step::NoCarrier,
                "no carrier on the trunk's port xc-site1",
            ),
            (
                no_arp,
                Step::NoNeighborReply,
                "no ARP reply from 169.254.100.2 on VLAN 100",
            ),
            (
                failed(SessionFailure::ConnectRefused),
                Step::TcpRefused,
                "port 179 is refused",
            ),
            (
                failed(SessionFailure::ConnectTimedOut),
                Step::TcpNoAnswer,
                "gets no answer",
            ),
            (
                failed(SessionFailure::ClosedBeforeOpen),
                Step::TcpClosedByPeer,
                "closes it before any OPEN",
            ),
            (
                failed(SessionFailure::WrongAsn {
                    received: 65099,
                    expected: 65001,
                }),
                Step::WrongAsn,
                "opened the session as AS 65099; the connection expects AS 65001",
            ),
            (
                failed(SessionFailure::HoldTimeRefused {
                    offered: 30,
                    minimum: 90,
                }),
                Step::HoldTimeRefused,
                "hold time of 30 s; the edge accepts 90 s or more",
            ),
            (
                failed(SessionFailure::PeerRefusedOpen {
                    code: 2,
                    subcode: 2,
                    notification: "x".into(),
                }),
                Step::OpenRefusedByPeer,
                "another AS than the cloud's 200350",
            ),
            (
                failed(SessionFailure::Md5Mismatch),
                Step::Md5Mismatch,
                "TCP-MD5",
            ),
            (
                facts(held),
                Step::MaxPrefixHold,
                "more than 500 prefixes: the session was torn down and is held idle for 42 s more",
            ),
            (up(0, 0), Step::NoPrefixes, "announces no prefixes"),
            (
                up(3, 2),
                Step::PrefixesRefused,
                "1 of the 3 prefixes the customer announces are refused",
            ),
            (up(3, 3), Step::Ok, "3 prefixes accepted"),
        ];
        for (f, want, says) in cases {
            let d = diagnose(&c, &f);
            assert_eq!(d.step, want, "{d:?}");
            assert!(d.summary.contains(says), "{want:?}: {}", d.summary);
            assert_eq!(d.ok, want == Step::Ok);
            assert!(d.ok || d.fix.is_some() || want == Step::Connecting, "{d:?}");
        }
    }

    #[test]
    fn roles_and_gtsm_are_named_with_what_to_change() {
        let mut c = ctx();
        let d = diagnose(
            &c,
            &failed(SessionFailure::RoleMismatch {
                expected: "customer".into(),
                received: None,
            }),
        );
        assert_eq!(d.step, Step::RoleMismatch);
        assert!(d.summary.contains("announces no BGP role"), "{d:?}");
        assert!(
            d.fix
                .as_deref()
                .is_some_and(|f| f.contains("local-role customer")),
            "{d:?}"
        );
        let d = diagnose(
            &c,
            &failed(SessionFailure::PeerRefusedOpen {
                code: 2,
                subcode: 11,
                notification: "Role Mismatch".into(),
            }),
        );
        assert!(
            d.fix.as_deref().is_some_and(|f| f.contains("bgpRole")),
            "{d:?}"
        );
        // A silent peer under GTSM: the fix says TTL 255 too; without GTSM it does not.
        let silent = failed(SessionFailure::ConnectTimedOut);
        assert!(
            !diagnose(&c, &silent)
                .fix
                .unwrap_or_default()
                .contains("GTSM")
        );
        c.ttl_security = true;
        let d = diagnose(&c, &silent);
        assert_eq!(d.step, Step::TcpNoAnswer);
        assert!(
            d.fix
                .as_deref()
                .is_some_and(|f| f.contains("ttl-security hops 1") && f.contains("firewall")),
            "{d:?}"
        );
        // The edge saw the kernel drop the customer's segments for GTSM.
        let d = diagnose(&c, &failed(SessionFailure::GtsmDrops));
        assert_eq!(d.step, Step::GtsmDrops);
        assert!(d.summary.contains("TTL below 255"), "{d:?}");
        // Not where the trouble is elsewhere.
        assert!(
            !diagnose(&c, &up(3, 3))
                .fix
                .unwrap_or_default()
                .contains("GTSM")
        );
    }

    #[test]
    fn ipv6_says_neighbor_discovery_not_arp() {
        let mut c = ctx();
        c.family = Family::Ipv6;
        c.peer_ip = "fd00:a9fe:100::2".parse().unwrap();
        let mut f = failed(SessionFailure::ConnectTimedOut);
        f.neighbor = NeighborState::Incomplete;
        let d = diagnose(&c, &f);
        assert_eq!(d.step, Step::NoNeighborReply);
        assert!(
            d.summary.contains("neighbor solicitation (ND)"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn refused_routes_are_named_with_why() {
        let mut f = up(2, 1);
        f.refused_total = 1;
        f.refused = vec![RouteEntry {
            prefix: "10.128.0.0/24".parse().unwrap(),
            next_hop: None,
            as_path: vec![65001],
            origin: "IGP".into(),
            med: None,
            local_pref: None,
            communities: vec![],
            rejected: Some("overlaps the routing instance's VPC prefix 10.128.0.0/16".into()),
            rpki: None,
        }];
        let d = diagnose(&ctx(), &f);
        assert!(
            d.summary
                .contains("10.128.0.0/24 (overlaps the routing instance's VPC prefix"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn counts_that_disagree_are_said_as_sent_not_a_panic() {
        // More accepted than received (an edge's facts are input like any other).
        let mut f = up(1, 2);
        f.refused_total = 1;
        let d = diagnose(&ctx(), &f);
        assert_eq!(d.step, Step::PrefixesRefused);
        assert!(d.summary.contains("1 of the 1 prefixes"), "{}", d.summary);
    }

    #[test]
    fn a_missing_interface_comes_before_any_session_fact() {
        let mut f = failed(SessionFailure::ConnectRefused);
        f.interface = None;
        assert_eq!(diagnose(&ctx(), &f).step, Step::NotApplied);
        let mut f = failed(SessionFailure::ConnectRefused);
        f.missing_port = Some("eth9".into());
        assert_eq!(diagnose(&ctx(), &f).step, Step::NoPort);
    }

    #[test]
    fn no_failure_yet_is_connecting_and_says_the_state() {
        let d = diagnose(&ctx(), &facts(session("CONNECT")));
        assert_eq!(d.step, Step::Connecting);
        assert!(d.summary.contains("CONNECT"), "{}", d.summary);
        // A failure that names no step (our hold timer, say) is said as it was.
        let mut s = session("ACTIVE");
        s.last_error = Some("Hold Timer Expired".into());
        s.last_failure = Some(SessionFailure::Ended {
            why: "Hold Timer Expired".into(),
        });
        let d = diagnose(&ctx(), &facts(s));
        assert_eq!(d.step, Step::Connecting);
        assert!(d.summary.contains("Hold Timer Expired"), "{}", d.summary);
    }

    #[test]
    fn an_up_session_without_bfd_or_near_its_limit_warns() {
        let mut f = up(400, 400);
        let s = f.session.as_mut().unwrap();
        s.bfd = Some(BfdStatus {
            state: "DOWN".into(),
            detection_time_ms: 0,
            downs: 0,
            last_diagnostic: None,
        });
        s.prefix_limit_warning = true;
        let d = diagnose(&ctx(), &f);
        assert_eq!(d.step, Step::Ok);
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("runs no BFD"));
        assert!(d.warnings[1].contains("near the limit of 500"));
    }
}
