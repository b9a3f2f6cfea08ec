//! `/tasks`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{expect_json, send, ApiClient, TestUser};

impl ApiClient {
    /// Creates a task from `body`; returns it as the API did.
    pub async fn create_task(&self, user: &TestUser, body: Value) -> Value {
        let response = self
            .api(Method::POST, "/tasks", Some(&user.token))
            .json(&body)
            .send()
            .await
            .expect("create task");
        expect_json(response, StatusCode::CREATED).await
    }
}

/// Creates `n` tasks; returns their ids. Each one adds a TASK_CREATED notification.
pub async fn create_tasks(api: &ApiClient, user: &TestUser, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let task = api
            .create_task(user, json!({ "title": format!("Task number {i}") }))
            .await;
        ids.push(task["id"].as_i64().expect("integer id"));
    }
    ids
}

/// One page of `GET /tasks{query}` and its `X-Total-Count`.
pub async fn list(api: &ApiClient, user: &TestUser, query: &str) -> (Vec<Value>, i64) {
    let response = send(api, Method::GET, &format!("/tasks{query}"), user, None).await;
    let total: i64 = response.headers()["x-total-count"]
        .to_str()
        .expect("header text")
        .parse()
        .expect("integer count");
    let body = expect_json(response, StatusCode::OK).await;
    (body.as_array().expect("a JSON array").clone(), total)
}

/// `PATCH /tasks/{id}`, which must succeed.
pub async fn patch_task(api: &ApiClient, user: &TestUser, id: i64, body: Value) {
    let response = api
        .api(Method::PATCH, &format!("/tasks/{id}"), Some(&user.token))
        .json(&body)
        .send()
        .await
        .expect("patch task");
    expect_json(response, StatusCode::OK).await;
}

/// `DELETE /tasks/{id}{query}`, which must succeed.
pub async fn delete_task(api: &ApiClient, user: &TestUser, id: i64, query: &str) {
    let response = api
        .api(
            Method::DELETE,
            &format!("/tasks/{id}{query}"),
            Some(&user.token),
        )
        .send()
        .await
        .expect("delete task");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}
