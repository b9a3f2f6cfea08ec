-- Teams: projects with members and roles, invitations by e-mail address, and one ordered
-- event stream per project (its own seq, bumped on the project's row like a user's).
CREATE TABLE projects (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description    text CHECK (char_length(description) <= 1000),
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    -- The seq of the project's latest event; bumping it locks the row, which orders the
    -- project's concurrent writers.
    last_event_seq bigint NOT NULL DEFAULT 0,
    -- Tasks the project holds (kept from its stream, like users.task_count).
    task_count     bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- A deleted project keeps its row (and stream) until its events are pruned, so that
    -- sockets read `project.deleted`; its tasks and members are removed at once.
    deleted_at     timestamptz
);

CREATE TABLE project_members (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    -- The project's seq just before the member joined: a replay may start there, not earlier.
    joined_seq bigint NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE project_invitations (
    id         uuid PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email      text NOT NULL CHECK (char_length(email) <= 254),
    role       text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX project_invitations_project_email_key ON project_invitations (project_id, email);
CREATE INDEX project_invitations_email_idx ON project_invitations (email);

CREATE TABLE project_events (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq > 0),
    kind       text NOT NULL,
    at         timestamptz NOT NULL,
    data       text NOT NULL,
    PRIMARY KEY (project_id, seq)
);
CREATE INDEX project_events_at_idx ON project_events (at);

ALTER TABLE tasks ADD COLUMN project_id uuid REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE tasks ADD COLUMN assignee_id uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at DESC, id DESC)
    WHERE project_id IS NOT NULL;
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id) WHERE assignee_id IS NOT NULL;

-- Devices per user and instance, for project presence ("online on 2 devices").
ALTER TABLE socket_presence ADD COLUMN devices integer NOT NULL DEFAULT 1;

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'TASK_CREATED', 'TASK_UPDATED', 'TASK_DELETED', 'TASK_RESTORED', 'TASK_COMPLETED',
    'TASK_PENDING', 'LOGIN', 'LOGOUT', 'SIGNUP', 'PROFILE_UPDATED',
    'TASK_DUE_SOON', 'TASK_OVERDUE',
    'PROJECT_INVITATION', 'PROJECT_ADDED', 'PROJECT_REMOVED', 'TASK_ASSIGNED'));
