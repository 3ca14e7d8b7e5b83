//! What a script that reads, edits and pages meets: PATCH semantics (read-modify-write,
//! merges, updateMask), stable paging, malformed and oversized bodies, the shape of every
//! refusal, and reads that touch only what they need. On SQLite, and on PostgreSQL when
//! `CIC_TEST_BACKEND=postgres`.

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// A folder f1 with a trunk and one private connection with an MD5 key; returns the
/// harness, the edge token, the connection id.
async fn with_keyed_connection() -> (H, String, String) {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let t = h.trunk("pop1", "100.64.1.2").await;
    let op = h
        .ok(
            Method::POST,
            "/cic/v1/privateConnections",
            json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": 100,
                   "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                                   "cloudIp": "169.254.100.1", "peerBgpAsn": 65001,
                                   "peerBgpMd5Key": "the-real-key-0123456789"}}),
        )
        .await;
    (h, edge, resource_id(&op))
}

/// The MD5 key the edge is given for connection `pc` (what a session would use).
async fn key_on_edge(h: &H, edge: &str, pc: &str) -> Option<String> {
    let (s, cfg) = h
        .call(Method::GET, "/cic/v1/edgeSync/config", Some(edge), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{cfg}");
    cfg["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .flat_map(|i| i["connections"].as_array().cloned().unwrap_or_default())
        .find(|c| c["id"] == pc)
        .map(|c| c["peerings"][0]["md5Key"].as_str().map(str::to_string))
        .expect("the connection is in the edge's config")
}

// ---------------------------------------------------------------------------------------
// 1, 2: masked secrets and partial peerings

#[tokio::test]
async fn a_resource_read_with_its_key_masked_and_sent_back_keeps_the_key() {
    let (h, edge, pc) = with_keyed_connection().await;
    let editor = h.user("alice", "f1", "editor").await;
    let path = format!("/cic/v1/privateConnections/{pc}");
    let (s, mut read) = h.call(Method::GET, &path, Some(&editor), None).await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(read["ipv4Peering"]["peerBgpMd5Key"], "********");
    // Read, modify, write back — the peering as read, the whole resource as read.
    read["description"] = json!("changed by a script");
    let (s, v) = h
        .call(
            Method::PATCH,
            &path,
            Some(&editor),
            Some(json!({"description": read["description"], "ipv4Peering": read["ipv4Peering"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        key_on_edge(&h, &edge, &pc).await.as_deref(),
        Some("the-real-key-0123456789")
    );
    let (s, v) = h
        .call(Method::PATCH, &path, Some(&editor), Some(read))
        .await;
    assert_eq!(s, StatusCode::OK, "the whole resource as read: {v}");
    assert_eq!(
        key_on_edge(&h, &edge, &pc).await.as_deref(),
        Some("the-real-key-0123456789")
    );
    let (_, v) = h.call(Method::GET, &path, Some(&editor), None).await;
    assert_eq!(v["description"], "changed by a script");
    // The mask is never a key on Create either.
    let t = v["trunkConnectionId"].clone();
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(&editor),
            Some(
                json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": 101,
                   "ipv4Peering": {"peeringSubnet": "169.254.101.0/30", "peerIp": "169.254.101.2",
                                   "cloudIp": "169.254.101.1", "peerBgpAsn": 65001,
                                   "peerBgpMd5Key": "********"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"][0]["field"], "ipv4Peering.peerBgpMd5Key");
}

#[tokio::test]
async fn a_peering_is_patched_field_by_field_and_the_key_removed_only_when_asked() {
    let (h, edge, pc) = with_keyed_connection().await;
    let path = format!("/cic/v1/privateConnections/{pc}");
    // Only the ASN: the rest of the peering, the key included, stays.
    let v = h
        .ok(
            Method::PATCH,
            &path,
            json!({"ipv4Peering": {"peerBgpAsn": "65010"}}),
        )
        .await;
    assert_eq!(v["error"], Value::Null, "{v}");
    let (_, got) = h.admin(Method::GET, &path, None).await;
    assert_eq!(got["ipv4Peering"]["peerBgpAsn"], "65010");
    assert_eq!(got["ipv4Peering"]["peeringSubnet"], "169.254.100.0/30");
    assert_eq!(
        key_on_edge(&h, &edge, &pc).await.as_deref(),
        Some("the-real-key-0123456789")
    );
    // Addresses alone, checked as Create checks them.
    let (s, v) = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"ipv4Peering": {"peerIp": "169.254.9.9"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"][0]["field"], "ipv4Peering.peerIp");
    // A required field cannot be nulled.
    let (s, v) = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"ipv4Peering": {"peeringSubnet": null}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"][0]["field"], "ipv4Peering.peeringSubnet", "{v}");
    // A new key, then removal by null, and by "".
    h.ok(
        Method::PATCH,
        &path,
        json!({"ipv4Peering": {"peerBgpMd5Key": "another-key-0123456789"}}),
    )
    .await;
    assert_eq!(
        key_on_edge(&h, &edge, &pc).await.as_deref(),
        Some("another-key-0123456789")
    );
    h.ok(
        Method::PATCH,
        &path,
        json!({"ipv4Peering": {"peerBgpMd5Key": null}}),
    )
    .await;
    assert_eq!(key_on_edge(&h, &edge, &pc).await, None);
    h.ok(
        Method::PATCH,
        &path,
        json!({"ipv4Peering": {"peerBgpMd5Key": "third-key-0123456789"}}),
    )
    .await;
    h.ok(
        Method::PATCH,
        &path,
        json!({"ipv4Peering": {"peerBgpMd5Key": ""}}),
    )
    .await;
    assert_eq!(key_on_edge(&h, &edge, &pc).await, None);
}

// ---------------------------------------------------------------------------------------
// 3: updateMask

#[tokio::test]
async fn update_mask_changes_only_the_masked_fields() {
    let (h, edge, pc) = with_keyed_connection().await;
    let path = format!("/cic/v1/privateConnections/{pc}");
    h.ok(
        Method::PATCH,
        &path,
        json!({"updateMask": "description", "description": "d2", "vlanId": "120"}),
    )
    .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(
        (v["description"].as_str(), v["vlanId"].as_str()),
        (Some("d2"), Some("100"))
    );
    // A nested path: only the key, the ASN in the body ignored.
    h.ok(
        Method::PATCH,
        &path,
        json!({"updateMask": "ipv4Peering.peerBgpMd5Key",
               "ipv4Peering": {"peerBgpMd5Key": "masked-in-key-0123456789", "peerBgpAsn": 65099}}),
    )
    .await;
    assert_eq!(
        key_on_edge(&h, &edge, &pc).await.as_deref(),
        Some("masked-in-key-0123456789")
    );
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(v["ipv4Peering"]["peerBgpAsn"], "65001");
    // Masked but left out: the description is cleared, the key removed, the VLAN refused.
    h.ok(
        Method::PATCH,
        &path,
        json!({"updateMask": "description,ipv4_peering.peer_bgp_md5_key"}),
    )
    .await;
    let (_, v) = h.admin(Method::GET, &path, None).await;
    assert_eq!(v["description"], "");
    assert_eq!(key_on_edge(&h, &edge, &pc).await, None);
    let rev = h.revision().await;
    for (body, field, says) in [
        (
            json!({"updateMask": "vlanId"}),
            "vlanId",
            "cannot be cleared",
        ),
        (
            json!({"updateMask": "description,color"}),
            "updateMask",
            "\"color\" is not a field",
        ),
        (
            json!({"updateMask": "ipv4Peering.cloudBgpAsn"}),
            "updateMask",
            "not a field",
        ),
        (json!({"updateMask": 5}), "updateMask", "must be a string"),
        (
            json!({"updateMask": "name", "vlan": 7}),
            "vlan",
            "not a field",
        ),
        (
            json!({"folderId": "f2", "description": "x"}),
            "folderId",
            ":move",
        ),
    ] {
        let (s, v) = h.admin(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["details"][0]["field"], field, "{body}: {v}");
        assert!(err_message(&v).contains(says), "{body}: {v}");
        assert_eq!(h.revision().await, rev, "{body}: nothing written");
    }
    // Trunks and routing instances honour it too.
    let (_, v) = h.admin(Method::GET, &path, None).await;
    let trunk = format!(
        "/cic/v1/trunkConnections/{}",
        v["trunkConnectionId"].as_str().expect("trunk")
    );
    h.ok(
        Method::PATCH,
        &trunk,
        json!({"updateMask": "name", "name": "t-new", "description": "ignored"}),
    )
    .await;
    let (_, t) = h.admin(Method::GET, &trunk, None).await;
    assert_eq!(
        (t["name"].as_str(), t["description"].as_str()),
        (Some("t-new"), Some(""))
    );
    let (s, v) = h
        .admin(
            Method::PATCH,
            &trunk,
            Some(json!({"capacity": "CAPACITY_10_GBPS"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"][0]["field"], "capacity");
    // The trunk as read may be sent back whole.
    let (s, v) = h.admin(Method::PATCH, &trunk, Some(t)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let op = h
        .ok(
            Method::POST,
            "/cloudrouter/v1/routingInstances",
            json!({"folderId": "f1", "name": "ri1", "description": "keep"}),
        )
        .await;
    let ri = format!("/cloudrouter/v1/routingInstances/{}", resource_id(&op));
    h.ok(
        Method::PATCH,
        &ri,
        json!({"updateMask": "deletionProtection", "deletionProtection": true, "description": "x"}),
    )
    .await;
    let (_, r) = h.admin(Method::GET, &ri, None).await;
    assert_eq!(
        (r["deletionProtection"].as_bool(), r["description"].as_str()),
        (Some(true), Some("keep"))
    );
}

// ---------------------------------------------------------------------------------------
// 4: paging

#[tokio::test]
async fn paging_while_resources_change_neither_skips_nor_repeats() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = h.trunk("pop1", &format!("100.64.1.{}", i + 2)).await;
        for v in 0..3u32 {
            let n = i * 3 + v;
            let (s, op) = h
                .connection(
                    &t,
                    100 + n,
                    &format!("169.254.{n}.0/30"),
                    &format!("169.254.{n}.2"),
                    &format!("169.254.{n}.1"),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{op}");
            ids.push(resource_id(&op));
        }
    }
    let list = |token: String| {
        let h = &h;
        async move {
            let q = if token.is_empty() {
                String::new()
            } else {
                format!("&pageToken={token}")
            };
            let (s, v) = h
                .admin(
                    Method::GET,
                    &format!("/cic/v1/privateConnections?folderId=f1&pageSize=5{q}"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let v = list(token.clone()).await;
        for c in v["privateConnections"].as_array().expect("page") {
            *seen
                .entry(c["id"].as_str().expect("id").to_string())
                .or_default() += 1;
        }
        pages += 1;
        // Between pages, what a busy system does: every connection is written again
        // (its description, then its operations finish), and a new one appears.
        for id in &ids {
            h.ok(
                Method::PATCH,
                &format!("/cic/v1/privateConnections/{id}"),
                json!({"description": format!("page {pages}")}),
            )
            .await;
        }
        let (_, cfg) = h
            .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge), None)
            .await;
        h.report(&edge, cfg["revision"].as_u64().expect("rev"), json!([]))
            .await;
        match v["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} listed {:?} times",
            seen.get(id)
        );
    }
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn page_tokens_are_checked_and_bound_to_their_listing() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    for i in 0..3 {
        h.trunk("pop1", &format!("100.64.1.{}", i + 2)).await;
    }
    let (s, v) = h
        .admin(
            Method::GET,
            "/cic/v1/trunkConnections?folderId=f1&pageSize=2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["nextPageToken"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/trunkConnections?folderId=f1&pageSize=2&pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["trunkConnections"].as_array().map(Vec::len), Some(1));
    for (what, path) in [
        (
            "huge number",
            "/cic/v1/trunkConnections?folderId=f1&pageToken=99999999999999999999".to_string(),
        ),
        (
            "an offset",
            "/cic/v1/trunkConnections?folderId=f1&pageToken=2".to_string(),
        ),
        (
            "another folder's listing",
            format!("/cic/v1/trunkConnections?folderId=f2&pageToken={token}"),
        ),
        (
            "another kind's listing",
            format!("/cic/v1/privateConnections?folderId=f1&pageToken={token}"),
        ),
        (
            "another filter",
            format!("/cic/v1/trunkConnections?folderId=f1&filter=name%3D%22x%22&pageToken={token}"),
        ),
        (
            "tampered",
            format!(
                "/cic/v1/trunkConnections?folderId=f1&pageToken={}00",
                &token[..token.len() - 2]
            ),
        ),
        (
            "not hex",
            "/cic/v1/trunkConnections?folderId=f1&pageToken=zz".to_string(),
        ),
    ] {
        let (s, v) = h.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["details"][0]["field"], "pageToken", "{what}: {v}");
    }
}

// ---------------------------------------------------------------------------------------
// 5, 7: bodies and refusals

#[tokio::test]
async fn anything_after_the_json_object_or_a_key_twice_is_refused_and_nothing_stored() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let t = h.trunk("pop1", "100.64.1.2").await;
    let good = json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": "100",
        "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                        "cloudIp": "169.254.100.1", "peerBgpAsn": "65001"}})
    .to_string();
    let rev = h.revision().await;
    for body in [
        format!("{good} {{\"vlanId\":\"4095\"}}"),
        format!("{good} garbage"),
        format!("{good}}}"),
        good.replace(
            "\"vlanId\":\"100\"",
            "\"vlanId\":\"100\",\"vlanId\":\"4095\"",
        ),
        good[..good.len() - 3].to_string(),
    ] {
        let (s, v) = h
            .raw(
                Method::POST,
                "/cic/v1/privateConnections",
                Some(ADMIN),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_plain(&v);
        assert_eq!(h.revision().await, rev, "{body}: nothing written");
    }
    assert_eq!(h.count("/cic/v1/privateConnections?folderId=f1").await, 0);
}

/// A refusal in the one shape, in the API's words (not the parser's).
fn assert_plain(v: &Value) {
    assert!(v["code"].is_string(), "no code: {v}");
    let m = err_message(v);
    assert!(!m.is_empty(), "no message: {v}");
    for leak in [
        "line 1",
        "column",
        "expected struct",
        "elements",
        "?:",
        "`",
        "Request",
    ] {
        assert!(!m.contains(leak), "{leak:?} in {m:?}");
    }
}

#[tokio::test]
async fn refusals_name_the_field_in_the_api_terms() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let t = h.trunk("pop1", "100.64.1.2").await;
    let body = |peering: Value| json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": "100", "ipv4Peering": peering});
    for (b, field) in [
        (
            body(
                json!({"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                        "cloudIp": "169.254.100.1"}),
            ),
            "ipv4Peering.peerBgpAsn",
        ),
        (
            body(
                json!({"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                        "cloudIp": "169.254.100.1", "peerBgpAsn": "6500x"}),
            ),
            "ipv4Peering.peerBgpAsn",
        ),
        (
            body(
                json!({"peeringSubnet": "169.254.100.0/33", "peerIp": "169.254.100.2",
                        "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}),
            ),
            "ipv4Peering.peeringSubnet",
        ),
        (body(json!(["169.254.100.0/30"])), "ipv4Peering"),
        (
            json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": true,
                   "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                                   "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}}),
            "vlanId",
        ),
    ] {
        let (s, v) = h
            .admin(Method::POST, "/cic/v1/privateConnections", Some(b.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}: {v}");
        assert_eq!(v["details"][0]["field"], field, "{b}: {v}");
        assert!(err_message(&v).starts_with(field), "{v}");
        assert_plain(&v);
    }
}

#[tokio::test]
async fn bodies_must_be_json_and_small_and_every_refusal_has_the_one_shape() {
    let h = H::new().await;
    let folder = json!({"id": "f9", "name": "nine"}).to_string();
    for (ct, want) in [
        ("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("application/json; charset=utf-8", StatusCode::OK),
    ] {
        let (s, v) = h
            .with_headers(
                Method::POST,
                "/resourcemanager/v1/folders",
                Some(ADMIN),
                Some(folder.clone()),
                &[("content-type", ct)],
            )
            .await;
        assert_eq!(s, want, "{ct:?}: {v}");
        if s != StatusCode::OK {
            assert!(err_message(&v).contains("must be JSON"), "{v}");
        }
    }
    // One limit, one answer: 413 with or without an Idempotency-Key.
    let big = format!(
        "{{\"id\": \"f8\", \"name\": \"{}\"}}",
        "x".repeat(1_100_000)
    );
    for key in [None, Some("k-413")] {
        let headers: Vec<(&str, &str)> = key
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        let (s, v) = h
            .with_headers(
                Method::POST,
                "/resourcemanager/v1/folders",
                Some(ADMIN),
                Some(big.clone()),
                &headers,
            )
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{key:?}: {v}");
        assert!(
            v["code"].is_string() && err_message(&v).contains("KiB"),
            "{v}"
        );
    }
    // 405 names what the path takes, in the same shape.
    let (s, v) = h
        .admin(Method::DELETE, "/cic/v1/pointOfPresences", None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert!(err_message(&v).contains("GET"), "{v}");
    assert!(v["code"].is_string(), "{v}");
    let (s, v) = h.admin(Method::GET, "/cic/v1/nothing-here", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["code"].is_string(), "{v}");
}

// ---------------------------------------------------------------------------------------
// 6: static routes

#[tokio::test]
async fn static_routes_get_the_checks_of_an_announced_route() {
    let (h, _, pc) = with_keyed_connection().await;
    let (_, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}"),
            None,
        )
        .await;
    let t = v["trunkConnectionId"].clone();
    let rev = h.revision().await;
    for bad in [
        "0.0.0.0/0",
        "127.0.0.0/8",
        "224.0.0.0/4",
        "169.254.0.0/16",
        "192.0.2.0/24",
    ] {
        let (s, v) = h
            .admin(
                Method::POST,
                "/cic/v1/privateConnections",
                Some(
                    json!({"folderId": "f1", "trunkConnectionId": t, "vlanId": 200,
                    "ipv4Peering": {"peeringSubnet": "169.254.200.0/30", "peerIp": "169.254.200.2",
                                    "cloudIp": "169.254.200.1", "peerBgpAsn": 65001},
                    "ipv4StaticRoutes": [{"prefix": bad}]}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(
            v["details"][0]["field"], "ipv4StaticRoutes[0].prefix",
            "{v}"
        );
        for (method, path, body) in [
            (
                Method::POST,
                format!("/cic/v1/privateConnections/{pc}:upsertStaticRoutes"),
                json!({"ipv4StaticRoutes": [{"prefix": bad}]}),
            ),
            (
                Method::PATCH,
                format!("/cic/v1/privateConnections/{pc}"),
                json!({"ipv4StaticRoutes": [{"prefix": "192.168.7.0/24"}, {"prefix": bad}]}),
            ),
        ] {
            let (s, v) = h.admin(method, &path, Some(body)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} {path}: {v}");
        }
    }
    assert_eq!(h.revision().await, rev);
}

// ---------------------------------------------------------------------------------------
// 8: reads that touch only what they need

/// Makes the stored routing instance named `ri-poisoned` undecodable.
async fn poison_instance(h: &H) {
    let mut tx = h.state.store.begin().await.expect("tx");
    tx.execute_raw("UPDATE resources SET body = 'not a document' WHERE kind = 'routingInstance' AND name = 'ri-poisoned'")
        .await
        .expect("poison");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn gets_lists_and_creates_read_only_their_own_instance_and_edge_report() {
    let h = H::new().await;
    let (edge_a, _) = h.pop_and_edge("pop1", "edge-a", "100.64.255.1").await;
    let (edge_b, _) = h.pop_and_edge("pop2", "edge-b", "100.64.255.9").await;
    let ta = h.trunk("pop1", "100.64.1.2").await;
    let (_, op) = h
        .connection(
            &ta,
            100,
            "169.254.100.0/30",
            "169.254.100.2",
            "169.254.100.1",
        )
        .await;
    let pa = resource_id(&op);
    h.ok(
        Method::POST,
        "/cloudrouter/v1/routingInstances",
        json!({"folderId": "f1", "name": "ri-a", "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": pa}]}),
    )
    .await;
    h.ok(
        Method::POST,
        "/cloudrouter/v1/routingInstances",
        json!({"folderId": "f2", "name": "ri-poisoned", "vpcInfo": [{"vpcNetworkId": "vpc-b"}]}),
    )
    .await;
    // Edge A reports its session; edge B reports something no server can decode.
    let (_, cfg) = h
        .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge_a), None)
        .await;
    let (s, v) = h
        .call(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(&edge_a),
            Some(
                json!({"appliedRevision": cfg["revision"], "dataplane": "vxlan-overlay",
                "sessions": [{"resourceId": pa, "kind": "customer", "peer": "169.254.100.2",
                    "peerAsn": 65001, "state": "ESTABLISHED", "uptimeSecs": 7,
                    "prefixesReceived": 1, "prefixesAccepted": 1, "prefixesAdvertised": 1}],
                "errors": []}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.report(&edge_b, 1, json!([])).await;
    let mut tx = h.state.store.begin().await.expect("tx");
    tx.execute_raw(
        "UPDATE edge_reports SET body = 'not a report', version = 'poisoned' WHERE edge_id IN \
         (SELECT id FROM resources WHERE kind = 'edge' AND name = 'edge-b')",
    )
    .await
    .expect("poison edge B's report");
    tx.commit().await.expect("commit");
    poison_instance(&h).await;
    // Nothing about connection A reads edge B's report or the poisoned instance.
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pa}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["bgp"]["state"], "ESTABLISHED", "{v}");
    assert!(v["routingInstanceId"].is_string(), "{v}");
    let (s, v) = h
        .admin(Method::GET, "/cic/v1/privateConnections?folderId=f1", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["privateConnections"][0]["bgp"]["state"], "ESTABLISHED",
        "{v}"
    );
    let (s, v) = h
        .connection(
            &ta,
            101,
            "169.254.102.0/30",
            "169.254.102.2",
            "169.254.102.1",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/cic/v1/privateConnections/{pa}:upsertStaticRoutes"),
            Some(json!({"ipv4StaticRoutes": [{"prefix": "192.168.50.0/24"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// An edge's report is decoded in one pass (it is hundreds of KB at every report), and a
/// bad one is refused as strictly as any request: a field given twice, a wrong type deep
/// inside, something after the object — each named, and the report kept is the last
/// good one.
#[tokio::test]
async fn a_bad_edge_report_is_refused_by_name_and_changes_nothing() {
    let h = H::new().await;
    let (edge, _, pc) = h.one_connection().await;
    let rev = h.edge_config(&edge).await["revision"]
        .as_u64()
        .expect("rev");
    let session = |state: &str| {
        format!(
            r#"{{"resourceId": "{pc}", "kind": "customer", "peer": "169.254.100.2", "peerAsn": 65001, "state": "{state}", "uptimeSecs": 7, "prefixesReceived": 1, "prefixesAccepted": 1, "prefixesAdvertised": 1}}"#
        )
    };
    let good = format!(
        r#"{{"appliedRevision": {rev}, "dataplane": "vxlan-overlay", "sessions": [{}], "errors": []}}"#,
        session("ESTABLISHED")
    );
    let (s, v) = h
        .raw(
            Method::PUT,
            "/cic/v1/edgeSync/status",
            Some(&edge),
            Some(good),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let bad = [
        (
            format!(
                r#"{{"appliedRevision": {rev}, "appliedRevision": {rev}, "dataplane": "x", "sessions": [{}], "errors": []}}"#,
                session("IDLE")
            ),
            "appliedRevision",
            "twice",
        ),
        (
            format!(
                r#"{{"appliedRevision": {rev}, "dataplane": "x", "sessions": [{}], "errors": []}}"#,
                session("IDLE").replace(r#""uptimeSecs": 7"#, r#""uptimeSecs": "seven""#)
            ),
            "sessions[0].uptimeSecs",
            "",
        ),
        (
            format!(
                r#"{{"appliedRevision": {rev}, "dataplane": "x", "sessions": [{}], "errors": []}} {{}}"#,
                session("IDLE")
            ),
            "",
            "after its JSON object",
        ),
    ];
    for (body, field, says) in bad {
        let (s, v) = h
            .raw(
                Method::PUT,
                "/cic/v1/edgeSync/status",
                Some(&edge),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["code"], "INVALID_ARGUMENT", "{v}");
        assert!(v.to_string().contains(field), "{field}: {v}");
        assert!(err_message(&v).contains(says), "{says}: {v}");
    }
    let v = h.private_connection(&pc).await;
    assert_eq!(
        v["bgp"]["state"], "ESTABLISHED",
        "the last good report: {v}"
    );
}
