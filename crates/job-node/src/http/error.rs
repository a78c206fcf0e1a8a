//! Errors as HTTP responses: a status and `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::ApiError;

/// An error answer: the status code and the message of the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub(crate) struct HttpError {
    /// The status code.
    pub status: StatusCode,
    /// The `error` field of the body, at most
    /// [`cluster_router::MAX_ERROR_TEXT`] bytes.
    pub message: String,
}

impl HttpError {
    /// An error with `status` and `message`, cut to
    /// [`cluster_router::MAX_ERROR_TEXT`] bytes: messages quote what was
    /// refused (a field's name, a query parameter), which the client may
    /// have made megabytes long.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match cluster_router::bound_text(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        HttpError { status, message }
    }

    /// A 400 Bad Request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 422 Unprocessable Entity: well-formed JSON that is not a valid job.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// A 404 Not Found.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(err: ApiError) -> Self {
        let status = match &err {
            ApiError::InvalidJob(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => {
                tracing::warn!(error = %err, "HTTP backend error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        HttpError::new(status, err.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for HttpError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        HttpError::new(rejection.status(), rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for HttpError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        HttpError::new(rejection.status(), rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for HttpError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        HttpError::new(rejection.status(), rejection.body_text())
    }
}
