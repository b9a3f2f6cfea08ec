//! Tags: given with a task, checked, filtered on, counted, and carried by the events.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::tasks::{delete_task, list, patch_task};
use testkit::api::{detail_fields, expect_error, expect_json, send, ApiClient, TestUser};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    tags_are_trimmed_deduplicated_regardless_of_case_and_bounded,
    put_and_patch_replace_tags_and_put_without_them_keeps_them,
    lists_filter_by_one_or_several_tags_with_the_other_filters,
    tag_filter_values_are_checked,
    tag_counts_cover_the_callers_tasks_outside_the_trash,
    tags_ride_in_the_task_events,
);

fn titles(tasks: &[Value]) -> Vec<&str> {
    tasks.iter().map(|t| t["title"].as_str().unwrap()).collect()
}

async fn tag_list(api: &ApiClient, user: &TestUser, prefix: &str) -> Value {
    let response = api
        .client
        .get(api.url(&format!("{prefix}/tags")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await
}

/// `GET /tasks` with these query pairs (encoded by the client).
async fn list_with(api: &ApiClient, user: &TestUser, pairs: &[(&str, &str)]) -> reqwest::Response {
    api.api(Method::GET, "/tasks", Some(&user.token))
        .query(pairs)
        .send()
        .await
        .unwrap()
}

async fn expect_invalid(response: reqwest::Response, field: &str) -> Value {
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), [field], "{envelope}");
    envelope
}

async fn tags_are_trimmed_deduplicated_regardless_of_case_and_bounded(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(
            &user,
            json!({"title": "Tagged", "tags": [" Urgent ", "home", "URGENT", "Zoë", "ZOË", "urgent"]}),
        )
        .await;
    assert_eq!(task["tags"], json!(["Urgent", "home", "Zoë"]));
    let response = send(
        &app,
        Method::GET,
        &format!("/tasks/{}", task["id"]),
        &user,
        None,
    )
    .await;
    assert_eq!(expect_json(response, StatusCode::OK).await, task);
    // No tags given: none.
    let plain = app.create_task(&user, json!({"title": "Plain"})).await;
    assert_eq!(plain["tags"], json!([]));
    // The boundaries are accepted.
    let ten: Vec<String> = (0..10).map(|i| format!("tag {i}")).collect();
    let task = app
        .create_task(&user, json!({"title": "Ten", "tags": ten}))
        .await;
    assert_eq!(task["tags"], json!(ten));
    let long = "x".repeat(32);
    let task = app
        .create_task(
            &user,
            json!({"title": "Long", "tags": [long, "é".repeat(32)]}),
        )
        .await;
    assert_eq!(task["tags"][0], json!(long));
    // The seed-compatible prefix takes them too.
    let response = app
        .client
        .post(app.url("/api/tasks"))
        .bearer_auth(&user.token)
        .json(&json!({"title": "Seed route", "tags": ["Seed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(response, StatusCode::CREATED).await["tags"],
        json!(["Seed"])
    );

    let eleven: Vec<String> = (0..11).map(|i| format!("tag {i}")).collect();
    let refused = [
        json!(eleven),
        json!(["x".repeat(33)]),
        json!([""]),
        json!(["   "]),
        json!(["a,b"]),
        json!(["two\nlines"]),
        json!(["tab\tbed"]),
        json!(["nul\u{0}"]),
        json!([42]),
        json!("urgent"),
    ];
    let (_, before) = list(&app, &user, "").await;
    for tags in refused {
        let body = json!({"title": "Refused", "tags": tags});
        let response = send(&app, Method::POST, "/tasks", &user, Some(body.clone())).await;
        let field = if tags.is_array() && !tags[0].is_number() {
            "tags"
        } else {
            "body"
        };
        let envelope = expect_invalid(response, field).await;
        if tags == json!(eleven) {
            let message = envelope["error"]["details"][0]["message"].as_str().unwrap();
            assert!(message.contains("at most 10 tags"), "{message}");
        }
    }
    let (_, after) = list(&app, &user, "").await;
    assert_eq!(before, after, "nothing refused was created");
}

async fn put_and_patch_replace_tags_and_put_without_them_keeps_them(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(&user, json!({"title": "Draft", "tags": ["work"]}))
        .await;
    let path = format!("/tasks/{}", task["id"]);
    let (api, at, who) = (&*app, path.as_str(), &user);
    let put = move |body: Value| send(api, Method::PUT, at, who, Some(body));
    // A client that knows nothing of tags replaces the task: they stay.
    let updated = expect_json(put(json!({"title": "Final"})).await, StatusCode::OK).await;
    assert_eq!(updated["tags"], json!(["work"]));
    let updated = expect_json(
        put(json!({"title": "Final", "tags": ["Home", "home", "Errands"]})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["tags"], json!(["Home", "Errands"]));
    let updated = expect_json(
        put(json!({"title": "Final", "tags": []})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["tags"], json!([]));
    expect_invalid(
        put(json!({"title": "Final", "tags": ["a,b"]})).await,
        "tags",
    )
    .await;

    patch_task(
        &app,
        &user,
        task["id"].as_i64().unwrap(),
        json!({"tags": ["One", "Two"]}),
    )
    .await;
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"title": "Renamed"})),
    )
    .await;
    let patched = expect_json(response, StatusCode::OK).await;
    assert_eq!(patched["tags"], json!(["One", "Two"]), "untouched by PATCH");
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"tags": null})),
    )
    .await;
    expect_invalid(response, "tags").await;
    let eleven = vec!["x"; 11];
    let response = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        Some(json!({"tags": eleven})),
    )
    .await;
    expect_invalid(response, "tags").await;
    let response = send(&app, Method::PATCH, &path, &user, Some(json!({"tags": []}))).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["tags"],
        json!([])
    );
    // The filter and the counts follow every change.
    let (tasks, _) = list(&app, &user, "?tag=one").await;
    assert!(tasks.is_empty());
    assert_eq!(tag_list(&app, &user, "/api/v1").await, json!([]));
}

async fn lists_filter_by_one_or_several_tags_with_the_other_filters(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let both = app
        .create_task(
            &ada,
            json!({"title": "Both", "tags": ["Urgent", "home"], "priority": "HIGH", "description": "call the plumber"}),
        )
        .await;
    let urgent = app
        .create_task(
            &ada,
            json!({"title": "Urgent only", "tags": ["urgent"], "priority": "LOW"}),
        )
        .await;
    let home = app
        .create_task(&ada, json!({"title": "Home only", "tags": ["HOME"]}))
        .await;
    app.create_task(&ada, json!({"title": "Untagged"})).await;
    app.create_task(&bob, json!({"title": "Bob's", "tags": ["urgent", "home"]}))
        .await;
    send(
        &app,
        Method::PATCH,
        &format!("/tasks/{}/complete", urgent["id"]),
        &ada,
        None,
    )
    .await;

    let cases: [(&str, Vec<&str>); 11] = [
        ("?tag=urgent", vec!["Urgent only", "Both"]),
        ("?tag=URGENT", vec!["Urgent only", "Both"]),
        ("?tag=%20Urgent%20", vec!["Urgent only", "Both"]),
        ("?tag=home&tag=Urgent", vec!["Both"]),
        ("?tag=home&tag=home&tag=HOME", vec!["Home only", "Both"]),
        ("?tag=urgent&status=pending", vec!["Both"]),
        ("?tag=urgent&status=completed", vec!["Urgent only"]),
        ("?tag=urgent&priority=LOW", vec!["Urgent only"]),
        ("?tag=home&q=plumber", vec!["Both"]),
        ("?tag=home&tag=work", vec![]),
        ("?tag=nothing", vec![]),
    ];
    for (query, expected) in cases {
        let (tasks, total) = list(&app, &ada, query).await;
        assert_eq!(titles(&tasks), expected, "{query}");
        assert_eq!(total, expected.len() as i64, "{query}");
    }
    let (page, total) = list(&app, &ada, "?tag=home&limit=1&offset=1").await;
    assert_eq!((titles(&page), total), (vec!["Both"], 2));
    let (page, total) = list(&app, &ada, "?tag=home&limit=1&offset=5").await;
    assert_eq!((page.len(), total), (0, 2));

    // The trash: hidden unless asked for, and still tagged there.
    delete_task(&app, &ada, home["id"].as_i64().unwrap(), "").await;
    let (tasks, _) = list(&app, &ada, "?tag=home").await;
    assert_eq!(titles(&tasks), ["Both"]);
    let (tasks, _) = list(&app, &ada, "?tag=home&status=deleted").await;
    assert_eq!(titles(&tasks), ["Home only"]);
    // Changed tags are found by their new keys only.
    patch_task(
        &app,
        &ada,
        both["id"].as_i64().unwrap(),
        json!({"tags": ["Work"]}),
    )
    .await;
    let (tasks, _) = list(&app, &ada, "?tag=home").await;
    assert!(tasks.is_empty());
    let (tasks, _) = list(&app, &ada, "?tag=work").await;
    assert_eq!(titles(&tasks), ["Both"]);
    // Bob sees his own only.
    let (tasks, _) = list(&app, &bob, "?tag=urgent&tag=home").await;
    assert_eq!(titles(&tasks), ["Bob's"]);
}

async fn tag_filter_values_are_checked(app: TestApp) {
    let user = app.signup("Ada").await;
    let too_long = "x".repeat(33);
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let mut cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("tag", "")],
        vec![("tag", "a,b")],
        vec![("tag", too_long.as_str())],
        vec![("tag", "nul\u{0}")],
    ];
    cases.push(eleven.iter().map(|t| ("tag", t.as_str())).collect());
    // As many as a task may have, repeats included (what the document says).
    cases.push(vec![("tag", "a"); 11]);
    cases.push(vec![("sort", "")]);
    for pairs in cases {
        let response = list_with(&app, &user, &pairs).await;
        expect_invalid(response, pairs[0].0).await;
    }
    // Ten different tags are a valid (if empty) question.
    let ten: Vec<(&str, &str)> = eleven[..10].iter().map(|t| ("tag", t.as_str())).collect();
    let response = list_with(&app, &user, &ten).await;
    assert_eq!(expect_json(response, StatusCode::OK).await, json!([]));
}

async fn tag_counts_cover_the_callers_tasks_outside_the_trash(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    assert_eq!(tag_list(&app, &ada, "/api/v1").await, json!([]));
    app.create_task(&ada, json!({"title": "One", "tags": ["Urgent", "home"]}))
        .await;
    let two = app
        .create_task(&ada, json!({"title": "Two", "tags": ["urgent"]}))
        .await;
    let three = app
        .create_task(
            &ada,
            json!({"title": "Three", "tags": ["URGENT", "work", "Zoë"]}),
        )
        .await;
    send(
        &app,
        Method::PATCH,
        &format!("/tasks/{}/complete", two["id"]),
        &ada,
        None,
    )
    .await;
    app.create_task(
        &bob,
        json!({"title": "Bob's", "tags": ["urgent", "bob", "home", "home2"]}),
    )
    .await;

    // Completed tasks count; spellings of one tag are one, shown as on the oldest task;
    // most used first, then by tag.
    let all = json!([
        {"tag": "Urgent", "count": 3},
        {"tag": "home", "count": 1},
        {"tag": "work", "count": 1},
        {"tag": "Zoë", "count": 1},
    ]);
    assert_eq!(tag_list(&app, &ada, "/api/v1").await, all);
    assert_eq!(tag_list(&app, &ada, "/api").await, all);

    let three_id = three["id"].as_i64().unwrap();
    delete_task(&app, &ada, three_id, "").await;
    assert_eq!(
        tag_list(&app, &ada, "/api/v1").await,
        json!([{"tag": "Urgent", "count": 2}, {"tag": "home", "count": 1}])
    );
    let response = send(
        &app,
        Method::POST,
        &format!("/tasks/{three_id}/restore"),
        &ada,
        None,
    )
    .await;
    expect_json(response, StatusCode::OK).await;
    assert_eq!(tag_list(&app, &ada, "/api/v1").await, all);
    delete_task(&app, &ada, three_id, "?permanent=true").await;
    assert_eq!(
        tag_list(&app, &ada, "/api/v1").await,
        json!([{"tag": "Urgent", "count": 2}, {"tag": "home", "count": 1}])
    );
    assert_eq!(
        tag_list(&app, &bob, "/api/v1").await,
        json!([
            {"tag": "bob", "count": 1},
            {"tag": "home", "count": 1},
            {"tag": "home2", "count": 1},
            {"tag": "urgent", "count": 1},
        ])
    );
    let response = app.api(Method::GET, "/tags", None).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
}

async fn tags_ride_in_the_task_events(app: TestApp) {
    let user = app.signup("Ada").await;
    let task = app
        .create_task(
            &user,
            json!({"title": "Evented", "tags": ["Urgent", "urgent", "home"]}),
        )
        .await;
    let id = task["id"].as_i64().unwrap();
    patch_task(&app, &user, id, json!({"tags": ["Later"]})).await;
    send(
        &app,
        Method::PATCH,
        &format!("/tasks/{id}/complete"),
        &user,
        None,
    )
    .await;
    let response = send(&app, Method::GET, "/events?since=0&limit=1000", &user, None).await;
    let page = expect_json(response, StatusCode::OK).await;
    let task_events: Vec<(String, Value)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("task."))
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["data"]["tags"].clone(),
            )
        })
        .collect();
    assert_eq!(
        task_events,
        [
            ("task.created".to_string(), json!(["Urgent", "home"])),
            ("task.updated".to_string(), json!(["Later"])),
            ("task.completed".to_string(), json!(["Later"])),
        ]
    );
}
