//! `ApiError`: the one error type every handler returns, rendered as a JSON body
//! `{"error": {"code": "...", "message": "..."}}` with a status that tells the client what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Not authenticated (no or expired session, unknown token).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed (role, CSRF).
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; retry after the given seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u64 },
    #[error("the database is temporarily unavailable; retry in a few seconds")]
    Unavailable,
    /// The phone system cannot take commands right now.
    #[error("{0}")]
    PbxUnavailable(String),
    #[error("internal error; see the server log for request details")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::PbxUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "pbx_unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<storage::StorageError> for ApiError {
    fn from(err: storage::StorageError) -> Self {
        if err.is_transient() {
            tracing::warn!(error = %err, "Storage is temporarily unavailable.");
            ApiError::Unavailable
        } else {
            tracing::error!(error = %err, "Storage request failed.");
            ApiError::Internal
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_s.into());
        }
        response
    }
}
