//! `fanout`: N WebSocket clients over U users (and over the instances), writers making REST
//! mutations at R per second, and every client checking its stream: each event exactly
//! once, in order, none missing at the end; end-to-end latency from the event's commit
//! time (`at`) to its arrival.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::client::{
    connect_ws, sign_up_users, Account, Api, ConnectError, Incoming, Seen, StreamChecker, Ws,
    WsTarget,
};
use crate::progress::{warn, Progress, Ui};
use crate::report::{
    self, add_counts, bump, histogram, Counts, Histogram, LatencySummary, PlotData, ScenarioReport,
    Timeline,
};
use crate::sys::{raise_fd_limit, FdLimit, SourceAddrs};
use crate::workload::TaskPool;

use super::measured_socket::{self, wait_connected, MeasuredClient, Resumes, CONNECT_TIMEOUT};
pub use super::open_loop::WriteStats;
use super::open_loop::{delivery_status, OpenLoop, PlannedWrite};
use crate::DEFAULT_URL;

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// WebSocket clients.
    #[arg(long)]
    pub clients: usize,
    /// Users the clients (and the writes) are spread over, round robin.
    #[arg(long)]
    pub users: usize,
    /// REST mutations per second, in total.
    #[arg(long)]
    pub rate: f64,
    /// Seconds of writing.
    #[arg(long)]
    pub duration: u64,
    /// Comma-separated base URLs; clients and writes go round robin over them.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_URL)]
    pub instances: Vec<String>,
    /// Sockets one user may hold on one instance (the server's
    /// WS_MAX_CONNECTIONS_PER_USER).
    #[arg(long, default_value_t = 20)]
    pub max_per_user: usize,
    /// Seconds to wait, after the last write, for every client to catch up.
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
    /// Writes in flight at most; a write due while this many are pending is skipped
    /// (and counted).
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Loopback source addresses to spread the sockets over (default: one per 10,000).
    #[arg(long)]
    pub source_addrs: Option<usize>,
}

impl FanoutArgs {
    /// The defaults of every optional flag.
    pub fn new(clients: usize, users: usize, rate: f64, duration: u64) -> Self {
        Self {
            clients,
            users,
            rate,
            duration,
            instances: vec![DEFAULT_URL.to_string()],
            max_per_user: 20,
            drain: 15,
            connect_concurrency: 256,
            signup_concurrency: 16,
            max_in_flight: 512,
            source_addrs: None,
        }
    }
}

/// The clients' side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStats {
    pub connected: u64,
    pub connect_failures: Counts,
    /// Events every client should have received: its user's seqs after its start.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Missing events that arrived after a later one (counted in out_of_order too).
    pub late: u64,
    /// `reset` messages (events past retention).
    pub resets: u64,
    /// Events beyond the user's final seq (the stream held more than the writes made).
    pub unexpected: u64,
    pub reconnects: u64,
    pub reconnect_failures: u64,
    /// Why sockets ended during the run, by close code (or "transport").
    pub closes: Counts,
    /// `error` messages from the server, by code.
    pub server_errors: Counts,
    /// Clients still behind when the drain timed out.
    pub behind_at_end: u64,
    /// Events whose `at` was after their arrival (clock trouble); latency counted as 0.
    pub negative_latency: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub instances: Vec<String>,
    pub clients: usize,
    pub users: usize,
    pub rate: f64,
    pub duration_s: u64,
    pub source_addrs: usize,
    pub fd_limit: FdLimit,
    pub connect_seconds: f64,
    pub writes: WriteStats,
    pub stream: StreamStats,
    /// End-to-end latency: commit (`at`) to arrival at the client.
    pub latency: LatencySummary,
    pub passed: bool,
}

impl ScenarioReport for FanoutReport {
    fn scenario(&self) -> &'static str {
        "fanout"
    }

    fn summary(&self) -> String {
        let s = &self.stream;
        format!(
            "fanout: {} clients/{} users on {} instance(s), {}/{} writes ok ({:.1}/s, {} errors, \
             {} skipped); delivered {}/{} lost {} dup {} ooo {} reconnects {}; e2e {} => {}",
            s.connected,
            self.users,
            self.instances.len(),
            self.writes.ok,
            self.writes.planned,
            self.writes.achieved_rate,
            self.writes.errors.values().sum::<u64>(),
            self.writes.skipped,
            s.delivered,
            s.expected,
            s.lost,
            s.duplicated,
            s.out_of_order,
            s.reconnects,
            self.latency.line(),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

const SHARDS: usize = 16;

#[derive(Default)]
struct LatencyShard {
    all: Option<Histogram>,
    timeline: Timeline,
    negative: u64,
}

/// What every client task shares.
struct Shared {
    shards: Vec<Mutex<LatencyShard>>,
    /// When the writers started: the origin of the timeline.
    load_start: OnceLock<Instant>,
    connected: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    reconnects: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            load_start: OnceLock::new(),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    fn record_latency(&self, client: usize, micros: i64) {
        let second = self
            .load_start
            .get()
            .map_or(0, |start| start.elapsed().as_secs() as usize);
        let Ok(mut shard) = self.shards[client % SHARDS].lock() else {
            return;
        };
        let micros = if micros < 0 {
            shard.negative += 1;
            0
        } else {
            micros as u64
        };
        report::record(shard.all.get_or_insert_with(histogram), micros);
        shard.timeline.record(second, micros);
    }
}

/// One client's state, read by the main task during the drain and at the end.
#[derive(Debug, Default)]
struct ClientState {
    checker: StreamChecker,
    connected: bool,
    failure: Option<String>,
    resumes: Resumes,
    resets: u64,
    server_errors: Counts,
}

struct ClientSpec {
    index: usize,
    token: String,
    instance: usize,
    source: Option<std::net::IpAddr>,
}

pub async fn run(args: &FanoutArgs, ui: Ui) -> anyhow::Result<(FanoutReport, PlotData)> {
    if args.clients == 0 || args.users == 0 {
        bail!("--clients and --users must be at least 1");
    }
    if args.rate.is_nan() || args.rate <= 0.0 || args.duration == 0 {
        bail!("--rate must be positive and --duration at least 1 s");
    }
    if args.instances.is_empty() {
        bail!("--instances names no instance");
    }
    let instances = args.instances.len();
    let per_user = args.clients.div_ceil(args.users);
    if per_user > args.max_per_user * instances {
        bail!(
            "{} clients over {} users is {per_user} sockets per user, over the server's \
             limit of {} per user and instance: use --users {} or more (or raise \
             WS_MAX_CONNECTIONS_PER_USER on the server and pass --max-per-user)",
            args.clients,
            args.users,
            args.max_per_user,
            args.clients.div_ceil(args.max_per_user * instances)
        );
    }
    let fd_limit = raise_fd_limit();
    if args.clients as u64 + 200 > fd_limit.soft {
        warn(format!(
            "{} clients need more open files than this process may have ({}); \
             expect connect failures",
            args.clients, fd_limit.soft
        ));
    }
    let started_at = Utc::now().to_rfc3339();
    let apis = args
        .instances
        .iter()
        .map(|base| Api::new(base))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut targets = Vec::new();
    for base in &args.instances {
        targets.push(WsTarget::resolve(base).await?);
    }
    let sources = SourceAddrs::for_target(
        targets[0].addr,
        args.source_addrs
            .unwrap_or_else(|| SourceAddrs::default_count(args.clients)),
    );

    let accounts = sign_up_users(&apis, args.users, args.signup_concurrency, ui).await?;

    // Clients: user i % U; instance rotating per round so that each user's clients (and
    // writes) spread over every instance even when U is a multiple of the instance count.
    let shared = Arc::new(Shared::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let connect_permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let targets = Arc::new(targets);
    let mut states = Vec::with_capacity(args.clients);
    let mut tasks = JoinSet::new();
    let connect_start = Instant::now();
    for index in 0..args.clients {
        let state = Arc::new(Mutex::new(ClientState::default()));
        states.push((index % args.users, state.clone()));
        let spec = ClientSpec {
            index,
            token: accounts[index % args.users].token.clone(),
            instance: (index + index / args.users) % instances,
            source: sources.pick(index),
        };
        tasks.spawn(client_task(
            spec,
            targets.clone(),
            state,
            shared.clone(),
            connect_permits.clone(),
            stop_rx.clone(),
        ));
    }
    wait_connected(&shared.connected, &shared.failed, args.clients, ui).await;
    let connect_seconds = connect_start.elapsed().as_secs_f64();

    // Writes.
    let load_start = Instant::now();
    let _ = shared.load_start.set(load_start);
    let pools: Vec<Arc<TaskPool>> = (0..args.users).map(|_| Arc::default()).collect();
    let writer = OpenLoop {
        rate: args.rate,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
        label: "fanout",
    };
    let (users, instances) = (accounts.len(), apis.len());
    let (write_stats, write_latency) = writer
        .run(
            ui,
            || delivery_status(&shared.delivered, &shared.reconnects),
            |k, _| PlannedWrite {
                api: apis[(k + k / users) % instances].clone(),
                token: accounts[k % users].token.clone(),
                pool: pools[k % users].clone(),
                project_id: None,
            },
        )
        .await;

    // Where every user's stream ended, then wait for the clients to get there.
    let finals = final_seqs(&apis, &accounts, &states).await?;
    let behind = drain(&states, &finals, Duration::from_secs(args.drain), ui).await;
    let _ = stop_tx.send(true);
    let join_all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(15), join_all)
        .await
        .is_err()
    {
        tasks.abort_all();
    }

    // Tally.
    let mut stream = StreamStats {
        behind_at_end: behind,
        ..StreamStats::default()
    };
    for (user, state) in &states {
        let Ok(state) = state.lock() else { continue };
        if !state.connected {
            bump(
                &mut stream.connect_failures,
                state
                    .failure
                    .clone()
                    .unwrap_or_else(|| "not connected".into()),
            );
            continue;
        }
        let final_seq = finals[*user];
        let c = &state.checker;
        stream.connected += 1;
        stream.expected += (final_seq - c.start).max(0) as u64;
        stream.delivered += c.delivered;
        stream.lost += c.lost(final_seq);
        stream.duplicated += c.duplicated;
        stream.out_of_order += c.out_of_order;
        stream.late += c.late;
        stream.unexpected += c.beyond(final_seq);
        stream.resets += state.resets;
        stream.reconnects += state.resumes.reconnects;
        stream.reconnect_failures += state.resumes.reconnect_failures;
        add_counts(&mut stream.closes, &state.resumes.closes);
        add_counts(&mut stream.server_errors, &state.server_errors);
    }
    let mut all = histogram();
    let mut timeline = Timeline::default();
    for shard in &shared.shards {
        if let Ok(shard) = shard.lock() {
            if let Some(h) = &shard.all {
                report::merge(&mut all, h);
            }
            timeline.merge(&shard.timeline);
            stream.negative_latency += shard.negative;
        }
    }
    let passed = write_stats.ok > 0
        && stream.delivered > 0
        && stream.connect_failures.is_empty()
        && stream.lost == 0
        && stream.duplicated == 0
        && stream.out_of_order == 0
        && stream.resets == 0
        && stream.unexpected == 0;
    let report = FanoutReport {
        scenario: "fanout",
        started_at,
        instances: args.instances.clone(),
        clients: args.clients,
        users: args.users,
        rate: args.rate,
        duration_s: args.duration,
        source_addrs: sources.len(),
        fd_limit,
        connect_seconds,
        writes: write_stats,
        stream,
        latency: LatencySummary::of(&all),
        passed,
    };
    let plot = PlotData {
        title: format!(
            "fanout: {} clients, {} users, {} writes/s",
            args.clients, args.users, args.rate
        ),
        cdf: vec![
            ("event commit to client (end to end)".into(), all),
            ("write request (REST round trip)".into(), write_latency),
        ],
        timeline: vec![
            ("p50".into(), timeline.quantile_points(0.50)),
            ("p99".into(), timeline.quantile_points(0.99)),
            ("max".into(), timeline.quantile_points(1.0)),
        ],
        timeline_caption: "end-to-end latency per second".into(),
    };
    Ok((report, plot))
}

/// One client: connect, then read and check, resuming with `since` (see
/// [`measured_socket`]), until told to stop.
async fn client_task(
    spec: ClientSpec,
    targets: Arc<Vec<WsTarget>>,
    state: Arc<Mutex<ClientState>>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let first = {
        let _permit = permits.acquire().await;
        connect_ws(
            &targets[spec.instance],
            &spec.token,
            None,
            spec.source,
            CONNECT_TIMEOUT,
        )
        .await
    };
    let ws = match first {
        Ok((ws, last_seq)) => {
            if let Ok(mut state) = state.lock() {
                state.checker = StreamChecker::new(last_seq);
                state.connected = true;
            }
            shared.connected.fetch_add(1, Ordering::Relaxed);
            ws
        }
        Err(err) => {
            if let Ok(mut state) = state.lock() {
                state.failure = Some(err.key());
            }
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let (instance, jitter) = (spec.instance, (spec.index % 97) as u64);
    let client = Client {
        spec,
        state,
        shared,
    };
    measured_socket::keep_reading(ws, &client, &targets, instance, jitter, &mut stop).await;
}

/// A client as [`measured_socket`] drives it.
struct Client {
    spec: ClientSpec,
    state: Arc<Mutex<ClientState>>,
    shared: Arc<Shared>,
}

impl MeasuredClient for Client {
    fn on_text(&self, text: &str) {
        handle_text(text, self.spec.index, &self.state, &self.shared);
    }

    async fn reconnect(&self, target: &WsTarget) -> Result<Ws, ConnectError> {
        let since = self.state.lock().map(|s| s.checker.last).unwrap_or(0);
        connect_ws(
            target,
            &self.spec.token,
            Some(since),
            self.spec.source,
            CONNECT_TIMEOUT,
        )
        .await
        .map(|(ws, _)| ws)
    }

    fn count(&self, f: impl FnOnce(&mut Resumes, &mut Counts)) {
        if let Ok(mut state) = self.state.lock() {
            let state = &mut *state;
            f(&mut state.resumes, &mut state.server_errors);
        }
    }

    fn on_reconnect(&self) {
        self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

fn handle_text(text: &str, client: usize, state: &Mutex<ClientState>, shared: &Shared) {
    let received = Utc::now();
    let Ok(message) = serde_json::from_str::<Incoming>(text) else {
        if let Ok(mut state) = state.lock() {
            bump(&mut state.server_errors, "unparsable message");
        }
        return;
    };
    let Ok(mut state) = state.lock() else { return };
    match message.kind.as_str() {
        "event" => {
            let Some(seq) = message.seq else {
                bump(&mut state.server_errors, "event without seq");
                return;
            };
            let seen = state.checker.observe(seq);
            drop(state);
            if seen != Seen::Duplicate {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = message.at() {
                    let micros = (received - at).num_microseconds().unwrap_or(i64::MAX);
                    shared.record_latency(client, micros);
                }
            }
        }
        "reset" => {
            state.resets += 1;
            if let Some(last_seq) = message.last_seq {
                state.checker.reset(last_seq);
            }
        }
        "error" => {
            let code = message.code.unwrap_or_else(|| "error".into());
            bump(&mut state.server_errors, code);
        }
        // ready (after a reconnect), pong, auth.expiring, auth.refreshed
        _ => {}
    }
}

/// Every user's latest seq, from `GET /events`.
async fn final_seqs(
    apis: &[Api],
    accounts: &[Account],
    states: &[(usize, Arc<Mutex<ClientState>>)],
) -> anyhow::Result<Vec<i64>> {
    let mut since = vec![0i64; accounts.len()];
    for (user, state) in states {
        if let Ok(state) = state.lock() {
            since[*user] = since[*user].max(state.checker.last);
        }
    }
    let results: Vec<anyhow::Result<i64>> = futures_util::stream::iter(0..accounts.len())
        .map(|user| {
            let token = &accounts[user].token;
            let since = since[user];
            async move {
                // Any instance will do (one may be gone after a failover test).
                let mut last_error = None;
                for i in 0..apis.len() {
                    match apis[(user + i) % apis.len()].latest_seq(token, since).await {
                        Ok(seq) => return Ok(seq),
                        Err(err) => last_error = Some(err),
                    }
                }
                Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no instance")))
            }
        })
        .buffered(32)
        .collect()
        .await;
    results
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("reading the users' latest seqs")
}

/// Waits until every connected client has every seq up to its user's final one, or the
/// timeout; returns how many are still behind.
async fn drain(
    states: &[(usize, Arc<Mutex<ClientState>>)],
    finals: &[i64],
    timeout: Duration,
    ui: Ui,
) -> u64 {
    let progress = Progress::new(ui, "drain", Some(states.len() as u64));
    let deadline = Instant::now() + timeout;
    loop {
        let behind = states
            .iter()
            .filter(|(user, state)| {
                state
                    .lock()
                    .map(|s| s.connected && !s.checker.caught_up(finals[*user]))
                    .unwrap_or(false)
            })
            .count() as u64;
        progress.set_position(states.len() as u64 - behind);
        progress.set_message(format!("{behind} clients behind"));
        if behind == 0 || Instant::now() >= deadline {
            progress.finish(format!("{behind} clients behind"));
            return behind;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
