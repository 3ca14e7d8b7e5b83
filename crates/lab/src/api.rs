//! The API as the lab's benchmarks call it: a bearer token, each mutation followed to its
//! operation's end.

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
    /// The lab's server lets one credential hold [`LONG_POLLS`] long polls open:
    /// operations beyond are waited for as others end.
    pub(crate) polls: tokio::sync::Semaphore,
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

    /// What [`Api`] holds for waiting: as many long polls as the lab's server allows one
    /// credential.
    pub(crate) fn polls() -> tokio::sync::Semaphore {
        tokio::sync::Semaphore::new(LONG_POLLS)
    }

    /// Waits for an operation to be done (the edges applied it), with one of the
    /// credential's long polls (waiting for one first, when all are taken).
    pub(crate) async fn done(&self, op: Value) -> Result<Value> {
        if op["done"] == true {
            return self.done_now(op);
        }
        let _poll = self.polls.acquire().await?;
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
        self.done_now(op)
    }

    /// A done operation, or its error.
    fn done_now(&self, op: Value) -> Result<Value> {
        if let Some(e) = op.get("error") {
            bail!("operation {} failed: {e}", op["id"]);
        }
        Ok(op)
    }

    /// Runs `calls`, `in_flight` at once, each to its operation's end; the results in order,
    /// and where each call's time went.
    pub(crate) async fn all(
        &self,
        in_flight: usize,
        calls: Vec<(reqwest::Method, String, Value)>,
    ) -> Result<(Vec<Value>, Calls)> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        use std::time::Instant;
        // Unordered: a call that waits long for its operation holds its own slot only
        // (in order, the calls finished behind it held theirs until it ended).
        let mut done: Vec<(usize, Value, f64, f64)> = stream::iter(calls.into_iter().enumerate())
            .map(|(i, (m, path, body))| async move {
                let t = Instant::now();
                let op = self.call(m, &path, Some(body)).await?;
                let answered = t.elapsed();
                let op = self.done(op).await?;
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                Ok::<_, anyhow::Error>((i, op, ms(answered), ms(t.elapsed() - answered)))
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        done.sort_by_key(|(i, ..)| *i);
        let mut answer: Vec<f64> = done.iter().map(|d| d.2).collect();
        let mut wait: Vec<f64> = done.iter().map(|d| d.3).collect();
        let calls = Calls {
            answer_p50_ms: quantile(&mut answer, 0.5),
            answer_p99_ms: quantile(&mut answer, 0.99),
            done_p50_ms: quantile(&mut wait, 0.5),
            done_p99_ms: quantile(&mut wait, 0.99),
        };
        Ok((done.into_iter().map(|d| d.1).collect(), calls))
    }
}

/// Long polls the lab's server lets one credential hold open: the lab starts it with
/// this (`cic server --max-long-polls`), and its clients wait on no more at once.
pub(crate) const LONG_POLLS: usize = 32;

/// Where the time of [`Api::all`]'s calls went: from sending each until the server
/// answered it (the operation created), and from then until its operation was seen done
/// (the edges applied it; with more than the server's long polls in flight, this includes
/// waiting for one).
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Calls {
    pub answer_p50_ms: f64,
    pub answer_p99_ms: f64,
    pub done_p50_ms: f64,
    pub done_p99_ms: f64,
}

impl std::fmt::Display for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "each call answered in p50 {:.0} / p99 {:.0} ms, its operation done p50 {:.0} / p99 {:.0} ms after",
            self.answer_p50_ms, self.answer_p99_ms, self.done_p50_ms, self.done_p99_ms
        )
    }
}

/// The `p` quantile of `v` (nearest rank; 0 when empty).
pub(crate) fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}
