-- Accounts, tasks, notifications, revoked tokens and the per-user event stream. Same shape as the PostgreSQL schema:
-- uuids are 16-byte blobs, times RFC 3339 text, booleans 0/1.
CREATE TABLE users (
    id                BLOB PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 2 AND 100),
    name_key          TEXT NOT NULL,
    email             TEXT NOT NULL CHECK (length(email) <= 254),
    password_hash     TEXT NOT NULL,
    first_name        TEXT,
    last_name         TEXT,
    phone             TEXT,
    date_of_birth     TEXT,
    gender            TEXT,
    address           TEXT,
    city              TEXT,
    country           TEXT,
    bio               TEXT,
    profile_photo     TEXT,
    is_email_verified BOOLEAN NOT NULL DEFAULT 0,
    last_event_seq    INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_name_key ON users (name_key);

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description TEXT CHECK (length(description) <= 1000),
    completed   BOOLEAN NOT NULL DEFAULT 0,
    priority    TEXT NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
    due_date    TEXT,
    is_deleted  BOOLEAN NOT NULL DEFAULT 0,
    deleted_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX tasks_user_state_idx ON tasks (user_id, is_deleted, completed);
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('TASK_CREATED', 'TASK_UPDATED', 'TASK_DELETED',
                   'TASK_RESTORED', 'TASK_COMPLETED', 'TASK_PENDING', 'LOGIN', 'LOGOUT',
                   'SIGNUP', 'PROFILE_UPDATED')),
    title      TEXT NOT NULL CHECK (length(title) <= 200),
    message    TEXT NOT NULL CHECK (length(message) <= 1000),
    is_read    BOOLEAN NOT NULL DEFAULT 0,
    task_id    INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notifications_user_read_idx ON notifications (user_id, is_read);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_task_idx ON notifications (task_id);

CREATE TABLE revoked_tokens (
    jti        BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

CREATE TABLE events (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL CHECK (seq > 0),
    kind    TEXT NOT NULL,
    at      TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX events_at_idx ON events (at);
