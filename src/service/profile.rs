//! Profile use cases, photos included. A photo file is written before the transaction
//! that points the profile at it, and the previous file is removed only after commit, so a
//! failure never leaves a profile pointing at a missing file.
//!
//! `origin` is where the client reached the API (`http::client::RequestOrigin`): photo URLs
//! in answers and in `profile.updated` events are absolute on it, so that a front-end on
//! another origin loads them from here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::accounts::{user_conflict, NAME_TAKEN};
use super::Services;
use crate::domain::{
    media_url, EventDraft, EventKind, NotificationDraft, NotificationKind, Profile, ProfileChanges,
};
use crate::error::{Error, Result};
use crate::service::media::{Photo, THUMBNAIL_DIR};
use crate::store::MEDIA_URL_PREFIX;

pub async fn get(svc: &Services, user_id: Uuid, origin: &str) -> Result<Profile> {
    let profile = svc.store.profile(user_id).await?;
    Ok(profile
        .ok_or_else(|| Error::not_found("Profile"))?
        .located(origin))
}

/// Applies the changes; returns the names of the fields the request set, and the profile.
pub async fn update(
    svc: &Services,
    user_id: Uuid,
    changes: &ProfileChanges,
    origin: &str,
) -> Result<(Vec<&'static str>, Profile)> {
    // Checked before the transaction; a rename racing this one is caught by the unique
    // constraint (`user_conflict`).
    if let Some(name) = &changes.name {
        if svc.store.name_taken(name.as_str(), Some(user_id)).await? {
            return Err(Error::Conflict(NAME_TAKEN.into()));
        }
    }
    let (mut tx, now) = svc.writes.begin().await?;
    let mut profile = tx
        .profile_for_update(user_id)
        .await?
        .ok_or_else(|| Error::not_found("Profile"))?;
    changes.apply(&mut profile);
    profile.updated_at = now;
    let profile = tx
        .save_profile(&profile)
        .await
        .map_err(user_conflict)?
        .located(origin);
    let fields = changes.field_names();
    let note = NotificationDraft::for_account(
        user_id,
        NotificationKind::ProfileUpdated,
        format!("Your profile was updated ({}).", fields.join(", ")),
    );
    let (_, noted) = super::notifications::add(svc, &mut tx, &note, now).await?;
    let mut events = vec![EventDraft::new(EventKind::ProfileUpdated, &profile)];
    events.extend(noted);
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    Ok((fields, profile))
}

/// Stores a validated photo and makes it the profile's; returns its URL, its thumbnail's
/// URL and the time.
pub async fn upload_photo(
    svc: &Services,
    user_id: Uuid,
    photo: Photo,
    origin: &str,
) -> Result<(String, String, DateTime<Utc>)> {
    let file = svc.media.save(&photo).await?;
    let message = "Your profile photo was updated.";
    match set_photo(svc, user_id, Some(&file), message, origin).await {
        Ok((profile, now)) => {
            let url = profile.profile_photo_url.ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("photo url missing after upload"))
            })?;
            let thumbnail_url =
                media_url(origin, &format!("{MEDIA_URL_PREFIX}{THUMBNAIL_DIR}/{file}"));
            Ok((url, thumbnail_url, now))
        }
        Err(err) => {
            svc.media.remove(&file).await;
            Err(err)
        }
    }
}

/// Removes the profile photo; doing so twice is not an error.
pub async fn delete_photo(svc: &Services, user_id: Uuid, origin: &str) -> Result<DateTime<Utc>> {
    let message = "Your profile photo was removed.";
    let (_, now) = set_photo(svc, user_id, None, message, origin).await?;
    Ok(now)
}

async fn set_photo(
    svc: &Services,
    user_id: Uuid,
    file: Option<&str>,
    message: &str,
    origin: &str,
) -> Result<(Profile, DateTime<Utc>)> {
    let (mut tx, now) = svc.writes.begin().await?;
    let previous = tx.profile_photo(user_id).await?;
    if previous.is_none() && file.is_none() {
        let profile = tx
            .profile_for_update(user_id)
            .await?
            .ok_or_else(|| Error::not_found("Profile"))?;
        return Ok((profile.located(origin), now));
    }
    let profile = tx
        .set_profile_photo(user_id, file, now)
        .await?
        .located(origin);
    let note = NotificationDraft::for_account(user_id, NotificationKind::ProfileUpdated, message);
    let (_, noted) = super::notifications::add(svc, &mut tx, &note, now).await?;
    let mut events = vec![EventDraft::new(EventKind::ProfileUpdated, &profile)];
    events.extend(noted);
    svc.writes
        .commit(tx, user_id, &events, now, Vec::new())
        .await?;
    if let Some(previous) = previous {
        svc.media.remove(&previous).await;
    }
    Ok((profile, now))
}
