//! `/auth`: signup, signin, refresh, me, and the sessions: logout, logout-all, the list,
//! ending one, changing the password.

use axum::extract::State;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::client::{ClientIp, RequestOrigin};
use super::extract::{bearer_token, AuthUser, Json, Path};
use crate::domain::{Email, Password, User, UserName, Violations};
use crate::error::{ErrorEnvelope, Result};
use crate::limits::Limit;
use crate::service::accounts::{self, Device, Signup};
use crate::service::{AuthSession, Services};
use crate::store::Session;

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(refresh))
        .routes(routes!(me))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(change_password))
}

/// The device a request comes from: its user agent and client address (a session records
/// it; so does a contact message).
pub(super) fn device(headers: &HeaderMap, client: ClientIp) -> Device {
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    Device::new(user_agent, Some(client.key()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupInput {
    /// 2–100 letters, spaces, `-`, `'`, `.`, with a letter; unique regardless of case.
    #[schema(value_type = String, required = true, min_length = 2, max_length = 100, pattern = r"^[.'-]*\p{L}([\p{L} .'-]*[\p{L}.'-])?$")]
    name: Option<String>,
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30})?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}\.[A-Za-z]{2,20}$")]
    email: Option<String>,
    /// 8–128 characters with an upper-case and a lower-case letter, a digit and a special
    /// character; common passwords are refused.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128)]
    password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SigninInput {
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30})?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}\.[A-Za-z]{2,20}$")]
    email: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutAllResponse {
    message: String,
    user_id: Uuid,
    timestamp: DateTime<Utc>,
    /// How many sessions were ended, the presented one included.
    sessions_ended: usize,
}

/// A signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    id: Uuid,
    created_at: DateTime<Utc>,
    /// When the session last refreshed its token (or was created).
    last_used_at: DateTime<Utc>,
    /// No refresh past this.
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    /// Whether this is the session of the token that asks.
    current: bool,
}

impl SessionInfo {
    fn new(session: Session, current: Uuid) -> Self {
        Self {
            current: session.id == current,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChangeInput {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    current_password: Option<String>,
    /// Validated like the sign-up password.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128)]
    new_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChangeResponse {
    message: String,
    /// How many other sessions were ended.
    sessions_ended: usize,
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
    headers: HeaderMap,
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
    let session = accounts::signup(&svc, signup_input, &device(&headers, client)).await?;
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
    origin: RequestOrigin,
    headers: HeaderMap,
    Json(input): Json<SigninInput>,
) -> Result<Json<TokenResponse>> {
    svc.limits.enforce(Limit::SigninIp, &client.key()).await?;
    let mut v = Violations::new();
    let email =
        required(&mut v, "email", &input.email).and_then(|e| v.check("email", Email::parse(e)));
    let password = required(&mut v, "password", &input.password)
        .and_then(|p| v.check("password", Password::for_sign_in(p.to_string())));
    let (email, password) = v.finish(|| Some((email?, password?)))?;
    let device = device(&headers, client);
    let session = accounts::signin(&svc, &email, &password, &device, origin.as_str()).await?;
    Ok(Json(session.into()))
}

/// End the presented token's session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Signed out; the session's tokens no longer work", body = LogoutResponse),
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

/// End every session of the user, this one included.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth",
    responses(
        (status = 200, description = "Signed out everywhere; every socket of the user closes (4003)", body = LogoutAllResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn logout_all(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<LogoutAllResponse>> {
    let (timestamp, sessions_ended) = accounts::logout_all(&svc, &auth).await?;
    Ok(Json(LogoutAllResponse {
        message: "Signed out of every session".into(),
        user_id: auth.user_id,
        timestamp,
        sessions_ended,
    }))
}

/// Rotate the token: a new token for the same session; the presented one stops working
/// at once. Refused past the session's absolute lifetime (`SESSION_MAX_AGE`); presenting a
/// token that was already rotated out ends the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    responses(
        (status = 200, description = "A new token", body = TokenResponse),
        (status = 401, description = "Not authenticated, session ended or expired, or token already rotated (the session is then ended)", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn refresh(
    State(svc): State<Services>,
    origin: RequestOrigin,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>> {
    let token = bearer_token(&headers)?;
    Ok(Json(
        accounts::refresh(&svc, token, origin.as_str())
            .await?
            .into(),
    ))
}

/// The user's open sessions, most recently used first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses(
        (status = 200, description = "The sessions", body = [SessionInfo]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_sessions(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<Vec<SessionInfo>>> {
    let current = auth.claims.sid;
    let sessions = accounts::sessions(&svc, &auth).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfo::new(s, current))
            .collect(),
    ))
}

/// End one of the user's sessions: its tokens stop working and its sockets close (4003).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such open session of this user", body = ErrorEnvelope),
        (status = 422, description = "Not a session id", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn end_session(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    accounts::end_session(&svc, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password; every other session ends.
#[utoipa::path(put, path = "/auth/password", tag = "auth", request_body = PasswordChangeInput,
    responses(
        (status = 200, description = "Changed; the other sessions ended", body = PasswordChangeResponse),
        (status = 401, description = "Not authenticated, or the current password is wrong (INVALID_CREDENTIALS)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body or new password", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn change_password(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Json(input): Json<PasswordChangeInput>,
) -> Result<Json<PasswordChangeResponse>> {
    let mut v = Violations::new();
    let current = required(&mut v, "current_password", &input.current_password)
        .and_then(|p| v.check("current_password", Password::for_sign_in(p.to_string())));
    let new = required(&mut v, "new_password", &input.new_password)
        .and_then(|p| v.check("new_password", Password::parse(p.to_string())));
    let (current, new) = v.finish(|| Some((current?, new?)))?;
    let sessions_ended = accounts::change_password(&svc, &auth, &current, &new).await?;
    Ok(Json(PasswordChangeResponse {
        message: "Password changed; other sessions were signed out".into(),
        sessions_ended,
    }))
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn me(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    origin: RequestOrigin,
) -> Result<Json<User>> {
    Ok(Json(accounts::me(&svc, &auth, origin.as_str()).await?))
}
