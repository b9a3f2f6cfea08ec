//! Rate limits: 429 `RATE_LIMITED` with `Retry-After` and `RateLimit-*`, per address, per
//! account and per e-mail; `X-Forwarded-For` believed only from trusted proxies; Redis
//! shared counters that fail open to per-instance ones. (Every other suite runs with
//! `RATE_LIMITS=off`.)

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use taskstream::config::Secret;
use testkit::api::{expect_error, expect_json, send, PASSWORD};
use testkit::ws::{ws_url, Connect, WsClient};
use testkit::{Backend, RedisServer, TestApp};

use crate::per_backend;

per_backend!(
    signup_is_limited_per_address,
    failed_signins_lock_the_address_even_for_the_right_password,
    successful_signins_spend_nothing,
    signin_attempts_are_limited_per_address,
    profile_updates_and_photo_uploads_are_limited_per_user,
    each_user_has_a_read_budget,
    requests_without_a_token_are_limited_per_address,
    websocket_upgrades_are_limited_per_address,
    forwarded_for_counts_only_from_a_trusted_proxy,
    with_limits_off_there_are_no_headers,
    limits_keep_working_when_redis_goes_away,
);

async fn spawn(backend: Backend, limits: &str) -> TestApp {
    let limits = limits.parse().expect("RATE_LIMITS");
    TestApp::spawn_with(backend, |c| c.limits.rate_limits = limits).await
}

fn header(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// Asserts a 429 in the envelope with its headers; returns Retry-After.
async fn expect_limited(response: Response, limit: u64) -> u64 {
    let headers = response.headers().clone();
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    assert_eq!(header(&headers, "ratelimit-limit"), Some(limit));
    assert_eq!(header(&headers, "ratelimit-remaining"), Some(0));
    assert!(header(&headers, "ratelimit-reset").is_some());
    let retry_after = header(&headers, "retry-after").expect("Retry-After in seconds");
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    retry_after
}

async fn signup(app: &TestApp, n: usize) -> Response {
    app.api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": format!("User {}", char::from(b'a' + n as u8)), "email": format!("user{n}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .expect("signup")
}

async fn signin(app: &TestApp, email: &str, password: &str) -> Response {
    app.api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("signin")
}

async fn signup_is_limited_per_address(backend: Backend) {
    let app = spawn(backend, "signup=3/1h").await;
    for (n, remaining) in [(1, 2), (2, 1), (3, 0)] {
        let response = signup(&app, n).await;
        assert_eq!(header(response.headers(), "ratelimit-limit"), Some(3));
        assert_eq!(
            header(response.headers(), "ratelimit-remaining"),
            Some(remaining)
        );
        expect_json(response, StatusCode::CREATED).await;
    }
    let retry_after = expect_limited(signup(&app, 4).await, 3).await;
    // One sign-up comes back every 20 minutes.
    assert!(retry_after <= 20 * 60, "Retry-After: {retry_after}");
}

async fn failed_signins_lock_the_address_even_for_the_right_password(backend: Backend) {
    let app = spawn(backend, "signin=3/15m").await;
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    for _ in 0..3 {
        let wrong = signin(&app, &ada.email, "not the password").await;
        expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    }
    expect_limited(signin(&app, &ada.email, PASSWORD).await, 3).await;
    // The address, not the client: another account signs in.
    expect_json(signin(&app, &bob.email, PASSWORD).await, StatusCode::OK).await;
    // The e-mail is the same whatever its case.
    expect_limited(signin(&app, &ada.email.to_uppercase(), PASSWORD).await, 3).await;
}

async fn successful_signins_spend_nothing(backend: Backend) {
    let app = spawn(backend, "signin=2/15m").await;
    let ada = app.signup("Ada").await;
    for _ in 0..5 {
        expect_json(signin(&app, &ada.email, PASSWORD).await, StatusCode::OK).await;
    }
}

async fn signin_attempts_are_limited_per_address(backend: Backend) {
    let app = spawn(backend, "signin_ip=3/15m").await;
    for n in 0..3 {
        let response = signin(&app, &format!("nobody{n}@example.com"), PASSWORD).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    }
    expect_limited(signin(&app, "nobody9@example.com", PASSWORD).await, 3).await;
}

async fn profile_updates_and_photo_uploads_are_limited_per_user(backend: Backend) {
    let app = spawn(backend, "profile=2/1h,photo=1/1h").await;
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    let update = |name: &'static str| json!({ "first_name": name });
    for bio in ["one", "two"] {
        let response = send(&app, Method::PUT, "/profile", &ada, Some(update(bio))).await;
        expect_json(response, StatusCode::OK).await;
    }
    let third = send(&app, Method::PUT, "/profile", &ada, Some(update("three"))).await;
    expect_limited(third, 2).await;
    let other = send(&app, Method::PUT, "/profile", &bob, Some(update("bob"))).await;
    expect_json(other, StatusCode::OK).await;

    // An upload spends the budget before its body is looked at.
    let not_an_image = testkit::api::profile::upload(
        &app,
        Some(&ada.token),
        b"not an image".to_vec(),
        "x.png",
        "image/png",
    )
    .await;
    assert_ne!(not_an_image.status(), StatusCode::TOO_MANY_REQUESTS);
    let second = testkit::api::profile::upload(
        &app,
        Some(&ada.token),
        b"still not".to_vec(),
        "x.png",
        "image/png",
    )
    .await;
    expect_limited(second, 1).await;
}

async fn each_user_has_a_read_budget(backend: Backend) {
    let app = spawn(backend, "user_read=3/1m,user_write=1000/1m").await;
    let ada = app.signup("Ada").await;
    let bob = app.signup("Bob").await;
    for remaining in [2, 1, 0] {
        let response = send(&app, Method::GET, "/tasks", &ada, None).await;
        assert_eq!(
            header(response.headers(), "ratelimit-remaining"),
            Some(remaining)
        );
        expect_json(response, StatusCode::OK).await;
    }
    expect_limited(send(&app, Method::GET, "/tasks", &ada, None).await, 3).await;
    // Writes have their own budget, and other users theirs.
    let created = send(
        &app,
        Method::POST,
        "/tasks",
        &ada,
        Some(json!({"title": "still allowed"})),
    )
    .await;
    expect_json(created, StatusCode::CREATED).await;
    expect_json(
        send(&app, Method::GET, "/tasks", &bob, None).await,
        StatusCode::OK,
    )
    .await;
}

async fn requests_without_a_token_are_limited_per_address(backend: Backend) {
    let app = spawn(backend, "anonymous=2/1m").await;
    for _ in 0..2 {
        let response = app
            .api(Method::GET, "/tasks", None)
            .send()
            .await
            .expect("get");
        expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    }
    let response = app
        .api(Method::GET, "/tasks", None)
        .send()
        .await
        .expect("get");
    expect_limited(response, 2).await;
}

async fn websocket_upgrades_are_limited_per_address(backend: Backend) {
    let app = spawn(backend, "ws_upgrade=2/1m").await;
    let ada = app.signup("Ada").await;
    let url = ws_url(&app.address, None);
    for _ in 0..2 {
        let (socket, _) = WsClient::ready(&url, &ada.token).await;
        socket.close().await;
    }
    match WsClient::try_connect(&url, Some(&ada.token)).await {
        Connect::Refused(status, body) => {
            assert_eq!(status, 429);
            assert_eq!(body["error"]["code"], "RATE_LIMITED");
        }
        Connect::Open(_) => panic!("a third upgrade within the minute must be refused"),
    }
}

async fn forwarded_for_counts_only_from_a_trusted_proxy(backend: Backend) {
    let limits = "signup=1/1h".parse().expect("RATE_LIMITS");
    let app = TestApp::spawn_with(backend, |c| {
        c.limits.rate_limits = limits;
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let from = |ip: &str, n: usize| {
        app.api(Method::POST, "/auth/signup", None)
            .header("x-forwarded-for", format!("{ip}, 127.0.0.1"))
            .json(&json!({"name": format!("User {}", char::from(b'a' + n as u8)), "email": format!("u{n}@example.com"), "password": PASSWORD}))
            .send()
    };
    expect_json(
        from("203.0.113.1", 1).await.expect("signup"),
        StatusCode::CREATED,
    )
    .await;
    expect_limited(from("203.0.113.1", 2).await.expect("signup"), 1).await;
    expect_json(
        from("203.0.113.2", 3).await.expect("signup"),
        StatusCode::CREATED,
    )
    .await;

    // Not behind a trusted proxy: the header is the client's say-so and counts for nothing.
    let direct = spawn(backend, "signup=1/1h").await;
    let spoofed = |ip: &'static str, n: usize| {
        direct
            .api(Method::POST, "/auth/signup", None)
            .header("x-forwarded-for", ip)
            .json(&json!({"name": format!("User {}", char::from(b'a' + n as u8)), "email": format!("u{n}@example.com"), "password": PASSWORD}))
            .send()
    };
    expect_json(
        spoofed("203.0.113.1", 1).await.expect("signup"),
        StatusCode::CREATED,
    )
    .await;
    expect_limited(spoofed("203.0.113.2", 2).await.expect("signup"), 1).await;
}

async fn with_limits_off_there_are_no_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for n in 0..5 {
        let response = signup(&app, n).await;
        assert!(!response.headers().contains_key("ratelimit-limit"));
        expect_json(response, StatusCode::CREATED).await;
    }
}

/// Counters in Redis; when Redis goes away the API keeps answering, with per-instance
/// counters, and the limits still hold.
async fn limits_keep_working_when_redis_goes_away(backend: Backend) {
    let mut redis = RedisServer::start().await;
    let limits = "signup=2/1h".parse().expect("RATE_LIMITS");
    let url = redis.url().to_string();
    let app = TestApp::spawn_with(backend, |c| {
        c.limits.rate_limits = limits;
        c.event_bus.redis_url = Some(Secret::new(url));
    })
    .await;
    expect_json(signup(&app, 1).await, StatusCode::CREATED).await;
    let key_count = redis_keys(redis.url()).await;
    assert!(key_count >= 1, "the counter lives in Redis");

    redis.stop().await;
    // Per instance now: a fresh budget of 2, then refused; never a server error.
    expect_json(signup(&app, 2).await, StatusCode::CREATED).await;
    expect_json(signup(&app, 3).await, StatusCode::CREATED).await;
    expect_limited(signup(&app, 4).await, 2).await;
}

async fn redis_keys(url: &str) -> usize {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("taskstream:rl:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.len()
}
