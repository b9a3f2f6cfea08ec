//! What an account may hold: tasks up to MAX_TASKS_PER_USER (then 409 `QUOTA_EXCEEDED`),
//! notifications up to MAX_NOTIFICATIONS_PER_USER (the oldest are pruned) and for
//! NOTIFICATION_RETENTION (a sweep deletes older ones). Every pruned notification is
//! announced in the user's stream.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::{all, id_of, list};
use testkit::api::tasks::{create_tasks, delete_task};
use testkit::api::{expect_error, expect_json, send, ApiClient, TestUser};
use testkit::{Backend, TestApp};

use crate::per_backend;

per_backend!(
    tasks_past_the_quota_are_refused,
    concurrent_creations_cannot_pass_the_quota,
    notifications_past_the_quota_are_pruned_oldest_first,
    expired_notifications_are_swept_with_their_events,
);

async fn create(app: &TestApp, user: &TestUser, title: &str) -> reqwest::Response {
    send(
        app,
        Method::POST,
        "/tasks",
        user,
        Some(json!({ "title": title })),
    )
    .await
}

/// The user's events after `since`, through `GET /events`.
async fn events_after(api: &ApiClient, user: &TestUser, since: i64) -> Vec<Value> {
    let response = send(
        api,
        Method::GET,
        &format!("/events?since={since}&limit=1000"),
        user,
        None,
    )
    .await;
    let page = expect_json(response, StatusCode::OK).await;
    page["events"].as_array().cloned().unwrap_or_default()
}

fn deleted_ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["event"] == "notification.deleted")
        .map(|e| e["data"]["id"].as_i64().expect("id"))
        .collect()
}

async fn tasks_past_the_quota_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.quotas.max_tasks_per_user = 3).await;
    let ada = app.signup("Ada").await;
    let ids = create_tasks(&app, &ada, 3).await;

    let refused = expect_error(
        create(&app, &ada, "One too many").await,
        StatusCode::CONFLICT,
        "QUOTA_EXCEEDED",
    )
    .await;
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains('3'),
        "the message names the quota: {message}"
    );

    // The trash still holds the task: it counts.
    delete_task(&app, &ada, ids[0], "").await;
    expect_error(
        create(&app, &ada, "Still too many").await,
        StatusCode::CONFLICT,
        "QUOTA_EXCEEDED",
    )
    .await;

    // Deleted for good, it frees its place.
    delete_task(&app, &ada, ids[0], "?permanent=true").await;
    expect_json(create(&app, &ada, "Fits again").await, StatusCode::CREATED).await;
    expect_error(
        create(&app, &ada, "Full again").await,
        StatusCode::CONFLICT,
        "QUOTA_EXCEEDED",
    )
    .await;

    // Nothing was written for a refused creation: no task, no notification.
    let (_, total) = testkit::api::tasks::list(&app, &ada, "").await;
    assert_eq!(total, 3);
    let created = all(&app, &ada)
        .await
        .iter()
        .filter(|n| n["type"] == "TASK_CREATED")
        .count();
    assert_eq!(created, 4, "three tasks and the one that fitted again");

    // Quotas are per account.
    let grace = app.signup("Grace").await;
    expect_json(create(&app, &grace, "Mine").await, StatusCode::CREATED).await;
}

async fn concurrent_creations_cannot_pass_the_quota(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.quotas.max_tasks_per_user = 5).await;
    let ada = app.signup("Ada").await;
    let attempts = (0..20).map(|i| {
        let (app, ada) = (&app, &ada);
        async move { create(app, ada, &format!("Racing {i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (5, 15), "{statuses:?}");
    let (_, total) = testkit::api::tasks::list(&app, &ada, "").await;
    assert_eq!(total, 5);
}

async fn notifications_past_the_quota_are_pruned_oldest_first(backend: Backend) {
    // 10 kept, pruned once the user holds more than 11.
    let app = TestApp::spawn_with(backend, |c| c.quotas.max_notifications_per_user = 10).await;
    let ada = app.signup("Ada").await; // welcome notification
    create_tasks(&app, &ada, 10).await; // 11 notifications: within the slack
    let before = list(&app, &ada, "?sort=asc&limit=100").await;
    assert_eq!(before.total, 11);
    let last_seq = expect_json(
        send(&app, Method::GET, "/events?since=0&limit=1000", &ada, None).await,
        StatusCode::OK,
    )
    .await["last_seq"]
        .as_i64()
        .expect("last_seq");

    create_tasks(&app, &ada, 1).await; // the 12th: pruned down to 10
    let after = list(&app, &ada, "?sort=asc&limit=100").await;
    assert_eq!(after.total, 10);
    let oldest: Vec<i64> = before.ids()[..2].to_vec();
    assert_eq!(after.ids()[..9], before.ids()[2..], "the two oldest went");

    // Each deletion is in the stream, in the same commit as the new notification.
    let events = events_after(&app, &ada, last_seq).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "task.created",
            "notification.created",
            "notification.deleted",
            "notification.deleted"
        ]
    );
    assert_eq!(deleted_ids(&events), oldest);

    // The count stays right through deletions made by the user.
    let newest = *after.ids().last().expect("a notification");
    let response = send(
        &app,
        Method::DELETE,
        &format!("/notifications/{newest}"),
        &ada,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    create_tasks(&app, &ada, 2).await; // 9 + 2 = 11: within the slack again
    assert_eq!(list(&app, &ada, "").await.total, 11);
}

async fn expired_notifications_are_swept_with_their_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 3).await;
    let grace = app.signup("Grace").await;
    let page = list(&app, &ada, "?sort=asc").await;
    assert_eq!(page.total, 4);
    let old: Vec<i64> = page.ids()[..2].to_vec();
    // Two of Ada's notifications date from long before NOTIFICATION_RETENTION (90 days).
    app.sql_for_user(
        &format!(
            "UPDATE notifications SET created_at = '2000-01-01T00:00:00+00:00' \
             WHERE user_id = $1 AND id IN ({}, {})",
            old[0], old[1]
        ),
        &ada.id,
    )
    .await;
    let last_seq = expect_json(
        send(&app, Method::GET, "/events?since=0&limit=1000", &ada, None).await,
        StatusCode::OK,
    )
    .await["last_seq"]
        .as_i64()
        .expect("last_seq");

    // Every instance sweeps when it starts (then every five minutes).
    let _sibling = app.spawn_sibling(|_| {}).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while list(&app, &ada, "").await.total != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep did not delete the expired notifications"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept: Vec<i64> = list(&app, &ada, "?sort=asc").await.ids();
    assert_eq!(kept, page.ids()[2..]);
    let events = events_after(&app, &ada, last_seq).await;
    assert_eq!(deleted_ids(&events), old);
    assert_eq!(events.len(), 2, "{events:?}");
    // Other users' notifications are untouched.
    assert_eq!(list(&app, &grace, "").await.total, 1);
    assert!(all(&app, &ada)
        .await
        .iter()
        .all(|n| !old.contains(&id_of(n))));
}
