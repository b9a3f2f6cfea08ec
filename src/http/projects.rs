//! `/projects` and `/invitations`: shared projects, their members and roles, and
//! invitations by e-mail address. Project tasks live under `/tasks` (`project_id`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{nullable, AuthUser, Json, Path};
use crate::domain::{
    optional_text, Email, Invitation, Member, Project, ProjectName, Role, Violations,
};
use crate::error::{ErrorEnvelope, Result};
use crate::service::projects::{self, ProjectChanges, ProjectInput};
use crate::service::Services;

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, patch_project, delete_project))
        .routes(routes!(list_members))
        .routes(routes!(patch_member, remove_member))
        .routes(routes!(leave_project))
        .routes(routes!(list_project_invitations, invite))
        .routes(routes!(revoke_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(accept_invitation))
        .routes(routes!(decline_invitation))
}

/// Body of `POST /projects`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectBody {
    /// 1–100 characters after trimming, no control characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    name: Option<String>,
    /// At most 1000 characters.
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    description: Option<String>,
}

impl ProjectBody {
    fn parse(self) -> Result<ProjectInput> {
        let mut v = Violations::new();
        let name = match self.name.as_deref() {
            Some(raw) => v.check("name", ProjectName::parse(raw)),
            None => {
                v.add("name", "name is required");
                None
            }
        };
        let description = v.check(
            "description",
            optional_text(self.description.as_deref(), 1000),
        );
        v.finish(|| {
            Some(ProjectInput {
                name: name?,
                description: description?,
            })
        })
    }
}

/// Body of `PATCH /projects/{id}`: absent fields stay; `null` clears the description.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    description: Option<Option<String>>,
}

impl ProjectPatch {
    fn parse(self) -> Result<ProjectChanges> {
        let mut v = Violations::new();
        let mut changes = ProjectChanges::default();
        match self.name {
            Some(Some(raw)) => changes.name = v.check("name", ProjectName::parse(&raw)),
            Some(None) => v.add("name", "name cannot be null"),
            None => {}
        }
        if let Some(raw) = self.description {
            changes.description = v.check("description", optional_text(raw.as_deref(), 1000));
        }
        v.finish(|| Some(changes))
    }
}

/// Body of `PATCH /projects/{id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberPatch {
    #[schema(value_type = Role, required = true)]
    role: Option<String>,
}

/// Body of `POST /projects/{id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InvitationBody {
    #[schema(value_type = String, required = true, format = Email, max_length = 254)]
    email: Option<String>,
    /// `editor` (default), `viewer` or `owner`.
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
}

fn parse_role(raw: Option<&str>, default: Option<Role>) -> Result<Role, String> {
    match (raw, default) {
        (Some(raw), _) => Role::parse(raw),
        (None, Some(role)) => Ok(role),
        (None, None) => Err("role is required".into()),
    }
}

/// The caller's projects, oldest first, each with the caller's role.
#[utoipa::path(get, path = "/projects", tag = "projects",
    responses(
        (status = 200, description = "The projects", body = [Project]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_projects(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<Vec<Project>>> {
    Ok(Json(projects::list(&svc, auth.user_id).await?))
}

/// Create a project; the caller becomes its owner.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = ProjectBody,
    responses(
        (status = 201, description = "Created", body = Project),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 409, description = "The caller belongs to MAX_PROJECTS_PER_USER projects (`QUOTA_EXCEEDED`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn create_project(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Json(body): Json<ProjectBody>,
) -> Result<(StatusCode, Json<Project>)> {
    let input = body.parse()?;
    let project = projects::create(&svc, auth.user_id, &input).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// One of the caller's projects.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn get_project(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Project>> {
    Ok(Json(projects::get(&svc, auth.user_id, id).await?))
}

/// Rename or re-describe a project (owners).
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    request_body = ProjectPatch,
    responses(
        (status = 200, description = "Updated", body = Project),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn patch_project(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
    Json(patch): Json<ProjectPatch>,
) -> Result<Json<Project>> {
    let changes = patch.parse()?;
    Ok(Json(
        projects::update(&svc, auth.user_id, id, &changes).await?,
    ))
}

/// Delete a project and its tasks (owners); its members are told.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn delete_project(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    projects::delete(&svc, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project's members (any member may see them).
#[utoipa::path(get, path = "/projects/{id}/members", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The members", body = [Member]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_members(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Member>>> {
    Ok(Json(projects::members(&svc, auth.user_id, id).await?))
}

/// Change a member's role (owners). The last owner cannot step down.
#[utoipa::path(patch, path = "/projects/{id}/members/{user_id}", tag = "projects",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = MemberPatch,
    responses(
        (status = 200, description = "Updated", body = Member),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project or member", body = ErrorEnvelope),
        (status = 409, description = "The last owner cannot step down (`CONFLICT`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn patch_member(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    Json(patch): Json<MemberPatch>,
) -> Result<Json<Member>> {
    let mut v = Violations::new();
    let role = v.check("role", parse_role(patch.role.as_deref(), None));
    let role = v.finish(|| role)?;
    Ok(Json(
        projects::set_role(&svc, auth.user_id, id, user_id, role).await?,
    ))
}

/// Remove a member (owners), or leave (a member removing themselves). The last owner can
/// do neither.
#[utoipa::path(delete, path = "/projects/{id}/members/{user_id}", tag = "projects",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner (and not oneself)", body = ErrorEnvelope),
        (status = 404, description = "No such project or member", body = ErrorEnvelope),
        (status = 409, description = "The last owner cannot leave (`CONFLICT`)", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn remove_member(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    projects::remove_member(&svc, auth.user_id, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leave a project. The last owner cannot.
#[utoipa::path(post, path = "/projects/{id}/leave", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Left"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
        (status = 409, description = "The last owner cannot leave (`CONFLICT`)", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn leave_project(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    projects::remove_member(&svc, auth.user_id, id, auth.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project's open invitations (owners).
#[utoipa::path(get, path = "/projects/{id}/invitations", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The open invitations", body = [Invitation]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn list_project_invitations(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Invitation>>> {
    Ok(Json(
        projects::project_invitations(&svc, auth.user_id, id).await?,
    ))
}

/// Invite an e-mail address (owners). The answer is the same whether an account holds the
/// address or not; inviting it again renews the invitation (INVITATION_TTL).
#[utoipa::path(post, path = "/projects/{id}/invitations", tag = "projects", params(("id" = Uuid, Path)),
    request_body = InvitationBody,
    responses(
        (status = 201, description = "Invited", body = Invitation),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project among the caller's", body = ErrorEnvelope),
        (status = 409, description = "MAX_MEMBERS_PER_PROJECT reached, open invitations included (`QUOTA_EXCEEDED`)", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn invite(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<InvitationBody>,
) -> Result<(StatusCode, Json<Invitation>)> {
    let mut v = Violations::new();
    let email = match body.email.as_deref() {
        Some(raw) => v.check("email", Email::parse(raw)),
        None => {
            v.add("email", "email is required");
            None
        }
    };
    let role = v.check("role", parse_role(body.role.as_deref(), Some(Role::Editor)));
    let (email, role) = v.finish(|| Some((email?, role?)))?;
    let invitation = projects::invite(&svc, auth.user_id, id, &email, role).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// Withdraw an invitation (owners).
#[utoipa::path(delete, path = "/projects/{id}/invitations/{invitation_id}", tag = "projects",
    params(("id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "Not an owner", body = ErrorEnvelope),
        (status = 404, description = "No such project or invitation", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn revoke_invitation(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path((id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    projects::revoke_invitation(&svc, auth.user_id, id, invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The open invitations to the caller's e-mail address.
#[utoipa::path(get, path = "/invitations", tag = "projects",
    responses(
        (status = 200, description = "The invitations", body = [Invitation]),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn my_invitations(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
) -> Result<Json<Vec<Invitation>>> {
    Ok(Json(projects::my_invitations(&svc, auth.user_id).await?))
}

/// Accept an invitation to the caller's address: join the project with its role. The
/// address must be verified.
#[utoipa::path(post, path = "/invitations/{id}/accept", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Joined", body = Project),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 403, description = "The caller's e-mail address is not verified", body = ErrorEnvelope),
        (status = 404, description = "No such open invitation to the caller", body = ErrorEnvelope),
        (status = 409, description = "A quota would be exceeded (`QUOTA_EXCEEDED`)", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn accept_invitation(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Project>> {
    Ok(Json(projects::accept(&svc, auth.user_id, id).await?))
}

/// Decline an invitation to the caller's address.
#[utoipa::path(post, path = "/invitations/{id}/decline", tag = "projects", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Declined"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 404, description = "No such open invitation to the caller", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn decline_invitation(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    projects::decline(&svc, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
