//! Who may call, and what they did: tokens and API keys, the console's sessions, edges'
//! certificates, and the audit trail.

use sqlx::Row;

use cic_model::iam::ApiKey;

use crate::{ConsoleSession, Result, Store, TokenRecord, Tx};

impl Store {
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
        let _turn = self.write_turn().await;
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
        let _turn = self.write_turn().await;
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

impl Tx {
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
}
