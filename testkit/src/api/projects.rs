//! `/projects` and `/invitations`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{expect_json, send, ApiClient, TestUser};

impl ApiClient {
    /// Creates a project owned by `owner`; returns it.
    pub async fn create_project(&self, owner: &TestUser, name: &str) -> Value {
        let response = send(
            self,
            Method::POST,
            "/projects",
            owner,
            Some(json!({ "name": name })),
        )
        .await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Invites `user` by address; returns the invitation.
    pub async fn invite(
        &self,
        owner: &TestUser,
        project: &str,
        user: &TestUser,
        role: &str,
    ) -> Value {
        let response = send(
            self,
            Method::POST,
            &format!("/projects/{project}/invitations"),
            owner,
            Some(json!({ "email": user.email, "role": role })),
        )
        .await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// `user` (whose address is verified) accepts an invitation; returns the project.
    pub async fn accept(&self, user: &TestUser, invitation: &Value) -> Value {
        let id = invitation["id"].as_str().expect("invitation id");
        let response = send(
            self,
            Method::POST,
            &format!("/invitations/{id}/accept"),
            user,
            None,
        )
        .await;
        expect_json(response, StatusCode::OK).await
    }

    /// Invites `user` and has them accept: they join with `role`.
    pub async fn add_member(&self, owner: &TestUser, project: &str, user: &TestUser, role: &str) {
        let invitation = self.invite(owner, project, user, role).await;
        self.accept(user, &invitation).await;
    }
}

/// The id of a project (or anything) as a string.
pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_string()
}
