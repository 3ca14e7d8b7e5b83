//! A write transaction: the revision bumped, documents and slots written or deleted, then
//! committed at once.

use crate::schema::put_links;
use crate::{Document, Error, FabricSlot, Result, Sealing, channel, u64_at};

/// A write transaction. Nothing is visible to others until [`Tx::commit`].
pub struct Tx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    /// Dropped after `tx` (fields drop in order), so the turn outlives the commit (not a
    /// rollback, which sqlx only queues when `tx` is dropped).
    pub(crate) _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    pub(crate) postgres: bool,
    pub(crate) sealing: Sealing,
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
