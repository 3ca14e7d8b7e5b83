//! The edge's side of edge sync: long-poll the desired config, report status.

use cic_model::edge::{RouteAnswer, RouteQuery};
use std::time::Duration;

use cic_model::ApiError;
use cic_model::edge::{EdgeConfig, EdgeReport};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {0}: {1}")]
    Transport(String, reqwest::Error),
    #[error("server refused: {0}")]
    Api(ApiError),
    #[error("server answered {0}: {1}")]
    Http(u16, String),
}

#[derive(Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl SyncClient {
    pub fn new(base: &str, token: &str) -> SyncClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        SyncClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// The config at a revision above `after`, or the current one after `wait`.
    pub async fn config(&self, after: u64, wait: Duration) -> Result<EdgeConfig, ClientError> {
        let url = format!("{}/cic/v1/edgeSync/config", self.base);
        let r = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .query(&[
                ("afterRevision", after.to_string()),
                ("waitSeconds", wait.as_secs().to_string()),
            ])
            .timeout(wait + Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.base.clone(), e))?;
        decode(r).await
    }

    pub async fn report(&self, report: &EdgeReport) -> Result<(), ClientError> {
        let url = format!("{}/cic/v1/edgeSync/status", self.base);
        let r = self
            .http
            .put(&url)
            .bearer_auth(&self.token)
            .json(report)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.base.clone(), e))?;
        decode::<serde_json::Value>(r).await.map(|_| ())
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
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .query(&[("waitSeconds", wait.as_secs().to_string())])
            .timeout(wait + Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.base.clone(), e))?;
        decode::<Page>(r).await.map(|p| p.queries)
    }

    pub async fn answer(&self, id: &str, a: &RouteAnswer) -> Result<(), ClientError> {
        let url = format!("{}/cic/v1/edgeSync/queries/{id}", self.base);
        let r = self
            .http
            .put(&url)
            .bearer_auth(&self.token)
            .json(a)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| ClientError::Transport(self.base.clone(), e))?;
        decode::<serde_json::Value>(r).await.map(|_| ())
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, ClientError> {
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body)
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
