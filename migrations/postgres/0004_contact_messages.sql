-- Messages from the public contact form (POST /contact): kept, with who sent them from
-- where, for the team to read (and, with the e-mail work, to forward).
CREATE TABLE contact_messages (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    email      text NOT NULL CHECK (char_length(email) <= 254),
    subject    text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 200),
    message    text NOT NULL CHECK (char_length(message) BETWEEN 1 AND 5000),
    ip         text CHECK (char_length(ip) <= 64),
    user_agent text CHECK (char_length(user_agent) <= 256),
    created_at timestamptz NOT NULL
);
CREATE INDEX contact_messages_created_idx ON contact_messages (created_at);
