//! PostgreSQL: the production backend. Row locks (`FOR UPDATE`) serialise concurrent
//! writers of the same task or profile across instances.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgQueryResult};
use sqlx::Postgres;

use super::backend::{Backend, Notices, Pools};
use super::pool::{ConnPool, PoolLimits, Tx};
use super::queries::{join, sql};
use super::PoolSizes;
use crate::config::DatabaseUrl;
use crate::domain::{held_deltas, EventDraft, StreamKey};

/// Takes the next seqs of the user and inserts the events with them, in one round trip;
/// returns the first (NULL: no such user). The UPDATE locks the user's row until commit.
/// The queued NOTIFYs (`$8`, `$9`) go in the same statement.
const INSERT_EVENTS: &str = sql(&join(&[
    "WITH bumped AS ( \
         UPDATE users SET last_event_seq = last_event_seq + $2, \
             task_count = task_count + $6, notification_count = notification_count + $7 \
         WHERE id = $1 RETURNING last_event_seq - $2 AS before), \
     appended AS (INSERT INTO events (user_id, seq, kind, at, data)",
    NUMBERED_EVENTS,
    "$8::text[], $9::text[]) AS n (channel, payload))",
]));

/// The same for a project's stream (the project's row is locked until commit); the
/// NOTIFYs are `$7`, `$8`.
const INSERT_PROJECT_EVENTS: &str = sql(&join(&[
    "WITH bumped AS ( \
         UPDATE projects SET last_event_seq = last_event_seq + $2, task_count = task_count + $6 \
         WHERE id = $1 RETURNING last_event_seq - $2 AS before), \
     appended AS (INSERT INTO project_events (project_id, seq, kind, at, data)",
    NUMBERED_EVENTS,
    "$7::text[], $8::text[]) AS n (channel, payload))",
]));

/// What both appends share: the events numbered from the seq `bumped` took, and the
/// result, one row of two scalar sub-selects (the first seq, the NOTIFY count), each run
/// exactly once whatever the plan (a join with the appended rows could skip the NOTIFYs,
/// or repeat them). The NOTIFYs' two array parameters follow.
const NUMBERED_EVENTS: &str = " SELECT $1, bumped.before + e.n, e.kind, $3, e.data \
     FROM bumped, unnest($4::text[], $5::text[]) WITH ORDINALITY AS e (kind, data, n) \
     RETURNING seq) \
     SELECT (SELECT min(seq) FROM appended), \
         (SELECT count(pg_notify(n.channel, n.payload)) FROM unnest(";

/// A transaction's queued NOTIFYs that no append carried (`$1`, `$2`), sent just before
/// its commit: one row, one call of `pg_notify` per notice.
const SEND_NOTICES: &str = "SELECT count(pg_notify(n.channel, n.payload)) \
     FROM unnest($1::text[], $2::text[]) AS n (channel, payload)";

const SET_PRESENCE: &str = "INSERT INTO socket_presence (user_id, instance_id, devices) \
     SELECT v.user_id, $1, v.devices FROM unnest($2::uuid[], $3::int[]) AS v (user_id, devices) \
     WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.user_id) \
     ON CONFLICT (user_id, instance_id) DO UPDATE SET devices = excluded.devices";

const CLEAR_PRESENCE: &str =
    "DELETE FROM socket_presence WHERE instance_id = $1 AND user_id = ANY($2::uuid[])";

impl Backend for Postgres {
    const LABEL: &'static str = "postgres";
    const ROW_LOCK: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// The generated `search` column (GIN-indexed) against the text as typed:
    /// `websearch_to_tsquery` takes any text and reads only its own few operators. As a
    /// sub-select it is read once per statement, not once per row.
    const TASK_SEARCH: &'static str =
        "($7 IS NULL OR search @@ (SELECT websearch_to_tsquery('english', $7)))";
    const TASK_RANK_JOIN: &'static str = "";
    const TASK_RANK: &'static str = "ts_rank(search, (SELECT websearch_to_tsquery('english', $7)))";

    async fn connect(url: &DatabaseUrl, sizes: PoolSizes) -> anyhow::Result<Pools<Self>> {
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .with_context(|| format!("invalid DATABASE_URL {}", url.redacted()))?;
        let (writers, readers) = sizes.split();
        let write = ConnPool::connect(options.clone(), limits(writers))
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        let mut conn = write
            .acquire()
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        sqlx::migrate!("./migrations/postgres")
            .run_direct(&mut *conn)
            .await
            .context("applying PostgreSQL migrations")?;
        drop(conn);
        let read = ConnPool::connect(options, limits(readers))
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        Ok(Pools { read, write })
    }

    async fn begin_write(write: &ConnPool<Postgres>) -> Result<Tx<Postgres>, sqlx::Error> {
        write.begin(None).await
    }

    /// One round trip (data-modifying CTEs), NOTIFYs included; the stream's row stays
    /// locked until commit, so its writers take their seqs one transaction at a time.
    async fn insert_events(
        tx: &mut PgConnection,
        stream: StreamKey,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
        notices: &Notices,
    ) -> Result<i64, sqlx::Error> {
        let kinds: Vec<&str> = drafts.iter().map(|d| d.kind.as_str()).collect();
        let data: Vec<String> = drafts.iter().map(|d| d.data.to_string()).collect();
        let (tasks, notifications) = held_deltas(drafts);
        let sql = match stream {
            StreamKey::User(_) => INSERT_EVENTS,
            StreamKey::Project(_) => INSERT_PROJECT_EVENTS,
        };
        let query = sqlx::query_as(sql)
            .bind(stream.id())
            .bind(drafts.len() as i64)
            .bind(at)
            .bind(kinds)
            .bind(data)
            .bind(tasks);
        let query = match stream {
            StreamKey::User(_) => query.bind(notifications),
            StreamKey::Project(_) => query,
        };
        let query = query.bind(notices.channels()).bind(notices.payloads());
        let (first, _notified): (Option<i64>, i64) = query.fetch_one(&mut *tx).await?;
        // No seq: no such user (or project).
        first.ok_or(sqlx::Error::RowNotFound)
    }

    async fn set_presence(
        tx: &mut PgConnection,
        instance: uuid::Uuid,
        present: &[(uuid::Uuid, i64)],
        gone: &[uuid::Uuid],
    ) -> Result<(), sqlx::Error> {
        if !present.is_empty() {
            let users: Vec<uuid::Uuid> = present.iter().map(|(u, _)| *u).collect();
            let devices: Vec<i32> = present
                .iter()
                .map(|(_, d)| i32::try_from(*d).unwrap_or(i32::MAX))
                .collect();
            sqlx::query(SET_PRESENCE)
                .bind(instance)
                .bind(users)
                .bind(devices)
                .execute(&mut *tx)
                .await?;
        }
        if !gone.is_empty() {
            sqlx::query(CLEAR_PRESENCE)
                .bind(instance)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    const NOTIFIES: bool = true;

    async fn notify_in_tx(tx: &mut PgConnection, notices: &Notices) -> Result<(), sqlx::Error> {
        sqlx::query(SEND_NOTICES)
            .bind(notices.channels())
            .bind(notices.payloads())
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn unique_constraint(err: &dyn DatabaseError) -> Option<String> {
        err.constraint().map(str::to_owned)
    }
}

fn limits(size: u32) -> PoolLimits {
    PoolLimits {
        max_connections: size,
        acquire_timeout: Duration::from_secs(5),
    }
}
