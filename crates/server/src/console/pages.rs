//! The console's pages: each reads what it shows from the API as the signed-in caller and
//! renders a template; each form posts here, is checked for its CSRF token, and becomes
//! one API call whose errors are shown beside the fields.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::forms::{self, Field};
use super::{Console, Ctx, Failure, cookie, same_site, session, topology};
use crate::access::{Need, folder_not_found};
use crate::auth::{Principal, unix_now};
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

// ---------------------------------------------------------------------------------------
// Signing in and out

#[derive(Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

/// Only a page of the console is a place to go after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/console/".to_string(),
    }
}

pub async fn signin_form(State(c): C, Query(q): Query<Next>) -> Response {
    c.render(
        None,
        "signin.html",
        json!({"title": "Sign in", "next": safe_next(q.next.as_deref())}),
    )
}

/// Sign-in attempts one address may make: a second each, ten at once.
const SIGNIN_LIMIT: crate::limits::Limits = crate::limits::Limits {
    rate: 1.0,
    burst: 10.0,
    long_polls: 0,
};

pub async fn signin(
    State(c): C,
    headers: HeaderMap,
    peer: Option<axum::Extension<Peer>>,
    Form(form): FormData,
) -> Response {
    let addr = peer
        .as_ref()
        .and_then(|p| p.addr)
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let next = safe_next(Some(&field("next")));
    let again = |status: StatusCode, message: &str| {
        c.render_status(
            None,
            status,
            "signin.html",
            json!({"title": "Sign in", "next": next, "error": message}),
        )
    };
    // Login CSRF: a form from another site must not sign the browser in as someone else.
    if !same_site(&headers) {
        return again(
            StatusCode::FORBIDDEN,
            "This sign-in did not come from this console.",
        );
    }
    if c.st
        .limiter
        .take(
            &format!("console-signin:{addr}"),
            &SIGNIN_LIMIT,
            std::time::Instant::now(),
        )
        .is_err()
    {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from this address; wait a few seconds.",
        );
    }
    let key = field("key");
    if key.is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter an API key (or the operator's token).",
        );
    }
    let who = match crate::auth::principal_of_token(&c.st, &key, None).await {
        Ok(Principal::Edge { .. }) => {
            return again(
                StatusCode::FORBIDDEN,
                "That is an edge's token; edges do not use the console.",
            );
        }
        Ok(w) => w,
        Err(_) => {
            tracing::info!("console: a sign-in from {addr} with a key that is not accepted");
            return again(
                StatusCode::UNAUTHORIZED,
                "This key is not accepted (unknown, expired or revoked).",
            );
        }
    };
    let secret = session::new_secret();
    let now = unix_now();
    let stored = cic_store::ConsoleSession {
        sealed_key: session::seal(&secret, &key),
        subject: who.name(),
        created_at: now,
        expires_at: now + session::LIFETIME_SECS,
    };
    // A session this browser had is ended: one session a browser.
    let secure = c.secure_cookie(peer.as_ref().is_some_and(|p| p.tls));
    let previous = super::cookie_secret(&headers, secure).map(|s| session::id_hash(&s));
    let written = async {
        let mut tx = c.st.store.begin().await?;
        if let Some(p) = &previous {
            tx.delete_console_session(p).await?;
        }
        tx.put_console_session(&session::id_hash(&secret), &stored, now)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        tracing::error!("console: a session could not be stored: {e}");
        return c.error_page(
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "The session could not be stored; try again in a moment.",
        );
    }
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::SET_COOKIE,
        cookie(&secret, session::LIFETIME_SECS, secure),
    );
    h.append(header::SET_COOKIE, super::expire_other(secure));
    resp
}

pub async fn signout(
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    peer: Option<axum::Extension<Peer>>,
    Form(form): FormData,
) -> Response {
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let ended = async {
        let mut tx = c.st.store.begin().await?;
        tx.delete_console_session(&ctx.id_hash).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = ended {
        tracing::error!("console: a session could not be ended: {e}");
        return c.error_page(
            Some(&ctx),
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-out failed",
            "The session could not be ended; try again in a moment.",
        );
    }
    let secure = c.secure_cookie(peer.is_some_and(|p| p.tls));
    let mut resp = Redirect::to("/console/signin").into_response();
    let h = resp.headers_mut();
    h.insert(header::SET_COOKIE, cookie("", 0, secure));
    h.append(header::SET_COOKIE, super::expire_other(secure));
    resp
}

// ---------------------------------------------------------------------------------------
// Reading

pub async fn home(State(c): C, ctx: Ctx) -> Response {
    let folders = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/resourcemanager/v1/folders", "folders").await
    );
    c.render(
        Some(&ctx),
        "home.html",
        json!({"title": "Folders", "folders": folders}),
    )
}

/// A folder's connections as the tables show them: the API's item plus the names the
/// table needs (its trunk's PoP, its routing instance).
fn connection_rows(pcs: &[Value], trunks: &[Value], instances: &[Value]) -> Vec<Value> {
    pcs.iter()
        .map(|pc| {
            let mut row = pc.clone();
            let id = s(pc, "id");
            if let Some(t) = trunks
                .iter()
                .find(|t| s(t, "id") == s(pc, "trunkConnectionId"))
            {
                row["pop"] = json!(s(t, "pointOfPresenceId"));
            }
            if let Some(ri) = instances.iter().find(|ri| {
                ri["cicPrivateConnectionInfo"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| s(r, "cicPrivateConnectionId") == id))
            }) {
                row["instance"] = json!({"id": s(ri, "id"), "name": s(ri, "name")});
            }
            row
        })
        .collect()
}

pub async fn folder(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    check_id!(c, ctx, id);
    let folder = try_api!(
        c,
        ctx,
        c.api(
            &ctx,
            Method::GET,
            &format!("/resourcemanager/v1/folders/{id}"),
            None
        )
        .await
    );
    let q = format!("?folderId={id}");
    let trunks = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/trunkConnections{q}"),
            "trunkConnections"
        )
        .await
    );
    let pcs = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/privateConnections{q}"),
            "privateConnections"
        )
        .await
    );
    let public = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/publicConnections{q}"),
            "publicConnections"
        )
        .await
    );
    let instances = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cloudrouter/v1/routingInstances{q}"),
            "routingInstances"
        )
        .await
    );
    let drawing = topology::draw(&trunks, &pcs, &instances);
    let rows = connection_rows(&pcs, &trunks, &instances);
    c.render(
        Some(&ctx),
        "folder.html",
        json!({
            "title": format!("Folder {}", s(&folder, "name")),
            "folder": folder,
            "trunks": trunks,
            "connections": rows,
            "public": public,
            "instances": instances,
            "topology": drawing,
            "can_write": can_write(&c, &ctx, &id).await,
        }),
    )
}

#[derive(Deserialize, Default)]
pub struct WindowQuery {
    window: Option<String>,
}

/// Unix ms of an RFC 3339 time.
fn ms_of(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The connection's graphs over `window` (hour or day): its history from the API, with
/// its failover tests among the events.
async fn graphs(
    c: &Console,
    ctx: &Ctx,
    base: &str,
    pc: &Value,
    window: &str,
) -> Result<Value, Failure> {
    use super::chart::{self, Series, Span};
    let h = c
        .api(
            ctx,
            Method::GET,
            &format!("{base}/{}:history?window={window}", s(pc, "id")),
            None,
        )
        .await?;
    let samples = h["samples"].as_array().cloned().unwrap_or_default();
    let mut events = h["events"].as_array().cloned().unwrap_or_default();
    for t in pc["bgpFailoverTests"].as_array().into_iter().flatten() {
        if let Some(at) = ms_of(s(t, "startedAt")) {
            events.push(json!({"at": at, "kind": "FAILOVER_TEST",
                               "text": format!("failover test started by {}", s(t, "startedBy"))}));
        }
        if let Some(at) = t.get("stoppedAt").and_then(Value::as_str).and_then(ms_of) {
            events
                .push(json!({"at": at, "kind": "FAILOVER_TEST", "text": "failover test stopped"}));
        }
    }
    events.sort_by_key(|e| e["at"].as_i64().unwrap_or_default());
    // Now, to the millisecond (events are stamped so; a span ending at the second would
    // leave out what happened in this one).
    let to = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let span = Span {
        from: to
            - if window == "day" {
                86_400_000
            } else {
                3_600_000
            },
        to,
    };
    let mut charts = vec![
        chart::states(&samples, span),
        chart::lines(
            "prefixes",
            "Prefixes",
            &samples,
            span,
            &[
                Series {
                    label: "received",
                    class: "a",
                    field: "prefixesReceived",
                },
                Series {
                    label: "advertised",
                    class: "b",
                    field: "prefixesAdvertised",
                },
            ],
        ),
        chart::lines(
            "bits",
            "Traffic, bits per second",
            &samples,
            span,
            &[
                Series {
                    label: "to the cloud",
                    class: "a",
                    field: "bitsToCloud",
                },
                Series {
                    label: "from the cloud",
                    class: "b",
                    field: "bitsFromCloud",
                },
            ],
        ),
        chart::lines(
            "packets",
            "Packets per second",
            &samples,
            span,
            &[
                Series {
                    label: "to the cloud",
                    class: "a",
                    field: "packetsToCloud",
                },
                Series {
                    label: "from the cloud",
                    class: "b",
                    field: "packetsFromCloud",
                },
            ],
        ),
    ];
    for ch in &mut charts {
        chart::mark(ch, &events, span);
    }
    let listed: Vec<Value> = events
        .iter()
        .rev()
        .filter(|e| e["at"].as_i64().is_some_and(|t| t >= span.from))
        .take(20)
        .map(|e| {
            let mut e = e.clone();
            e["time"] = json!(crate::auth::rfc3339(
                e["at"].as_i64().unwrap_or_default() / 1000
            ));
            e
        })
        .collect();
    Ok(json!({"window": window, "charts": charts, "events": listed}))
}

/// A private or public connection's page: its sessions, graphs, failover tests and
/// operations, and an editor's actions.
pub async fn connection(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(w): Query<WindowQuery>,
) -> Response {
    let (base, pc) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let folder = s(&pc, "folderId").to_string();
    let trunk_id = s(&pc, "trunkConnectionId");
    let trunk = if plain_id(trunk_id) {
        try_api!(
            c,
            ctx,
            c.get_opt(&ctx, &format!("/cic/v1/trunkConnections/{trunk_id}"))
                .await
        )
    } else {
        None
    };
    let instance = match pc
        .get("routingInstanceId")
        .and_then(Value::as_str)
        .filter(|ri| plain_id(ri))
    {
        Some(ri) => try_api!(
            c,
            ctx,
            c.get_opt(&ctx, &format!("/cloudrouter/v1/routingInstances/{ri}"))
                .await
        ),
        None => None,
    };
    let ops = try_api!(
        c,
        ctx,
        list(&c, &ctx, &format!("{base}/{id}/operations"), "operations").await
    );
    let testing = pc["bgpFailoverTests"]
        .as_array()
        .is_some_and(|a| a.iter().any(|t| s(t, "status") == "IN_PROGRESS"));
    let window = if w.window.as_deref() == Some("day") {
        "day"
    } else {
        "hour"
    };
    // A page without its graphs rather than no page, if the history cannot be had.
    let graphs = graphs(&c, &ctx, base, &pc, window).await.unwrap_or_else(
        |f| json!({"window": window, "charts": [], "events": [], "error": f.error.message}),
    );
    let noun = if kind == "publicConnections" {
        "Public connection"
    } else {
        "Private connection"
    };
    c.render(
        Some(&ctx),
        "connection.html",
        json!({
            "title": format!("{noun} {}", if s(&pc, "name").is_empty() { &id } else { s(&pc, "name") }),
            "kind": kind,
            "pc": pc,
            "trunk": trunk,
            "instance": instance,
            "operations": ops.iter().take(10).collect::<Vec<_>>(),
            "testing": testing,
            "graphs": graphs,
            "can_write": can_write(&c, &ctx, &folder).await,
        }),
    )
}

#[derive(Deserialize, Default)]
pub struct RoutesQuery {
    direction: Option<String>,
    family: Option<String>,
}

/// The looking glass of a private or public connection.
pub async fn routes(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<RoutesQuery>,
) -> Response {
    let (base, pc) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let direction = q
        .direction
        .as_deref()
        .filter(|d| ["received", "accepted", "advertised"].contains(d))
        .unwrap_or("received");
    let family = match q.family.as_deref() {
        Some("ipv6") => "ipv6",
        Some("ipv4") => "ipv4",
        // The family the connection has (an IPv6-only one has no IPv4 session).
        _ if pc.get("ipv4Peering").is_none() && pc.get("ipv6Peering").is_some() => "ipv6",
        _ => "ipv4",
    };
    let answer = c
        .api(
            &ctx,
            Method::GET,
            &format!("{base}/{id}:routes?direction={direction}&family={family}"),
            None,
        )
        .await;
    let (routes, error) = match answer {
        Ok(v) => (v, None),
        Err(f) if f.status == StatusCode::NOT_FOUND => return c.not_found(&ctx),
        Err(f) => (Value::Null, Some(f.error.message)),
    };
    c.render(
        Some(&ctx),
        "routes.html",
        json!({
            "title": format!("Routes of {id}"),
            "kind": kind,
            "pc": pc,
            "direction": direction,
            "family": family,
            "answer": routes,
            "error": error,
        }),
    )
}

pub async fn trunk(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    resource(c, ctx, id, "trunkConnections", "Trunk").await
}

pub async fn routing_instance(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    resource(c, ctx, id, "routingInstances", "Routing instance").await
}

/// A resource shown as its fields (trunks, public connections, routing instances), with
/// its operations, and for an editor its delete button (and a routing instance's form to
/// attach a connection).
async fn resource(c: Arc<Console>, ctx: Ctx, id: String, kind: &str, noun: &str) -> Response {
    let (base, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let ops = c
        .api(&ctx, Method::GET, &format!("{base}/{id}/operations"), None)
        .await
        .ok()
        .and_then(|v| v.get("operations").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let mut fields: Vec<(String, String)> = Vec::new();
    flatten("", &v, &mut fields);
    let folder = s(&v, "folderId").to_string();
    let writable = !folder.is_empty() && can_write(&c, &ctx, &folder).await;
    // A routing instance: the folder's connections it does not have yet.
    let mut attachable = Vec::new();
    if kind == "routingInstances" && writable {
        let have: Vec<&str> = v["cicPrivateConnectionInfo"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| s(r, "cicPrivateConnectionId"))
            .collect();
        let pcs = list(
            &c,
            &ctx,
            &format!("/cic/v1/privateConnections?folderId={folder}"),
            "privateConnections",
        )
        .await
        .unwrap_or_default();
        attachable = pcs
            .into_iter()
            .filter(|pc| !have.contains(&s(pc, "id")) && pc.get("routingInstanceId").is_none())
            .map(|pc| json!({"id": s(&pc, "id"), "name": s(&pc, "name")}))
            .collect();
    }
    c.render(
        Some(&ctx),
        "resource.html",
        json!({
            "title": format!("{noun} {}", if s(&v, "name").is_empty() { &id } else { s(&v, "name") }),
            "noun": noun,
            "kind": kind,
            "item": v,
            "fields": fields,
            "operations": ops.iter().take(10).collect::<Vec<_>>(),
            "can_write": writable,
            "attachable": attachable,
        }),
    )
}

/// `{"a": {"b": 1}}` → `a.b = 1`, for a resource's table of fields.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            out.push((
                prefix.to_string(),
                a.iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::String(x) => out.push((prefix.to_string(), x.clone())),
        Value::Null => {}
        x => out.push((prefix.to_string(), x.to_string())),
    }
}

pub async fn operation(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    check_id!(c, ctx, id);
    let op = try_api!(
        c,
        ctx,
        c.api(&ctx, Method::GET, &format!("/operations/{id}"), None)
            .await
    );
    // Where the operation's resource is shown (ids name their kind by prefix).
    let rid = s(&op["metadata"], "resourceId");
    let resource = resource_page(rid);
    c.render(
        Some(&ctx),
        "operation.html",
        json!({"title": format!("Operation {id}"), "op": op, "resource": resource}),
    )
}

/// The console page of a resource, by its id's kind prefix.
fn resource_page(id: &str) -> Option<String> {
    let kind = match id.get(..2)? {
        "pc" => "privateConnections",
        "pu" => "publicConnections",
        "ri" => "routingInstances",
        "tc" => "trunkConnections",
        _ => return None,
    };
    plain_id(id).then(|| format!("/console/{kind}/{id}"))
}

pub async fn operator(State(c): C, ctx: Ctx) -> Response {
    if !ctx.is_operator() {
        return c.not_found(&ctx);
    }
    let pops = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/cic/v1/pointOfPresences", "pointOfPresences").await
    );
    let edges = try_api!(c, ctx, list(&c, &ctx, "/cic/v1/edges", "edges").await);
    let partners = try_api!(c, ctx, list(&c, &ctx, "/cic/v1/partners", "partners").await);
    let services = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/cic/v1/cloudServices", "cloudServices").await
    );
    let folders = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/resourcemanager/v1/folders", "folders").await
    );
    // Each edge's report: how old, and how many of its sessions are up.
    let live = c.st.live().await.unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|mut e| {
            if let Some(l) = live.get(s(&e, "id")) {
                let age = time::OffsetDateTime::parse(
                    &l.reported_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .map(|t| (now - t).whole_seconds().max(0))
                .ok();
                let up = l
                    .report
                    .sessions
                    .iter()
                    .filter(|x| x.state == "ESTABLISHED")
                    .count();
                e["report"] = json!({
                    "ageSecs": age,
                    "appliedRevision": l.report.applied_revision,
                    "sessions": l.report.sessions.len(),
                    "established": up,
                    "errors": l.report.errors.len(),
                });
            }
            e
        })
        .collect();
    c.render(
        Some(&ctx),
        "operator.html",
        json!({
            "title": "Operator",
            "pops": pops,
            "edges": edges,
            "partners": partners,
            "services": services,
            "folders": folders,
        }),
    )
}

pub async fn not_found(State(c): C, ctx: Ctx) -> Response {
    c.not_found(&ctx)
}

// ---------------------------------------------------------------------------------------
// Changing

/// The fields of a new private connection; the trunks to choose from are the folder's.
fn connection_fields(trunks: &[Value]) -> Vec<Field> {
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::select(
            "trunkConnectionId",
            "Trunk",
            "The trunk that carries this connection.",
            trunks
                .iter()
                .map(|t| {
                    (
                        s(t, "id").to_string(),
                        format!(
                            "{} ({}, {})",
                            s(t, "name"),
                            s(t, "id"),
                            s(t, "pointOfPresenceId")
                        ),
                    )
                })
                .collect(),
        )
        .required(),
        Field::number(
            "vlanId",
            "VLAN",
            "2-4000, not used by another connection on the trunk.",
        )
        .required(),
        Field::text(
            "ipv4Peering.peeringSubnet",
            "IPv4 peering subnet",
            "A /30 or /31, e.g. 169.254.100.0/30.",
        )
        .required(),
        Field::text(
            "ipv4Peering.peerIp",
            "Your router's address",
            "Inside the subnet.",
        )
        .required(),
        Field::text(
            "ipv4Peering.cloudIp",
            "The cloud's address",
            "Inside the subnet.",
        )
        .required(),
        Field::number("ipv4Peering.peerBgpAsn", "Your BGP ASN", "1-4294967295.").required(),
        Field::secret(
            "ipv4Peering.peerBgpMd5Key",
            "BGP MD5 key",
            "Optional (TCP-MD5, RFC 2385).",
        ),
    ]
}

async fn folder_trunks(c: &Console, ctx: &Ctx, folder: &str) -> Result<Vec<Value>, Failure> {
    list(
        c,
        ctx,
        &format!("/cic/v1/trunkConnections?folderId={folder}"),
        "trunkConnections",
    )
    .await
}

/// A form's page: its title, where it posts, where Cancel leads, its fields.
struct FormPage<'a> {
    title: String,
    action: String,
    back: String,
    fields: &'a [Field],
}

impl FormPage<'_> {
    /// The form with `values`, and the API's errors beside the fields they name.
    fn show(
        &self,
        c: &Console,
        ctx: &Ctx,
        status: StatusCode,
        values: Map<String, Value>,
        failure: Option<Failure>,
    ) -> Response {
        let (errors, others, message) = match failure {
            Some(f) => {
                let message = f.error.message.clone();
                let (at, others) = forms::split_errors(f.field_errors(), self.fields);
                (at, others, Some(message))
            }
            None => (Map::new(), Vec::new(), None),
        };
        c.render_status(
            Some(ctx),
            status,
            "form.html",
            json!({
                "title": self.title,
                "action": self.action,
                "back": self.back,
                "fields": self.fields,
                "values": values,
                "errors": errors,
                "other_errors": others,
                "message": message,
            }),
        )
    }

    /// After the API answered the form sent: its operation's page, or the form again as
    /// it was sent, with what the API refused.
    fn answered(
        &self,
        c: &Console,
        ctx: &Ctx,
        answer: Result<Value, Failure>,
        form: &[(String, String)],
    ) -> Response {
        match answer {
            Ok(op) => to_operation(&op),
            Err(f) if f.status == StatusCode::BAD_REQUEST || f.status == StatusCode::CONFLICT => {
                self.show(c, ctx, f.status, forms::values(form, self.fields), Some(f))
            }
            Err(f) => c.failure(ctx, f),
        }
    }
}

/// What a folder's "New …" form makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKind {
    Connection,
    Trunk,
    Instance,
}

impl NewKind {
    fn title(self) -> &'static str {
        match self {
            NewKind::Connection => "New private connection",
            NewKind::Trunk => "New trunk",
            NewKind::Instance => "New routing instance",
        }
    }

    /// The API collection it is created in.
    fn api(self) -> &'static str {
        match self {
            NewKind::Connection => "/cic/v1/privateConnections",
            NewKind::Trunk => "/cic/v1/trunkConnections",
            NewKind::Instance => "/cloudrouter/v1/routingInstances",
        }
    }

    /// The console's path under a folder.
    /// Its form's page in `folder`.
    fn page<'a>(self, folder: &str, fields: &'a [Field]) -> FormPage<'a> {
        FormPage {
            title: self.title().to_string(),
            action: format!("/console/folders/{folder}/{}", self.segment()),
            back: format!("/console/folders/{folder}"),
            fields,
        }
    }

    pub fn segment(self) -> &'static str {
        match self {
            NewKind::Connection => "privateConnections",
            NewKind::Trunk => "trunkConnections",
            NewKind::Instance => "routingInstances",
        }
    }

    async fn fields(self, c: &Console, ctx: &Ctx, folder: &str) -> Result<Vec<Field>, Failure> {
        Ok(match self {
            NewKind::Connection => connection_fields(&folder_trunks(c, ctx, folder).await?),
            NewKind::Trunk => {
                let pops = list(c, ctx, "/cic/v1/pointOfPresences", "pointOfPresences").await?;
                trunk_fields(&pops)
            }
            NewKind::Instance => {
                let pcs = list(
                    c,
                    ctx,
                    &format!("/cic/v1/privateConnections?folderId={folder}"),
                    "privateConnections",
                )
                .await?;
                instance_fields(&pcs)
            }
        })
    }
}

/// The capacities a trunk may have, as the API's schema lists them.
fn capacities() -> Vec<(String, String)> {
    let schema = serde_json::to_value(schemars::schema_for!(cic_model::resource::Capacity))
        .unwrap_or_default();
    let mut names: Vec<String> = schema["enum"]
        .as_array()
        .or_else(|| schema["oneOf"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v["const"].as_str().map(str::to_string))
                .or_else(|| v["enum"][0].as_str().map(str::to_string))
        })
        .collect();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let label = n.trim_start_matches("CAPACITY_").replace('_', " ");
            (n, label)
        })
        .collect()
}

fn trunk_fields(pops: &[Value]) -> Vec<Field> {
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::select(
            "pointOfPresenceId",
            "Point of presence",
            "Where your router meets the cloud's.",
            pops.iter()
                .map(|p| {
                    let name = if s(p, "name").is_empty() {
                        s(p, "id")
                    } else {
                        s(p, "name")
                    };
                    (s(p, "id").to_string(), name.to_string())
                })
                .collect(),
        )
        .required(),
        Field::select("capacity", "Capacity", "", capacities()).required(),
        Field::text(
            "singlePortDirectJoint.portName",
            "Port (a direct joint)",
            "The cloud router's port your cross-connect lands on; or give a VXLAN peer below.",
        ),
        Field::text(
            "overlayJoint.remoteVtep",
            "Your VXLAN endpoint (an overlay joint)",
            "The IPv4 address of your router's VTEP.",
        ),
    ]
}

fn instance_fields(pcs: &[Value]) -> Vec<Field> {
    let mut options = vec![(String::new(), "(none yet)".to_string())];
    options.extend(pcs.iter().map(|pc| {
        let name = if s(pc, "name").is_empty() {
            s(pc, "id")
        } else {
            s(pc, "name")
        };
        (s(pc, "id").to_string(), name.to_string())
    }));
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::text(
            "vpcInfo[0].vpcNetworkId",
            "VPC network",
            "The VPC network to reach.",
        )
        .required(),
        Field::text(
            "vpcInfo[0].azInfos[0].azId",
            "Zone",
            "The VPC's availability zone.",
        )
        .required(),
        Field::list(
            "vpcInfo[0].azInfos[0].prefixes",
            "Prefixes",
            "The zone's prefixes announced to your routers, separated by commas or spaces.",
        )
        .errors_as("vpcInfo.azInfos.prefixes")
        .required(),
        Field::select(
            "cicPrivateConnectionInfo[0].cicPrivateConnectionId",
            "Private connection",
            "A connection to carry it (more can be attached later).",
            options,
        ),
    ]
}

/// `GET /console/folders/{id}/{kind}/new`.
pub async fn new_form(kind: NewKind, c: Arc<Console>, ctx: Ctx, folder: String) -> Response {
    check_id!(c, ctx, folder);
    let fields = try_api!(c, ctx, kind.fields(&c, &ctx, &folder).await);
    if !can_write(&c, &ctx, &folder).await {
        return c.error_page(
            Some(&ctx),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Creating in this folder needs the editor role.",
        );
    }
    kind.page(&folder, &fields)
        .show(&c, &ctx, StatusCode::OK, Map::new(), None)
}

/// `POST /console/folders/{id}/{kind}`: the API's create; its errors beside the fields.
pub async fn create(
    kind: NewKind,
    c: Arc<Console>,
    ctx: Ctx,
    headers: HeaderMap,
    folder: String,
    form: Vec<(String, String)>,
) -> Response {
    check_id!(c, ctx, folder);
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let fields = try_api!(c, ctx, kind.fields(&c, &ctx, &folder).await);
    let mut base = Map::new();
    base.insert("folderId".into(), json!(folder));
    let body = forms::body(&form, &fields, base);
    let answer = c.api(&ctx, Method::POST, kind.api(), Some(body)).await;
    kind.page(&folder, &fields)
        .answered(&c, &ctx, answer, &form)
}

/// What the edit form of a kind changes: name and description; a private connection's
/// VLAN and BFD timers too.
fn edit_fields(kind: &str) -> Vec<Field> {
    let mut f = vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens."),
        Field::text("description", "Description", ""),
    ];
    if kind == "privateConnections" {
        f.extend([
            Field::number(
                "vlanId",
                "VLAN",
                "Change it on your router at the same time: the session moves to the new VLAN.",
            )
            .required(),
            Field::number(
                "bfd.minIntervalMs",
                "BFD interval (ms)",
                "Empty for the operator's default; at least the operator's minimum.",
            ),
            Field::number(
                "bfd.multiplier",
                "BFD multiplier",
                "Packets missed before the session is down (2-50).",
            ),
        ]);
    }
    f
}

/// The value of field path `name` (`bfd.multiplier`) in `v`, as a form shows it.
fn value_at(v: &Value, name: &str) -> Value {
    let mut at = v;
    for part in name.split('.') {
        at = &at[part];
    }
    match at {
        Value::Null => json!(""),
        Value::String(_) => at.clone(),
        other => json!(other.to_string()),
    }
}

/// `GET /console/{kind}/{id}/edit`: a private connection's, trunk's or routing instance's
/// name and description.
pub async fn edit_form(kind: &str, State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    let (_, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    if !can_write(&c, &ctx, s(&v, "folderId")).await {
        return c.error_page(
            Some(&ctx),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Changing this folder's resources needs the editor role.",
        );
    }
    let fields = edit_fields(kind);
    let values: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), value_at(&v, f.name)))
        .collect();
    edit_page(kind, &id, &fields).show(&c, &ctx, StatusCode::OK, values, None)
}

/// The edit form's page of resource `id` of `kind`.
fn edit_page<'a>(kind: &str, id: &str, fields: &'a [Field]) -> FormPage<'a> {
    FormPage {
        title: format!("Edit {id}"),
        action: format!("/console/{kind}/{id}/edit"),
        back: format!("/console/{kind}/{id}"),
        fields,
    }
}

/// `POST /console/{kind}/{id}/edit`: a PATCH of both fields (an emptied description is
/// cleared).
pub async fn edit(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let fields = edit_fields(kind);
    let mut body = forms::body(&form, &fields, Map::new());
    // Name and description as they stand (emptied: cleared); BFD back to the operator's
    // default when both timers are emptied.
    let mut mask = vec!["name", "description"];
    for k in ["name", "description"] {
        if body.get(k).is_none() {
            body[k] = json!("");
        }
    }
    if kind == "privateConnections" {
        mask.extend(["vlanId", "bfd"]);
        if body.get("bfd").is_none() {
            body["bfd"] = Value::Null;
        }
    }
    body["updateMask"] = json!(mask.join(","));
    let answer = c
        .api(&ctx, Method::PATCH, &format!("{base}/{id}"), Some(body))
        .await;
    edit_page(kind, &id, &fields).answered(&c, &ctx, answer, &form)
}

/// The fields of a routing instance's prefixes form: which VPC, add or remove, the zone,
/// the prefixes.
fn prefixes_fields(ri: &Value) -> Vec<Field> {
    let vpcs = ri["vpcInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let id = s(v, "vpcNetworkId").to_string();
            (id.clone(), id)
        })
        .collect();
    vec![
        Field::select(
            "action",
            "Change",
            "",
            vec![
                ("upsertPrefixes".into(), "Add these prefixes".into()),
                ("removePrefixes".into(), "Remove these prefixes".into()),
            ],
        )
        .required(),
        Field::select("vpcNetworkId", "VPC network", "", vpcs).required(),
        Field::text("vpcAzInfoPrefixes[0].azId", "Zone", "").required(),
        Field::list(
            "vpcAzInfoPrefixes[0].prefixes",
            "Prefixes",
            "Separated by commas or spaces.",
        )
        .errors_as("vpcInfo.azInfos.prefixes")
        .required(),
    ]
}

/// `GET/POST /console/routingInstances/{id}/prefixes`: a VPC's prefixes added or removed
/// (`:upsertPrefixes`, `:removePrefixes`).
pub async fn prefixes_form(st: C, ctx: Ctx, id: Path<String>) -> Response {
    prefixes(st, ctx, Method::GET, HeaderMap::new(), id, None).await
}

pub async fn prefixes_post(
    st: C,
    ctx: Ctx,
    headers: HeaderMap,
    id: Path<String>,
    Form(form): FormData,
) -> Response {
    prefixes(st, ctx, Method::POST, headers, id, Some(form)).await
}

async fn prefixes(
    State(c): C,
    ctx: Ctx,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Option<Vec<(String, String)>>,
) -> Response {
    check_id!(c, ctx, id);
    let ri = try_api!(
        c,
        ctx,
        c.api(
            &ctx,
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{id}"),
            None
        )
        .await
    );
    let fields = prefixes_fields(&ri);
    let page = FormPage {
        title: format!(
            "Prefixes of {}",
            if s(&ri, "name").is_empty() {
                &id
            } else {
                s(&ri, "name")
            }
        ),
        action: format!("/console/routingInstances/{id}/prefixes"),
        back: format!("/console/routingInstances/{id}"),
        fields: &fields,
    };
    if method != Method::POST {
        return page.show(&c, &ctx, StatusCode::OK, Map::new(), None);
    }
    let form = form.unwrap_or_default();
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let what = form
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str())
        .filter(|v| ["upsertPrefixes", "removePrefixes"].contains(v))
        .unwrap_or("upsertPrefixes")
        .to_string();
    let body_fields: Vec<Field> = fields
        .iter()
        .filter(|f| f.name != "action")
        .cloned()
        .collect();
    let body = forms::body(&form, &body_fields, Map::new());
    let answer = c
        .api(
            &ctx,
            Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{id}:{what}"),
            Some(body),
        )
        .await;
    page.answered(&c, &ctx, answer, &form)
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

/// `GET /console/{kind}/{id}/delete`: what is about to be deleted, and a button that does.
pub async fn confirm_delete(kind: &str, State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    let (_, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let name = if s(&v, "name").is_empty() {
        id.as_str()
    } else {
        s(&v, "name")
    };
    c.render(
        Some(&ctx),
        "confirm.html",
        json!({
            "title": format!("Delete {name}?"),
            "message": format!("{name} ({id}) will be deleted: its sessions end and the edges remove what they made for it."),
            "action": format!("/console/{kind}/{id}/delete"),
            "back": format!("/console/{kind}/{id}"),
            "button": "Delete",
        }),
    )
}

/// `POST /console/{kind}/{id}/delete`.
pub async fn delete(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let op = try_api!(
        c,
        ctx,
        c.api(&ctx, Method::DELETE, &format!("{base}/{id}"), None)
            .await
    );
    to_operation(&op)
}

/// `POST /console/routingInstances/{id}/attach`: a private connection joins it.
pub async fn attach(
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    check_id!(c, ctx, id);
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let pc = form
        .iter()
        .find(|(k, _)| k == "cicPrivateConnectionId")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match c
        .api(
            &ctx,
            Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{id}:addPrivateConnection"),
            Some(json!({"cicPrivateConnectionId": pc})),
        )
        .await
    {
        Ok(op) => to_operation(&op),
        Err(f) if f.status == StatusCode::NOT_FOUND => c.not_found(&ctx),
        Err(f) => c.error_page(
            Some(&ctx),
            f.status,
            "The connection was not attached",
            &f.error.message,
        ),
    }
}

/// Starts or stops a private or public connection's failover test.
pub async fn failover_test(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let value = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let (method, body) = match value("action").as_str() {
        "start" => {
            let mut b = Map::new();
            let d = value("durationSeconds");
            if !d.is_empty() {
                b.insert(
                    "durationSeconds".into(),
                    d.parse::<u64>().map(Value::from).unwrap_or(json!(d)),
                );
            }
            ("startBgpFailoverTest", Value::Object(b))
        }
        "stop" => ("stopBgpFailoverTest", json!({})),
        _ => {
            return c.error_page(
                Some(&ctx),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The form asked for neither start nor stop.",
            );
        }
    };
    match c
        .api(
            &ctx,
            Method::POST,
            &format!("{base}/{id}:{method}"),
            Some(body),
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/{kind}/{id}")).into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => c.not_found(&ctx),
        Err(f) => c.error_page(
            Some(&ctx),
            f.status,
            "The failover test was not changed",
            &f.error.message,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_a_console_page() {
        assert_eq!(
            safe_next(Some("/console/folders/f1")),
            "/console/folders/f1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/cic/v1/edges",
            "/console\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
    }

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(plain_id("cf3abc-1"));
        assert!(!plain_id(""));
        assert!(!plain_id("a/b"));
        assert!(!plain_id("a?b"));
    }

    #[test]
    fn a_resource_reads_as_a_list_of_fields() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"id": "x", "joint": {"port": "ge-0/0/1"}, "tags": ["a", "b"], "n": 3,
                    "vpc": [{"id": "net1"}]}),
            &mut out,
        );
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("joint.port"), Some("ge-0/0/1"));
        assert_eq!(get("tags"), Some("a, b"));
        assert_eq!(get("n"), Some("3"));
        assert_eq!(get("vpc[0].id"), Some("net1"));
    }
}
