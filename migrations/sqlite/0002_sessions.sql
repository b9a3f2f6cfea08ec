-- Server-side sessions (same shape as the PostgreSQL schema): every token names its
-- session (`sid`), and only the session's current token (`token_jti`) is accepted.
-- Replaces the list of revoked tokens.
CREATE TABLE sessions (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    user_agent   TEXT CHECK (length(user_agent) <= 256),
    ip           TEXT CHECK (length(ip) <= 64),
    ended_at     TEXT,
    token_jti    BLOB NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

DROP TABLE revoked_tokens;
