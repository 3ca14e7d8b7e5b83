//! REST handlers, one module per resource, paths as the modelled service's.

pub(crate) mod catalog;
mod connections;
mod credentials;
mod folders;
pub mod idempotency;
mod listing;
pub mod looking_glass;
mod metrics;
pub(crate) mod operations;
mod patch;
mod public;
mod router_config;
mod routing;
mod sessions;
mod spec;
mod static_routes;
mod sync;
pub(crate) mod trunks;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use cic_model::resource::{
    Labels, Meta, Operation, PrivateConnection, RoutingInstance, Status, TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document, Pending};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::access::{Need, View};
use crate::auth::Principal;
use crate::error::{ApiResult, AppError};
use crate::{AppState, new_id, new_operation, now};

pub fn router() -> Router<Arc<AppState>> {
    spec::router()
        .fallback(|| async { AppError(ApiError::new(Code::NotFound, "no such API path")) })
}

pub(crate) use listing::{
    KeyedPage, keyed_page, list_in_folder, list_key, list_operations_of, list_scope, page_by,
    present_page, show_page,
};
pub use listing::{ListQuery, PageQuery, Paging};
pub use spec::openapi;

/// `GET /openapi.json`: generated once per process from the endpoint table.
async fn openapi_json() -> Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(spec::openapi).clone())
}

/// Query string; unknown or malformed parameters are a 400 that names them.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                AppError(ApiError::new(
                    Code::InvalidArgument,
                    format!("query string: {}", e.body_text()),
                ))
            })
    }
}

/// What a mutation did, for its operation.
pub(crate) struct Mutation<'a> {
    pub description: &'a str,
    pub created_by: &'a str,
    pub kind: &'a str,
    pub resource_id: &'a str,
    /// The folder of the resource ("" for the catalog): who may read the operation.
    pub folder_id: &'a str,
    pub action: Action,
    /// The edges that must apply it before it is done.
    pub edges: Vec<String>,
}

/// The end of every mutation: the resource is already in `tx`; add the operation that
/// waits for `edges` to apply `revision`, record the request's idempotency key with it,
/// commit, wake edges, and settle at once when nothing needs to wait.
pub(crate) async fn finish_mutation(
    state: &AppState,
    mut tx: cic_store::Tx,
    revision: u64,
    m: Mutation<'_>,
) -> ApiResult<Operation> {
    let Mutation {
        description,
        created_by,
        kind,
        resource_id,
        folder_id,
        action,
        mut edges,
    } = m;
    edges.sort();
    edges.dedup();
    let op = new_operation(description, created_by, resource_id);
    let pending = Pending {
        revision,
        edges,
        kind: kind.to_string(),
        resource_id: resource_id.to_string(),
        action,
        folder_id: folder_id.to_string(),
    };
    tx.put_operation(&op, folder_id, Some(&pending)).await?;
    if let Some(scope) = idempotency::current_scope() {
        tx.finish_idempotency(&scope, &op.id).await?;
    }
    tx.commit().await?;
    tracing::debug!(revision, kind, resource = resource_id, "mutation committed");
    state.revision.send_replace(revision);
    if !pending.edges.is_empty() {
        // No edge can have applied a revision committed just now: the report of the
        // first that does settles it. Nothing to look at while the writers wait.
        return Ok(op);
    }
    state.settle_these(vec![(op.clone(), pending)]).await?;
    Ok(state.store.operation(&op.id).await?.unwrap_or(op))
}

/// The common end of a mutation that changes one document: `doc` written at a new
/// revision, its operation waiting for `edges`, shown as the caller may see it.
pub(crate) async fn write_one<T: Document>(
    st: &AppState,
    who: &Principal,
    view: &View,
    doc: &T,
    description: &str,
    action: Action,
    edges: Vec<String>,
) -> ApiResult<Json<Value>> {
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(doc, rev).await?;
    let op = finish_mutation(
        st,
        tx,
        rev,
        Mutation {
            description,
            created_by: &who.name(),
            kind: T::KIND,
            resource_id: doc.id(),
            folder_id: doc.folder_id(),
            action,
            edges,
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}

/// An id repeated in the body (as the modelled API allows) must be the one in the path.
pub(crate) fn same_id(field: &str, body: Option<&String>, path: &str) -> ApiResult<()> {
    match body {
        Some(b) if b != path => {
            Err(ApiError::field(field, "differs from the id in the path").into())
        }
        _ => Ok(()),
    }
}

/// The fields every tenant resource has, checked by REFERENCE.md's rules.
pub(crate) fn check_meta(
    folder_id: &str,
    name: &str,
    description: &str,
    labels: &Labels,
) -> ApiResult<()> {
    validate::id_ref("folderId", folder_id)?;
    validate::name("name", name)?;
    validate::description("description", description)?;
    validate::labels("labels", labels)?;
    Ok(())
}

/// Metadata of a resource being created: a fresh id with the kind's prefix, CREATING.
pub(crate) fn new_meta(
    prefix: &str,
    folder_id: String,
    name: String,
    description: String,
    labels: Labels,
) -> Meta {
    Meta {
        id: new_id(prefix),
        folder_id,
        name,
        description,
        labels,
        created_at: now(),
        status: Status::Creating,
    }
}

/// Commits a write that no edge has to apply (catalog changes) and wakes edge sync.
pub(crate) async fn commit(state: &AppState, tx: cic_store::Tx, revision: u64) -> ApiResult<()> {
    tx.commit().await?;
    state.revision.send_replace(revision);
    Ok(())
}

/// How people name a stored kind in messages.
pub(crate) fn title(kind: &str) -> &str {
    match kind {
        "pointOfPresence" => "point of presence",
        "edge" => "edge",
        "trunkConnection" => "trunk connection",
        "privateConnection" => "private connection",
        "routingInstance" => "routing instance",
        "publicConnection" => "public connection",
        "cloudService" => "cloud service",
        "partner" => "partner",
        other => other,
    }
}

/// The stored resource `id`, or a 404 that names its kind.
pub(crate) async fn fetch<T: Document>(st: &AppState, id: &str) -> ApiResult<T> {
    st.store
        .get::<T>(id)
        .await?
        .ok_or_else(|| not_found(title(T::KIND), id))
}

/// A tenant resource `id` that `who` may `need`: a caller without a role in its folder
/// gets the same 404 as for an id that does not exist.
pub(crate) async fn fetch_for<T: Document>(
    st: &AppState,
    who: &Principal,
    id: &str,
    need: Need,
) -> ApiResult<(T, View)> {
    let x = fetch::<T>(st, id).await?;
    let view = st
        .access(who, x.folder_id(), need, || not_found(title(T::KIND), id))
        .await?;
    Ok((x, view))
}

/// `GET …/{id}` of a tenant resource.
/// The query string of `uri` as `T`, refused as [`ApiQuery`] refuses it: for handlers
/// whose parameters depend on the `:method` in the path.
pub(crate) fn query_of<T: DeserializeOwned>(uri: &axum::http::Uri) -> ApiResult<T> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| {
            AppError(ApiError::new(
                Code::InvalidArgument,
                format!("query string: {}", e.body_text()),
            ))
        })
}

pub(crate) async fn get_one<T: Document>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (x, view) = fetch_for::<T>(&st, &who, &id, Need::Read).await?;
    Ok(Json(view.show(&x)))
}

/// Tenant resources: they have common metadata and can move between folders.
pub(crate) trait Tenant: Document + Clone {
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! tenant {
    ($($t:ty),*) => {$(
        impl Tenant for $t {
            fn meta(&self) -> &Meta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut Meta {
                &mut self.meta
            }
        }
    )*};
}
tenant!(
    TrunkConnection,
    PrivateConnection,
    RoutingInstance,
    cic_model::resource::PublicConnection
);

/// Move: the resource goes to another folder. Nothing changes on the edges, so the
/// operation is done at once. The caller needs editor in both folders.
pub(crate) async fn move_to<T: Tenant>(
    st: &AppState,
    who: &Principal,
    id: &str,
    destination: &str,
) -> ApiResult<Json<Value>> {
    validate::id_ref("destinationFolderId", destination)?;
    let _w = st.lock_writes().await?;
    let (mut x, _) = fetch_for::<T>(st, who, id, Need::Write).await?;
    let view = st.access_to_create(who, destination).await?;
    if x.meta().folder_id == destination {
        return Err(ApiError::field(
            "destinationFolderId",
            format!("{} {id} is already in folder {destination}", title(T::KIND)),
        )
        .into());
    }
    if x.meta().status == Status::Deleting {
        return Err(
            ApiError::precondition(format!("{} {id} is being deleted", title(T::KIND))).into(),
        );
    }
    check_unique_name::<T>(st, destination, &x.meta().name, Some(id)).await?;
    x.meta_mut().folder_id = destination.to_string();
    let description = format!("Move {}", title(T::KIND));
    write_one(st, who, &view, &x, &description, Action::Update, vec![]).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MoveRequest {
    destination_folder_id: String,
}

/// `POST …/{id}:method` of trunks and private connections.
pub(crate) async fn post_method<T: Tenant>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    let Some((id, method)) = id_method.split_once(':') else {
        return Err(ApiError::new(
            Code::NotFound,
            format!("POST on a {} needs a method, such as :move", title(T::KIND)),
        )
        .into());
    };
    match method {
        "move" => {
            let r: MoveRequest = crate::error::decode_json(&body)?;
            move_to::<T>(&st, &who, id, &r.destination_folder_id).await
        }
        other => Err(ApiError::new(
            Code::NotFound,
            format!("{}s have no method {other:?}", title(T::KIND)),
        )
        .into()),
    }
}

/// `POST …/{kind}s:batchGet {"<kind>Ids": [...]}`: up to 1000 resources in the order
/// asked; if any is missing (or not the caller's to see) the whole request is a 404
/// naming it, as a Get of it would be.
pub(crate) async fn batch_get<T: Tenant>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let field = format!("{}Ids", T::KIND);
    let req: serde_json::Map<String, Value> = crate::error::decode_json(&body)?;
    if let Some(k) = req.keys().find(|k| **k != field) {
        return Err(ApiError::field(k, format!("unknown field; expected {field}")).into());
    }
    let ids: Vec<String> = serde_json::from_value(req.get(&field).cloned().unwrap_or_default())
        .map_err(|_| ApiError::field(&field, "must be a list of ids"))?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(ApiError::field(&field, "must hold 1-1000 ids").into());
    }
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        let (x, view) = fetch_for::<T>(&st, &who, id, Need::Read).await?;
        items.push(view.show(&x));
    }
    Ok(Json(serde_json::json!({ list_key(T::KIND): items })))
}

pub(crate) fn not_found(kind: &str, id: &str) -> AppError {
    AppError(ApiError::not_found(kind, id))
}

/// Name unique among a folder's resources of one kind.
/// Name unique among a folder's resources of one kind (`this` does not clash with
/// itself). Looked up by index, not by reading the folder.
pub(crate) async fn check_unique_name<T: Document>(
    st: &AppState,
    folder_id: &str,
    name: &str,
    this: Option<&str>,
) -> ApiResult<()> {
    if name.is_empty() {
        return Ok(());
    }
    match st.store.id_by_name::<T>(folder_id, name).await? {
        Some(id) if Some(id.as_str()) != this => Err(ApiError::conflict_at(
            "name",
            format!(
                "a {} named {name:?} already exists in this folder",
                title(T::KIND)
            ),
        )
        .into()),
        _ => Ok(()),
    }
}
