//! `POST /contact`: the seed front-end's contact form, without an account, stored, and
//! limited per client address.

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::{Backend, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    a_message_is_stored_under_both_prefixes,
    invalid_messages_are_refused_field_by_field,
);
per_backend!(messages_are_limited_per_address);

fn message(subject: &str) -> Value {
    json!({
        "name": "  Ada Lovelace ",
        "email": "Ada@Example.com",
        "subject": subject,
        "message": "Hello,\nthe board is great.\n\tAda",
    })
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("user-agent", "contact-test/1.0")
        .json(body)
        .send()
        .await
        .expect("contact")
}

/// A column of the stored message, read from the database directly.
async fn stored(app: &TestApp, id: &str, column: &str) -> Option<String> {
    app.sql_for_user(
        &format!("SELECT {column} FROM contact_messages WHERE id = $1"),
        id,
    )
    .await
}

async fn a_message_is_stored_under_both_prefixes(app: TestApp) {
    for (path, subject) in [("/api/contact", "From the seed"), ("/api/v1/contact", "v1")] {
        let receipt = expect_json(
            post(&app, path, &message(subject)).await,
            StatusCode::CREATED,
        )
        .await;
        let id = receipt["id"].as_str().expect("id").to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{receipt}");
        assert!(
            receipt["received_at"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "{receipt}"
        );
        assert_eq!(stored(&app, &id, "subject").await.as_deref(), Some(subject));
        assert_eq!(
            stored(&app, &id, "name").await.as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            stored(&app, &id, "email").await.as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(
            stored(&app, &id, "message").await.as_deref(),
            Some("Hello,\nthe board is great.\n\tAda")
        );
        assert_eq!(stored(&app, &id, "ip").await.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            stored(&app, &id, "user_agent").await.as_deref(),
            Some("contact-test/1.0")
        );
    }
}

async fn invalid_messages_are_refused_field_by_field(app: TestApp) {
    let refused = expect_error(
        post(&app, "/api/contact", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let mut fields = detail_fields(&refused);
    fields.sort();
    assert_eq!(fields, ["email", "message", "name", "subject"]);

    for (field, value) in [
        ("name", json!("   ")),
        ("name", json!("n".repeat(101))),
        ("email", json!("not an address")),
        ("subject", json!("s".repeat(201))),
        ("subject", json!("bell\u{7}")),
        ("message", json!("m".repeat(5001))),
        ("message", json!("nul\u{0}byte")),
        ("message", json!(42)),
    ] {
        let mut body = message("Fine");
        body[field] = value;
        let response = post(&app, "/api/contact", &body).await;
        if body[field].is_number() {
            // Not a string at all: the body does not have the form's shape.
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            continue;
        }
        let refused = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&refused), [field], "{refused}");
    }

    // Not JSON at all.
    let response = app
        .client
        .post(app.url("/api/contact"))
        .body("name=Ada")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("contact");
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    // Nothing was stored by any of these.
    let count = app
        .sql_for_user(
            "SELECT CAST(count(*) AS TEXT) FROM contact_messages WHERE $1 IS NOT NULL",
            &uuid::Uuid::nil().to_string(),
        )
        .await;
    assert_eq!(count.as_deref(), Some("0"));
}

async fn messages_are_limited_per_address(backend: Backend) {
    let limits = "contact=2/1h".parse().expect("RATE_LIMITS");
    let app = TestApp::spawn_with(backend, |c| c.limits.rate_limits = limits).await;
    for n in 0..2 {
        let response = post(&app, "/api/contact", &message(&format!("Try {n}"))).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response
                .headers()
                .get("ratelimit-limit")
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );
    }
    let response = post(&app, "/api/contact", &message("One too many")).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
}
