//! [`Store`] and [`StoreTx`] written once over sqlx, for any [`Backend`].

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::backend::{notify_refused, Backend, Column, Notices};
use super::pool::{ConnPool, PoolStats, Tx};
use super::queries::{self as q, Locked, TaskQueries, TAG_FILTER_SLOTS};
use super::{
    EventBounds, EventRow, InsertedNotification, MembershipPosition, NewContactMessage,
    NewInvitation, NewProject, NewSession, NewUser, NotificationFilter, NotificationPage,
    NotificationWithCounts, PoolSizes, ProfileRow, PushSubscriptionRecord, Session, Settlement,
    Store, StoreError, StoreResult, StoreTx, StreamPositions, TaskWithTotal, UsedMailToken,
};
use crate::config::DatabaseUrl;
use crate::domain::{
    tag_counts, ClaimedDelivery, DeliveryJob, Email, Event, EventDraft, Invitation, Member,
    Membership, NewTask, Notification, NotificationDraft, Profile, Project, PushMessage,
    ReminderSchedule, Role, StreamKey, TagCount, TagScope, Tags, Task, TaskFilter, TaskScope,
    TokenPurpose, UserName, UserWithPassword,
};

/// The store on database `B`: a pool for reads and one for write transactions.
#[derive(Debug)]
pub struct SqlStore<B: Backend> {
    read: ConnPool<B>,
    write: ConnPool<B>,
}

impl<B: Backend> SqlStore<B> {
    /// Opens the database the URL names, applying its migrations first.
    pub async fn connect(url: &DatabaseUrl, sizes: PoolSizes) -> anyhow::Result<Self> {
        let pools = B::connect(url, sizes).await?;
        Ok(Self {
            read: pools.read,
            write: pools.write,
        })
    }
}

/// A write transaction on database `B`.
struct SqlTx<B: Backend> {
    tx: Tx<B>,
    /// Whether a delivery was added (see [`StoreTx::enqueued_deliveries`]).
    enqueued: bool,
    /// The latest seq of each stream whose row this transaction holds locked (see
    /// [`StoreTx::latest_seq`]).
    latest: Vec<(StreamKey, i64)>,
    /// NOTIFYs not yet sent: the next append carries them, or the commit.
    notices: Notices,
    /// Why this transaction must not commit although the database took every statement
    /// (an append that did not take the seqs its NOTIFY named).
    poisoned: Option<String>,
}

impl<B: Backend> SqlTx<B> {
    fn hold(&mut self, stream: StreamKey, seq: i64) {
        match self.latest.iter_mut().find(|(held, _)| *held == stream) {
            Some(entry) => entry.1 = seq,
            None => self.latest.push((stream, seq)),
        }
    }
}

/// Binds [`TaskFilterArgs`] to a query, in their order.
macro_rules! bind_task_filter {
    ($query:expr, $args:expr) => {{
        let args: &TaskFilterArgs = $args;
        let mut query = $query
            .bind(args.user_id)
            .bind(args.deleted)
            .bind(args.completed)
            .bind(args.priority)
            .bind(args.created_from)
            .bind(args.created_to)
            .bind(args.text)
            .bind(args.include)
            .bind(args.exclude);
        for tag in args.tags {
            query = query.bind(tag);
        }
        query.bind(args.tag_count)
    }};
}

// The `where` clause is what the SQL below needs of sqlx on `B`: executors, rows read by
// column name or position, and the types it binds and reads, nullable ones included. Rust
// does not carry such bounds along with `Backend`, so the `StoreTx` impl repeats them.
#[async_trait]
impl<B: Backend> Store for SqlStore<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'r> &'r str: ColumnIndex<B::Row>,
    usize: ColumnIndex<B::Row>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<&'q str>: Encode<'q, B>,
    String: Column<B>,
    Uuid: Column<B>,
    Option<Uuid>: Column<B>,
    i64: Column<B>,
    Option<i64>: Column<B>,
    bool: Column<B>,
    Option<bool>: Column<B>,
    DateTime<Utc>: Column<B>,
    Option<DateTime<Utc>>: Column<B>,
    Option<NaiveDate>: Column<B>,
{
    fn backend(&self) -> &'static str {
        B::LABEL
    }

    fn pool_stats(&self) -> PoolStats {
        self.read.stats() + self.write.stats()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(q::PING)
            .execute(&self.read)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        let tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        Ok(Box::new(SqlTx::<B> {
            tx,
            enqueued: false,
            latest: Vec::new(),
            notices: Notices::default(),
            poisoned: None,
        }))
    }

    async fn user_for_sign_in(&self, email: &Email) -> StoreResult<Option<UserWithPassword>> {
        let row: Option<ProfileRow> = sqlx::query_as(q::USER_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)?;
        Ok(row.map(|row| {
            let (profile, password_hash) = row.into_parts();
            UserWithPassword {
                user: profile.user(),
                password_hash,
            }
        }))
    }

    async fn profile(&self, user_id: Uuid) -> StoreResult<Option<Profile>> {
        let row: Option<ProfileRow> = sqlx::query_as(q::USER_BY_ID)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)?;
        Ok(row.map(ProfileRow::into_profile))
    }

    async fn email_taken(&self, email: &Email) -> StoreResult<bool> {
        sqlx::query_scalar(q::EMAIL_TAKEN)
            .bind(email.as_str())
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn name_taken(&self, name: &str, except: Option<Uuid>) -> StoreResult<bool> {
        sqlx::query_scalar(q::NAME_TAKEN)
            .bind(UserName::key_of(name))
            .bind(except)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn password_hash(&self, user_id: Uuid) -> StoreResult<Option<String>> {
        sqlx::query_scalar(q::PASSWORD_HASH)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        sqlx::query_as(q::SESSION_BY_ID)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>> {
        sqlx::query_as(q::ACTIVE_SESSIONS)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn task(&self, id: i64) -> StoreResult<Option<Task>> {
        sqlx::query_as(q::TASK_BY_ID)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn tasks(&self, user_id: Uuid, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        let (queries, scope) = match filter.scope {
            TaskScope::Personal => (TaskQueries::<B>::PERSONAL, user_id),
            TaskScope::Project(project_id) => (TaskQueries::<B>::PROJECT, project_id),
            TaskScope::MyProjects => (TaskQueries::<B>::MY_PROJECTS, user_id),
        };
        let args = TaskFilterArgs::new(scope, filter);
        let page = if filter.by_relevance() {
            queries.page_by_relevance
        } else {
            queries.page
        };
        let rows: Vec<TaskWithTotal> = bind_task_filter!(sqlx::query_as(page), &args)
            .bind(filter.assignee_id)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)?;
        // The total rides with the page; only a page past the end needs a count.
        let total = match rows.first() {
            Some(row) => row.total,
            None if filter.offset == 0 => 0,
            None => bind_task_filter!(sqlx::query_scalar(queries.count), &args)
                .bind(filter.assignee_id)
                .fetch_one(&self.read)
                .await
                .map_err(B::store_error)?,
        };
        Ok((rows.into_iter().map(|row| row.task).collect(), total))
    }

    async fn tag_counts(&self, scope: TagScope) -> StoreResult<Vec<TagCount>> {
        let (sql, id) = match scope {
            TagScope::User(user_id) => (q::USER_TAG_COUNTS, user_id),
            TagScope::Project(project_id) => (q::PROJECT_TAG_COUNTS, project_id),
        };
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(sql)
            .bind(id)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)?;
        Ok(tag_counts(rows))
    }

    async fn notification(&self, user_id: Uuid, id: i64) -> StoreResult<Option<Notification>> {
        sqlx::query_as(q::NOTIFICATION_BY_ID)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn notifications(
        &self,
        user_id: Uuid,
        filter: &NotificationFilter,
    ) -> StoreResult<NotificationPage> {
        let page = if filter.newest_first {
            q::NOTIFICATION_PAGE_NEWEST_FIRST
        } else {
            q::NOTIFICATION_PAGE_OLDEST_FIRST
        };
        let rows: Vec<NotificationWithCounts> = sqlx::query_as(page)
            .bind(user_id)
            .bind(filter.unread_only)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)?;
        let (total, unread) = match rows.first() {
            Some(row) => (row.total, row.unread),
            // Nothing matches the filter, so nothing is unread either.
            None if filter.offset == 0 => (0, 0),
            None => sqlx::query_as(q::NOTIFICATION_COUNTS)
                .bind(user_id)
                .bind(filter.unread_only)
                .fetch_one(&self.read)
                .await
                .map_err(B::store_error)?,
        };
        Ok(NotificationPage {
            items: rows.into_iter().map(|row| row.notification).collect(),
            total,
            unread,
        })
    }

    async fn unread_count(&self, user_id: Uuid) -> StoreResult<i64> {
        sqlx::query_scalar(q::UNREAD_COUNT)
            .bind(user_id)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn events_after(
        &self,
        stream: StreamKey,
        since: i64,
        limit: i64,
    ) -> StoreResult<Vec<Event>> {
        let rows: Vec<EventRow> = sqlx::query_as(stream_queries(stream).events_after)
            .bind(stream.id())
            .bind(since)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)?;
        rows.into_iter().map(|row| row.into_event(stream)).collect()
    }

    async fn event_bounds(&self, stream: StreamKey) -> StoreResult<Option<EventBounds>> {
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(stream_queries(stream).bounds)
            .bind(stream.id())
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)?;
        Ok(row.map(|(last_seq, first_retained)| EventBounds {
            last_seq,
            first_retained,
        }))
    }

    async fn latest_seqs(&self, streams: &[StreamKey]) -> StoreResult<Vec<(StreamKey, i64)>> {
        let mut latest = Vec::with_capacity(streams.len());
        for (queries, wrap) in [
            (&q::USER_STREAM, StreamKey::User as fn(Uuid) -> StreamKey),
            (&q::PROJECT_STREAM, StreamKey::Project),
        ] {
            let ids: Vec<Uuid> = streams
                .iter()
                .filter(|s| wrap(s.id()) == **s)
                .map(|s| s.id())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let sql = q::with_list(queries.latest, 1, ids.len());
            let mut query = sqlx::query_as::<B, (Uuid, i64)>(&sql);
            for id in ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(&self.read).await.map_err(B::store_error)?;
            latest.extend(rows.into_iter().map(|(id, seq)| (wrap(id), seq)));
        }
        Ok(latest)
    }

    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        keep_last: i64,
        batch: i64,
    ) -> StoreResult<u64> {
        let mut total = 0;
        for queries in [&q::USER_STREAM, &q::PROJECT_STREAM] {
            let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
            let done = sqlx::query(queries.prune)
                .bind(older_than)
                .bind(keep_last)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(B::store_error)?;
            tx.commit().await.map_err(B::store_error)?;
            total += B::rows_affected(&done);
        }
        sqlx::query(q::PURGE_DELETED_PROJECTS)
            .bind(older_than)
            .execute(&self.write)
            .await
            .map_err(B::store_error)?;
        Ok(total)
    }

    async fn prune_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        let done = sqlx::query(q::PRUNE_SESSIONS)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)?;
        Ok(B::rows_affected(&done))
    }

    async fn claim_deliveries(
        &self,
        claim_id: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(Locked::<B>::CLAIM_DELIVERIES)
            .bind(claim_id)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(B::store_error)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_str(&row.job) {
                Ok(job) => claimed.push(ClaimedDelivery {
                    id: row.id,
                    user_id: row.user_id,
                    subscription_id: row.subscription_id,
                    job,
                    attempt: u32::try_from(row.attempts).unwrap_or(u32::MAX),
                    claim_id,
                }),
                // Written by a version that knew a job this one does not: retrying
                // cannot help.
                Err(err) => {
                    tracing::error!(delivery = row.id, error = %err, "a delivery's job does not parse");
                    sqlx::query(q::SETTLE_DELIVERY)
                        .bind(row.id)
                        .bind(claim_id)
                        .bind("failed")
                        .bind("the job does not parse")
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(B::store_error)?;
                }
            }
        }
        tx.commit().await.map_err(B::store_error)?;
        Ok(claimed)
    }

    async fn delivery_due(&self, now: DateTime<Utc>) -> StoreResult<bool> {
        sqlx::query_scalar(q::DELIVERY_DUE)
            .bind(now)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn next_reminder_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        sqlx::query_scalar(q::NEXT_REMINDER_AT)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn settle_delivery(
        &self,
        id: i64,
        claim_id: Uuid,
        settlement: Settlement,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        let done = match settlement {
            Settlement::Final { status, error } => {
                sqlx::query(q::SETTLE_DELIVERY)
                    .bind(id)
                    .bind(claim_id)
                    .bind(status)
                    .bind(error.map(|e| truncate(e, 500)).as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
            }
            Settlement::RetryAt { at, error } => {
                sqlx::query(q::RETRY_DELIVERY)
                    .bind(id)
                    .bind(claim_id)
                    .bind(at)
                    .bind(truncate(error, 500).as_str())
                    .execute(&mut *tx)
                    .await
            }
        }
        .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn delivery_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        sqlx::query_as(q::DELIVERY_BACKLOG)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn prune_deliveries(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        let deliveries = sqlx::query(q::PRUNE_DELIVERIES)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        let tokens = sqlx::query(q::PRUNE_MAIL_TOKENS)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)?;
        Ok(B::rows_affected(&deliveries) + B::rows_affected(&tokens))
    }

    async fn insert_mail_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        sqlx::query(q::INSERT_MAIL_TOKEN)
            .bind(token_hash)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(email)
            .bind(now)
            .bind(now + purpose.lifetime())
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)
    }

    async fn push_subscription(&self, id: Uuid) -> StoreResult<Option<PushSubscriptionRecord>> {
        sqlx::query_as(q::PUSH_SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn push_subscriptions(&self, user_id: Uuid) -> StoreResult<Vec<PushSubscriptionRecord>> {
        sqlx::query_as(q::PUSH_SUBSCRIPTIONS_OF)
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn delete_push_subscription_by_id(&self, id: Uuid) -> StoreResult<()> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        sqlx::query(q::DELETE_PUSH_SUBSCRIPTION_BY_ID)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)
    }

    async fn email_reminders(&self, user_id: Uuid) -> StoreResult<Option<bool>> {
        sqlx::query_scalar(q::EMAIL_REMINDERS)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn record_presence(
        &self,
        instance: Uuid,
        devices: &[(Uuid, i64)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        let touch = if devices.is_empty() {
            q::TOUCH_INSTANCE
        } else {
            q::TOUCH_INSTANCE_CHANGED
        };
        let touched = sqlx::query(touch)
            .bind(instance)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        let known = B::rows_affected(&touched) > 0;
        if !known {
            sqlx::query(q::ADD_INSTANCE)
                .bind(instance)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(B::store_error)?;
        }
        let (present, gone): (Vec<_>, Vec<_>) = devices.iter().copied().partition(|(_, n)| *n > 0);
        let gone: Vec<Uuid> = gone.into_iter().map(|(user, _)| user).collect();
        B::set_presence(&mut tx, instance, &present, &gone)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)?;
        Ok(known)
    }

    async fn presence_marks(
        &self,
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, Option<DateTime<Utc>>)>> {
        sqlx::query_as(q::PRESENCE_MARKS)
            .bind(instance)
            .bind(fresh_since)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn project_presence(
        &self,
        project_ids: &[Uuid],
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, Uuid, i64)>> {
        if project_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = q::with_list(q::PROJECT_PRESENCE, 3, project_ids.len());
        let mut query = sqlx::query_as::<B, (Uuid, Uuid, i64)>(&sql)
            .bind(instance)
            .bind(fresh_since);
        for id in project_ids {
            query = query.bind(*id);
        }
        query.fetch_all(&self.read).await.map_err(B::store_error)
    }

    async fn forget_instances(
        &self,
        stale_before: DateTime<Utc>,
        leaving: Option<Uuid>,
    ) -> StoreResult<()> {
        let mut tx = B::begin_write(&self.write).await.map_err(B::store_error)?;
        sqlx::query(q::FORGET_INSTANCES)
            .bind(stale_before)
            .bind(leaving)
            .execute(&mut *tx)
            .await
            .map_err(B::store_error)?;
        tx.commit().await.map_err(B::store_error)
    }

    async fn connected_elsewhere(
        &self,
        user_id: Uuid,
        instance: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query_scalar(q::CONNECTED_ELSEWHERE)
            .bind(user_id)
            .bind(instance)
            .bind(fresh_since)
            .fetch_one(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn project(&self, id: Uuid, user_id: Uuid) -> StoreResult<Option<Project>> {
        sqlx::query_as(q::PROJECT_FOR_MEMBER)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn projects(&self, user_id: Uuid) -> StoreResult<Vec<Project>> {
        sqlx::query_as(q::PROJECTS_OF_USER)
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn membership(&self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<Membership>> {
        sqlx::query_as(q::MEMBERSHIP_READ)
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn stream_positions(&self, user_id: Uuid) -> StoreResult<Option<StreamPositions>> {
        type Row = (
            i64,
            Option<i64>,
            Option<Uuid>,
            String,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(q::STREAM_POSITIONS)
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)?;
        let Some(&(last_seq, first_retained, ..)) = rows.first() else {
            return Ok(None);
        };
        let mut projects = Vec::with_capacity(rows.len());
        for (_, _, project_id, role, joined_seq, project_seq) in rows {
            let (Some(project_id), Some(joined_seq), Some(last_seq)) =
                (project_id, joined_seq, project_seq)
            else {
                continue;
            };
            let role = Role::parse(&role)
                .map_err(|err| StoreError::Other(sqlx::Error::Decode(err.into())))?;
            projects.push(MembershipPosition {
                membership: Membership {
                    project_id,
                    role,
                    joined_seq,
                },
                last_seq,
            });
        }
        Ok(Some(StreamPositions {
            own: EventBounds {
                last_seq,
                first_retained,
            },
            projects,
        }))
    }

    async fn member(&self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<Member>> {
        sqlx::query_as(q::MEMBER)
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn members(&self, project_id: Uuid) -> StoreResult<Vec<Member>> {
        sqlx::query_as(q::MEMBERS_OF_PROJECT)
            .bind(project_id)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn invitations_to(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as(q::INVITATIONS_TO)
            .bind(email)
            .bind(now)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn project_invitations(
        &self,
        project_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as(q::INVITATIONS_OF_PROJECT)
            .bind(project_id)
            .bind(now)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }

    async fn prune_invitations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(q::PRUNE_INVITATIONS)
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(B::store_error)?;
        Ok(B::rows_affected(&done))
    }

    async fn users_with_notifications_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar(q::USERS_WITH_NOTIFICATIONS_BEFORE)
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(B::store_error)
    }
}

// The bounds of `Store for SqlStore<B>` above.
#[async_trait]
impl<B: Backend> StoreTx for SqlTx<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'r> &'r str: ColumnIndex<B::Row>,
    usize: ColumnIndex<B::Row>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<&'q str>: Encode<'q, B>,
    String: Column<B>,
    Uuid: Column<B>,
    Option<Uuid>: Column<B>,
    i64: Column<B>,
    Option<i64>: Column<B>,
    bool: Column<B>,
    Option<bool>: Column<B>,
    DateTime<Utc>: Column<B>,
    Option<DateTime<Utc>>: Column<B>,
    Option<NaiveDate>: Column<B>,
{
    async fn insert_user(&mut self, user: NewUser<'_>) -> StoreResult<Profile> {
        let row: ProfileRow = sqlx::query_as(q::INSERT_USER)
            .bind(user.id)
            .bind(user.name)
            .bind(user.email.as_str())
            .bind(user.password_hash)
            .bind(user.now)
            .bind(UserName::key_of(user.name))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(row.into_profile())
    }

    async fn set_password_hash(&mut self, user_id: Uuid, hash: &str) -> StoreResult<()> {
        sqlx::query(q::SET_PASSWORD_HASH)
            .bind(user_id)
            .bind(hash)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn profile_for_update(&mut self, user_id: Uuid) -> StoreResult<Option<Profile>> {
        let row: Option<ProfileRow> = sqlx::query_as(Locked::<B>::USER_BY_ID)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(row.map(ProfileRow::into_profile))
    }

    async fn save_profile(&mut self, profile: &Profile) -> StoreResult<Profile> {
        let row: ProfileRow = sqlx::query_as(q::SAVE_PROFILE)
            .bind(profile.id)
            .bind(profile.name.as_str())
            .bind(profile.first_name.as_deref())
            .bind(profile.last_name.as_deref())
            .bind(profile.phone.as_deref())
            .bind(profile.date_of_birth)
            .bind(profile.gender.as_deref())
            .bind(profile.address.as_deref())
            .bind(profile.city.as_deref())
            .bind(profile.country.as_deref())
            .bind(profile.bio.as_deref())
            .bind(profile.updated_at)
            .bind(UserName::key_of(&profile.name))
            .bind(profile.email_reminders)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(row.into_profile())
    }

    async fn profile_photo(&mut self, user_id: Uuid) -> StoreResult<Option<String>> {
        let photo: Option<Option<String>> = sqlx::query_scalar(Locked::<B>::PROFILE_PHOTO)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(photo.flatten())
    }

    async fn set_profile_photo(
        &mut self,
        user_id: Uuid,
        file: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Profile> {
        let row: ProfileRow = sqlx::query_as(q::SET_PROFILE_PHOTO)
            .bind(user_id)
            .bind(file)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(row.into_profile())
    }

    async fn insert_task(
        &mut self,
        user_id: Uuid,
        task: &NewTask,
        schedule: ReminderSchedule,
        now: DateTime<Utc>,
        max_tasks: i64,
    ) -> StoreResult<Option<Task>> {
        let sql = match task.project_id {
            None => Locked::<B>::INSERT_TASK,
            Some(_) => Locked::<B>::INSERT_PROJECT_TASK,
        };
        let query = sqlx::query_as(sql)
            .bind(user_id)
            .bind(task.title.as_str())
            .bind(task.description.as_ref().map(|d| d.as_str()))
            .bind(task.completed)
            .bind(task.priority.as_str())
            .bind(task.due_date)
            .bind(now)
            .bind(max_tasks)
            .bind(schedule.remind_at)
            .bind(schedule.stage.as_i64())
            .bind(
                task.tags
                    .as_ref()
                    .map_or_else(|| "[]".into(), Tags::to_json),
            )
            .bind(task.assignee_id);
        let query = match task.project_id {
            Some(project_id) => query.bind(project_id),
            None => query,
        };
        let inserted: Option<Task> = query
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        if let Some(task) = &inserted {
            insert_task_tags::<B>(&mut self.tx, task.id, &task.tags).await?;
        }
        Ok(inserted)
    }

    async fn task_for_update(&mut self, id: i64) -> StoreResult<Option<Task>> {
        sqlx::query_as(Locked::<B>::TASK_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn save_task(&mut self, task: &Task) -> StoreResult<Task> {
        sqlx::query_as(q::SAVE_TASK)
            .bind(task.id)
            .bind(task.title.as_str())
            .bind(task.description.as_deref())
            .bind(task.completed)
            .bind(task.priority.as_str())
            .bind(task.due_date)
            .bind(task.is_deleted)
            .bind(task.deleted_at)
            .bind(task.updated_at)
            .bind(task.remind_at)
            .bind(task.reminder_stage.as_i64())
            .bind(task.tags.to_json())
            .bind(task.assignee_id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn set_task_tags(&mut self, task_id: i64, tags: &Tags) -> StoreResult<()> {
        sqlx::query(q::DELETE_TASK_TAGS)
            .bind(task_id)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        insert_task_tags::<B>(&mut self.tx, task_id, tags).await
    }

    async fn delete_task(&mut self, id: i64) -> StoreResult<()> {
        sqlx::query(q::DELETE_TASK)
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn insert_notification(
        &mut self,
        draft: &NotificationDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<(Notification, i64)> {
        let row: InsertedNotification = sqlx::query_as(q::INSERT_NOTIFICATION)
            .bind(draft.user_id)
            .bind(draft.kind.as_str())
            .bind(draft.title.as_str())
            .bind(draft.message.as_str())
            .bind(draft.task_id)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok((row.notification, row.held_before))
    }

    async fn insert_contact_message(&mut self, new: NewContactMessage<'_>) -> StoreResult<()> {
        sqlx::query(q::INSERT_CONTACT_MESSAGE)
            .bind(new.id)
            .bind(new.message.name.as_str())
            .bind(new.message.email.as_str())
            .bind(new.message.subject.as_str())
            .bind(new.message.message.as_str())
            .bind(new.ip)
            .bind(new.user_agent)
            .bind(new.now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn enqueue_delivery(
        &mut self,
        user_id: Option<Uuid>,
        job: &DeliveryJob,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(job)
            .map_err(|e| StoreError::Other(sqlx::Error::Encode(e.into())))?;
        sqlx::query(q::INSERT_DELIVERY)
            .bind(job.channel().as_str())
            .bind(job.kind())
            .bind(user_id)
            .bind(json)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        self.enqueued = true;
        Ok(())
    }

    async fn enqueue_push(
        &mut self,
        user_id: Uuid,
        message: &PushMessage,
        only_if_offline: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let job = DeliveryJob::Push {
            message: message.clone(),
            only_if_offline,
        };
        let json = serde_json::to_string(&job)
            .map_err(|e| StoreError::Other(sqlx::Error::Encode(e.into())))?;
        let done = sqlx::query(q::INSERT_PUSH_DELIVERIES)
            .bind(user_id)
            .bind(job.kind())
            .bind(json)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        let added = B::rows_affected(&done);
        self.enqueued |= added > 0;
        Ok(added)
    }

    fn enqueued_deliveries(&self) -> bool {
        self.enqueued
    }

    async fn due_reminder(&mut self, now: DateTime<Utc>) -> StoreResult<Option<Task>> {
        sqlx::query_as(Locked::<B>::DUE_REMINDER)
            .bind(now)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn set_reminder(&mut self, task_id: i64, schedule: ReminderSchedule) -> StoreResult<()> {
        sqlx::query(q::SET_REMINDER)
            .bind(task_id)
            .bind(schedule.remind_at)
            .bind(schedule.stage.as_i64())
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn use_mail_token(
        &mut self,
        token_hash: &str,
        purpose: TokenPurpose,
    ) -> StoreResult<Option<UsedMailToken>> {
        sqlx::query_as(q::USE_MAIL_TOKEN)
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn delete_mail_tokens(
        &mut self,
        user_id: Uuid,
        purpose: TokenPurpose,
    ) -> StoreResult<()> {
        sqlx::query(q::DELETE_MAIL_TOKENS)
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn set_email_verified(
        &mut self,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Profile>> {
        let row: Option<ProfileRow> = sqlx::query_as(q::SET_EMAIL_VERIFIED)
            .bind(user_id)
            .bind(email)
            .bind(true)
            .bind(now)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(row.map(ProfileRow::into_profile))
    }

    async fn save_push_subscription(
        &mut self,
        subscription: &PushSubscriptionRecord,
        keep: i64,
    ) -> StoreResult<PushSubscriptionRecord> {
        sqlx::query(q::RELEASE_PUSH_ENDPOINT)
            .bind(subscription.endpoint.as_str())
            .bind(subscription.user_id)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        let saved: PushSubscriptionRecord = sqlx::query_as(q::UPSERT_PUSH_SUBSCRIPTION)
            .bind(subscription.id)
            .bind(subscription.user_id)
            .bind(subscription.endpoint.as_str())
            .bind(subscription.p256dh.as_str())
            .bind(subscription.auth.as_str())
            .bind(subscription.user_agent.as_deref())
            .bind(subscription.created_at)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        sqlx::query(q::PRUNE_PUSH_SUBSCRIPTIONS)
            .bind(subscription.user_id)
            .bind(keep)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(saved)
    }

    async fn delete_push_subscription(
        &mut self,
        user_id: Uuid,
        endpoint: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(q::DELETE_PUSH_SUBSCRIPTION)
            .bind(user_id)
            .bind(endpoint)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn delete_oldest_notifications(
        &mut self,
        user_id: Uuid,
        count: i64,
    ) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(q::DELETE_OLDEST_NOTIFICATIONS)
            .bind(user_id)
            .bind(count)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn delete_notifications_before(
        &mut self,
        user_id: Uuid,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(q::DELETE_NOTIFICATIONS_BEFORE)
            .bind(user_id)
            .bind(cutoff)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn set_notification_read(
        &mut self,
        user_id: Uuid,
        id: i64,
        is_read: bool,
    ) -> StoreResult<Option<Notification>> {
        sqlx::query_as(q::SET_NOTIFICATION_READ)
            .bind(id)
            .bind(user_id)
            .bind(is_read)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn mark_all_read(&mut self, user_id: Uuid) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(q::MARK_ALL_READ)
            .bind(user_id)
            .bind(true)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn delete_notifications(&mut self, user_id: Uuid, ids: &[i64]) -> StoreResult<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = q::with_list(q::DELETE_NOTIFICATIONS, 2, ids.len());
        let mut query = sqlx::query_scalar(&sql).bind(user_id);
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(&mut *self.tx).await.map_err(B::store_error)
    }

    async fn insert_session(&mut self, session: NewSession<'_>) -> StoreResult<()> {
        sqlx::query(q::INSERT_SESSION)
            .bind(session.id)
            .bind(session.user_id)
            .bind(session.now)
            .bind(session.expires_at)
            .bind(session.user_agent)
            .bind(session.ip)
            .bind(session.token_jti)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn session_for_update(&mut self, id: Uuid) -> StoreResult<Option<Session>> {
        sqlx::query_as(Locked::<B>::SESSION_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn rotate_session(&mut self, id: Uuid, jti: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(q::ROTATE_SESSION)
            .bind(id)
            .bind(jti)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn end_session(
        &mut self,
        user_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        sqlx::query_scalar(q::END_SESSION)
            .bind(user_id)
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn end_sessions(
        &mut self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar(q::END_SESSIONS)
            .bind(user_id)
            .bind(except)
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn end_sessions_beyond(
        &mut self,
        user_id: Uuid,
        keep: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar(q::END_SESSIONS_BEYOND)
            .bind(user_id)
            .bind(keep)
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn append_events(
        &mut self,
        stream: StreamKey,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        if drafts.is_empty() {
            return Err(StoreError::Inconsistent(format!(
                "empty append to {stream}"
            )));
        }
        let notices = std::mem::take(&mut self.notices);
        let first = match B::insert_events(&mut *self.tx, stream, drafts, at, &notices).await {
            Ok(first) => first,
            Err(err) => {
                // The NOTIFYs may be queued in the database already (no such stream
                // fails after them): nothing of this transaction may commit.
                self.poisoned = Some(format!("appending to {stream} failed"));
                return Err(B::store_error(err));
            }
        };
        // Whoever read the seq under the lock built on it (the NOTIFY carried just now,
        // perhaps, already queued in the database): the append must have taken the seqs
        // after it, or the transaction never commits.
        if let Some(latest) = self.latest_seq(stream) {
            if first != latest + 1 {
                let why = format!("stream {stream} appended at {first} after seq {latest}");
                self.poisoned = Some(why.clone());
                return Err(StoreError::Inconsistent(why));
            }
        }
        self.hold(stream, first + drafts.len() as i64 - 1);
        Ok(first)
    }

    async fn insert_project(&mut self, project: NewProject<'_>) -> StoreResult<()> {
        sqlx::query(q::INSERT_PROJECT)
            .bind(project.id)
            .bind(project.name)
            .bind(project.description)
            .bind(project.created_by)
            .bind(project.now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn project(&mut self, id: Uuid, user_id: Uuid) -> StoreResult<Option<Project>> {
        sqlx::query_as(q::PROJECT_FOR_MEMBER)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn lock_project(&mut self, id: Uuid) -> StoreResult<Option<i64>> {
        let seq: Option<i64> = sqlx::query_scalar(Locked::<B>::PROJECT_SEQ)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        if let Some(seq) = seq {
            self.hold(StreamKey::Project(id), seq);
        }
        Ok(seq)
    }

    async fn lock_membership(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<MembershipPosition>> {
        let position: Option<MembershipPosition> = sqlx::query_as(Locked::<B>::MEMBERSHIP_POSITION)
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        if let Some(position) = &position {
            self.hold(StreamKey::Project(project_id), position.last_seq);
        }
        Ok(position)
    }

    fn latest_seq(&self, stream: StreamKey) -> Option<i64> {
        self.latest
            .iter()
            .find(|(held, _)| *held == stream)
            .map(|(_, seq)| *seq)
    }

    async fn save_project(
        &mut self,
        id: Uuid,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(q::SAVE_PROJECT)
            .bind(id)
            .bind(name)
            .bind(description)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn delete_project(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        let members = self.member_ids(id).await?;
        for sql in [q::DELETE_PROJECT_TASKS, q::DELETE_MEMBERS] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *self.tx)
                .await
                .map_err(B::store_error)?;
        }
        sqlx::query(q::MARK_PROJECT_DELETED)
            .bind(id)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(members)
    }

    async fn membership_for_update(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<Membership>> {
        sqlx::query_as(Locked::<B>::MEMBERSHIP)
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn membership_count(&mut self, user_id: Uuid) -> StoreResult<i64> {
        sqlx::query_scalar(q::MEMBERSHIP_COUNT)
            .bind(user_id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn member_count(&mut self, project_id: Uuid) -> StoreResult<i64> {
        sqlx::query_scalar(q::MEMBER_COUNT)
            .bind(project_id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn owner_count(&mut self, project_id: Uuid) -> StoreResult<i64> {
        sqlx::query_scalar(q::OWNER_COUNT)
            .bind(project_id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn member_ids(&mut self, project_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar(q::MEMBER_IDS)
            .bind(project_id)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn insert_member(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: Role,
        joined_seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(q::INSERT_MEMBER)
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(joined_seq)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn set_member_role(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> StoreResult<()> {
        sqlx::query(q::SET_MEMBER_ROLE)
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn delete_member(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<()> {
        for sql in [q::DELETE_MEMBER, q::UNASSIGN_MEMBER] {
            sqlx::query(sql)
                .bind(project_id)
                .bind(user_id)
                .execute(&mut *self.tx)
                .await
                .map_err(B::store_error)?;
        }
        Ok(())
    }

    async fn upsert_invitation(&mut self, invitation: NewInvitation<'_>) -> StoreResult<Uuid> {
        sqlx::query_scalar(q::UPSERT_INVITATION)
            .bind(invitation.id)
            .bind(invitation.project_id)
            .bind(invitation.email)
            .bind(invitation.role.as_str())
            .bind(invitation.invited_by)
            .bind(invitation.now)
            .bind(invitation.expires_at)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn invitation_count(&mut self, project_id: Uuid, now: DateTime<Utc>) -> StoreResult<i64> {
        sqlx::query_scalar(q::INVITATION_COUNT)
            .bind(project_id)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn invitation(&mut self, id: Uuid) -> StoreResult<Option<Invitation>> {
        sqlx::query_as(q::INVITATION_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn delete_invitation(&mut self, id: Uuid) -> StoreResult<()> {
        sqlx::query(q::DELETE_INVITATION)
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map_err(B::store_error)?;
        Ok(())
    }

    async fn user_id_by_email(&mut self, email: &str) -> StoreResult<Option<Uuid>> {
        sqlx::query_scalar(q::USER_ID_BY_EMAIL)
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn user_name(&mut self, user_id: Uuid) -> StoreResult<Option<String>> {
        sqlx::query_scalar(q::USER_NAME)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(B::store_error)
    }

    async fn notify(&mut self, channel: &str, payload: &str) -> StoreResult<()> {
        if !B::NOTIFIES {
            return Err(B::store_error(notify_refused()));
        }
        self.notices.push(channel, payload);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        if let Some(why) = self.poisoned.take() {
            return Err(StoreError::Inconsistent(why));
        }
        if !self.notices.is_empty() {
            B::notify_in_tx(&mut *self.tx, &self.notices)
                .await
                .map_err(B::store_error)?;
        }
        self.tx.commit().await.map_err(B::store_error)
    }
}

/// The queries of a kind of stream.
fn stream_queries(stream: StreamKey) -> &'static q::StreamQueries {
    match stream {
        StreamKey::User(_) => &q::USER_STREAM,
        StreamKey::Project(_) => &q::PROJECT_STREAM,
    }
}

/// The parameters of the task filter (`$1`–`$20`, see `queries::TASK_FILTER`); `$1` is
/// the scope's id (the caller, or the project).
struct TaskFilterArgs<'a> {
    user_id: Uuid,
    deleted: Option<bool>,
    completed: Option<bool>,
    priority: Option<&'static str>,
    created_from: Option<DateTime<Utc>>,
    created_to: Option<DateTime<Utc>>,
    text: Option<&'a str>,
    include: Option<&'a str>,
    exclude: Option<&'a str>,
    tags: [Option<&'a str>; TAG_FILTER_SLOTS],
    tag_count: i64,
}

impl<'a> TaskFilterArgs<'a> {
    fn new(user_id: Uuid, filter: &'a TaskFilter) -> Self {
        let (deleted, completed) = filter.flags();
        let search = filter.search.as_ref();
        let keys = filter.tags.keys();
        let mut tags = [None; TAG_FILTER_SLOTS];
        for (slot, key) in tags.iter_mut().zip(keys) {
            *slot = Some(key.as_str());
        }
        Self {
            user_id,
            deleted,
            completed,
            priority: filter.priority.map(|p| p.as_str()),
            created_from: filter.created_from,
            created_to: filter.created_to,
            text: search.map(|s| s.text()),
            include: search.and_then(|s| s.fts5_include()),
            exclude: search.and_then(|s| s.fts5_exclude()),
            tags,
            // `TagFilter` holds at most TAG_FILTER_SLOTS keys.
            tag_count: keys.len().min(TAG_FILTER_SLOTS) as i64,
        }
    }
}

/// Adds a task's rows to `task_tags` (it has none yet).
async fn insert_task_tags<B: Backend>(tx: &mut Tx<B>, task_id: i64, tags: &Tags) -> StoreResult<()>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    String: Column<B>,
    i64: Column<B>,
{
    if tags.is_empty() {
        return Ok(());
    }
    let sql = q::insert_task_tags(tags.as_slice().len());
    let mut query = sqlx::query(&sql).bind(task_id);
    for (key, tag) in tags.keyed() {
        query = query.bind(key).bind(tag.to_string());
    }
    query.execute(&mut **tx).await.map_err(B::store_error)?;
    Ok(())
}

/// A claimed delivery as the claim returns it.
#[derive(Debug, sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    user_id: Option<Uuid>,
    subscription_id: Option<Uuid>,
    job: String,
    attempts: i64,
}

/// At most `max` bytes of `text`, cut at a character boundary (the column is bounded).
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
