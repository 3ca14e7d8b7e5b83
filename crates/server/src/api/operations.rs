use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::Operation;
use serde::Deserialize;

use super::{ApiQuery, not_found};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this long for the operation to be done (long poll).
    #[serde(default)]
    wait_seconds: u64,
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<Json<Operation>> {
    who.require_user()?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_seconds).min(st.config.max_wait);
    let mut rx = st.revision.subscribe();
    loop {
        // Every finished operation bumps the revision: wake on that, then look again.
        rx.borrow_and_update();
        let op = st
            .store
            .operation(&id)
            .await?
            .ok_or_else(|| not_found("operation", &id))?;
        if op.done || tokio::time::Instant::now() >= deadline {
            return Ok(Json(op));
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            continue;
        }
    }
}
