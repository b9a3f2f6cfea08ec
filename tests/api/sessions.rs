//! Sessions: rotation on refresh, reuse detection, the absolute lifetime, logout,
//! logout-all, the list, ending one, and password changes.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use testkit::api::{expect_error, expect_json, TestUser};
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    reusing_a_rotated_token_ends_the_session,
    logout_ends_the_session,
    logout_all_ends_every_session,
    sessions_are_listed_with_the_current_one,
    ending_one_session_and_a_strangers_is_404,
    password_change_ends_the_other_sessions,
    wrong_current_password_is_refused,
);

per_backend!(
    refresh_rotates_and_the_old_token_stops_at_once,
    refresh_past_the_absolute_lifetime_is_refused,
    signing_in_past_the_session_quota_ends_the_least_recently_used,
);

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> Response {
    app.api(method, path, Some(token)).send().await.unwrap()
}

async fn assert_refused(app: &TestApp, token: &str) {
    let response = call(app, Method::GET, "/auth/me", token).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

async fn assert_works(app: &TestApp, token: &str) {
    let response = call(app, Method::GET, "/auth/me", token).await;
    expect_json(response, StatusCode::OK).await;
}

/// A new session of `user` (a sign-in from another device), with its token.
async fn sign_in(app: &TestApp, user: &TestUser, user_agent: &str) -> String {
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .header("user-agent", user_agent)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    token_of(expect_json(response, StatusCode::OK).await)
}

fn token_of(body: Value) -> String {
    body["token"].as_str().unwrap().to_string()
}

async fn refresh(app: &TestApp, token: &str) -> Response {
    call(app, Method::POST, "/auth/refresh", token).await
}

async fn socket(app: &TestApp, token: &str) -> WsClient {
    WsClient::ready(&ws_url(&app.address, None), token).await.0
}

/// Reads until the socket closes; asserts it closed 4003 TOKEN_REVOKED.
async fn assert_closed_revoked(ws: &mut WsClient) {
    let (_, errors, code) = ws.drain_until_closed().await;
    assert_eq!(code, 4003);
    assert_eq!(errors, vec!["TOKEN_REVOKED"]);
}

async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = call(app, Method::GET, "/auth/sessions", token).await;
    expect_json(response, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// REST refuses the replaced token at once; its sockets get WS_REFRESH_GRACE to move to
/// the new token: one that does stays open, one that does not closes with 4003.
async fn refresh_rotates_and_the_old_token_stops_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.realtime.refresh_grace = std::time::Duration::from_secs(1);
    })
    .await;
    let user = app.signup("Ada").await;
    let mut idle = socket(&app, &user.token).await;
    let mut moving = socket(&app, &user.token).await;
    let new = token_of(expect_json(refresh(&app, &user.token).await, StatusCode::OK).await);
    assert_ne!(new, user.token);
    assert_refused(&app, &user.token).await;
    assert_works(&app, &new).await;
    moving
        .send(json!({"type": "auth.refresh", "token": new}))
        .await;
    assert_eq!(moving.next().await["type"], "auth.refreshed");
    assert_closed_revoked(&mut idle).await;
    // The moved socket lives on past the grace and keeps receiving.
    app.create_task(&user_with_token(&user, &new), json!({"title": "after"}))
        .await;
    let events = moving.events(2).await;
    assert_eq!(events[0]["event"], "task.created", "{events:?}");
    // The new token is the session's: a socket opens with it, and it refreshes in turn.
    let mut ws = socket(&app, &new).await;
    assert!(ws.roundtrip().await.is_empty());
    let newer = token_of(expect_json(refresh(&app, &new).await, StatusCode::OK).await);
    assert_works(&app, &newer).await;
    assert_eq!(sessions(&app, &newer).await.len(), 1);
}

fn user_with_token(user: &TestUser, token: &str) -> TestUser {
    TestUser {
        token: token.to_string(),
        ..user.clone()
    }
}

async fn reusing_a_rotated_token_ends_the_session(app: TestApp) {
    let user = app.signup("Ada").await;
    let other = sign_in(&app, &user, "other device").await;
    let new = token_of(expect_json(refresh(&app, &user.token).await, StatusCode::OK).await);
    let mut ws = socket(&app, &new).await;
    // The old token again, as a thief would: refused, and the whole session ends.
    expect_error(
        refresh(&app, &user.token).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    assert_refused(&app, &new).await;
    assert_closed_revoked(&mut ws).await;
    expect_error(
        refresh(&app, &new).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    // Only that session: the other device is still signed in.
    assert_works(&app, &other).await;
    assert_eq!(sessions(&app, &other).await.len(), 1);
}

async fn refresh_past_the_absolute_lifetime_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.session_max_age = std::time::Duration::from_secs(2)
    })
    .await;
    let user = app.signup("Ada").await;
    let body = expect_json(refresh(&app, &user.token).await, StatusCode::OK).await;
    // No token outlives its session.
    assert!(body["expires_in"].as_i64().unwrap() <= 2, "{body}");
    let token = token_of(body);
    // Wait until the session has expired (its tokens are capped at it, so they stop too).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while me_status(&app, &token).await != StatusCode::UNAUTHORIZED {
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    expect_error(
        refresh(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    assert_refused(&app, &token).await;
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    call(app, Method::GET, "/auth/me", token).await.status()
}

async fn logout_ends_the_session(app: TestApp) {
    let user = app.signup("Ada").await;
    let other = sign_in(&app, &user, "other device").await;
    let mut ws = socket(&app, &user.token).await;
    let response = call(&app, Method::POST, "/auth/logout", &user.token).await;
    expect_json(response, StatusCode::OK).await;
    assert_refused(&app, &user.token).await;
    assert_closed_revoked(&mut ws).await;
    expect_error(
        refresh(&app, &user.token).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    assert_works(&app, &other).await;
}

async fn logout_all_ends_every_session(app: TestApp) {
    let user = app.signup("Ada").await;
    let second = sign_in(&app, &user, "phone").await;
    let third = sign_in(&app, &user, "tablet").await;
    let mut sockets = Vec::new();
    for token in [&user.token, &second, &third] {
        sockets.push(socket(&app, token).await);
    }
    let response = call(&app, Method::POST, "/auth/logout-all", &second).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["sessions_ended"], 3);
    assert_eq!(body["user_id"].as_str().unwrap(), user.id);
    for ws in &mut sockets {
        assert_closed_revoked(ws).await;
    }
    for token in [&user.token, &second, &third] {
        assert_refused(&app, token).await;
    }
    // Signing in again works.
    let again = sign_in(&app, &user, "laptop").await;
    assert_eq!(sessions(&app, &again).await.len(), 1);
}

async fn sessions_are_listed_with_the_current_one(app: TestApp) {
    let user = app.signup("Ada").await;
    let long_agent = "x".repeat(1000);
    let phone = sign_in(&app, &user, &long_agent).await;
    let listed = sessions(&app, &phone).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed:?}");
    let current = current[0];
    assert_eq!(current["user_agent"].as_str().unwrap().len(), 256);
    assert_eq!(current["ip"], "127.0.0.1");
    for field in ["id", "created_at", "last_used_at"] {
        assert!(current[field].is_string(), "{field}: {current}");
    }
    // Seen from the other session, the other one is current.
    let from_first = sessions(&app, &user.token).await;
    let first_current = from_first.iter().find(|s| s["current"] == true).unwrap();
    assert_ne!(first_current["id"], current["id"]);
    // Other users see only theirs.
    let grace = app.signup("Grace").await;
    assert_eq!(sessions(&app, &grace.token).await.len(), 1);
}

async fn ending_one_session_and_a_strangers_is_404(app: TestApp) {
    let user = app.signup("Ada").await;
    let phone = sign_in(&app, &user, "phone").await;
    let mut phone_ws = socket(&app, &phone).await;
    let listed = sessions(&app, &user.token).await;
    let phone_id = listed.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A stranger cannot end it, nor learn that it exists.
    let grace = app.signup("Grace").await;
    let path = format!("/auth/sessions/{phone_id}");
    let response = call(&app, Method::DELETE, &path, &grace.token).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    assert_works(&app, &phone).await;

    let response = call(&app, Method::DELETE, &path, &user.token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &phone).await;
    assert_closed_revoked(&mut phone_ws).await;
    assert_works(&app, &user.token).await;
    assert_eq!(sessions(&app, &user.token).await.len(), 1);
    // Ended already, or never existed: 404.
    let response = call(&app, Method::DELETE, &path, &user.token).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
    let path = format!("/auth/sessions/{}", uuid::Uuid::new_v4());
    let response = call(&app, Method::DELETE, &path, &user.token).await;
    expect_error(response, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> Response {
    app.api(Method::PUT, "/auth/password", Some(token))
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn password_change_ends_the_other_sessions(app: TestApp) {
    let user = app.signup("Ada").await;
    let phone = sign_in(&app, &user, "phone").await;
    let mut phone_ws = socket(&app, &phone).await;
    let mut own_ws = socket(&app, &user.token).await;
    const NEW: &str = "An0ther-Strong!Secret";
    let response = change_password(&app, &user.token, &user.password, NEW).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["sessions_ended"], 1);
    assert_refused(&app, &phone).await;
    assert_closed_revoked(&mut phone_ws).await;
    // The current session goes on, its socket included.
    assert_works(&app, &user.token).await;
    let events = own_ws.roundtrip().await;
    assert!(
        events
            .iter()
            .all(|e| e["data"]["type"] == "PROFILE_UPDATED"),
        "{events:?}"
    );
    assert!(own_ws.roundtrip().await.is_empty());
    // The new password signs in; the old one does not.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": NEW}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

async fn wrong_current_password_is_refused(app: TestApp) {
    let user = app.signup("Ada").await;
    let phone = sign_in(&app, &user, "phone").await;
    let response = change_password(
        &app,
        &user.token,
        "Wr0ng-Password!",
        "An0ther-Strong!Secret",
    )
    .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    // Nothing changed: the other session works, the password is the old one.
    assert_works(&app, &phone).await;
    assert_works(&app, &user.token).await;
    // A weak new password or a missing field is a 422, and changes nothing either.
    let response = change_password(&app, &user.token, &user.password, "short").await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let response = app
        .api(Method::PUT, "/auth/password", Some(&user.token))
        .json(&json!({"new_password": "An0ther-Strong!Secret"}))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_works(&app, &phone).await;
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

async fn signing_in_past_the_session_quota_ends_the_least_recently_used(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.quotas.max_sessions_per_user = 2).await;
    let user = app.signup("Ada").await; // session 1
    let phone = sign_in(&app, &user, "phone").await; // session 2
                                                     // The sign-up's session refreshes after the phone signed in: the phone is now the
                                                     // least recently used.
    let first = token_of(expect_json(refresh(&app, &user.token).await, StatusCode::OK).await);
    let mut phone_socket = socket(&app, &phone).await;
    let laptop = sign_in(&app, &user, "laptop").await; // session 3: one too many

    assert_closed_revoked(&mut phone_socket).await;
    assert_refused(&app, &phone).await;
    expect_error(
        refresh(&app, &phone).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    assert_works(&app, &first).await;
    assert_works(&app, &laptop).await;
    let agents: Vec<Value> = sessions(&app, &laptop)
        .await
        .iter()
        .map(|s| s["user_agent"].clone())
        .collect();
    assert_eq!(agents.len(), 2, "{agents:?}");
    assert!(!agents.contains(&json!("phone")), "{agents:?}");
}
