//! The SQL both backends run. Both take `$N` placeholders (reused ones included) and
//! `RETURNING`, and the schemas (`migrations/<backend>`) have the same shape, so each query
//! is written once. What differs per backend lives in the backend's module.
//!
//! Queries that share a fragment (a column list, the task filter) are put together at
//! compile time by [`sql`]: `concat!` accepts literals only, not constants.

use std::marker::PhantomData;

use super::backend::Backend;

pub const USER_COLUMNS: &str =
    "id, name, email, password_hash, first_name, last_name, phone, date_of_birth, gender, \
     address, city, country, bio, profile_photo, is_email_verified, email_reminders, created_at, \
     updated_at";

pub const TASK_COLUMNS: &str =
    "id, user_id, title, description, completed, priority, due_date, is_deleted, deleted_at, \
     created_at, updated_at, remind_at, reminder_stage, project_id, assignee_id, tags";

pub const NOTIFICATION_COLUMNS: &str =
    "id, user_id, kind, title, message, is_read, task_id, created_at";

pub const PING: &str = "SELECT 1";

// Users.

pub const USER_BY_EMAIL: &str = sql(&join(&[
    "SELECT ",
    USER_COLUMNS,
    " FROM users WHERE email = $1",
]));

pub const USER_BY_ID: &str = sql(&join(&[
    "SELECT ",
    USER_COLUMNS,
    " FROM users WHERE id = $1",
]));

pub const PROFILE_PHOTO: &str = "SELECT profile_photo FROM users WHERE id = $1";

pub const PASSWORD_HASH: &str = "SELECT password_hash FROM users WHERE id = $1";

pub const EMAIL_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)";

/// `$1` is the name's key (case folded); `$2` the user allowed to hold it already.
pub const NAME_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE name_key = $1 \
                              AND ($2 IS NULL OR id <> $2))";

/// `$6` is the name's key.
pub const INSERT_USER: &str = sql(&join(&[
    "INSERT INTO users (id, name, name_key, email, password_hash, created_at, updated_at) \
     VALUES ($1, $2, $6, $3, $4, $5, $5) RETURNING ",
    USER_COLUMNS,
]));

pub const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";

/// `$13` is the name's key.
pub const SAVE_PROFILE: &str = sql(&join(&[
    "UPDATE users SET name = $2, first_name = $3, last_name = $4, phone = $5, \
     date_of_birth = $6, gender = $7, address = $8, city = $9, country = $10, bio = $11, \
     updated_at = $12, name_key = $13, email_reminders = $14 WHERE id = $1 RETURNING ",
    USER_COLUMNS,
]));

pub const SET_PROFILE_PHOTO: &str = sql(&join(&[
    "UPDATE users SET profile_photo = $2, updated_at = $3 WHERE id = $1 RETURNING ",
    USER_COLUMNS,
]));

// Tasks.

pub const TASK_BY_ID: &str = sql(&join(&[
    "SELECT ",
    TASK_COLUMNS,
    " FROM tasks WHERE id = $1",
]));

/// How many tags the filter of `GET /tasks` can require: no task has more.
pub const TAG_FILTER_SLOTS: usize = 10;
const _: () = assert!(TAG_FILTER_SLOTS == crate::domain::Tags::MAX);

/// Which tasks `GET /tasks` looks at (its `WHERE`'s start): `$1` is the caller (personal
/// tasks) or the project, `$21` the assignee filter; see [`TaskQueries`].
const SCOPE_PERSONAL: &str =
    " WHERE user_id = $1 AND project_id IS NULL AND ($21 IS NULL OR assignee_id = $21)";
const SCOPE_PROJECT: &str = " WHERE project_id = $1 AND ($21 IS NULL OR assignee_id = $21)";
/// Tasks assigned to `$21` in every project the caller `$1` belongs to.
const SCOPE_MY_PROJECTS: &str = " WHERE assignee_id = $21 AND project_id IN \
     (SELECT project_id FROM project_members WHERE user_id = $1)";

/// The filter of `GET /tasks` after its scope, around the backend's full-text condition
/// ([`Backend::TASK_SEARCH`], on `$7`–`$9`): `$2`–`$6` the optional constraints,
/// `$10`–`$19` the keys of the tags a task must have (null for none) and `$20` how many
/// they are.
const TASK_FILTER: [&str; 2] = [
    " AND ($2 IS NULL OR is_deleted = $2) \
     AND ($3 IS NULL OR completed = $3) \
     AND ($4 IS NULL OR priority = $4) \
     AND ($5 IS NULL OR created_at >= $5) \
     AND ($6 IS NULL OR created_at <= $6) \
     AND ",
    " AND ($20 = 0 OR (SELECT count(*) FROM task_tags tt WHERE tt.task_id = tasks.id \
     AND tt.tag_key IN ($10, $11, $12, $13, $14, $15, $16, $17, $18, $19)) = $20)",
];

/// The tags of the user's (`$1`) personal tasks that are not in the trash: each
/// spelling, how many tasks carry it, and the oldest of them.
pub const USER_TAG_COUNTS: &str = "SELECT tt.tag_key, tt.tag, count(*), min(tt.task_id) \
     FROM task_tags tt JOIN tasks t ON t.id = tt.task_id \
     WHERE t.user_id = $1 AND t.project_id IS NULL AND NOT t.is_deleted \
     GROUP BY tt.tag_key, tt.tag";

/// The same over project `$1`'s tasks.
pub const PROJECT_TAG_COUNTS: &str = "SELECT tt.tag_key, tt.tag, count(*), min(tt.task_id) \
     FROM task_tags tt JOIN tasks t ON t.id = tt.task_id \
     WHERE t.project_id = $1 AND NOT t.is_deleted GROUP BY tt.tag_key, tt.tag";

pub const DELETE_TASK_TAGS: &str = "DELETE FROM task_tags WHERE task_id = $1";

/// One row per tag of the task `$1`: `($1, $2, $3), ($1, $4, $5), …` (key, tag).
pub fn insert_task_tags(count: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
        .collect();
    format!(
        "INSERT INTO task_tags (task_id, tag_key, tag) VALUES {}",
        rows.join(", ")
    )
}

/// Inserts the task only while the user (`$1`) holds fewer than `$8` tasks; see
/// [`Locked::INSERT_TASK`] for the form that runs.
const INSERT_TASK_WITHIN_QUOTA: [&str; 2] = [
    "INSERT INTO tasks (user_id, title, description, completed, priority, due_date, \
     created_at, updated_at, remind_at, reminder_stage, tags, assignee_id) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $7, $9, $10, $11, $12 \
     WHERE (SELECT task_count FROM users WHERE id = $1",
    ") < $8 RETURNING ",
];

/// The same in project `$13`, counted against the project's holding.
const INSERT_PROJECT_TASK_WITHIN_QUOTA: [&str; 2] = [
    "INSERT INTO tasks (user_id, title, description, completed, priority, due_date, \
     created_at, updated_at, remind_at, reminder_stage, tags, assignee_id, project_id) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $7, $9, $10, $11, $12, $13 \
     WHERE (SELECT task_count FROM projects WHERE id = $13 AND deleted_at IS NULL",
    ") < $8 RETURNING ",
];

pub const SAVE_TASK: &str = sql(&join(&[
    "UPDATE tasks SET title = $2, description = $3, completed = $4, priority = $5, \
     due_date = $6, is_deleted = $7, deleted_at = $8, updated_at = $9, remind_at = $10, \
     reminder_stage = $11, tags = $12, assignee_id = $13 WHERE id = $1 \
     RETURNING ",
    TASK_COLUMNS,
]));

pub const DELETE_TASK: &str = "DELETE FROM tasks WHERE id = $1";

// Notifications.

pub const NOTIFICATION_BY_ID: &str = sql(&join(&[
    "SELECT ",
    NOTIFICATION_COLUMNS,
    " FROM notifications WHERE id = $1 AND user_id = $2",
]));

/// A page of `GET /notifications` up to its ORDER BY. The counts ride with the page, as
/// with tasks: the window counts see every row the filter keeps (a superset of the unread
/// ones) before LIMIT.
const NOTIFICATION_PAGE: &str = sql(&join(&[
    "SELECT ",
    NOTIFICATION_COLUMNS,
    ", count(*) OVER () AS total, count(*) FILTER (WHERE NOT is_read) OVER () AS unread \
     FROM notifications WHERE user_id = $1 AND (NOT $2 OR NOT is_read) ORDER BY ",
]));

pub const NOTIFICATION_PAGE_NEWEST_FIRST: &str = sql(&join(&[
    NOTIFICATION_PAGE,
    "created_at DESC, id DESC LIMIT $3 OFFSET $4",
]));

pub const NOTIFICATION_PAGE_OLDEST_FIRST: &str = sql(&join(&[
    NOTIFICATION_PAGE,
    "created_at ASC, id ASC LIMIT $3 OFFSET $4",
]));

/// The counts of a notification page past the end: matching the filter, and unread.
pub const NOTIFICATION_COUNTS: &str = "SELECT count(*) FILTER (WHERE NOT $2 OR NOT is_read), \
                                              count(*) FILTER (WHERE NOT is_read) \
                                       FROM notifications WHERE user_id = $1";

pub const UNREAD_COUNT: &str =
    "SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT is_read";

/// Returns the notification and, last, how many the user held before this transaction
/// (the count moves when the transaction appends its events).
pub const INSERT_NOTIFICATION: &str = sql(&join(&[
    "INSERT INTO notifications (user_id, kind, title, message, task_id, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    NOTIFICATION_COLUMNS,
    ", (SELECT notification_count FROM users WHERE id = $1) AS held_before",
]));

/// Deletes the user's (`$1`) oldest `$2` notifications, returning their ids.
pub const DELETE_OLDEST_NOTIFICATIONS: &str = "DELETE FROM notifications WHERE id IN ( \
     SELECT id FROM notifications WHERE user_id = $1 ORDER BY created_at, id LIMIT $2) \
     RETURNING id";

/// Deletes the user's (`$1`) notifications created before `$2`, returning their ids.
pub const DELETE_NOTIFICATIONS_BEFORE: &str =
    "DELETE FROM notifications WHERE user_id = $1 AND created_at < $2 RETURNING id";

/// Up to `$2` users holding notifications created before `$1`.
pub const USERS_WITH_NOTIFICATIONS_BEFORE: &str =
    "SELECT DISTINCT user_id FROM notifications WHERE created_at < $1 LIMIT $2";

pub const SET_NOTIFICATION_READ: &str = sql(&join(&[
    "UPDATE notifications SET is_read = $3 WHERE id = $1 AND user_id = $2 RETURNING ",
    NOTIFICATION_COLUMNS,
]));

pub const MARK_ALL_READ: &str =
    "UPDATE notifications SET is_read = $2 WHERE user_id = $1 AND NOT is_read RETURNING id";

/// Deletes those of the listed ids (`$2, $3, …`, see [`with_list`]) that are the user's
/// (`$1`), returning them.
pub const DELETE_NOTIFICATIONS: [&str; 2] = [
    "DELETE FROM notifications WHERE user_id = $1 AND id IN (",
    ") RETURNING id",
];

// Sessions.

pub const SESSION_COLUMNS: &str =
    "id, user_id, created_at, last_used_at, expires_at, user_agent, ip, ended_at, token_jti";

pub const SESSION_BY_ID: &str = sql(&join(&[
    "SELECT ",
    SESSION_COLUMNS,
    " FROM sessions WHERE id = $1",
]));

/// The user's sessions that can still be used, most recently used first.
pub const ACTIVE_SESSIONS: &str = sql(&join(&[
    "SELECT ",
    SESSION_COLUMNS,
    " FROM sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 \
     ORDER BY last_used_at DESC, created_at DESC",
]));

pub const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, last_used_at, \
     expires_at, user_agent, ip, token_jti) VALUES ($1, $2, $3, $3, $4, $5, $6, $7)";

/// Makes `$2` the session's only accepted token.
pub const ROTATE_SESSION: &str =
    "UPDATE sessions SET token_jti = $2, last_used_at = $3 WHERE id = $1";

/// Ends one open session of the user; returns the token it accepted.
pub const END_SESSION: &str = "UPDATE sessions SET ended_at = $3 \
     WHERE user_id = $1 AND id = $2 AND ended_at IS NULL RETURNING token_jti";

/// Ends every open session of the user but `$2` (none when null); returns their tokens.
pub const END_SESSIONS: &str = "UPDATE sessions SET ended_at = $3 \
     WHERE user_id = $1 AND ended_at IS NULL AND ($2 IS NULL OR id <> $2) RETURNING token_jti";

/// Ends the user's open sessions but the `$2` most recently used; returns their tokens.
pub const END_SESSIONS_BEYOND: &str = "UPDATE sessions SET ended_at = $3 \
     WHERE user_id = $1 AND ended_at IS NULL AND id NOT IN ( \
         SELECT id FROM sessions WHERE user_id = $1 AND ended_at IS NULL \
         ORDER BY last_used_at DESC, created_at DESC LIMIT $2) \
     RETURNING token_jti";

/// Sessions past their absolute lifetime, and ended ones: none of their tokens can be
/// used or refreshed (a token whose session is gone is refused like an ended one).
pub const PRUNE_SESSIONS: &str =
    "DELETE FROM sessions WHERE expires_at < $1 OR ended_at IS NOT NULL";

// Contact messages.

pub const INSERT_CONTACT_MESSAGE: &str = "INSERT INTO contact_messages (id, name, email, \
     subject, message, ip, user_agent, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Marks the address verified, if it is still the account's address.
pub const SET_EMAIL_VERIFIED: &str = sql(&join(&[
    "UPDATE users SET is_email_verified = $3, updated_at = $4 WHERE id = $1 AND email = $2 \
     RETURNING ",
    USER_COLUMNS,
]));

pub const EMAIL_REMINDERS: &str = "SELECT email_reminders FROM users WHERE id = $1";

// Reminders.

/// The next task whose reminder is due (locked; others' claims are skipped).
const DUE_REMINDER: &str = sql(&join(&[
    "SELECT ",
    TASK_COLUMNS,
    " FROM tasks WHERE remind_at <= $1 ORDER BY remind_at LIMIT 1",
]));

/// When the next reminder fires (the partial index on `remind_at` answers it).
pub const NEXT_REMINDER_AT: &str = "SELECT min(remind_at) FROM tasks WHERE remind_at IS NOT NULL";

pub const SET_REMINDER: &str = "UPDATE tasks SET remind_at = $2, reminder_stage = $3 WHERE id = $1";

// Deliveries.

pub const INSERT_DELIVERY: &str = "INSERT INTO deliveries (channel, kind, user_id, job, due_at, \
     created_at) VALUES ($1, $2, $3, $4, $5, $5)";

/// One delivery of the job `$3` per push subscription of the user `$1`.
pub const INSERT_PUSH_DELIVERIES: &str = "INSERT INTO deliveries (channel, kind, user_id, \
     subscription_id, job, due_at, created_at) \
     SELECT 'push', $2, user_id, id, $3, $4, $4 FROM push_subscriptions WHERE user_id = $1";

/// Takes up to `$4` pending deliveries due by `$3` for claim `$1`, held until `$2`.
const CLAIM_DELIVERIES: [&str; 2] = [
    "UPDATE deliveries SET claim_id = $1, due_at = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND due_at <= $3 \
     ORDER BY due_at LIMIT $4",
    ") RETURNING id, user_id, subscription_id, job, attempts, claim_id",
];

/// Settles a delivery for good (only by the claim that holds it); its job, which may
/// hold personal data, is not kept.
pub const SETTLE_DELIVERY: &str = "UPDATE deliveries SET status = $3, last_error = $4, \
     settled_at = $5, job = '', claim_id = NULL WHERE id = $1 AND claim_id = $2";

/// Puts a delivery back for another attempt at `$3`.
pub const RETRY_DELIVERY: &str = "UPDATE deliveries SET due_at = $3, last_error = $4, \
     claim_id = NULL WHERE id = $1 AND claim_id = $2";

pub const DELIVERY_DUE: &str =
    "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND due_at <= $1)";

pub const DELIVERY_BACKLOG: &str =
    "SELECT count(*), min(created_at) FROM deliveries WHERE status = 'pending'";

pub const PRUNE_DELIVERIES: &str =
    "DELETE FROM deliveries WHERE status <> 'pending' AND settled_at < $1";

// Mailed tokens.

pub const INSERT_MAIL_TOKEN: &str = "INSERT INTO email_tokens (token_hash, user_id, purpose, \
     email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Uses a token up, whether or not it has expired (the caller checks).
pub const USE_MAIL_TOKEN: &str = "DELETE FROM email_tokens WHERE token_hash = $1 \
     AND purpose = $2 RETURNING user_id, email, expires_at";

pub const DELETE_MAIL_TOKENS: &str = "DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2";

pub const PRUNE_MAIL_TOKENS: &str = "DELETE FROM email_tokens WHERE expires_at < $1";

// Push subscriptions.

pub const PUSH_SUBSCRIPTION_COLUMNS: &str =
    "id, user_id, endpoint, p256dh, auth, user_agent, created_at";

/// An endpoint moving to another account (another sign-in in that browser) starts anew:
/// what was on its way to the previous account is dropped with its row.
pub const RELEASE_PUSH_ENDPOINT: &str =
    "DELETE FROM push_subscriptions WHERE endpoint = $1 AND user_id <> $2";

pub const UPSERT_PUSH_SUBSCRIPTION: &str = sql(&join(&[
    "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, user_agent, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (endpoint) DO UPDATE SET \
     p256dh = excluded.p256dh, auth = excluded.auth, user_agent = excluded.user_agent \
     RETURNING ",
    PUSH_SUBSCRIPTION_COLUMNS,
]));

/// Keeps the user's `$2` newest subscriptions.
pub const PRUNE_PUSH_SUBSCRIPTIONS: &str = "DELETE FROM push_subscriptions WHERE user_id = $1 \
     AND id NOT IN (SELECT id FROM push_subscriptions WHERE user_id = $1 \
     ORDER BY created_at DESC, id LIMIT $2)";

pub const PUSH_SUBSCRIPTIONS_OF: &str = sql(&join(&[
    "SELECT ",
    PUSH_SUBSCRIPTION_COLUMNS,
    " FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id",
]));

pub const PUSH_SUBSCRIPTION_BY_ID: &str = sql(&join(&[
    "SELECT ",
    PUSH_SUBSCRIPTION_COLUMNS,
    " FROM push_subscriptions WHERE id = $1",
]));

pub const DELETE_PUSH_SUBSCRIPTION: &str =
    "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2";

pub const DELETE_PUSH_SUBSCRIPTION_BY_ID: &str = "DELETE FROM push_subscriptions WHERE id = $1";

// Presence across instances.

/// Marks instance `$1` alive at `$2`; no row: it was forgotten (or a crash emptied the
/// table), and [`ADD_INSTANCE`] writes it again.
pub const TOUCH_INSTANCE: &str = "UPDATE instances SET seen_at = $2 WHERE id = $1";

/// [`TOUCH_INSTANCE`] when the instance records presence changes: the others see its mark
/// move and read presence again.
pub const TOUCH_INSTANCE_CHANGED: &str =
    "UPDATE instances SET seen_at = $2, presence_changed_at = $2 WHERE id = $1";

pub const ADD_INSTANCE: &str = "INSERT INTO instances (id, seen_at, presence_changed_at) \
     VALUES ($1, $2, $2) \
     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, \
     presence_changed_at = excluded.presence_changed_at";

/// The instances other than `$1` seen since `$2`, with when each last recorded a presence
/// change.
pub const PRESENCE_MARKS: &str = "SELECT id, presence_changed_at FROM instances \
     WHERE id <> $1 AND seen_at >= $2";

/// The user `$1` has `$3` sockets on instance `$2`.
pub const PRESENCE_SET: &str = "INSERT INTO socket_presence (user_id, instance_id, devices) \
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
     ON CONFLICT (user_id, instance_id) DO UPDATE SET devices = excluded.devices";

pub const PRESENCE_LEFT: &str =
    "DELETE FROM socket_presence WHERE user_id = $1 AND instance_id = $2";

/// Instances that stopped marking themselves alive before `$1` (their presence goes with
/// them), and `$2` (an instance leaving) whatever its time.
pub const FORGET_INSTANCES: &str = "DELETE FROM instances WHERE seen_at < $1 OR id = $2";

/// Whether the user `$1` has a socket on an instance other than `$2` seen since `$3`.
pub const CONNECTED_ELSEWHERE: &str = "SELECT EXISTS (SELECT 1 FROM socket_presence p \
     JOIN instances i ON i.id = p.instance_id \
     WHERE p.user_id = $1 AND p.instance_id <> $2 AND i.seen_at >= $3)";

/// The members of the listed projects (`$3, $4, …`, see [`with_list`]) with their sockets
/// on instances other than `$1` seen since `$2` (0 for none).
pub const PROJECT_PRESENCE: [&str; 2] = [
    "SELECT m.project_id, m.user_id, CAST(COALESCE(SUM(p.devices), 0) AS BIGINT) AS devices \
     FROM project_members m LEFT JOIN socket_presence p ON p.user_id = m.user_id \
     AND p.instance_id <> $1 \
     AND p.instance_id IN (SELECT id FROM instances WHERE seen_at >= $2) \
     WHERE m.project_id IN (",
    ") GROUP BY m.project_id, m.user_id",
];

// Events: one text per kind of stream (a user's, a project's), same shape.

/// The queries of one kind of stream.
pub struct StreamQueries {
    pub events_after: &'static str,
    pub bounds: &'static str,
    /// The latest seq of each listed stream (`$1, $2, …`, see [`with_list`]).
    pub latest: [&'static str; 2],
    pub prune: &'static str,
}

pub const USER_STREAM: StreamQueries = StreamQueries {
    events_after: "SELECT seq, kind, at, data FROM events \
                   WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    bounds: "SELECT u.last_event_seq, \
                    (SELECT min(e.seq) FROM events e WHERE e.user_id = u.id) \
             FROM users u WHERE u.id = $1",
    latest: ["SELECT id, last_event_seq FROM users WHERE id IN (", ")"],
    prune: "DELETE FROM events WHERE (user_id, seq) IN ( \
         SELECT e.user_id, e.seq FROM events e JOIN users u ON u.id = e.user_id \
         WHERE e.at < $1 AND e.seq <= u.last_event_seq - $2 LIMIT $3)",
};

pub const PROJECT_STREAM: StreamQueries = StreamQueries {
    events_after: "SELECT seq, kind, at, data FROM project_events \
                   WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    bounds: "SELECT p.last_event_seq, \
                    (SELECT min(e.seq) FROM project_events e WHERE e.project_id = p.id) \
             FROM projects p WHERE p.id = $1",
    latest: ["SELECT id, last_event_seq FROM projects WHERE id IN (", ")"],
    prune: "DELETE FROM project_events WHERE (project_id, seq) IN ( \
         SELECT e.project_id, e.seq FROM project_events e JOIN projects p ON p.id = e.project_id \
         WHERE e.at < $1 AND e.seq <= p.last_event_seq - $2 LIMIT $3)",
};

/// Deleted projects whose stream has been pruned away entirely (nobody can read it any
/// more): their rows go.
pub const PURGE_DELETED_PROJECTS: &str = "DELETE FROM projects WHERE deleted_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM project_events e WHERE e.project_id = projects.id)";

// Projects.

const PROJECT_OF_MEMBER: &str = "SELECT p.id, p.name, p.description, p.created_by, \
     p.created_at, p.updated_at, m.role, p.last_event_seq AS last_seq \
     FROM project_members m JOIN projects p ON p.id = m.project_id";

/// Project `$1` as member `$2` sees it.
pub const PROJECT_FOR_MEMBER: &str = sql(&join(&[
    PROJECT_OF_MEMBER,
    " WHERE m.project_id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL",
]));

pub const PROJECTS_OF_USER: &str = sql(&join(&[
    PROJECT_OF_MEMBER,
    " WHERE m.user_id = $1 AND p.deleted_at IS NULL ORDER BY p.created_at, p.id",
]));

pub const INSERT_PROJECT: &str = "INSERT INTO projects \
     (id, name, description, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)";

pub const SAVE_PROJECT: &str =
    "UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1";

pub const MARK_PROJECT_DELETED: &str =
    "UPDATE projects SET deleted_at = $2, updated_at = $2 WHERE id = $1";

/// The project's latest seq, `None` when deleted; locked by [`Locked::PROJECT_SEQ`].
const PROJECT_SEQ: &str =
    "SELECT last_event_seq FROM projects WHERE id = $1 AND deleted_at IS NULL";

const MEMBERSHIP_COLUMNS: &str = "project_id, role, joined_seq";

/// `$2`'s membership of project `$1`.
const MEMBERSHIP: &str = sql(&join(&[
    "SELECT ",
    MEMBERSHIP_COLUMNS,
    " FROM project_members WHERE project_id = $1 AND user_id = $2",
]));
pub const MEMBERSHIP_READ: &str = MEMBERSHIP;

/// `$2`'s membership of live project `$1`, with the project stream's latest seq. Locked by
/// [`Locked::MEMBERSHIP_POSITION`]: both rows in one round trip. PostgreSQL locks a join's
/// rows in the order of its FROM list, so `projects` must stay first: every writer of a
/// project locks the project's row before any member's, and the reverse order could
/// deadlock. One snapshot reads both: a membership committed by the transaction this one
/// waited for is not seen (404, as if the request came a moment earlier).
const MEMBERSHIP_POSITION: &str = "SELECT m.project_id, m.role, m.joined_seq, \
     p.last_event_seq AS last_seq \
     FROM projects p JOIN project_members m ON m.project_id = p.id \
     WHERE p.id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL";

/// The user's own stream's bounds and their memberships, each with its project stream's
/// latest seq: one row per membership (one with NULL membership columns when there is
/// none), all from one snapshot; the oldest retained seq of the user's stream is read once,
/// not once per membership row.
pub const STREAM_POSITIONS: &str = "SELECT u.last_event_seq, r.first_retained, \
     m.project_id, COALESCE(m.role, '') AS role, m.joined_seq, \
     p.last_event_seq AS project_seq \
     FROM users u \
     CROSS JOIN (SELECT min(seq) AS first_retained FROM events WHERE user_id = $1) r \
     LEFT JOIN project_members m ON m.user_id = u.id \
     LEFT JOIN projects p ON p.id = m.project_id \
     WHERE u.id = $1 ORDER BY m.project_id";

pub const MEMBERSHIP_COUNT: &str = "SELECT count(*) FROM project_members WHERE user_id = $1";

const MEMBER_COLUMNS: &str = "SELECT m.user_id, u.name, m.role, m.created_at \
     FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1";

pub const MEMBERS_OF_PROJECT: &str = sql(&join(&[
    MEMBER_COLUMNS,
    " ORDER BY m.created_at, m.user_id",
]));

/// Member `$2` of project `$1`.
pub const MEMBER: &str = sql(&join(&[MEMBER_COLUMNS, " AND m.user_id = $2"]));

pub const MEMBER_IDS: &str = "SELECT user_id FROM project_members WHERE project_id = $1";

pub const MEMBER_COUNT: &str = "SELECT count(*) FROM project_members WHERE project_id = $1";

pub const OWNER_COUNT: &str =
    "SELECT count(*) FROM project_members WHERE project_id = $1 AND role = 'owner'";

pub const INSERT_MEMBER: &str = "INSERT INTO project_members \
     (project_id, user_id, role, joined_seq, created_at) VALUES ($1, $2, $3, $4, $5)";

pub const SET_MEMBER_ROLE: &str =
    "UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2";

pub const DELETE_MEMBER: &str =
    "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2";

pub const DELETE_MEMBERS: &str = "DELETE FROM project_members WHERE project_id = $1";

pub const DELETE_PROJECT_TASKS: &str = "DELETE FROM tasks WHERE project_id = $1";

/// Tasks of project `$1` assigned to `$2` lose their assignee (they left).
pub const UNASSIGN_MEMBER: &str =
    "UPDATE tasks SET assignee_id = NULL WHERE project_id = $1 AND assignee_id = $2";

const INVITATION_COLUMNS: &str = "i.id, i.project_id, p.name AS project_name, i.email, i.role, \
     i.invited_by, u.name AS invited_by_name, i.created_at, i.expires_at \
     FROM project_invitations i JOIN projects p ON p.id = i.project_id \
     LEFT JOIN users u ON u.id = i.invited_by";

pub const INVITATION_BY_ID: &str = sql(&join(&["SELECT ", INVITATION_COLUMNS, " WHERE i.id = $1"]));

/// Open invitations to address `$1`, unexpired at `$2`.
pub const INVITATIONS_TO: &str = sql(&join(&[
    "SELECT ",
    INVITATION_COLUMNS,
    " WHERE i.email = $1 AND i.expires_at > $2 AND p.deleted_at IS NULL \
     ORDER BY i.created_at, i.id",
]));

/// Open invitations of project `$1`, unexpired at `$2`.
pub const INVITATIONS_OF_PROJECT: &str = sql(&join(&[
    "SELECT ",
    INVITATION_COLUMNS,
    " WHERE i.project_id = $1 AND i.expires_at > $2 ORDER BY i.created_at, i.id",
]));

/// Invites (again): a second invitation to the same address replaces the first.
pub const UPSERT_INVITATION: &str = "INSERT INTO project_invitations \
     (id, project_id, email, role, invited_by, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, email) DO UPDATE SET \
     role = excluded.role, invited_by = excluded.invited_by, \
     created_at = excluded.created_at, expires_at = excluded.expires_at RETURNING id";

pub const INVITATION_COUNT: &str =
    "SELECT count(*) FROM project_invitations WHERE project_id = $1 AND expires_at > $2";

pub const DELETE_INVITATION: &str = "DELETE FROM project_invitations WHERE id = $1";

pub const PRUNE_INVITATIONS: &str = "DELETE FROM project_invitations WHERE expires_at <= $1";

/// The account with address `$1`, if any (an invitation names an address).
pub const USER_ID_BY_EMAIL: &str = "SELECT id FROM users WHERE email = $1";

pub const USER_NAME: &str = "SELECT name FROM users WHERE id = $1";

/// A query over a list of values: `around[0]`, one placeholder per value numbered from
/// `$first`, then `around[1]`.
pub fn with_list(around: [&str; 2], first: usize, count: usize) -> String {
    let [start, end] = around;
    let placeholders: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    format!("{start}{}{end}", placeholders.join(", "))
}

/// The reads that lock their rows until commit, with backend `B`'s row lock.
pub struct Locked<B>(PhantomData<B>);

impl<B: Backend> Locked<B> {
    pub const USER_BY_ID: &'static str = sql(&join(&[USER_BY_ID, B::ROW_LOCK]));
    pub const PROFILE_PHOTO: &'static str = sql(&join(&[PROFILE_PHOTO, B::ROW_LOCK]));
    pub const TASK_BY_ID: &'static str = sql(&join(&[TASK_BY_ID, B::ROW_LOCK]));
    pub const SESSION_BY_ID: &'static str = sql(&join(&[SESSION_BY_ID, B::ROW_LOCK]));
    /// Instances firing reminders at once each take a different task.
    pub const DUE_REMINDER: &'static str = sql(&join(&[DUE_REMINDER, B::SKIP_LOCKED]));
    /// Workers claiming at once each take different deliveries.
    pub const CLAIM_DELIVERIES: &'static str = sql(&join(&[
        CLAIM_DELIVERIES[0],
        B::SKIP_LOCKED,
        CLAIM_DELIVERIES[1],
    ]));
    /// Locks the user's row while it counts the tasks, so that two creations cannot
    /// both take the last place.
    pub const INSERT_TASK: &'static str = sql(&join(&[
        INSERT_TASK_WITHIN_QUOTA[0],
        B::ROW_LOCK,
        INSERT_TASK_WITHIN_QUOTA[1],
        TASK_COLUMNS,
    ]));
    /// The same with the project's row.
    pub const INSERT_PROJECT_TASK: &'static str = sql(&join(&[
        INSERT_PROJECT_TASK_WITHIN_QUOTA[0],
        B::ROW_LOCK,
        INSERT_PROJECT_TASK_WITHIN_QUOTA[1],
        TASK_COLUMNS,
    ]));
    pub const PROJECT_SEQ: &'static str = sql(&join(&[PROJECT_SEQ, B::ROW_LOCK]));
    pub const MEMBERSHIP: &'static str = sql(&join(&[MEMBERSHIP, B::ROW_LOCK]));
    pub const MEMBERSHIP_POSITION: &'static str = sql(&join(&[MEMBERSHIP_POSITION, B::ROW_LOCK]));
}

/// The queries of `GET /tasks` over one scope.
pub struct ScopedTaskQueries {
    /// A page, newest first, each task with the number matching the filter (a window
    /// count is computed before LIMIT): one round trip instead of two.
    pub page: &'static str,
    /// The same, best match of the search first.
    pub page_by_relevance: &'static str,
    /// The number of tasks matching the filter, for a page past the end.
    pub count: &'static str,
}

/// The queries of `GET /tasks` on backend `B`, its full-text condition and rank inside:
/// one text per scope, so that each keeps its index.
pub struct TaskQueries<B>(PhantomData<B>);

macro_rules! scoped_task_queries {
    ($scope:expr) => {
        ScopedTaskQueries {
            page: sql(&join(&[
                Self::SELECT_PAGE,
                $scope,
                Self::FILTER,
                " ORDER BY created_at DESC, id DESC LIMIT $22 OFFSET $23",
            ])),
            page_by_relevance: sql(&join(&[
                Self::SELECT_PAGE,
                B::TASK_RANK_JOIN,
                $scope,
                Self::FILTER,
                " ORDER BY ",
                B::TASK_RANK,
                " DESC, created_at DESC, id DESC LIMIT $22 OFFSET $23",
            ])),
            count: sql(&join(&["SELECT count(*) FROM tasks", $scope, Self::FILTER])),
        }
    };
}

impl<B: Backend> TaskQueries<B> {
    const FILTER: &'static str = sql(&join(&[TASK_FILTER[0], B::TASK_SEARCH, TASK_FILTER[1]]));
    const SELECT_PAGE: &'static str = sql(&join(&[
        "SELECT ",
        TASK_COLUMNS,
        ", count(*) OVER () AS total FROM tasks",
    ]));
    pub const PERSONAL: ScopedTaskQueries = scoped_task_queries!(SCOPE_PERSONAL);
    pub const PROJECT: ScopedTaskQueries = scoped_task_queries!(SCOPE_PROJECT);
    pub const MY_PROJECTS: ScopedTaskQueries = scoped_task_queries!(SCOPE_MY_PROJECTS);
}

/// SQL text being put together at compile time; [`sql`] reads it back.
pub struct Joined {
    bytes: [u8; Joined::CAPACITY],
    len: usize,
}

impl Joined {
    /// Longer than any query here; a longer one fails the build.
    const CAPACITY: usize = 2048;
}

/// Concatenates `parts` at compile time (in a `const` item).
pub const fn join(parts: &[&str]) -> Joined {
    let mut bytes = [0; Joined::CAPACITY];
    let mut len = 0;
    let mut part = 0;
    while part < parts.len() {
        let text = parts[part].as_bytes();
        assert!(
            len + text.len() <= Joined::CAPACITY,
            "query longer than Joined::CAPACITY"
        );
        let mut i = 0;
        while i < text.len() {
            bytes[len] = text[i];
            len += 1;
            i += 1;
        }
        part += 1;
    }
    Joined { bytes, len }
}

/// The text [`join`] put together: `sql(&join(&[...]))` in a `const` item gives a
/// `&'static str` (the joined bytes are promoted to a static).
pub const fn sql(joined: &'static Joined) -> &'static str {
    match std::str::from_utf8(joined.bytes.split_at(joined.len).0) {
        Ok(text) => text,
        // Unreachable: whole `str`s joined are UTF-8.
        Err(_) => panic!("joined SQL is not UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_queries_read_as_written() {
        assert_eq!(
            TASK_BY_ID,
            format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1")
        );
        assert!(NOTIFICATION_PAGE_NEWEST_FIRST
            .ends_with("ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"));
        assert_eq!(
            with_list(DELETE_NOTIFICATIONS, 2, 3),
            "DELETE FROM notifications WHERE user_id = $1 AND id IN ($2, $3, $4) RETURNING id"
        );
        assert_eq!(
            insert_task_tags(2),
            "INSERT INTO task_tags (task_id, tag_key, tag) VALUES ($1, $2, $3), ($1, $4, $5)"
        );
    }

    #[test]
    fn task_lists_join_the_rank_only_when_ordered_by_it() {
        let sqlite = TaskQueries::<sqlx::Sqlite>::PERSONAL;
        let postgres = TaskQueries::<sqlx::Postgres>::PROJECT;
        assert!(sqlite
            .page
            .starts_with(&format!("SELECT {TASK_COLUMNS}, count(*)")));
        assert!(!sqlite.page.contains("bm25"));
        assert!(sqlite
            .page_by_relevance
            .contains("LEFT JOIN (SELECT rowid AS fts_hit"));
        assert!(sqlite.page_by_relevance.ends_with(
            "ORDER BY coalesce(-fts.fts_score, 0) DESC, created_at DESC, id DESC LIMIT $22 OFFSET $23"
        ));
        assert!(postgres
            .page
            .contains("websearch_to_tsquery('english', $7)"));
        assert!(postgres
            .count
            .starts_with("SELECT count(*) FROM tasks WHERE project_id = $1"));
        assert!(!postgres.count.contains("LIMIT"));
        let mine = TaskQueries::<sqlx::Postgres>::MY_PROJECTS;
        for page in [sqlite.page, postgres.page_by_relevance, mine.count] {
            assert!(page.contains(
                "tt.tag_key IN ($10, $11, $12, $13, $14, $15, $16, $17, $18, $19)) = $20"
            ));
        }
    }
}
