//! Unique values two writes race for: the losing write is told which value is taken.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::json;
use taskstream::domain::Email;
use taskstream::store::{self, NewUser, PoolSizes, Store, USERS_EMAIL_KEY, USERS_NAME_KEY};
use uuid::Uuid;

use crate::backend_tests;
use testkit::api::{expect_error, PASSWORD};
use testkit::{Backend, TestApp};

backend_tests!(
    store_names_the_unique_constraint_that_fired,
    signup_racing_for_a_name_is_told_the_name_is_taken,
);

/// The test's own connection to the server's database.
async fn open_store(app: &TestApp) -> std::sync::Arc<dyn Store> {
    store::connect(&app.config.database_url(), PoolSizes::SINGLE)
        .await
        .unwrap()
}

fn new_user<'a>(name: &'a str, email: &'a Email) -> NewUser<'a> {
    NewUser {
        id: Uuid::new_v4(),
        name,
        email,
        password_hash: "not a hash",
        now: Utc::now(),
    }
}

async fn store_names_the_unique_constraint_that_fired(app: TestApp) {
    app.signup_as("Ada Lovelace", "ada@example.com").await;
    let store = open_store(&app).await;

    let other_email = Email::parse("other@example.com").unwrap();
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .insert_user(new_user("ADA LOVELACE", &other_email))
        .await
        .unwrap_err();
    assert!(err.is_unique(USERS_NAME_KEY), "{err}");
    drop(tx);

    let same_email = Email::parse("ada@example.com").unwrap();
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .insert_user(new_user("Someone Else", &same_email))
        .await
        .unwrap_err();
    assert!(err.is_unique(USERS_EMAIL_KEY), "{err}");
}

/// The sign-up's checks run while another write holds the name uncommitted, so only the
/// unique index stops it (on PostgreSQL; SQLite's single writer makes the sign-up wait and
/// its checks see the name).
async fn signup_racing_for_a_name_is_told_the_name_is_taken(app: TestApp) {
    let store = open_store(&app).await;
    let email = Email::parse("first@example.com").unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(new_user("Ada Lovelace", &email))
        .await
        .unwrap();

    let signup = tokio::spawn(
        app.api(Method::POST, "/auth/signup", None)
            .json(&json!({
                "name": "ada lovelace",
                "email": "second@example.com",
                "password": PASSWORD,
            }))
            .send(),
    );
    if app.backend == Backend::Postgres {
        wait_for_a_lock_waiter(&app.database_url).await;
    }
    tx.commit().await.unwrap();

    let response = signup.await.unwrap().unwrap();
    let body = expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    assert_eq!(body["error"]["message"], "This name is already taken");
}

/// Waits until a session of the database waits for a lock (the sign-up's insert, for the
/// uncommitted row with the same name).
async fn wait_for_a_lock_waiter(database_url: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sign-up never waited for the row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
