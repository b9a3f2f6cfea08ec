//! The uploads refused, and what a refusal leaves alone.

use image::ImageFormat;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::profile::{get_profile, upload, upload_ok};
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::TestApp;

use super::images::{crafted_png, crc32, image_bytes, noisy_png_just_under_five_mib, PNG_MAGIC};
use super::{assert_served, media_files};
use crate::backend_tests;

backend_tests!(
    refused_uploads_leave_the_current_photo_alone,
    oversized_photos_are_payload_too_large,
    photo_just_under_the_limit_is_accepted,
    non_images_are_unsupported_media_type,
    corrupt_or_truncated_images_are_unprocessable,
    absurd_dimensions_are_refused,
    upload_needs_a_multipart_body_with_a_file_field,
);

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
