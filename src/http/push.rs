//! `/push`: browsers' web-push subscriptions (the seed's routes), a test message, and the
//! VAPID public key a browser subscribes with.

use axum::extract::State;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json};
use crate::delivery::push::PushSubscription;
use crate::error::{Error, ErrorEnvelope, Result};
use crate::service::push::{self, NewPushSubscription};
use crate::service::Services;
use crate::store::PushSubscriptionRecord;

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(subscribe))
        .routes(routes!(unsubscribe))
        .routes(routes!(subscriptions))
        .routes(routes!(send_test))
        .routes(routes!(vapid_public_key))
}

/// The keys of a subscription, as `PushSubscription.toJSON()` gives them.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url (65 bytes, uncompressed).
    #[schema(value_type = String, required = true, max_length = 88, pattern = r"^[A-Za-z0-9_-]+=*$")]
    p256dh: Option<String>,
    /// The browser's auth secret, base64url (16 bytes).
    #[schema(value_type = String, required = true, max_length = 24, pattern = r"^[A-Za-z0-9_-]+=*$")]
    auth: Option<String>,
}

/// A browser's push subscription (`PushSubscription.toJSON()`; `expirationTime` is
/// ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscribeInput {
    /// The push service's URL for this browser (`https://`).
    #[schema(value_type = String, required = true, max_length = 2048)]
    endpoint: Option<String>,
    #[schema(value_type = PushKeys, required = true)]
    keys: Option<PushKeys>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnsubscribeInput {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2048)]
    endpoint: Option<String>,
}

/// A saved subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionInfo {
    id: Uuid,
    endpoint: String,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<PushSubscriptionRecord> for SubscriptionInfo {
    fn from(record: PushSubscriptionRecord) -> Self {
        Self {
            id: record.id,
            endpoint: record.endpoint,
            user_agent: record.user_agent,
            created_at: record.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushTestResponse {
    message: String,
    /// How many subscriptions the test message was queued for.
    subscriptions: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VapidKeyResponse {
    /// The VAPID public key (base64url, 65 bytes): the `applicationServerKey` of
    /// `pushManager.subscribe`.
    public_key: String,
}

/// Save this browser's push subscription (again: its keys are updated). An account keeps
/// its 20 newest.
#[utoipa::path(post, path = "/push/subscribe", tag = "push", request_body = SubscribeInput,
    responses(
        (status = 201, description = "Saved", body = SubscriptionInfo),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 422, description = "Not a valid subscription (the field says which part)", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn subscribe(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    headers: HeaderMap,
    Json(input): Json<SubscribeInput>,
) -> Result<(StatusCode, Json<SubscriptionInfo>)> {
    let endpoint = input
        .endpoint
        .ok_or_else(|| Error::invalid("endpoint", "endpoint is required"))?;
    let keys = input
        .keys
        .ok_or_else(|| Error::invalid("keys", "keys is required"))?;
    let p256dh = keys
        .p256dh
        .ok_or_else(|| Error::invalid("keys.p256dh", "keys.p256dh is required"))?;
    let auth_secret = keys
        .auth
        .ok_or_else(|| Error::invalid("keys.auth", "keys.auth is required"))?;
    let checked = PushSubscription::parse(&endpoint, &p256dh, &auth_secret, svc.push_allow_http)?;
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect());
    let saved = push::subscribe(
        &svc,
        auth.user_id,
        NewPushSubscription {
            endpoint: checked.endpoint,
            p256dh: checked.p256dh,
            auth: checked.auth,
            user_agent,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// Remove this browser's subscription.
#[utoipa::path(delete, path = "/push/unsubscribe", tag = "push", request_body = UnsubscribeInput,
    responses(
        (status = 200, description = "Removed; nothing more is pushed to it", body = MessageResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such subscription of this user", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn unsubscribe(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Json(input): Json<UnsubscribeInput>,
) -> Result<Json<MessageResponse>> {
    let endpoint = input
        .endpoint
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::invalid("endpoint", "endpoint is required"))?;
    push::unsubscribe(&svc, auth.user_id, &endpoint).await?;
    Ok(Json(MessageResponse {
        message: "Unsubscribed".into(),
    }))
}

/// The user's push subscriptions, oldest first.
#[utoipa::path(get, path = "/push/subscriptions", tag = "push",
    responses(
        (status = 200, description = "The subscriptions", body = [SubscriptionInfo]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn subscriptions(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<Vec<SubscriptionInfo>>> {
    let list = push::list(&svc, auth.user_id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Push a test message to every subscription of the user (sent within moments, even with
/// a socket open).
#[utoipa::path(post, path = "/push/test", tag = "push",
    responses(
        (status = 202, description = "Queued", body = PushTestResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "The user has no subscription", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn send_test(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<(StatusCode, Json<PushTestResponse>)> {
    let subscriptions = push::send_test(&svc, auth.user_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PushTestResponse {
            message: "A test message is on its way".into(),
            subscriptions,
        }),
    ))
}

/// The server's VAPID public key, for `pushManager.subscribe({applicationServerKey})`.
#[utoipa::path(get, path = "/push/vapid-public-key", tag = "push",
    responses((status = 200, description = "The key", body = VapidKeyResponse)))]
async fn vapid_public_key(State(svc): State<Services>) -> Json<VapidKeyResponse> {
    Json(VapidKeyResponse {
        public_key: svc.push_public_key.to_string(),
    })
}
