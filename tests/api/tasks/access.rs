//! A task is its owner's alone.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::tasks::list;
use testkit::api::{expect_error, expect_json, send};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    get_reads_own_task_and_refuses_others,
    other_users_cannot_touch_a_task,
);

async fn get_reads_own_task_and_refuses_others(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let task = app.create_task(&ada, json!({"title": "Mine"})).await;
    let path = format!("/tasks/{}", task["id"]);
    let response = send(&app, Method::GET, &path, &ada, None).await;
    assert_eq!(expect_json(response, StatusCode::OK).await["title"], "Mine");
    let response = send(&app, Method::GET, &path, &bob, None).await;
    expect_error(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let response = send(&app, Method::GET, "/tasks/999999", &ada, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let response = send(&app, Method::GET, "/tasks/not-a-number", &ada, None).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let response = app.api(Method::GET, &path, None).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
}

async fn other_users_cannot_touch_a_task(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let task = app
        .create_task(&ada, json!({"title": "Private", "priority": "HIGH"}))
        .await;
    let id = task["id"].clone();
    let attempts = [
        (Method::GET, format!("/tasks/{id}"), None),
        (
            Method::PUT,
            format!("/tasks/{id}"),
            Some(json!({"title": "Hijacked"})),
        ),
        (
            Method::PATCH,
            format!("/tasks/{id}"),
            Some(json!({"title": "Hijacked"})),
        ),
        (Method::PATCH, format!("/tasks/{id}/complete"), None),
        (Method::DELETE, format!("/tasks/{id}"), None),
        (Method::DELETE, format!("/tasks/{id}?permanent=true"), None),
        (Method::POST, format!("/tasks/{id}/restore"), None),
    ];
    for (method, path, body) in attempts {
        let response = send(&app, method.clone(), &path, &bob, body).await;
        expect_error(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    assert_eq!(list(&app, &bob, "?include_deleted=true").await.1, 0);
    let response = send(&app, Method::GET, &format!("/tasks/{id}"), &ada, None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await,
        task,
        "untouched"
    );
}
