//! Replay: `since`, `resume`, and what retention leaves to replay.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::{expect_error, expect_json};
use testkit::ws::{assert_consecutive, WsClient};
use testkit::{Backend, TestApp};

use super::{rest, url};
use crate::backend_tests;

backend_tests!(
    auth_message_and_since_replay_everything,
    resume_replays_then_continues_live,
    since_beyond_retention_resets,
    retention_prunes_old_events_but_keeps_the_last_ones,
);

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
