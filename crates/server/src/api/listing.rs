//! Listings: the query every list takes, pages and their tokens (sealed, so a token is
//! good only for the listing it was made for: its kind, folder and filter), the folder a
//! list is of, and how a page is shown.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::ApiError;
use cic_model::resource::ListResponse;
use cic_store::Document;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiQuery, Tenant, not_found, title};
use crate::AppState;
use crate::access::{Need, View, folder_not_found};
use crate::auth::Principal;
use crate::error::ApiResult;

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
