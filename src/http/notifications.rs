//! `/notifications`: list, read, mark read, mark all read, delete one or many, unread count.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, QueryPairs};
use super::{parse_bool, parse_int, TOTAL_COUNT, UNREAD_COUNT};
use crate::domain::{self, Notification, Violations};
use crate::error::{Error, ErrorEnvelope, Result};
use crate::service::{notifications, Services};
use crate::store::NotificationFilter;

/// Most ids one bulk delete may name.
const MAX_BULK_IDS: usize = 100;

pub fn router() -> OpenApiRouter<Services> {
    // `mark-all-read` and `unread/count` are literal routes, which the router always
    // prefers over `/{id}`: the seed's route-order bug cannot happen here.
    OpenApiRouter::new()
        .routes(routes!(list_notifications, delete_notifications))
        .routes(routes!(mark_all_read))
        .routes(routes!(unread_count))
        .routes(routes!(
            get_notification,
            update_notification,
            delete_notification
        ))
}

/// The `sort` order of `GET /notifications` (for the document).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SortParam {
    Desc,
    Asc,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NotificationUpdate {
    is_read: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkAllReadResponse {
    message: String,
    /// How many were unread and are now read.
    count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteResponse {
    message: String,
    /// How many were deleted.
    count: usize,
    /// How many distinct ids were asked for.
    requested: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCountResponse {
    count: i64,
    user_id: Uuid,
    timestamp: DateTime<Utc>,
}

fn parse_filter(q: &QueryPairs) -> Result<NotificationFilter> {
    let mut v = Violations::new();
    let limit = q.single_or_record("limit", &mut v);
    let offset = q.single_or_record("offset", &mut v);
    let unread_only = q.single_or_record("unread_only", &mut v);
    let sort = q.single_or_record("sort", &mut v);
    let limit = v.check("limit", parse_int(limit, 50, 1, 100));
    let offset = v.check("offset", parse_int(offset, 0, 0, i64::MAX));
    let unread_only = v.check("unread_only", parse_bool(unread_only));
    let newest_first = v.check(
        "sort",
        match sort {
            None | Some("desc") => Ok(true),
            Some("asc") => Ok(false),
            Some(_) => Err("sort must be asc or desc".to_string()),
        },
    );
    v.finish(|| {
        Some(NotificationFilter {
            unread_only: unread_only?,
            newest_first: newest_first?,
            limit: limit?,
            offset: offset?,
        })
    })
}

/// `notification_ids=1,2,3` or `notification_ids=1&notification_ids=2`: 1–100 distinct ids.
fn parse_ids(q: &QueryPairs) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for value in q.all("notification_ids") {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<i64>() {
                Ok(id) if id > 0 => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        "notification_ids",
                        format!("{part:?} is not a valid notification id"),
                    ))
                }
            }
        }
    }
    if ids.is_empty() {
        return Err(Error::invalid(
            "notification_ids",
            "at least one id is required",
        ));
    }
    if ids.len() > MAX_BULK_IDS {
        return Err(Error::invalid(
            "notification_ids",
            format!("at most {MAX_BULK_IDS} ids per request"),
        ));
    }
    Ok(ids)
}

/// List the caller's notifications.
#[utoipa::path(get, path = "/notifications", tag = "notifications",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1–100, default 50"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Default 0"),
        ("unread_only" = Option<bool>, Query, description = "Only unread ones"),
        ("sort" = inline(Option<SortParam>), Query, description = "desc (default, newest first) or asc"),
    ),
    responses(
        (status = 200, description = "The notifications", body = [Notification],
            headers(
                ("X-Total-Count" = i64, description = "Notifications matching the filters"),
                ("X-Unread-Count" = i64, description = "Unread notifications"))),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 422, description = "Invalid query", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_notifications(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    query: QueryPairs,
) -> Result<impl IntoResponse> {
    let filter = parse_filter(&query)?;
    let page = notifications::list(&svc, auth.user_id, &filter).await?;
    let mut headers = HeaderMap::new();
    headers.insert(TOTAL_COUNT, HeaderValue::from(page.total));
    headers.insert(UNREAD_COUNT, HeaderValue::from(page.unread));
    Ok((headers, Json(page.items)))
}

/// Delete several notifications; ids of other users are ignored.
#[utoipa::path(delete, path = "/notifications", tag = "notifications",
    params(("notification_ids" = String, Query, pattern = r"^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,99}$", description = "Comma-separated ids, or the key repeated; 1–100 ids")),
    responses(
        (status = 200, description = "Deleted", body = BulkDeleteResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 422, description = "Missing, malformed or too many ids", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn delete_notifications(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    query: QueryPairs,
) -> Result<Json<BulkDeleteResponse>> {
    let ids = parse_ids(&query)?;
    let count = notifications::delete_many(&svc, auth.user_id, &ids).await?;
    Ok(Json(BulkDeleteResponse {
        message: format!("Deleted {count} of {} notifications", ids.len()),
        count,
        requested: ids.len(),
    }))
}

/// Mark every notification read.
#[utoipa::path(put, path = "/notifications/mark-all-read", tag = "notifications",
    responses(
        (status = 200, description = "Done", body = MarkAllReadResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn mark_all_read(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<MarkAllReadResponse>> {
    let count = notifications::mark_all_read(&svc, auth.user_id).await?;
    Ok(Json(MarkAllReadResponse {
        message: format!("Marked {count} notifications as read"),
        count,
    }))
}

/// How many notifications are unread.
#[utoipa::path(get, path = "/notifications/unread/count", tag = "notifications",
    responses(
        (status = 200, description = "The count", body = UnreadCountResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn unread_count(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<UnreadCountResponse>> {
    let count = notifications::unread_count(&svc, auth.user_id).await?;
    Ok(Json(UnreadCountResponse {
        count,
        user_id: auth.user_id,
        timestamp: domain::now(),
    }))
}

/// Read one notification.
#[utoipa::path(get, path = "/notifications/{id}", tag = "notifications", params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The notification", body = Notification),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such notification of this user", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn get_notification(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<Notification>> {
    Ok(Json(notifications::get(&svc, auth.user_id, id).await?))
}

/// Mark one notification read or unread (idempotent).
#[utoipa::path(put, path = "/notifications/{id}", tag = "notifications", params(("id" = i64, Path, minimum = 1)),
    request_body = NotificationUpdate,
    responses(
        (status = 200, description = "Updated", body = Notification),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such notification of this user", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn update_notification(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
    Json(input): Json<NotificationUpdate>,
) -> Result<Json<Notification>> {
    Ok(Json(
        notifications::set_read(&svc, auth.user_id, id, input.is_read).await?,
    ))
}

/// Delete one notification.
#[utoipa::path(delete, path = "/notifications/{id}", tag = "notifications", params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such notification of this user", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn delete_notification(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    notifications::delete(&svc, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
