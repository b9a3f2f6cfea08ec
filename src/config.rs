//! One `Config`, read from the command line with environment fallbacks (and a `.env` file,
//! loaded by `main`). Secrets live in [`Secret`], whose `Debug` never shows the value.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A value that must never reach a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// A database URL; its password is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &self.0[..scheme_end + 3],
                        &userinfo[..colon],
                        &self.0[at..]
                    ),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("postgres://")
            || s.starts_with("postgresql://")
            || s.starts_with("sqlite:")
        {
            Ok(Self(s.to_string()))
        } else {
            Err("expected a postgres://, postgresql:// or sqlite: URL".into())
        }
    }
}

/// A duration written as `90`, `90s`, `15m`, `24h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 24h"))?;
        let seconds = match unit.trim() {
            "" | "s" => number,
            "ms" => return Ok(Self(Duration::from_millis(number))),
            "m" => number.saturating_mul(60),
            "h" => number.saturating_mul(3600),
            "d" => number.saturating_mul(86_400),
            other => return Err(format!("invalid duration unit {other:?}: use s, m, h or d")),
        };
        Ok(Self(Duration::from_secs(seconds)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How instances tell each other about new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// In-process only: one instance (the default with SQLite).
    Memory,
    /// PostgreSQL LISTEN/NOTIFY (the default with PostgreSQL).
    Postgres,
    /// Redis pub/sub (REDIS_URL).
    Redis,
}

#[derive(Debug, Parser)]
#[command(
    name = "taskstream",
    version,
    about = "Real-time task-management backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the API listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Address of the Prometheus `/metrics` listener (kept off the public port); `off`
    /// disables it.
    #[arg(long, env = "METRICS_BIND", default_value = "127.0.0.1:9091")]
    pub metrics_bind: String,

    /// `postgres://…` for PostgreSQL; unset means the embedded SQLite database in DATA_DIR.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,

    /// Folder for the embedded database, the generated JWT secret and (by default) media.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Maximum connections to the database, readers and writers together.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// PostgreSQL: how many of those may run write transactions at once (the rest serve
    /// reads). Writes beyond it wait in the server rather than crowd the database; about
    /// the database's core count is right. SQLite always has exactly one writer.
    #[arg(long, env = "DATABASE_WRITE_CONNECTIONS", default_value_t = 4)]
    pub database_write_connections: u32,

    /// HS256 signing secret (BETTER_AUTH_SECRET is read too). Generated and kept in
    /// DATA_DIR when unset on the embedded database; required with PostgreSQL.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of issued tokens.
    #[arg(long, env = "JWT_TTL", default_value = "24h")]
    pub jwt_ttl: HumanDuration,

    /// Comma-separated origins allowed by CORS; `*` allows any.
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:3000,http://127.0.0.1:3000"
    )]
    pub allowed_origins: Vec<String>,

    /// Comma-separated host names accepted in the Host header; `*` accepts any.
    #[arg(
        long,
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub allowed_hosts: Vec<String>,

    /// Folder for uploaded profile photos (default: DATA_DIR/media).
    #[arg(long, env = "MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Time a request may take before it is answered with 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: HumanDuration,

    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (OWASP: 2).
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Event bus between instances: memory, postgres or redis (default: memory on SQLite,
    /// postgres on PostgreSQL).
    #[arg(long, env = "EVENT_BUS", value_enum)]
    pub event_bus: Option<BusKind>,

    /// Redis for EVENT_BUS=redis.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: Secret,

    /// WebSocket ping interval; a ping unanswered for as long closes the socket.
    #[arg(long, env = "WS_HEARTBEAT", default_value = "25s")]
    pub ws_heartbeat: HumanDuration,

    /// Time a socket opened without a token has to send its auth message.
    #[arg(long, env = "WS_AUTH_TIMEOUT", default_value = "10s")]
    pub ws_auth_timeout: HumanDuration,

    /// Open sockets allowed per user (the next one is closed with 4009).
    #[arg(long, env = "WS_MAX_CONNECTIONS_PER_USER", default_value_t = 20)]
    pub ws_max_connections_per_user: usize,

    /// Open sockets allowed on this instance (further upgrades get 503).
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub ws_max_connections: usize,

    /// Undelivered wake-ups a socket may have queued before it is closed as too slow (4008).
    #[arg(long, env = "WS_QUEUE_CAPACITY", default_value_t = 256)]
    pub ws_queue_capacity: usize,

    /// How often connected users are checked for events a bus may have dropped.
    #[arg(long, env = "EVENT_CATCH_UP_INTERVAL", default_value = "1s")]
    pub event_catch_up_interval: HumanDuration,

    /// Events are kept at least this long...
    #[arg(long, env = "EVENT_RETENTION", default_value = "7d")]
    pub event_retention: HumanDuration,

    /// ...and at least this many per user.
    #[arg(long, env = "EVENT_RETENTION_MIN_EVENTS", default_value_t = 1_000)]
    pub event_retention_min_events: i64,

    /// Kernel send buffer per client socket, in bytes (default: the kernel's, which grows
    /// to megabytes). A small one bounds kernel memory per idle socket and makes a client
    /// that stops reading show up as a slow consumer sooner.
    #[arg(long, env = "TCP_SEND_BUFFER")]
    pub tcp_send_buffer: Option<usize>,

    /// How long a token found unrevoked is trusted without asking the database again
    /// (`0` asks on every request). A logout is seen at once on the instance that made
    /// it and through the event bus elsewhere; this bounds the delay if a bus loses it.
    #[arg(long, env = "TOKEN_CHECK_CACHE", default_value = "2s")]
    pub token_check_cache: HumanDuration,

    /// On shutdown, sockets are closed (1012) spread over this long.
    #[arg(long, env = "SHUTDOWN_SPREAD", default_value = "3s")]
    pub shutdown_spread: HumanDuration,
}

impl Config {
    /// The configuration with every default, as `cargo run` with no environment gets it.
    pub fn from_env_and_args() -> Cli {
        let mut cli = Cli::parse();
        if cli.config.jwt_secret.is_none() {
            if let Ok(secret) = std::env::var("BETTER_AUTH_SECRET") {
                if !secret.is_empty() {
                    cli.config.jwt_secret = Some(Secret::new(secret));
                }
            }
        }
        cli
    }

    /// The event bus in force.
    pub fn bus(&self) -> BusKind {
        self.event_bus.unwrap_or(if self.database().is_postgres() {
            BusKind::Postgres
        } else {
            BusKind::Memory
        })
    }

    pub fn media_dir(&self) -> PathBuf {
        self.media_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| {
            DatabaseUrl(format!(
                "sqlite://{}",
                self.data_dir.join("taskstream.db").display()
            ))
        })
    }

    /// The defaults (with whatever the environment sets), without reading the command
    /// line: for tests and embedding.
    pub fn defaults() -> Self {
        let cli = Cli::parse_from(["taskstream"]);
        cli.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            "24h".parse::<HumanDuration>().map(|d| d.0),
            Ok(Duration::from_secs(86_400))
        );
        assert_eq!(
            "90".parse::<HumanDuration>().map(|d| d.0),
            Ok(Duration::from_secs(90))
        );
        assert!("h".parse::<HumanDuration>().is_err());
        assert!("5y".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn secrets_and_passwords_are_redacted() {
        let secret = Secret::new("hunter2-very-secret");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/tasks".parse().unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.redacted().contains("app:***@db"));
    }
}
