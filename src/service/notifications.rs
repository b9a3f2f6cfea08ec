//! Notification use cases. Another user's notification is indistinguishable from a
//! missing one (404).

use serde_json::json;
use uuid::Uuid;

use super::Services;
use crate::domain::{EventDraft, EventKind, Notification};
use crate::error::{Error, Result};
use crate::store::{NotificationFilter, NotificationPage};

pub async fn list(
    svc: &Services,
    user_id: Uuid,
    filter: &NotificationFilter,
) -> Result<NotificationPage> {
    Ok(svc.store.notifications(user_id, filter).await?)
}

pub async fn get(svc: &Services, user_id: Uuid, id: i64) -> Result<Notification> {
    svc.store
        .notification(user_id, id)
        .await?
        .ok_or_else(|| Error::not_found("Notification"))
}

pub async fn set_read(
    svc: &Services,
    user_id: Uuid,
    id: i64,
    is_read: bool,
) -> Result<Notification> {
    let (mut tx, now) = svc.writes.begin().await?;
    let note = tx
        .set_notification_read(user_id, id, is_read)
        .await?
        .ok_or_else(|| Error::not_found("Notification"))?;
    let events = [EventDraft::new(EventKind::NotificationUpdated, &note)];
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    Ok(note)
}

/// Marks every unread notification read; returns how many changed.
pub async fn mark_all_read(svc: &Services, user_id: Uuid) -> Result<usize> {
    let (mut tx, now) = svc.writes.begin().await?;
    let ids = tx.mark_all_read(user_id).await?;
    let events = if ids.is_empty() {
        Vec::new()
    } else {
        vec![EventDraft::new(
            EventKind::NotificationsReadAll,
            &json!({ "ids": ids, "count": ids.len() }),
        )]
    };
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    Ok(ids.len())
}

pub async fn delete(svc: &Services, user_id: Uuid, id: i64) -> Result<()> {
    if delete_many(svc, user_id, &[id]).await? == 0 {
        return Err(Error::not_found("Notification"));
    }
    Ok(())
}

/// Deletes those of `ids` that belong to the user; others' ids are ignored. Returns how
/// many were deleted.
pub async fn delete_many(svc: &Services, user_id: Uuid, ids: &[i64]) -> Result<usize> {
    let (mut tx, now) = svc.writes.begin().await?;
    let deleted = tx.delete_notifications(user_id, ids).await?;
    let events: Vec<EventDraft> = deleted
        .iter()
        .map(|id| EventDraft::new(EventKind::NotificationDeleted, &json!({ "id": id })))
        .collect();
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    Ok(deleted.len())
}

pub async fn unread_count(svc: &Services, user_id: Uuid) -> Result<i64> {
    Ok(svc.store.unread_count(user_id).await?)
}
