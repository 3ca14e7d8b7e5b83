//! What every response carries: a request id (the caller's `X-Request-Id` when it sent a
//! usable one, else a new one; in the logs of the request too) and the security headers
//! of an API that browsers must not cache, frame or sniff (HSTS over TLS).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::listen::Peer;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions for handlers (the audit trail) to read.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A caller's id is kept if it is 1–128 visible ASCII characters.
fn usable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(usable)
        .unwrap_or_else(|| crate::new_id("rq"));
    let tls = req.extensions().get::<Peer>().is_some_and(|p| p.tls);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID.clone(), v);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}
