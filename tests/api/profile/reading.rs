//! Reading the profile: every field, and only one's own.

use std::collections::BTreeSet;

use image::ImageFormat;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::notification_types;
use testkit::api::profile::{get_profile, put_profile, upload, upload_ok};
use testkit::api::{expect_error, expect_json};
use testkit::TestApp;

use super::images::image_bytes;
use super::{assert_served, field_set, media_files};
use crate::backend_tests;

backend_tests!(
    get_returns_the_callers_full_profile,
    users_only_ever_see_their_own_profile,
    every_profile_route_requires_a_token,
);

const PROFILE_KEYS: [&str; 17] = [
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
    "email_reminders",
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
