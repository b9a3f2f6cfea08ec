//! The HTTP API of a server: [`ApiClient`], the response assertions, and one module of
//! typed calls per resource.
//!
//! Signing up and creating a task, which nearly every test does, are methods of
//! [`ApiClient`]; the other calls are functions of their resource's module, taking the
//! client first (`notifications::list(&app, &user, "?limit=5")`).

pub mod auth;
pub mod notifications;
pub mod profile;
pub mod projects;
pub mod tasks;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// The password every test user signs up with.
pub const PASSWORD: &str = "Corr3ct-Horse!Battery";

/// A signed-up user and their token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

/// An HTTP client for one server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// Follows no redirects: the tests look at them.
    pub client: reqwest::Client,
}

impl ApiClient {
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// `path` on this server; an absolute URL (as the API hands out for photos) as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        format!("{}{}", self.address, path)
    }

    /// A request to `/api/v1{path}`, with the bearer token when given.
    pub fn api(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self
            .client
            .request(method, self.url(&format!("/api/v1{path}")));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

/// `method` `/api/v1{path}` as `user`, with `body` as JSON when given.
pub async fn send(
    api: &ApiClient,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> Response {
    let request = api.api(method, path, Some(&user.token));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request")
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error response: status, envelope shape and code. Returns the envelope.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries X-Request-ID"
    );
    let body = expect_json(response, status).await;
    assert_eq!(body["success"], json!(false), "envelope: {body}");
    assert_eq!(body["error"]["code"], json!(code), "envelope: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "envelope: {body}"
    );
    body
}

/// The fields named in a validation error's details.
pub fn detail_fields(envelope: &Value) -> Vec<String> {
    envelope["error"]["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter_map(|d| d["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
