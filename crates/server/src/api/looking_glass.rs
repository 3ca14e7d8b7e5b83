//! The looking glass: a session's received (with the reason for each refused route),
//! accepted and advertised routes. Routes live on the edge, so the server asks it: the
//! question waits for the edge's long poll (`/cic/v1/edgeSync/queries`), the edge
//! answers with `PUT …/queries/{id}`, and the caller gets that answer.
//!
//! Questions are held in this server's memory: with several servers, an edge must poll the
//! server that was asked (a load balancer pinning edges to one server does that).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::edge::{RouteAnswer, RouteDirection, RouteQuery};
use cic_model::resource::{PrivateConnection, TrunkConnection};
use cic_model::{ApiError, Code};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, oneshot};

use super::{ApiQuery, fetch, fetch_for};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiJson, ApiResult};

/// How long a caller waits for the edge.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Broker {
    /// Questions not yet fetched, per edge.
    waiting: Mutex<HashMap<String, Vec<RouteQuery>>>,
    /// Callers waiting for an answer: question id → (edge, reply).
    callers: Mutex<HashMap<String, (String, oneshot::Sender<RouteAnswer>)>>,
    wake: Notify,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutesQuery {
    /// received (default), accepted or advertised.
    #[serde(default)]
    pub direction: Option<RouteDirection>,
}

/// `GET /cic/v1/privateConnections/{id}:routes?direction=received|accepted|advertised`.
pub async fn routes(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: RoutesQuery,
) -> ApiResult<Json<Value>> {
    let (pc, _) = fetch_for::<PrivateConnection>(st, who, id, Need::Read).await?;
    let direction = q.direction.unwrap_or(RouteDirection::Received);
    let edge = fetch::<TrunkConnection>(st, &pc.trunk_connection_id)
        .await?
        .edge_id;
    let query = RouteQuery {
        id: crate::new_id("lg"),
        connection_id: pc.meta.id.clone(),
        direction,
    };
    let (tx, rx) = oneshot::channel();
    let b = &st.queries;
    b.callers
        .lock()
        .await
        .insert(query.id.clone(), (edge.clone(), tx));
    b.waiting
        .lock()
        .await
        .entry(edge.clone())
        .or_default()
        .push(query.clone());
    b.wake.notify_waiters();
    let answer = tokio::time::timeout(ANSWER_WITHIN, rx).await;
    b.callers.lock().await.remove(&query.id);
    if let Some(w) = b.waiting.lock().await.get_mut(&edge) {
        w.retain(|x| x.id != query.id);
    }
    let a = match answer {
        Ok(Ok(a)) => a,
        _ => {
            return Err(ApiError::new(
                Code::Unavailable,
                format!(
                    "edge {edge} did not answer within {} s; its routes cannot be shown now",
                    ANSWER_WITHIN.as_secs()
                ),
            )
            .into());
        }
    };
    if let Some(e) = a.error {
        return Err(ApiError::precondition(e).into());
    }
    Ok(Json(json!({
        "privateConnectionId": pc.meta.id,
        "direction": direction,
        "routes": a.routes,
    })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueriesQuery {
    #[serde(default)]
    wait_seconds: u64,
}

/// `GET /cic/v1/edgeSync/queries?waitSeconds=N` (edge): its pending questions.
pub async fn queries(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<QueriesQuery>,
) -> ApiResult<Json<Value>> {
    let edge = who.edge_id()?.to_string();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_seconds).min(st.config.max_wait);
    loop {
        let woken = st.queries.wake.notified();
        let mine = st
            .queries
            .waiting
            .lock()
            .await
            .remove(&edge)
            .unwrap_or_default();
        if !mine.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(json!({ "queries": mine })));
        }
        let _ = tokio::time::timeout_at(deadline, woken).await;
    }
}

/// `PUT /cic/v1/edgeSync/queries/{id}` (edge): the answer to one of its questions.
pub async fn answer(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(a): ApiJson<RouteAnswer>,
) -> ApiResult<Json<Value>> {
    let edge = who.edge_id()?.to_string();
    let mut callers = st.queries.callers.lock().await;
    match callers.get(&id) {
        Some((e, _)) if *e == edge => {
            if let Some((_, tx)) = callers.remove(&id) {
                let _ = tx.send(a);
            }
            Ok(Json(json!({})))
        }
        // Unknown, answered, timed out, or another edge's: nothing to do with it.
        _ => Err(super::not_found("looking-glass query", &id)),
    }
}
