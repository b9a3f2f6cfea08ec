//! Several server processes on one PostgreSQL database, with each bus, and the faults the
//! stream must survive: an instance killed with SIGKILL, Redis stopped mid-stream, the
//! LISTEN connection terminated. Tests here run one at a time (they stop shared services).

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../common/ws.rs"]
mod ws;

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use helpers::{expect_json, PgDatabase, PASSWORD};
use ws::{assert_consecutive, ws_url, WsClient};

/// One test at a time: some stop Redis, and several server processes per test are plenty
/// for two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "cluster-test-secret-0123456789-abcdefghijklmnop";

/// A taskstream process.
struct Instance {
    child: Child,
    base: String,
    _data: Option<tempfile::TempDir>,
}

impl Instance {
    /// An instance with a data folder of its own.
    async fn start(database_url: &str, bus: &str) -> Self {
        Self::start_with(database_url, bus, &[]).await
    }

    async fn start_with(database_url: &str, bus: &str, env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut instance = Self::launch(database_url, bus, data.path(), env).await;
        instance._data = Some(data);
        instance
    }

    /// An instance without the periodic catch-up: whatever reaches it comes over the bus.
    async fn bus_only(database_url: &str, bus: &str) -> Self {
        Self::start_with(database_url, bus, &[BUS_ONLY]).await
    }

    /// An instance on `data_dir` (an empty `database_url` means the embedded database in
    /// that folder).
    async fn start_at(database_url: &str, bus: &str, data_dir: &std::path::Path) -> Self {
        Self::launch(database_url, bus, data_dir, &[]).await
    }

    async fn launch(
        database_url: &str,
        bus: &str,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskstream"));
        command.envs(env.iter().copied());
        command
            .env("BIND", "127.0.0.1:0")
            .env("METRICS_BIND", "127.0.0.1:0")
            .env("DATA_DIR", data_dir)
            .env("JWT_SECRET", SECRET)
            .env("EVENT_BUS", bus)
            .env("ARGON2_MEMORY_KIB", "256")
            .env("ARGON2_ITERATIONS", "1")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn,tower_http=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if database_url.is_empty() {
            command.env_remove("DATABASE_URL");
        } else {
            command.env("DATABASE_URL", database_url);
        }
        let mut child = command.spawn().expect("server process starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read log") {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == "taskstream listening" {
                    return entry["fields"]["address"].as_str().map(str::to_string);
                }
            }
            None
        })
        .await
        .expect("server starts within 30 s")
        .expect("server logged its address");
        // Keep draining the log so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base: format!("http://{address}"),
            _data: None,
        }
    }

    /// SIGKILL: no shutdown, no close frames, no chance to publish anything.
    async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }

    fn ws(&self, since: Option<i64>) -> String {
        ws_url(&self.base, since)
    }
}

/// No periodic catch-up: whatever reaches the instance comes over the bus.
const BUS_ONLY: (&str, &str) = ("EVENT_CATCH_UP_INTERVAL", "1h");
/// Tokens found unrevoked are trusted for an hour unless something says otherwise.
const REMEMBER_TOKENS: (&str, &str) = ("TOKEN_CHECK_CACHE", "1h");

struct User {
    token: String,
}

/// The status of `GET /auth/me` with the user's token.
async fn me(base: &str, user: &User) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn signup(base: &str, who: &str) -> User {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"name": format!("{who} Tester"), "email": format!("{}@example.com", who.to_lowercase()), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::CREATED).await;
    User {
        token: body["token"].as_str().unwrap().to_string(),
    }
}

async fn create_task(base: &str, user: &User, title: &str) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(&user.token)
        .json(&json!({ "title": title }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
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

async fn events_written_on_b_reach_a_in_order(bus: &str) {
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

async fn a_client_that_missed_events_gets_exactly_those_elsewhere(bus: &str) {
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
async fn logout_on_b_closes_the_socket_on_a(bus: &str) {
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

/// A logout whose bus message Redis never delivered (it was down): when A's subscription
/// comes back, A forgets every token it remembered, so the revoked one stops working
/// without waiting for its hour-long memory to expire.
async fn logout_lost_by_the_bus_is_honoured_after_resubscription() {
    let db = PgDatabase::create().await;
    let a = Instance::start_with(&db.url, "redis", &[BUS_ONLY, REMEMBER_TOKENS]).await;
    let b = Instance::start(&db.url, "redis").await;
    let user = signup(&b.base, "Ada").await;
    assert_eq!(me(&a.base, &user).await, StatusCode::OK);
    {
        let _outage = RedisOutage::begin();
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/logout", b.base))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(me(&b.base, &user).await, StatusCode::UNAUTHORIZED);
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
async fn big_writes_are_announced_by_reference(bus: &str) {
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
async fn killing_an_instance_loses_nothing(bus: &str) {
    let db = PgDatabase::create().await;
    let mut a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(Some(1)), &user.token).await;
    let writes = 40;
    let total = writes * 2;
    let writer = {
        let base = b.base.clone();
        let token = user.token.clone();
        tokio::spawn(async move {
            let user = User { token };
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
    let a = Instance::start(&db.url, "redis").await;
    let b = Instance::start(&db.url, "redis").await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    for i in 0..5 {
        create_task(&b.base, &user, &format!("Before {i}")).await;
    }
    let mut events = ws.events(10).await;
    {
        let _outage = RedisOutage::begin();
        for i in 0..5 {
            create_task(&b.base, &user, &format!("During {i}")).await;
        }
        // Delivered from the table by the catch-up, with no bus at all.
        events.extend(ws.events(10).await);
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
    let a = Instance::bus_only(&db.url, "redis").await;
    let b = Instance::start(&db.url, "redis").await;
    let user = signup(&b.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    create_task(&b.base, &user, "Before").await;
    let mut events = ws.events(2).await;
    {
        let _outage = RedisOutage::begin();
        for i in 0..5 {
            create_task(&b.base, &user, &format!("During {i}")).await;
        }
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
    let a = Instance::bus_only(&db.url, "postgres").await;
    let b = Instance::start(&db.url, "postgres").await;
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
    let mut a = Instance::start_at("", "memory", data.path()).await;
    let user = signup(&a.base, "Ada").await;
    let (mut ws, _) = WsClient::ready(&a.ws(None), &user.token).await;
    for i in 0..5 {
        create_task(&a.base, &user, &format!("Before {i}")).await;
    }
    let mut events = ws.events(10).await;
    a.kill9().await;
    // Same data folder (database file), new process.
    let a = Instance::start_at("", "memory", data.path()).await;
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
    let mut conn = sqlx::PgConnection::connect(&helpers::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Stops Redis; starts it again when dropped, whatever happened in between.
struct RedisOutage;

impl RedisOutage {
    fn begin() -> Self {
        let _ = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
            .status();
        Self
    }
}

impl Drop for RedisOutage {
    fn drop(&mut self) {
        start_redis();
    }
}

fn redis_up() -> bool {
    std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        .unwrap_or(false)
}

fn start_redis() {
    if redis_up() {
        return;
    }
    let _ = std::fs::create_dir_all("/var/lib/redis");
    let _ = std::fs::create_dir_all("/var/log/redis");
    let _ = std::process::Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ])
        .status();
    for _ in 0..50 {
        if redis_up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Redis did not come back");
}

// ---- the matrix ------------------------------------------------------------------------

macro_rules! on_buses {
    ($name:ident: $($bus:ident),+) => {
        mod $name {
            $(
                #[tokio::test]
                async fn $bus() {
                    let _serial = super::SERIAL.lock().await;
                    super::start_redis();
                    super::$name(stringify!($bus)).await
                }
            )+
        }
    };
}

on_buses!(events_written_on_b_reach_a_in_order: postgres, redis);
on_buses!(a_client_that_missed_events_gets_exactly_those_elsewhere: postgres, redis);
on_buses!(logout_on_b_closes_the_socket_on_a: postgres, redis);
on_buses!(killing_an_instance_loses_nothing: postgres, redis);
on_buses!(big_writes_are_announced_by_reference: postgres, redis);

/// Runs a scenario that stops Redis, alone, and checks that Redis is back afterwards.
async fn around_redis_outage(scenario: impl std::future::Future<Output = ()>) {
    let _serial = SERIAL.lock().await;
    start_redis();
    scenario.await;
    assert!(redis_up(), "Redis is running again");
}

#[tokio::test]
async fn redis_outage() {
    around_redis_outage(redis_outage_loses_nothing()).await;
}

#[tokio::test]
async fn redis_outage_bus_only() {
    around_redis_outage(redis_outage_then_resubscription_loses_nothing()).await;
}

#[tokio::test]
async fn redis_outage_then_logout() {
    around_redis_outage(logout_lost_by_the_bus_is_honoured_after_resubscription()).await;
}

#[tokio::test]
async fn listen_connection_terminated() {
    let _serial = SERIAL.lock().await;
    dropped_listen_connection_loses_nothing().await;
}

#[tokio::test]
async fn memory_bus_single_instance_restart() {
    let _serial = SERIAL.lock().await;
    memory_bus_restart_loses_nothing().await;
}
