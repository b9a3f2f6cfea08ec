//! Server child processes, for what one process cannot show: several instances on one
//! database and bus, an instance killed with SIGKILL, a restart on the same data.

use std::marker::PhantomData;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::redis::RedisServer;
use crate::ws::ws_url;

/// The server executable to run. Only the integration tests of the package that builds it
/// know its path (`env!("CARGO_BIN_EXE_taskstream")`), so they name it with a type that
/// implements this, and use `Instance<ThatType>` (as tests/cluster does).
pub trait ServerBinary {
    const PATH: &'static str;
}

/// How the instances of a test tell each other about new events.
#[derive(Debug, Clone, Copy)]
pub enum Bus<'a> {
    Memory,
    Postgres,
    /// Redis pub/sub on this (private) server.
    Redis(&'a RedisServer),
}

/// No periodic catch-up: whatever reaches the instance comes over the bus.
pub const BUS_ONLY: (&str, &str) = ("EVENT_CATCH_UP_INTERVAL", "1h");
/// Tokens found unrevoked are trusted for an hour unless something says otherwise.
pub const REMEMBER_TOKENS: (&str, &str) = ("TOKEN_CHECK_CACHE", "1h");

/// The JWT secret every instance shares.
const SECRET: &str = "cluster-test-secret-0123456789-abcdefghijklmnop";
/// Longest an instance may take to log its address.
const STARTUP: Duration = Duration::from_secs(30);

/// A server process; killed when dropped.
pub struct Instance<B: ServerBinary> {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// `http://127.0.0.1:port` of its Prometheus listener.
    pub metrics: String,
    _data: Option<tempfile::TempDir>,
    _binary: PhantomData<B>,
}

impl<B: ServerBinary> Instance<B> {
    /// An instance with a data folder of its own.
    pub async fn start(database_url: &str, bus: Bus<'_>) -> Self {
        Self::start_with(database_url, bus, &[]).await
    }

    /// An instance with a data folder of its own and `env` set.
    pub async fn start_with(database_url: &str, bus: Bus<'_>, env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut instance = Self::launch(database_url, bus, data.path(), env).await;
        instance._data = Some(data);
        instance
    }

    /// An instance without the periodic catch-up: whatever reaches it comes over the bus.
    pub async fn bus_only(database_url: &str, bus: Bus<'_>) -> Self {
        Self::start_with(database_url, bus, &[BUS_ONLY]).await
    }

    /// An instance on `data_dir` (an empty `database_url` means the embedded database in
    /// that folder).
    pub async fn start_at(database_url: &str, bus: Bus<'_>, data_dir: &Path) -> Self {
        Self::launch(database_url, bus, data_dir, &[]).await
    }

    async fn launch(
        database_url: &str,
        bus: Bus<'_>,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(B::PATH);
        // Nothing from the developer's environment, and no `.env` file (it is looked for
        // from the working directory up): the instance runs on what the test says.
        command.env_clear().current_dir(data_dir);
        command
            .env("BIND", "127.0.0.1:0")
            .env("METRICS_BIND", "127.0.0.1:0")
            .env("DATA_DIR", data_dir)
            .env("JWT_SECRET", SECRET)
            .env("ARGON2_MEMORY_KIB", "256")
            .env("ARGON2_ITERATIONS", "1")
            // The scenarios sign up several users from one address.
            .env("RATE_LIMITS", "off")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn,tower_http=warn");
        match bus {
            Bus::Memory => command.env("EVENT_BUS", "memory"),
            Bus::Postgres => command.env("EVENT_BUS", "postgres"),
            Bus::Redis(redis) => command
                .env("EVENT_BUS", "redis")
                .env("REDIS_URL", redis.url()),
        };
        if !database_url.is_empty() {
            command.env("DATABASE_URL", database_url);
        }
        command.envs(env.iter().copied());
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("server process starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (address, metrics) = tokio::time::timeout(STARTUP, async {
            // The metrics listener is announced first, then the API's.
            let mut metrics = None;
            while let Some(line) = lines.next_line().await.expect("read log") {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let address = entry["fields"]["address"].as_str().map(str::to_string);
                if entry["fields"]["message"] == "metrics listening" {
                    metrics = address;
                } else if entry["fields"]["message"] == "taskstream listening" {
                    return address.zip(metrics);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("server starts within {STARTUP:?}"))
        .expect("server logged its addresses");
        // Keep draining the log so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base: format!("http://{address}"),
            metrics: format!("http://{metrics}"),
            _data: None,
            _binary: PhantomData,
        }
    }

    /// SIGKILL: no shutdown, no close frames, no chance to publish anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }

    /// The URL of its socket endpoint.
    pub fn ws(&self, since: Option<i64>) -> String {
        ws_url(&self.base, since)
    }
}
