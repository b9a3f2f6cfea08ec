//! `/profile`: reading and updating the profile fields, uploading, serving and removing
//! the profile photo.

mod fields;
mod images;
mod names;
mod photo;
mod photo_refused;
mod reading;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use testkit::TestApp;

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
