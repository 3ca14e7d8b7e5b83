//! Tenancy and access: folders isolate tenants, roles limit what a subject may do, secrets
//! are shown only to secret viewers, API keys can be revoked, and retried mutations with
//! an `Idempotency-Key` create nothing twice.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

const TRUNK: &str = "/cic/v1/trunkConnections";
const PCS: &str = "/cic/v1/privateConnections";

fn trunk_body(folder: &str) -> Value {
    json!({"folderId": folder, "pointOfPresenceId": "pop1", "capacity": "CAPACITY_1_GBPS",
           "overlayJoint": {"remoteVtep": "100.64.1.2"}})
}

fn pc_body(folder: &str, trunk: &str, key: Option<&str>) -> Value {
    let mut v = json!({"folderId": folder, "trunkConnectionId": trunk, "vlanId": 100,
           "ipv4Peering": {"peeringSubnet": "169.254.100.0/30", "peerIp": "169.254.100.2",
                           "cloudIp": "169.254.100.1", "peerBgpAsn": 65001}});
    if let Some(k) = key {
        v["ipv4Peering"]["peerBgpMd5Key"] = json!(k);
    }
    v
}

/// Every string in `v` (to look for a secret anywhere in a response).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn a_tenant_cannot_list_read_change_or_probe_another_folder() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let alice = h.user("alice", "f1", "editor").await;
    let bob = h.user("bob", "f2", "editor").await;

    let (s, op) = h
        .call(Method::POST, TRUNK, Some(&alice), Some(trunk_body("f1")))
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let trunk = resource_id(&op);
    let op_id = op["id"].as_str().expect("op").to_string();
    assert_eq!(op["createdBy"], "alice");

    let rev = h.revision().await;
    // What bob gets for alice's trunk is exactly what he gets for an id nobody has.
    let (s, theirs) = h
        .call(Method::GET, &format!("{TRUNK}/{trunk}"), Some(&bob), None)
        .await;
    let (s2, nobodys) = h
        .call(Method::GET, &format!("{TRUNK}/tcnothere"), Some(&bob), None)
        .await;
    assert_eq!((s, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        err_message(&theirs).replace(&trunk, "ID"),
        err_message(&nobodys).replace("tcnothere", "ID")
    );
    for (method, path, body) in [
        (Method::GET, format!("{TRUNK}?folderId=f1"), None),
        (Method::GET, format!("{PCS}?folderId=f1"), None),
        (
            Method::GET,
            "/resourcemanager/v1/folders/f1".to_string(),
            None,
        ),
        (
            Method::PATCH,
            format!("{TRUNK}/{trunk}"),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("{TRUNK}/{trunk}"), None),
        (Method::GET, format!("{TRUNK}/{trunk}/operations"), None),
        (Method::GET, format!("/operations/{op_id}"), None),
        (Method::POST, TRUNK.to_string(), Some(trunk_body("f1"))),
        // Using alice's trunk from bob's own folder.
        (
            Method::POST,
            PCS.to_string(),
            Some(pc_body("f2", &trunk, None)),
        ),
    ] {
        let (s, v) = h.call(method.clone(), &path, Some(&bob), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    // Without a folder, only the operator may list.
    let (s, v) = h.call(Method::GET, TRUNK, Some(&bob), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err_message(&v).contains("folderId"));
    // Bob's own folder is empty for him, and he sees only his folder.
    let (_, v) = h
        .call(
            Method::GET,
            &format!("{TRUNK}?folderId=f2"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(v["trunkConnections"], json!([]));
    let (_, v) = h
        .call(Method::GET, "/resourcemanager/v1/folders", Some(&bob), None)
        .await;
    let ids: Vec<&str> = v["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, ["f2"]);
    assert_eq!(h.revision().await, rev, "nothing bob tried was written");

    // Alice reads her own trunk and its operations.
    let (s, v) = h
        .call(Method::GET, &format!("{TRUNK}/{trunk}"), Some(&alice), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .call(
            Method::GET,
            &format!("{TRUNK}/{trunk}/operations"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["operations"][0]["id"], op_id.as_str());
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_change_and_an_auditor_sees_metadata_only() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let carol = h.user("carol", "f1", "viewer").await;
    let dave = h.user("dave", "f1", "auditor").await;
    let rev = h.revision().await;

    let (s, v) = h
        .call(Method::GET, &format!("{TRUNK}/{trunk}"), Some(&carol), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["capacity"], "CAPACITY_1_GBPS");
    for (method, path, body) in [
        (Method::POST, TRUNK.to_string(), Some(trunk_body("f1"))),
        (
            Method::PATCH,
            format!("{TRUNK}/{trunk}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("{TRUNK}/{trunk}"), None),
        (
            Method::POST,
            PCS.to_string(),
            Some(pc_body("f1", &trunk, None)),
        ),
    ] {
        for who in [&carol, &dave] {
            let (s, v) = h.call(method.clone(), &path, Some(who), body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
            assert_eq!(v["code"], "PERMISSION_DENIED");
            assert!(err_message(&v).contains("editor"), "{v}");
        }
    }
    assert_eq!(h.revision().await, rev, "nothing was written");

    // The auditor sees that the trunk exists and its metadata, not its configuration.
    let (s, v) = h
        .call(Method::GET, &format!("{TRUNK}/{trunk}"), Some(&dave), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], trunk.as_str());
    assert_eq!(v["folderId"], "f1");
    assert!(v.get("capacity").is_none(), "{v}");
    assert!(v.get("overlayJoint").is_none(), "{v}");
    let (_, v) = h
        .call(
            Method::GET,
            &format!("{TRUNK}?folderId=f1"),
            Some(&dave),
            None,
        )
        .await;
    assert!(v["trunkConnections"][0].get("capacity").is_none(), "{v}");
}

#[tokio::test]
async fn only_a_secret_viewer_sees_an_md5_key_anywhere() {
    let h = H::new().await;
    let (edge, _) = h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;
    let erin = h.user("erin", "f1", "editor").await;
    let sam = h.user("sam", "f1", "secretViewer").await;
    const KEY: &str = "a-long-shared-secret";

    let (s, op) = h
        .call(
            Method::POST,
            PCS,
            Some(&erin),
            Some(pc_body("f1", &trunk, Some(KEY))),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let pc = resource_id(&op);
    let op_id = op["id"].as_str().expect("op").to_string();
    // Let the edge apply it, so the operation's response holds the connection.
    let (_, cfg) = h
        .call(Method::GET, "/cic/v1/edgeSync/config", Some(&edge), None)
        .await;
    assert!(
        strings(&cfg).iter().any(|s| s == KEY),
        "the edge gets the key to install it: {cfg}"
    );
    h.report(&edge, cfg["revision"].as_u64().expect("rev"), json!([]))
        .await;

    let mut seen = Vec::new();
    for who in [ADMIN, erin.as_str(), sam.as_str()] {
        let mut all = Vec::new();
        for path in [
            format!("{PCS}/{pc}"),
            format!("{PCS}?folderId=f1"),
            format!("{PCS}/{pc}/operations"),
            format!("/operations/{op_id}"),
        ] {
            let (s, v) = h.call(Method::GET, &path, Some(who), None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {v}");
            all.extend(strings(&v));
        }
        seen.push(all.iter().filter(|s| *s == KEY).count());
    }
    let (_, done) = h
        .call(
            Method::GET,
            &format!("/operations/{op_id}"),
            Some(&sam),
            None,
        )
        .await;
    assert_eq!(done["done"], true, "{done}");
    // The operator and the editor see it masked in all four; the secret viewer in all four.
    assert_eq!(seen, [0, 0, 4]);
    let (_, v) = h
        .call(Method::GET, &format!("{PCS}/{pc}"), Some(&erin), None)
        .await;
    assert_eq!(v["ipv4Peering"]["peerBgpMd5Key"], "********");
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revoked_at_once() {
    let h = H::new().await;
    let v = h
        .ok(
            Method::POST,
            "/iam/v1/apiKeys",
            json!({"subjectId": "frank", "description": "CI robot"}),
        )
        .await;
    let secret = v["secret"].as_str().expect("secret").to_string();
    let id = v["apiKey"]["id"].as_str().expect("id").to_string();
    h.bind("f1", "viewer", "frank").await;
    let (s, _) = h
        .call(
            Method::GET,
            &format!("{TRUNK}?folderId=f1"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, list) = h
        .admin(Method::GET, "/iam/v1/apiKeys?subjectId=frank", None)
        .await;
    assert_eq!(list["apiKeys"][0]["id"], id.as_str());
    assert_eq!(list["apiKeys"][0]["description"], "CI robot");
    assert!(
        !strings(&list).contains(&secret),
        "a listed key has no secret"
    );
    // Subjects do not issue keys.
    let (s, _) = h
        .call(
            Method::POST,
            "/iam/v1/apiKeys",
            Some(&secret),
            Some(json!({"subjectId": "frank"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for bad in [
        json!({"subjectId": ""}),
        json!({"subjectId": "a b"}),
        json!({"subject": "x"}),
    ] {
        let (s, v) = h
            .admin(Method::POST, "/iam/v1/apiKeys", Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    let (s, _) = h
        .admin(Method::DELETE, &format!("/iam/v1/apiKeys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .call(
            Method::GET,
            &format!("{TRUNK}?folderId=f1"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .admin(Method::DELETE, &format!("/iam/v1/apiKeys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn folder_admins_manage_bindings_and_folders_with_resources_stay() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let gina = h.user("gina", "f1", "admin").await;
    let hank = h.user("hank", "f1", "editor").await;
    let grant = |role: &str, subject: &str| {
        json!({"accessBindingDeltas": [{"action": "ADD",
               "accessBinding": {"roleId": role, "subject": {"id": subject, "type": "userAccount"}}}]})
    };
    let path = "/resourcemanager/v1/folders/f1:updateAccessBindings";
    let (s, v) = h
        .call(
            Method::POST,
            path,
            Some(&hank),
            Some(grant("admin", "hank")),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "an editor cannot raise itself: {v}"
    );
    let (s, op) = h
        .call(
            Method::POST,
            path,
            Some(&gina),
            Some(grant("viewer", "ivy")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_eq!(op["done"], true);
    let (s, v) = h
        .call(
            Method::GET,
            "/resourcemanager/v1/folders/f1:listAccessBindings",
            Some(&gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let pairs: Vec<(String, String)> = v["accessBindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| {
            (
                b["subject"]["id"].as_str().unwrap_or_default().to_string(),
                b["roleId"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(pairs.contains(&("ivy".into(), "viewer".into())), "{v}");
    // A role that does not exist, or an action that does not, changes nothing.
    let rev = h.revision().await;
    for bad in [
        grant("owner", "ivy"),
        json!({"accessBindingDeltas": [{"action": "SET",
               "accessBinding": {"roleId": "viewer", "subject": {"id": "ivy"}}}]}),
        json!({"accessBindingDeltas": []}),
    ] {
        let (s, v) = h.call(Method::POST, path, Some(&gina), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    assert_eq!(h.revision().await, rev);

    // Folders are the operator's to make and delete; one holding resources stays.
    let (s, _) = h
        .call(
            Method::POST,
            "/resourcemanager/v1/folders",
            Some(&gina),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    h.trunk("pop1", "100.64.1.2").await;
    let (s, v) = h
        .admin(Method::DELETE, "/resourcemanager/v1/folders/f1", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION");
    let (s, _) = h
        .admin(Method::DELETE, "/resourcemanager/v1/folders/f2", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .admin(Method::GET, "/resourcemanager/v1/folders/f2", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_retried_mutation_with_an_idempotency_key_returns_the_first_operation() {
    let h = H::new().await;
    h.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let post = |key: &'static str, body: Value| {
        let h = &h;
        async move {
            h.with_headers(
                Method::POST,
                TRUNK,
                Some(ADMIN),
                Some(body.to_string()),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    let (s, first) = post("k-1", trunk_body("f1")).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (s, again) = post("k-1", trunk_body("f1")).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(first["id"], again["id"], "the same operation");
    assert_eq!(h.count(&format!("{TRUNK}?folderId=f1")).await, 1);

    // The same key for another request is a mistake, and says so.
    let mut other = trunk_body("f1");
    other["name"] = json!("other");
    let (s, v) = post("k-1", other.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err_message(&v).contains("different request"), "{v}");

    // A request that failed leaves the key free: the retry runs (and fails the same way).
    let mut bad = trunk_body("f1");
    bad["capacity"] = json!("CAPACITY_7_GBPS");
    let (s1, _) = post("k-2", bad.clone()).await;
    let (s2, _) = post("k-2", bad).await;
    assert_eq!((s1, s2), (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST));
    // Another key is another request.
    let (s, v) = post("k-3", other).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_ne!(v["id"], first["id"]);
    assert_eq!(h.count(&format!("{TRUNK}?folderId=f1")).await, 2);

    // Keys are per caller: another caller's identical key is its own.
    let ed = h.user("ed", "f1", "editor").await;
    let (s, v) = h
        .with_headers(
            Method::POST,
            TRUNK,
            Some(&ed),
            Some(trunk_body("f1").to_string()),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_ne!(v["id"], first["id"]);
    let long: &'static str = "k".repeat(200).leak();
    let (s, v) = post(long, trunk_body("f1")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err_message(&v).contains("Idempotency-Key"), "{v}");
}
