//! `/tasks`: list, create, read, replace, patch, complete, delete, restore.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::doc::DateOrTime;
use super::extract::{nullable, parse_object, AuthUser, Json, Path, QueryPairs};
use super::TOTAL_COUNT;
use crate::domain::{
    parse_time, plain_text, DayEdge, NewTask, Priority, TagFilter, Tags, Task, TaskChanges,
    TaskDescription, TaskFilter, TaskScope, TaskSort, TaskStatus, TaskTitle, TextSearch,
    Violations,
};
use crate::error::{Error, ErrorEnvelope, Result};
use crate::service::{tasks, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(get_task, replace_task, patch_task, delete_task))
        .routes(routes!(complete_task))
        .routes(routes!(restore_task))
}

/// Body of `POST /tasks` and `PUT /tasks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskInput {
    /// 1–200 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    title: Option<String>,
    /// At most 1000 characters.
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    description: Option<String>,
    /// `LOW`, `MEDIUM` (default) or `HIGH`.
    #[schema(value_type = Option<Priority>)]
    priority: Option<String>,
    /// A date (`YYYY-MM-DD`) or an RFC 3339 date-time.
    #[schema(schema_with = super::doc::date_or_time_or_null)]
    due_date: Option<String>,
    /// Only for `PUT`; defaults to false.
    completed: Option<bool>,
    /// Creates the task in this project (the caller must be an editor or owner); absent
    /// for a personal task. A task never changes project: on `PUT` it must be absent or
    /// the task's own.
    #[schema(value_type = Option<String>, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    project_id: Option<String>,
    /// A member of the project to assign the task to (project tasks only).
    #[schema(value_type = Option<String>, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    assignee_id: Option<String>,
    /// Up to 10 tags, each 1–32 characters, one line, no comma; repeats (regardless of
    /// case) are dropped, the first spelling kept. `POST` without it: none; `PUT` without
    /// it keeps the task's tags (`[]` removes them).
    #[schema(schema_with = super::doc::tag_list_or_null)]
    tags: Option<Vec<String>>,
}

impl TaskInput {
    fn parse(self) -> Result<NewTask> {
        let mut v = Violations::new();
        let title = match self.title.as_deref() {
            Some(raw) => v.check("title", TaskTitle::parse(raw)),
            None => {
                v.add("title", "title is required");
                None
            }
        };
        let description = v.check(
            "description",
            parse_description(self.description.as_deref()),
        );
        let priority = v.check("priority", parse_priority(self.priority.as_deref()));
        let due_date = v.check("due_date", parse_due_date(self.due_date.as_deref()));
        let project_id = v.check("project_id", super::parse_id(self.project_id.as_deref()));
        let assignee_id = v.check("assignee_id", super::parse_id(self.assignee_id.as_deref()));
        let tags = v.check("tags", self.tags.as_deref().map(Tags::parse).transpose());
        v.finish(|| {
            Some(NewTask {
                title: title?,
                description: description?,
                priority: priority?,
                due_date: due_date?,
                completed: self.completed.unwrap_or(false),
                project_id: project_id?,
                assignee_id: assignee_id?,
                tags: tags?,
            })
        })
    }
}

fn parse_description(raw: Option<&str>) -> Result<Option<TaskDescription>, String> {
    raw.map_or(Ok(None), TaskDescription::parse)
}

fn parse_priority(raw: Option<&str>) -> Result<Priority, String> {
    raw.map_or(Ok(Priority::default()), Priority::parse)
}

fn parse_due_date(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| parse_time(s, DayEdge::Start))
        .transpose()
}

/// Body of `PATCH /tasks/{id}`: absent fields stay unchanged; `null` clears
/// `description` and `due_date` and is refused for the others.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskPatch {
    /// 1–200 characters after trimming.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    title: Option<Option<String>>,
    /// At most 1000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    completed: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Priority, required = false)]
    priority: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::doc::date_or_time_or_null)]
    due_date: Option<Option<String>>,
    /// A member of the task's project; `null` unassigns.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    assignee_id: Option<Option<String>>,
    /// A task never changes project: if present, it must be the task's own.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    project_id: Option<Option<String>>,
    /// Replaces the task's tags (`[]` removes them); as in `TaskInput`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::doc::tag_list)]
    tags: Option<Option<Vec<String>>>,
}

impl TaskPatch {
    fn parse(self) -> Result<TaskChanges> {
        let mut v = Violations::new();
        let not_null = |v: &mut Violations, field: &str| {
            v.add(field, format!("{field} cannot be null"));
        };
        let mut changes = TaskChanges::default();
        match self.title {
            Some(Some(raw)) => changes.title = v.check("title", TaskTitle::parse(&raw)),
            Some(None) => not_null(&mut v, "title"),
            None => {}
        }
        if let Some(raw) = self.description {
            changes.description = v.check("description", parse_description(raw.as_deref()));
        }
        match self.completed {
            Some(Some(completed)) => changes.completed = Some(completed),
            Some(None) => not_null(&mut v, "completed"),
            None => {}
        }
        match self.priority {
            Some(Some(raw)) => changes.priority = v.check("priority", Priority::parse(&raw)),
            Some(None) => not_null(&mut v, "priority"),
            None => {}
        }
        if let Some(raw) = self.due_date {
            changes.due_date = v.check("due_date", parse_due_date(raw.as_deref()));
        }
        if let Some(raw) = self.assignee_id {
            changes.assignee_id = v.check("assignee_id", super::parse_id(raw.as_deref()));
        }
        if let Some(raw) = self.project_id {
            changes.project_id = v.check("project_id", super::parse_id(raw.as_deref()));
        }
        match self.tags {
            Some(Some(raw)) => changes.tags = v.check("tags", Tags::parse(&raw)),
            Some(None) => not_null(&mut v, "tags"),
            None => {}
        }
        v.finish(|| Some(changes))
    }
}

/// The `status` filter of `GET /tasks` (for the document).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TaskStatusParam {
    All,
    Pending,
    Completed,
    Deleted,
}

/// The `sort` of `GET /tasks` (for the document).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TaskSortParam {
    Newest,
    Relevance,
}

/// Longest `q` taken.
const MAX_SEARCH_CHARS: usize = 1000;

/// Body of `PATCH /tasks/{id}/complete`; with no body the state is toggled.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompleteInput {
    completed: Option<bool>,
}

fn parse_task_filter(q: &QueryPairs) -> Result<TaskFilter> {
    let mut v = Violations::new();
    let status = q.single_or_record("status", &mut v);
    let include_deleted = q.single_or_record("include_deleted", &mut v);
    let date_from = q.single_or_record("date_from", &mut v);
    let date_to = q.single_or_record("date_to", &mut v);
    let priority = q.single_or_record("priority", &mut v);
    let search = q.single_or_record("q", &mut v);
    let sort = q.single_or_record("sort", &mut v);
    let limit = q.single_or_record("limit", &mut v);
    let offset = q.single_or_record("offset", &mut v);
    let project_id = q.single_or_record("project_id", &mut v);
    let assignee_id = q.single_or_record("assignee_id", &mut v);

    let status = v.check(
        "status",
        match status {
            None | Some("all") => Ok(TaskStatus::All),
            Some("pending") => Ok(TaskStatus::Pending),
            Some("completed") => Ok(TaskStatus::Completed),
            Some("deleted") => Ok(TaskStatus::Deleted),
            Some(_) => Err("status must be one of all, pending, completed, deleted".to_string()),
        },
    );
    let include_deleted = v.check("include_deleted", super::parse_bool(include_deleted));
    let created_from = v.check(
        "date_from",
        date_from.map(|s| parse_time(s, DayEdge::Start)).transpose(),
    );
    let created_to = v.check(
        "date_to",
        date_to.map(|s| parse_time(s, DayEdge::End)).transpose(),
    );
    if let (Some(Some(from)), Some(Some(to))) = (created_from, created_to) {
        if from > to {
            v.add("date_from", "date_from must not be after date_to");
        }
    }
    let priority = v.check("priority", priority.map(Priority::parse).transpose());
    let search = v.check(
        "q",
        match search {
            Some(q) if q.chars().count() > MAX_SEARCH_CHARS => {
                Err(format!("q must be at most {MAX_SEARCH_CHARS} characters"))
            }
            other => other
                .filter(|q| !q.is_empty())
                .map(|q| plain_text(q).map(TextSearch::parse))
                .transpose(),
        },
    );
    let tags = v.check("tag", TagFilter::parse(q.all("tag")));
    let sort = v.check(
        "sort",
        match sort {
            None | Some("newest") => Ok(TaskSort::Newest),
            Some("relevance") => Ok(TaskSort::Relevance),
            Some(_) => Err("sort must be newest or relevance".to_string()),
        },
    );
    let limit = v.check("limit", super::parse_int(limit, 100, 1, 500));
    let offset = v.check("offset", super::parse_int(offset, 0, 0, i64::MAX));
    let project_id = v.check("project_id", super::parse_id(project_id));
    let assignee_id = v.check("assignee_id", super::parse_id(assignee_id));
    v.finish(|| {
        let (project_id, assignee_id) = (project_id?, assignee_id?);
        let scope = match (project_id, assignee_id) {
            (Some(project_id), _) => TaskScope::Project(project_id),
            (None, Some(_)) => TaskScope::MyProjects,
            (None, None) => TaskScope::Personal,
        };
        Some(TaskFilter {
            scope,
            assignee_id,
            status: status?,
            include_deleted: include_deleted?,
            created_from: created_from?,
            created_to: created_to?,
            priority: priority?,
            search: search?,
            tags: tags?,
            sort: sort?,
            limit: limit?,
            offset: offset?,
        })
    })
}

/// List the caller's personal tasks, or a project's, newest first (or by relevance to `q`).
#[utoipa::path(get, path = "/tasks", tag = "tasks",
    params(
        ("status" = inline(Option<TaskStatusParam>), Query, description = "all (default), pending, completed or deleted"),
        ("include_deleted" = Option<bool>, Query, description = "Include soft-deleted tasks"),
        ("date_from" = inline(Option<DateOrTime>), Query, description = "created_at lower bound, inclusive (date or RFC 3339); not after `date_to`"),
        ("date_to" = inline(Option<DateOrTime>), Query, description = "created_at upper bound, inclusive (a plain date means the whole day)"),
        ("priority" = Option<Priority>, Query, description = "LOW, MEDIUM or HIGH"),
        ("q" = Option<String>, Query, max_length = 1000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$", description = "Full-text search in title and description, as web search engines read it: words (all must match, stemmed: `running` finds `run`), `\"a phrase\"`, `-word` or `-\"a phrase\"` to exclude, `or` between alternatives; nothing else is an operator"),
        ("tag" = inline(Option<Vec<super::doc::TagText>>), Query, max_items = 10, explode, style = Form, description = "Tasks having this tag (regardless of case); repeated (`tag=a&tag=b`, at most 10 times), tasks having all of them"),
        ("sort" = inline(Option<TaskSortParam>), Query, description = "`newest` (default): newest first; `relevance`: best match of `q` first (ts_rank or bm25), then newest first; without `q`, newest first"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1–500, default 100"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Default 0"),
        ("project_id" = Option<String>, Query, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "A project's tasks (the caller's project); without it, the caller's personal tasks"),
        ("assignee_id" = Option<String>, Query, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Only tasks assigned to this member; without `project_id`, across every project of the caller"),
    ),
    responses(
        (status = 200, description = "The tasks", body = [Task],
            headers(("X-Total-Count" = i64, description = "Tasks matching the filters"))),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "`project_id` names no project of the caller", body = ErrorEnvelope),
        (status = 422, description = "Invalid query", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_tasks(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    query: QueryPairs,
) -> Result<impl IntoResponse> {
    let filter = parse_task_filter(&query)?;
    let (tasks, total) = tasks::list(&svc, auth.user_id, &filter).await?;
    let mut headers = HeaderMap::new();
    headers.insert(TOTAL_COUNT, HeaderValue::from(total));
    Ok((headers, Json(tasks)))
}

/// Create a task.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = TaskInput,
    responses(
        (status = 201, description = "Created", body = Task),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "A viewer of the project (`FORBIDDEN`)", body = ErrorEnvelope),
        (status = 404, description = "`project_id` names no project of the caller", body = ErrorEnvelope),
        (status = 409, description = "The account holds MAX_TASKS_PER_USER tasks (a project MAX_TASKS_PER_PROJECT), the trash included (`QUOTA_EXCEEDED`); or `assignee_id` is not a member of the project, or given for a personal task (`CONFLICT`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn create_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Json(input): Json<TaskInput>,
) -> Result<(StatusCode, Json<Task>)> {
    let input = input.parse()?;
    let task = tasks::create(&svc, auth.user_id, &input).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// Read one task (also when it is in the trash).
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task", body = ErrorEnvelope),
        (status = 404, description = "No such task", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn get_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<Task>> {
    Ok(Json(tasks::get(&svc, auth.user_id, id).await?))
}

/// Replace a task: `title` is required, other fields take their defaults when absent.
#[utoipa::path(put, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path, minimum = 1)),
    request_body = TaskInput,
    responses(
        (status = 200, description = "Updated", body = Task),
        (status = 400, description = "The task is in the trash", body = ErrorEnvelope),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task, or a viewer of its project", body = ErrorEnvelope),
        (status = 404, description = "No such task (or one of a project the caller is not in)", body = ErrorEnvelope),
        (status = 409, description = "`project_id` is not the task's own, or `assignee_id` not a member of its project (`CONFLICT`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn replace_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
    Json(input): Json<TaskInput>,
) -> Result<Json<Task>> {
    let changes = TaskChanges::replace_with(input.parse()?);
    Ok(Json(tasks::update(&svc, auth.user_id, id, &changes).await?))
}

/// Change some fields of a task.
#[utoipa::path(patch, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path, minimum = 1)),
    request_body = TaskPatch,
    responses(
        (status = 200, description = "Updated", body = Task),
        (status = 400, description = "The task is in the trash", body = ErrorEnvelope),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task, or a viewer of its project", body = ErrorEnvelope),
        (status = 404, description = "No such task (or one of a project the caller is not in)", body = ErrorEnvelope),
        (status = 409, description = "`project_id` is not the task's own, or `assignee_id` not a member of its project (`CONFLICT`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn patch_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
    Json(patch): Json<TaskPatch>,
) -> Result<Json<Task>> {
    let changes = patch.parse()?;
    Ok(Json(tasks::update(&svc, auth.user_id, id, &changes).await?))
}

/// Set `completed`, or toggle it when the body is empty.
#[utoipa::path(patch, path = "/tasks/{id}/complete", tag = "tasks", params(("id" = i64, Path, minimum = 1)),
    request_body(content = Option<CompleteInput>, description = "Optional; no body toggles"),
    responses(
        (status = 200, description = "Updated", body = Task),
        (status = 400, description = "The task is in the trash", body = ErrorEnvelope),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task", body = ErrorEnvelope),
        (status = 404, description = "No such task", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn complete_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Task>> {
    // Only a body with no bytes at all is "no body"; white space alone is not JSON.
    let input: CompleteInput = if body.is_empty() {
        CompleteInput::default()
    } else {
        let value =
            serde_json::from_slice(&body).map_err(|e| Error::invalid("body", e.to_string()))?;
        parse_object(value)?
    };
    Ok(Json(
        tasks::complete(&svc, auth.user_id, id, input.completed).await?,
    ))
}

/// Move a task to the trash, or remove it for good with `permanent=true`.
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path, minimum = 1), ("permanent" = Option<bool>, Query, description = "Remove the row instead of soft-deleting")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task", body = ErrorEnvelope),
        (status = 404, description = "No such task", body = ErrorEnvelope),
        (status = 422, description = "Invalid query", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn delete_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
    query: QueryPairs,
) -> Result<StatusCode> {
    let permanent = query
        .single("permanent")
        .map_err(|e| Error::validation(vec![e]))
        .and_then(|raw| super::parse_bool(raw).map_err(|m| Error::invalid("permanent", m)))?;
    tasks::delete(&svc, auth.user_id, id, permanent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a task out of the trash.
#[utoipa::path(post, path = "/tasks/{id}/restore", tag = "tasks", params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Restored", body = Task),
        (status = 400, description = "The task is not deleted", body = ErrorEnvelope),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Another user's task", body = ErrorEnvelope),
        (status = 404, description = "No such task", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn restore_task(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<Task>> {
    Ok(Json(tasks::restore(&svc, auth.user_id, id).await?))
}
