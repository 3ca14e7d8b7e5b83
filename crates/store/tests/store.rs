//! The store against a real database: SQLite, or PostgreSQL with
//! `CIC_TEST_BACKEND=postgres` and `CIC_TEST_POSTGRES=<server URL>`.

use cic_model::resource::PointOfPresence;
use cic_store::{Claim, Error, SCHEMA_VERSION, Store};

async fn database(tag: &str) -> String {
    if std::env::var("CIC_TEST_BACKEND").as_deref() == Ok("postgres") {
        let server = std::env::var("CIC_TEST_POSTGRES").expect("CIC_TEST_POSTGRES");
        let name = format!("cic_store_{tag}_{}", std::process::id());
        Store::create_postgres_database(&server, &name)
            .await
            .expect("create database")
    } else {
        let path = std::env::temp_dir().join(format!("cic-store-{tag}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        format!("sqlite://{}", path.display())
    }
}

fn pop(id: &str) -> PointOfPresence {
    PointOfPresence {
        id: id.into(),
        name: id.into(),
        location_address: String::new(),
        connection_points: vec![],
        public_services: None,
    }
}

#[tokio::test]
async fn migrations_are_versioned_and_reopening_keeps_data() {
    let url = database("migrate").await;
    let s = Store::open(&url).await.expect("open");
    assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
    let mut tx = s.begin().await.expect("tx");
    let r = tx.bump_revision().await.expect("bump");
    tx.put(&pop("p1"), r).await.expect("put");
    tx.commit().await.expect("commit");
    drop(s);
    let s = Store::open(&url).await.expect("reopen");
    assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
    assert!(s.get::<PointOfPresence>("p1").await.expect("get").is_some());
    assert_eq!(s.revision().await.expect("revision"), 1);
}

#[tokio::test]
async fn a_database_of_the_first_release_is_upgraded_in_place() {
    if std::env::var("CIC_TEST_BACKEND").as_deref() == Ok("postgres") {
        return; // the first release's schema is made with SQLite below
    }
    let url = database("upgrade").await;
    let path = url.trim_start_matches("sqlite://").to_string();
    // The schema exactly as the first release left it, with a token in it.
    let conn = format!("sqlite://{path}?mode=rwc");
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&conn).await.expect("connect");
        for q in [
            "CREATE TABLE schema_version (version BIGINT NOT NULL)",
            "CREATE TABLE revision (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO revision (id, value) VALUES (1, 7)",
            "CREATE TABLE resources (kind TEXT NOT NULL, id TEXT NOT NULL, folder_id TEXT NOT NULL, \
             name TEXT NOT NULL, body TEXT NOT NULL, revision BIGINT NOT NULL, PRIMARY KEY (kind, id))",
            "CREATE TABLE operations (id TEXT PRIMARY KEY, done BIGINT NOT NULL, body TEXT NOT NULL, \
             pending TEXT NOT NULL, created_at TEXT NOT NULL)",
            "CREATE TABLE tokens (hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL)",
            "INSERT INTO tokens VALUES ('h1', 'admin', 'bootstrap')",
        ] {
            sqlx::raw_sql(q).execute(&mut c).await.expect(q);
        }
        // A private connection as the first release stored it.
        let pc = serde_json::json!({"id": "pc1", "folderId": "f1", "name": "", "description": "",
            "labels": {}, "createdAt": "2026-01-01T00:00:00Z", "status": "ACTIVE",
            "trunkConnectionId": "tc1", "vlanId": "100",
            "ipv4Peering": {"peeringSubnet": "169.254.0.0/30", "peerIp": "169.254.0.2",
                "cloudIp": "169.254.0.1", "peerBgpAsn": "65001", "cloudBgpAsn": "200350"}});
        sqlx::query("INSERT INTO resources VALUES ('privateConnection', 'pc1', 'f1', '', $1, 3)")
            .bind(pc.to_string())
            .execute(&mut c)
            .await
            .expect("pc row");
    }
    let s = Store::open(&url).await.expect("upgrade");
    assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
    assert_eq!(s.revision().await.expect("revision"), 7);
    assert_eq!(
        s.token("h1").await.expect("token").expect("kept").role,
        "admin"
    );
    // Step 3 found the connection's trunk in its body: it is a child of the trunk.
    let on_trunk = s
        .children::<cic_model::resource::PrivateConnection>("tc1")
        .await
        .expect("children");
    assert_eq!(on_trunk.len(), 1);
    assert_eq!(on_trunk[0].meta.id, "pc1");
    // The new tables work.
    assert_eq!(
        s.claim_idempotency("k", "h", 1).await.expect("claim"),
        Claim::New
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_database_newer_than_the_build_is_refused() {
    let url = database("newer").await;
    let s = Store::open(&url).await.expect("open");
    let mut tx = s.begin().await.expect("tx");
    tx.execute_raw("INSERT INTO schema_version (version) VALUES (999)")
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    drop(s);
    match Store::open(&url).await {
        Err(e @ Error::NewerSchema { .. }) => assert!(e.to_string().contains("999"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

#[tokio::test]
async fn idempotency_claims_are_taken_once_released_on_failure_and_retaken_when_stale() {
    let url = database("claims").await;
    let s = Store::open(&url).await.expect("open");
    assert_eq!(
        s.claim_idempotency("a", "h1", 100).await.expect("claim"),
        Claim::New
    );
    assert_eq!(
        s.claim_idempotency("a", "h1", 101).await.expect("claim"),
        Claim::Existing {
            request_hash: "h1".into(),
            operation_id: String::new(),
            claimed_at: 100
        }
    );
    // Not stale yet: not retaken.
    assert!(
        !s.retake_idempotency("a", "h1", 101, 50)
            .await
            .expect("retake")
    );
    assert!(
        s.retake_idempotency("a", "h1", 200, 150)
            .await
            .expect("retake")
    );
    // Finished: the operation is recorded and release leaves it.
    let mut tx = s.begin().await.expect("tx");
    tx.finish_idempotency("a", "op1").await.expect("finish");
    tx.commit().await.expect("commit");
    s.release_idempotency("a").await.expect("release");
    match s.claim_idempotency("a", "h1", 300).await.expect("claim") {
        Claim::Existing { operation_id, .. } => assert_eq!(operation_id, "op1"),
        c => panic!("{c:?}"),
    }
    // A failed request's claim is released and can be claimed again.
    assert_eq!(
        s.claim_idempotency("b", "h2", 1).await.expect("claim"),
        Claim::New
    );
    s.release_idempotency("b").await.expect("release");
    assert_eq!(
        s.claim_idempotency("b", "h3", 2).await.expect("claim"),
        Claim::New
    );
}

#[tokio::test]
async fn a_read_sees_one_revision_while_writers_commit() {
    let url = database("read").await;
    let s = Store::open(&url).await.expect("open");
    let write = |id: &'static str| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.expect("tx");
            let r = tx.bump_revision().await.expect("bump");
            tx.put(&pop(id), r).await.expect("put");
            tx.commit().await.expect("commit");
        }
    };
    write("p1").await;
    let mut read = s.read().await.expect("read");
    assert_eq!(read.revision(), 1);
    // A commit between two reads of the view is not seen by the second, and does not
    // wait for the view to end.
    write("p2").await;
    let seen: Vec<PointOfPresence> = read.list(None).await.expect("list");
    assert_eq!(
        seen.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p1"]
    );
    assert_eq!(read.revision(), 1);
    assert_eq!(s.revision().await.expect("revision"), 2);
    drop(read);
    let mut read = s.read().await.expect("read");
    assert_eq!(read.revision(), 2);
    assert_eq!(
        read.list::<PointOfPresence>(None)
            .await
            .expect("list")
            .len(),
        2
    );
}

/// SQLite has one writer. This server's writes — mutations, audit events, edge reports,
/// idempotency claims — take turns in the store instead of meeting in SQLite, where the
/// loser sleeps in the busy handler (1, 2, 5, 10… ms) long after the lock is free. With
/// the busy timeout zero, any two that met would fail with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn this_servers_writes_take_turns_and_never_meet_in_sqlite() {
    if std::env::var("CIC_TEST_BACKEND").as_deref() == Ok("postgres") {
        return; // PostgreSQL's writers do not exclude each other
    }
    let url = database("turns").await;
    let s = Store::open_failing_when_busy(&url).await.expect("open");
    const ROUNDS: usize = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..3 {
        let s = s.clone();
        tasks.spawn(async move {
            for i in 0..ROUNDS {
                let mut tx = s.begin().await.map_err(|e| format!("begin: {e}"))?;
                let r = tx.bump_revision().await.map_err(|e| format!("bump: {e}"))?;
                tokio::task::yield_now().await;
                tx.put(&pop(&format!("p{w}-{i}")), r)
                    .await
                    .map_err(|e| format!("put: {e}"))?;
                tx.commit().await.map_err(|e| format!("commit: {e}"))?;
            }
            Ok::<_, String>(())
        });
    }
    let audit = s.clone();
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            audit
                .put_audit_event(&format!("a{i}"), i as i64, "f1", "someone", "{}")
                .await
                .map_err(|e| format!("audit: {e}"))?;
        }
        Ok(())
    });
    let reports = s.clone();
    tasks.spawn(async move {
        let report = cic_model::edge::EdgeReport {
            applied_revision: 1,
            dataplane: "test".into(),
            sessions: vec![],
            errors: vec![],
            traffic: vec![],
        };
        for i in 0..ROUNDS {
            reports
                .put_edge_report("e1", &report, "now", &i.to_string())
                .await
                .map_err(|e| format!("report: {e}"))?;
        }
        Ok(())
    });
    let claims = s.clone();
    tasks.spawn(async move {
        for i in 0..ROUNDS {
            let scope = format!("k{i}");
            claims
                .claim_idempotency(&scope, "h", 1)
                .await
                .map_err(|e| format!("claim: {e}"))?;
            claims
                .release_idempotency(&scope)
                .await
                .map_err(|e| format!("release: {e}"))?;
        }
        Ok(())
    });
    while let Some(done) = tasks.join_next().await {
        done.expect("task")
            .expect("every write succeeds without waiting in SQLite");
    }
    assert_eq!(
        s.revision().await.expect("revision"),
        3 * ROUNDS as u64,
        "every mutation committed"
    );
}

/// A document is written in one statement whether it is new or replaces one, and its
/// links (all of them in one statement) replace the ones it had.
#[tokio::test]
async fn a_document_written_again_replaces_itself_and_its_links() {
    use cic_model::resource::{Meta, PrivateConnectionRef, RoutingInstance, VpcInfo};
    use cic_store::rel;
    let url = database("links").await;
    let s = Store::open(&url).await.expect("open");
    let ri = |members: &[&str]| RoutingInstance {
        meta: Meta {
            id: "ri1".into(),
            folder_id: "f1".into(),
            name: format!("ri-{}", members.len()),
            ..Default::default()
        },
        vpc_info: vec![VpcInfo {
            vpc_network_id: "vpc1".into(),
            az_infos: vec![],
        }],
        cic_private_connection_info: members
            .iter()
            .map(|m| PrivateConnectionRef {
                cic_private_connection_id: m.to_string(),
            })
            .collect(),
        deletion_protection: false,
    };
    let write = |doc: RoutingInstance| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.expect("tx");
            let r = tx.bump_revision().await.expect("bump");
            tx.put(&doc, r).await.expect("put");
            tx.commit().await.expect("commit");
            r
        }
    };
    let linking = |r: &'static str, target: &'static str| {
        let s = s.clone();
        async move { s.linking(r, target).await.expect("linking") }
    };
    let held = vec![("routingInstance".to_string(), "ri1".to_string())];
    assert_eq!(write(ri(&["pc-a", "pc-b", "pc-c"])).await, 1);
    for pc in ["pc-a", "pc-b", "pc-c"] {
        assert_eq!(linking(rel::MEMBER, pc).await, held, "{pc}");
    }
    assert_eq!(linking(rel::VPC, "vpc1").await, held);

    assert_eq!(write(ri(&["pc-a"])).await, 2);
    assert_eq!(linking(rel::MEMBER, "pc-a").await, held);
    assert!(linking(rel::MEMBER, "pc-b").await.is_empty());
    assert!(linking(rel::MEMBER, "pc-c").await.is_empty());
    assert_eq!(linking(rel::VPC, "vpc1").await, held);
    let all = s.list::<RoutingInstance>(None).await.expect("list");
    assert_eq!(all, vec![ri(&["pc-a"])], "one document, the new one");
    assert_eq!(s.revision().await.expect("revision"), 2);
}
