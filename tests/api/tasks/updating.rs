//! Replacing, patching and completing a task.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::{detail_fields, expect_error, expect_json, send};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    put_replaces_every_field,
    patch_changes_only_what_is_given,
    complete_sets_or_toggles,
);

async fn put_replaces_every_field(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(&user, json!({"title": "Draft", "description": "words", "priority": "HIGH", "due_date": "2030-01-01"}))
        .await;
    let path = format!("/tasks/{}", task["id"]);
    let response = send(
        &app,
        Method::PUT,
        &path,
        &user,
        Some(json!({"title": "Final"})),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated["title"], "Final");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["priority"], "MEDIUM");
    assert_eq!(updated["due_date"], Value::Null);
    assert_eq!(updated["completed"], false);
    assert_eq!(updated["created_at"], task["created_at"]);
    assert_ne!(updated["updated_at"], task["updated_at"]);

    let response = send(
        &app,
        Method::PUT,
        &path,
        &user,
        Some(
            json!({"title": "Final", "completed": true, "priority": "LOW", "description": "done"}),
        ),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (updated["completed"].clone(), updated["priority"].clone()),
        (json!(true), json!("LOW"))
    );

    let response = send(
        &app,
        Method::PUT,
        &path,
        &user,
        Some(json!({"description": "no title"})),
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["title"]);
    let response = send(
        &app,
        Method::PUT,
        "/tasks/987654",
        &user,
        Some(json!({"title": "x"})),
    )
    .await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn patch_changes_only_what_is_given(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(&user, json!({"title": "Draft", "description": "words", "priority": "HIGH", "due_date": "2030-01-01"}))
        .await;
    let path = format!("/tasks/{}", task["id"]);
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"title": "Better"})),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated["title"], "Better");
    assert_eq!(updated["description"], "words");
    assert_eq!(updated["priority"], "HIGH");
    assert_eq!(updated["due_date"], "2030-01-01T00:00:00Z");

    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"description": null, "due_date": null})),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["due_date"], Value::Null);
    assert_eq!(updated["title"], "Better");

    for field in ["title", "completed", "priority"] {
        let response = send(
            &app,
            Method::PATCH,
            &path,
            &user,
            Some(json!({ field: null })),
        )
        .await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec![field]);
    }
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"priority": "LOW", "completed": true})),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (updated["priority"].clone(), updated["completed"].clone()),
        (json!("LOW"), json!(true))
    );
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"title": ""})),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let response = send(&app, Method::GET, &path, &user, None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["title"],
        "Better",
        "a refused patch changes nothing"
    );
}

async fn complete_sets_or_toggles(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app.create_task(&user, json!({"title": "Flip"})).await;
    let path = format!("/tasks/{}/complete", task["id"]);
    let response = send(&app, Method::PATCH, &path, &user, None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["completed"],
        true
    );
    let response = send(&app, Method::PATCH, &path, &user, None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["completed"],
        false
    );
    for _ in 0..2 {
        let response = send(
            &app,
            Method::PATCH,
            &path,
            &user,
            Some(json!({"completed": true})),
        )
        .await;
        assert_eq!(
            expect_json(response, StatusCode::OK).await["completed"],
            true
        );
    }
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"completed": false})),
    )
    .await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["completed"],
        false
    );
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"completed": "yes"})),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // Only a body with no bytes is "no body": white space alone is not JSON, and is refused
    // rather than taken as a toggle.
    let response = app
        .api(Method::PATCH, &path, Some(&user.token))
        .header("content-type", "application/json")
        .body(" \n")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let response = send(
        &app,
        Method::GET,
        &format!("/tasks/{}", task["id"]),
        &user,
        None,
    )
    .await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["completed"],
        false,
        "a refused body toggles nothing"
    );
}
