-- Server-side sessions: every token names its session (`sid`), and only the session's
-- current token (`token_jti`) is accepted, so a refresh retires the token it replaces and
-- ending a session ends all of its tokens. Replaces the list of revoked tokens.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    -- Absolute: no refresh past it (SESSION_MAX_AGE after sign-in).
    expires_at   timestamptz NOT NULL,
    user_agent   text CHECK (char_length(user_agent) <= 256),
    ip           text CHECK (char_length(ip) <= 64),
    ended_at     timestamptz,
    token_jti    uuid NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

DROP TABLE revoked_tokens;
