//! Several servers on one PostgreSQL database: rules that need the whole picture (VLAN
//! unique on a trunk, names unique in a folder) hold when requests race on both servers,
//! and an edge may be answered, and report, through either.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_racing_for_one_vlan_let_exactly_one_win() {
    let Some(pg) = postgres_server("two_servers_racing") else {
        return;
    };
    let db = new_postgres_database(&pg).await;
    let a = H::on(&db).await;
    let b = H::on(&db).await;
    a.ok(
        Method::POST,
        "/resourcemanager/v1/folders",
        json!({"id": "f1"}),
    )
    .await;
    a.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = b.trunk("pop1", "100.64.1.2").await;

    const N: usize = 24;
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..N {
        let h = if i % 2 == 0 { a.clone() } else { b.clone() };
        let trunk = trunk.clone();
        tasks.push(tokio::spawn(async move {
            // Same VLAN every time; distinct subnets, so only the VLAN rule can refuse.
            h.admin(
                Method::POST,
                "/cic/v1/privateConnections",
                Some(json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": 300,
                    "ipv4Peering": {"peeringSubnet": format!("10.9.{i}.0/31"), "peerIp": format!("10.9.{i}.1"),
                                    "cloudIp": format!("10.9.{i}.0"), "peerBgpAsn": 65001}})),
            )
            .await
        }));
    }
    let mut won = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, v) = t.await.expect("task");
        match s {
            StatusCode::OK => won += 1,
            StatusCode::CONFLICT => {
                assert_eq!(v["code"], "ALREADY_EXISTS", "{v}");
                assert!(err_message(&v).contains("VLAN 300"), "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((won, refused), (1, N - 1));
    // Both servers see the one connection.
    for h in [&a, &b] {
        assert_eq!(h.count("/cic/v1/privateConnections?folderId=f1").await, 1);
    }

    // Names unique in a folder, raced the same way.
    let mut tasks = Vec::new();
    for i in 0..N {
        let h = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            h.admin(
                Method::POST,
                "/cic/v1/trunkConnections",
                Some(
                    json!({"folderId": "f1", "name": "the-one", "pointOfPresenceId": "pop1",
                            "capacity": "CAPACITY_1_GBPS",
                            "overlayJoint": {"remoteVtep": format!("100.64.2.{}", i + 1)}}),
                ),
            )
            .await
            .0
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one trunk named the-one");
}

#[tokio::test]
async fn the_suite_runs_on_the_backend_it_was_asked_for() {
    let h = H::new().await;
    let want_pg = std::env::var("CIC_TEST_BACKEND").as_deref() == Ok("postgres");
    assert_eq!(h.state.store.is_postgres(), want_pg, "{}", h.database);
}

/// Two servers on a new PostgreSQL database (None without one), and made through the
/// first: folder f1, PoP pop1 with its edge, a trunk, and a connection on it (VLAN 100).
/// Returns both servers, the edge's token and the connection's operation.
async fn two_servers_with_a_connection(
    name: &str,
) -> Option<(
    std::sync::Arc<H>,
    std::sync::Arc<H>,
    String,
    serde_json::Value,
)> {
    let pg = postgres_server(name)?;
    let db = new_postgres_database(&pg).await;
    let a = std::sync::Arc::new(H::on(&db).await);
    let b = std::sync::Arc::new(H::on(&db).await);
    a.ok(
        Method::POST,
        "/resourcemanager/v1/folders",
        json!({"id": "f1"}),
    )
    .await;
    let (edge, _) = a.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
    let trunk = a.trunk("pop1", "100.64.1.2").await;
    let (_, op) = a.numbered_connection(&trunk, 0).await;
    Some((a, b, edge, op))
}

/// Behind a load balancer an edge polls whichever server it reaches: a looking-glass
/// question asked of one server is handed out, answered and returned through the other,
/// and a change written through one wakes an edge long-polling the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_asked_of_one_server_is_answered_through_the_other() {
    let Some((a, b, edge, op)) =
        two_servers_with_a_connection("looking_glass_across_servers").await
    else {
        return;
    };
    let pc = resource_id(&op);
    // The edge, on server B only.
    let edge_side = answer_one_question(
        b.clone(),
        edge.clone(),
        |_| json!([{"prefix": "192.168.10.0/24", "asPath": [65001], "origin": "IGP"}]),
    );
    // The customer, on server A only.
    let (s, v) = a
        .admin(
            Method::GET,
            &format!("/cic/v1/privateConnections/{pc}:routes?direction=received"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["routes"][0]["prefix"], "192.168.10.0/24", "{v}");
    let q = edge_side.await.expect("edge side");
    assert_eq!(q["connectionId"], pc.as_str());
    // Answered once: the same answer again is refused by either server.
    for h in [&a, &b] {
        let (s, _) = h
            .call(
                Method::PUT,
                &format!("/cic/v1/edgeSync/queries/{}", q["id"].as_str().expect("id")),
                Some(&edge),
                Some(json!({"routes": []})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // A long poll on B returns when A commits.
    let rev = b.revision().await;
    let (eb, et) = (b.clone(), edge.clone());
    let poll = tokio::spawn(async move {
        eb.call(
            Method::GET,
            &format!("/cic/v1/edgeSync/config?afterRevision={rev}&waitSeconds=30"),
            Some(&et),
            None,
        )
        .await
    });
    a.ok(
        Method::PATCH,
        &format!("/cic/v1/privateConnections/{pc}"),
        json!({"vlanId": 101}),
    )
    .await;
    let (s, cfg) = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("the poll on B returned")
        .expect("task");
    assert_eq!(s, StatusCode::OK, "{cfg}");
    assert!(cfg["revision"].as_u64() > Some(rev), "{cfg}");
}

/// Operations finished through one server (the edge reported there) wake a caller
/// waiting on one of them at the other, told by the database (`cic_settled`); the edges'
/// config long polls on the other are not woken by it, since it changes nothing they
/// are given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_finished_on_one_server_wake_their_waiters_on_the_other_not_its_edges() {
    use std::time::{Duration, Instant};
    let Some((a, b, edge, op)) = two_servers_with_a_connection("settled_across_servers").await
    else {
        return;
    };
    assert_eq!(op["done"], false, "{op}");
    let id = op["id"].as_str().expect("op").to_string();
    let before = a.revision().await;
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let (_, v) = a
                .admin(
                    Method::GET,
                    &format!("/operations/{id}?waitSeconds=30"),
                    None,
                )
                .await;
            (v, t.elapsed())
        })
    };
    let edge_poll = {
        let (a, edge) = (a.clone(), edge.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let path = format!("/cic/v1/edgeSync/config?afterRevision={before}&waitSeconds=3");
            let (s, v) = a.call(Method::GET, &path, Some(&edge), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            (v, t.elapsed())
        })
    };
    b.report(&edge, before, json!([])).await;
    let (op, took) = waiter.await.expect("waiter");
    assert_eq!(op["done"], true, "{op}");
    assert!(
        took < Duration::from_secs(10),
        "the waiter on the other server woke after {took:?}"
    );
    let (cfg, took) = edge_poll.await.expect("edge poll");
    assert!(
        took >= Duration::from_millis(2900),
        "the edge's long poll was woken after {took:?} by operations finishing"
    );
    assert_eq!(cfg["revision"], before + 1, "{cfg}");
}

/// Behind a load balancer an edge's reports land on either server: a report of changes
/// since one the other server took is made whole onto that one, read from the database
/// (neither server has it, or the one that has it holds an older one); changes since a
/// report that is no longer the last are refused on either, and nothing is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_of_changes_is_made_whole_by_the_server_that_did_not_take_its_base() {
    let Some((a, b, edge, op)) = two_servers_with_a_connection("report_across_servers").await
    else {
        return;
    };
    let pc = resource_id(&op);
    let rev = a.revision().await;
    let session = |uptime: u64| {
        json!([{"resourceId": pc, "kind": "customer", "peer": "169.254.100.2", "peerAsn": 65001,
            "state": "ESTABLISHED", "uptimeSecs": uptime, "prefixesReceived": 0,
            "prefixesAccepted": 0, "prefixesAdvertised": 0}])
    };
    let send = |h: std::sync::Arc<H>, method: Method, body: serde_json::Value| {
        let edge = edge.clone();
        async move {
            h.call(method, "/cic/v1/edgeSync/status", Some(&edge), Some(body))
                .await
        }
    };
    // The session's lifetime as a server's /metrics shows it.
    let lifetime = |h: std::sync::Arc<H>| {
        let pc = pc.clone();
        async move {
            let (_, v) = h.admin(Method::GET, "/metrics", None).await;
            v.as_str()
                .expect("text")
                .lines()
                .find(|l| {
                    l.starts_with("bgp_ipv4_session_lifetime_seconds")
                        && l.contains(&format!("connection_id=\"{pc}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        }
    };
    let version = |v: &serde_json::Value| v["version"].as_str().expect("version").to_string();
    let whole = |uptime| json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [], "sessions": session(uptime)});
    let changes = |since: &str, uptime| {
        json!({"appliedRevision": rev, "dataplane": "vxlan-overlay", "errors": [],
            "changesSince": since, "sessions": session(uptime)})
    };

    let (s, v) = send(a.clone(), Method::PUT, whole(12)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v1 = version(&v);
    // B never took a report of this edge: it reads A's from the database.
    let (s, v) = send(b.clone(), Method::PATCH, changes(&v1, 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v2 = version(&v);
    assert_eq!(lifetime(b.clone()).await.as_deref(), Some("20"));
    // A holds its own, older one (v1): it reads B's (v2) from the database.
    let (s, v) = send(a.clone(), Method::PATCH, changes(&v2, 30)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(lifetime(a.clone()).await.as_deref(), Some("30"));
    assert_eq!(lifetime(b.clone()).await.as_deref(), Some("30"));
    // Changes since v2, which is no longer the last, on either server: refused.
    for h in [&a, &b] {
        let (s, v) = send(h.clone(), Method::PATCH, changes(&v2, 99)).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "ABORTED", "{v}");
    }
    assert_eq!(lifetime(a.clone()).await.as_deref(), Some("30"));
    assert_eq!(lifetime(b.clone()).await.as_deref(), Some("30"));
}
