//! Reading a user's event stream over REST, for clients that poll or resync.

use uuid::Uuid;

use super::Services;
use crate::domain::Event;
use crate::error::{Error, Result};

/// Most events one request returns.
pub const MAX_PAGE: i64 = 1_000;

/// The events after `since` (at most `limit`) and the user's latest seq; 410
/// `EVENTS_EXPIRED` when some events after `since` are no longer stored.
pub async fn after(
    svc: &Services,
    user_id: Uuid,
    since: i64,
    limit: i64,
) -> Result<(Vec<Event>, i64)> {
    let bounds = svc
        .store
        .event_bounds(user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    if !bounds.can_replay_from(since) {
        return Err(Error::EventsExpired {
            last_seq: bounds.last_seq,
        });
    }
    let events = svc
        .store
        .events_after(user_id, since, limit.min(MAX_PAGE))
        .await?;
    Ok((events, bounds.last_seq))
}
