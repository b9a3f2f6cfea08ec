use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{detail_fields, expect_error, expect_json, TestApp, TestUser};

backend_tests!(
    create_returns_the_task_with_defaults,
    create_validates_fields,
    get_reads_own_task_and_refuses_others,
    list_is_newest_first_and_counts_before_paging,
    list_filters_by_status_priority_and_search,
    list_filters_by_creation_date,
    list_rejects_bad_query_values,
    put_replaces_every_field,
    patch_changes_only_what_is_given,
    complete_sets_or_toggles,
    soft_delete_restore_and_permanent_delete,
    deleted_tasks_cannot_be_edited,
    other_users_cannot_touch_a_task,
);

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app.api(method, path, Some(&user.token));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> (Vec<Value>, i64) {
    let response = send(app, Method::GET, &format!("/tasks{query}"), user, None).await;
    let total: i64 = response.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    (body.as_array().unwrap().clone(), total)
}

fn titles(tasks: &[Value]) -> Vec<&str> {
    tasks.iter().map(|t| t["title"].as_str().unwrap()).collect()
}

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

async fn list_is_newest_first_and_counts_before_paging(app: TestApp) {
    let user = app.signup("Ada").await;
    let other = app.signup("Bob").await;
    for i in 1..=5 {
        app.create_task(&user, json!({"title": format!("Task {i}")}))
            .await;
    }
    app.create_task(&other, json!({"title": "Not yours"})).await;
    let (tasks, total) = list(&app, &user, "").await;
    assert_eq!(total, 5);
    assert_eq!(
        titles(&tasks),
        vec!["Task 5", "Task 4", "Task 3", "Task 2", "Task 1"]
    );
    let (page, total) = list(&app, &user, "?limit=2&offset=1").await;
    assert_eq!(total, 5);
    assert_eq!(titles(&page), vec!["Task 4", "Task 3"]);
    let (page, total) = list(&app, &user, "?limit=2&offset=10").await;
    assert_eq!((page.len(), total), (0, 5));
}

async fn list_filters_by_status_priority_and_search(app: TestApp) {
    let user = app.signup("Ada").await;
    let milk = app
        .create_task(&user, json!({"title": "Buy MILK", "priority": "LOW"}))
        .await;
    let report = app
        .create_task(
            &user,
            json!({"title": "Report", "description": "about the milky way", "priority": "HIGH"}),
        )
        .await;
    let gone = app
        .create_task(&user, json!({"title": "Old thing", "priority": "HIGH"}))
        .await;
    app.create_task(&user, json!({"title": "100% done_right"}))
        .await;
    send(
        &app,
        Method::PATCH,
        &format!("/tasks/{}/complete", report["id"]),
        &user,
        None,
    )
    .await;
    let response = send(
        &app,
        Method::DELETE,
        &format!("/tasks/{}", gone["id"]),
        &user,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let cases: [(&str, Vec<&str>); 12] = [
        ("", vec!["100% done_right", "Report", "Buy MILK"]),
        ("?status=all", vec!["100% done_right", "Report", "Buy MILK"]),
        ("?status=pending", vec!["100% done_right", "Buy MILK"]),
        ("?status=completed", vec!["Report"]),
        ("?status=deleted", vec!["Old thing"]),
        (
            "?include_deleted=true",
            vec!["100% done_right", "Old thing", "Report", "Buy MILK"],
        ),
        ("?priority=HIGH", vec!["Report"]),
        (
            "?priority=HIGH&include_deleted=true",
            vec!["Old thing", "Report"],
        ),
        ("?q=milk", vec!["Report", "Buy MILK"]),
        ("?q=MiLkY", vec!["Report"]),
        ("?q=%25", vec!["100% done_right"]),
        ("?q=_", vec!["100% done_right"]),
    ];
    for (query, expected) in cases {
        let (tasks, total) = list(&app, &user, query).await;
        assert_eq!(titles(&tasks), expected, "{query}");
        assert_eq!(total, expected.len() as i64, "{query}");
    }
    let _ = milk;
}

async fn list_filters_by_creation_date(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app.create_task(&user, json!({"title": "Today"})).await;
    let created =
        chrono::DateTime::parse_from_rfc3339(task["created_at"].as_str().unwrap()).unwrap();
    let today = created.date_naive();
    let yesterday = today.pred_opt().unwrap();
    let tomorrow = today.succ_opt().unwrap();
    let before = (created - chrono::Duration::seconds(1)).to_rfc3339();
    let after = (created + chrono::Duration::seconds(1)).to_rfc3339();
    let cases = [
        (format!("?date_from={today}&date_to={today}"), 1),
        (format!("?date_from={today}"), 1),
        (format!("?date_to={today}"), 1),
        (format!("?date_to={yesterday}"), 0),
        (format!("?date_from={tomorrow}"), 0),
        (format!("?date_from={}", urlencode(&before)), 1),
        (format!("?date_from={}", urlencode(&after)), 0),
        (format!("?date_to={}", urlencode(&before)), 0),
    ];
    for (query, expected) in cases {
        let (tasks, total) = list(&app, &user, &query).await;
        assert_eq!((tasks.len(), total), (expected, expected as i64), "{query}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn list_rejects_bad_query_values(app: TestApp) {
    let user = app.signup("Ada").await;
    for (query, field) in [
        ("?status=done", "status"),
        ("?priority=low", "priority"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?date_from=yesterday", "date_from"),
        ("?date_to=2026-02-30", "date_to"),
        ("?date_from=2026-02-02&date_to=2026-02-01", "date_from"),
        ("?include_deleted=perhaps", "include_deleted"),
        ("?status=all&status=pending", "status"),
    ] {
        let response = send(&app, Method::GET, &format!("/tasks{query}"), &user, None).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec![field], "{query}");
    }
    let (tasks, _) = list(&app, &user, "?limit=500&offset=0").await;
    assert!(tasks.is_empty());
}

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
}

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
