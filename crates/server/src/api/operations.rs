use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::Operation;

use super::not_found;
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Operation>> {
    who.require_user()?;
    st.store
        .operation(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found("operation", &id))
}
