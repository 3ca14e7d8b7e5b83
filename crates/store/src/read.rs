//! A read-only view of one moment of the store, for the compiler's snapshot.

use sqlx::Row;

use crate::{Document, Result, Sealing, decode, decode_with_id, list_in, u64_at};

/// A read-only view of one moment of the store (see [`crate::Store::read`]); dropping it ends it.
pub struct Read {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) revision: u64,
    pub(crate) sealing: Sealing,
    pub(crate) postgres: bool,
}

impl Read {
    /// The revision of what this view sees.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// [`Store::list`](crate::Store::list), as of this view.
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

    /// [`Store::get`](crate::Store::get), as of this view.
    pub async fn get<T: Document>(&mut self, id: &str) -> Result<Option<T>> {
        let row = sqlx::query("SELECT body FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| decode::<T>(&self.sealing, &r, id)).transpose()
    }
}
