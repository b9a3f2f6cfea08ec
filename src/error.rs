//! The one error type of the service and the JSON envelope every error response uses:
//! `{"success": false, "error": {"code", "message", "details"?}}`.
//!
//! Internal failures are logged here, with their cause, and reach the client only as
//! `INTERNAL_ERROR` with a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required")]
    AuthRequired,
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A mailed link's token (verification, password reset) that is unknown, used or
    /// expired.
    #[error("This link is invalid, was already used or has expired; ask for a new one")]
    InvalidMailToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The account holds as much of something as it may (MAX_TASKS_PER_USER).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    #[error(
        "events after the requested seq are no longer stored; reload and continue from last_seq"
    )]
    EventsExpired { last_seq: i64 },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// A rate limit is spent: 429 with `Retry-After` and the `RateLimit-*` headers.
    #[error("Too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        limit: u32,
        reset: std::time::Duration,
        retry_after: std::time::Duration,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "Request validation failed".to_string(),
        };
        Self::Validation { message, details }
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::AuthRequired | Self::InvalidToken | Self::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::InvalidMailToken => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::QuotaExceeded(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EventsExpired { .. } => StatusCode::GONE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidMailToken => "INVALID_MAIL_TOKEN",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "RESOURCE_NOT_FOUND",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Conflict(_) => "CONFLICT",
            Self::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::EventsExpired { .. } => "EVENTS_EXPIRED",
            Self::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Self::Timeout(_) => "REQUEST_TIMEOUT",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The envelope for this error, after logging what must not reach the client.
    pub fn envelope(&self) -> ErrorEnvelope {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "An internal error occurred".to_string()
            }
            other => other.to_string(),
        };
        let details = match self {
            Self::Validation { details, .. } => Some(details.clone()),
            _ => None,
        };
        ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code().to_string(),
                message,
                details,
            },
            last_seq: match self {
                Self::EventsExpired { last_seq } => Some(*last_seq),
                _ => None,
            },
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
    /// With `EVENTS_EXPIRED` only: the seq to continue from after reloading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `VALIDATION_ERROR`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems; present on validation errors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.envelope())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Overload or an outage: the client may retry, and should wait a moment first.
        if let Self::Unavailable(_) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if let Self::RateLimited {
            limit,
            reset,
            retry_after,
        } = self
        {
            let seconds = |d: std::time::Duration| HeaderValue::from(d.as_secs_f64().ceil() as u64);
            headers.insert(
                header::RETRY_AFTER,
                seconds(retry_after.max(std::time::Duration::from_secs(1))),
            );
            headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limit));
            headers.insert(RATELIMIT_REMAINING, HeaderValue::from(0));
            headers.insert(RATELIMIT_RESET, seconds(reset));
        }
        response
    }
}

pub const RATELIMIT_LIMIT: header::HeaderName = header::HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: header::HeaderName =
    header::HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: header::HeaderName = header::HeaderName::from_static("ratelimit-reset");

/// Result alias used throughout the service.
pub type Result<T, E = Error> = std::result::Result<T, E>;
