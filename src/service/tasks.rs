//! Task use cases. Only the owner may see or change a task: another user's task is 403
//! (the seed's behaviour), a missing one 404.

use uuid::Uuid;

use super::Services;
use crate::domain::{self, NewTask, NotificationDraft, NotificationKind, Task, TaskChanges, TaskFilter};
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

pub async fn list(svc: &Services, user_id: Uuid, filter: &TaskFilter) -> Result<(Vec<Task>, i64)> {
    Ok(svc.store.tasks(user_id, filter).await?)
}

pub async fn get(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    owned(svc.store.task(id).await?, user_id)
}

pub async fn create(svc: &Services, user_id: Uuid, input: &NewTask) -> Result<Task> {
    let now = domain::now();
    let mut tx = svc.store.begin().await?;
    let task = tx.insert_task(user_id, input, now).await?;
    tx.insert_notification(&NotificationDraft::for_task(NotificationKind::TaskCreated, &task), now)
        .await?;
    tx.commit().await?;
    Ok(task)
}

/// Applies a full (`PUT`) or partial (`PATCH`) update.
pub async fn update(svc: &Services, user_id: Uuid, id: i64, changes: &TaskChanges) -> Result<Task> {
    let now = domain::now();
    let mut tx = svc.store.begin().await?;
    let mut task = lock_owned(&mut tx, user_id, id).await?;
    ensure_live(&task)?;
    let changed = changes.apply(&mut task);
    let kind = match (changed.as_slice(), task.completed) {
        (["completed"], true) => NotificationKind::TaskCompleted,
        (["completed"], false) => NotificationKind::TaskPending,
        _ => NotificationKind::TaskUpdated,
    };
    task.updated_at = now;
    let task = tx.save_task(&task).await?;
    tx.insert_notification(&NotificationDraft::for_task(kind, &task), now)
        .await?;
    tx.commit().await?;
    Ok(task)
}

/// Sets `completed`, or toggles it when `completed` is `None`.
pub async fn complete(svc: &Services, user_id: Uuid, id: i64, completed: Option<bool>) -> Result<Task> {
    let now = domain::now();
    let mut tx = svc.store.begin().await?;
    let mut task = lock_owned(&mut tx, user_id, id).await?;
    ensure_live(&task)?;
    task.completed = completed.unwrap_or(!task.completed);
    task.updated_at = now;
    let task = tx.save_task(&task).await?;
    let kind = if task.completed {
        NotificationKind::TaskCompleted
    } else {
        NotificationKind::TaskPending
    };
    tx.insert_notification(&NotificationDraft::for_task(kind, &task), now)
        .await?;
    tx.commit().await?;
    Ok(task)
}

/// Soft delete (to the trash), or removal of the row when `permanent`. Soft-deleting a
/// task already in the trash changes nothing.
pub async fn delete(svc: &Services, user_id: Uuid, id: i64, permanent: bool) -> Result<()> {
    let now = domain::now();
    let mut tx = svc.store.begin().await?;
    let mut task = lock_owned(&mut tx, user_id, id).await?;
    let note = if permanent {
        tx.delete_task(task.id).await?;
        NotificationDraft::for_purged_task(&task)
    } else if task.is_deleted {
        return Ok(());
    } else {
        task.is_deleted = true;
        task.deleted_at = Some(now);
        task.updated_at = now;
        let task = tx.save_task(&task).await?;
        NotificationDraft::for_task(NotificationKind::TaskDeleted, &task)
    };
    tx.insert_notification(&note, now).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn restore(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    let now = domain::now();
    let mut tx = svc.store.begin().await?;
    let mut task = lock_owned(&mut tx, user_id, id).await?;
    if !task.is_deleted {
        return Err(Error::BadRequest("Task is not deleted".into()));
    }
    task.is_deleted = false;
    task.deleted_at = None;
    task.updated_at = now;
    let task = tx.save_task(&task).await?;
    tx.insert_notification(&NotificationDraft::for_task(NotificationKind::TaskRestored, &task), now)
        .await?;
    tx.commit().await?;
    Ok(task)
}
