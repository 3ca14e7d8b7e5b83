//! Persistence for the control plane.
//!
//! Resources are stored as JSON documents keyed by (kind, id) with the folder and name
//! beside them for lookups; every committed change bumps one global revision, which is
//! what edges sync against. The SQL is the common subset of SQLite and PostgreSQL, run
//! through sqlx's `Any` driver, so both back ends share one code path.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use cic_model::edge::EdgeReport;
use cic_model::iam::{ApiKey, Folder, FolderAccess};
use cic_model::resource::{
    CloudService, Edge, Operation, Partner, PointOfPresence, PrivateConnection, PublicConnection,
    RoutingInstance, TrunkConnection,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored document {kind}/{id} is corrupt: {err}")]
    Corrupt {
        kind: &'static str,
        id: String,
        err: String,
    },
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error(
        "the database has schema version {found}, newer than this build knows ({known}): upgrade cic"
    )]
    NewerSchema { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A stored resource kind.
pub trait Document: Serialize + DeserializeOwned {
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// Tenant scope; catalog documents use "".
    fn folder_id(&self) -> &str {
        ""
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    /// What the document hangs from, for [`Store::children`]: a connection's trunk, a
    /// trunk's edge; "" for the rest.
    fn parent_id(&self) -> &str {
        ""
    }
    /// The kind of [`Document::parent_id`]'s document.
    const PARENT_KIND: &'static str = "";
    /// What the document refers to, for [`Store::linked`]: (relation, target) pairs kept
    /// in an index beside it, so "which routing instance holds connection X" is one
    /// lookup, not a read of every instance.
    fn links(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A document with what [`Store::list_after_in_context`] finds beside it.
#[derive(Debug, Clone)]
pub struct InContext<T> {
    pub doc: T,
    /// The parent's parent (a connection's trunk's edge).
    pub grandparent: Option<String>,
    /// The document that links to this one (a connection's routing instance).
    pub owner: Option<String>,
}

/// The relations of [`Document::links`].
pub mod sealed;
pub use sealed::{SealError, Sealer, Sealing};

pub mod rel {
    /// A routing instance → each of its private connections.
    pub const MEMBER: &str = "member";
    /// A routing instance → each of its VPC networks.
    pub const VPC: &str = "vpc";
    /// A trunk → `<edge>|<wire>` (its frames' wire on the edge: see `TrunkConnection::wire`).
    pub const WIRE: &str = "wire";
    /// A private or public connection → `<trunk>|<vlan>`.
    pub const VLAN: &str = "vlan";
    /// A trunk → `<edge>|<port>` for each port it holds (its single port, its LAG's).
    pub const PORT: &str = "port";
    /// A fabric slot → `<edge>|<slot number>`.
    pub const SLOT: &str = "slot";

    pub fn wire_key(edge: &str, wire: &str) -> String {
        format!("{edge}|{wire}")
    }
    pub fn vlan_key(trunk: &str, vlan: u16) -> String {
        format!("{trunk}|{vlan}")
    }
    pub fn port_key(edge: &str, port: &str) -> String {
        format!("{edge}|{port}")
    }
    pub fn slot_key(edge: &str, slot: u32) -> String {
        format!("{edge}|{slot}")
    }
}

impl Document for PointOfPresence {
    const KIND: &'static str = "pointOfPresence";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for Edge {
    const KIND: &'static str = "edge";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

macro_rules! tenant_document {
    ($t:ty, $kind:literal, $parent_kind:literal, |$x:ident| $parent:expr, |$y:ident| $links:expr) => {
        impl Document for $t {
            const KIND: &'static str = $kind;
            const PARENT_KIND: &'static str = $parent_kind;
            fn id(&self) -> &str {
                &self.meta.id
            }
            fn folder_id(&self) -> &str {
                &self.meta.folder_id
            }
            fn name(&self) -> std::borrow::Cow<'_, str> {
                self.meta.name.as_str().into()
            }
            fn parent_id(&self) -> &str {
                let $x = self;
                $parent
            }
            fn links(&self) -> Vec<(&'static str, String)> {
                let $y = self;
                $links
            }
        }
    };
}
impl Document for Folder {
    const KIND: &'static str = "folder";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for FolderAccess {
    const KIND: &'static str = "folderAccess";
    fn id(&self) -> &str {
        &self.folder_id
    }
    fn folder_id(&self) -> &str {
        &self.folder_id
    }
}

tenant_document!(
    TrunkConnection,
    "trunkConnection",
    "edge",
    |t| &t.edge_id,
    |t| t
        .wire()
        .map(|w| (rel::WIRE, rel::wire_key(&t.edge_id, &w)))
        .into_iter()
        .chain(
            t.single_port_direct_joint
                .iter()
                .map(|j| &j.port_name)
                .chain(t.lag_direct_joint.iter().flat_map(|l| &l.port_names))
                .map(|p| (rel::PORT, rel::port_key(&t.edge_id, p)))
        )
        .collect()
);
tenant_document!(
    PrivateConnection,
    "privateConnection",
    "trunkConnection",
    |c| &c.trunk_connection_id,
    |c| vec![(rel::VLAN, rel::vlan_key(&c.trunk_connection_id, c.vlan_id))]
);
tenant_document!(RoutingInstance, "routingInstance", "", |_r| "", |r| r
    .cic_private_connection_info
    .iter()
    .map(|c| (rel::MEMBER, c.cic_private_connection_id.clone()))
    .chain(
        r.vpc_info
            .iter()
            .map(|v| (rel::VPC, v.vpc_network_id.clone()))
    )
    .collect());
tenant_document!(
    PublicConnection,
    "publicConnection",
    "trunkConnection",
    |c| &c.trunk_connection_id,
    |c| vec![(rel::VLAN, rel::vlan_key(&c.trunk_connection_id, c.vlan_id))]
);

impl Document for Partner {
    const KIND: &'static str = "partner";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for CloudService {
    const KIND: &'static str = "cloudService";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

/// The fabric segment slot of a routing instance on an edge (VNI and /31 derive from it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricSlot {
    pub edge_id: String,
    pub routing_instance_id: String,
    pub slot: u32,
}

impl FabricSlot {
    pub fn key(edge_id: &str, ri: &str) -> String {
        format!("{edge_id}/{ri}")
    }
}

impl Document for FabricSlot {
    const KIND: &'static str = "fabricSlot";
    const PARENT_KIND: &'static str = "routingInstance";
    /// Not the storage key: slots are written with `put_keyed(FabricSlot::key(..))`, as one
    /// routing instance has a slot on each of its edges.
    fn id(&self) -> &str {
        &self.routing_instance_id
    }
    fn folder_id(&self) -> &str {
        &self.edge_id
    }
    /// The slot number, ten digits: the highest in use on an edge is the last of its
    /// slots in the name index (see [`Store::last_name`]).
    fn name(&self) -> std::borrow::Cow<'_, str> {
        format!("{:010}", self.slot).into()
    }
    /// The slots of an instance are its children: found by index.
    fn parent_id(&self) -> &str {
        &self.routing_instance_id
    }
    fn links(&self) -> Vec<(&'static str, String)> {
        vec![(rel::SLOT, rel::slot_key(&self.edge_id, self.slot))]
    }
}

/// What an unfinished operation waits for: every edge in `edges` to apply `revision`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub revision: u64,
    pub edges: Vec<String>,
    pub kind: String,
    pub resource_id: String,
    pub action: Action,
    /// The operation's folder ("" for the catalog).
    #[serde(default)]
    pub folder_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// A console session as stored (see migration 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub sealed_key: String,
    pub subject: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub role: String,
    pub subject: String,
    /// Unix seconds from which it is no longer accepted (a rotated edge token).
    pub expires_at: Option<i64>,
}

/// An operation with the folder it belongs to ("" for the operator's catalog).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOperation {
    pub operation: Operation,
    pub folder_id: String,
}

/// What an `Idempotency-Key` already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new and now claimed by this request.
    New,
    /// Claimed before: by a request with this hash, finished as `operation_id` ("" while
    /// still running), `claimed_at` seconds since the epoch.
    Existing {
        request_hash: String,
        operation_id: String,
        claimed_at: i64,
    },
}

/// Held while validating and writing a mutation. On PostgreSQL it is a transaction-scoped
/// advisory lock, so several servers on one database take turns; SQLite has one writer
/// and the server's own mutex suffices.
pub struct WriteLock {
    _tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

/// Schema versions, applied in order on start, each in one transaction with its number
/// recorded in `schema_version`. Never edit a released step; add a new one.
const MIGRATIONS: &[&[&str]] = &[
    // 1: documents, the global revision, operations, tokens.
    &[
        "CREATE TABLE IF NOT EXISTS revision (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO revision (id, value) SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM revision WHERE id = 1)",
        "CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, id TEXT NOT NULL, folder_id TEXT NOT NULL, \
         name TEXT NOT NULL, body TEXT NOT NULL, revision BIGINT NOT NULL, PRIMARY KEY (kind, id))",
        "CREATE INDEX IF NOT EXISTS resources_folder ON resources (kind, folder_id)",
        "CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, done BIGINT NOT NULL, body TEXT NOT NULL, \
         pending TEXT NOT NULL, created_at TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS operations_done ON operations (done)",
        "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL)",
    ],
    // 2: tenancy — operations know their folder and resource, tokens are API keys with an
    // id, idempotency keys, and the edges' last reports shared by every server.
    &[
        "ALTER TABLE operations ADD COLUMN folder_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN resource_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX operations_resource ON operations (resource_id)",
        "ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tokens ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tokens ADD COLUMN created_at TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE idempotency (scope TEXT PRIMARY KEY, request_hash TEXT NOT NULL, \
         operation_id TEXT NOT NULL, claimed_at BIGINT NOT NULL)",
        "CREATE TABLE edge_status (edge_id TEXT PRIMARY KEY, body TEXT NOT NULL, reported_at TEXT NOT NULL)",
    ],
    // 3: lookups that do not read a whole kind — a document's parent (a connection's
    // trunk, a trunk's edge; filled from the bodies by `backfill_parents`) and names.
    &[
        "ALTER TABLE resources ADD COLUMN parent_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX resources_parent ON resources (kind, parent_id, revision, id)",
        "CREATE INDEX resources_name ON resources (kind, folder_id, name)",
        "CREATE INDEX resources_order ON resources (kind, folder_id, revision, id)",
        "CREATE INDEX resources_kind_order ON resources (kind, revision, id)",
    ],
    // 4: reads that do not grow with the database — what documents refer to (a routing
    // instance's connections and VPCs, a trunk's wire, a connection's VLAN; filled in by
    // `backfill_links`), lists in id order (a stable order for keyset paging), a version
    // per edge report (servers keep the decoded report until it changes), and
    // looking-glass questions shared by every server.
    &[
        "CREATE TABLE resource_links (kind TEXT NOT NULL, id TEXT NOT NULL, rel TEXT NOT NULL, target TEXT NOT NULL)",
        // (rel, target, kind) first, so that a lookup never prefers the owner index.
        "CREATE INDEX resource_links_target ON resource_links (rel, target, kind, id)",
        "CREATE INDEX resource_links_owner ON resource_links (kind, id)",
        "CREATE INDEX resources_folder_id ON resources (kind, folder_id, id)",
        "CREATE INDEX resources_name_id ON resources (kind, folder_id, name, id)",
        // Lists are in id order now; these served the revision order, or are prefixes of
        // the two above. Fewer indexes, cheaper writes.
        "DROP INDEX resources_parent",
        "DROP INDEX resources_order",
        "DROP INDEX resources_kind_order",
        "DROP INDEX resources_folder",
        "DROP INDEX resources_name",
        "CREATE INDEX resources_parent_id ON resources (kind, parent_id, id)",
        // The version before the body: reading it does not walk a large report.
        "CREATE TABLE edge_reports (edge_id TEXT PRIMARY KEY, version TEXT NOT NULL, reported_at TEXT NOT NULL, body TEXT NOT NULL)",
        "INSERT INTO edge_reports (edge_id, version, reported_at, body) SELECT edge_id, '', reported_at, body FROM edge_status",
        "DROP TABLE edge_status",
        "CREATE TABLE route_queries (id TEXT PRIMARY KEY, edge_id TEXT NOT NULL, body TEXT NOT NULL, \
         taken BIGINT NOT NULL, answer TEXT, created_at BIGINT NOT NULL)",
        "CREATE INDEX route_queries_edge ON route_queries (edge_id, taken)",
        "CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    // 5: security — edges' certificates (revoked by serial, at a time the operator
    // chooses), tokens that expire (an edge token's rotation), and the audit trail.
    &[
        "CREATE TABLE edge_certificates (serial TEXT PRIMARY KEY, edge_id TEXT NOT NULL, \
         not_after TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at BIGINT)",
        "CREATE INDEX edge_certificates_edge ON edge_certificates (edge_id)",
        "ALTER TABLE tokens ADD COLUMN expires_at BIGINT",
        "CREATE TABLE audit_events (id TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, \
         folder_id TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX audit_events_time ON audit_events (at_ms, id)",
        "CREATE INDEX audit_events_folder ON audit_events (folder_id, at_ms, id)",
        "CREATE INDEX audit_events_subject ON audit_events (subject, at_ms, id)",
    ],
    // 6: the console's sign-in sessions, shared by every server: a hash of the cookie's
    // secret, the API key sealed under a key derived from that secret (the database alone
    // opens no key), and when the session ends.
    &[
        "CREATE TABLE console_sessions (id_hash TEXT PRIMARY KEY, sealed_key TEXT NOT NULL, \
         subject TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
        "CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)",
    ],
];

/// Step 3's data: the parent of each stored document, as `Document::parent_id` says.
async fn backfill_parents(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    for (kind, field) in [
        (PrivateConnection::KIND, "trunkConnectionId"),
        (TrunkConnection::KIND, "edgeId"),
    ] {
        let rows = sqlx::query("SELECT id, body FROM resources WHERE kind = $1")
            .bind(kind)
            .fetch_all(&mut **tx)
            .await?;
        for r in rows {
            let id: String = r.try_get(0)?;
            let body: String = r.try_get(1)?;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| Error::Corrupt {
                kind,
                id: id.clone(),
                err: e.to_string(),
            })?;
            sqlx::query("UPDATE resources SET parent_id = $1 WHERE kind = $2 AND id = $3")
                .bind(v[field].as_str().unwrap_or_default().to_string())
                .bind(kind)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Step 4's data: the links of every stored document that has some, and the parent of
/// fabric slots.
async fn backfill_links(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    async fn relink<T: Document>(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        let rows = sqlx::query("SELECT id, body FROM resources WHERE kind = $1")
            .bind(T::KIND)
            .fetch_all(&mut **tx)
            .await?;
        for r in rows {
            let doc = decode_with_id::<T>(&Sealing::default(), &r)?;
            let id: String = r.try_get(0)?;
            put_links(tx, &doc, &id).await?;
            sqlx::query(
                "UPDATE resources SET parent_id = $1, name = $2 WHERE kind = $3 AND id = $4",
            )
            .bind(doc.parent_id().to_string())
            .bind(doc.name().into_owned())
            .bind(T::KIND)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
    relink::<TrunkConnection>(tx).await?;
    relink::<PrivateConnection>(tx).await?;
    relink::<PublicConnection>(tx).await?;
    relink::<RoutingInstance>(tx).await?;
    relink::<FabricSlot>(tx).await?;
    Ok(())
}

/// Replaces the links of the stored document (`T::KIND`, `id`) with `doc`'s.
async fn put_links<T: Document>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    doc: &T,
    id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM resource_links WHERE kind = $1 AND id = $2")
        .bind(T::KIND)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for (rel, target) in doc.links() {
        sqlx::query("INSERT INTO resource_links (kind, id, rel, target) VALUES ($1, $2, $3, $4)")
            .bind(T::KIND)
            .bind(id)
            .bind(rel)
            .bind(target)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
    memory: bool,
    /// PostgreSQL's notifications (LISTEN/NOTIFY) of commits made by any server.
    notices: Option<tokio::sync::broadcast::Sender<Notice>>,
    /// How secrets are sealed at rest.
    sealing: Sealing,
}

/// A notification from the database that another server (or this one) committed
/// something others wait for. A `Notice` with an empty channel means the listening
/// connection was lost and notices may have been missed: look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub channel: String,
    pub payload: String,
}

/// Channels of [`Notice`]s.
pub mod channel {
    /// The global revision moved (payload: the new revision).
    pub const REVISION: &str = "cic_revision";
    /// The global revision moved for operations finishing alone (payload: the new
    /// revision): nothing an edge is given changed, only operation waiters look again.
    pub const SETTLED: &str = "cic_settled";
    /// A looking-glass question for an edge (payload: the edge id).
    pub const QUESTION: &str = "cic_question";
    /// A looking-glass answer (payload: the question id).
    pub const ANSWER: &str = "cic_answer";
}

impl Store {
    /// Opens (creating and migrating as needed) `sqlite://PATH`, `sqlite::memory:` or a
    /// PostgreSQL URL.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, max) = if let Some(rest) = url.strip_prefix("sqlite:") {
            // Create the file on first start; one writer at a time is SQLite's model.
            let mut u = format!("sqlite:{rest}");
            if !rest.contains("mode=") && !rest.contains(":memory:") {
                u.push_str(if rest.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
            (u, if rest.contains(":memory:") { 1 } else { 4 })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), 8)
        } else {
            return Err(Error::BadUrl(url.to_string()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await?;
        let postgres = !url.starts_with("sqlite:");
        let s = Store {
            pool,
            postgres,
            memory: url.contains(":memory:"),
            notices: postgres.then(|| listen(url.clone())),
            sealing: Sealing::default(),
        };
        s.migrate().await?;
        Ok(s)
    }

    /// Seals secrets with `sealer` from now on (and opens what it sealed).
    pub fn with_sealer(mut self, sealer: Sealer) -> Store {
        self.sealing = Sealing(Some(std::sync::Arc::new(sealer)));
        self
    }

    pub fn sealing(&self) -> &Sealing {
        &self.sealing
    }

    /// Rewrites the tables that hold secrets so that no old version of a row (sealed
    /// under a key being retired) stays in free pages, the WAL or dead tuples.
    pub async fn compact(&self) -> Result<()> {
        if self.postgres {
            sqlx::query("VACUUM FULL resources, operations")
                .execute(&self.pool)
                .await?;
        } else if !self.memory {
            sqlx::query("VACUUM").execute(&self.pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Seals, under the current key, every stored secret that is in clear (written before
    /// secrets were sealed) or sealed under an older key; returns how many documents and
    /// operations it rewrote. A secret sealed under a key this store was not given is an
    /// error, and nothing is rewritten. Holds the write lock meanwhile.
    pub async fn reseal(&self) -> Result<u64> {
        let _lock = self.lock_writes().await?;
        let mut tx = self.pool.begin().await?;
        let mut rewritten = 0;
        for (table, key) in [("resources", "kind || '/' || id"), ("operations", "id")] {
            let select = format!(
                "SELECT {key}, body FROM {table} WHERE {} LIKE '%peerBgpMd5Key%'",
                "body"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                let k: String = r.try_get(0)?;
                let body: String = r.try_get(1)?;
                let mut v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| Error::Corrupt {
                        kind: "document",
                        id: k.clone(),
                        err: e.to_string(),
                    })?;
                if !self.sealing.needs_reseal(&v) {
                    continue;
                }
                self.sealing.open(&mut v).map_err(|e| Error::Corrupt {
                    kind: "document",
                    id: k.clone(),
                    err: e.to_string(),
                })?;
                self.sealing.seal(&mut v);
                let update = format!("UPDATE {table} SET body = $1 WHERE {key} = $2");
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(v.to_string())
                    .bind(&k)
                    .execute(&mut *tx)
                    .await?;
                rewritten += 1;
            }
        }
        tx.commit().await?;
        Ok(rewritten)
    }

    /// Notices of commits by every server on this database, where the back end has them
    /// (PostgreSQL's LISTEN/NOTIFY); None on SQLite, where one server is all there is.
    pub fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        self.notices.as_ref().map(|n| n.subscribe())
    }

    /// Sends a notice to every server's listeners (PostgreSQL; nothing on SQLite).
    async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if self.postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        if !self.postgres && !self.memory {
            // Readers see a snapshot without holding writers off (and the reverse); the
            // mode is kept in the file, so every connection has it.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&self.pool)
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            // Two servers starting together must not both migrate.
            sqlx::query("SELECT pg_advisory_xact_lock(7468)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?;
        let mut have: i64 = row.try_get(0)?;
        if have > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                found: have,
                known: SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let v = i as i64 + 1;
            if v <= have {
                continue;
            }
            for m in *step {
                sqlx::query(sqlx::AssertSqlSafe(*m))
                    .execute(&mut *tx)
                    .await?;
            }
            if v == 3 {
                backfill_parents(&mut tx).await?;
            }
            if v == 4 {
                backfill_links(&mut tx).await?;
            }
            sqlx::query("DELETE FROM schema_version")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(v)
                .execute(&mut *tx)
                .await?;
            have = v;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.pool.begin().await?,
            postgres: self.postgres,
            sealing: self.sealing.clone(),
        })
    }

    /// The secret `name` every server on this database shares (a key that signs page
    /// tokens, say): `candidate` becomes it if there is none yet.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn revision(&self) -> Result<u64> {
        revision_in(&self.pool).await
    }

    /// A consistent view of the store: every read through it sees the same commits, and
    /// [`Read::revision`] is the revision of exactly those (reads outside one may see a
    /// commit land between two of them).
    pub async fn read(&self) -> Result<Read> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            // READ COMMITTED, PostgreSQL's default, takes a new snapshot per statement.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        // SQLite: a deferred transaction reads from one snapshot from its first read on.
        let revision = revision_in(&mut *tx).await?;
        Ok(Read {
            tx,
            revision,
            sealing: self.sealing.clone(),
            postgres: self.postgres,
        })
    }

    pub async fn get<T: Document>(&self, id: &str) -> Result<Option<T>> {
        let row = sqlx::query("SELECT body FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode::<T>(&self.sealing, &r, id)).transpose()
    }

    /// All documents of a kind (in one folder when given), in id order.
    pub async fn list<T: Document>(&self, folder_id: Option<&str>) -> Result<Vec<T>> {
        list_in(&self.sealing, &self.pool, folder_id).await
    }

    /// The documents of a kind whose parent is `parent_id`, by index.
    pub async fn children<T: Document>(&self, parent_id: &str) -> Result<Vec<T>> {
        let rows = sqlx::query(
            "SELECT id, body FROM resources WHERE kind = $1 AND parent_id = $2 ORDER BY id",
        )
        .bind(T::KIND)
        .bind(parent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_with_id::<T>(&self.sealing, r))
            .collect()
    }

    /// The documents of kind `T` that link to `target` by `rel` (see [`Document::links`]),
    /// by index.
    pub async fn linked<T: Document>(&self, rel: &str, target: &str) -> Result<Vec<T>> {
        let rows = sqlx::query(
            "SELECT r.id, r.body FROM resource_links l JOIN resources r ON r.kind = l.kind AND r.id = l.id \
             WHERE l.rel = $1 AND l.target = $2 AND l.kind = $3 ORDER BY r.id",
        )
        .bind(rel)
        .bind(target)
        .bind(T::KIND)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_with_id::<T>(&self.sealing, r))
            .collect()
    }

    /// For each of `targets`, the id of the document of kind `T` that links to it by
    /// `rel` (a page's routing instances, say), in one query.
    pub async fn linked_ids<T: Document>(
        &self,
        rel: &str,
        targets: &[String],
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        // Within every back end's limit of bound parameters.
        for chunk in targets.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT target, id FROM resource_links WHERE rel = $1 AND kind = $2 AND target IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rel.to_string())
                .bind(T::KIND);
            for t in chunk {
                q = q.bind(t.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Documents of kind `T` by id, in one query (those that exist).
    pub async fn get_many<T: Document>(&self, ids: &[String]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id, body FROM resources WHERE kind = $1 AND id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(T::KIND);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(decode_with_id::<T>(&self.sealing, &r)?);
            }
        }
        Ok(out)
    }

    /// The documents (kind, id) of any kind that link to `target` by `rel` (who holds a
    /// VLAN on a trunk, say), by index.
    pub async fn linking(&self, rel: &str, target: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kind, id FROM resource_links WHERE rel = $1 AND target = $2 ORDER BY kind, id",
        )
        .bind(rel)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// [`Store::count_children`] leaving out `except` (the document being changed).
    pub async fn count_children_except<T: Document>(
        &self,
        parent_id: &str,
        except: Option<&str>,
    ) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM resources WHERE kind = $1 AND parent_id = $2 AND id <> $3",
        )
        .bind(T::KIND)
        .bind(parent_id)
        .bind(except.unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        u64_at(&row, 0)
    }

    /// The connections (kind, id, trunk) on VLAN `vlan` of any trunk on the wire
    /// `wire_key` ([`rel::wire_key`]): one indexed join, however many trunks share it.
    pub async fn vlan_on_wire(
        &self,
        wire_key: &str,
        vlan: u16,
    ) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT c.kind, c.id, w.id FROM resource_links w JOIN resource_links c \
             ON c.rel = $3 AND c.target = w.id || $4 WHERE w.rel = $1 AND w.target = $2 ORDER BY c.id",
        )
        .bind(rel::WIRE)
        .bind(wire_key)
        .bind(rel::VLAN)
        .bind(format!("|{vlan}"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// [`Store::list_after`] for documents that hang from a parent (connections from their
    /// trunk): each with the parent's own parent (the trunk's edge) and the id of the
    /// document of `owner_kind` that links to it by `rel` (its routing instance), all in
    /// the one query of the page.
    pub async fn list_after_in_context<T: Document>(
        &self,
        folder_id: Option<&str>,
        name: Option<&str>,
        after: Option<&str>,
        limit: u64,
        rel: &str,
        owner_kind: &str,
    ) -> Result<(Vec<InContext<T>>, bool)> {
        // The page first, in index order, then each row's context by index: a cost in
        // proportion to the page whatever the planner thinks of the tables' sizes
        // (PostgreSQL would otherwise hash-join every trunk and link).
        let (page, binds) = page_query(folder_id, name, after, 4, "id, body, parent_id");
        let sql = format!(
            "SELECT q.id, q.body, \
             (SELECT p.parent_id FROM resources p WHERE p.kind = $2 AND p.id = q.parent_id), \
             (SELECT l.id FROM resource_links l WHERE l.rel = $3 AND l.target = q.id AND l.kind = $4 LIMIT 1) \
             FROM ({page}) q ORDER BY q.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(T::KIND)
            .bind(T::PARENT_KIND)
            .bind(rel.to_string())
            .bind(owner_kind.to_string());
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind((limit + 1) as i64).fetch_all(&self.pool).await?;
        page_of(&rows, limit, |r| in_context::<T>(&self.sealing, r))
    }

    /// The context [`Store::list_after_in_context`] gives, of one document by id.
    pub async fn get_in_context<T: Document>(
        &self,
        id: &str,
        rel: &str,
        owner_kind: &str,
    ) -> Result<Option<InContext<T>>> {
        let row = sqlx::query(
            "SELECT r.id, r.body, p.parent_id, l.id FROM resources r \
             LEFT JOIN resources p ON p.kind = $2 AND p.id = r.parent_id \
             LEFT JOIN resource_links l ON l.rel = $3 AND l.target = r.id AND l.kind = $4 \
             WHERE r.kind = $1 AND r.id = $5",
        )
        .bind(T::KIND)
        .bind(T::PARENT_KIND)
        .bind(rel)
        .bind(owner_kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| in_context::<T>(&self.sealing, r))
            .transpose()
    }

    /// One page of a kind in id order (in a folder, with a name): up to `limit` documents
    /// whose id is after `after`, and whether more follow. A keyset page: a write to an
    /// item (or a new item) never moves another across the page boundary, so paging
    /// neither skips nor repeats, and a page costs its own size.
    pub async fn list_after<T: Document>(
        &self,
        folder_id: Option<&str>,
        name: Option<&str>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<T>, bool)> {
        let (sql, binds) = page_query(folder_id, name, after, 1, "id, body");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(T::KIND);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind((limit + 1) as i64).fetch_all(&self.pool).await?;
        page_of(&rows, limit, |r| decode_with_id::<T>(&self.sealing, r))
    }

    /// Whether some document of kind `T` links to `target` by `rel` (one index probe).
    pub async fn is_linked<T: Document>(&self, rel: &str, target: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM resource_links WHERE rel = $1 AND target = $2 AND kind = $3 LIMIT 1",
        )
        .bind(rel)
        .bind(target)
        .bind(T::KIND)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The greatest name of a kind in `folder_id`, read from the end of the name index.
    pub async fn last_name<T: Document>(&self, folder_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT name FROM resources WHERE kind = $1 AND folder_id = $2 \
             ORDER BY kind DESC, folder_id DESC, name DESC LIMIT 1",
        )
        .bind(T::KIND)
        .bind(folder_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<String, _>(0).map_err(Error::from))
            .transpose()
    }

    /// How many documents of a kind hang from `parent_id`.
    pub async fn count_children<T: Document>(&self, parent_id: &str) -> Result<u64> {
        self.count_children_except::<T>(parent_id, None).await
    }

    /// The id of the document of a kind named `name` in a folder, if any, by index.
    pub async fn id_by_name<T: Document>(
        &self,
        folder_id: &str,
        name: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM resources WHERE kind = $1 AND folder_id = $2 AND name = $3 LIMIT 1",
        )
        .bind(T::KIND)
        .bind(folder_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<String, _>(0).map_err(Error::from))
            .transpose()
    }

    pub async fn operation(&self, id: &str) -> Result<Option<Operation>> {
        let row = sqlx::query("SELECT body FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode_json::<Operation>(&self.sealing, &r, "operation", id))
            .transpose()
    }

    /// Unfinished operations with what they wait for.
    /// How many operations are not done.
    pub async fn count_pending_operations(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM operations WHERE done = 0")
            .fetch_one(&self.pool)
            .await?;
        u64_at(&row, 0)
    }

    pub async fn pending_operations(&self) -> Result<Vec<(Operation, Pending)>> {
        let rows = sqlx::query(
            "SELECT id, body, pending FROM operations WHERE done = 0 ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let body: String = r.try_get(1)?;
                let pending: String = r.try_get(2)?;
                let op = self.sealing.decode(&body).map_err(|err| Error::Corrupt {
                    kind: "operation",
                    id: id.clone(),
                    err,
                })?;
                let p = serde_json::from_str(&pending).map_err(|e| Error::Corrupt {
                    kind: "operation",
                    id,
                    err: e.to_string(),
                })?;
                Ok((op, p))
            })
            .collect()
    }

    /// Creates the PostgreSQL database `name` on the server of `server_url` and returns
    /// its URL (used by tests, which each take a fresh database).
    pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String> {
        use sqlx::Connection;
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::BadUrl(format!("database name {name:?}")));
        }
        let (base, _) = server_url
            .rsplit_once('/')
            .filter(|(b, _)| b.contains("://"))
            .ok_or_else(|| Error::BadUrl(server_url.into()))?;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(server_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok(format!("{base}/{name}"))
    }

    /// The schema version of the database (see [`SCHEMA_VERSION`]).
    pub async fn schema_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Waits for the database-wide write lock (PostgreSQL) — see [`WriteLock`].
    pub async fn lock_writes(&self) -> Result<WriteLock> {
        if !self.postgres {
            return Ok(WriteLock { _tx: None });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7469)")
            .execute(&mut *tx)
            .await?;
        Ok(WriteLock { _tx: Some(tx) })
    }

    /// The operation `id` and its folder.
    pub async fn operation_in_folder(&self, id: &str) -> Result<Option<StoredOperation>> {
        let row = sqlx::query("SELECT body, folder_id FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(StoredOperation {
                operation: decode_json::<Operation>(&self.sealing, &r, "operation", id)?,
                folder_id: r.try_get(1)?,
            })),
        }
    }

    /// Operations on one resource, newest first.
    pub async fn operations_of(&self, resource_id: &str) -> Result<Vec<Operation>> {
        let rows = sqlx::query(
            "SELECT body, id FROM operations WHERE resource_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(resource_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(1)?;
                decode_json::<Operation>(&self.sealing, r, "operation", &id)
            })
            .collect()
    }

    /// Claims `scope` (an idempotency key with its caller) for a request with `hash`, or
    /// tells what claimed it before.
    pub async fn claim_idempotency(&self, scope: &str, hash: &str, now: i64) -> Result<Claim> {
        let r = sqlx::query(
            "INSERT INTO idempotency (scope, request_hash, operation_id, claimed_at) VALUES ($1, $2, '', $3) \
             ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(Claim::New);
        }
        let row = sqlx::query(
            "SELECT request_hash, operation_id, claimed_at FROM idempotency WHERE scope = $1",
        )
        .bind(scope)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Claim::Existing {
                request_hash: r.try_get(0)?,
                operation_id: r.try_get(1)?,
                claimed_at: r.try_get(2)?,
            },
            // Released between the two statements: try again once.
            None => Box::pin(self.claim_idempotency(scope, hash, now)).await?,
        })
    }

    /// Takes over a claim that never got an operation and is older than `stale_before`
    /// (its request died). True when taken.
    pub async fn retake_idempotency(
        &self,
        scope: &str,
        hash: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE idempotency SET request_hash = $2, claimed_at = $3 \
             WHERE scope = $1 AND operation_id = '' AND claimed_at < $4",
        )
        .bind(scope)
        .bind(hash)
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Drops a claim whose request made no operation (it failed), so a retry can run.
    pub async fn release_idempotency(&self, scope: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency WHERE scope = $1 AND operation_id = ''")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an edge's latest report, for every server to read, as version `version`
    /// (unique per report: servers keep a decoded report until its version changes).
    pub async fn put_edge_report(
        &self,
        edge_id: &str,
        report: &EdgeReport,
        reported_at: &str,
        version: &str,
    ) -> Result<()> {
        let body = serde_json::to_string(report).map_err(|e| Error::Corrupt {
            kind: "edgeStatus",
            id: edge_id.into(),
            err: e.to_string(),
        })?;
        sqlx::query(
            "INSERT INTO edge_reports (edge_id, body, reported_at, version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (edge_id) DO UPDATE SET body = excluded.body, reported_at = excluded.reported_at, \
             version = excluded.version",
        )
        .bind(edge_id)
        .bind(body)
        .bind(reported_at)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The version of each edge's latest report (of `edges`, or of every edge): a small
    /// read, to tell whether a kept report is still the latest.
    pub async fn edge_report_versions(
        &self,
        edges: Option<&[String]>,
    ) -> Result<Vec<(String, String)>> {
        let rows = match edges {
            None => {
                sqlx::query("SELECT edge_id, version FROM edge_reports")
                    .fetch_all(&self.pool)
                    .await?
            }
            Some([]) => return Ok(Vec::new()),
            Some(ids) => {
                let mut rows = Vec::new();
                for chunk in ids.chunks(500) {
                    let marks: Vec<String> =
                        (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
                    let sql = format!(
                        "SELECT edge_id, version FROM edge_reports WHERE edge_id IN ({})",
                        marks.join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id.clone());
                    }
                    rows.extend(q.fetch_all(&self.pool).await?);
                }
                rows
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// One edge's latest report, when it came, and its version.
    pub async fn edge_report(&self, edge_id: &str) -> Result<Option<(EdgeReport, String, String)>> {
        let row =
            sqlx::query("SELECT body, reported_at, version FROM edge_reports WHERE edge_id = $1")
                .bind(edge_id)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((
                decode_json::<EdgeReport>(&Sealing::default(), &r, "edgeStatus", edge_id)?,
                r.try_get(1)?,
                r.try_get(2)?,
            ))),
        }
    }

    /// Puts a looking-glass question for `edge_id` where every server sees it, and tells
    /// them.
    pub async fn put_route_query(
        &self,
        id: &str,
        edge_id: &str,
        body: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO route_queries (id, edge_id, body, taken, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(id)
        .bind(edge_id)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.notify(channel::QUESTION, edge_id).await
    }

    /// The questions for `edge_id` not yet taken, now taken (each is handed out once).
    pub async fn take_route_queries(&self, edge_id: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, body FROM route_queries WHERE edge_id = $1 AND taken = 0 ORDER BY created_at, id",
        )
        .bind(edge_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.try_get(0)?;
            let taken =
                sqlx::query("UPDATE route_queries SET taken = 1 WHERE id = $1 AND taken = 0")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            if taken.rows_affected() == 1 {
                out.push(r.try_get(1)?);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records `edge_id`'s answer to question `id`; false when there is no such question
    /// of that edge still waiting.
    pub async fn answer_route_query(&self, id: &str, edge_id: &str, answer: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE route_queries SET answer = $3 WHERE id = $1 AND edge_id = $2 AND answer IS NULL",
        )
        .bind(id)
        .bind(edge_id)
        .bind(answer)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            self.notify(channel::ANSWER, id).await?;
        }
        Ok(r.rows_affected() == 1)
    }

    /// The answer to question `id`, once there is one.
    pub async fn route_query_answer(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT answer FROM route_queries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<String>, _>(0)?,
            None => None,
        })
    }

    /// Forgets question `id`, and any question older than `stale_before` (its asker is gone).
    pub async fn drop_route_query(&self, id: &str, stale_before: i64) -> Result<()> {
        sqlx::query("DELETE FROM route_queries WHERE id = $1 OR created_at < $2")
            .bind(id)
            .bind(stale_before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// API keys (tokens of subjects), of one subject when given.
    pub async fn api_keys(&self, subject: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, subject, description, created_at FROM tokens WHERE role = 'user' \
             AND ($1 = '' OR subject = $1) ORDER BY created_at, id",
        )
        .bind(subject.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKey {
                    id: r.try_get(0)?,
                    subject_id: r.try_get(1)?,
                    description: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The console session whose cookie secret hashes to `id_hash`, even if expired (the
    /// caller judges the time).
    pub async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT sealed_key, subject, created_at, expires_at FROM console_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(ConsoleSession {
                sealed_key: r.try_get(0)?,
                subject: r.try_get(1)?,
                created_at: r.try_get(2)?,
                expires_at: r.try_get(3)?,
            }),
            None => None,
        })
    }

    pub async fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT role, subject, expires_at FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(TokenRecord {
                role: r.try_get(0)?,
                subject: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            }),
            None => None,
        })
    }

    /// Records an audit event (its JSON `body`).
    pub async fn put_audit_event(
        &self,
        id: &str,
        at_ms: i64,
        folder_id: &str,
        subject: &str,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, at_ms, folder_id, subject, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(folder_id)
        .bind(subject)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets audit events older than `before_ms`; how many.
    pub async fn prune_audit_events(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit_events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Audit events, newest first: of `folder` (all when None), from `since_ms` on, of
    /// `subject`, older than `before` (at_ms, id) — up to `limit` + 1 (one more says more
    /// follow). Their JSON bodies with their (at_ms, id).
    pub async fn audit_events(
        &self,
        folder: Option<&str>,
        since_ms: Option<i64>,
        subject: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u64,
    ) -> Result<Vec<(i64, String, String)>> {
        let (b_ms, b_id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT at_ms, id, body FROM audit_events \
             WHERE ($1 = '' OR folder_id = $2) AND at_ms >= $3 AND ($4 = '' OR subject = $5) \
             AND (at_ms < $6 OR (at_ms = $6 AND id < $7) OR $7 = '') \
             ORDER BY at_ms DESC, id DESC LIMIT $8",
        )
        .bind(if folder.is_some() { "f" } else { "" })
        .bind(folder.unwrap_or(""))
        .bind(since_ms.unwrap_or(0))
        .bind(subject.unwrap_or(""))
        .bind(subject.unwrap_or(""))
        .bind(b_ms)
        .bind(b_id)
        .bind((limit + 1) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// When the edge certificate with this serial is (or was) revoked, if it is known
    /// here and revoked at all.
    pub async fn edge_certificate_revoked_at(&self, serial: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT revoked_at FROM edge_certificates WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    pub async fn has_role(&self, role: &str) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) FROM tokens WHERE role = $1")
            .bind(role)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }
}

/// The query of one keyset page of a kind (bound as `$1`): `columns` of the documents
/// after `after`, in a folder, with a name, limited by the parameter that follows the
/// others. Its ORDER BY is the index's own column list, so every back end reads the
/// index in order and stops at the limit. `used` parameters come before its own.
fn page_query(
    folder_id: Option<&str>,
    name: Option<&str>,
    after: Option<&str>,
    used: usize,
    columns: &str,
) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {columns} FROM resources WHERE kind = $1");
    let mut n = used;
    let mut binds = Vec::new();
    let mut order = vec!["kind"];
    for (col, v) in [("folder_id", folder_id), ("name", name)] {
        if let Some(v) = v {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
            binds.push(v.to_string());
            order.push(col);
        }
    }
    if let Some(a) = after {
        n += 1;
        sql.push_str(&format!(" AND id > ${n}"));
        binds.push(a.to_string());
    }
    order.push("id");
    sql.push_str(&format!(" ORDER BY {} LIMIT ${}", order.join(", "), n + 1));
    (sql, binds)
}

/// Listens to every [`channel`] on a connection of its own, for as long as anyone holds the
/// sender; reconnects when the connection is lost, and says so with an empty notice.
fn listen(url: String) -> tokio::sync::broadcast::Sender<Notice> {
    let (tx, _) = tokio::sync::broadcast::channel(1024);
    // The task ends when the last store (holder of the sender) is gone.
    let weak = tx.downgrade();
    tokio::spawn(async move {
        let lost = Notice {
            channel: String::new(),
            payload: String::new(),
        };
        loop {
            if weak.upgrade().is_none() {
                return;
            }
            let mut l = match sqlx::postgres::PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("LISTEN connection: {e}; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = l
                .listen_all([
                    channel::REVISION,
                    channel::SETTLED,
                    channel::QUESTION,
                    channel::ANSWER,
                ])
                .await
            {
                tracing::warn!("LISTEN: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            // Whatever happened while nobody listened is looked at again.
            let Some(out) = weak.upgrade() else { return };
            let _ = out.send(lost.clone());
            drop(out);
            loop {
                let next = l.try_recv().await;
                let Some(out) = weak.upgrade() else { return };
                match next {
                    Ok(Some(n)) => {
                        let _ = out.send(Notice {
                            channel: n.channel().to_string(),
                            payload: n.payload().to_string(),
                        });
                    }
                    Ok(None) => {
                        let _ = out.send(lost.clone());
                    }
                    Err(e) => {
                        tracing::warn!("LISTEN: {e}; reconnecting");
                        let _ = out.send(lost.clone());
                        break;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    tx
}

async fn revision_in<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(e: E) -> Result<u64> {
    let row = sqlx::query("SELECT value FROM revision WHERE id = 1")
        .fetch_one(e)
        .await?;
    u64_at(&row, 0)
}

async fn list_in<'e, T: Document, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    s: &Sealing,
    e: E,
    folder_id: Option<&str>,
) -> Result<Vec<T>> {
    let rows = match folder_id {
        Some(f) => {
            sqlx::query(
                "SELECT id, body FROM resources WHERE kind = $1 AND folder_id = $2 ORDER BY id",
            )
            .bind(T::KIND)
            .bind(f)
            .fetch_all(e)
            .await?
        }
        None => {
            sqlx::query("SELECT id, body FROM resources WHERE kind = $1 ORDER BY id")
                .bind(T::KIND)
                .fetch_all(e)
                .await?
        }
    };
    rows.iter().map(|r| decode_with_id::<T>(s, r)).collect()
}

/// A read-only view of one moment of the store (see [`Store::read`]); dropping it ends it.
pub struct Read {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    revision: u64,
    sealing: Sealing,
    postgres: bool,
}

impl Read {
    /// The revision of what this view sees.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// [`Store::list`], as of this view.
    pub async fn list<T: Document>(&mut self, folder_id: Option<&str>) -> Result<Vec<T>> {
        list_in(&self.sealing, &mut *self.tx, folder_id).await
    }

    /// How many documents of each kind there are, and the sum of the revisions that wrote
    /// them (a kind with none is absent).
    pub async fn counts(&mut self) -> Result<std::collections::HashMap<String, (u64, u64)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*), CAST(SUM(revision) AS BIGINT) FROM resources GROUP BY kind",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, (u64_at(r, 1)?, u64_at(r, 2)?))))
            .collect()
    }

    /// The id and revision of every document of kind `T`, in the byte order of the ids
    /// (whatever the database's collation): what changed since an earlier read, without
    /// reading a body.
    pub async fn revisions<T: Document>(&mut self) -> Result<Vec<(String, u64)>> {
        let q = if self.postgres {
            "SELECT id, revision FROM resources WHERE kind = $1 ORDER BY id COLLATE \"C\""
        } else {
            // SQLite's default collation, BINARY, is byte order.
            "SELECT id, revision FROM resources WHERE kind = $1 ORDER BY id"
        };
        let rows = sqlx::query(q)
            .bind(T::KIND)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, u64_at(r, 1)?)))
            .collect()
    }

    /// The documents of kind `T` written after `revision`, by id, each with the revision
    /// that wrote it.
    pub async fn written_after<T: Document>(
        &mut self,
        revision: u64,
    ) -> Result<std::collections::HashMap<String, (u64, T)>> {
        let rows = sqlx::query(
            "SELECT id, body, revision FROM resources WHERE kind = $1 AND revision > $2",
        )
        .bind(T::KIND)
        .bind(revision as i64)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    (u64_at(r, 2)?, decode_with_id::<T>(&self.sealing, r)?),
                ))
            })
            .collect()
    }

    /// [`Store::get`], as of this view.
    pub async fn get<T: Document>(&mut self, id: &str) -> Result<Option<T>> {
        let row = sqlx::query("SELECT body FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| decode::<T>(&self.sealing, &r, id)).transpose()
    }
}

/// Column `i` of `r`, a count or revision the database holds as a BIGINT.
fn u64_at(r: &AnyRow, i: usize) -> Result<u64> {
    Ok(r.try_get::<i64, _>(i)? as u64)
}

fn decode<T: Document>(s: &Sealing, r: &AnyRow, id: &str) -> Result<T> {
    decode_json(s, r, T::KIND, id)
}

/// A page of `limit` rows (of the `limit + 1` read: one more says more follow), decoded.
fn page_of<R>(
    rows: &[AnyRow],
    limit: u64,
    decode: impl Fn(&AnyRow) -> Result<R>,
) -> Result<(Vec<R>, bool)> {
    let more = rows.len() as u64 > limit;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(decode)
        .collect::<Result<Vec<R>>>()?;
    Ok((items, more))
}

/// A document (id and body first) with its context: its parent's parent and its owner.
fn in_context<T: Document>(s: &Sealing, r: &AnyRow) -> Result<InContext<T>> {
    Ok(InContext {
        doc: decode_with_id::<T>(s, r)?,
        grandparent: r.try_get::<Option<String>, _>(2)?,
        owner: r.try_get::<Option<String>, _>(3)?,
    })
}

fn decode_with_id<T: Document>(s: &Sealing, r: &AnyRow) -> Result<T> {
    let id: String = r.try_get(0)?;
    let body: String = r.try_get(1)?;
    s.decode(&body).map_err(|err| Error::Corrupt {
        kind: T::KIND,
        id,
        err,
    })
}

fn decode_json<T: DeserializeOwned>(
    s: &Sealing,
    r: &AnyRow,
    kind: &'static str,
    id: &str,
) -> Result<T> {
    let body: String = r.try_get(0)?;
    s.decode(&body).map_err(|err| Error::Corrupt {
        kind,
        id: id.to_string(),
        err,
    })
}

/// A write transaction. Nothing is visible to others until [`Tx::commit`].
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    postgres: bool,
    sealing: Sealing,
}

impl Tx {
    /// Bumps the global revision and returns the new value.
    pub async fn bump_revision(&mut self) -> Result<u64> {
        self.bump(channel::REVISION).await
    }

    /// Bumps the global revision for operations finishing, which changes nothing an edge
    /// is given: other servers are told on [`channel::SETTLED`], so that they wake their
    /// operation waiters but not their edges.
    pub async fn bump_revision_settling(&mut self) -> Result<u64> {
        self.bump(channel::SETTLED).await
    }

    async fn bump(&mut self, notice: &str) -> Result<u64> {
        sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        let row = sqlx::query("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await?;
        let rev = u64_at(&row, 0)?;
        if self.postgres {
            // Delivered when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(notice)
                .bind(rev.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(rev)
    }

    pub async fn put<T: Document>(&mut self, doc: &T, revision: u64) -> Result<()> {
        self.put_keyed(doc, doc.id(), revision).await
    }

    /// Stores `doc` under an explicit id (for documents keyed by several parts).
    /// A fabric slot, under its key (one per owner and edge).
    pub async fn put_slot(&mut self, s: &FabricSlot, revision: u64) -> Result<()> {
        self.put_keyed(
            s,
            &FabricSlot::key(&s.edge_id, &s.routing_instance_id),
            revision,
        )
        .await
    }

    pub async fn put_keyed<T: Document>(&mut self, doc: &T, id: &str, revision: u64) -> Result<()> {
        let body = self.sealing.encode(doc).map_err(|e| Error::Corrupt {
            kind: T::KIND,
            id: id.into(),
            err: e.to_string(),
        })?;
        sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO resources (kind, id, folder_id, name, body, revision, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(T::KIND)
        .bind(id)
        .bind(doc.folder_id())
        .bind(doc.name().into_owned())
        .bind(body)
        .bind(revision as i64)
        .bind(doc.parent_id())
        .execute(&mut *self.tx)
        .await?;
        put_links(&mut self.tx, doc, id).await?;
        Ok(())
    }

    pub async fn delete<T: Document>(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM resource_links WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores an operation of `folder_id` ("" for the catalog); its resource is
    /// `metadata.resourceId`.
    pub async fn put_operation(
        &mut self,
        op: &Operation,
        folder_id: &str,
        pending: Option<&Pending>,
    ) -> Result<()> {
        let body = self.sealing.encode(op).map_err(|e| Error::Corrupt {
            kind: "operation",
            id: op.id.clone(),
            err: e.to_string(),
        })?;
        let pending = serde_json::to_string(&pending).unwrap_or_else(|_| "null".into());
        sqlx::query("DELETE FROM operations WHERE id = $1")
            .bind(&op.id)
            .execute(&mut *self.tx)
            .await?;
        let resource_id = op
            .metadata
            .get("resourceId")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO operations (id, done, body, pending, created_at, folder_id, resource_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&op.id)
        .bind(op.done as i64)
        .bind(body)
        .bind(pending)
        .bind(&op.created_at)
        .bind(folder_id)
        .bind(resource_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn put_token(&mut self, hash: &str, role: &str, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE hash = $1")
            .bind(hash)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO tokens (hash, role, subject) VALUES ($1, $2, $3)")
            .bind(hash)
            .bind(role)
            .bind(subject)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores the hash of a subject's API key.
    pub async fn put_api_key(&mut self, hash: &str, key: &ApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (hash, role, subject, id, description, created_at) VALUES ($1, 'user', $2, $3, $4, $5)",
        )
        .bind(hash)
        .bind(&key.subject_id)
        .bind(&key.id)
        .bind(&key.description)
        .bind(&key.created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Revokes an API key; false when there is none with that id.
    pub async fn delete_api_key(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM tokens WHERE role = 'user' AND id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Marks an idempotency claim as finished by `operation_id`, atomically with the
    /// mutation that made it.
    pub async fn finish_idempotency(&mut self, scope: &str, operation_id: &str) -> Result<()> {
        sqlx::query("UPDATE idempotency SET operation_id = $2 WHERE scope = $1")
            .bind(scope)
            .bind(operation_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn delete_edge_report(&mut self, edge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM edge_reports WHERE edge_id = $1")
            .bind(edge_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Records a certificate issued to an edge.
    pub async fn put_edge_certificate(
        &mut self,
        serial: &str,
        edge_id: &str,
        not_after: &str,
        created_at: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO edge_certificates (serial, edge_id, not_after, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(serial)
        .bind(edge_id)
        .bind(not_after)
        .bind(created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Revokes, from `at` (unix seconds), the edge's certificates other than `keep` (an
    /// earlier revocation stands).
    pub async fn revoke_edge_certificates(
        &mut self,
        edge_id: &str,
        at: i64,
        keep: &str,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE edge_certificates SET revoked_at = $2 WHERE edge_id = $1 AND serial <> $3 \
             AND (revoked_at IS NULL OR revoked_at > $2)",
        )
        .bind(edge_id)
        .bind(at)
        .bind(keep)
        .execute(&mut *self.tx)
        .await?
        .rows_affected())
    }

    /// Makes the edge's tokens other than the one hashed `keep` expire at `at` (unix
    /// seconds; an earlier expiry stands).
    pub async fn expire_edge_tokens(&mut self, edge_id: &str, at: i64, keep: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE tokens SET expires_at = $2 WHERE role = 'edge' AND subject = $1 AND hash <> $3 \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(edge_id)
        .bind(at)
        .bind(keep)
        .execute(&mut *self.tx)
        .await?
        .rows_affected())
    }

    /// Starts a console session; sessions that ended before `now` are removed on the way.
    pub async fn put_console_session(
        &mut self,
        id_hash: &str,
        s: &ConsoleSession,
        now: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, sealed_key, subject, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(&s.sealed_key)
        .bind(&s.subject)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Ends a console session (sign-out); false if there was none.
    pub async fn delete_console_session(&mut self, id_hash: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&mut *self.tx)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Revokes every token of an edge.
    pub async fn delete_edge_tokens(&mut self, edge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE role = 'edge' AND subject = $1")
            .bind(edge_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Runs one fixed statement (maintenance and tests).
    pub async fn execute_raw(&mut self, sql: &'static str) -> Result<u64> {
        Ok(sqlx::query(sql)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cic_model::resource::PointOfPresence;

    fn pop(id: &str) -> PointOfPresence {
        PointOfPresence {
            id: id.into(),
            name: format!("PoP {id}"),
            location_address: String::new(),
            connection_points: vec![],
            public_services: None,
        }
    }

    #[tokio::test]
    async fn documents_round_trip_and_revision_counts_commits() {
        let s = Store::open("sqlite::memory:").await.expect("open");
        assert_eq!(s.revision().await.expect("rev"), 0);
        let mut tx = s.begin().await.expect("tx");
        let r = tx.bump_revision().await.expect("bump");
        tx.put(&pop("a"), r).await.expect("put");
        tx.put(&pop("b"), r).await.expect("put");
        tx.commit().await.expect("commit");
        assert_eq!(s.revision().await.expect("rev"), 1);
        assert_eq!(
            s.get::<PointOfPresence>("a").await.expect("get"),
            Some(pop("a"))
        );
        assert_eq!(
            s.list::<PointOfPresence>(None).await.expect("list").len(),
            2
        );
        assert_eq!(s.get::<PointOfPresence>("zz").await.expect("get"), None);
    }

    #[tokio::test]
    async fn uncommitted_changes_are_not_seen() {
        let dir = std::env::temp_dir().join(format!("cic-store-test-{}.db", std::process::id()));
        let url = format!("sqlite://{}", dir.display());
        let s = Store::open(&url).await.expect("open file db");
        {
            let mut tx = s.begin().await.expect("tx");
            let r = tx.bump_revision().await.expect("bump");
            tx.put(&pop("x"), r).await.expect("put");
            // dropped without commit: rolled back
        }
        assert_eq!(s.get::<PointOfPresence>("x").await.expect("get"), None);
        assert_eq!(s.revision().await.expect("rev"), 0);
        // Reopening migrates again without harm and keeps data.
        let mut tx = s.begin().await.expect("tx");
        tx.put(&pop("y"), 1).await.expect("put");
        tx.commit().await.expect("commit");
        drop(s);
        let s = Store::open(&url).await.expect("reopen");
        assert!(s.get::<PointOfPresence>("y").await.expect("get").is_some());
        let _ = std::fs::remove_file(&dir);
    }

    #[tokio::test]
    async fn audit_events_page_newest_first_filter_and_age_out() {
        let s = Store::open("sqlite::memory:").await.expect("open");
        for (i, (folder, subject)) in [("f1", "ann"), ("f2", "bob"), ("f1", "bob"), ("", "op")]
            .iter()
            .enumerate()
        {
            let at = 1_000 * (i as i64 + 1);
            s.put_audit_event(
                &format!("ae{i}"),
                at,
                folder,
                subject,
                &format!("{{\"n\":{i}}}"),
            )
            .await
            .expect("put");
        }
        let ids = |v: Vec<(i64, String, String)>| v.into_iter().map(|r| r.1).collect::<Vec<_>>();
        assert_eq!(
            ids(s.audit_events(None, None, None, None, 10).await.expect("q")),
            ["ae3", "ae2", "ae1", "ae0"]
        );
        assert_eq!(
            ids(s
                .audit_events(Some("f1"), None, None, None, 10)
                .await
                .expect("q")),
            ["ae2", "ae0"]
        );
        assert_eq!(
            ids(s
                .audit_events(None, None, Some("bob"), None, 10)
                .await
                .expect("q")),
            ["ae2", "ae1"]
        );
        assert_eq!(
            ids(s
                .audit_events(None, Some(2_000), None, None, 10)
                .await
                .expect("q")),
            ["ae3", "ae2", "ae1"]
        );
        assert_eq!(
            ids(s
                .audit_events(None, None, None, Some((3_000, "ae2")), 1)
                .await
                .expect("q")),
            ["ae1", "ae0"]
        );
        assert_eq!(s.prune_audit_events(2_500).await.expect("prune"), 2);
        assert_eq!(
            ids(s.audit_events(None, None, None, None, 10).await.expect("q")),
            ["ae3", "ae2"]
        );
    }

    #[tokio::test]
    async fn tokens_are_looked_up_by_hash() {
        let s = Store::open("sqlite::memory:").await.expect("open");
        assert!(!s.has_role("admin").await.expect("q"));
        let mut tx = s.begin().await.expect("tx");
        tx.put_token("abc", "admin", "bootstrap")
            .await
            .expect("put");
        tx.commit().await.expect("commit");
        assert_eq!(
            s.token("abc").await.expect("q"),
            Some(TokenRecord {
                role: "admin".into(),
                subject: "bootstrap".into(),
                expires_at: None,
            })
        );
        assert!(s.has_role("admin").await.expect("q"));
        assert_eq!(s.token("nope").await.expect("q"), None);
    }

    #[test]
    fn bad_urls_are_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let e = rt.block_on(Store::open("mysql://x")).err().expect("error");
        assert!(e.to_string().contains("mysql://x"));
    }
}
