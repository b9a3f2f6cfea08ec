//! Notification use cases. Another user's notification is indistinguishable from a
//! missing one (404).

use serde_json::json;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::{
    EventDraft, EventKind, Notification, NotificationDraft, NotificationKind, PushMessage,
};
use crate::error::{Error, Result};
use crate::store::{NotificationFilter, NotificationPage, StoreTx};

/// Adds a notification in a write transaction. Returns it with the events to commit: its
/// creation and, when it takes the user more than a tenth past MAX_NOTIFICATIONS_PER_USER,
/// the deletion of the oldest ones down to that number (pruning in batches keeps the cost
/// to one statement per many notifications). Each of the user's push subscriptions gets
/// it too: reminders always, anything else only if no socket of the user is open when it
/// is sent (a phone in a pocket hears what it missed, not every live change).
pub(super) async fn add(
    svc: &Services,
    tx: &mut Box<dyn StoreTx>,
    draft: &NotificationDraft,
    now: DateTime<Utc>,
) -> Result<(Notification, Vec<EventDraft>)> {
    let (note, held_before) = tx.insert_notification(draft, now).await?;
    let mut events = vec![EventDraft::new(EventKind::NotificationCreated, &note)];
    let reminder = matches!(
        note.kind,
        NotificationKind::TaskDueSoon | NotificationKind::TaskOverdue
    );
    tx.enqueue_push(
        draft.user_id,
        &PushMessage::for_notification(&note),
        !reminder,
        now,
    )
    .await?;
    let keep = svc.quotas.max_notifications_per_user;
    let held = held_before + 1;
    if held > keep + (keep / 10).max(1) {
        let mut deleted = tx
            .delete_oldest_notifications(draft.user_id, held - keep)
            .await?;
        deleted.sort_unstable(); // announced oldest first
        metrics::counter!(crate::metrics::NOTIFICATIONS_PRUNED, "reason" => "quota")
            .increment(deleted.len() as u64);
        events.extend(deleted.iter().map(|id| deleted_event(*id)));
    }
    Ok((note, events))
}

fn deleted_event(id: i64) -> EventDraft {
    EventDraft::new(EventKind::NotificationDeleted, &json!({ "id": id }))
}

/// Deletes the notifications older than NOTIFICATION_RETENTION of up to `batch` users, one
/// write transaction per user (so every deletion is announced in the user's stream);
/// returns how many users it visited (fewer than `batch`: none left).
pub async fn sweep_expired(svc: &Services, batch: i64) -> Result<usize> {
    let retention = chrono::Duration::from_std(svc.quotas.notification_retention)
        .map_err(|err| Error::Internal(err.into()))?;
    let cutoff = crate::domain::now() - retention;
    let users = svc
        .store
        .users_with_notifications_before(cutoff, batch)
        .await?;
    for user_id in &users {
        let (mut tx, now) = svc.writes.begin().await?;
        let mut deleted = tx.delete_notifications_before(*user_id, cutoff).await?;
        deleted.sort_unstable();
        metrics::counter!(crate::metrics::NOTIFICATIONS_PRUNED, "reason" => "retention")
            .increment(deleted.len() as u64);
        let events: Vec<EventDraft> = deleted.iter().map(|id| deleted_event(*id)).collect();
        svc.writes
            .commit(tx, *user_id, &events, now, Vec::new())
            .await?;
    }
    Ok(users.len())
}

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
    let events: Vec<EventDraft> = deleted.iter().map(|id| deleted_event(*id)).collect();
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    Ok(deleted.len())
}

pub async fn unread_count(svc: &Services, user_id: Uuid) -> Result<i64> {
    Ok(svc.store.unread_count(user_id).await?)
}
