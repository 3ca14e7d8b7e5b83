use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiQuery, not_found};
use crate::AppState;
use crate::access::{Need, View};
use crate::auth::Principal;
use crate::error::ApiResult;
use cic_store::StoredOperation;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this long for the operation to be done (long poll).
    #[serde(default)]
    wait_seconds: u64,
}

/// What `who` may see of an operation: its folder's access decides (`need` there); the
/// catalog's operations (folder "") are the operator's. Anyone else is told it does not
/// exist, as for a resource.
pub(crate) async fn operation_view(
    st: &AppState,
    who: &Principal,
    stored: &StoredOperation,
    need: Need,
) -> ApiResult<View> {
    let id = &stored.operation.id;
    if stored.folder_id.is_empty() {
        return match who {
            Principal::Admin { .. } => Ok(View::default()),
            _ => Err(not_found("operation", id)),
        };
    }
    st.access(who, &stored.folder_id, need, || not_found("operation", id))
        .await
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<Json<Value>> {
    // Subscribed before the first read, so a change right after it still wakes us.
    let mut rx = st.settled.subscribe();
    // Who may read it is decided once: an operation never changes folders.
    let first = st
        .store
        .operation_in_folder(&id)
        .await?
        .ok_or_else(|| not_found("operation", &id))?;
    let view = operation_view(&st, &who, &first, Need::Read).await?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_seconds).min(st.config.max_wait);
    let mut op = first.operation;
    loop {
        if op.done || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view.show_operation(&op)));
        }
        // Operations finishing (here or on another server) wake us: then look again.
        let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        rx.borrow_and_update();
        op = st
            .store
            .operation(&id)
            .await?
            .ok_or_else(|| not_found("operation", &id))?;
    }
}

/// `POST /operations/{id}:cancel`. A mutation is committed before its operation is
/// returned, and edges apply it within a second, so there is nothing to stop: a done
/// operation is returned as it is, a running one is refused with the reason.
pub async fn cancel(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
) -> ApiResult<Json<Value>> {
    let Some((id, "cancel")) = id_method.split_once(':') else {
        return Err(cic_model::ApiError::new(
            cic_model::Code::NotFound,
            format!("operations have no method {id_method:?}; there is :cancel"),
        )
        .into());
    };
    let stored = st
        .store
        .operation_in_folder(id)
        .await?
        .ok_or_else(|| not_found("operation", id))?;
    let view = operation_view(&st, &who, &stored, Need::Write).await?;
    if !stored.operation.done {
        return Err(cic_model::ApiError::precondition(format!(
            "operation {id} cannot be cancelled: its change is committed and the edges are applying it; \
             make the opposite change to undo it"
        ))
        .into());
    }
    Ok(Json(view.show_operation(&stored.operation)))
}
