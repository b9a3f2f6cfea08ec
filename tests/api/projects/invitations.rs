//! Invitations by e-mail address: to accounts and to addresses without one, accepted,
//! declined, renewed, expired; and the quotas on projects and members.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::{expect_error, expect_json, send};
use testkit::{Backend, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    an_invited_account_is_notified_and_joins_by_accepting,
    an_address_without_an_account_finds_its_invitation_after_signing_up,
    the_answer_does_not_tell_whether_an_address_has_an_account,
    invitations_are_declined_withdrawn_and_renewed,
);
per_backend!(invitations_expire, quotas_bound_projects_and_members);

async fn invitations(app: &TestApp, user: &testkit::api::TestUser) -> Vec<Value> {
    let list = expect_json(
        send(app, Method::GET, "/invitations", user, None).await,
        StatusCode::OK,
    )
    .await;
    list.as_array().expect("array").clone()
}

async fn an_invited_account_is_notified_and_joins_by_accepting(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let invitation = app.invite(&owner, &project, &bob, "viewer").await;
    assert_eq!(invitation["role"], "viewer");
    assert_eq!(invitation["project_name"], "Board");
    assert_eq!(invitation["email"], json!(bob.email));
    let types = testkit::api::notifications::notification_types(&app, &bob).await;
    assert!(
        types.contains(&"PROJECT_INVITATION".to_string()),
        "{types:?}"
    );
    let mine = invitations(&app, &bob).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], invitation["id"]);
    // Someone else cannot take it.
    let eve = app.signup_verified("Eve").await;
    let path = format!("/invitations/{}/accept", id(&invitation));
    expect_error(
        send(&app, Method::POST, &path, &eve, None).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    .await;
    // An unverified address cannot accept.
    expect_error(
        send(&app, Method::POST, &path, &bob, None).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    app.verify_email(&bob).await;
    let joined = app.accept(&bob, &invitation).await;
    assert_eq!(joined["id"], json!(project));
    assert_eq!(joined["role"], "viewer");
    assert!(invitations(&app, &bob).await.is_empty());
    let types = testkit::api::notifications::notification_types(&app, &bob).await;
    assert!(types.contains(&"PROJECT_ADDED".to_string()), "{types:?}");
    let again = send(&app, Method::POST, &path, &bob, None).await;
    expect_error(again, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let projects = expect_json(
        send(&app, Method::GET, "/projects", &bob, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(projects[0]["id"], json!(project));
}

async fn an_address_without_an_account_finds_its_invitation_after_signing_up(app: TestApp) {
    let owner = app.signup("Olga").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let invited = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/invitations"),
        &owner,
        Some(json!({"email": "  Newcomer@Example.com "})),
    )
    .await;
    let invitation = expect_json(invited, StatusCode::CREATED).await;
    assert_eq!(invitation["email"], "newcomer@example.com");
    assert_eq!(invitation["role"], "editor", "editor by default");
    let listed = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/projects/{project}/invitations"),
            &owner,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let newcomer = app.signup("Newcomer").await;
    let mine = invitations(&app, &newcomer).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let types = testkit::api::notifications::notification_types(&app, &newcomer).await;
    assert!(
        types.contains(&"PROJECT_INVITATION".to_string()),
        "{types:?}"
    );
    app.verify_email(&newcomer).await;
    app.accept(&newcomer, &mine[0]).await;
    let members = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/projects/{project}/members"),
            &owner,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(members
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == json!(newcomer.id) && m["role"] == "editor"));
}

async fn the_answer_does_not_tell_whether_an_address_has_an_account(app: TestApp) {
    let owner = app.signup("Olga").await;
    app.signup("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let mut shapes = Vec::new();
    for email in ["bob@example.com", "nobody@example.com"] {
        let response = send(
            &app,
            Method::POST,
            &format!("/projects/{project}/invitations"),
            &owner,
            Some(json!({"email": email})),
        )
        .await;
        let body = expect_json(response, StatusCode::CREATED).await;
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        shapes.push(keys);
    }
    assert_eq!(shapes[0], shapes[1]);
    let bad = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/invitations"),
        &owner,
        Some(json!({"email": "not an address"})),
    )
    .await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    let bad = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/invitations"),
        &owner,
        Some(json!({"email": "a@example.com", "role": "king"})),
    )
    .await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
}

async fn invitations_are_declined_withdrawn_and_renewed(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let first = app.invite(&owner, &project, &bob, "viewer").await;
    let renewed = app.invite(&owner, &project, &bob, "editor").await;
    assert_eq!(first["id"], renewed["id"], "one invitation per address");
    assert_eq!(renewed["role"], "editor");
    let declined = send(
        &app,
        Method::POST,
        &format!("/invitations/{}/decline", id(&first)),
        &bob,
        None,
    )
    .await;
    assert_eq!(declined.status(), StatusCode::NO_CONTENT);
    assert!(invitations(&app, &bob).await.is_empty());
    let again = app.invite(&owner, &project, &bob, "viewer").await;
    let withdrawn = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/invitations/{}", id(&again)),
        &owner,
        None,
    )
    .await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    let accept = send(
        &app,
        Method::POST,
        &format!("/invitations/{}/accept", id(&again)),
        &bob,
        None,
    )
    .await;
    expect_error(accept, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let missing = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/invitations/{}", id(&again)),
        &owner,
        None,
    )
    .await;
    expect_error(missing, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn invitations_expire(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.quotas.invitation_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let invitation = app.invite(&owner, &project, &bob, "viewer").await;
    // Past its time (the wait is what makes it expire, not an assertion on timing).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(invitations(&app, &bob).await.is_empty());
    let accept = send(
        &app,
        Method::POST,
        &format!("/invitations/{}/accept", id(&invitation)),
        &bob,
        None,
    )
    .await;
    expect_error(accept, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn quotas_bound_projects_and_members(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.quotas.max_projects_per_user = 2;
        c.quotas.max_members_per_project = 2;
    })
    .await;
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "One").await);
    app.create_project(&owner, "Two").await;
    let over = send(
        &app,
        Method::POST,
        "/projects",
        &owner,
        Some(json!({"name": "Three"})),
    )
    .await;
    expect_error(over, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
    // One member and one open invitation fill a project of two.
    app.invite(&owner, &project, &bob, "viewer").await;
    let over = send(
        &app,
        Method::POST,
        &format!("/projects/{project}/invitations"),
        &owner,
        Some(json!({"email": "c@example.com"})),
    )
    .await;
    expect_error(over, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
    // Bob belongs to two projects already: he cannot join a third.
    app.create_project(&bob, "B1").await;
    app.create_project(&bob, "B2").await;
    let invitation = &invitations(&app, &bob).await[0];
    let accept = send(
        &app,
        Method::POST,
        &format!("/invitations/{}/accept", id(invitation)),
        &bob,
        None,
    )
    .await;
    expect_error(accept, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
}
