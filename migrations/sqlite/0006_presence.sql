-- Which users have a socket open on which instance, so that any instance can tell whether
-- a user is connected anywhere (a push "only when offline" is skipped otherwise). Each
-- instance records its users' first socket and last close, in batches, and marks itself
-- alive every few seconds; the rows of an instance that stopped marking are ignored, and
-- removed after a while.
CREATE TABLE instances (
    id      BLOB PRIMARY KEY NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX instances_seen_idx ON instances (seen_at);

CREATE TABLE socket_presence (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id BLOB NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, instance_id)
);
CREATE INDEX socket_presence_instance_idx ON socket_presence (instance_id);
