//! Several server processes on one PostgreSQL database, with each bus, and the faults the
//! stream must survive: an instance killed with SIGKILL, Redis stopped mid-stream, the
//! LISTEN connection terminated. Every test has its own database, and every test on the
//! Redis bus its own Redis server, so they run side by side (two at a time, see [`turn`]).

/// Runs a scenario on the PostgreSQL bus and on the Redis bus (a private Redis server).
macro_rules! on_buses {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn postgres() {
                    let _turn = crate::turn().await;
                    super::$name(testkit::process::Bus::Postgres).await
                }
                #[tokio::test]
                async fn redis() {
                    let _turn = crate::turn().await;
                    let redis = testkit::RedisServer::start().await;
                    super::$name(testkit::process::Bus::Redis(&redis)).await
                }
            }
        )+
    };
}

mod delivery;
mod projects;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::api::{auth, expect_json, ApiClient, TestUser};
use testkit::process::{Bus, ServerBinary, BUS_ONLY, REMEMBER_TOKENS};
use testkit::ws::{assert_consecutive, WsClient};
use testkit::{PgDatabase, RedisServer};

/// The server binary cargo builds for these tests.
enum Taskstream {}

impl ServerBinary for Taskstream {
    const PATH: &'static str = env!("CARGO_BIN_EXE_taskstream");
}

/// A taskstream process.
type Instance = testkit::process::Instance<Taskstream>;

/// At most this many cluster tests run at once, whatever `RUST_TEST_THREADS` says: each
/// starts server processes with connection pools of their own, and PostgreSQL's
/// `max_connections` (100 by default) is shared by them all.
static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A test's turn, held until it ends.
async fn turn() -> tokio::sync::SemaphorePermit<'static> {
    TURNS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}

/// A count read with `sql`.
async fn count(db: &PgDatabase, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

/// Waits (up to a minute) until `sql` counts `expected`.
async fn wait_for_count(db: &PgDatabase, sql: &str, expected: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(db, sql).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{sql}` is {n}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of `GET /auth/me` with the user's token.
async fn me(base: &str, user: &TestUser) -> StatusCode {
    auth::me(&ApiClient::new(base), user).await.status()
}

async fn signup(base: &str, who: &str) -> TestUser {
    ApiClient::new(base).signup(who).await
}

async fn create_task(base: &str, user: &TestUser, title: &str) {
    ApiClient::new(base)
        .create_task(user, json!({ "title": title }))
        .await;
}

/// Reads events until `total` have been seen or the socket drops; returns the events.
async fn read_until_gone(ws: &mut WsClient, out: &mut Vec<Value>, total: usize) {
    while out.len() < total {
        match ws.next_or_gone().await {
            Some(message) if message["type"] == "event" => out.push(message),
            Some(_) => {}
            None => return,
        }
    }
}

// ---- delivery across instances -------------------------------------------------------

async fn events_written_on_b_reach_a_in_order(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::bus_only(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, ready) = WsClient::ready(&a.ws(None), &user.token).await;
    assert_eq!(ready["last_seq"], 1);
    for i in 0..20 {
        create_task(&b.base, &user, &format!("T{i}")).await;
    }
    let events = ws.events(40).await;
    assert_consecutive(&events, 2);
    assert!(
        ws.roundtrip().await.is_empty(),
        "nothing more, nothing twice"
    );
}

async fn a_client_that_missed_events_gets_exactly_those_elsewhere(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&a.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    for i in 0..5 {
        create_task(&a.base, &user, &format!("Before {i}")).await;
    }
    let seen = ws.events(10).await;
    let last = assert_consecutive(&seen, 2);
    ws.close().await;
    for i in 0..5 {
        create_task(&a.base, &user, &format!("While away {i}")).await;
    }
    let mut ws = WsClient::connect(&b.ws(Some(last)), Some(&user.token)).await;
    assert_eq!(ws.next().await["last_seq"], last + 10);
    let missed = ws.events(10).await;
    assert_consecutive(&missed, last + 1);
    assert_eq!(missed[0]["data"]["title"], "While away 0");
    assert!(ws.roundtrip().await.is_empty());
    // And live from there, whichever instance writes.
    create_task(&a.base, &user, "Live").await;
    assert_consecutive(&ws.events(2).await, last + 11);
}

/// A's sockets close, and A stops accepting the token even though it remembers having
/// checked it an hour long: the bus message that closed the socket made it forget.
async fn logout_on_b_closes_the_socket_on_a(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start_with(&db.url, bus, &[BUS_ONLY, REMEMBER_TOKENS]).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&a.base, "Ada").await;
    assert_eq!(me(&a.base, &user).await, StatusCode::OK);
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", b.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, errors, code) = ws.drain_until_closed().await;
    assert_eq!(code, 4003);
    assert_eq!(errors, vec!["TOKEN_REVOKED"]);
    assert_eq!(me(&a.base, &user).await, StatusCode::UNAUTHORIZED);
}

/// Ending every session of a user on B (a second sign-in of hers there) closes her socket
/// on A with 4003, and A refuses the ended tokens at once, though A remembers good tokens.
async fn logout_all_on_b_closes_the_socket_on_a(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start_with(&db.url, bus, &[BUS_ONLY, REMEMBER_TOKENS]).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&a.base, "Ada").await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/signin", b.base))
        .json(&json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    let other = TestUser {
        token: body["token"].as_str().unwrap().to_string(),
        ..user.clone()
    };
    assert_eq!(me(&a.base, &user).await, StatusCode::OK);
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout-all", b.base))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, errors, code) = ws.drain_until_closed().await;
    assert_eq!(code, 4003);
    assert_eq!(errors, vec!["TOKEN_REVOKED"]);
    assert_eq!(me(&a.base, &user).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&a.base, &other).await, StatusCode::UNAUTHORIZED);
}

/// A logout whose bus message Redis never delivered (it was down): when A's subscription
/// comes back, A forgets every token it remembered, so the revoked one stops working
/// without waiting for its hour-long memory to expire.
async fn logout_lost_by_the_bus_is_honoured_after_resubscription() {
    let db = PgDatabase::create().await;
    let mut redis = RedisServer::start().await;
    let a = Instance::start_with(&db.url, Bus::Redis(&redis), &[BUS_ONLY, REMEMBER_TOKENS]).await;
    let b = Instance::start(&db.url, Bus::Redis(&redis)).await;
    let user = signup(&b.base, "Ada").await;
    assert_eq!(me(&a.base, &user).await, StatusCode::OK);
    {
        redis.stop().await;
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/logout", b.base))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(me(&b.base, &user).await, StatusCode::UNAUTHORIZED);
        redis.restart().await;
    }
    // A resubscribes with backoff (at most 5 s between attempts).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while me(&a.base, &user).await == StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A still accepts the revoked token a minute after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(me(&a.base, &user).await, StatusCode::UNAUTHORIZED);
}

/// A write whose events do not fit a NOTIFY payload (8000 bytes) is announced by
/// reference; the other instance reads the events from the table.
async fn big_writes_are_announced_by_reference(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::bus_only(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&b.base, "Ada").await;
    for i in 0..99 {
        create_task(&b.base, &user, &format!("T{i}")).await;
    }
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/api/v1/notifications?limit=100", b.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = expect_json(response, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 100);
    let (mut ws, ready) = WsClient::ready(&a.ws(None), &user.token).await;
    let last = ready["last_seq"].as_i64().unwrap();
    let response = client
        .delete(format!(
            "{}/api/v1/notifications?notification_ids={}",
            b.base,
            ids.join(",")
        ))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, StatusCode::OK).await["count"], 100);
    let events = ws.events(100).await;
    assert_consecutive(&events, last + 1);
    assert!(events.iter().all(|e| e["event"] == "notification.deleted"));
}

// ---- faults ----------------------------------------------------------------------------

/// Kills the instance the client is on while events flow; the client reconnects to the
/// other one with `since` and ends up with every event exactly once.
async fn killing_an_instance_loses_nothing(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let mut a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(Some(1)), &user.token).await;
    let writes = 40;
    let total = writes * 2;
    let writer = {
        let base = b.base.clone();
        let user = user.clone();
        tokio::spawn(async move {
            for i in 0..writes {
                create_task(&base, &user, &format!("T{i}")).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut events = Vec::new();
    read_until_gone(&mut ws, &mut events, 10).await;
    a.kill9().await;
    read_until_gone(&mut ws, &mut events, total).await;
    let last = if events.is_empty() {
        1
    } else {
        assert_consecutive(&events, 2)
    };
    let mut ws = WsClient::connect(&b.ws(Some(last)), Some(&user.token)).await;
    assert_eq!(ws.next().await["type"], "ready");
    writer.await.unwrap();
    let rest = ws.events(total - events.len()).await;
    events.extend(rest);
    assert_consecutive(&events, 2);
    assert!(ws.roundtrip().await.is_empty());
}

/// Stops Redis for a few seconds in the middle of a stream (redis bus).
async fn redis_outage_loses_nothing() {
    let db = PgDatabase::create().await;
    let mut redis = RedisServer::start().await;
    let a = Instance::start(&db.url, Bus::Redis(&redis)).await;
    let b = Instance::start(&db.url, Bus::Redis(&redis)).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    for i in 0..5 {
        create_task(&b.base, &user, &format!("Before {i}")).await;
    }
    let mut events = ws.events(10).await;
    {
        redis.stop().await;
        for i in 0..5 {
            create_task(&b.base, &user, &format!("During {i}")).await;
        }
        // Delivered from the table by the catch-up, with no bus at all, and counted.
        events.extend(ws.events(10).await);
        assert!(counter(&a.metrics, "taskstream_catch_up_wakeups_total").await >= 1);
        redis.restart().await;
    }
    for i in 0..5 {
        create_task(&b.base, &user, &format!("After {i}")).await;
    }
    events.extend(ws.events(10).await);
    assert_consecutive(&events, 2);
    assert!(ws.roundtrip().await.is_empty());
}

/// Stops Redis while an instance without the periodic catch-up has clients: what was
/// published meanwhile is lost by Redis, and comes back through the resync that follows
/// the resubscription.
async fn redis_outage_then_resubscription_loses_nothing() {
    let db = PgDatabase::create().await;
    let mut redis = RedisServer::start().await;
    let a = Instance::bus_only(&db.url, Bus::Redis(&redis)).await;
    let b = Instance::start(&db.url, Bus::Redis(&redis)).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    create_task(&b.base, &user, "Before").await;
    let mut events = ws.events(2).await;
    {
        redis.stop().await;
        for i in 0..5 {
            create_task(&b.base, &user, &format!("During {i}")).await;
        }
        redis.restart().await;
    }
    events.extend(ws.events(10).await);
    create_task(&b.base, &user, "After").await;
    events.extend(ws.events(2).await);
    assert_consecutive(&events, 2);
    assert!(ws.roundtrip().await.is_empty());
}

/// Terminates the LISTEN connections in the middle of a stream (postgres bus).
async fn dropped_listen_connection_loses_nothing() {
    let db = PgDatabase::create().await;
    // No periodic catch-up on A: what it misses while its LISTEN connection is down comes
    // back only through the resync that follows the reconnection.
    let a = Instance::bus_only(&db.url, Bus::Postgres).await;
    let b = Instance::start(&db.url, Bus::Postgres).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    let mut events = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            create_task(&b.base, &user, &format!("R{round} {i}")).await;
        }
        let terminated = terminate_listeners(&db).await;
        assert!(terminated >= 1, "each instance holds a LISTEN connection");
        events.extend(ws.events(10).await);
    }
    for i in 0..5 {
        create_task(&b.base, &user, &format!("After {i}")).await;
    }
    events.extend(ws.events(10).await);
    assert_consecutive(&events, 2);
    assert!(ws.roundtrip().await.is_empty());
}

/// The memory bus has one instance: killed and restarted on the same database file, it
/// still gives a reconnecting client every event it missed.
async fn memory_bus_restart_loses_nothing() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut a = Instance::start_at("", Bus::Memory, data.path()).await;
    let user = signup(&a.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    for i in 0..5 {
        create_task(&a.base, &user, &format!("Before {i}")).await;
    }
    let mut events = ws.events(10).await;
    a.kill9().await;
    // Same data folder (database file), new process.
    let a = Instance::start_at("", Bus::Memory, data.path()).await;
    for i in 0..5 {
        create_task(&a.base, &user, &format!("After {i}")).await;
    }
    let mut ws = WsClient::connect(&a.ws(Some(11)), Some(&user.token)).await;
    assert_eq!(ws.next().await["last_seq"], 21);
    events.extend(ws.events(10).await);
    assert_consecutive(&events, 2);
}

async fn terminate_listeners(db: &PgDatabase) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&testkit::postgres_admin_url())
        .await
        .unwrap();
    // An instance whose LISTEN connection was terminated a moment ago may not have
    // reconnected yet: wait for one to be there (0 after 30 s fails the caller).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let terminated: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&db.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if terminated > 0 || tokio::time::Instant::now() >= deadline {
            return terminated;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- the matrix ------------------------------------------------------------------------

on_buses!(
    events_written_on_b_reach_a_in_order,
    a_client_that_missed_events_gets_exactly_those_elsewhere,
    logout_on_b_closes_the_socket_on_a,
    logout_all_on_b_closes_the_socket_on_a,
    killing_an_instance_loses_nothing,
    big_writes_are_announced_by_reference,
);

#[tokio::test]
async fn redis_outage() {
    let _turn = crate::turn().await;
    redis_outage_loses_nothing().await;
}

#[tokio::test]
async fn redis_outage_bus_only() {
    let _turn = crate::turn().await;
    redis_outage_then_resubscription_loses_nothing().await;
}

#[tokio::test]
async fn redis_outage_then_logout() {
    let _turn = crate::turn().await;
    logout_lost_by_the_bus_is_honoured_after_resubscription().await;
}

#[tokio::test]
async fn listen_connection_terminated() {
    let _turn = crate::turn().await;
    dropped_listen_connection_loses_nothing().await;
}

#[tokio::test]
async fn memory_bus_single_instance_restart() {
    let _turn = crate::turn().await;
    memory_bus_restart_loses_nothing().await;
}

// ---- rate limits shared through Redis ----------------------------------------------------

/// Two instances on the PostgreSQL bus with `REDIS_URL` set share their counters: a budget
/// spent on A is spent on B too.
#[tokio::test]
async fn rate_limits_are_shared_across_instances() {
    let _turn = crate::turn().await;
    let db = PgDatabase::create().await;
    let redis = RedisServer::start().await;
    let env = [("RATE_LIMITS", "signup=2/1h"), ("REDIS_URL", redis.url())];
    let a = Instance::start_with(&db.url, Bus::Postgres, &env).await;
    let b = Instance::start_with(&db.url, Bus::Postgres, &env).await;
    let attempt = |base: &str, n: usize| {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/auth/signup"))
            .json(&json!({"name": format!("User {}", char::from(b'a' + n as u8)), "email": format!("u{n}@example.com"), "password": testkit::api::PASSWORD}))
            .send()
    };
    expect_json(attempt(&a.base, 1).await.unwrap(), StatusCode::CREATED).await;
    expect_json(attempt(&b.base, 2).await.unwrap(), StatusCode::CREATED).await;
    let third = attempt(&a.base, 3).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    let fourth = attempt(&b.base, 4).await.unwrap();
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
}

// ---- forged bus messages ------------------------------------------------------------------

/// Someone who can PUBLISH to Redis or `pg_notify` on the database, but is not an instance,
/// forges the user's next event. A drops it (it is not signed with the deployment's key) and
/// the real next event is the one the socket gets as seq 2.
async fn forged_bus_messages_never_reach_a_socket(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::bus_only(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, ready) = WsClient::ready(&a.ws(None), &user.token).await;
    assert_eq!(ready["last_seq"], 1);

    let forged = json!({
        "o": uuid::Uuid::new_v4(),
        "u": user.id,
        "s": 2,
        "e": [{
            "type": "event", "seq": 2, "event": "notification.created",
            "at": "2026-01-01T00:00:00Z",
            "data": {"id": 999, "type": "SIGNUP", "message": "forged", "is_read": false}
        }]
    })
    .to_string();
    let wrongly_signed = format!("{}.{forged}", "0".repeat(64));
    for payload in [&forged, &wrongly_signed] {
        match bus {
            Bus::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query("SELECT pg_notify('taskstream_events', $1)")
                    .bind(payload)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Bus::Redis(redis) => {
                let client = redis::Client::open(redis.url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let _: i64 = redis::cmd("PUBLISH")
                    .arg("taskstream:events")
                    .arg(payload)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            Bus::Memory => unreachable!("a memory bus has nothing to forge"),
        }
    }
    // A has seen both forgeries and dropped them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counter(&a.metrics, "taskstream_bus_rejected_total").await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A did not count the forged messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    create_task(&b.base, &user, "real").await;
    let events = ws.events(2).await;
    assert_eq!(events[0]["seq"], 2);
    assert_eq!(events[0]["event"], "task.created");
    assert_eq!(events[0]["data"]["title"], "real");
    assert_consecutive(&events, 2);
}

/// The counter `name` of an instance, summed over its labels.
async fn counter(metrics: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

on_buses!(forged_bus_messages_never_reach_a_socket);
