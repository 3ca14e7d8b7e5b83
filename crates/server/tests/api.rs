//! API tests: every rule of REFERENCE.md, operations and edge sync.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cic_server::bootstrap_admin;
use cic_store::Store;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let h = H::new().await;
    let (s, v) = h
        .call(Method::GET, "/cic/v1/trunkConnections", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], "UNAUTHENTICATED");
    let (s, _) = h
        .call(Method::GET, "/cic/v1/trunkConnections", Some("nope"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn edge_tokens_only_sync_and_users_cannot_sync() {
    let h = H::new().await;
    let (edge_token, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let (s, v) = h
        .call(
            Method::GET,
            "/cic/v1/trunkConnections",
            Some(&edge_token),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED"))
    );
    let (s, _) = h
        .call(
            Method::POST,
            "/cic/v1/pointOfPresences",
            Some(&edge_token),
            Some(json!({"id": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h.admin(Method::GET, "/cic/v1/edgeSync/config", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_generated_admin_token_is_stored_only_as_a_hash_and_made_once() {
    let store = Store::open("sqlite::memory:").await.expect("store");
    let t = bootstrap_admin(&store, None)
        .await
        .expect("boot")
        .expect("a new token");
    assert!(
        store.token(&t).await.expect("q").is_none(),
        "the plain token is not stored"
    );
    assert!(
        store
            .token(&cic_server::auth::hash(&t))
            .await
            .expect("q")
            .is_some()
    );
    assert_eq!(
        bootstrap_admin(&store, None).await.expect("boot"),
        None,
        "not made again"
    );
}

// ---------------------------------------------------------------------------------------
// Operations finish when the edge has applied them

/// The edge's config as the edge asks for it, with the tag of the answer it holds.
async fn edge_sync(h: &H, edge: &str, since: Option<&str>) -> Value {
    let path = match since {
        Some(tag) => format!("/cic/v1/edgeSync/config?changesSince={tag}"),
        None => "/cic/v1/edgeSync/config".to_string(),
    };
    let (s, v) = h.call(Method::GET, &path, Some(edge), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["tag"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    v
}

#[tokio::test]
async fn an_edge_is_sent_only_the_instances_changed_since_the_answer_it_holds() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let pcs = h.numbered_connections(&trunk, 3).await;
    let ids = |v: &Value| -> Vec<String> {
        v["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    };
    let first = edge_sync(&h, &edge, None).await;
    assert!(
        first.get("changesSince").is_none(),
        "asked for nothing: whole"
    );
    assert_eq!(ids(&first).len(), 3);
    let t1 = first["tag"].as_str().expect("tag").to_string();

    // One connection added, one changed, one deleted; the third left alone.
    let (s, op) = h.numbered_connection(&trunk, 4).await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let added = resource_id(&op);
    let (s, v) = h
        .admin(
            Method::PATCH,
            &format!("/cic/v1/privateConnections/{}", pcs[1]),
            Some(json!({"bfd": {"minIntervalMs": 300, "multiplier": 3}, "updateMask": "bfd"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{}", pcs[0]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let changes = edge_sync(&h, &edge, Some(&t1)).await;
    assert_eq!(changes["changesSince"], t1.as_str());
    // The same request again names an answer no longer kept (the one just given
    // replaced it): answered whole — which says what the changes must have been.
    let whole = edge_sync(&h, &edge, Some(&t1)).await;
    assert!(whole.get("changesSince").is_none(), "{whole}");
    let before: Vec<&Value> = first["instances"].as_array().unwrap().iter().collect();
    let want: Vec<String> = whole["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !before.contains(i))
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(want.contains(&added) && want.contains(&pcs[1]), "{want:?}");
    assert!(
        !want.contains(&pcs[2]),
        "the untouched connection is not sent"
    );
    assert_eq!(ids(&changes), want);
    let now = ids(&whole);
    let gone: Vec<String> = ids(&first)
        .into_iter()
        .filter(|i| !now.contains(i))
        .collect();
    assert_eq!(
        gone,
        [pcs[0].clone()],
        "the deleted connection's instance goes at once"
    );
    assert_eq!(
        changes["removedInstances"].as_array().map_or(0, Vec::len),
        gone.len()
    );
    for id in &gone {
        assert!(
            changes["removedInstances"]
                .as_array()
                .unwrap()
                .contains(&json!(id))
        );
    }
    for field in [
        "revision", "edgeId", "routerId", "localAsn", "bgp", "trunks",
    ] {
        assert_eq!(changes[field], whole[field], "{field} is sent whole");
    }
    let changed_instances: Vec<&Value> = changes["instances"].as_array().unwrap().iter().collect();
    for i in whole["instances"].as_array().unwrap() {
        if want.contains(&i["id"].as_str().unwrap().to_string()) {
            assert!(changed_instances.contains(&i), "sent as compiled: {i}");
        }
    }
    // What the edge makes of them, from the whole config it held: the config compiled.
    let update = |v: &Value| {
        serde_json::from_value::<cic_model::edge::EdgeConfigUpdate>(v.clone()).expect("an update")
    };
    let held = update(&first).config;
    let made = update(&changes)
        .into_config(Some((t1.as_str(), &held)))
        .expect("the changes apply to the answer held");
    assert_eq!(made, update(&whole).config);

    // Nothing changed since: nothing sent but the config's other fields.
    let t3 = whole["tag"].as_str().expect("tag");
    let idle = edge_sync(&h, &edge, Some(t3)).await;
    assert_eq!(idle["changesSince"], t3);
    assert_eq!(idle["instances"], json!([]));
    assert!(idle.get("removedInstances").is_none(), "{idle}");
    // A tag this server never gave: whole.
    let unknown = edge_sync(&h, &edge, Some("cf-not-a-tag")).await;
    assert!(unknown.get("changesSince").is_none());
    assert_eq!(ids(&unknown), now);
}

#[tokio::test]
async fn operation_finishes_when_the_edge_reports_the_revision() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/trunkConnections",
            json!({"folderId": "f1", "name": "t1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                   "overlayJoint": {"remoteVtep": "100.64.1.2"}}),
        )
        .await;
    assert_eq!(op["done"], false);
    assert!(op.get("response").is_none() && op.get("error").is_none());
    let id = resource_id(&op);
    let (_, t) = h
        .admin(Method::GET, &format!("/cic/v1/trunkConnections/{id}"), None)
        .await;
    assert_eq!(t["status"], "CREATING");

    // The edge fetches its config at once and sees the trunk.
    let (s, cfg) = h
        .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{cfg}");
    assert_eq!(cfg["trunks"][0]["id"], id);
    let rev = cfg["revision"].as_u64().expect("revision");

    h.report(&edge, rev - 1, json!([])).await;
    let (_, o) = h
        .admin(
            Method::GET,
            &format!("/operations/{}", op["id"].as_str().expect("op")),
            None,
        )
        .await;
    assert_eq!(o["done"], false, "an older revision does not finish it");

    h.report(&edge, rev, json!([])).await;
    let (_, o) = h
        .admin(
            Method::GET,
            &format!("/operations/{}", op["id"].as_str().expect("op")),
            None,
        )
        .await;
    assert_eq!(o["done"], true);
    assert_eq!(o["response"]["status"], "ACTIVE");
    assert!(o.get("error").is_none());
    let (_, t) = h
        .admin(Method::GET, &format!("/cic/v1/trunkConnections/{id}"), None)
        .await;
    assert_eq!(t["status"], "ACTIVE");
}

/// Creates a trunk on port eth9 of pop1 (folder f1); its operation.
async fn create_eth9_trunk(h: &H) -> Value {
    h.ok(
        Method::POST,
        "/cic/v1/trunkConnections",
        json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
               "singlePortDirectJoint": {"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR", "portName": "eth9"}}),
    )
    .await
}

#[tokio::test]
async fn an_edge_error_finishes_the_operation_with_that_error() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let op = create_eth9_trunk(&h).await;
    let id = resource_id(&op);
    let rev = h.revision().await;
    h.report(
        &edge,
        rev,
        json!([{"resourceId": id, "message": "port eth9 not found"}]),
    )
    .await;
    let (_, o) = h
        .admin(
            Method::GET,
            &format!("/operations/{}", op["id"].as_str().expect("op")),
            None,
        )
        .await;
    assert_eq!(o["done"], true);
    assert_eq!(o["error"]["code"], "FAILED_PRECONDITION");
    assert!(
        err_message(&o["error"]).contains("port eth9 not found"),
        "{o}"
    );
}

#[tokio::test]
async fn a_transient_edge_error_keeps_the_operation_waiting_until_the_edge_s_next_word() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let create = || create_eth9_trunk(&h);
    let op_of = |op: &Value| format!("/operations/{}", op["id"].as_str().expect("op"));
    let busy = |id: &str| {
        json!({"resourceId": id, "message": "find link eth9: no answer from the kernel in 10 s",
               "transient": true})
    };

    // Waited through, then done once the edge applies it.
    let op = create().await;
    let id = resource_id(&op);
    let rev = h.revision().await;
    h.report(&edge, rev, json!([busy(&id)])).await;
    let (_, o) = h.admin(Method::GET, &op_of(&op), None).await;
    assert_eq!(
        o["done"], false,
        "a transient failure does not finish it: {o}"
    );
    h.report(&edge, rev, json!([])).await;
    let (_, o) = h.admin(Method::GET, &op_of(&op), None).await;
    assert_eq!(o["done"], true, "{o}");
    assert!(o.get("error").is_none(), "{o}");
    assert_eq!(o["response"]["status"], "ACTIVE");

    // Waited through, then failed with the failure as final.
    let op = create().await;
    let id = resource_id(&op);
    let rev = h.revision().await;
    h.report(&edge, rev, json!([busy(&id)])).await;
    let (_, o) = h.admin(Method::GET, &op_of(&op), None).await;
    assert_eq!(o["done"], false, "{o}");
    let mut last = busy(&id);
    last["transient"] = json!(false);
    h.report(&edge, rev, json!([last])).await;
    let (_, o) = h.admin(Method::GET, &op_of(&op), None).await;
    assert_eq!(o["done"], true, "{o}");
    assert_eq!(o["error"]["code"], "FAILED_PRECONDITION");
    assert!(
        err_message(&o["error"]).contains("no answer from the kernel"),
        "{o}"
    );

    // One final failure beside a transient one finishes it at once.
    let op = create().await;
    let id = resource_id(&op);
    let rev = h.revision().await;
    h.report(
        &edge,
        rev,
        json!([busy(&id), {"resourceId": id, "message": "port eth9 not found"}]),
    )
    .await;
    let (_, o) = h.admin(Method::GET, &op_of(&op), None).await;
    assert_eq!(o["done"], true, "{o}");
    assert!(
        err_message(&o["error"]).contains("port eth9 not found"),
        "{o}"
    );
}

/// An edge that reports a failure as one that may pass for ever (an agent that restarts
/// again and again counts its failures anew each time) does not hold an operation without
/// end: the server fails it after its own bound, the failure named.
#[tokio::test]
async fn an_operation_held_by_failures_that_may_pass_fails_after_the_server_s_bound() {
    use cic_model::edge::HELD_AT_MOST;
    use std::time::Duration;
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let op = create_eth9_trunk(&h).await;
    let path = format!("/operations/{}", op["id"].as_str().expect("op"));
    let id = resource_id(&op);
    let busy = json!([{"resourceId": id, "message": "find link eth9: no answer from the kernel in 10 s",
                       "transient": true}]);
    let rev = h.revision().await;
    // The server's clock moved on by hand (time is the input here, not a wait).
    let pass = |d: Duration| async move {
        tokio::time::pause();
        tokio::time::advance(d).await;
        tokio::time::resume();
    };
    h.report(&edge, rev, busy.clone()).await;
    pass(HELD_AT_MOST - Duration::from_secs(1)).await;
    h.report(&edge, rev, busy.clone()).await;
    let (_, o) = h.admin(Method::GET, &path, None).await;
    assert_eq!(o["done"], false, "within the bound it waits: {o}");
    pass(Duration::from_secs(1)).await;
    h.report(&edge, rev, busy).await;
    let (_, o) = h.admin(Method::GET, &path, None).await;
    assert_eq!(o["done"], true, "held for the bound: {o}");
    assert_eq!(o["error"]["code"], "FAILED_PRECONDITION", "{o}");
    let message = err_message(&o["error"]);
    assert!(
        message.contains("no answer from the kernel")
            && message.contains(&format!("still failing after {} s", HELD_AT_MOST.as_secs())),
        "{message}"
    );
}

/// An operation on two edges, held by one edge's transient failure after that edge had
/// reported the revision clean, finishes with that edge's next report.
#[tokio::test]
async fn an_operation_on_two_edges_held_by_a_transient_failure_finishes_with_its_edge_s_next_report()
 {
    let h = H::new().await;
    let (e1, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let (e2, _) = h.pop_and_edge("pop2", "edge2", "100.64.255.3").await;
    let t1 = h.trunk("pop1", "100.64.1.2").await;
    let t2 = h.trunk("pop2", "100.64.1.3").await;
    for edge in [&e1, &e2] {
        h.report(edge, h.revision().await, json!([])).await;
    }
    let (_, a) = h.numbered_connection(&t1, 1).await;
    let (_, b) = h.numbered_connection(&t2, 2).await;
    for edge in [&e1, &e2] {
        h.report(edge, h.revision().await, json!([])).await;
    }
    let (a, b) = (resource_id(&a), resource_id(&b));
    let op = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1",
                   "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "az-a", "prefixes": ["10.128.0.0/24"]}]}],
                   "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": a}, {"cicPrivateConnectionId": b}]}),
        )
        .await;
    let ri = resource_id(&op);
    let path = format!("/operations/{}", op["id"].as_str().expect("op"));
    let rev = h.revision().await;
    let busy = json!([{"resourceId": ri, "message": "routes: no answer from the kernel in 10 s",
                       "transient": true}]);
    // Edge 1 applies it clean, then fails with a transient failure at the same revision;
    // edge 2's report finds it held.
    h.report(&e1, rev, json!([])).await;
    h.report(&e1, rev, busy).await;
    h.report(&e2, rev, json!([])).await;
    let (_, o) = h.admin(Method::GET, &path, None).await;
    assert_eq!(o["done"], false, "held by edge 1's transient failure: {o}");
    // Edge 1's failure passes: its report at the same revision finishes it.
    h.report(&e1, rev, json!([])).await;
    let (_, o) = h.admin(Method::GET, &path, None).await;
    assert_eq!(o["done"], true, "{o}");
    assert!(o.get("error").is_none(), "{o}");
}

#[tokio::test]
async fn a_report_ahead_of_the_server_is_refused() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let (s, v) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(&edge),
            Some(json!({"appliedRevision": 999, "dataplane": "x", "sessions": [], "errors": []})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn a_waiting_edge_is_woken_by_a_change() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let rev = h.revision().await;
    let app = h.app.clone();
    let path = format!("/cic/v1/edgeSync/config?afterRevision={rev}&waitSeconds=60");
    let poll = tokio::spawn(async move {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {edge}"))
            .body(Body::empty())
            .expect("req");
        let resp = app.oneshot(req).await.expect("resp");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice::<Value>(&bytes).expect("json")
    });
    h.trunk("pop1", "100.64.1.2").await;
    let cfg = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("woken")
        .expect("join");
    assert!(cfg["revision"].as_u64().expect("rev") > rev);
    assert_eq!(cfg["trunks"].as_array().map(|a| a.len()), Some(1));
}

// ---------------------------------------------------------------------------------------
// Private connection rules: each bad request is refused and nothing changes

#[tokio::test]
async fn each_private_connection_rule_rejects_and_stores_nothing() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let good = |vlan: u32| {
        json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": vlan,
               "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                               "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}})
    };
    let (s, v) = h
        .admin(Method::POST, "/cic/v1/privateConnections", Some(good(100)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good(200);
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "vlan 1",
            with(&|v| v["vlanId"] = json!(1)),
            StatusCode::BAD_REQUEST,
            "out of range",
        ),
        (
            "vlan 4001",
            with(&|v| v["vlanId"] = json!(4001)),
            StatusCode::BAD_REQUEST,
            "out of range",
        ),
        (
            "vlan 4095",
            with(&|v| v["vlanId"] = json!(4095)),
            StatusCode::BAD_REQUEST,
            "reserved",
        ),
        (
            "vlan taken",
            with(&|v| v["vlanId"] = json!(100)),
            StatusCode::CONFLICT,
            "already used",
        ),
        (
            "/29",
            with(&|v| v["ipv4Peering"]["peeringSubnet"] = json!("169.254.100.0/29")),
            StatusCode::BAD_REQUEST,
            "/30 or a /31",
        ),
        (
            "host bits",
            with(&|v| v["ipv4Peering"]["peeringSubnet"] = json!("169.254.100.1/30")),
            StatusCode::BAD_REQUEST,
            "host bits",
        ),
        (
            "public subnet",
            with(&|v| {
                v["ipv4Peering"]["peeringSubnet"] = json!("8.8.8.0/30");
                v["ipv4Peering"]["peerIp"] = json!("8.8.8.2");
                v["ipv4Peering"]["cloudIp"] = json!("8.8.8.1");
            }),
            StatusCode::BAD_REQUEST,
            "inside 10.0.0.0/8",
        ),
        (
            "same ips",
            with(&|v| v["ipv4Peering"]["peerIp"] = json!("169.254.100.1")),
            StatusCode::BAD_REQUEST,
            "must differ",
        ),
        (
            "network addr",
            with(&|v| v["ipv4Peering"]["peerIp"] = json!("169.254.100.0")),
            StatusCode::BAD_REQUEST,
            "network address",
        ),
        (
            "broadcast",
            with(&|v| v["ipv4Peering"]["cloudIp"] = json!("169.254.100.3")),
            StatusCode::BAD_REQUEST,
            "broadcast address",
        ),
        (
            "outside",
            with(&|v| v["ipv4Peering"]["peerIp"] = json!("169.254.101.2")),
            StatusCode::BAD_REQUEST,
            "not in the peering subnet",
        ),
        (
            "asn 0",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(0)),
            StatusCode::BAD_REQUEST,
            "not a valid ASN",
        ),
        (
            "as_trans",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(23456)),
            StatusCode::BAD_REQUEST,
            "AS_TRANS",
        ),
        (
            "doc asn",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(64500)),
            StatusCode::BAD_REQUEST,
            "documentation",
        ),
        (
            "doc asn 4b",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(65540)),
            StatusCode::BAD_REQUEST,
            "documentation",
        ),
        (
            "cloud asn",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(200350)),
            StatusCode::BAD_REQUEST,
            "cloud's own",
        ),
        (
            "asn overflow",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!(4294967296u64)),
            StatusCode::BAD_REQUEST,
            "ipv4Peering.peerBgpAsn",
        ),
        (
            "asn not a number",
            with(&|v| v["ipv4Peering"]["peerBgpAsn"] = json!("AS65001")),
            StatusCode::BAD_REQUEST,
            "ipv4Peering.peerBgpAsn",
        ),
        (
            "long md5",
            with(&|v| v["ipv4Peering"]["peerBgpMd5Key"] = json!("k".repeat(81))),
            StatusCode::BAD_REQUEST,
            "at most 80",
        ),
        (
            "bad ip",
            with(&|v| v["ipv4Peering"]["peerIp"] = json!("169.254.100.300")),
            StatusCode::BAD_REQUEST,
            "ipv4Peering.peerIp",
        ),
        (
            "unknown field",
            with(&|v| v["vlan"] = json!(5)),
            StatusCode::BAD_REQUEST,
            "vlan: is not a field here",
        ),
        (
            "cloud asn given",
            with(&|v| v["ipv4Peering"]["cloudBgpAsn"] = json!(1)),
            StatusCode::BAD_REQUEST,
            "cloudBgpAsn",
        ),
        (
            "no trunk",
            with(&|v| v["trunkConnectionId"] = json!("tcnothere")),
            StatusCode::NOT_FOUND,
            "tcnothere",
        ),
        (
            "trunk of another folder",
            with(&|v| v["folderId"] = json!("f2")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "bad name",
            with(&|v| v["name"] = json!("9lives")),
            StatusCode::BAD_REQUEST,
            "not a valid name",
        ),
        (
            "too many static routes",
            with(&|v| {
                v["ipv4StaticRoutes"] = json!(
                    (0..101)
                        .map(|i| json!({"prefix": format!("10.{i}.0.0/16")}))
                        .collect::<Vec<_>>()
                )
            }),
            StatusCode::BAD_REQUEST,
            "the quota is 100",
        ),
        (
            "static route twice",
            with(&|v| {
                v["ipv4StaticRoutes"] =
                    json!([{"prefix": "10.1.0.0/16"}, {"prefix": "10.1.0.0/16"}])
            }),
            StatusCode::BAD_REQUEST,
            "ipv4StaticRoutes[1].prefix: 10.1.0.0/16 is listed twice",
        ),
        (
            "static route with host bits",
            with(&|v| v["ipv4StaticRoutes"] = json!([{"prefix": "10.1.0.1/16"}])),
            StatusCode::BAD_REQUEST,
            "ipv4StaticRoutes[0].prefix",
        ),
    ];
    for (what, body, want, msg) in cases {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/privateConnections", Some(body))
            .await;
        assert_eq!(s, want, "{what}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{what}: message {:?} should mention {msg:?}",
            err_message(&v)
        );
        if what == "vlan taken" {
            assert_eq!(
                v["details"][0]["field"], "vlanId",
                "the field a form marks: {v}"
            );
        }
        assert_eq!(h.revision().await, rev, "{what}: nothing was written");
        assert_eq!(
            h.count("/cic/v1/privateConnections").await,
            1,
            "{what}: nothing stored"
        );
    }
    let (s, v) = h
        .raw(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(ADMIN),
            Some("{not json".into()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn quota_of_connections_per_trunk() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    for i in 0..5u32 {
        let (s, v) = h
            .connection(
                &trunk,
                100 + i,
                &format!("10.0.{i}.0/31"),
                &format!("10.0.{i}.0"),
                &format!("10.0.{i}.1"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = h
        .connection(&trunk, 200, "10.0.9.0/31", "10.0.9.0", "10.0.9.1")
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["code"], "RESOURCE_EXHAUSTED");
}

#[tokio::test]
async fn overlay_trunks_of_one_edge_cannot_reuse_a_vni() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let t1 = h.trunk("pop1", "100.64.1.2").await;
    let t2 = h.trunk("pop1", "100.64.2.2").await;
    let (s, _) = h
        .connection(&t1, 100, "169.254.1.0/30", "169.254.1.2", "169.254.1.1")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .connection(&t2, 100, "169.254.2.0/30", "169.254.2.2", "169.254.2.1")
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(err_message(&v).contains("VNI 100"), "{v}");
    let (s, _) = h
        .connection(&t2, 101, "169.254.2.0/30", "169.254.2.2", "169.254.2.1")
        .await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Trunk rules

#[tokio::test]
async fn each_trunk_rule_rejects_and_stores_nothing() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    h.ok(
        Method::POST,
        "/cic/v1/pointOfPresences",
        json!({"id": "pop-empty"}),
    )
    .await;
    let base = json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                      "overlayJoint": {"remoteVtep": "100.64.1.2"}});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        v
    };
    let sp = json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR", "portName": "eth1"});
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "no joint",
            with(&|v| {
                v.as_object_mut()
                    .map(|o| o.remove("overlayJoint"))
                    .map(|_| ())
                    .unwrap_or(())
            }),
            StatusCode::BAD_REQUEST,
            "exactly one joint",
        ),
        (
            "two joints",
            with(&|v| v["singlePortDirectJoint"] = sp.clone()),
            StatusCode::BAD_REQUEST,
            "exactly one joint",
        ),
        (
            "lag without ports",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("overlayJoint"));
                v["lagDirectJoint"] = json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR"})
            }),
            StatusCode::BAD_REQUEST,
            "lagDirectJoint: give exactly one of lagAllocationSettings and portNames",
        ),
        (
            "lag too big",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("overlayJoint"));
                v["lagDirectJoint"] = json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR",
                    "lagAllocationSettings": {"lagSize": "11"}})
            }),
            StatusCode::BAD_REQUEST,
            "lagSize: 11 is out of range 1-10",
        ),
        (
            "lag port twice",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("overlayJoint"));
                v["lagDirectJoint"] = json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR",
                    "portNames": ["xe0", "xe0"]})
            }),
            StatusCode::BAD_REQUEST,
            "lagDirectJoint.portNames[1]: xe0 is listed twice",
        ),
        (
            "partner key",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("overlayJoint"));
                v["partnerJointInfo"] = json!({"partnerId": "acme", "serviceKey": "has space"})
            }),
            StatusCode::BAD_REQUEST,
            "partnerJointInfo.serviceKey",
        ),
        (
            "no partner",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("overlayJoint"));
                v["partnerJointInfo"] = json!({"partnerId": "nobody", "serviceKey": "K-1"})
            }),
            StatusCode::NOT_FOUND,
            "partner \"nobody\" not found",
        ),
        (
            "capacity",
            with(&|v| v["capacity"] = json!("CAPACITY_7_GBPS")),
            StatusCode::BAD_REQUEST,
            "capacity",
        ),
        (
            "no pop",
            with(&|v| v["pointOfPresenceId"] = json!("nowhere")),
            StatusCode::NOT_FOUND,
            "nowhere",
        ),
        (
            "no edge",
            with(&|v| v["pointOfPresenceId"] = json!("pop-empty")),
            StatusCode::CONFLICT,
            "no edge is registered",
        ),
        (
            "bad vtep",
            with(&|v| v["overlayJoint"]["remoteVtep"] = json!("224.0.0.1")),
            StatusCode::BAD_REQUEST,
            "unicast",
        ),
        (
            "bad port",
            with(&|v| v["overlayJoint"]["portName"] = json!("eth0/1")),
            StatusCode::BAD_REQUEST,
            "interface name",
        ),
        (
            "bad device",
            with(&|v| v["overlayJoint"]["accessDeviceName"] = json!("edge9")),
            StatusCode::BAD_REQUEST,
            "no edge named",
        ),
        (
            "bad label",
            with(&|v| v["labels"] = json!({"Env": "x"})),
            StatusCode::BAD_REQUEST,
            "label key",
        ),
    ];
    for (what, body, want, msg) in cases {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/trunkConnections", Some(body))
            .await;
        assert_eq!(s, want, "{what}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{what}: {:?} should mention {msg:?}",
            err_message(&v)
        );
        assert_eq!(h.revision().await, rev, "{what}");
        assert_eq!(h.count("/cic/v1/trunkConnections").await, 0, "{what}");
    }
}

#[tokio::test]
async fn trunk_names_are_unique_in_a_folder_and_protected_trunks_stay() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let body = json!({"folderId": "f1", "name": "t", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                      "deletionProtection": true, "overlayJoint": {"remoteVtep": "100.64.1.2"}});
    let op = h
        .ok(Method::POST, "/cic/v1/trunkConnections", body.clone())
        .await;
    let (s, _) = h
        .admin(Method::POST, "/cic/v1/trunkConnections", Some(body))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let id = resource_id(&op);
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/trunkConnections/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION");
    assert!(err_message(&v).contains("deletionProtection"));
    let op = h
        .ok(
            Method::PATCH,
            &format!("/cic/v1/trunkConnections/{id}"),
            json!({"deletionProtection": false}),
        )
        .await;
    assert_eq!(
        op["done"], true,
        "a metadata update has nothing for the edge to apply"
    );
    let (s, _) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/trunkConnections/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Routing instance rules

#[tokio::test]
async fn each_routing_instance_rule_rejects_and_stores_nothing() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, a) = h
        .connection(&trunk, 100, "169.254.1.0/30", "169.254.1.2", "169.254.1.1")
        .await;
    let (_, b) = h
        .connection(&trunk, 101, "169.254.1.0/30", "169.254.1.2", "169.254.1.1")
        .await;
    let a = resource_id(&a);
    let b = resource_id(&b);
    let ri = |vpc: &str, prefixes: Value, conns: Vec<&str>| {
        json!({"folderId": "f1",
               "vpcInfo": [{"vpcNetworkId": vpc, "azInfos": [{"azId": "az-a", "prefixes": prefixes}]}],
               "cicPrivateConnectionInfo": conns.iter().map(|c| json!({"cicPrivateConnectionId": c})).collect::<Vec<_>>()})
    };
    let op = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            ri("vpc1", json!(["10.128.0.0/24"]), vec![&a]),
        )
        .await;
    assert!(op["metadata"]["resourceId"].is_string());

    let many: Vec<String> = (0..101).map(|i| format!("10.{i}.0.0/16")).collect();
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "overlap",
            ri("vpc2", json!(["10.1.0.0/16", "10.1.2.0/24"]), vec![]),
            StatusCode::BAD_REQUEST,
            "overlap",
        ),
        (
            "host bits",
            ri("vpc2", json!(["10.1.0.1/16"]), vec![]),
            StatusCode::BAD_REQUEST,
            "host bits",
        ),
        (
            "quota",
            ri("vpc2", json!(many), vec![]),
            StatusCode::BAD_REQUEST,
            "quota",
        ),
        (
            "vpc taken",
            ri("vpc1", json!(["10.2.0.0/16"]), vec![]),
            StatusCode::CONFLICT,
            "already belongs",
        ),
        (
            "conn taken",
            ri("vpc2", json!(["10.2.0.0/16"]), vec![&a]),
            StatusCode::CONFLICT,
            "already belongs",
        ),
        (
            "no conn",
            ri("vpc2", json!(["10.2.0.0/16"]), vec!["pcnothere"]),
            StatusCode::NOT_FOUND,
            "pcnothere",
        ),
        (
            "listed twice",
            ri("vpc2", json!(["10.2.0.0/16"]), vec![&b, &b]),
            StatusCode::BAD_REQUEST,
            "listed twice",
        ),
        (
            "bad prefix",
            ri("vpc2", json!(["10.2.0.0/33"]), vec![]),
            StatusCode::BAD_REQUEST,
            "prefixes",
        ),
    ];
    for (what, body, want, msg) in cases {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, "/cloudrouter/v1/routingInstances", Some(body))
            .await;
        assert_eq!(s, want, "{what}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{what}: {:?} should mention {msg:?}",
            err_message(&v)
        );
        assert_eq!(h.revision().await, rev, "{what}");
        assert_eq!(
            h.count("/cloudrouter/v1/routingInstances").await,
            1,
            "{what}"
        );
    }
}

#[tokio::test]
async fn one_connection_per_vpc_per_pop_and_no_overlapping_peerings() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, a) = h
        .connection(&trunk, 100, "169.254.1.0/30", "169.254.1.2", "169.254.1.1")
        .await;
    let (_, b) = h
        .connection(&trunk, 101, "169.254.2.0/30", "169.254.2.2", "169.254.2.1")
        .await;
    let (_, c) = h
        .connection(&trunk, 102, "169.254.2.0/30", "169.254.2.2", "169.254.2.1")
        .await;
    let body = |conns: Vec<String>, vpc: bool| {
        json!({"folderId": "f1",
               "vpcInfo": if vpc { json!([{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "a", "prefixes": ["10.128.0.0/24"]}]}]) } else { json!([]) },
               "cicPrivateConnectionInfo": conns.iter().map(|c| json!({"cicPrivateConnectionId": c})).collect::<Vec<_>>()})
    };
    let (s, v) = h
        .admin(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            Some(body(vec![resource_id(&a), resource_id(&b)], true)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION");
    assert!(err_message(&v).contains("one per point of presence"));
    let (s, v) = h
        .admin(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            Some(body(vec![resource_id(&b), resource_id(&c)], false)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(err_message(&v).contains("overlapping peering subnets"));
}

#[tokio::test]
async fn compiled_config_follows_the_customer_steps() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, pc) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&pc);
    let cfg = h.edge_config(&edge).await;
    assert_eq!(
        cfg["instances"][0]["id"],
        pc.as_str(),
        "an unattached connection gets its own instance"
    );
    assert!(cfg["instances"][0].get("fabric").is_none());

    let op = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1", "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "a", "prefixes": ["10.128.0.0/24"]}]}],
                   "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": pc}]}),
        )
        .await;
    let ri = resource_id(&op);
    let cfg = h.edge_config(&edge).await;
    let inst = &cfg["instances"][0];
    assert_eq!(inst["routingInstanceId"], ri.as_str());
    assert_eq!(inst["vpcPrefixes"], json!(["10.128.0.0/24"]));
    assert_eq!(inst["connections"][0]["id"], pc.as_str());
    assert_eq!(inst["fabric"]["vni"], 100000);
    assert_eq!(inst["fabric"]["edgeIp"], "100.127.0.0");

    let (_, edges) = h.admin(Method::GET, "/cic/v1/edges", None).await;
    let edge_id = edges["edges"][0]["id"]
        .as_str()
        .expect("edge id")
        .to_string();
    let (_, fa) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/fabricAttachments"),
            None,
        )
        .await;
    assert_eq!(fa["items"][0]["vni"], 100000);
    assert_eq!(fa["items"][0]["fabricIp"], "100.127.0.1");

    // The connection cannot go while it is in the routing instance.
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION");
    // Deleting the routing instance waits for the edge, then frees its fabric segment.
    let op = h
        .ok(
            Method::DELETE,
            &format!("/cloudrouter/v1/routingInstances/{ri}"),
            json!({}),
        )
        .await;
    assert_eq!(op["done"], false);
    h.report(&edge, h.revision().await, json!([])).await;
    let (s, _) = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{ri}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, fa) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/fabricAttachments"),
            None,
        )
        .await;
    assert_eq!(fa["items"], json!([]));
    // Its slot is free again: the next routing instance on the edge has its VNI.
    h.ok(
        Method::POST,
        "/cloudrouter/v1/routingInstances",
        json!({"folderId": "f1", "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "a", "prefixes": ["10.128.0.0/24"]}]}],
               "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": pc}]}),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    assert_eq!(cfg["instances"][0]["fabric"]["vni"], 100000, "{cfg}");
}

#[tokio::test]
async fn lists_page_and_filter_by_name() {
    let h = H::new().await;
    for i in 0..3 {
        h.ok(
            Method::POST,
            "/cic/v1/pointOfPresences",
            json!({"id": format!("p{i}"), "name": format!("n{i}")}),
        )
        .await;
    }
    let (_, v) = h
        .admin(Method::GET, "/cic/v1/pointOfPresences?pageSize=2", None)
        .await;
    assert_eq!(v["pointOfPresences"].as_array().map(|a| a.len()), Some(2));
    let tok = v["nextPageToken"].as_str().expect("token").to_string();
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/pointOfPresences?pageSize=2&pageToken={tok}"),
            None,
        )
        .await;
    assert_eq!(v["pointOfPresences"].as_array().map(|a| a.len()), Some(1));
    assert!(v.get("nextPageToken").is_none());
    let (_, v) = h
        .admin(
            Method::GET,
            "/cic/v1/pointOfPresences?filter=name%3D%22n1%22",
            None,
        )
        .await;
    assert_eq!(v["pointOfPresences"][0]["id"], "p1");
    let (s, v) = h
        .admin(Method::GET, "/cic/v1/pointOfPresences?pageSize=5000", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = h
        .admin(Method::GET, "/cic/v1/pointOfPresences?pagesize=5", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err_message(&v).contains("pagesize"));
}

#[tokio::test]
async fn waiting_on_an_operation_returns_when_it_is_done() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/trunkConnections",
            json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                   "overlayJoint": {"remoteVtep": "100.64.1.2"}}),
        )
        .await;
    let path = format!(
        "/operations/{}?waitSeconds=60",
        op["id"].as_str().expect("id")
    );
    let app = h.app.clone();
    let waiter = tokio::spawn(async move {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .expect("req");
        let resp = app.oneshot(req).await.expect("resp");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice::<Value>(&bytes).expect("json")
    });
    h.report(&edge, h.revision().await, json!([])).await;
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .expect("join");
    assert_eq!(done["done"], true, "{done}");
}

#[tokio::test]
async fn int64_fields_are_strings_out_numbers_or_strings_in_and_lists_are_keyed_by_kind() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    // As a script written for the modelled API sends them: int64 as strings.
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": "100",
                   "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                                   "cloudIp": "169.254.100.1", "peerBgpAsn": "4200000001"}}),
        )
        .await;
    let id = resource_id(&op);
    let (_, pc) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{id}"),
            None,
        )
        .await;
    assert_eq!(pc["vlanId"], "100");
    assert_eq!(pc["ipv4Peering"]["peerBgpAsn"], "4200000001");
    assert_eq!(pc["ipv4Peering"]["cloudBgpAsn"], "200350");
    let (_, list) = h
        .admin(Method::GET, "/cic/v1/privateConnections?folderId=f1", None)
        .await;
    assert_eq!(list["privateConnections"][0]["id"], id);
    let (_, list) = h
        .admin(Method::GET, "/cic/v1/trunkConnections?folderId=f1", None)
        .await;
    assert_eq!(list["trunkConnections"][0]["id"], trunk.as_str());
    assert!(list.get("items").is_none());
}

// ---------------------------------------------------------------------------------------
// Routing instance methods

#[tokio::test]
async fn routing_instance_methods_change_it_only_within_the_rules_of_create() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc1 = resource_id(&op);
    let (_, op) = h.numbered_connection(&trunk, 1).await;
    let pc2 = resource_id(&op);
    let op = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1", "name": "r1",
                   "vpcInfo": [{"vpcNetworkId": "vpc-a", "azInfos": [{"azId": "zone-a", "prefixes": ["10.128.0.0/24"]}]}],
                   "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": pc1}]}),
        )
        .await;
    let ri = resource_id(&op);
    let base = format!("/cloudrouter/v1/routingInstances/{ri}");
    // The edge applies whatever is pending.
    let apply = || async {
        let cfg = h.edge_config(&edge).await;
        h.report(&edge, cfg["revision"].as_u64().expect("rev"), json!([]))
            .await;
        cfg
    };
    apply().await;
    let prefixes = |z: &str, p: &[&str]| json!({"vpcNetworkId": "vpc-a", "vpcAzInfoPrefixes": [{"azId": z, "prefixes": p}]});

    // UpsertPrefixes: waits for the edge, then the instance and the edge both have it.
    let op = h
        .ok(
            Method::POST,
            &format!("{base}:upsertPrefixes"),
            prefixes("zone-b", &["10.129.0.0/24"]),
        )
        .await;
    assert_eq!(op["done"], false, "the edge has to apply it: {op}");
    let cfg = apply().await;
    assert!(cfg.to_string().contains("10.129.0.0/24"), "{cfg}");
    let (_, op) = h
        .admin(
            Method::GET,
            &format!("/operations/{}", op["id"].as_str().expect("op")),
            None,
        )
        .await;
    assert_eq!(op["done"], true, "{op}");
    let (_, r) = h.admin(Method::GET, &base, None).await;
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(
        r["vpcInfo"][0]["azInfos"][1],
        json!({"manualInfo": {"azId": "zone-b", "prefixes": ["10.129.0.0/24"]}}),
        "zones are written in the modelled API's shape"
    );

    // What Create refuses, the methods refuse too — and store nothing.
    let rev = h.revision().await;
    for (what, method, body, want) in [
        (
            "overlapping prefix",
            "upsertPrefixes",
            prefixes("zone-a", &["10.128.0.128/25"]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown VPC",
            "upsertPrefixes",
            json!({"vpcNetworkId": "vpc-x", "vpcAzInfoPrefixes": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "prefix not there",
            "removePrefixes",
            prefixes("zone-a", &["10.200.0.0/24"]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "two connections at one PoP for a VPC",
            "addPrivateConnection",
            json!({"cicPrivateConnectionId": pc2}),
            StatusCode::CONFLICT,
        ),
        (
            "connection already in",
            "addPrivateConnection",
            json!({"cicPrivateConnectionId": pc1}),
            StatusCode::CONFLICT,
        ),
        (
            "connection of nobody",
            "addPrivateConnection",
            json!({"cicPrivateConnectionId": "pcnothere"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "not a member",
            "removePrivateConnection",
            json!({"cicPrivateConnectionId": pc2}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "strict remove of a VPC it lacks",
            "updateNetworks",
            json!({"deletedVpcNetworkIds": ["vpc-x"], "strictRemove": true}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            "upsertPrefixes",
            json!({"vpcNetworkId": "vpc-a", "prefixez": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no such method",
            "explode",
            json!({}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, v) = h
            .admin(Method::POST, &format!("{base}:{method}"), Some(body))
            .await;
        assert_eq!(s, want, "{what}: {v}");
        assert_eq!(h.revision().await, rev, "{what}: nothing was written");
    }

    // RemovePrefixes, UpdateNetworks (drop the VPC), then the second connection fits.
    h.ok(
        Method::POST,
        &format!("{base}:removePrefixes"),
        prefixes("zone-b", &["10.129.0.0/24"]),
    )
    .await;
    apply().await;
    h.ok(
        Method::POST,
        &format!("{base}:updateNetworks"),
        json!({"deletedVpcNetworkIds": ["vpc-a"],
               "addedVpcNetworks": [{"vpcNetworkId": "vpc-b", "vpcAzInfoPrefixes": [{"azId": "zone-a", "prefixes": ["10.130.0.0/24"]}]}]}),
    )
    .await;
    apply().await;
    let (_, r) = h.admin(Method::GET, &base, None).await;
    assert_eq!(r["vpcInfo"][0]["vpcNetworkId"], "vpc-b");
    assert_eq!(r["vpcInfo"].as_array().map(|a| a.len()), Some(1));
    // GetByVpcNetworkId and GetByCicPrivateConnectionId find it.
    let (s, v) = h
        .admin(
            Method::GET,
            "/cloudrouter/v1/routingInstances:getByVpcNetworkId/vpc-b",
            None,
        )
        .await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(ri.as_str())));
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances:getByCicPrivateConnectionId/{pc1}"),
            None,
        )
        .await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(ri.as_str())));
    let (s, _) = h
        .admin(
            Method::GET,
            "/cloudrouter/v1/routingInstances:getByVpcNetworkId/vpc-a",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // RemovePrivateConnection frees the connection: now it can be deleted.
    h.ok(
        Method::POST,
        &format!("{base}:removePrivateConnection"),
        json!({"cicPrivateConnectionId": pc1}),
    )
    .await;
    apply().await;
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc1}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Update: rename (metadata only: done at once), and Move to another folder.
    let op = h
        .ok(Method::PATCH, &base, json!({"name": "r-renamed"}))
        .await;
    assert_eq!(op["done"], true, "{op}");
    let op = h
        .ok(
            Method::POST,
            &format!("{base}:move"),
            json!({"destinationFolderId": "f2"}),
        )
        .await;
    assert_eq!(op["done"], true, "{op}");
    let (_, r) = h.admin(Method::GET, &base, None).await;
    assert_eq!(
        (r["name"].as_str(), r["folderId"].as_str()),
        (Some("r-renamed"), Some("f2"))
    );
    assert_eq!(
        h.count("/cloudrouter/v1/routingInstances?folderId=f1")
            .await,
        0
    );
    assert_eq!(
        h.count("/cloudrouter/v1/routingInstances?folderId=f2")
            .await,
        1
    );
}

#[tokio::test]
async fn trunks_and_connections_move_between_folders_with_editor_in_both() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let path = format!("/cic/v1/trunkConnections/{trunk}:move");
    let only_source = h.user("mover", "f1", "editor").await;
    let (s, v) = h
        .call(
            Method::POST,
            &path,
            Some(&only_source),
            Some(json!({"destinationFolderId": "f2"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no role in the destination: {v}");
    h.bind("f2", "editor", "mover").await;
    let (s, v) = h
        .call(
            Method::POST,
            &path,
            Some(&only_source),
            Some(json!({"destinationFolderId": "f2"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.count("/cic/v1/trunkConnections?folderId=f2").await, 1);
    let (s, _) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({"destinationFolderId": "f2"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "already there");
    let (s, _) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({"destinationFolderId": "nowhere"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_private_connection_is_updated_within_the_rules_of_create() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let t1 = h.trunk("pop1", "100.64.1.2").await;
    let t2 = h.trunk("pop1", "100.64.1.3").await;
    let (_, op) = h
        .connection(
            &t1,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    let (_, op) = h
        .connection(
            &t1,
            101,
            "169.254.101.0/30",
            "169.254.101.2",
            "169.254.101.1",
        )
        .await;
    let other = resource_id(&op);
    let path = format!("/cic/v1/privateConnections/{pc}");
    let rev = h.revision().await;
    for (what, body, want) in [
        (
            "VLAN taken on the trunk",
            json!({"vlanId": "101"}),
            StatusCode::CONFLICT,
        ),
        (
            "VLAN out of range",
            json!({"vlanId": 4095}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "trunk of nobody",
            json!({"trunkConnectionId": "tcnothere"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "peer IP outside the subnet",
            json!({"ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.7.2",
                                   "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}}),
            StatusCode::BAD_REQUEST,
        ),
        ("unknown field", json!({"vlan": 7}), StatusCode::BAD_REQUEST),
        (
            "id differs",
            json!({"privateConnectionId": other}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, v) = h.admin(Method::PATCH, &path, Some(body)).await;
        assert_eq!(s, want, "{what}: {v}");
        assert_eq!(h.revision().await, rev, "{what}: nothing was written");
    }
    // A metadata change is done at once; a new VLAN on another trunk waits for the edge.
    let op = h
        .ok(Method::PATCH, &path, json!({"description": "primary"}))
        .await;
    assert_eq!(op["done"], true, "{op}");
    let op = h
        .ok(
            Method::PATCH,
            &path,
            json!({"trunkConnectionId": t2, "vlanId": "102"}),
        )
        .await;
    assert_eq!(op["done"], false, "{op}");
    let cfg = h.edge_config(&edge).await;
    h.report(&edge, cfg["revision"].as_u64().expect("rev"), json!([]))
        .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(
        (
            v["trunkConnectionId"].as_str(),
            v["vlanId"].as_str(),
            v["status"].as_str(),
            v["description"].as_str()
        ),
        (
            Some(t2.as_str()),
            Some("102"),
            Some("ACTIVE"),
            Some("primary")
        )
    );
}

#[tokio::test]
async fn batch_get_returns_all_or_names_the_missing_one_and_cancel_explains_itself() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let a = h.trunk("pop1", "100.64.1.2").await;
    let b = h.trunk("pop1", "100.64.1.3").await;
    let path = "/cic/v1/trunkConnections:batchGet";
    let (s, v) = h
        .admin(
            Method::POST,
            path,
            Some(json!({"trunkConnectionIds": [b, a]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["trunkConnections"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let (s, v) = h
        .admin(
            Method::POST,
            path,
            Some(json!({"trunkConnectionIds": [a, "tcnothere"]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(err_message(&v).contains("tcnothere"), "{v}");
    for bad in [
        json!({"trunkConnectionIds": []}),
        json!({"ids": [a]}),
        json!({"trunkConnectionIds": "x"}),
    ] {
        let (s, v) = h.admin(Method::POST, path, Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Another tenant's ids are missing to a subject without a role there.
    let eve = h.user("eve", "f2", "viewer").await;
    let (s, _) = h
        .call(
            Method::POST,
            path,
            Some(&eve),
            Some(json!({"trunkConnectionIds": [a]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Routing instances and a trunk's connections, the same way.
    let ri = resource_id(
        &h.ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1", "name": "ri"}),
        )
        .await,
    );
    let (s, v) = h
        .admin(
            Method::POST,
            "/cloudrouter/v1/routingInstances:batchGet",
            Some(json!({"routingInstanceIds": [ri]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["routingInstances"][0]["name"], "ri");
    let (_, op) = h
        .connection(
            &a,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/trunkConnections/{a}/privateConnections"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["privateConnections"][0]["id"], pc);
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/trunkConnections/{b}/privateConnections"),
            None,
        )
        .await;
    assert_eq!(v["privateConnections"], json!([]));
    let (s, _) = h
        .call(
            Method::GET,
            &format!("/cic/v1/trunkConnections/{a}/privateConnections"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not eve's to see");

    // Cancel: a running operation says why it cannot be; a done one is returned.
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/trunkConnections",
            json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
                   "overlayJoint": {"remoteVtep": "100.64.1.9"}}),
        )
        .await;
    let id = op["id"].as_str().expect("op");
    let (s, v) = h
        .admin(Method::POST, &format!("/operations/{id}:cancel"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(err_message(&v).contains("cannot be cancelled"), "{v}");
    let done = h
        .ok(
            Method::PATCH,
            &format!("/cic/v1/trunkConnections/{a}"),
            json!({"description": "x"}),
        )
        .await;
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/operations/{}:cancel", done["id"].as_str().expect("op")),
            None,
        )
        .await;
    assert_eq!(
        (s, v["done"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
}

#[tokio::test]
async fn static_routes_are_upserted_removed_and_reach_the_edge_within_the_rules() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    let path = format!("/cic/v1/privateConnections/{pc}");
    let statics =
        |cfg: &Value| cfg["instances"][0]["connections"][0]["peerings"][0]["staticRoutes"].clone();

    let op = h
        .ok(
            Method::POST,
            &format!("{path}:upsertStaticRoutes"),
            json!({"privateConnectionId": pc, "ipv4StaticRoutes": [{"prefix": "192.168.20.0/24"}, {"prefix": "192.168.21.0/24"}]}),
        )
        .await;
    assert_eq!(
        op["description"],
        "Upsert static routes of private connection"
    );
    assert_eq!(op["done"], false, "waits for the edge");
    let cfg = h.edge_config(&edge).await;
    assert_eq!(statics(&cfg), json!(["192.168.20.0/24", "192.168.21.0/24"]));
    // Upserting one that is there changes nothing.
    let rev = h.revision().await;
    let op = h
        .ok(
            Method::POST,
            &format!("{path}:upsertStaticRoutes"),
            json!({"ipv4StaticRoutes": [{"prefix": "192.168.20.0/24"}]}),
        )
        .await;
    assert_eq!(op["done"], true, "nothing for the edge to do: {op}");
    let (_, got) = h.admin(Method::GET, &path, None).await;
    assert_eq!(
        got["ipv4StaticRoutes"],
        json!([{"prefix": "192.168.20.0/24"}, {"prefix": "192.168.21.0/24"}])
    );

    // Refusals name the field and change nothing.
    let rev2 = h.revision().await;
    assert!(rev2 >= rev);
    let ri = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1", "vpcInfo": [{"vpcNetworkId": "vpc1", "azInfos": [{"azId": "a", "prefixes": ["10.128.0.0/24"]}]}],
                   "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": pc}]}),
        )
        .await;
    let ri = resource_id(&ri);
    // And the other way round: a VPC prefix may not cover a member's static route.
    let rev = h.revision().await;
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{ri}:upsertPrefixes"),
            Some(json!({"vpcNetworkId": "vpc1", "vpcAzInfoPrefixes": [{"azId": "a", "prefixes": ["192.168.20.0/25"]}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        err_message(&v).contains(&format!(
            "static route 192.168.20.0/24 of private connection {pc} overlaps VPC prefix 192.168.20.0/25"
        )),
        "{v}"
    );
    assert_eq!(h.revision().await, rev);
    let many: Vec<Value> = (0..99)
        .map(|i| json!({"prefix": format!("10.{i}.0.0/16")}))
        .collect();
    let cases = [
        (
            ":upsertStaticRoutes",
            json!({"ipv4StaticRoutes": []}),
            "ipv4StaticRoutes: names no route",
        ),
        (
            ":upsertStaticRoutes",
            json!({"ipv4StaticRoutes": [{"prefix": "10.128.0.128/25"}]}),
            "ipv4StaticRoutes[0].prefix: 10.128.0.128/25 overlaps prefix 10.128.0.0/24 of routing instance",
        ),
        (
            ":upsertStaticRoutes",
            json!({"ipv4StaticRoutes": many}),
            "the quota is 100",
        ),
        (
            ":upsertStaticRoutes",
            json!({"ipv4StaticRoutes": [{"prefix": "192.168.1.1/24"}]}),
            "ipv4StaticRoutes[0].prefix",
        ),
        (
            ":upsertStaticRoutes",
            json!({"privateConnectionId": "pcother", "ipv4StaticRoutes": [{"prefix": "192.168.1.0/24"}]}),
            "privateConnectionId: differs",
        ),
        (
            ":removeStaticRoutes",
            json!({"ipv4StaticRoutes": [{"prefix": "192.168.99.0/24"}]}),
            "ipv4StaticRoutes[0].prefix: 192.168.99.0/24 is not a static route of private connection",
        ),
    ];
    for (method, body, msg) in cases {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, &format!("{path}{method}"), Some(body))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{:?} should contain {msg:?}",
            err_message(&v)
        );
        assert_eq!(h.revision().await, rev, "{msg}: nothing written");
    }
    // A viewer may not; another folder cannot even see it.
    let viewer = h.user("vera", "f1", "viewer").await;
    let body = json!({"ipv4StaticRoutes": [{"prefix": "192.168.22.0/24"}]});
    let (s, _) = h
        .call(
            Method::POST,
            &format!("{path}:upsertStaticRoutes"),
            Some(&viewer),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let other = h.user("olga", "f2", "editor").await;
    let (s, _) = h
        .call(
            Method::POST,
            &format!("{path}:upsertStaticRoutes"),
            Some(&other),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let op = h
        .ok(
            Method::POST,
            &format!("{path}:removeStaticRoutes"),
            json!({"ipv4StaticRoutes": [{"prefix": "192.168.20.0/24"}]}),
        )
        .await;
    assert_eq!(
        op["description"],
        "Remove static routes of private connection"
    );
    let cfg = h.edge_config(&edge).await;
    assert_eq!(statics(&cfg), json!(["192.168.21.0/24"]));
    // Update replaces the whole list.
    h.ok(Method::PATCH, &path, json!({"ipv4StaticRoutes": []}))
        .await;
    let cfg = h.edge_config(&edge).await;
    assert_eq!(statics(&cfg), Value::Null, "no static routes left");
}

#[tokio::test]
async fn public_connections_are_the_operators_to_make_and_announce_the_catalogued_services() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let editor = h.user("ann", "f1", "editor").await;
    let viewer = h.user("vic", "f1", "viewer").await;

    // The catalogue: the operator's; everyone reads it.
    let s3 = json!({"id": "CLOUD_SERVICE_S3", "name": "Object Storage",
                    "prefixes": ["213.180.193.243/32", "213.180.204.183/32"]});
    let (s, _) = h
        .call(
            Method::POST,
            "/cic/v1/cloudServices",
            Some(&editor),
            Some(s3.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (bad, msg) in [
        (
            json!({"id": "s3", "prefixes": ["213.180.193.243/32"]}),
            "is not a service type",
        ),
        (
            json!({"id": "CLOUD_SERVICE_X", "prefixes": ["10.0.0.1/32"]}),
            "prefixes[0]: 10.0.0.1/32 overlaps 10.0.0.0/8",
        ),
        (
            json!({"id": "CLOUD_SERVICE_X", "prefixes": []}),
            "prefixes: must hold",
        ),
    ] {
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/cloudServices", Some(bad))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(err_message(&v).contains(msg), "{v}");
    }
    h.ok(Method::POST, "/cic/v1/cloudServices", s3).await;
    h.ok(
        Method::POST,
        "/cic/v1/cloudServices",
        json!({"id": "CLOUD_SERVICE_MONITORING", "prefixes": ["84.201.181.26/32"]}),
    )
    .await;
    let (s, v) = h
        .call(Method::GET, "/cic/v1/cloudServices", Some(&viewer), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["cloudServices"].as_array().map(Vec::len), Some(2));

    let body = json!({"folderId": "f1", "name": "pub", "trunkConnectionId": trunk, "vlanId": "300",
        "ipv4Peering": {"peeringSubnet": "5.45.200.0/31", "peerIp": "5.45.200.1", "cloudIp": "5.45.200.0", "peerBgpAsn": "65001"},
        "ipv4AllowedServiceTypes": ["CLOUD_SERVICE_S3"],
        "ipv4PeerAnnouncedPrefixes": ["5.45.192.0/22"]});
    // Customers cannot make them, not even editors.
    let (s, _) = h
        .call(
            Method::POST,
            "/cic/v1/publicConnections",
            Some(&editor),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Each rule refuses and stores nothing.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = body.clone();
        f(&mut b);
        b
    };
    h.connection(
        &trunk,
        301,
        "169.254.101.0/30",
        "169.254.101.2",
        "169.254.101.1",
    )
    .await;
    let cases = [
        (
            with(&|b| b["ipv4Peering"]["peeringSubnet"] = json!("10.0.0.0/31")),
            StatusCode::BAD_REQUEST,
            "ipv4Peering.peeringSubnet: 10.0.0.0/31 overlaps 10.0.0.0/8, which is not public address space",
        ),
        (
            with(&|b| b["ipv4AllowedServiceTypes"] = json!(["CLOUD_SERVICE_NOPE"])),
            StatusCode::BAD_REQUEST,
            "ipv4AllowedServiceTypes[0]",
        ),
        (
            with(&|b| b["ipv4AllowedServiceTypes"] = json!([])),
            StatusCode::BAD_REQUEST,
            "ipv4AllowedServiceTypes: names no service",
        ),
        (
            with(&|b| b["ipv4PeerAnnouncedPrefixes"] = json!(["192.168.0.0/16"])),
            StatusCode::BAD_REQUEST,
            "ipv4PeerAnnouncedPrefixes[0]",
        ),
        (
            with(&|b| b["vlanId"] = json!("301")),
            StatusCode::CONFLICT,
            "VLAN 301 is already used on trunk",
        ),
        (
            with(&|b| b["vlanId"] = json!("4095")),
            StatusCode::BAD_REQUEST,
            "vlanId",
        ),
    ];
    for (b, want, msg) in cases {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/publicConnections", Some(b))
            .await;
        assert_eq!(s, want, "{msg}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{:?} should contain {msg:?}",
            err_message(&v)
        );
        assert_eq!(h.revision().await, rev, "{msg}: nothing written");
    }

    let op = h
        .ok(Method::POST, "/cic/v1/publicConnections", body.clone())
        .await;
    let id = resource_id(&op);
    assert_eq!(op["done"], false, "the edge applies it");
    let cfg = h.edge_config(&edge).await;
    let inst = common::edge_instance(&cfg, &id);
    // No public-services network at the PoP yet: the services are what the connection
    // may reach, but nothing is announced (no packet could follow) and there is no
    // segment.
    assert_eq!(
        inst["vpcPrefixes"],
        json!(["213.180.193.243/32", "213.180.204.183/32"])
    );
    assert_eq!(inst["announce"], Value::Null);
    assert_eq!(inst["fabric"], Value::Null);
    assert_eq!(inst["acceptOnly"], json!(["5.45.192.0/22"]));
    assert_eq!(inst["connections"][0]["mtu"], 1500);
    assert_eq!(inst["connections"][0]["vlanId"], 300);
    h.report(&edge, h.revision().await, json!([])).await;
    // The customer reads it; may not delete it.
    let path = format!("/cic/v1/publicConnections/{id}");
    let (s, v) = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("ACTIVE")),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::GET,
            "/cic/v1/publicConnections?folderId=f1",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(v["publicConnections"][0]["id"], id.as_str(), "{s} {v}");
    let (_, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/trunkConnections/{trunk}/publicConnections"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(v["publicConnections"][0]["id"], id.as_str());
    let (s, _) = h.call(Method::DELETE, &path, Some(&editor), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let other = h.user("olga", "f2", "admin").await;
    let (s, _) = h.call(Method::GET, &path, Some(&other), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another folder cannot see it");

    // A service in use stays; so does a trunk that carries it.
    let (s, v) = h
        .admin(
            Method::DELETE,
            "/cic/v1/cloudServices/CLOUD_SERVICE_S3",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/trunkConnections/{trunk}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // New prefixes of a service reach the edge.
    h.ok(
        Method::PUT,
        "/cic/v1/cloudServices/CLOUD_SERVICE_S3",
        json!({"id": "CLOUD_SERVICE_S3", "prefixes": ["213.180.193.243/32"]}),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    assert!(
        cfg.to_string()
            .contains(r#""vpcPrefixes":["213.180.193.243/32"]"#),
        "{cfg}"
    );

    // The quota of public connections per trunk (5).
    for v in 302..306 {
        let mut b = body.clone();
        b["vlanId"] = json!(v.to_string());
        b["name"] = json!(format!("pub{v}"));
        h.ok(Method::POST, "/cic/v1/publicConnections", b).await;
    }
    let mut b = body.clone();
    b["vlanId"] = json!("310");
    b["name"] = json!("pub310");
    let (s, v) = h
        .admin(Method::POST, "/cic/v1/publicConnections", Some(b))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(
        err_message(&v).contains("5 public connections (quota)"),
        "{v}"
    );

    // The operator deletes it; the edge applies; it is gone.
    let op = h.ok(Method::DELETE, &path, json!({})).await;
    assert_eq!(op["done"], false);
    h.report(&edge, h.revision().await, json!([])).await;
    let (s, _) = h.admin(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn partners_bring_trunks_over_their_port_and_lags_bundle_the_edges_ports() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let bob = h.user("bob", "f2", "editor").await;
    let ann = h.user("ann", "f1", "editor").await;

    // The partner catalogue: the operator's, read by everyone.
    for (bad, msg) in [
        (json!({"id": "acme", "popIds": ["nowhere"]}), "popIds[0]"),
        (
            json!({"id": "acme", "popIds": ["pop1"], "joints": [{"pointOfPresenceId": "pop1", "accessDeviceName": "edge9", "portName": "nni0"}]}),
            "joints[0].accessDeviceName: no edge named \"edge9\" at pop1",
        ),
        (json!({"id": "acme", "url": "ftp://x"}), "url"),
    ] {
        let (s, v) = h.admin(Method::POST, "/cic/v1/partners", Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(err_message(&v).contains(msg), "{v}");
    }
    let acme = json!({"id": "acme", "name": "Acme Telecom", "url": "https://acme.example",
        "popIds": ["pop1"], "joints": [{"pointOfPresenceId": "pop1", "accessDeviceName": "edge1", "portName": "nni0"}]});
    let (s, _) = h
        .call(
            Method::POST,
            "/cic/v1/partners",
            Some(&ann),
            Some(acme.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    h.ok(Method::POST, "/cic/v1/partners", acme).await;
    let (s, v) = h
        .call(Method::GET, "/cic/v1/partners", Some(&bob), None)
        .await;
    assert_eq!(
        (s, v["partners"][0]["status"].as_str()),
        (StatusCode::OK, Some("UP"))
    );

    // Two customers come through the partner's one port: their VLANs must differ.
    let partner_trunk = |folder: &str| {
        json!({"folderId": folder, "pointOfPresenceId": "pop1",
        "capacity": "CAPACITY_100_MBPS", "partnerJointInfo": {"partnerId": "acme", "serviceKey": "ACME-42"}})
    };
    let (s, op) = h
        .call(
            Method::POST,
            "/cic/v1/trunkConnections",
            Some(&ann),
            Some(partner_trunk("f1")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let t1 = resource_id(&op);
    let (_, op) = h
        .call(
            Method::POST,
            "/cic/v1/trunkConnections",
            Some(&bob),
            Some(partner_trunk("f2")),
        )
        .await;
    let t2 = resource_id(&op);
    let (_, t) = h
        .call(
            Method::GET,
            &format!("/cic/v1/trunkConnections/{t1}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(t["partnerJointInfo"]["portName"], "nni0", "{t}");
    let pc = |folder: &str, trunk: &str, vlan: u32| {
        json!({"folderId": folder, "trunkConnectionId": trunk, "vlanId": vlan,
        "ipv4Peering": {"peeringSubnet": "169.254.7.0/30", "peerIp": "169.254.7.2", "cloudIp": "169.254.7.1", "peerBgpAsn": 65001}})
    };
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(&ann),
            Some(pc("f1", &t1, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(&bob),
            Some(pc("f2", &t2, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        err_message(&v).contains("VLAN 100 is already carried on port nni0"),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(&bob),
            Some(pc("f2", &t2, 101)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cfg = h.edge_config(&edge).await;
    let att = cfg["trunks"]
        .as_array()
        .expect("trunks")
        .iter()
        .find(|x| x["id"] == t1.as_str())
        .expect("t1")["attachment"]
        .clone();
    assert_eq!(att, json!({"type": "vlan", "port": "nni0"}));
    let (s, v) = h.admin(Method::DELETE, "/cic/v1/partners/acme", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "in use: {v}");
    // A partner that is DOWN takes no new trunks.
    h.ok(
        Method::PATCH,
        "/cic/v1/partners/acme",
        json!({"status": "DOWN"}),
    )
    .await;
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/trunkConnections",
            Some(&ann),
            Some(partner_trunk("f1")),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(err_message(&v).contains("partner acme is DOWN"), "{v}");
    let (s, _) = h
        .call(
            Method::PATCH,
            "/cic/v1/partners/acme",
            Some(&ann),
            Some(json!({"status": "UP"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // LAGs: named ports or allocated from the edge's customer ports, never shared.
    let (_, edges) = h.admin(Method::GET, "/cic/v1/edges", None).await;
    assert!(edges["edges"][0].get("customerPorts").is_none());
    let (_, reg) = h
        .admin(Method::POST, "/cic/v1/edges", Some(json!({"name": "edge2", "pointOfPresenceId": "pop1",
            "routerId": "10.255.0.2", "customerPorts": ["xe0", "xe1", "xe2"],
            "fabric": {"asn": 200350, "remoteVtep": "100.64.255.9", "localVtep": "100.64.255.10", "transitPool": "100.127.1.0/24"}})))
        .await;
    let edge2 = reg["token"].as_str().expect("token").to_string();
    let lag = |j: Value| {
        json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_20_GBPS",
        "lagDirectJoint": j})
    };
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/trunkConnections",
            lag(json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR",
            "lagAllocationSettings": {"lagSize": "2"}, "accessDeviceName": "edge2"})),
        )
        .await;
    let l1 = resource_id(&op);
    let (_, t) = h
        .admin(Method::GET, &format!("/cic/v1/trunkConnections/{l1}"), None)
        .await;
    assert_eq!(t["lagDirectJoint"]["portNames"], json!(["xe0", "xe1"]));
    let refusals = [
        (
            lag(
                json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR", "lagAllocationSettings": {"lagSize": "2"}, "accessDeviceName": "edge2"}),
            ),
            StatusCode::CONFLICT,
            "edge edge2 has 1 free customer ports, fewer than lagSize 2",
        ),
        (
            lag(
                json!({"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR", "portNames": ["xe1", "xe2"], "accessDeviceName": "edge2"}),
            ),
            StatusCode::CONFLICT,
            "port xe1 of edge edge2 is already held by trunk",
        ),
        (
            json!({"folderId": "f1", "pointOfPresenceId": "pop1", "capacity": "CAPACITY_10_GBPS",
            "singlePortDirectJoint": {"transceiverType": "TRANSCEIVER_TYPE_10GBASE_LR", "portName": "xe0", "accessDeviceName": "edge2"}}),
            StatusCode::CONFLICT,
            "port xe0 of edge edge2 is a member of LAG trunk",
        ),
    ];
    for (body, want, msg) in refusals {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/trunkConnections", Some(body))
            .await;
        assert_eq!(s, want, "{msg}: {v}");
        assert!(
            err_message(&v).contains(msg),
            "{:?} should contain {msg:?}",
            err_message(&v)
        );
        assert_eq!(h.revision().await, rev, "nothing written");
    }
    let (_, cfg) = h
        .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge2), None)
        .await;
    let att = cfg["trunks"][0]["attachment"].clone();
    assert_eq!(att["type"], "lag", "{cfg}");
    assert_eq!(att["ports"], json!(["xe0", "xe1"]));
    assert!(
        att["bond"]
            .as_str()
            .is_some_and(|b| b.starts_with("bd") && b.len() <= 15),
        "{att}"
    );
}

#[tokio::test]
async fn metrics_show_each_session_as_its_edge_reported_it_with_its_folder() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    let (s, v) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(&edge),
            Some(json!({"appliedRevision": h.revision().await, "dataplane": "vxlan-overlay", "errors": [],
                "sessions": [{"resourceId": pc, "kind": "customer", "peer": "169.254.100.2", "peerAsn": 65001,
                    "state": "ESTABLISHED", "uptimeSecs": 12, "prefixesReceived": 7, "prefixesAccepted": 6,
                    "prefixesAdvertised": 1}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let viewer = h.user("vic", "f1", "viewer").await;
    let (s, _) = h.call(Method::GET, "/metrics", Some(&viewer), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the operator's");
    let (s, v) = h.admin(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().expect("text").to_string();
    let labels =
        format!(r#"folder_id="f1",connection_id="{pc}",session="customer",peer="169.254.100.2""#);
    for (name, value) in [
        ("bgp_ipv4_session_state_up_down", "1"),
        ("bgp_ipv4_session_lifetime_seconds", "12"),
        ("ipv4_announces_received_by_cloud_num", "7"),
        ("ipv4_announces_accepted_by_cloud_num", "6"),
        ("ipv4_announces_advertised_from_cloud_num", "1"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)
                && l.contains(&labels)
                && l.ends_with(&format!(" {value}"))),
            "{name} {value} in:\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE cic_edge_report_age_seconds gauge"),
        "{text}"
    );
    assert!(
        text.contains("cic_operations_running 0"),
        "the report finished the operation: {text}"
    );
}

/// A session's age, counted by the server: an edge sends how long a session has been up (by
/// its own steady clock) and when it came up (by its wall clock, which only tells one
/// Established period from the next); the server keeps the time it came up by its own
/// clock and counts the age of a session a report of changes leaves out from it.
#[tokio::test]
async fn a_session_left_out_of_a_report_of_changes_keeps_its_age_by_the_servers_clock() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let pcs = h.numbered_connections(&trunk, 1).await;
    let rev = h.revision().await;
    let call = |method: Method, body: Value| {
        let h = &h;
        let edge = edge.clone();
        async move {
            h.call(method, "/cic/v1/edgeSync/status", Some(&edge), Some(body))
                .await
        }
    };
    let lifetime = || {
        let h = &h;
        let pc = pcs[0].clone();
        async move {
            let (_, v) = h.admin(Method::GET, "/metrics", None).await;
            let text = v.as_str().expect("text").to_string();
            text.lines()
                .find(|l| {
                    l.starts_with("bgp_ipv4_session_lifetime_seconds")
                        && l.contains(&format!("connection_id=\"{pc}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        }
    };
    let established_at = || {
        let h = &h;
        let pc = pcs[0].clone();
        async move {
            let (_, got) = h
                .admin(
                    Method::GET,
                    &format!("/cic/v1/privateConnections/{pc}"),
                    None,
                )
                .await;
            let at = got["bgp"]["establishedAt"].as_str().expect("establishedAt");
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .expect("an RFC 3339 time")
        }
    };
    // Up for an hour; the edge's wall clock 25 years behind.
    let before = time::OffsetDateTime::now_utc();
    let (s, v) = call(
        Method::PUT,
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
            "sessions": [{"resourceId": pcs[0], "kind": "customer", "peer": "169.254.101.2",
                "peerAsn": 65001, "state": "ESTABLISHED", "uptimeSecs": 3600,
                "establishedAt": "2001-12-07T16:00:00Z", "prefixesReceived": 0,
                "prefixesAccepted": 0, "prefixesAdvertised": 0}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["countsUptime"], true, "{v}");
    let v1 = v["version"].as_str().expect("version").to_string();
    let after = time::OffsetDateTime::now_utc();
    let up = established_at().await;
    let hour = time::Duration::hours(1);
    assert!(
        up >= before - hour - time::Duration::seconds(1) && up <= after - hour,
        "came up at {up}, by the server's clock an hour before {before}..{after}"
    );
    assert_eq!(lifetime().await, Some(3600));
    // A report of changes that leaves it out: its age counted from then, not lost, and
    // not from the edge's clock.
    let (s, v) = call(
        Method::PATCH,
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
            "changesSince": v1, "sessions": []}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let age = lifetime().await.expect("the session is still shown");
    let since = (time::OffsetDateTime::now_utc() - before).whole_seconds() as u64;
    assert!((3600..=3601 + since).contains(&age), "{age}");
    assert_eq!(established_at().await, up);
    // An establishedAt that is not a time: refused, naming it; nothing taken.
    let (s, v) = call(
        Method::PATCH,
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
            "changesSince": v["version"], "sessions": [{"resourceId": pcs[0], "kind": "customer",
                "peer": "169.254.101.2", "peerAsn": 65001, "state": "ESTABLISHED",
                "uptimeSecs": 1, "establishedAt": "soon", "prefixesReceived": 0,
                "prefixesAccepted": 0, "prefixesAdvertised": 0}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("establishedAt"), "{v}");
    assert_eq!(established_at().await, up);
}

#[tokio::test]
async fn an_edge_reports_the_changes_since_the_last_report_the_server_took() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let pcs = h.numbered_connections(&trunk, 2).await;
    let rev = h.revision().await;
    let session = |pc: &str, n: u32, state: &str, uptime: u64| {
        json!({"resourceId": pc, "kind": "customer", "peer": format!("169.254.{}.2", 100 + n),
               "peerAsn": 65001, "state": state, "uptimeSecs": uptime, "prefixesReceived": 0,
               "prefixesAccepted": 0, "prefixesAdvertised": 0})
    };
    let send = |method: Method, body: Value| {
        let h = &h;
        let edge = edge.clone();
        async move {
            h.call(method, "/cic/v1/edgeSync/status", Some(&edge), Some(body))
                .await
        }
    };
    let put = |body: Value| send(Method::PUT, body);
    let patch = |body: Value| send(Method::PATCH, body);
    // Each connection's BGP state and lifetime as /metrics shows them (None: no session).
    let shown = |pc: String| {
        let h = &h;
        async move {
            let (_, v) = h.admin(Method::GET, "/metrics", None).await;
            let text = v.as_str().expect("text").to_string();
            let value = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name) && l.contains(&format!("connection_id=\"{pc}\"")))
                    .and_then(|l| l.rsplit(' ').next())
                    .map(str::to_string)
            };
            value("bgp_ipv4_session_state_up_down").zip(value("bgp_ipv4_session_lifetime_seconds"))
        }
    };
    let (s, v) = put(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "sessions": [session(&pcs[0], 1, "ESTABLISHED", 12), session(&pcs[1], 2, "ACTIVE", 0)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v1 = v["version"]
        .as_str()
        .expect("the version the report is kept as")
        .to_string();

    // The second session came up: only it is sent.
    let (s, v) = patch(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "changesSince": v1, "sessions": [session(&pcs[1], 2, "ESTABLISHED", 1)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v2 = v["version"].as_str().expect("version").to_string();
    assert_ne!(v1, v2);
    assert_eq!(
        shown(pcs[0].clone()).await,
        Some(("1".into(), "12".into())),
        "kept"
    );
    assert_eq!(
        shown(pcs[1].clone()).await,
        Some(("1".into(), "1".into())),
        "changed"
    );

    // Changes since a report that is no longer the last: refused, nothing taken.
    let (s, v) = patch(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "changesSince": v1, "sessions": [session(&pcs[0], 1, "IDLE", 0)]}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "ABORTED");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("whole"),
        "{v}"
    );
    assert_eq!(shown(pcs[0].clone()).await, Some(("1".into(), "12".into())));

    // A session gone.
    let (s, v) = patch(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "changesSince": v2, "sessions": [],
        "removedSessions": [{"resourceId": pcs[0], "kind": "customer"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(shown(pcs[0].clone()).await, None, "removed");
    assert_eq!(shown(pcs[1].clone()).await, Some(("1".into(), "1".into())));

    // A session both sent and removed: refused by name, nothing taken.
    let v3 = v["version"].as_str().expect("version").to_string();
    let (s, v) = patch(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "changesSince": v3, "sessions": [session(&pcs[1], 2, "IDLE", 0)],
        "removedSessions": [{"resourceId": pcs[1], "kind": "customer"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("sessions[0]"), "{v}");
    assert_eq!(shown(pcs[1].clone()).await, Some(("1".into(), "1".into())));
    // A whole report replaces it all, as before.
    let (s, v) = put(
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
        "sessions": [session(&pcs[0], 1, "CONNECT", 0)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(shown(pcs[0].clone()).await, Some(("0".into(), "0".into())));
    assert_eq!(shown(pcs[1].clone()).await, None);
}

#[tokio::test]
async fn a_failover_test_holds_the_session_down_until_it_ends_and_keeps_a_history() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    h.report(&edge, h.revision().await, json!([])).await;
    let path = format!("/cic/v1/privateConnections/{pc}");
    let conn_cfg = || async {
        let cfg = h.edge_config(&edge).await;
        cfg["instances"][0]["connections"][0].clone()
    };

    let viewer = h.user("vic", "f1", "viewer").await;
    let (s, _) = h
        .call(
            Method::POST,
            &format!("{path}:startBgpFailoverTest"),
            Some(&viewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, msg) in [
        (
            json!({"durationSeconds": 0}),
            "durationSeconds: 0 is out of range",
        ),
        (json!({"durationSeconds": 999999}), "durationSeconds"),
        (json!({"minutes": 3}), "minutes"),
    ] {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(
                Method::POST,
                &format!("{path}:startBgpFailoverTest"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(err_message(&v).contains(msg), "{v}");
        assert_eq!(h.revision().await, rev);
    }
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("{path}:stopBgpFailoverTest"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing to stop: {v}");

    let op = h
        .ok(
            Method::POST,
            &format!("{path}:startBgpFailoverTest"),
            json!({"durationSeconds": 600}),
        )
        .await;
    assert_eq!(
        op["done"], false,
        "done when the edge has taken the session down"
    );
    let until = conn_cfg().await["holdDownUntil"]
        .as_str()
        .expect("held down")
        .to_string();
    let (_, got) = h.admin(Method::GET, &path, None).await;
    let t = &got["bgpFailoverTests"][0];
    assert_eq!(t["status"], "IN_PROGRESS", "{got}");
    assert_eq!(t["endsAt"], until.as_str());
    assert_eq!(t["startedBy"], "bootstrap", "the operator's subject: {t}");
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("{path}:startBgpFailoverTest"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "one at a time: {v}");

    h.ok(
        Method::POST,
        &format!("{path}:stopBgpFailoverTest"),
        json!({}),
    )
    .await;
    assert!(
        conn_cfg().await.get("holdDownUntil").is_none(),
        "the session may come back"
    );
    let (_, got) = h.admin(Method::GET, &path, None).await;
    assert_eq!(got["bgpFailoverTests"][0]["status"], "STOPPED");
    assert!(got["bgpFailoverTests"][0]["stoppedAt"].is_string());

    // A reset restarts the session: a new sequence for the edge, counted on the resource.
    assert!(conn_cfg().await.get("resetSeq").is_none());
    h.ok(Method::POST, &format!("{path}:resetBgpSession"), json!({}))
        .await;
    assert_eq!(conn_cfg().await["resetSeq"], 1);
    let (_, got) = h.admin(Method::GET, &path, None).await;
    assert_eq!(got["bgpSessionResets"], "1");
}

#[tokio::test]
async fn the_looking_glass_asks_the_edge_of_the_connection_and_passes_its_answer_on() {
    let h = std::sync::Arc::new(H::new().await);
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    // Playing the edge: fetch one question, answer it from a table of routes.
    let edge_side = answer_one_question(h.clone(), edge.clone(), |q| {
        match q["direction"].as_str() {
            Some("received") => json!([
            {"prefix": "192.168.10.0/24", "nextHop": "169.254.100.2", "asPath": [65001], "origin": "IGP"},
            {"prefix": "10.128.0.0/25", "nextHop": "169.254.100.2", "asPath": [65001], "origin": "IGP",
             "rejected": "overlaps VPC prefix 10.128.0.0/24"}]),
            _ => json!([]),
        }
    });
    let viewer = h.user("vic", "f1", "viewer").await;
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:routes?direction=received"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["routes"][1]["rejected"],
        "overlaps VPC prefix 10.128.0.0/24"
    );
    assert_eq!(v["routes"][0]["asPath"], json!([65001]));
    let q = edge_side.await.expect("edge side");
    assert_eq!(q["connectionId"], pc.as_str());

    // Bad requests, other tenants, and answers nobody asked for.
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:routes?direction=sideways"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}?direction=received"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let other = h.user("olga", "f2", "admin").await;
    let (s, _) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:routes"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/queries/lgnothing",
            Some(&edge),
            Some(json!({"routes": []})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .call(Method::GET, "/cic/v1/edgeSync/queries", Some(&viewer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "edges only");
}

#[tokio::test]
async fn diagnose_turns_what_the_edge_sees_into_the_missing_step() {
    let h = std::sync::Arc::new(H::new().await);
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &trunk,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pc = resource_id(&op);
    let facts = |failure: Value| {
        json!({"facts": {
            "port": {"name": "xc-site1", "up": true, "carrier": true},
            "interface": {"name": "cic-x", "up": true, "carrier": true},
            "neighbor": "RESOLVED",
            "minHoldTimeSecs": 90,
            "session": {"resourceId": "x", "kind": "customer", "peer": "169.254.100.2",
                "peerAsn": 65001, "state": "ACTIVE", "uptimeSecs": 0, "prefixesReceived": 0,
                "prefixesAccepted": 0, "prefixesAdvertised": 0, "lastFailure": failure}}})
    };
    // Playing the edge: the customer's router opened with AS 65099.
    let edge_side = answer_one_question_with(h.clone(), edge.clone(), move |_| {
        facts(json!({"kind": "wrongAsn", "received": 65099, "expected": 65001}))
    });
    let viewer = h.user("vic", "f1", "viewer").await;
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:diagnose"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let q = edge_side.await.expect("edge side");
    assert_eq!(
        (q["connectionId"].as_str(), &q["diagnose"]),
        (Some(pc.as_str()), &json!(true))
    );
    let d = &v["sessions"][0];
    assert_eq!(v["sessions"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(d["step"], "WRONG_ASN", "{v}");
    assert_eq!(d["ok"], false);
    assert!(
        d["summary"]
            .as_str()
            .is_some_and(|s| s.contains("as AS 65099; the connection expects AS 65001")),
        "{d}"
    );
    assert_eq!(d["facts"]["neighbor"], "RESOLVED");

    // A running failover test is what holds the session down: said first.
    h.ok(
        Method::POST,
        &format!("/cic/v1/privateConnections/{pc}:startBgpFailoverTest"),
        json!({"durationSeconds": 300}),
    )
    .await;
    let edge_side = answer_one_question_with(h.clone(), edge.clone(), move |_| {
        facts(json!({"kind": "connectRefused"}))
    });
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:diagnose?family=ipv4"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    edge_side.await.expect("edge side");
    assert_eq!(v["sessions"][0]["step"], "FAILOVER_TEST", "{v}");

    // Asking for a family the connection lacks, or with a misspelt parameter.
    for (query, field) in [("family=ipv6", "family"), ("famly=ipv4", "famly")] {
        let (s, v) = h
            .admin(
                Method::GET,
                &format!("/cic/v1/privateConnections/{pc}:diagnose?{query}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    // Another tenant does not see the connection.
    let other = h.user("olga", "f2", "admin").await;
    let (s, _) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:diagnose"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_edge_is_drained_for_maintenance_through_its_config() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let (_, edges) = h.admin(Method::GET, "/cic/v1/edges", None).await;
    let id = edges["edges"][0]["id"]
        .as_str()
        .expect("edge id")
        .to_string();
    let drain = |on: bool| {
        format!(
            "/cic/v1/edges/{id}:{}",
            if on { "drain" } else { "undrain" }
        )
    };
    let cfg = || async {
        let (_, c) = h
            .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge), None)
            .await;
        c
    };
    assert!(cfg().await.get("drain").is_none());
    let viewer = h.user("vic", "f1", "admin").await;
    let (s, _) = h
        .call(Method::POST, &drain(true), Some(&viewer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the operator's");
    let (s, v) = h.admin(Method::POST, &drain(true), None).await;
    assert_eq!(
        (s, v["drain"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    assert_eq!(cfg().await["drain"], true);
    let (s, v) = h
        .admin(Method::POST, &format!("/cic/v1/edges/{id}:explode"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    h.admin(Method::POST, &drain(false), None).await;
    assert!(cfg().await.get("drain").is_none());
}

/// GTSM and BGP roles: a connection's own choice over the operator's default, shown as
/// what is in force, sent to the edge, a PATCH's `null` back to the default; a wrong
/// value named by its field and nothing stored.
#[tokio::test]
async fn a_connection_s_gtsm_and_roles_are_its_choice_over_the_operator_s_default() {
    let mut config = cic_server::ServerConfig::default();
    config.bgp.ttl_security = true;
    config.bgp.bgp_role = cic_model::edge::BgpRoleMode::Announce;
    let h = H::with_config(&common::test_database().await, config).await;
    h.ok(
        Method::POST,
        "/resourcemanager/v1/folders",
        json!({"id": "f1", "name": "folder-f1"}),
    )
    .await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let body = |extra: Value| {
        let mut b = json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": 100,
            "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                            "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}});
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    // A role that does not exist: named, nothing stored.
    let (s, v) = h
        .admin(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(body(json!({"bgpRole": "CUSTOMER"}))),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(common::err_message(&v).contains("bgpRole"), "{v}");
    assert_eq!(h.count("/cic/v1/privateConnections?folderId=f1").await, 0);
    // The customer turns GTSM off and wants strict roles.
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            body(json!({"ttlSecurity": false, "bgpRole": "STRICT"})),
        )
        .await;
    let pc = resource_id(&op);
    let path = format!("/cic/v1/privateConnections/{pc}");
    let got = h.ok(Method::GET, &path, Value::Null).await;
    assert_eq!(
        (got["ttlSecurity"].clone(), got["bgpRole"].clone()),
        (json!(false), json!("STRICT"))
    );
    assert_eq!(
        got["bgpSessionOptions"],
        json!({"ttlSecurity": false, "bgpRole": "STRICT",
               "bfd": {"minIntervalMs": 300, "multiplier": 3}})
    );
    let edge_conn = |cfg: &Value| cfg["instances"][0]["connections"][0].clone();
    let cfg = h.edge_config(&edge).await;
    let c = edge_conn(&cfg);
    assert_eq!(
        (c.get("ttlSecurity"), c["bgpRole"].clone()),
        (None, json!("STRICT")),
        "{c}"
    );
    // Back to the operator's defaults.
    h.ok(
        Method::PATCH,
        &path,
        json!({"ttlSecurity": null, "bgpRole": null}),
    )
    .await;
    let got = h.ok(Method::GET, &path, Value::Null).await;
    assert!(
        got.get("ttlSecurity").is_none() && got.get("bgpRole").is_none(),
        "{got}"
    );
    assert_eq!(
        got["bgpSessionOptions"],
        json!({"ttlSecurity": true, "bgpRole": "ANNOUNCE",
               "bfd": {"minIntervalMs": 300, "multiplier": 3}})
    );
    let cfg = h.edge_config(&edge).await;
    let c = edge_conn(&cfg);
    assert_eq!(
        (c["ttlSecurity"].clone(), c["bgpRole"].clone()),
        (json!(true), json!("ANNOUNCE")),
        "{c}"
    );
    // A wrong type in a PATCH: named, nothing changed.
    let (s, v) = h
        .admin(Method::PATCH, &path, Some(json!({"ttlSecurity": "yes"})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(common::err_message(&v).contains("ttlSecurity"), "{v}");
    // The customer's router config follows what is in force.
    let rc = h
        .ok(
            Method::GET,
            &format!("{path}:routerConfig?vendor=bird"),
            Value::Null,
        )
        .await;
    let text = rc["config"].as_str().expect("config");
    assert!(
        text.contains("ttl security on;") && text.contains("local role customer;"),
        "{text}"
    );
    assert!(!text.contains("require roles"), "{text}");
}

/// A connection's BFD timers (RFC 5880): its own within the operator's bounds (each wrong
/// one named, nothing stored), shown with what is in force, sent to the edge, `null` back
/// to the operator's 300 ms × 3, followed by the customer's router config; refused where
/// the operator turned BFD off.
#[tokio::test]
async fn a_connection_s_bfd_timers_are_its_choice_within_the_operator_s_bounds() {
    let config = cic_server::ServerConfig {
        bfd_min_interval_ms: 100,
        ..Default::default()
    };
    let h = H::with_config(&common::test_database().await, config).await;
    h.ok(
        Method::POST,
        "/resourcemanager/v1/folders",
        json!({"id": "f1", "name": "folder-f1"}),
    )
    .await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let body = |bfd: Value| {
        json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": 100,
            "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                            "cloudIp": "169.254.100.1", "peerBgpAsn": 65001},
            "bfd": bfd})
    };
    for (bad, msg) in [
        (
            json!({"minIntervalMs": 50, "multiplier": 3}),
            "bfd.minIntervalMs: 50 ms is out of range 100-10000 ms (this cloud's minimum is 100 ms)",
        ),
        (
            json!({"minIntervalMs": 20000, "multiplier": 3}),
            "bfd.minIntervalMs",
        ),
        (
            json!({"minIntervalMs": 100, "multiplier": 1}),
            "bfd.multiplier: 1 is out of range 2-50",
        ),
        (json!({"minIntervalMs": 100}), "multiplier"),
        (
            json!({"minIntervalMs": 100, "multiplier": 3, "echo": true}),
            "echo",
        ),
    ] {
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/privateConnections", Some(body(bad)))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(common::err_message(&v).contains(msg), "{msg}: {v}");
        assert_eq!(h.count("/cic/v1/privateConnections?folderId=f1").await, 0);
    }
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            body(json!({"minIntervalMs": 100, "multiplier": 3})),
        )
        .await;
    let pc = resource_id(&op);
    let path = format!("/cic/v1/privateConnections/{pc}");
    let got = h.ok(Method::GET, &path, Value::Null).await;
    assert_eq!(got["bfd"], json!({"minIntervalMs": 100, "multiplier": 3}));
    assert_eq!(
        got["bgpSessionOptions"]["bfd"],
        json!({"minIntervalMs": 100, "multiplier": 3})
    );
    let edge_conn = |cfg: &Value| cfg["instances"][0]["connections"][0].clone();
    let cfg = h.edge_config(&edge).await;
    assert_eq!(
        edge_conn(&cfg)["bfd"],
        json!({"minIntervalMs": 100, "multiplier": 3})
    );
    let rc = h
        .ok(
            Method::GET,
            &format!("{path}:routerConfig?vendor=bird"),
            Value::Null,
        )
        .await;
    let text = rc["config"].as_str().expect("config");
    assert!(
        text.contains("min rx interval 100 ms; min tx interval 100 ms; multiplier 3;"),
        "{text}"
    );
    // A PATCH below the bound: named, nothing changed.
    h.report(&edge, h.revision().await, json!([])).await;
    let rev = h.revision().await;
    let (s, v) = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"bfd": {"minIntervalMs": 60, "multiplier": 3}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(common::err_message(&v).contains("bfd.minIntervalMs"), "{v}");
    assert_eq!(h.revision().await, rev, "nothing written");
    // Back to the operator's default.
    h.ok(Method::PATCH, &path, json!({"bfd": null})).await;
    let got = h.ok(Method::GET, &path, Value::Null).await;
    assert!(got.get("bfd").is_none(), "{got}");
    assert_eq!(
        got["bgpSessionOptions"]["bfd"],
        json!({"minIntervalMs": 300, "multiplier": 3})
    );
    let cfg = h.edge_config(&edge).await;
    assert_eq!(edge_conn(&cfg).get("bfd"), None);

    // An operator without BFD: no timers to ask for, none in force.
    let mut config = cic_server::ServerConfig::default();
    config.bgp.bfd.enabled = false;
    let h = H::with_config(&common::test_database().await, config).await;
    h.ok(
        Method::POST,
        "/resourcemanager/v1/folders",
        json!({"id": "f1", "name": "folder-f1"}),
    )
    .await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let mut b = body(json!({"minIntervalMs": 300, "multiplier": 3}));
    b["trunkConnectionId"] = json!(trunk);
    let (s, v) = h
        .admin(Method::POST, "/cic/v1/privateConnections", Some(b.clone()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(common::err_message(&v).contains("BFD is off"), "{v}");
    b.as_object_mut().expect("object").remove("bfd");
    let op = h.ok(Method::POST, "/cic/v1/privateConnections", b).await;
    let pc = resource_id(&op);
    let got = h
        .ok(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            Value::Null,
        )
        .await;
    assert_eq!(got["bgpSessionOptions"].get("bfd"), None, "{got}");
}

/// The public-services network of a PoP: the operator's, checked field by field (a wrong
/// one names the field and changes nothing), hidden from customers; with it each public
/// connection's instance gets its segment toward the services routers (VNI and transit
/// /31 of its own fabric slot), the services routers' side is listed for the operator,
/// static routing announces the services itself, and a deleted connection frees its slot.
#[tokio::test]
async fn a_pop_s_public_services_network_gives_each_public_connection_its_segment() {
    let h = H::new().await;
    let (edge, edge_id) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let viewer = h.user("vic", "f1", "viewer").await;
    h.ok(
        Method::POST,
        "/cic/v1/cloudServices",
        json!({"id": "CLOUD_SERVICE_S3", "prefixes": ["213.180.193.0/24", "2a02:6b8::/32"]}),
    )
    .await;
    let pop = |ps: Value| json!({"id": "pop1", "name": "pop1", "publicServices": ps});
    for (bad, field, msg) in [
        (
            json!({"remoteVtep": "0.0.0.0", "routing": "BGP", "asn": 64999}),
            "publicServices.remoteVtep",
            "not a unicast address",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "BGP"}),
            "publicServices.asn",
            "is required with BGP routing",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 23456}),
            "publicServices.asn",
            "not a usable ASN",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "STATIC", "asn": 64999}),
            "publicServices.asn",
            "static routing has no session",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 64999, "udpPort": 0}),
            "publicServices.udpPort",
            "not a UDP port",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "OSPF", "asn": 64999}),
            "publicServices.routing",
            "",
        ),
        (
            json!({"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 64999, "vtep": "x"}),
            "vtep",
            "",
        ),
    ] {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(Method::PUT, "/cic/v1/pointOfPresences/pop1", Some(pop(bad)))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v.to_string().contains(field) && err_message(&v).contains(msg),
            "{field}: {v}"
        );
        assert_eq!(h.revision().await, rev, "nothing written");
    }
    let (s, _) = h
        .call(
            Method::PUT,
            "/cic/v1/pointOfPresences/pop1",
            Some(&viewer),
            Some(pop(
                json!({"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 64999}),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the operator's");

    let body = json!({"folderId": "f1", "name": "pub", "trunkConnectionId": trunk, "vlanId": "300",
        "ipv4Peering": {"peeringSubnet": "5.45.200.0/31", "peerIp": "5.45.200.1", "cloudIp": "5.45.200.0", "peerBgpAsn": "65001"},
        "ipv4AllowedServiceTypes": ["CLOUD_SERVICE_S3"],
        "ipv4PeerAnnouncedPrefixes": ["5.45.192.0/22"]});
    let op = h.ok(Method::POST, "/cic/v1/publicConnections", body).await;
    let id = resource_id(&op);
    let instance = |cfg: &Value| common::edge_instance(cfg, &id);
    let cfg = h.edge_config(&edge).await;
    assert_eq!(instance(&cfg)["fabric"], Value::Null, "no network yet");
    // A connection made by an older server has no slot: the PoP's network gives it one.
    {
        let mut tx = h.state.store.begin().await.expect("tx");
        let rev = tx.bump_revision().await.expect("rev");
        tx.delete::<cic_store::FabricSlot>(&cic_store::FabricSlot::key(&edge_id, &id))
            .await
            .expect("slot gone");
        let _ = rev;
        tx.commit().await.expect("commit");
    }

    h.ok(
        Method::PUT,
        "/cic/v1/pointOfPresences/pop1",
        pop(json!({"remoteVtep": "100.66.0.2", "routing": "BGP", "asn": 64999})),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    let i = instance(&cfg);
    // The edge's transit pool is 100.127.0.0/24, its first slot taken by this connection.
    assert_eq!(
        (
            &i["fabric"]["remoteVtep"],
            &i["fabric"]["vni"],
            &i["fabric"]["edgeIp"],
            &i["fabric"]["fabricIp"],
            &i["fabric"]["fabricAsn"],
            &i["fabric"]["udpPort"],
        ),
        (
            &json!("100.66.0.2"),
            &json!(100_000),
            &json!("100.127.0.0"),
            &json!("100.127.0.1"),
            &json!(64999),
            &json!(4789)
        ),
        "{i}"
    );
    assert_eq!(i["fabric"]["ipv6"], Value::Null, "an IPv4-only connection");
    assert_eq!(i["fabric"]["staticRouting"], Value::Null);
    assert_eq!(i["vpcPrefixes"], json!(["213.180.193.0/24"]), "IPv4 only");
    assert_eq!(
        i["announce"],
        Value::Null,
        "sent while the services routers cover it"
    );

    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/publicServicesAttachments"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["items"],
        json!([{"publicConnectionId": id, "routing": "BGP", "vni": 100_000, "udpPort": 4789,
                "edgeVtep": "100.64.255.1", "subnet": "100.127.0.0/31", "edgeIp": "100.127.0.0",
                "servicesIp": "100.127.0.1", "edgeAsn": 200_350, "servicesAsn": 64999,
                "customerPrefixes": ["5.45.192.0/22"]}])
    );
    let (s, _) = h
        .call(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/publicServicesAttachments"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Customers see the PoP, not the operator's network behind it.
    let (_, v) = h
        .call(
            Method::GET,
            "/cic/v1/pointOfPresences/pop1",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(
        (&v["id"], &v["publicServices"]),
        (&json!("pop1"), &Value::Null)
    );
    let (_, v) = h
        .call(Method::GET, "/cic/v1/pointOfPresences", Some(&viewer), None)
        .await;
    assert_eq!(
        v["pointOfPresences"][0]["publicServices"],
        Value::Null,
        "{v}"
    );
    let (_, v) = h
        .admin(Method::GET, "/cic/v1/pointOfPresences/pop1", None)
        .await;
    assert_eq!(v["publicServices"]["asn"], 64999);

    // Static routing: no session; the edge routes the services and announces them.
    h.ok(
        Method::PUT,
        "/cic/v1/pointOfPresences/pop1",
        pop(json!({"remoteVtep": "100.66.0.2", "routing": "STATIC", "udpPort": 4790})),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    let i = instance(&cfg);
    assert_eq!(
        (
            &i["fabric"]["staticRouting"],
            &i["fabric"]["udpPort"],
            &i["announce"]
        ),
        (&json!(true), &json!(4790), &json!(["213.180.193.0/24"]))
    );

    // The session's methods, as a private connection's: a failover test held down at
    // the edge until it ends or is stopped, a reset.
    let path = format!("/cic/v1/publicConnections/{id}");
    let conn = |cfg: &Value| instance(cfg)["connections"][0].clone();
    h.report(&edge, h.revision().await, json!([])).await;
    for (bad, field) in [
        (json!({"durationSeconds": 0}), "durationSeconds"),
        (json!({"privateConnectionId": id}), "privateConnectionId"),
        (
            json!({"publicConnectionId": "pu-other"}),
            "publicConnectionId",
        ),
    ] {
        let rev = h.revision().await;
        let (s, v) = h
            .admin(
                Method::POST,
                &format!("{path}:startBgpFailoverTest"),
                Some(bad),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains(field), "{field}: {v}");
        assert_eq!(h.revision().await, rev, "nothing written");
    }
    h.ok(
        Method::POST,
        &format!("{path}:startBgpFailoverTest"),
        json!({"publicConnectionId": id, "durationSeconds": 60}),
    )
    .await;
    let cfg = h.edge_config(&edge).await;
    assert!(conn(&cfg)["holdDownUntil"].is_string(), "{cfg}");
    let (_, v) = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(v["bgpFailoverTests"][0]["status"], "IN_PROGRESS", "{v}");
    for list in [
        "/cic/v1/publicConnections?folderId=f1".to_string(),
        format!("/cic/v1/trunkConnections/{trunk}/publicConnections"),
    ] {
        let (_, v) = h.call(Method::GET, &list, Some(&viewer), None).await;
        assert_eq!(
            v["publicConnections"][0]["bgpFailoverTests"][0]["status"], "IN_PROGRESS",
            "{list}: {v}"
        );
    }
    h.report(&edge, h.revision().await, json!([])).await;
    let (s, v) = h
        .admin(Method::POST, &format!("{path}:startBgpFailoverTest"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "one at a time: {v}");
    h.ok(
        Method::POST,
        &format!("{path}:stopBgpFailoverTest"),
        json!({}),
    )
    .await;
    h.report(&edge, h.revision().await, json!([])).await;
    h.ok(Method::POST, &format!("{path}:resetBgpSession"), json!({}))
        .await;
    let cfg = h.edge_config(&edge).await;
    assert_eq!(
        (&conn(&cfg)["holdDownUntil"], &conn(&cfg)["resetSeq"]),
        (&Value::Null, &json!(1))
    );
    let (_, v) = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(v["bgpFailoverTests"][0]["status"], "STOPPED", "{v}");

    // A deleted connection's slot is free again: the next connection has its VNI.
    h.ok(Method::DELETE, &path, Value::Null).await;
    h.report(&edge, h.revision().await, json!([])).await;
    let (s, _) = h.admin(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/publicServicesAttachments"),
            None,
        )
        .await;
    assert_eq!(v["items"], json!([]));
    let again = json!({"folderId": "f1", "name": "pub2", "trunkConnectionId": trunk, "vlanId": "301",
        "ipv4Peering": {"peeringSubnet": "5.45.200.2/31", "peerIp": "5.45.200.3", "cloudIp": "5.45.200.2", "peerBgpAsn": "65001"},
        "ipv4AllowedServiceTypes": ["CLOUD_SERVICE_S3"]});
    h.ok(Method::POST, "/cic/v1/publicConnections", again).await;
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/edges/{edge_id}/publicServicesAttachments"),
            None,
        )
        .await;
    assert_eq!(v["items"][0]["vni"], 100_000, "{v}");
}

// ---------------------------------------------------------------------------------------
// History: what the edges reported, over time

#[tokio::test]
async fn a_connection_s_history_holds_its_reports_rates_and_events_for_those_who_may_read_it() {
    let h = H::new().await;
    let (edge, trunk, pc) = h.one_connection().await;
    let pu = h.public_connection(&trunk).await;
    let report = |state: &str, bytes: u64| {
        let session = |id: &str| {
            json!({"resourceId": id, "kind": "customer", "peer": "169.254.100.2",
                   "peerAsn": 65001, "state": state, "uptimeSecs": 1, "prefixesReceived": 2,
                   "prefixesAccepted": 2, "prefixesAdvertised": 1,
                   "lastError": if state == "ESTABLISHED" { Value::Null } else { json!("hold timer expired") }})
        };
        json!({"appliedRevision": 1, "dataplane": "vxlan-overlay",
               "sessions": [session(&pc), session(&pu)], "errors": [],
               "traffic": [{"resourceId": pc, "bytesToCloud": bytes, "bytesFromCloud": bytes,
                            "packetsToCloud": bytes / 100, "packetsFromCloud": bytes / 100}]})
    };
    for (state, bytes) in [
        ("ESTABLISHED", 0),
        ("ESTABLISHED", 1_000_000),
        ("IDLE", 2_000_000),
    ] {
        let (s, v) = h
            .call(
                Method::PUT,
                "/cic/v1/edgeSync/status",
                Some(&edge),
                Some(report(state, bytes)),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let viewer = h.user("vic", "f1", "viewer").await;
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:history"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["window"], "hour");
    let samples = v["samples"].as_array().expect("samples");
    // Reports within a second are one sample (the worse state kept); rates are the
    // history's unit tests' (they need time to pass).
    assert!(!samples.is_empty(), "{v}");
    assert_eq!(
        samples.last().map(|x| x["state"].clone()),
        Some(json!("IDLE"))
    );
    assert!(
        samples[0].get("bitsToCloud").is_none(),
        "no rate at the first report"
    );
    assert_eq!(v["events"][0]["kind"], "SESSION_DOWN");
    assert!(
        v["events"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("hold timer expired"))
    );
    // A public connection's too, and its day.
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/publicConnections/{pu}:history?window=day"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let minutes = v["samples"].as_array().expect("samples");
    assert!(
        (1..=2).contains(&minutes.len()),
        "one minute, or two across its turn: {v}"
    );
    assert_eq!(
        minutes.last().map(|x| x["state"].clone()),
        Some(json!("IDLE")),
        "a minute with a down report is down"
    );
    // A wrong window is named; another tenant finds nothing.
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:history?window=week"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err_message(&v).contains("window"), "{v}");
    let stranger = h.user("eve", "f2", "viewer").await;
    for path in [
        format!("/cic/v1/privateConnections/{pc}:history"),
        format!("/cic/v1/publicConnections/{pu}:history"),
    ] {
        let (s, _) = h.call(Method::GET, &path, Some(&stranger), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
}

/// What the compiler reads is read from the store once per revision: the edges and the
/// fabric asking at one revision share one read, and after a change the next one reads
/// again and holds it.
#[tokio::test]
async fn the_compiler_s_snapshot_is_read_once_per_revision_and_again_after_a_change() {
    let h = H::new().await;
    let (_, _, pc) = h.one_connection().await;
    let (a, ra) = h.state.snapshot().await.expect("snapshot");
    let (b, rb) = h.state.snapshot().await.expect("snapshot");
    assert_eq!(ra, rb);
    assert!(std::sync::Arc::ptr_eq(&a, &b), "one read for one revision");
    h.ok(
        Method::PATCH,
        &format!("/cic/v1/privateConnections/{pc}"),
        json!({"description": "changed"}),
    )
    .await;
    let (c, rc) = h.state.snapshot().await.expect("snapshot");
    assert!(rc > ra, "the change moved the revision");
    assert!(!std::sync::Arc::ptr_eq(&a, &c), "read again after a change");
    let conn = c
        .connections
        .iter()
        .find(|c| c.meta.id == pc)
        .expect("the connection");
    assert_eq!(conn.meta.description, "changed", "{conn:?}");
}

/// A new revision's snapshot decodes only the rows written since the last one and takes
/// the rest from it — and is the same as a whole read of the store: after a change, a
/// create, a delete, and a row rewritten under an older revision.
#[tokio::test]
async fn a_snapshot_at_a_new_revision_reads_only_what_was_written_and_equals_a_whole_read() {
    let h = H::new().await;
    let (edge, trunk, pc) = h.one_connection().await;
    for n in 1..=4 {
        let (s, v) = h.numbered_connection(&trunk, n).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let whole = || async {
        let mut r = h.state.store.read().await.expect("read");
        json!({
            "edges": r.list::<cic_model::resource::Edge>(None).await.expect("edges"),
            "trunks": r.list::<cic_model::resource::TrunkConnection>(None).await.expect("trunks"),
            "connections": r.list::<cic_model::resource::PrivateConnection>(None).await.expect("pcs"),
            "ris": r.list::<cic_model::resource::RoutingInstance>(None).await.expect("ris"),
            "slots": r.list::<cic_store::FabricSlot>(None).await.expect("slots"),
            "pops": r.list::<cic_model::resource::PointOfPresence>(None).await.expect("pops"),
            "public": r.list::<cic_model::resource::PublicConnection>(None).await.expect("public"),
            "services": r.list::<cic_model::resource::CloudService>(None).await.expect("services"),
        })
    };
    let held = |s: &cic_server::compile::Snapshot| {
        json!({
            "edges": s.edges, "trunks": s.trunks, "connections": s.connections,
            "ris": s.routing_instances, "slots": s.slots, "pops": s.pops,
            "public": s.public_connections, "services": s.services,
        })
    };
    let (first, _) = h.state.snapshot().await.expect("snapshot");
    assert_eq!(held(&first), whole().await);
    let all = h.state.snapshots.last_read().expect("read").decoded;
    assert!(all >= 7, "the first read decodes every row: {all}");

    // A change: one row decoded.
    h.ok(
        Method::PATCH,
        &format!("/cic/v1/privateConnections/{pc}"),
        json!({"description": "changed"}),
    )
    .await;
    let (snap, rev) = h.state.snapshot().await.expect("snapshot");
    let last = h.state.snapshots.last_read().expect("read");
    assert_eq!(last.revision, rev);
    assert_eq!((last.decoded, last.kept), (1, all - 1), "{last:?}");
    assert_eq!(last.listed, 0, "nothing went: no kind is listed: {last:?}");
    assert_eq!(held(&snap), whole().await);

    // A delete (finished by the edge's report): the row is gone from the snapshot.
    let (s, v) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.report(&edge, h.revision().await, json!([])).await;
    let (snap, _) = h.state.snapshot().await.expect("snapshot");
    assert!(snap.connections.iter().all(|c| c.meta.id != pc));
    let last = h.state.snapshots.last_read().expect("read");
    assert!(
        last.listed >= 1,
        "a document went: its kind is listed: {last:?}"
    );
    assert_eq!(held(&snap), whole().await);

    // A create (its id anywhere in id order): put in its place, still without a listing.
    let (s, v) = h.numbered_connection(&trunk, 5).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (snap, _) = h.state.snapshot().await.expect("snapshot");
    let last = h.state.snapshots.last_read().expect("read");
    assert_eq!(last.listed, 0, "{last:?}");
    assert_eq!(held(&snap), whole().await);

    // A row rewritten under an older revision than the last snapshot's is read too.
    let other = snap.connections[0].meta.id.clone();
    let mut tx = h.state.store.begin().await.expect("tx");
    tx.execute_raw(
        "UPDATE resources SET revision = 1, body = REPLACE(body, '\"description\":\"\"', \
         '\"description\":\"rewritten\"') WHERE kind = 'privateConnection' AND id = \
         (SELECT MIN(id) FROM resources WHERE kind = 'privateConnection')",
    )
    .await
    .expect("rewrite");
    tx.bump_revision().await.expect("bump");
    tx.commit().await.expect("commit");
    let (snap, _) = h.state.snapshot().await.expect("snapshot");
    let last = h.state.snapshots.last_read().expect("read");
    assert_eq!((last.decoded, last.listed), (1, 1), "{last:?}");
    let c = snap
        .connections
        .iter()
        .find(|c| c.meta.id == other)
        .expect("connection");
    assert_eq!(c.meta.description, "rewritten", "{c:?}");
    assert_eq!(held(&snap), whole().await);
}

/// A report at a revision this server has not settled after finishes the operations
/// waiting on it, whatever this server holds of that report already: here another server
/// stored it and stopped before settling, and a Get here read it (and kept it decoded);
/// the edge's next report, at the same revision, finishes the operation. (Settling was
/// once skipped for a report at the revision of the one held decoded, which any request
/// fills: the operation stayed pending until a newer revision.)
#[tokio::test]
async fn a_report_stored_but_not_settled_is_settled_by_the_next_at_its_revision() {
    let h = H::new().await;
    let (edge, edge_id) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let (s, op) = h.numbered_connection(&trunk, 1).await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_eq!(op["done"], false, "{op}");
    let (op_id, pc) = (op["id"].as_str().expect("op").to_string(), resource_id(&op));
    let rev = h.revision().await;
    let report: cic_model::edge::EdgeReport = serde_json::from_value(json!({
        "appliedRevision": rev, "dataplane": "vxlan-overlay", "sessions": [], "errors": []
    }))
    .expect("report");
    h.state
        .store
        .put_edge_report(&edge_id, &report, "2026-12-06T00:00:00Z", "rvother")
        .await
        .expect("stored by another server");
    // A Get here reads it, and keeps it decoded.
    h.private_connection(&pc).await;
    h.report(&edge, rev, json!([])).await;
    let (_, v) = h
        .admin(Method::GET, &format!("/operations/{op_id}"), None)
        .await;
    assert_eq!(v["done"], true, "{v}");
}

/// A report that completes several operations finishes them in one commit and one
/// revision. That revision wakes those waiting on an operation, but not the edges' config
/// long polls: finishing an operation changes nothing an edge is given, and during a
/// bring-up every edge fetched and compared the whole config again for nothing.
#[tokio::test]
async fn operations_one_report_finishes_are_one_revision_that_wakes_their_waiters_not_the_edges() {
    use std::time::{Duration, Instant};
    let h = std::sync::Arc::new(H::new().await);
    let (edge, trunk, _) = h.one_connection().await;
    let mut ops = vec![];
    for n in 1..=3 {
        let (s, op) = h.numbered_connection(&trunk, n).await;
        assert_eq!(s, StatusCode::OK, "{op}");
        assert_eq!(op["done"], false, "{op}");
        ops.push(op["id"].as_str().expect("op").to_string());
    }
    let before = h.revision().await;
    let waiter = {
        let (h, id) = (h.clone(), ops[2].clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let path = format!("/operations/{id}?waitSeconds=30");
            let (_, v) = h.admin(Method::GET, &path, None).await;
            (v, t.elapsed())
        })
    };
    let edge_poll = {
        let (h, edge) = (h.clone(), edge.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let path = format!("/cic/v1/edgeSync/config?afterRevision={before}&waitSeconds=2");
            let (s, v) = h.call(Method::GET, &path, Some(&edge), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            (v, t.elapsed())
        })
    };
    h.report(&edge, before, json!([])).await;
    assert_eq!(
        h.revision().await,
        before + 1,
        "one revision for the report's three operations"
    );
    for id in &ops {
        let (_, op) = h
            .admin(Method::GET, &format!("/operations/{id}"), None)
            .await;
        assert_eq!(op["done"], true, "{op}");
    }
    let (op, took) = waiter.await.expect("waiter");
    assert_eq!(op["done"], true, "{op}");
    assert!(
        took < Duration::from_secs(10),
        "the waiter woke after {took:?}"
    );
    let (cfg, took) = edge_poll.await.expect("edge poll");
    assert!(
        took >= Duration::from_millis(1900),
        "the edge's long poll was woken after {took:?} by operations finishing"
    );
    assert_eq!(
        cfg["revision"],
        before + 1,
        "the config is as of the store's revision"
    );
}

/// A trunk's VLANs and its quota of private connections are checked by index (never by
/// reading its connections): a VLAN held is named with its holder, the quota counts the
/// others, and a connection changed in place neither clashes with itself nor counts
/// against its own room.
#[tokio::test]
async fn a_trunk_s_vlans_and_quota_are_judged_by_index_leaving_out_the_connection_changed() {
    let h = H::new().await;
    let (_, trunk, first) = h.one_connection().await;
    let mut last = String::new();
    for n in 1..=4 {
        let (s, v) = h.numbered_connection(&trunk, n).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        last = resource_id(&v);
    }
    // The quota (5 by default) is full.
    let (s, v) = h.numbered_connection(&trunk, 5).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(
        err_message(&v).contains("already has 5 private connections (quota)"),
        "{v}"
    );
    // The fifth moves to another VLAN: room for itself, no clash with itself.
    let path = format!("/cic/v1/privateConnections/{last}");
    for vlan in [106, 106] {
        let (s, v) = h
            .admin(Method::PATCH, &path, Some(json!({"vlanId": vlan})))
            .await;
        assert_eq!(s, StatusCode::OK, "VLAN {vlan}: {v}");
    }
    // Onto the first one's VLAN: refused, naming who holds it.
    let (s, v) = h
        .admin(Method::PATCH, &path, Some(json!({"vlanId": 100})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        err_message(&v).contains(&format!(
            "VLAN 100 is already used on trunk {trunk} by private connection {first}"
        )),
        "{v}"
    );
}

/// Operations finishing change nothing an edge is given, which is why they wake no edge:
/// a create finished after a delete of the same resource came leaves it DELETING (out of
/// every config) instead of bringing it back as ACTIVE until the delete finishes.
#[tokio::test]
async fn a_create_finished_after_its_delete_came_leaves_the_resource_deleting() {
    let h = H::new().await;
    let (edge, trunk, _) = h.one_connection().await;
    let (s, op) = h.numbered_connection(&trunk, 1).await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_eq!(op["done"], false, "{op}");
    let pc = resource_id(&op);
    let created_at = h.revision().await;
    let (s, del) = h
        .admin(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{del}");
    // The edge had applied the create's revision, not the delete's.
    h.report(&edge, created_at, json!([])).await;
    let op = h.operation(&op["id"]).await;
    assert_eq!(op["done"], true, "{op}");
    let v = h.private_connection(&pc).await;
    assert_eq!(v["status"], "DELETING", "{v}");
    let cfg = h.edge_config(&edge).await;
    assert!(!cfg.to_string().contains(&pc), "{cfg}");
    // The delete finishes it.
    h.report(&edge, h.revision().await, json!([])).await;
    let op = h.operation(&del["id"]).await;
    assert_eq!(op["done"], true, "{op}");
    let (s, _) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
