//! The one error shape of the public API: `{code, message, details}` with gRPC-style
//! codes (google.rpc.Code), mapped to HTTP status codes at the edge of the server.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    Unimplemented,
    Unavailable,
    Internal,
    /// A concurrent request got in the way; retry.
    Aborted,
}

impl Code {
    /// HTTP status for this code (the mapping of google.api.http / grpc-gateway).
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument => 400,
            Code::FailedPrecondition => 409,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Internal => 500,
        }
    }
}

/// One violated rule, naming the field (JSON path in camelCase) it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, schemars::JsonSchema,
)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldViolation>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 about one field: the message names the field and the rule.
    pub fn field(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        ApiError {
            code: Code::InvalidArgument,
            message: format!("{field}: {description}"),
            details: vec![FieldViolation {
                field: field.to_string(),
                description,
            }],
        }
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(Code::NotFound, format!("{kind} {id:?} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(Code::AlreadyExists, message)
    }

    /// A conflict caused by one field's value (a VLAN already used): named in `details`
    /// too, so a form can show it beside the field.
    pub fn conflict_at(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            code: Code::AlreadyExists,
            details: vec![FieldViolation {
                field: field.to_string(),
                description: message.clone(),
            }],
            message,
        }
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        ApiError::new(Code::FailedPrecondition, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Code::Internal, message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
