-- Per-user quotas: how many tasks and notifications each user holds, kept by triggers so
-- that no write path can forget them. Task creation checks the count under the user's row
-- lock (MAX_TASKS_PER_USER); notifications past MAX_NOTIFICATIONS_PER_USER are pruned
-- oldest first, and those older than NOTIFICATION_RETENTION by a periodic sweep.
ALTER TABLE users
    ADD COLUMN task_count         bigint NOT NULL DEFAULT 0,
    ADD COLUMN notification_count bigint NOT NULL DEFAULT 0;

UPDATE users u SET
    task_count = (SELECT count(*) FROM tasks t WHERE t.user_id = u.id),
    notification_count = (SELECT count(*) FROM notifications n WHERE n.user_id = u.id);

CREATE FUNCTION count_user_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tasks' THEN
        IF TG_OP = 'INSERT' THEN
            UPDATE users SET task_count = task_count + 1 WHERE id = NEW.user_id;
        ELSE
            UPDATE users SET task_count = task_count - 1 WHERE id = OLD.user_id;
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            UPDATE users SET notification_count = notification_count + 1 WHERE id = NEW.user_id;
        ELSE
            UPDATE users SET notification_count = notification_count - 1 WHERE id = OLD.user_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counted AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION count_user_rows();
CREATE TRIGGER notifications_counted AFTER INSERT OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION count_user_rows();

-- The retention sweep looks for notifications older than a cut-off.
CREATE INDEX notifications_created_idx ON notifications (created_at);
