//! Reading notifications: one, and pages of them (sort, paging, the unread filter).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::{all, get, id_of, list, mark_all_read, set_read};
use testkit::api::tasks::create_tasks;
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::TestApp;

use super::assert_timestamp;
use crate::backend_tests;

backend_tests!(
    signup_notification_has_every_field,
    get_returns_one_notification,
    list_validates_the_query,
    list_sorts_newest_first_by_default,
    list_paginates_and_keeps_the_full_total,
    unread_only_filters_and_counts_only_unread,
);

const NOTIFICATION_KEYS: [&str; 8] = [
    "created_at",
    "id",
    "is_read",
    "message",
    "task_id",
    "title",
    "type",
    "user_id",
];

async fn signup_notification_has_every_field(app: TestApp) {
    let ada = app.signup("Ada").await;
    let page = list(&app, &ada, "").await;
    assert_eq!((page.total, page.unread), (1, 1));
    assert_eq!(page.items.len(), 1);
    let note = &page.items[0];
    let mut keys: Vec<&str> = note
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, NOTIFICATION_KEYS, "{note}");
    assert!(id_of(note) > 0);
    assert_eq!(note["user_id"], json!(ada.id));
    assert_eq!(note["type"], "SIGNUP");
    assert!(
        note["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{note}"
    );
    assert!(
        note["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{note}"
    );
    assert_eq!(note["is_read"], false);
    assert_eq!(note["task_id"], Value::Null);
    assert_timestamp(&note["created_at"]);
}

async fn get_returns_one_notification(app: TestApp) {
    let ada = app.signup("Ada").await;
    let task_ids = create_tasks(&app, &ada, 2).await;
    let notes = all(&app, &ada).await;
    assert_eq!(notes.len(), 3);
    for note in &notes {
        let body = expect_json(get(&app, &ada, id_of(note)).await, StatusCode::OK).await;
        assert_eq!(&body, note);
    }
    assert_eq!(notes[1]["type"], "TASK_CREATED");
    assert_eq!(notes[1]["task_id"], json!(task_ids[0]));
    assert_eq!(notes[2]["task_id"], json!(task_ids[1]));
}

async fn list_validates_the_query(app: TestApp) {
    let ada = app.signup("Ada").await;
    let cases = [
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=abc", vec!["limit"]),
        ("limit=-5", vec!["limit"]),
        ("limit=2.5", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("offset=x", vec!["offset"]),
        ("sort=up", vec!["sort"]),
        ("sort=ASCENDING", vec!["sort"]),
        ("unread_only=maybe", vec!["unread_only"]),
        ("limit=1&limit=2", vec!["limit"]),
        (
            "limit=0&offset=-1&unread_only=maybe&sort=up",
            vec!["limit", "offset", "unread_only", "sort"],
        ),
    ];
    for (query, fields) in cases {
        let response = app
            .api(
                Method::GET,
                &format!("/notifications?{query}"),
                Some(&ada.token),
            )
            .send()
            .await
            .unwrap();
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        let mut named = detail_fields(&envelope);
        named.sort();
        let mut expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(named, expected, "for ?{query}: {envelope}");
    }
    // The limits themselves, and every accepted spelling, are fine.
    for query in [
        "limit=1",
        "limit=100",
        "offset=0",
        "sort=asc",
        "sort=desc",
        "unread_only=true",
        "unread_only=false",
    ] {
        let page = list(&app, &ada, &format!("?{query}")).await;
        assert_eq!(page.items.len(), 1, "for ?{query}");
    }
}

async fn list_sorts_newest_first_by_default(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 4).await;

    let default = list(&app, &ada, "").await;
    let desc = list(&app, &ada, "?sort=desc").await;
    let asc = list(&app, &ada, "?sort=asc").await;
    assert_eq!(default.items.len(), 5);
    assert_eq!(default.items, desc.items);

    let ids = desc.ids();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let mut reversed = asc.ids();
    assert!(
        reversed.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {reversed:?}"
    );
    reversed.reverse();
    assert_eq!(reversed, ids);

    assert_eq!(
        asc.types(),
        [
            "SIGNUP",
            "TASK_CREATED",
            "TASK_CREATED",
            "TASK_CREATED",
            "TASK_CREATED"
        ]
    );
    assert_eq!(desc.types().last(), Some(&"SIGNUP"));
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = asc
        .items
        .iter()
        .map(|n| chrono::DateTime::parse_from_rfc3339(n["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for page in [&default, &desc, &asc] {
        assert_eq!((page.total, page.unread), (5, 5));
    }
}

async fn list_paginates_and_keeps_the_full_total(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 5).await;
    let everything = list(&app, &ada, "?limit=100").await;
    assert_eq!(everything.items.len(), 6);
    let ids = everything.ids();

    for (offset, expected) in [
        (0, &ids[0..2]),
        (2, &ids[2..4]),
        (4, &ids[4..6]),
        (5, &ids[5..6]),
        (6, &[][..]),
    ] {
        let page = list(&app, &ada, &format!("?limit=2&offset={offset}")).await;
        assert_eq!(page.ids(), expected, "offset {offset}");
        assert_eq!((page.total, page.unread), (6, 6), "offset {offset}");
    }
    let far = list(&app, &ada, "?offset=1000000").await;
    assert!(far.items.is_empty());
    assert_eq!(far.total, 6);

    // Offset without limit uses the default limit; ascending pages are the reverse order.
    assert_eq!(list(&app, &ada, "?offset=3").await.ids(), &ids[3..]);
    let mut ascending = ids.clone();
    ascending.reverse();
    let page = list(&app, &ada, "?sort=asc&limit=3&offset=1").await;
    assert_eq!(page.ids(), &ascending[1..4]);
    assert_eq!(page.total, 6);
    assert_eq!(list(&app, &ada, "?limit=1").await.ids(), &ids[..1]);
}

async fn unread_only_filters_and_counts_only_unread(app: TestApp) {
    let ada = app.signup("Ada").await;
    create_tasks(&app, &ada, 3).await;
    let ids = list(&app, &ada, "?sort=asc").await.ids();
    assert_eq!(ids.len(), 4);
    for id in [ids[0], ids[2]] {
        expect_json(set_read(&app, &ada, id, true).await, StatusCode::OK).await;
    }

    let unread = list(&app, &ada, "?unread_only=true").await;
    assert_eq!(unread.ids(), vec![ids[3], ids[1]]);
    assert!(unread.items.iter().all(|n| n["is_read"] == false));
    assert_eq!((unread.total, unread.unread), (2, 2));

    for query in ["", "?unread_only=false"] {
        let page = list(&app, &ada, query).await;
        assert_eq!(page.items.len(), 4, "{query}");
        assert_eq!((page.total, page.unread), (4, 2), "{query}");
    }

    let first = list(&app, &ada, "?unread_only=true&limit=1").await;
    assert_eq!(first.ids(), vec![ids[3]]);
    assert_eq!((first.total, first.unread), (2, 2));
    let second = list(&app, &ada, "?unread_only=1&limit=1&offset=1&sort=desc").await;
    assert_eq!(second.ids(), vec![ids[1]]);
    let oldest = list(&app, &ada, "?unread_only=true&sort=asc").await;
    assert_eq!(oldest.ids(), vec![ids[1], ids[3]]);

    mark_all_read(&app, &ada).await;
    let none = list(&app, &ada, "?unread_only=true").await;
    assert!(none.items.is_empty());
    assert_eq!((none.total, none.unread), (0, 0));
    assert_eq!(list(&app, &ada, "").await.total, 4);
}
