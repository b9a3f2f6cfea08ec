//! Task use cases. Only the owner may see or change a task: another user's task is 403
//! (the seed's behaviour), a missing one 404.

use serde_json::json;
use uuid::Uuid;

use super::Services;
use crate::domain::{
    EventDraft, EventKind, NewTask, NotificationDraft, NotificationKind, ReminderSchedule,
    TagCount, TagScope, Task, TaskChanges, TaskFilter,
};
use crate::error::{Error, Result};
use crate::store::StoreTx;

fn owned(task: Option<Task>, user_id: Uuid) -> Result<Task> {
    match task {
        None => Err(Error::not_found("Task")),
        Some(task) if task.user_id != user_id => Err(Error::Forbidden(
            "You do not have access to this task".into(),
        )),
        Some(task) => Ok(task),
    }
}

async fn lock_owned(tx: &mut Box<dyn StoreTx>, user_id: Uuid, id: i64) -> Result<Task> {
    owned(tx.task_for_update(id).await?, user_id)
}

fn ensure_live(task: &Task) -> Result<()> {
    if task.is_deleted {
        return Err(Error::BadRequest(
            "Task is deleted; restore it before changing it".into(),
        ));
    }
    Ok(())
}

/// The notification kind and event kind of a change to a task.
fn kinds_of_change(changed: &[&str], completed: bool) -> (NotificationKind, EventKind) {
    match (changed, completed) {
        (["completed"], true) => (NotificationKind::TaskCompleted, EventKind::TaskCompleted),
        (["completed"], false) => (NotificationKind::TaskPending, EventKind::TaskPending),
        _ => (NotificationKind::TaskUpdated, EventKind::TaskUpdated),
    }
}

/// Saves the task changed from `before`, its reminder schedule following the change (a
/// new due date re-arms it; completing or deleting cancels it), and its tags' rows when
/// they changed.
async fn save(
    svc: &Services,
    tx: &mut Box<dyn StoreTx>,
    before: &Task,
    mut task: Task,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Task> {
    task.updated_at = now;
    task.set_reminder(ReminderSchedule::after_change(
        before,
        &task,
        svc.reminder_lead,
        now,
    ));
    let saved = tx.save_task(&task).await?;
    if saved.tags != before.tags {
        tx.set_task_tags(saved.id, &saved.tags).await?;
    }
    Ok(saved)
}

/// Writes the task's notification and commits with both events.
async fn finish(
    svc: &Services,
    mut tx: Box<dyn StoreTx>,
    event: EventDraft,
    note: NotificationDraft,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let user_id = note.user_id;
    let (_, noted) = super::notifications::add(svc, &mut tx, &note, now).await?;
    let events: Vec<EventDraft> = std::iter::once(event).chain(noted).collect();
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await
}

pub async fn list(svc: &Services, user_id: Uuid, filter: &TaskFilter) -> Result<(Vec<Task>, i64)> {
    // Only stop words or punctuation: nothing to find (as PostgreSQL would say, with a
    // notice in the log for every such search).
    if filter.search.as_ref().is_some_and(|s| !s.has_terms()) {
        return Ok((Vec::new(), 0));
    }
    Ok(svc.store.tasks(user_id, filter).await?)
}

/// The scope's tags (its tasks outside the trash) with their counts.
pub async fn tags(svc: &Services, scope: TagScope) -> Result<Vec<TagCount>> {
    Ok(svc.store.tag_counts(scope).await?)
}

pub async fn get(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    owned(svc.store.task(id).await?, user_id)
}

pub async fn create(svc: &Services, user_id: Uuid, input: &NewTask) -> Result<Task> {
    let (mut tx, now) = svc.writes.begin().await?;
    let max = svc.quotas.max_tasks_per_user;
    let schedule = ReminderSchedule::for_new_due_date(
        input.due_date,
        !input.completed,
        svc.reminder_lead,
        now,
    );
    let task = tx
        .insert_task(user_id, input, schedule, now, max)
        .await?
        .ok_or_else(|| {
            metrics::counter!(crate::metrics::QUOTA_EXCEEDED, "quota" => "tasks").increment(1);
            Error::QuotaExceeded(format!(
                "An account holds at most {max} tasks, the trash included; delete some \
                 permanently to add more"
            ))
        })?;
    let note = NotificationDraft::for_task(NotificationKind::TaskCreated, &task);
    finish(
        svc,
        tx,
        EventDraft::new(EventKind::TaskCreated, &task),
        note,
        now,
    )
    .await?;
    Ok(task)
}

/// Applies a full (`PUT`) or partial (`PATCH`) update.
pub async fn update(svc: &Services, user_id: Uuid, id: i64, changes: &TaskChanges) -> Result<Task> {
    let (mut tx, now) = svc.writes.begin().await?;
    let before = lock_owned(&mut tx, user_id, id).await?;
    ensure_live(&before)?;
    let mut task = before.clone();
    let changed = changes.apply(&mut task);
    let (note_kind, event_kind) = kinds_of_change(&changed, task.completed);
    let task = save(svc, &mut tx, &before, task, now).await?;
    let note = NotificationDraft::for_task(note_kind, &task);
    finish(svc, tx, EventDraft::new(event_kind, &task), note, now).await?;
    Ok(task)
}

/// Sets `completed`, or toggles it when `completed` is `None`.
pub async fn complete(
    svc: &Services,
    user_id: Uuid,
    id: i64,
    completed: Option<bool>,
) -> Result<Task> {
    let (mut tx, now) = svc.writes.begin().await?;
    let before = lock_owned(&mut tx, user_id, id).await?;
    ensure_live(&before)?;
    let mut task = before.clone();
    task.completed = completed.unwrap_or(!task.completed);
    let task = save(svc, &mut tx, &before, task, now).await?;
    let (note_kind, event_kind) = kinds_of_change(&["completed"], task.completed);
    let note = NotificationDraft::for_task(note_kind, &task);
    finish(svc, tx, EventDraft::new(event_kind, &task), note, now).await?;
    Ok(task)
}

/// Soft delete (to the trash), or removal of the row when `permanent`. Soft-deleting a
/// task already in the trash changes nothing.
pub async fn delete(svc: &Services, user_id: Uuid, id: i64, permanent: bool) -> Result<()> {
    let (mut tx, now) = svc.writes.begin().await?;
    let before = lock_owned(&mut tx, user_id, id).await?;
    let mut task = before.clone();
    if permanent {
        tx.delete_task(task.id).await?;
        let event = EventDraft::new(EventKind::TaskPurged, &json!({ "id": task.id }));
        finish(
            svc,
            tx,
            event,
            NotificationDraft::for_purged_task(&task),
            now,
        )
        .await
    } else if task.is_deleted {
        Ok(())
    } else {
        task.is_deleted = true;
        task.deleted_at = Some(now);
        let task = save(svc, &mut tx, &before, task, now).await?;
        let note = NotificationDraft::for_task(NotificationKind::TaskDeleted, &task);
        finish(
            svc,
            tx,
            EventDraft::new(EventKind::TaskDeleted, &task),
            note,
            now,
        )
        .await
    }
}

pub async fn restore(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    let (mut tx, now) = svc.writes.begin().await?;
    let before = lock_owned(&mut tx, user_id, id).await?;
    if !before.is_deleted {
        return Err(Error::BadRequest("Task is not deleted".into()));
    }
    let mut task = before.clone();
    task.is_deleted = false;
    task.deleted_at = None;
    let task = save(svc, &mut tx, &before, task, now).await?;
    let note = NotificationDraft::for_task(NotificationKind::TaskRestored, &task);
    finish(
        svc,
        tx,
        EventDraft::new(EventKind::TaskRestored, &task),
        note,
        now,
    )
    .await?;
    Ok(task)
}
