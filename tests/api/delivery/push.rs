//! Web push: subscriptions, which notifications are pushed when, and what a push service's
//! answers do. A real push receiver on loopback decrypts every push with the subscription's
//! keys and checks its VAPID signature.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::{expect_error, expect_json, send, TestUser};
use testkit::push::{PushReceiver, TestSubscription};
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, TestApp};

use super::wait_until_settled;
use crate::per_backend;

per_backend!(
    subscriptions_are_saved_listed_and_removed,
    invalid_subscriptions_are_refused_field_by_field,
    a_test_push_arrives_decrypted_and_signed_with_the_servers_key,
    notifications_are_pushed_only_while_no_socket_is_open_and_reminders_always,
    a_subscription_its_push_service_has_forgotten_is_removed,
    a_push_service_outage_is_retried_until_it_passes,
);

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.delivery.push_allow_http = true;
        config.delivery.retry_base = Duration::from_millis(50);
        // A "due soon" reminder that fires after its due date is an overdue one only: five
        // seconds leave a busy machine time to fire it as such.
        config.delivery.reminder_lead = Duration::from_secs(5);
    })
    .await
}

async fn subscribe(app: &TestApp, user: &TestUser, subscription: &TestSubscription) -> Value {
    let response = send(
        app,
        Method::POST,
        "/push/subscribe",
        user,
        Some(subscription.json()),
    )
    .await;
    expect_json(response, StatusCode::CREATED).await
}

fn decoded(messages: &[Vec<u8>]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_slice(m).expect("JSON payload"))
        .collect()
}

async fn subscriptions_are_saved_listed_and_removed(backend: Backend) {
    let app = app(backend).await;
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    let phone = receiver.subscribe();
    let laptop = receiver.subscribe();
    let saved = subscribe(&app, &ada, &phone).await;
    assert_eq!(saved["endpoint"], phone.endpoint.as_str());
    assert!(
        saved["id"].is_string() && saved["created_at"].is_string(),
        "{saved}"
    );
    // The same endpoint again is the same subscription.
    let again = subscribe(&app, &ada, &phone).await;
    assert_eq!(again["id"], saved["id"]);
    subscribe(&app, &ada, &laptop).await;

    let list = expect_json(
        send(&app, Method::GET, "/push/subscriptions", &ada, None).await,
        StatusCode::OK,
    )
    .await;
    let endpoints: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["endpoint"].as_str().expect("endpoint"))
        .collect();
    assert_eq!(
        endpoints,
        vec![phone.endpoint.as_str(), laptop.endpoint.as_str()]
    );
    // The keys stay on the server.
    assert!(
        list[0].get("keys").is_none() && list[0].get("p256dh").is_none(),
        "{list}"
    );

    // Another user sees none of them, and cannot remove them.
    let grace = app.signup("Grace").await;
    let theirs = expect_json(
        send(&app, Method::GET, "/push/subscriptions", &grace, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs, json!([]));
    let body = Some(json!({ "endpoint": phone.endpoint }));
    expect_error(
        send(
            &app,
            Method::DELETE,
            "/push/unsubscribe",
            &grace,
            body.clone(),
        )
        .await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    expect_json(
        send(
            &app,
            Method::DELETE,
            "/push/unsubscribe",
            &ada,
            body.clone(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        send(&app, Method::DELETE, "/push/unsubscribe", &ada, body).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    // The seed's prefix works too, and the key needs no sign-in.
    let key = app
        .client
        .get(app.url("/api/push/vapid-public-key"))
        .send()
        .await
        .expect("key");
    let key = expect_json(key, StatusCode::OK).await;
    assert_eq!(key["public_key"].as_str().map(str::len), Some(87), "{key}");
    expect_error(
        app.api(Method::GET, "/push/subscriptions", None)
            .send()
            .await
            .expect("request"),
        StatusCode::UNAUTHORIZED,
        "AUTH_REQUIRED",
    )
    .await;
}

async fn invalid_subscriptions_are_refused_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await; // https only, as in production
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    let good = receiver.subscribe();
    let cases = [
        (good.json(), "endpoint"), // http://127.0.0.1 is refused in production
        (
            json!({ "keys": { "p256dh": good.p256dh, "auth": good.auth } }),
            "endpoint",
        ),
        (
            json!({ "endpoint": "https://push.example.com/x", "keys": { "p256dh": good.p256dh } }),
            "keys.auth",
        ),
        (
            json!({ "endpoint": "https://push.example.com/x",
                    "keys": { "p256dh": "AAAA", "auth": good.auth } }),
            "keys.p256dh",
        ),
        (
            json!({ "endpoint": "https://push.example.com/x",
                    "keys": { "p256dh": good.p256dh, "auth": "c2hvcnQ" } }),
            "keys.auth",
        ),
        (
            json!({ "endpoint": format!("https://push.example.com/{}", "x".repeat(2100)),
                    "keys": { "p256dh": good.p256dh, "auth": good.auth } }),
            "endpoint",
        ),
    ];
    for (body, field) in cases {
        let refused = expect_error(
            send(
                &app,
                Method::POST,
                "/push/subscribe",
                &ada,
                Some(body.clone()),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            refused["error"]["details"][0]["field"], field,
            "{body} -> {refused}"
        );
    }
    let saved = subscribe(
        &app,
        &ada,
        &TestSubscription {
            endpoint: "https://push.example.com/send/abc".into(),
            ..good
        },
    )
    .await;
    assert_eq!(saved["endpoint"], "https://push.example.com/send/abc");
}

async fn a_test_push_arrives_decrypted_and_signed_with_the_servers_key(backend: Backend) {
    let app = app(backend).await;
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    expect_error(
        send(&app, Method::POST, "/push/test", &ada, None).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    let phone = receiver.subscribe();
    subscribe(&app, &ada, &phone).await;
    let queued = expect_json(
        send(&app, Method::POST, "/push/test", &ada, None).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queued["subscriptions"], 1);
    let messages = receiver
        .wait_for(&phone.id, 1, Duration::from_secs(20))
        .await;
    assert_eq!(decoded(&messages)[0]["type"], "TEST", "{messages:?}");
    let key = expect_json(
        app.api(Method::GET, "/push/vapid-public-key", None)
            .send()
            .await
            .expect("key"),
        StatusCode::OK,
    )
    .await;
    let push = &receiver.received(&phone.id)[0];
    assert_eq!(push.vapid_key, key["public_key"].as_str().expect("key"));
    assert!(push.subject.starts_with("mailto:"), "{}", push.subject);
    assert!(receiver.rejections(&phone.id).is_empty());
}

async fn notifications_are_pushed_only_while_no_socket_is_open_and_reminders_always(
    backend: Backend,
) {
    let app = app(backend).await;
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    let phone = receiver.subscribe();
    subscribe(&app, &ada, &phone).await;

    // With a socket open, the change is seen live: no push.
    let (ws, _) = WsClient::ready(&ws_url(&app.address, None), &ada.token).await;
    app.create_task(&ada, json!({ "title": "Seen live" })).await;
    wait_until_settled(&app).await;
    assert_eq!(receiver.requests(&phone.id), 0);

    // A reminder is pushed even so.
    let due = (chrono::Utc::now() + chrono::Duration::seconds(6)).to_rfc3339();
    app.create_task(&ada, json!({ "title": "Due", "due_date": due }))
        .await;
    let messages = receiver
        .wait_for(&phone.id, 1, Duration::from_secs(20))
        .await;
    let first = &decoded(&messages)[0];
    assert_eq!(first["type"], "TASK_DUE_SOON", "{first}");
    assert!(
        first["body"].as_str().is_some_and(|b| b.contains("Due")),
        "{first}"
    );
    assert!(
        first["notification_id"].is_i64() && first["task_id"].is_i64(),
        "{first}"
    );

    // Socket closed: changes reach the phone (once the server has seen the close, which
    // takes a moment: a change is made every half second until one is pushed; the task's
    // overdue reminder may come in between).
    ws.close().await;
    let missed = |k: &Value| {
        k["type"] == "TASK_CREATED" && k["body"].as_str().is_some_and(|b| b.contains("Missed it"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    let kinds = loop {
        attempt += 1;
        let pushed_before = receiver.messages(&phone.id).len();
        app.create_task(&ada, json!({ "title": format!("Missed it {attempt}") }))
            .await;
        let kinds = decoded(
            &receiver
                .wait_for(&phone.id, pushed_before + 1, Duration::from_millis(500))
                .await,
        );
        if kinds.iter().any(missed) {
            break kinds;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no change made offline was pushed"
        );
    };
    assert!(
        !kinds
            .iter()
            .any(|k| k["body"].as_str().is_some_and(|b| b.contains("Seen live"))),
        "{kinds:?}"
    );
}

async fn a_subscription_its_push_service_has_forgotten_is_removed(backend: Backend) {
    let app = app(backend).await;
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    let old = receiver.subscribe();
    let current = receiver.subscribe();
    subscribe(&app, &ada, &old).await;
    subscribe(&app, &ada, &current).await;
    receiver.unsubscribe(&old.id); // answers 410 from now on
    expect_json(
        send(&app, Method::POST, "/push/test", &ada, None).await,
        StatusCode::ACCEPTED,
    )
    .await;
    receiver
        .wait_for(&current.id, 1, Duration::from_secs(20))
        .await;
    app.wait_for_number("SELECT count(*) FROM push_subscriptions", |n| n == 1)
        .await;
    let list = expect_json(
        send(&app, Method::GET, "/push/subscriptions", &ada, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["endpoint"], current.endpoint.as_str());
}

async fn a_push_service_outage_is_retried_until_it_passes(backend: Backend) {
    let app = app(backend).await;
    let receiver = PushReceiver::start().await;
    let ada = app.signup("Ada").await;
    let phone = receiver.subscribe();
    subscribe(&app, &ada, &phone).await;
    receiver.set_status(&phone.id, StatusCode::SERVICE_UNAVAILABLE);
    expect_json(
        send(&app, Method::POST, "/push/test", &ada, None).await,
        StatusCode::ACCEPTED,
    )
    .await;
    // Two attempts answered 503 (the receiver counts a request and reads its answer in
    // one step; the table's attempt count moves when a worker claims, before it sends).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while receiver.requests(&phone.id) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push was not retried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.accept(&phone.id);
    let messages = receiver
        .wait_for(&phone.id, 1, Duration::from_secs(20))
        .await;
    wait_until_settled(&app).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(decoded(&messages)[0]["type"], "TEST");
    assert!(receiver.requests(&phone.id) >= 3);
}
