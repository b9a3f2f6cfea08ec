//! Extractors whose rejections are the API's error envelope (never axum's plain text), and
//! the bearer-token extractor.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde::Serialize;

use crate::auth::Authenticated;
use crate::domain::Violations;
use crate::error::{Error, FieldError};
use crate::limits::Limit;
use crate::service::Services;

/// `axum::Json` with the API's rejections: 422 for bad JSON or a body that is not a JSON
/// object, 415 without a JSON content type, 413 over the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        parse_object(value).map(Json)
    }
}

/// Every request body of this API is a JSON object; serde alone would also take a struct
/// written as an array of its field values (`[true]` for `{"is_read": true}`).
pub fn parse_object<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    if !value.is_object() {
        return Err(Error::invalid(
            "body",
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| Error::Validation {
        message: "Request body is not valid JSON for this endpoint".into(),
        details: vec![FieldError::new("body", e.to_string())],
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType(
                "Expected a request body with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(bytes) if bytes.status().as_u16() == 413 => {
                Error::PayloadTooLarge("Request body is too large".into())
            }
            other => Error::Validation {
                message: "Request body is not valid JSON for this endpoint".into(),
                details: vec![FieldError::new("body", other.body_text())],
            },
        }
    }
}

/// `axum::extract::Path` with 422 for a malformed path parameter.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::Validation {
            message: "Invalid path parameter".into(),
            details: vec![FieldError::new("path", rejection.body_text())],
        }
    }
}

/// The query string as decoded `(key, value)` pairs, repeated keys kept in order.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(raw)
            .map(QueryPairs)
            .map_err(|e| Error::invalid("query", format!("malformed query string: {e}")))
    }
}

impl QueryPairs {
    /// The value of a key given once; given twice is an error.
    pub fn single(&self, key: &str) -> Result<Option<&str>, FieldError> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == key {
                if found.is_some() {
                    return Err(FieldError::new(key, "must be given at most once"));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// The trimmed value of a key given at most once; a repeated key is recorded in `v`.
    pub fn single_or_record(&self, key: &str, v: &mut Violations) -> Option<&str> {
        match self.single(key) {
            Ok(value) => value.map(str::trim),
            Err(e) => {
                v.add(&e.field, e.message);
                None
            }
        }
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The user behind `Authorization: Bearer <token>`. No header or an empty bearer token is
/// 401 `AUTH_REQUIRED`; anything else that is not a valid, unrevoked token of an existing
/// user is 401 `INVALID_TOKEN`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Authenticated);

impl FromRequestParts<Services> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Services,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        let auth = svc.authenticator.authenticate(token).await?;
        // Every authenticated request spends from its user's budget.
        let budget = if parts.method == Method::GET || parts.method == Method::HEAD {
            Limit::UserRead
        } else {
            Limit::UserWrite
        };
        svc.limits
            .enforce(budget, &auth.user_id.to_string())
            .await?;
        Ok(AuthUser(auth))
    }
}

/// The token of `Authorization: Bearer <token>`: `AUTH_REQUIRED` when there is none,
/// `INVALID_TOKEN` for another scheme.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Err(Error::AuthRequired);
    };
    let value = header.to_str().map_err(|_| Error::InvalidToken)?.trim();
    if value.is_empty() {
        return Err(Error::AuthRequired);
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::InvalidToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::AuthRequired);
    }
    Ok(token)
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null`
/// (`Some(None)`). Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
