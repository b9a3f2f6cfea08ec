//! `/profile`: reading and updating the profile fields, uploading, serving and removing
//! the profile photo.

mod fields;
mod images;
mod names;
mod photo;
mod photo_reencoded;
mod photo_refused;
mod photo_urls;
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

/// Longest side of a stored photo and of its thumbnail (see src/service/media.rs).
const STORED_MAX_SIDE: u32 = 1024;
const THUMBNAIL_MAX_SIDE: u32 = 128;

/// Asserts that `url` serves, as `content_type`, the uploaded picture `uploaded`
/// re-encoded, scaled down to at most 1024 px on its longest side, and that its thumbnail
/// is served too. (It used to assert the served bytes equal the uploaded ones; the issue
/// requires storing a re-encoded image instead. The bytes may still coincide when the
/// upload came from the same encoder, as the test pictures do; photo_reencoded.rs shows
/// the re-encoding with an upload that carries metadata.)
async fn assert_served(app: &TestApp, url: &str, uploaded: &[u8], content_type: &str) {
    let served = fetch_checked(app, url, content_type).await;
    let original = image::load_from_memory(uploaded).unwrap();
    let stored = image::load_from_memory(&served).unwrap();
    let fits = |image: &image::DynamicImage, side: u32| {
        let (w, h) = (image.width(), image.height());
        if w.max(h) <= side {
            (w, h)
        } else {
            // Aspect ratio kept (to the pixel).
            (
                stored_side(w, w.max(h), side),
                stored_side(h, w.max(h), side),
            )
        }
    };
    let (w, h) = fits(&original, STORED_MAX_SIDE);
    assert!(
        stored.width().abs_diff(w) <= 1 && stored.height().abs_diff(h) <= 1,
        "{url}: {}x{} stored for {}x{}",
        stored.width(),
        stored.height(),
        original.width(),
        original.height()
    );
    let thumb_url = thumbnail_url(url);
    let thumb =
        image::load_from_memory(&fetch_checked(app, &thumb_url, content_type).await).unwrap();
    let (w, h) = fits(&stored, THUMBNAIL_MAX_SIDE);
    assert!(
        thumb.width().abs_diff(w) <= 1 && thumb.height().abs_diff(h) <= 1,
        "{thumb_url}: {}x{}",
        thumb.width(),
        thumb.height()
    );
}

fn stored_side(side: u32, longest: u32, max: u32) -> u32 {
    (u64::from(side) * u64::from(max) / u64::from(longest)).max(1) as u32
}

/// `…/media/<file>` -> `…/media/thumbs/<file>`.
fn thumbnail_url(url: &str) -> String {
    let (origin, name) = url.rsplit_once("/media/").unwrap();
    format!("{origin}/media/thumbs/{name}")
}

/// GETs `url`, checks its status, type and nosniff, and returns the body.
async fn fetch_checked(app: &TestApp, url: &str, content_type: &str) -> Vec<u8> {
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
    response.bytes().await.unwrap().to_vec()
}

/// The photos in the media folder (files only: thumbnails live in its `thumbs` folder).
fn media_files(app: &TestApp) -> Vec<String> {
    files_in(&app.config.media_dir())
}

/// The thumbnails in the media folder's `thumbs` folder.
fn thumbnail_files(app: &TestApp) -> Vec<String> {
    files_in(&app.config.media_dir().join("thumbs"))
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
