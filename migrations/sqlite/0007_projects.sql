-- Teams (same shape as the PostgreSQL schema): projects with members and roles,
-- invitations by e-mail address, and one ordered event stream per project.
CREATE TABLE projects (
    id             BLOB PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description    TEXT CHECK (length(description) <= 1000),
    created_by     BLOB REFERENCES users (id) ON DELETE SET NULL,
    last_event_seq INTEGER NOT NULL DEFAULT 0,
    task_count     INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    deleted_at     TEXT
);

CREATE TABLE project_members (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    joined_seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
) WITHOUT ROWID;
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE project_invitations (
    id         BLOB PRIMARY KEY NOT NULL,
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email      TEXT NOT NULL CHECK (length(email) <= 254),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    invited_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE UNIQUE INDEX project_invitations_project_email_key ON project_invitations (project_id, email);
CREATE INDEX project_invitations_email_idx ON project_invitations (email);

CREATE TABLE project_events (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;
CREATE INDEX project_events_at_idx ON project_events (at);

ALTER TABLE tasks ADD COLUMN project_id BLOB REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE tasks ADD COLUMN assignee_id BLOB REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at DESC, id DESC)
    WHERE project_id IS NOT NULL;
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id) WHERE assignee_id IS NOT NULL;

ALTER TABLE socket_presence ADD COLUMN devices INTEGER NOT NULL DEFAULT 1;

-- SQLite cannot change a CHECK constraint: the notifications table is rebuilt with the
-- project kinds allowed (nothing references it).
CREATE TABLE notifications_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('TASK_CREATED', 'TASK_UPDATED', 'TASK_DELETED',
                   'TASK_RESTORED', 'TASK_COMPLETED', 'TASK_PENDING', 'LOGIN', 'LOGOUT',
                   'SIGNUP', 'PROFILE_UPDATED', 'TASK_DUE_SOON', 'TASK_OVERDUE',
                   'PROJECT_INVITATION', 'PROJECT_ADDED', 'PROJECT_REMOVED', 'TASK_ASSIGNED')),
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
