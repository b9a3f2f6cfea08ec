//! The WebSocket protocol against one in-process server, on both backends. Every server
//! message is checked against `protocol/schemas` by the client.

mod abuse;
mod auth;
mod limits;
mod protocol;
mod replay;
mod stream;

use reqwest::{Method, Response};
use serde_json::Value;
use testkit::api::{send, TestUser};
use testkit::ws::ws_url;
use testkit::TestApp;

fn url(app: &TestApp, since: Option<i64>) -> String {
    ws_url(&app.address, since)
}

/// A REST call as `user`, in the order these tests read it: who, then what.
async fn rest(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    send(app, method, path, user, body).await
}
