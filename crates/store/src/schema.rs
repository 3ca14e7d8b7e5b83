//! The schema: its numbered migrations, run in order on start, the data some steps fill
//! in from the stored bodies, and the links kept beside each document.

use sqlx::Row;

use cic_model::resource::{PrivateConnection, PublicConnection, RoutingInstance, TrunkConnection};

use crate::{Document, Error, FabricSlot, Result, Sealing, Store, decode_with_id};

/// Schema versions, applied in order on start, each in one transaction with its number
/// recorded in `schema_version`. Never edit a released step; add a new one.
pub(crate) const MIGRATIONS: &[&[&str]] = &[
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
pub(crate) async fn put_links<T: Document>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    doc: &T,
    id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM resource_links WHERE kind = $1 AND id = $2")
        .bind(T::KIND)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    // All of them in one statement (a document has a handful).
    let links = doc.links();
    if links.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..links.len())
        .map(|i| format!("($1, $2, ${}, ${})", 2 * i + 3, 2 * i + 4))
        .collect();
    let sql = format!(
        "INSERT INTO resource_links (kind, id, rel, target) VALUES {}",
        rows.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(T::KIND).bind(id);
    for (rel, target) in links {
        q = q.bind(rel).bind(target);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

impl Store {
    pub(crate) async fn migrate(&self) -> Result<()> {
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
}
