//! One place where errors become HTTP responses, and a JSON extractor whose errors name
//! the field that is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cic_model::{ApiError, Code};
use serde::de::DeserializeOwned;

#[derive(Debug)]
pub struct AppError(pub ApiError);

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError(e)
    }
}

impl From<cic_store::Error> for AppError {
    fn from(e: cic_store::Error) -> Self {
        tracing::error!("store: {e}");
        AppError(ApiError::new(Code::Internal, "internal storage error"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

pub type ApiResult<T> = Result<T, AppError>;

/// JSON body; a parse error says where: `ipv4Peering.peerBgpAsn: invalid type: string …`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            AppError(ApiError::new(
                Code::InvalidArgument,
                format!("request body: {e}"),
            ))
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// A JSON request body as `T`; errors name the field that is wrong.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.is_empty() {
        return Err(AppError(ApiError::new(
            Code::InvalidArgument,
            "request body is empty; a JSON object is required",
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("request body: {inner}")
        } else {
            format!("{path}: {inner}")
        };
        AppError(
            ApiError::field(if path.is_empty() { "." } else { &path }, inner.to_string())
                .with_message(msg),
        )
    })
}

trait WithMessage {
    fn with_message(self, m: String) -> Self;
}

impl WithMessage for ApiError {
    fn with_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}
