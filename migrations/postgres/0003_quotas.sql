-- Per-user quotas: how many tasks and notifications each user holds. Every row added or
-- removed is announced in the user's stream, so the counts are kept by the statement that
-- appends the events (`task.created` +1, `task.purged` -1, `notification.created` +1,
-- `notification.deleted` -1), in the same transaction. Task creation reads the count under
-- the user's row lock (MAX_TASKS_PER_USER); notifications past MAX_NOTIFICATIONS_PER_USER
-- are pruned oldest first, and those older than NOTIFICATION_RETENTION by a periodic sweep.
ALTER TABLE users
    ADD COLUMN task_count         bigint NOT NULL DEFAULT 0,
    ADD COLUMN notification_count bigint NOT NULL DEFAULT 0;

UPDATE users u SET
    task_count = (SELECT count(*) FROM tasks t WHERE t.user_id = u.id),
    notification_count = (SELECT count(*) FROM notifications n WHERE n.user_id = u.id);

-- The retention sweep looks for notifications older than a cut-off.
CREATE INDEX notifications_created_idx ON notifications (created_at);
