//! The audit trail: every mutation and every refused authentication or authorization is
//! recorded in the store — who (subject and kind), from where, the request id, method,
//! path, resource, folder, outcome and time — and kept for `--audit-retention-days`.
//! Request bodies are never recorded, so neither are secrets. Edges' sync traffic is
//! recorded only when refused (their status reports are not mutations of anyone's).
//!
//! `GET /audit/v1/events`: the operator reads every event, a folder's admin its folder's.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use cic_model::ApiError;
use cic_model::iam::AuditEvent;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::Need;
use crate::api::{ApiQuery, Paging};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::headers::RequestId;
use crate::listen::Peer;

/// Bytes of a response read to find the operation it returns (operations are small).
const MAX_READ: usize = 256 * 1024;

fn is_mutation(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The id the path names (`/cic/v1/privateConnections/pc1:method` → `pc1`).
fn id_in_path(path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /{service}/v1/{collection}/{id}[/...]
    segs.get(3)
        .map(|s| s.split(':').next().unwrap_or(s).to_string())
        .unwrap_or_default()
}

pub async fn layer(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let peer = req.extensions().get::<Peer>().cloned();
    let (parts, body) = req.into_parts();
    let auth_parts = {
        let mut p = axum::http::Request::new(());
        *p.headers_mut() = parts.headers.clone();
        p.extensions_mut().insert(peer.clone().unwrap_or_default());
        p.into_parts().0
    };
    let resp = next.run(Request::from_parts(parts, body)).await;
    let status = resp.status();
    let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    let sync = path.starts_with("/cic/v1/edgeSync/");
    let audited = refused || (is_mutation(&method) && !sync);
    if !audited {
        return resp;
    }
    // Who: the request's credentials again (mutations are few beside reads).
    let mut auth_parts = auth_parts;
    let who = Principal::from_request_parts(&mut auth_parts, &st)
        .await
        .ok();
    let (subject, kind) = match &who {
        Some(Principal::Admin { subject }) => (subject.clone(), "operator"),
        Some(Principal::User { subject }) => (subject.clone(), "user"),
        Some(Principal::Edge { edge_id }) => (edge_id.clone(), "edge"),
        None => (String::new(), "anonymous"),
    };
    // What: the operation the answer holds, or the error code of a refusal.
    let (resp_parts, body) = resp.into_parts();
    // The answer is read (to find its operation) only when it is known to be small; a
    // larger or streamed one goes to the caller untouched and is recorded without it.
    use axum::body::HttpBody as _;
    let small = body
        .size_hint()
        .upper()
        .is_some_and(|u| u <= MAX_READ as u64);
    let (body, v) = if small {
        match axum::body::to_bytes(body, MAX_READ).await {
            Ok(b) => {
                let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
                (Body::from(b), v)
            }
            Err(e) => {
                tracing::error!(%path, "audit: the answer could not be read: {e}");
                (Body::empty(), Value::Null)
            }
        }
    } else {
        (body, Value::Null)
    };
    let mut event = AuditEvent {
        id: crate::new_id("ae"),
        time: now_ms_text(),
        subject,
        subject_kind: kind.to_string(),
        source_address: peer
            .and_then(|p| p.addr)
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        request_id,
        method: method.to_string(),
        path: path.clone(),
        resource_id: id_in_path(&path),
        folder_id: String::new(),
        status: status.as_u16(),
        code: String::new(),
        operation_id: String::new(),
    };
    if status.is_success() {
        if let Some(op) = v["id"]
            .as_str()
            .filter(|i| i.starts_with("op") && v.get("done").is_some())
        {
            event.operation_id = op.to_string();
            if let Some(r) = v["metadata"]["resourceId"].as_str() {
                event.resource_id = r.to_string();
            }
            if let Ok(Some(stored)) = st.store.operation_in_folder(op).await {
                event.folder_id = stored.folder_id;
            }
        }
    } else {
        event.code = v["code"].as_str().unwrap_or_default().to_string();
    }
    if event.folder_id.is_empty()
        && let Some(f) = path.strip_prefix("/resourcemanager/v1/folders/")
    {
        event.folder_id = f.split(['/', ':']).next().unwrap_or_default().to_string();
    } else if event.folder_id.is_empty()
        && path == "/resourcemanager/v1/folders"
        && status.is_success()
    {
        event.folder_id = v["id"].as_str().unwrap_or_default().to_string();
    }
    record(&st, &event).await;
    Response::from_parts(resp_parts, body)
}

/// RFC 3339 with three digits of milliseconds always (times sort as text).
fn now_ms_text() -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

async fn record(st: &AppState, e: &AuditEvent) {
    let at = crate::clock::unix_ms(&e.time).unwrap_or_else(crate::clock::unix_now_ms);
    let body = serde_json::to_string(e).unwrap_or_default();
    if let Err(err) = st
        .store
        .put_audit_event(&e.id, at, &e.folder_id, &e.subject, &body)
        .await
    {
        tracing::error!(request_id = %e.request_id, "audit event not recorded: {err}");
        return;
    }
    // Old events go now and then (an indexed delete), not on every write.
    if st
        .audit_writes
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(256)
    {
        let keep = st.audit_retention().as_millis() as i64;
        if let Err(err) = st.store.prune_audit_events(at - keep).await {
            tracing::warn!("audit trail not pruned: {err}");
        }
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    /// The folder whose events to list (required unless the caller is the operator).
    pub folder_id: Option<String>,
    /// RFC 3339: only events at or after this time.
    pub since: Option<String>,
    /// Only the events of this subject.
    pub subject: Option<String>,
    /// 1-1000, default 100.
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

/// `GET /audit/v1/events`, newest first.
pub async fn list(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    match (&who, &q.folder_id) {
        (Principal::Admin { .. }, _) => {}
        (Principal::User { .. }, Some(f)) => {
            st.access(&who, f, Need::Manage, || crate::access::folder_not_found(f))
                .await?;
        }
        (Principal::User { .. }, None) => {
            return Err(ApiError::field(
                "folderId",
                "is required: a folder's admin reads the audit trail of that folder",
            )
            .into());
        }
        (Principal::Edge { .. }, _) => who.require_user().map(|_| ())?,
    }
    let since = match &q.since {
        Some(t) => Some(crate::clock::unix_ms(t).ok_or_else(|| {
            ApiError::field(
                "since",
                format!("{t:?} is not an RFC 3339 time (2026-12-04T10:00:00Z)"),
            )
        })?),
        None => None,
    };
    let scope = format!(
        "{}\n{}\n{}",
        q.folder_id.as_deref().unwrap_or(""),
        q.since.as_deref().unwrap_or(""),
        q.subject.as_deref().unwrap_or("")
    );
    let paging = Paging::new(
        &st,
        "auditEvent",
        &scope,
        q.page_size,
        q.page_token.as_deref(),
    )?;
    let before = paging.after.as_deref().and_then(|a| {
        let (ms, id) = a.split_once(' ')?;
        Some((ms.parse::<i64>().ok()?, id))
    });
    let rows = st
        .store
        .audit_events(
            q.folder_id.as_deref(),
            since,
            q.subject.as_deref(),
            before,
            paging.size as u64,
        )
        .await?;
    let more = rows.len() > paging.size;
    let mut events = Vec::new();
    let mut last = None;
    for (ms, id, body) in rows.into_iter().take(paging.size) {
        events.push(serde_json::from_str::<Value>(&body).unwrap_or(Value::Null));
        last = Some(format!("{ms} {id}"));
    }
    let mut out = json!({ "events": events });
    if more && let Some(l) = last {
        out["nextPageToken"] = json!(paging.token(&l));
    }
    Ok(Json(out))
}
