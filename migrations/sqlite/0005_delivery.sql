-- Reaching people who are not connected (same shape as the PostgreSQL schema): the
-- deliveries outbox, hashed single-use e-mail tokens, push subscriptions, and the reminder
-- schedule of tasks. One worker claims deliveries here (SQLite has one writer at a time).

CREATE TABLE push_subscriptions (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL CHECK (length(endpoint) <= 2048),
    p256dh     TEXT NOT NULL CHECK (length(p256dh) <= 128),
    auth       TEXT NOT NULL CHECK (length(auth) <= 64),
    user_agent TEXT CHECK (length(user_agent) <= 256),
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_key ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id, created_at);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    kind            TEXT NOT NULL CHECK (length(kind) <= 32),
    user_id         BLOB REFERENCES users (id) ON DELETE CASCADE,
    subscription_id BLOB REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    job             TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          TEXT NOT NULL,
    claim_id        BLOB,
    last_error      TEXT CHECK (length(last_error) <= 500),
    created_at      TEXT NOT NULL,
    settled_at      TEXT
);
CREATE INDEX deliveries_due_idx ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_settled_idx ON deliveries (settled_at) WHERE status <> 'pending';
CREATE INDEX deliveries_subscription_idx ON deliveries (subscription_id)
    WHERE subscription_id IS NOT NULL;

CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_idx ON email_tokens (expires_at);

ALTER TABLE users ADD COLUMN email_reminders BOOLEAN NOT NULL DEFAULT 0;

ALTER TABLE tasks ADD COLUMN remind_at TEXT;
ALTER TABLE tasks ADD COLUMN reminder_stage INTEGER NOT NULL DEFAULT 0
    CHECK (reminder_stage BETWEEN 0 AND 2);
CREATE INDEX tasks_remind_at_idx ON tasks (remind_at) WHERE remind_at IS NOT NULL;
-- Times are RFC 3339 text with +00:00, as the application writes them (so that they sort).
UPDATE tasks SET reminder_stage = 2
    WHERE due_date IS NOT NULL AND julianday(due_date) <= julianday('now');
UPDATE tasks SET remind_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', due_date, '-1 hour')
    WHERE due_date IS NOT NULL AND julianday(due_date) > julianday('now')
      AND NOT completed AND NOT is_deleted;

-- SQLite cannot change a CHECK constraint: the notifications table is rebuilt with the
-- reminder kinds allowed (nothing references it).
CREATE TABLE notifications_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('TASK_CREATED', 'TASK_UPDATED', 'TASK_DELETED',
                   'TASK_RESTORED', 'TASK_COMPLETED', 'TASK_PENDING', 'LOGIN', 'LOGOUT',
                   'SIGNUP', 'PROFILE_UPDATED', 'TASK_DUE_SOON', 'TASK_OVERDUE')),
    title      TEXT NOT NULL CHECK (length(title) <= 200),
    message    TEXT NOT NULL CHECK (length(message) <= 1000),
    is_read    BOOLEAN NOT NULL DEFAULT 0,
    task_id    INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
INSERT INTO notifications_new (id, user_id, kind, title, message, is_read, task_id, created_at)
    SELECT id, user_id, kind, title, message, is_read, task_id, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_user_read_idx ON notifications (user_id, is_read);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_task_idx ON notifications (task_id);
CREATE INDEX notifications_created_idx ON notifications (created_at);
