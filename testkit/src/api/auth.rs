//! `/auth`: signing up, and who the token belongs to.

use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use super::{expect_json, ApiClient, TestUser, PASSWORD};

impl ApiClient {
    pub async fn signup_as(&self, name: &str, email: &str) -> TestUser {
        let response = self
            .api(Method::POST, "/auth/signup", None)
            .json(&json!({ "name": name, "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("signup request");
        let body = expect_json(response, StatusCode::CREATED).await;
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_string(),
            email: email.to_lowercase(),
            password: PASSWORD.to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// A new user with a name and e-mail derived from `who` (letters only).
    pub async fn signup(&self, who: &str) -> TestUser {
        self.signup_as(
            &format!("{who} Tester"),
            &format!("{}@example.com", who.to_lowercase()),
        )
        .await
    }
}

/// `GET /auth/me` with the user's token.
pub async fn me(api: &ApiClient, user: &TestUser) -> Response {
    api.api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .expect("me request")
}
