//! Project use cases: projects, members and their roles, invitations.
//!
//! Every change locks the project's row first (its stream's seq lives there), so a
//! project's membership changes happen one at a time and in the order of its stream. Each
//! appends one event to the project's stream, whatever the number of members, and tells
//! the people it concerns in their own streams: `project.joined` / `project.left` (a
//! socket starts or stops the project's stream there) and a notification.
//!
//! Owners manage the project, its members and invitations; anyone who is not a member
//! gets 404 for a project, as if it did not exist.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::tasks::lock_member;
use super::Services;
use crate::domain::{
    DeliveryJob, Email, EventDraft, EventKind, Invitation, Member, NotificationDraft,
    NotificationKind, Project, ProjectName, Role, StreamKey,
};
use crate::error::{Error, Result};
use crate::limits::Limit;
use crate::store::{NewInvitation, NewProject, StoreTx};

/// A project's editable fields, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectInput {
    pub name: ProjectName,
    pub description: Option<String>,
}

/// Changes to a project: `None` leaves a field alone; `Some(None)` clears the description.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectChanges {
    pub name: Option<ProjectName>,
    pub description: Option<Option<String>>,
}

/// A project as its events carry it (without the reader's role).
#[derive(Debug, Serialize)]
struct ProjectData<'a> {
    id: Uuid,
    name: &'a str,
    description: Option<&'a str>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a Project> for ProjectData<'a> {
    fn from(p: &'a Project) -> Self {
        Self {
            id: p.id,
            name: &p.name,
            description: p.description.as_deref(),
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

fn owners_only() -> Error {
    Error::Forbidden("Only the project's owners may do this".into())
}

fn quota(message: String) -> Error {
    metrics::counter!(crate::metrics::QUOTA_EXCEEDED, "quota" => "projects").increment(1);
    Error::QuotaExceeded(message)
}

/// Locks the project and checks the caller owns it.
async fn lock_owned(tx: &mut Box<dyn StoreTx>, project_id: Uuid, user_id: Uuid) -> Result<()> {
    let role = lock_member(tx, project_id, user_id).await?;
    if !role.can_manage() {
        return Err(owners_only());
    }
    Ok(())
}

/// The project as `user_id` sees it, or 404.
pub async fn get(svc: &Services, user_id: Uuid, id: Uuid) -> Result<Project> {
    svc.store
        .project(id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("Project"))
}

pub async fn list(svc: &Services, user_id: Uuid) -> Result<Vec<Project>> {
    Ok(svc.store.projects(user_id).await?)
}

pub async fn members(svc: &Services, user_id: Uuid, id: Uuid) -> Result<Vec<Member>> {
    get(svc, user_id, id).await?;
    Ok(svc.store.members(id).await?)
}

/// Someone joining a project at its position `seq`, told `notify` if anything.
struct Joining {
    project_id: Uuid,
    user_id: Uuid,
    role: Role,
    seq: i64,
    notify: Option<String>,
}

/// What joining at the project's position `seq` writes: the member row (who may replay
/// the project's stream from `seq`, their own `member.added` on), `member.added` in the
/// project's stream (at `seq + 1`), `project.joined` (with `last_seq` `seq + 1`) and a
/// notification in theirs. Returns the appends, and the project as the new member sees
/// it once they commit.
async fn join(
    svc: &Services,
    tx: &mut Box<dyn StoreTx>,
    joining: Joining,
    now: DateTime<Utc>,
) -> Result<(Vec<(StreamKey, Vec<EventDraft>)>, Project)> {
    let Joining {
        project_id,
        user_id,
        role,
        seq,
        notify,
    } = joining;
    if tx.membership_count(user_id).await? >= svc.quotas.max_projects_per_user {
        return Err(quota(format!(
            "An account belongs to at most {} projects",
            svc.quotas.max_projects_per_user
        )));
    }
    let joined_seq = seq + 1;
    tx.insert_member(project_id, user_id, role, seq, now)
        .await?;
    let mut project = tx
        .project(project_id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("Project"))?;
    project.last_seq = joined_seq;
    let name = tx.user_name(user_id).await?.unwrap_or_default();
    let added = EventDraft::new(
        EventKind::MemberAdded,
        &json!({ "project_id": project_id, "user_id": user_id, "name": name, "role": role }),
    );
    let joined = EventDraft::new(
        EventKind::ProjectJoined,
        &json!({
            "project_id": project_id,
            "project": ProjectData::from(&project),
            "role": role,
            "last_seq": joined_seq,
        }),
    );
    let mut own = vec![joined];
    if let Some(message) = notify {
        let draft =
            NotificationDraft::for_project(user_id, NotificationKind::ProjectAdded, message, None);
        let (_, noted) = super::notifications::add(svc, tx, &draft, now).await?;
        own.extend(noted);
    }
    let appends = vec![
        (StreamKey::Project(project_id), vec![added]),
        (StreamKey::User(user_id), own),
    ];
    Ok((appends, project))
}

pub async fn create(svc: &Services, user_id: Uuid, input: &ProjectInput) -> Result<Project> {
    let (mut tx, now) = svc.writes.begin().await?;
    let id = Uuid::new_v4();
    tx.insert_project(NewProject {
        id,
        name: input.name.as_str(),
        description: input.description.as_deref(),
        created_by: user_id,
        now,
    })
    .await?;
    let joining = Joining {
        project_id: id,
        user_id,
        role: Role::Owner,
        seq: 0,
        notify: None,
    };
    let (appends, project) = join(svc, &mut tx, joining, now).await?;
    svc.writes.commit_streams(tx, appends, now).await?;
    Ok(project)
}

pub async fn update(
    svc: &Services,
    user_id: Uuid,
    id: Uuid,
    changes: &ProjectChanges,
) -> Result<Project> {
    let (mut tx, now) = svc.writes.begin().await?;
    lock_owned(&mut tx, id, user_id).await?;
    let mut project = get(svc, user_id, id).await?;
    if let Some(name) = &changes.name {
        project.name = name.as_str().to_string();
    }
    if let Some(description) = &changes.description {
        project.description.clone_from(description);
    }
    project.updated_at = now;
    tx.save_project(id, &project.name, project.description.as_deref(), now)
        .await?;
    let event = EventDraft::new(EventKind::ProjectUpdated, &ProjectData::from(&project));
    svc.writes
        .commit_streams(tx, vec![(StreamKey::Project(id), vec![event])], now)
        .await?;
    project.last_seq += 1;
    Ok(project)
}

/// Deletes the project with its tasks: its stream ends with `project.deleted`, and every
/// member hears `project.left` (and, but the owner who deleted it, a notification).
pub async fn delete(svc: &Services, user_id: Uuid, id: Uuid) -> Result<()> {
    let (mut tx, now) = svc.writes.begin().await?;
    lock_owned(&mut tx, id, user_id).await?;
    let project = get(svc, user_id, id).await?;
    let actor = tx.user_name(user_id).await?.unwrap_or_default();
    let members = tx.delete_project(id, now).await?;
    let mut appends = vec![(
        StreamKey::Project(id),
        vec![EventDraft::new(
            EventKind::ProjectDeleted,
            &json!({ "id": id, "project_id": id }),
        )],
    )];
    for member in members {
        let mut own = vec![left_event(id)];
        if member != user_id {
            let message = format!("{actor} deleted the project \"{}\".", project.name);
            let draft = NotificationDraft::for_project(
                member,
                NotificationKind::ProjectRemoved,
                message,
                None,
            );
            let (_, noted) = super::notifications::add(svc, &mut tx, &draft, now).await?;
            own.extend(noted);
        }
        appends.push((StreamKey::User(member), own));
    }
    svc.writes.commit_streams(tx, appends, now).await
}

fn left_event(project_id: Uuid) -> EventDraft {
    EventDraft::new(EventKind::ProjectLeft, &json!({ "project_id": project_id }))
}

/// Changes a member's role (owners only). The last owner cannot step down.
pub async fn set_role(
    svc: &Services,
    user_id: Uuid,
    id: Uuid,
    member_id: Uuid,
    role: Role,
) -> Result<Member> {
    let (mut tx, now) = svc.writes.begin().await?;
    lock_owned(&mut tx, id, user_id).await?;
    let current = tx
        .membership_for_update(id, member_id)
        .await?
        .ok_or_else(|| Error::not_found("Member"))?;
    if current.role == Role::Owner && role != Role::Owner && tx.owner_count(id).await? <= 1 {
        return Err(last_owner());
    }
    let mut member = svc
        .store
        .member(id, member_id)
        .await?
        .ok_or_else(|| Error::not_found("Member"))?;
    if current.role == role {
        tx.commit().await?;
        return Ok(member);
    }
    tx.set_member_role(id, member_id, role).await?;
    member.role = role;
    let event = EventDraft::new(
        EventKind::MemberUpdated,
        &json!({ "project_id": id, "user_id": member_id, "name": member.name, "role": role }),
    );
    svc.writes
        .commit_streams(tx, vec![(StreamKey::Project(id), vec![event])], now)
        .await?;
    Ok(member)
}

fn last_owner() -> Error {
    Error::Conflict("A project keeps at least one owner: make another member an owner first".into())
}

/// Removes a member: an owner removes anyone, a member removes themselves (leaving). The
/// last owner can do neither. Their sockets stop receiving the project's stream right
/// after `member.removed`, on every instance.
pub async fn remove_member(svc: &Services, user_id: Uuid, id: Uuid, member_id: Uuid) -> Result<()> {
    let (mut tx, now) = svc.writes.begin().await?;
    let role = lock_member(&mut tx, id, user_id).await?;
    if member_id != user_id && !role.can_manage() {
        return Err(owners_only());
    }
    let removed = tx
        .membership_for_update(id, member_id)
        .await?
        .ok_or_else(|| Error::not_found("Member"))?;
    if removed.role == Role::Owner && tx.owner_count(id).await? <= 1 {
        return Err(last_owner());
    }
    let project = get(svc, user_id, id).await?;
    tx.delete_member(id, member_id).await?;
    let event = EventDraft::new(
        EventKind::MemberRemoved,
        &json!({ "project_id": id, "user_id": member_id }),
    );
    let mut own = vec![left_event(id)];
    if member_id != user_id {
        let actor = tx.user_name(user_id).await?.unwrap_or_default();
        let message = format!("{actor} removed you from the project \"{}\".", project.name);
        let draft = NotificationDraft::for_project(
            member_id,
            NotificationKind::ProjectRemoved,
            message,
            None,
        );
        let (_, noted) = super::notifications::add(svc, &mut tx, &draft, now).await?;
        own.extend(noted);
    }
    let appends = vec![
        (StreamKey::Project(id), vec![event]),
        (StreamKey::User(member_id), own),
    ];
    svc.writes.commit_streams(tx, appends, now).await
}

/// Invites an address (owners only): mailed to the address, and an account holding it is
/// notified; one that does not exist yet sees the invitation after signing up. The
/// answer is the same either way. Inviting an address again renews its invitation (and
/// mails it again, within the `invite` rate limit).
pub async fn invite(
    svc: &Services,
    user_id: Uuid,
    id: Uuid,
    email: &Email,
    role: Role,
) -> Result<Invitation> {
    // Each invitation mails an address: bounded per inviter, so that no one can use the
    // service to mail strangers in bulk.
    svc.limits
        .enforce(Limit::Invite, &user_id.to_string())
        .await?;
    let (mut tx, now) = svc.writes.begin().await?;
    lock_owned(&mut tx, id, user_id).await?;
    let ttl = chrono::Duration::from_std(svc.quotas.invitation_ttl)
        .map_err(|err| Error::Internal(err.into()))?;
    let max = svc.quotas.max_members_per_project;
    if tx.member_count(id).await? + tx.invitation_count(id, now).await? >= max {
        return Err(quota(format!(
            "A project has at most {max} members, open invitations included"
        )));
    }
    let invitation_id = tx
        .upsert_invitation(NewInvitation {
            id: Uuid::new_v4(),
            project_id: id,
            email: email.as_str(),
            role,
            invited_by: user_id,
            now,
            expires_at: now + ttl,
        })
        .await?;
    let invitation = tx
        .invitation(invitation_id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the invitation just written is gone")))?;
    let job = DeliveryJob::ProjectInvitation {
        email: invitation.email.clone(),
        project: invitation.project_name.clone(),
        inviter: invitation
            .invited_by_name
            .clone()
            .unwrap_or_else(|| "Someone".into()),
        role: role.as_str().to_string(),
        expires_at: invitation.expires_at,
    };
    tx.enqueue_delivery(None, &job, now).await?;
    let mut appends = Vec::new();
    if let Some(invitee) = tx.user_id_by_email(email.as_str()).await? {
        let draft = invitation_notice(invitee, &invitation);
        let (_, noted) = super::notifications::add(svc, &mut tx, &draft, now).await?;
        appends.push((StreamKey::User(invitee), noted));
    }
    svc.writes.commit_streams(tx, appends, now).await?;
    Ok(invitation)
}

/// The notification of an invitation to `user_id`.
pub(super) fn invitation_notice(user_id: Uuid, invitation: &Invitation) -> NotificationDraft {
    let message = format!(
        "{} invited you to the project \"{}\" as {}.",
        invitation.invited_by_name.as_deref().unwrap_or("Someone"),
        invitation.project_name,
        invitation.role.as_str()
    );
    NotificationDraft::for_project(user_id, NotificationKind::ProjectInvitation, message, None)
}

pub async fn project_invitations(
    svc: &Services,
    user_id: Uuid,
    id: Uuid,
) -> Result<Vec<Invitation>> {
    if !get(svc, user_id, id).await?.role.can_manage() {
        return Err(owners_only());
    }
    Ok(svc
        .store
        .project_invitations(id, crate::domain::now())
        .await?)
}

/// Withdraws an invitation (owners only).
pub async fn revoke_invitation(
    svc: &Services,
    user_id: Uuid,
    id: Uuid,
    invitation_id: Uuid,
) -> Result<()> {
    let (mut tx, _now) = svc.writes.begin().await?;
    lock_owned(&mut tx, id, user_id).await?;
    match tx.invitation(invitation_id).await? {
        Some(invitation) if invitation.project_id == id => {
            tx.delete_invitation(invitation_id).await?;
            svc.writes.commit_unannounced(tx).await
        }
        _ => Err(Error::not_found("Invitation")),
    }
}

/// The open invitations to the caller's address.
pub async fn my_invitations(svc: &Services, user_id: Uuid) -> Result<Vec<Invitation>> {
    let profile = svc
        .store
        .profile(user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    Ok(svc
        .store
        .invitations_to(&profile.email, crate::domain::now())
        .await?)
}

/// An invitation to the caller's address, or 404 (someone else's is indistinguishable
/// from none).
async fn my_invitation(
    tx: &mut Box<dyn StoreTx>,
    email: &str,
    invitation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Invitation> {
    match tx.invitation(invitation_id).await? {
        Some(invitation) if invitation.email == email && invitation.expires_at > now => {
            Ok(invitation)
        }
        _ => Err(Error::not_found("Invitation")),
    }
}

/// Accepts an invitation to the caller's (verified) address: they join with its role.
pub async fn accept(svc: &Services, user_id: Uuid, invitation_id: Uuid) -> Result<Project> {
    let profile = svc
        .store
        .profile(user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let (mut tx, now) = svc.writes.begin().await?;
    // The invitation names its project (read without a lock); the project's row is then
    // locked, as every membership change locks it first, and the invitation read again.
    let project_id = my_invitation(&mut tx, &profile.email, invitation_id, now)
        .await?
        .project_id;
    let seq = tx
        .lock_project(project_id)
        .await?
        .ok_or_else(|| Error::not_found("Invitation"))?;
    let invitation = my_invitation(&mut tx, &profile.email, invitation_id, now).await?;
    if !profile.is_email_verified {
        // Whoever signs up with an address could otherwise take what was meant for the
        // address's owner.
        return Err(Error::Forbidden(
            "Verify your e-mail address before accepting invitations".into(),
        ));
    }
    tx.delete_invitation(invitation_id).await?;
    if tx
        .membership_for_update(project_id, user_id)
        .await?
        .is_some()
    {
        // Already a member (invited twice, or before joining otherwise).
        svc.writes.commit_unannounced(tx).await?;
        return get(svc, user_id, project_id).await;
    }
    if tx.member_count(project_id).await? >= svc.quotas.max_members_per_project {
        return Err(quota(format!(
            "A project has at most {} members",
            svc.quotas.max_members_per_project
        )));
    }
    let message = format!(
        "You joined the project \"{}\" as {}.",
        invitation.project_name,
        invitation.role.as_str()
    );
    let joining = Joining {
        project_id,
        user_id,
        role: invitation.role,
        seq,
        notify: Some(message),
    };
    let (appends, project) = join(svc, &mut tx, joining, now).await?;
    svc.writes.commit_streams(tx, appends, now).await?;
    Ok(project)
}

/// Declines an invitation to the caller's address.
pub async fn decline(svc: &Services, user_id: Uuid, invitation_id: Uuid) -> Result<()> {
    let profile = svc
        .store
        .profile(user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let (mut tx, now) = svc.writes.begin().await?;
    my_invitation(&mut tx, &profile.email, invitation_id, now).await?;
    tx.delete_invitation(invitation_id).await?;
    svc.writes.commit_unannounced(tx).await
}
