//! Signing in and out: the session a key opens, and its end.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::*;

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
    let previous = crate::console::cookie_secret(&headers, secure).map(|s| session::id_hash(&s));
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
    h.append(header::SET_COOKIE, crate::console::expire_other(secure));
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
    h.append(header::SET_COOKIE, crate::console::expire_other(secure));
    resp
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
}
