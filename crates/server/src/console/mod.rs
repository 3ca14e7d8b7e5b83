//! The web console at `/console/`: what customers and operators look at, rendered on the
//! server from templates embedded in the binary (no CDN, no build chain), readable with
//! JavaScript off; a small script of ours refreshes the live part of a page.
//!
//! The console is a client of the API in the same process: every page reads, and every
//! form writes, through the API's router with the signed-in caller's key, so the API's
//! access rules, secret masking, validation and audit trail are the console's too. What
//! it asks the server directly is only who the caller is and what it may do in a folder
//! (to hide buttons a viewer could not use), through [`crate::access`].
//!
//! ```text
//!  browser ──cookie──▶ console (session → key) ──Bearer key──▶ API router ──▶ JSON
//!          ◀──HTML────  templates ◀────────────────────────────────────────────┘
//! ```

mod chart;
mod forms;
mod pages;
pub mod session;
mod topology;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cic_model::ApiError;
use minijinja::Environment;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::AppState;
use crate::auth::Principal;
use crate::clock::unix_now;
use crate::headers::RequestId;
use crate::listen::Peer;

/// The console's state: the server's, the API router it calls, its templates.
pub struct Console {
    pub(crate) st: Arc<AppState>,
    api: Router,
    env: Environment<'static>,
}

/// Templates and assets, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("error.html", include_str!("templates/error.html")),
    ("home.html", include_str!("templates/home.html")),
    ("folder.html", include_str!("templates/folder.html")),
    ("connection.html", include_str!("templates/connection.html")),
    ("routes.html", include_str!("templates/routes.html")),
    ("form.html", include_str!("templates/form.html")),
    ("operation.html", include_str!("templates/operation.html")),
    ("resource.html", include_str!("templates/resource.html")),
    ("operator.html", include_str!("templates/operator.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
];
const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's Content-Security-Policy: our own script and styles only, no inline code,
/// forms only to ourselves, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        if let Err(e) = env.add_template(name, src) {
            // A template that does not parse is a build defect; the unit test below
            // catches it before a release.
            tracing::error!("console template {name}: {e}");
        }
    }
    env.add_filter("duration", duration);
    env.add_filter("state_class", state_class);
    env.add_filter("bgp_class", bgp_class);
    env
}

/// `3725` → `1 h 2 min`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} d {} h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

/// The CSS class of a BGP state (RFC 4271): up, on its way, or not connected (ACTIVE is
/// a BGP session that is *not* up, unlike a resource's ACTIVE).
fn bgp_class(state: &str) -> &'static str {
    match state {
        "ESTABLISHED" => "ok",
        "CONNECT" | "OPEN_SENT" | "OPEN_CONFIRM" => "changing",
        "" => "none",
        _ => "bad",
    }
}

/// The CSS class of a state word: good, changing, bad or none.
fn state_class(state: &str) -> &'static str {
    match state {
        "ESTABLISHED" | "ACTIVE" | "UP" | "Up" | "DONE" | "RUNNING_OK" => "ok",
        "CREATING" | "UPDATING" | "DELETING" | "CONNECT" | "OPEN_SENT" | "OPEN_CONFIRM"
        | "INIT" | "Init" | "RUNNING" | "PENDING" => "changing",
        "" => "none",
        _ => "bad",
    }
}

/// The console's routes (full paths), for [`crate::app`] to merge beside the API.
pub fn router(st: Arc<AppState>, api: Router) -> Router {
    let console = Arc::new(Console {
        st,
        api,
        env: environment(),
    });
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::home))
        .route(
            "/console/signin",
            get(pages::signin_form).post(pages::signin),
        )
        .route("/console/signout", post(pages::signout))
        .route(
            "/console/assets/console.css",
            get(|| asset(CSS, "text/css")),
        )
        .route(
            "/console/assets/console.js",
            get(|| asset(JS, "text/javascript")),
        )
        .route("/console/folders/{id}", get(pages::folder))
        .route("/console/folders/{id}/{kind}/new", get(new_form))
        .route("/console/folders/{id}/{kind}", post(create))
        .route(
            "/console/routingInstances/{id}/prefixes",
            get(pages::prefixes_form).post(pages::prefixes_post),
        )
        .route("/console/routingInstances/{id}/attach", post(pages::attach))
        .route("/console/trunkConnections/{id}", get(pages::trunk))
        .route(
            "/console/routingInstances/{id}",
            get(pages::routing_instance),
        )
        .route("/console/operations/{id}", get(pages::operation))
        .route("/console/operator", get(pages::operator))
        .route(
            "/console/{*rest}",
            get(pages::not_found).post(pages::not_found),
        )
        .merge(kind_routes())
        .layer(axum::middleware::from_fn(console_headers))
        .with_state(console)
}

type Form = axum::Form<Vec<(String, String)>>;

/// The pages several kinds have, each with its kind's name in the path: a connection's
/// (private and public), a delete (every kind), an edit (all but public connections).
fn kind_routes() -> Router<Arc<Console>> {
    let mut r = Router::new();
    for kind in ["privateConnections", "publicConnections"] {
        r = r
            .route(
                &format!("/console/{kind}/{{id}}"),
                get(move |st, ctx, id, w: Query<pages::WindowQuery>| {
                    pages::connection(kind, st, ctx, id, w)
                }),
            )
            .route(
                &format!("/console/{kind}/{{id}}/routes"),
                get(move |st, ctx, id, q: Query<pages::RoutesQuery>| {
                    pages::routes(kind, st, ctx, id, q)
                }),
            )
            .route(
                &format!("/console/{kind}/{{id}}/failoverTest"),
                post(move |st, ctx, headers, id, form: Form| {
                    pages::failover_test(kind, st, ctx, headers, id, form)
                }),
            );
    }
    for kind in DELETABLE {
        r = r.route(
            &format!("/console/{kind}/{{id}}/delete"),
            get(move |st, ctx, id| pages::confirm_delete(kind, st, ctx, id)).post(
                move |st, ctx, headers, id, form: Form| {
                    pages::delete(kind, st, ctx, headers, id, form)
                },
            ),
        );
    }
    for kind in ["privateConnections", "trunkConnections", "routingInstances"] {
        r = r.route(
            &format!("/console/{kind}/{{id}}/edit"),
            get(move |st, ctx, id| pages::edit_form(kind, st, ctx, id)).post(
                move |st, ctx, headers, id, form: Form| {
                    pages::edit(kind, st, ctx, headers, id, form)
                },
            ),
        );
    }
    r
}

/// The kind a folder's path names (`privateConnections`, …), if the console makes it.
fn new_kind(segment: &str) -> Option<pages::NewKind> {
    use pages::NewKind::*;
    [Connection, Trunk, Instance]
        .into_iter()
        .find(|k| k.segment() == segment)
}

async fn new_form(
    axum::extract::State(c): axum::extract::State<Arc<Console>>,
    ctx: Ctx,
    axum::extract::Path((folder, kind)): axum::extract::Path<(String, String)>,
) -> Response {
    match new_kind(&kind) {
        Some(k) => pages::new_form(k, c, ctx, folder).await,
        None => c.not_found(&ctx),
    }
}

async fn create(
    axum::extract::State(c): axum::extract::State<Arc<Console>>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::extract::Path((folder, kind)): axum::extract::Path<(String, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    match new_kind(&kind) {
        Some(k) => pages::create(k, c, ctx, headers, folder, form).await,
        None => c.not_found(&ctx),
    }
}

/// What the console deletes, by its path's kind.
const DELETABLE: [&str; 4] = [
    "privateConnections",
    "publicConnections",
    "trunkConnections",
    "routingInstances",
];

/// Pages may be framed by nobody and run only our script.
async fn console_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The signed-in caller of one console request.
pub struct Ctx {
    /// The API key, in memory for this request only.
    key: String,
    pub who: Principal,
    /// This session's CSRF token (every form carries it).
    pub csrf: String,
    id_hash: String,
    peer: Option<Peer>,
    request_id: Option<RequestId>,
    /// The script asks for the live part of the page only.
    pub fragment: bool,
}

impl Ctx {
    pub fn is_operator(&self) -> bool {
        matches!(self.who, Principal::Admin { .. })
    }
}

/// The cookie's secret, if the request has one that looks like ours — of the name in use
/// (`secure`: only the `__Host-` one, which no plain-HTTP page or other host can set) and
/// only one: a second (planted for a narrower path) makes the request signed out rather
/// than let the planted one win.
pub(crate) fn cookie_secret(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = if secure {
        session::SECURE_COOKIE
    } else {
        session::COOKIE
    };
    let mut ours = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string());
    let first = ours.next()?;
    if ours.next().is_some() {
        return None;
    }
    Some(first).filter(|v| session::well_formed(v))
}

/// Where a request without a usable session goes: the sign-in page, which returns to the
/// page asked for; the script gets a 401 and reloads.
fn to_signin(parts: &Parts) -> Response {
    if parts.headers.contains_key("x-console-fragment") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // A form sent after the session ended: its address is not a page to return to.
    if parts.method != Method::GET {
        return Redirect::to("/console/signin").into_response();
    }
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console/");
    let mut to = String::from("/console/signin");
    if next != "/console/" {
        to.push_str("?next=");
        to.push_str(&percent(next));
    }
    Redirect::to(&to).into_response()
}

/// Percent-encodes a query value.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        c: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let tls = parts.extensions.get::<Peer>().is_some_and(|p| p.tls);
        let Some(secret) = cookie_secret(&parts.headers, c.secure_cookie(tls)) else {
            return Err(to_signin(parts));
        };
        let id_hash = session::id_hash(&secret);
        let stored = match c.st.store.console_session(&id_hash).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("console: sessions cannot be read: {e}");
                return Err(c.error_page(
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The console cannot read its sessions",
                    "Try again in a moment.",
                ));
            }
        };
        let Some(stored) = stored.filter(|s| s.expires_at > unix_now()) else {
            return Err(to_signin(parts));
        };
        let Some(key) = session::open(&secret, &stored.sealed_key) else {
            return Err(to_signin(parts));
        };
        // The key is judged again at every request: a revoked or expired key ends the
        // session at once.
        let Ok(who) = crate::auth::principal_of_token(&c.st, &key, None).await else {
            return Err(to_signin(parts));
        };
        Ok(Ctx {
            key,
            who,
            csrf: session::csrf(&secret),
            id_hash,
            peer: parts.extensions.get::<Peer>().cloned(),
            request_id: parts.extensions.get::<RequestId>().cloned(),
            fragment: parts.headers.contains_key("x-console-fragment"),
        })
    }
}

/// An API call that did not succeed, as the API answered it.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub error: ApiError,
}

impl Failure {
    /// The message for the field `name` (an API field path), if the API named it.
    pub fn field_errors(&self) -> serde_json::Map<String, Value> {
        self.error
            .details
            .iter()
            .map(|d| (d.field.clone(), Value::String(d.description.clone())))
            .collect()
    }
}

impl Console {
    /// Whether the session cookie is marked Secure: over TLS, or when the operator says
    /// a proxy in front terminates TLS (`--console-secure-cookies`).
    pub fn secure_cookie(&self, tls: bool) -> bool {
        tls || self.st.config.console_secure_cookies
    }

    /// Calls the API as the signed-in caller.
    pub async fn api(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", ctx.key));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(e) => return Err(internal(format!("request to {path}: {e}"))),
        };
        if let Some(p) = &ctx.peer {
            req.extensions_mut().insert(p.clone());
        }
        if let Some(r) = &ctx.request_id {
            req.extensions_mut().insert(r.clone());
        }
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(e) => return Err(internal(format!("{path}: {e}"))),
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let error = serde_json::from_value::<ApiError>(v).unwrap_or_else(|_| {
            ApiError::new(
                cic_model::Code::Internal,
                format!("the API answered {status}"),
            )
        });
        Err(Failure { status, error })
    }

    /// A GET that may fail only as "not there" (then `None`).
    pub async fn get_opt(&self, ctx: &Ctx, path: &str) -> Result<Option<Value>, Failure> {
        match self.api(ctx, Method::GET, path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(f) if f.status == StatusCode::NOT_FOUND => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// Renders `template` with `data` and what every page shows (the caller, the CSRF
    /// token); only the `live` block when the script asks for it.
    pub fn render(&self, ctx: Option<&Ctx>, template: &str, data: Value) -> Response {
        self.render_status(ctx, StatusCode::OK, template, data)
    }

    pub fn render_status(
        &self,
        ctx: Option<&Ctx>,
        status: StatusCode,
        template: &str,
        mut data: Value,
    ) -> Response {
        if let (Some(ctx), Some(m)) = (ctx, data.as_object_mut()) {
            m.insert(
                "me".into(),
                json!({
                    "name": ctx.who.subject(),
                    "operator": ctx.is_operator(),
                    "csrf": ctx.csrf,
                }),
            );
        }
        let fragment = ctx.is_some_and(|c| c.fragment);
        let out = self.env.get_template(template).and_then(|t| {
            let value = minijinja::Value::from_serialize(&data);
            if fragment {
                t.render_captured(value)?
                    .with_state_mut(|s| s.render_block("live"))
            } else {
                t.render(value)
            }
        });
        match out {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("console template {template}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the console could not render this page",
                )
                    .into_response()
            }
        }
    }

    pub fn error_page(
        &self,
        ctx: Option<&Ctx>,
        status: StatusCode,
        title: &str,
        message: &str,
    ) -> Response {
        self.render_status(
            ctx,
            status,
            "error.html",
            json!({"title": title, "message": message, "status": status.as_u16()}),
        )
    }

    /// The page for an API call that failed: sign-in again, not found, not allowed, or
    /// the API's own words.
    pub fn failure(&self, ctx: &Ctx, f: Failure) -> Response {
        match f.status {
            // The script reloads on a 401 (a redirect it would follow into the page).
            StatusCode::UNAUTHORIZED if ctx.fragment => StatusCode::UNAUTHORIZED.into_response(),
            StatusCode::UNAUTHORIZED => Redirect::to("/console/signin").into_response(),
            StatusCode::NOT_FOUND => self.not_found(ctx),
            StatusCode::FORBIDDEN => self.error_page(
                Some(ctx),
                StatusCode::FORBIDDEN,
                "Not allowed",
                &f.error.message,
            ),
            s => self.error_page(Some(ctx), s, "The request failed", &f.error.message),
        }
    }

    pub fn not_found(&self, ctx: &Ctx) -> Response {
        self.error_page(
            Some(ctx),
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here, or it is not yours to see.",
        )
    }

    /// The refusal of a form that does not carry this session's CSRF token, or that a
    /// browser says came from another site; `None` for a form to take.
    pub fn refuse_form(
        &self,
        ctx: &Ctx,
        headers: &HeaderMap,
        form: &[(String, String)],
    ) -> Option<Response> {
        let token = form
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !same_site(headers) || !session::same(token, &ctx.csrf) {
            return Some(self.error_page(
                Some(ctx),
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not come from this console session (its CSRF token is missing or wrong). Reload the page and try again.",
            ));
        }
        None
    }
}

fn internal(m: String) -> Failure {
    Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: ApiError::new(cic_model::Code::Internal, m),
    }
}

/// A browser's word that a request came from this site: `Sec-Fetch-Site` when sent (every
/// current browser), else an `Origin` naming the host the request went to; a request with
/// neither (not a browser) passes on the CSRF token alone.
pub(crate) fn same_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin
                .split_once("://")
                .is_some_and(|(_, h)| !host.is_empty() && h == host)
        }
    }
}

/// The session cookie: HttpOnly, SameSite=Strict. Secure (over TLS), it is
/// `__Host-cic_console` for the whole host — a cookie no other site, subdomain or plain
/// HTTP page can set; without TLS (a lab on loopback), `cic_console` for `/console`.
/// The Set-Cookie that ends the session cookie of the other name (the one not in use):
/// one left from before TLS, or planted, is not sent again.
pub(crate) fn expire_other(secure: bool) -> HeaderValue {
    cookie("", 0, !secure)
}

pub(crate) fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let v = if secure {
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}; Secure",
            session::SECURE_COOKIE
        )
    } else {
        format!(
            "{}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}",
            session::COOKIE
        )
    };
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    /// Each page's template renders a typical resource (a template error is a page a user
    /// cannot open).
    #[test]
    fn every_page_renders_a_typical_resource() {
        let env = environment();
        let me = json!({"name": "alice", "operator": true, "csrf": "t"});
        let bgp = json!({"state": "ESTABLISHED", "uptimeSecs": 5, "prefixesReceived": 1,
                         "prefixesAccepted": 1, "prefixesAdvertised": 2, "bfd": {"state": "up"}});
        let pc = json!({"id": "pc1", "folderId": "f1", "name": "a", "status": "ACTIVE",
                        "vlanId": "100", "trunkConnectionId": "tc1", "bgp": bgp, "pop": "pop1",
                        "ipv4Peering": {"peeringSubnet": "169.254.0.0/30", "peerIp": "169.254.0.2",
                                        "cloudIp": "169.254.0.1", "peerBgpAsn": "65001"},
                        "bgpFailoverTests": [{"startedAt": "x", "endsAt": "y", "startedBy": "a",
                                              "status": "IN_PROGRESS"}]});
        let trunk = json!({"id": "tc1", "name": "t", "pointOfPresenceId": "pop1", "edgeId": "e1",
                           "capacity": "CAPACITY_1_GBPS", "status": "ACTIVE",
                           "overlayJoint": {"remoteVtep": "100.64.0.1"}});
        let ri = json!({"id": "ri1", "name": "r", "status": "ACTIVE", "cicPrivateConnectionInfo": [],
                        "vpcInfo": [{"vpcNetworkId": "net1", "azInfos": [{"manualInfo": {"azId": "zone-a", "prefixes": ["10.0.0.0/16"]}}]}]});
        let op = json!({"id": "op1", "description": "Create", "createdAt": "x", "createdBy": "a",
                        "done": false, "metadata": {"resourceId": "pc1"}});
        let span = chart::Span { from: 0, to: 10 };
        let pages = [
            (
                "signin.html",
                json!({"title": "Sign in", "next": "/console/", "error": "no"}),
            ),
            (
                "error.html",
                json!({"title": "Not found", "message": "m", "status": 404}),
            ),
            (
                "home.html",
                json!({"title": "Folders", "folders": [{"id": "f1", "name": "f"}]}),
            ),
            (
                "folder.html",
                json!({"title": "F", "folder": {"id": "f1", "name": "f"},
                "trunks": [trunk], "connections": [pc], "public": [pc], "instances": [ri],
                "topology": topology::draw(
                    std::slice::from_ref(&trunk),
                    std::slice::from_ref(&pc),
                    std::slice::from_ref(&ri),
                ),
                "can_write": true}),
            ),
            (
                "connection.html",
                json!({"title": "PC", "pc": pc, "trunk": trunk, "instance": ri,
                "operations": [op], "testing": true, "can_write": true,
                "graphs": {"window": "hour",
                    "events": [{"at": 1, "time": "t", "kind": "SESSION_DOWN", "text": "x"}],
                    "charts": [
                        chart::states(&[json!({"at": 1, "state": "IDLE"})], span),
                        chart::lines("p", "P", &[json!({"at": 1, "v": 2.0})], span,
                            &[chart::Series { label: "v", class: "a", field: "v" }]),
                    ]}}),
            ),
            (
                "routes.html",
                json!({"title": "R", "pc": pc, "direction": "received", "family": "ipv4",
                "answer": {"routes": [{"prefix": "10.0.0.0/8", "nextHop": "169.254.0.2",
                    "asPath": [65001], "origin": "IGP", "rejected": "why"}]}}),
            ),
            (
                "form.html",
                json!({"title": "New", "action": "/x", "back": "/y",
                "fields": [forms::Field::number("vlanId", "VLAN", "h").required(),
                           forms::Field::select("t", "T", "", vec![("a".into(), "A".into())])],
                "values": {"vlanId": "5000"}, "errors": {"vlanId": "must be 2-4094"},
                "other_errors": ["x: y"], "message": "m"}),
            ),
            (
                "operation.html",
                json!({"title": "Op", "op": op, "resource": "/console/x"}),
            ),
            (
                "resource.html",
                json!({"title": "T", "noun": "Trunk", "item": trunk,
                "fields": [["a", "b"]], "operations": [op]}),
            ),
            (
                "operator.html",
                json!({"title": "Operator", "pops": [{"id": "pop1"}],
                "edges": [{"id": "e1", "report": {"ageSecs": 3, "appliedRevision": 1,
                           "sessions": 2, "established": 1, "errors": 0}}, {"id": "e2"}],
                "partners": [], "services": [], "folders": []}),
            ),
        ];
        let mut public = pc.clone();
        public["ipv4AllowedServiceTypes"] = json!(["CLOUD_SERVICE_S3"]);
        public["ipv4PeerAnnouncedPrefixes"] = json!(["5.45.192.0/22"]);
        let pages = pages.into_iter().chain([
            (
                "connection.html",
                json!({"title": "Public", "kind": "publicConnections", "pc": public, "trunk": trunk,
                   "operations": [], "testing": false, "can_write": true,
                   "graphs": {"window": "day", "events": [], "charts": []}}),
            ),
            (
                "confirm.html",
                json!({"title": "Delete x?", "message": "m", "action": "/console/a/b/delete",
                   "back": "/console/a/b", "button": "Delete"}),
            ),
        ]);
        for (name, mut data) in pages {
            data["me"] = me.clone();
            let t = env.get_template(name).expect(name);
            let out = t.render(minijinja::Value::from_serialize(&data));
            assert!(
                out.is_ok(),
                "{name}: {:#}",
                out.err().map(|e| format!("{e:#}")).unwrap_or_default()
            );
            let live = t
                .render_captured(minijinja::Value::from_serialize(&data))
                .and_then(|mut c| c.with_state_mut(|s| s.render_block("live")));
            assert!(live.is_ok(), "{name} live: {:?}", live.err());
            // (minijinja escapes "/" too, as &#x2f;)
            let html = out.unwrap_or_default().replace("&#x2f;", "/");
            let want: &[&str] = match name {
                "folder.html" => &[
                    "zone-a",
                    "10.0.0.0/16",
                    "ESTABLISHED",
                    "New private connection",
                ],
                "connection.html" if data["kind"] == "publicConnections" => &[
                    "CLOUD_SERVICE_S3",
                    "5.45.192.0/22",
                    "/console/publicConnections/pc1/routes",
                    "/console/publicConnections/pc1/failoverTest",
                ],
                "connection.html" => {
                    &["169.254.0.2", "IN_PROGRESS", "stop-test", "chart-bgp-state"]
                }
                "routes.html" => &["10.0.0.0/8", "why"],
                "confirm.html" => &["action=\"/console/a/b/delete\"", "name=\"_csrf\""],
                "form.html" => &[
                    "must be 2-4094",
                    "aria-invalid=\"true\"",
                    "name=\"_csrf\" value=\"t\"",
                ],
                _ => &[],
            };
            for w in want {
                assert!(html.contains(w), "{name} shows {w}");
            }
        }
    }

    #[test]
    fn what_a_page_shows_is_escaped() {
        let env = environment();
        let t = env.get_template("error.html").expect("error.html");
        let html = t
            .render(minijinja::Value::from_serialize(json!({
                "title": "<script>alert(1)</script>", "message": "\"><img src=x onerror=alert(1)>",
                "status": 404})))
            .expect("render");
        assert!(
            !html.contains("<script>alert") && !html.contains("<img src=x"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn a_cross_site_form_is_told_apart() {
        let mut h = HeaderMap::new();
        assert!(same_site(&h), "no browser headers: the token decides");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_site(&h));
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("cic.example:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://cic.example:8080"),
        );
        assert!(same_site(&h));
    }

    #[test]
    fn the_cookie_is_secure_over_tls_and_never_readable_by_scripts() {
        let c = cookie("ab", 60, true);
        let c = c.to_str().unwrap_or("");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(c.starts_with("__Host-cic_console=ab;") && c.contains("Path=/;"));
        let c = cookie("ab", 60, false);
        assert!(!c.to_str().unwrap_or("").contains("Secure"));
    }

    #[test]
    fn a_second_session_cookie_signs_the_request_out() {
        let secret = session::new_secret();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; cic_console={secret}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(cookie_secret(&h, false).as_deref(), Some(secret.as_str()));
        assert_eq!(
            cookie_secret(&h, true),
            None,
            "over TLS only the __Host- cookie counts"
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("__Host-cic_console={}", session::new_secret()))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(
            cookie_secret(&h, true).map(|s| s.len()),
            Some(64),
            "the __Host- one alone"
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("cic_console={}", session::new_secret()))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(cookie_secret(&h, false), None, "a planted second cookie");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(3725), "1 h 2 min");
        assert_eq!(duration(90_000), "1 d 1 h");
        assert_eq!(state_class("ESTABLISHED"), "ok");
        assert_eq!(state_class("IDLE"), "bad");
        assert_eq!(state_class("ACTIVE"), "ok", "a resource's ACTIVE");
        assert_eq!(bgp_class("ACTIVE"), "bad", "BGP's ACTIVE: not connected");
    }
}
