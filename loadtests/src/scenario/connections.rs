//! `connections`: opens N authenticated WebSockets to one instance and holds them; reports
//! the connect rate, the failures and the server's memory per socket (RSS before and
//! after, from its metrics endpoint or /proc).
//!
//! One process may hold only about as many sockets as its open-file limit, so the clients
//! can be split over worker processes (this same binary, run with the hidden
//! `connections-worker` subcommand) and over source addresses in 127.0.0.0/8, so that no
//! source address runs out of ephemeral ports.
//!
//! The parent writes the worker's job as one JSON line on its stdin and later `close`;
//! the worker answers with JSON lines on stdout: progress, `opened`, then `done`.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use clap::Args;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{close_ws, connect_ws, sign_up_users, Api, WsTarget};
use crate::metrics::{delta, ServerProbe, ServerSample};
use crate::progress::{warn, Progress, Ui};
use crate::report::{
    self, add_counts, bump, fmt_bytes, histogram, or_na, Counts, Histogram, LatencySummary,
    ScenarioReport,
};
use crate::sys::{raise_fd_limit, sockets_per_process, FdLimit, SourceAddrs};
use crate::{DEFAULT_METRICS, DEFAULT_URL};

/// The hidden subcommand a worker process runs.
pub const WORKER_SUBCOMMAND: &str = "connections-worker";

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// WebSockets to open.
    #[arg(long)]
    pub count: usize,
    /// Base URL of the server.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The server's metrics listener (METRICS_BIND); "" to skip it.
    #[arg(long, default_value = DEFAULT_METRICS)]
    pub metrics: String,
    /// The server's pid, to read its RSS from /proc when the metrics endpoint is absent.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Processes to spread the sockets over (default: as many as the open-file limit
    /// needs; 1 keeps everything in this process).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Users to sign up (at least count / --max-per-user).
    #[arg(long)]
    pub users: Option<usize>,
    /// Seconds to hold the sockets open once they are all open.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Sockets one user may hold (the server's WS_MAX_CONNECTIONS_PER_USER).
    #[arg(long, default_value_t = 20)]
    pub max_per_user: usize,
    /// Loopback source addresses to spread the sockets over (default: one per 10,000;
    /// 0 lets the kernel choose).
    #[arg(long)]
    pub source_addrs: Option<usize>,
    /// Sockets being opened at once (in each process).
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 32)]
    pub signup_concurrency: usize,
    /// Seconds one socket may take to open (TCP, upgrade, `ready`).
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
}

impl ConnectionsArgs {
    pub fn new(count: usize, url: &str) -> Self {
        Self {
            count,
            url: url.to_string(),
            metrics: String::new(),
            server_pid: None,
            workers: Some(1),
            users: None,
            hold: 1,
            max_per_user: 20,
            source_addrs: None,
            connect_concurrency: 256,
            signup_concurrency: 32,
            connect_timeout: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub url: String,
    pub requested: usize,
    pub users: usize,
    pub workers: usize,
    pub source_addrs: Vec<IpAddr>,
    /// This process's open-file limit (raised to the hard limit).
    pub fd_limit: FdLimit,
    pub opened: u64,
    pub failed: u64,
    pub failures: Counts,
    /// Sockets that ended while held.
    pub dropped: u64,
    pub drop_reasons: Counts,
    pub connect_seconds: f64,
    pub connect_rate_per_s: f64,
    /// Time to open one socket (TCP connect, upgrade, `ready`).
    pub connect_latency: LatencySummary,
    pub server_before: ServerSample,
    pub server_after_open: ServerSample,
    pub server_after_hold: ServerSample,
    pub rss_delta_bytes: Option<f64>,
    pub rss_per_connection_bytes: Option<f64>,
    pub fds_per_connection: Option<f64>,
    pub passed: bool,
}

impl ScenarioReport for ConnectionsReport {
    fn scenario(&self) -> &'static str {
        "connections"
    }

    fn summary(&self) -> String {
        format!(
            "connections: {}/{} open ({} failed, {} dropped) in {:.1} s = {:.0}/s over {} \
             worker(s), {} source address(es); server RSS {} per connection (delta {}), \
             open fds {}, ws gauge {}; fd limit {} => {}",
            self.opened,
            self.requested,
            self.failed,
            self.dropped,
            self.connect_seconds,
            self.connect_rate_per_s,
            self.workers,
            self.source_addrs.len().max(1),
            or_na(self.rss_per_connection_bytes, fmt_bytes),
            or_na(self.rss_delta_bytes, fmt_bytes),
            or_na(self.server_after_open.open_fds, |v| format!("{v:.0}")),
            or_na(self.server_after_open.ws_connections, |v| format!("{v:.0}")),
            self.fd_limit.soft,
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

/// What one process is asked to open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub url: String,
    pub tokens: Vec<String>,
    /// (index into `tokens`, source address).
    pub clients: Vec<(usize, Option<IpAddr>)>,
    pub concurrency: usize,
    pub connect_timeout_s: u64,
}

/// What a process holding sockets reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldStats {
    pub opened: u64,
    pub failed: u64,
    pub failures: Counts,
    pub dropped: u64,
    pub drop_reasons: Counts,
    /// The connect-latency histogram as (µs, count) pairs.
    pub connect_latency: Vec<(u64, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WorkerMessage {
    Progress {
        opened: u64,
        failed: u64,
        dropped: u64,
    },
    Opened {
        stats: HoldStats,
    },
    Done {
        stats: HoldStats,
    },
    Error {
        message: String,
    },
}

/// Sockets held by this process.
struct Holder {
    opened: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    failures: Arc<Mutex<Counts>>,
    drop_reasons: Arc<Mutex<Counts>>,
    latency: Arc<Mutex<Histogram>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    total: u64,
}

impl Holder {
    /// Starts one task per socket: open (at most `concurrency` at once), then read (so
    /// that pings are answered) until stopped.
    async fn start(job: &Job) -> anyhow::Result<Self> {
        let target = Arc::new(WsTarget::resolve(&job.url).await?);
        let (stop, stop_rx) = watch::channel(false);
        let mut holder = Self {
            opened: Arc::default(),
            failed: Arc::default(),
            dropped: Arc::default(),
            failures: Arc::default(),
            drop_reasons: Arc::default(),
            latency: Arc::new(Mutex::new(histogram())),
            stop,
            tasks: JoinSet::new(),
            total: job.clients.len() as u64,
        };
        let permits = Arc::new(Semaphore::new(job.concurrency.max(1)));
        let timeout = Duration::from_secs(job.connect_timeout_s.max(1));
        for &(user, source) in &job.clients {
            let token = job
                .tokens
                .get(user)
                .cloned()
                .ok_or_else(|| anyhow!("job names token {user} of {}", job.tokens.len()))?;
            let target = target.clone();
            let permits = permits.clone();
            let mut stop_rx = stop_rx.clone();
            let (opened, failed, dropped) = (
                holder.opened.clone(),
                holder.failed.clone(),
                holder.dropped.clone(),
            );
            let (failures, drop_reasons, latency) = (
                holder.failures.clone(),
                holder.drop_reasons.clone(),
                holder.latency.clone(),
            );
            holder.tasks.spawn(async move {
                let connected = {
                    let _permit = permits.acquire().await;
                    let t0 = Instant::now();
                    let result = connect_ws(&target, &token, None, source, timeout).await;
                    if result.is_ok() {
                        if let Ok(mut h) = latency.lock() {
                            report::record(&mut h, t0.elapsed().as_micros() as u64);
                        }
                    }
                    result
                };
                let mut ws = match connected {
                    Ok((ws, _)) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        ws
                    }
                    Err(err) => {
                        if let Ok(mut f) = failures.lock() {
                            bump(&mut f, err.key());
                        }
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let reason = loop {
                    tokio::select! {
                        changed = stop_rx.changed() => {
                            if changed.is_err() || *stop_rx.borrow() {
                                close_ws(ws).await;
                                return;
                            }
                        }
                        frame = ws.next() => match frame {
                            Some(Ok(Message::Close(frame))) => {
                                break frame.map_or("closed".to_string(), |f| format!("closed {}", u16::from(f.code)));
                            }
                            Some(Ok(_)) => {}
                            Some(Err(err)) => break format!("error: {err}"),
                            None => break "ended".to_string(),
                        }
                    }
                };
                dropped.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut d) = drop_reasons.lock() {
                    bump(&mut d, reason);
                }
            });
        }
        Ok(holder)
    }

    fn counts(&self) -> (u64, u64, u64) {
        (
            self.opened.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    fn all_attempted(&self) -> bool {
        let (opened, failed, _) = self.counts();
        opened + failed >= self.total
    }

    fn stats(&self) -> HoldStats {
        let (opened, failed, dropped) = self.counts();
        HoldStats {
            opened,
            failed,
            failures: self.failures.lock().map(|f| f.clone()).unwrap_or_default(),
            dropped,
            drop_reasons: self
                .drop_reasons
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default(),
            connect_latency: self
                .latency
                .lock()
                .map(|h| report::histogram_pairs(&h))
                .unwrap_or_default(),
        }
    }

    /// Closes every socket and waits for the tasks.
    async fn close(mut self) -> HoldStats {
        let _ = self.stop.send(true);
        let join_all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), join_all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        self.stats()
    }
}

/// The sockets, wherever they are held.
enum Fleet {
    Local(Holder),
    Workers(Vec<Worker>),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    messages: tokio::sync::mpsc::UnboundedReceiver<WorkerMessage>,
    last: (u64, u64, u64),
    opened: Option<HoldStats>,
}

impl Worker {
    async fn spawn(job: &Job) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to run workers")?;
        let mut child = Command::new(exe)
            .arg(WORKER_SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("worker stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("worker stdout"))?;
        let mut line = serde_json::to_string(job)?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await?;
        let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(message) = serde_json::from_str::<WorkerMessage>(&line) {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            messages,
            last: (0, 0, 0),
            opened: None,
        })
    }

    /// Takes in whatever the worker said; errors if it reported an error, or ended its
    /// output (exited) without reporting `done`.
    fn poll(&mut self) -> anyhow::Result<Option<HoldStats>> {
        // Checked before draining: once closed, everything it sent is already queued.
        let ended = self.messages.is_closed();
        let mut done = None;
        while let Ok(message) = self.messages.try_recv() {
            match message {
                WorkerMessage::Progress {
                    opened,
                    failed,
                    dropped,
                } => self.last = (opened, failed, dropped),
                WorkerMessage::Opened { stats } => {
                    self.last = (stats.opened, stats.failed, stats.dropped);
                    self.opened = Some(stats);
                }
                WorkerMessage::Done { stats } => {
                    self.last = (stats.opened, stats.failed, stats.dropped);
                    done = Some(stats);
                }
                WorkerMessage::Error { message } => bail!("worker failed: {message}"),
            }
        }
        if ended && done.is_none() {
            bail!("a worker process ended without finishing (see its messages above)");
        }
        Ok(done)
    }
}

impl Fleet {
    fn counts(&mut self) -> anyhow::Result<(u64, u64, u64)> {
        match self {
            Fleet::Local(holder) => Ok(holder.counts()),
            Fleet::Workers(workers) => {
                let mut total = (0, 0, 0);
                for worker in workers.iter_mut() {
                    worker.poll()?;
                    total.0 += worker.last.0;
                    total.1 += worker.last.1;
                    total.2 += worker.last.2;
                }
                Ok(total)
            }
        }
    }

    fn all_attempted(&mut self) -> anyhow::Result<bool> {
        match self {
            Fleet::Local(holder) => Ok(holder.all_attempted()),
            Fleet::Workers(workers) => {
                for worker in workers.iter_mut() {
                    worker.poll()?;
                }
                Ok(workers.iter().all(|w| w.opened.is_some()))
            }
        }
    }

    async fn close(self) -> anyhow::Result<HoldStats> {
        match self {
            Fleet::Local(holder) => Ok(holder.close().await),
            Fleet::Workers(mut workers) => {
                for worker in &mut workers {
                    let _ = worker.stdin.write_all(b"close\n").await;
                    let _ = worker.stdin.flush().await;
                }
                let mut total = HoldStats::default();
                let mut latency = histogram();
                for mut worker in workers {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let stats = loop {
                        if let Some(stats) = worker.poll()? {
                            break stats;
                        }
                        if Instant::now() > deadline {
                            bail!("a worker did not finish closing its sockets");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    };
                    let _ = worker.child.wait().await;
                    total.opened += stats.opened;
                    total.failed += stats.failed;
                    total.dropped += stats.dropped;
                    add_counts(&mut total.failures, &stats.failures);
                    add_counts(&mut total.drop_reasons, &stats.drop_reasons);
                    report::merge(
                        &mut latency,
                        &report::histogram_from_pairs(&stats.connect_latency),
                    );
                }
                total.connect_latency = report::histogram_pairs(&latency);
                Ok(total)
            }
        }
    }
}

pub async fn run(args: &ConnectionsArgs, ui: Ui) -> anyhow::Result<ConnectionsReport> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let started_at = Utc::now().to_rfc3339();
    let fd_limit = raise_fd_limit();
    let per_process = sockets_per_process(fd_limit);
    let workers = args
        .workers
        .unwrap_or_else(|| args.count.div_ceil(per_process))
        .clamp(1, args.count);
    if args.count.div_ceil(workers) > per_process {
        warn(format!(
            "{} sockets in {workers} process(es) is more than the open-file limit ({}) \
             allows each; use --workers {}",
            args.count,
            fd_limit.soft,
            args.count.div_ceil(per_process)
        ));
    }
    let needed_users = args.count.div_ceil(args.max_per_user.max(1));
    let users = match args.users {
        Some(users) if users < needed_users => {
            warn(format!(
                "--users {users} cannot hold {} sockets at {} per user: using {needed_users}",
                args.count, args.max_per_user
            ));
            needed_users
        }
        Some(users) => users,
        None => needed_users,
    };
    let api = Api::new(&args.url)?;
    let target = WsTarget::resolve(&args.url).await?;
    let sources = SourceAddrs::for_target(
        target.addr,
        args.source_addrs
            .unwrap_or_else(|| SourceAddrs::default_count(args.count)),
    );
    let probe = ServerProbe::new(&args.metrics, args.server_pid);

    let accounts = sign_up_users(
        std::slice::from_ref(&api),
        users,
        args.signup_concurrency,
        ui,
    )
    .await?;
    let tokens: Vec<String> = accounts.into_iter().map(|a| a.token).collect();

    let before = probe.sample().await;
    if before.source == "none" {
        warn(format!(
            "no server metrics at {} (and no --server-pid): memory per connection is n/a",
            if args.metrics.is_empty() {
                "(disabled)"
            } else {
                &args.metrics
            }
        ));
    }

    // Client i: user i % users, source address i % sources, process i % workers.
    let mut jobs: Vec<Job> = (0..workers)
        .map(|_| Job {
            url: args.url.clone(),
            tokens: tokens.clone(),
            clients: Vec::new(),
            concurrency: args.connect_concurrency,
            connect_timeout_s: args.connect_timeout,
        })
        .collect();
    for i in 0..args.count {
        jobs[i % workers].clients.push((i % users, sources.pick(i)));
    }

    let progress = Progress::new(ui, "connect", Some(args.count as u64));
    let start = Instant::now();
    let mut fleet = if workers == 1 {
        Fleet::Local(Holder::start(&jobs[0]).await?)
    } else {
        let mut spawned = Vec::new();
        for job in &jobs {
            spawned.push(Worker::spawn(job).await?);
        }
        Fleet::Workers(spawned)
    };
    loop {
        let (opened, failed, dropped) = fleet.counts()?;
        progress.set_position(opened + failed);
        let rate = opened as f64 / start.elapsed().as_secs_f64().max(0.001);
        progress.set_message(format!(
            "{opened} open ({rate:.0}/s), {failed} failed, {dropped} dropped"
        ));
        if fleet.all_attempted()? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_seconds = start.elapsed().as_secs_f64();
    let (opened, failed, _) = fleet.counts()?;
    progress.finish(format!(
        "{opened} open, {failed} failed in {connect_seconds:.1} s"
    ));

    // Let the server settle (allocations after the last upgrade), then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_open = probe.sample().await;

    let hold = Progress::new(ui, "hold", Some(args.hold));
    let hold_start = Instant::now();
    while hold_start.elapsed() < Duration::from_secs(args.hold) {
        let (open, _, dropped) = fleet.counts()?;
        hold.set_position(hold_start.elapsed().as_secs());
        hold.set_message(format!("{} held, {dropped} dropped", open - dropped));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after_hold = probe.sample().await;
    hold.finish(format!("held for {} s", args.hold));

    let stats = fleet.close().await?;
    let rss_delta = delta(before.rss_bytes, after_open.rss_bytes);
    let per_connection = |d: Option<f64>| {
        d.filter(|_| stats.opened > 0)
            .map(|d| d / stats.opened as f64)
    };
    let report = ConnectionsReport {
        scenario: "connections",
        started_at,
        url: args.url.clone(),
        requested: args.count,
        users,
        workers,
        source_addrs: sources.as_slice().to_vec(),
        fd_limit,
        opened: stats.opened,
        failed: stats.failed,
        failures: stats.failures.clone(),
        dropped: stats.dropped,
        drop_reasons: stats.drop_reasons.clone(),
        connect_seconds,
        connect_rate_per_s: stats.opened as f64 / connect_seconds.max(0.001),
        connect_latency: LatencySummary::of(&report::histogram_from_pairs(&stats.connect_latency)),
        rss_delta_bytes: rss_delta,
        rss_per_connection_bytes: per_connection(rss_delta),
        fds_per_connection: per_connection(delta(before.open_fds, after_open.open_fds)),
        server_before: before,
        server_after_open: after_open,
        server_after_hold: after_hold,
        passed: stats.failed == 0 && stats.dropped == 0 && stats.opened == args.count as u64,
    };
    Ok(report)
}

/// The worker process: reads its job from stdin, opens and holds the sockets, reports on
/// stdout, closes them when stdin says `close` (or ends).
pub async fn worker_main() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let first = stdin
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("no job on stdin"))?;
    let job: Job = serde_json::from_str(&first).context("the job on stdin")?;
    let holder = match Holder::start(&job).await {
        Ok(holder) => holder,
        Err(err) => {
            emit(&WorkerMessage::Error {
                message: format!("{err:#}"),
            });
            return Err(err);
        }
    };
    while !holder.all_attempted() {
        let (opened, failed, dropped) = holder.counts();
        emit(&WorkerMessage::Progress {
            opened,
            failed,
            dropped,
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    emit(&WorkerMessage::Opened {
        stats: holder.stats(),
    });
    loop {
        tokio::select! {
            line = stdin.next_line() => match line {
                Ok(Some(line)) if line.trim() != "close" => continue,
                _ => break,
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                let (opened, failed, dropped) = holder.counts();
                emit(&WorkerMessage::Progress { opened, failed, dropped });
            }
        }
    }
    let stats = holder.close().await;
    emit(&WorkerMessage::Done { stats });
    Ok(())
}

fn emit(message: &WorkerMessage) {
    if let Ok(line) = serde_json::to_string(message) {
        println!("{line}");
    }
}
