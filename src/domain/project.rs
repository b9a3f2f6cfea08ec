//! Projects: a team's shared tasks, its members and their roles, and invitations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::plain_text;

/// A project name: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("name must not be empty".into());
        }
        if name.chars().count() > 100 {
            return Err("name must be at most 100 characters".into());
        }
        let name = plain_text(name).map_err(|e| format!("name {e}"))?;
        // It goes into e-mail subjects and one-line lists.
        if name.contains(['\n', '\r', '\t']) {
            return Err("name must be one line".into());
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a member may do in a project. Ordered: an owner may do what an editor may, an
/// editor what a viewer may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the project's tasks and stream.
    Viewer,
    /// Also creates, changes and deletes its tasks.
    Editor,
    /// Also manages the project, its members and invitations.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "owner" => Ok(Self::Owner),
            _ => Err("role must be one of owner, editor, viewer".into()),
        }
    }

    pub fn can_write(self) -> bool {
        self >= Self::Editor
    }

    pub fn can_manage(self) -> bool {
        self == Self::Owner
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// A project as the API returns it, with the caller's role.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// Who created it (null once that account is gone).
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in the project.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The project stream's latest seq: a socket receives the events after it.
    pub last_seq: i64,
}

/// A member of a project, as `GET /projects/{id}/members` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When they joined.
    pub created_at: DateTime<Utc>,
}

/// An open invitation: as the project's owners see it (with the address), or as the
/// invitee sees it (with the project's name).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub project_id: Uuid,
    pub project_name: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub invited_by: Option<Uuid>,
    /// The inviter's name (null once that account is gone).
    pub invited_by_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A user's membership, as the socket needs it: which project streams to deliver, and
/// from where a replay may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Membership {
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The project's seq just before the user joined: a replay may start there (their own
    /// `member.added` on), not earlier.
    pub joined_seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Owner.can_manage() && Role::Owner.can_write());
        assert!(Role::Editor.can_write() && !Role::Editor.can_manage());
        assert!(!Role::Viewer.can_write());
        for role in [Role::Viewer, Role::Editor, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("Owner").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProjectName::parse("  Launch ").unwrap().as_str(), "Launch");
        assert!(ProjectName::parse("  ").is_err());
        assert!(ProjectName::parse(&"x".repeat(101)).is_err());
        assert!(ProjectName::parse("a\u{7}b").is_err());
        assert!(ProjectName::parse("two\nlines").is_err());
    }
}
