//! Photo URLs are absolute, so that a front-end served from another origin loads them from
//! this server: on `PUBLIC_URL` when it is set, else on the origin the request reached.
//! The same URL is in every answer that carries it and in the `profile.updated` event.

use image::ImageFormat;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::profile::{fetch_photo, get_profile, upload};
use testkit::api::{expect_json, TestUser};
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, TestApp};

use super::images::image_bytes;
use crate::per_backend;

per_backend!(
    photo_urls_are_absolute_on_the_request_origin_everywhere,
    public_url_decides_the_origin_when_set,
    only_a_trusted_proxy_sets_the_scheme,
);

/// Uploads a PNG with `headers` on the request; returns the answer's body.
async fn upload_with(app: &TestApp, user: &TestUser, headers: &[(&str, &str)]) -> Value {
    let part = reqwest::multipart::Part::bytes(image_bytes(ImageFormat::Png))
        .file_name("me.png")
        .mime_str("image/png")
        .expect("mime");
    let mut request = app
        .api(Method::POST, "/profile/upload-photo", Some(&user.token))
        .multipart(reqwest::multipart::Form::new().part("file", part));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    expect_json(request.send().await.expect("upload"), StatusCode::OK).await
}

/// `GET /auth/me`'s `profile_photo_url`.
async fn me_photo(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .expect("me");
    expect_json(response, StatusCode::OK).await["profile_photo_url"].clone()
}

async fn photo_urls_are_absolute_on_the_request_origin_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("Ada").await;
    let (mut socket, _) = WsClient::ready(&ws_url(&app.address, None), &ada.token).await;

    let response = upload(
        &app,
        Some(&ada.token),
        image_bytes(ImageFormat::Png),
        "me.png",
        "image/png",
    )
    .await;
    let body = expect_json(response, StatusCode::OK).await;
    let url = body["photo_url"].as_str().expect("photo_url").to_string();
    let media = format!("{}/media/", app.address);
    assert!(url.starts_with(&media), "{url}");
    let thumbnail = body["thumbnail_url"].as_str().expect("thumbnail_url");
    assert!(
        thumbnail.starts_with(&format!("{media}thumbs/")),
        "{thumbnail}"
    );

    // Loadable from anywhere as it is.
    let (status, content_type, _) = fetch_photo(&app, &url).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "image/png")
    );
    let (status, _, _) = fetch_photo(&app, thumbnail).await;
    assert_eq!(status, StatusCode::OK);

    // The same URL in every answer and in the event.
    assert_eq!(
        get_profile(&app, &ada).await["profile_photo_url"],
        url.as_str()
    );
    assert_eq!(me_photo(&app, &ada).await, url.as_str());
    let signin = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({ "email": ada.email, "password": ada.password }))
        .send()
        .await
        .expect("signin");
    let signin = expect_json(signin, StatusCode::OK).await;
    assert_eq!(signin["user"]["profile_photo_url"], url.as_str());
    let refreshed = app
        .api(Method::POST, "/auth/refresh", Some(&ada.token))
        .send()
        .await
        .expect("refresh");
    let refreshed = expect_json(refreshed, StatusCode::OK).await;
    assert_eq!(refreshed["user"]["profile_photo_url"], url.as_str());

    let events = socket.events(2).await;
    let profile_event = events
        .iter()
        .find(|e| e["event"] == "profile.updated")
        .unwrap_or_else(|| panic!("no profile.updated in {events:?}"));
    assert_eq!(profile_event["data"]["profile_photo_url"], url.as_str());

    // Another host name reaching the same server gets URLs on that name.
    let ada = TestUser {
        token: refreshed["token"].as_str().expect("token").to_string(),
        ..ada
    };
    let port = app.address.rsplit(':').next().expect("port");
    let other = format!("localhost:{port}");
    let body = upload_with(&app, &ada, &[("host", &other)]).await;
    let url = body["photo_url"].as_str().expect("photo_url");
    assert!(url.starts_with(&format!("http://{other}/media/")), "{url}");
    // A Host that is not a plain name never makes it into a URL: it stays relative.
    let body = upload_with(&app, &ada, &[("host", "bad_name.example")]).await;
    let url = body["photo_url"].as_str().expect("photo_url");
    assert!(url.starts_with("/media/"), "{url}");
}

async fn public_url_decides_the_origin_when_set(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.http.public_url = Some("https://tasks.example.com/root".into());
    })
    .await;
    let ada = app.signup("Ada").await;
    let (mut socket, _) = WsClient::ready(&ws_url(&app.address, None), &ada.token).await;
    let body = upload_with(&app, &ada, &[("host", "localhost")]).await;
    let url = body["photo_url"].as_str().expect("photo_url");
    assert!(
        url.starts_with("https://tasks.example.com/root/media/"),
        "{url}"
    );
    assert!(
        body["thumbnail_url"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://tasks.example.com/root/media/thumbs/")),
        "{body}"
    );
    assert_eq!(get_profile(&app, &ada).await["profile_photo_url"], url);
    let events = socket.events(2).await;
    assert_eq!(events[0]["data"]["profile_photo_url"], url, "{events:?}");
}

async fn only_a_trusted_proxy_sets_the_scheme(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("Ada").await;
    let body = upload_with(&app, &ada, &[("x-forwarded-proto", "https")]).await;
    let url = body["photo_url"].as_str().expect("photo_url");
    assert!(
        url.starts_with("http://"),
        "an untrusted peer's header is ignored: {url}"
    );

    let app = TestApp::spawn_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let ada = app.signup("Ada").await;
    let body = upload_with(&app, &ada, &[("x-forwarded-proto", "https")]).await;
    let url = body["photo_url"].as_str().expect("photo_url");
    let host = app.address.trim_start_matches("http://");
    assert!(url.starts_with(&format!("https://{host}/media/")), "{url}");
}
