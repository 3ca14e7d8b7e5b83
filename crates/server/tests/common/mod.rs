//! The harness of the API tests: the server's router in process (no port) on a real
//! store — SQLite in memory, or a fresh PostgreSQL database per test (see
//! [`test_database`]).
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cic_server::{AppState, ServerConfig, app, bootstrap_admin};
use cic_store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token";

pub struct H {
    pub app: Router,
    pub state: Arc<AppState>,
    pub database: String,
}

/// The PostgreSQL server the tests may use (`CIC_TEST_POSTGRES`, e.g.
/// `postgres://cic@127.0.0.1:54329/postgres`). Without it a test that needs PostgreSQL is
/// skipped, unless `CIC_REQUIRE_POSTGRES=1` (as in CI), where that is a failure.
pub fn postgres_server(test: &str) -> Option<String> {
    match std::env::var("CIC_TEST_POSTGRES") {
        Ok(s) if !s.is_empty() => Some(s),
        _ if std::env::var("CIC_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("{test}: CIC_REQUIRE_POSTGRES=1 but CIC_TEST_POSTGRES is not set")
        }
        _ => {
            eprintln!("{test}: skipped (set CIC_TEST_POSTGRES to a PostgreSQL server URL)");
            None
        }
    }
}

/// A new, empty PostgreSQL database on `server`; returns its URL.
pub async fn new_postgres_database(server: &str) -> String {
    let name = format!(
        "cic_test_{}_{}",
        std::process::id(),
        cic_server::new_id("").to_lowercase()
    );
    Store::create_postgres_database(server, &name)
        .await
        .expect("create a test database on CIC_TEST_POSTGRES")
}

/// The store of one test: SQLite in memory, or a new PostgreSQL database when
/// `CIC_TEST_BACKEND=postgres` (the same suite runs against both).
/// The key tests seal secrets with.
pub const TEST_SECRETS_KEY: [u8; 32] = [0x5e; 32];

pub async fn test_database() -> String {
    if std::env::var("CIC_TEST_BACKEND").as_deref() == Ok("postgres") {
        let server = std::env::var("CIC_TEST_POSTGRES")
            .expect("CIC_TEST_BACKEND=postgres needs CIC_TEST_POSTGRES");
        new_postgres_database(&server).await
    } else {
        "sqlite::memory:".to_string()
    }
}

impl H {
    pub async fn new() -> H {
        let h = H::on(&test_database().await).await;
        for f in ["f1", "f2"] {
            h.ok(
                Method::POST,
                "/resourcemanager/v1/folders",
                json!({"id": f, "name": format!("folder-{f}")}),
            )
            .await;
        }
        h
    }

    /// A server on an existing database (a second server of an HA pair, say).
    pub async fn on(database: &str) -> H {
        H::with_config(database, ServerConfig::default()).await
    }

    /// [`H::on`] with `config`.
    pub async fn with_config(database: &str, config: ServerConfig) -> H {
        let database = database.to_string();
        // Every API test runs with secrets sealed, as `cic server` does (one key for
        // every server of a test on one database).
        let store = Store::open(&database)
            .await
            .expect("store")
            .with_sealer(cic_store::Sealer::new(TEST_SECRETS_KEY));
        bootstrap_admin(&store, Some(ADMIN.into()))
            .await
            .expect("admin");
        let state = AppState::new(store, config).await.expect("state");
        H {
            app: app(state.clone()),
            state,
            database,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.raw(method, path, token, body.map(|b| b.to_string()))
            .await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        self.with_headers(method, path, token, body, &[]).await
    }

    pub async fn with_headers(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        // JSON unless the test says otherwise ("" for no Content-Type at all).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            if !v.is_empty() {
                b = b.header(*k, *v);
            }
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }

    pub async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (s, v) = self.admin(method, path, Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    /// A new API key of `subject`; returns its secret.
    pub async fn key(&self, subject: &str) -> String {
        let v = self
            .ok(
                Method::POST,
                "/iam/v1/apiKeys",
                json!({"subjectId": subject, "description": "test"}),
            )
            .await;
        v["secret"].as_str().expect("secret").to_string()
    }

    /// Grants `role` in `folder` to `subject` (as the operator).
    pub async fn bind(&self, folder: &str, role: &str, subject: &str) {
        self.ok(
            Method::POST,
            &format!("/resourcemanager/v1/folders/{folder}:updateAccessBindings"),
            json!({"accessBindingDeltas": [{"action": "ADD",
                   "accessBinding": {"roleId": role, "subject": {"id": subject}}}]}),
        )
        .await;
    }

    /// A subject with `role` in `folder`; returns its key.
    pub async fn user(&self, subject: &str, folder: &str, role: &str) -> String {
        self.bind(folder, role, subject).await;
        self.key(subject).await
    }

    pub async fn revision(&self) -> u64 {
        self.state.store.revision().await.expect("revision")
    }

    pub async fn count(&self, path: &str) -> usize {
        let (s, v) = self.admin(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Lists are keyed by kind ("trunkConnections": [...]); the one array is the page.
        v.as_object()
            .and_then(|m| m.values().find_map(|x| x.as_array()))
            .map(|a| a.len())
            .unwrap_or(0)
    }

    /// PoP + edge; returns the edge's token and id.
    pub async fn pop_and_edge(&self, pop: &str, edge: &str, vtep: &str) -> (String, String) {
        let (s, _) = self
            .admin(
                Method::GET,
                &format!("/cic/v1/pointOfPresences/{pop}"),
                None,
            )
            .await;
        if s == StatusCode::NOT_FOUND {
            self.ok(
                Method::POST,
                "/cic/v1/pointOfPresences",
                json!({"id": pop, "name": pop}),
            )
            .await;
        }
        let r = self
            .ok(
                Method::POST,
                "/cic/v1/edges",
                json!({"name": edge, "pointOfPresenceId": pop, "routerId": "10.255.0.1",
                       "fabric": {"asn": 200350, "remoteVtep": "100.64.255.2", "localVtep": vtep,
                                  "transitPool": "100.127.0.0/24"}}),
            )
            .await;
        (
            r["token"].as_str().expect("token").into(),
            r["edge"]["id"].as_str().expect("id").into(),
        )
    }

    pub async fn trunk(&self, pop: &str, remote: &str) -> String {
        let op = self
            .ok(
                Method::POST,
                "/cic/v1/trunkConnections",
                json!({"folderId": "f1", "pointOfPresenceId": pop, "capacity": "CAPACITY_1_GBPS",
                       "overlayJoint": {"remoteVtep": remote}}),
            )
            .await;
        op["metadata"]["resourceId"].as_str().expect("id").into()
    }

    pub async fn connection(
        &self,
        trunk: &str,
        vlan: u32,
        subnet: &str,
        peer: &str,
        cloud: &str,
    ) -> (StatusCode, Value) {
        self.admin(
            Method::POST,
            "/cic/v1/privateConnections",
            Some(json!({"folderId": "f1", "trunkConnectionId": trunk, "vlanId": vlan,
                        "ipv4Peering": {"peeringSubnet": subnet, "peerIp": peer, "cloudIp": cloud, "peerBgpAsn": 65001}})),
        )
        .await
    }

    /// Connection `n` on `trunk`: VLAN 100 + n, peering 169.254.(100 + n).0/30.
    pub async fn numbered_connection(&self, trunk: &str, n: u32) -> (StatusCode, Value) {
        let net = 100 + n;
        self.connection(
            trunk,
            net,
            &format!("169.254.{net}.0/30"),
            &format!("169.254.{net}.2"),
            &format!("169.254.{net}.1"),
        )
        .await
    }

    /// Connections 1 to `n` on `trunk` (see [`H::numbered_connection`]), which must be
    /// made: their ids.
    pub async fn numbered_connections(&self, trunk: &str, n: u32) -> Vec<String> {
        let mut ids = vec![];
        for i in 1..=n {
            let (s, op) = self.numbered_connection(trunk, i).await;
            assert_eq!(s, StatusCode::OK, "{op}");
            ids.push(
                op["metadata"]["resourceId"]
                    .as_str()
                    .expect("id")
                    .to_string(),
            );
        }
        ids
    }

    /// Private connection `id` as the admin sees it (which must answer).
    pub async fn private_connection(&self, id: &str) -> Value {
        let (s, v) = self
            .admin(
                Method::GET,
                &format!("/cic/v1/privateConnections/{id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Operation `id` as the admin sees it.
    pub async fn operation(&self, id: &Value) -> Value {
        let id = id.as_str().expect("an operation id");
        let (s, v) = self
            .admin(Method::GET, &format!("/operations/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// PoP `pop1` with edge `edge1`, a trunk in `f1` and a connection on it (VLAN 100);
    /// returns the edge's token, the trunk's id and the connection's id.
    pub async fn one_connection(&self) -> (String, String, String) {
        let (edge, _) = self.pop_and_edge("pop1", "edge1", "100.64.255.1").await;
        let trunk = self.trunk("pop1", "100.64.1.2").await;
        let (s, op) = self
            .connection(
                &trunk,
                100,
                "169.254.100.0/30",
                "169.254.100.2",
                "169.254.100.1",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{op}");
        let pc = op["metadata"]["resourceId"]
            .as_str()
            .expect("pc")
            .to_string();
        (edge, trunk, pc)
    }

    /// The catalogue's Object Storage and a public connection to it on `trunk` (VLAN
    /// 300, the customer's 5.45.192.0/22); returns its id.
    pub async fn public_connection(&self, trunk: &str) -> String {
        self.ok(
            Method::POST,
            "/cic/v1/cloudServices",
            json!({"id": "CLOUD_SERVICE_S3", "name": "Object Storage",
                   "prefixes": ["213.180.193.243/32"]}),
        )
        .await;
        let op = self
            .ok(
                Method::POST,
                "/cic/v1/publicConnections",
                json!({"folderId": "f1", "name": "pub", "trunkConnectionId": trunk, "vlanId": "300",
                       "ipv4Peering": {"peeringSubnet": "5.45.200.0/31", "peerIp": "5.45.200.1",
                                       "cloudIp": "5.45.200.0", "peerBgpAsn": "65001"},
                       "ipv4AllowedServiceTypes": ["CLOUD_SERVICE_S3"],
                       "ipv4PeerAnnouncedPrefixes": ["5.45.192.0/22"]}),
            )
            .await;
        op["metadata"]["resourceId"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// The config the edge of `edge_token` is sent now.
    pub async fn edge_config(&self, edge_token: &str) -> Value {
        let (s, cfg) = self
            .call(
                Method::GET,
                "/cic/v1/edgeSync/config",
                Some(edge_token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{cfg}");
        cfg
    }

    pub async fn report(&self, edge_token: &str, applied: u64, errors: Value) {
        let (s, v) = self
            .call(
                Method::PUT,
                "/cic/v1/edgeSync/status",
                Some(edge_token),
                Some(json!({"appliedRevision": applied, "dataplane": "vxlan-overlay", "sessions": [], "errors": errors})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

/// Plays the edge of `edge_token` on server `h`: long-polls for one looking-glass
/// question, answers it with `routes(question)`, and returns the question.
pub fn answer_one_question(
    h: Arc<H>,
    edge_token: String,
    routes: impl Fn(&Value) -> Value + Send + 'static,
) -> tokio::task::JoinHandle<Value> {
    answer_one_question_with(h, edge_token, move |q| json!({"routes": routes(q)}))
}

/// As [`answer_one_question`], with the whole answer (`routes`, `error`, `facts`).
pub fn answer_one_question_with(
    h: Arc<H>,
    edge_token: String,
    answer: impl Fn(&Value) -> Value + Send + 'static,
) -> tokio::task::JoinHandle<Value> {
    tokio::spawn(async move {
        loop {
            let (s, v) = h
                .call(
                    Method::GET,
                    "/cic/v1/edgeSync/queries?waitSeconds=5",
                    Some(&edge_token),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let Some(q) = v["queries"].as_array().and_then(|a| a.first()).cloned() else {
                continue;
            };
            let (s, v) = h
                .call(
                    Method::PUT,
                    &format!("/cic/v1/edgeSync/queries/{}", q["id"].as_str().expect("id")),
                    Some(&edge_token),
                    Some(answer(&q)),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            return q;
        }
    })
}

/// The id of the resource an operation is about (its `metadata.resourceId`).
pub fn resource_id(op: &Value) -> String {
    op["metadata"]["resourceId"]
        .as_str()
        .unwrap_or_else(|| panic!("an operation with a resource id: {op}"))
        .to_string()
}

pub fn err_message(v: &Value) -> String {
    v["message"].as_str().unwrap_or_default().to_string()
}

/// Instance `id` of an edge's config.
pub fn edge_instance(cfg: &Value, id: &str) -> Value {
    cfg["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no instance {id} in {cfg}"))
}
