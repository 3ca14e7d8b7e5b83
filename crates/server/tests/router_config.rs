//! The customer's router configuration through the API: per connection and per routing
//! instance, the key only for secretViewer, bad parameters named.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

async fn setup() -> (H, String, String, String) {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    h.pop_and_edge("pop2", "edge2", "100.64.254.1").await;
    let t1 = h.trunk("pop1", "100.64.1.2").await;
    let t2 = h.trunk("pop2", "100.64.2.2").await;
    let mk = |trunk: &str, vlan: u32| {
        json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": vlan,
               "ipv4Peering": {"peeringSubnet": format!("169.254.{vlan}.0/30"), "peerIp": format!("169.254.{vlan}.2"),
                               "cloudIp": format!("169.254.{vlan}.1"), "peerBgpAsn": 65001, "peerBgpMd5Key": "the-key"},
               "ipv6Peering": {"peeringSubnet": format!("fd00:a9fe:{vlan}::/126"), "peerIp": format!("fd00:a9fe:{vlan}::2"),
                               "cloudIp": format!("fd00:a9fe:{vlan}::1"), "peerBgpAsn": 65001}})
    };
    let a = h
        .ok(Method::POST, "/cic/v1/privateConnections", mk(&t1, 100))
        .await;
    let a = resource_id(&a);
    let b = h
        .ok(Method::POST, "/cic/v1/privateConnections", mk(&t2, 200))
        .await;
    let b = resource_id(&b);
    let ri = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1",
                   "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "az-a", "prefixes": ["10.128.0.0/24", "fd80:128::/64"]}]}],
                   "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": a}, {"cicPrivateConnectionId": b}]}),
        )
        .await;
    let ri = resource_id(&ri);
    (h, a, b, ri)
}

fn config(v: &Value) -> &str {
    v["config"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_connection_s_config_shows_the_key_only_to_a_secret_viewer() {
    let (h, a, _, _) = setup().await;
    let viewer = h.user("val", "f1", "viewer").await;
    let path = format!(
        "/cic/v1/privateConnections/{a}:routerConfig?vendor=bird&announce=192.168.10.0/24,fd10:168:10::/64"
    );
    let (s, v) = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = config(&v);
    assert!(c.contains("password \"REPLACE-WITH-THE-MD5-KEY\";"), "{c}");
    assert!(!c.contains("the-key"), "a viewer never sees the key");
    assert!(
        c.contains("neighbor 169.254.100.1 as 200350;")
            && c.contains("neighbor fd00:a9fe:100::1 as 200350;")
    );
    assert!(
        c.contains("define CIC_VPC6 = [ fd80:128::/64 ];"),
        "the instance's prefixes: {c}"
    );
    assert!(c.contains("define CIC_MINE4 = [ 192.168.10.0/24 ];"));
    assert!(c.contains("vx100"), "an overlay trunk's interface: {c}");
    h.bind("f1", "secretViewer", "val").await;
    let (_, v) = h
        .call(
            Method::GET,
            &path.replace("bird", "frr"),
            Some(&viewer),
            None,
        )
        .await;
    assert!(
        config(&v).contains(" neighbor 169.254.100.1 password the-key"),
        "{v}"
    );
    assert_eq!(v["vendor"], "frr");
    // Someone without a role in the folder: the connection does not exist for them.
    let other = h.user("oscar", "f2", "editor").await;
    let (s, _) = h.call(Method::GET, &path, Some(&other), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_routing_instance_s_config_covers_every_connection_and_its_standby() {
    let (h, _, b, ri) = setup().await;
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{ri}:routerConfig?vendor=bird&interface=vl{{vlan}}&standby={b}:community"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = config(&v);
    assert_eq!(c.matches("protocol bgp ").count(), 4, "{c}");
    assert!(
        c.contains("interface \"vl100\"") && c.contains("interface \"vl200\""),
        "{c}"
    );
    assert!(
        c.contains("export none;"),
        "nothing announced until listed: {c}"
    );
    // The standby prefers the other PoP's routes itself, and asks the cloud to.
    assert_eq!(c.matches("bgp_local_pref = 50;").count(), 2, "{c}");
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{ri}:routerConfig?vendor=bird&announce=192.168.10.0/24&standby={b}:community"),
            None,
        )
        .await;
    let c = config(&v);
    assert_eq!(
        c.matches("bgp_large_community.add((200350, 0, 7100))")
            .count(),
        1,
        "on the standby's IPv4 export only: {c}"
    );
}

#[tokio::test]
async fn bad_parameters_are_named_and_unknown_methods_refused() {
    let (h, a, _, ri) = setup().await;
    for (path, msg) in [
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig"),
            "vendor",
        ),
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig?vendor=cisco"),
            "vendor",
        ),
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig?vendor=bird&announce=10.1.2.3/8"),
            "announce[0]: 10.1.2.3/8 has host bits set",
        ),
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig?vendor=bird&announce=nope"),
            "announce[0]",
        ),
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig?vendor=bird&standby=maybe"),
            "standby",
        ),
        (
            format!("/cic/v1/privateConnections/{a}:routerConfig?vendor=bird&colour=red"),
            "colour",
        ),
        (
            format!(
                "/cloudrouter/v1/routingInstances/{ri}:routerConfig?vendor=bird&standby=prepend"
            ),
            "standby",
        ),
        (
            format!(
                "/cloudrouter/v1/routingInstances/{ri}:routerConfig?vendor=bird&standby=pcnope:prepend"
            ),
            "not a connection of routing instance",
        ),
        (
            format!("/cic/v1/privateConnections/{a}?direction=received"),
            "takes no parameters",
        ),
    ] {
        let (s, v) = h.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(err_message(&v).contains(msg), "{path}: {v}");
    }
    let (s, _) = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{ri}:nothing"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_vendor_has_a_config_with_both_sessions_and_its_own_port_names() {
    let (h, a, _, _) = setup().await;
    for (vendor, needle) in [
        ("bird", "neighbor fd00:a9fe:100::1 as 200350;"),
        ("frr", " neighbor fd00:a9fe:100::1 remote-as 200350"),
        ("ios-xe", "interface GigabitEthernet0/0/1.100"),
        ("eos", "interface Ethernet1.100"),
        (
            "junos",
            "set interfaces ge-0/0/1 unit 100 family inet6 address fd00:a9fe:100::2/126",
        ),
        (
            "routeros",
            "/interface vlan add name=vlan100 vlan-id=100 interface=ether2",
        ),
    ] {
        let (s, v) = h
            .admin(
                Method::GET,
                &format!("/cic/v1/privateConnections/{a}:routerConfig?vendor={vendor}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{vendor}: {v}");
        assert_eq!(v["vendor"], vendor);
        assert!(config(&v).contains(needle), "{vendor}: {}", config(&v));
        assert!(
            config(&v).contains("169.254.100.1"),
            "{vendor}: both families"
        );
    }
}
