//! The socket's token: at the upgrade or in the first message, refreshed, revoked, expired.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::{expect_error, expect_json};
use testkit::ws::{ws_url, Connect, WsClient};
use testkit::{Backend, TestApp};
use tokio_tungstenite::tungstenite::Message;

use super::{rest, url};
use crate::{backend_tests, per_backend};

backend_tests!(
    bad_header_token_refuses_the_upgrade,
    first_message_auth_failures_close_4401,
    refresh_moves_the_socket_to_the_new_token,
    refresh_with_a_foreign_or_invalid_token_is_rejected,
    logout_closes_the_tokens_sockets_4003,
);

per_backend!(
    auth_message_must_arrive_in_time,
    token_expiry_warns_then_closes_4001,
);

async fn bad_header_token_refuses_the_upgrade(app: TestApp) {
    let user = app.signup("Ada").await;
    for token in ["garbage", "a.b.c"] {
        match WsClient::try_connect(&url(&app, None), Some(token)).await {
            Connect::Refused(status, body) => {
                assert_eq!(status, 401);
                assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{body}");
            }
            Connect::Open(_) => panic!("upgrade with a bad token must be refused"),
        }
    }
    app.api(Method::POST, "/auth/logout", Some(&user.token))
        .send()
        .await
        .unwrap();
    match WsClient::try_connect(&url(&app, None), Some(&user.token)).await {
        Connect::Refused(status, body) => {
            assert_eq!(status, 401);
            assert_eq!(body["error"]["code"], "INVALID_TOKEN");
        }
        Connect::Open(_) => panic!("a revoked token must be refused"),
    }
    // A plain HTTP request to the endpoint gets the envelope.
    let response = app.client.get(app.url("/api/v1/ws")).send().await.unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let response = app
        .client
        .get(app.url("/api/v1/ws?since=-1"))
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

async fn first_message_auth_failures_close_4401(app: TestApp) {
    let user = app.signup("Ada").await;
    let cases = [
        Message::Text(
            json!({"type": "auth", "token": "not-a-token"})
                .to_string()
                .into(),
        ),
        Message::Text(json!({"type": "ping"}).to_string().into()),
        Message::Text("{not json".into()),
        Message::Binary(vec![1, 2, 3].into()),
    ];
    for first in cases {
        let mut ws = WsClient::connect(&url(&app, None), None).await;
        ws.send_raw(first.clone()).await;
        let (errors, code) = ws.closed().await;
        assert_eq!(code, 4401, "after {first:?}");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["code"], "AUTH_FAILED");
    }
    // The seed's paths work for sockets too.
    let mut ws = WsClient::connect(
        &ws_url(&app.address, None).replace("/api/v1/ws", "/api/ws"),
        None,
    )
    .await;
    ws.send(json!({"type": "auth", "token": user.token})).await;
    assert_eq!(ws.next().await["type"], "ready");
}

async fn auth_message_must_arrive_in_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.realtime.auth_timeout = std::time::Duration::from_secs(1)
    })
    .await;
    let mut ws = WsClient::connect(&url(&app, None), None).await;
    let (errors, code) = ws.closed().await;
    assert_eq!(code, 4401);
    assert_eq!(errors[0]["code"], "AUTH_FAILED");
}

async fn refresh_moves_the_socket_to_the_new_token(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    // A token of another session (moving to a refreshed token of the same session is in
    // tests/api/sessions.rs).
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    let new_token = expect_json(response, StatusCode::OK).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ws.events(1).await[0]["data"]["type"], "LOGIN");
    ws.send(json!({"type": "auth.refresh", "token": new_token}))
        .await;
    let refreshed = ws.next().await;
    assert_eq!(refreshed["type"], "auth.refreshed");
    assert!(
        refreshed["token_expires_at"].as_str().unwrap()
            >= ready["token_expires_at"].as_str().unwrap()
    );
    // Logging out the old token no longer closes this socket...
    rest(&app, &user, Method::POST, "/auth/logout", None).await;
    let logout = ws.events(1).await;
    assert_eq!(logout[0]["data"]["type"], "LOGOUT");
    assert!(ws.roundtrip().await.is_empty());
    // ...logging out the new one does.
    app.api(Method::POST, "/auth/logout", Some(&new_token))
        .send()
        .await
        .unwrap();
    let (events, errors, code) = ws.drain_until_closed().await;
    assert_eq!(code, 4003);
    assert_eq!(errors, vec!["TOKEN_REVOKED"]);
    assert!(
        events.len() <= 1,
        "at most the LOGOUT notification: {events:?}"
    );
}

async fn refresh_with_a_foreign_or_invalid_token_is_rejected(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &ada.token).await;
    for token in [bob.token.as_str(), "nonsense"] {
        ws.send(json!({"type": "auth.refresh", "token": token}))
            .await;
        let error = ws.next().await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], "REFRESH_REJECTED");
    }
    // Still Ada's socket: Ada's events arrive, Bob's do not.
    app.create_task(&bob, json!({"title": "Bob's"})).await;
    let task = app.create_task(&ada, json!({"title": "Ada's"})).await;
    let events = ws.events(2).await;
    assert_eq!(events[0]["data"], task);
}

async fn logout_closes_the_tokens_sockets_4003(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut one, _) = WsClient::ready(&url(&app, None), &user.token).await;
    let (mut two, _) = WsClient::ready(&url(&app, None), &user.token).await;
    rest(&app, &user, Method::POST, "/auth/logout", None).await;
    for ws in [&mut one, &mut two] {
        let (_, errors, code) = ws.drain_until_closed().await;
        assert_eq!(code, 4003);
        assert_eq!(errors, vec!["TOKEN_REVOKED"]);
    }
}

async fn token_expiry_warns_then_closes_4001(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.jwt_ttl = std::time::Duration::from_secs(4)
    })
    .await;
    let user = app.signup("Ada").await;
    let (mut ws, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    let expiring = ws.next().await;
    assert_eq!(expiring["type"], "auth.expiring");
    assert_eq!(expiring["token_expires_at"], ready["token_expires_at"]);
    let (errors, code) = ws.closed().await;
    assert_eq!(code, 4001);
    assert_eq!(errors[0]["code"], "TOKEN_EXPIRED");
}
