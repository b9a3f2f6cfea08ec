//! Full-text search (`q`) and relevance order (`sort=relevance`): the same matches on both
//! backends for ordinary words, and nothing a user types is taken for an operator they did
//! not mean.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::tasks::{delete_task, list, patch_task};
use testkit::api::{detail_fields, expect_error, expect_json, ApiClient, TestUser};
use testkit::{Backend, TestApp};

use crate::backend_tests;

backend_tests!(
    search_matches_words_regardless_of_case_and_form,
    search_takes_phrases_exclusions_and_alternatives,
    search_never_fails_on_operators_or_wildcards,
    relevance_orders_by_rank_then_newest,
    search_sees_only_the_callers_tasks_as_they_are_now,
    existing_tasks_are_searchable_and_untagged_after_the_migration,
);

fn titles(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect()
}

/// The titles `GET /tasks` answers for these query pairs, and `X-Total-Count`.
async fn search(api: &ApiClient, user: &TestUser, pairs: &[(&str, &str)]) -> (Vec<String>, i64) {
    let response = api
        .api(Method::GET, "/tasks", Some(&user.token))
        .query(pairs)
        .send()
        .await
        .unwrap();
    let total: i64 = response
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .unwrap_or(-1);
    let body = expect_json(response, StatusCode::OK).await;
    (titles(body.as_array().unwrap()), total)
}

async fn q(api: &ApiClient, user: &TestUser, text: &str) -> Vec<String> {
    let (found, total) = search(api, user, &[("q", text)]).await;
    assert_eq!(total, found.len() as i64, "{text}");
    found
}

/// The three tasks most tests search, created oldest first.
async fn three_tasks(app: &TestApp, user: &TestUser) {
    for body in [
        json!({"title": "Go running tomorrow", "description": "Five kilometres by the river"}),
        json!({"title": "Quarterly report", "description": "Numbers for the BOARD meeting"}),
        json!({"title": "Fix the login bug", "description": "Users cannot sign in on mobile"}),
    ] {
        app.create_task(user, body).await;
    }
}

async fn search_matches_words_regardless_of_case_and_form(app: TestApp) {
    let user = app.signup("Ada").await;
    three_tasks(&app, &user).await;
    let cases: [(&str, &[&str]); 11] = [
        ("report", &["Quarterly report"]),
        ("REPORT", &["Quarterly report"]),
        ("reports", &["Quarterly report"]),
        // Stemming, the same on both backends for ordinary words.
        ("run", &["Go running tomorrow"]),
        ("runs", &["Go running tomorrow"]),
        ("meetings", &["Quarterly report"]),
        // Descriptions are searched too.
        ("board", &["Quarterly report"]),
        ("  mobile  ", &["Fix the login bug"]),
        // Every word must match.
        ("login bug", &["Fix the login bug"]),
        ("login report", &[]),
        // Words, not substrings.
        ("repo", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(q(&app, &user, text).await, expected, "{text}");
    }
    // English stop words are ignored (PostgreSQL's `english` configuration), on SQLite too.
    assert_eq!(q(&app, &user, "the report").await, ["Quarterly report"]);
    assert_eq!(q(&app, &user, "the").await, Vec::<String>::new());
    // A blank q is no search.
    let (all, _) = search(&app, &user, &[("q", "   ")]).await;
    assert_eq!(all.len(), 3);
}

async fn search_takes_phrases_exclusions_and_alternatives(app: TestApp) {
    let user = app.signup("Ada").await;
    three_tasks(&app, &user).await;
    let none: &[&str] = &[];
    let cases: [(&str, &[&str]); 13] = [
        (r#""login bug""#, &["Fix the login bug"]),
        (r#""bug login""#, none),
        (r#""board meeting""#, &["Quarterly report"]),
        // Stop words inside a phrase hold their place.
        (r#""fix the login""#, &["Fix the login bug"]),
        ("report -board", none),
        ("report -sales", &["Quarterly report"]),
        (r#"bug -"sign in""#, none),
        (r#"bug -"sign mobile""#, &["Fix the login bug"]),
        ("-report", &["Fix the login bug", "Go running tomorrow"]),
        (
            "login or report",
            &["Fix the login bug", "Quarterly report"],
        ),
        (
            "login OR river",
            &["Fix the login bug", "Go running tomorrow"],
        ),
        // `a b or c` is `(a and b) or c`.
        ("login report or river", &["Go running tomorrow"]),
        (
            "nothing or -report",
            &["Fix the login bug", "Go running tomorrow"],
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(q(&app, &user, text).await, expected, "{text}");
    }
}

async fn search_never_fails_on_operators_or_wildcards(app: TestApp) {
    let user = app.signup("Ada").await;
    three_tasks(&app, &user).await;
    let none: &[&str] = &[];
    let report: &[&str] = &["Quarterly report"];
    let cases: [(&str, &[&str]); 21] = [
        ("*", none),
        ("\"", none),
        ("\"\"", none),
        ("NEAR(", none),
        ("NEAR(report bug)", none),
        ("NEAR(report bug, 5)", none),
        ("title:x", none),
        ("description:report", none),
        ("AND OR NOT", none),
        ("report AND board", report),
        ("report NOT board", report),
        ("report*", report),
        ("repo*", none),
        ("^report", report),
        ("\"report", report),
        ("report\"", report),
        ("(report) + {board} [x]", none),
        ("report & board | x !y", none),
        ("'; DROP TABLE tasks; --", none),
        ("%_\\", none),
        ("- - -", none),
    ];
    for (text, expected) in cases {
        assert_eq!(q(&app, &user, text).await, expected, "{text}");
    }
    // The longest q: 1000 characters, however many terms and operators.
    let words = "report ".repeat(142) + "report";
    assert_eq!(words.chars().count(), 1000);
    assert_eq!(q(&app, &user, &words).await, report);
    let hostile = "\"*-:()^ NEAR OR x".repeat(1000 / 17) + &"-".repeat(1000 % 17);
    assert_eq!(hostile.chars().count(), 1000);
    q(&app, &user, &hostile).await;
    let alternatives = "or report ".repeat(100);
    assert_eq!(q(&app, &user, &alternatives).await, report);
    // Longer is refused, as are control characters.
    for text in ["x".repeat(1001), "nul\u{0}".to_string()] {
        let response = app
            .api(Method::GET, "/tasks", Some(&user.token))
            .query(&[("q", text.as_str())])
            .send()
            .await
            .unwrap();
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), ["q"]);
    }
    // The tasks are all still there.
    let (tasks, _) = list(&app, &user, "").await;
    assert_eq!(tasks.len(), 3);
}

async fn relevance_orders_by_rank_then_newest(app: TestApp) {
    let user = app.signup("Ada").await;
    // Oldest first: the default order is the reverse of the relevance order.
    for body in [
        json!({"title": "Budget budget review"}),
        json!({"title": "Budget notes review"}),
        json!({"title": "Weekly review", "description": "budget"}),
        json!({"title": "Yearly review", "description": "budget"}),
        json!({"title": "Unrelated"}),
    ] {
        app.create_task(&user, body).await;
    }
    let by_rank = [
        "Budget budget review",
        "Budget notes review",
        // Equal ranks: newest first.
        "Yearly review",
        "Weekly review",
    ];
    let (found, total) = search(&app, &user, &[("q", "budget"), ("sort", "relevance")]).await;
    assert_eq!((found, total), (by_rank.map(String::from).to_vec(), 4));
    let (found, _) = search(&app, &user, &[("q", "budget")]).await;
    assert_eq!(
        found,
        [
            "Yearly review",
            "Weekly review",
            "Budget notes review",
            "Budget budget review"
        ]
    );
    let (found, _) = search(&app, &user, &[("q", "budget"), ("sort", "newest")]).await;
    assert_eq!(found[0], "Yearly review");
    // Paging keeps the order.
    let (found, total) = search(
        &app,
        &user,
        &[
            ("q", "budget"),
            ("sort", "relevance"),
            ("limit", "2"),
            ("offset", "1"),
        ],
    )
    .await;
    assert_eq!(
        (found, total),
        (
            by_rank[1..3]
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            4
        )
    );
    // Without q there is nothing to rank: newest first.
    let (found, total) = search(&app, &user, &[("sort", "relevance")]).await;
    assert_eq!(found[0], "Unrelated");
    assert_eq!(total, 5);
    let response = app
        .api(Method::GET, "/tasks?sort=oldest", Some(&user.token))
        .send()
        .await
        .unwrap();
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), ["sort"]);
}

async fn search_sees_only_the_callers_tasks_as_they_are_now(app: TestApp) {
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let mine = app
        .create_task(&ada, json!({"title": "Quarterly report", "tags": ["work"]}))
        .await;
    app.create_task(
        &bob,
        json!({"title": "Quarterly report", "description": "Bob's"}),
    )
    .await;
    app.create_task(&bob, json!({"title": "Bob's secret plans"}))
        .await;
    assert_eq!(q(&app, &ada, "report").await, ["Quarterly report"]);
    assert_eq!(
        q(&app, &ada, "secret or report").await,
        ["Quarterly report"]
    );
    assert_eq!(q(&app, &ada, "-report").await, Vec::<String>::new());
    assert_eq!(q(&app, &ada, "-nothing").await, ["Quarterly report"]);
    assert_eq!(q(&app, &ada, "secret").await, Vec::<String>::new());
    assert_eq!(q(&app, &bob, "report").await, ["Quarterly report"]);

    // A changed title or description is found by its new words only.
    let id = mine["id"].as_i64().unwrap();
    patch_task(
        &app,
        &ada,
        id,
        json!({"title": "Annual summary", "description": "for the shareholders"}),
    )
    .await;
    assert_eq!(q(&app, &ada, "report").await, Vec::<String>::new());
    assert_eq!(
        q(&app, &ada, "annual shareholder").await,
        ["Annual summary"]
    );
    patch_task(&app, &ada, id, json!({"description": null})).await;
    assert_eq!(q(&app, &ada, "shareholders").await, Vec::<String>::new());
    // The trash is searched only when asked for.
    delete_task(&app, &ada, id, "").await;
    assert_eq!(q(&app, &ada, "annual").await, Vec::<String>::new());
    let (found, _) = search(&app, &ada, &[("q", "annual"), ("status", "deleted")]).await;
    assert_eq!(found, ["Annual summary"]);
    let (found, _) = search(&app, &ada, &[("q", "annual"), ("include_deleted", "true")]).await;
    assert_eq!(found, ["Annual summary"]);
    delete_task(&app, &ada, id, "?permanent=true").await;
    let (found, _) = search(&app, &ada, &[("q", "annual"), ("include_deleted", "true")]).await;
    assert!(found.is_empty());
    // Search combines with the other filters.
    app.create_task(
        &ada,
        json!({"title": "Plan the offsite", "priority": "HIGH", "tags": ["Work"]}),
    )
    .await;
    app.create_task(&ada, json!({"title": "Plan dinner", "priority": "LOW"}))
        .await;
    let (found, _) = search(&app, &ada, &[("q", "plan"), ("priority", "HIGH")]).await;
    assert_eq!(found, ["Plan the offsite"]);
    let (found, _) = search(
        &app,
        &ada,
        &[("q", "plan"), ("tag", "work"), ("status", "pending")],
    )
    .await;
    assert_eq!(found, ["Plan the offsite"]);
}

/// Runs a script of SQL statements against the test's database.
async fn run_sql(app: &TestApp, script: &str) {
    use sqlx::Connection;
    match app.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::raw_sql(script).execute(&mut conn).await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::raw_sql(script).execute(&mut conn).await.unwrap();
        }
    }
}

/// Takes the database back to before `0008_tags_search` (what it undoes is what it made),
/// adds a task the way the schema then stored them, and starts a server on it: the
/// migration then runs over existing rows.
async fn existing_tasks_are_searchable_and_untagged_after_the_migration(app: TestApp) {
    let user = app.signup("Ada").await;
    app.create_task(&user, json!({"title": "Created earlier", "tags": ["gone"]}))
        .await;
    let id = uuid::Uuid::parse_str(&user.id)
        .unwrap()
        .simple()
        .to_string();
    let undo = match app.backend {
        Backend::Postgres => format!(
            "ALTER TABLE tasks DROP COLUMN search, DROP COLUMN tags;
             DROP TABLE task_tags;
             DELETE FROM _sqlx_migrations WHERE version = 8;
             INSERT INTO tasks (user_id, title, description, created_at, updated_at)
                 VALUES ('{id}', 'Inserted earlier', 'Running numbers', now(), now());"
        ),
        Backend::Sqlite => format!(
            "DROP TRIGGER tasks_fts_insert; DROP TRIGGER tasks_fts_delete;
             DROP TRIGGER tasks_fts_update; DROP TABLE tasks_fts; DROP TABLE task_tags;
             ALTER TABLE tasks DROP COLUMN tags;
             DELETE FROM _sqlx_migrations WHERE version = 8;
             INSERT INTO tasks (user_id, title, description, created_at, updated_at)
                 VALUES (X'{id}', 'Inserted earlier', 'Running numbers',
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
        ),
    };
    run_sql(&app, &undo).await;
    let server = app.spawn_sibling(|_| {}).await;
    let api = ApiClient::new(&server.address);
    let (tasks, total) = list(&api, &user, "").await;
    assert_eq!(total, 2);
    for task in &tasks {
        assert_eq!(task["tags"], json!([]), "{task}");
    }
    assert_eq!(q(&api, &user, "run").await, ["Inserted earlier"]);
    assert_eq!(q(&api, &user, "created").await, ["Created earlier"]);
    assert_eq!(q(&api, &user, "earlier").await.len(), 2);
    let response = api
        .api(Method::GET, "/tags", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, StatusCode::OK).await, json!([]));
    // And they take tags from now on.
    let id = tasks[0]["id"].as_i64().unwrap();
    patch_task(&api, &user, id, json!({"tags": ["Later"]})).await;
    let (tagged, _) = list(&api, &user, "?tag=later").await;
    assert_eq!(tagged.len(), 1);
}
