//! What each role may do in a project, and what outsiders see (nothing).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::{expect_error, expect_json, send, TestUser};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    a_project_is_created_listed_changed_and_deleted,
    each_role_may_do_what_it_allows_and_no_more,
    outsiders_see_no_project_and_none_of_its_tasks,
    the_last_owner_can_neither_leave_nor_step_down,
    a_removed_member_loses_access_at_once,
);

async fn a_project_is_created_listed_changed_and_deleted(app: TestApp) {
    let ada = app.signup("Ada").await;
    let project = app.create_project(&ada, "  Launch  ").await;
    assert_eq!(project["name"], "Launch");
    assert_eq!(project["role"], "owner");
    assert_eq!(project["created_by"], json!(ada.id));
    assert_eq!(
        project["last_seq"], 1,
        "member.added of the owner: {project}"
    );
    let pid = id(&project);
    let list = expect_json(
        send(&app, Method::GET, "/projects", &ada, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let patched = expect_json(
        send(
            &app,
            Method::PATCH,
            &format!("/projects/{pid}"),
            &ada,
            Some(json!({"description": "Q3 launch"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["description"], "Q3 launch");
    assert_eq!(patched["name"], "Launch");
    let bad = send(
        &app,
        Method::PATCH,
        &format!("/projects/{pid}"),
        &ada,
        Some(json!({"name": ""})),
    )
    .await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    let bad = send(
        &app,
        Method::POST,
        "/projects",
        &ada,
        Some(json!({"name": "x".repeat(101)})),
    )
    .await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    let members = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/projects/{pid}/members"),
            &ada,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members[0]["user_id"], json!(ada.id));
    assert_eq!(members[0]["role"], "owner");
    let task = app
        .create_task(&ada, json!({"title": "Ship", "project_id": pid}))
        .await;
    assert_eq!(task["project_id"], json!(pid));
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/projects/{pid}"),
        &ada,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = send(&app, Method::GET, &format!("/projects/{pid}"), &ada, None).await;
    expect_error(gone, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let gone = send(
        &app,
        Method::GET,
        &format!("/tasks/{}", task["id"]),
        &ada,
        None,
    )
    .await;
    expect_error(gone, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let list = expect_json(
        send(&app, Method::GET, "/projects", &ada, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]));
}

/// An owner, an editor and a viewer of one project, and its id.
async fn team(app: &TestApp) -> (TestUser, TestUser, TestUser, String) {
    let owner = app.signup_verified("Olga").await;
    let editor = app.signup_verified("Eddie").await;
    let viewer = app.signup_verified("Vera").await;
    let project = id(&app.create_project(&owner, "Board").await);
    app.add_member(&owner, &project, &editor, "editor").await;
    app.add_member(&owner, &project, &viewer, "viewer").await;
    (owner, editor, viewer, project)
}

async fn status_of(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    send(app, method, path, user, body).await.status()
}

async fn each_role_may_do_what_it_allows_and_no_more(app: TestApp) {
    let (owner, editor, viewer, project) = team(&app).await;
    // Tasks: everyone reads, editors and owners write.
    let task = app
        .create_task(&editor, json!({"title": "Draft", "project_id": project}))
        .await;
    let tid = task["id"].as_i64().unwrap();
    let create = json!({"title": "By viewer", "project_id": project});
    let refused = send(&app, Method::POST, "/tasks", &viewer, Some(create)).await;
    expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    for user in [&owner, &editor, &viewer] {
        assert_eq!(
            status_of(&app, user, Method::GET, &format!("/tasks/{tid}"), None).await,
            StatusCode::OK
        );
        let listed = send(
            &app,
            Method::GET,
            &format!("/tasks?project_id={project}"),
            user,
            None,
        )
        .await;
        assert_eq!(
            expect_json(listed, StatusCode::OK)
                .await
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            status_of(
                &app,
                user,
                Method::GET,
                &format!("/projects/{project}/members"),
                None
            )
            .await,
            StatusCode::OK
        );
        let seen = expect_json(
            send(
                &app,
                Method::GET,
                &format!("/projects/{project}"),
                user,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let since = seen["last_seq"].as_i64().unwrap() - 1;
        let events = send(
            &app,
            Method::GET,
            &format!("/events?stream=project:{project}&since={since}"),
            user,
            None,
        )
        .await;
        assert_eq!(
            expect_json(events, StatusCode::OK).await["events"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
    let writes = |tid: i64| {
        vec![
            (
                Method::PATCH,
                format!("/tasks/{tid}"),
                Some(json!({"title": "Changed"})),
            ),
            (
                Method::PUT,
                format!("/tasks/{tid}"),
                Some(json!({"title": "Replaced"})),
            ),
            (Method::PATCH, format!("/tasks/{tid}/complete"), None),
            (Method::DELETE, format!("/tasks/{tid}"), None),
            (Method::POST, format!("/tasks/{tid}/restore"), None),
            (Method::DELETE, format!("/tasks/{tid}?permanent=true"), None),
        ]
    };
    for (method, path, body) in writes(tid) {
        let refused = send(&app, method.clone(), &path, &viewer, body.clone()).await;
        expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    for (writer, title) in [(&editor, "E"), (&owner, "O")] {
        let task = app
            .create_task(writer, json!({"title": title, "project_id": project}))
            .await;
        for (method, path, body) in writes(task["id"].as_i64().unwrap()) {
            let status = status_of(&app, writer, method.clone(), &path, body).await;
            assert!(status.is_success(), "{method} {path} by {title}: {status}");
        }
    }
    // Managing the project: owners only.
    let patch = Some(json!({"name": "Renamed"}));
    let invite = Some(json!({"email": "new@example.com"}));
    for user in [&editor, &viewer] {
        for (method, path, body) in [
            (Method::PATCH, format!("/projects/{project}"), patch.clone()),
            (Method::DELETE, format!("/projects/{project}"), None),
            (
                Method::POST,
                format!("/projects/{project}/invitations"),
                invite.clone(),
            ),
            (
                Method::GET,
                format!("/projects/{project}/invitations"),
                None,
            ),
            (
                Method::PATCH,
                format!("/projects/{project}/members/{}", owner.id),
                Some(json!({"role": "viewer"})),
            ),
            (
                Method::DELETE,
                format!("/projects/{project}/members/{}", owner.id),
                None,
            ),
        ] {
            let refused = send(&app, method.clone(), &path, user, body).await;
            expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        }
    }
    let promoted = send(
        &app,
        Method::PATCH,
        &format!("/projects/{project}/members/{}", viewer.id),
        &owner,
        Some(json!({"role": "editor"})),
    )
    .await;
    assert_eq!(
        expect_json(promoted, StatusCode::OK).await["role"],
        "editor"
    );
    let bad = send(
        &app,
        Method::PATCH,
        &format!("/projects/{project}/members/{}", viewer.id),
        &owner,
        Some(json!({"role": "admin"})),
    )
    .await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    // Promoted, Vera writes now.
    app.create_task(
        &viewer,
        json!({"title": "Now allowed", "project_id": project}),
    )
    .await;
    let renamed = send(
        &app,
        Method::PATCH,
        &format!("/projects/{project}"),
        &owner,
        patch,
    )
    .await;
    assert_eq!(
        expect_json(renamed, StatusCode::OK).await["name"],
        "Renamed"
    );
}

async fn outsiders_see_no_project_and_none_of_its_tasks(app: TestApp) {
    let (owner, _, _, project) = team(&app).await;
    let outsider = app.signup("Otto").await;
    let other = id(&app.create_project(&outsider, "Elsewhere").await);
    let task = app
        .create_task(&owner, json!({"title": "Secret", "project_id": project}))
        .await;
    let tid = task["id"].as_i64().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/projects/{project}"), None),
        (
            Method::PATCH,
            format!("/projects/{project}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/projects/{project}"), None),
        (Method::GET, format!("/projects/{project}/members"), None),
        (
            Method::POST,
            format!("/projects/{project}/invitations"),
            Some(json!({"email": "otto@example.com"})),
        ),
        (Method::POST, format!("/projects/{project}/leave"), None),
        (Method::GET, format!("/tasks?project_id={project}"), None),
        (
            Method::GET,
            format!("/events?stream=project:{project}"),
            None,
        ),
        (Method::GET, format!("/tasks/{tid}"), None),
        (
            Method::PATCH,
            format!("/tasks/{tid}"),
            Some(json!({"title": "Mine"})),
        ),
        (Method::DELETE, format!("/tasks/{tid}"), None),
        (Method::POST, format!("/tasks/{tid}/restore"), None),
    ] {
        let refused = send(&app, method.clone(), &path, &outsider, body).await;
        expect_error(refused, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    }
    // Nor can one create tasks in it, or assign across projects.
    let refused = send(
        &app,
        Method::POST,
        "/tasks",
        &outsider,
        Some(json!({"title": "In", "project_id": project})),
    )
    .await;
    expect_error(refused, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let refused = send(
        &app,
        Method::POST,
        "/tasks",
        &outsider,
        Some(json!({"title": "In", "project_id": other, "assignee_id": owner.id})),
    )
    .await;
    expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    // The owner's own project lists don't mix either.
    let (personal, total) = testkit::api::tasks::list(&app, &owner, "").await;
    assert_eq!(
        (personal.len(), total),
        (0, 0),
        "project tasks are not personal tasks"
    );
    let (mine, _) =
        testkit::api::tasks::list(&app, &outsider, &format!("?project_id={other}")).await;
    assert!(mine.is_empty());
    let events = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/events?stream=project:{other}"),
            &outsider,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["stream"] == json!(format!("project:{other}"))));
    let invalid = send(&app, Method::GET, "/events?stream=team:1", &outsider, None).await;
    expect_error(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let foreign_user = send(
        &app,
        Method::GET,
        &format!("/events?stream=user:{}", owner.id),
        &outsider,
        None,
    )
    .await;
    expect_error(foreign_user, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn the_last_owner_can_neither_leave_nor_step_down(app: TestApp) {
    let (owner, editor, _, project) = team(&app).await;
    let leave = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/leave"),
        &owner,
        None,
    )
    .await;
    expect_error(leave, StatusCode::CONFLICT, "CONFLICT").await;
    let demote = send(
        &app,
        Method::PATCH,
        &format!("/projects/{project}/members/{}", owner.id),
        &owner,
        Some(json!({"role": "editor"})),
    )
    .await;
    expect_error(demote, StatusCode::CONFLICT, "CONFLICT").await;
    let remove = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/members/{}", owner.id),
        &owner,
        None,
    )
    .await;
    expect_error(remove, StatusCode::CONFLICT, "CONFLICT").await;
    // With a second owner, the first may go.
    let promoted = send(
        &app,
        Method::PATCH,
        &format!("/projects/{project}/members/{}", editor.id),
        &owner,
        Some(json!({"role": "owner"})),
    )
    .await;
    expect_json(promoted, StatusCode::OK).await;
    let leave = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/leave"),
        &owner,
        None,
    )
    .await;
    assert_eq!(leave.status(), StatusCode::NO_CONTENT);
    let gone = send(
        &app,
        Method::GET,
        &format!("/projects/{project}"),
        &owner,
        None,
    )
    .await;
    expect_error(gone, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let members = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/projects/{project}/members"),
            &editor,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members.as_array().map(Vec::len), Some(2));
}

async fn a_removed_member_loses_access_at_once(app: TestApp) {
    let (owner, editor, _, project) = team(&app).await;
    let task = app
        .create_task(
            &editor,
            json!({"title": "Mine", "project_id": project, "assignee_id": editor.id}),
        )
        .await;
    let tid = task["id"].as_i64().unwrap();
    let removed = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/members/{}", editor.id),
        &owner,
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    for (method, path) in [
        (Method::GET, format!("/tasks/{tid}")),
        (Method::PATCH, format!("/tasks/{tid}/complete")),
        (Method::GET, format!("/projects/{project}")),
    ] {
        let refused = send(&app, method, &path, &editor, None).await;
        expect_error(refused, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    }
    // Their tasks stay, unassigned; they hear of the removal.
    let kept = expect_json(
        send(&app, Method::GET, &format!("/tasks/{tid}"), &owner, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(kept["assignee_id"], Value::Null);
    let types = testkit::api::notifications::notification_types(&app, &editor).await;
    assert!(types.contains(&"PROJECT_REMOVED".to_string()), "{types:?}");
    let missing = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/members/{}", editor.id),
        &owner,
        None,
    )
    .await;
    expect_error(missing, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}
