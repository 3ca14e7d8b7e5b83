//! Dual stack through the API: IPv6 peerings (RFC 6164 rules), IPv6 static routes and VPC
//! prefixes with the IPv4 rules per family, PATCH adding and removing a family, each
//! family's session in the status and the edge's config. Runs on SQLite and PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

const V4: &str = "ipv4Peering";
const V6: &str = "ipv6Peering";

fn v4() -> Value {
    json!({"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
           "cloudIp": "169.254.100.1", "peerBgpAsn": 65001})
}

fn v6() -> Value {
    json!({"peeringSubnet": "fd00:a9fe:100::/126", "peerIp": "fd00:a9fe:100::2",
           "cloudIp": "fd00:a9fe:100::1", "peerBgpAsn": 65001})
}

async fn setup() -> (H, String, String) {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    (h, edge, trunk)
}

fn create(trunk: &str, vlan: u32, v4: Option<Value>, v6: Option<Value>) -> Value {
    let mut b = json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": vlan});
    if let Some(p) = v4 {
        b[V4] = p;
    }
    if let Some(p) = v6 {
        b[V6] = p;
    }
    b
}

/// Refused with `want` and a message holding `msg`; nothing written.
async fn refused(
    h: &H,
    what: &str,
    method: Method,
    path: &str,
    body: Value,
    want: StatusCode,
    msg: &str,
) {
    let rev = h.revision().await;
    let (s, v) = h.admin(method, path, Some(body)).await;
    assert_eq!(s, want, "{what}: {v}");
    assert!(
        err_message(&v).contains(msg),
        "{what}: message {:?} should mention {msg:?}",
        err_message(&v)
    );
    assert_eq!(h.revision().await, rev, "{what}: nothing was written");
}

#[tokio::test]
async fn each_ipv6_rule_rejects_naming_the_field_and_stores_nothing() {
    let (h, _, trunk) = setup().await;
    let with6 = |f: &dyn Fn(&mut Value)| {
        let mut p = v6();
        f(&mut p);
        create(&trunk, 200, Some(v4()), Some(p))
    };
    let set = |subnet: &'static str, peer: &'static str, cloud: &'static str| {
        move |p: &mut Value| {
            p["peeringSubnet"] = json!(subnet);
            p["peerIp"] = json!(peer);
            p["cloudIp"] = json!(cloud);
        }
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/64",
            with6(&set("fd00::/64", "fd00::2", "fd00::1")),
            "ipv6Peering.peeringSubnet: fd00::/64 must be a /125, /126 or /127",
        ),
        (
            "/124",
            with6(&set("fd00::/124", "fd00::2", "fd00::1")),
            "/125, /126 or /127",
        ),
        (
            "host bits",
            with6(&set("fd00::1/126", "fd00::2", "fd00::1")),
            "host bits",
        ),
        (
            "link-local",
            with6(&set("fe80::/126", "fe80::2", "fe80::1")),
            "link-local",
        ),
        (
            "multicast",
            with6(&set("ff02::/126", "ff02::2", "ff02::1")),
            "multicast",
        ),
        (
            "loopback",
            with6(&set("::/126", "::2", "::1")),
            "ipv6Peering.peeringSubnet",
        ),
        (
            "v4-mapped",
            with6(&set("::ffff:a00:0/126", "::ffff:a00:2", "::ffff:a00:1")),
            "IPv4-mapped",
        ),
        (
            "documentation",
            with6(&set("2001:db8::/126", "2001:db8::2", "2001:db8::1")),
            "documentation",
        ),
        (
            "not ULA nor global",
            with6(&set("4000::/126", "4000::2", "4000::1")),
            "neither unique local",
        ),
        (
            "anycast",
            with6(&set("fd00::/126", "fd00::", "fd00::1")),
            "ipv6Peering.peerIp: fd00:: is the subnet-router anycast address",
        ),
        (
            "outside",
            with6(&set("fd00::/126", "fd00::9", "fd00::1")),
            "ipv6Peering.peerIp: fd00::9 is not in the peering subnet",
        ),
        (
            "same",
            with6(&set("fd00::/126", "fd00::1", "fd00::1")),
            "ipv6Peering.cloudIp: must differ",
        ),
        (
            "bad address",
            with6(&|p| p["peerIp"] = json!("fd00::g")),
            "ipv6Peering.peerIp",
        ),
        (
            "an IPv4 address",
            with6(&|p| p["peerIp"] = json!("169.254.100.2")),
            "ipv6Peering.peerIp",
        ),
        (
            "asn differs",
            with6(&|p| p["peerBgpAsn"] = json!(65002)),
            "ipv6Peering.peerBgpAsn: 65002 differs from ipv4Peering.peerBgpAsn",
        ),
        (
            "cloud asn",
            with6(&|p| p["peerBgpAsn"] = json!(200350)),
            "ipv6Peering.peerBgpAsn",
        ),
        (
            "doc asn",
            with6(&|p| p["peerBgpAsn"] = json!(64500)),
            "documentation",
        ),
        (
            "long md5",
            with6(&|p| p["peerBgpMd5Key"] = json!("k".repeat(81))),
            "ipv6Peering.peerBgpMd5Key",
        ),
        (
            "cloud asn given",
            with6(&|p| p["cloudBgpAsn"] = json!(1)),
            "cloudBgpAsn",
        ),
        (
            "no peering",
            create(&trunk, 200, None, None),
            "needs ipv4Peering, ipv6Peering or both",
        ),
        (
            "IPv6 routes without an IPv6 peering",
            {
                let mut b = create(&trunk, 200, Some(v4()), None);
                b["ipv6StaticRoutes"] = json!([{"prefix": "2a00:1::/48"}]);
                b
            },
            "ipv6StaticRoutes: needs an ipv6Peering",
        ),
        (
            "IPv4 routes without an IPv4 peering",
            {
                let mut b = create(&trunk, 200, None, Some(v6()));
                b["ipv4StaticRoutes"] = json!([{"prefix": "10.9.0.0/16"}]);
                b
            },
            "ipv4StaticRoutes: needs an ipv4Peering",
        ),
        (
            "IPv6 default route",
            {
                let mut b = create(&trunk, 200, None, Some(v6()));
                b["ipv6StaticRoutes"] = json!([{"prefix": "::/0"}]);
                b
            },
            "ipv6StaticRoutes[0].prefix: ::/0 is the default route",
        ),
        (
            "IPv6 martian",
            {
                let mut b = create(&trunk, 200, None, Some(v6()));
                b["ipv6StaticRoutes"] = json!([{"prefix": "2a00:1::/48"}, {"prefix": "fe80::/64"}]);
                b
            },
            "ipv6StaticRoutes[1].prefix: fe80::/64 is inside fe80::/10 (link local)",
        ),
        (
            "IPv6 route in the IPv4 list",
            {
                let mut b = create(&trunk, 200, Some(v4()), Some(v6()));
                b["ipv4StaticRoutes"] = json!([{"prefix": "2a00:1::/48"}]);
                b
            },
            "ipv4StaticRoutes[0].prefix",
        ),
        (
            "IPv6 quota",
            {
                let mut b = create(&trunk, 200, None, Some(v6()));
                b["ipv6StaticRoutes"] = json!(
                    (0..101)
                        .map(|i| json!({"prefix": format!("2a00:{i:x}::/32")}))
                        .collect::<Vec<_>>()
                );
                b
            },
            "the quota is 100",
        ),
    ];
    for (what, body, msg) in cases {
        refused(
            &h,
            what,
            Method::POST,
            "/cic/v1/privateConnections",
            body,
            StatusCode::BAD_REQUEST,
            msg,
        )
        .await;
        assert_eq!(
            h.count("/cic/v1/privateConnections").await,
            0,
            "{what}: nothing stored"
        );
    }
    // The quota counts each family on its own: 100 of each is fine.
    let mut b = create(&trunk, 200, Some(v4()), Some(v6()));
    b["ipv4StaticRoutes"] = json!(
        (0..100)
            .map(|i| json!({"prefix": format!("10.{i}.0.0/16")}))
            .collect::<Vec<_>>()
    );
    b["ipv6StaticRoutes"] = json!(
        (0..100)
            .map(|i| json!({"prefix": format!("2a00:{i:x}::/32")}))
            .collect::<Vec<_>>()
    );
    let (s, v) = h
        .admin(Method::POST, "/cic/v1/privateConnections", Some(b))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn dual_stack_and_ipv6_only_connections_reach_the_edge_with_a_peering_per_family() {
    let (h, edge, trunk) = setup().await;
    let mut p6 = v6();
    p6["peerBgpMd5Key"] = json!("six-key");
    let mut body = create(&trunk, 100, Some(v4()), Some(p6));
    body["ipv6StaticRoutes"] = json!([{"prefix": "2a00:1::/48"}]);
    let op = h.ok(Method::POST, "/cic/v1/privateConnections", body).await;
    let dual = resource_id(&op);
    // A /127 uses both of its addresses (RFC 6164): the all-zeros one is a host there.
    let only6 = json!({"peeringSubnet": "fd00:a9fe:101::/127", "peerIp": "fd00:a9fe:101::1",
                       "cloudIp": "fd00:a9fe:101::", "peerBgpAsn": "4200000001"});
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            create(&trunk, 101, None, Some(only6)),
        )
        .await;
    let six = resource_id(&op);

    let viewer = h.user("val", "f1", "viewer").await;
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{dual}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[V6]["cloudBgpAsn"], "200350");
    assert_eq!(
        v[V6]["peerBgpMd5Key"], "********",
        "the IPv6 key is a secret too"
    );
    assert_eq!(v["ipv6StaticRoutes"][0]["prefix"], "2a00:1::/48");
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{six}"),
            None,
        )
        .await;
    assert!(
        v.get(V4).is_none(),
        "an IPv6-only connection has no ipv4Peering: {v}"
    );

    let cfg = h.edge_config(&edge).await;
    let conn = |id: &str| -> Value {
        cfg["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["connections"].as_array().cloned().unwrap_or_default())
            .find(|c| c["id"] == id)
            .expect("on the edge")
    };
    let d = conn(&dual);
    assert_eq!(d["peerings"].as_array().map(Vec::len), Some(2));
    assert_eq!(d["peerings"][0]["peerIp"], "169.254.100.2");
    assert_eq!(d["peerings"][1]["peerIp"], "fd00:a9fe:100::2");
    assert_eq!(
        d["peerings"][1]["md5Key"], "six-key",
        "the edge needs the key"
    );
    assert_eq!(d["peerings"][1]["staticRoutes"], json!(["2a00:1::/48"]));
    let o = conn(&six);
    assert_eq!(o["peerings"].as_array().map(Vec::len), Some(1));
    assert_eq!(o["peerings"][0]["subnet"], "fd00:a9fe:101::/127");

    // The edge reports a session per family: the API shows bgp and bgpIpv6.
    let session = |family: Option<&str>, peer: &str, state: &str| {
        let mut s = json!({"resourceId": dual, "kind": "customer", "peer": peer, "peerAsn": 65001,
                           "state": state, "uptimeSecs": 5, "prefixesReceived": 1,
                           "prefixesAccepted": 1, "prefixesAdvertised": 2});
        if let Some(f) = family {
            s["family"] = json!(f);
        }
        s
    };
    let (s, v) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(&edge),
            Some(
                json!({"appliedRevision": h.revision().await, "dataplane": "vxlan-overlay",
                        "sessions": [session(None, "169.254.100.2", "ESTABLISHED"),
                                     session(Some("ipv6"), "fd00:a9fe:100::2", "ACTIVE")],
                        "errors": []}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{dual}"),
            None,
        )
        .await;
    assert_eq!(v["bgp"]["state"], "ESTABLISHED", "{v}");
    assert_eq!(v["bgpIpv6"]["state"], "ACTIVE", "{v}");
    assert_eq!(v["bgpIpv6"]["peer"], "fd00:a9fe:100::2");
    assert_eq!(v["bgpIpv6"]["family"], "ipv6");

    // The looking glass of a family the connection does not have: said at once.
    refused(
        &h,
        "routes of a missing family",
        Method::GET,
        &format!("/cic/v1/privateConnections/{six}:routes?family=ipv4"),
        Value::Null,
        StatusCode::BAD_REQUEST,
        "has no ipv4Peering",
    )
    .await;
}

#[tokio::test]
async fn patch_adds_and_removes_a_family_but_never_the_last() {
    let (h, edge, trunk) = setup().await;
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            create(&trunk, 100, Some(v4()), None),
        )
        .await;
    let pc = resource_id(&op);
    let path = format!("/cic/v1/privateConnections/{pc}");
    // A patch that would make a new IPv6 peering must be whole.
    refused(
        &h,
        "half a new peering",
        Method::PATCH,
        &path,
        json!({"ipv6Peering": {"peerBgpAsn": 65001}}),
        StatusCode::BAD_REQUEST,
        "ipv6Peering.peeringSubnet: is required",
    )
    .await;
    refused(
        &h,
        "a new peering with another ASN",
        Method::PATCH,
        &path,
        json!({"ipv6Peering": {"peeringSubnet": "fd00:a9fe:100::/126", "peerIp": "fd00:a9fe:100::2",
                               "cloudIp": "fd00:a9fe:100::1", "peerBgpAsn": 65009}}),
        StatusCode::BAD_REQUEST,
        "differs from ipv4Peering.peerBgpAsn",
    )
    .await;
    let op = h
        .ok(Method::PATCH, &path, json!({"ipv6Peering": v6()}))
        .await;
    assert_eq!(op["done"], false, "the edge applies it");
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(v[V6]["peerIp"], "fd00:a9fe:100::2");
    assert_eq!(v[V4]["peerIp"], "169.254.100.2", "IPv4 untouched");
    // Merged field by field, as the IPv4 one is.
    h.ok(
        Method::PATCH,
        &path,
        json!({"ipv6Peering": {"peerIp": "fd00:a9fe:100::3"}}),
    )
    .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(v[V6]["peerIp"], "fd00:a9fe:100::3");
    assert_eq!(v[V6]["cloudIp"], "fd00:a9fe:100::1");
    // IPv4 removed: an IPv6-only connection, on the edge too.
    h.ok(Method::PATCH, &path, json!({"ipv4Peering": null}))
        .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert!(v.get(V4).is_none(), "{v}");
    let cfg = h.edge_config(&edge).await;
    let peerings = &cfg["instances"][0]["connections"][0]["peerings"];
    assert_eq!(peerings.as_array().map(Vec::len), Some(1), "{cfg}");
    assert_eq!(peerings[0]["peerIp"], "fd00:a9fe:100::3");
    // The last family cannot go, by null or by an update mask naming it.
    refused(
        &h,
        "the last peering",
        Method::PATCH,
        &path,
        json!({"ipv6Peering": null}),
        StatusCode::BAD_REQUEST,
        "needs ipv4Peering, ipv6Peering or both",
    )
    .await;
    refused(
        &h,
        "the last peering by mask",
        Method::PATCH,
        &path,
        json!({"updateMask": "ipv6Peering"}),
        StatusCode::BAD_REQUEST,
        "needs ipv4Peering, ipv6Peering or both",
    )
    .await;
    // Static routes of a family follow its peering.
    refused(
        &h,
        "IPv4 routes on an IPv6-only connection",
        Method::POST,
        &format!("{path}:upsertStaticRoutes"),
        json!({"ipv4StaticRoutes": [{"prefix": "10.9.0.0/16"}]}),
        StatusCode::BAD_REQUEST,
        "needs an ipv4Peering",
    )
    .await;
    h.ok(
        Method::POST,
        &format!("{path}:upsertStaticRoutes"),
        json!({"ipv6StaticRoutes": [{"prefix": "2a00:1::/48"}]}),
    )
    .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(v["ipv6StaticRoutes"], json!([{"prefix": "2a00:1::/48"}]));
    h.ok(
        Method::POST,
        &format!("{path}:removeStaticRoutes"),
        json!({"ipv6StaticRoutes": [{"prefix": "2a00:1::/48"}]}),
    )
    .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert!(v.get("ipv6StaticRoutes").is_none(), "{v}");
}

#[tokio::test]
async fn routing_instances_take_ipv6_prefixes_with_the_rules_per_family() {
    let (h, _, trunk) = setup().await;
    let (_, pop2_trunk) = {
        h.pop_and_edge("pop2", "edge2", "100.64.254.1").await;
        ((), h.trunk("pop2", "100.64.2.2").await)
    };
    let mut a = create(&trunk, 100, Some(v4()), Some(v6()));
    a["ipv6StaticRoutes"] = json!([{"prefix": "fd80:128:1::/48"}]);
    let a = h.ok(Method::POST, "/cic/v1/privateConnections", a).await;
    let a = resource_id(&a);
    // Another PoP, but the same IPv6 peering subnet.
    let mut p4 = v4();
    p4["peeringSubnet"] = json!("169.254.200.0/30");
    p4["peerIp"] = json!("169.254.200.2");
    p4["cloudIp"] = json!("169.254.200.1");
    let b = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            create(&pop2_trunk, 200, Some(p4), Some(v6())),
        )
        .await;
    let b = resource_id(&b);
    let ri = |prefixes: Value, conns: Vec<&str>| {
        json!({"folderId": "f1",
               "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "az-a", "prefixes": prefixes}]}],
               "cicPrivateConnectionInfo": conns.iter().map(|c| json!({"cicPrivateConnectionId": c})).collect::<Vec<_>>()})
    };
    let many6: Vec<String> = (0..101).map(|i| format!("fd80:{i:x}::/32")).collect();
    let path = "/cloudrouter/v1/routingInstances";
    for (what, body, want, msg) in [
        (
            "v6 overlap",
            ri(json!(["fd80:128::/48", "fd80:128:0:1::/64"]), vec![]),
            StatusCode::BAD_REQUEST,
            "overlap",
        ),
        (
            "v6 host bits",
            ri(json!(["fd80:128::1/64"]), vec![]),
            StatusCode::BAD_REQUEST,
            "host bits",
        ),
        (
            "v6 quota",
            ri(json!(many6), vec![]),
            StatusCode::BAD_REQUEST,
            "101 IPv6 prefixes; the quota is 100",
        ),
        (
            "a static route over an IPv6 VPC prefix",
            ri(json!(["10.128.0.0/24", "fd80:128::/32"]), vec![&a]),
            StatusCode::CONFLICT,
            "static route fd80:128:1::/48",
        ),
        (
            "overlapping IPv6 peering subnets",
            ri(json!(["fd80:129::/64"]), vec![&a, &b]),
            StatusCode::CONFLICT,
            "fd00:a9fe:100::/126",
        ),
    ] {
        refused(&h, what, Method::POST, path, body, want, msg).await;
        assert_eq!(h.count(path).await, 0, "{what}");
    }
    // Each family against its own quota: 100 IPv4 and 100 IPv6 prefixes together.
    let both: Vec<String> = (0..100)
        .map(|i| format!("10.{i}.0.0/16"))
        .chain((0..100).map(|i| format!("fd80:{i:x}::/32")))
        .collect();
    let (s, v) = h
        .admin(Method::POST, path, Some(ri(json!(both), vec![])))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_edge_fabric_pool6_is_checked() {
    let h = H::new().await;
    h.ok(
        Method::POST,
        "/cic/v1/pointOfPresences",
        json!({"id": "pop1", "name": "pop1"}),
    )
    .await;
    for (pool, msg) in [
        ("fd00:fab::1/64", "host bits"),
        ("fe80::/64", "neither unique local"),
        ("fd00:fab::/128", "at least one /127"),
    ] {
        refused(
            &h,
            pool,
            Method::POST,
            "/cic/v1/edges",
            json!({"name": "e1", "pointOfPresenceId": "pop1", "routerId": "10.255.0.1",
                   "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": "100.64.255.1",
                              "transitPool": "100.127.0.0/24", "transitPool6": pool}}),
            StatusCode::BAD_REQUEST,
            msg,
        )
        .await;
    }
}

#[tokio::test]
async fn a_public_connection_takes_an_ipv6_peering_to_the_services_ipv6_prefixes() {
    let (h, edge, trunk) = setup().await;
    // A service with prefixes of both families, and one with IPv4 only.
    h.ok(
        Method::POST,
        "/cic/v1/cloudServices",
        json!({"id": "CLOUD_SERVICE_S3", "prefixes": ["213.180.193.243/32", "2a02:6b8::2:242/128"]}),
    )
    .await;
    h.ok(
        Method::POST,
        "/cic/v1/cloudServices",
        json!({"id": "CLOUD_SERVICE_MONITORING", "prefixes": ["84.201.181.26/32"]}),
    )
    .await;
    for (bad, msg) in [
        (
            json!(["fd00::1/128"]),
            "prefixes[0]: fd00::1/128 is not global unicast",
        ),
        (json!(["2001:db8::1/128"]), "documentation"),
        (json!(["2a00::/8"]), "too wide"),
        (
            json!(["2a02:6b8::1/128", "2a02:6b8::1/128"]),
            "listed twice",
        ),
    ] {
        refused(
            &h,
            &bad.to_string(),
            Method::POST,
            "/cic/v1/cloudServices",
            json!({"id": "CLOUD_SERVICE_X", "prefixes": bad}),
            StatusCode::BAD_REQUEST,
            msg,
        )
        .await;
    }
    let body = json!({"folderId": "f1", "name": "pub", "trunkConnectionId": trunk, "vlanId": "300",
        "ipv4Peering": {"peeringSubnet": "5.45.200.0/31", "peerIp": "5.45.200.1", "cloudIp": "5.45.200.0", "peerBgpAsn": "65001"},
        "ipv4AllowedServiceTypes": ["CLOUD_SERVICE_S3", "CLOUD_SERVICE_MONITORING"],
        "ipv4PeerAnnouncedPrefixes": ["5.45.192.0/22"],
        "ipv6Peering": {"peeringSubnet": "2a0c:9a40::/127", "peerIp": "2a0c:9a40::1", "cloudIp": "2a0c:9a40::", "peerBgpAsn": "65001"},
        "ipv6AllowedServiceTypes": ["CLOUD_SERVICE_S3"],
        "ipv6PeerAnnouncedPrefixes": ["2a0c:9a40:1000::/36"]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = body.clone();
        f(&mut b);
        b
    };
    for (what, b, msg) in [
        (
            "a ULA public peering",
            with(
                &|b| b[V6] = json!({"peeringSubnet": "fd00::/127", "peerIp": "fd00::1", "cloudIp": "fd00::", "peerBgpAsn": "65001"}),
            ),
            "ipv6Peering.peeringSubnet: fd00::/127 is not global unicast",
        ),
        (
            "a service without IPv6",
            with(&|b| b["ipv6AllowedServiceTypes"] = json!(["CLOUD_SERVICE_MONITORING"])),
            "ipv6AllowedServiceTypes[0]: CLOUD_SERVICE_MONITORING has no IPv6 prefixes",
        ),
        (
            "no IPv6 service",
            with(&|b| b["ipv6AllowedServiceTypes"] = json!([])),
            "ipv6AllowedServiceTypes: names no service",
        ),
        (
            "a private announced prefix",
            with(&|b| b["ipv6PeerAnnouncedPrefixes"] = json!(["fd00:1::/48"])),
            "ipv6PeerAnnouncedPrefixes[0]",
        ),
        (
            "IPv6 lists without the peering",
            with(&|b| {
                b.as_object_mut().expect("object").remove(V6);
            }),
            "ipv6AllowedServiceTypes: needs an ipv6Peering",
        ),
        (
            "another ASN",
            with(&|b| b[V6]["peerBgpAsn"] = json!("65002")),
            "differs from ipv4Peering.peerBgpAsn",
        ),
    ] {
        refused(
            &h,
            what,
            Method::POST,
            "/cic/v1/publicConnections",
            b,
            StatusCode::BAD_REQUEST,
            msg,
        )
        .await;
    }
    let op = h.ok(Method::POST, "/cic/v1/publicConnections", body).await;
    let id = resource_id(&op);
    let cfg = h.edge_config(&edge).await;
    let inst = common::edge_instance(&cfg, &id);
    // Each family's services on its session: S3's IPv6 prefix, not MONITORING's (none).
    assert_eq!(
        inst["vpcPrefixes"],
        json!([
            "84.201.181.26/32",
            "213.180.193.243/32",
            "2a02:6b8::2:242/128"
        ])
    );
    assert_eq!(
        inst["acceptOnly"],
        json!(["5.45.192.0/22", "2a0c:9a40:1000::/36"])
    );
    let peerings = &inst["connections"][0]["peerings"];
    assert_eq!(peerings[1]["peerIp"], "2a0c:9a40::1", "{inst}");
    // With a public-services network at the PoP, its segment has an IPv6 side for the
    // IPv6 session toward the services routers.
    assert_eq!(inst["fabric"], Value::Null, "no network yet");
    let pop = "pop1";
    h.ok(
        Method::PUT,
        &format!("/cic/v1/pointOfPresences/{pop}"),
        json!({"id": pop, "name": pop,
               "publicServices": {"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 64999}}),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    let inst = common::edge_instance(&cfg, &id);
    assert!(inst["fabric"]["ipv6"]["edgeIp"].is_string(), "{inst}");
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/publicConnections/{id}"),
            None,
        )
        .await;
    assert_eq!(v[V6]["cloudBgpAsn"], "200350", "{v}");
    // The service cannot go while the connection allows it for IPv6.
    refused(
        &h,
        "a service in use",
        Method::DELETE,
        "/cic/v1/cloudServices/CLOUD_SERVICE_S3",
        Value::Null,
        StatusCode::CONFLICT,
        "still allows CLOUD_SERVICE_S3",
    )
    .await;
}
