-- Tags and full-text search of tasks.
--
-- Tags: `tasks.tags` holds the task's tags as shown (a JSON array of strings, in the order
-- given, first spellings kept), read with the task and written with it; `task_tags` holds
-- one row per tag with its key (the tag lower-cased by the application, full Unicode, the
-- same on both backends), written by the store in the task's transaction, for the `tag`
-- filter and the counts of `GET /tags`. Every query reaches `task_tags` through its tasks
-- (the user's, later a project's), by the primary key's `task_id` prefix: an index on
-- `tag_key` alone would serve no query and cost every write.
ALTER TABLE tasks ADD COLUMN tags text NOT NULL DEFAULT '[]';

CREATE TABLE task_tags (
    task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag_key text NOT NULL CHECK (char_length(tag_key) BETWEEN 1 AND 64),
    tag     text NOT NULL CHECK (char_length(tag) BETWEEN 1 AND 32),
    PRIMARY KEY (task_id, tag_key)
);

-- Full-text search over title (weight A) and description (weight B) with the `english`
-- configuration (stemming: "running" finds "run"; English stop words ignored), matched by
-- `websearch_to_tsquery('english', q)` and ranked with `ts_rank`. Generated, so existing
-- rows get theirs now and every write keeps it.
ALTER TABLE tasks ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A') ||
    setweight(to_tsvector('english', coalesce(description, '')), 'B')
) STORED;
CREATE INDEX tasks_search_idx ON tasks USING gin (search);
