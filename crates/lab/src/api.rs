//! The API as the lab's benchmarks call it: a bearer token, each mutation followed to its
//! operation's end.

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) async fn call(
        &self,
        m: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        // A 429 was refused before it did anything: wait as told and send it again.
        let mut tries = 0;
        let resp = loop {
            let mut r = self
                .http
                .request(m.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = &body {
                r = r.json(b);
            }
            let resp = r.send().await?;
            tries += 1;
            if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || tries >= 10 {
                break resp;
            }
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(std::time::Duration::from_secs(wait.min(30))).await;
        };
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{m} {path}: {status}: {v}");
        }
        Ok(v)
    }

    /// Waits for an operation to be done (the edges applied it).
    pub(crate) async fn done(&self, op: Value) -> Result<Value> {
        let id = op["id"].as_str().context("operation id")?.to_string();
        let mut op = op;
        while op["done"] != true {
            op = self
                .call(
                    reqwest::Method::GET,
                    &format!("/operations/{id}?waitSeconds=30"),
                    None,
                )
                .await?;
        }
        if let Some(e) = op.get("error") {
            bail!("operation {id} failed: {e}");
        }
        Ok(op)
    }

    /// Runs `calls`, `in_flight` at once, each to its operation's end; the results in order.
    pub(crate) async fn all(
        &self,
        in_flight: usize,
        calls: Vec<(reqwest::Method, String, Value)>,
    ) -> Result<Vec<Value>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Unordered: a call that waits long for its operation holds its own slot only
        // (in order, the calls finished behind it held theirs until it ended).
        let mut done: Vec<(usize, Value)> = stream::iter(calls.into_iter().enumerate())
            .map(|(i, (m, path, body))| async move {
                let op = self.call(m, &path, Some(body)).await?;
                Ok::<_, anyhow::Error>((i, self.done(op).await?))
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, v)| v).collect())
    }
}
