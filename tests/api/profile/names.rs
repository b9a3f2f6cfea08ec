//! The name is unique regardless of case.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::notification_types;
use testkit::api::profile::{get_profile, put_profile};
use testkit::api::{expect_error, expect_json, PASSWORD};
use testkit::TestApp;

use super::{field_set, updated_fields};
use crate::backend_tests;

backend_tests!(
    another_users_name_conflicts_in_any_case,
    keeping_ones_own_name_in_another_case_is_allowed,
    names_conflict_regardless_of_case_beyond_ascii,
);

async fn another_users_name_conflicts_in_any_case(app: TestApp) {
    app.signup_as("Ada Lovelace", "ada@example.com").await;
    let grace = app.signup_as("Grace Hopper", "grace@example.com").await;
    for taken in [
        "Ada Lovelace",
        "ada lovelace",
        "ADA LOVELACE",
        "  aDa LoVeLaCe  ",
    ] {
        let response =
            put_profile(&app, &grace, &json!({"name": taken, "city": "Arlington"})).await;
        expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    }
    let profile = get_profile(&app, &grace).await;
    assert_eq!(profile["name"], "Grace Hopper");
    assert_eq!(
        profile["city"],
        Value::Null,
        "nothing of a refused update is applied"
    );
    assert_eq!(notification_types(&app, &grace).await, vec!["SIGNUP"]);

    // A free name is fine, and the old one is then free for someone else.
    let body = expect_json(
        put_profile(&app, &grace, &json!({"name": "Amazing Grace"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "Amazing Grace");
    app.signup_as("grace hopper", "hopper@example.com").await;
}

async fn keeping_ones_own_name_in_another_case_is_allowed(app: TestApp) {
    let ada = app.signup_as("Ada Lovelace", "ada@example.com").await;
    app.signup_as("Grace Hopper", "grace@example.com").await;
    let body = expect_json(
        put_profile(&app, &ada, &json!({"name": "ADA LOVELACE"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated_fields(&body), field_set(&["name"]));
    assert_eq!(body["profile"]["name"], "ADA LOVELACE");
    // Setting exactly the current name is allowed too.
    let body = expect_json(
        put_profile(&app, &ada, &json!({"name": "ADA LOVELACE"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "ADA LOVELACE");
    assert_eq!(get_profile(&app, &ada).await["name"], "ADA LOVELACE");
    // And the name, in any case, is still taken for others.
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": "ada lovelace", "email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
}

async fn names_conflict_regardless_of_case_beyond_ascii(app: TestApp) {
    app.signup_as("Zoë Ångström", "zoe@example.com").await;
    let other = app.signup_as("Someone Else", "else@example.com").await;
    let response = put_profile(&app, &other, &json!({"name": "ZOË ÅNGSTRÖM"})).await;
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    assert_eq!(get_profile(&app, &other).await["name"], "Someone Else");
}
