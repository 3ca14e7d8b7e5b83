//! Persistence for the control plane.
//!
//! Resources are stored as JSON documents keyed by (kind, id) with the folder and name
//! beside them for lookups; every committed change bumps one global revision, which is
//! what edges sync against. The SQL is the common subset of SQLite and PostgreSQL, run
//! through sqlx's `Any` driver, so both back ends share one code path.

use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod access;
mod documents;
mod edge_sync;
mod notices;
mod operations;
mod queries;
mod read;
mod schema;
pub mod sealed;
mod tx;

pub use documents::{Document, FabricSlot, InContext, rel};
use notices::listen;
pub use notices::{Notice, channel};
pub use operations::{Action, Claim, Pending, StoredOperation};
pub use read::Read;
pub use schema::SCHEMA_VERSION;
pub use sealed::{SealError, Sealer, Sealing};
pub use tx::Tx;

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
