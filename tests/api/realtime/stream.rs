//! The live stream: what each write sends, to whom, in what order, and the same over REST.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::{expect_error, expect_json, PASSWORD};
use testkit::ws::{assert_consecutive, assert_valid_server_message, WsClient};
use testkit::TestApp;

use super::{rest, url};
use crate::backend_tests;

backend_tests!(
    ready_then_live_events_with_rest_data,
    every_change_is_an_event_in_order,
    every_device_gets_every_event_and_nobody_else_does,
    rest_events_match_the_socket,
);

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
