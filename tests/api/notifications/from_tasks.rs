//! The notifications task operations leave, and what a task's deletion does to them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::{all, get, id_of, list};
use testkit::api::tasks::{create_tasks, delete_task, patch_task};
use testkit::api::{expect_error, expect_json};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    task_operations_notify_with_the_task_id,
    permanent_task_delete_keeps_notifications_unlinked,
);

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
