//! Storage: one narrow trait, [`Store`], over PostgreSQL or SQLite.
//!
//! Reads go straight to the store; every write happens inside a [`StoreTx`] that the
//! service layer opens, fills and commits, so one use case is one transaction. Both are
//! implemented once, by [`SqlStore`] (`sql.rs`), over the SQL in `queries.rs`. A
//! [`Backend`] (`postgres.rs`, `sqlite.rs`) supplies what differs: its pools and write
//! transactions, its row lock, how events get their seqs, NOTIFY, and how it names a
//! violated unique constraint. Failures come back as a [`StoreError`], so a service can
//! tell which unique constraint fired without knowing the driver. Connections come from
//! a [`ConnPool`] (`pool.rs`), which takes a connection back without the round trip
//! sqlx's own pool spends on each.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::domain::{
    ClaimedDelivery, ContactMessage, DeliveryJob, Email, Event, EventDraft, EventKind, Invitation,
    Member, Membership, NewTask, Notification, NotificationDraft, Profile, Project, PushMessage,
    ReminderSchedule, Role, StreamKey, TagCount, TagScope, Tags, Task, TaskFilter, TokenPurpose,
    UserWithPassword,
};

mod backend;
mod error;
mod pool;
mod postgres;
mod queries;
mod sql;
mod sqlite;

pub use backend::{Backend, Column, Pools};
pub use error::{StoreError, StoreResult, USERS_EMAIL_KEY, USERS_NAME_KEY};
pub use pool::{ConnPool, PoolLimits, PoolStats, PooledConnection, Tx};
pub use sql::SqlStore;

pub type PostgresStore = SqlStore<sqlx::Postgres>;
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

/// Where uploaded photos are served from; the store keeps only the file name.
pub const MEDIA_URL_PREFIX: &str = "/media/";

/// Whether a token may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Usable,
    /// Its session ended, or the token was replaced by a refresh.
    Revoked,
    /// No such session (or user) any more.
    UserGone,
}

/// A sign-in: the server-side record every token names (`sid`). Only the current token
/// (`token_jti`) is accepted; a refresh replaces it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// Absolute: refresh is refused past it.
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub token_jti: Uuid,
}

impl Session {
    /// What a token of this session with `jti` of `user_id` may do, now.
    pub fn token_state(&self, user_id: Uuid, jti: Uuid) -> TokenState {
        if self.user_id != user_id {
            TokenState::UserGone
        } else if self.ended_at.is_some() || self.token_jti != jti {
            TokenState::Revoked
        } else {
            TokenState::Usable
        }
    }
}

/// A new session's stored fields.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub token_jti: Uuid,
}

/// A membership and where its project's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct MembershipPosition {
    #[sqlx(flatten)]
    pub membership: Membership,
    pub last_seq: i64,
}

/// Where a user's streams stand: their own, and each of their projects'.
#[derive(Debug, Clone)]
pub struct StreamPositions {
    pub own: EventBounds,
    pub projects: Vec<MembershipPosition>,
}

/// A new project's stored fields.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub created_by: Uuid,
    pub now: DateTime<Utc>,
}

/// An invitation's stored fields.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: &'a str,
    pub role: Role,
    pub invited_by: Uuid,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A contact-form message as stored, with who sent it from where.
#[derive(Debug, Clone)]
pub struct NewContactMessage<'a> {
    pub id: Uuid,
    pub message: &'a ContactMessage,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// A browser's push subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PushSubscriptionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret (base64url), as it gave them.
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A mailed token that was used up: whose it was and where it was sent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsedMailToken {
    pub user_id: Uuid,
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// How a claimed delivery ends, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// `sent`, `skipped` or `failed`, with the reason for the last two.
    Final {
        status: &'static str,
        error: Option<String>,
    },
    /// Pending again, due at `at`.
    RetryAt { at: DateTime<Utc>, error: String },
}

/// What `GET /notifications` asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFilter {
    pub unread_only: bool,
    pub newest_first: bool,
    pub limit: i64,
    pub offset: i64,
}

/// One page of notifications with the counts the list headers carry.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Matching the filter, before limit/offset.
    pub total: i64,
    pub unread: i64,
}

/// A new account's stored fields.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`, for logs and health output.
    fn backend(&self) -> &'static str;

    /// What the connection pool(s) hold and have done, for metrics.
    fn pool_stats(&self) -> PoolStats;

    async fn ping(&self) -> StoreResult<()>;

    /// Opens the transaction of one write use case.
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>>;

    async fn user_for_sign_in(&self, email: &Email) -> StoreResult<Option<UserWithPassword>>;
    async fn profile(&self, user_id: Uuid) -> StoreResult<Option<Profile>>;
    async fn email_taken(&self, email: &Email) -> StoreResult<bool>;
    /// Case-insensitive; `except` is the user allowed to hold the name already.
    async fn name_taken(&self, name: &str, except: Option<Uuid>) -> StoreResult<bool>;
    async fn password_hash(&self, user_id: Uuid) -> StoreResult<Option<String>>;
    /// One query per authenticated request (sessions go with their user).
    async fn session(&self, id: Uuid) -> StoreResult<Option<Session>>;
    /// The user's sessions neither ended nor past `now`'s absolute lifetime.
    async fn active_sessions(&self, user_id: Uuid, now: DateTime<Utc>)
        -> StoreResult<Vec<Session>>;

    async fn task(&self, id: i64) -> StoreResult<Option<Task>>;
    /// The page of tasks and the number matching the filter before paging.
    async fn tasks(&self, user_id: Uuid, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)>;
    /// The tags of the scope's tasks that are not in the trash, with how many carry each,
    /// most used first.
    async fn tag_counts(&self, scope: TagScope) -> StoreResult<Vec<TagCount>>;

    async fn notification(&self, user_id: Uuid, id: i64) -> StoreResult<Option<Notification>>;
    async fn notifications(
        &self,
        user_id: Uuid,
        filter: &NotificationFilter,
    ) -> StoreResult<NotificationPage>;
    async fn unread_count(&self, user_id: Uuid) -> StoreResult<i64>;

    /// The stream's events with `seq > since`, in order, at most `limit` (project events
    /// carry their `stream`).
    async fn events_after(
        &self,
        stream: StreamKey,
        since: i64,
        limit: i64,
    ) -> StoreResult<Vec<Event>>;
    /// The stream's latest seq and the oldest one still stored; `None` if no such stream.
    async fn event_bounds(&self, stream: StreamKey) -> StoreResult<Option<EventBounds>>;
    /// The latest seq of each of these streams (unknown ones are left out).
    async fn latest_seqs(&self, streams: &[StreamKey]) -> StoreResult<Vec<(StreamKey, i64)>>;
    /// Deletes up to `batch` events (of users, then of projects) older than `older_than`
    /// that are not among their stream's last `keep_last`; returns how many. Deleted
    /// projects whose stream is gone are forgotten too.
    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        keep_last: i64,
        batch: i64,
    ) -> StoreResult<u64>;

    /// Forgets sessions past their absolute lifetime and ended ones; returns how many.
    async fn prune_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Claims up to `limit` pending deliveries due by `now` for `claim_id`, holding them
    /// until `lease_until` (another worker may take them after that). Rows whose job no
    /// longer parses are settled as failed and left out.
    async fn claim_deliveries(
        &self,
        claim_id: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Whether a delivery is due by `now` (a read: an idle worker looks without taking
    /// the writer).
    async fn delivery_due(&self, now: DateTime<Utc>) -> StoreResult<bool>;
    /// When the next reminder fires, if any is scheduled (a read, like `delivery_due`).
    async fn next_reminder_at(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Settles a claimed delivery; `false` if the claim was lost (the lease passed and
    /// another worker took it).
    async fn settle_delivery(
        &self,
        id: i64,
        claim_id: Uuid,
        settlement: Settlement,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Pending deliveries and when the oldest was written.
    async fn delivery_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
    /// Forgets deliveries settled before `cutoff`, and mailed tokens expired by `now`.
    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>)
        -> StoreResult<u64>;
    /// Keeps a new mailed token (a single write, at send time).
    async fn insert_mail_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn push_subscription(&self, id: Uuid) -> StoreResult<Option<PushSubscriptionRecord>>;
    async fn push_subscriptions(&self, user_id: Uuid) -> StoreResult<Vec<PushSubscriptionRecord>>;
    /// Forgets a subscription its push service says is gone (and what was on its way).
    async fn delete_push_subscription_by_id(&self, id: Uuid) -> StoreResult<()>;
    /// Whether the user asked for reminders by e-mail; `None` if no such user.
    async fn email_reminders(&self, user_id: Uuid) -> StoreResult<Option<bool>>;

    /// Marks `instance` alive at `now`, and records how many sockets users have on it now
    /// (0: none left), in one transaction. `false`: the instance was not on record (its
    /// first mark, or it was forgotten, or a crash emptied the presence tables), so only
    /// these users' counts are: the caller writes all of them.
    async fn record_presence(
        &self,
        instance: Uuid,
        devices: &[(Uuid, i64)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The instances other than `instance` seen since `fresh_since`, each with when it
    /// last recorded a presence change (`None`: never): while this stays the same, so does
    /// the presence they recorded.
    async fn presence_marks(
        &self,
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, Option<DateTime<Utc>>)>>;
    /// `(project, member, sockets)` for every member of these projects, counting the
    /// sockets on instances other than `instance` seen since `fresh_since`.
    async fn project_presence(
        &self,
        project_ids: &[Uuid],
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, Uuid, i64)>>;
    /// Forgets instances not seen since `stale_before`, and `leaving` (this one, stopping),
    /// with their presence.
    async fn forget_instances(
        &self,
        stale_before: DateTime<Utc>,
        leaving: Option<Uuid>,
    ) -> StoreResult<()>;
    /// Whether the user has a socket on another instance seen since `fresh_since`.
    async fn connected_elsewhere(
        &self,
        user_id: Uuid,
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Project `id` as member `user_id` sees it; `None` if they are not a member (or it
    /// was deleted).
    async fn project(&self, id: Uuid, user_id: Uuid) -> StoreResult<Option<Project>>;
    /// The projects the user belongs to.
    async fn projects(&self, user_id: Uuid) -> StoreResult<Vec<Project>>;
    async fn membership(&self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<Membership>>;
    /// Where the user's own stream ends and the user's memberships, each with its project
    /// stream's latest seq, in one query whatever their number (a socket reads them when
    /// it opens); `None` when the user does not exist.
    async fn stream_positions(&self, user_id: Uuid) -> StoreResult<Option<StreamPositions>>;
    async fn members(&self, project_id: Uuid) -> StoreResult<Vec<Member>>;
    async fn member(&self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<Member>>;
    /// Open invitations to this address.
    async fn invitations_to(&self, email: &str, now: DateTime<Utc>)
        -> StoreResult<Vec<Invitation>>;
    /// Open invitations of the project.
    async fn project_invitations(
        &self,
        project_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;
    /// Forgets expired invitations; returns how many.
    async fn prune_invitations(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Up to `limit` users holding notifications created before `cutoff`.
    async fn users_with_notifications_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Uuid>>;
}

/// The writes of one use case, committed together or not at all.
#[async_trait]
pub trait StoreTx: Send {
    async fn insert_user(&mut self, user: NewUser<'_>) -> StoreResult<Profile>;
    async fn set_password_hash(&mut self, user_id: Uuid, hash: &str) -> StoreResult<()>;
    /// The profile, locked against concurrent updates until commit.
    async fn profile_for_update(&mut self, user_id: Uuid) -> StoreResult<Option<Profile>>;
    /// Writes the editable fields and `updated_at` of the profile.
    async fn save_profile(&mut self, profile: &Profile) -> StoreResult<Profile>;
    /// The stored photo file name, if any.
    async fn profile_photo(&mut self, user_id: Uuid) -> StoreResult<Option<String>>;
    async fn set_profile_photo(
        &mut self,
        user_id: Uuid,
        file: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Profile>;

    /// Inserts the task, with its tags, unless the user already holds `max_tasks` (then
    /// `None`).
    async fn insert_task(
        &mut self,
        user_id: Uuid,
        task: &NewTask,
        schedule: ReminderSchedule,
        now: DateTime<Utc>,
        max_tasks: i64,
    ) -> StoreResult<Option<Task>>;
    /// The task, locked against concurrent updates until commit.
    async fn task_for_update(&mut self, id: i64) -> StoreResult<Option<Task>>;
    /// Writes the task's fields (its tags as shown included; see `set_task_tags`).
    async fn save_task(&mut self, task: &Task) -> StoreResult<Task>;
    /// Replaces the rows the `tag` filter and `GET /tags` read: after `save_task` with
    /// changed tags.
    async fn set_task_tags(&mut self, task_id: i64, tags: &Tags) -> StoreResult<()>;
    async fn delete_task(&mut self, id: i64) -> StoreResult<()>;

    /// Inserts the notification; also returns how many the user held before it.
    async fn insert_notification(
        &mut self,
        draft: &NotificationDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<(Notification, i64)>;
    /// Stores a contact-form message.
    async fn insert_contact_message(&mut self, message: NewContactMessage<'_>) -> StoreResult<()>;
    /// Adds a delivery (a mail) to the outbox, due at `now`.
    async fn enqueue_delivery(
        &mut self,
        user_id: Option<Uuid>,
        job: &DeliveryJob,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Adds one push delivery of `message` per push subscription of the user; returns
    /// how many.
    async fn enqueue_push(
        &mut self,
        user_id: Uuid,
        message: &PushMessage,
        only_if_offline: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Whether this transaction added deliveries (the funnel wakes the local worker
    /// after commit).
    fn enqueued_deliveries(&self) -> bool;
    /// The next task whose reminder is due by `now`, locked; one another transaction
    /// holds is skipped.
    async fn due_reminder(&mut self, now: DateTime<Utc>) -> StoreResult<Option<Task>>;
    async fn set_reminder(&mut self, task_id: i64, schedule: ReminderSchedule) -> StoreResult<()>;
    /// Uses up a mailed token of `purpose` (expired or not: the caller checks).
    async fn use_mail_token(
        &mut self,
        token_hash: &str,
        purpose: TokenPurpose,
    ) -> StoreResult<Option<UsedMailToken>>;
    async fn delete_mail_tokens(&mut self, user_id: Uuid, purpose: TokenPurpose)
        -> StoreResult<()>;
    /// Marks `email` verified if it is still the user's address.
    async fn set_email_verified(
        &mut self,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Profile>>;
    /// Saves a browser's subscription for the user (an endpoint another account held
    /// moves here), keeping the user's `keep` newest.
    async fn save_push_subscription(
        &mut self,
        subscription: &PushSubscriptionRecord,
        keep: i64,
    ) -> StoreResult<PushSubscriptionRecord>;
    /// Removes the user's subscription of this endpoint; `false` if there was none.
    async fn delete_push_subscription(
        &mut self,
        user_id: Uuid,
        endpoint: &str,
    ) -> StoreResult<bool>;

    /// Deletes the user's `count` oldest notifications; returns their ids.
    async fn delete_oldest_notifications(
        &mut self,
        user_id: Uuid,
        count: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Deletes the user's notifications created before `cutoff`; returns their ids.
    async fn delete_notifications_before(
        &mut self,
        user_id: Uuid,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>>;
    async fn set_notification_read(
        &mut self,
        user_id: Uuid,
        id: i64,
        is_read: bool,
    ) -> StoreResult<Option<Notification>>;
    /// Marks every unread notification read; returns the ids that changed.
    async fn mark_all_read(&mut self, user_id: Uuid) -> StoreResult<Vec<i64>>;
    /// Deletes those of `ids` that belong to the user; returns the ids deleted.
    async fn delete_notifications(&mut self, user_id: Uuid, ids: &[i64]) -> StoreResult<Vec<i64>>;

    async fn insert_session(&mut self, session: NewSession<'_>) -> StoreResult<()>;
    /// The session, locked against concurrent refreshes until commit.
    async fn session_for_update(&mut self, id: Uuid) -> StoreResult<Option<Session>>;
    /// Makes `jti` the session's only accepted token.
    async fn rotate_session(&mut self, id: Uuid, jti: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
    /// Ends the user's open session `id`; returns the token it accepted (none if there
    /// was no such open session of this user).
    async fn end_session(
        &mut self,
        user_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;
    /// Ends every open session of the user except `except`; returns their tokens.
    async fn end_sessions(
        &mut self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// Ends the user's open sessions but the `keep` most recently used; returns their
    /// tokens.
    async fn end_sessions_beyond(
        &mut self,
        user_id: Uuid,
        keep: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// A new project (its creator becomes its owner through [`StoreTx::insert_member`]).
    async fn insert_project(&mut self, project: NewProject<'_>) -> StoreResult<()>;
    /// Project `id` as member `user_id` sees it, in this transaction (a member just added
    /// included).
    async fn project(&mut self, id: Uuid, user_id: Uuid) -> StoreResult<Option<Project>>;
    /// The project's latest seq, its row locked until commit (membership changes and
    /// deletion take it first, so they are serialised per project); `None` if deleted.
    async fn lock_project(&mut self, id: Uuid) -> StoreResult<Option<i64>>;
    /// `user_id`'s membership of live project `project_id` and the project's latest seq,
    /// both rows locked until commit (the project's first, as [`Self::lock_project`]):
    /// one round trip for what every write of a member starts with.
    async fn lock_membership(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<MembershipPosition>>;
    /// The stream's latest seq, known without a query when this transaction holds its
    /// row locked ([`Self::lock_project`], [`Self::lock_membership`], or an append): the
    /// next append takes the seqs after it.
    fn latest_seq(&self, stream: StreamKey) -> Option<i64>;
    async fn save_project(
        &mut self,
        id: Uuid,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks the project deleted and removes its tasks, members and invitations; returns
    /// who were members.
    async fn delete_project(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<Uuid>>;
    /// `user_id`'s membership, locked until commit.
    async fn membership_for_update(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<Membership>>;
    /// How many projects the user belongs to, members a project has, and owners.
    async fn membership_count(&mut self, user_id: Uuid) -> StoreResult<i64>;
    async fn member_count(&mut self, project_id: Uuid) -> StoreResult<i64>;
    async fn owner_count(&mut self, project_id: Uuid) -> StoreResult<i64>;
    async fn member_ids(&mut self, project_id: Uuid) -> StoreResult<Vec<Uuid>>;
    async fn insert_member(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: Role,
        joined_seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn set_member_role(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> StoreResult<()>;
    /// Removes the member, and unassigns their tasks in the project.
    async fn delete_member(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<()>;
    /// Invites (again) `email`; returns the invitation's id (the existing one's, when the
    /// address was invited already).
    async fn upsert_invitation(&mut self, invitation: NewInvitation<'_>) -> StoreResult<Uuid>;
    async fn invitation_count(&mut self, project_id: Uuid, now: DateTime<Utc>) -> StoreResult<i64>;
    /// The invitation (changed only under its project's lock, but for a decline).
    async fn invitation(&mut self, id: Uuid) -> StoreResult<Option<Invitation>>;
    async fn delete_invitation(&mut self, id: Uuid) -> StoreResult<()>;
    /// The account with this address, if any.
    async fn user_id_by_email(&mut self, email: &str) -> StoreResult<Option<Uuid>>;
    /// A user's display name (for messages), if the account exists.
    async fn user_name(&mut self, user_id: Uuid) -> StoreResult<Option<String>>;

    /// Appends the stream's next events (seq = latest + 1, + 2, …; `drafts` not empty)
    /// and returns the first one's seq (`domain::Event::appended` makes the events).
    async fn append_events(
        &mut self,
        stream: StreamKey,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
    ) -> StoreResult<i64>;

    /// PostgreSQL: `pg_notify(channel, payload)`, delivered only if the transaction commits,
    /// in the order queued. Sent with the transaction's next append (so a NOTIFY for a
    /// stream whose seq is known goes in its append's round trip), else just before the
    /// commit. Other backends have no such thing and refuse.
    async fn notify(&mut self, channel: &str, payload: &str) -> StoreResult<()>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// Where a user's stored stream starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBounds {
    pub last_seq: i64,
    /// The oldest seq still stored; `None` when nothing is (never written, or all pruned).
    pub first_retained: Option<i64>,
}

impl EventBounds {
    /// Whether every event after `since` is still stored, so a replay from there is
    /// complete. A `since` beyond the latest seq is not (the client's state is from
    /// another history).
    pub fn can_replay_from(&self, since: i64) -> bool {
        if since > self.last_seq || since < 0 {
            return false;
        }
        since == self.last_seq || self.first_retained.is_some_and(|first| first <= since + 1)
    }
}

/// A task of a listed page, with the number of tasks matching the filter.
#[derive(Debug, sqlx::FromRow)]
struct TaskWithTotal {
    #[sqlx(flatten)]
    task: Task,
    total: i64,
}

/// A notification just inserted, with how many the user held before it.
#[derive(Debug, sqlx::FromRow)]
struct InsertedNotification {
    #[sqlx(flatten)]
    notification: Notification,
    held_before: i64,
}

/// A notification of a listed page, with the counts the page reports.
#[derive(Debug, sqlx::FromRow)]
struct NotificationWithCounts {
    #[sqlx(flatten)]
    notification: Notification,
    total: i64,
    unread: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    seq: i64,
    #[sqlx(try_from = "String")]
    kind: EventKind,
    at: DateTime<Utc>,
    data: String,
}

impl EventRow {
    fn into_event(self, stream: StreamKey) -> StoreResult<Event> {
        let data = serde_json::from_str(&self.data)
            .map_err(|e| StoreError::Other(sqlx::Error::Decode(Box::new(e))))?;
        let mut event = Event::new(self.seq, self.kind, self.at, data);
        event.stream = stream.project().map(StreamKey::Project);
        Ok(event)
    }
}

pub use crate::config::PoolSizes;

impl PoolSizes {
    /// The smallest pools (one connection each), for `taskstream migrate` and tests.
    pub const SINGLE: Self = Self {
        total: 1,
        writers: 1,
    };

    /// Connections for writes and for reads, each at least one. Write transactions have
    /// their own pool so that reads never wait for a connection that a writer holds
    /// through its commit, and so that a burst of writes queues here, cheaply, instead
    /// of on the database's CPU, where it would slow every read down.
    pub fn split(self) -> (u32, u32) {
        let writers = self.writers.clamp(1, self.total.saturating_sub(1).max(1));
        (writers, self.total.saturating_sub(writers).max(1))
    }
}

/// Opens the store the URL names, applying its migrations first.
pub async fn connect(
    url: &DatabaseUrl,
    sizes: PoolSizes,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.is_postgres() {
        Ok(std::sync::Arc::new(
            PostgresStore::connect(url, sizes).await?,
        ))
    } else {
        Ok(std::sync::Arc::new(SqliteStore::connect(url, sizes).await?))
    }
}

/// The stored shape of a user row, turned into the API's [`Profile`].
#[derive(Debug, sqlx::FromRow)]
struct ProfileRow {
    id: Uuid,
    name: String,
    email: String,
    password_hash: String,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    date_of_birth: Option<NaiveDate>,
    gender: Option<String>,
    address: Option<String>,
    city: Option<String>,
    country: Option<String>,
    bio: Option<String>,
    profile_photo: Option<String>,
    is_email_verified: bool,
    email_reminders: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ProfileRow {
    fn into_profile(self) -> Profile {
        self.into_parts().0
    }

    fn into_parts(self) -> (Profile, String) {
        let profile = Profile {
            id: self.id,
            name: self.name,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone,
            date_of_birth: self.date_of_birth,
            gender: self.gender,
            address: self.address,
            city: self.city,
            country: self.country,
            bio: self.bio,
            profile_photo_url: self
                .profile_photo
                .map(|file| format!("{MEDIA_URL_PREFIX}{file}")),
            is_email_verified: self.is_email_verified,
            email_reminders: self.email_reminders,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        (profile, self.password_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::PoolSizes;

    #[test]
    fn pool_sizes_leave_at_least_one_connection_to_each_side() {
        let split = |total, writers| PoolSizes { total, writers }.split();
        assert_eq!(split(10, 4), (4, 6));
        assert_eq!(split(10, 20), (9, 1));
        assert_eq!(split(10, 0), (1, 9));
        assert_eq!(split(1, 1), (1, 1));
        assert_eq!(split(0, 0), (1, 1));
    }
}
