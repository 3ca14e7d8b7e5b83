//! What one caller may cost the server: a token bucket per credential (a bearer token, an
//! edge's certificate, or — unauthenticated — the source address) answering 429 with
//! `Retry-After` when empty, and a cap on the long-polls (`waitSeconds`) one credential
//! holds open. Keyed before authentication, so a flood costs no database lookup; one
//! tenant's flood empties its own bucket, not another's or an edge's.
//!
//! A 429 is answered after a second, so that a caller who ignores it cannot make
//! refusals its way of loading the server.
//!
//! The body limit (413) is in [`crate::error`]; slow clients and the connection cap are
//! in [`crate::listen`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cic_model::{ApiError, Code};

use crate::AppState;
use crate::error::HttpError;
use crate::listen::Peer;

/// The operator's limits (`cic server --rate-limit --rate-burst --max-long-polls`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per second a credential may make, sustained; 0: no limit.
    pub rate: f64,
    /// Requests a credential may make at once after being idle.
    pub burst: f64,
    /// Long-polls one credential may hold open; 0: no limit.
    pub long_polls: usize,
}

impl Limits {
    /// No limits (what a library user gets unless it asks).
    pub const NONE: Limits = Limits {
        rate: 0.0,
        burst: 0.0,
        long_polls: 0,
    };
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets and open long-polls per credential.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    polls: Mutex<HashMap<String, usize>>,
}

/// How long a 429 is held before it is sent.
const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Buckets kept before full ones (idle callers) are forgotten.
const MAX_KEYS: usize = 10_000;

impl Limiter {
    /// Takes a token of `key`'s bucket; Err(seconds until one is there) when empty.
    pub fn take(&self, key: &str, l: &Limits, now: Instant) -> Result<(), u64> {
        if l.rate <= 0.0 {
            return Ok(());
        }
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_KEYS && !b.contains_key(key) {
            b.retain(|_, x| x.tokens + now.duration_since(x.last).as_secs_f64() * l.rate < l.burst);
        }
        let x = b.entry(key.to_string()).or_insert(Bucket {
            tokens: l.burst.max(1.0),
            last: now,
        });
        x.tokens =
            (x.tokens + now.duration_since(x.last).as_secs_f64() * l.rate).min(l.burst.max(1.0));
        x.last = now;
        if x.tokens >= 1.0 {
            x.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - x.tokens) / l.rate).ceil().max(1.0) as u64)
        }
    }

    /// Counts a long-poll of `key` open until the guard drops; None when it has `max`.
    pub fn open_poll(self: &Arc<Self>, key: &str, max: usize) -> Option<PollGuard> {
        let mut p = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let n = p.entry(key.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(PollGuard {
            limiter: self.clone(),
            key: key.to_string(),
        })
    }
}

pub struct PollGuard {
    limiter: Arc<Limiter>,
    key: String,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        let mut p = self.limiter.polls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = p.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                p.remove(&self.key);
            }
        }
    }
}

/// Whom a request's costs are counted against: its bearer token (hashed), else its
/// client certificate's edge, else its source address.
fn credential(req: &Request) -> String {
    if let Some(t) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return format!("token:{}", &crate::auth::hash(t.trim())[..24]);
    }
    let peer = req.extensions().get::<Peer>();
    if let Some(edge) = peer
        .and_then(|p| p.cert.as_ref())
        .and_then(|c| c.edge_id.as_ref())
    {
        return format!("edge:{edge}");
    }
    match peer.and_then(|p| p.addr) {
        Some(a) => format!("addr:{}", a.ip()),
        None => "addr:?".to_string(),
    }
}

fn is_long_poll(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.strip_prefix("waitSeconds="))
            .any(|v| v.parse::<u64>().map_or(true, |n| n > 0))
    })
}

fn too_many(message: String, retry_after: u64) -> Response {
    let mut r = HttpError {
        status: StatusCode::TOO_MANY_REQUESTS,
        error: ApiError::new(Code::ResourceExhausted, message),
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub async fn layer(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let l = st.limits();
    if l.rate <= 0.0 && l.long_polls == 0 {
        return next.run(req).await;
    }
    let key = credential(&req);
    if let Err(wait) = st.limiter.take(&key, &l, Instant::now()) {
        // The refusal itself is held back a second: a client that ignores Retry-After
        // then costs the server one sleeping task per connection, not a request as fast
        // as it can send them (BENCHMARKS.md, the flood).
        tokio::time::sleep(REFUSAL_DELAY).await;
        return too_many(
            format!(
                "more than {} requests per second (bursts of {}) with this credential; try again in {wait} s",
                l.rate, l.burst
            ),
            wait,
        );
    }
    if l.long_polls > 0 && is_long_poll(&req) {
        let Some(_guard) = st.limiter.open_poll(&key, l.long_polls) else {
            return too_many(
                format!(
                    "{} long-polls (waitSeconds) are open with this credential already; wait for one to end",
                    l.long_polls
                ),
                1,
            );
        };
        return next.run(req).await;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refill_time(l: &Limits, tokens: f64) -> Duration {
        Duration::from_secs_f64(tokens / l.rate)
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate_and_each_key_its_own() {
        let l = Limits {
            rate: 10.0,
            burst: 5.0,
            long_polls: 0,
        };
        let lim = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(lim.take("a", &l, t0).is_ok());
        }
        assert_eq!(lim.take("a", &l, t0), Err(1));
        assert!(
            lim.take("b", &l, t0).is_ok(),
            "another credential has its own bucket"
        );
        let later = t0 + refill_time(&l, 1.0);
        assert!(lim.take("a", &l, later).is_ok());
        assert!(lim.take("a", &l, later).is_err());
        let idle = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(
                lim.take("a", &l, idle).is_ok(),
                "refilled to the burst, not beyond"
            );
        }
        assert!(lim.take("a", &l, idle).is_err());
    }

    #[test]
    fn long_polls_are_counted_per_credential_until_they_end() {
        let lim = Arc::new(Limiter::default());
        let a = lim.open_poll("a", 2).expect("1");
        let _b = lim.open_poll("a", 2).expect("2");
        assert!(lim.open_poll("a", 2).is_none());
        assert!(lim.open_poll("other", 2).is_some());
        drop(a);
        assert!(lim.open_poll("a", 2).is_some());
    }

    #[test]
    fn many_idle_callers_do_not_grow_the_table_forever() {
        let l = Limits {
            rate: 1000.0,
            burst: 1.0,
            long_polls: 0,
        };
        let lim = Limiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            let _ = lim.take(&format!("k{i}"), &l, t0);
        }
        let _ = lim.take("new", &l, t0 + Duration::from_secs(1));
        assert!(lim.buckets.lock().expect("lock").len() < 10);
    }
}
