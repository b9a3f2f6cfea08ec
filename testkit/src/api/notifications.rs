//! `/notifications`.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{expect_json, ApiClient, TestUser};

/// One page of `GET /notifications{query}`: the items, `X-Total-Count`, `X-Unread-Count`.
pub struct Page {
    pub items: Vec<Value>,
    pub total: i64,
    pub unread: i64,
}

impl Page {
    pub fn ids(&self) -> Vec<i64> {
        self.items.iter().map(id_of).collect()
    }

    pub fn types(&self) -> Vec<&str> {
        self.items
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect()
    }
}

/// A count header (`X-Total-Count`, `X-Unread-Count`) as a number.
pub fn header_count(response: &Response, name: &str) -> i64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("header text")
        .parse()
        .expect("integer count")
}

pub fn id_of(notification: &Value) -> i64 {
    notification["id"].as_i64().expect("integer id")
}

pub async fn list(api: &ApiClient, user: &TestUser, query: &str) -> Page {
    let response = api
        .api(
            Method::GET,
            &format!("/notifications{query}"),
            Some(&user.token),
        )
        .send()
        .await
        .expect("list notifications");
    let total = header_count(&response, "x-total-count");
    let unread = header_count(&response, "x-unread-count");
    let body = expect_json(response, StatusCode::OK).await;
    Page {
        items: body.as_array().expect("a JSON array").clone(),
        total,
        unread,
    }
}

/// Every notification of the user, oldest first.
pub async fn all(api: &ApiClient, user: &TestUser) -> Vec<Value> {
    list(api, user, "?sort=asc&limit=100").await.items
}

/// The types of the user's notifications, oldest first.
pub async fn notification_types(api: &ApiClient, user: &TestUser) -> Vec<String> {
    let response = api
        .api(Method::GET, "/notifications?sort=asc", Some(&user.token))
        .send()
        .await
        .expect("list notifications");
    let body = expect_json(response, StatusCode::OK).await;
    body.as_array()
        .expect("a JSON array")
        .iter()
        .map(|n| n["type"].as_str().expect("type").to_string())
        .collect()
}

pub async fn get(api: &ApiClient, user: &TestUser, id: i64) -> Response {
    api.api(
        Method::GET,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .send()
    .await
    .expect("get notification")
}

pub async fn set_read(api: &ApiClient, user: &TestUser, id: i64, is_read: bool) -> Response {
    api.api(
        Method::PUT,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .json(&json!({ "is_read": is_read }))
    .send()
    .await
    .expect("update notification")
}

pub async fn delete_one(api: &ApiClient, user: &TestUser, id: i64) -> Response {
    api.api(
        Method::DELETE,
        &format!("/notifications/{id}"),
        Some(&user.token),
    )
    .send()
    .await
    .expect("delete notification")
}

/// `DELETE /notifications?{query}` (the ids in the query).
pub async fn delete_many(api: &ApiClient, user: &TestUser, query: &str) -> Response {
    api.api(
        Method::DELETE,
        &format!("/notifications?{query}"),
        Some(&user.token),
    )
    .send()
    .await
    .expect("delete notifications")
}

/// `PUT /notifications/mark-all-read`, which must succeed; returns the body.
pub async fn mark_all_read(api: &ApiClient, user: &TestUser) -> Value {
    let response = api
        .api(
            Method::PUT,
            "/notifications/mark-all-read",
            Some(&user.token),
        )
        .send()
        .await
        .expect("mark all read");
    expect_json(response, StatusCode::OK).await
}

pub async fn unread_count(api: &ApiClient, user: &TestUser) -> i64 {
    let response = api
        .api(
            Method::GET,
            "/notifications/unread/count",
            Some(&user.token),
        )
        .send()
        .await
        .expect("unread count");
    expect_json(response, StatusCode::OK).await["count"]
        .as_i64()
        .expect("integer count")
}
