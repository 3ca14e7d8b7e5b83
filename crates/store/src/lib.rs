//! Persistence for the control plane.
//!
//! Resources are stored as JSON documents keyed by (kind, id) with the folder and name
//! beside them for lookups; every committed change bumps one global revision, which is
//! what edges sync against. The SQL is the common subset of SQLite and PostgreSQL, run
//! through sqlx's `Any` driver, so both back ends share one code path.

use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use schema::put_links;

mod access;
mod documents;
mod edge_sync;
mod operations;
mod read;
mod schema;
pub mod sealed;

pub use documents::{Document, FabricSlot, InContext, rel};
pub use operations::{Action, Claim, Pending, StoredOperation};
pub use read::Read;
pub use schema::SCHEMA_VERSION;
pub use sealed::{SealError, Sealer, Sealing};

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

/// Held while validating and writing a mutation. On PostgreSQL it is a transaction-scoped
/// advisory lock, so several servers on one database take turns; SQLite has one writer
/// and the server's own mutex suffices.
pub struct WriteLock {
    _tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
    memory: bool,
    /// PostgreSQL's notifications (LISTEN/NOTIFY) of commits made by any server.
    notices: Option<tokio::sync::broadcast::Sender<Notice>>,
    /// How secrets are sealed at rest.
    sealing: Sealing,
    /// SQLite's one writer, taken in turn: every write of this server waits here for the
    /// one before it to commit rather than meet SQLITE_BUSY and sleep in SQLite's busy
    /// handler (1, 2, 5, 10, 15, 20 ms… — long after the lock is free). Unused on
    /// PostgreSQL, whose writers do not exclude each other.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
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
        Store::open_with(url, true).await
    }

    /// [`Store::open`] with SQLite's busy timeout zero: a write that meets another
    /// connection's fails at once with "database is locked" instead of waiting. For tests
    /// that show this server's own writes never meet each other.
    #[doc(hidden)]
    pub async fn open_failing_when_busy(url: &str) -> Result<Store> {
        Store::open_with(url, false).await
    }

    async fn open_with(url: &str, wait_when_busy: bool) -> Result<Store> {
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
        let postgres = !url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres && !wait_when_busy {
                        sqlx::query("PRAGMA busy_timeout = 0").execute(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let s = Store {
            pool,
            postgres,
            memory: url.contains(":memory:"),
            notices: postgres.then(|| listen(url.clone())),
            sealing: Sealing::default(),
            writer: Default::default(),
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
            let _turn = self.write_turn().await;
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
        let _turn = self.write_turn().await;
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

    /// This server's turn to write on SQLite (see [`Store::writer`]); None on PostgreSQL.
    /// Held until the write ends; nothing that holds it may wait for another write.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if self.postgres {
            return None;
        }
        Some(self.writer.clone().lock_owned().await)
    }

    /// A write transaction: on SQLite it holds this server's turn to write until it
    /// commits or is dropped, so a [`Store`] method that writes must not be called while
    /// one is held; nor one that reads on `sqlite::memory:`, whose pool is the one
    /// connection the transaction holds (read first, as the settle does). A transaction
    /// dropped without a commit gives the turn back before sqlx's rollback has run on its
    /// connection: the next writer may then wait in SQLite's busy handler once (a failed
    /// mutation, a cancelled request).
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.write_turn().await;
        Ok(Tx {
            _turn: turn,
            tx: self.pool.begin().await?,
            postgres: self.postgres,
            sealing: self.sealing.clone(),
        })
    }

    /// The secret `name` every server on this database shares (a key that signs page
    /// tokens, say): `candidate` becomes it if there is none yet.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        let turn = self.write_turn().await;
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        drop(turn);
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
    /// Dropped after `tx` (fields drop in order), so the turn outlives the commit (not a
    /// rollback, which sqlx only queues when `tx` is dropped).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
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
        let row = sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
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
        // One statement, whether the document is new or replaces one.
        sqlx::query(
            "INSERT INTO resources (kind, id, folder_id, name, body, revision, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (kind, id) DO UPDATE SET folder_id = excluded.folder_id, name = excluded.name, \
             body = excluded.body, revision = excluded.revision, parent_id = excluded.parent_id",
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
