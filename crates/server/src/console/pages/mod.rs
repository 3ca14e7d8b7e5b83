//! The console's pages: each reads what it shows from the API as the signed-in caller and
//! renders a template; each form posts here, is checked for its CSRF token, and becomes
//! one API call whose errors are shown beside the fields.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use super::forms::{self, Field};
use super::{Console, Ctx, Failure, cookie, same_site, session, topology};
use crate::access::{Need, folder_not_found};
use crate::auth::Principal;
use crate::clock::unix_now;
use crate::listen::Peer;

type C = State<Arc<Console>>;
type FormData = Form<Vec<(String, String)>>;

/// The most items a page lists (then it says the list goes on).
const LIST_CAP: usize = 5_000;

/// A list from the API: the items under `key`, page after page, at most [`LIST_CAP`].
async fn list(c: &Console, ctx: &Ctx, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{path}{sep}pageSize=1000");
        if let Some(t) = &token {
            url.push_str("&pageToken=");
            url.push_str(&super::percent(t));
        }
        let v = c.api(ctx, Method::GET, &url, None).await?;
        out.extend(
            v.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        token = v
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() || out.len() >= LIST_CAP {
            return Ok(out);
        }
    }
}

/// Whether the caller may change things in `folder` (edit buttons are shown only then; the
/// API refuses the rest anyway).
async fn can_write(c: &Console, ctx: &Ctx, folder: &str) -> bool {
    plain_id(folder)
        && c.st
            .access(&ctx.who, folder, Need::Write, || folder_not_found(folder))
            .await
            .is_ok()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// An id as the API makes them (at most 50 of `[-_a-zA-Z0-9]`): what the console puts
/// into an API path, from a page's path or from an API's answer; anything else is a page
/// that is not there.
fn plain_id(id: &str) -> bool {
    cic_model::validate::id_ref("id", id).is_ok()
}

macro_rules! try_api {
    ($c:expr, $ctx:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(f) => return $c.failure(&$ctx, f),
        }
    };
}

macro_rules! check_id {
    ($c:expr, $ctx:expr, $id:expr) => {
        if !plain_id(&$id) {
            return $c.not_found(&$ctx);
        }
    };
}

/// The page an `Err` is (boxed: a response is large), returned; the value of an `Ok`.
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// The API collection of `kind` for the resource `id`, both checked; the not-found page
/// for either that is not one.
fn base_of(c: &Console, ctx: &Ctx, kind: &str, id: &str) -> Result<&'static str, Box<Response>> {
    match api_base(kind) {
        Some(base) if plain_id(id) => Ok(base),
        _ => Err(Box::new(c.not_found(ctx))),
    }
}

/// The resource `id` of `kind` as the API shows it to the caller, with its collection.
async fn fetch_of(
    c: &Console,
    ctx: &Ctx,
    kind: &str,
    id: &str,
) -> Result<(&'static str, Value), Box<Response>> {
    let base = base_of(c, ctx, kind, id)?;
    match c.api(ctx, Method::GET, &format!("{base}/{id}"), None).await {
        Ok(v) => Ok((base, v)),
        Err(f) => Err(Box::new(c.failure(ctx, f))),
    }
}

/// The page of operation `op` (an API answer), where a change is followed.
fn to_operation(op: &Value) -> Response {
    Redirect::to(&format!("/console/operations/{}", s(op, "id"))).into_response()
}

/// The API collection of a kind the console shows (`trunkConnections`, …).
pub fn api_base(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "privateConnections" => "/cic/v1/privateConnections",
        "publicConnections" => "/cic/v1/publicConnections",
        "trunkConnections" => "/cic/v1/trunkConnections",
        "routingInstances" => "/cloudrouter/v1/routingInstances",
        _ => return None,
    })
}

mod change;
mod signin;
mod view;

pub use change::*;
pub use signin::*;
pub use view::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(plain_id("cf3abc-1"));
        assert!(!plain_id(""));
        assert!(!plain_id("a/b"));
        assert!(!plain_id("a?b"));
    }
}
