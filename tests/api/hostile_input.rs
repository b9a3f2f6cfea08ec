//! Values one database stores and the other refuses (NUL bytes in text, dates in absurd
//! years) are refused by the parsing itself, with the same 422 on both backends, instead of
//! reaching PostgreSQL and failing there with a 500.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::{detail_fields, expect_error, send, PASSWORD};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    task_bodies_with_nul_bytes_or_absurd_years_are_refused,
    task_list_filters_with_nul_bytes_or_absurd_years_are_refused,
    profile_fields_with_nul_bytes_or_absurd_years_are_refused,
    signup_name_with_a_nul_byte_is_refused,
);

const ABSURD_DATES: [&str; 4] = [
    "-200000-01-01",
    "+200000-01-01",
    "-200000-01-01T00:00:00Z",
    "0000-06-01T00:00:00",
];

/// The response is a 422 naming exactly `field`.
async fn expect_invalid(response: reqwest::Response, field: &str) {
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&body), [field], "{body}");
}

async fn task_bodies_with_nul_bytes_or_absurd_years_are_refused(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app.create_task(&user, json!({"title": "Fine"})).await;
    let path = format!("/tasks/{}", task["id"]);
    let mut bodies: Vec<(Value, &str)> = vec![
        (json!({"title": "nul\u{0}byte"}), "title"),
        (
            json!({"title": "Fine", "description": "nul\u{0}byte"}),
            "description",
        ),
        (json!({"title": "bell\u{7}"}), "title"),
    ];
    for date in ABSURD_DATES {
        bodies.push((json!({"title": "Fine", "due_date": date}), "due_date"));
    }
    for (body, field) in &bodies {
        let response = send(&app, Method::POST, "/tasks", &user, Some(body.clone())).await;
        expect_invalid(response, field).await;
        let response = send(&app, Method::PUT, &path, &user, Some(body.clone())).await;
        expect_invalid(response, field).await;
        // PATCH with just the offending field.
        let patch = json!({ *field: body[*field] });
        let response = send(&app, Method::PATCH, &path, &user, Some(patch)).await;
        expect_invalid(response, field).await;
    }
    // Line breaks and tabs stay welcome, and so do the edges of the accepted years.
    let task = app
        .create_task(
            &user,
            json!({"title": "Two\tparts", "description": "line one\nline two", "due_date": "9999-12-31"}),
        )
        .await;
    assert_eq!(task["description"], "line one\nline two");
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"due_date": "0001-01-01"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn task_list_filters_with_nul_bytes_or_absurd_years_are_refused(app: TestApp) {
    let user = app.signup("Ada").await;
    app.create_task(&user, json!({"title": "Fine"})).await;
    for field in ["date_from", "date_to"] {
        for date in ABSURD_DATES {
            let response = app
                .api(Method::GET, "/tasks", Some(&user.token))
                .query(&[(field, date)])
                .send()
                .await
                .unwrap();
            expect_invalid(response, field).await;
        }
    }
    let response = app
        .api(Method::GET, "/tasks", Some(&user.token))
        .query(&[("q", "nul\u{0}byte")])
        .send()
        .await
        .unwrap();
    expect_invalid(response, "q").await;
    let response = app
        .api(Method::GET, "/tasks", Some(&user.token))
        .query(&[("date_from", "0001-01-01"), ("date_to", "9999-12-31")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn profile_fields_with_nul_bytes_or_absurd_years_are_refused(app: TestApp) {
    let user = app.signup("Ada").await;
    for field in [
        "name",
        "first_name",
        "last_name",
        "phone",
        "gender",
        "address",
        "city",
        "country",
        "bio",
    ] {
        let body = json!({ field: "Nul\u{0}byte" });
        let response = send(&app, Method::PUT, "/profile", &user, Some(body)).await;
        expect_invalid(response, field).await;
    }
    for date in ["-200000-01-01", "0000-01-01"] {
        let body = json!({ "date_of_birth": date });
        let response = send(&app, Method::PUT, "/profile", &user, Some(body)).await;
        expect_invalid(response, "date_of_birth").await;
    }
    let body = json!({"bio": "line one\nline two", "date_of_birth": "0001-01-01"});
    let response = send(&app, Method::PUT, "/profile", &user, Some(body)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn signup_name_with_a_nul_byte_is_refused(app: TestApp) {
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(
            &json!({"name": "Ada\u{0}Lovelace", "email": "ada@example.com", "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    expect_invalid(response, "name").await;
}
