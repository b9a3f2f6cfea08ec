//! The store's connection pool: a connection goes back to the pool without a round trip.
//!
//! sqlx's `Pool` (0.8) pings every connection handed back to it before another task may
//! take it: one more round trip per use, which wakes the server and a database backend
//! for nothing most of the time (one query answered in full leaves the connection clean).
//! On a busy instance that doubled the round trips of every read and added one to every
//! write transaction (BENCHMARKS.md, "Thirteenth session"). This pool takes a connection
//! back at once when nothing is left on it, and flushes or tests it first only when that
//! is needed:
//!
//! - something is queued on it (`should_flush`: the ROLLBACK of a dropped transaction,
//!   which must reach the database now, not at the next use, or its locks would stay);
//! - a statement on it was cut short (the caller's future dropped before the answer: the
//!   answer, an error perhaps, is read and set aside, not handed to the next borrower);
//! - a statement on it failed for a reason other than the database refusing it (the
//!   connection may be broken: a failed test closes it instead of pooling it);
//! - it has been idle for a while (tested before use, as a server may have closed it).
//!
//! A BEGIN cut short may have run without the connection knowing it is in a transaction:
//! that connection is closed, never lent again. Flushes and tests are bounded in time
//! ([`FLUSH_TIMEOUT`]), so a database that stops answering cannot hold a pool's places for
//! ever. Only what runs through the pool (`&pool` as an executor, [`Tx`]) is watched this
//! way; a [`PooledConnection`] used directly (the migrations at start-up) is not.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{Connection, Database, Describe, Either, Execute, Executor, TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a flush or test of a connection may take before the connection is dropped.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection idle this long is tested before it is used again.
const TEST_AFTER_IDLE: Duration = Duration::from_secs(30);

/// A connection idle this long is closed (found when the pool is next used).
const CLOSE_AFTER_IDLE: Duration = Duration::from_secs(600);

/// How the pool is sized and how long a caller waits for a connection.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// What a pool holds and has done (summed over a store's pools), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    /// Connections given back that had to be flushed or tested before another use (a
    /// dropped transaction, a statement that failed other than by a refusal).
    pub checked: u64,
    /// Connections dropped as broken or unresponsive.
    pub dropped: u64,
}

impl std::ops::Add for PoolStats {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            in_use: self.in_use + other.in_use,
            idle: self.idle + other.idle,
            checked: self.checked + other.checked,
            dropped: self.dropped + other.dropped,
        }
    }
}

/// Up to `max_connections` connections to one database, opened on demand.
pub struct ConnPool<B: Database> {
    shared: Arc<Shared<B>>,
}

impl<B: Database> Clone for ConnPool<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<B: Database> std::fmt::Debug for ConnPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool")
            .field("size", &self.size())
            .field("idle", &self.num_idle())
            .finish()
    }
}

struct Shared<B: Database> {
    options: <B::Connection as Connection>::Options,
    /// Idle connections, the most recently used last (taken first: the others age and
    /// close when the pool needs fewer).
    idle: Mutex<Vec<Idle<B>>>,
    /// One per connection a caller may hold: idle connections are those no permit holds.
    places: Arc<Semaphore>,
    /// Connections open, idle or not.
    open: AtomicU32,
    /// Connections given back that had to be flushed or tested first.
    checked: AtomicU64,
    /// Connections dropped as broken or unresponsive.
    dropped: AtomicU64,
    limits: PoolLimits,
}

struct Idle<B: Database> {
    conn: B::Connection,
    since: Instant,
}

impl<B: Database> ConnPool<B> {
    /// A pool that opens connections with `options`; opens one now, so that a wrong
    /// address or password shows at start-up.
    pub async fn connect(
        options: <B::Connection as Connection>::Options,
        limits: PoolLimits,
    ) -> Result<Self, sqlx::Error> {
        let pool = Self {
            shared: Arc::new(Shared {
                options,
                idle: Mutex::new(Vec::new()),
                places: Arc::new(Semaphore::new(limits.max_connections.max(1) as usize)),
                open: Default::default(),
                checked: Default::default(),
                dropped: Default::default(),
                limits,
            }),
        };
        drop(pool.acquire().await?);
        Ok(pool)
    }

    /// A connection, waiting at most the pool's acquire timeout for one to be free.
    pub async fn acquire(&self) -> Result<PooledConnection<B>, sqlx::Error> {
        let deadline = Instant::now() + self.shared.limits.acquire_timeout;
        let place = tokio::time::timeout_at(deadline, self.shared.places.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut place = Some(place);
        while let Some(Idle { conn, since }) = self.shared.take_idle() {
            let mut lent = self.shared.lend(conn, place.take());
            if since.elapsed() < TEST_AFTER_IDLE {
                return Ok(lent);
            }
            // Dropped untested if this future is: a test cut short proves nothing.
            lent.discard = true;
            if let Ok(Ok(())) = tokio::time::timeout_at(deadline, lent.ping()).await {
                lent.discard = false;
                return Ok(lent);
            }
            // Broken (or too slow): drop it, keep the place, try the next.
            place = lent.place.take();
        }
        let conn =
            tokio::time::timeout_at(deadline, B::Connection::connect_with(&self.shared.options))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
        self.shared.open.fetch_add(1, Relaxed);
        Ok(self.shared.lend(conn, place))
    }

    /// A connection with a transaction begun on it (`statement`: instead of `BEGIN`).
    pub async fn begin(&self, statement: Option<&'static str>) -> Result<Tx<B>, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Cut short or failed, a BEGIN may have run without the connection knowing it is
        // in a transaction: such a connection is closed (the database rolls back), never
        // lent again.
        conn.discard = true;
        B::TransactionManager::begin(&mut conn, statement.map(Into::into)).await?;
        conn.discard = false;
        Ok(Tx { conn, open: true })
    }

    /// Connections open, idle or in use.
    pub fn size(&self) -> u32 {
        self.shared.open.load(Relaxed)
    }

    /// Connections open and not in use.
    pub fn num_idle(&self) -> usize {
        self.shared.idle().len()
    }

    /// What the pool holds and has done, for metrics.
    pub fn stats(&self) -> PoolStats {
        let idle = self.num_idle() as u32;
        PoolStats {
            in_use: self.size().saturating_sub(idle),
            idle,
            checked: self.shared.checked.load(Relaxed),
            dropped: self.shared.dropped.load(Relaxed),
        }
    }
}

impl<B: Database> Shared<B> {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle<B>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection; closes the oldest if it has idled long.
    fn take_idle(&self) -> Option<Idle<B>> {
        let mut idle = self.idle();
        if idle
            .first()
            .is_some_and(|oldest| oldest.since.elapsed() > CLOSE_AFTER_IDLE)
        {
            let oldest = idle.remove(0);
            drop(idle);
            self.close(oldest.conn);
            idle = self.idle();
        }
        idle.pop()
    }

    fn lend(
        self: &Arc<Self>,
        conn: B::Connection,
        place: Option<OwnedSemaphorePermit>,
    ) -> PooledConnection<B> {
        PooledConnection {
            conn: Some(conn),
            shared: self.clone(),
            place,
            suspect: false,
            discard: false,
        }
    }

    fn put_back(&self, conn: B::Connection) {
        self.idle().push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Drops a connection that may be broken (no goodbye: it may never come back).
    fn forget(&self, conn: B::Connection) {
        self.open.fetch_sub(1, Relaxed);
        self.dropped.fetch_add(1, Relaxed);
        drop(conn);
    }

    /// Closes a healthy connection politely, in the background.
    fn close(&self, conn: B::Connection) {
        self.open.fetch_sub(1, Relaxed);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await;
            });
        }
    }
}

/// A connection lent by a [`ConnPool`]; going out of scope gives it back.
pub struct PooledConnection<B: Database> {
    conn: Option<B::Connection>,
    shared: Arc<Shared<B>>,
    /// Released after the connection is back, so the next waiter finds it.
    place: Option<OwnedSemaphorePermit>,
    /// A statement failed other than by the database refusing it, or was cut short:
    /// flush and test before pooling.
    suspect: bool,
    /// In a state no test can clear (a BEGIN cut short): close instead of pooling.
    discard: bool,
}

impl<B: Database> PooledConnection<B> {
    /// Called as a statement is sent: until it is answered the connection is suspect, so
    /// if the caller's future is dropped mid-flight, the answer still to come (an error,
    /// perhaps) is read before the connection is lent again.
    fn sending(&mut self) {
        self.suspect = true;
    }

    /// Called with the statement's outcome.
    fn answered<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.suspect = result
            .as_ref()
            .err()
            .is_some_and(|err| !leaves_connection_clean(err));
    }
}

/// Whether the connection is as good as before after this error: the database answered
/// (refused the statement, returned no row, sent a value that does not decode). Errors of
/// the connection itself (PostgreSQL's SQLSTATE classes 08 and XX, and 57P: the server
/// shutting down or the database dropped, sent as its last word), transport errors and
/// anything else make it suspect.
fn leaves_connection_clean(err: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    match err {
        Database(refusal) => refusal.code().is_some_and(|code| {
            !(code.starts_with("08") || code.starts_with("57P") || code.starts_with("XX"))
        }),
        RowNotFound
        | TypeNotFound { .. }
        | ColumnIndexOutOfBounds { .. }
        | ColumnNotFound(_)
        | ColumnDecode { .. }
        | Decode(_)
        | Encode(_) => true,
        _ => false,
    }
}

impl<B: Database> Deref for PooledConnection<B> {
    type Target = B::Connection;

    fn deref(&self) -> &B::Connection {
        // Present until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<B: Database> DerefMut for PooledConnection<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<B: Database> Drop for PooledConnection<B> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let place = self.place.take();
        if self.discard {
            self.shared.forget(conn);
            return;
        }
        if !self.suspect && B::TransactionManager::get_transaction_depth(&conn) > 0 {
            // Left in a transaction other than by a `Tx` (which rolls back itself and
            // marks the connection suspect): roll back all the same.
            B::TransactionManager::start_rollback(&mut conn);
            self.suspect = true;
        }
        if !self.suspect && !conn.should_flush() {
            self.shared.put_back(conn);
            drop(place);
            return;
        }
        self.shared.checked.fetch_add(1, Relaxed);
        let shared = self.shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match tokio::time::timeout(FLUSH_TIMEOUT, flush::<B>(&mut conn)).await {
                        Ok(true) => shared.put_back(conn),
                        _ => shared.forget(conn),
                    }
                    drop(place);
                });
            }
            // No runtime left (the process is ending): nothing will use it again.
            Err(_) => shared.forget(conn),
        }
    }
}

/// Sends what is queued on the connection and reads every answer still due; whether the
/// connection came through. A statement cut short may still answer with an error: that
/// is its answer, read and set aside (a few of them at most), not the connection failing.
async fn flush<B: Database>(conn: &mut B::Connection) -> bool {
    for _ in 0..4 {
        match conn.ping().await {
            Ok(()) => return true,
            Err(sqlx::Error::Database(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// A transaction on a pooled connection: committed by [`Tx::commit`], rolled back when
/// dropped otherwise (the rollback is flushed before the connection is lent again).
pub struct Tx<B: Database> {
    conn: PooledConnection<B>,
    open: bool,
}

impl<B: Database> Tx<B> {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.conn.sending();
        let result = B::TransactionManager::commit(&mut self.conn).await;
        self.conn.answered(&result);
        if result.is_ok() {
            self.open = false;
        }
        result
    }
}

impl<B: Database> Deref for Tx<B> {
    type Target = B::Connection;

    fn deref(&self) -> &B::Connection {
        &self.conn
    }
}

impl<B: Database> DerefMut for Tx<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        &mut self.conn
    }
}

impl<B: Database> Drop for Tx<B> {
    fn drop(&mut self) {
        if self.open {
            // Always, even at depth 0: SQLite's worker expects a rollback after a commit
            // cut short (it skips the next one), and PostgreSQL's does nothing at depth 0.
            B::TransactionManager::start_rollback(&mut self.conn);
            // A statement of the transaction may have failed on a broken connection.
            self.conn.suspect = true;
        }
    }
}

/// Lets a query run on the pool as on sqlx's: `query.fetch_one(&pool)`.
impl<'p, B: Database> Executor<'p> for &'_ ConnPool<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
{
    type Database = B;

    /// Rows are read in full before the first is yielded: every query of the store reads
    /// a bounded page, and the connection is back in the pool sooner.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<B::QueryResult, B::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, B>,
    {
        let pool = self.clone();
        futures_util::stream::once(async move {
            let mut conn = pool.acquire().await?;
            conn.sending();
            let result: Result<Vec<_>, _> = (&mut *conn).fetch_many(query).try_collect().await;
            conn.answered(&result);
            result
        })
        .map_ok(|items| futures_util::stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<B::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, B>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.sending();
            let result = (&mut *conn).fetch_optional(query).await;
            conn.answered(&result);
            result
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [B::TypeInfo],
    ) -> BoxFuture<'e, Result<B::Statement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.sending();
            let result = (&mut *conn).prepare_with(sql, parameters).await;
            conn.answered(&result);
            result
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<B>, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.sending();
            let result = (&mut *conn).describe(sql).await;
            conn.answered(&result);
            result
        })
    }
}
