use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{detail_fields, expect_error, expect_json, TestApp, TestUser};

backend_tests!(
    signup_notification_has_every_field,
    get_returns_one_notification,
    list_validates_the_query,
    list_sorts_newest_first_by_default,
    list_paginates_and_keeps_the_full_total,
    unread_only_filters_and_counts_only_unread,
    update_marks_read_and_unread_idempotently,
    update_validates_the_body,
    update_refuses_a_body_that_is_not_an_object,
    malformed_ids_are_validation_errors,
    missing_notifications_are_not_found,
    delete_removes_one_notification,
    mark_all_read_counts_what_changed,
    unread_count_reports_the_callers_count,
    bulk_delete_with_comma_separated_ids,
    bulk_delete_with_repeated_keys,
    bulk_delete_ignores_other_users_ids,
    bulk_delete_validates_the_ids,
    other_users_notifications_are_not_found,
    every_route_requires_a_token,
    task_operations_notify_with_the_task_id,
    permanent_task_delete_keeps_notifications_unlinked,
    seed_paths_under_api_work_too,
);

const NOTIFICATION_KEYS: [&str; 8] = [
    "created_at",
    "id",
    "is_read",
    "message",
    "task_id",
    "title",
    "type",
    "user_id",
];

/// One page of `GET /notifications{query}`: the items, `X-Total-Count`, `X-Unread-Count`.
struct Page {
    items: Vec<Value>,
    total: i64,
    unread: i64,
}

impl Page {
    fn ids(&self) -> Vec<i64> {
        self.items.iter().map(id_of).collect()
    }

    fn types(&self) -> Vec<&str> {
        self.items
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect()
    }
}

fn header_count(response: &Response, name: &str) -> i64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn id_of(notification: &Value) -> i64 {
    notification["id"].as_i64().expect("integer id")
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> Page {
    let response = app
        .api(
            Method::GET,
            &format!("/notifications{query}"),
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    let total = header_count(&response, "x-total-count");
    let unread = header_count(&response, "x-unread-count");
    let body = expect_json(response, StatusCode::OK).await;
    Page {
        items: body.as_array().expect("a JSON array").clone(),
        total,
        unread,
    }
}

/// Every notification of the user, oldest first.
async fn all(app: &TestApp, user: &TestUser) -> Vec<Value> {
    list(app, user, "?sort=asc&limit=100").await.items
}

async fn get(app: &TestApp, user: &TestUser, id: i64) -> Response {
    app.api(
        Method::GET,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .send()
    .await
    .unwrap()
}

async fn set_read(app: &TestApp, user: &TestUser, id: i64, is_read: bool) -> Response {
    app.api(
        Method::PUT,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .json(&json!({ "is_read": is_read }))
    .send()
    .await
    .unwrap()
}

async fn delete_one(app: &TestApp, user: &TestUser, id: i64) -> Response {
    app.api(
        Method::DELETE,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .send()
    .await
    .unwrap()
}

async fn delete_many(app: &TestApp, user: &TestUser, query: &str) -> Response {
    app.api(
        Method::DELETE,
        &format!("/notifications?{query}"),
        Some(&user.token),
    )
    .send()
    .await
    .unwrap()
}

async fn mark_all_read(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .api(
            Method::PUT,
            "/notifications/mark-all-read",
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await
}

async fn unread_count(app: &TestApp, user: &TestUser) -> i64 {
    let response = app
        .api(
            Method::GET,
            "/notifications/unread/count",
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await["count"]
        .as_i64()
        .expect("integer count")
}

/// Creates `n` tasks; returns their ids. Each one adds a TASK_CREATED notification.
async fn create_tasks(app: &TestApp, user: &TestUser, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let task = app
            .create_task(user, json!({ "title": format!("Task number {i}") }))
            .await;
        ids.push(task["id"].as_i64().unwrap());
    }
    ids
}

async fn patch_task(app: &TestApp, user: &TestUser, id: i64, body: Value) {
    let response = app
        .api(Method::PATCH, &format!("/tasks/{id}"), Some(&user.token))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

async fn delete_task(app: &TestApp, user: &TestUser, id: i64, query: &str) {
    let response = app
        .api(
            Method::DELETE,
            &format!("/tasks/{id}{query}"),
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

fn assert_timestamp(value: &Value) {
    let t = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
        "timestamp: {t}"
    );
}

async fn signup_notification_has_every_field(app: TestApp) {
    let ada = app.signup("Ada").await;
    let page = list(&app, &ada, "").await;
    assert_eq!((page.total, page.unread), (1, 1));
    assert_eq!(page.items.len(), 1);
    let note = &page.items[0];
    let mut keys: Vec<&str> = note
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, NOTIFICATION_KEYS, "{note}");
    assert!(id_of(note) > 0);
    assert_eq!(note["user_id"], json!(ada.id));
    assert_eq!(note["type"], "SIGNUP");
    assert!(
        note["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{note}"
    );
    assert!(
        note["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{note}"
    );
    assert_eq!(note["is_read"], false);
    assert_eq!(note["task_id"], Value::Null);
    assert_timestamp(&note["created_at"]);
}

async fn get_returns_one_notification(app: TestApp) {
    let ada = app.signup("Ada").await;
    let task_ids = create_tasks(&app, &ada, 2).await;
    let notes = all(&app, &ada).await;
    assert_eq!(notes.len(), 3);
    for note in &notes {
        let body = expect_json(get(&app, &ada, id_of(note)).await, StatusCode::OK).await;
        assert_eq!(&body, note);
    }
    assert_eq!(notes[1]["type"], "TASK_CREATED");
    assert_eq!(notes[1]["task_id"], json!(task_ids[0]));
    assert_eq!(notes[2]["task_id"], json!(task_ids[1]));
}

async fn list_validates_the_query(app: TestApp) {
    let ada = app.signup("Ada").await;
    let cases = [
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=abc", vec!["limit"]),
        ("limit=-5", vec!["limit"]),
        ("limit=2.5", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("offset=x", vec!["offset"]),
        ("sort=up", vec!["sort"]),
        ("sort=ASCENDING", vec!["sort"]),
        ("unread_only=maybe", vec!["unread_only"]),
        ("limit=1&limit=2", vec!["limit"]),
        (
            "limit=0&offset=-1&unread_only=maybe&sort=up",
            vec!["limit", "offset", "unread_only", "sort"],
        ),
    ];
    for (query, fields) in cases {
        let response = app
            .api(
                Method::GET,
                &format!("/notifications?{query}"),
                Some(&ada.token),
            )
            .send()
            .await
            .unwrap();
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        let mut named = detail_fields(&envelope);
        named.sort();
        let mut expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(named, expected, "for ?{query}: {envelope}");
    }
    // The limits themselves, and every accepted spelling, are fine.
    for query in [
        "limit=1",
        "limit=100",
        "offset=0",
        "sort=asc",
        "sort=desc",
        "unread_only=true",
        "unread_only=false",
    ] {
        let page = list(&app, &ada, &format!("?{query}")).await;
        assert_eq!(page.items.len(), 1, "for ?{query}");
    }
}

async fn list_sorts_newest_first_by_default(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 4).await;

    let default = list(&app, &ada, "").await;
    let desc = list(&app, &ada, "?sort=desc").await;
    let asc = list(&app, &ada, "?sort=asc").await;
    assert_eq!(default.items.len(), 5);
    assert_eq!(default.items, desc.items);

    let ids = desc.ids();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let mut reversed = asc.ids();
    assert!(
        reversed.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {reversed:?}"
    );
    reversed.reverse();
    assert_eq!(reversed, ids);

    assert_eq!(
        asc.types(),
        [
            "SIGNUP",
            "TASK_CREATED",
            "TASK_CREATED",
            "TASK_CREATED",
            "TASK_CREATED"
        ]
    );
    assert_eq!(desc.types().last(), Some(&"SIGNUP"));
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = asc
        .items
        .iter()
        .map(|n| chrono::DateTime::parse_from_rfc3339(n["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for page in [&default, &desc, &asc] {
        assert_eq!((page.total, page.unread), (5, 5));
    }
}

async fn list_paginates_and_keeps_the_full_total(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 5).await;
    let everything = list(&app, &ada, "?limit=100").await;
    assert_eq!(everything.items.len(), 6);
    let ids = everything.ids();

    for (offset, expected) in [
        (0, &ids[0..2]),
        (2, &ids[2..4]),
        (4, &ids[4..6]),
        (5, &ids[5..6]),
        (6, &[][..]),
    ] {
        let page = list(&app, &ada, &format!("?limit=2&offset={offset}")).await;
        assert_eq!(page.ids(), expected, "offset {offset}");
        assert_eq!((page.total, page.unread), (6, 6), "offset {offset}");
    }
    let far = list(&app, &ada, "?offset=1000000").await;
    assert!(far.items.is_empty());
    assert_eq!(far.total, 6);

    // Offset without limit uses the default limit; ascending pages are the reverse order.
    assert_eq!(list(&app, &ada, "?offset=3").await.ids(), &ids[3..]);
    let mut ascending = ids.clone();
    ascending.reverse();
    let page = list(&app, &ada, "?sort=asc&limit=3&offset=1").await;
    assert_eq!(page.ids(), &ascending[1..4]);
    assert_eq!(page.total, 6);
    assert_eq!(list(&app, &ada, "?limit=1").await.ids(), &ids[..1]);
}

async fn unread_only_filters_and_counts_only_unread(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 3).await;
    let ids = list(&app, &ada, "?sort=asc").await.ids();
    assert_eq!(ids.len(), 4);
    for id in [ids[0], ids[2]] {
        expect_json(set_read(&app, &ada, id, true).await, StatusCode::OK).await;
    }

    let unread = list(&app, &ada, "?unread_only=true").await;
    assert_eq!(unread.ids(), vec![ids[3], ids[1]]);
    assert!(unread.items.iter().all(|n| n["is_read"] == false));
    assert_eq!((unread.total, unread.unread), (2, 2));

    for query in ["", "?unread_only=false"] {
        let page = list(&app, &ada, query).await;
        assert_eq!(page.items.len(), 4, "{query}");
        assert_eq!((page.total, page.unread), (4, 2), "{query}");
    }

    let first = list(&app, &ada, "?unread_only=true&limit=1").await;
    assert_eq!(first.ids(), vec![ids[3]]);
    assert_eq!((first.total, first.unread), (2, 2));
    let second = list(&app, &ada, "?unread_only=1&limit=1&offset=1&sort=desc").await;
    assert_eq!(second.ids(), vec![ids[1]]);
    let oldest = list(&app, &ada, "?unread_only=true&sort=asc").await;
    assert_eq!(oldest.ids(), vec![ids[1], ids[3]]);

    mark_all_read(&app, &ada).await;
    let none = list(&app, &ada, "?unread_only=true").await;
    assert!(none.items.is_empty());
    assert_eq!((none.total, none.unread), (0, 0));
    assert_eq!(list(&app, &ada, "").await.total, 4);
}

async fn update_marks_read_and_unread_idempotently(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 1).await;
    let notes = all(&app, &ada).await;
    let original = notes[1].clone();
    let id = id_of(&original);

    let mut expected = original.clone();
    expected["is_read"] = json!(true);
    for _ in 0..2 {
        let body = expect_json(set_read(&app, &ada, id, true).await, StatusCode::OK).await;
        assert_eq!(body, expected, "only is_read changes");
        assert_eq!(
            expect_json(get(&app, &ada, id).await, StatusCode::OK).await,
            expected
        );
        assert_eq!(unread_count(&app, &ada).await, 1);
    }
    // The other notification is untouched.
    assert_eq!(
        expect_json(get(&app, &ada, id_of(&notes[0])).await, StatusCode::OK).await,
        notes[0]
    );

    for _ in 0..2 {
        let body = expect_json(set_read(&app, &ada, id, false).await, StatusCode::OK).await;
        assert_eq!(body, original);
        assert_eq!(unread_count(&app, &ada).await, 2);
    }
    assert_eq!(list(&app, &ada, "").await.unread, 2);
}

async fn update_validates_the_body(app: TestApp) {
    let ada = app.signup("Ada").await;
    let note = all(&app, &ada).await.remove(0);
    let id = id_of(&note);
    let bodies = [
        json!({}),
        json!({"read": true}),
        json!({"is_read": null}),
        json!({"is_read": "true"}),
        json!({"is_read": 1}),
        json!({"is_read": [true]}),
        json!([true, false]),
        json!(true),
        json!("is_read"),
    ];
    for body in bodies {
        let response = app
            .api(
                Method::PUT,
                &format!("/notifications/{id}"),
                Some(&ada.token),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let response = app
        .api(
            Method::PUT,
            &format!("/notifications/{id}"),
            Some(&ada.token),
        )
        .header("content-type", "application/json")
        .body("{\"is_read\": ")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(
        expect_json(get(&app, &ada, id).await, StatusCode::OK).await,
        note
    );
}

/// The body is the object `{"is_read": <bool>}`; an array holding the value in its place
/// is not that object, whatever serde's derived field-order form would accept.
async fn update_refuses_a_body_that_is_not_an_object(app: TestApp) {
    let ada = app.signup("Ada").await;
    let note = all(&app, &ada).await.remove(0);
    let id = id_of(&note);
    for body in [json!([true]), json!([false])] {
        let response = app
            .api(
                Method::PUT,
                &format!("/notifications/{id}"),
                Some(&ada.token),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    assert_eq!(
        expect_json(get(&app, &ada, id).await, StatusCode::OK).await,
        note
    );
}

async fn malformed_ids_are_validation_errors(app: TestApp) {
    let ada = app.signup("Ada").await;
    for id in ["abc", "1.5", "1e3", "99999999999999999999", "%20"] {
        let path = format!("/notifications/{id}");
        let requests = [
            app.api(Method::GET, &path, Some(&ada.token)),
            app.api(Method::PUT, &path, Some(&ada.token))
                .json(&json!({"is_read": true})),
            app.api(Method::DELETE, &path, Some(&ada.token)),
        ];
        for request in requests {
            let response = request.send().await.unwrap();
            expect_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
            )
            .await;
        }
    }
    // Nothing was touched.
    let page = list(&app, &ada, "").await;
    assert_eq!((page.total, page.unread), (1, 1));
}

async fn missing_notifications_are_not_found(app: TestApp) {
    let ada = app.signup("Ada").await;
    let existing = id_of(&all(&app, &ada).await[0]);
    for id in [existing + 1000, 0, -1, i64::MAX] {
        expect_error(
            get(&app, &ada, id).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
        expect_error(
            set_read(&app, &ada, id, true).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
        expect_error(
            delete_one(&app, &ada, id).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
    }
    let page = list(&app, &ada, "").await;
    assert_eq!((page.total, page.unread), (1, 1));
}

async fn delete_removes_one_notification(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 2).await;
    let ids = list(&app, &ada, "").await.ids();
    assert_eq!(ids.len(), 3);

    let response = delete_one(&app, &ada, ids[1]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.unwrap().is_empty());

    expect_error(
        get(&app, &ada, ids[1]).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    expect_error(
        delete_one(&app, &ada, ids[1]).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    expect_error(
        set_read(&app, &ada, ids[1], true).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    let page = list(&app, &ada, "").await;
    assert_eq!(page.ids(), vec![ids[0], ids[2]]);
    assert_eq!((page.total, page.unread), (2, 2));
    assert_eq!(unread_count(&app, &ada).await, 2);
}

async fn mark_all_read_counts_what_changed(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    create_tasks(&app, &ada, 3).await;
    let ids = list(&app, &ada, "").await.ids();
    expect_json(set_read(&app, &ada, ids[0], true).await, StatusCode::OK).await;

    let body = mark_all_read(&app, &ada).await;
    assert_eq!(body["count"], 3, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let page = list(&app, &ada, "").await;
    assert!(page.items.iter().all(|n| n["is_read"] == true));
    assert_eq!((page.total, page.unread), (4, 0));
    assert_eq!(unread_count(&app, &ada).await, 0);

    let again = mark_all_read(&app, &ada).await;
    assert_eq!(again["count"], 0, "{again}");

    // Only the caller's notifications were marked.
    assert_eq!(unread_count(&app, &bob).await, 1);
    assert!(all(&app, &bob).await.iter().all(|n| n["is_read"] == false));

    // New notifications after the call are unread again, and counted by the next call.
    create_tasks(&app, &ada, 1).await;
    assert_eq!(unread_count(&app, &ada).await, 1);
    assert_eq!(mark_all_read(&app, &ada).await["count"], 1);
}

async fn unread_count_reports_the_callers_count(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    create_tasks(&app, &ada, 2).await;

    let response = app
        .api(Method::GET, "/notifications/unread/count", Some(&ada.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["count", "timestamp", "user_id"], "{body}");
    assert_eq!(body["count"], 3);
    assert_eq!(body["user_id"], json!(ada.id));
    assert_timestamp(&body["timestamp"]);

    assert_eq!(unread_count(&app, &bob).await, 1);
    let first = list(&app, &ada, "").await.ids()[0];
    expect_json(set_read(&app, &ada, first, true).await, StatusCode::OK).await;
    assert_eq!(unread_count(&app, &ada).await, 2);
    expect_json(set_read(&app, &ada, first, false).await, StatusCode::OK).await;
    assert_eq!(unread_count(&app, &ada).await, 3);
    assert_eq!(
        delete_one(&app, &ada, first).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(unread_count(&app, &ada).await, 2);
    assert_eq!(unread_count(&app, &bob).await, 1);
}

async fn bulk_delete_with_comma_separated_ids(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 4).await;
    let ids = list(&app, &ada, "?sort=asc").await.ids();
    assert_eq!(ids.len(), 5);

    let response = delete_many(
        &app,
        &ada,
        &format!("notification_ids={},{},{}", ids[1], ids[3], ids[4]),
    )
    .await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["count"], 3, "{body}");
    assert_eq!(body["requested"], 3, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    let page = list(&app, &ada, "?sort=asc").await;
    assert_eq!(page.ids(), vec![ids[0], ids[2]]);
    assert_eq!(page.total, 2);
    for id in [ids[1], ids[3], ids[4]] {
        expect_error(
            get(&app, &ada, id).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
    }

    // Already deleted and unknown ids count as requested but not deleted; a repeated id
    // is requested once.
    let query = format!(
        "notification_ids={},{},{},{}",
        ids[1],
        ids[2],
        ids[2],
        ids[4] + 1000
    );
    let body = expect_json(delete_many(&app, &ada, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(1), Some(3)),
        "{body}"
    );
    assert_eq!(list(&app, &ada, "").await.ids(), vec![ids[0]]);
}

async fn bulk_delete_with_repeated_keys(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 4).await;
    let ids = list(&app, &ada, "?sort=asc").await.ids();

    let query = format!("notification_ids={}&notification_ids={}", ids[0], ids[2]);
    let body = expect_json(delete_many(&app, &ada, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(2), Some(2)),
        "{body}"
    );
    assert_eq!(
        list(&app, &ada, "?sort=asc").await.ids(),
        vec![ids[1], ids[3], ids[4]]
    );

    // Both forms together.
    let query = format!(
        "notification_ids={},{}&notification_ids={}",
        ids[1], ids[3], ids[4]
    );
    let body = expect_json(delete_many(&app, &ada, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(3), Some(3)),
        "{body}"
    );
    let page = list(&app, &ada, "").await;
    assert!(page.items.is_empty());
    assert_eq!((page.total, page.unread), (0, 0));
}

async fn bulk_delete_ignores_other_users_ids(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    create_tasks(&app, &ada, 1).await;
    let ada_notes = all(&app, &ada).await;
    let bob_note = all(&app, &bob).await.remove(0);

    let query = format!(
        "notification_ids={},{},{}",
        id_of(&ada_notes[0]),
        id_of(&bob_note),
        id_of(&ada_notes[1])
    );
    let body = expect_json(delete_many(&app, &bob, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(1), Some(3)),
        "{body}"
    );

    // Bob's own is gone; Ada's are all still there, unchanged.
    expect_error(
        get(&app, &bob, id_of(&bob_note)).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    assert_eq!(all(&app, &ada).await, ada_notes);
    for note in &ada_notes {
        assert_eq!(
            &expect_json(get(&app, &ada, id_of(note)).await, StatusCode::OK).await,
            note
        );
    }

    // Only someone else's ids: nothing deleted.
    let query = format!("notification_ids={}", id_of(&ada_notes[0]));
    let body = expect_json(delete_many(&app, &bob, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(0), Some(1)),
        "{body}"
    );
    assert_eq!(all(&app, &ada).await, ada_notes);
}

async fn bulk_delete_validates_the_ids(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 1).await;
    let notes = all(&app, &ada).await;
    let first = id_of(&notes[0]);
    let too_many: Vec<String> = (1..=101).map(|i| (1_000_000 + i).to_string()).collect();

    let queries = [
        String::new(),
        "notification_ids=".to_string(),
        "notification_ids=,".to_string(),
        "other=1".to_string(),
        format!("notification_ids={}", too_many.join(",")),
        format!("notification_ids={}", too_many.join("&notification_ids=")),
        format!("notification_ids={first},abc"),
        format!("notification_ids={first}&notification_ids=abc"),
        format!("notification_ids={first},1.5"),
        format!("notification_ids={first},0"),
        format!("notification_ids={first},-3"),
        format!("notification_ids={first},99999999999999999999"),
    ];
    for query in &queries {
        let envelope = expect_error(
            delete_many(&app, &ada, query).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            detail_fields(&envelope),
            vec!["notification_ids"],
            "for ?{query}"
        );
    }
    // Nothing was deleted by the refused requests.
    assert_eq!(all(&app, &ada).await, notes);

    // Exactly 100 ids is allowed.
    let mut hundred: Vec<String> = too_many[..98].to_vec();
    hundred.extend(notes.iter().map(|n| id_of(n).to_string()));
    let query = format!("notification_ids={}", hundred.join(","));
    let body = expect_json(delete_many(&app, &ada, &query).await, StatusCode::OK).await;
    assert_eq!(
        (body["count"].as_i64(), body["requested"].as_i64()),
        (Some(2), Some(100)),
        "{body}"
    );
    assert!(all(&app, &ada).await.is_empty());
}

async fn other_users_notifications_are_not_found(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    create_tasks(&app, &ada, 1).await;
    let ada_notes = all(&app, &ada).await;
    let bob_notes = all(&app, &bob).await;
    assert_eq!(bob_notes.len(), 1);

    for note in &ada_notes {
        let id = id_of(note);
        expect_error(
            get(&app, &bob, id).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
        for is_read in [true, false] {
            expect_error(
                set_read(&app, &bob, id, is_read).await,
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
            )
            .await;
        }
        expect_error(
            delete_one(&app, &bob, id).await,
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )
        .await;
    }
    // Bob marks all of his own read: Ada's stay unread.
    assert_eq!(mark_all_read(&app, &bob).await["count"], 1);

    // Ada's notifications are all there, unchanged.
    assert_eq!(all(&app, &ada).await, ada_notes);
    assert_eq!(unread_count(&app, &ada).await, 2);
    for note in &ada_notes {
        assert_eq!(
            &expect_json(get(&app, &ada, id_of(note)).await, StatusCode::OK).await,
            note
        );
    }

    // Each one sees only their own.
    let bob_page = list(&app, &bob, "").await;
    assert_eq!(bob_page.ids(), vec![id_of(&bob_notes[0])]);
    assert_eq!((bob_page.total, bob_page.unread), (1, 0));
    assert!(all(&app, &ada)
        .await
        .iter()
        .all(|n| n["user_id"] == json!(ada.id)));
    assert_eq!(unread_count(&app, &bob).await, 0);

    // The same the other way round.
    let bob_id = id_of(&bob_notes[0]);
    expect_error(
        get(&app, &ada, bob_id).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    expect_error(
        set_read(&app, &ada, bob_id, false).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    expect_error(
        delete_one(&app, &ada, bob_id).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    let bob_note = expect_json(get(&app, &bob, bob_id).await, StatusCode::OK).await;
    assert_eq!(bob_note["is_read"], true);
}

async fn every_route_requires_a_token(app: TestApp) {
    let ada = app.signup("Ada").await;
    let id = id_of(&all(&app, &ada).await[0]);
    let one = format!("/notifications/{id}");
    let routes = [
        (Method::GET, "/notifications".to_string()),
        (
            Method::DELETE,
            format!("/notifications?notification_ids={id}"),
        ),
        (Method::PUT, "/notifications/mark-all-read".to_string()),
        (Method::GET, "/notifications/unread/count".to_string()),
        (Method::GET, one.clone()),
        (Method::PUT, one.clone()),
        (Method::DELETE, one),
    ];
    for (method, path) in routes {
        let request = app.api(method.clone(), &path, None);
        let request = if method == Method::PUT {
            request.json(&json!({"is_read": true}))
        } else {
            request
        };
        expect_error(
            request.send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "AUTH_REQUIRED",
        )
        .await;

        let request = app.api(method.clone(), &path, Some("not-a-token"));
        expect_error(
            request.send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
        )
        .await;
    }
    // Nothing changed.
    let page = list(&app, &ada, "").await;
    assert_eq!(page.ids(), vec![id]);
    assert_eq!(page.unread, 1);
}

async fn task_operations_notify_with_the_task_id(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let task = app
        .create_task(&ada, json!({"title": "Write the report"}))
        .await;
    let task_id = task["id"].as_i64().unwrap();

    patch_task(&app, &ada, task_id, json!({"completed": true})).await;
    patch_task(&app, &ada, task_id, json!({"completed": false})).await;
    patch_task(
        &app,
        &ada,
        task_id,
        json!({"title": "Write the final report"}),
    )
    .await;
    delete_task(&app, &ada, task_id, "").await;
    let response = app
        .api(
            Method::POST,
            &format!("/tasks/{task_id}/restore"),
            Some(&ada.token),
        )
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;

    let notes = all(&app, &ada).await;
    let types: Vec<&str> = notes.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "SIGNUP",
            "TASK_CREATED",
            "TASK_COMPLETED",
            "TASK_PENDING",
            "TASK_UPDATED",
            "TASK_DELETED",
            "TASK_RESTORED"
        ]
    );
    assert_eq!(notes[0]["task_id"], Value::Null);
    for note in &notes[1..] {
        assert_eq!(note["task_id"], json!(task_id), "{note}");
        assert_eq!(note["user_id"], json!(ada.id), "{note}");
        assert_eq!(note["is_read"], false, "{note}");
        assert!(
            note["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{note}"
        );
        assert!(
            note["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{note}"
        );
    }
    let page = list(&app, &ada, "").await;
    assert_eq!((page.total, page.unread), (7, 7));
    // Nothing reached the other user.
    assert_eq!(list(&app, &bob, "").await.types(), ["SIGNUP"]);
}

async fn permanent_task_delete_keeps_notifications_unlinked(app: TestApp) {
    let ada = app.signup("Ada").await;
    let tasks = create_tasks(&app, &ada, 3).await;
    let (purged, trashed, kept) = (tasks[0], tasks[1], tasks[2]);
    patch_task(&app, &ada, purged, json!({"title": "Renamed task"})).await;
    delete_task(&app, &ada, trashed, "").await;

    let before = all(&app, &ada).await;
    let earlier_of = |task: i64| -> Vec<i64> {
        before
            .iter()
            .filter(|n| n["task_id"] == json!(task))
            .map(id_of)
            .collect()
    };
    let purged_notes = earlier_of(purged);
    let trashed_notes = earlier_of(trashed);
    let kept_notes = earlier_of(kept);
    assert_eq!(purged_notes.len(), 2);
    assert_eq!(trashed_notes.len(), 2);
    assert_eq!(kept_notes.len(), 1);

    delete_task(&app, &ada, purged, "?permanent=true").await;
    delete_task(&app, &ada, trashed, "?permanent=true").await;
    for task in [purged, trashed] {
        let response = app
            .api(Method::GET, &format!("/tasks/{task}"), Some(&ada.token))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    }

    let after = all(&app, &ada).await;
    assert_eq!(
        after.len(),
        before.len() + 2,
        "a TASK_DELETED notification per purge"
    );
    for id in purged_notes.iter().chain(&trashed_notes) {
        let note = expect_json(get(&app, &ada, *id).await, StatusCode::OK).await;
        assert_eq!(note["task_id"], Value::Null, "{note}");
        let old = before.iter().find(|n| id_of(n) == *id).unwrap();
        let mut unlinked = old.clone();
        unlinked["task_id"] = Value::Null;
        assert_eq!(note, unlinked, "only the link changes");
    }
    for id in &kept_notes {
        let note = expect_json(get(&app, &ada, *id).await, StatusCode::OK).await;
        assert_eq!(note["task_id"], json!(kept), "{note}");
    }
    for note in &after[before.len()..] {
        assert_eq!(note["type"], "TASK_DELETED", "{note}");
        assert_eq!(note["task_id"], Value::Null, "{note}");
    }
}

async fn seed_paths_under_api_work_too(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 1).await;
    let response = app
        .client
        .get(app.url("/api/notifications"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(header_count(&response, "x-total-count"), 2);
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body.as_array().unwrap().len(), 2);

    let response = app
        .client
        .put(app.url("/api/notifications/mark-all-read"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, StatusCode::OK).await["count"], 2);

    let response = app
        .client
        .get(app.url("/api/notifications/unread/count"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, StatusCode::OK).await["count"], 0);
}
