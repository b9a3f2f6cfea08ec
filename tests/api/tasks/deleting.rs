//! Soft deletion, restoring, permanent deletion, and what a deleted task refuses.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::tasks::list;
use testkit::api::{expect_error, expect_json, send};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    soft_delete_restore_and_permanent_delete,
    deleted_tasks_cannot_be_edited,
);

async fn soft_delete_restore_and_permanent_delete(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app.create_task(&user, json!({"title": "Trash me"})).await;
    let path = format!("/tasks/{}", task["id"]);
    let response = send(&app, Method::DELETE, &path, &user, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = send(&app, Method::GET, &path, &user, None).await;
    let deleted = expect_json(response, StatusCode::OK).await;
    assert_eq!(deleted["is_deleted"], true);
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(list(&app, &user, "").await.1, 0);
    assert_eq!(list(&app, &user, "?status=deleted").await.1, 1);

    let response = send(&app, Method::POST, &format!("{path}/restore"), &user, None).await;
    let restored = expect_json(response, StatusCode::OK).await;
    assert_eq!(restored["is_deleted"], false);
    assert_eq!(restored["deleted_at"], Value::Null);
    assert_eq!(list(&app, &user, "").await.1, 1);
    // Restoring what is not deleted is the seed's third bug: a clear 400.
    let response = send(&app, Method::POST, &format!("{path}/restore"), &user, None).await;
    expect_error(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;

    let response = send(
        &app,
        Method::DELETE,
        &format!("{path}?permanent=true"),
        &user,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = send(&app, Method::GET, &path, &user, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    assert_eq!(list(&app, &user, "?include_deleted=true").await.1, 0);
    let response = send(&app, Method::DELETE, &path, &user, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let response = send(&app, Method::POST, &format!("{path}/restore"), &user, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let response = send(&app, Method::DELETE, "/tasks/1?permanent=sure", &user, None).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
}

async fn deleted_tasks_cannot_be_edited(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app.create_task(&user, json!({"title": "Gone"})).await;
    let path = format!("/tasks/{}", task["id"]);
    send(&app, Method::DELETE, &path, &user, None).await;
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"title": "Back?"})),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let response = send(
        &app,
        Method::PATCH,
        &format!("{path}/complete"),
        &user,
        None,
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let response = send(&app, Method::GET, &path, &user, None).await;
    let unchanged = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (unchanged["title"].clone(), unchanged["completed"].clone()),
        (json!("Gone"), json!(false))
    );
}
