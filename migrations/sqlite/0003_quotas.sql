-- Per-user quotas (same shape as the PostgreSQL schema): how many tasks and notifications
-- each user holds, kept by the statement that appends the user's events.
ALTER TABLE users ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN notification_count INTEGER NOT NULL DEFAULT 0;

UPDATE users SET
    task_count = (SELECT count(*) FROM tasks t WHERE t.user_id = users.id),
    notification_count = (SELECT count(*) FROM notifications n WHERE n.user_id = users.id);

CREATE INDEX notifications_created_idx ON notifications (created_at);
