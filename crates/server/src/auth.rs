//! Bearer tokens. Only SHA-256 hashes are stored; a token is shown once, when made.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cic_model::{ApiError, Code};
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::clock::unix_now;
use crate::error::AppError;
use crate::listen::{Peer, PeerCert};

/// Who is calling: the operator (admin tokens stand above every folder), a subject whose
/// rights come from role bindings on folders, or an edge agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { subject: String },
    User { subject: String },
    Edge { edge_id: String },
}

impl Principal {
    pub fn name(&self) -> String {
        match self {
            Principal::Admin { subject } => format!("admin:{subject}"),
            Principal::User { subject } => subject.clone(),
            Principal::Edge { edge_id } => format!("edge:{edge_id}"),
        }
    }

    /// The identity key used for role bindings and idempotency scopes.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Admin { subject } | Principal::User { subject } => subject,
            Principal::Edge { edge_id } => edge_id,
        }
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        match self {
            Principal::Admin { .. } => Ok(()),
            _ => Err(AppError(ApiError::new(
                Code::PermissionDenied,
                "this method needs an admin token",
            ))),
        }
    }

    pub fn edge_id(&self) -> Result<&str, AppError> {
        match self {
            Principal::Edge { edge_id } => Ok(edge_id),
            _ => Err(AppError(ApiError::new(
                Code::PermissionDenied,
                "this method is for edges (use an edge token)",
            ))),
        }
    }

    /// Tenant methods: every principal but an edge may call them.
    pub fn require_user(&self) -> Result<(), AppError> {
        match self {
            Principal::Edge { .. } => Err(AppError(ApiError::new(
                Code::PermissionDenied,
                "edge tokens may only sync",
            ))),
            _ => Ok(()),
        }
    }
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 random bytes, hex: 256 bits of entropy.
pub fn new_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// How edges may authenticate, and the CA that issues their certificates.
#[derive(Clone)]
pub struct EdgeAuth {
    /// A client certificate naming the edge (`--client-ca`).
    pub certificates: bool,
    /// An edge token (on unless the server has a client CA and was not told to keep them).
    pub tokens: bool,
    /// The CA whose key the server holds (`--client-ca-key`): it issues edges'
    /// certificates.
    pub issuer: Option<Arc<crate::pki::Ca>>,
}

impl Default for EdgeAuth {
    fn default() -> Self {
        EdgeAuth {
            certificates: false,
            tokens: true,
            issuer: None,
        }
    }
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth")
            .field("certificates", &self.certificates)
            .field("tokens", &self.tokens)
            .field("issuer", &self.issuer.is_some())
            .finish()
    }
}

fn unauth(m: impl Into<String>) -> AppError {
    AppError(ApiError::new(Code::Unauthenticated, m))
}

/// The edge a verified client certificate names, unless it was revoked.
async fn edge_by_certificate(state: &AppState, cert: &PeerCert) -> Result<Principal, AppError> {
    let Some(edge_id) = &cert.edge_id else {
        return Err(unauth(
            "the client certificate names no edge (a URI SAN spiffe://cic/edge/ID)",
        ));
    };
    if let Some(at) = state
        .store
        .edge_certificate_revoked_at(&cert.serial)
        .await?
        && at <= unix_now()
    {
        return Err(unauth(format!(
            "the client certificate with serial {} was revoked at {}",
            cert.serial,
            crate::clock::of_unix(at)
        )));
    }
    Ok(Principal::Edge {
        edge_id: edge_id.clone(),
    })
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let edges = &state.config.edge_auth;
        let cert = parts
            .extensions
            .get::<Peer>()
            .and_then(|p| p.cert.clone())
            .filter(|_| edges.certificates);
        let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return match &cert {
                Some(c) => edge_by_certificate(state, c).await,
                None => Err(unauth("missing Authorization: Bearer <token>")),
            };
        };
        let t = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauth("Authorization must be \"Bearer <token>\""))?;
        principal_of_token(state, t, cert.as_ref()).await
    }
}

/// Who a bearer token (an API key, the operator's token, an edge's token) names, unless
/// it is unknown or expired. `cert`: the client certificate the request came with, which
/// must name the same edge as an edge token.
pub async fn principal_of_token(
    state: &AppState,
    t: &str,
    cert: Option<&PeerCert>,
) -> Result<Principal, AppError> {
    let edges = &state.config.edge_auth;
    let rec = state
        .store
        .token(&hash(t))
        .await?
        .ok_or_else(|| unauth("unknown token"))?;
    if let Some(at) = rec.expires_at
        && at <= unix_now()
    {
        return Err(unauth(format!(
            "this token expired at {}",
            crate::clock::of_unix(at)
        )));
    }
    match rec.role.as_str() {
        "admin" => Ok(Principal::Admin {
            subject: rec.subject,
        }),
        "edge" => {
            if let Some(c) = cert
                && c.edge_id.as_deref() != Some(rec.subject.as_str())
            {
                return Err(unauth(
                    "the edge token and the client certificate name different edges",
                ));
            }
            if !edges.tokens {
                return Err(unauth(
                    "this server authenticates edges by certificate, not by token",
                ));
            }
            Ok(Principal::Edge {
                edge_id: rec.subject,
            })
        }
        "user" => Ok(Principal::User {
            subject: rec.subject,
        }),
        _ => Err(unauth("token has an unknown role")),
    }
}
