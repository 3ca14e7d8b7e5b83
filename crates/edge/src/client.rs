//! The edge's side of edge sync: long-poll the desired config, report status.

use cic_model::edge::{RouteAnswer, RouteQuery};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cic_client::tls::{ClientTls, Stamp, TlsSetupError, explain, http_client, identity_stamp};

use cic_model::ApiError;
use cic_model::edge::{EdgeConfigUpdate, EdgeReport, EdgeReportChanges};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an answer: why, in words (a TLS refusal names its cause).
    #[error("{0}")]
    Transport(String),
    #[error("server refused: {0}")]
    Api(ApiError),
    #[error("server answered {0}: {1}")]
    Http(u16, String),
}

#[derive(Clone)]
pub struct SyncClient {
    /// The HTTP client, made again when the identity's files change: its pooled
    /// connections (a long-poll's) were opened with the old certificate.
    http: Arc<Mutex<(Stamp, reqwest::Client)>>,
    base: String,
    /// An edge token; None when the edge authenticates by its certificate.
    token: Option<String>,
    tls: ClientTls,
}

impl SyncClient {
    pub fn new(
        base: &str,
        token: Option<&str>,
        tls: ClientTls,
    ) -> Result<SyncClient, TlsSetupError> {
        let base = base.trim_end_matches('/').to_string();
        let http = Self::build(&base, &tls)?;
        Ok(SyncClient {
            http: Arc::new(Mutex::new((identity_stamp(&tls), http))),
            base,
            token: token.filter(|t| !t.is_empty()).map(String::from),
            tls,
        })
    }

    fn build(base: &str, tls: &ClientTls) -> Result<reqwest::Client, TlsSetupError> {
        http_client(
            base,
            tls,
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)),
        )
    }

    /// The client to use now (a new one if the certificate files changed).
    fn http(&self) -> reqwest::Client {
        let mut h = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = identity_stamp(&self.tls);
        if stamp != h.0 {
            match Self::build(&self.base, &self.tls) {
                Ok(c) => {
                    tracing::info!("client certificate files changed: new connections use them");
                    *h = (stamp, c);
                }
                Err(e) => {
                    tracing::warn!("client certificate files changed but cannot be used yet: {e}")
                }
            }
        }
        h.1.clone()
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http().request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        ClientError::Transport(explain(&e, &self.base, &self.tls))
    }

    /// The config at a revision above `after`, or the current one after `wait`: as the
    /// changes since the answer tagged `since` when the server still has that answer.
    /// With the answer's size in bytes.
    pub async fn config(
        &self,
        after: u64,
        wait: Duration,
        since: Option<&str>,
    ) -> Result<(EdgeConfigUpdate, usize), ClientError> {
        let url = format!("{}/cic/v1/edgeSync/config", self.base);
        let mut query = vec![
            ("afterRevision", after.to_string()),
            ("waitSeconds", wait.as_secs().to_string()),
        ];
        if let Some(tag) = since {
            query.push(("changesSince", tag.to_string()));
        }
        let r = self
            .request(reqwest::Method::GET, &url)
            .query(&query)
            .timeout(wait + Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        decode_sized(r).await
    }

    /// Sends a report; the version the server keeps it as (none from a server older than
    /// versions), and the report's size in bytes.
    pub async fn report(&self, report: &EdgeReport) -> Result<(Taken, usize), ClientError> {
        self.send_report(reqwest::Method::PUT, report).await
    }

    /// Sends a report as the changes since the last one the server took (PATCH; a server
    /// older than it refuses it).
    pub async fn report_changes(
        &self,
        changes: &EdgeReportChanges,
    ) -> Result<(Taken, usize), ClientError> {
        self.send_report(reqwest::Method::PATCH, changes).await
    }

    async fn send_report(
        &self,
        method: reqwest::Method,
        report: &impl serde::Serialize,
    ) -> Result<(Taken, usize), ClientError> {
        let url = format!("{}/cic/v1/edgeSync/status", self.base);
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Http(0, e.to_string()))?;
        let size = body.len();
        let r = self
            .request(method, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        decode::<Taken>(r).await.map(|t| (t, size))
    }
}

impl SyncClient {
    /// Looking-glass questions for this edge; waits up to `wait` for one.
    pub async fn queries(&self, wait: Duration) -> Result<Vec<RouteQuery>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Page {
            queries: Vec<RouteQuery>,
        }
        let url = format!("{}/cic/v1/edgeSync/queries", self.base);
        let r = self
            .request(reqwest::Method::GET, &url)
            .query(&[("waitSeconds", wait.as_secs().to_string())])
            .timeout(wait + Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        decode::<Page>(r).await.map(|p| p.queries)
    }

    pub async fn answer(&self, id: &str, a: &RouteAnswer) -> Result<(), ClientError> {
        let url = format!("{}/cic/v1/edgeSync/queries/{id}", self.base);
        let r = self
            .request(reqwest::Method::PUT, &url)
            .json(a)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        decode::<serde_json::Value>(r).await.map(|_| ())
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, ClientError> {
    decode_sized(r).await.map(|(t, _)| t)
}

/// [`decode`], with the body's size in bytes.
async fn decode_sized<T: serde::de::DeserializeOwned>(
    r: reqwest::Response,
) -> Result<(T, usize), ClientError> {
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map(|t| (t, body.len()))
            .map_err(|e| ClientError::Http(status.as_u16(), e.to_string()));
    }
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => Err(ClientError::Api(e)),
        Err(_) => Err(ClientError::Http(
            status.as_u16(),
            String::from_utf8_lossy(&body).into(),
        )),
    }
}

/// What the server answers a report it took.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    /// The version it keeps the report as (none from a server older than reports of
    /// changes).
    #[serde(default)]
    pub version: Option<String>,
    /// The server counts the uptime of a session a report of changes leaves out (older
    /// servers do not: every session whose age changed is sent).
    #[serde(default)]
    pub counts_uptime: bool,
}
