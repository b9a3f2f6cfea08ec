use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskstream::config::Secret;
use taskstream::startup::App;

use testkit::api::{expect_error, expect_json};
use testkit::{test_config, Backend, PgDatabase, Server, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    health_reports_the_database,
    request_ids_are_echoed_or_generated,
    unknown_routes_and_methods_use_the_envelope,
    oversized_json_is_refused,
    cors_allows_configured_origins_only,
    openapi_document_lists_every_route,
    docs_page_is_served,
    dashboard_is_served,
    instances_share_the_secret_and_the_data,
);

per_backend!(host_header_is_checked, graceful_shutdown_stops_serving);

async fn health_reports_the_database(app: TestApp) {
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "database": "ok"})
    );
    let response = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Health sits at the root, not under the API prefix.
    let response = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

#[tokio::test]
async fn health_is_503_when_postgres_is_gone() {
    // Only PostgreSQL can lose its database under a running server; an embedded SQLite
    // file stays open in the process.
    let data = tempfile::tempdir().unwrap();
    let db = PgDatabase::create().await;
    let mut config = test_config(data.path());
    config.database.url = Some(db.url.parse().unwrap());
    config.auth.jwt_secret = Some(Secret::new("s".repeat(40)));
    let server = Server::start(&config).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/health", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(db); // DROP DATABASE ... WITH (FORCE): every connection of the server is cut.
    let response = client
        .get(format!("{}/health", server.address))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["database"], "unavailable");
    let response = client
        .get(format!("{}/health/live", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn postgres_without_a_jwt_secret_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let db = PgDatabase::create().await;
    let mut config = test_config(data.path());
    config.database.url = Some(db.url.parse().unwrap());
    config.auth.jwt_secret = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = App::build_with_listener(&config, listener)
        .await
        .err()
        .expect("must fail");
    assert!(error.to_string().contains("JWT_SECRET"), "{error}");
}

#[test]
fn migrate_command_creates_the_embedded_database() {
    let data = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_taskstream"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(data.path().join("taskstream.db").exists());
}

async fn request_ids_are_echoed_or_generated(app: TestApp) {
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id-42");
    let mut seen = BTreeSet::new();
    for path in ["/health", "/api/v1/tasks", "/no/such/route"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        seen.insert(id);
    }
    assert_eq!(seen.len(), 3, "a new id per request");
}

async fn unknown_routes_and_methods_use_the_envelope(app: TestApp) {
    let response = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let response = app
        .client
        .get(app.url("/totally/elsewhere"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let response = app
        .client
        .delete(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    let allow = response.headers().get("allow").cloned();
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    assert!(allow.is_some_and(|a| a.to_str().unwrap().contains("GET")));
    let response = app
        .client
        .get(app.url("/media/does-not-exist.png"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn oversized_json_is_refused(app: TestApp) {
    let user = app.signup("Ada").await;
    let big = json!({"title": "x", "description": "y".repeat(1024 * 1024 + 10)});
    let response = app
        .api(Method::POST, "/tasks", Some(&user.token))
        .json(&big)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
}

async fn cors_allows_configured_origins_only(app: TestApp) {
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/tasks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let response = preflight("http://localhost:3000").await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let allowed = response.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        allowed.contains("PATCH") && allowed.contains("DELETE"),
        "{allowed}"
    );
    let response = preflight("https://evil.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let response = app
        .client
        .get(app.url("/health"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-total-count") && exposed.contains("x-unread-count"),
        "{exposed}"
    );
}

async fn host_header_is_checked(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.http.allowed_hosts = vec!["api.example.com".into()]
    })
    .await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("host", "api.example.com:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn graceful_shutdown_stops_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = App::build_with_listener(&app.config, listener)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", server.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let response = app
        .client
        .get(format!("{address}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(reqwest::Client::new()
        .get(format!("{address}/health"))
        .send()
        .await
        .is_err());
}

/// Every route of the contract, as the OpenAPI document must list it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/contact"),
    ("post", "/api/v1/auth/signin"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/refresh"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/logout-all"),
    ("get", "/api/v1/auth/sessions"),
    ("delete", "/api/v1/auth/sessions/{id}"),
    ("put", "/api/v1/auth/password"),
    ("get", "/api/v1/tasks"),
    ("post", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{id}"),
    ("put", "/api/v1/tasks/{id}"),
    ("patch", "/api/v1/tasks/{id}"),
    ("delete", "/api/v1/tasks/{id}"),
    ("patch", "/api/v1/tasks/{id}/complete"),
    ("post", "/api/v1/tasks/{id}/restore"),
    ("get", "/api/v1/tags"),
    ("get", "/api/v1/notifications"),
    ("delete", "/api/v1/notifications"),
    ("put", "/api/v1/notifications/mark-all-read"),
    ("get", "/api/v1/notifications/unread/count"),
    ("get", "/api/v1/notifications/{id}"),
    ("put", "/api/v1/notifications/{id}"),
    ("delete", "/api/v1/notifications/{id}"),
    ("get", "/api/v1/profile"),
    ("put", "/api/v1/profile"),
    ("post", "/api/v1/profile/upload-photo"),
    ("delete", "/api/v1/profile/photo"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/auth/verify-email/request"),
    ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/password/forgot"),
    ("post", "/api/v1/auth/password/reset"),
    ("post", "/api/v1/push/subscribe"),
    ("delete", "/api/v1/push/unsubscribe"),
    ("get", "/api/v1/push/subscriptions"),
    ("post", "/api/v1/push/test"),
    ("get", "/api/v1/push/vapid-public-key"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{id}"),
    ("patch", "/api/v1/projects/{id}"),
    ("delete", "/api/v1/projects/{id}"),
    ("get", "/api/v1/projects/{id}/members"),
    ("patch", "/api/v1/projects/{id}/members/{user_id}"),
    ("delete", "/api/v1/projects/{id}/members/{user_id}"),
    ("post", "/api/v1/projects/{id}/leave"),
    ("get", "/api/v1/projects/{id}/invitations"),
    ("post", "/api/v1/projects/{id}/invitations"),
    (
        "delete",
        "/api/v1/projects/{id}/invitations/{invitation_id}",
    ),
    ("get", "/api/v1/invitations"),
    ("post", "/api/v1/invitations/{id}/accept"),
    ("post", "/api/v1/invitations/{id}/decline"),
    ("get", "/health"),
    ("get", "/health/live"),
];

async fn openapi_document_lists_every_route(app: TestApp) {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc = expect_json(response, StatusCode::OK).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    // It parses as an OpenAPI document, not just as JSON.
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("valid OpenAPI");
    assert_eq!(parsed.info.title, "taskstream");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    // Protected operations declare the bearer scheme; sign-up does not.
    assert_eq!(
        doc["paths"]["/api/v1/tasks"]["get"]["security"],
        json!([{"bearer": []}])
    );
    assert_eq!(
        doc["paths"]["/api/v1/auth/signup"]["post"]["security"],
        Value::Null
    );
    // It states the real constraints (schemathesis checks the rest in CI): required fields,
    // ranges, and the answers the extractors give on every route.
    assert_eq!(
        doc["components"]["schemas"]["SigninInput"]["required"],
        json!(["email", "password"])
    );
    assert_eq!(
        doc["components"]["schemas"]["TaskInput"]["required"],
        json!(["title"])
    );
    let limit = doc["paths"]["/api/v1/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    assert_eq!(limit["allowEmptyValue"], true);
    let create = &doc["paths"]["/api/v1/tasks"]["post"]["responses"];
    for status in ["201", "401", "413", "415", "422", "429"] {
        assert!(create[status].is_object(), "POST /tasks documents {status}");
    }
    let read = &doc["paths"]["/api/v1/tasks/{id}"]["get"];
    assert!(read["responses"]["422"].is_object());
    assert_eq!(read["parameters"][0]["schema"]["minimum"], 1);
    assert!(doc["paths"]["/api/v1/auth/signup"]["post"]["responses"]["401"].is_null());
    // And the document the code generates is the one served.
    assert_eq!(
        serde_json::to_value(taskstream::http::openapi()).unwrap(),
        doc
    );
}

async fn docs_page_is_served(app: TestApp) {
    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The page's assets are served locally (no CDN).
    assert!(!html.contains("https://"), "no external assets: {html}");
    let response = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// The dashboard (`/`, and the pages mails link to) is a page, not an API operation: it is
/// not in the OpenAPI document, and it never takes the API's routes. Its behaviour is
/// tested in a real browser (dashboard/test).
async fn dashboard_is_served(app: TestApp) {
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let mut assets = BTreeSet::new();
    for path in ["/", "/verify-email?token=abc", "/reset-password?token=abc"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        let policy = header(&response, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("https://"), "nothing from elsewhere: {html}");
        assets.extend(
            html.split("\"assets/")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .map(|asset| format!("/assets/{asset}")),
        );
    }
    assert!(assets.iter().any(|a| a.ends_with("/app.js")), "{assets:?}");
    for asset in &assets {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let etag = header(&response, "etag");
        let again = app
            .client
            .get(app.url(asset))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
    }
    let script = assets.iter().find(|a| a.ends_with("/app.js")).unwrap();
    let response = app.client.get(app.url(script)).send().await.unwrap();
    assert_eq!(
        header(&response, "content-type"),
        "text/javascript; charset=utf-8"
    );
    // Another version's name is not this file (it would be cached for good).
    let stale = script.replacen("/assets/", "/assets/0", 1);
    let response = app.client.get(app.url(&stale)).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    // The protocol, read-only, for the page's link.
    let response = app
        .client
        .get(app.url("/protocol/asyncapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().starts_with("asyncapi: 3"));
    let response = app.client.post(app.url("/")).send().await.unwrap();
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
}

async fn instances_share_the_secret_and_the_data(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(&user, json!({"title": "Seen everywhere"}))
        .await;
    let other = app.spawn_sibling(|_| {}).await;
    let response = app
        .client
        .get(format!("{}/api/v1/tasks/{}", other.address, task["id"]))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, StatusCode::OK).await, task);
}
