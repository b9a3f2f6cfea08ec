//! Reading an event stream over REST (the user's own, or a project's they belong to), for
//! clients that poll or resync.

use uuid::Uuid;

use super::Services;
use crate::domain::{Event, StreamKey};
use crate::error::{Error, Result};

/// Most events one request returns.
pub const MAX_PAGE: i64 = 1_000;

/// The events after `since` (at most `limit`) and the stream's latest seq; 410
/// `EVENTS_EXPIRED` when some events after `since` are no longer stored, or (on a
/// project's stream) came before the user joined. A project the user is not a member of
/// is 404, whether it exists or not.
pub async fn after(
    svc: &Services,
    user_id: Uuid,
    stream: StreamKey,
    since: i64,
    limit: i64,
) -> Result<(Vec<Event>, i64)> {
    let joined_seq = match stream {
        StreamKey::User(id) if id == user_id => 0,
        StreamKey::User(_) => return Err(Error::not_found("Stream")),
        StreamKey::Project(project_id) => {
            svc.store
                .membership(project_id, user_id)
                .await?
                .ok_or_else(|| Error::not_found("Project"))?
                .joined_seq
        }
    };
    let bounds = svc
        .store
        .event_bounds(stream)
        .await?
        .ok_or(Error::InvalidToken)?;
    if !bounds.can_replay_from(since) || since < joined_seq {
        return Err(Error::EventsExpired {
            last_seq: bounds.last_seq,
        });
    }
    let events = svc
        .store
        .events_after(stream, since, limit.min(MAX_PAGE))
        .await?;
    Ok((events, bounds.last_seq))
}
