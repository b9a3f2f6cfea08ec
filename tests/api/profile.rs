//! `/profile`: reading and updating the profile fields, uploading, serving and removing
//! the profile photo.

use std::collections::BTreeSet;
use std::io::Cursor;

use image::ImageFormat;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{detail_fields, expect_error, expect_json, TestApp, TestUser};

backend_tests!(
    get_returns_the_callers_full_profile,
    users_only_ever_see_their_own_profile,
    every_profile_route_requires_a_token,
    update_sets_fields_returns_the_profile_and_notifies,
    null_or_blank_clears_optional_fields,
    length_limits_count_characters_at_the_boundary,
    every_invalid_field_is_reported_and_nothing_is_applied,
    date_of_birth_must_be_a_real_date_not_in_the_future,
    name_cannot_be_cleared_or_invalid,
    empty_or_malformed_updates_are_refused,
    another_users_name_conflicts_in_any_case,
    keeping_ones_own_name_in_another_case_is_allowed,
    names_conflict_regardless_of_case_beyond_ascii,
    fields_that_are_not_editable_are_never_changed,
    every_accepted_image_format_is_stored_and_served_back,
    photo_type_is_detected_from_the_bytes_not_the_name,
    second_upload_replaces_and_removes_the_first,
    refused_uploads_leave_the_current_photo_alone,
    oversized_photos_are_payload_too_large,
    photo_just_under_the_limit_is_accepted,
    non_images_are_unsupported_media_type,
    corrupt_or_truncated_images_are_unprocessable,
    absurd_dimensions_are_refused,
    upload_needs_a_multipart_body_with_a_file_field,
    delete_photo_removes_it_and_is_idempotent,
    delete_photo_without_a_photo_is_ok,
);

const PROFILE_KEYS: [&str; 16] = [
    "id",
    "name",
    "email",
    "first_name",
    "last_name",
    "phone",
    "date_of_birth",
    "gender",
    "address",
    "city",
    "country",
    "bio",
    "profile_photo_url",
    "is_email_verified",
    "created_at",
    "updated_at",
];

const OPTIONAL_FIELDS: [&str; 10] = [
    "first_name",
    "last_name",
    "phone",
    "date_of_birth",
    "gender",
    "address",
    "city",
    "country",
    "bio",
    "profile_photo_url",
];

const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

// ---------------------------------------------------------------------------------------
// Helpers

async fn get_profile(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .api(Method::GET, "/profile", Some(&user.token))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await
}

async fn put_profile(app: &TestApp, user: &TestUser, body: &Value) -> Response {
    app.api(Method::PUT, "/profile", Some(&user.token))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn notification_types(app: &TestApp, user: &TestUser) -> Vec<String> {
    let response = app
        .api(Method::GET, "/notifications?sort=asc", Some(&user.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    body.as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

fn field_set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

fn updated_fields(body: &Value) -> BTreeSet<String> {
    body["updated_fields"]
        .as_array()
        .unwrap_or_else(|| panic!("updated_fields is a list: {body}"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// A small picture (a gradient, so the encoders have something to encode).
fn image_bytes(format: ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([(x * 15) as u8, (y * 20) as u8, ((x + y) * 7) as u8])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut buf), format)
        .unwrap();
    buf
}

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> Response {
    let part = Part::bytes(bytes)
        .file_name(file_name.to_string())
        .mime_str(mime)
        .unwrap();
    app.api(Method::POST, "/profile/upload-photo", token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap()
}

/// Uploads a photo that must be accepted; returns the response body.
async fn upload_ok(
    app: &TestApp,
    user: &TestUser,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> Value {
    let response = upload(app, Some(&user.token), bytes, file_name, mime).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let url = body["photo_url"]
        .as_str()
        .unwrap_or_else(|| panic!("photo_url: {body}"));
    assert!(url.starts_with("/media/"), "{url}");
    let uploaded_at = body["uploaded_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(uploaded_at).is_ok(),
        "{uploaded_at}"
    );
    body
}

/// Fetches a served photo: status, content type and bytes.
async fn fetch_photo(app: &TestApp, url: &str) -> (StatusCode, String, Vec<u8>) {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.bytes().await.unwrap().to_vec();
    (status, content_type, bytes)
}

/// Asserts that `url` serves exactly `bytes` as `content_type`.
async fn assert_served(app: &TestApp, url: &str, bytes: &[u8], content_type: &str) {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some(content_type),
        "{url}"
    );
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{url}"
    );
    let served = response.bytes().await.unwrap();
    assert!(
        served.as_ref() == bytes,
        "{url} must serve exactly the uploaded bytes"
    );
}

async fn assert_gone(app: &TestApp, url: &str) {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

/// The visible files in the media folder.
fn media_files(app: &TestApp) -> Vec<String> {
    let dir = app.config.media_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

/// zlib data holding `raw` in one stored (uncompressed) block.
fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    assert!(raw.len() <= 0xFFFF);
    let mut out = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// A PNG made by hand: an 8-bit RGB header claiming `width` x `height`, and image data
/// for a 1x1 picture (correct only when the header says 1x1).
fn crafted_png(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = PNG_MAGIC.to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    // One scanline: filter byte 0, then one red pixel.
    png.extend(png_chunk(b"IDAT", &zlib_stored(&[0, 255, 0, 0])));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A PNG of noise (which does not compress) just under 5 MiB.
fn noisy_png_just_under_five_mib() -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let picture = image::RgbImage::from_fn(1290, 1290, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
        .unwrap();
    buf
}

// ---------------------------------------------------------------------------------------
// Reading

async fn get_returns_the_callers_full_profile(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "Ada@Example.com").await;
    let profile = get_profile(&app, &user).await;
    let keys: BTreeSet<String> = profile.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, field_set(&PROFILE_KEYS), "{profile}");
    assert_eq!(profile["id"].as_str().unwrap(), user.id);
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["email"], "ada@example.com");
    assert_eq!(profile["is_email_verified"], false);
    for field in OPTIONAL_FIELDS {
        assert_eq!(
            profile[field],
            Value::Null,
            "{field} starts empty: {profile}"
        );
    }
    for key in ["created_at", "updated_at"] {
        let t = profile[key].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{key}: {t}"
        );
    }
}

async fn users_only_ever_see_their_own_profile(app: TestApp) {
    let ada = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let grace = app.signup_as("Grace Hopper", "grace@example.com").await;
    let grace_before = get_profile(&app, &grace).await;

    let response = put_profile(&app, &ada, &json!({"city": "London", "bio": "Analyst"})).await;
    expect_json(response, StatusCode::OK).await;
    let photo = upload_ok(
        &app,
        &ada,
        image_bytes(ImageFormat::Png),
        "ada.png",
        "image/png",
    )
    .await;
    let ada_photo = photo["photo_url"].as_str().unwrap().to_string();

    let ada_profile = get_profile(&app, &ada).await;
    assert_eq!(ada_profile["id"].as_str().unwrap(), ada.id);
    assert_eq!(ada_profile["city"], "London");
    assert_eq!(ada_profile["profile_photo_url"], ada_photo.as_str());

    let grace_after = get_profile(&app, &grace).await;
    assert_eq!(
        grace_after, grace_before,
        "another user's changes never show up"
    );
    assert_eq!(grace_after["id"].as_str().unwrap(), grace.id);
    assert_eq!(grace_after["email"], "grace@example.com");
    assert_eq!(grace_after["city"], Value::Null);
    assert_eq!(grace_after["profile_photo_url"], Value::Null);

    // Grace removing "her" photo or changing her profile does not touch Ada's.
    let ada_notes = notification_types(&app, &ada).await;
    assert_eq!(ada_notes.first().map(String::as_str), Some("SIGNUP"));
    assert!(
        ada_notes.iter().any(|t| t == "PROFILE_UPDATED"),
        "{ada_notes:?}"
    );
    let response = app
        .api(Method::DELETE, "/profile/photo", Some(&grace.token))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    let response = put_profile(&app, &grace, &json!({"city": "New York"})).await;
    expect_json(response, StatusCode::OK).await;
    assert_eq!(get_profile(&app, &grace).await["city"], "New York");
    assert_served(
        &app,
        &ada_photo,
        &image_bytes(ImageFormat::Png),
        "image/png",
    )
    .await;
    let ada_after = get_profile(&app, &ada).await;
    assert_eq!(ada_after, ada_profile);
    assert_eq!(notification_types(&app, &ada).await, ada_notes);
}

async fn every_profile_route_requires_a_token(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;

    let response = app.api(Method::GET, "/profile", None).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    let response = app
        .api(Method::PUT, "/profile", None)
        .json(&json!({"city": "Paris"}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    let response = upload(
        &app,
        None,
        image_bytes(ImageFormat::Png),
        "x.png",
        "image/png",
    )
    .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    let response = app
        .api(Method::DELETE, "/profile/photo", None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;

    // A bad token is refused as well.
    let response = app
        .api(Method::GET, "/profile", Some("not.a.token"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    let response = upload(
        &app,
        Some("not.a.token"),
        image_bytes(ImageFormat::Png),
        "x.png",
        "image/png",
    )
    .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;

    // Nothing was changed or stored by the refused requests.
    assert_eq!(get_profile(&app, &user).await, before);
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
}

// ---------------------------------------------------------------------------------------
// Updating the fields

async fn update_sets_fields_returns_the_profile_and_notifies(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let before = get_profile(&app, &user).await;
    let changes = json!({
        "name": "  Augusta Ada King ",
        "first_name": "Augusta",
        "last_name": "King",
        "phone": "+44 (20) 7946-0958",
        "date_of_birth": "1815-12-10",
        "gender": "female",
        "address": "12 St James's Square",
        "city": "London",
        "country": "United Kingdom",
        "bio": "Wrote the first published algorithm.",
    });
    let response = put_profile(&app, &user, &changes).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        updated_fields(&body),
        field_set(&[
            "name",
            "first_name",
            "last_name",
            "phone",
            "date_of_birth",
            "gender",
            "address",
            "city",
            "country",
            "bio"
        ])
    );
    let profile = &body["profile"];
    assert_eq!(profile["name"], "Augusta Ada King", "the name is trimmed");
    for field in [
        "first_name",
        "last_name",
        "phone",
        "date_of_birth",
        "gender",
        "address",
        "city",
        "country",
        "bio",
    ] {
        assert_eq!(profile[field], changes[field], "{field}");
    }
    assert_eq!(profile["id"], before["id"]);
    assert_eq!(profile["email"], before["email"]);
    assert_eq!(profile["created_at"], before["created_at"]);
    let updated =
        chrono::DateTime::parse_from_rfc3339(profile["updated_at"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(before["updated_at"].as_str().unwrap()).unwrap();
    assert!(updated >= created, "{updated} >= {created}");

    // The stored profile is what the response showed, and /auth/me has the new name.
    assert_eq!(&get_profile(&app, &user).await, profile);
    let response = app
        .api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(response, StatusCode::OK).await["name"],
        "Augusta Ada King"
    );
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP", "PROFILE_UPDATED"]
    );

    // A partial update changes only what it names.
    let response = put_profile(&app, &user, &json!({"city": "Marylebone"})).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated_fields(&body), field_set(&["city"]));
    let mut expected = profile.clone();
    expected["city"] = json!("Marylebone");
    expected["updated_at"] = body["profile"]["updated_at"].clone();
    assert_eq!(body["profile"], expected);
    assert_eq!(get_profile(&app, &user).await, expected);
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP", "PROFILE_UPDATED", "PROFILE_UPDATED"]
    );
}

async fn null_or_blank_clears_optional_fields(app: TestApp) {
    let user = app.signup("Grace").await;
    let full = json!({
        "first_name": "Grace",
        "last_name": "Hopper",
        "phone": "555-0100",
        "date_of_birth": "1906-12-09",
        "gender": "female",
        "address": "1 Navy Yard",
        "city": "Arlington",
        "country": "USA",
        "bio": "Compilers.",
    });
    expect_json(put_profile(&app, &user, &full).await, StatusCode::OK).await;

    // Half cleared with null, half with blank strings.
    let clear = json!({
        "first_name": null,
        "last_name": "",
        "phone": "   ",
        "date_of_birth": null,
        "gender": "",
        "address": null,
        "city": " \t ",
        "country": null,
        "bio": "",
    });
    let body = expect_json(put_profile(&app, &user, &clear).await, StatusCode::OK).await;
    let names: Vec<&str> = clear
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(updated_fields(&body), field_set(&names));
    let profile = get_profile(&app, &user).await;
    for field in names {
        assert_eq!(profile[field], Value::Null, "{field} cleared: {profile}");
        assert_eq!(
            body["profile"][field],
            Value::Null,
            "{field} cleared in the response"
        );
    }
    assert_eq!(profile["name"], "Grace Tester", "the name is untouched");

    // Clearing an already empty field is fine too.
    let body = expect_json(
        put_profile(&app, &user, &json!({"bio": null})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated_fields(&body), field_set(&["bio"]));
    assert_eq!(get_profile(&app, &user).await["bio"], Value::Null);
}

async fn length_limits_count_characters_at_the_boundary(app: TestApp) {
    let user = app.signup("Grace").await;
    // (field, limit); multi-byte characters so that bytes and characters differ.
    let limits = [
        ("first_name", 100),
        ("last_name", 100),
        ("gender", 20),
        ("address", 100),
        ("city", 100),
        ("country", 100),
        ("bio", 500),
    ];
    for (field, limit) in limits {
        let at_limit = "é".repeat(limit);
        let body = expect_json(
            put_profile(&app, &user, &json!({ field: at_limit })).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            body["profile"][field],
            at_limit.as_str(),
            "{field} at {limit}"
        );
        assert_eq!(
            get_profile(&app, &user).await[field],
            at_limit.as_str(),
            "{field}"
        );

        let over = "é".repeat(limit + 1);
        let response = put_profile(&app, &user, &json!({ field: over })).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            detail_fields(&envelope),
            vec![field],
            "{field} over {limit}"
        );
        assert_eq!(
            get_profile(&app, &user).await[field],
            at_limit.as_str(),
            "{field} unchanged"
        );
    }

    // Phone: at most 20 characters.
    let phone = "+1 (555) 010-0000 99";
    assert_eq!(phone.chars().count(), 20);
    let body = expect_json(
        put_profile(&app, &user, &json!({"phone": phone})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["phone"], phone);
    let response = put_profile(&app, &user, &json!({"phone": format!("{phone}9")})).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["phone"]);
    assert_eq!(get_profile(&app, &user).await["phone"], phone);

    // Name: 2 to 100 characters.
    let name = format!("Zoë {}", "ä".repeat(96));
    assert_eq!(name.chars().count(), 100);
    let body = expect_json(
        put_profile(&app, &user, &json!({"name": name})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], name.as_str());
    let body = expect_json(
        put_profile(&app, &user, &json!({"name": "Jo"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "Jo");
    for bad in [format!("{name}ä"), "J".to_string()] {
        let response = put_profile(&app, &user, &json!({"name": bad})).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["name"], "{bad}");
    }
    assert_eq!(get_profile(&app, &user).await["name"], "Jo");
}

async fn every_invalid_field_is_reported_and_nothing_is_applied(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;
    let bad = json!({
        "name": "X",
        "first_name": "a".repeat(101),
        "last_name": "b".repeat(101),
        "phone": "1".repeat(21),
        "date_of_birth": "yesterday",
        "gender": "g".repeat(21),
        "address": "c".repeat(101),
        "city": "d".repeat(101),
        "country": "e".repeat(101),
        "bio": "f".repeat(501),
    });
    let response = put_profile(&app, &user, &bad).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let reported: BTreeSet<String> = detail_fields(&envelope).into_iter().collect();
    let expected: Vec<&str> = bad
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(reported, field_set(&expected), "{envelope}");
    assert_eq!(
        detail_fields(&envelope).len(),
        expected.len(),
        "one detail per field: {envelope}"
    );

    // Valid fields next to an invalid one are not applied either.
    let response = put_profile(
        &app,
        &user,
        &json!({"city": "Paris", "bio": "x".repeat(501)}),
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["bio"]);
    let response = put_profile(
        &app,
        &user,
        &json!({"city": "Paris", "phone": "call me maybe"}),
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["phone"]);

    assert_eq!(get_profile(&app, &user).await, before);
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP"],
        "no notification for refused updates"
    );
}

async fn date_of_birth_must_be_a_real_date_not_in_the_future(app: TestApp) {
    let user = app.signup("Grace").await;
    for good in ["1906-12-09", "2000-02-29", "1970-01-01"] {
        let body = expect_json(
            put_profile(&app, &user, &json!({"date_of_birth": good})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body["profile"]["date_of_birth"], good);
        assert_eq!(get_profile(&app, &user).await["date_of_birth"], good);
    }
    let future = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let next_year = (chrono::Utc::now() + chrono::Duration::days(400))
        .date_naive()
        .to_string();
    for bad in [
        future.as_str(),
        next_year.as_str(),
        "1999-02-29",
        "1990-13-01",
        "1990-04-31",
        "17/05/1990",
        "05-17-1990",
        "1990-05-17T00:00:00Z",
        "not a date",
    ] {
        let response = put_profile(&app, &user, &json!({"date_of_birth": bad})).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["date_of_birth"], "{bad}");
    }
    assert_eq!(
        get_profile(&app, &user).await["date_of_birth"],
        "1970-01-01"
    );
}

async fn name_cannot_be_cleared_or_invalid(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    for bad in [
        json!(null),
        json!(""),
        json!("   "),
        json!("A"),
        json!("R2D2 Droid"),
        json!("--"),
    ] {
        let response = put_profile(&app, &user, &json!({ "name": bad })).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["name"], "name {bad}");
    }
    // A null name is refused even next to valid fields, which are then not applied.
    let response = put_profile(&app, &user, &json!({"name": null, "city": "London"})).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["name"]);
    let profile = get_profile(&app, &user).await;
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["city"], Value::Null);
}

async fn empty_or_malformed_updates_are_refused(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;
    // No profile field at all.
    for body in [json!({}), json!({"favourite_colour": "blue"})] {
        let response = put_profile(&app, &user, &body).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    // Wrong JSON types, not an object, malformed JSON.
    for body in [
        json!({"city": 5}),
        json!({"bio": ["a"]}),
        json!({"name": true}),
        json!([]),
        json!("city"),
    ] {
        let response = put_profile(&app, &user, &body).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let response = app
        .api(Method::PUT, "/profile", Some(&user.token))
        .header("content-type", "application/json")
        .body("{\"city\": ")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // Not JSON at all.
    let response = app
        .api(Method::PUT, "/profile", Some(&user.token))
        .body("city=Paris")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;

    assert_eq!(get_profile(&app, &user).await, before);
    assert_eq!(notification_types(&app, &user).await, vec!["SIGNUP"]);
}

async fn another_users_name_conflicts_in_any_case(app: TestApp) {
    app.signup_as("Ada Lovelace", "ada@example.com").await;
    let grace = app.signup_as("Grace Hopper", "grace@example.com").await;
    for taken in [
        "Ada Lovelace",
        "ada lovelace",
        "ADA LOVELACE",
        "  aDa LoVeLaCe  ",
    ] {
        let response =
            put_profile(&app, &grace, &json!({"name": taken, "city": "Arlington"})).await;
        expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    }
    let profile = get_profile(&app, &grace).await;
    assert_eq!(profile["name"], "Grace Hopper");
    assert_eq!(
        profile["city"],
        Value::Null,
        "nothing of a refused update is applied"
    );
    assert_eq!(notification_types(&app, &grace).await, vec!["SIGNUP"]);

    // A free name is fine, and the old one is then free for someone else.
    let body = expect_json(
        put_profile(&app, &grace, &json!({"name": "Amazing Grace"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "Amazing Grace");
    app.signup_as("grace hopper", "hopper@example.com").await;
}

async fn keeping_ones_own_name_in_another_case_is_allowed(app: TestApp) {
    let ada = app.signup_as("Ada Lovelace", "ada@example.com").await;
    app.signup_as("Grace Hopper", "grace@example.com").await;
    let body = expect_json(
        put_profile(&app, &ada, &json!({"name": "ADA LOVELACE"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated_fields(&body), field_set(&["name"]));
    assert_eq!(body["profile"]["name"], "ADA LOVELACE");
    // Setting exactly the current name is allowed too.
    let body = expect_json(
        put_profile(&app, &ada, &json!({"name": "ADA LOVELACE"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "ADA LOVELACE");
    assert_eq!(get_profile(&app, &ada).await["name"], "ADA LOVELACE");
    // And the name, in any case, is still taken for others.
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": "ada lovelace", "email": "other@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
}

async fn names_conflict_regardless_of_case_beyond_ascii(app: TestApp) {
    app.signup_as("Zoë Ångström", "zoe@example.com").await;
    let other = app.signup_as("Someone Else", "else@example.com").await;
    let response = put_profile(&app, &other, &json!({"name": "ZOË ÅNGSTRÖM"})).await;
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    assert_eq!(get_profile(&app, &other).await["name"], "Someone Else");
}

async fn fields_that_are_not_editable_are_never_changed(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let before = get_profile(&app, &user).await;
    let response = put_profile(
        &app,
        &user,
        &json!({
            "city": "London",
            "id": uuid::Uuid::new_v4(),
            "email": "mallory@example.com",
            "is_email_verified": true,
            "profile_photo_url": "/media/../../etc/passwd",
            "created_at": "2000-01-01T00:00:00Z",
            "password": "N3w-Passw0rd!x",
        }),
    )
    .await;
    let status = response.status();
    assert!(
        status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
        "either ignored or refused, got {status}"
    );
    let after = get_profile(&app, &user).await;
    for key in [
        "id",
        "email",
        "is_email_verified",
        "profile_photo_url",
        "created_at",
    ] {
        assert_eq!(after[key], before[key], "{key} is not editable");
    }
    // The password did not change: signing in with the old one still works.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

// ---------------------------------------------------------------------------------------
// The photo

async fn every_accepted_image_format_is_stored_and_served_back(app: TestApp) {
    let user = app.signup("Grace").await;
    let mut previous: Option<String> = None;
    for (format, file_name, mime) in [
        (ImageFormat::Jpeg, "me.jpg", "image/jpeg"),
        (ImageFormat::Png, "me.png", "image/png"),
        (ImageFormat::WebP, "me.webp", "image/webp"),
        (ImageFormat::Gif, "me.gif", "image/gif"),
    ] {
        let bytes = image_bytes(format);
        let body = upload_ok(&app, &user, bytes.clone(), file_name, mime).await;
        let url = body["photo_url"].as_str().unwrap().to_string();
        assert_served(&app, &url, &bytes, mime).await;
        assert_eq!(
            get_profile(&app, &user).await["profile_photo_url"],
            url.as_str()
        );
        if let Some(old) = previous.replace(url.clone()) {
            assert_ne!(old, url, "a new photo gets a new URL");
            assert_gone(&app, &old).await;
        }
        assert_eq!(
            media_files(&app).len(),
            1,
            "only the current photo is kept: {:?}",
            media_files(&app)
        );
    }
}

async fn photo_type_is_detected_from_the_bytes_not_the_name(app: TestApp) {
    let user = app.signup("Grace").await;
    // PNG bytes declared as a GIF.
    let png = image_bytes(ImageFormat::Png);
    let body = upload_ok(&app, &user, png.clone(), "holiday.gif", "image/gif").await;
    assert_served(&app, body["photo_url"].as_str().unwrap(), &png, "image/png").await;
    // JPEG bytes with no useful name or type; a hostile name is not used for storage.
    let jpeg = image_bytes(ImageFormat::Jpeg);
    let body = upload_ok(
        &app,
        &user,
        jpeg.clone(),
        "../../escape.html",
        "application/octet-stream",
    )
    .await;
    let url = body["photo_url"].as_str().unwrap();
    let stored = url.strip_prefix("/media/").unwrap();
    assert!(
        !stored.contains("escape") && !stored.contains('/') && !stored.contains(".."),
        "{url}"
    );
    assert_served(&app, url, &jpeg, "image/jpeg").await;
}

async fn second_upload_replaces_and_removes_the_first(app: TestApp) {
    let user = app.signup("Grace").await;
    let first_bytes = image_bytes(ImageFormat::Png);
    let first = upload_ok(&app, &user, first_bytes.clone(), "one.png", "image/png").await;
    let first_url = first["photo_url"].as_str().unwrap().to_string();
    assert_served(&app, &first_url, &first_bytes, "image/png").await;
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        first_url.as_str()
    );

    // The same picture again still gets a fresh URL and the old one goes away.
    let second_bytes = first_bytes.clone();
    let second = upload_ok(&app, &user, second_bytes.clone(), "one.png", "image/png").await;
    let second_url = second["photo_url"].as_str().unwrap().to_string();
    assert_ne!(first_url, second_url);
    assert_gone(&app, &first_url).await;
    assert_served(&app, &second_url, &second_bytes, "image/png").await;
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        second_url.as_str()
    );
    assert_eq!(media_files(&app).len(), 1, "{:?}", media_files(&app));
}

async fn refused_uploads_leave_the_current_photo_alone(app: TestApp) {
    let user = app.signup("Grace").await;
    let bytes = image_bytes(ImageFormat::WebP);
    let body = upload_ok(&app, &user, bytes.clone(), "me.webp", "image/webp").await;
    let url = body["photo_url"].as_str().unwrap().to_string();

    let response = upload(
        &app,
        Some(&user.token),
        b"just some text".to_vec(),
        "photo.png",
        "image/png",
    )
    .await;
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let mut corrupt = PNG_MAGIC.to_vec();
    corrupt.extend_from_slice(&[0xAB; 200]);
    let response = upload(&app, Some(&user.token), corrupt, "photo.png", "image/png").await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let mut huge = PNG_MAGIC.to_vec();
    huge.resize(6 * 1024 * 1024, 0);
    let response = upload(&app, Some(&user.token), huge, "photo.png", "image/png").await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;

    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        url.as_str()
    );
    assert_served(&app, &url, &bytes, "image/webp").await;
    assert_eq!(
        media_files(&app).len(),
        1,
        "refused uploads leave no files: {:?}",
        media_files(&app)
    );
}

async fn oversized_photos_are_payload_too_large(app: TestApp) {
    let user = app.signup("Grace").await;
    for size in [5 * 1024 * 1024 + 1, 6 * 1024 * 1024] {
        let mut bytes = PNG_MAGIC.to_vec();
        bytes.resize(size, 0x42);
        let response = upload(&app, Some(&user.token), bytes, "big.png", "image/png").await;
        expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    }
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        Value::Null
    );
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
}

async fn photo_just_under_the_limit_is_accepted(app: TestApp) {
    let user = app.signup("Grace").await;
    let bytes = noisy_png_just_under_five_mib();
    assert!(
        bytes.len() > 4_900_000 && bytes.len() <= 5 * 1024 * 1024,
        "test photo is {} bytes",
        bytes.len()
    );
    let body = upload_ok(&app, &user, bytes.clone(), "big.png", "image/png").await;
    assert_served(
        &app,
        body["photo_url"].as_str().unwrap(),
        &bytes,
        "image/png",
    )
    .await;
}

async fn non_images_are_unsupported_media_type(app: TestApp) {
    let user = app.signup("Grace").await;
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 64]);
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "text renamed",
            b"Hello, I am not a picture at all.\n".to_vec(),
            "photo.png",
            "image/png",
        ),
        (
            "svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>"#.to_vec(),
            "photo.svg",
            "image/svg+xml",
        ),
        (
            "pdf",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n".to_vec(),
            "photo.jpg",
            "image/jpeg",
        ),
        ("bmp", bmp, "photo.bmp", "image/bmp"),
        (
            "html",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
            "photo.gif",
            "image/gif",
        ),
    ];
    for (what, bytes, name, mime) in cases {
        let response = upload(&app, Some(&user.token), bytes, name, mime).await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{what}"
        );
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        Value::Null
    );
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
}

async fn corrupt_or_truncated_images_are_unprocessable(app: TestApp) {
    let user = app.signup("Grace").await;
    let png = image_bytes(ImageFormat::Png);
    let jpeg = image_bytes(ImageFormat::Jpeg);
    let gif = image_bytes(ImageFormat::Gif);
    let mut garbage_png = PNG_MAGIC.to_vec();
    garbage_png.extend((0..4096u32).map(|i| (i * 31 % 251) as u8));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("png magic then garbage", garbage_png, "image/png"),
        ("png magic only", PNG_MAGIC.to_vec(), "image/png"),
        ("truncated png", png[..png.len() / 2].to_vec(), "image/png"),
        (
            "truncated jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            "image/jpeg",
        ),
        ("truncated gif", gif[..gif.len() / 2].to_vec(), "image/gif"),
    ];
    for (what, bytes, mime) in cases {
        let response = upload(&app, Some(&user.token), bytes, "photo", mime).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["file"], "{what}: {envelope}");
    }
    // An empty file is not a photo either.
    let response = upload(
        &app,
        Some(&user.token),
        Vec::new(),
        "photo.png",
        "image/png",
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["file"]);

    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        Value::Null
    );
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
}

async fn absurd_dimensions_are_refused(app: TestApp) {
    // The hand-made PNGs are right: the CRC of IEND is the well-known one, and the 1x1
    // picture they make is accepted.
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    let user = app.signup("Grace").await;
    let tiny = crafted_png(1, 1);
    let body = upload_ok(&app, &user, tiny.clone(), "tiny.png", "image/png").await;
    let url = body["photo_url"].as_str().unwrap().to_string();
    assert_served(&app, &url, &tiny, "image/png").await;

    for (width, height) in [(100_000, 100_000), (100_000, 1), (1, 100_000), (0, 0)] {
        let response = upload(
            &app,
            Some(&user.token),
            crafted_png(width, height),
            "bomb.png",
            "image/png",
        )
        .await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            detail_fields(&envelope),
            vec!["file"],
            "{width}x{height}: {envelope}"
        );
    }
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        url.as_str()
    );
    assert_eq!(media_files(&app).len(), 1, "{:?}", media_files(&app));
}

async fn upload_needs_a_multipart_body_with_a_file_field(app: TestApp) {
    let user = app.signup("Grace").await;
    let png = image_bytes(ImageFormat::Png);
    // A form without a `file` field (the photo is under another name).
    let form = Form::new().text("description", "my photo").part(
        "photo",
        Part::bytes(png.clone())
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["file"]);
    // An empty form.
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .multipart(Form::new())
        .send()
        .await
        .unwrap();
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["file"]);
    // The photo as a raw body, and as JSON: not multipart.
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .json(&json!({"file": "iVBORw0KGgo="}))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    // Multipart declared without a boundary.
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .header("content-type", "multipart/form-data")
        .body(png)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status == StatusCode::UNSUPPORTED_MEDIA_TYPE || status == StatusCode::UNPROCESSABLE_ENTITY,
        "a broken multipart body is refused, got {status}"
    );
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        Value::Null
    );
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));

    // The same photo in a proper `file` field, after another field, is accepted.
    let form = Form::new().text("description", "my photo").part(
        "file",
        Part::bytes(image_bytes(ImageFormat::Png))
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let response = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert_served(
        &app,
        body["photo_url"].as_str().unwrap(),
        &image_bytes(ImageFormat::Png),
        "image/png",
    )
    .await;
}

async fn delete_photo_removes_it_and_is_idempotent(app: TestApp) {
    let user = app.signup("Grace").await;
    let bytes = image_bytes(ImageFormat::Gif);
    let body = upload_ok(&app, &user, bytes.clone(), "me.gif", "image/gif").await;
    let url = body["photo_url"].as_str().unwrap().to_string();
    assert_served(&app, &url, &bytes, "image/gif").await;

    for attempt in 1..=2 {
        let response = app
            .api(Method::DELETE, "/profile/photo", Some(&user.token))
            .send()
            .await
            .unwrap();
        let body = expect_json(response, StatusCode::OK).await;
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "attempt {attempt}: {body}"
        );
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_gone(&app, &url).await;
        assert_eq!(
            get_profile(&app, &user).await["profile_photo_url"],
            Value::Null
        );
        assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
    }
    let (status, _, _) = fetch_photo(&app, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A new photo can be uploaded afterwards.
    let bytes = image_bytes(ImageFormat::Png);
    let body = upload_ok(&app, &user, bytes.clone(), "again.png", "image/png").await;
    let again = body["photo_url"].as_str().unwrap();
    assert_served(&app, again, &bytes, "image/png").await;
    assert_eq!(get_profile(&app, &user).await["profile_photo_url"], again);
}

async fn delete_photo_without_a_photo_is_ok(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;
    let response = app
        .api(Method::DELETE, "/profile/photo", Some(&user.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert!(body["message"].is_string(), "{body}");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    let after = get_profile(&app, &user).await;
    assert_eq!(after["profile_photo_url"], Value::Null);
    assert_eq!(after["name"], before["name"]);
}
