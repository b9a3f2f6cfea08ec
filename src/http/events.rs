//! `GET /events`: the user's event stream over plain HTTP, for clients that poll or resync.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AuthUser, Json, QueryPairs};
use super::parse_int;
use crate::domain::{Event, StreamKey, Violations};
use crate::error::{ErrorEnvelope, Result};
use crate::service::events::{self, MAX_PAGE};
use crate::service::Services;

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(list_events))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Event messages exactly as the WebSocket sends them, in seq order.
    events: Vec<Event>,
    /// The stream's latest seq.
    last_seq: i64,
}

/// The caller's events after `since`, in order.
#[utoipa::path(get, path = "/events", tag = "events",
    params(
        ("since" = Option<i64>, Query, minimum = 0, description = "Return events with seq > since (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
        ("stream" = Option<String>, Query, pattern = r"^(user|project):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "`project:<id>` for a project's stream (a member's); default the caller's own"),
    ),
    responses(
        (status = 200, description = "The events", body = EventPage),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such project stream for the caller (not a member)", body = ErrorEnvelope),
        (status = 410, description = "Events after `since` are past retention (`EVENTS_EXPIRED`, with a top-level `last_seq`): reload through REST and continue from `last_seq`", body = ErrorEnvelope),
        (status = 422, description = "Invalid query", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_events(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    query: QueryPairs,
) -> Result<Json<EventPage>> {
    let mut v = Violations::new();
    let since = query.single_or_record("since", &mut v);
    let limit = query.single_or_record("limit", &mut v);
    let stream = query.single_or_record("stream", &mut v);
    let since = v.check("since", parse_int(since, 0, 0, i64::MAX));
    let limit = v.check("limit", parse_int(limit, 100, 1, MAX_PAGE));
    let stream = v.check(
        "stream",
        stream
            .filter(|s| !s.is_empty())
            .map_or(Ok(StreamKey::User(auth.user_id)), StreamKey::parse),
    );
    let (since, limit, stream) = v.finish(|| Some((since?, limit?, stream?)))?;
    let (events, last_seq) = events::after(&svc, auth.user_id, stream, since, limit).await?;
    Ok(Json(EventPage { events, last_seq }))
}
