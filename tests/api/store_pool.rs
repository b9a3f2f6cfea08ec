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
    sqlx::query("SELECT pg_terminate_backend($1, 5000)")
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
async fn the_late_error_of_an_abandoned_query_is_not_the_next_query_s() {
    let db = PgDatabase::create().await;
    let pool = postgres_pool(&db, 1).await;
    // Fails with division by zero after a second, when nobody waits for it any more.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query_scalar::<_, i64>("SELECT 1 / (count(*) - 1) FROM pg_sleep(1)").fetch_one(&pool),
    )
    .await;
    assert!(abandoned.is_err(), "the slow statement was still running");
    let got: String = sqlx::query_scalar("SELECT 'new'")
        .fetch_one(&pool)
        .await
        .expect("the next query gets its own answer, not the abandoned one's error");
    assert_eq!(got, "new");
}

#[tokio::test]
async fn a_refused_statement_leaves_the_connection_as_it_was() {
    let db = PgDatabase::create().await;
    let pool = postgres_pool(&db, 1).await;
    make_table(&pool).await;
    let refused = sqlx::query("INSERT INTO t VALUES (1, 'again')")
        .execute(&pool)
        .await;
    assert!(
        matches!(refused, Err(sqlx::Error::Database(_))),
        "{refused:?}"
    );
    let note: String = sqlx::query_scalar("SELECT note FROM t WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(note, "kept");
    // The refusal was the database's answer: no flush, no test, the same connection.
    assert_eq!(pool.stats().checked, 0);
    assert_eq!(pool.size(), 1);
}

#[tokio::test]
async fn a_begin_cut_short_never_leaves_a_transaction_open_for_the_next_borrower() {
    let db = PgDatabase::create().await;
    let proxy = PausableProxy::start("127.0.0.1:5432").await;
    let mut options: PgConnectOptions = db.url.parse().unwrap();
    options = options.host("127.0.0.1").port(proxy.port);
    let pool: ConnPool<sqlx::Postgres> = ConnPool::connect(options, limits(1)).await.unwrap();
    make_table(&pool).await;
    // BEGIN reaches the database, its answer does not reach us: the caller gives up.
    proxy.hold_answers(true);
    let begun = tokio::time::timeout(Duration::from_millis(300), pool.begin(None)).await;
    assert!(begun.is_err(), "BEGIN was not answered");
    proxy.hold_answers(false);
    // The next write through the pool must commit on its own, not inside that BEGIN.
    sqlx::query("INSERT INTO t VALUES (2, 'after')")
        .execute(&pool)
        .await
        .unwrap();
    let mut direct = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM t WHERE id = 2")
        .fetch_one(&mut direct)
        .await
        .unwrap();
    assert_eq!(seen, 1, "the write was committed");
}

/// A TCP relay to the database whose answers can be held back (the database still gets
/// every byte the client sends): a slow network, as real as the database behind it.
struct PausableProxy {
    port: u16,
    hold: tokio::sync::watch::Sender<bool>,
}

impl PausableProxy {
    async fn start(upstream: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hold, held) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut held = held.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        while *held.borrow_and_update() {
                            if held.changed().await.is_err() {
                                return;
                            }
                        }
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // Read while free, sent once free again.
                        while *held.borrow_and_update() {
                            if held.changed().await.is_err() {
                                return;
                            }
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, hold }
    }

    fn hold_answers(&self, hold: bool) {
        self.hold.send_replace(hold);
    }
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
