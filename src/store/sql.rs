//! The SQL of the store, written once for both backends.
//!
//! `sql_store!` expands to the transaction type and the `Store`/`StoreTx` implementations
//! for one sqlx database type. Both PostgreSQL and SQLite take `$N` placeholders (reused
//! ones included) and `RETURNING`; the one difference, row locking, is a parameter.
//! Each backend module supplies `reader()` (the pool for reads) and `begin_write()`, and
//! on its transaction type `insert_events()` and `notify_in_tx()`.

macro_rules! task_columns {
    () => {
        "id, user_id, title, description, completed, priority, due_date, is_deleted, \
         deleted_at, created_at, updated_at"
    };
}

macro_rules! notification_columns {
    () => {
        "id, user_id, kind, title, message, is_read, task_id, created_at"
    };
}

macro_rules! user_columns {
    () => {
        "id, name, email, password_hash, first_name, last_name, phone, date_of_birth, gender, \
         address, city, country, bio, profile_photo, is_email_verified, created_at, updated_at"
    };
}

/// The filter of `GET /tasks`; `$1` is the user, `$2`–`$7` the optional constraints.
macro_rules! task_filter {
    () => {
        " FROM tasks WHERE user_id = $1 \
         AND ($2 IS NULL OR is_deleted = $2) \
         AND ($3 IS NULL OR completed = $3) \
         AND ($4 IS NULL OR priority = $4) \
         AND ($5 IS NULL OR created_at >= $5) \
         AND ($6 IS NULL OR created_at <= $6) \
         AND ($7 IS NULL OR lower(title) LIKE $7 ESCAPE '\\' \
              OR lower(coalesce(description, '')) LIKE $7 ESCAPE '\\')"
    };
}

/// A page of `GET /notifications` with its counts, newest or oldest first (`$order` is `DESC`
/// or `ASC`). The counts ride with the page, as with tasks: the window counts see every row
/// the filter keeps (a superset of the unread ones) before LIMIT.
macro_rules! notification_page {
    ($order:literal) => {
        concat!(
            "SELECT ",
            notification_columns!(),
            ", count(*) OVER () AS total, \
             count(*) FILTER (WHERE NOT is_read) OVER () AS unread \
             FROM notifications WHERE user_id = $1 AND (NOT $2 OR NOT is_read) \
             ORDER BY created_at ",
            $order,
            ", id ",
            $order,
            " LIMIT $3 OFFSET $4"
        )
    };
}

macro_rules! sql_store {
    (db: $db:ty, store: $store:ty, tx: $tx:ident, backend: $backend:literal, lock: $lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use uuid::Uuid;

        use crate::domain::{
            Email, Event, EventDraft, NewTask, Notification, NotificationDraft, Profile, Task,
            TaskFilter, UserWithPassword,
        };
        use crate::store::{
            EventBounds, EventRow, NewUser, TaskWithTotal, NotificationFilter, NotificationPage, NotificationWithCounts, ProfileRow,
            Store, StoreResult, StoreTx, TokenState,
        };

        pub struct $tx {
            tx: sqlx::Transaction<'static, $db>,
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn pool_connections(&self) -> (u32, u32) {
                self.pool_stats()
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await.map(|_| ())
            }

            async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
                Ok(Box::new($tx {
                    tx: self.begin_write().await?,
                }))
            }

            async fn user_for_sign_in(
                &self,
                email: &Email,
            ) -> StoreResult<Option<UserWithPassword>> {
                let row: Option<ProfileRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE email = $1"
                ))
                .bind(email.as_str())
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|row| {
                    let (profile, password_hash) = row.into_parts();
                    UserWithPassword {
                        user: profile.user(),
                        password_hash,
                    }
                }))
            }

            async fn profile(&self, user_id: Uuid) -> StoreResult<Option<Profile>> {
                let row: Option<ProfileRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                .bind(user_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(ProfileRow::into_profile))
            }

            async fn token_state(&self, user_id: Uuid, jti: Uuid) -> StoreResult<TokenState> {
                let (user_exists, revoked): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), \
                            EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2)",
                )
                .bind(user_id)
                .bind(jti)
                .fetch_one(self.reader())
                .await?;
                Ok(match (user_exists, revoked) {
                    (false, _) => TokenState::UserGone,
                    (true, true) => TokenState::Revoked,
                    (true, false) => TokenState::Usable,
                })
            }

            async fn task(&self, id: i64) -> StoreResult<Option<Task>> {
                sqlx::query_as(concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await
            }

            async fn tasks(
                &self,
                user_id: Uuid,
                filter: &TaskFilter,
            ) -> StoreResult<(Vec<Task>, i64)> {
                let (deleted, completed) = filter.flags();
                let priority = filter.priority.map(|p| p.as_str());
                let pattern = filter.search_pattern();
                // The total rides with the page (a window count is computed before LIMIT):
                // one round trip instead of two. Only a page past the end needs a count.
                let rows: Vec<TaskWithTotal> = sqlx::query_as(concat!(
                    "SELECT ",
                    task_columns!(),
                    ", count(*) OVER () AS total",
                    task_filter!(),
                    " ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
                ))
                .bind(user_id)
                .bind(deleted)
                .bind(completed)
                .bind(priority)
                .bind(filter.created_from)
                .bind(filter.created_to)
                .bind(pattern.as_deref())
                .bind(filter.limit)
                .bind(filter.offset)
                .fetch_all(self.reader())
                .await?;
                let total = match rows.first() {
                    Some(row) => row.total,
                    None if filter.offset == 0 => 0,
                    None => {
                        sqlx::query_scalar(concat!("SELECT count(*)", task_filter!()))
                            .bind(user_id)
                            .bind(deleted)
                            .bind(completed)
                            .bind(priority)
                            .bind(filter.created_from)
                            .bind(filter.created_to)
                            .bind(pattern.as_deref())
                            .fetch_one(self.reader())
                            .await?
                    }
                };
                Ok((rows.into_iter().map(|row| row.task).collect(), total))
            }

            async fn notification(
                &self,
                user_id: Uuid,
                id: i64,
            ) -> StoreResult<Option<Notification>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    notification_columns!(),
                    " FROM notifications WHERE id = $1 AND user_id = $2"
                ))
                .bind(id)
                .bind(user_id)
                .fetch_optional(self.reader())
                .await
            }

            async fn notifications(
                &self,
                user_id: Uuid,
                filter: &NotificationFilter,
            ) -> StoreResult<NotificationPage> {
                let sql = if filter.newest_first {
                    notification_page!("DESC")
                } else {
                    notification_page!("ASC")
                };
                let rows: Vec<NotificationWithCounts> = sqlx::query_as(sql)
                    .bind(user_id)
                    .bind(filter.unread_only)
                    .bind(filter.limit)
                    .bind(filter.offset)
                    .fetch_all(self.reader())
                    .await?;
                let (total, unread) = match rows.first() {
                    Some(row) => (row.total, row.unread),
                    // Nothing matches the filter, so nothing is unread either.
                    None if filter.offset == 0 => (0, 0),
                    None => {
                        sqlx::query_as(
                            "SELECT count(*) FILTER (WHERE NOT $2 OR NOT is_read), \
                                    count(*) FILTER (WHERE NOT is_read) \
                             FROM notifications WHERE user_id = $1",
                        )
                        .bind(user_id)
                        .bind(filter.unread_only)
                        .fetch_one(self.reader())
                        .await?
                    }
                };
                Ok(NotificationPage {
                    items: rows.into_iter().map(|row| row.notification).collect(),
                    total,
                    unread,
                })
            }

            async fn unread_count(&self, user_id: Uuid) -> StoreResult<i64> {
                sqlx::query_scalar(
                    "SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT is_read",
                )
                .bind(user_id)
                .fetch_one(self.reader())
                .await
            }

            async fn events_after(
                &self,
                user_id: Uuid,
                since: i64,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let rows: Vec<EventRow> = sqlx::query_as(
                    "SELECT seq, kind, at, data FROM events WHERE user_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(user_id)
                .bind(since)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(EventRow::into_event).collect()
            }

            async fn event_bounds(&self, user_id: Uuid) -> StoreResult<Option<EventBounds>> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT u.last_event_seq, (SELECT min(e.seq) FROM events e WHERE e.user_id = u.id) \
                     FROM users u WHERE u.id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|(last_seq, first_retained)| EventBounds {
                    last_seq,
                    first_retained,
                }))
            }

            async fn latest_seqs(&self, user_ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64)>> {
                if user_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query =
                    sqlx::QueryBuilder::<$db>::new("SELECT id, last_event_seq FROM users WHERE id IN (");
                let mut list = query.separated(", ");
                for id in user_ids {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as().fetch_all(self.reader()).await
            }

            async fn prune_events(
                &self,
                older_than: DateTime<Utc>,
                keep_last: i64,
                batch: i64,
            ) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "DELETE FROM events WHERE (user_id, seq) IN ( \
                         SELECT e.user_id, e.seq FROM events e JOIN users u ON u.id = e.user_id \
                         WHERE e.at < $1 AND e.seq <= u.last_event_seq - $2 LIMIT $3)",
                )
                .bind(older_than)
                .bind(keep_last)
                .bind(batch)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn prune_revoked_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl StoreTx for $tx {
            async fn email_taken(&mut self, email: &Email) -> StoreResult<bool> {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)")
                    .bind(email.as_str())
                    .fetch_one(&mut *self.tx)
                    .await
            }

            async fn name_taken(&mut self, name: &str, except: Option<Uuid>) -> StoreResult<bool> {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE name_key = $1 \
                     AND ($2 IS NULL OR id <> $2))",
                )
                .bind(crate::domain::UserName::key_of(name))
                .bind(except)
                .fetch_one(&mut *self.tx)
                .await
            }

            async fn insert_user(&mut self, user: NewUser<'_>) -> StoreResult<Profile> {
                let row: ProfileRow = sqlx::query_as(concat!(
                    "INSERT INTO users (id, name, name_key, email, password_hash, created_at, \
                     updated_at) VALUES ($1, $2, $6, $3, $4, $5, $5) RETURNING ",
                    user_columns!()
                ))
                .bind(user.id)
                .bind(user.name)
                .bind(user.email.as_str())
                .bind(user.password_hash)
                .bind(user.now)
                .bind(crate::domain::UserName::key_of(user.name))
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(row.into_profile())
            }

            async fn set_password_hash(&mut self, user_id: Uuid, hash: &str) -> StoreResult<()> {
                sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *self.tx)
                    .await
                    .map(|_| ())
            }

            async fn profile_for_update(&mut self, user_id: Uuid) -> StoreResult<Option<Profile>> {
                let row: Option<ProfileRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1",
                    $lock
                ))
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.map(ProfileRow::into_profile))
            }

            async fn save_profile(&mut self, profile: &Profile) -> StoreResult<Profile> {
                let row: ProfileRow = sqlx::query_as(concat!(
                    "UPDATE users SET name = $2, first_name = $3, last_name = $4, phone = $5, \
                     date_of_birth = $6, gender = $7, address = $8, city = $9, country = $10, \
                     bio = $11, updated_at = $12, name_key = $13 WHERE id = $1 RETURNING ",
                    user_columns!()
                ))
                .bind(profile.id)
                .bind(&profile.name)
                .bind(&profile.first_name)
                .bind(&profile.last_name)
                .bind(&profile.phone)
                .bind(profile.date_of_birth)
                .bind(&profile.gender)
                .bind(&profile.address)
                .bind(&profile.city)
                .bind(&profile.country)
                .bind(&profile.bio)
                .bind(profile.updated_at)
                .bind(crate::domain::UserName::key_of(&profile.name))
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(row.into_profile())
            }

            async fn profile_photo(&mut self, user_id: Uuid) -> StoreResult<Option<String>> {
                let photo: Option<Option<String>> = sqlx::query_scalar(concat!(
                    "SELECT profile_photo FROM users WHERE id = $1",
                    $lock
                ))
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(photo.flatten())
            }

            async fn set_profile_photo(
                &mut self,
                user_id: Uuid,
                file: Option<&str>,
                now: DateTime<Utc>,
            ) -> StoreResult<Profile> {
                let row: ProfileRow = sqlx::query_as(concat!(
                    "UPDATE users SET profile_photo = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    user_columns!()
                ))
                .bind(user_id)
                .bind(file)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(row.into_profile())
            }

            async fn insert_task(
                &mut self,
                user_id: Uuid,
                task: &NewTask,
                now: DateTime<Utc>,
            ) -> StoreResult<Task> {
                sqlx::query_as(concat!(
                    "INSERT INTO tasks (user_id, title, description, completed, priority, \
                     due_date, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
                    task_columns!()
                ))
                .bind(user_id)
                .bind(task.title.as_str())
                .bind(task.description.as_ref().map(|d| d.as_str()))
                .bind(task.completed)
                .bind(task.priority.as_str())
                .bind(task.due_date)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await
            }

            async fn task_for_update(&mut self, id: i64) -> StoreResult<Option<Task>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await
            }

            async fn save_task(&mut self, task: &Task) -> StoreResult<Task> {
                sqlx::query_as(concat!(
                    "UPDATE tasks SET title = $2, description = $3, completed = $4, \
                     priority = $5, due_date = $6, is_deleted = $7, deleted_at = $8, \
                     updated_at = $9 WHERE id = $1 RETURNING ",
                    task_columns!()
                ))
                .bind(task.id)
                .bind(&task.title)
                .bind(&task.description)
                .bind(task.completed)
                .bind(task.priority.as_str())
                .bind(task.due_date)
                .bind(task.is_deleted)
                .bind(task.deleted_at)
                .bind(task.updated_at)
                .fetch_one(&mut *self.tx)
                .await
            }

            async fn delete_task(&mut self, id: i64) -> StoreResult<()> {
                sqlx::query("DELETE FROM tasks WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await
                    .map(|_| ())
            }

            async fn insert_notification(
                &mut self,
                draft: &NotificationDraft,
                now: DateTime<Utc>,
            ) -> StoreResult<Notification> {
                sqlx::query_as(concat!(
                    "INSERT INTO notifications (user_id, kind, title, message, task_id, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
                    notification_columns!()
                ))
                .bind(draft.user_id)
                .bind(draft.kind.as_str())
                .bind(&draft.title)
                .bind(&draft.message)
                .bind(draft.task_id)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await
            }

            async fn set_notification_read(
                &mut self,
                user_id: Uuid,
                id: i64,
                is_read: bool,
            ) -> StoreResult<Option<Notification>> {
                sqlx::query_as(concat!(
                    "UPDATE notifications SET is_read = $3 WHERE id = $1 AND user_id = $2 \
                     RETURNING ",
                    notification_columns!()
                ))
                .bind(id)
                .bind(user_id)
                .bind(is_read)
                .fetch_optional(&mut *self.tx)
                .await
            }

            async fn mark_all_read(&mut self, user_id: Uuid) -> StoreResult<Vec<i64>> {
                sqlx::query_scalar(
                    "UPDATE notifications SET is_read = $2 \
                     WHERE user_id = $1 AND NOT is_read RETURNING id",
                )
                .bind(user_id)
                .bind(true)
                .fetch_all(&mut *self.tx)
                .await
            }

            async fn delete_notifications(
                &mut self,
                user_id: Uuid,
                ids: &[i64],
            ) -> StoreResult<Vec<i64>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query =
                    sqlx::QueryBuilder::<$db>::new("DELETE FROM notifications WHERE user_id = ");
                query.push_bind(user_id).push(" AND id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(") RETURNING id");
                query
                    .build_query_scalar::<i64>()
                    .fetch_all(&mut *self.tx)
                    .await
            }

            async fn revoke_token(
                &mut self,
                jti: Uuid,
                user_id: Uuid,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(user_id)
                .bind(expires_at)
                .execute(&mut *self.tx)
                .await
                .map(|_| ())
            }

            async fn append_events(
                &mut self,
                user_id: Uuid,
                drafts: &[EventDraft],
                at: DateTime<Utc>,
            ) -> StoreResult<Vec<Event>> {
                if drafts.is_empty() {
                    return Ok(Vec::new());
                }
                let first = self.insert_events(user_id, drafts, at).await?;
                Ok(drafts
                    .iter()
                    .enumerate()
                    .map(|(i, draft)| Event::new(first + i as i64, draft.kind, at, draft.data.clone()))
                    .collect())
            }

            async fn notify(&mut self, channel: &str, payload: &str) -> StoreResult<()> {
                self.notify_in_tx(channel, payload).await
            }

            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.tx.commit().await
            }
        }
    };
}
