//! Project tasks: assignees, notifications to the people a change concerns, list filters.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::tasks::list;
use testkit::api::{expect_error, expect_json, send};
use testkit::{Backend, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    assignees_are_members_and_hear_of_it,
    lists_filter_by_project_and_assignee,
    a_task_never_changes_project,
    a_project_has_its_own_tags_and_search,
);
per_backend!(a_project_holds_at_most_its_quota_of_tasks);

async fn notes(app: &TestApp, user: &testkit::api::TestUser) -> Vec<Value> {
    testkit::api::notifications::all(app, user).await
}

async fn assignees_are_members_and_hear_of_it(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let stranger = app.signup("Stan").await;
    let project = id(&app.create_project(&owner, "Board").await);
    app.add_member(&owner, &project, &bob, "editor").await;
    let refused = send(
        &app,
        Method::POST,
        "/tasks",
        &owner,
        Some(json!({"title": "X", "project_id": project, "assignee_id": stranger.id})),
    )
    .await;
    let body = expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    assert!(body.to_string().contains("assignee_id"), "{body}");
    let refused = send(
        &app,
        Method::POST,
        "/tasks",
        &owner,
        Some(json!({"title": "X", "assignee_id": bob.id})),
    )
    .await;
    expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    let refused = send(
        &app,
        Method::POST,
        "/tasks",
        &owner,
        Some(json!({"title": "X", "project_id": "nope"})),
    )
    .await;
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    let before = notes(&app, &bob).await.len();
    let task = app
        .create_task(
            &owner,
            json!({"title": "Review", "project_id": project, "assignee_id": bob.id}),
        )
        .await;
    assert_eq!(task["assignee_id"], json!(bob.id));
    let bob_notes = notes(&app, &bob).await;
    assert_eq!(bob_notes.len(), before + 1);
    let newest = bob_notes.last().unwrap();
    assert_eq!(newest["type"], "TASK_ASSIGNED");
    assert_eq!(newest["task_id"], task["id"]);
    let owner_before = notes(&app, &owner).await.len();
    // Bob completes it: the creator hears; Bob (the writer) does not.
    let path = format!("/tasks/{}/complete", task["id"]);
    expect_json(
        send(&app, Method::PATCH, &path, &bob, None).await,
        StatusCode::OK,
    )
    .await;
    let owner_notes = notes(&app, &owner).await;
    assert_eq!(owner_notes.len(), owner_before + 1);
    let newest = owner_notes.last().unwrap();
    assert_eq!(newest["type"], "TASK_COMPLETED");
    assert!(
        newest["message"].as_str().unwrap().contains("Bob"),
        "{newest}"
    );
    assert_eq!(notes(&app, &bob).await.len(), before + 1);
    // Unassigning with null; an owner's own change to their own unassigned task tells no one.
    let path = format!("/tasks/{}", task["id"]);
    let patched = expect_json(
        send(
            &app,
            Method::PATCH,
            &path,
            &owner,
            Some(json!({"assignee_id": null})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["assignee_id"], Value::Null);
    let count = notes(&app, &owner).await.len();
    expect_json(
        send(
            &app,
            Method::PATCH,
            &path,
            &owner,
            Some(json!({"title": "Quietly"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(notes(&app, &owner).await.len(), count);
}

async fn lists_filter_by_project_and_assignee(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let a = id(&app.create_project(&owner, "A").await);
    let b = id(&app.create_project(&owner, "B").await);
    app.add_member(&owner, &a, &bob, "editor").await;
    app.add_member(&owner, &b, &bob, "editor").await;
    app.create_task(&owner, json!({"title": "Personal"})).await;
    app.create_task(
        &owner,
        json!({"title": "A1", "project_id": a, "assignee_id": bob.id}),
    )
    .await;
    let done = app
        .create_task(
            &owner,
            json!({"title": "A2", "project_id": a, "assignee_id": bob.id}),
        )
        .await;
    app.create_task(&owner, json!({"title": "A3", "project_id": a}))
        .await;
    app.create_task(
        &owner,
        json!({"title": "B1", "project_id": b, "assignee_id": bob.id}),
    )
    .await;
    expect_json(
        send(
            &app,
            Method::PATCH,
            &format!("/tasks/{}/complete", done["id"]),
            &owner,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let titles = |tasks: Vec<Value>| {
        let mut t: Vec<String> = tasks
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    let (tasks, total) = list(&app, &owner, "").await;
    assert_eq!((titles(tasks), total), (vec!["Personal".to_string()], 1));
    let (tasks, total) = list(&app, &bob, &format!("?project_id={a}")).await;
    assert_eq!(
        (titles(tasks), total),
        (vec!["A1".into(), "A2".into(), "A3".into()], 3)
    );
    let (tasks, _) = list(
        &app,
        &bob,
        &format!("?project_id={a}&assignee_id={}&status=pending", bob.id),
    )
    .await;
    assert_eq!(titles(tasks), vec!["A1".to_string()]);
    let (tasks, total) = list(&app, &bob, &format!("?assignee_id={}", bob.id)).await;
    assert_eq!(
        (titles(tasks), total),
        (vec!["A1".into(), "A2".into(), "B1".into()], 3)
    );
    let (tasks, _) = list(
        &app,
        &bob,
        &format!("?assignee_id={}&limit=1&offset=5", bob.id),
    )
    .await;
    assert!(tasks.is_empty());
    let bad = send(&app, Method::GET, "/tasks?project_id=42", &bob, None).await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
}

async fn a_task_never_changes_project(app: TestApp) {
    let owner = app.signup("Olga").await;
    let a = id(&app.create_project(&owner, "A").await);
    let b = id(&app.create_project(&owner, "B").await);
    let task = app
        .create_task(&owner, json!({"title": "Stay", "project_id": a}))
        .await;
    let path = format!("/tasks/{}", task["id"]);
    for body in [json!({"project_id": b}), json!({"project_id": null})] {
        let refused = send(&app, Method::PATCH, &path, &owner, Some(body)).await;
        expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    }
    let refused = send(
        &app,
        Method::PUT,
        &path,
        &owner,
        Some(json!({"title": "Moved", "project_id": b})),
    )
    .await;
    expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    let same = send(
        &app,
        Method::PUT,
        &path,
        &owner,
        Some(json!({"title": "Same", "project_id": a})),
    )
    .await;
    assert_eq!(
        expect_json(same, StatusCode::OK).await["project_id"],
        json!(a)
    );
    let personal = app.create_task(&owner, json!({"title": "Mine"})).await;
    let refused = send(
        &app,
        Method::PATCH,
        &format!("/tasks/{}", personal["id"]),
        &owner,
        Some(json!({"project_id": a})),
    )
    .await;
    expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
}

async fn a_project_holds_at_most_its_quota_of_tasks(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.quotas.max_tasks_per_project = 2;
        c.quotas.max_tasks_per_user = 2;
    })
    .await;
    let owner = app.signup("Olga").await;
    let project = id(&app.create_project(&owner, "Board").await);
    for title in ["1", "2"] {
        app.create_task(&owner, json!({"title": title, "project_id": project}))
            .await;
    }
    let over = send(
        &app,
        Method::POST,
        "/tasks",
        &owner,
        Some(json!({"title": "3", "project_id": project})),
    )
    .await;
    expect_error(over, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
    // Project tasks do not count against the creator's own quota.
    app.create_task(&owner, json!({"title": "Personal 1"}))
        .await;
    app.create_task(&owner, json!({"title": "Personal 2"}))
        .await;
    let (tasks, _) = list(&app, &owner, &format!("?project_id={project}")).await;
    let first = tasks[0]["id"].as_i64().unwrap();
    testkit::api::tasks::delete_task(&app, &owner, first, "?permanent=true").await;
    app.create_task(&owner, json!({"title": "3 again", "project_id": project}))
        .await;
}

async fn a_project_has_its_own_tags_and_search(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let outsider = app.signup("Otto").await;
    let project = id(&app.create_project(&owner, "Board").await);
    app.add_member(&owner, &project, &bob, "viewer").await;
    app.create_task(
        &owner,
        json!({"title": "Fix the login page", "tags": ["Urgent", "web"], "project_id": project}),
    )
    .await;
    app.create_task(
        &owner,
        json!({"title": "Write the release notes", "tags": ["urgent"], "project_id": project}),
    )
    .await;
    app.create_task(
        &owner,
        json!({"title": "Personal login chores", "tags": ["home"]}),
    )
    .await;
    let tags = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/tags?project_id={project}"),
            &bob,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        tags,
        json!([{"tag": "Urgent", "count": 2}, {"tag": "web", "count": 1}])
    );
    let mine = expect_json(
        send(&app, Method::GET, "/tags", &owner, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        mine,
        json!([{"tag": "home", "count": 1}]),
        "personal vocabulary only"
    );
    let refused = send(
        &app,
        Method::GET,
        &format!("/tags?project_id={project}"),
        &outsider,
        None,
    )
    .await;
    expect_error(refused, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let (found, _) = list(&app, &bob, &format!("?project_id={project}&q=login")).await;
    let titles: Vec<&str> = found.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Fix the login page"]);
    let (found, total) = list(
        &app,
        &bob,
        &format!("?project_id={project}&tag=URGENT&sort=relevance&q=release"),
    )
    .await;
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0]["title"], "Write the release notes");
}
