//! Project streams on the socket: one ordered stream per project, received by every
//! member's sockets that ask for them, started and stopped live as membership changes,
//! resumed per stream.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::{expect_error, expect_json, send, TestUser};
use testkit::ws::{ws_url, WsClient};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    members_receive_the_project_stream_in_order,
    a_client_that_knows_nothing_of_projects_sees_what_it_always_saw,
    membership_starts_and_stops_the_stream_live,
    each_stream_resumes_from_its_own_position,
    a_member_cannot_replay_from_before_they_joined,
    a_member_of_one_project_never_sees_another_on_the_socket,
);

/// A socket that asks for project streams, and its `ready`.
async fn project_socket(app: &TestApp, user: &TestUser) -> (WsClient, Value) {
    let url = format!("{}?projects=true", ws_url(&app.address, None));
    WsClient::ready(&url, &user.token).await
}

fn stream_of(project: &str) -> String {
    format!("project:{project}")
}

/// The position `ready` gives for a stream.
fn position(ready: &Value, stream: &str) -> i64 {
    ready["streams"]
        .as_array()
        .expect("streams in ready")
        .iter()
        .find(|s| s["stream"] == stream)
        .unwrap_or_else(|| panic!("{stream} not in {ready}"))["last_seq"]
        .as_i64()
        .expect("last_seq")
}

/// Reads messages until `n` events of `stream` arrived; returns them (other messages are
/// kept aside in the second vector).
async fn events_of(ws: &mut WsClient, stream: Option<&str>, n: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    while mine.len() < n {
        let message = ws.next().await;
        let of_stream = message["type"] == "event" && message["stream"].as_str() == stream;
        if of_stream {
            mine.push(message);
        } else {
            others.push(message);
        }
    }
    (mine, others)
}

async fn members_receive_the_project_stream_in_order(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    app.add_member(&owner, &project, &bob, "viewer").await;
    let stream = stream_of(&project);
    let (mut olga_ws, olga_ready) = project_socket(&app, &owner).await;
    let (mut bob_ws, bob_ready) = project_socket(&app, &bob).await;
    let start = position(&bob_ready, &stream);
    assert_eq!(start, position(&olga_ready, &stream));
    assert_eq!(
        bob_ready["streams"][0]["stream"],
        json!(format!("user:{}", bob.id))
    );
    let roles: Vec<&str> = bob_ready["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["role"].as_str())
        .collect();
    assert_eq!(roles, vec!["viewer"]);
    for i in 0..5 {
        app.create_task(
            &owner,
            json!({"title": format!("T{i}"), "project_id": project}),
        )
        .await;
    }
    for ws in [&mut olga_ws, &mut bob_ws] {
        let (events, _) = events_of(ws, Some(&stream), 5).await;
        testkit::ws::assert_consecutive(&events, start + 1);
        let titles: Vec<&str> = events
            .iter()
            .map(|e| e["data"]["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["T0", "T1", "T2", "T3", "T4"]);
        assert!(events.iter().all(|e| e["event"] == "task.created"));
    }
    // One event row per change, whatever the number of members.
    let stored = expect_json(
        send(
            &app,
            Method::GET,
            &format!("/events?stream={stream}&since={start}"),
            &bob,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stored["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(stored["last_seq"], start + 5);
    // Olga's own stream carried her notifications only, not the project's events.
    let own = expect_json(
        send(&app, Method::GET, "/events", &owner, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(own["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e.get("stream").is_none()));
}

async fn a_client_that_knows_nothing_of_projects_sees_what_it_always_saw(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    app.add_member(&owner, &project, &bob, "editor").await;
    let (mut old, ready) = WsClient::ready(&ws_url(&app.address, None), &bob.token).await;
    assert!(ready.get("streams").is_none(), "{ready}");
    let last = ready["last_seq"].as_i64().unwrap();
    app.create_task(
        &owner,
        json!({"title": "Unassigned", "project_id": project}),
    )
    .await;
    app.create_task(
        &owner,
        json!({"title": "For Bob", "project_id": project, "assignee_id": bob.id}),
    )
    .await;
    app.create_task(&bob, json!({"title": "Personal"})).await;
    // Only Bob's own stream: the assignment notification, then his personal task and its
    // notification, consecutive from where ready said.
    let events = old.events(3).await;
    testkit::ws::assert_consecutive(&events, last + 1);
    assert!(events.iter().all(|e| e.get("stream").is_none()));
    assert_eq!(events[0]["data"]["type"], "TASK_ASSIGNED");
    assert_eq!(events[1]["data"]["title"], "Personal");
    assert!(old.roundtrip().await.is_empty());
}

async fn membership_starts_and_stops_the_stream_live(app: TestApp) {
    let owner = app.signup("Olga").await;
    let carol = app.signup_verified("Carol").await;
    let project = id(&app.create_project(&owner, "Board").await);
    let stream = stream_of(&project);
    let (mut ws, ready) = project_socket(&app, &carol).await;
    assert_eq!(
        ready["streams"].as_array().map(Vec::len),
        Some(1),
        "only her own: {ready}"
    );
    app.create_task(&owner, json!({"title": "Before", "project_id": project}))
        .await;
    app.add_member(&owner, &project, &carol, "editor").await;
    // Her own stream says so, with the position to load from.
    let (joined, _) = loop {
        let message = ws.next().await;
        if message["event"] == "project.joined" {
            break (message, ());
        }
    };
    assert_eq!(joined["data"]["project_id"], json!(project));
    assert_eq!(joined["data"]["role"], "editor");
    assert_eq!(joined["data"]["project"]["name"], "Board");
    let from = joined["data"]["last_seq"].as_i64().unwrap();
    app.create_task(&owner, json!({"title": "After", "project_id": project}))
        .await;
    let (events, _) = events_of(&mut ws, Some(&stream), 1).await;
    assert_eq!(events[0]["seq"], from + 1);
    assert_eq!(events[0]["data"]["title"], "After");
    // Removed: the stream stops right after her removal, on every instance.
    let removed = send(
        &app,
        Method::DELETE,
        &format!("/projects/{project}/members/{}", carol.id),
        &owner,
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    app.create_task(
        &owner,
        json!({"title": "Not for Carol", "project_id": project}),
    )
    .await;
    let mut seen = Vec::new();
    loop {
        let message = ws.next().await;
        let left = message["event"] == "project.left";
        seen.push(message);
        if left {
            break;
        }
    }
    seen.extend(ws.roundtrip().await);
    let after: Vec<&Value> = seen
        .iter()
        .filter(|m| m["stream"] == json!(stream) && m["event"] != "member.removed")
        .collect();
    assert!(
        after.is_empty(),
        "nothing of the project after her removal: {after:?}"
    );
    let refused = send(
        &app,
        Method::GET,
        &format!("/events?stream={stream}"),
        &carol,
        None,
    )
    .await;
    expect_error(refused, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND").await;
}

async fn each_stream_resumes_from_its_own_position(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let a = id(&app.create_project(&owner, "A").await);
    let b = id(&app.create_project(&owner, "B").await);
    app.add_member(&owner, &a, &bob, "viewer").await;
    app.add_member(&owner, &b, &bob, "viewer").await;
    let (ws, ready) = project_socket(&app, &bob).await;
    let (own, pa, pb) = (
        ready["last_seq"].as_i64().unwrap(),
        position(&ready, &stream_of(&a)),
        position(&ready, &stream_of(&b)),
    );
    ws.close().await;
    for i in 0..3 {
        app.create_task(&owner, json!({"title": format!("A{i}"), "project_id": a}))
            .await;
    }
    app.create_task(
        &owner,
        json!({"title": "B0", "project_id": b, "assignee_id": bob.id}),
    )
    .await;
    // Reconnect with a position per stream, in the auth message.
    let mut ws = WsClient::connect(&ws_url(&app.address, None), None).await;
    ws.send(json!({"type": "auth", "token": bob.token, "since": own, "positions": {stream_of(&a): pa, stream_of(&b): pb}})).await;
    let ready = ws.next().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(position(&ready, &stream_of(&a)), pa + 3);
    let mut by_stream: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let mut count = 0;
    while count < 5 {
        let message = ws.next().await;
        assert_eq!(message["type"], "event", "{message}");
        let key = message["stream"].as_str().unwrap_or("own").to_string();
        by_stream.entry(key).or_default().push(message);
        count += 1;
    }
    testkit::ws::assert_consecutive(&by_stream[&stream_of(&a)], pa + 1);
    testkit::ws::assert_consecutive(&by_stream[&stream_of(&b)], pb + 1);
    testkit::ws::assert_consecutive(&by_stream["own"], own + 1);
    assert!(ws.roundtrip().await.is_empty(), "nothing twice");
    // A resume message for one stream replays it alone.
    ws.send(json!({"type": "resume", "stream": stream_of(&a), "since": pa + 1}))
        .await;
    let (events, others) = events_of(&mut ws, Some(&stream_of(&a)), 2).await;
    assert!(others.is_empty(), "{others:?}");
    testkit::ws::assert_consecutive(&events, pa + 2);
    ws.send(
        json!({"type": "resume", "stream": format!("project:{}", uuid_of_nothing()), "since": 0}),
    )
    .await;
    let error = ws.next().await;
    assert_eq!(error["code"], "UNKNOWN_STREAM", "{error}");
}

fn uuid_of_nothing() -> String {
    "00000000-0000-4000-8000-000000000000".to_string()
}

async fn a_member_cannot_replay_from_before_they_joined(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&owner, "Board").await);
    for i in 0..3 {
        app.create_task(
            &owner,
            json!({"title": format!("Early {i}"), "project_id": project}),
        )
        .await;
    }
    app.add_member(&owner, &project, &bob, "viewer").await;
    let stream = stream_of(&project);
    let mut ws = WsClient::connect(&ws_url(&app.address, None), None).await;
    ws.send(json!({"type": "auth", "token": bob.token, "positions": {stream.clone(): 0}}))
        .await;
    let ready = ws.next().await;
    let now = position(&ready, &stream);
    let reset = ws.next().await;
    assert_eq!(
        reset,
        json!({"type": "reset", "stream": stream, "last_seq": now})
    );
    let refused = send(
        &app,
        Method::GET,
        &format!("/events?stream={stream}&since=0"),
        &bob,
        None,
    )
    .await;
    let body = expect_error(refused, StatusCode::GONE, "EVENTS_EXPIRED").await;
    assert_eq!(body["last_seq"], now);
    let allowed = send(
        &app,
        Method::GET,
        &format!("/events?stream={stream}&since={now}"),
        &bob,
        None,
    )
    .await;
    expect_json(allowed, StatusCode::OK).await;
}

async fn a_member_of_one_project_never_sees_another_on_the_socket(app: TestApp) {
    let owner = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let a = id(&app.create_project(&owner, "A").await);
    let b = id(&app.create_project(&owner, "B").await);
    app.add_member(&owner, &a, &bob, "viewer").await;
    let (mut ws, ready) = project_socket(&app, &bob).await;
    let streams: Vec<&str> = ready["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stream"].as_str())
        .collect();
    assert!(!streams.contains(&stream_of(&b).as_str()), "{ready}");
    app.create_task(&owner, json!({"title": "In B", "project_id": b}))
        .await;
    app.create_task(&owner, json!({"title": "In A", "project_id": a}))
        .await;
    let (events, others) = events_of(&mut ws, Some(&stream_of(&a)), 1).await;
    assert_eq!(events[0]["data"]["title"], "In A");
    let leaked: Vec<&Value> = others
        .iter()
        .filter(|m| m.to_string().contains(&b))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    // Asking for B's stream by position or resume gives nothing of it either.
    ws.send(json!({"type": "resume", "stream": stream_of(&b), "since": 0}))
        .await;
    assert_eq!(ws.next().await["code"], "UNKNOWN_STREAM");
    let mut other = WsClient::connect(&ws_url(&app.address, None), None).await;
    other
        .send(json!({"type": "auth", "token": bob.token, "positions": {stream_of(&b): 0}}))
        .await;
    let ready = other.next().await;
    assert!(!ready.to_string().contains(&b), "{ready}");
    assert!(other.roundtrip().await.is_empty());
}
