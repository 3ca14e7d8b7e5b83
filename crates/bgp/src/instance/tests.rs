use super::*;
use crate::policy::Export;
use crate::wire::{AsPathSegment, BgpRole, UpdateProblem, cease, error_code};
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};

use ipnet::Ipv4Net;

/// An instance whose every call is followed by the peers taking what it queued for them
/// (as the driver does when their sockets have room), so a test sees what each was sent.
struct TestInstance(Instance);

/// What a call did: its actions, and then what each peer was sent, batch by batch.
#[derive(Debug)]
struct Out {
    actions: Vec<Action>,
    sent: Vec<(PeerId, Batch)>,
}

impl Deref for Out {
    type Target = Vec<Action>;
    fn deref(&self) -> &Vec<Action> {
        &self.actions
    }
}

impl Out {
    /// This call's outcome, then `more`'s.
    fn extend(&mut self, more: Out) {
        self.actions.extend(more.actions);
        self.sent.extend(more.sent);
    }
}

impl PartialEq<Vec<Action>> for Out {
    fn eq(&self, other: &Vec<Action>) -> bool {
        self.actions == *other && self.sent.is_empty()
    }
}

impl Deref for TestInstance {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.0
    }
}

impl DerefMut for TestInstance {
    fn deref_mut(&mut self) -> &mut Instance {
        &mut self.0
    }
}

impl TestInstance {
    fn new(p: InstanceParams) -> Self {
        TestInstance(Instance::new(p))
    }

    /// Every peer takes everything it has to be sent.
    fn drained(&mut self, actions: Vec<Action>) -> Out {
        let mut sent = Vec::new();
        let peers: Vec<PeerId> = self.0.peers.keys().copied().collect();
        for p in peers {
            while self.0.has_output(p) {
                if let Some(b) = self.0.take(p, usize::MAX) {
                    sent.push((p, b));
                }
            }
        }
        Out {
            actions: actions
                .into_iter()
                .filter(|a| !matches!(a, Action::Output { .. }))
                .collect(),
            sent,
        }
    }

    fn handle(&mut self, ev: Event) -> Out {
        let a = self.0.handle(ev);
        self.drained(a)
    }
    fn set_vpc_prefixes(&mut self, p: Vec<IpNet>) -> Out {
        let a = self.0.set_vpc_prefixes(p);
        self.drained(a)
    }
    fn set_static_routes(&mut self, peer: PeerId, p: &[IpNet]) -> Out {
        let a = self.0.set_static_routes(peer, p);
        self.drained(a)
    }
    fn set_graceful_shutdown(&mut self, on: bool) -> Out {
        let a = self.0.set_graceful_shutdown(on);
        self.drained(a)
    }
    fn set_policy(&mut self, peer: PeerId, p: Option<Arc<NeighborPolicy>>) -> Out {
        let a = self.0.set_policy(peer, p);
        self.drained(a)
    }
    fn end_restart(&mut self) -> Out {
        let a = self.0.end_restart();
        self.drained(a)
    }
    fn remove_peer(&mut self, peer: PeerId) -> Out {
        let a = self.0.remove_peer(peer);
        self.drained(a)
    }
}

const CLOUD: u32 = 200_350;

fn n(s: &str) -> IpNet {
    s.parse().expect("prefix")
}
fn a(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn params(max: u32, action: MaxPrefixAction) -> InstanceParams {
    InstanceParams {
        local_asn: CLOUD,
        vpc_prefixes: vec![n("10.128.0.0/24"), n("10.129.0.0/24")],
        max_prefixes: max,
        max_prefix_action: action,
        max_prefix_idle: Duration::from_secs(1800),
        max_prefix_warning: 0,
        announce: vec![],
        accept_only: None,
        restarting: false,
        kernel: true,
        rpki_reject_invalid: false,
    }
}

fn negotiated(asn: u32, id: &str) -> Negotiated {
    Negotiated {
        peer_asn: asn,
        peer_id: a(id),
        hold_time: 90,
        keepalive: 30,
        route_refresh: true,
        enhanced_route_refresh: false,
        extended_message: false,
        local_role: None,
        ibgp: asn == CLOUD,
        graceful_restart: None,
        ipv4: true,
        ipv6: false,
    }
}

/// An instance with two customer connections (A, B) and the fabric, all up.
struct Lab {
    i: TestInstance,
    a: PeerId,
    b: PeerId,
    fabric: PeerId,
}

fn customer_a() -> PeerSpec {
    PeerSpec {
        name: "pc-a".into(),
        role: Role::Customer,
        address: a("169.254.1.2").into(),
        local_address: a("169.254.1.1").into(),
        local_address6: None,
        asn: 65001,
        policy: None,
    }
}

fn fabric() -> PeerSpec {
    PeerSpec {
        name: "ri".into(),
        role: Role::Fabric,
        address: a("100.127.0.1").into(),
        local_address: a("100.127.0.0").into(),
        local_address6: None,
        asn: CLOUD,
        policy: None,
    }
}

fn lab(max: u32, action: MaxPrefixAction) -> Lab {
    let mut i = TestInstance::new(params(max, action));
    let a_ = i.add_peer(customer_a());
    let b_ = i.add_peer(PeerSpec {
        name: "pc-b".into(),
        role: Role::Customer,
        address: a("169.254.2.2").into(),
        local_address: a("169.254.2.1").into(),
        local_address6: None,
        asn: 65001,
        policy: None,
    });
    let f = i.add_peer(fabric());
    i.handle(Event::PeerUp {
        peer: a_,
        negotiated: negotiated(65001, "192.168.0.1"),
    });
    i.handle(Event::PeerUp {
        peer: b_,
        negotiated: negotiated(65001, "192.168.0.2"),
    });
    i.handle(Event::PeerUp {
        peer: f,
        negotiated: negotiated(CLOUD, "100.127.255.1"),
    });
    Lab {
        i,
        a: a_,
        b: b_,
        fabric: f,
    }
}

fn announce(path: &[u32], nh: &str, prefixes: &[&str]) -> Update {
    Update {
        attrs: Some(PathAttrs {
            as_path: if path.is_empty() {
                vec![]
            } else {
                vec![AsPathSegment::Sequence(path.to_vec())]
            },
            next_hop: Some(a(nh)),
            ..Default::default()
        }),
        nlri: prefixes.iter().map(|p| n(p)).collect(),
        ..Default::default()
    }
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| n(p)).collect(),
        ..Default::default()
    }
}

/// Prefixes announced and withdrawn to `peer` after this call.
fn sent_to(out: &Out, peer: PeerId) -> (Vec<IpNet>, Vec<IpNet>) {
    let (mut ann, mut wd) = (vec![], vec![]);
    for (p, b) in &out.sent {
        if *p == peer {
            wd.extend(b.withdrawn.iter().copied());
            for (_, v) in &b.announce {
                ann.extend(v.iter().copied());
            }
        }
    }
    (ann, wd)
}

/// The batches `peer` was sent after this call.
fn batches(out: &Out, peer: PeerId) -> Vec<&Batch> {
    out.sent
        .iter()
        .filter(|(p, _)| *p == peer)
        .map(|(_, b)| b)
        .collect()
}

fn attrs_sent(out: &Out, peer: PeerId, prefix: &str) -> Option<Arc<PathAttrs>> {
    out.sent.iter().find_map(|(p, b)| {
        (*p == peer)
            .then(|| {
                b.announce
                    .iter()
                    .find(|(_, v)| v.contains(&n(prefix)))
                    .map(|(a, _)| a.clone())
            })
            .flatten()
    })
}

fn routes(actions: &[Action]) -> Vec<RouteChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Route(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn peer_up_gets_end_of_rib_even_with_nothing_to_send() {
    let mut i = TestInstance::new(params(500, MaxPrefixAction::Teardown));
    let p = i.add_peer(PeerSpec {
        name: "x".into(),
        role: Role::Customer,
        address: a("169.254.1.2").into(),
        local_address: a("169.254.1.1").into(),
        local_address6: None,
        asn: 65001,
        policy: None,
    });
    let out = i.handle(Event::PeerUp {
        peer: p,
        negotiated: negotiated(65001, "1.1.1.1"),
    });
    assert_eq!(out.actions, vec![]);
    assert_eq!(
        out.sent,
        vec![(
            p,
            Batch {
                end_of_rib: vec![Afi::Ipv4],
                ..Batch::default()
            }
        )]
    );
}

#[test]
fn customer_route_goes_to_the_kernel_and_to_the_fabric_with_next_hop_self() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.10.0/24"),
            nexthops: vec![a("169.254.1.2").into()]
        }]
    );
    let f = attrs_sent(&out, l.fabric, "192.168.10.0/24").expect("exported to fabric");
    assert_eq!(
        f.next_hop,
        Some(a("100.127.0.0")),
        "next hop self on the fabric segment"
    );
    assert_eq!(
        f.local_pref,
        Some(100),
        "iBGP to the fabric carries LOCAL_PREF"
    );
    assert_eq!(
        f.path_asns().collect::<Vec<_>>(),
        vec![65001],
        "iBGP: no prepend"
    );
}

#[test]
fn no_transit_between_private_connections() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert_eq!(
        sent_to(&out, l.b),
        (vec![], vec![]),
        "customer B never hears customer A's routes"
    );
    assert_eq!(sent_to(&out, l.a), (vec![], vec![]));
    assert!(l.i.advertised(l.b).is_empty());
}

#[test]
fn vpc_prefix_is_announced_only_while_the_fabric_covers_it() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    assert!(
        l.i.advertised(l.a).is_empty(),
        "nothing from the fabric yet: nothing announced"
    );
    let out = l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.128.0.0/24"]),
    });
    for c in [l.a, l.b] {
        assert_eq!(sent_to(&out, c).0, vec![n("10.128.0.0/24")]);
    }
    let attrs = attrs_sent(&out, l.a, "10.128.0.0/24").expect("sent");
    assert_eq!(attrs.path_asns().collect::<Vec<_>>(), vec![CLOUD]);
    assert_eq!(
        attrs.next_hop,
        Some(a("169.254.1.1")),
        "next hop is the connection's cloudIp"
    );
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("10.128.0.0/24"),
            nexthops: vec![a("100.127.0.1").into()]
        }]
    );
    assert_eq!(
        sent_to(&out, l.fabric),
        (vec![], vec![]),
        "fabric routes are not reflected back"
    );

    // The fabric goes away: the VPC prefix is withdrawn from customers, the route removed.
    let out = l.i.handle(Event::PeerDown {
        peer: l.fabric,
        graceful: false,
    });
    assert_eq!(sent_to(&out, l.a).1, vec![n("10.128.0.0/24")]);
    assert_eq!(
        routes(&out),
        vec![RouteChange::Remove {
            prefix: n("10.128.0.0/24")
        }]
    );
}

#[test]
fn a_more_specific_inside_a_vpc_prefix_covers_the_aggregate() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.129.0.128/25"]),
    });
    assert_eq!(
        sent_to(&out, l.a).0,
        vec![n("10.129.0.0/24")],
        "the aggregate is announced, not the /25"
    );
    let out = l.i.handle(Event::Update {
        peer: l.fabric,
        update: withdraw(&["10.129.0.128/25"]),
    });
    assert_eq!(sent_to(&out, l.a).1, vec![n("10.129.0.0/24")]);
}

#[test]
fn fabric_routes_outside_the_vpc_are_neither_installed_nor_announced() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["0.0.0.0/0", "10.200.0.0/16"]),
    });
    assert!(routes(&out).is_empty());
    assert_eq!(l.i.peer_stats(l.fabric).received, 2);
    assert_eq!(l.i.peer_stats(l.fabric).accepted, 0);
}

#[test]
fn equal_routes_over_two_connections_are_ecmp_in_the_kernel() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    let out = l.i.handle(Event::Update {
        peer: l.b,
        update: announce(&[65001], "169.254.2.2", &["192.168.10.0/24"]),
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.10.0/24"),
            nexthops: vec![a("169.254.1.2").into(), a("169.254.2.2").into()]
        }]
    );
    // One path goes down: the other carries on alone.
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.10.0/24"),
            nexthops: vec![a("169.254.2.2").into()]
        }]
    );
}

#[test]
fn local_preference_communities_select_active_and_standby_and_reach_the_fabric() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let tagged = |tag: u32, nh: &str| {
        let mut u = announce(&[65001], nh, &["192.168.10.0/24"]);
        if let Some(a) = u.attrs.as_mut() {
            // The cloud's ASN has 4 octets: the large community <cloud>:0:<tag>.
            a.large_communities = vec![[CLOUD, 0, tag]];
        }
        u
    };
    l.i.handle(Event::Update {
        peer: l.a,
        update: tagged(7300, "169.254.1.2"),
    });
    let out = l.i.handle(Event::Update {
        peer: l.b,
        update: announce(&[65001], "169.254.2.2", &["192.168.10.0/24"]),
    });
    // A (high) is preferred to B (untagged, medium): no ECMP, B stands by.
    assert_eq!(routes(&out), vec![]);
    assert_eq!(
        l.i.kernel_routes().get(&n("192.168.10.0/24")),
        Some(&vec![a("169.254.1.2").into()])
    );
    let to_fabric = l.i.routes(l.fabric, RouteSet::Advertised);
    assert_eq!(
        to_fabric[0].1.local_pref,
        Some(150),
        "the fabric is told too"
    );
    // A now asks for low: B takes over.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: tagged(7100, "169.254.1.2"),
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.10.0/24"),
            nexthops: vec![a("169.254.2.2").into()]
        }]
    );
    assert_eq!(
        attrs_sent(&out, l.fabric, "192.168.10.0/24").and_then(|a| a.local_pref),
        Some(100)
    );
    // Another ASN's tag is nobody's business here.
    let mut other = tagged(7300, "169.254.1.2");
    if let Some(a) = other.attrs.as_mut() {
        a.large_communities = vec![[7224, 0, 7300]];
    }
    l.i.handle(Event::Update {
        peer: l.a,
        update: other,
    });
    assert_eq!(
        l.i.kernel_routes().get(&n("192.168.10.0/24")).map(Vec::len),
        Some(2),
        "both medium again: ECMP"
    );
}

#[test]
fn a_two_octet_cloud_asn_takes_standard_communities_and_the_lowest_tag_wins() {
    let a = PathAttrs {
        communities: vec![64512 << 16 | 7300, 64512 << 16 | 7100],
        ..Default::default()
    };
    assert_eq!(policy::requested_local_pref(64512, &a), Some(50));
    assert_eq!(policy::requested_local_pref(64513, &a), None);
    let b = PathAttrs {
        large_communities: vec![[64512, 0, 7300]],
        ..Default::default()
    };
    assert_eq!(policy::requested_local_pref(64512, &b), Some(150));
}

#[test]
fn prepending_selects_active_and_standby() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    let out = l.i.handle(Event::Update {
        peer: l.b,
        update: announce(&[65001, 65001, 65001], "169.254.2.2", &["192.168.10.0/24"]),
    });
    assert!(routes(&out).is_empty(), "the standby path changes nothing");
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: withdraw(&["192.168.10.0/24"]),
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.10.0/24"),
            nexthops: vec![a("169.254.2.2").into()]
        }]
    );
    let f = attrs_sent(&out, l.fabric, "192.168.10.0/24").expect("fabric learns the standby path");
    assert_eq!(f.as_path_len(), 3);
}

#[test]
fn rejected_routes_are_kept_counted_and_explained_but_not_used() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001, 64500],
            "169.254.1.2",
            &["192.168.10.0/24", "10.128.0.0/25"],
        ),
    });
    assert!(routes(&out).is_empty());
    let s = l.i.peer_stats(l.a);
    assert_eq!((s.received, s.accepted), (2, 0));
    let rej = l.i.rejected(l.a);
    assert!(
        rej.iter()
            .any(|(p, why)| *p == n("192.168.10.0/24") && why.contains("64500")),
        "{rej:?}"
    );

    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["10.128.0.0/25"]),
    });
    assert!(
        routes(&out).is_empty(),
        "a VPC more-specific from a customer is a hijack"
    );
    assert!(l.i.rejected(l.a).iter().any(|(_, why)| why.contains("VPC")));
}

#[test]
fn max_prefix_teardown_asks_for_cease_and_a_long_idle() {
    let mut l = lab(3, MaxPrefixAction::Teardown);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"],
        ),
    });
    assert!(
        !out.iter().any(|a| matches!(a, Action::TearDown { .. })),
        "at the limit is fine"
    );
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.4.0/24"]),
    });
    let td = out.iter().find_map(|a| match a {
        Action::TearDown {
            peer,
            notification,
            restart_after,
        } => Some((*peer, notification.clone(), *restart_after)),
        _ => None,
    });
    let (peer, n, after) = td.expect("teardown");
    assert_eq!(peer, l.a);
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(
        n.data,
        vec![0, 1, 1, 0, 0, 0, 3],
        "AFI 1, SAFI 1, limit 3 (RFC 4486)"
    );
    assert_eq!(after, Duration::from_secs(1800));
}

#[test]
fn max_prefix_discard_keeps_the_session_and_ignores_the_excess() {
    let mut l = lab(2, MaxPrefixAction::Discard);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"],
        ),
    });
    assert!(!out.iter().any(|a| matches!(a, Action::TearDown { .. })));
    assert_eq!(routes(&out).len(), 2);
    let s = l.i.peer_stats(l.a);
    assert_eq!((s.received, s.discarded, s.over_limit), (2, 1, true));
}

#[test]
fn max_prefix_warn_keeps_everything_and_flags_it() {
    let mut l = lab(2, MaxPrefixAction::Warn);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"],
        ),
    });
    assert_eq!(routes(&out).len(), 3);
    assert!(l.i.peer_stats(l.a).over_limit);
}

#[test]
fn peer_down_removes_its_routes_from_kernel_and_fabric() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    assert_eq!(
        routes(&out),
        vec![RouteChange::Remove {
            prefix: n("192.168.10.0/24")
        }]
    );
    assert_eq!(sent_to(&out, l.fabric).1, vec![n("192.168.10.0/24")]);
    assert!(l.i.kernel_routes().is_empty());
}

#[test]
fn updates_from_a_peer_that_is_not_up_are_ignored() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert!(out.is_empty());
}

#[test]
fn new_vpc_prefixes_rejudge_routes_already_received() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.140.0.0/24"]),
    });
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["10.150.0.0/24"]),
    });
    assert!(l.i.kernel_routes().contains_key(&n("10.150.0.0/24")));
    // 10.140.0.0/24 becomes a VPC prefix and 10.150.0.0/16 too (so the customer route
    // inside it is now a hijack).
    let out =
        l.i.set_vpc_prefixes(vec![n("10.140.0.0/24"), n("10.150.0.0/16")]);
    let r = routes(&out);
    assert!(r.contains(&RouteChange::Replace {
        prefix: n("10.140.0.0/24"),
        nexthops: vec![a("100.127.0.1").into()]
    }));
    assert!(r.contains(&RouteChange::Remove {
        prefix: n("10.150.0.0/24")
    }));
    assert!(sent_to(&out, l.a).0.contains(&n("10.140.0.0/24")));
    assert!(!l.i.advertised(l.a).contains(&n("10.128.0.0/24")));
}

#[test]
fn route_refresh_resends_what_was_advertised() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.128.0.0/24"]),
    });
    let out = l.i.handle(Event::RouteRefresh {
        peer: l.a,
        afi: Afi::Ipv4,
        subtype: refresh::REQUEST,
    });
    assert_eq!(sent_to(&out, l.a).0, vec![n("10.128.0.0/24")]);
    // Without RFC 7313 negotiated: no markers, an End-of-RIB after.
    let b = batches(&out, l.a);
    assert_eq!(b.len(), 1, "{out:?}");
    assert_eq!(b[0].end_of_rib, vec![Afi::Ipv4]);
    assert_eq!((&b[0].begin_refresh, &b[0].end_refresh), (&vec![], &vec![]));
}

/// A peer with enhanced route refresh asks for IPv4 again: what it was sent of IPv4
/// alone, between BoRR and EoRR, and no End-of-RIB.
#[test]
fn enhanced_route_refresh_answers_one_family_between_markers() {
    let mut i = speaker(&["198.51.100.0/24", "2001:db8:100::/48"]);
    let peer = i.add_peer(neighbor("10.99.2.1", 65001, None, Export::Originated));
    i.handle(Event::PeerUp {
        peer,
        negotiated: Negotiated {
            enhanced_route_refresh: true,
            ipv6: true,
            ..negotiated(65001, "10.99.2.1")
        },
    });
    let out = i.handle(Event::RouteRefresh {
        peer,
        afi: Afi::Ipv4,
        subtype: refresh::REQUEST,
    });
    assert_eq!(sent_to(&out, peer).0, vec![n("198.51.100.0/24")]);
    let b = batches(&out, peer);
    assert_eq!(b.len(), 1, "{out:?}");
    assert_eq!(b[0].end_of_rib, vec![]);
    assert_eq!(
        (&b[0].begin_refresh, &b[0].end_refresh),
        (&vec![Afi::Ipv4], &vec![Afi::Ipv4])
    );
}

/// BoRR: the peer's routes of that family are stale but still used; those it sends
/// again stay, the EoRR takes the rest out; the other family is not touched.
#[test]
fn routes_not_sent_again_between_borr_and_eorr_are_withdrawn() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    i.handle(Event::PeerUp {
        peer: feed,
        negotiated: Negotiated {
            enhanced_route_refresh: true,
            ipv6: true,
            ..negotiated(65001, "10.99.1.1")
        },
    });
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/16", "10.2.0.0/16"]),
    });
    i.handle(Event::Update {
        peer: feed,
        update: announce6(&[65001], "2001:db8:99::1", &["2001:db8:1::/48"]),
    });
    assert_eq!(i.rib_len(), 3);
    let out = i.handle(Event::RouteRefresh {
        peer: feed,
        afi: Afi::Ipv4,
        subtype: refresh::BEGIN,
    });
    assert!(matches!(&out[..], [Action::StaleTimer { after, .. }] if *after == STALE_PATH_TIME));
    assert_eq!(i.rib_len(), 3, "stale routes are still used");
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001, 65009], "10.99.1.1", &["10.1.0.0/16"]),
    });
    let out = i.handle(Event::RouteRefresh {
        peer: feed,
        afi: Afi::Ipv4,
        subtype: refresh::END,
    });
    let best: Vec<IpNet> = i.best_routes().map(|(n, _)| n).collect();
    assert_eq!(best, vec![n("10.1.0.0/16"), n("2001:db8:1::/48")]);
    assert!(
        out.iter().any(|a| matches!(a, Action::Route(RouteChange::Remove { prefix }) if *prefix == n("10.2.0.0/16"))),
        "{out:?}"
    );
    // The route sent again carries its new path.
    let path = i
        .best_routes()
        .find(|(p, _)| *p == n("10.1.0.0/16"))
        .map(|(_, p)| p.clone());
    assert_eq!(path.map(|p| p.attrs.as_path_len()), Some(2));
}

#[test]
fn ebgp_fabric_gets_our_asn_prepended_and_no_local_pref() {
    let mut i = TestInstance::new(params(500, MaxPrefixAction::Teardown));
    let c = i.add_peer(PeerSpec {
        name: "c".into(),
        role: Role::Customer,
        address: a("169.254.1.2").into(),
        local_address: a("169.254.1.1").into(),
        local_address6: None,
        asn: 65001,
        policy: None,
    });
    let f = i.add_peer(PeerSpec {
        name: "f".into(),
        role: Role::Fabric,
        address: a("100.127.0.1").into(),
        local_address: a("100.127.0.0").into(),
        local_address6: None,
        asn: 4_200_000_001,
        policy: None,
    });
    i.handle(Event::PeerUp {
        peer: c,
        negotiated: negotiated(65001, "1.1.1.1"),
    });
    i.handle(Event::PeerUp {
        peer: f,
        negotiated: negotiated(4_200_000_001, "2.2.2.2"),
    });
    let mut u = announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]);
    if let Some(at) = u.attrs.as_mut() {
        at.med = Some(7);
    }
    let out = i.handle(Event::Update { peer: c, update: u });
    let fa = attrs_sent(&out, f, "192.168.10.0/24").expect("exported");
    assert_eq!(fa.path_asns().collect::<Vec<_>>(), vec![CLOUD, 65001]);
    assert_eq!((fa.local_pref, fa.med), (None, None));
}

#[test]
fn static_routes_go_to_the_kernel_and_the_fabric_without_a_session_and_leave_cleanly() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    // The session of A goes down: static routes do not depend on it.
    l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    let out =
        l.i.set_static_routes(l.a, &[n("192.168.20.0/24"), n("10.128.0.0/25")]);
    assert_eq!(
        routes(&out),
        vec![RouteChange::Replace {
            prefix: n("192.168.20.0/24"),
            nexthops: vec![a("169.254.1.2").into()]
        }],
        "via the connection's peer address; the VPC-overlapping one is refused"
    );
    let f = attrs_sent(&out, l.fabric, "192.168.20.0/24").expect("exported to the fabric");
    assert_eq!(f.next_hop, Some(a("100.127.0.0")));
    assert_eq!(f.origin, Origin::Incomplete);
    assert_eq!(sent_to(&out, l.b), (vec![], vec![]), "no transit to B");
    assert_eq!(
        l.i.rejected_statics(l.a),
        vec![(
            n("10.128.0.0/25"),
            "overlaps VPC prefix 10.128.0.0/24".into()
        )]
    );

    // A BGP route of the same prefix from A does not replace the static one.
    l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: negotiated(65001, "192.168.0.1"),
    });
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.20.0/24"]),
    });
    assert_eq!(routes(&out), vec![], "already routed the same way");
    assert_eq!(sent_to(&out, l.fabric), (vec![], vec![]), "static wins");

    // Unchanged statics change nothing; dropping them falls back to the BGP route.
    let out =
        l.i.set_static_routes(l.a, &[n("192.168.20.0/24"), n("10.128.0.0/25")]);
    assert_eq!(out, vec![]);
    let out = l.i.set_static_routes(l.a, &[]);
    let f = attrs_sent(&out, l.fabric, "192.168.20.0/24").expect("BGP path now");
    assert_eq!(f.origin, Origin::Igp);
    assert!(l.i.rejected_statics(l.a).is_empty());

    // Removing the connection removes its statics.
    l.i.set_static_routes(l.b, &[n("192.168.30.0/24")]);
    let out = l.i.remove_peer(l.b);
    assert_eq!(
        routes(&out),
        vec![RouteChange::Remove {
            prefix: n("192.168.30.0/24")
        }]
    );
    assert_eq!(
        sent_to(&out, l.fabric),
        (vec![], vec![n("192.168.30.0/24")])
    );
}

#[test]
fn new_vpc_prefixes_judge_static_routes_again() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.set_static_routes(l.a, &[n("10.200.0.0/24")]);
    assert!(l.i.kernel_routes().contains_key(&n("10.200.0.0/24")));
    let out = l.i.set_vpc_prefixes(vec![n("10.200.0.0/16")]);
    assert!(routes(&out).contains(&RouteChange::Remove {
        prefix: n("10.200.0.0/24")
    }));
    assert_eq!(l.i.rejected_statics(l.a).len(), 1);
}

#[test]
fn static_routes_of_the_fabric_or_an_unknown_peer_are_ignored() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    assert_eq!(
        l.i.set_static_routes(l.fabric, &[n("192.168.1.0/24")]),
        vec![]
    );
    assert_eq!(l.i.set_static_routes(999, &[n("192.168.1.0/24")]), vec![]);
    assert!(l.i.kernel_routes().is_empty());
}

#[test]
fn a_public_instance_announces_its_services_always_and_accepts_only_registered_prefixes() {
    let mut p = params(500, MaxPrefixAction::Teardown);
    p.vpc_prefixes = vec![];
    p.announce = vec![n("213.180.193.243/32"), n("84.201.181.26/32")];
    p.accept_only = Some(vec![n("198.18.0.0/24"), n("5.45.192.0/22")]);
    let mut i = TestInstance::new(p);
    let c = i.add_peer(PeerSpec {
        name: "pub".into(),
        role: Role::Customer,
        address: a("5.45.200.2").into(),
        local_address: a("5.45.200.1").into(),
        local_address6: None,
        asn: 65001,
        policy: None,
    });
    let out = i.handle(Event::PeerUp {
        peer: c,
        negotiated: negotiated(65001, "5.45.200.2"),
    });
    let (mut ann, _) = sent_to(&out, c);
    ann.sort();
    assert_eq!(
        ann,
        vec![n("84.201.181.26/32"), n("213.180.193.243/32")],
        "no fabric needed for the services"
    );
    let out = i.handle(Event::Update {
        peer: c,
        update: announce(
            &[65001],
            "5.45.200.2",
            &["5.45.196.0/24", "5.45.194.0/24", "5.45.192.0/22"],
        ),
    });
    assert_eq!(
        routes(&out),
        vec![
            RouteChange::Replace {
                prefix: n("5.45.192.0/22"),
                nexthops: vec![a("5.45.200.2").into()]
            },
            RouteChange::Replace {
                prefix: n("5.45.194.0/24"),
                nexthops: vec![a("5.45.200.2").into()]
            },
        ],
        "inside the registered /22, and nothing else"
    );
    assert_eq!(
        i.rejected(c),
        vec![(
            n("5.45.196.0/24"),
            "not among the prefixes registered for this connection".into()
        )]
    );
}

#[test]
fn the_looking_glass_shows_received_routes_with_reasons_accepted_and_advertised() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.128.0.0/24"]),
    });
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.10.0/24", "10.128.0.0/25"],
        ),
    });
    let received = l.i.routes(l.a, RouteSet::Received);
    let reasons: Vec<(IpNet, Option<String>)> =
        received.iter().map(|(n, _, r)| (*n, r.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (
                n("10.128.0.0/25"),
                Some("overlaps VPC prefix 10.128.0.0/24".into())
            ),
            (n("192.168.10.0/24"), None),
        ]
    );
    let accepted: Vec<IpNet> =
        l.i.routes(l.a, RouteSet::Accepted)
            .iter()
            .map(|r| r.0)
            .collect();
    assert_eq!(accepted, vec![n("192.168.10.0/24")]);
    let advertised = l.i.routes(l.a, RouteSet::Advertised);
    assert_eq!(advertised.len(), 1);
    assert_eq!(advertised[0].0, n("10.128.0.0/24"));
    assert_eq!(advertised[0].1.next_hop, Some(a("169.254.1.1")));
    assert!(l.i.routes(999, RouteSet::Received).is_empty());
}

#[test]
fn a_drain_sends_every_route_again_with_graceful_shutdown_and_undrain_without() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    l.i.handle(Event::Update {
        peer: l.fabric,
        update: announce(&[], "100.127.0.1", &["10.128.0.0/24"]),
    });
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    let out = l.i.set_graceful_shutdown(true);
    let to_a = attrs_sent(&out, l.a, "10.128.0.0/24").expect("VPC prefix again to A");
    assert!(to_a.communities.contains(&GRACEFUL_SHUTDOWN));
    assert!(attrs_sent(&out, l.b, "10.128.0.0/24").is_some(), "and to B");
    let to_fabric = attrs_sent(&out, l.fabric, "192.168.10.0/24").expect("customer route again");
    assert!(to_fabric.communities.contains(&GRACEFUL_SHUTDOWN));
    assert_eq!(
        to_fabric.local_pref,
        Some(0),
        "iBGP fabric: LOCAL_PREF 0 (RFC 8326 §4)"
    );
    assert_eq!(routes(&out), vec![], "forwarding does not change");
    assert_eq!(l.i.set_graceful_shutdown(true), vec![], "already draining");
    // A session that comes up while draining hears the community too.
    l.i.handle(Event::PeerDown {
        peer: l.b,
        graceful: false,
    });
    let out = l.i.handle(Event::PeerUp {
        peer: l.b,
        negotiated: negotiated(65001, "192.168.0.2"),
    });
    assert!(
        attrs_sent(&out, l.b, "10.128.0.0/24")
            .expect("full table")
            .communities
            .contains(&GRACEFUL_SHUTDOWN)
    );
    let out = l.i.set_graceful_shutdown(false);
    let to_a = attrs_sent(&out, l.a, "10.128.0.0/24").expect("again, plain");
    assert!(to_a.communities.is_empty());
    assert_eq!(
        attrs_sent(&out, l.fabric, "192.168.10.0/24").and_then(|a| a.local_pref),
        Some(100)
    );
}

// -- graceful restart (RFC 4724)

/// A peer's OPEN with graceful restart for IPv4: restart time 120 s, F as given.
fn negotiated_gr(asn: u32, id: &str, forwarding: bool) -> Negotiated {
    Negotiated {
        graceful_restart: Some(crate::wire::GracefulRestart {
            restarting: forwarding,
            notification: false,
            restart_time: 120,
            families: vec![crate::wire::GrFamily {
                afi: 1,
                safi: 1,
                forwarding,
            }],
        }),
        ..negotiated(asn, id)
    }
}

fn removed(actions: &[Action]) -> Vec<IpNet> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Route(RouteChange::Remove { prefix }) => Some(*prefix),
            _ => None,
        })
        .collect()
}

fn stale_timer(actions: &[Action]) -> Option<(u64, Duration)> {
    actions.iter().find_map(|a| match a {
        Action::StaleTimer {
            generation, after, ..
        } => Some((*generation, *after)),
        _ => None,
    })
}

/// Customer A up with graceful restart, announcing two prefixes.
fn helper_lab() -> Lab {
    let mut l = lab(100, MaxPrefixAction::Teardown);
    l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: negotiated_gr(65001, "192.168.0.1", false),
    });
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.10.0/24", "192.168.11.0/24"],
        ),
    });
    assert_eq!(l.i.kernel_routes().len(), 2);
    l
}

#[test]
fn helper_keeps_a_restarting_peers_routes_until_its_end_of_rib_then_drops_what_it_did_not_resend() {
    let mut l = helper_lab();
    // Its process died: the connection closed without a NOTIFICATION.
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: true,
    });
    assert_eq!(removed(&out), vec![], "kernel routes stay");
    assert_eq!(
        sent_to(&out, l.fabric),
        (vec![], vec![]),
        "the fabric keeps them"
    );
    assert_eq!(
        stale_timer(&out).map(|t| t.1),
        Some(Duration::from_secs(120))
    );
    assert_eq!(l.i.peer_stats(l.a).stale, 2);

    // Back, with its forwarding kept: the stale routes wait for its End-of-RIB.
    let out = l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: negotiated_gr(65001, "192.168.0.1", true),
    });
    assert_eq!(removed(&out), vec![]);
    assert_eq!(stale_timer(&out).map(|t| t.1), Some(STALE_PATH_TIME));
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert_eq!(removed(&out), vec![]);
    assert_eq!(l.i.peer_stats(l.a).stale, 1, "the re-sent route is fresh");
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: Update::default(),
    });
    assert_eq!(removed(&out), vec![n("192.168.11.0/24")]);
    assert_eq!(sent_to(&out, l.fabric).1, vec![n("192.168.11.0/24")]);
    assert_eq!(l.i.peer_stats(l.a).stale, 0);
    assert!(l.i.kernel_routes().contains_key(&n("192.168.10.0/24")));
}

#[test]
fn helper_drops_stale_routes_when_the_restart_time_runs_out_or_the_peer_kept_no_forwarding() {
    // The peer does not come back in time.
    let mut l = helper_lab();
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: true,
    });
    let (generation, _) = stale_timer(&out).expect("timer");
    let old = l.i.handle(Event::StaleTimer {
        peer: l.a,
        generation: generation - 1,
    });
    assert_eq!(removed(&old), vec![], "an older timer does not count");
    let out = l.i.handle(Event::StaleTimer {
        peer: l.a,
        generation,
    });
    assert_eq!(removed(&out).len(), 2);

    // The peer comes back without its forwarding state (F clear): stale routes go at once.
    let mut l = helper_lab();
    l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: true,
    });
    let out = l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: negotiated_gr(65001, "192.168.0.1", false),
    });
    assert_eq!(removed(&out).len(), 2);

    // A session that ends with a NOTIFICATION (or a BFD failure) is not a restart.
    let mut l = helper_lab();
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    assert_eq!(removed(&out).len(), 2);
    assert_eq!(stale_timer(&out), None);

    // Nor is a graceful down of a peer whose capability covers no family (BIRD "aware").
    let mut l = lab(100, MaxPrefixAction::Teardown);
    let mut aware = negotiated_gr(65001, "192.168.0.1", false);
    if let Some(g) = &mut aware.graceful_restart {
        g.families.clear();
    }
    l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: aware,
    });
    l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    let out = l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: true,
    });
    assert_eq!(removed(&out), vec![n("192.168.10.0/24")]);
}

#[test]
fn restarting_speaker_sends_nothing_until_every_peer_sent_end_of_rib_then_the_full_table() {
    let mut i = TestInstance::new(InstanceParams {
        restarting: true,
        ..params(100, MaxPrefixAction::Teardown)
    });
    let cust = i.add_peer(customer_a());
    let fabric = i.add_peer(fabric());
    assert!(i.deferring());
    let mut out = i.handle(Event::PeerUp {
        peer: cust,
        negotiated: negotiated_gr(65001, "192.168.0.1", false),
    });
    out.extend(i.handle(Event::Update {
        peer: cust,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    }));
    out.extend(i.handle(Event::Update {
        peer: cust,
        update: Update::default(),
    }));
    assert_eq!(i.awaiting_end_of_rib(), vec![fabric]);
    out.extend(i.handle(Event::PeerUp {
        peer: fabric,
        negotiated: negotiated_gr(CLOUD, "100.127.255.1", false),
    }));
    out.extend(i.handle(Event::Update {
        peer: fabric,
        update: announce(&[], "100.127.0.1", &["10.128.0.0/24"]),
    }));
    // A route refresh now would end the customer's wait for our table: ignored.
    out.extend(i.handle(Event::RouteRefresh {
        peer: cust,
        afi: Afi::Ipv4,
        subtype: refresh::REQUEST,
    }));
    assert!(
        out.sent.is_empty(),
        "nothing may be sent while deferring: {out:?}"
    );
    assert_eq!(i.awaiting_end_of_rib(), vec![fabric]);
    i.handle(Event::Update {
        peer: fabric,
        update: Update::default(),
    });
    assert_eq!(i.awaiting_end_of_rib(), Vec::<u32>::new());
    // The kernel table is computed all along; the caller holds it back.
    assert_eq!(i.kernel_routes().len(), 2);

    let out = i.end_restart();
    assert!(!i.deferring());
    assert_eq!(
        sent_to(&out, cust).0,
        vec![n("10.128.0.0/24")],
        "VPC, covered"
    );
    assert_eq!(sent_to(&out, fabric).0, vec![n("192.168.10.0/24")]);
    let eors = out
        .sent
        .iter()
        .filter(|(_, b)| !b.end_of_rib.is_empty())
        .count();
    assert_eq!(eors, 2, "one End-of-RIB to each peer");
    assert_eq!(i.end_restart(), vec![], "once");
}

#[test]
fn a_peer_without_graceful_restart_is_not_waited_for() {
    let mut i = TestInstance::new(InstanceParams {
        restarting: true,
        ..params(100, MaxPrefixAction::Teardown)
    });
    let cust = i.add_peer(customer_a());
    assert_eq!(i.awaiting_end_of_rib(), vec![cust], "not up yet");
    i.handle(Event::PeerUp {
        peer: cust,
        negotiated: negotiated(65001, "192.168.0.1"),
    });
    assert_eq!(i.awaiting_end_of_rib(), Vec::<u32>::new());
}

// --- Neighbors of the standalone speaker -------------------------------------------------

fn neighbor(addr: &str, asn: u32, import: Option<policy::Filter>, export: Export) -> PeerSpec {
    PeerSpec {
        name: addr.into(),
        role: Role::Neighbor,
        address: a(addr).into(),
        local_address: Ipv4Addr::UNSPECIFIED.into(),
        local_address6: None,
        asn,
        policy: Some(Arc::new(NeighborPolicy {
            import,
            export,
            max_prefixes: None,
            prepend: 0,
        })),
    }
}

/// A neighbor whose routes are all taken and who is sent nothing (10.99.1.1, AS 65001).
fn add_feed(i: &mut TestInstance) -> PeerId {
    i.add_peer(neighbor(
        "10.99.1.1",
        65001,
        Some(policy::Filter::accept_all()),
        Export::Nothing,
    ))
}

fn speaker(originate: &[&str]) -> TestInstance {
    TestInstance::new(InstanceParams {
        local_asn: 65002,
        vpc_prefixes: vec![],
        max_prefixes: 0,
        max_prefix_action: MaxPrefixAction::Teardown,
        max_prefix_idle: Duration::from_secs(1800),
        max_prefix_warning: 0,
        announce: originate.iter().map(|p| n(p)).collect(),
        accept_only: None,
        restarting: false,
        kernel: true,
        rpki_reject_invalid: false,
    })
}

fn up(i: &mut TestInstance, peer: PeerId, asn: u32, id: &str) -> Out {
    i.handle(Event::PeerUp {
        peer,
        negotiated: Negotiated {
            ibgp: asn == 65002,
            ..negotiated(asn, id)
        },
    })
}

#[test]
fn neighbors_are_sent_what_their_export_says_with_our_asn_and_next_hop() {
    let mut i = speaker(&["198.51.100.0/24"]);
    let feed = add_feed(&mut i);
    let own = i.add_peer(neighbor(
        "10.99.2.1",
        4_200_000_002,
        None,
        Export::Originated,
    ));
    let all = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
    let only10 = policy::Filter {
        name: "ten".into(),
        rules: vec![policy::PrefixRule {
            set: policy::Actions::default(),
            prefix: Some(n("10.0.0.0/8")),
            ge: None,
            le: Some(32),
            community: None,
            large_community: None,
            also: Default::default(),
            verdict: policy::Verdict::Accept,
        }],
        default: policy::Verdict::Reject,
    };
    let filtered = i.add_peer(neighbor("10.99.4.1", 65004, None, Export::Filter(only10)));
    i.set_local_address(all, a("10.99.3.2").into());
    up(&mut i, feed, 65001, "1.1.1.1");
    let at_up = up(&mut i, own, 4_200_000_002, "2.2.2.2");
    assert_eq!(sent_to(&at_up, own).0, [n("198.51.100.0/24")]);
    up(&mut i, all, 65003, "3.3.3.3");
    up(&mut i, filtered, 65004, "4.4.4.4");

    let out = i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.7", &["10.1.0.0/16", "172.16.0.0/12"]),
    });
    // The feed's NEXT_HOP is kept as sent; the kernel would forward there.
    assert!(routes(&out).contains(&RouteChange::Replace {
        prefix: n("10.1.0.0/16"),
        nexthops: vec![a("10.99.1.7").into()]
    }));
    assert_eq!(sent_to(&out, feed), (vec![], vec![]), "export none");
    assert_eq!(sent_to(&out, own), (vec![], vec![]), "originated only");
    let mut to_all = sent_to(&out, all).0;
    to_all.sort();
    assert_eq!(to_all, [n("10.1.0.0/16"), n("172.16.0.0/12")]);
    assert_eq!(sent_to(&out, filtered).0, [n("10.1.0.0/16")]);
    let sent = attrs_sent(&out, all, "10.1.0.0/16").expect("sent");
    assert_eq!(
        sent.as_path,
        vec![AsPathSegment::Sequence(vec![65002, 65001])]
    );
    assert_eq!(sent.next_hop, Some(a("10.99.3.2")), "next hop self");
    assert_eq!(i.rib_len(), 2);
    let best: Vec<_> = i.best_routes().map(|(n, p)| (n, p.peer)).collect();
    assert_eq!(best, [(n("10.1.0.0/16"), feed), (n("172.16.0.0/12"), feed)]);

    let out = i.handle(Event::Update {
        peer: feed,
        update: withdraw(&["10.1.0.0/16"]),
    });
    assert_eq!(sent_to(&out, all).1, [n("10.1.0.0/16")]);
    assert_eq!(sent_to(&out, filtered).1, [n("10.1.0.0/16")]);
}

#[test]
fn a_neighbor_without_import_policy_gives_nothing_and_ibgp_routes_stay_in_ibgp() {
    let mut i = speaker(&[]);
    let deny = i.add_peer(neighbor("10.99.1.1", 65001, None, Export::All));
    let ibgp1 = i.add_peer(neighbor(
        "10.99.2.1",
        65002,
        Some(policy::Filter::accept_all()),
        Export::All,
    ));
    let ibgp2 = i.add_peer(neighbor("10.99.3.1", 65002, None, Export::All));
    up(&mut i, deny, 65001, "1.1.1.1");
    up(&mut i, ibgp1, 65002, "2.2.2.2");
    up(&mut i, ibgp2, 65002, "3.3.3.3");
    let out = i.handle(Event::Update {
        peer: deny,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/16"]),
    });
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        i.rejected(deny),
        [(
            n("10.1.0.0/16"),
            "no import policy (RFC 8212 default deny)".to_string()
        )]
    );
    let out = i.handle(Event::Update {
        peer: ibgp1,
        update: announce(&[], "10.99.2.1", &["10.2.0.0/16"]),
    });
    assert_eq!(
        sent_to(&out, ibgp2).0,
        Vec::<IpNet>::new(),
        "no iBGP to iBGP"
    );
    assert_eq!(sent_to(&out, ibgp1).0, Vec::<IpNet>::new(), "not back");
    assert_eq!(sent_to(&out, deny).0, [n("10.2.0.0/16")]);
}

#[test]
fn a_neighbor_over_its_prefix_limit_is_torn_down() {
    let mut i = speaker(&[]);
    let mut spec = neighbor(
        "10.99.1.1",
        65001,
        Some(policy::Filter::accept_all()),
        Export::Nothing,
    );
    spec.policy = Some(Arc::new(NeighborPolicy {
        import: Some(policy::Filter::accept_all()),
        export: Export::Nothing,
        max_prefixes: Some(2),
        prepend: 0,
    }));
    let p = i.add_peer(spec);
    up(&mut i, p, 65001, "1.1.1.1");
    let out = i.handle(Event::Update {
        peer: p,
        update: announce(
            &[65001],
            "10.99.1.1",
            &["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"],
        ),
    });
    let Some(Action::TearDown { notification, .. }) =
        out.iter().find(|a| matches!(a, Action::TearDown { .. }))
    else {
        panic!("no teardown: {out:?}");
    };
    assert_eq!(notification.data, [0, 1, 1, 0, 0, 0, 2]);
}

#[test]
fn equal_attributes_of_different_updates_are_stored_once() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "1.1.1.1");
    for p in ["10.1.0.0/16", "10.2.0.0/16"] {
        i.handle(Event::Update {
            peer: feed,
            update: announce(&[65001], "10.99.1.7", &[p]),
        });
    }
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001, 65009], "10.99.1.7", &["10.3.0.0/16"]),
    });
    let r = i.routes(feed, RouteSet::Accepted);
    assert!(
        Arc::ptr_eq(&r[0].1, &r[1].1),
        "one copy of equal attributes"
    );
    assert!(!Arc::ptr_eq(&r[0].1, &r[2].1));
}

#[test]
fn the_interner_forgets_attributes_no_route_uses() {
    let mut it = Interner::default();
    let attrs = |asn| PathAttrs {
        as_path: vec![AsPathSegment::Sequence(vec![asn])],
        ..Default::default()
    };
    let kept = it.intern(attrs(1));
    for asn in 2..3000 {
        drop(it.intern(attrs(asn)));
    }
    assert!(it.set.len() < 2100, "swept: {}", it.set.len());
    assert!(Arc::ptr_eq(&kept, &it.intern(attrs(1))), "a used set stays");
}

// -- RFC 7606

#[test]
fn malformed_updates_are_counted_and_an_empty_treat_as_withdraw_is_no_end_of_rib() {
    let mut l = helper_lab();
    // As the decoder hands over an UPDATE whose COMMUNITIES were malformed: its NLRI
    // turned into withdrawals.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: Update {
            withdrawn: vec![n("192.168.11.0/24")],
            problems: vec![UpdateProblem::TreatAsWithdraw(
                "COMMUNITIES length 3 is not a multiple of 4".into(),
            )],
            ..Default::default()
        },
    });
    assert_eq!(removed(&out), vec![n("192.168.11.0/24")]);
    let mut discard = announce(&[65001], "169.254.1.2", &["192.168.12.0/24"]);
    discard.problems = vec![UpdateProblem::AttributeDiscarded(
        "ATOMIC_AGGREGATE length 1".into(),
    )];
    l.i.handle(Event::Update {
        peer: l.a,
        update: discard,
    });
    let s = l.i.peer_stats(l.a);
    assert_eq!((s.treated_as_withdraw, s.attributes_discarded), (1, 1));
    assert_eq!(
        s.last_malformed.as_deref(),
        Some("ATOMIC_AGGREGATE length 1")
    );
    assert_eq!(s.accepted, 2, "the discarded attribute's route is kept");

    // Restarting: a treat-as-withdraw UPDATE with no NLRI at all is empty once decoded,
    // and must not be read as the End-of-RIB that flushes the stale routes.
    l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: true,
    });
    l.i.handle(Event::PeerUp {
        peer: l.a,
        negotiated: negotiated_gr(65001, "192.168.0.1", true),
    });
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: Update {
            problems: vec![UpdateProblem::TreatAsWithdraw("ORIGIN value 7".into())],
            ..Default::default()
        },
    });
    assert_eq!(removed(&out), vec![], "not an End-of-RIB");
    assert_eq!(l.i.peer_stats(l.a).stale, 2);
    assert_eq!(
        l.i.peer_stats(l.a).treated_as_withdraw,
        1,
        "counts start again with the session"
    );
}

fn up6(i: &mut TestInstance, peer: PeerId, asn: u32, id: &str, ipv4: bool) -> Out {
    i.handle(Event::PeerUp {
        peer,
        negotiated: Negotiated {
            ipv4,
            ipv6: true,
            ..negotiated(asn, id)
        },
    })
}

fn announce6(path: &[u32], nh: &str, prefixes: &[&str]) -> Update {
    Update {
        attrs: Some(PathAttrs {
            as_path: vec![AsPathSegment::Sequence(path.to_vec())],
            next_hop6: Some(nh.parse().expect("address")),
            ..Default::default()
        }),
        nlri: prefixes.iter().map(|p| n(p)).collect(),
        ..Default::default()
    }
}

#[test]
fn ipv6_routes_go_only_to_sessions_that_carry_ipv6_with_our_ipv6_next_hop() {
    let mut i = speaker(&["198.51.100.0/24", "2001:db8:100::/48"]);
    let feed = i.add_peer(neighbor(
        "10.99.1.1",
        65001,
        Some(policy::Filter::accept_all()),
        Export::All,
    ));
    let dual = i.add_peer(PeerSpec {
        local_address6: Some("2001:db8:3::2".parse().expect("address")),
        ..neighbor("10.99.3.1", 65003, None, Export::All)
    });
    let mapped = i.add_peer(neighbor("10.99.4.1", 65004, None, Export::All));
    let v4only = i.add_peer(neighbor("10.99.5.1", 65005, None, Export::All));
    i.set_local_address(mapped, a("10.99.4.2").into());
    up6(&mut i, feed, 65001, "1.1.1.1", true);
    // At session start each gets our own prefixes of the families it carries.
    let at_up = up6(&mut i, dual, 65003, "3.3.3.3", true);
    let mut own = sent_to(&at_up, dual).0;
    own.sort();
    assert_eq!(own, [n("198.51.100.0/24"), n("2001:db8:100::/48")]);
    let at_up = up6(&mut i, mapped, 65004, "4.4.4.4", false);
    assert_eq!(
        sent_to(&at_up, mapped).0,
        [n("2001:db8:100::/48")],
        "IPv6 only"
    );
    let at_up = up(&mut i, v4only, 65005, "5.5.5.5");
    assert_eq!(
        sent_to(&at_up, v4only).0,
        [n("198.51.100.0/24")],
        "IPv4 only"
    );

    let out = i.handle(Event::Update {
        peer: feed,
        update: announce6(
            &[65001],
            "2001:db8:1::7",
            &["2001:db8:200::/48", "2001:db8:201::/48"],
        ),
    });
    // Forwarded to the IPv6 next hop the feed sent.
    assert!(routes(&out).contains(&RouteChange::Replace {
        prefix: n("2001:db8:200::/48"),
        nexthops: vec!["2001:db8:1::7".parse::<IpAddr>().expect("address")],
    }));
    assert_eq!(i.rib_len(), 2);
    let sent = attrs_sent(&out, dual, "2001:db8:200::/48").expect("sent to the dual-stack peer");
    assert_eq!(
        sent.next_hop6,
        Some("2001:db8:3::2".parse().expect("address")),
        "next hop self"
    );
    assert_eq!(
        sent.as_path,
        vec![AsPathSegment::Sequence(vec![65002, 65001])]
    );
    let sent = attrs_sent(&out, mapped, "2001:db8:200::/48").expect("sent");
    assert_eq!(
        sent.next_hop6,
        Some(a("10.99.4.2").to_ipv6_mapped()),
        "IPv4-mapped"
    );
    assert_eq!(
        sent_to(&out, v4only),
        (vec![], vec![]),
        "nothing IPv6 to an IPv4 session"
    );

    let out = i.handle(Event::Update {
        peer: feed,
        update: withdraw(&["2001:db8:200::/48"]),
    });
    assert_eq!(sent_to(&out, dual).1, [n("2001:db8:200::/48")]);
    assert_eq!(removed(&out), [n("2001:db8:200::/48")]);
    assert_eq!(sent_to(&out, v4only), (vec![], vec![]));
}

#[test]
fn routes_of_a_family_the_session_did_not_negotiate_are_ignored() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "1.1.1.1");
    i.handle(Event::Update {
        peer: feed,
        update: announce6(&[65001], "2001:db8:1::7", &["2001:db8:200::/48"]),
    });
    assert_eq!(i.rib_len(), 0);
    assert_eq!(i.peer_stats(feed).received, 0);
}

#[test]
fn the_prefix_limit_counts_each_family_on_its_own() {
    let mut i = speaker(&[]);
    let feed = i.add_peer(PeerSpec {
        policy: Some(Arc::new(NeighborPolicy {
            import: Some(policy::Filter::accept_all()),
            export: Export::Nothing,
            max_prefixes: Some(2),
            prepend: 0,
        })),
        ..neighbor("10.99.1.1", 65001, None, Export::Nothing)
    });
    up6(&mut i, feed, 65001, "1.1.1.1", true);
    let out = i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/16", "10.2.0.0/16"]),
    });
    assert!(!out.iter().any(|a| matches!(a, Action::TearDown { .. })));
    let out = i.handle(Event::Update {
        peer: feed,
        update: announce6(
            &[65001],
            "2001:db8:1::7",
            &["2001:db8:1::/48", "2001:db8:2::/48"],
        ),
    });
    assert!(
        !out.iter().any(|a| matches!(a, Action::TearDown { .. })),
        "two of each is within a limit of two per family"
    );
    let out = i.handle(Event::Update {
        peer: feed,
        update: announce6(&[65001], "2001:db8:1::7", &["2001:db8:3::/48"]),
    });
    let n = out
        .iter()
        .find_map(|a| match a {
            Action::TearDown { notification, .. } => Some(notification.clone()),
            _ => None,
        })
        .expect("torn down");
    // RFC 4486 §4: AFI 2, SAFI 1, the limit.
    assert_eq!(n.data, vec![0, 2, 1, 0, 0, 0, 2]);
}

#[test]
fn end_of_rib_and_graceful_restart_are_per_family() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    // Graceful restart with forwarding kept for IPv4 and IPv6.
    let gr = |forwarding| Negotiated {
        ipv6: true,
        graceful_restart: Some(crate::wire::GracefulRestart {
            restarting: forwarding,
            notification: false,
            restart_time: 120,
            families: [1, 2]
                .map(|afi| crate::wire::GrFamily {
                    afi,
                    safi: 1,
                    forwarding,
                })
                .to_vec(),
        }),
        ..negotiated(65001, "1.1.1.1")
    };
    i.handle(Event::PeerUp {
        peer: feed,
        negotiated: gr(false),
    });
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/16"]),
    });
    i.handle(Event::Update {
        peer: feed,
        update: announce6(&[65001], "2001:db8:1::7", &["2001:db8:1::/48"]),
    });
    i.handle(Event::PeerDown {
        peer: feed,
        graceful: true,
    });
    assert_eq!(i.rib_len(), 2, "both kept while it restarts");
    i.handle(Event::PeerUp {
        peer: feed,
        negotiated: gr(true),
    });
    assert_eq!(i.awaiting_end_of_rib(), vec![feed]);
    // IPv4's End-of-RIB ends the stale IPv4 routes only.
    let out = i.handle(Event::Update {
        peer: feed,
        update: Update::default(),
    });
    assert_eq!(removed(&out), [n("10.1.0.0/16")]);
    assert_eq!(
        i.awaiting_end_of_rib(),
        vec![feed],
        "IPv6's is still to come"
    );
    let out = i.handle(Event::Update {
        peer: feed,
        update: Update {
            ipv6_end_of_rib: true,
            ..Default::default()
        },
    });
    assert_eq!(removed(&out), [n("2001:db8:1::/48")]);
    assert!(i.awaiting_end_of_rib().is_empty());
}

#[test]
fn a_neighbor_can_be_sent_our_as_prepended_more_to_make_us_its_standby() {
    let mut i = speaker(&["198.51.100.0/24"]);
    let feed = add_feed(&mut i);
    let standby = i.add_peer(PeerSpec {
        policy: Some(Arc::new(NeighborPolicy {
            import: None,
            export: Export::All,
            max_prefixes: None,
            prepend: 2,
        })),
        ..neighbor("10.99.3.1", 65003, None, Export::All)
    });
    up(&mut i, feed, 65001, "1.1.1.1");
    let at_up = up(&mut i, standby, 65003, "3.3.3.3");
    let ours = attrs_sent(&at_up, standby, "198.51.100.0/24").expect("ours");
    assert_eq!(
        ours.as_path,
        vec![AsPathSegment::Sequence(vec![65002, 65002, 65002])]
    );
    let out = i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.7", &["10.1.0.0/16"]),
    });
    let learned = attrs_sent(&out, standby, "10.1.0.0/16").expect("learned");
    assert_eq!(
        learned.as_path,
        vec![AsPathSegment::Sequence(vec![65002, 65002, 65002, 65001])]
    );
}

#[test]
fn a_route_moving_between_refused_and_accepted_is_counted_once_and_shown_as_it_is() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    let p = "192.168.10.0/24";
    let stats = |l: &Lab| {
        let s = l.i.peer_stats(l.a);
        (s.received, s.accepted)
    };
    // Refused (a documentation ASN in the path), then accepted, then refused again.
    for (path, want) in [
        (&[65001, 64500][..], (1, 0)),
        (&[65001][..], (1, 1)),
        (&[65001, 64500][..], (1, 0)),
        (&[65001][..], (1, 1)),
    ] {
        l.i.handle(Event::Update {
            peer: l.a,
            update: announce(path, "169.254.1.2", &[p]),
        });
        assert_eq!(stats(&l), want, "after {path:?}");
        let received = l.i.routes(l.a, RouteSet::Received);
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0].2.is_some(), want.1 == 0, "{received:?}");
        assert_eq!(
            l.i.routes(l.a, RouteSet::Accepted).len() as u32,
            want.1,
            "the accepted set"
        );
        assert_eq!(l.i.rejected(l.a).len() as u32, 1 - want.1);
    }
    // B's route for the same prefix stays when A goes; A's leaves nothing behind.
    l.i.handle(Event::Update {
        peer: l.b,
        update: announce(&[65001], "169.254.2.2", &[p, "192.168.11.0/24"]),
    });
    l.i.handle(Event::PeerDown {
        peer: l.a,
        graceful: false,
    });
    assert_eq!(stats(&l), (0, 0));
    assert!(l.i.routes(l.a, RouteSet::Received).is_empty());
    assert_eq!(l.i.peer_stats(l.b).accepted, 2);
    assert_eq!(
        l.i.kernel_routes().get(&n(p)),
        Some(&vec![a("169.254.2.2").into()])
    );
}

/// A new import policy asks the peer for its routes again (each family it carries); a
/// peer without route refresh is reset instead; a new export policy alone is applied to
/// what the peer is sent at once, with no refresh.
#[test]
fn a_new_policy_refreshes_imports_and_reapplies_exports() {
    let mut i = speaker(&["198.51.100.0/24"]);
    let peer = i.add_peer(neighbor(
        "10.99.2.1",
        65001,
        Some(policy::Filter::accept_all()),
        Export::Nothing,
    ));
    i.handle(Event::PeerUp {
        peer,
        negotiated: Negotiated {
            ipv6: true,
            ..negotiated(65001, "10.99.2.1")
        },
    });
    let with = |import: Option<policy::Filter>, export: Export| {
        Some(Arc::new(NeighborPolicy {
            import,
            export,
            max_prefixes: None,
            prepend: 0,
        }))
    };
    let out = i.set_policy(
        peer,
        with(Some(policy::Filter::accept_all()), Export::Originated),
    );
    assert_eq!(sent_to(&out, peer).0, vec![n("198.51.100.0/24")]);
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::RequestRefresh { .. }))
    );

    let out = i.set_policy(peer, with(None, Export::Originated));
    let asked: Vec<Afi> = out
        .iter()
        .filter_map(|a| match a {
            Action::RequestRefresh { peer: p, afi } if *p == peer => Some(*afi),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![Afi::Ipv4, Afi::Ipv6]);

    let old = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::Nothing));
    i.handle(Event::PeerUp {
        peer: old,
        negotiated: Negotiated {
            route_refresh: false,
            ..negotiated(65003, "10.99.3.1")
        },
    });
    let out = i.set_policy(
        old,
        with(Some(policy::Filter::accept_all()), Export::Nothing),
    );
    assert!(
        matches!(&out[..], [Action::TearDown { notification, .. }]
            if notification.code == error_code::CEASE && notification.subcode == cease::OTHER_CONFIG_CHANGE),
        "{out:?}"
    );
}

/// Reaching 75 % of the limit (4 prefixes: 3 of 4) warns once, and the peer's stats say
/// so until it falls below again; the limit's action comes only past the limit.
#[test]
fn prefixes_near_the_limit_warn_once_until_they_fall_below() {
    let mut l = lab(4, MaxPrefixAction::Teardown);
    l.i.params.max_prefix_warning = 75;
    let warnings = |out: &[Action]| {
        out.iter()
            .filter(|a| matches!(a, Action::PrefixWarning { .. }))
            .cloned()
            .collect::<Vec<_>>()
    };
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.10.0/24", "192.168.11.0/24"],
        ),
    });
    assert_eq!(warnings(&out), vec![]);
    assert!(!l.i.peer_stats(l.a).prefix_warning);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.12.0/24"]),
    });
    assert_eq!(
        warnings(&out),
        vec![Action::PrefixWarning {
            peer: l.a,
            afi: Afi::Ipv4,
            prefixes: 3,
            limit: 4
        }]
    );
    assert!(l.i.peer_stats(l.a).prefix_warning);
    assert!(!l.i.peer_stats(l.a).over_limit);
    // Still near: no second warning.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.13.0/24"]),
    });
    assert_eq!(warnings(&out), vec![]);
    // Below again, then near again: warned again.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: withdraw(&["192.168.12.0/24", "192.168.13.0/24"]),
    });
    assert_eq!(warnings(&out), vec![]);
    assert!(!l.i.peer_stats(l.a).prefix_warning);
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.12.0/24"]),
    });
    assert_eq!(warnings(&out).len(), 1);
    // Other peers are not concerned.
    assert!(!l.i.peer_stats(l.b).prefix_warning);
}

/// RFC 9234 §5 with three neighbors: we are the customer of `prov`, a peer of `peer` and
/// the provider of `cust`. Routes from above or across are marked ONLY_TO_CUSTOMER and go
/// only down; a marked route from below (or across, marked by another AS) is a leak.
#[test]
fn only_to_customer_keeps_routes_from_going_up_or_across_again() {
    let mut i = speaker(&[]);
    let mut add = |addr: &str, asn: u32, role: BgpRole| {
        let id = i.add_peer(neighbor(
            addr,
            asn,
            Some(policy::Filter::accept_all()),
            Export::All,
        ));
        i.handle(Event::PeerUp {
            peer: id,
            negotiated: Negotiated {
                local_role: Some(role),
                ..negotiated(asn, addr)
            },
        });
        id
    };
    let prov = add("10.99.2.1", 65010, BgpRole::Customer);
    let peer = add("10.99.3.1", 65020, BgpRole::Peer);
    let cust = add("10.99.4.1", 65030, BgpRole::Provider);
    let with_otc = |path: &[u32], nh: &str, prefixes: &[&str], otc: Option<u32>| {
        let mut u = announce(path, nh, prefixes);
        if let Some(a) = u.attrs.as_mut() {
            a.otc = otc;
        }
        u
    };

    // From the provider, unmarked: marked with its AS; down to the customer only.
    let out = i.handle(Event::Update {
        peer: prov,
        update: with_otc(&[65010], "10.99.2.1", &["10.1.0.0/16"], None),
    });
    assert_eq!(
        attrs_sent(&out, cust, "10.1.0.0/16").and_then(|a| a.otc),
        Some(65010)
    );
    assert!(attrs_sent(&out, peer, "10.1.0.0/16").is_none(), "{out:?}");

    // From the customer, unmarked: up to the provider as it is, across marked with ours.
    let out = i.handle(Event::Update {
        peer: cust,
        update: with_otc(&[65030], "10.99.4.1", &["10.3.0.0/16"], None),
    });
    assert_eq!(
        attrs_sent(&out, prov, "10.3.0.0/16").map(|a| a.otc),
        Some(None)
    );
    assert_eq!(
        attrs_sent(&out, peer, "10.3.0.0/16").and_then(|a| a.otc),
        Some(65002)
    );

    // From the customer, marked: a leak, refused with why.
    i.handle(Event::Update {
        peer: cust,
        update: with_otc(&[65030], "10.99.4.1", &["10.4.0.0/16"], Some(65099)),
    });
    let why = i.rejected(cust);
    assert_eq!(why.len(), 1);
    assert!(why[0].1.contains("route leak"), "{why:?}");

    // From the peer: marked by itself is fine; by another AS a leak.
    i.handle(Event::Update {
        peer,
        update: with_otc(&[65020], "10.99.3.1", &["10.5.0.0/16"], Some(65020)),
    });
    i.handle(Event::Update {
        peer,
        update: with_otc(&[65020], "10.99.3.1", &["10.6.0.0/16"], Some(65099)),
    });
    let best: Vec<IpNet> = i.best_routes().map(|(n, _)| n).collect();
    assert_eq!(
        best,
        vec![n("10.1.0.0/16"), n("10.3.0.0/16"), n("10.5.0.0/16")]
    );
}

/// Rules that change what they accept: on import the routes the rule takes are kept with
/// its LOCAL_PREF and community (the others of the same UPDATE as sent); on export the
/// rule's MED and community go out, and no LOCAL_PREF to an external neighbor.
#[test]
fn accepting_rules_set_attributes_on_import_and_export() {
    let rule = |prefix: &str, set: policy::Actions| policy::PrefixRule {
        prefix: Some(n(prefix)),
        ge: None,
        le: Some(24),
        community: None,
        large_community: None,
        also: Default::default(),
        verdict: policy::Verdict::Accept,
        set,
    };
    let filter = |rules| policy::Filter {
        name: "f".into(),
        rules,
        default: policy::Verdict::Accept,
    };
    let mut i = speaker(&[]);
    let feed = i.add_peer(neighbor(
        "10.99.1.1",
        65001,
        Some(filter(vec![rule(
            "10.1.0.0/16",
            policy::Actions {
                local_pref: Some(200),
                communities: vec![65002 << 16 | 1],
                ..Default::default()
            },
        )])),
        Export::Nothing,
    ));
    let out_peer = i.add_peer(neighbor(
        "10.99.2.1",
        65003,
        None,
        Export::Filter(filter(vec![rule(
            "10.2.0.0/16",
            policy::Actions {
                local_pref: Some(300),
                med: Some(50),
                communities: vec![65002 << 16 | 9],
                ..Default::default()
            },
        )])),
    ));
    up(&mut i, feed, 65001, "10.99.1.1");
    up(&mut i, out_peer, 65003, "10.99.2.1");
    let out = i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/24", "10.2.0.0/24"]),
    });
    let kept = |p: &str| {
        i.best_routes()
            .find(|(q, _)| *q == n(p))
            .map(|(_, path)| path.attrs.clone())
            .expect("in the Loc-RIB")
    };
    let one = kept("10.1.0.0/24");
    assert_eq!(one.local_pref, Some(200));
    assert_eq!(one.communities, vec![65002 << 16 | 1]);
    let two = kept("10.2.0.0/24");
    assert_eq!((two.local_pref, two.communities.clone()), (None, vec![]));
    let sent1 = attrs_sent(&out, out_peer, "10.1.0.0/24").expect("sent");
    assert_eq!(sent1.med, None);
    assert_eq!(sent1.local_pref, None);
    let sent2 = attrs_sent(&out, out_peer, "10.2.0.0/24").expect("sent");
    assert_eq!(sent2.med, Some(50));
    assert_eq!(sent2.local_pref, None, "not to an external neighbor");
    assert!(sent2.communities.contains(&(65002 << 16 | 9)));
    assert_eq!(sent2.as_path_len(), 2, "our AS, then the feed's");
}

/// An import rule that matches a community and removes it: judged again (here because
/// the VPC prefixes changed), the route is judged by the attributes as received, so the
/// rule matches again and its changes stay; the looking glass shows the route as
/// received.
#[test]
fn routes_judged_again_are_judged_as_received_and_keep_their_import_rule_s_changes() {
    const TAG: u32 = 65001 << 16 | 666;
    let filter = policy::Filter {
        name: "tagged".into(),
        rules: vec![policy::PrefixRule {
            prefix: None,
            ge: None,
            le: None,
            community: Some(TAG),
            large_community: None,
            also: Default::default(),
            verdict: policy::Verdict::Accept,
            set: policy::Actions {
                local_pref: Some(50),
                remove_communities: vec![policy::CommunityPattern {
                    asn: Some(65001),
                    value: Some(666),
                }],
                ..Default::default()
            },
        }],
        default: policy::Verdict::Accept,
    };
    let mut i = speaker(&[]);
    let feed = i.add_peer(neighbor("10.99.1.1", 65001, Some(filter), Export::Nothing));
    up(&mut i, feed, 65001, "10.99.1.1");
    let mut u = announce(&[65001], "10.99.1.1", &["10.1.0.0/24"]);
    if let Some(a) = u.attrs.as_mut() {
        a.communities = vec![TAG];
    }
    i.handle(Event::Update {
        peer: feed,
        update: u,
    });
    let kept = |i: &TestInstance| {
        i.best_routes()
            .find(|(q, _)| *q == n("10.1.0.0/24"))
            .map(|(_, p)| (p.attrs.local_pref, p.attrs.communities.clone()))
    };
    assert_eq!(kept(&i), Some((Some(50), vec![])));
    i.set_vpc_prefixes(vec![n("10.128.0.0/24")]);
    assert_eq!(kept(&i), Some((Some(50), vec![])), "the rule applied again");
    let received = i.routes(feed, RouteSet::Received);
    assert_eq!(received[0].1.communities, vec![TAG], "as received");
    // Sent again without the tag: the rule no longer matches, the route is as sent.
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/24"]),
    });
    assert_eq!(kept(&i), Some((None, vec![])));
    i.set_vpc_prefixes(vec![]);
    assert_eq!(kept(&i), Some((None, vec![])));
}

/// Route-server style export rules: matched by an AS_PATH regex, the route goes out with
/// our AS prepended twice more, its private ASNs replaced by ours and the feed's
/// communities removed by pattern; a route the rule does not match goes out untouched.
#[test]
fn export_rules_match_the_as_path_and_prepend_replace_private_asns_and_remove_communities() {
    let rule = policy::PrefixRule {
        prefix: None,
        ge: None,
        le: None,
        community: None,
        large_community: None,
        also: policy::Matches {
            as_path_regex: Some(policy::AsPathRegex::new("_64512$").expect("regex")),
            ..Default::default()
        },
        verdict: policy::Verdict::Accept,
        set: policy::Actions {
            prepend: 2,
            replace_private_asns: true,
            remove_communities: vec![policy::CommunityPattern {
                asn: Some(174),
                value: None,
            }],
            ..Default::default()
        },
    };
    let mut i = speaker(&[]);
    let feed = i.add_peer(neighbor(
        "10.99.1.1",
        174,
        Some(policy::Filter::accept_all()),
        Export::Nothing,
    ));
    let out_peer = i.add_peer(neighbor(
        "10.99.2.1",
        3356,
        None,
        Export::Filter(policy::Filter {
            name: "rs".into(),
            rules: vec![rule],
            default: policy::Verdict::Accept,
        }),
    ));
    up(&mut i, feed, 174, "10.99.1.1");
    up(&mut i, out_peer, 3356, "10.99.2.1");
    let tagged = |path: &[u32], prefix: &str| {
        let mut u = announce(path, "10.99.1.1", &[prefix]);
        if let Some(a) = u.attrs.as_mut() {
            a.communities = vec![174 << 16 | 1, 174 << 16 | 2, 65009 << 16 | 3];
        }
        u
    };
    let mut out = i.handle(Event::Update {
        peer: feed,
        update: tagged(&[174, 64512], "10.1.0.0/24"),
    });
    out.extend(i.handle(Event::Update {
        peer: feed,
        update: tagged(&[174], "10.2.0.0/24"),
    }));
    let matched = attrs_sent(&out, out_peer, "10.1.0.0/24").expect("sent");
    assert_eq!(
        matched.path_asns().collect::<Vec<_>>(),
        vec![65002, 65002, 65002, 174, 65002]
    );
    assert_eq!(matched.communities, vec![65009 << 16 | 3]);
    let other = attrs_sent(&out, out_peer, "10.2.0.0/24").expect("sent");
    assert_eq!(other.path_asns().collect::<Vec<_>>(), vec![65002, 174]);
    assert_eq!(other.communities.len(), 3);
}

/// An import rule refusing RPKI invalids: nothing is refused while no cache has
/// synced; data that makes a route invalid refuses it (said so in the looking glass),
/// data that makes it valid again brings it back, without the session doing anything.
#[test]
fn rpki_invalids_are_refused_by_policy_and_judged_again_when_the_data_changes() {
    use crate::rpki::{Validity, Vrp, Vrps};
    let drop_invalid = policy::Filter {
        name: "rov".into(),
        rules: vec![policy::PrefixRule {
            prefix: None,
            ge: None,
            le: None,
            community: None,
            large_community: None,
            also: policy::Matches {
                rpki: Some(Validity::Invalid),
                ..Default::default()
            },
            verdict: policy::Verdict::Reject,
            set: Default::default(),
        }],
        default: policy::Verdict::Accept,
    };
    let mut i = speaker(&[]);
    let feed = i.add_peer(neighbor(
        "10.99.1.1",
        65001,
        Some(drop_invalid),
        Export::Nothing,
    ));
    up(&mut i, feed, 65001, "10.99.1.1");
    i.handle(Event::Update {
        peer: feed,
        update: announce(&[65001], "10.99.1.1", &["10.1.0.0/24", "10.2.0.0/24"]),
    });
    let held = |i: &TestInstance| -> Vec<IpNet> { i.best_routes().map(|(n, _)| n).collect() };
    assert_eq!(
        held(&i),
        vec![n("10.1.0.0/24"), n("10.2.0.0/24")],
        "no data: nothing refused"
    );
    // 10.1.0.0/16 belongs to AS 65009: the feed's /24 of it is invalid.
    let mut v = Vrps::default();
    v.insert(Vrp {
        prefix: n("10.1.0.0/16"),
        max_len: 24,
        asn: 65009,
    });
    i.set_vrps(Some(Arc::new(v.clone())));
    assert_eq!(held(&i), vec![n("10.2.0.0/24")]);
    let why = i
        .routes(feed, RouteSet::Received)
        .into_iter()
        .find(|(p, _, _)| *p == n("10.1.0.0/24"))
        .and_then(|(_, _, why)| why);
    assert_eq!(
        why.as_deref(),
        Some("RPKI invalid: refused by policy rov, rule 1")
    );
    // A ROA for the feed's AS too: valid, back.
    v.insert(Vrp {
        prefix: n("10.1.0.0/16"),
        max_len: 24,
        asn: 65001,
    });
    i.set_vrps(Some(Arc::new(v)));
    assert_eq!(held(&i), vec![n("10.1.0.0/24"), n("10.2.0.0/24")]);
    // The cache gone for good (expired): nothing judged by it.
    i.set_vrps(None);
    assert_eq!(i.best_routes().count(), 2);
}

/// A customer's invalid routes refused where the instance says so (a public
/// connection's), as soon as a cache has synced and again when its data changes; valid
/// and not-found ones taken.
#[test]
fn a_customer_s_rpki_invalid_routes_are_refused_where_the_instance_says() {
    use crate::rpki::{Vrp, Vrps};
    let mut i = TestInstance::new(InstanceParams {
        rpki_reject_invalid: true,
        ..params(500, MaxPrefixAction::Teardown)
    });
    let c = i.add_peer(customer_a());
    up(&mut i, c, 65001, "169.254.1.2");
    i.handle(Event::Update {
        peer: c,
        update: announce(
            &[65001],
            "169.254.1.2",
            &["192.168.10.0/24", "172.16.5.0/24"],
        ),
    });
    assert_eq!(
        i.best_routes().count(),
        2,
        "no cache synced: nothing refused"
    );
    let mut v = Vrps::default();
    v.insert(Vrp {
        prefix: n("192.168.10.0/24"),
        max_len: 24,
        asn: 64999,
    });
    i.set_vrps(Some(Arc::new(v)));
    let held: Vec<IpNet> = i.best_routes().map(|(p, _)| p).collect();
    assert_eq!(held, vec![n("172.16.5.0/24")]);
    let why = i
        .routes(c, RouteSet::Received)
        .into_iter()
        .find_map(|(p, _, why)| (p == n("192.168.10.0/24")).then_some(why))
        .flatten();
    assert_eq!(
        why.as_deref(),
        Some("RPKI invalid (RFC 6811): no ROA lets AS65001 originate it at this length")
    );
    // An instance that does not refuse invalids takes it whatever the data.
    let mut j = TestInstance::new(params(500, MaxPrefixAction::Teardown));
    let c = j.add_peer(customer_a());
    up(&mut j, c, 65001, "169.254.1.2");
    let mut v = Vrps::default();
    v.insert(Vrp {
        prefix: n("192.168.10.0/24"),
        max_len: 24,
        asn: 64999,
    });
    j.set_vrps(Some(Arc::new(v)));
    j.handle(Event::Update {
        peer: c,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert_eq!(j.best_routes().count(), 1);
}

// ---------------------------------------------------------------------------------------
// Sending: the outbox

/// A table of `prefixes` /24s over `sets` attribute sets, a set's prefixes scattered.
fn diverse_table(i: &mut TestInstance, feed: PeerId, prefixes: u32, sets: u32) {
    let mut by_set: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    for k in 0..prefixes {
        let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (k << 8)), 24).expect("/24"));
        by_set
            .entry((k.wrapping_mul(2_654_435_761) >> 7) % sets)
            .or_default()
            .push(p);
    }
    for (s, nlri) in by_set {
        let mut u = announce(&[65001, 100_000 + s], "10.99.1.1", &[]);
        u.nlri = nlri;
        i.handle(Event::Update {
            peer: feed,
            update: u,
        });
    }
}

#[test]
fn a_new_peer_gets_the_table_grouped_by_attribute_set_and_each_prefix_once() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "10.99.1.1");
    diverse_table(&mut i, feed, 20_000, 2_000);
    assert_eq!(i.rib_len(), 20_000);
    let all = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
    i.set_local_address(all, a("10.99.3.2").into());
    let out = up(&mut i, all, 65003, "10.99.3.1");
    let (ann, wd) = sent_to(&out, all);
    assert!(wd.is_empty());
    let mut uniq = ann.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        (ann.len(), uniq.len()),
        (20_000, 20_000),
        "each prefix once"
    );
    let groups: usize = batches(&out, all).iter().map(|b| b.announce.len()).sum();
    assert_eq!(
        groups, 2_000,
        "one group (one UPDATE) per attribute set, not per prefix"
    );
    assert_eq!(i.peer_stats(all).advertised, 20_000);
    assert_eq!(
        batches(&out, all).last().map(|b| b.end_of_rib.clone()),
        Some(vec![Afi::Ipv4])
    );
}

/// An AS_PATH of `k` ASNs, the neighbor's first.
fn long_path(first: u32, k: u32) -> Vec<u32> {
    std::iter::once(first)
        .chain((1..k).map(|i| 100_000 + i))
        .collect()
}

/// The length of the UPDATE `b` makes for its one route (as the driver encodes it).
fn sent_len(b: &Batch, max: usize) -> Option<usize> {
    b.announce.first().map(|(a, nlri)| {
        crate::wire::encode_updates_within(&[], Some(a), nlri, max)
            .iter()
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    })
}

#[test]
fn nothing_longer_than_the_peer_takes_is_sent_and_what_is_not_sent_is_counted_and_shown() {
    // Find a route whose UPDATE to the receiver is exactly 4,096 octets: the length grows
    // by 4 an ASN, and a prefix of another length moves it by an octet.
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "10.99.1.1");
    let rx = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
    i.set_local_address(rx, a("10.99.3.2").into());
    up(&mut i, rx, 65003, "10.99.3.1");
    let mut exact = None;
    'search: for k in 1000..1030 {
        for len in [8u8, 16, 24, 32, 0] {
            let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::new(20, 0, 0, 0), len).expect("prefix"));
            let mut u = announce(&long_path(65001, k), "10.99.1.1", &[]);
            u.nlri = vec![p];
            let out = i.handle(Event::Update {
                peer: feed,
                update: u,
            });
            let b = batches(&out, rx);
            if b.first().and_then(|b| sent_len(b, 4096)) == Some(4096) {
                exact = Some((k, p));
                break 'search;
            }
            i.handle(Event::Update {
                peer: feed,
                update: withdraw(&[&p.to_string()]),
            });
        }
    }
    let (k, p) = exact.expect("a route whose UPDATE is exactly 4,096 octets");
    assert_eq!(i.peer_stats(rx).too_large, 0);
    // One ASN more: 4,100 octets, not sent — and the peer, which had the 4,096-octet
    // version, is told to forget it.
    let mut u = announce(&long_path(65001, k + 1), "10.99.1.1", &[]);
    u.nlri = vec![p];
    let out = i.handle(Event::Update {
        peer: feed,
        update: u,
    });
    let b = batches(&out, rx);
    assert_eq!(sent_to(&out, rx), (vec![], vec![p]), "{out:?}");
    assert_eq!(b[0].too_large, vec![(p, 4100)]);
    assert_eq!(i.peer_stats(rx).too_large, 1);
    assert!(i.advertised(rx).is_empty());
    let shown = i.routes(rx, RouteSet::Advertised);
    assert_eq!(shown.len(), 1);
    assert!(
        shown[0]
            .2
            .as_deref()
            .is_some_and(|w| w.contains("4100 octets") && w.contains("4096")),
        "{shown:?}"
    );
    // A peer with extended messages (RFC 8654) takes it.
    let big = i.add_peer(neighbor("10.99.4.1", 65004, None, Export::All));
    i.set_local_address(big, a("10.99.4.2").into());
    let out = i.handle(Event::PeerUp {
        peer: big,
        negotiated: Negotiated {
            extended_message: true,
            ..negotiated(65004, "10.99.4.1")
        },
    });
    assert_eq!(sent_to(&out, big).0, vec![p]);
    assert_eq!(i.peer_stats(big).too_large, 0);
    let long = batches(&out, big)
        .iter()
        .find_map(|b| sent_len(b, crate::wire::MAX_EXTENDED_LEN))
        .expect("sent");
    assert_eq!(long, 4100);
    // Back to a shorter path: sent to the first peer again, and no longer counted.
    let mut u = announce(&long_path(65001, 3), "10.99.1.1", &[]);
    u.nlri = vec![p];
    let out = i.handle(Event::Update {
        peer: feed,
        update: u,
    });
    assert_eq!(sent_to(&out, rx).0, vec![p]);
    assert_eq!(i.peer_stats(rx).too_large, 0);
}

#[test]
fn a_next_hop_that_is_our_own_address_is_ignored_without_a_notification() {
    let mut l = lab(500, MaxPrefixAction::Teardown);
    // Customer A's session: our address is 169.254.1.1.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(
            &[65001],
            "169.254.1.1",
            &["192.168.10.0/24", "192.168.11.0/24"],
        ),
    });
    assert!(
        !out.iter().any(|a| matches!(a, Action::TearDown { .. })),
        "no NOTIFICATION: {out:?}"
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Ignored { prefixes, why, .. } if prefixes.len() == 2 && why.contains("our own address")
    )));
    assert!(routes(&out).is_empty(), "nothing installed");
    assert_eq!(sent_to(&out, l.fabric), (vec![], vec![]));
    let received = l.i.routes(l.a, RouteSet::Received);
    assert!(
        received
            .iter()
            .all(|(_, _, why)| why.as_deref().is_some_and(|w| w.contains("RFC 4271 §6.3")))
    );
    // The same route with the customer's own next hop is taken.
    let out = l.i.handle(Event::Update {
        peer: l.a,
        update: announce(&[65001], "169.254.1.2", &["192.168.10.0/24"]),
    });
    assert_eq!(sent_to(&out, l.fabric).0, vec![n("192.168.10.0/24")]);
}

#[test]
fn a_route_changed_while_the_peer_is_slow_is_sent_once_as_it_is_last() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "10.99.1.1");
    let rx = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
    i.set_local_address(rx, a("10.99.3.2").into());
    up(&mut i, rx, 65003, "10.99.3.1");
    // The peer takes nothing meanwhile: changes wait in its outbox.
    for path in [vec![65001, 1], vec![65001, 2], vec![65001, 3]] {
        i.0.handle(Event::Update {
            peer: feed,
            update: announce(&path, "10.99.1.1", &["20.0.0.0/8"]),
        });
    }
    i.0.handle(Event::Update {
        peer: feed,
        update: announce(&[65001, 9], "10.99.1.1", &["21.0.0.0/8"]),
    });
    i.0.handle(Event::Update {
        peer: feed,
        update: withdraw(&["21.0.0.0/8"]),
    });
    let out = i.drained(vec![]);
    assert_eq!(
        sent_to(&out, rx),
        (vec![n("20.0.0.0/8")], vec![]),
        "once; the other never"
    );
    let sent = attrs_sent(&out, rx, "20.0.0.0/8").expect("sent");
    assert_eq!(sent.path_asns().collect::<Vec<_>>(), vec![65002, 65001, 3]);
    assert_eq!(i.peer_stats(rx).advertised, 1);
}

#[test]
fn a_peer_taking_a_little_at_a_time_gets_every_route_once() {
    let mut i = speaker(&[]);
    let feed = add_feed(&mut i);
    up(&mut i, feed, 65001, "10.99.1.1");
    diverse_table(&mut i, feed, 5_000, 700);
    let rx = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
    i.set_local_address(rx, a("10.99.3.2").into());
    i.0.handle(Event::PeerUp {
        peer: rx,
        negotiated: negotiated(65003, "10.99.3.1"),
    });
    let mut got: Vec<IpNet> = Vec::new();
    let mut delta = 0;
    let mut turns = 0;
    // Small bites, with a change coming in between (a new route).
    while i.has_output(rx) {
        turns += 1;
        if let Some(b) = i.take(rx, 300) {
            for (_, v) in &b.announce {
                got.extend(v);
            }
            delta += b.delta;
        }
        if turns == 50 {
            i.0.handle(Event::Update {
                peer: feed,
                update: announce(&[65001, 7], "10.99.1.1", &["30.0.0.0/8"]),
            });
        }
    }
    let mut uniq = got.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), got.len(), "nothing twice");
    assert_eq!(got.len(), 5_001, "nothing dropped");
    assert_eq!(delta, 5_001);
    assert!(turns > 100, "in many small bites: {turns}");
}

/// The outbox against a model: whatever interleaving of changes to the table (both
/// families), a peer taking a little at a time, its walks and their finds waiting unsent,
/// refreshes of either family (with and without RFC 7313's markers), its export policy
/// going to "originated" and back, and graceful shutdown on and off, the peer ends
/// holding exactly what it should: each route as the table has it, marked GRACEFUL_SHUTDOWN
/// when that is on, and nothing else.
#[test]
fn whatever_the_interleaving_the_peer_ends_with_the_table() {
    use std::collections::{HashMap, HashSet};
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
    let policy = |export| {
        Some(Arc::new(NeighborPolicy {
            import: None,
            export,
            max_prefixes: None,
            prepend: 0,
        }))
    };
    for seed in 1..=24u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut i = speaker(&["198.51.100.0/24"]);
        let feed = add_feed(&mut i);
        up6(&mut i, feed, 65001, "10.99.1.1", true);
        // The feed's table as it should be: prefix → the last ASN of its path.
        let mut table: HashMap<IpNet, u32> = HashMap::new();
        let announce_one =
            |i: &mut TestInstance, table: &mut HashMap<IpNet, u32>, n: IpNet, k: u32| {
                let path = vec![AsPathSegment::Sequence(vec![65001, 100 + k])];
                let attrs = match n {
                    IpNet::V4(_) => PathAttrs {
                        as_path: path,
                        next_hop: Some(a("10.99.1.1")),
                        ..Default::default()
                    },
                    IpNet::V6(_) => PathAttrs {
                        as_path: path,
                        next_hop6: Some("2001:db8:1::1".parse().expect("v6")),
                        ..Default::default()
                    },
                };
                i.0.handle(Event::Update {
                    peer: feed,
                    update: Update {
                        attrs: Some(attrs),
                        nlri: vec![n],
                        ..Default::default()
                    },
                });
                table.insert(n, 100 + k);
            };
        let prefix = |x: u64| -> IpNet {
            let v = (x % 3000) as u32;
            if x.is_multiple_of(4) {
                let net = (0x2001_0db8_u128 << 96) | (u128::from(v) << 64);
                IpNet::V6(ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(net), 64).expect("net"))
            } else {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x1400_0000 + (v << 8)), 24).expect("net"))
            }
        };
        for _ in 0..2000 {
            let (r, k) = (next(&mut x), next(&mut x));
            announce_one(&mut i, &mut table, prefix(r), (k % 7) as u32);
        }
        let rx = i.add_peer(neighbor("10.99.3.1", 65003, None, Export::All));
        i.set_local_address(rx, a("10.99.3.2").into());
        // Odd seeds: enhanced route refresh (RFC 7313), so a refresh is framed by BoRR
        // and EoRR and the peer drops at EoRR what was not sent again since BoRR.
        i.0.handle(Event::PeerUp {
            peer: rx,
            negotiated: Negotiated {
                enhanced_route_refresh: seed % 2 == 1,
                ipv6: true,
                ..negotiated(65003, "10.99.3.1")
            },
        });
        // What the peer holds, from what it was sent: prefix → (last ASN, marked
        // GRACEFUL_SHUTDOWN); and per family what is stale in a refresh.
        let mut holds: HashMap<IpNet, (u32, bool)> = HashMap::new();
        let mut stale: [HashSet<IpNet>; 2] = Default::default();
        let take = |i: &mut TestInstance,
                    budget: usize,
                    holds: &mut HashMap<IpNet, (u32, bool)>,
                    stale: &mut [HashSet<IpNet>; 2]| {
            let Some(b) = i.0.take(rx, budget) else {
                return;
            };
            for afi in &b.begin_refresh {
                stale[*afi as usize] = holds
                    .keys()
                    .filter(|n| Afi::of(n) == *afi)
                    .copied()
                    .collect();
            }
            for n in &b.withdrawn {
                assert!(
                    holds.remove(n).is_some(),
                    "seed {seed}: {n} withdrawn, not held"
                );
                stale[Afi::of(n) as usize].remove(n);
            }
            for (attrs, v) in &b.announce {
                let last = attrs.path_asns().last().expect("a path");
                let gs = attrs.communities.contains(&GRACEFUL_SHUTDOWN);
                for n in v {
                    holds.insert(*n, (last, gs));
                    stale[Afi::of(n) as usize].remove(n);
                }
            }
            for afi in &b.end_refresh {
                for n in stale[*afi as usize].drain() {
                    holds.remove(&n);
                }
            }
        };
        let (mut all, mut gs) = (true, false);
        for _ in 0..3000 {
            let r = next(&mut x) % 100;
            match r {
                0..=37 => take(
                    &mut i,
                    1 + (next(&mut x) % 400) as usize,
                    &mut holds,
                    &mut stale,
                ),
                38..=69 => {
                    let (n, k) = (prefix(next(&mut x)), next(&mut x));
                    announce_one(&mut i, &mut table, n, (k % 7) as u32);
                }
                70..=88 => {
                    let n = prefix(next(&mut x));
                    i.0.handle(Event::Update {
                        peer: feed,
                        update: withdraw(&[&n.to_string()]),
                    });
                    table.remove(&n);
                }
                89..=92 => {
                    // A walk of a little, as the driver does when idle.
                    i.0.step_feeds(1 + (next(&mut x) % 500) as usize);
                }
                93..=95 => {
                    let afi = if next(&mut x).is_multiple_of(2) {
                        Afi::Ipv4
                    } else {
                        Afi::Ipv6
                    };
                    i.0.handle(Event::RouteRefresh {
                        peer: rx,
                        afi,
                        subtype: crate::wire::refresh::REQUEST,
                    });
                }
                96..=97 => {
                    all = !all;
                    let export = if all { Export::All } else { Export::Originated };
                    i.0.set_policy(rx, policy(export));
                }
                _ => {
                    gs = !gs;
                    i.0.set_graceful_shutdown(gs);
                }
            }
        }
        while i.0.has_output(rx) {
            take(
                &mut i,
                1 + (next(&mut x) % 4000) as usize,
                &mut holds,
                &mut stale,
            );
        }
        let mut want: HashMap<IpNet, (u32, bool)> = if all {
            table.iter().map(|(n, last)| (*n, (*last, gs))).collect()
        } else {
            HashMap::new()
        };
        want.insert(n("198.51.100.0/24"), (65002, gs));
        let wrong: Vec<_> = want
            .iter()
            .filter(|(n, w)| holds.get(n) != Some(w))
            .map(|(n, w)| format!("{n}: {w:?}, held {:?}", holds.get(n)))
            .take(5)
            .collect();
        let extra: Vec<_> = holds
            .keys()
            .filter(|n| !want.contains_key(n))
            .take(5)
            .collect();
        assert!(
            wrong.is_empty() && extra.is_empty(),
            "seed {seed} (export all: {all}, graceful shutdown: {gs}): wrong {wrong:?}, \
             held and not wanted {extra:?}"
        );
        assert_eq!(
            i.peer_stats(rx).advertised as usize,
            want.len(),
            "seed {seed}"
        );
    }
}
