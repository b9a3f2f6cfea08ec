//! `/tags`: the caller's vocabulary of tags, with counts.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AuthUser, Json};
use crate::domain::{TagCount, TagScope};
use crate::error::{ErrorEnvelope, Result};
use crate::service::{tasks, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(list_tags))
}

/// The tags of the caller's tasks that are not in the trash, each with how many of them
/// carry it: most used first, then by tag. Tags are counted regardless of case, shown as
/// spelt on the oldest task carrying them.
#[utoipa::path(get, path = "/tags", tag = "tasks",
    responses(
        (status = 200, description = "The tags", body = [TagCount],
            example = json!([{"tag": "Urgent", "count": 3}, {"tag": "home", "count": 1}])),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_tags(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<Vec<TagCount>>> {
    Ok(Json(tasks::tags(&svc, TagScope::User(auth.user_id)).await?))
}
