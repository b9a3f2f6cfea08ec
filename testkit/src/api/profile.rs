//! `/profile` and its photo.

use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::{expect_json, ApiClient, TestUser};

/// `GET /profile`, which must succeed.
pub async fn get_profile(api: &ApiClient, user: &TestUser) -> Value {
    let response = api
        .api(Method::GET, "/profile", Some(&user.token))
        .send()
        .await
        .expect("get profile");
    expect_json(response, StatusCode::OK).await
}

pub async fn put_profile(api: &ApiClient, user: &TestUser, body: &Value) -> Response {
    api.api(Method::PUT, "/profile", Some(&user.token))
        .json(body)
        .send()
        .await
        .expect("put profile")
}

/// `POST /profile/upload-photo` with `bytes` as the `file` part.
pub async fn upload(
    api: &ApiClient,
    token: Option<&str>,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> Response {
    let part = Part::bytes(bytes)
        .file_name(file_name.to_string())
        .mime_str(mime)
        .expect("mime type");
    api.api(Method::POST, "/profile/upload-photo", token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("upload photo")
}

/// Uploads a photo that must be accepted; returns the response body.
pub async fn upload_ok(
    api: &ApiClient,
    user: &TestUser,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> Value {
    let response = upload(api, Some(&user.token), bytes, file_name, mime).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let url = body["photo_url"]
        .as_str()
        .unwrap_or_else(|| panic!("photo_url: {body}"));
    // Absolute, so that a front-end on another origin can load it.
    let media = format!("{}/media/", api.address);
    assert!(url.starts_with(&media), "{url}");
    let thumbnail = body["thumbnail_url"].as_str().unwrap_or_default();
    assert!(thumbnail.starts_with(&format!("{media}thumbs/")), "{body}");
    let uploaded_at = body["uploaded_at"].as_str().expect("uploaded_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(uploaded_at).is_ok(),
        "{uploaded_at}"
    );
    body
}

/// Fetches a served photo: status, content type and bytes.
pub async fn fetch_photo(api: &ApiClient, url: &str) -> (StatusCode, String, Vec<u8>) {
    let response = api
        .client
        .get(api.url(url))
        .send()
        .await
        .expect("fetch photo");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("header text").to_string())
        .unwrap_or_default();
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, content_type, bytes)
}
