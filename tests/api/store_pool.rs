//! The store's connection pool (`store::ConnPool`), on real databases: a connection is
//! given back without a round trip, so what it must not carry over (a dropped
//! transaction, a broken socket, an abandoned query) is checked here.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Database, Executor};
use taskstream::store::{ConnPool, PoolLimits};
use testkit::PgDatabase;

fn limits(max_connections: u32) -> PoolLimits {
    PoolLimits {
        max_connections,
        acquire_timeout: Duration::from_secs(10),
    }
}

async fn postgres_pool(db: &PgDatabase, max: u32) -> ConnPool<sqlx::Postgres> {
    let options: PgConnectOptions = db.url.parse().unwrap();
    ConnPool::connect(options, limits(max)).await.unwrap()
}

fn sqlite_options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(dir.path().join("pool.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(10))
}

/// `t` with the row (1, 'kept').
async fn make_table<B: Database>(pool: &ConnPool<B>)
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
{
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT NOT NULL); INSERT INTO t VALUES (1, 'kept')")
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dropped_transaction_lets_go_of_its_locks_at_once_on_postgres() {
    let db = PgDatabase::create().await;
    let pool = postgres_pool(&db, 2).await;
    make_table(&pool).await;
    let mut tx = pool.begin(None).await.unwrap();
    sqlx::query("UPDATE t SET note = 'changed' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    // Dropped without commit, and the pool not used again: the ROLLBACK must still
    // reach the database, or the row would stay locked until the connection's next use.
    drop(tx);
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET lock_timeout = '20s'")
        .execute(&mut other)
        .await
        .unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM t WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut other)
        .await
        .expect("the row is free");
    assert_eq!(note, "kept", "the dropped transaction was rolled back");
    assert_eq!(
        pool.stats().checked,
        1,
        "only the dropped transaction was flushed"
    );
}

#[tokio::test]
async fn a_dropped_transaction_lets_go_of_the_write_lock_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let pool: ConnPool<sqlx::Sqlite> = ConnPool::connect(sqlite_options(&dir), limits(1))
        .await
        .unwrap();
    make_table(&pool).await;
    let mut tx = pool.begin(Some("BEGIN IMMEDIATE")).await.unwrap();
    sqlx::query("UPDATE t SET note = 'changed' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    let mut other = sqlx::SqliteConnection::connect_with(&sqlite_options(&dir))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE; UPDATE t SET note = 'other' WHERE id = 1; COMMIT")
        .execute(&mut other)
        .await
        .expect("the write lock is free");
    let note: String = sqlx::query_scalar("SELECT note FROM t WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(note, "other", "the dropped transaction was rolled back");
}

#[tokio::test]
async fn a_connection_that_broke_is_not_lent_again() {
    let db = PgDatabase::create().await;
    let pool = postgres_pool(&db, 1).await;
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&mut admin)
        .await
        .unwrap();
    // The pooled connection is dead: its next query fails (nothing tested it since)...
    let broken = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await;
    assert!(broken.is_err(), "a terminated backend cannot answer");
    // ...and that failure takes it out of the pool: the next query gets a new one.
    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("a fresh connection");
    assert_ne!(first, second);
    assert_eq!(pool.size(), 1, "the dead connection is no longer counted");
    let stats = pool.stats();
    assert_eq!((stats.checked, stats.dropped), (1, 1), "{stats:?}");
}

async fn an_abandoned_query_does_not_leak_into_the_next<B: Database>(
    pool: ConnPool<B>,
    slow: &'static str,
) where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'r> String: sqlx::Decode<'r, B> + sqlx::Type<B>,
    for<'q> <B as Database>::Arguments<'q>: sqlx::IntoArguments<'q, B>,
    usize: sqlx::ColumnIndex<B::Row>,
{
    // The caller gives up while the statement runs: its future is dropped mid-flight.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query_scalar::<_, String>(slow).fetch_one(&pool),
    )
    .await;
    assert!(abandoned.is_err(), "the slow statement was still running");
    // The one connection is lent again: it answers the new query, not the old one.
    for expected in ["new", "newer"] {
        let got: String = sqlx::query_scalar(&format!("SELECT '{expected}'"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn an_abandoned_query_does_not_leak_into_the_next_on_postgres() {
    let db = PgDatabase::create().await;
    let pool = postgres_pool(&db, 1).await;
    an_abandoned_query_does_not_leak_into_the_next(
        pool,
        "SELECT 'old' FROM (SELECT pg_sleep(1)) AS slow",
    )
    .await;
}

#[tokio::test]
async fn an_abandoned_query_does_not_leak_into_the_next_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let pool: ConnPool<sqlx::Sqlite> = ConnPool::connect(sqlite_options(&dir), limits(1))
        .await
        .unwrap();
    // A recursive count to ten million: SQLite has no sleep.
    an_abandoned_query_does_not_leak_into_the_next(
        pool,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000) \
         SELECT 'old' || max(i) FROM n",
    )
    .await;
}

#[tokio::test]
async fn a_caller_waits_for_a_free_connection_then_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let pool: ConnPool<sqlx::Sqlite> = ConnPool::connect(
        sqlite_options(&dir),
        PoolLimits {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
        },
    )
    .await
    .unwrap();
    let held = pool.acquire().await.unwrap();
    let waited = pool.acquire().await;
    assert!(
        matches!(waited, Err(sqlx::Error::PoolTimedOut)),
        "no second connection past the limit"
    );
    // A waiter is served as soon as the connection comes back.
    let pool2 = pool.clone();
    let waiter = tokio::spawn(async move { pool2.acquire().await.map(drop) });
    tokio::task::yield_now().await;
    drop(held);
    waiter
        .await
        .unwrap()
        .expect("served the returned connection");
    assert_eq!((pool.size(), pool.num_idle()), (1, 1));
}
