//! The dashboard: a plain page (no framework, no build step) built on the JavaScript client
//! of `clients/js`, served at `/` and at the pages mails link to (`/verify-email`,
//! `/reset-password`), which the page handles itself. Its files (`dashboard/public/`), the
//! client (`clients/js/src/`) and, read-only for the page's link, the WebSocket protocol
//! (`protocol/`) are embedded in release builds; debug builds read them from the source
//! tree when asked (rust-embed's default), so editing the page needs no rebuild.
//!
//! Caching: the page's assets and the client live under `/assets/<version>/`, where
//! `<version>` hashes every one of those files, so they are cached for a year
//! (`immutable`); the page itself is `no-cache` (revalidated by its ETag), so a new binary's
//! page names its new assets at once. `/assets` and `/protocol` cannot meet the API's
//! routes (`/api/...`, `/health`, `/docs`, `/media`).

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::error::Error;

#[derive(RustEmbed)]
#[folder = "dashboard/public/"]
struct PageFiles;

#[derive(RustEmbed)]
#[folder = "clients/js/src/"]
struct ClientFiles;

#[derive(RustEmbed)]
#[folder = "protocol/"]
struct ProtocolFiles;

/// Where the page's assets are served; the client's files are under `client/` there.
const ASSETS: &str = "/assets";
/// The marker in `index.html` replaced by the assets' version.
const VERSION_MARKER: &str = "{{version}}";

/// What the page may load and connect to: only this origin (`'self'` covers its own
/// `ws:`/`wss:` in CSP 3), no inline script or style, never framed.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
const REVALIDATE: &str = "no-cache";
const FOREVER: &str = "public, max-age=31536000, immutable";

/// The dashboard's routes (stateless: merged into any router).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/verify-email", get(page))
        .route("/reset-password", get(page))
        .route(&format!("{ASSETS}/{{version}}/{{*path}}"), get(asset))
        .route("/protocol/{*path}", get(protocol))
}

/// `index.html` with its assets' version filled in, computed once.
struct Page {
    version: String,
    html: Option<(Vec<u8>, HeaderValue)>,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let version = assets_version();
    let html = PageFiles::get("index.html").map(|file| {
        let html = String::from_utf8_lossy(&file.data).replace(VERSION_MARKER, &version);
        let etag = etag_of(&Sha256::digest(html.as_bytes()).into());
        (html.into_bytes(), etag)
    });
    Page { version, html }
});

/// A hash of every asset's name and content: it changes whenever one of them does.
fn assets_version() -> String {
    let mut files: Vec<(String, [u8; 32])> = PageFiles::iter()
        .filter_map(|name| PageFiles::get(&name).map(|f| (name.into_owned(), f.metadata.sha256_hash())))
        .chain(ClientFiles::iter().filter_map(|name| {
            ClientFiles::get(&name).map(|f| (format!("client/{name}"), f.metadata.sha256_hash()))
        }))
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for (name, content) in &files {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(content);
    }
    hex::encode(&hash.finalize()[..6])
}

/// A strong ETag from a content hash (its first 16 bytes are plenty).
fn etag_of(sha256: &[u8; 32]) -> HeaderValue {
    // Hex digits between quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&sha256[..16])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

async fn page(headers: HeaderMap) -> Response {
    let Some((html, etag)) = &PAGE.html else {
        return Error::Internal(anyhow::anyhow!("the dashboard's index.html is missing")).into_response();
    };
    let mut response = cached(
        &headers,
        etag,
        REVALIDATE,
        "text/html; charset=utf-8",
        Cow::Borrowed(html.as_slice()),
    );
    let set = response.headers_mut();
    set.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    set.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The mail links carry their token in the query: it must not travel any further.
    set.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    set.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn asset(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    // Another version's file would be cached forever under the wrong name.
    if version != PAGE.version {
        return Error::NotFound("No such asset (the page was updated: reload it)".into()).into_response();
    }
    let file = match path.strip_prefix("client/") {
        Some(client) => ClientFiles::get(client),
        None if path == "index.html" => None,
        None => PageFiles::get(&path),
    };
    match file {
        Some(file) => {
            let etag = etag_of(&file.metadata.sha256_hash());
            cached(&headers, &etag, FOREVER, content_type(&path), file.data)
        }
        None => Error::NotFound("No such asset".into()).into_response(),
    }
}

async fn protocol(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ProtocolFiles::get(&path) {
        Some(file) => {
            let etag = etag_of(&file.metadata.sha256_hash());
            cached(&headers, &etag, REVALIDATE, content_type(&path), file.data)
        }
        None => Error::NotFound("No such protocol file".into()).into_response(),
    }
}

/// The file, or 304 when the client's copy (`If-None-Match`) is this one.
fn cached(
    request: &HeaderMap,
    etag: &HeaderValue,
    cache_control: &'static str,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
) -> Response {
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Body::from(body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let set = response.headers_mut();
    set.insert(ETAG, etag.clone());
    set.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    set.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// By extension; the protocol's YAML and Markdown as plain text, so that a browser shows
/// them rather than downloading them.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("yaml" | "yml" | "md" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_and_they_exist() {
        let (html, _) = PAGE.html.as_ref().expect("index.html is embedded");
        let html = String::from_utf8_lossy(html);
        assert!(!html.contains(VERSION_MARKER), "the marker is replaced");
        let prefix = format!("assets/{}/", PAGE.version);
        let named: Vec<&str> = html
            .split(&prefix)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(named.contains(&"app.js") && named.contains(&"style.css"), "{named:?}");
        for name in named {
            let found = match name.strip_prefix("client/") {
                Some(client) => ClientFiles::get(client).is_some(),
                None => PageFiles::get(name).is_some(),
            };
            assert!(found, "{name} is named by index.html but not embedded");
        }
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("client/socket.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("asyncapi.yaml"), "text/plain; charset=utf-8");
        assert_eq!(content_type("schemas/server/ready.json"), "application/json");
        assert_eq!(content_type("noextension"), "application/octet-stream");
    }

    #[test]
    fn an_etag_in_if_none_match_gives_304() {
        let etag = etag_of(&[7; 32]);
        let mut request = HeaderMap::new();
        let response = cached(&request, &etag, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(response.status(), StatusCode::OK);
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\", W/\"0707\""));
        let other = cached(&request, &etag, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(other.status(), StatusCode::OK);
        request.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", {}", etag.to_str().unwrap())).unwrap(),
        );
        let response = cached(&request, &etag, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[ETAG], etag);
    }
}
