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
//! routes (`/api/...`, `/health`, `/docs`, `/media`). Text files go gzipped to clients
//! that accept it, each compressed once (at its first request).

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dashmap::DashMap;
use flate2::write::GzEncoder;
use flate2::Compression;
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
    html: Option<(Vec<u8>, [u8; 32])>,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let version = assets_version();
    let html = PageFiles::get("index.html").map(|file| {
        let html = String::from_utf8_lossy(&file.data).replace(VERSION_MARKER, &version);
        let hash = Sha256::digest(html.as_bytes()).into();
        (html.into_bytes(), hash)
    });
    Page { version, html }
});

/// Gzipped copies of the files served, by content hash: as many as there are files.
static GZIPPED: LazyLock<DashMap<[u8; 32], Arc<[u8]>>> = LazyLock::new(DashMap::new);

/// A hash of every asset's name and content: it changes whenever one of them does.
fn assets_version() -> String {
    let mut files: Vec<(String, [u8; 32])> = PageFiles::iter()
        .filter_map(|name| {
            PageFiles::get(&name).map(|f| (name.into_owned(), f.metadata.sha256_hash()))
        })
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

/// A strong ETag from a content hash (its first 16 bytes are plenty) and the encoding:
/// each representation has its own.
fn etag_of(sha256: &[u8; 32], gzip: bool) -> HeaderValue {
    let suffix = if gzip { "-gzip" } else { "" };
    // Hex digits between quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{}{suffix}\"", hex::encode(&sha256[..16])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

async fn page(headers: HeaderMap) -> Response {
    let Some((html, hash)) = &PAGE.html else {
        return Error::Internal(anyhow::anyhow!("the dashboard's index.html is missing"))
            .into_response();
    };
    let mut response = cached(
        &headers,
        hash,
        REVALIDATE,
        "text/html; charset=utf-8",
        Cow::Borrowed(html.as_slice()),
    );
    let set = response.headers_mut();
    set.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
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
        return Error::NotFound("No such asset (the page was updated: reload it)".into())
            .into_response();
    }
    let file = match path.strip_prefix("client/") {
        Some(client) => ClientFiles::get(client),
        None if path == "index.html" => None,
        None => PageFiles::get(&path),
    };
    match file {
        Some(file) => cached(
            &headers,
            &file.metadata.sha256_hash(),
            FOREVER,
            content_type(&path),
            file.data,
        ),
        None => Error::NotFound("No such asset".into()).into_response(),
    }
}

async fn protocol(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ProtocolFiles::get(&path) {
        Some(file) => cached(
            &headers,
            &file.metadata.sha256_hash(),
            REVALIDATE,
            content_type(&path),
            file.data,
        ),
        None => Error::NotFound("No such protocol file".into()).into_response(),
    }
}

/// The file (gzipped when the client takes it and it is worth it), or 304 when the
/// client's copy (`If-None-Match`) is this one.
fn cached(
    request: &HeaderMap,
    hash: &[u8; 32],
    cache_control: &'static str,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
) -> Response {
    let gzipped = (compressible(content_type) && body.len() > 1024 && accepts_gzip(request))
        .then(|| gzipped(hash, &body))
        .flatten();
    let etag = etag_of(hash, gzipped.is_some());
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
        let mut response = match &gzipped {
            Some(gzipped) => Body::from(gzipped.to_vec()).into_response(),
            None => Body::from(body).into_response(),
        };
        let set = response.headers_mut();
        set.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzipped.is_some() {
            set.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let set = response.headers_mut();
    set.insert(ETAG, etag);
    set.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    set.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if compressible(content_type) {
        set.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg+xml")
}

/// Whether `Accept-Encoding` takes gzip (by name or `*`, with a non-zero weight).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The gzipped copy of `body`, made at its first request; `None` if compressing failed
/// (the file then goes as it is).
fn gzipped(hash: &[u8; 32], body: &[u8]) -> Option<Arc<[u8]>> {
    if let Some(known) = GZIPPED.get(hash) {
        return Some(known.clone());
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::best());
    let compressed: Arc<[u8]> = encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .ok()?
        .into();
    GZIPPED.insert(*hash, compressed.clone());
    Some(compressed)
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
        assert!(
            named.contains(&"app.js") && named.contains(&"style.css"),
            "{named:?}"
        );
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
        assert_eq!(
            content_type("client/socket.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("asyncapi.yaml"), "text/plain; charset=utf-8");
        assert_eq!(
            content_type("schemas/server/ready.json"),
            "application/json"
        );
        assert_eq!(content_type("noextension"), "application/octet-stream");
    }

    #[test]
    fn an_etag_in_if_none_match_gives_304() {
        let hash = [7; 32];
        let etag = etag_of(&hash, false);
        let mut request = HeaderMap::new();
        let response = cached(&request, &hash, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[ETAG], etag);
        request.insert(
            IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"0707\""),
        );
        let other = cached(&request, &hash, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(other.status(), StatusCode::OK);
        request.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", {}", etag.to_str().unwrap())).unwrap(),
        );
        let response = cached(&request, &hash, FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[ETAG], etag);
    }

    #[test]
    fn gzip_when_accepted_with_its_own_etag() {
        use std::io::Read;

        let text = "body { color: red; }\n".repeat(100);
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let body = || Cow::Owned(text.clone().into_bytes());
        let mut request = HeaderMap::new();
        let plain = cached(&request, &hash, FOREVER, "text/css", body());
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[VARY], "accept-encoding");

        request.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        let refused = cached(&request, &hash, FOREVER, "text/css", body());
        assert!(refused.headers().get(CONTENT_ENCODING).is_none());

        request.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, GZIP;q=0.5"),
        );
        let gzipped = cached(&request, &hash, FOREVER, "text/css", body());
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        let etag = gzipped.headers()[ETAG].clone();
        assert_ne!(etag, plain.headers()[ETAG]);
        let bytes = GZIPPED.get(&hash).expect("kept").clone();
        assert!(bytes.len() < text.len() / 10, "{} bytes", bytes.len());
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut unzipped)
            .expect("gzip");
        assert_eq!(unzipped, text);

        request.insert(IF_NONE_MATCH, etag);
        let fresh = cached(&request, &hash, FOREVER, "text/css", body());
        assert_eq!(fresh.status(), StatusCode::NOT_MODIFIED);
        // Small files and images go as they are.
        let small = cached(&request, &[1; 32], FOREVER, "text/css", Cow::Borrowed(b"x"));
        assert!(small.headers().get(CONTENT_ENCODING).is_none());
    }
}
