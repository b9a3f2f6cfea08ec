//! The configuration's groups. Each is the settings struct of the part of the server that
//! uses it, handed over as it is. A field named apart from its flag keeps the flag's
//! original `id`, `long` and value name, so that `--help` and error messages still say
//! `--ws-heartbeat <WS_HEARTBEAT>`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::rate_limits::Policy;
use super::values::{
    parse_duration, parse_optional_address, parse_public_url, BusKind, DatabaseUrl, Secret,
};

/// The public listener and what every request passes through.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Address the API listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

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

    /// Where clients reach the API (`https://api.example.com`), for the absolute URLs of
    /// photos; unset, they are built from each request's `Host` (and `X-Forwarded-Proto`
    /// from a trusted proxy).
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Time a request may take before it is answered with 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Time a client has to send a request's complete headers, from when the server
    /// starts waiting for them. On a keep-alive connection the wait for the next request
    /// counts too (hyper starts the timer when it starts waiting), so a connection idle
    /// between requests is closed after the shorter of this and HTTP_IDLE_TIMEOUT.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// A connection on which no byte has moved either way for this long is closed
    /// (stalled uploads, clients that stopped reading, idle keep-alive). Keep it above
    /// WS_HEARTBEAT, whose pings keep healthy WebSockets moving.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,

    /// Kernel send buffer per client socket, in bytes (default: the kernel's, which grows
    /// to megabytes). A small one bounds kernel memory per idle socket and makes a client
    /// that stops reading show up as a slow consumer sooner.
    #[arg(long, env = "TCP_SEND_BUFFER")]
    pub tcp_send_buffer: Option<usize>,
}

/// The Prometheus listener, kept off the public port.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsSettings {
    /// Address of the Prometheus `/metrics` listener; `off` disables it.
    // The full path keeps clap from reading `Option` as "the flag may be absent": here
    // the value parser itself turns `off` into `None`.
    #[arg(
        id = "metrics_bind",
        long = "metrics-bind",
        value_name = "METRICS_BIND",
        env = "METRICS_BIND",
        default_value = "127.0.0.1:9091",
        value_parser = parse_optional_address
    )]
    pub bind: ::std::option::Option<SocketAddr>,
}

/// Where the data lives and how many connections may reach it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// `postgres://…` for PostgreSQL; unset means the embedded SQLite database in DATA_DIR.
    #[arg(
        id = "database_url",
        long = "database-url",
        value_name = "DATABASE_URL",
        env = "DATABASE_URL"
    )]
    pub url: Option<DatabaseUrl>,

    #[command(flatten)]
    pub pool: PoolSizes,
}

/// How many database connections a store may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct PoolSizes {
    /// Maximum connections to the database, readers and writers together.
    #[arg(
        id = "database_max_connections",
        long = "database-max-connections",
        value_name = "DATABASE_MAX_CONNECTIONS",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub total: u32,

    /// PostgreSQL: how many of those may run write transactions at once (the rest serve
    /// reads). Writes beyond it wait in the server rather than crowd the database; about
    /// the database's core count is right. SQLite always has exactly one writer.
    #[arg(
        id = "database_write_connections",
        long = "database-write-connections",
        value_name = "DATABASE_WRITE_CONNECTIONS",
        env = "DATABASE_WRITE_CONNECTIONS",
        default_value_t = 4
    )]
    pub writers: u32,
}

/// Tokens and passwords.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthSettings {
    /// HS256 signing secret (BETTER_AUTH_SECRET is read too). Generated and kept in
    /// DATA_DIR when unset on the embedded database; required with PostgreSQL.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of issued tokens.
    #[arg(long, env = "JWT_TTL", default_value = "24h", value_parser = parse_duration)]
    pub jwt_ttl: Duration,

    /// Absolute lifetime of a session (a sign-in): refresh is refused past it, and no
    /// token of it outlives it.
    #[arg(long, env = "SESSION_MAX_AGE", default_value = "30d", value_parser = parse_duration)]
    pub session_max_age: Duration,

    /// How long a token found unrevoked is trusted without asking the database again
    /// (`0` asks on every request). A logout is seen at once on the instance that made
    /// it and through the event bus elsewhere; this bounds the delay if a bus loses it.
    #[arg(long, env = "TOKEN_CHECK_CACHE", default_value = "2s", value_parser = parse_duration)]
    pub token_check_cache: Duration,

    #[command(flatten)]
    pub password: PasswordParams,

    /// How many password hashes or verifications may run at once (default: half the
    /// cores, at least 1). Each one holds a core and ARGON2_MEMORY_KIB of memory.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,

    /// How many more may wait for a turn (default: 4 times the concurrency); beyond that
    /// sign-ins and sign-ups are answered 503 at once rather than queued.
    #[arg(long, env = "PASSWORD_HASH_QUEUE")]
    pub password_hash_queue: Option<usize>,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct PasswordParams {
    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(
        id = "argon2_memory_kib",
        long = "argon2-memory-kib",
        value_name = "ARGON2_MEMORY_KIB",
        env = "ARGON2_MEMORY_KIB",
        default_value_t = 19_456
    )]
    pub memory_kib: u32,

    /// argon2id iterations (OWASP: 2).
    #[arg(
        id = "argon2_iterations",
        long = "argon2-iterations",
        value_name = "ARGON2_ITERATIONS",
        env = "ARGON2_ITERATIONS",
        default_value_t = 2
    )]
    pub iterations: u32,
}

/// Uploaded profile photos.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Media")]
pub struct MediaSettings {
    /// Folder for uploaded profile photos (default: DATA_DIR/media).
    #[arg(
        id = "media_dir",
        long = "media-dir",
        value_name = "MEDIA_DIR",
        env = "MEDIA_DIR"
    )]
    pub dir: Option<PathBuf>,
    /// Largest photo accepted, in pixels (width x height), read from the header before
    /// anything is decoded.
    #[arg(
        id = "photo_max_pixels",
        long = "photo-max-pixels",
        value_name = "PHOTO_MAX_PIXELS",
        env = "PHOTO_MAX_PIXELS",
        default_value_t = 4096 * 4096
    )]
    pub photo_max_pixels: u64,
    /// Photos decoded at once on this instance; further uploads get 503 (default: half
    /// the cores, at least 1).
    #[arg(
        id = "photo_decode_concurrency",
        long = "photo-decode-concurrency",
        value_name = "PHOTO_DECODE_CONCURRENCY",
        env = "PHOTO_DECODE_CONCURRENCY"
    )]
    pub photo_decode_concurrency: Option<usize>,
}

/// How instances tell each other about new events.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Event bus")]
pub struct EventBusSettings {
    /// Event bus between instances: memory, postgres or redis (default: memory on SQLite,
    /// postgres on PostgreSQL).
    #[arg(
        id = "event_bus",
        long = "event-bus",
        value_name = "EVENT_BUS",
        env = "EVENT_BUS",
        value_enum
    )]
    pub kind: Option<BusKind>,

    /// Redis for EVENT_BUS=redis (default `redis://127.0.0.1:6379`) and, whenever it is
    /// set, for rate-limit counters shared by every instance.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
}

/// How much each account may hold.
#[derive(Debug, Clone, Copy, Args)]
#[command(next_help_heading = "Quotas")]
pub struct QuotaSettings {
    /// Tasks an account may hold, in the trash included; creating one more answers 409
    /// `QUOTA_EXCEEDED`.
    #[arg(long, env = "MAX_TASKS_PER_USER", default_value_t = 10_000)]
    pub max_tasks_per_user: i64,

    /// Notifications an account keeps: past it (with a tenth more as slack, so that the
    /// pruning runs once per many notifications) the oldest are deleted, each with its
    /// `notification.deleted` event.
    #[arg(long, env = "MAX_NOTIFICATIONS_PER_USER", default_value_t = 1_000)]
    pub max_notifications_per_user: i64,

    /// Tasks a project may hold, the trash included (409 `QUOTA_EXCEEDED` past it).
    #[arg(long, env = "MAX_TASKS_PER_PROJECT", default_value_t = 10_000)]
    pub max_tasks_per_project: i64,

    /// Projects an account may belong to (creating or joining one more answers 409
    /// `QUOTA_EXCEEDED`).
    #[arg(long, env = "MAX_PROJECTS_PER_USER", default_value_t = 100)]
    pub max_projects_per_user: i64,

    /// Members a project may have; open invitations count against it too.
    #[arg(long, env = "MAX_MEMBERS_PER_PROJECT", default_value_t = 1_000)]
    pub max_members_per_project: i64,

    /// How long an invitation to a project stays open.
    #[arg(long, env = "INVITATION_TTL", default_value = "7d", value_parser = parse_duration)]
    pub invitation_ttl: Duration,

    /// Open sessions (signed-in devices) an account may have: a sign-in past it ends the
    /// least recently used ones, whose sockets close with 4003.
    #[arg(long, env = "MAX_SESSIONS_PER_USER", default_value_t = 100)]
    pub max_sessions_per_user: i64,

    /// Notifications older than this are deleted (with their events) by a sweep that
    /// runs every few minutes.
    #[arg(long, env = "NOTIFICATION_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub notification_retention: Duration,
}

/// Rate limits, and how the client's address is found.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitSettings {
    /// `off`, or comma-separated overrides of the default budgets, e.g.
    /// `signin=5/15m,signup=3/1h` (the README lists every limit and its default).
    #[arg(long, env = "RATE_LIMITS", default_value = "")]
    pub rate_limits: Policy,

    /// Comma-separated addresses of reverse proxies whose `X-Forwarded-For` is believed;
    /// for everyone else the client is the socket's peer.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
}

/// Tunables of the real-time channel.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Real time")]
pub struct RealtimeSettings {
    /// WebSocket ping interval; a ping unanswered for as long closes the socket.
    #[arg(
        id = "ws_heartbeat",
        long = "ws-heartbeat",
        value_name = "WS_HEARTBEAT",
        env = "WS_HEARTBEAT",
        default_value = "25s",
        value_parser = parse_duration
    )]
    pub heartbeat: Duration,

    /// Projects with more members than this get presence as counts only (`online`), not
    /// who is online.
    #[arg(long, env = "PRESENCE_MAX_MEMBERS", default_value_t = 100)]
    pub presence_max_members: usize,

    /// Time a socket opened without a token has to send its auth message.
    #[arg(
        id = "ws_auth_timeout",
        long = "ws-auth-timeout",
        value_name = "WS_AUTH_TIMEOUT",
        env = "WS_AUTH_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub auth_timeout: Duration,

    #[command(flatten)]
    pub limits: HubLimits,

    /// After a REST refresh replaces a socket's token, how long the socket has to send
    /// `auth.refresh` with a token of the user before it closes with 4003 (a client
    /// refreshing its own token moves its socket at once; a stolen token's socket cannot).
    #[arg(
        id = "ws_refresh_grace",
        long = "ws-refresh-grace",
        value_name = "WS_REFRESH_GRACE",
        env = "WS_REFRESH_GRACE",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub refresh_grace: Duration,

    /// How often connected users are checked for events a bus may have dropped.
    #[arg(
        id = "event_catch_up_interval",
        long = "event-catch-up-interval",
        value_name = "EVENT_CATCH_UP_INTERVAL",
        env = "EVENT_CATCH_UP_INTERVAL",
        default_value = "1s",
        value_parser = parse_duration
    )]
    pub catch_up_interval: Duration,

    /// Events are kept at least this long...
    #[arg(
        id = "event_retention",
        long = "event-retention",
        value_name = "EVENT_RETENTION",
        env = "EVENT_RETENTION",
        default_value = "7d",
        value_parser = parse_duration
    )]
    pub retention: Duration,

    /// ...and at least this many per user.
    #[arg(
        id = "event_retention_min_events",
        long = "event-retention-min-events",
        value_name = "EVENT_RETENTION_MIN_EVENTS",
        env = "EVENT_RETENTION_MIN_EVENTS",
        default_value_t = 1_000
    )]
    pub retention_min_events: i64,

    /// On shutdown, sockets are closed (1012) spread over this long.
    #[arg(long, env = "SHUTDOWN_SPREAD", default_value = "3s", value_parser = parse_duration)]
    pub shutdown_spread: Duration,
}

/// How many sockets the hub holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct HubLimits {
    /// Open sockets allowed per user (the next one is closed with 4009).
    #[arg(
        id = "ws_max_connections_per_user",
        long = "ws-max-connections-per-user",
        value_name = "WS_MAX_CONNECTIONS_PER_USER",
        env = "WS_MAX_CONNECTIONS_PER_USER",
        default_value_t = 20
    )]
    pub per_user: usize,

    /// Open sockets allowed on this instance (further upgrades get 503).
    #[arg(
        id = "ws_max_connections",
        long = "ws-max-connections",
        value_name = "WS_MAX_CONNECTIONS",
        env = "WS_MAX_CONNECTIONS",
        default_value_t = 20_000
    )]
    pub total: usize,

    /// Undelivered wake-ups a socket may have queued before it is closed as too slow (4008);
    /// as many presence messages may wait in its mailbox (it is woken at half).
    #[arg(
        id = "ws_queue_capacity",
        long = "ws-queue-capacity",
        value_name = "WS_QUEUE_CAPACITY",
        env = "WS_QUEUE_CAPACITY",
        default_value_t = 256
    )]
    pub queue: usize,

    /// Sockets that have not authenticated yet (they have WS_AUTH_TIMEOUT to do so), in
    /// all: further tokenless upgrades get 503, so they can never fill the instance.
    #[arg(
        id = "ws_max_unauthenticated",
        long = "ws-max-unauthenticated",
        value_name = "WS_MAX_UNAUTHENTICATED",
        env = "WS_MAX_UNAUTHENTICATED",
        default_value_t = 1_000
    )]
    pub unauthenticated: usize,

    /// Sockets not authenticated yet per client address: further tokenless upgrades from
    /// it get 429 `RATE_LIMITED`.
    #[arg(
        id = "ws_max_unauthenticated_per_ip",
        long = "ws-max-unauthenticated-per-ip",
        value_name = "WS_MAX_UNAUTHENTICATED_PER_IP",
        env = "WS_MAX_UNAUTHENTICATED_PER_IP",
        default_value_t = 10
    )]
    pub unauthenticated_per_ip: usize,
}

/// Reaching people who are not connected: e-mail, web push, reminders, and the outbox
/// workers that send them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Delivery")]
pub struct DeliverySettings {
    /// SMTP server: `smtp://user:pass@host:587` (STARTTLS required; `?tls=opportunistic` or
    /// `?tls=none` to relax it) or `smtps://…:465` (implicit TLS). Unset: messages are
    /// written as `.eml` files under `DATA_DIR/mail/`.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// The sender of every message.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "taskstream <noreply@localhost>"
    )]
    pub mail_from: String,

    /// Where contact-form messages are sent (unset: they are only stored).
    #[arg(long, env = "CONTACT_EMAIL")]
    pub contact_email: Option<String>,

    /// How long before a task's due date its `TASK_DUE_SOON` reminder fires.
    #[arg(long, env = "REMINDER_LEAD", default_value = "1h", value_parser = parse_duration)]
    pub reminder_lead: Duration,

    /// The VAPID private key for web push (base64url, the raw 32-byte P-256 scalar).
    /// Unset: one is generated and kept in `DATA_DIR/vapid.key`.
    #[arg(long, env = "VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<Secret>,

    /// Who push services may contact about this sender (`mailto:` or `https:`); default:
    /// `mailto:` and MAIL_FROM's address.
    #[arg(long, env = "VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,

    /// Accept `http://` push endpoints (tests with a local push receiver); production push
    /// services are all `https://`.
    #[arg(long, env = "PUSH_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub push_allow_http: bool,

    /// Deliveries each instance sends at once.
    #[arg(
        id = "delivery_concurrency",
        long = "delivery-concurrency",
        value_name = "DELIVERY_CONCURRENCY",
        env = "DELIVERY_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,

    /// How long a claimed delivery is held by the worker that claimed it: one that dies
    /// leaves it to another instance after this. Longer than a send can take.
    #[arg(id = "delivery_lease", long = "delivery-lease", value_name = "DELIVERY_LEASE", env = "DELIVERY_LEASE", default_value = "2m", value_parser = parse_duration)]
    pub lease: Duration,

    /// The first retry's delay after a failed send; each later one doubles it (up to
    /// an hour), with jitter.
    #[arg(id = "delivery_retry_base", long = "delivery-retry-base", value_name = "DELIVERY_RETRY_BASE", env = "DELIVERY_RETRY_BASE", default_value = "10s", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Attempts before a delivery is marked `failed` for good.
    #[arg(
        id = "delivery_max_attempts",
        long = "delivery-max-attempts",
        value_name = "DELIVERY_MAX_ATTEMPTS",
        env = "DELIVERY_MAX_ATTEMPTS",
        default_value_t = 10
    )]
    pub max_attempts: u32,
}
