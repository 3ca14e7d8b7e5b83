//! REST handlers, one module per resource, paths as the modelled service's.

pub(crate) mod catalog;
mod connections;
mod credentials;
mod folders;
pub mod idempotency;
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
    Labels, ListResponse, Meta, Operation, PrivateConnection, RoutingInstance, Status,
    TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document, Pending};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::access::{Need, View, folder_not_found};
use crate::auth::Principal;
use crate::error::{ApiResult, AppError};
use crate::{AppState, new_id, new_operation, now};

pub fn router() -> Router<Arc<AppState>> {
    spec::router()
        .fallback(|| async { AppError(ApiError::new(Code::NotFound, "no such API path")) })
}

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

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// The folder to list (the operator may leave it out to list every folder).
    pub folder_id: Option<String>,
    /// Items per page: 1-1000, default 100.
    pub page_size: Option<usize>,
    /// `nextPageToken` of the previous page of the same listing (same folder and filter).
    /// Lists are in id order and a token names the last item seen, so items changed or
    /// added while paging neither move between pages nor appear twice.
    pub page_token: Option<String>,
    /// `name="x"`: only the item with that name.
    pub filter: Option<String>,
}

impl ListQuery {
    /// Applies `filter` (`name="x"`) and paging (in id order) to `items` of a kind.
    pub fn page<T: Document + Clone>(
        &self,
        st: &AppState,
        items: Vec<T>,
    ) -> ApiResult<ListResponse<T>> {
        let name = self.name_filter()?;
        let items: Vec<T> = match name {
            None => items,
            Some(name) => items.into_iter().filter(|i| i.name() == name).collect(),
        };
        let paging = Paging::new(
            st,
            T::KIND,
            &self.scope(None)?,
            self.page_size,
            self.page_token.as_deref(),
        )?;
        paging.of(items, |x| x.id().to_string(), false)
    }

    /// What a page token of this listing is bound to: the folder and the filter.
    fn scope(&self, folder: Option<&str>) -> ApiResult<String> {
        Ok(format!(
            "{}\0{}",
            folder.unwrap_or(""),
            self.name_filter()?.unwrap_or("")
        ))
    }

    /// The name of `filter=name="x"`, the one filter there is.
    fn name_filter(&self) -> ApiResult<Option<&str>> {
        let Some(f) = self
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        else {
            return Ok(None);
        };
        f.strip_prefix("name")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('='))
            .map(str::trim)
            .and_then(|r| r.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
            .map(Some)
            .ok_or_else(|| {
                ApiError::field("filter", format!("{f:?}: only name=\"…\" is supported")).into()
            })
    }

    /// The page of stored `T` in `folder` this query asks for, paged by the store in id
    /// order (a keyset: see [`Paging`]).
    pub async fn fetch<T: Document>(
        &self,
        st: &AppState,
        folder: Option<&str>,
    ) -> ApiResult<ListResponse<T>> {
        let name = self.name_filter()?;
        self.page_from_store(
            st,
            T::KIND,
            folder,
            |x: &T| x.id().to_string(),
            |after, n| async move {
                st.store
                    .list_after::<T>(folder, name, after.as_deref(), n)
                    .await
            },
        )
        .await
    }

    /// [`ListQuery::fetch`] of documents with their context (see
    /// [`cic_store::Store::list_after_in_context`]).
    pub async fn fetch_in_context<T: Document>(
        &self,
        st: &AppState,
        folder: Option<&str>,
        rel: &str,
        owner_kind: &str,
    ) -> ApiResult<ListResponse<cic_store::InContext<T>>> {
        let name = self.name_filter()?;
        self.page_from_store(
            st,
            T::KIND,
            folder,
            |x: &cic_store::InContext<T>| x.doc.id().to_string(),
            |after, n| async move {
                let after = after.as_deref();
                st.store
                    .list_after_in_context::<T>(folder, name, after, n, rel, owner_kind)
                    .await
            },
        )
        .await
    }

    /// One page of `kind` in `folder` read by `read(after, how many)`, which says whether
    /// more follow; the next page's token names the last item (its id by `id`).
    async fn page_from_store<I, Fut>(
        &self,
        st: &AppState,
        kind: &str,
        folder: Option<&str>,
        id: impl Fn(&I) -> String,
        read: impl FnOnce(Option<String>, u64) -> Fut,
    ) -> ApiResult<ListResponse<I>>
    where
        Fut: std::future::Future<Output = Result<(Vec<I>, bool), cic_store::Error>>,
    {
        let paging = Paging::new(
            st,
            kind,
            &self.scope(folder)?,
            self.page_size,
            self.page_token.as_deref(),
        )?;
        let (items, more) = read(paging.after.clone(), paging.size as u64).await?;
        let next_page_token = match items.last() {
            Some(last) if more => paging.token(&id(last)),
            _ => String::new(),
        };
        Ok(ListResponse {
            items,
            next_page_token,
        })
    }
}

/// Paging of a list: `pageSize` items (1-1000, default 100) after the last item of the
/// previous page. Lists are in a stable order (by id, or for operations newest first)
/// and the token names the last item seen — a keyset, not an offset — so items written
/// while a client pages neither move across pages nor appear twice. The token is opaque
/// (hex), bound to its listing (kind, folder, filter), and signed with a key the servers
/// of one database share: a token of another listing, or one no server made (a number, a
/// tampered token), is a 400.
pub struct Paging {
    kind: String,
    scope_hash: String,
    key: Vec<u8>,
    pub size: usize,
    /// The last key of the previous page.
    pub after: Option<String>,
}

type PageMac = hmac::Hmac<sha2::Sha256>;
/// Bytes of the MAC at the head of a token.
const MAC_LEN: usize = 16;

impl Paging {
    pub fn new(
        st: &AppState,
        kind: &str,
        scope: &str,
        page_size: Option<usize>,
        page_token: Option<&str>,
    ) -> ApiResult<Paging> {
        let size = page_size.unwrap_or(100);
        if size == 0 || size > 1000 {
            return Err(
                ApiError::field("pageSize", format!("{size} is out of range 1-1000")).into(),
            );
        }
        let mut p = Paging {
            kind: kind.to_string(),
            scope_hash: crate::auth::hash(scope)[..16].to_string(),
            key: st.page_key.clone(),
            size,
            after: None,
        };
        if let Some(t) = page_token.filter(|t| !t.is_empty()) {
            let bad = || {
                ApiError::field(
                    "pageToken",
                    "is not a token of this listing (tokens come from nextPageToken of the same list, folder and filter)",
                )
            };
            let bytes = (t.len() <= 2048)
                .then(|| hex::decode(t).ok())
                .flatten()
                .filter(|b| b.len() > MAC_LEN)
                .ok_or_else(bad)?;
            let (mac, payload) = bytes.split_at(MAC_LEN);
            if hmac::Mac::verify_truncated_left(p.mac(payload), mac).is_err() {
                return Err(bad().into());
            }
            let raw = String::from_utf8(payload.to_vec()).map_err(|_| bad())?;
            let mut parts = raw.splitn(4, '\n');
            let (v, k, h, last) = (parts.next(), parts.next(), parts.next(), parts.next());
            if v != Some("p1") || k != Some(kind) || h != Some(p.scope_hash.as_str()) {
                return Err(bad().into());
            }
            p.after = Some(last.ok_or_else(bad)?.to_string());
        }
        Ok(p)
    }

    fn mac(&self, payload: &[u8]) -> PageMac {
        use hmac::{KeyInit, Mac};
        let mut m = <PageMac as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| <PageMac as KeyInit>::new(&Default::default()));
        m.update(payload);
        m
    }

    /// The token of the page that follows the item whose key is `last`.
    pub fn token(&self, last: &str) -> String {
        use hmac::Mac;
        let payload = format!("p1\n{}\n{}\n{last}", self.kind, self.scope_hash);
        let mac = self.mac(payload.as_bytes()).finalize().into_bytes();
        let mut out = mac[..MAC_LEN].to_vec();
        out.extend_from_slice(payload.as_bytes());
        hex::encode(out)
    }

    /// This page of `items` in the order of `key` (descending when `desc`).
    pub fn of<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
        desc: bool,
    ) -> ApiResult<ListResponse<T>> {
        items.sort_by_cached_key(|x| key(x));
        if desc {
            items.reverse();
        }
        let after = |x: &T| match &self.after {
            None => true,
            Some(a) if desc => key(x).as_str() < a.as_str(),
            Some(a) => key(x).as_str() > a.as_str(),
        };
        let mut rest = items.into_iter().filter(|x| after(x));
        let page: Vec<T> = rest.by_ref().take(self.size).collect();
        let next_page_token = match page.last() {
            Some(last) if rest.next().is_some() => self.token(&key(last)),
            _ => String::new(),
        };
        Ok(ListResponse {
            items: page,
            next_page_token,
        })
    }
}

/// One page of `items` of a listing of `kind` within `scope`, in `key` order.
pub(crate) fn page_by<T>(
    st: &AppState,
    q: &PageQuery,
    kind: &str,
    scope: &str,
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    desc: bool,
) -> ApiResult<ListResponse<T>> {
    Paging::new(st, kind, scope, q.page_size, q.page_token.as_deref())?.of(items, key, desc)
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

/// The folder a list is of, and how its items look to the caller. Everyone but the
/// operator names a folder; the operator without one lists every folder.
pub(crate) async fn list_scope(
    st: &AppState,
    who: &Principal,
    q: &ListQuery,
) -> ApiResult<(Option<String>, View)> {
    who.require_user()?;
    match (q.folder_id.as_deref().filter(|f| !f.is_empty()), who) {
        (Some(f), _) => {
            let view = st
                .access(who, f, Need::Read, || folder_not_found(f))
                .await?;
            Ok((Some(f.to_string()), view))
        }
        (None, Principal::Admin { .. }) => Ok((None, View::default())),
        (None, _) => Err(ApiError::field("folderId", "is required").into()),
    }
}

/// `GET …` of a tenant resource in one folder.
pub(crate) async fn list_in_folder<T: Tenant + crate::access::Secrets>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<KeyedPage<crate::access::Shown<T>>>> {
    let (folder, view) = list_scope(&st, &who, &q).await?;
    let page = q.fetch::<T>(&st, folder.as_deref()).await?;
    Ok(Json(present_page(&view, page)))
}

/// The key of a kind's list in responses, as the modelled API names it.
pub(crate) fn list_key(kind: &str) -> &'static str {
    match kind {
        "trunkConnection" => "trunkConnections",
        "privateConnection" => "privateConnections",
        "routingInstance" => "routingInstances",
        "publicConnection" => "publicConnections",
        "cloudService" => "cloudServices",
        "partner" => "partners",
        "pointOfPresence" => "pointOfPresences",
        "edge" => "edges",
        "folder" => "folders",
        _ => "items",
    }
}

/// A page of `kind` as the caller may see it: `{"<kind>s": [...], "nextPageToken": …}`.
pub(crate) fn show_page<T: serde::Serialize>(
    view: &View,
    kind: &str,
    page: ListResponse<T>,
) -> Value {
    let items: Vec<Value> = page.items.iter().map(|x| view.show(x)).collect();
    keyed_page(
        list_key(kind),
        ListResponse {
            items,
            next_page_token: page.next_page_token,
        },
    )
}

/// A page of tenant resources as the caller may see them, serialized straight from the
/// typed resources (no JSON tree per item): `{"<kind>s": [...], "nextPageToken": "…"}`.
pub(crate) fn present_page<T: Tenant + crate::access::Secrets>(
    view: &View,
    page: ListResponse<T>,
) -> KeyedPage<crate::access::Shown<T>> {
    KeyedPage {
        key: list_key(T::KIND),
        items: page
            .items
            .into_iter()
            .map(|x| view.present(x, |x| x.meta()))
            .collect(),
        next_page_token: page.next_page_token,
    }
}

/// `{"<key>": [...], "nextPageToken": "…"}`, serialized without building a tree.
pub(crate) struct KeyedPage<T> {
    key: &'static str,
    items: Vec<T>,
    next_page_token: String,
}

impl<T: serde::Serialize> serde::Serialize for KeyedPage<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(self.key, &self.items)?;
        if !self.next_page_token.is_empty() {
            m.serialize_entry("nextPageToken", &self.next_page_token)?;
        }
        m.end()
    }
}

/// `{"<key>": [...], "nextPageToken": "…"}` (the token only when there is a next page).
pub(crate) fn keyed_page<T: serde::Serialize>(key: &str, page: ListResponse<T>) -> Value {
    let mut v = serde_json::json!({ key: page.items });
    if !page.next_page_token.is_empty() {
        v["nextPageToken"] = Value::String(page.next_page_token);
    }
    v
}

/// `GET …/{id}/operations` of a tenant resource: its operations, newest first.
pub(crate) async fn list_operations_of<T: Document>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    // A deleted resource has no folder to check any more: its operations are the
    // operator's to read.
    let view = match st.store.get::<T>(&id).await? {
        Some(x) => {
            st.access(&who, x.folder_id(), Need::Read, || {
                not_found(title(T::KIND), &id)
            })
            .await?
        }
        None => {
            who.require_admin()?;
            View::default()
        }
    };
    let ops = st.store.operations_of(&id).await?;
    // Newest first: the key sorts as the store orders them (created_at, then id).
    let page = page_by(
        &st,
        &q,
        "operation",
        &id,
        ops,
        |o| format!("{}\u{1}{}", o.created_at, o.id),
        true,
    )?;
    let items: Vec<Value> = page.items.iter().map(|o| view.show_operation(o)).collect();
    Ok(Json(keyed_page(
        "operations",
        ListResponse {
            items,
            next_page_token: page.next_page_token,
        },
    )))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page: 1-1000, default 100.
    pub page_size: Option<usize>,
    /// `nextPageToken` of the previous page of the same listing.
    pub page_token: Option<String>,
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
