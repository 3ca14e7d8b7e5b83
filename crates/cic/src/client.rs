//! A thin client of the REST API for the resource commands.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cic_client::tls::ClientTls;
use cic_model::ApiError;
use serde_json::Value;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    tls: ClientTls,
}

/// An API error, kept whole so the process can exit with a code that says what failed.
#[derive(Debug)]
pub struct Refused(pub ApiError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            serde_json::to_value(self.0.code)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            self.0.message
        )
    }
}

impl std::error::Error for Refused {}

impl Api {
    pub fn new(base: &str, token: &str, tls: ClientTls) -> Result<Api> {
        let http = cic_client::tls::http_client(
            base,
            &tls,
            reqwest::Client::builder().timeout(Duration::from_secs(30)),
        )?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            tls,
        })
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        // A 429 was refused before it did anything: wait as the server says, send again.
        let mut tries = 0;
        let resp = loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| anyhow!(cic_client::tls::explain(&e, &self.base, &self.tls)))?;
            tries += 1;
            if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || tries >= 5 {
                break resp;
            }
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(30))).await;
        };
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("{method} {path}: response is not JSON"));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => Err(Refused(e).into()),
            Err(_) => Err(anyhow!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Waits (long-polling the server) for an operation to be done; an operation that
    /// ended in error is an error.
    pub async fn wait(&self, op: Value, timeout: Duration) -> Result<Value> {
        let id = op["id"]
            .as_str()
            .ok_or_else(|| anyhow!("not an operation: {op}"))?
            .to_string();
        let end = Instant::now() + timeout;
        let mut op = op;
        loop {
            if op["done"] == true {
                if let Some(e) = op.get("error") {
                    let e: ApiError = serde_json::from_value(e.clone())?;
                    return Err(Refused(e).into());
                }
                return Ok(op);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "operation {id} is not done after {timeout:?} (the edge has not applied it yet; `cic operation get {id}` shows it later)"
                );
            }
            let wait = left.as_secs().clamp(1, 25);
            op = self
                .get(&format!("/operations/{id}?waitSeconds={wait}"))
                .await?;
        }
    }
}
