//! `/tags`: the caller's vocabulary of tags, with counts.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AuthUser, Json, QueryPairs};
use crate::domain::{TagCount, TagScope, Violations};
use crate::error::{ErrorEnvelope, Result};
use crate::service::{tasks, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(list_tags))
}

/// The tags of the caller's personal tasks (or, with `project_id`, of a project's) that
/// are not in the trash, each with how many of them carry it: most used first, then by
/// tag. Tags are counted regardless of case, shown as spelt on the oldest task carrying
/// them.
#[utoipa::path(get, path = "/tags", tag = "tasks",
    params(
        ("project_id" = Option<String>, Query, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "A project's vocabulary (the caller's project)"),
    ),
    responses(
        (status = 200, description = "The tags", body = [TagCount],
            example = json!([{"tag": "Urgent", "count": 3}, {"tag": "home", "count": 1}])),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "`project_id` names no project of the caller", body = ErrorEnvelope),
        (status = 422, description = "Invalid query", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_tags(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    query: QueryPairs,
) -> Result<Json<Vec<TagCount>>> {
    let mut v = Violations::new();
    let project = query.single_or_record("project_id", &mut v);
    let project = v.check("project_id", super::parse_id(project));
    let scope = v.finish(|| {
        Some(match project? {
            Some(project_id) => TagScope::Project(project_id),
            None => TagScope::User(auth.user_id),
        })
    })?;
    Ok(Json(tasks::tags(&svc, auth.user_id, scope).await?))
}
