//! Due-date reminders: what a task's next reminder is, from its due date and what has
//! already fired for that due date. Pure rules; the schedule lives in the task's row
//! (`remind_at`, `reminder_stage`) and fires from the database, on whichever instance
//! claims it first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{NotificationKind, Task};

/// What has fired for a task's current due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum ReminderStage {
    /// Nothing yet: `TASK_DUE_SOON` comes next.
    #[default]
    Armed,
    /// `TASK_DUE_SOON` fired: `TASK_OVERDUE` comes next, at the due date.
    DueSoonSent,
    /// Both fired (or the due date was already past when set): nothing more.
    Done,
}

impl ReminderStage {
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Armed => 0,
            Self::DueSoonSent => 1,
            Self::Done => 2,
        }
    }
}

impl TryFrom<i64> for ReminderStage {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Self::Armed),
            1 => Ok(Self::DueSoonSent),
            2 => Ok(Self::Done),
            other => Err(format!("unknown reminder stage {other}")),
        }
    }
}

/// A task's reminder state: when the next one fires (`None`: no reminder pending) and
/// what has fired for its due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderSchedule {
    pub remind_at: Option<DateTime<Utc>>,
    pub stage: ReminderStage,
}

impl ReminderSchedule {
    /// The schedule of a task whose due date was just set (created, or changed): a due
    /// date already past is not announced after the fact.
    pub fn for_new_due_date(
        due_date: Option<DateTime<Utc>>,
        pending: bool,
        lead: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let stage = match due_date {
            Some(due) if due <= now => ReminderStage::Done,
            _ => ReminderStage::Armed,
        };
        Self::at_stage(due_date, pending, stage, lead)
    }

    /// The schedule of a task at `stage`: a task that is done, in the trash or without a
    /// due date has no reminder pending (it comes back if the task does).
    pub fn at_stage(
        due_date: Option<DateTime<Utc>>,
        pending: bool,
        stage: ReminderStage,
        lead: chrono::Duration,
    ) -> Self {
        let remind_at = match (due_date, pending, stage) {
            (Some(due), true, ReminderStage::Armed) => Some(due - lead),
            (Some(due), true, ReminderStage::DueSoonSent) => Some(due),
            _ => None,
        };
        Self { remind_at, stage }
    }

    /// The schedule after `task` changed from `before` (same task, any change).
    pub fn after_change(
        before: &Task,
        task: &Task,
        lead: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let pending = task.is_pending();
        if before.due_date != task.due_date {
            Self::for_new_due_date(task.due_date, pending, lead, now)
        } else {
            Self::at_stage(task.due_date, pending, task.reminder_stage, lead)
        }
    }
}

/// The reminder a task due for one fires at `now`, and the schedule after it: before the
/// due date, `TASK_DUE_SOON`; at or after it, `TASK_OVERDUE` (a task reopened after its
/// due date, or a reminder that fires late, skips straight to it). `None` when nothing is
/// due (the schedule moved meanwhile).
pub fn fire(
    task: &Task,
    lead: chrono::Duration,
    now: DateTime<Utc>,
) -> Option<(NotificationKind, ReminderSchedule)> {
    let due = task.due_date?;
    if !task.is_pending() || task.remind_at.is_none_or(|at| at > now) {
        return None;
    }
    match task.reminder_stage {
        ReminderStage::Armed if now < due => Some((
            NotificationKind::TaskDueSoon,
            ReminderSchedule::at_stage(Some(due), true, ReminderStage::DueSoonSent, lead),
        )),
        ReminderStage::Armed | ReminderStage::DueSoonSent => Some((
            NotificationKind::TaskOverdue,
            ReminderSchedule::at_stage(Some(due), true, ReminderStage::Done, lead),
        )),
        ReminderStage::Done => None,
    }
}
