use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::plain_text;
use super::{ReminderSchedule, ReminderStage, TagFilter, Tags, TextSearch};

/// A task title: 1–200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let title = raw.trim();
        if title.is_empty() {
            return Err("title must not be empty".into());
        }
        // As sent, surrounding spaces included: what the API documents as the limit.
        if raw.chars().count() > 200 {
            return Err("title must be at most 200 characters".into());
        }
        let title = plain_text(title).map_err(|e| format!("title {e}"))?;
        Ok(Self(title.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task description: at most 1000 characters; blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    /// `Ok(None)` for a blank description.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let description = raw.trim();
        if raw.chars().count() > 1000 {
            return Err("description must be at most 1000 characters".into());
        }
        let description = plain_text(description).map_err(|e| format!("description {e}"))?;
        Ok((!description.is_empty()).then(|| Self(description.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "LOW" => Ok(Self::Low),
            "MEDIUM" => Ok(Self::Medium),
            "HIGH" => Ok(Self::High),
            _ => Err("priority must be one of LOW, MEDIUM, HIGH".into()),
        }
    }
}

impl TryFrom<String> for Priority {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// A task as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Task {
    pub id: i64,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
    /// Its labels, as first spelt, in the order given; matched regardless of case.
    #[sqlx(try_from = "String")]
    #[schema(value_type = Vec<String>, example = json!(["Urgent", "home"]))]
    pub tags: Tags,
    pub is_deleted: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the task's next reminder fires (not part of the API).
    #[serde(skip)]
    pub remind_at: Option<DateTime<Utc>>,
    /// What has fired for the current due date (not part of the API).
    #[serde(skip)]
    #[sqlx(try_from = "i64")]
    pub reminder_stage: ReminderStage,
    /// The project the task belongs to; null for a personal task.
    pub project_id: Option<Uuid>,
    /// The member the task is assigned to (project tasks only).
    pub assignee_id: Option<Uuid>,
}

impl Task {
    /// Still to do: neither completed nor in the trash.
    pub fn is_pending(&self) -> bool {
        !self.completed && !self.is_deleted
    }

    pub fn reminder(&self) -> ReminderSchedule {
        ReminderSchedule {
            remind_at: self.remind_at,
            stage: self.reminder_stage,
        }
    }

    pub fn set_reminder(&mut self, schedule: ReminderSchedule) {
        self.remind_at = schedule.remind_at;
        self.reminder_stage = schedule.stage;
    }
}

/// A validated new task.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub title: TaskTitle,
    pub description: Option<TaskDescription>,
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
    pub completed: bool,
    /// Set for a task created in a project.
    pub project_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    /// `None` when not given: a new task has none, a replaced one keeps its own.
    pub tags: Option<Tags>,
}

/// A validated partial update: `None` leaves a field alone; for the nullable fields,
/// `Some(None)` clears them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskChanges {
    pub title: Option<TaskTitle>,
    pub description: Option<Option<TaskDescription>>,
    pub completed: Option<bool>,
    pub priority: Option<Priority>,
    pub due_date: Option<Option<DateTime<Utc>>>,
    pub assignee_id: Option<Option<Uuid>>,
    /// What the request says the task's project is: it cannot change (checked, not
    /// applied).
    pub project_id: Option<Option<Uuid>>,
    pub tags: Option<Tags>,
}

impl TaskChanges {
    /// A full replacement (`PUT`): every field set, absent ones at their defaults.
    pub fn replace_with(task: NewTask) -> Self {
        Self {
            title: Some(task.title),
            description: Some(task.description),
            completed: Some(task.completed),
            priority: Some(task.priority),
            due_date: Some(task.due_date),
            assignee_id: Some(task.assignee_id),
            project_id: task.project_id.map(Some),
            // Clients that predate tags replace tasks without them: they must not erase
            // the tags other clients gave.
            tags: task.tags,
        }
    }

    /// Applies the changes; returns the names of the fields whose value changed.
    pub fn apply(&self, task: &mut Task) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(title) = &self.title {
            if task.title != title.as_str() {
                task.title = title.as_str().to_string();
                changed.push("title");
            }
        }
        if let Some(description) = &self.description {
            let value = description.as_ref().map(|d| d.as_str().to_string());
            if task.description != value {
                task.description = value;
                changed.push("description");
            }
        }
        if let Some(completed) = self.completed {
            if task.completed != completed {
                task.completed = completed;
                changed.push("completed");
            }
        }
        if let Some(priority) = self.priority {
            if task.priority != priority {
                task.priority = priority;
                changed.push("priority");
            }
        }
        if let Some(due_date) = self.due_date {
            if task.due_date != due_date {
                task.due_date = due_date;
                changed.push("due_date");
            }
        }
        if let Some(assignee_id) = self.assignee_id {
            if task.assignee_id != assignee_id {
                task.assignee_id = assignee_id;
                changed.push("assignee_id");
            }
        }
        if let Some(tags) = &self.tags {
            if &task.tags != tags {
                task.tags = tags.clone();
                changed.push("tags");
            }
        }
        changed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    #[default]
    All,
    Pending,
    Completed,
    Deleted,
}

/// Which tasks a list looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskScope {
    /// The caller's personal tasks (what the seed's API lists).
    #[default]
    Personal,
    /// One project's tasks (the caller is a member).
    Project(Uuid),
    /// Tasks in every project the caller belongs to (with an assignee filter).
    MyProjects,
}

/// The order of a task list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskSort {
    /// Newest first (`created_at`, then `id`, descending).
    #[default]
    Newest,
    /// Best match of the search first, then newest first; without a search, newest first.
    Relevance,
}

/// What `GET /tasks` asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFilter {
    pub scope: TaskScope,
    /// Only tasks assigned to this member.
    pub assignee_id: Option<Uuid>,
    pub status: TaskStatus,
    pub include_deleted: bool,
    /// Inclusive bounds on `created_at`.
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub priority: Option<Priority>,
    /// Full-text search over title and description.
    pub search: Option<TextSearch>,
    /// Tags a task must all have.
    pub tags: TagFilter,
    pub sort: TaskSort,
    pub limit: i64,
    pub offset: i64,
}

impl TaskFilter {
    /// `(is_deleted, completed)` constraints the status implies; `None` means either.
    pub fn flags(&self) -> (Option<bool>, Option<bool>) {
        let live = if self.include_deleted {
            None
        } else {
            Some(false)
        };
        match self.status {
            TaskStatus::All => (live, None),
            TaskStatus::Pending => (live, Some(false)),
            TaskStatus::Completed => (live, Some(true)),
            TaskStatus::Deleted => (Some(true), None),
        }
    }

    /// Whether the page is ordered by relevance: asked for, with something to rank by.
    pub fn by_relevance(&self) -> bool {
        self.sort == TaskSort::Relevance && self.search.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            TaskTitle::parse("  Buy milk ").map(|t| t.0),
            Ok("Buy milk".into())
        );
        assert!(TaskTitle::parse("   ").is_err());
        assert!(TaskTitle::parse(&"x".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"x".repeat(201)).is_err());
        assert!(TaskTitle::parse("nul\u{0}byte").is_err());
        assert!(TaskDescription::parse("nul\u{0}byte").is_err());
    }

    proptest! {
        #[test]
        fn title_parse_is_total_and_bounded(s in "\\PC{0,250}") {
            if let Ok(title) = TaskTitle::parse(&s) {
                let n = title.as_str().chars().count();
                prop_assert!((1..=200).contains(&n));
                prop_assert_eq!(title.as_str(), s.trim());
            }
        }

        #[test]
        fn description_parse_is_total_and_bounded(s in "\\PC{0,1100}") {
            if let Ok(Some(d)) = TaskDescription::parse(&s) {
                prop_assert!(d.as_str().chars().count() <= 1000);
            }
        }

        #[test]
        fn priority_round_trips(p in prop_oneof![Just(Priority::Low), Just(Priority::Medium), Just(Priority::High)]) {
            prop_assert_eq!(Priority::parse(p.as_str()), Ok(p));
        }
    }
}
