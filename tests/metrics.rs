//! The Prometheus endpoint, scraped the way Prometheus would. The recorder is process-wide,
//! so this binary holds one test that checks both backends in turn: nothing else in the
//! process moves the figures meanwhile.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, TestApp};

/// The samples of a scrape: `name{labels}` -> value.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let url = format!(
        "{}/metrics",
        app.metrics_address.as_ref().expect("metrics listener")
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn sum(samples: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{name}{{")) || key.as_str() == name)
        .filter(|(key, _)| labels.iter().all(|l| key.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_move_with_connections_and_writes() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        check(backend).await;
    }
}

async fn check(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.metrics.bind = Some(([127, 0, 0, 1], 0).into());
        c.quotas.max_tasks_per_user = 1;
    })
    .await;
    // Metrics are not on the public port.
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let user = app.signup("Ada").await;
    let before = scrape(&app).await;
    assert!(value(&before, "process_resident_memory_bytes") > 0.0);
    assert!(value(&before, "process_open_fds") > 0.0);
    assert!(value(&before, "process_max_fds") > 0.0);
    assert!(before.contains_key("process_cpu_seconds_total"));
    assert!(before.contains_key("taskstream_db_pool_connections{state=\"idle\"}"));
    assert!(before.contains_key("taskstream_db_connections_checked_total"));
    assert!(before.contains_key("taskstream_db_connections_dropped_total"));

    let (mut socket, _) = WsClient::ready(&ws_url(&app.address, None), &user.token).await;
    let connected = scrape(&app).await;
    assert_eq!(
        value(&connected, "taskstream_ws_connections"),
        value(&before, "taskstream_ws_connections") + 1.0
    );
    assert!(value(&connected, "taskstream_ws_connections_opened_total") >= 1.0);

    let task = app.create_task(&user, json!({"title": "Counted"})).await;
    socket.events(2).await;
    let response = app
        .api(
            Method::PATCH,
            &format!("/tasks/{}", task["id"]),
            Some(&user.token),
        )
        .json(&json!({"title": "Counted twice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    socket.events(2).await;
    socket.send(json!({"type": "resume", "since": 1})).await;
    socket.events(4).await;
    let refused = app
        .api(Method::POST, "/tasks", Some(&user.token))
        .json(&json!({"title": "Past the quota"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[&str]| sum(&after, name, labels) - sum(&before, name, labels);
    assert_eq!(
        grew("taskstream_events_total", &["type=\"task.created\""]),
        1.0
    );
    assert_eq!(
        grew("taskstream_events_total", &["type=\"task.updated\""]),
        1.0
    );
    assert_eq!(
        grew(
            "taskstream_events_total",
            &["type=\"notification.created\""]
        ),
        2.0
    );
    assert_eq!(
        grew("taskstream_quota_exceeded_total", &["quota=\"tasks\""]),
        1.0
    );
    assert!(grew("taskstream_ws_messages_sent_total", &[]) >= 8.0);
    assert_eq!(
        grew("taskstream_ws_resumes_total", &["result=\"replayed\""]),
        1.0
    );
    assert!(grew("taskstream_event_delivery_seconds_count", &[]) >= 8.0);
    // One transaction per write with events: the create and the edit.
    assert_eq!(grew("taskstream_write_transaction_seconds_count", &[]), 2.0);
    // HTTP requests are labelled by the route template, not the raw path.
    assert_eq!(
        grew(
            "taskstream_http_requests_total",
            &[
                "route=\"/api/v1/tasks/{id}\"",
                "method=\"PATCH\"",
                "status=\"200\""
            ]
        ),
        1.0
    );
    assert!(!after
        .keys()
        .any(|k| k.contains(&format!("/api/v1/tasks/{}", task["id"]))));
    assert!(
        grew(
            "taskstream_http_request_duration_seconds_count",
            &["route=\"/api/v1/tasks\"", "method=\"POST\""]
        ) >= 1.0
    );

    socket.close().await;
    // The gauge comes back down once the server has seen the close.
    let mut back_down = false;
    for _ in 0..50 {
        let now = scrape(&app).await;
        if value(&now, "taskstream_ws_connections") == value(&before, "taskstream_ws_connections") {
            back_down = true;
            assert!(grew_between(&before, &now, "taskstream_ws_disconnects_total") >= 1.0);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back_down, "the connections gauge goes down on disconnect");
}

fn grew_between(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    sum(after, name, &[]) - sum(before, name, &[])
}
