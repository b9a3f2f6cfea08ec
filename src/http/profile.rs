//! `/profile`: read, update, upload and delete the photo.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::client::RequestOrigin;
use super::extract::{nullable, AuthUser, Json};
use crate::domain::{self, Profile, ProfileChanges, UserName, Violations};
use crate::error::{Error, ErrorEnvelope, Result};
use crate::limits::Limit;
use crate::service::media::MAX_PHOTO_BYTES;
use crate::service::{profile, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(upload_photo))
        // Room for the multipart envelope around a photo of the maximum size; the photo
        // itself is measured separately. Applies to the routes above only.
        .layer(DefaultBodyLimit::max(MAX_PHOTO_BYTES + 64 * 1024))
        .routes(routes!(get_profile, update_profile))
        .routes(routes!(delete_photo))
}

/// Any subset of the editable fields; `null` (or a blank string) clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileUpdate {
    /// 2–100 characters, unique regardless of case; cannot be cleared.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 2, max_length = 100, pattern = r"^[.'-]*\p{L}([\p{L} .'-]*[\p{L}.'-])?$")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    /// Digits (at least 3), spaces and `+ - ( ) .`; at most 20 characters.
    #[schema(value_type = Option<String>, max_length = 20, pattern = r"^(|[ +().-]*([0-9][ +().-]*){3,})$")]
    phone: Option<Option<String>>,
    /// `YYYY-MM-DD`, not in the future.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::doc::birth_date)]
    date_of_birth: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 20, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    gender: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    city: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    country: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    bio: Option<Option<String>>,
    /// Due-date reminders also by e-mail.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    email_reminders: Option<Option<bool>>,
}

/// `PUT /profile` needs at least one of its fields: the document says so with an
/// `anyOf` of one `required` per field around the generated schema.
pub(super) fn document_at_least_one_field(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder};
    use utoipa::openapi::RefOr;

    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(generated)) = components.schemas.get("ProfileUpdate").cloned() else {
        return;
    };
    let utoipa::openapi::Schema::Object(object) = &generated else {
        return;
    };
    let one_of_them = object
        .properties
        .keys()
        .fold(AnyOfBuilder::new(), |any, field| {
            any.item(ObjectBuilder::new().required(field.clone()))
        });
    let description = object.description.clone();
    components.schemas.insert(
        "ProfileUpdate".into(),
        AllOfBuilder::new()
            .item(generated)
            .item(one_of_them)
            .description(description)
            .into(),
    );
}

/// A bounded optional text: trimmed, blank means cleared.
fn text(max: usize) -> impl Fn(Option<String>) -> Result<Option<String>, String> {
    move |raw| domain::optional_text(raw.as_deref(), max)
}

fn phone(raw: Option<String>) -> Result<Option<String>, String> {
    let value = text(20)(raw)?;
    if let Some(p) = &value {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        if digits < 3
            || !p
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err("must be a phone number (digits, spaces, + - ( ) .)".into());
        }
    }
    Ok(value)
}

fn date_of_birth(raw: Option<String>) -> Result<Option<NaiveDate>, String> {
    let Some(raw) = text(10)(raw)? else {
        return Ok(None);
    };
    let date = domain::parse_date(&raw)?;
    if date > domain::now().date_naive() {
        return Err("must not be in the future".into());
    }
    Ok(Some(date))
}

impl ProfileUpdate {
    fn parse(self) -> Result<ProfileChanges> {
        let mut v = Violations::new();
        let mut changes = ProfileChanges::default();
        match self.name {
            Some(Some(raw)) => changes.name = v.check("name", UserName::parse(&raw)),
            Some(None) => v.add("name", "name cannot be null"),
            None => {}
        }
        let mut field = |name: &str, raw: Option<Option<String>>, max: usize| {
            raw.and_then(|raw| v.check(name, text(max)(raw)))
        };
        changes.first_name = field("first_name", self.first_name, 100);
        changes.last_name = field("last_name", self.last_name, 100);
        changes.gender = field("gender", self.gender, 20);
        changes.address = field("address", self.address, 100);
        changes.city = field("city", self.city, 100);
        changes.country = field("country", self.country, 100);
        changes.bio = field("bio", self.bio, 500);
        match self.email_reminders {
            Some(Some(on)) => changes.email_reminders = Some(on),
            Some(None) => v.add("email_reminders", "email_reminders cannot be null"),
            None => {}
        }
        changes.phone = self.phone.and_then(|raw| v.check("phone", phone(raw)));
        changes.date_of_birth = self
            .date_of_birth
            .and_then(|raw| v.check("date_of_birth", date_of_birth(raw)));
        if v.is_empty() && changes.field_names().is_empty() {
            v.add("body", "at least one profile field is required");
        }
        v.finish(|| Some(changes))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileUpdateResponse {
    message: String,
    /// The fields the request set.
    updated_fields: Vec<&'static str>,
    profile: Profile,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoUploadResponse {
    message: String,
    photo_url: String,
    /// The same photo at most 128 px on its longest side.
    thumbnail_url: String,
    uploaded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoDeleteResponse {
    message: String,
    timestamp: DateTime<Utc>,
}

/// The multipart form of a photo upload (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PhotoForm {
    /// JPEG, PNG, WebP or GIF, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/profile", tag = "profile",
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn get_profile(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    origin: RequestOrigin,
) -> Result<Json<Profile>> {
    Ok(Json(
        profile::get(&svc, auth.user_id, origin.as_str()).await?,
    ))
}

/// Update some profile fields.
#[utoipa::path(put, path = "/profile", tag = "profile", request_body = ProfileUpdate,
    responses(
        (status = 200, description = "Updated", body = ProfileUpdateResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 409, description = "Name already taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn update_profile(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    origin: RequestOrigin,
    Json(input): Json<ProfileUpdate>,
) -> Result<Json<ProfileUpdateResponse>> {
    svc.limits
        .enforce(Limit::Profile, &auth.user_id.to_string())
        .await?;
    let changes = input.parse()?;
    let (updated_fields, profile) =
        profile::update(&svc, auth.user_id, &changes, origin.as_str()).await?;
    Ok(Json(ProfileUpdateResponse {
        message: "Profile updated".into(),
        updated_fields,
        profile,
    }))
}

/// Upload a profile photo (multipart field `file`). It is stored re-encoded (metadata
/// dropped), at most 1024 px on its longest side, with a 128 px thumbnail
/// (`thumbnail_url`).
#[utoipa::path(post, path = "/profile/upload-photo", tag = "profile",
    request_body(content = PhotoForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Stored", body = PhotoUploadResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
        (status = 413, description = "Larger than 5 MiB", body = ErrorEnvelope),
        (status = 415, description = "Not a JPEG, PNG, WebP or GIF", body = ErrorEnvelope),
        (status = 422, description = "No file, or not a decodable image within PHOTO_MAX_PIXELS", body = ErrorEnvelope),
        (status = 503, description = "PHOTO_DECODE_CONCURRENCY photos already being processed; retry shortly", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn upload_photo(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    origin: RequestOrigin,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<PhotoUploadResponse>> {
    svc.limits
        .enforce(Limit::Photo, &auth.user_id.to_string())
        .await?;
    let multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType(
            "Expected a multipart/form-data body with a `file` field".into(),
        )
    })?;
    let bytes = read_file_field(multipart).await?;
    let photo = svc.media.prepare(bytes).await?;
    let (photo_url, thumbnail_url, uploaded_at) =
        profile::upload_photo(&svc, auth.user_id, photo, origin.as_str()).await?;
    Ok(Json(PhotoUploadResponse {
        message: "Profile photo uploaded".into(),
        photo_url,
        thumbnail_url,
        uploaded_at,
    }))
}

/// The bytes of the `file` field, refusing more than the photo limit as soon as it is
/// exceeded.
async fn read_file_field(mut multipart: Multipart) -> Result<Vec<u8>> {
    let too_large = || {
        Error::PayloadTooLarge(format!(
            "Photo must be at most {} MiB",
            MAX_PHOTO_BYTES / 1024 / 1024
        ))
    };
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status().as_u16() == 413 {
            too_large()
        } else {
            Error::invalid(
                "file",
                format!("malformed multipart body: {}", e.body_text()),
            )
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(broken)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            if bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
    Err(Error::invalid("file", "a `file` field is required"))
}

/// Remove the profile photo (idempotent).
#[utoipa::path(delete, path = "/profile/photo", tag = "profile",
    responses(
        (status = 200, description = "Removed (or there was none)", body = PhotoDeleteResponse),
        (status = 401, description = "Not authenticated", body = ErrorEnvelope),
    ),
    security(("bearer" = [])))]
async fn delete_photo(
    State(svc): State<Services>,
    AuthUser(auth): AuthUser,
    origin: RequestOrigin,
) -> Result<Json<PhotoDeleteResponse>> {
    let timestamp = profile::delete_photo(&svc, auth.user_id, origin.as_str()).await?;
    Ok(Json(PhotoDeleteResponse {
        message: "Profile photo removed".into(),
        timestamp,
    }))
}
