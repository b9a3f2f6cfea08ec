//! Creating a task: the defaults, and every field checked.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::tasks::list;
use testkit::api::{detail_fields, expect_error, expect_json, send};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    create_returns_the_task_with_defaults,
    create_validates_fields,
);

async fn create_returns_the_task_with_defaults(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(&user, json!({"title": "  Buy milk  "}))
        .await;
    assert!(task["id"].as_i64().unwrap() > 0);
    assert_eq!(task["user_id"].as_str().unwrap(), user.id);
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["completed"], false);
    assert_eq!(task["priority"], "MEDIUM");
    assert_eq!(task["due_date"], Value::Null);
    assert_eq!(task["is_deleted"], false);
    assert_eq!(task["deleted_at"], Value::Null);
    assert_eq!(task["created_at"], task["updated_at"]);
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));

    let task = app
        .create_task(
            &user,
            json!({"title": "Report", "description": "Quarterly numbers", "priority": "HIGH", "due_date": "2030-01-15T10:30:00+02:00"}),
        )
        .await;
    assert_eq!(task["priority"], "HIGH");
    assert_eq!(task["description"], "Quarterly numbers");
    assert_eq!(task["due_date"], "2030-01-15T08:30:00Z");
    let task = app
        .create_task(&user, json!({"title": "Dated", "due_date": "2030-02-01"}))
        .await;
    assert_eq!(task["due_date"], "2030-02-01T00:00:00Z");

    // What was created is what is read back.
    let response = send(
        &app,
        Method::GET,
        &format!("/tasks/{}", task["id"]),
        &user,
        None,
    )
    .await;
    assert_eq!(expect_json(response, StatusCode::OK).await, task);
}

async fn create_validates_fields(app: TestApp) {
    let user = app.signup("Ada").await;
    let cases = [
        (json!({}), vec!["title"]),
        (json!({"title": "   "}), vec!["title"]),
        (json!({"title": "x".repeat(201)}), vec!["title"]),
        (
            json!({"title": "ok", "description": "d".repeat(1001)}),
            vec!["description"],
        ),
        (json!({"title": "ok", "priority": "low"}), vec!["priority"]),
        (
            json!({"title": "ok", "priority": "URGENT"}),
            vec!["priority"],
        ),
        (
            json!({"title": "ok", "due_date": "tomorrow"}),
            vec!["due_date"],
        ),
        (
            json!({"title": "", "priority": "x", "due_date": "y"}),
            vec!["title", "priority", "due_date"],
        ),
    ];
    for (body, fields) in cases {
        let response = send(&app, Method::POST, "/tasks", &user, Some(body.clone())).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), fields, "for {body}");
    }
    let response = send(
        &app,
        Method::POST,
        "/tasks",
        &user,
        Some(json!({"title": 42})),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // The boundary values are accepted.
    let task = app
        .create_task(
            &user,
            json!({"title": "x".repeat(200), "description": "d".repeat(1000)}),
        )
        .await;
    assert_eq!(task["title"].as_str().unwrap().len(), 200);
    let (tasks, total) = list(&app, &user, "").await;
    assert_eq!((tasks.len(), total), (1, 1), "nothing else was created");
}
