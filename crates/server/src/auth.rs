//! Bearer tokens. Only SHA-256 hashes are stored; a token is shown once, when made.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cic_model::{ApiError, Code};
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::AppError;

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

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauth = |m: &str| AppError(ApiError::new(Code::Unauthenticated, m));
        let h = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauth("missing Authorization: Bearer <token>"))?;
        let t = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauth("Authorization must be \"Bearer <token>\""))?;
        let rec = state
            .store
            .token(&hash(t))
            .await?
            .ok_or_else(|| unauth("unknown token"))?;
        match rec.role.as_str() {
            "admin" => Ok(Principal::Admin {
                subject: rec.subject,
            }),
            "edge" => Ok(Principal::Edge {
                edge_id: rec.subject,
            }),
            "user" => Ok(Principal::User {
                subject: rec.subject,
            }),
            _ => Err(unauth("token has an unknown role")),
        }
    }
}
