//! Ids, ownership, tokens and paths: who may reach which notification, and how.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::notifications::{
    all, delete_one, get, header_count, id_of, list, mark_all_read, set_read, unread_count,
};
use testkit::api::tasks::create_tasks;
use testkit::api::{expect_error, expect_json};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    malformed_ids_are_validation_errors,
    missing_notifications_are_not_found,
    other_users_notifications_are_not_found,
    every_route_requires_a_token,
    seed_paths_under_api_work_too,
);

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
