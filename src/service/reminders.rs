//! Due-date reminders, fired from the database: each task's next reminder is its
//! `remind_at` (kept by every task write, see `tasks::save`), and whichever instance
//! takes a due task first (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer)
//! fires it in one transaction with its notification, its events and its deliveries, and
//! moves the schedule on. So a reminder fires exactly once, on any instance, and one that
//! came due while every instance was down fires when one comes back.

use super::Services;
use crate::domain::{
    fire_reminder, DeliveryJob, NotificationDraft, NotificationKind, ReminderSchedule,
};
use crate::error::Result;

/// Fires up to `batch` due reminders, one transaction each; returns how many fired
/// (fewer than `batch`: none is due any more).
pub async fn fire_due(svc: &Services, batch: usize) -> Result<usize> {
    let mut fired = 0;
    for _ in 0..batch {
        let (mut tx, now) = svc.writes.begin().await?;
        let Some(task) = tx.due_reminder(now).await? else {
            break;
        };
        let Some((kind, schedule)) = fire_reminder(&task, svc.reminder_lead, now) else {
            // Nothing to fire after all (done, in the trash, no due date): nothing is
            // scheduled any more, and the loop goes on.
            let schedule = ReminderSchedule {
                remind_at: None,
                stage: task.reminder_stage,
            };
            tx.set_reminder(task.id, schedule).await?;
            svc.writes
                .commit(tx, task.user_id, &[], now, Vec::new())
                .await?;
            continue;
        };
        tx.set_reminder(task.id, schedule).await?;
        let draft = NotificationDraft::for_task(kind, &task);
        let (note, events) = super::notifications::add(svc, &mut tx, &draft, now).await?;
        if svc.store.email_reminders(task.user_id).await? == Some(true) {
            let job = DeliveryJob::Reminder {
                kind,
                title: note.title.clone(),
                message: note.message.clone(),
                task_id: Some(task.id),
            };
            tx.enqueue_delivery(Some(task.user_id), &job, now).await?;
        }
        svc.writes
            .commit(tx, task.user_id, &events, now, Vec::new())
            .await?;
        let label = match kind {
            NotificationKind::TaskDueSoon => "due_soon",
            _ => "overdue",
        };
        metrics::counter!(crate::metrics::REMINDERS_FIRED, "kind" => label).increment(1);
        fired += 1;
    }
    Ok(fired)
}
