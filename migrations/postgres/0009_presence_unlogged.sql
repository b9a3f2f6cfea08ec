-- Presence is what the running instances hold in memory, written down every second for the
-- others to read: state, not history. As unlogged tables it costs no write-ahead log (under
-- churn, a thousand changes a second and their flushes competed with the writes whose events
-- the sockets wait for). A crash or a failover empties unlogged tables: each instance then
-- finds its `instances` row gone at its next mark (every two seconds) and writes all of its
-- presence again (`Store::record_presence`), as it does when the others forgot it after a
-- long pause. The reference to `users` goes too: checking it locked each user's row (one
-- more log record per row); presence is only written for users that exist, and a deleted
-- user's sockets close, which removes their rows.
ALTER TABLE socket_presence DROP CONSTRAINT socket_presence_user_id_fkey;
ALTER TABLE socket_presence SET UNLOGGED;
ALTER TABLE instances SET UNLOGGED;
