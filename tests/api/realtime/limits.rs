//! What the server bounds: sockets per user and per instance, slow readers, silent
//! peers, and the shutdown.

use serde_json::json;
use testkit::ws::{assert_consecutive, ws_url, Connect, WsClient};
use testkit::{Backend, TestApp};

use super::url;
use crate::per_backend;

per_backend!(
    per_user_limit_closes_the_newcomer_4009,
    global_limit_refuses_the_upgrade,
    slow_consumer_is_closed_4008_and_resumes,
    unanswered_pings_close_the_socket,
    shutdown_closes_sockets_1012,
);

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
        live.next_heartbeat().await;
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
