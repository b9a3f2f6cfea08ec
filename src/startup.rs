//! Building and running the server: `App::build` opens the database (migrating it), binds
//! the listener and assembles the router; `App::run` serves until the shutdown future
//! resolves. Tests use the same path with port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio::net::TcpListener;

use std::sync::Arc;

use uuid::Uuid;

use crate::auth::{Authenticator, PasswordHasher, TokenChecks, TokenIssuer};
use crate::config::{BusKind, Config, Secret};
use crate::cpu::CpuPool;
use crate::delivery::mail::{parse_mailbox, Mailer};
use crate::delivery::push::{PushSender, VapidKey};
use crate::delivery::{DeliveryWorker, Links, Presence};
use crate::http;
use crate::limits::RateLimiter;
use crate::realtime::bus::{BusKey, EventBus, MemoryBus, PostgresBus, RedisBus};
use crate::realtime::Realtime;
use crate::service::{MediaStore, Services, WriteFunnel};
use crate::store::{self, Store};

pub struct App {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    services: Services,
    realtime: Arc<Realtime>,
    deliveries: Arc<DeliveryWorker>,
    connections: http::serve::ConnectionSettings,
}

impl App {
    /// Checks the configuration, opens everything it names and binds `config.http.bind`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let bind = config.http.bind;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        Self::assemble(config, listener).await
    }

    /// Like `build`, on a listener the caller bound (tests bind port 0).
    pub async fn build_with_listener(
        config: &Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        Self::assemble(config, listener).await
    }

    /// Everything after the configuration was found valid.
    async fn assemble(config: &Config, listener: TcpListener) -> anyhow::Result<Self> {
        let metrics_listener = match config.metrics.bind {
            // No recorder at all: the `metrics` macros then record nothing, where a
            // recorder nobody scrapes (and so nobody runs upkeep for) would keep every
            // histogram sample forever.
            None => None,
            Some(address) => {
                // Before anything records a metric: the recorder is process-wide.
                crate::metrics::handle();
                Some(
                    TcpListener::bind(address)
                        .await
                        .with_context(|| format!("cannot listen for metrics on {address}"))?,
                )
            }
        };
        let database = config.database_url();
        let store = store::connect(&database, config.database.pool).await?;
        tracing::info!(backend = store.backend(), database = %database.redacted(), "database ready");
        let secret = jwt_secret(config)?;
        let tokens = Arc::new(TokenIssuer::new(
            &secret,
            config.auth.jwt_ttl,
            config.auth.session_max_age,
        )?);
        let authenticator = Arc::new(Authenticator::new(
            tokens.clone(),
            TokenChecks::new(config.auth.token_check_cache),
            store.clone(),
        ));
        let bus_key = BusKey::derive(&secret);
        let realtime = Arc::new(realtime(
            config,
            bus_key,
            store.clone(),
            authenticator.clone(),
        )?);
        tracing::info!(bus = realtime.bus_name(), "event bus ready");
        if metrics_listener.is_some() {
            crate::metrics::register(realtime.bus_name());
        }
        // One pool of low-priority threads for argon2 and photo decoding together, as
        // many as the larger of their concurrencies (half the cores by default) and never
        // more than the cores: a flood of sign-ins and upload bombs at once holds at most
        // that share of the machine (they take turns), and each kind also keeps its own
        // admission bounds.
        let hash_bounds = config.password_hash_bounds();
        let decode_concurrency = config.photo_decode_concurrency();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cpu_threads = hash_bounds.concurrency.max(decode_concurrency).min(cores);
        let cpu = Arc::new(CpuPool::new(cpu_threads).context("starting the CPU pool")?);
        let deliveries_wake = Arc::new(tokio::sync::Notify::new());
        let delivery = &config.delivery;
        let vapid = vapid_key(config, &secret)?;
        let push_public_key: Arc<str> = Arc::from(vapid.public_key_base64url());
        let services = Services {
            writes: Arc::new(WriteFunnel::new(
                store.clone(),
                realtime.clone(),
                authenticator.clone(),
                deliveries_wake.clone(),
            )),
            store,
            authenticator,
            passwords: Arc::new(PasswordHasher::new(
                config.auth.password,
                hash_bounds,
                cpu.clone(),
            )?),
            tokens,
            media: Arc::new(MediaStore::new(
                config.media_dir(),
                config.media.photo_max_pixels,
                decode_concurrency,
                cpu,
            )?),
            limits: Arc::new(rate_limiter(config)?),
            quotas: config.quotas,
            reminder_lead: chrono::Duration::from_std(delivery.reminder_lead)
                .context("REMINDER_LEAD is too long")?,
            contact_email: delivery.contact_email.clone(),
            push_public_key,
            push_allow_http: delivery.push_allow_http,
        };
        let deliveries = Arc::new(delivery_worker(
            config,
            &listener,
            services.store.clone(),
            vapid,
            realtime.clone(),
            deliveries_wake,
        )?);
        let clients = http::client::ClientPolicy {
            limiter: services.limits.clone(),
            trusted_proxies: config.limits.trusted_proxies.clone().into(),
            public_url: config.http.public_url.as_deref().map(Arc::from),
        };
        let router = http::router(
            services.clone(),
            realtime.sockets().clone(),
            clients,
            &config.http,
        );
        Ok(Self {
            listener,
            metrics_listener,
            router,
            services,
            realtime,
            deliveries,
            connections: http::serve::ConnectionSettings {
                header_timeout: config.http.http_header_timeout,
                idle_timeout: config.http.http_idle_timeout,
                send_buffer: config.http.tcp_send_buffer,
            },
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The port of the metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and closes
    /// every WebSocket with 1012, spread out so clients do not reconnect all at once.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let realtime = self.realtime.clone();
        let mut background = BackgroundTasks(realtime.spawn_background());
        background.push(tokio::spawn(
            self.deliveries.clone().run(std::future::pending()),
        ));
        background.push(tokio::spawn(DeliveryWorker::report_and_prune(
            self.services.store.clone(),
        )));
        // Several reminder loops on PostgreSQL (each takes a different task); SQLite has
        // one writer at a time anyway.
        let reminder_loops = if self.services.store.backend() == "postgres" {
            4
        } else {
            1
        };
        background.push(tokio::spawn(crate::delivery::run_reminders(
            self.services.clone(),
            reminder_loops,
        )));
        background.push(tokio::spawn(prune_sessions(self.services.clone())));
        background.push(tokio::spawn(sweep_expired_notifications(
            self.services.clone(),
        )));
        background.push(tokio::spawn(forget_idle_limits(
            self.services.limits.clone(),
        )));
        if let Some(listener) = self.metrics_listener.take() {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "metrics listening");
            }
            background.push(tokio::spawn(crate::metrics::serve(
                listener,
                self.services.store.clone(),
            )));
        }
        tracing::info!(address = %self.local_addr()?, "taskstream listening");
        let hub = realtime.hub().clone();
        let spread = realtime.settings().shutdown_spread;
        http::serve::serve(self.listener, self.router, self.connections, async move {
            shutdown.await;
            hub.begin_shutdown(spread);
        })
        .await;
        realtime.hub().begin_shutdown(spread);
        realtime
            .hub()
            .wait_empty(spread + Duration::from_secs(5))
            .await;
        drop(background);
        realtime.leave().await;
        Ok(())
    }
}

/// The server's background tasks, stopped when it stops (or when `run` is dropped, as a
/// test does to kill a server).
struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl BackgroundTasks {
    fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The delivery worker the configuration asks for: SMTP or `.eml` files, web push, and
/// the links mails carry (PUBLIC_URL, else the listener's address).
fn delivery_worker(
    config: &Config,
    listener: &TcpListener,
    store: Arc<dyn Store>,
    vapid: VapidKey,
    presence: Arc<dyn Presence>,
    wake: Arc<tokio::sync::Notify>,
) -> anyhow::Result<DeliveryWorker> {
    let settings = &config.delivery;
    let mailer = Mailer::new(
        settings.smtp_url.as_ref().map(|url| url.expose()),
        config.data_dir.join("mail"),
    )?;
    let from = parse_mailbox(&settings.mail_from, "MAIL_FROM")?;
    let contact = settings
        .contact_email
        .as_deref()
        .map(|address| parse_mailbox(address, "CONTACT_EMAIL"))
        .transpose()?;
    let base = match &config.http.public_url {
        Some(url) => url.clone(),
        None => {
            let address = listener.local_addr()?;
            let host = if address.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                address.ip().to_string()
            };
            format!("http://{host}:{}", address.port())
        }
    };
    let subject = match &settings.vapid_subject {
        Some(subject) => subject.clone(),
        None => format!("mailto:{}", from.email),
    };
    let push = PushSender::new(vapid, subject, settings.push_allow_http, PUSH_TIMEOUT)
        .context("VAPID_SUBJECT")?;
    tracing::info!(mail = %mailer.describe(), links = %base, "deliveries ready");
    Ok(DeliveryWorker::new(
        store,
        mailer,
        from,
        contact,
        push,
        presence,
        Links { base },
        settings.clone(),
        wake,
    ))
}

/// The real-time channel the configuration asks for.
fn realtime(
    config: &Config,
    bus_key: BusKey,
    store: Arc<dyn Store>,
    authenticator: Arc<Authenticator>,
) -> anyhow::Result<Realtime> {
    // Names this instance on the bus, so that it skips its own messages.
    let instance = Uuid::new_v4();
    let bus: Arc<dyn EventBus> = match config.bus_kind() {
        BusKind::Memory => Arc::new(MemoryBus),
        // `validate` made sure the database is PostgreSQL.
        BusKind::Postgres => Arc::new(PostgresBus::new(config.database_url(), instance, bus_key)),
        BusKind::Redis => Arc::new(
            RedisBus::new(
                config
                    .redis_url()
                    .context("EVENT_BUS=redis needs REDIS_URL")?
                    .expose(),
                instance,
                bus_key,
            )
            .context("invalid REDIS_URL")?,
        ),
    };
    Ok(Realtime::new(
        bus,
        instance,
        config.realtime.clone(),
        store,
        authenticator,
    ))
}

/// The rate limiter: counters in Redis when one is configured, else in this process.
fn rate_limiter(config: &Config) -> anyhow::Result<RateLimiter> {
    let redis = config.redis_url();
    let limiter = RateLimiter::new(
        config.limits.rate_limits.clone(),
        redis.as_ref().map(|url| url.expose()),
    )
    .context("invalid REDIS_URL")?;
    let counters = match (limiter.is_off(), &redis) {
        (true, _) => "off",
        (false, Some(_)) => "redis",
        (false, None) => "in-process",
    };
    tracing::info!(counters, "rate limits ready");
    Ok(limiter)
}

/// Drops in-process rate-limit counters that have recovered, every minute: their keys
/// (addresses, e-mails) come from clients, so the maps must not grow without end.
async fn forget_idle_limits(limits: Arc<RateLimiter>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        limits.forget_idle();
    }
}

/// Forgets sessions past their absolute lifetime (no token of theirs can work), and
/// expired project invitations, every hour.
async fn prune_sessions(svc: Services) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match svc.store.prune_sessions(crate::domain::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "expired sessions removed"),
            Err(err) => tracing::warn!(error = %err, "pruning sessions failed"),
        }
        match svc.store.prune_invitations(crate::domain::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "expired invitations removed"),
            Err(err) => tracing::warn!(error = %err, "pruning invitations failed"),
        }
    }
}

/// Deletes notifications past NOTIFICATION_RETENTION every five minutes (each instance
/// sweeps; a deletion another instance made first is simply not found again).
async fn sweep_expired_notifications(svc: Services) {
    const BATCH: i64 = 100;
    let mut every = tokio::time::interval(Duration::from_secs(300));
    loop {
        every.tick().await;
        loop {
            match crate::service::notifications::sweep_expired(&svc, BATCH).await {
                Ok(visited) if (visited as i64) < BATCH => break,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "sweeping expired notifications failed");
                    break;
                }
            }
        }
    }
}

/// How long one push to a push service may take (connect to answer). Push services
/// answer within a second; a longer bound would let endpoints that never answer (one a
/// user subscribed on purpose) hold the worker's sending slots longer.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The web-push key: VAPID_PRIVATE_KEY; else, on PostgreSQL, one derived from the JWT
/// secret (every instance must push with the same key, since browsers bind their
/// subscriptions to it, and they already share that secret); else one generated and
/// kept in DATA_DIR, like the JWT secret.
fn vapid_key(config: &Config, jwt_secret: &Secret) -> anyhow::Result<VapidKey> {
    use hmac::{Hmac, Mac};
    if let Some(key) = &config.delivery.vapid_private_key {
        return VapidKey::from_base64url(key.expose()).context("VAPID_PRIVATE_KEY");
    }
    if !config.database_url().is_postgres() {
        return VapidKey::load_or_create(&config.data_dir.join("vapid.key"));
    }
    // A P-256 scalar from the secret; the rare digest that is not a valid scalar (zero or
    // past the group order) moves on to the next counter.
    for counter in 0u8..=255 {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(jwt_secret.expose().as_bytes())
            .context("deriving the VAPID key")?;
        mac.update(b"taskstream vapid key");
        mac.update(&[counter]);
        let scalar = mac.finalize().into_bytes();
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(scalar);
        if let Ok(key) = VapidKey::from_base64url(&encoded) {
            return Ok(key);
        }
    }
    anyhow::bail!("cannot derive a VAPID key from the JWT secret; set VAPID_PRIVATE_KEY")
}

/// The configured secret; on the embedded database without one, a random secret kept in
/// DATA_DIR (so tokens survive restarts). With PostgreSQL `validate` requires one, since
/// every instance has to share it.
fn jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    match &config.auth.jwt_secret {
        Some(secret) => Ok(secret.clone()),
        None => load_or_create_secret(&config.data_dir.join("jwt_secret")),
    }
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(Secret::new(existing));
        }
        anyhow::bail!("{} holds a secret shorter than 32 bytes", path.display());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::config::write_private_file(path, &secret)
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret for the embedded database");
    Ok(Secret::new(secret))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
