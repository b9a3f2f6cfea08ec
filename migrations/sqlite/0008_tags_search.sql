-- Tags and full-text search of tasks (same shape as the PostgreSQL schema; see there).
ALTER TABLE tasks ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

CREATE TABLE task_tags (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL CHECK (length(tag_key) BETWEEN 1 AND 64),
    tag     TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 32),
    PRIMARY KEY (task_id, tag_key)
) WITHOUT ROWID;

-- Full-text search over title and description: an FTS5 index whose content is the tasks
-- table itself (external content), kept by the triggers below. The porter stemmer over
-- unicode61 ("running" finds "run"), close to PostgreSQL's `english` configuration; the
-- README says where the two differ. Queried with MATCH (the application writes the user's
-- text as a query of quoted terms, see src/domain/search.rs), ranked with bm25.
CREATE VIRTUAL TABLE tasks_fts USING fts5 (
    title, description,
    content = 'tasks', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Existing tasks.
INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');

CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_fts (rowid, title, description) VALUES (new.id, new.title, new.description);
END;

CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, description)
        VALUES ('delete', old.id, old.title, old.description);
END;

-- Only when the text changed: completing, trashing or restoring a task leaves it alone.
CREATE TRIGGER tasks_fts_update AFTER UPDATE OF title, description ON tasks
    WHEN old.title IS NOT new.title OR old.description IS NOT new.description
BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, description)
        VALUES ('delete', old.id, old.title, old.description);
    INSERT INTO tasks_fts (rowid, title, description) VALUES (new.id, new.title, new.description);
END;
