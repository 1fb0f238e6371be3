//! The one error type of the API. Every failure leaves a handler as an
//! [`ApiError`] and reaches the client as
//! `{ "error": { "code", "message" } }` (plus `details` for some): a stable
//! machine-readable `code` and a human sentence. What went wrong inside
//! (Redis, MongoDB, a bug) is logged with the request's span — which
//! carries the request id — and the client only learns that it was our
//! fault (500) or that a dependency is unavailable (503).

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flashsale::ClientError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be served as asked; the client can act on it.
    #[error("{} {}: {}", .0.status, .0.code, .0.message)]
    Client(Box<ClientFault>),
    /// Redis or MongoDB did not answer in time; worth retrying.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// A bug or a broken invariant.
    #[error("internal: {0:#}")]
    Internal(anyhow::Error),
}

/// What the client is told about a request it can fix (boxed in
/// [`ApiError`] so that results stay small).
#[derive(Debug)]
pub struct ClientFault {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case (e.g. `sold_out`, `invalid_email`).
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// Extra facts for some codes (e.g. `startsAt` for `sale_not_started`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn client(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Client(Box::new(ClientFault {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }))
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, code, message)
    }

    pub fn sale_not_found() -> Self {
        Self::not_found("sale_not_found", "no such flash sale")
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Unavailable(error.into())
    }

    /// Adds `details` to a client error (ignored on the others).
    pub fn with_details(mut self, value: Value) -> Self {
        if let ApiError::Client(fault) = &mut self {
            fault.details = Some(value);
        }
        self
    }

    /// Adds a `Retry-After` header to a client error.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let ApiError::Client(fault) = &mut self {
            fault.retry_after_secs = Some(secs);
        }
        self
    }

    /// The error code the client sees.
    pub fn code(&self) -> &str {
        match self {
            ApiError::Client(fault) => &fault.code,
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Client(fault) => fault.status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON error response for a status, code and message.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<Value>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
            details,
        },
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client(fault) => {
                let ClientFault {
                    status,
                    code,
                    message,
                    details,
                    retry_after_secs,
                } = *fault;
                let mut response = error_response(status, &code, &message, details);
                if let Some(secs) = retry_after_secs {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
            ApiError::Unavailable(error) => {
                // Logged inside the request's span, which has the request id.
                tracing::warn!(error = format!("{error:#}"), "dependency unavailable");
                let mut response = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backing service is unavailable; try again shortly",
                    None,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                    None,
                )
            }
        }
    }
}

impl From<mongodb::error::Error> for ApiError {
    fn from(error: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match *error.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. } => ApiError::Unavailable(error.into()),
            _ => ApiError::Internal(error.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ClientError::Redis(error).into()
    }
}

impl From<ClientError> for ApiError {
    /// Engine errors that reach here were not expected by the caller (which
    /// handles NOSALE and CONFLICT itself): arguments are validated before
    /// the engine sees them, so an `ERR` reply is our bug, not the client's.
    fn from(error: ClientError) -> Self {
        // Redis away, loading, or a cluster slot between primaries during a
        // failover: 503 with Retry-After, never a 500.
        let unrecoverable = matches!(&error, ClientError::Redis(e) if e.is_unrecoverable_error());
        if error.is_unavailable() || unrecoverable {
            ApiError::Unavailable(error.into())
        } else {
            ApiError::Internal(error.into())
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::Internal(error.into())
    }
}
