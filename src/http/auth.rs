//! `/auth`: signup, signin, logout, refresh, me.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::client::ClientIp;
use super::extract::{AuthUser, Json};
use crate::domain::{Email, Password, User, UserName, Violations};
use crate::error::{ErrorEnvelope, Result};
use crate::limits::Limit;
use crate::service::accounts::{self, Signup};
use crate::service::{AuthSession, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(logout))
        .routes(routes!(refresh))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupInput {
    /// 2–100 letters, spaces, `-`, `'`, `.`; unique regardless of case.
    name: Option<String>,
    email: Option<String>,
    /// 8–128 characters with an upper-case and a lower-case letter, a digit and a special
    /// character; common passwords are refused.
    password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SigninInput {
    email: Option<String>,
    password: Option<String>,
}

/// A token and the user it belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: i64,
    user: User,
}

impl From<AuthSession> for TokenResponse {
    fn from(session: AuthSession) -> Self {
        Self {
            token: session.token.token,
            token_type: "Bearer",
            expires_in: session.token.expires_in,
            user: session.user,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutResponse {
    message: String,
    user_id: Uuid,
    timestamp: DateTime<Utc>,
}

fn required<'a>(v: &mut Violations, field: &str, value: &'a Option<String>) -> Option<&'a str> {
    if value.is_none() {
        v.add(field, format!("{field} is required"));
    }
    value.as_deref()
}

/// Create an account and sign in.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupInput,
    responses(
        (status = 201, description = "Account created", body = TokenResponse),
        (status = 409, description = "Email or name already taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ))]
async fn signup(
    State(svc): State<Services>,
    client: ClientIp,
    Json(input): Json<SignupInput>,
) -> Result<(StatusCode, Json<TokenResponse>)> {
    svc.limits.enforce(Limit::Signup, &client.key()).await?;
    let mut v = Violations::new();
    let name =
        required(&mut v, "name", &input.name).and_then(|n| v.check("name", UserName::parse(n)));
    let email =
        required(&mut v, "email", &input.email).and_then(|e| v.check("email", Email::parse(e)));
    let password = required(&mut v, "password", &input.password)
        .and_then(|p| v.check("password", Password::parse(p.to_string())));
    let signup_input = v.finish(|| {
        Some(Signup {
            name: name?,
            email: email?,
            password: password?,
        })
    })?;
    let session = accounts::signup(&svc, signup_input).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// Sign in with e-mail and password.
#[utoipa::path(post, path = "/auth/signin", tag = "auth", request_body = SigninInput,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong e-mail or password", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ))]
async fn signin(
    State(svc): State<Services>,
    client: ClientIp,
    Json(input): Json<SigninInput>,
) -> Result<Json<TokenResponse>> {
    svc.limits.enforce(Limit::SigninIp, &client.key()).await?;
    let mut v = Violations::new();
    let email =
        required(&mut v, "email", &input.email).and_then(|e| v.check("email", Email::parse(e)));
    let password = required(&mut v, "password", &input.password)
        .and_then(|p| v.check("password", Password::for_sign_in(p.to_string())));
    let (email, password) = v.finish(|| Some((email?, password?)))?;
    let session = accounts::signin(&svc, &email, &password).await?;
    Ok(Json(session.into()))
}

/// Revoke the presented token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Signed out; the token no longer works", body = LogoutResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn logout(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<LogoutResponse>> {
    let timestamp = accounts::logout(&svc, &auth).await?;
    Ok(Json(LogoutResponse {
        message: "Signed out".into(),
        user_id: auth.user_id,
        timestamp,
    }))
}

/// A new token for the same user.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    responses(
        (status = 200, description = "A new token", body = TokenResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn refresh(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<TokenResponse>> {
    Ok(Json(accounts::refresh(&svc, &auth).await?.into()))
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn me(State(svc): State<Services>, AuthUser(auth): AuthUser) -> Result<Json<User>> {
    Ok(Json(accounts::me(&svc, &auth).await?))
}
