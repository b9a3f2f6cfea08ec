//! What one client cannot do to the others: hold the instance with sockets that never
//! authenticate, or make the server replay its stream over and over.

use serde_json::json;
use testkit::ws::{assert_consecutive, Connect, WsClient};
use testkit::{Backend, TestApp};

use super::url;
use crate::{backend_tests, per_backend};

backend_tests!(resume_requests_are_bounded);

per_backend!(
    tokenless_sockets_are_capped_per_address,
    tokenless_sockets_are_capped_in_all,
);

fn refused(connect: Connect) -> (u16, String) {
    match connect {
        Connect::Refused(status, body) => (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        Connect::Open(_) => panic!("the upgrade should have been refused"),
    }
}

async fn tokenless_sockets_are_capped_per_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.realtime.limits.total = 4;
        c.realtime.limits.unauthenticated_per_ip = 2;
    })
    .await;
    let user = app.signup("Ada").await;
    let mut waiting = [
        WsClient::connect(&url(&app, None), None).await,
        WsClient::connect(&url(&app, None), None).await,
    ];
    let (status, code) = refused(WsClient::try_connect(&url(&app, None), None).await);
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    // A user with a token still gets in.
    let (_live, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    assert_eq!(ready["type"], "ready");
    // Once a waiting socket authenticates, its place is free again.
    waiting[0]
        .send(json!({"type": "auth", "token": user.token}))
        .await;
    assert_eq!(waiting[0].next().await["type"], "ready");
    let again = WsClient::try_connect(&url(&app, None), None).await;
    assert!(matches!(again, Connect::Open(_)));
}

async fn tokenless_sockets_are_capped_in_all(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.realtime.limits.total = 4;
        c.realtime.limits.unauthenticated = 2;
    })
    .await;
    let user = app.signup("Ada").await;
    let _waiting = [
        WsClient::connect(&url(&app, None), None).await,
        WsClient::connect(&url(&app, None), None).await,
    ];
    let (status, code) = refused(WsClient::try_connect(&url(&app, None), None).await);
    assert_eq!((status, code.as_str()), (503, "SERVICE_UNAVAILABLE"));
    let (_live, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    assert_eq!(ready["type"], "ready");
}

async fn resume_requests_are_bounded(app: TestApp) {
    let user = app.signup("Ada").await;
    app.create_task(&user, json!({"title": "A"})).await;
    let (mut ws, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    assert_eq!(ready["last_seq"], 3);
    for _ in 0..3 {
        ws.send(json!({"type": "resume", "since": 0})).await;
        assert_consecutive(&ws.events(3).await, 1);
    }
    ws.send(json!({"type": "resume", "since": 0})).await;
    let refused = ws.next().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "RATE_LIMITED");
    // Not fatal: the socket goes on, live.
    app.create_task(&user, json!({"title": "B"})).await;
    assert_consecutive(&ws.events(2).await, 4);
}
