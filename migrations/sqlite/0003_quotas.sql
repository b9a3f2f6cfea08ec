-- Per-user quotas (same shape as the PostgreSQL schema): how many tasks and notifications
-- each user holds, kept by triggers so that no write path can forget them.
ALTER TABLE users ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN notification_count INTEGER NOT NULL DEFAULT 0;

UPDATE users SET
    task_count = (SELECT count(*) FROM tasks t WHERE t.user_id = users.id),
    notification_count = (SELECT count(*) FROM notifications n WHERE n.user_id = users.id);

CREATE TRIGGER tasks_counted_insert AFTER INSERT ON tasks BEGIN
    UPDATE users SET task_count = task_count + 1 WHERE id = NEW.user_id;
END;
CREATE TRIGGER tasks_counted_delete AFTER DELETE ON tasks BEGIN
    UPDATE users SET task_count = task_count - 1 WHERE id = OLD.user_id;
END;
CREATE TRIGGER notifications_counted_insert AFTER INSERT ON notifications BEGIN
    UPDATE users SET notification_count = notification_count + 1 WHERE id = NEW.user_id;
END;
CREATE TRIGGER notifications_counted_delete AFTER DELETE ON notifications BEGIN
    UPDATE users SET notification_count = notification_count - 1 WHERE id = OLD.user_id;
END;

CREATE INDEX notifications_created_idx ON notifications (created_at);
