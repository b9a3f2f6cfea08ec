use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// What happened, as named in the WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    #[serde(rename = "task.created")]
    TaskCreated,
    #[serde(rename = "task.updated")]
    TaskUpdated,
    #[serde(rename = "task.completed")]
    TaskCompleted,
    #[serde(rename = "task.pending")]
    TaskPending,
    #[serde(rename = "task.deleted")]
    TaskDeleted,
    #[serde(rename = "task.restored")]
    TaskRestored,
    #[serde(rename = "task.purged")]
    TaskPurged,
    #[serde(rename = "notification.created")]
    NotificationCreated,
    #[serde(rename = "notification.updated")]
    NotificationUpdated,
    #[serde(rename = "notification.deleted")]
    NotificationDeleted,
    #[serde(rename = "notifications.read_all")]
    NotificationsReadAll,
    #[serde(rename = "profile.updated")]
    ProfileUpdated,
    /// Project streams: the project's name or description changed.
    #[serde(rename = "project.updated")]
    ProjectUpdated,
    /// Project streams: the project was deleted; its stream ends here.
    #[serde(rename = "project.deleted")]
    ProjectDeleted,
    /// Project streams: someone joined (`{project_id, user_id, name, role}`).
    #[serde(rename = "member.added")]
    MemberAdded,
    /// Project streams: a member's role changed.
    #[serde(rename = "member.updated")]
    MemberUpdated,
    /// Project streams: someone left or was removed (`{project_id, user_id}`); when it
    /// is the socket's own user, the project's stream ends there for them.
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// The user's stream: they joined a project (`{project, role, last_seq}`); a socket
    /// that receives project streams delivers the project's events after `last_seq`.
    #[serde(rename = "project.joined")]
    ProjectJoined,
    /// The user's stream: they are no longer a member (`{project_id}`); the project's
    /// stream stops.
    #[serde(rename = "project.left")]
    ProjectLeft,
}

impl EventKind {
    pub const ALL: [Self; 19] = [
        Self::TaskCreated,
        Self::TaskUpdated,
        Self::TaskCompleted,
        Self::TaskPending,
        Self::TaskDeleted,
        Self::TaskRestored,
        Self::TaskPurged,
        Self::NotificationCreated,
        Self::NotificationUpdated,
        Self::NotificationDeleted,
        Self::NotificationsReadAll,
        Self::ProfileUpdated,
        Self::ProjectUpdated,
        Self::ProjectDeleted,
        Self::MemberAdded,
        Self::MemberUpdated,
        Self::MemberRemoved,
        Self::ProjectJoined,
        Self::ProjectLeft,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "task.created",
            Self::TaskUpdated => "task.updated",
            Self::TaskCompleted => "task.completed",
            Self::TaskPending => "task.pending",
            Self::TaskDeleted => "task.deleted",
            Self::TaskRestored => "task.restored",
            Self::TaskPurged => "task.purged",
            Self::NotificationCreated => "notification.created",
            Self::NotificationUpdated => "notification.updated",
            Self::NotificationDeleted => "notification.deleted",
            Self::NotificationsReadAll => "notifications.read_all",
            Self::ProfileUpdated => "profile.updated",
            Self::ProjectUpdated => "project.updated",
            Self::ProjectDeleted => "project.deleted",
            Self::MemberAdded => "member.added",
            Self::MemberUpdated => "member.updated",
            Self::MemberRemoved => "member.removed",
            Self::ProjectJoined => "project.joined",
            Self::ProjectLeft => "project.left",
        }
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| format!("unknown event kind {value:?}"))
    }
}

/// An ordered stream of events: a user's own (`user:<id>`) or a project's
/// (`project:<id>`), each with its own gap-free `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKey {
    User(Uuid),
    Project(Uuid),
}

impl StreamKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || "stream must be user:<id> or project:<id>".to_string();
        let (kind, id) = raw.split_once(':').ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        match kind {
            "user" => Ok(Self::User(id)),
            "project" => Ok(Self::Project(id)),
            _ => Err(invalid()),
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            Self::User(id) | Self::Project(id) => id,
        }
    }

    pub fn project(self) -> Option<Uuid> {
        match self {
            Self::Project(id) => Some(id),
            Self::User(_) => None,
        }
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Project(id) => write!(f, "project:{id}"),
        }
    }
}

impl Serialize for StreamKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An event about to be appended: the kind and the resource as the REST API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub data: Value,
}

/// How a write's events change what the user holds: (tasks, notifications). The stream
/// announces every row added or removed, so the per-user counts that quotas read are kept
/// from it, in the statement that appends the events (no trigger, no extra statement).
pub fn held_deltas(drafts: &[EventDraft]) -> (i64, i64) {
    drafts
        .iter()
        .fold((0, 0), |(tasks, notes), draft| match draft.kind {
            EventKind::TaskCreated => (tasks + 1, notes),
            EventKind::TaskPurged => (tasks - 1, notes),
            EventKind::NotificationCreated => (tasks, notes + 1),
            EventKind::NotificationDeleted => (tasks, notes - 1),
            _ => (tasks, notes),
        })
}

impl EventDraft {
    pub fn new(kind: EventKind, data: &impl Serialize) -> Self {
        Self {
            kind,
            // Serialising our own records cannot fail; an error would be a bug.
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }
}

/// One entry of a user's event stream, serialised exactly as the socket sends it:
/// `{"type": "event", "seq", "event", "at", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Always `event`.
    #[serde(rename = "type", default = "event_tag")]
    #[schema(value_type = String)]
    pub message_type: EventTag,
    /// The project stream the event belongs to (`project:<id>`); absent on the user's
    /// own stream, so a client that knows nothing of projects sees what it always saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "project:7c9e6679-7425-40de-944b-e07fc1f90ae7")]
    pub stream: Option<StreamKey>,
    /// Position in its stream: 1, 2, 3, … with no gaps.
    pub seq: i64,
    #[serde(rename = "event")]
    pub kind: EventKind,
    /// When the change was written: its transaction's time (RFC 3339, UTC).
    pub at: DateTime<Utc>,
    /// The resource as the REST API returns it (`{id}` for removals).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Event {
    pub fn new(seq: i64, kind: EventKind, at: DateTime<Utc>, data: Value) -> Self {
        Self {
            message_type: EventTag::Event,
            stream: None,
            seq,
            kind,
            at,
            data,
        }
    }

    /// The events `drafts` become when appended to `stream` from seq `first` on (a
    /// project's are tagged with their stream; a user's own go untagged).
    pub fn appended(
        stream: StreamKey,
        first: i64,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
    ) -> Vec<Self> {
        let tagged = stream.project().map(StreamKey::Project);
        drafts
            .iter()
            .zip(first..)
            .map(|(draft, seq)| Self {
                stream: tagged,
                ..Self::new(seq, draft.kind, at, draft.data.clone())
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTag {
    Event,
}

fn event_tag() -> EventTag {
    EventTag::Event
}

/// What one committed write added to a stream, as handed to the sockets of every
/// instance. Without `events` it only says "the stream now ends at `last_seq`": readers
/// fetch what they miss from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamUpdate {
    pub stream: StreamKey,
    /// The stream's latest seq after this write.
    pub last_seq: i64,
    pub events: Vec<Event>,
    /// The tokens (`jti`) this write stopped (sessions ended): their sockets close with
    /// 4003.
    pub revoked: Vec<uuid::Uuid>,
    /// The tokens a refresh replaced: REST refuses them at once; their sockets have
    /// `WS_REFRESH_GRACE` to move to the new token (`auth.refresh`) before closing with 4003.
    pub rotated: Vec<uuid::Uuid>,
}

impl StreamUpdate {
    /// "The stream now ends at `last_seq`", with nothing else.
    pub fn position(stream: StreamKey, last_seq: i64) -> Self {
        Self {
            stream,
            last_seq,
            events: Vec::new(),
            revoked: Vec::new(),
            rotated: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_counts_move_with_the_rows_the_events_announce() {
        let draft = |kind| EventDraft::new(kind, &serde_json::json!({}));
        assert_eq!(held_deltas(&[]), (0, 0));
        let purge_and_prune = [
            draft(EventKind::TaskPurged),
            draft(EventKind::NotificationCreated),
            draft(EventKind::NotificationDeleted),
            draft(EventKind::NotificationDeleted),
        ];
        assert_eq!(held_deltas(&purge_and_prune), (-1, -1));
        let create = [
            draft(EventKind::TaskCreated),
            draft(EventKind::NotificationCreated),
        ];
        assert_eq!(held_deltas(&create), (1, 1));
        // Changes of state add or remove no row.
        for kind in [
            EventKind::TaskUpdated,
            EventKind::TaskCompleted,
            EventKind::TaskPending,
            EventKind::TaskDeleted,
            EventKind::TaskRestored,
            EventKind::NotificationUpdated,
            EventKind::NotificationsReadAll,
            EventKind::ProfileUpdated,
        ] {
            assert_eq!(held_deltas(&[draft(kind)]), (0, 0), "{kind:?}");
        }
    }
}
