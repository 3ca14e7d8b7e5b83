//! Operations and what they wait for, and the idempotency keys that stand for them.

use sqlx::Row;

use cic_model::resource::Operation;

use crate::{Error, Result, Store, Tx, decode_json, u64_at};

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

impl Store {
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
        let turn = self.write_turn().await;
        let r = sqlx::query(
            "INSERT INTO idempotency (scope, request_hash, operation_id, claimed_at) VALUES ($1, $2, '', $3) \
             ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        drop(turn);
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
        let _turn = self.write_turn().await;
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
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM idempotency WHERE scope = $1 AND operation_id = ''")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Tx {
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
        let resource_id = op
            .metadata
            .get("resourceId")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO operations (id, done, body, pending, created_at, folder_id, resource_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET done = excluded.done, body = excluded.body, \
             pending = excluded.pending, created_at = excluded.created_at, \
             folder_id = excluded.folder_id, resource_id = excluded.resource_id",
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
}
