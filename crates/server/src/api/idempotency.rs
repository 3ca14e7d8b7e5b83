//! `Idempotency-Key` on mutations: a retried request gets the operation of the first one
//! and creates nothing twice.
//!
//! The key is scoped to the caller's token. Before the handler runs the key is claimed in
//! the store (so two servers, or two concurrent retries, cannot both run it); the handler's
//! own write transaction records the operation it made (see `finish_mutation`), so the
//! mutation and the key's answer commit together. A request that fails releases its claim;
//! a claim whose request died without an answer is taken over after [`STALE_SECS`].

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cic_model::{ApiError, Code};
use cic_store::Claim;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::AppError;

pub const HEADER: &str = "idempotency-key";
/// A claim without an operation after this long belongs to a request that died.
pub const STALE_SECS: i64 = 60;

tokio::task_local! {
    static SCOPE: String;
}

/// The claimed key of the request being handled, if it has one.
pub fn current_scope() -> Option<String> {
    SCOPE.try_with(|s| s.clone()).ok()
}

fn bad(m: impl Into<String>) -> Response {
    AppError(ApiError::new(Code::InvalidArgument, m)).into_response()
}

pub async fn layer(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
        _ => return bad("Idempotency-Key: 1-128 printable ASCII characters"),
    };
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
    else {
        // Unauthenticated: the handler answers 401.
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    // The same limit as every other request's, with the same answer.
    let bytes = match to_bytes(body, crate::error::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return crate::error::too_large().into_response(),
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.to_string());
    h.update([0]);
    h.update(&bytes);
    let request_hash = hex::encode(h.finalize());
    let scope = format!("{}:{key}", crate::auth::hash(&token));

    let now = crate::clock::unix_now();
    let claim = match st.store.claim_idempotency(&scope, &request_hash, now).await {
        Ok(c) => c,
        Err(e) => return AppError::from(e).into_response(),
    };
    match claim {
        Claim::New => {}
        Claim::Existing {
            request_hash: h, ..
        } if h != request_hash => {
            return bad(format!(
                "Idempotency-Key {key:?} was used for a different request; use a new key"
            ));
        }
        Claim::Existing { operation_id, .. } if !operation_id.is_empty() => {
            return replay(&st, parts, &operation_id).await;
        }
        Claim::Existing { .. } => {
            match st
                .store
                .retake_idempotency(&scope, &request_hash, now, now - STALE_SECS)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return AppError(ApiError::new(
                        Code::Aborted,
                        format!("a request with Idempotency-Key {key:?} is still running; retry"),
                    ))
                    .into_response();
                }
                Err(e) => return AppError::from(e).into_response(),
            }
        }
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let resp = SCOPE.scope(scope.clone(), next.run(req)).await;
    // Failed, or a mutation without an operation (catalog writes): nothing to replay.
    if let Err(e) = st.store.release_idempotency(&scope).await {
        tracing::warn!("releasing idempotency key: {e}");
    }
    resp
}

/// The first request's operation, as it is now, shown as the caller may see it.
async fn replay(
    st: &Arc<AppState>,
    mut parts: axum::http::request::Parts,
    operation_id: &str,
) -> Response {
    use axum::extract::FromRequestParts;
    let who = match Principal::from_request_parts(&mut parts, st).await {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let stored = st
            .store
            .operation_in_folder(operation_id)
            .await?
            .ok_or_else(|| super::not_found("operation", operation_id))?;
        let view = super::operations::operation_view(st, &who, &stored, Need::Read).await?;
        Ok::<_, AppError>(axum::Json(view.show_operation(&stored.operation)))
    }
    .await;
    match result {
        Ok(j) => j.into_response(),
        Err(e) => e.into_response(),
    }
}
