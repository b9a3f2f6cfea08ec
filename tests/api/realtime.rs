//! The WebSocket protocol against one in-process server, on both backends. Every server
//! message is checked against `protocol/schemas` by the client.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{expect_error, expect_json, Backend, TestApp, TestUser, PASSWORD};
use crate::ws::{assert_consecutive, assert_valid_server_message, ws_url, Connect, WsClient};
use crate::{backend_tests, per_backend};

backend_tests!(
    ready_then_live_events_with_rest_data,
    every_change_is_an_event_in_order,
    auth_message_and_since_replay_everything,
    bad_header_token_refuses_the_upgrade,
    first_message_auth_failures_close_4401,
    bad_messages_close_4400,
    ping_gets_pong,
    resume_replays_then_continues_live,
    since_beyond_retention_resets,
    refresh_moves_the_socket_to_the_new_token,
    refresh_with_a_foreign_or_invalid_token_is_rejected,
    logout_closes_the_tokens_sockets_4003,
    every_device_gets_every_event_and_nobody_else_does,
    rest_events_match_the_socket,
    retention_prunes_old_events_but_keeps_the_last_ones,
);

per_backend!(
    auth_message_must_arrive_in_time,
    token_expiry_warns_then_closes_4001,
    per_user_limit_closes_the_newcomer_4009,
    global_limit_refuses_the_upgrade,
    slow_consumer_is_closed_4008_and_resumes,
    unanswered_pings_close_the_socket,
    shutdown_closes_sockets_1012,
);

fn url(app: &TestApp, since: Option<i64>) -> String {
    ws_url(&app.address, since)
}

async fn rest(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app.api(method, path, Some(&user.token));
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

async fn ready_then_live_events_with_rest_data(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    assert_eq!(ready["user_id"].as_str().unwrap(), user.id);
    assert_eq!(ready["last_seq"], 1, "signup made one event");
    assert_eq!(ready["heartbeat_s"], 25);

    let task = app.create_task(&user, json!({"title": "Live"})).await;
    let events = ws.events(2).await;
    assert_consecutive(&events, 2);
    assert_eq!(events[0]["event"], "task.created");
    assert_eq!(events[0]["data"], task, "data is what REST returned");
    assert_eq!(events[1]["event"], "notification.created");
    assert_eq!(events[1]["data"]["type"], "TASK_CREATED");
    assert_eq!(events[1]["data"]["task_id"], task["id"]);
    // `at` is the commit time, the same instant as the task's updated_at.
    assert_eq!(events[0]["at"], task["updated_at"]);
    assert!(ws.roundtrip().await.is_empty(), "nothing else was sent");
}

async fn every_change_is_an_event_in_order(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
    let task = app.create_task(&user, json!({"title": "One"})).await;
    let id = task["id"].as_i64().unwrap();
    let steps: Vec<(Method, String, Option<Value>, StatusCode)> = vec![
        (
            Method::PATCH,
            format!("/tasks/{id}"),
            Some(json!({"title": "Two"})),
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            format!("/tasks/{id}/complete"),
            None,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            format!("/tasks/{id}/complete"),
            None,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("/tasks/{id}"),
            None,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            format!("/tasks/{id}/restore"),
            None,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("/tasks/{id}?permanent=true"),
            None,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::PUT,
            "/profile".into(),
            Some(json!({"city": "London"})),
            StatusCode::OK,
        ),
        (
            Method::PUT,
            "/notifications/1".into(),
            Some(json!({"is_read": true})),
            StatusCode::OK,
        ),
        (
            Method::PUT,
            "/notifications/mark-all-read".into(),
            None,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/notifications/2".into(),
            None,
            StatusCode::NO_CONTENT,
        ),
    ];
    for (method, path, body, status) in steps {
        let response = rest(&app, &user, method.clone(), &path, body).await;
        assert_eq!(response.status(), status, "{method} {path}");
    }
    let expected = [
        "task.created",
        "notification.created",
        "task.updated",
        "notification.created",
        "task.completed",
        "notification.created",
        "task.pending",
        "notification.created",
        "task.deleted",
        "notification.created",
        "task.restored",
        "notification.created",
        "task.purged",
        "notification.created",
        "profile.updated",
        "notification.created",
        "notification.updated",
        "notifications.read_all",
        "notification.deleted",
    ];
    let events = ws.events(expected.len()).await;
    assert_consecutive(&events, 2);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, expected);
    assert_eq!(events[8]["data"]["is_deleted"], true);
    assert_eq!(events[12]["data"], json!({"id": id}));
    assert_eq!(events[14]["data"]["city"], "London");
    assert_eq!(events[16]["data"]["id"], 1);
    assert_eq!(events[16]["data"]["is_read"], true);
    assert_eq!(events[18]["data"], json!({"id": 2}));
    let read_all = &events[17]["data"];
    assert_eq!(
        read_all["count"].as_u64().unwrap() as usize,
        read_all["ids"].as_array().unwrap().len()
    );
    // A sign-in and a logout are events too.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let second = expect_json(response, StatusCode::OK).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let login = ws.events(1).await;
    assert_eq!(login[0]["data"]["type"], "LOGIN");
    app.api(Method::POST, "/auth/logout", Some(&second))
        .send()
        .await
        .unwrap();
    let logout = ws.events(1).await;
    assert_eq!(logout[0]["data"]["type"], "LOGOUT");
    assert_consecutive(
        &[
            events.last().unwrap().clone(),
            login[0].clone(),
            logout[0].clone(),
        ],
        20,
    );
    // The other token's logout does not close this socket.
    assert!(ws.roundtrip().await.is_empty());
}

async fn auth_message_and_since_replay_everything(app: TestApp) {
    let user = app.signup("Ada").await;
    for i in 0..3 {
        app.create_task(&user, json!({"title": format!("T{i}")}))
            .await;
    }
    let mut ws = WsClient::connect(&url(&app, None), None).await;
    ws.send(json!({"type": "auth", "token": user.token, "since": 0}))
        .await;
    let ready = ws.next().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["last_seq"], 7);
    let replay = ws.events(7).await;
    assert_consecutive(&replay, 1);
    assert_eq!(replay[0]["data"]["type"], "SIGNUP");
    // Then live, without a gap or a duplicate.
    app.create_task(&user, json!({"title": "Live"})).await;
    assert_consecutive(&ws.events(2).await, 8);

    // `since` on the URL works the same.
    let mut ws = WsClient::connect(&url(&app, Some(5)), Some(&user.token)).await;
    assert_eq!(ws.next().await["last_seq"], 9);
    assert_consecutive(&ws.events(4).await, 6);
    assert!(ws.roundtrip().await.is_empty());
}

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

async fn bad_messages_close_4400(app: TestApp) {
    let user = app.signup("Ada").await;
    let cases = [
        Message::Text("{oops".into()),
        Message::Text(json!({"type": "dance"}).to_string().into()),
        Message::Text(json!({"no": "type"}).to_string().into()),
        Message::Text(json!({"type": "resume"}).to_string().into()),
        Message::Binary(vec![0; 16].into()),
        Message::Text(
            json!({"type": "ping", "pad": "x".repeat(70 * 1024)})
                .to_string()
                .into(),
        ),
        // Beyond the codec's own cap too.
        Message::Text(
            json!({"type": "ping", "pad": "x".repeat(2 * 1024 * 1024)})
                .to_string()
                .into(),
        ),
    ];
    for bad in cases {
        let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
        ws.send_raw(bad).await;
        let (errors, code) = ws.closed().await;
        assert_eq!(code, 4400);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["code"], "BAD_MESSAGE");
    }
}

async fn ping_gets_pong(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
    for _ in 0..3 {
        assert!(ws.roundtrip().await.is_empty());
    }
    // A second auth is answered, not fatal.
    ws.send(json!({"type": "auth", "token": user.token})).await;
    assert_eq!(ws.next().await["code"], "ALREADY_AUTHENTICATED");
    assert!(ws.roundtrip().await.is_empty());
}

async fn resume_replays_then_continues_live(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
    app.create_task(&user, json!({"title": "A"})).await;
    app.create_task(&user, json!({"title": "B"})).await;
    assert_consecutive(&ws.events(4).await, 2);
    ws.send(json!({"type": "resume", "since": 1})).await;
    assert_consecutive(&ws.events(4).await, 2);
    app.create_task(&user, json!({"title": "C"})).await;
    assert_consecutive(&ws.events(2).await, 6);
    ws.send(json!({"type": "resume", "since": 7})).await;
    assert!(ws.roundtrip().await.is_empty(), "nothing after 7 yet");
}

async fn since_beyond_retention_resets(app: TestApp) {
    let user = app.signup("Ada").await;
    app.create_task(&user, json!({"title": "A"})).await;
    // What the pruner does after 7 days: the oldest events are gone.
    app.sql_for_user(
        "DELETE FROM events WHERE user_id = $1 AND seq <= 2",
        &user.id,
    )
    .await;
    let mut ws = WsClient::connect(&url(&app, Some(0)), Some(&user.token)).await;
    assert_eq!(ws.next().await["last_seq"], 3);
    let reset = ws.next().await;
    assert_eq!(reset, json!({"type": "reset", "last_seq": 3}));
    app.create_task(&user, json!({"title": "B"})).await;
    assert_consecutive(&ws.events(2).await, 4);
    // From a point still stored, the replay works.
    ws.send(json!({"type": "resume", "since": 2})).await;
    assert_consecutive(&ws.events(3).await, 3);
    // A since from the future (another history) resets too.
    ws.send(json!({"type": "resume", "since": 99})).await;
    assert_eq!(ws.next().await, json!({"type": "reset", "last_seq": 5}));

    let response = rest(&app, &user, Method::GET, "/events?since=0", None).await;
    let body = expect_error(response, StatusCode::GONE, "EVENTS_EXPIRED").await;
    assert_eq!(body["last_seq"], 5);
    let response = rest(&app, &user, Method::GET, "/events?since=2", None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

async fn refresh_moves_the_socket_to_the_new_token(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    let response = rest(&app, &user, Method::POST, "/auth/refresh", None).await;
    let new_token = expect_json(response, StatusCode::OK).await["token"]
        .as_str()
        .unwrap()
        .to_string();
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

async fn every_device_gets_every_event_and_nobody_else_does(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let (mut phone, _) = WsClient::ready(&url(&app, None), &ada.token).await;
    let (mut laptop, _) = WsClient::ready(&url(&app, None), &ada.token).await;
    let (mut bobs, _) = WsClient::ready(&url(&app, None), &bob.token).await;
    for i in 0..5 {
        app.create_task(&ada, json!({"title": format!("Ada {i}")}))
            .await;
    }
    let a = phone.events(10).await;
    let b = laptop.events(10).await;
    assert_eq!(a, b);
    assert_consecutive(&a, 2);
    assert!(
        bobs.roundtrip().await.is_empty(),
        "Bob sees nothing of Ada's"
    );
}

async fn rest_events_match_the_socket(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
    for i in 0..3 {
        app.create_task(&user, json!({"title": format!("T{i}")}))
            .await;
    }
    let live = ws.events(6).await;
    let response = rest(&app, &user, Method::GET, "/events?since=1", None).await;
    let page = expect_json(response, StatusCode::OK).await;
    assert_eq!(page["last_seq"], 7);
    let events = page["events"].as_array().unwrap();
    for event in events {
        assert_valid_server_message(event);
    }
    assert_eq!(events, &live, "exactly what the socket sent");
    let response = rest(&app, &user, Method::GET, "/events?since=1&limit=2", None).await;
    let page = expect_json(response, StatusCode::OK).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][1]["seq"], 3);
    let response = rest(&app, &user, Method::GET, "/events", None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["events"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    for query in ["?limit=0", "?limit=1001", "?since=-1", "?since=x"] {
        let response = rest(&app, &user, Method::GET, &format!("/events{query}"), None).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let response = app.api(Method::GET, "/events", None).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
}

async fn retention_prunes_old_events_but_keeps_the_last_ones(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    for i in 0..3 {
        app.create_task(&ada, json!({"title": format!("T{i}")}))
            .await;
    }
    app.create_task(&bob, json!({"title": "Recent"})).await;
    // Ada's events are ten days old; Bob's are fresh.
    let old = (chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339();
    let sql = match app.backend {
        Backend::Postgres => {
            format!("UPDATE events SET at = '{old}'::timestamptz WHERE user_id = $1")
        }
        Backend::Sqlite => format!("UPDATE events SET at = '{old}' WHERE user_id = $1"),
    };
    app.sql_for_user(&sql, &ada.id).await;
    let store = taskstream::store::connect(
        &app.config.database_url(),
        taskstream::store::PoolSizes::SINGLE,
    )
    .await
    .unwrap();
    let cutoff = chrono::Utc::now() - chrono::Duration::days(7);
    // In batches of 2, keeping each user's last 3.
    let mut pruned = 0;
    loop {
        let n = store.prune_events(cutoff, 3, 2).await.unwrap();
        pruned += n;
        if n < 2 {
            break;
        }
    }
    assert_eq!(
        pruned, 4,
        "Ada's seqs 1-4 go; her last 3 and all of Bob's stay"
    );
    let response = rest(&app, &ada, Method::GET, "/events?since=4", None).await;
    let kept = expect_json(response, StatusCode::OK).await;
    assert_consecutive(kept["events"].as_array().unwrap(), 5);
    let response = rest(&app, &ada, Method::GET, "/events?since=3", None).await;
    expect_error(response, StatusCode::GONE, "EVENTS_EXPIRED").await;
    let response = rest(&app, &bob, Method::GET, "/events?since=0", None).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
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

async fn per_user_limit_closes_the_newcomer_4009(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.realtime.limits.per_user = 2).await;
    let user = app.signup("Ada").await;
    let (mut first, _) = WsClient::ready(&url(&app, None), &user.token).await;
    let (_second, _) = WsClient::ready(&url(&app, None), &user.token).await;
    let mut third = WsClient::connect(&url(&app, None), Some(&user.token)).await;
    let (errors, code) = third.closed().await;
    assert_eq!(code, 4009);
    assert_eq!(errors[0]["code"], "TOO_MANY_CONNECTIONS");
    // The earlier ones are untouched, and a slot frees up when one leaves.
    assert!(first.roundtrip().await.is_empty());
    first.close().await;
    let mut retry = None;
    for _ in 0..50 {
        let mut ws = WsClient::connect(&url(&app, None), Some(&user.token)).await;
        let message = ws.next().await;
        if message["type"] == "ready" {
            retry = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(retry.is_some(), "a slot frees up once a socket closes");
}

async fn global_limit_refuses_the_upgrade(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.realtime.limits.total = 1).await;
    let user = app.signup("Ada").await;
    let (_first, _) = WsClient::ready(&url(&app, None), &user.token).await;
    match WsClient::try_connect(&url(&app, None), Some(&user.token)).await {
        Connect::Refused(status, body) => {
            assert_eq!(status, 503);
            assert_eq!(body["success"], false);
        }
        Connect::Open(_) => panic!("the instance is full"),
    }
}

async fn slow_consumer_is_closed_4008_and_resumes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.realtime.limits.queue = 2;
        c.http.tcp_send_buffer = Some(4096);
    })
    .await;
    let user = app.signup("Ada").await;
    let mut slow = WsClient::connect_slow(&url(&app, None), &user.token).await;
    // Registered (and its stream starting after seq 1) before the first write.
    let ready = slow.next().await;
    assert_eq!(
        (&ready["type"], &ready["last_seq"]),
        (&json!("ready"), &json!(1))
    );
    // Big events, and a client that reads nothing: the server's writes block, the queue
    // overflows, and the hub asks the socket to close.
    let description = "x".repeat(1000);
    for i in 0..150 {
        app.create_task(
            &user,
            json!({"title": format!("T{i}"), "description": description}),
        )
        .await;
    }
    let (events, errors, code) = slow.drain_until_closed().await;
    assert_eq!(code, 4008);
    assert_eq!(errors, vec!["SLOW_CONSUMER"]);
    let last = if events.is_empty() {
        1
    } else {
        assert_consecutive(&events, 2)
    };
    assert!(last < 301, "it was closed before the end");
    // It resumes where it stopped and gets the rest, in order.
    let mut ws = WsClient::connect(&url(&app, Some(last)), Some(&user.token)).await;
    assert_eq!(ws.next().await["last_seq"], 301);
    let rest = ws.events((301 - last) as usize).await;
    assert_consecutive(&rest, last + 1);
}

async fn unanswered_pings_close_the_socket(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.realtime.heartbeat = std::time::Duration::from_secs(1)
    })
    .await;
    let user = app.signup("Ada").await;
    // A client that reads (and so answers pings) stays.
    let (mut live, ready) = WsClient::ready(&url(&app, None), &user.token).await;
    assert_eq!(ready["heartbeat_s"], 1);
    // A client that reads nothing does not answer, and is closed.
    let (mut silent, _) = WsClient::ready(&url(&app, None), &user.token).await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        assert!(live.roundtrip().await.is_empty());
    }
    let (errors, code) = silent.closed().await;
    assert_eq!(code, 1011);
    assert!(errors.is_empty());
}

async fn shutdown_closes_sockets_1012(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup("Ada").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = taskstream::startup::App::build_with_listener(&app.config, listener)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", server.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let (mut one, _) = WsClient::ready(&ws_url(&address, None), &user.token).await;
    let (mut two, _) = WsClient::ready(&ws_url(&address, None), &user.token).await;
    stop.send(()).unwrap();
    for ws in [&mut one, &mut two] {
        let (errors, code) = ws.closed().await;
        assert_eq!(code, 1012);
        assert_eq!(errors[0]["code"], "SERVER_RESTARTING");
    }
    running.await.unwrap().unwrap();
}

/// `protocol/asyncapi.yaml` documents every message schema and every close code the server
/// uses.
#[test]
fn the_protocol_document_covers_every_message_and_close_code() {
    use taskstream::realtime::protocol::close;
    let root = env!("CARGO_MANIFEST_DIR");
    let document = std::fs::read_to_string(format!("{root}/protocol/asyncapi.yaml")).unwrap();
    assert!(document.starts_with("asyncapi: 3.0") || document.contains("\nasyncapi: 3.0"));
    for side in ["server", "client"] {
        for entry in std::fs::read_dir(format!("{root}/protocol/schemas/{side}")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let reference = format!("./schemas/{side}/{name}");
            assert!(
                document.contains(&reference),
                "asyncapi.yaml does not reference {reference}"
            );
        }
    }
    for code in [
        close::TOKEN_EXPIRED,
        close::TOKEN_REVOKED,
        close::SLOW_CONSUMER,
        close::TOO_MANY_CONNECTIONS,
        close::AUTH_FAILED,
        close::BAD_MESSAGE,
        close::SERVER_RESTARTING,
        close::HEARTBEAT_TIMEOUT,
    ] {
        assert!(
            document.contains(&format!("{code}")),
            "close code {code} is not documented"
        );
    }
}
