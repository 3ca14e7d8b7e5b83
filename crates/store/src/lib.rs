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

use cic_model::resource::{
    Edge, Operation, PointOfPresence, PrivateConnection, RoutingInstance, TrunkConnection,
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
    fn name(&self) -> &str {
        ""
    }
}

impl Document for PointOfPresence {
    const KIND: &'static str = "pointOfPresence";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Document for Edge {
    const KIND: &'static str = "edge";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

macro_rules! tenant_document {
    ($t:ty, $kind:literal) => {
        impl Document for $t {
            const KIND: &'static str = $kind;
            fn id(&self) -> &str {
                &self.meta.id
            }
            fn folder_id(&self) -> &str {
                &self.meta.folder_id
            }
            fn name(&self) -> &str {
                &self.meta.name
            }
        }
    };
}
tenant_document!(TrunkConnection, "trunkConnection");
tenant_document!(PrivateConnection, "privateConnection");
tenant_document!(RoutingInstance, "routingInstance");

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
    /// Not the storage key: slots are written with `put_keyed(FabricSlot::key(..))`, as one
    /// routing instance has a slot on each of its edges.
    fn id(&self) -> &str {
        &self.routing_instance_id
    }
    fn folder_id(&self) -> &str {
        &self.edge_id
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub role: String,
    pub subject: String,
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS revision (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO revision (id, value) SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM revision WHERE id = 1)",
    "CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, id TEXT NOT NULL, folder_id TEXT NOT NULL, \
     name TEXT NOT NULL, body TEXT NOT NULL, revision BIGINT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE INDEX IF NOT EXISTS resources_folder ON resources (kind, folder_id)",
    "CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, done BIGINT NOT NULL, body TEXT NOT NULL, \
     pending TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS operations_done ON operations (done)",
    "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL)",
];

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
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
        let s = Store { pool };
        s.migrate().await?;
        Ok(s)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for m in MIGRATIONS {
            sqlx::query(*m).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.pool.begin().await?,
        })
    }

    pub async fn revision(&self) -> Result<u64> {
        let row = sqlx::query("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    pub async fn get<T: Document>(&self, id: &str) -> Result<Option<T>> {
        let row = sqlx::query("SELECT body FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode::<T>(&r, id)).transpose()
    }

    /// All documents of a kind (in one folder when given), oldest first.
    pub async fn list<T: Document>(&self, folder_id: Option<&str>) -> Result<Vec<T>> {
        let rows = match folder_id {
            Some(f) => {
                sqlx::query("SELECT id, body FROM resources WHERE kind = $1 AND folder_id = $2 ORDER BY revision, id")
                    .bind(T::KIND)
                    .bind(f)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT id, body FROM resources WHERE kind = $1 ORDER BY revision, id")
                    .bind(T::KIND)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(|r| decode_with_id::<T>(r)).collect()
    }

    pub async fn operation(&self, id: &str) -> Result<Option<Operation>> {
        let row = sqlx::query("SELECT body FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode_json::<Operation>(&r, "operation", id))
            .transpose()
    }

    /// Unfinished operations with what they wait for.
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
                let op = serde_json::from_str(&body).map_err(|e| Error::Corrupt {
                    kind: "operation",
                    id: id.clone(),
                    err: e.to_string(),
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

    pub async fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT role, subject FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(TokenRecord {
                role: r.try_get(0)?,
                subject: r.try_get(1)?,
            }),
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

fn decode<T: Document>(r: &AnyRow, id: &str) -> Result<T> {
    decode_json(r, T::KIND, id)
}

fn decode_with_id<T: Document>(r: &AnyRow) -> Result<T> {
    let id: String = r.try_get(0)?;
    let body: String = r.try_get(1)?;
    serde_json::from_str(&body).map_err(|e| Error::Corrupt {
        kind: T::KIND,
        id,
        err: e.to_string(),
    })
}

fn decode_json<T: DeserializeOwned>(r: &AnyRow, kind: &'static str, id: &str) -> Result<T> {
    let body: String = r.try_get(0)?;
    serde_json::from_str(&body).map_err(|e| Error::Corrupt {
        kind,
        id: id.to_string(),
        err: e.to_string(),
    })
}

/// A write transaction. Nothing is visible to others until [`Tx::commit`].
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Tx {
    /// Bumps the global revision and returns the new value.
    pub async fn bump_revision(&mut self) -> Result<u64> {
        sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        let row = sqlx::query("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    pub async fn put<T: Document>(&mut self, doc: &T, revision: u64) -> Result<()> {
        self.put_keyed(doc, doc.id(), revision).await
    }

    /// Stores `doc` under an explicit id (for documents keyed by several parts).
    pub async fn put_keyed<T: Document>(&mut self, doc: &T, id: &str, revision: u64) -> Result<()> {
        let body = serde_json::to_string(doc).map_err(|e| Error::Corrupt {
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
            "INSERT INTO resources (kind, id, folder_id, name, body, revision) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(T::KIND)
        .bind(id)
        .bind(doc.folder_id())
        .bind(doc.name())
        .bind(body)
        .bind(revision as i64)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn delete<T: Document>(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn put_operation(&mut self, op: &Operation, pending: Option<&Pending>) -> Result<()> {
        let body = serde_json::to_string(op).map_err(|e| Error::Corrupt {
            kind: "operation",
            id: op.id.clone(),
            err: e.to_string(),
        })?;
        let pending = serde_json::to_string(&pending).unwrap_or_else(|_| "null".into());
        sqlx::query("DELETE FROM operations WHERE id = $1")
            .bind(&op.id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO operations (id, done, body, pending, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&op.id)
            .bind(op.done as i64)
            .bind(body)
            .bind(pending)
            .bind(&op.created_at)
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

    pub async fn delete_tokens_of(&mut self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE subject = $1")
            .bind(subject)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
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
                subject: "bootstrap".into()
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
