//! Password hashing is bounded: sign-ins beyond the hashing slots and their queue are
//! refused at once (503) instead of queueing CPU and memory.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::{expect_error, expect_json};
use testkit::{Backend, TestApp};

use crate::per_backend;

per_backend!(sign_ins_beyond_the_hashing_slots_get_503_at_once);

async fn sign_ins_beyond_the_hashing_slots_get_503_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.password_hash_concurrency = Some(1);
        c.auth.password_hash_queue = Some(0);
        // Expensive enough that the concurrent sign-ins overlap.
        c.auth.password.memory_kib = 32 * 1024;
        c.auth.password.iterations = 3;
    })
    .await;
    let user = app.signup("Ada").await;

    let mut sign_ins = tokio::task::JoinSet::new();
    for _ in 0..8 {
        sign_ins.spawn(
            app.api(Method::POST, "/auth/signin", None)
                .json(&json!({"email": user.email, "password": user.password}))
                .send(),
        );
    }
    let (mut signed_in, mut refused) = (0, 0);
    while let Some(response) = sign_ins.join_next().await {
        let response = response.unwrap().unwrap();
        match response.status() {
            StatusCode::OK => signed_in += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    response.headers().get("retry-after").unwrap(),
                    "1",
                    "a refused sign-in says when to retry"
                );
                expect_error(
                    response,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_UNAVAILABLE",
                )
                .await;
                refused += 1;
            }
            other => panic!("a sign-in answered {other}: only 200 or 503 are expected"),
        }
    }
    assert!(signed_in >= 1, "the admitted sign-in went through");
    assert!(
        refused >= 1,
        "the sign-ins beyond the one slot were refused"
    );

    // The slot is free again once the work is done.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}
