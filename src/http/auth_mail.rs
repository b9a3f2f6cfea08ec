//! `/auth` routes that work through mailed links: e-mail verification and password reset.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::device;
use super::client::{ClientIp, RequestOrigin};
use super::extract::{AuthUser, Json};
use crate::domain::{Email, Password, Profile, Violations};
use crate::error::{ErrorEnvelope, Result};
use crate::service::{accounts, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(request_verification))
        .routes(routes!(verify_email))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailTokenInput {
    /// The token from the mailed link.
    #[schema(value_type = String, required = true, min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")]
    token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerifiedResponse {
    message: String,
    profile: Profile,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordInput {
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30})?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}\.[A-Za-z]{2,20}$")]
    email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordInput {
    /// The token from the mailed link.
    #[schema(value_type = String, required = true, min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")]
    token: Option<String>,
    /// Validated like the sign-up password.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128)]
    new_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetPasswordResponse {
    message: String,
    /// How many sessions were ended (all of the account's).
    sessions_ended: usize,
}

/// The token field, present and not blank.
fn token(v: &mut Violations, value: Option<String>) -> Option<String> {
    match value
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        Some(token) => Some(token),
        None => {
            v.add("token", "token is required");
            None
        }
    }
}

/// Mail a new verification link to the account's address.
#[utoipa::path(post, path = "/auth/verify-email/request", tag = "auth",
    responses(
        (status = 202, description = "A verification mail is on its way", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 409, description = "The address is verified already", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn request_verification(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<(StatusCode, Json<MessageResponse>)> {
    accounts::request_email_verification(&svc, &auth).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: "A verification link is on its way to your e-mail address".into(),
        }),
    ))
}

/// Verify the e-mail address with the token of a mailed link (no sign-in needed: the link
/// may be opened on another device). A token works once, for 24 hours.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = EmailTokenInput,
    responses(
        (status = 200, description = "Verified", body = EmailVerifiedResponse),
        (status = 400, description = "Unknown, used or expired token (INVALID_MAIL_TOKEN)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ))]
async fn verify_email(
    State(svc): State<Services>,
    origin: RequestOrigin,
    Json(input): Json<EmailTokenInput>,
) -> Result<Json<EmailVerifiedResponse>> {
    let mut v = Violations::new();
    let token = token(&mut v, input.token);
    let token = v.finish(|| token)?;
    let profile = accounts::verify_email(&svc, &token, origin.as_str()).await?;
    Ok(Json(EmailVerifiedResponse {
        message: "Your e-mail address is verified".into(),
        profile,
    }))
}

/// Ask for a password-reset link. The answer is the same whether or not an account has
/// the address (and so is the work done before answering).
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPasswordInput,
    responses(
        (status = 202, description = "If an account has this address, a reset link is on its way", body = MessageResponse),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ))]
async fn forgot_password(
    State(svc): State<Services>,
    client: ClientIp,
    headers: HeaderMap,
    Json(input): Json<ForgotPasswordInput>,
) -> Result<(StatusCode, Json<MessageResponse>)> {
    let mut v = Violations::new();
    let email = match input.email.as_deref() {
        Some(raw) => v.check("email", Email::parse(raw)),
        None => {
            v.add("email", "email is required");
            None
        }
    };
    let email = v.finish(|| email)?;
    accounts::forgot_password(&svc, &email, &device(&headers, client)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: "If an account has this address, a link to reset its password is on its \
                      way"
            .into(),
        }),
    ))
}

/// Choose a new password with the token of a reset link; every session of the account
/// ends (its sockets close with 4003). A token works once, for one hour.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPasswordInput,
    responses(
        (status = 200, description = "Password changed; every session ended", body = ResetPasswordResponse),
        (status = 400, description = "Unknown, used or expired token (INVALID_MAIL_TOKEN)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body or new password", body = ErrorEnvelope),
    ))]
async fn reset_password(
    State(svc): State<Services>,
    Json(input): Json<ResetPasswordInput>,
) -> Result<Json<ResetPasswordResponse>> {
    let mut v = Violations::new();
    let token = token(&mut v, input.token);
    let password = match input.new_password {
        Some(raw) => v.check("new_password", Password::parse(raw)),
        None => {
            v.add("new_password", "new_password is required");
            None
        }
    };
    let (token, password) = v.finish(|| Some((token?, password?)))?;
    let sessions_ended = accounts::reset_password(&svc, &token, &password).await?;
    Ok(Json(ResetPasswordResponse {
        message: "Your password was changed; sign in with it on every device".into(),
        sessions_ended,
    }))
}
