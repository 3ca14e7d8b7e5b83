//! Security of the API beside TLS (tests/tls.rs of the binary): the audit trail, request
//! ids and the headers of every answer. Runs on SQLite and on PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use common::{H, resource_id};
use serde_json::{Value, json};

const MD5: &str = "Audit-Must-Never-See-This-Key";

async fn events(h: &H, token: &str, query: &str) -> (StatusCode, Value) {
    h.call(
        Method::GET,
        &format!("/audit/v1/events{query}"),
        Some(token),
        None,
    )
    .await
}

fn find<'a>(evs: &'a [Value], method: &str, path_part: &str, status: u16) -> &'a Value {
    evs.iter()
        .find(|e| {
            e["method"] == method
                && e["path"].as_str().unwrap_or("").contains(path_part)
                && e["status"] == status
        })
        .unwrap_or_else(|| panic!("no {method} {path_part} {status} in {evs:#?}"))
}

#[tokio::test]
async fn mutations_and_refusals_are_audited_with_who_where_and_no_secret() {
    let h = H::new().await;
    let (_, _) = h.pop_and_edge("pop1", "e1", "100.64.255.1").await;
    let ann = h.user("ann", "f1", "editor").await;
    let viv = h.user("viv", "f1", "viewer").await;
    let boss = h.user("boss", "f1", "admin").await;
    let trunk = h.trunk("pop1", "100.64.1.2").await;

    // ann creates a connection with an MD5 key, edits it (with her request id) and
    // deletes it.
    let (s, op) = h
        .call(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(&ann),
            Some(json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": "100",
                "ipv4Peering": {"peeringSubnet": "169.254.0.0/30", "peerIp": "169.254.0.1",
                                "cloudIp": "169.254.0.2", "peerBgpAsn": 65001, "peerBgpMd5Key": MD5}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let pc = resource_id(&op);
    let (s, v) = h
        .with_headers(
            Method::PATCH,
            &format!("/cic/v1/privateConnections/{pc}"),
            Some(&ann),
            Some(json!({"description": "edited", "ipv4Peering": {"peerBgpMd5Key": "Another-Secret-Key"}}).to_string()),
            &[("x-request-id", "audit-test-42")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A viewer may not delete (403); a token no one issued is refused (401).
    let (s, _) = h
        .call(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc}"),
            Some(&viv),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h
        .call(
            Method::GET,
            "/cic/v1/privateConnections?folderId=f1",
            Some("not-a-token"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .call(
            Method::DELETE,
            &format!("/cic/v1/privateConnections/{pc}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Reads are not audited.
    h.call(
        Method::GET,
        &format!("/cic/v1/privateConnections/{pc}"),
        Some(&ann),
        None,
    )
    .await;

    let (s, all) = events(&h, common::ADMIN, "?pageSize=1000").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let evs = all["events"].as_array().expect("events").clone();
    let text = all.to_string();
    assert!(
        !text.contains(MD5) && !text.contains("Another-Secret-Key"),
        "a secret in the audit trail: {text}"
    );
    let create = find(&evs, "POST", "/cic/v1/privateConnections", 200);
    assert_eq!(create["subject"], "ann");
    assert_eq!(create["subjectKind"], "user");
    assert_eq!(create["folderId"], "f1");
    assert_eq!(create["resourceId"], pc.as_str());
    assert!(
        create["operationId"]
            .as_str()
            .unwrap_or("")
            .starts_with("op")
    );
    assert!(!create["requestId"].as_str().unwrap_or("").is_empty());
    let patch = find(&evs, "PATCH", &pc, 200);
    assert_eq!(patch["requestId"], "audit-test-42");
    let denied = find(&evs, "DELETE", &pc, 403);
    assert_eq!(denied["subject"], "viv");
    assert_eq!(denied["code"], "PERMISSION_DENIED");
    let unauth = find(&evs, "GET", "/cic/v1/privateConnections", 401);
    assert_eq!(unauth["subjectKind"], "anonymous");
    assert_eq!(unauth["code"], "UNAUTHENTICATED");
    find(&evs, "DELETE", &pc, 200);
    assert!(
        !evs.iter()
            .any(|e| e["method"] == "GET" && e["status"] == 200),
        "a successful read was audited"
    );
    // Newest first.
    let times: Vec<&str> = evs.iter().filter_map(|e| e["time"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // The folder's admin reads its folder; a viewer may not; no folder, no listing.
    let (s, mine) = events(&h, &boss, "?folderId=f1&pageSize=1000").await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let mine = mine["events"].as_array().expect("events");
    assert!(
        !mine.is_empty() && mine.iter().all(|e| e["folderId"] == "f1"),
        "{mine:?}"
    );
    let (s, _) = events(&h, &viv, "?folderId=f1").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = events(&h, &boss, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = events(&h, &boss, "?folderId=f2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Filters: by subject, by time.
    let (_, anns) = events(&h, common::ADMIN, "?subject=ann&pageSize=1000").await;
    let anns = anns["events"].as_array().expect("events");
    assert!(
        anns.len() >= 3 && anns.iter().all(|e| e["subject"] == "ann"),
        "{anns:?}"
    );
    let (_, later) = events(&h, common::ADMIN, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later["events"], json!([]));
    let (s, v) = events(&h, common::ADMIN, "?since=yesterday").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(common::err_message(&v).contains("since"), "{v}");

    // Paging: every event once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let q = if token.is_empty() {
            "?pageSize=2".to_string()
        } else {
            format!("?pageSize=2&pageToken={token}")
        };
        let (s, page) = events(&h, common::ADMIN, &q).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for e in page["events"].as_array().expect("events") {
            seen.push(e["id"].as_str().expect("id").to_string());
        }
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "an event listed twice");
    assert!(seen.len() >= evs.len(), "{} of {}", seen.len(), evs.len());
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_the_security_headers() {
    let h = H::new().await;
    for (path, token) in [
        ("/healthz", None),
        ("/cic/v1/edges", Some("bad")),
        ("/nope", None),
    ] {
        let req = axum::http::Request::builder()
            .uri(path)
            .header("x-request-id", "given-id-1")
            .body(axum::body::Body::empty())
            .expect("request");
        let req = match token {
            Some(t) => {
                let (mut p, b) = req.into_parts();
                p.headers.insert(
                    "authorization",
                    format!("Bearer {t}").parse().expect("header"),
                );
                axum::http::Request::from_parts(p, b)
            }
            None => req,
        };
        use tower::ServiceExt as _;
        let resp = h.app.clone().oneshot(req).await.expect("response");
        let hd = resp.headers();
        assert_eq!(hd["x-request-id"], "given-id-1", "{path}");
        assert_eq!(hd["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(hd["x-frame-options"], "DENY", "{path}");
        assert!(hd.contains_key("content-security-policy"), "{path}");
        assert_eq!(hd["cache-control"], "no-store", "{path}");
        // Plain HTTP (a test's loopback): no HSTS, which only means something over TLS.
        assert!(!hd.contains_key("strict-transport-security"), "{path}");
    }
    // A request id that is not one (too long, or not visible ASCII) is replaced.
    let req = axum::http::Request::builder()
        .uri("/healthz")
        .header("x-request-id", "x".repeat(300))
        .body(axum::body::Body::empty())
        .expect("request");
    use tower::ServiceExt as _;
    let resp = h.app.clone().oneshot(req).await.expect("response");
    let id = resp.headers()["x-request-id"].to_str().expect("id");
    assert!(id.len() < 64 && id.starts_with("rq"), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_flood_is_its_own_problem_not_anothers_nor_an_edges() {
    let config = cic_server::ServerConfig {
        limits: cic_server::limits::Limits {
            rate: 20.0,
            burst: 40.0,
            long_polls: 2,
        },
        ..Default::default()
    };
    let h = H::with_config(&common::test_database().await, config).await;
    for f in ["f1", "f2"] {
        h.ok(
            Method::POST,
            "/resourcemanager/v1/folders",
            json!({"id": f}),
        )
        .await;
    }
    let (edge_token, _) = h.pop_and_edge("pop1", "e1", "100.64.255.1").await;
    let ann = h.user("ann", "f1", "editor").await;
    let bob = h.user("bob", "f2", "editor").await;

    // ann floods: 200 requests at once.
    let started = std::time::Instant::now();
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (app, ann) = (h.app.clone(), ann.clone());
            tokio::spawn(async move {
                use tower::ServiceExt as _;
                let req = axum::http::Request::builder()
                    .uri("/cic/v1/trunkConnections?folderId=f1")
                    .header("authorization", format!("Bearer {ann}"))
                    .body(axum::body::Body::empty())
                    .expect("request");
                let resp = app.oneshot(req).await.expect("response");
                let (status, retry) = (resp.status(), resp.headers().get("retry-after").cloned());
                use http_body_util::BodyExt as _;
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (
                    status,
                    retry,
                    serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    // Meanwhile bob and the edge are served as ever.
    for _ in 0..10 {
        let (s, v) = h
            .call(
                Method::GET,
                "/cic/v1/trunkConnections?folderId=f2",
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = h
        .call(
            Method::GET,
            "/cic/v1/edgeSync/config",
            Some(&edge_token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut limited = 0;
    let mut refusal = Value::Null;
    for f in flood {
        let (s, retry, body) = f.await.expect("join");
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            refusal = body;
            let secs: u64 = retry
                .expect("Retry-After")
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=60).contains(&secs));
        } else {
            assert_eq!(s, StatusCode::OK);
        }
    }
    // Her burst, and 20 a second for as long as the flood lasted, and not one more.
    let allowed = 200 - limited;
    let most = 40 + (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (40..=most).contains(&allowed),
        "{allowed} of 200 served (burst 40, 20/s, at most {most})"
    );
    assert_eq!(refusal["code"], "RESOURCE_EXHAUSTED");
    assert!(
        common::err_message(&refusal).contains("requests per second"),
        "{refusal}"
    );

    // Long-polls: three at once with one credential, the cap two: one is refused at
    // once, the two others wait for a change.
    let rev = h.revision().await;
    let url = format!("/cic/v1/edgeSync/config?afterRevision={rev}&waitSeconds=30");
    let mut polls: Vec<_> = (0..3)
        .map(|_| {
            let (app, t, u) = (h.app.clone(), edge_token.clone(), url.clone());
            tokio::spawn(async move {
                use http_body_util::BodyExt as _;
                use tower::ServiceExt as _;
                let req = axum::http::Request::builder()
                    .uri(u)
                    .header("authorization", format!("Bearer {t}"))
                    .body(axum::body::Body::empty())
                    .expect("request");
                let resp = app.oneshot(req).await.expect("response");
                let status = resp.status();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, String::from_utf8_lossy(&body).to_string())
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        if let Some(i) = polls.iter().position(|p| p.is_finished()) {
            break polls.remove(i);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no long-poll was refused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let (s, body) = first.await.expect("join");
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("long-polls"), "{body}");
    // A change ends the two; then another may wait.
    h.ok(
        Method::POST,
        "/cic/v1/pointOfPresences",
        json!({"id": "pop2", "name": "p2"}),
    )
    .await;
    for p in polls {
        assert_eq!(p.await.expect("join").0, StatusCode::OK);
    }
    let (s, v) = h
        .call(
            Method::GET,
            "/cic/v1/edgeSync/config?afterRevision=0&waitSeconds=1",
            Some(&edge_token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_edge_token_rotates_and_the_old_one_ends_when_told() {
    let h = H::new().await;
    let (old, edge) = h.pop_and_edge("pop1", "e1", "100.64.255.1").await;
    let sync = "/cic/v1/edgeSync/config";
    let rotate = format!("/cic/v1/edges/{edge}:rotateCredentials");
    // No CA key on this server: a token is what it issues; asking for a certificate is
    // refused with why.
    let (s, v) = h
        .admin(Method::POST, &rotate, Some(json!({"kind": "certificate"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION");
    assert!(common::err_message(&v).contains("--client-ca-key"), "{v}");
    let (s, v) = h
        .admin(
            Method::POST,
            &rotate,
            Some(json!({"revokeOldAfterSeconds": 3600})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "token");
    let new = v["token"].as_str().expect("token").to_string();
    // Both work until the old one's time.
    for t in [&old, &new] {
        let (s, v) = h.call(Method::GET, sync, Some(t), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Rotated again with no grace: every earlier token ends now, the newest works.
    let (s, v) = h
        .admin(
            Method::POST,
            &rotate,
            Some(json!({"kind": "token", "revokeOldAfterSeconds": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let newest = v["token"].as_str().expect("token").to_string();
    for t in [&old, &new] {
        let (s, v) = h.call(Method::GET, sync, Some(t), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert!(common::err_message(&v).contains("expired"), "{v}");
    }
    let (s, v) = h.call(Method::GET, sync, Some(&newest), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Bad requests name the field.
    for (body, field) in [
        (json!({"kind": "password"}), "kind"),
        (json!({"kind": "token", "csr": "x"}), "csr"),
        (
            json!({"revokeOldAfterSeconds": 99999999}),
            "revokeOldAfterSeconds",
        ),
        (
            json!({"validityDays": 0, "kind": "certificate"}),
            "validityDays",
        ),
    ] {
        let (s, v) = h.admin(Method::POST, &rotate, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }
    // Another edge's method is not a way in: an edge may not rotate itself.
    let (s, _) = h
        .call(Method::POST, &rotate, Some(&newest), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn readyz_says_the_store_answers_with_this_binarys_schema() {
    let h = H::new().await;
    let (s, v) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, "ready");
    // A database migrated by a newer binary: not ready, and why.
    let mut tx = h.state.store.begin().await.expect("tx");
    tx.execute_raw("UPDATE schema_version SET version = 999")
        .await
        .expect("update");
    tx.commit().await.expect("commit");
    let (s, v) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["code"], "UNAVAILABLE");
    assert!(common::err_message(&v).contains("version 999"), "{v}");
    let (s, _) = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK, "alive all the same");
}
