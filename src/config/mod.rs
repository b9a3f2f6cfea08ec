//! One `Config`, read from the command line with environment fallbacks (and a `.env` file,
//! loaded by `main`), in groups that are the settings of the parts that use them
//! (`settings.rs`; the values they are made of are in `values.rs`). [`Config::validate`]
//! rejects what the server cannot run with, at start-up and with the variable's name,
//! rather than quietly running with something else.
//! Secrets live in [`Secret`], whose `Debug` never shows the value.

mod rate_limits;
mod settings;
mod values;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand};

pub use self::rate_limits::{Limit, Policy, Quota};
pub use self::settings::{
    AuthSettings, DatabaseSettings, DeliverySettings, EventBusSettings, HttpSettings, HubLimits,
    LimitSettings, MediaSettings, MetricsSettings, PasswordParams, PoolSizes, QuotaSettings,
    RealtimeSettings,
};
pub use self::values::{BusKind, DatabaseUrl, HumanDuration, LogFormat, Secret};

/// How many password hashes may run at once, and how many more may wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBounds {
    pub concurrency: usize,
    pub queue: usize,
}

const MAX_HASH_BOUND: usize = 65_536;

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

/// Everything the server reads at start-up.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Folder for the embedded database, the generated JWT secret and (by default) media.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub metrics: MetricsSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub auth: AuthSettings,

    #[command(flatten)]
    pub media: MediaSettings,

    #[command(flatten)]
    pub event_bus: EventBusSettings,

    #[command(flatten)]
    pub realtime: RealtimeSettings,

    #[command(flatten)]
    pub limits: LimitSettings,

    #[command(flatten)]
    pub quotas: QuotaSettings,

    #[command(flatten)]
    pub delivery: DeliverySettings,
}

impl Cli {
    /// The command line, with the environment (and `.env`, once `main` has loaded it)
    /// filling what it leaves out.
    pub fn from_env_and_args() -> Self {
        let mut cli = Self::parse();
        if cli.config.auth.jwt_secret.is_none() {
            if let Ok(secret) = std::env::var("BETTER_AUTH_SECRET") {
                if !secret.is_empty() {
                    cli.config.auth.jwt_secret = Some(Secret::new(secret));
                }
            }
        }
        cli
    }
}

impl Config {
    /// The documented defaults, whatever the process environment says: what the tests
    /// start from, so that an exported `EVENT_BUS` cannot change what they test.
    pub fn for_tests() -> Self {
        Self::parse_ignoring_environment(["taskstream"])
            .expect("the documented defaults are a valid command line")
    }

    /// `args` as a command line, with no environment fallback.
    fn parse_ignoring_environment<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command =
            Self::augment_args(clap::Command::new("taskstream")).mut_args(|arg| arg.env(None));
        Self::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    /// The event bus in force.
    pub fn bus_kind(&self) -> BusKind {
        self.event_bus
            .kind
            .unwrap_or(if self.database_url().is_postgres() {
                BusKind::Postgres
            } else {
                BusKind::Memory
            })
    }

    /// The Redis in force: REDIS_URL, or the local default when the bus is Redis.
    pub fn redis_url(&self) -> Option<Secret> {
        match (&self.event_bus.redis_url, self.bus_kind()) {
            (Some(url), _) => Some(url.clone()),
            (None, BusKind::Redis) => Some(Secret::new("redis://127.0.0.1:6379")),
            (None, _) => None,
        }
    }

    /// The bounds on password hashing in force: PASSWORD_HASH_CONCURRENCY (default: half
    /// the cores, at least 1) and PASSWORD_HASH_QUEUE (default: 4 times the concurrency).
    pub fn password_hash_bounds(&self) -> HashBounds {
        let concurrency = self
            .auth
            .password_hash_concurrency
            .unwrap_or_else(half_the_cores);
        HashBounds {
            concurrency,
            queue: self
                .auth
                .password_hash_queue
                .unwrap_or(concurrency.saturating_mul(4)),
        }
    }

    /// Photos decoded at once in force: PHOTO_DECODE_CONCURRENCY (default: half the cores,
    /// at least 1).
    pub fn photo_decode_concurrency(&self) -> usize {
        self.media
            .photo_decode_concurrency
            .unwrap_or_else(half_the_cores)
    }

    /// The folder for uploaded photos in force: the configured one, or DATA_DIR/media.
    pub fn media_dir(&self) -> PathBuf {
        self.media
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_file(&self.data_dir.join("taskstream.db")))
    }

    /// Every reason the server cannot run with this configuration, named by variable.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_string());
            }
        };
        let postgres = self.database_url().is_postgres();

        check(
            !self.http.request_timeout.is_zero(),
            "REQUEST_TIMEOUT must be more than 0",
        );

        check(
            !self.http.http_header_timeout.is_zero(),
            "HTTP_HEADER_TIMEOUT must be more than 0",
        );
        // Shorter, and the heartbeat's pings could not keep an idle WebSocket open.
        check(
            self.http.http_idle_timeout > self.realtime.heartbeat,
            "HTTP_IDLE_TIMEOUT must be longer than WS_HEARTBEAT",
        );

        check(
            self.media.photo_max_pixels >= 1,
            "PHOTO_MAX_PIXELS must be at least 1",
        );
        check(
            self.media.photo_decode_concurrency != Some(0),
            "PHOTO_DECODE_CONCURRENCY must be at least 1",
        );

        let pool = self.database.pool;
        check(
            pool.total >= 1,
            "DATABASE_MAX_CONNECTIONS must be at least 1",
        );
        check(
            pool.writers >= 1,
            "DATABASE_WRITE_CONNECTIONS must be at least 1",
        );

        match &self.auth.jwt_secret {
            Some(secret) => check(
                secret.expose().len() >= 32,
                "JWT_SECRET must be at least 32 bytes long",
            ),
            None => check(
                !postgres,
                "JWT_SECRET (or BETTER_AUTH_SECRET) must be set when DATABASE_URL points at \
                 PostgreSQL: every instance must sign tokens with the same secret",
            ),
        }
        check(
            self.auth.jwt_ttl >= Duration::from_secs(1),
            "JWT_TTL must be at least 1s",
        );
        check(
            self.auth.session_max_age >= Duration::from_secs(1),
            "SESSION_MAX_AGE must be at least 1s",
        );
        let password = self.auth.password;
        check(
            password.memory_kib >= argon2::Params::MIN_M_COST,
            &format!(
                "ARGON2_MEMORY_KIB must be at least {}",
                argon2::Params::MIN_M_COST
            ),
        );
        check(
            password.iterations >= argon2::Params::MIN_T_COST,
            &format!(
                "ARGON2_ITERATIONS must be at least {}",
                argon2::Params::MIN_T_COST
            ),
        );

        // Bounded so that the semaphores behind them can hold that many permits.
        check(
            matches!(
                self.auth.password_hash_concurrency,
                None | Some(1..=MAX_HASH_BOUND)
            ),
            &format!("PASSWORD_HASH_CONCURRENCY must be between 1 and {MAX_HASH_BOUND}"),
        );
        check(
            self.auth
                .password_hash_queue
                .is_none_or(|queue| queue <= MAX_HASH_BOUND),
            &format!("PASSWORD_HASH_QUEUE must be at most {MAX_HASH_BOUND}"),
        );

        check(
            self.bus_kind() != BusKind::Postgres || postgres,
            "EVENT_BUS=postgres needs DATABASE_URL to point at PostgreSQL",
        );

        let delivery = &self.delivery;
        check(
            (1..=1024).contains(&delivery.concurrency),
            "DELIVERY_CONCURRENCY must be between 1 and 1024",
        );
        check(
            delivery.lease >= Duration::from_secs(1),
            "DELIVERY_LEASE must be at least 1s",
        );
        check(
            delivery.retry_base >= Duration::from_millis(10),
            "DELIVERY_RETRY_BASE must be at least 10ms",
        );
        check(
            delivery.max_attempts >= 1,
            "DELIVERY_MAX_ATTEMPTS must be at least 1",
        );

        let realtime = &self.realtime;
        // The welcome message states the heartbeat in whole seconds.
        check(
            realtime.heartbeat >= Duration::from_secs(1),
            "WS_HEARTBEAT must be at least 1s",
        );
        // Every check reads each connected user's latest seq: more often only loads the
        // database.
        check(
            realtime.catch_up_interval >= Duration::from_millis(50),
            "EVENT_CATCH_UP_INTERVAL must be at least 50ms",
        );
        // The pruner subtracts it from the current time.
        check(
            chrono::Duration::from_std(realtime.retention)
                .ok()
                .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
                .is_some(),
            "EVENT_RETENTION is too long",
        );
        check(
            realtime.retention_min_events >= 0,
            "EVENT_RETENTION_MIN_EVENTS must be at least 0",
        );

        let quotas = &self.quotas;
        check(
            quotas.max_tasks_per_user >= 1,
            "MAX_TASKS_PER_USER must be at least 1",
        );
        check(
            quotas.max_sessions_per_user >= 1,
            "MAX_SESSIONS_PER_USER must be at least 1",
        );
        check(
            quotas.max_tasks_per_project >= 1,
            "MAX_TASKS_PER_PROJECT must be at least 1",
        );
        check(
            quotas.max_projects_per_user >= 1,
            "MAX_PROJECTS_PER_USER must be at least 1",
        );
        check(
            quotas.max_members_per_project >= 1,
            "MAX_MEMBERS_PER_PROJECT must be at least 1",
        );
        check(
            !quotas.invitation_ttl.is_zero()
                && chrono::Duration::from_std(quotas.invitation_ttl)
                    .is_ok_and(|ttl| ttl <= chrono::Duration::days(365)),
            "INVITATION_TTL must be between 1 s and 365 days",
        );
        check(
            quotas.max_notifications_per_user >= 1,
            "MAX_NOTIFICATIONS_PER_USER must be at least 1",
        );
        // The sweep subtracts it from the current time.
        check(
            chrono::Duration::from_std(quotas.notification_retention)
                .ok()
                .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
                .is_some_and(|_| !quotas.notification_retention.is_zero()),
            "NOTIFICATION_RETENTION must be more than 0 and not too long",
        );
        // The hub's semaphore cannot hold more.
        check(
            realtime.limits.total <= tokio::sync::Semaphore::MAX_PERMITS,
            &format!(
                "WS_MAX_CONNECTIONS must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            ),
        );
        check(
            realtime.limits.queue >= 1,
            "WS_QUEUE_CAPACITY must be at least 1",
        );

        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidConfig { problems })
        }
    }
}

/// The default bound of each kind of CPU-heavy work a client can ask for (argon2, photo
/// decoding): together they fill at most every core, and a flood of one kind leaves the
/// other half of the machine to everything else.
fn half_the_cores() -> usize {
    (std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) / 2).max(1)
}

/// What [`Config::validate`] found wrong, all of it at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", problems.join("; "))]
pub struct InvalidConfig {
    pub problems: Vec<String>,
}

/// Creates `path` with `contents`, readable by its owner only (a secret the server
/// generated and keeps in DATA_DIR); fails if the file exists, so that two instances
/// starting together never overwrite each other's.
pub fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use clap::CommandFactory;

    use super::values::{parse_optional_address, parse_public_url};
    use super::*;

    /// `args` after the program name, without the environment.
    fn parse(args: &[&str]) -> Config {
        Config::parse_ignoring_environment(
            std::iter::once("taskstream").chain(args.iter().copied()),
        )
        .expect("valid command line")
    }

    fn problems(args: &[&str]) -> Vec<String> {
        match parse(args).validate() {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid.problems,
        }
    }

    #[test]
    fn public_url_is_an_http_origin_with_an_optional_prefix() {
        let ok = |s: &str| parse_public_url(s).expect(s);
        assert_eq!(ok("https://api.example.com"), "https://api.example.com");
        assert_eq!(ok("https://api.example.com/"), "https://api.example.com");
        assert_eq!(
            ok("http://example.com:8080/taskstream/"),
            "http://example.com:8080/taskstream"
        );
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com/?a=1",
            "https://example.com/#x",
            "/relative",
            "",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn flags_and_variables_keep_their_names() {
        Cli::command().debug_assert();
        let command = Cli::command();
        let mut names: Vec<(String, String)> = command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                Some((arg.get_long()?.to_string(), env))
            })
            .collect();
        names.sort();
        let mut expected = [
            "ALLOWED_HOSTS",
            "ALLOWED_ORIGINS",
            "ARGON2_ITERATIONS",
            "ARGON2_MEMORY_KIB",
            "BIND",
            "DATABASE_MAX_CONNECTIONS",
            "DATABASE_URL",
            "DATABASE_WRITE_CONNECTIONS",
            "DATA_DIR",
            "EVENT_BUS",
            "EVENT_CATCH_UP_INTERVAL",
            "EVENT_RETENTION",
            "EVENT_RETENTION_MIN_EVENTS",
            "HTTP_HEADER_TIMEOUT",
            "HTTP_IDLE_TIMEOUT",
            "JWT_SECRET",
            "JWT_TTL",
            "LOG_FORMAT",
            "MAX_NOTIFICATIONS_PER_USER",
            "MAX_SESSIONS_PER_USER",
            "MAX_TASKS_PER_USER",
            "MAX_TASKS_PER_PROJECT",
            "PRESENCE_MAX_MEMBERS",
            "MAX_PROJECTS_PER_USER",
            "MAX_MEMBERS_PER_PROJECT",
            "INVITATION_TTL",
            "MEDIA_DIR",
            "METRICS_BIND",
            "NOTIFICATION_RETENTION",
            "SMTP_URL",
            "MAIL_FROM",
            "CONTACT_EMAIL",
            "REMINDER_LEAD",
            "VAPID_PRIVATE_KEY",
            "VAPID_SUBJECT",
            "PUSH_ALLOW_HTTP",
            "DELIVERY_CONCURRENCY",
            "DELIVERY_LEASE",
            "DELIVERY_RETRY_BASE",
            "DELIVERY_MAX_ATTEMPTS",
            "PASSWORD_HASH_CONCURRENCY",
            "PASSWORD_HASH_QUEUE",
            "PHOTO_DECODE_CONCURRENCY",
            "PHOTO_MAX_PIXELS",
            "PUBLIC_URL",
            "RATE_LIMITS",
            "REDIS_URL",
            "REQUEST_TIMEOUT",
            "SESSION_MAX_AGE",
            "SHUTDOWN_SPREAD",
            "TCP_SEND_BUFFER",
            "TOKEN_CHECK_CACHE",
            "TRUSTED_PROXIES",
            "WS_AUTH_TIMEOUT",
            "WS_HEARTBEAT",
            "WS_MAX_CONNECTIONS",
            "WS_MAX_CONNECTIONS_PER_USER",
            "WS_MAX_UNAUTHENTICATED",
            "WS_MAX_UNAUTHENTICATED_PER_IP",
            "WS_QUEUE_CAPACITY",
            "WS_REFRESH_GRACE",
        ]
        .map(|env| (env.to_lowercase().replace('_', "-"), env.to_string()));
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn for_tests_has_the_documented_defaults() {
        let config = Config::for_tests();
        let address = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.http.bind, address("127.0.0.1:8080"));
        assert_eq!(
            config.http.allowed_origins,
            ["http://localhost:3000", "http://127.0.0.1:3000"]
        );
        assert_eq!(config.http.allowed_hosts, ["*"]);
        assert_eq!(config.http.request_timeout, Duration::from_secs(30));
        assert_eq!(config.http.tcp_send_buffer, None);
        assert_eq!(config.http.http_header_timeout, Duration::from_secs(10));
        assert_eq!(config.http.http_idle_timeout, Duration::from_secs(60));
        assert_eq!(config.metrics.bind, Some(address("127.0.0.1:9091")));
        assert_eq!(config.database.url, None);
        assert_eq!(
            config.database_url().expose(),
            "sqlite://./data/taskstream.db"
        );
        assert_eq!(
            config.database.pool,
            PoolSizes {
                total: 10,
                writers: 4
            }
        );
        assert_eq!(config.auth.jwt_secret, None);
        assert_eq!(config.auth.jwt_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.auth.token_check_cache, Duration::from_secs(2));
        assert_eq!(
            config.auth.session_max_age,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            config.auth.password,
            PasswordParams {
                memory_kib: 19_456,
                iterations: 2
            }
        );
        assert_eq!(config.media_dir(), PathBuf::from("./data/media"));
        assert_eq!(config.event_bus.kind, None);
        assert_eq!(config.bus_kind(), BusKind::Memory);
        assert_eq!(
            config.event_bus.redis_url, None,
            "no Redis unless REDIS_URL is set or the bus is Redis"
        );
        assert_eq!(config.limits.rate_limits, Policy::default());
        assert!(config.limits.trusted_proxies.is_empty());
        let realtime = &config.realtime;
        assert_eq!(realtime.heartbeat, Duration::from_secs(25));
        assert_eq!(realtime.auth_timeout, Duration::from_secs(10));
        assert_eq!(
            realtime.limits,
            HubLimits {
                per_user: 20,
                total: 20_000,
                queue: 256,
                unauthenticated: 1_000,
                unauthenticated_per_ip: 10,
            }
        );
        assert_eq!(realtime.catch_up_interval, Duration::from_secs(1));
        assert_eq!(realtime.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(realtime.retention_min_events, 1_000);
        assert_eq!(realtime.shutdown_spread, Duration::from_secs(3));
        assert_eq!(config.validate(), Ok(()));
    }

    /// Set by the test below for the child process it starts.
    const IN_CHILD: &str = "TASKSTREAM_CONFIG_TEST_CHILD";

    #[test]
    fn for_tests_ignores_the_environment_and_dotenv() {
        // The variables are set in a child process, so this process's environment,
        // which the other tests share, never changes.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(".env"), "WS_HEARTBEAT=5s\n").expect("write .env");
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "config::tests::for_tests_in_a_configured_environment",
                "--ignored",
            ])
            .current_dir(dir.path())
            .env(IN_CHILD, "1")
            .env("EVENT_BUS", "redis")
            .env("BIND", "0.0.0.0:1")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    #[test]
    #[ignore = "run by for_tests_ignores_the_environment_and_dotenv, in a child process"]
    fn for_tests_in_a_configured_environment() {
        if std::env::var_os(IN_CHILD).is_none() {
            return;
        }
        dotenvy::dotenv().expect("the .env written by the parent test");
        // The real command line sees the environment and the .env file...
        let configured = Cli::try_parse_from(["taskstream"]).expect("parses");
        assert_eq!(configured.config.event_bus.kind, Some(BusKind::Redis));
        assert_eq!(configured.config.http.bind.port(), 1);
        assert_eq!(configured.config.realtime.heartbeat, Duration::from_secs(5));
        // ...the tests' configuration sees neither.
        let config = Config::for_tests();
        assert_eq!(config.event_bus.kind, None);
        assert_eq!(config.http.bind.port(), 8080);
        assert_eq!(config.realtime.heartbeat, Duration::from_secs(25));
    }

    #[test]
    fn metrics_bind_off_means_no_listener() {
        assert_eq!(parse(&["--metrics-bind", "off"]).metrics.bind, None);
        assert_eq!(parse(&["--metrics-bind", "none"]).metrics.bind, None);
        assert_eq!(
            parse(&["--metrics-bind", "127.0.0.1:0"]).metrics.bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert!(parse_optional_address("nowhere").is_err());
    }

    #[test]
    fn values_that_used_to_be_clamped_are_rejected() {
        assert_eq!(
            problems(&["--ws-heartbeat", "0"]),
            ["WS_HEARTBEAT must be at least 1s"]
        );
        assert_eq!(
            problems(&["--event-catch-up-interval", "10ms"]),
            ["EVENT_CATCH_UP_INTERVAL must be at least 50ms"]
        );
        assert_eq!(
            problems(&[
                "--ws-queue-capacity",
                "0",
                "--database-max-connections",
                "0"
            ]),
            [
                "DATABASE_MAX_CONNECTIONS must be at least 1",
                "WS_QUEUE_CAPACITY must be at least 1"
            ]
        );
        // The smallest values that were honoured as given still are.
        assert!(
            problems(&["--ws-heartbeat", "1s", "--event-catch-up-interval", "50ms"]).is_empty()
        );
    }

    #[test]
    fn photo_limits_are_checked() {
        assert_eq!(
            problems(&["--photo-max-pixels", "0", "--photo-decode-concurrency", "0"]),
            [
                "PHOTO_MAX_PIXELS must be at least 1",
                "PHOTO_DECODE_CONCURRENCY must be at least 1"
            ]
        );
        let config = parse(&[]);
        assert_eq!(config.media.photo_max_pixels, 4096 * 4096);
        assert_eq!(config.media.photo_decode_concurrency, None);
        assert!(problems(&["--photo-decode-concurrency", "1"]).is_empty());
    }

    #[test]
    fn connection_timeouts_are_checked() {
        assert_eq!(
            problems(&["--http-header-timeout", "0"]),
            ["HTTP_HEADER_TIMEOUT must be more than 0"]
        );
        // The heartbeat's pings are what keeps an idle WebSocket's connection moving.
        assert_eq!(
            problems(&["--http-idle-timeout", "25s"]),
            ["HTTP_IDLE_TIMEOUT must be longer than WS_HEARTBEAT"]
        );
        assert!(problems(&["--http-idle-timeout", "2s", "--ws-heartbeat", "1s"]).is_empty());
    }

    #[test]
    fn password_hash_bounds_are_checked_and_defaulted() {
        assert_eq!(
            problems(&[
                "--password-hash-concurrency",
                "0",
                "--password-hash-queue",
                "1000000"
            ]),
            [
                "PASSWORD_HASH_CONCURRENCY must be between 1 and 65536",
                "PASSWORD_HASH_QUEUE must be at most 65536"
            ]
        );
        // Half the cores by default, and so is photo decoding: together at most all of them.
        let half = (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1);
        let defaults = parse(&[]);
        assert_eq!(defaults.password_hash_bounds().concurrency, half);
        assert_eq!(defaults.password_hash_bounds().queue, half * 4);
        assert_eq!(defaults.photo_decode_concurrency(), half);
        let bounds = parse(&["--password-hash-concurrency", "3"]).password_hash_bounds();
        assert_eq!(
            bounds,
            HashBounds {
                concurrency: 3,
                queue: 12
            }
        );
        let bounds = parse(&[
            "--password-hash-concurrency",
            "1",
            "--password-hash-queue",
            "0",
        ])
        .password_hash_bounds();
        assert_eq!(
            bounds,
            HashBounds {
                concurrency: 1,
                queue: 0
            }
        );
    }

    #[test]
    fn values_that_failed_later_are_rejected_at_start_up() {
        // The pruner used to stop silently on these, the hub's semaphore to panic.
        assert_eq!(
            problems(&["--event-retention", "100000000d"]),
            ["EVENT_RETENTION is too long"]
        );
        assert_eq!(
            problems(&["--ws-max-connections", &usize::MAX.to_string()]),
            [format!(
                "WS_MAX_CONNECTIONS must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            )]
        );
    }

    #[test]
    fn postgres_needs_a_shared_secret_and_its_bus_needs_postgres() {
        assert_eq!(
            problems(&["--event-bus", "postgres"]),
            ["EVENT_BUS=postgres needs DATABASE_URL to point at PostgreSQL"]
        );
        let on_postgres = ["--database-url", "postgres://app@db/tasks"];
        assert_eq!(problems(&on_postgres).len(), 1);
        assert!(
            problems(&on_postgres)[0].starts_with("JWT_SECRET (or BETTER_AUTH_SECRET) must be set")
        );
        let short_secret = [&on_postgres[..], &["--jwt-secret", "short"]].concat();
        assert_eq!(
            problems(&short_secret),
            ["JWT_SECRET must be at least 32 bytes long"]
        );
        let error = parse(&["--ws-heartbeat", "0", "--jwt-ttl", "0"])
            .validate()
            .expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "invalid configuration: JWT_TTL must be at least 1s; WS_HEARTBEAT must be at least 1s"
        );
    }

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
