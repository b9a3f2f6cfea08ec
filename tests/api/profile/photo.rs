//! The photo: stored and served back, replaced, deleted.

use image::ImageFormat;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::api::profile::{fetch_photo, get_profile, upload_ok};
use testkit::api::{expect_error, expect_json};
use testkit::TestApp;

use super::images::image_bytes;
use super::{assert_served, media_files};
use crate::backend_tests;

backend_tests!(
    every_accepted_image_format_is_stored_and_served_back,
    photo_type_is_detected_from_the_bytes_not_the_name,
    second_upload_replaces_and_removes_the_first,
    delete_photo_removes_it_and_is_idempotent,
    delete_photo_without_a_photo_is_ok,
);

async fn assert_gone(app: &TestApp, url: &str) {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

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
    let stored = url.rsplit_once("/media/").unwrap().1;
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
