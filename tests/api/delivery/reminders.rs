//! Due-date reminders: `TASK_DUE_SOON` `REMINDER_LEAD` before the due date and
//! `TASK_OVERDUE` when it passes with the task still pending, each once per due date, as a
//! notification, a live event and (for users who opted in) an e-mail.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::{expect_json, notifications, send, TestUser};
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, SmtpServer, TestApp};

use super::app_with_smtp;
use crate::per_backend;

per_backend!(
    a_pending_task_is_reminded_before_and_after_its_due_date_once_each,
    completing_cancels_and_a_new_due_date_rearms,
    reminders_are_mailed_to_those_who_asked,
    a_due_date_already_past_is_not_announced,
);

/// A lead of five seconds: a task due in six is "due soon" after one. The lead is the time
/// a "due soon" reminder has to fire before it would be an overdue one only
/// (`domain::reminder::fire`), so it is wide enough for a busy machine.
const LEAD: Duration = Duration::from_secs(5);

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| config.delivery.reminder_lead = LEAD).await
}

fn due_in(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339()
}

async fn create(app: &TestApp, user: &TestUser, due_date: &str) -> i64 {
    let task = app
        .create_task(user, json!({ "title": "Ship it", "due_date": due_date }))
        .await;
    task["id"].as_i64().expect("id")
}

/// Waits for the user's notifications of `kind` to number `count`.
async fn wait_for_kind(app: &TestApp, user: &TestUser, kind: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<Value> = notifications::all(app, user)
            .await
            .into_iter()
            .filter(|n| n["type"] == kind)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The task's reminder state in the database: (remind_at is set, stage).
async fn schedule(app: &TestApp, user: &TestUser, task: i64) -> (bool, i64) {
    let pending = app
        .sql_number(&format!(
            "SELECT count(*) FROM tasks WHERE id = {task} AND remind_at IS NOT NULL"
        ))
        .await;
    let stage = app
        .sql_number(&format!(
            "SELECT reminder_stage FROM tasks WHERE id = {task}"
        ))
        .await;
    let _ = user;
    (pending == 1, stage)
}

async fn a_pending_task_is_reminded_before_and_after_its_due_date_once_each(backend: Backend) {
    let app = app(backend).await;
    let ada = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&ws_url(&app.address, None), &ada.token).await;
    let task = create(&app, &ada, &due_in(6)).await;

    let soon = wait_for_kind(&app, &ada, "TASK_DUE_SOON", 1).await;
    assert_eq!(soon[0]["task_id"], task, "{soon:?}");
    assert_eq!(soon[0]["title"], "Task due soon");
    let overdue = wait_for_kind(&app, &ada, "TASK_OVERDUE", 1).await;
    assert_eq!(overdue[0]["task_id"], task);
    // Nothing more is scheduled for this due date.
    assert_eq!(schedule(&app, &ada, task).await, (false, 2));
    let kinds: Vec<Value> = notifications::all(&app, &ada)
        .await
        .into_iter()
        .map(|n| n["type"].clone())
        .filter(|k| k == "TASK_DUE_SOON" || k == "TASK_OVERDUE")
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");

    // Both arrived live, in order, after the task's own events.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = ws.next().await;
        if message["type"] == "event" && message["event"] == "notification.created" {
            let kind = message["data"]["type"].clone();
            if kind == "TASK_DUE_SOON" || kind == "TASK_OVERDUE" {
                seen.push(kind);
            }
        }
    }
    assert_eq!(seen, vec![json!("TASK_DUE_SOON"), json!("TASK_OVERDUE")]);
}

async fn completing_cancels_and_a_new_due_date_rearms(backend: Backend) {
    let app = app(backend).await;
    let ada = app.signup("Ada").await;
    let far = due_in(3600);
    let task = create(&app, &ada, &far).await;
    assert_eq!(schedule(&app, &ada, task).await, (true, 0));

    // Completing cancels; reopening re-arms; deleting cancels; restoring re-arms.
    let complete_path = format!("/tasks/{task}/complete");
    let complete = |completed: bool| {
        send(
            &app,
            Method::PATCH,
            &complete_path,
            &ada,
            Some(json!({ "completed": completed })),
        )
    };
    assert_eq!(complete(true).await.status(), StatusCode::OK);
    assert_eq!(schedule(&app, &ada, task).await, (false, 0));
    assert_eq!(complete(false).await.status(), StatusCode::OK);
    assert_eq!(schedule(&app, &ada, task).await, (true, 0));
    let deleted = send(&app, Method::DELETE, &format!("/tasks/{task}"), &ada, None).await;
    assert!(deleted.status().is_success());
    assert_eq!(schedule(&app, &ada, task).await, (false, 0));
    let restored = send(
        &app,
        Method::POST,
        &format!("/tasks/{task}/restore"),
        &ada,
        None,
    )
    .await;
    assert!(restored.status().is_success(), "{}", restored.status());
    assert_eq!(schedule(&app, &ada, task).await, (true, 0));

    // A due date within the lead fires soon; after it fired, a new due date starts over.
    let patched = send(
        &app,
        Method::PATCH,
        &format!("/tasks/{task}"),
        &ada,
        Some(json!({ "due_date": due_in(30) })),
    )
    .await;
    expect_json(patched, StatusCode::OK).await;
    // 30 s ahead with a 5 s lead: not yet.
    assert_eq!(schedule(&app, &ada, task).await, (true, 0));
    let patched = send(
        &app,
        Method::PATCH,
        &format!("/tasks/{task}"),
        &ada,
        Some(json!({ "due_date": due_in(5) })),
    )
    .await;
    expect_json(patched, StatusCode::OK).await;
    wait_for_kind(&app, &ada, "TASK_DUE_SOON", 1).await;
    let patched = send(
        &app,
        Method::PATCH,
        &format!("/tasks/{task}"),
        &ada,
        Some(json!({ "due_date": due_in(3600) })),
    )
    .await;
    expect_json(patched, StatusCode::OK).await;
    assert_eq!(schedule(&app, &ada, task).await, (true, 0));
}

async fn reminders_are_mailed_to_those_who_asked(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |config| {
        config.delivery.reminder_lead = LEAD
    })
    .await;
    let ada = app.signup("Ada").await;
    let grace = app.signup("Grace").await;
    let profile = send(
        &app,
        Method::PUT,
        "/profile",
        &ada,
        Some(json!({ "email_reminders": true })),
    )
    .await;
    let profile = expect_json(profile, StatusCode::OK).await;
    assert_eq!(profile["profile"]["email_reminders"], true, "{profile}");

    create(&app, &ada, &due_in(6)).await;
    create(&app, &grace, &due_in(6)).await;
    let soon = smtp.wait_for_mail(&ada.email, "Task due soon").await;
    assert!(soon.text.contains("Ship it"), "{}", soon.text);
    smtp.wait_for_mail(&ada.email, "Task overdue").await;
    // Grace did not ask: her reminders are notifications only.
    wait_for_kind(&app, &grace, "TASK_OVERDUE", 1).await;
    super::wait_until_settled(&app).await;
    assert!(smtp
        .messages()
        .iter()
        .all(|m| !(m.to.contains(&grace.email) && m.subject.starts_with("Task "))));
}

async fn a_due_date_already_past_is_not_announced(backend: Backend) {
    let app = app(backend).await;
    let ada = app.signup("Ada").await;
    let task = create(&app, &ada, &due_in(-60)).await;
    assert_eq!(schedule(&app, &ada, task).await, (false, 2));
}
