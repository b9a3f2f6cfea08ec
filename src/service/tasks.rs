//! Task use cases. A personal task is its owner's alone: another user's is 403 (the seed's
//! behaviour), a missing one 404. A project's task follows the caller's role in the
//! project: viewers read, editors and owners write; to anyone else it is 404, as if it did
//! not exist.
//!
//! A project task's write locks the project's row first (its stream's seq lives there),
//! then the task: the same order as membership changes, so the two never deadlock, and a
//! member removed by a committed write can no longer change anything.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::Services;
use crate::domain::{
    EventDraft, EventKind, NewTask, NotificationDraft, NotificationKind, ReminderSchedule, Role,
    StreamKey, TagCount, TagScope, Task, TaskChanges, TaskFilter, TaskScope,
};
use crate::error::{Error, Result};
use crate::store::StoreTx;

/// Where a task lives, and who is writing it.
#[derive(Debug, Clone, Copy)]
struct Writer {
    user_id: Uuid,
    /// The caller's role when the task is a project's.
    project: Option<(Uuid, Role)>,
}

fn forbidden_personal() -> Error {
    Error::Forbidden("You do not have access to this task".into())
}

fn viewers_cannot_write() -> Error {
    Error::Forbidden("Viewers of a project cannot change its tasks".into())
}

/// The caller's access to a task as read (no lock): owner of a personal task, or a member
/// of its project.
async fn readable(svc: &Services, user_id: Uuid, task: Option<Task>) -> Result<Task> {
    let task = task.ok_or_else(|| Error::not_found("Task"))?;
    match task.project_id {
        None if task.user_id == user_id => Ok(task),
        None => Err(forbidden_personal()),
        Some(project_id) => match svc.store.membership(project_id, user_id).await? {
            Some(_) => Ok(task),
            None => Err(Error::not_found("Task")),
        },
    }
}

/// Opens the write of task `id`: locks it and checks that the caller may write it. A
/// project's task needs its project's row locked first (membership changes lock it before
/// the tasks they unassign, so the other order could deadlock): for one, the transaction
/// starts again in that order (the project a task belongs to never changes). A personal
/// task, the seed's hot path, costs one locked read as before.
async fn lock_writable(
    svc: &Services,
    user_id: Uuid,
    id: i64,
) -> Result<(Box<dyn StoreTx>, DateTime<Utc>, Task, Writer)> {
    let (mut tx, now) = svc.writes.begin().await?;
    let task = tx
        .task_for_update(id)
        .await?
        .ok_or_else(|| Error::not_found("Task"))?;
    let Some(project_id) = task.project_id else {
        if task.user_id != user_id {
            return Err(forbidden_personal());
        }
        let writer = Writer {
            user_id,
            project: None,
        };
        return Ok((tx, now, task, writer));
    };
    drop(tx);
    let (mut tx, now) = svc.writes.begin().await?;
    let role = lock_member(&mut tx, project_id, user_id)
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::not_found("Task"),
            other => other,
        })?;
    if !role.can_write() {
        return Err(viewers_cannot_write());
    }
    let task = tx
        .task_for_update(id)
        .await?
        .ok_or_else(|| Error::not_found("Task"))?;
    let writer = Writer {
        user_id,
        project: Some((project_id, role)),
    };
    Ok((tx, now, task, writer))
}

/// Locks the project's row and the caller's membership (one round trip) and reads their
/// role; 404 when the project is gone or the caller is not a member. The transaction
/// then knows the project stream's latest seq ([`StoreTx::latest_seq`]).
pub(super) async fn lock_member(
    tx: &mut Box<dyn StoreTx>,
    project_id: Uuid,
    user_id: Uuid,
) -> Result<Role> {
    let position = tx
        .lock_membership(project_id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("Project"))?;
    Ok(position.membership.role)
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
    now: DateTime<Utc>,
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

/// An assignee must be a member of the task's project (409 otherwise: a fact of the
/// project, not of the request's shape); personal tasks have none.
async fn check_assignee(
    tx: &mut Box<dyn StoreTx>,
    project_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
) -> Result<()> {
    match (project_id, assignee_id) {
        (_, None) => Ok(()),
        (None, Some(_)) => Err(Error::Conflict(
            "assignee_id: only a project's tasks can be assigned".into(),
        )),
        (Some(project_id), Some(assignee)) => {
            match tx.membership_for_update(project_id, assignee).await? {
                Some(_) => Ok(()),
                None => Err(Error::Conflict(
                    "assignee_id: the assignee must be a member of the project".into(),
                )),
            }
        }
    }
}

/// A change of a task: its event, its owner's notification, and who was just assigned it.
struct Change<'a> {
    event: EventDraft,
    task: &'a Task,
    note: NotificationDraft,
    newly_assigned: Option<Uuid>,
}

impl<'a> Change<'a> {
    fn new(kind: EventKind, task: &'a Task, note: NotificationDraft) -> Self {
        Self {
            event: EventDraft::new(kind, task),
            task,
            note,
            newly_assigned: None,
        }
    }
}

/// Commits a change of a task with its event and notifications. A personal task's change
/// goes to its owner's stream with their notification, as the seed's API did. A project
/// task's goes to the project's stream, once; the people it concerns besides the writer
/// (a new assignee; the assignee and the creator) are notified in their own streams.
async fn finish(
    svc: &Services,
    mut tx: Box<dyn StoreTx>,
    writer: Writer,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let Change {
        event,
        task,
        note,
        newly_assigned,
    } = change;
    let Some((project_id, _)) = writer.project else {
        let user_id = note.user_id;
        let (_, noted) = super::notifications::add(svc, &mut tx, &note, now).await?;
        let events: Vec<EventDraft> = std::iter::once(event).chain(noted).collect();
        return svc
            .writes
            .commit(tx, user_id, &events, now, Vec::new())
            .await;
    };
    let mut appends = vec![(StreamKey::Project(project_id), vec![event])];
    // Who hears of it: a new assignee (assigned), and the assignee and the creator
    // (changed), never the writer, and only members.
    let assigned = newly_assigned.filter(|a| *a != writer.user_id);
    let mut concerned: Vec<Uuid> = assigned.into_iter().collect();
    for person in [task.assignee_id, Some(task.user_id)].into_iter().flatten() {
        if person == writer.user_id || concerned.contains(&person) {
            continue;
        }
        if tx
            .membership_for_update(project_id, person)
            .await?
            .is_some()
        {
            concerned.push(person);
        }
    }
    if !concerned.is_empty() {
        let actor = tx
            .user_name(writer.user_id)
            .await?
            .unwrap_or_else(|| "Someone".into());
        for person in concerned {
            let draft = if Some(person) == assigned {
                let message = format!("{actor} assigned you the task \"{}\".", task.title);
                NotificationDraft::for_project(
                    person,
                    NotificationKind::TaskAssigned,
                    message,
                    note.task_id,
                )
            } else {
                NotificationDraft {
                    user_id: person,
                    message: format!("{actor}: {}", note.message),
                    ..note.clone()
                }
            };
            let (_, noted) = super::notifications::add(svc, &mut tx, &draft, now).await?;
            appends.push((StreamKey::User(person), noted));
        }
    }
    svc.writes.commit_streams(tx, appends, now).await
}

pub async fn list(svc: &Services, user_id: Uuid, filter: &TaskFilter) -> Result<(Vec<Task>, i64)> {
    if let TaskScope::Project(project_id) = filter.scope {
        svc.store
            .membership(project_id, user_id)
            .await?
            .ok_or_else(|| Error::not_found("Project"))?;
    }
    // Only stop words or punctuation: nothing to find (as PostgreSQL would say, with a
    // notice in the log for every such search).
    if filter.search.as_ref().is_some_and(|s| !s.has_terms()) {
        return Ok((Vec::new(), 0));
    }
    Ok(svc.store.tasks(user_id, filter).await?)
}

/// The scope's tags (its tasks outside the trash) with their counts: the caller's own
/// vocabulary, or a project's they belong to (404 otherwise).
pub async fn tags(svc: &Services, user_id: Uuid, scope: TagScope) -> Result<Vec<TagCount>> {
    match scope {
        TagScope::User(id) if id != user_id => return Err(Error::not_found("Project")),
        TagScope::Project(project_id) => {
            svc.store
                .membership(project_id, user_id)
                .await?
                .ok_or_else(|| Error::not_found("Project"))?;
        }
        TagScope::User(_) => {}
    }
    Ok(svc.store.tag_counts(scope).await?)
}

pub async fn get(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    readable(svc, user_id, svc.store.task(id).await?).await
}

pub async fn create(svc: &Services, user_id: Uuid, input: &NewTask) -> Result<Task> {
    let (mut tx, now) = svc.writes.begin().await?;
    let writer = match input.project_id {
        None => Writer {
            user_id,
            project: None,
        },
        Some(project_id) => {
            // 404 when the project is none of the caller's.
            let role = lock_member(&mut tx, project_id, user_id).await?;
            if !role.can_write() {
                return Err(viewers_cannot_write());
            }
            Writer {
                user_id,
                project: Some((project_id, role)),
            }
        }
    };
    check_assignee(&mut tx, input.project_id, input.assignee_id).await?;
    let (max, holder) = match input.project_id {
        None => (svc.quotas.max_tasks_per_user, "An account"),
        Some(_) => (svc.quotas.max_tasks_per_project, "A project"),
    };
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
                "{holder} holds at most {max} tasks, the trash included; delete some \
                 permanently to add more"
            ))
        })?;
    let note = NotificationDraft::for_task(NotificationKind::TaskCreated, &task);
    let change = Change {
        newly_assigned: task.assignee_id,
        ..Change::new(EventKind::TaskCreated, &task, note)
    };
    finish(svc, tx, writer, change, now).await?;
    Ok(task)
}

/// Applies a full (`PUT`) or partial (`PATCH`) update.
pub async fn update(svc: &Services, user_id: Uuid, id: i64, changes: &TaskChanges) -> Result<Task> {
    let (mut tx, now, before, writer) = lock_writable(svc, user_id, id).await?;
    ensure_live(&before)?;
    if changes.project_id.is_some_and(|p| p != before.project_id) {
        return Err(Error::Conflict(
            "project_id: a task cannot move between projects (or out of one)".into(),
        ));
    }
    let mut task = before.clone();
    let changed = changes.apply(&mut task);
    if changed.contains(&"assignee_id") {
        check_assignee(&mut tx, task.project_id, task.assignee_id).await?;
    }
    let (note_kind, event_kind) = kinds_of_change(&changed, task.completed);
    let task = save(svc, &mut tx, &before, task, now).await?;
    let note = NotificationDraft::for_task(note_kind, &task);
    let change = Change {
        newly_assigned: task
            .assignee_id
            .filter(|_| changed.contains(&"assignee_id")),
        ..Change::new(event_kind, &task, note)
    };
    finish(svc, tx, writer, change, now).await?;
    Ok(task)
}

/// Sets `completed`, or toggles it when `completed` is `None`.
pub async fn complete(
    svc: &Services,
    user_id: Uuid,
    id: i64,
    completed: Option<bool>,
) -> Result<Task> {
    let (mut tx, now, before, writer) = lock_writable(svc, user_id, id).await?;
    ensure_live(&before)?;
    let mut task = before.clone();
    task.completed = completed.unwrap_or(!task.completed);
    let task = save(svc, &mut tx, &before, task, now).await?;
    let (note_kind, event_kind) = kinds_of_change(&["completed"], task.completed);
    let note = NotificationDraft::for_task(note_kind, &task);
    let change = Change::new(event_kind, &task, note);
    finish(svc, tx, writer, change, now).await?;
    Ok(task)
}

/// Soft delete (to the trash), or removal of the row when `permanent`. Soft-deleting a
/// task already in the trash changes nothing.
pub async fn delete(svc: &Services, user_id: Uuid, id: i64, permanent: bool) -> Result<()> {
    let (mut tx, now, before, writer) = lock_writable(svc, user_id, id).await?;
    let mut task = before.clone();
    if permanent {
        tx.delete_task(task.id).await?;
        let data = match task.project_id {
            None => json!({ "id": task.id }),
            Some(project_id) => json!({ "id": task.id, "project_id": project_id }),
        };
        let change = Change {
            event: EventDraft::new(EventKind::TaskPurged, &data),
            ..Change::new(
                EventKind::TaskPurged,
                &task,
                NotificationDraft::for_purged_task(&task),
            )
        };
        finish(svc, tx, writer, change, now).await
    } else if task.is_deleted {
        Ok(())
    } else {
        task.is_deleted = true;
        task.deleted_at = Some(now);
        let task = save(svc, &mut tx, &before, task, now).await?;
        let note = NotificationDraft::for_task(NotificationKind::TaskDeleted, &task);
        let change = Change::new(EventKind::TaskDeleted, &task, note);
        finish(svc, tx, writer, change, now).await
    }
}

pub async fn restore(svc: &Services, user_id: Uuid, id: i64) -> Result<Task> {
    let (mut tx, now, before, writer) = lock_writable(svc, user_id, id).await?;
    if !before.is_deleted {
        return Err(Error::BadRequest("Task is not deleted".into()));
    }
    let mut task = before.clone();
    task.is_deleted = false;
    task.deleted_at = None;
    let task = save(svc, &mut tx, &before, task, now).await?;
    let note = NotificationDraft::for_task(NotificationKind::TaskRestored, &task);
    let change = Change::new(EventKind::TaskRestored, &task, note);
    finish(svc, tx, writer, change, now).await?;
    Ok(task)
}
