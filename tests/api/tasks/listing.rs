//! Listing tasks: order, counting, filters, and the query checked.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::tasks::list;
use testkit::api::{detail_fields, expect_error, send};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    list_is_newest_first_and_counts_before_paging,
    list_filters_by_status_priority_and_search,
    list_filters_by_creation_date,
    list_rejects_bad_query_values,
);

fn titles(tasks: &[Value]) -> Vec<&str> {
    tasks.iter().map(|t| t["title"].as_str().unwrap()).collect()
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

    let cases: [(&str, Vec<&str>); 13] = [
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
        // Full-text search: words (stemmed), not substrings (see search.rs).
        ("?q=milk", vec!["Buy MILK"]),
        ("?q=MiLkY", vec!["Report"]),
        ("?q=100", vec!["100% done_right"]),
        ("?q=%25", vec![]),
        ("?q=_", vec![]),
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
