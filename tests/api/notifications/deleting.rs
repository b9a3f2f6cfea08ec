//! Deleting notifications, one or many.

use reqwest::StatusCode;
use testkit::api::notifications::{
    all, delete_many, delete_one, get, id_of, list, set_read, unread_count,
};
use testkit::api::tasks::create_tasks;
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    delete_removes_one_notification,
    bulk_delete_with_comma_separated_ids,
    bulk_delete_with_repeated_keys,
    bulk_delete_ignores_other_users_ids,
    bulk_delete_validates_the_ids,
);

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
