//! Updating the fields: what is set, cleared, checked and refused.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::notification_types;
use testkit::api::profile::{get_profile, put_profile};
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::TestApp;

use super::{field_set, updated_fields};
use crate::backend_tests;

backend_tests!(
    update_sets_fields_returns_the_profile_and_notifies,
    null_or_blank_clears_optional_fields,
    length_limits_count_characters_at_the_boundary,
    every_invalid_field_is_reported_and_nothing_is_applied,
    date_of_birth_must_be_a_real_date_not_in_the_future,
    name_cannot_be_cleared_or_invalid,
    empty_or_malformed_updates_are_refused,
    fields_that_are_not_editable_are_never_changed,
);

async fn update_sets_fields_returns_the_profile_and_notifies(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let before = get_profile(&app, &user).await;
    let changes = json!({
        "name": "  Augusta Ada King ",
        "first_name": "Augusta",
        "last_name": "King",
        "phone": "+44 (20) 7946-0958",
        "date_of_birth": "1815-12-10",
        "gender": "female",
        "address": "12 St James's Square",
        "city": "London",
        "country": "United Kingdom",
        "bio": "Wrote the first published algorithm.",
    });
    let response = put_profile(&app, &user, &changes).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        updated_fields(&body),
        field_set(&[
            "name",
            "first_name",
            "last_name",
            "phone",
            "date_of_birth",
            "gender",
            "address",
            "city",
            "country",
            "bio"
        ])
    );
    let profile = &body["profile"];
    assert_eq!(profile["name"], "Augusta Ada King", "the name is trimmed");
    for field in [
        "first_name",
        "last_name",
        "phone",
        "date_of_birth",
        "gender",
        "address",
        "city",
        "country",
        "bio",
    ] {
        assert_eq!(profile[field], changes[field], "{field}");
    }
    assert_eq!(profile["id"], before["id"]);
    assert_eq!(profile["email"], before["email"]);
    assert_eq!(profile["created_at"], before["created_at"]);
    let updated =
        chrono::DateTime::parse_from_rfc3339(profile["updated_at"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(before["updated_at"].as_str().unwrap()).unwrap();
    assert!(updated >= created, "{updated} >= {created}");

    // The stored profile is what the response showed, and /auth/me has the new name.
    assert_eq!(&get_profile(&app, &user).await, profile);
    let response = app
        .api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(response, StatusCode::OK).await["name"],
        "Augusta Ada King"
    );
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP", "PROFILE_UPDATED"]
    );

    // A partial update changes only what it names.
    let response = put_profile(&app, &user, &json!({"city": "Marylebone"})).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated_fields(&body), field_set(&["city"]));
    let mut expected = profile.clone();
    expected["city"] = json!("Marylebone");
    expected["updated_at"] = body["profile"]["updated_at"].clone();
    assert_eq!(body["profile"], expected);
    assert_eq!(get_profile(&app, &user).await, expected);
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP", "PROFILE_UPDATED", "PROFILE_UPDATED"]
    );
}

async fn null_or_blank_clears_optional_fields(app: TestApp) {
    let user = app.signup("Grace").await;
    let full = json!({
        "first_name": "Grace",
        "last_name": "Hopper",
        "phone": "555-0100",
        "date_of_birth": "1906-12-09",
        "gender": "female",
        "address": "1 Navy Yard",
        "city": "Arlington",
        "country": "USA",
        "bio": "Compilers.",
    });
    expect_json(put_profile(&app, &user, &full).await, StatusCode::OK).await;

    // Half cleared with null, half with blank strings.
    let clear = json!({
        "first_name": null,
        "last_name": "",
        "phone": "   ",
        "date_of_birth": null,
        "gender": "",
        "address": null,
        "city": " \t ",
        "country": null,
        "bio": "",
    });
    let body = expect_json(put_profile(&app, &user, &clear).await, StatusCode::OK).await;
    let names: Vec<&str> = clear
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(updated_fields(&body), field_set(&names));
    let profile = get_profile(&app, &user).await;
    for field in names {
        assert_eq!(profile[field], Value::Null, "{field} cleared: {profile}");
        assert_eq!(
            body["profile"][field],
            Value::Null,
            "{field} cleared in the response"
        );
    }
    assert_eq!(profile["name"], "Grace Tester", "the name is untouched");

    // Clearing an already empty field is fine too.
    let body = expect_json(
        put_profile(&app, &user, &json!({"bio": null})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated_fields(&body), field_set(&["bio"]));
    assert_eq!(get_profile(&app, &user).await["bio"], Value::Null);
}

async fn length_limits_count_characters_at_the_boundary(app: TestApp) {
    let user = app.signup("Grace").await;
    // (field, limit); multi-byte characters so that bytes and characters differ.
    let limits = [
        ("first_name", 100),
        ("last_name", 100),
        ("gender", 20),
        ("address", 100),
        ("city", 100),
        ("country", 100),
        ("bio", 500),
    ];
    for (field, limit) in limits {
        let at_limit = "é".repeat(limit);
        let body = expect_json(
            put_profile(&app, &user, &json!({ field: at_limit })).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            body["profile"][field],
            at_limit.as_str(),
            "{field} at {limit}"
        );
        assert_eq!(
            get_profile(&app, &user).await[field],
            at_limit.as_str(),
            "{field}"
        );

        let over = "é".repeat(limit + 1);
        let response = put_profile(&app, &user, &json!({ field: over })).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            detail_fields(&envelope),
            vec![field],
            "{field} over {limit}"
        );
        assert_eq!(
            get_profile(&app, &user).await[field],
            at_limit.as_str(),
            "{field} unchanged"
        );
    }

    // Phone: at most 20 characters.
    let phone = "+1 (555) 010-0000 99";
    assert_eq!(phone.chars().count(), 20);
    let body = expect_json(
        put_profile(&app, &user, &json!({"phone": phone})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["phone"], phone);
    let response = put_profile(&app, &user, &json!({"phone": format!("{phone}9")})).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["phone"]);
    assert_eq!(get_profile(&app, &user).await["phone"], phone);

    // Name: 2 to 100 characters.
    let name = format!("Zoë {}", "ä".repeat(96));
    assert_eq!(name.chars().count(), 100);
    let body = expect_json(
        put_profile(&app, &user, &json!({"name": name})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], name.as_str());
    let body = expect_json(
        put_profile(&app, &user, &json!({"name": "Jo"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["profile"]["name"], "Jo");
    for bad in [format!("{name}ä"), "J".to_string()] {
        let response = put_profile(&app, &user, &json!({"name": bad})).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["name"], "{bad}");
    }
    assert_eq!(get_profile(&app, &user).await["name"], "Jo");
}

async fn every_invalid_field_is_reported_and_nothing_is_applied(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;
    let bad = json!({
        "name": "X",
        "first_name": "a".repeat(101),
        "last_name": "b".repeat(101),
        "phone": "1".repeat(21),
        "date_of_birth": "yesterday",
        "gender": "g".repeat(21),
        "address": "c".repeat(101),
        "city": "d".repeat(101),
        "country": "e".repeat(101),
        "bio": "f".repeat(501),
    });
    let response = put_profile(&app, &user, &bad).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let reported: BTreeSet<String> = detail_fields(&envelope).into_iter().collect();
    let expected: Vec<&str> = bad
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(reported, field_set(&expected), "{envelope}");
    assert_eq!(
        detail_fields(&envelope).len(),
        expected.len(),
        "one detail per field: {envelope}"
    );

    // Valid fields next to an invalid one are not applied either.
    let response = put_profile(
        &app,
        &user,
        &json!({"city": "Paris", "bio": "x".repeat(501)}),
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["bio"]);
    let response = put_profile(
        &app,
        &user,
        &json!({"city": "Paris", "phone": "call me maybe"}),
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["phone"]);

    assert_eq!(get_profile(&app, &user).await, before);
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP"],
        "no notification for refused updates"
    );
}

async fn date_of_birth_must_be_a_real_date_not_in_the_future(app: TestApp) {
    let user = app.signup("Grace").await;
    for good in ["1906-12-09", "2000-02-29", "1970-01-01"] {
        let body = expect_json(
            put_profile(&app, &user, &json!({"date_of_birth": good})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body["profile"]["date_of_birth"], good);
        assert_eq!(get_profile(&app, &user).await["date_of_birth"], good);
    }
    let future = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let next_year = (chrono::Utc::now() + chrono::Duration::days(400))
        .date_naive()
        .to_string();
    for bad in [
        future.as_str(),
        next_year.as_str(),
        "1999-02-29",
        "1990-13-01",
        "1990-04-31",
        "17/05/1990",
        "05-17-1990",
        "1990-05-17T00:00:00Z",
        "not a date",
    ] {
        let response = put_profile(&app, &user, &json!({"date_of_birth": bad})).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["date_of_birth"], "{bad}");
    }
    assert_eq!(
        get_profile(&app, &user).await["date_of_birth"],
        "1970-01-01"
    );
}

async fn name_cannot_be_cleared_or_invalid(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    for bad in [
        json!(null),
        json!(""),
        json!("   "),
        json!("A"),
        json!("R2D2 Droid"),
        json!("--"),
    ] {
        let response = put_profile(&app, &user, &json!({ "name": bad })).await;
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["name"], "name {bad}");
    }
    // A null name is refused even next to valid fields, which are then not applied.
    let response = put_profile(&app, &user, &json!({"name": null, "city": "London"})).await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["name"]);
    let profile = get_profile(&app, &user).await;
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["city"], Value::Null);
}

async fn empty_or_malformed_updates_are_refused(app: TestApp) {
    let user = app.signup("Grace").await;
    let before = get_profile(&app, &user).await;
    // No profile field at all.
    for body in [json!({}), json!({"favourite_colour": "blue"})] {
        let response = put_profile(&app, &user, &body).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    // Wrong JSON types, not an object, malformed JSON.
    for body in [
        json!({"city": 5}),
        json!({"bio": ["a"]}),
        json!({"name": true}),
        json!([]),
        json!("city"),
    ] {
        let response = put_profile(&app, &user, &body).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let response = app
        .api(Method::PUT, "/profile", Some(&user.token))
        .header("content-type", "application/json")
        .body("{\"city\": ")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // Not JSON at all.
    let response = app
        .api(Method::PUT, "/profile", Some(&user.token))
        .body("city=Paris")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;

    assert_eq!(get_profile(&app, &user).await, before);
    assert_eq!(notification_types(&app, &user).await, vec!["SIGNUP"]);
}

async fn fields_that_are_not_editable_are_never_changed(app: TestApp) {
    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let before = get_profile(&app, &user).await;
    let response = put_profile(
        &app,
        &user,
        &json!({
            "city": "London",
            "id": uuid::Uuid::new_v4(),
            "email": "mallory@example.com",
            "is_email_verified": true,
            "profile_photo_url": "/media/../../etc/passwd",
            "created_at": "2000-01-01T00:00:00Z",
            "password": "N3w-Passw0rd!x",
        }),
    )
    .await;
    let status = response.status();
    assert!(
        status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
        "either ignored or refused, got {status}"
    );
    let after = get_profile(&app, &user).await;
    for key in [
        "id",
        "email",
        "is_email_verified",
        "profile_photo_url",
        "created_at",
    ] {
        assert_eq!(after[key], before[key], "{key} is not editable");
    }
    // The password did not change: signing in with the old one still works.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}
