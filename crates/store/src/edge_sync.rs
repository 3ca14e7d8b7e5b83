//! What the edges and the servers share through the store: each edge's latest report,
//! and the looking glass's questions and answers.

use sqlx::Row;

use cic_model::edge::EdgeReport;

use crate::{Error, Result, Sealing, Store, Tx, channel, decode_json};

impl Store {
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
        let _turn = self.write_turn().await;
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
        let turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO route_queries (id, edge_id, body, taken, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(id)
        .bind(edge_id)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        drop(turn);
        self.notify(channel::QUESTION, edge_id).await
    }

    /// The questions for `edge_id` not yet taken, now taken (each is handed out once).
    pub async fn take_route_queries(&self, edge_id: &str) -> Result<Vec<String>> {
        // Almost always none: a look without the turn to write, so that every edge's poll
        // does not queue behind the writers to learn that.
        let waiting =
            sqlx::query("SELECT 1 FROM route_queries WHERE edge_id = $1 AND taken = 0 LIMIT 1")
                .bind(edge_id)
                .fetch_optional(&self.pool)
                .await?;
        if waiting.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
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
        let turn = self.write_turn().await;
        let r = sqlx::query(
            "UPDATE route_queries SET answer = $3 WHERE id = $1 AND edge_id = $2 AND answer IS NULL",
        )
        .bind(id)
        .bind(edge_id)
        .bind(answer)
        .execute(&self.pool)
        .await?;
        drop(turn);
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
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM route_queries WHERE id = $1 OR created_at < $2")
            .bind(id)
            .bind(stale_before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Tx {
    pub async fn delete_edge_report(&mut self, edge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM edge_reports WHERE edge_id = $1")
            .bind(edge_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
