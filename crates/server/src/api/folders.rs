//! Tenancy: folders (the operator makes them), role bindings on them, and API keys.
//!
//! Paths as the modelled cloud's resource manager and IAM:
//! `/resourcemanager/v1/folders[/{id}]`, `…/{id}:listAccessBindings`,
//! `…/{id}:updateAccessBindings`, `/iam/v1/apiKeys[/{id}]`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::iam::{
    AccessBinding, ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreateFolderRequest,
    DeltaAction, Folder, FolderAccess, FolderStatus, UpdateAccessBindingsRequest,
};
use cic_model::resource::{Operation, PrivateConnection, RoutingInstance, TrunkConnection};
use cic_model::{ApiError, Code, validate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiQuery, ListQuery, PageQuery, check_meta, keyed_page, not_found, page_by};
use crate::access::{Need, folder_not_found};
use crate::auth::{Principal, hash, new_token};
use crate::error::{ApiJson, ApiResult, AppError};
use crate::{AppState, new_id, new_operation, now};

/// A subject id: 1-100 characters without spaces, not an edge's.
fn check_subject(field: &str, s: &str) -> ApiResult<()> {
    if s.is_empty() || s.len() > 100 || s.starts_with("edge:") || s.contains(char::is_whitespace) {
        return Err(ApiError::field(
            field,
            format!("{s:?} is not a subject id (1-100 characters, no spaces)"),
        )
        .into());
    }
    Ok(())
}

/// A mutation that is complete when committed: its operation is stored done.
async fn done_operation(
    tx: &mut cic_store::Tx,
    description: &str,
    who: &Principal,
    resource_id: &str,
    folder_id: &str,
    response: Value,
) -> ApiResult<Operation> {
    let mut op = new_operation(description, &who.name(), resource_id);
    op.done = true;
    op.response = Some(response);
    tx.put_operation(&op, folder_id, None).await?;
    Ok(op)
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateFolderRequest>,
) -> ApiResult<Json<Operation>> {
    who.require_admin()?;
    let id = match req.id {
        Some(id) => {
            validate::id_ref("id", &id)?;
            if id.contains(':') {
                return Err(ApiError::field("id", "must not contain ':'").into());
            }
            id
        }
        None => new_id("b1g"),
    };
    check_meta(&id, &req.name, &req.description, &req.labels)?;
    let _w = st.lock_writes().await?;
    if st.store.get::<Folder>(&id).await?.is_some() {
        return Err(ApiError::conflict(format!("folder {id:?} already exists")).into());
    }
    if !req.name.is_empty()
        && st
            .store
            .list::<Folder>(None)
            .await?
            .iter()
            .any(|f| f.name == req.name)
    {
        return Err(
            ApiError::conflict(format!("a folder named {:?} already exists", req.name)).into(),
        );
    }
    let folder = Folder {
        id: id.clone(),
        name: req.name,
        description: req.description,
        labels: req.labels,
        created_at: now(),
        status: FolderStatus::Active,
    };
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&folder, rev).await?;
    let op = done_operation(
        &mut tx,
        "Create folder",
        &who,
        &id,
        &id,
        serde_json::to_value(&folder).unwrap_or_default(),
    )
    .await?;
    super::commit(&st, tx, rev).await?;
    Ok(Json(op))
}

/// The operator sees every folder; a subject the folders it holds a role in.
pub async fn list(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let all = st.store.list::<Folder>(None).await?;
    let mine = match &who {
        Principal::Admin { .. } => all,
        _ => {
            let mut v = Vec::new();
            for f in all {
                if !st.roles(&who, &f.id).await?.is_empty() {
                    v.push(f);
                }
            }
            v
        }
    };
    let p = q.page(&st, mine)?;
    Ok(Json(keyed_page("folders", p)))
}

/// `GET /resourcemanager/v1/folders/{id}` and `{id}:listAccessBindings`.
pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (id, method) = split_method(&id);
    let folder = st
        .store
        .get::<Folder>(id)
        .await?
        .ok_or_else(|| folder_not_found(id))?;
    match method {
        None => {
            st.access(&who, id, Need::Read, || folder_not_found(id))
                .await?;
            Ok(Json(serde_json::to_value(&folder).unwrap_or_default()))
        }
        Some("listAccessBindings") => {
            st.access(&who, id, Need::Manage, || folder_not_found(id))
                .await?;
            let access = st.store.get::<FolderAccess>(id).await?.unwrap_or_default();
            let p = page_by(
                &st,
                &q,
                "accessBinding",
                id,
                access.bindings,
                |b| format!("{}\u{1}{}", b.role_id.as_str(), b.subject.id),
                false,
            )?;
            Ok(Json(keyed_page("accessBindings", p)))
        }
        Some(m) => Err(unknown_method(m)),
    }
}

fn split_method(id: &str) -> (&str, Option<&str>) {
    match id.split_once(':') {
        Some((id, m)) => (id, Some(m)),
        None => (id, None),
    }
}

fn unknown_method(m: &str) -> AppError {
    AppError(ApiError::new(
        Code::NotFound,
        format!("folders have no method {m:?}"),
    ))
}

/// `POST /resourcemanager/v1/folders/{id}:updateAccessBindings`.
pub async fn post_method(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAccessBindingsRequest>,
) -> ApiResult<Json<Operation>> {
    let (id, method) = split_method(&id);
    match method {
        Some("updateAccessBindings") => {}
        Some(m) => return Err(unknown_method(m)),
        None => {
            return Err(AppError(ApiError::new(
                Code::NotFound,
                "POST on a folder needs a method, such as :updateAccessBindings",
            )));
        }
    }
    st.access(&who, id, Need::Manage, || folder_not_found(id))
        .await?;
    if req.access_binding_deltas.is_empty() {
        return Err(ApiError::field("accessBindingDeltas", "must not be empty").into());
    }
    for (i, d) in req.access_binding_deltas.iter().enumerate() {
        let s = &d.access_binding.subject.id;
        check_subject(
            &format!("accessBindingDeltas[{i}].accessBinding.subject.id"),
            s,
        )?;
    }
    let _w = st.lock_writes().await?;
    if st.store.get::<Folder>(id).await?.is_none() {
        return Err(folder_not_found(id));
    }
    let mut access = st
        .store
        .get::<FolderAccess>(id)
        .await?
        .unwrap_or_else(|| FolderAccess {
            folder_id: id.to_string(),
            bindings: vec![],
        });
    for d in &req.access_binding_deltas {
        let b: &AccessBinding = &d.access_binding;
        match d.action {
            DeltaAction::Add => {
                if !access.bindings.contains(b) {
                    access.bindings.push(b.clone());
                }
            }
            DeltaAction::Remove => access.bindings.retain(|x| x != b),
        }
    }
    access.bindings.sort();
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&access, rev).await?;
    let op = done_operation(
        &mut tx,
        "Update access bindings",
        &who,
        id,
        id,
        json!({ "accessBindings": access.bindings }),
    )
    .await?;
    super::commit(&st, tx, rev).await?;
    Ok(Json(op))
}

/// Refused while the folder holds resources: they would be orphaned.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Operation>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    if st.store.get::<Folder>(&id).await?.is_none() {
        return Err(folder_not_found(&id));
    }
    let f = Some(id.as_str());
    let held = st.store.list::<TrunkConnection>(f).await?.len()
        + st.store.list::<PrivateConnection>(f).await?.len()
        + st.store.list::<RoutingInstance>(f).await?.len()
        + st.store
            .list::<cic_model::resource::PublicConnection>(f)
            .await?
            .len();
    if held > 0 {
        return Err(ApiError::precondition(format!(
            "folder {id:?} still holds {held} resources; delete them first"
        ))
        .into());
    }
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.delete::<Folder>(&id).await?;
    tx.delete::<FolderAccess>(&id).await?;
    let op = done_operation(&mut tx, "Delete folder", &who, &id, "", json!({})).await?;
    super::commit(&st, tx, rev).await?;
    Ok(Json(op))
}

// ---------------------------------------------------------------------------------------
// API keys

pub async fn create_key(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<Json<CreateApiKeyResponse>> {
    who.require_admin()?;
    let s = &req.subject_id;
    check_subject("subjectId", s)?;
    validate::description("description", &req.description)?;
    let secret = new_token("cic-key-");
    let key = ApiKey {
        id: new_id("aje"),
        subject_id: req.subject_id,
        description: req.description,
        created_at: now(),
    };
    let mut tx = st.store.begin().await?;
    tx.put_api_key(&hash(&secret), &key).await?;
    tx.commit().await?;
    Ok(Json(CreateApiKeyResponse {
        api_key: key,
        secret,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyQuery {
    subject_id: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
}

pub async fn list_keys(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let keys = st.store.api_keys(q.subject_id.as_deref()).await?;
    let paging = PageQuery {
        page_size: q.page_size,
        page_token: q.page_token.clone(),
    };
    let scope = q.subject_id.clone().unwrap_or_default();
    let p = page_by(
        &st,
        &paging,
        "apiKey",
        &scope,
        keys,
        |k| k.id.clone(),
        false,
    )?;
    Ok(Json(keyed_page("apiKeys", p)))
}

/// Revokes a key at once: the next request with it is 401.
pub async fn delete_key(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let mut tx = st.store.begin().await?;
    if !tx.delete_api_key(&id).await? {
        return Err(not_found("API key", &id));
    }
    tx.commit().await?;
    Ok(Json(json!({})))
}
