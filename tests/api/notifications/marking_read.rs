//! Marking notifications read and unread, one or all, and the unread count.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::notifications::{
    all, delete_one, get, id_of, list, mark_all_read, set_read, unread_count,
};
use testkit::api::tasks::create_tasks;
use testkit::api::{expect_error, expect_json};
use testkit::TestApp;

use super::assert_timestamp;
use crate::backend_tests;

backend_tests!(
    update_marks_read_and_unread_idempotently,
    update_validates_the_body,
    update_refuses_a_body_that_is_not_an_object,
    mark_all_read_counts_what_changed,
    unread_count_reports_the_callers_count,
);

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
