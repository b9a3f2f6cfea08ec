use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Task;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    TaskCreated,
    TaskUpdated,
    TaskDeleted,
    TaskRestored,
    TaskCompleted,
    TaskPending,
    Login,
    Logout,
    Signup,
    ProfileUpdated,
    /// A task's due date is near (`REMINDER_LEAD` ahead).
    TaskDueSoon,
    /// A task's due date passed while it was still pending.
    TaskOverdue,
    /// Someone invited the user to a project.
    ProjectInvitation,
    /// The user joined a project (an invitation accepted, or added by an owner).
    ProjectAdded,
    /// The user was removed from a project, or it was deleted.
    ProjectRemoved,
    /// Someone assigned a task to the user.
    TaskAssigned,
}

impl NotificationKind {
    pub const ALL: [Self; 16] = [
        Self::TaskCreated,
        Self::TaskUpdated,
        Self::TaskDeleted,
        Self::TaskRestored,
        Self::TaskCompleted,
        Self::TaskPending,
        Self::Login,
        Self::Logout,
        Self::Signup,
        Self::ProfileUpdated,
        Self::TaskDueSoon,
        Self::TaskOverdue,
        Self::ProjectInvitation,
        Self::ProjectAdded,
        Self::ProjectRemoved,
        Self::TaskAssigned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "TASK_CREATED",
            Self::TaskUpdated => "TASK_UPDATED",
            Self::TaskDeleted => "TASK_DELETED",
            Self::TaskRestored => "TASK_RESTORED",
            Self::TaskCompleted => "TASK_COMPLETED",
            Self::TaskPending => "TASK_PENDING",
            Self::Login => "LOGIN",
            Self::Logout => "LOGOUT",
            Self::Signup => "SIGNUP",
            Self::ProfileUpdated => "PROFILE_UPDATED",
            Self::TaskDueSoon => "TASK_DUE_SOON",
            Self::TaskOverdue => "TASK_OVERDUE",
            Self::ProjectInvitation => "PROJECT_INVITATION",
            Self::ProjectAdded => "PROJECT_ADDED",
            Self::ProjectRemoved => "PROJECT_REMOVED",
            Self::TaskAssigned => "TASK_ASSIGNED",
        }
    }
}

impl TryFrom<String> for NotificationKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| format!("unknown notification type {value:?}"))
    }
}

/// A notification as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub user_id: Uuid,
    #[sqlx(rename = "kind", try_from = "String")]
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    pub is_read: bool,
    pub task_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A notification about to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationDraft {
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    pub task_id: Option<i64>,
}

impl NotificationDraft {
    /// The notification for something that happened to a task.
    pub fn for_task(kind: NotificationKind, task: &Task) -> Self {
        let (title, verb) = match kind {
            NotificationKind::TaskCreated => ("Task created", "was created"),
            NotificationKind::TaskUpdated => ("Task updated", "was updated"),
            NotificationKind::TaskDeleted => ("Task deleted", "was moved to the trash"),
            NotificationKind::TaskRestored => ("Task restored", "was restored"),
            NotificationKind::TaskCompleted => ("Task completed", "was marked as completed"),
            NotificationKind::TaskPending => ("Task reopened", "was marked as pending"),
            NotificationKind::TaskDueSoon => ("Task due soon", "is due soon"),
            NotificationKind::TaskOverdue => ("Task overdue", "is overdue"),
            _ => ("Task changed", "changed"),
        };
        let due = match (kind, task.due_date) {
            (NotificationKind::TaskDueSoon | NotificationKind::TaskOverdue, Some(due)) => {
                format!(" (due {})", due.format("%Y-%m-%d %H:%M UTC"))
            }
            _ => String::new(),
        };
        Self {
            user_id: task.user_id,
            kind,
            title: title.to_string(),
            message: format!("Task \"{}\" {verb}{due}.", task.title),
            task_id: Some(task.id),
        }
    }

    /// The notification for a permanently deleted task: there is no row left to link.
    pub fn for_purged_task(task: &Task) -> Self {
        Self {
            user_id: task.user_id,
            kind: NotificationKind::TaskDeleted,
            title: "Task deleted".to_string(),
            message: format!("Task \"{}\" was permanently deleted.", task.title),
            task_id: None,
        }
    }

    /// A notification about a project (`kind` one of the project kinds), for `user_id`.
    pub fn for_project(
        user_id: Uuid,
        kind: NotificationKind,
        message: impl Into<String>,
        task_id: Option<i64>,
    ) -> Self {
        let title = match kind {
            NotificationKind::ProjectInvitation => "Project invitation",
            NotificationKind::ProjectAdded => "Added to a project",
            NotificationKind::ProjectRemoved => "Removed from a project",
            NotificationKind::TaskAssigned => "Task assigned to you",
            _ => "Project activity",
        };
        Self {
            user_id,
            kind,
            title: title.to_string(),
            message: truncate_chars(message.into(), 1000),
            task_id,
        }
    }

    /// A notification about the account itself (sign-up, sign-in, profile).
    pub fn for_account(user_id: Uuid, kind: NotificationKind, message: impl Into<String>) -> Self {
        let title = match kind {
            NotificationKind::Signup => "Welcome to taskstream",
            NotificationKind::Login => "New sign-in",
            NotificationKind::Logout => "Signed out",
            NotificationKind::ProfileUpdated => "Profile updated",
            _ => "Account activity",
        };
        Self {
            user_id,
            kind,
            title: title.to_string(),
            message: message.into(),
            task_id: None,
        }
    }
}

/// At most `max` characters of `text` (names and titles quoted in a message are bounded,
/// but several of them together may not be).
fn truncate_chars(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text,
    }
}
