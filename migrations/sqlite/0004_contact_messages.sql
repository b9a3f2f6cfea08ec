-- Messages from the public contact form (same shape as the PostgreSQL schema).
CREATE TABLE contact_messages (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    email      TEXT NOT NULL CHECK (length(email) <= 254),
    subject    TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    message    TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 5000),
    ip         TEXT CHECK (length(ip) <= 64),
    user_agent TEXT CHECK (length(user_agent) <= 256),
    created_at TEXT NOT NULL
);
CREATE INDEX contact_messages_created_idx ON contact_messages (created_at);
