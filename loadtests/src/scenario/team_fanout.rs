//! `team-fanout` and `presence-churn`: project streams under load.
//!
//! `team-fanout`: P projects of M members, each member a distinct user with one socket
//! opened with `?projects=true` (members spread over the instances, so every project has
//! members on each), and writers making R project-task writes per second (creates,
//! edits, completions, deletions in the projects, round robin over the projects, each by
//! a random member, through the instances in turn). Every client checks both of its
//! streams (its project's and its own, where notifications about its tasks arrive) by
//! seq: each event exactly once, in order, none missing at the end. Latency is from the
//! event's commit time (`at`) to its arrival, as in `fanout`.
//!
//! `presence-churn`: the same, plus sockets that come and go: `--churn-rate` sockets per
//! second, each of a churn user (members of the projects too, but not measured) that opens
//! with `?projects=true`, reads for `--churn-hold` seconds and closes. Twice as many churn
//! users as sockets alive at once, so each goes online and offline in turn (a presence
//! change each time). The write phase alternates `--phase` seconds without churn and with
//! it (calm first); events are counted in the phase of their commit time, so the p99
//! with and without churn come from the same run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::fanout::StreamStats;
use super::measured_socket::{self, wait_connected, MeasuredClient, Resumes, CONNECT_TIMEOUT};
use super::open_loop::{delivery_status, OpenLoop, PlannedWrite, WriteStats};
use super::team::{self, MachineProbe, MachineState, SetupStats, TeamPlan};
use crate::client::{
    close_ws, connect_ws_auth_message, connect_ws_query, Account, Api, ConnectError, Incoming,
    Seen, StreamChecker, Ws, WsTarget,
};
use crate::pg::Psql;
use crate::progress::{warn, Progress, Ui};
use crate::report::{
    self, add_counts, bump, histogram, Counts, Histogram, LatencySummary, PlotData, ScenarioReport,
    Timeline,
};
use crate::sys::{loopback, raise_fd_limit, FdLimit, SourceAddrs, UnmeasuredLoad};
use crate::workload::TaskPool;
use crate::DEFAULT_URL;

#[derive(Debug, Clone, Args)]
pub struct TeamFanoutArgs {
    /// Projects.
    #[arg(long, default_value_t = 200)]
    pub projects: usize,
    /// Members per project; each is a distinct user with one socket.
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Project-task writes per second, in total.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Comma-separated base URLs; sockets and writes go round robin over them.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_URL)]
    pub instances: Vec<String>,
    /// The servers' PostgreSQL database (setup only: the members are added with SQL).
    #[arg(long)]
    pub database_url: String,
    /// The psql program (default: on PATH, or /usr/lib/postgresql/*/bin/psql).
    #[arg(long)]
    pub psql: Option<PathBuf>,
    /// Comma-separated metrics listeners of the instances, for their CPU time.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Churn sockets opened per second (each held `--churn-hold` s); 0: none.
    #[arg(long, default_value_t = 0.0)]
    pub churn_rate: f64,
    /// Seconds each churn socket stays open.
    #[arg(long, default_value_t = 1.0)]
    pub churn_hold: f64,
    /// Churn users (default: twice the sockets alive at once, so each one goes offline
    /// between its sockets).
    #[arg(long)]
    pub churn_users: Option<usize>,
    /// Projects the churn users belong to (the first N; default all): with 1, the churn
    /// costs the same connects but changes one project's presence only.
    #[arg(long)]
    pub churn_projects: Option<usize>,
    /// The churn sockets run on a runtime of their own whose threads have this nice value
    /// (0-19; Linux): they are other people's devices, whose CPU is not this machine's in
    /// production, and must not take cores from the measured clients here. 0 runs them on
    /// the measured clients' runtime.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub churn_nice: i32,
    /// Send the churn sockets to this server instead of the instances, e.g. a
    /// `taskstream-load bare-ws`: the churn then costs the machine its connects and nothing
    /// of taskstream's, which measures the floor under the presence-churn target.
    #[arg(long)]
    pub churn_url: Option<String>,
    /// With churn: seconds per phase, alternately without and with churn (calm first);
    /// 0: churn the whole time.
    #[arg(long, default_value_t = 0)]
    pub phase: u64,
    /// Seconds to wait, after the last write, for every client to catch up.
    #[arg(long, default_value_t = 30)]
    pub drain: u64,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Sign-ups (and project creations) at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
    /// Writes in flight at most; a write due while this many are pending is skipped.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Loopback source addresses for the measured sockets (default: one per 10,000).
    #[arg(long)]
    pub source_addrs: Option<usize>,
}

impl TeamFanoutArgs {
    /// The defaults of every optional flag.
    pub fn new(
        projects: usize,
        members: usize,
        rate: f64,
        duration: u64,
        database_url: &str,
    ) -> Self {
        Self {
            projects,
            members,
            rate,
            duration,
            instances: vec![DEFAULT_URL.to_string()],
            database_url: database_url.to_string(),
            psql: None,
            metrics: Vec::new(),
            churn_rate: 0.0,
            churn_hold: 1.0,
            churn_users: None,
            churn_projects: None,
            churn_nice: 19,
            churn_url: None,
            phase: 0,
            drain: 30,
            connect_concurrency: 256,
            signup_concurrency: 16,
            max_in_flight: 512,
            source_addrs: None,
        }
    }

    fn churn_users(&self) -> usize {
        if self.churn_rate <= 0.0 {
            return 0;
        }
        self.churn_users
            .unwrap_or_else(|| (2.0 * self.churn_rate * self.churn_hold).ceil() as usize)
            .max(1)
    }
}

/// What the churn did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnStats {
    pub rate: f64,
    pub hold_s: f64,
    pub users: usize,
    /// Projects the churn users belong to.
    pub projects: usize,
    pub phase_s: u64,
    /// Sockets due (in churn phases).
    pub planned: u64,
    /// Sockets that got `ready`.
    pub opened: u64,
    pub failed: Counts,
    /// Not started because too many were still open or opening.
    pub skipped: u64,
    /// Upgrade to `ready`.
    pub connect: LatencySummary,
    /// What the churn sockets received, by message type.
    pub messages: Counts,
    /// Sockets opened per second over the churn phases.
    pub achieved_rate: f64,
    /// The nice value of the churn sockets' threads (0: on the measured clients' runtime).
    pub nice: i32,
    /// Where the churn sockets went instead of the instances (`--churn-url`).
    pub url: Option<String>,
}

/// Commit-to-client latency of project events by phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseLatency {
    /// Events committed in the phases without churn.
    pub calm: LatencySummary,
    /// Events committed in the phases with churn.
    pub churn: LatencySummary,
    /// churn p99 / calm p99 (target: at most 1.2).
    pub p99_ratio: Option<f64>,
    /// Each phase on its own, in order (calm, churn, calm, ...): how much the p99 moves
    /// between phases of the same kind says how far to trust the ratio.
    pub phases: Vec<LatencySummary>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Targets {
    /// Project events' p99 commit-to-client under 15 ms.
    pub p99_under_15ms: bool,
    /// No event lost, duplicated or out of order, on any stream of any client.
    pub clean: bool,
    /// With churn: the p99 raised by at most 20 %.
    pub churn_within_20_percent: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamFanoutReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub instances: Vec<String>,
    pub projects: usize,
    pub members: usize,
    pub clients: usize,
    pub rate: f64,
    pub duration_s: u64,
    pub source_addrs: usize,
    pub fd_limit: FdLimit,
    pub setup: SetupStats,
    pub connect_seconds: f64,
    pub writes: WriteStats,
    /// Every client's project stream.
    pub project_streams: StreamStats,
    /// Every client's own stream (notifications about its tasks).
    pub own_streams: StreamStats,
    /// Project events: commit (`at`) to arrival.
    pub latency: LatencySummary,
    /// Own-stream events: commit to arrival.
    pub own_latency: LatencySummary,
    /// Project events delivered per second of writing.
    pub deliveries_per_s: f64,
    /// Presence messages the measured clients received, by type.
    pub presence_messages: Counts,
    pub churn: Option<ChurnStats>,
    pub by_phase: Option<PhaseLatency>,
    pub machine: MachineState,
    pub targets: Targets,
    pub passed: bool,
}

impl ScenarioReport for TeamFanoutReport {
    fn scenario(&self) -> &'static str {
        self.scenario
    }

    fn summary(&self) -> String {
        let p = &self.project_streams;
        let o = &self.own_streams;
        let mut line = format!(
            "{}: {} clients in {} projects of {} on {} instance(s), {}/{} writes ok ({:.1}/s, {} errors, \
             {} skipped); project events delivered {}/{} ({:.0}/s) lost {} dup {} ooo {}; own {}/{} lost {} \
             dup {} ooo {}; reconnects {}; e2e {}",
            self.scenario,
            p.connected,
            self.projects,
            self.members,
            self.instances.len(),
            self.writes.ok,
            self.writes.planned,
            self.writes.achieved_rate,
            self.writes.errors.values().sum::<u64>(),
            self.writes.skipped,
            p.delivered,
            p.expected,
            self.deliveries_per_s,
            p.lost,
            p.duplicated,
            p.out_of_order,
            o.delivered,
            o.expected,
            o.lost,
            o.duplicated,
            o.out_of_order,
            p.reconnects,
            self.latency.line(),
        );
        if let (Some(churn), Some(phases)) = (&self.churn, &self.by_phase) {
            line.push_str(&format!(
                "; churn {} opened ({:.0}/s{}), {} failed, {} skipped; p99 calm {} churn {} (x{})",
                churn.opened,
                churn.achieved_rate,
                churn
                    .url
                    .as_deref()
                    .map_or(String::new(), |url| format!(" to {url}")),
                churn.failed.values().sum::<u64>(),
                churn.skipped,
                report::fmt_ms(phases.calm.p99_ms),
                report::fmt_ms(phases.churn.p99_ms),
                report::or_na(phases.p99_ratio, |r| format!("{r:.2}")),
            ));
            let each: Vec<String> = phases
                .phases
                .iter()
                .map(|p| report::fmt_ms(p.p99_ms))
                .collect();
            line.push_str(&format!(" [p99 by phase: {}]", each.join(", ")));
        }
        line.push_str(if self.passed { " => PASS" } else { " => FAIL" });
        line
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

const SHARDS: usize = 16;
/// The loopback block the churn sockets come from (127.41.x.y), apart from the measured
/// clients' addresses, so that neither runs short of ports.
const CHURN_BLOCK: u8 = 41;
const CHURN_SOURCES: usize = 16;

#[derive(Default)]
struct LatencyShard {
    project: Option<Histogram>,
    own: Option<Histogram>,
    /// Project events by the phase of their commit (even: calm, odd: churn).
    phases: Vec<Option<Histogram>>,
    negative: u64,
}

struct Shared {
    shards: Vec<Mutex<LatencyShard>>,
    timeline: Mutex<Timeline>,
    /// When the writers started, by both clocks.
    load_start: OnceLock<(Instant, DateTime<Utc>)>,
    phase_s: u64,
    connected: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    reconnects: AtomicU64,
}

impl Shared {
    fn new(phase_s: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            timeline: Mutex::default(),
            load_start: OnceLock::new(),
            phase_s,
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    fn record(&self, client: usize, project: bool, at: DateTime<Utc>, received: DateTime<Utc>) {
        let micros = (received - at).num_microseconds().unwrap_or(i64::MAX);
        let (second, phase) = match self.load_start.get() {
            Some((start, start_utc)) => {
                let second = start.elapsed().as_secs() as usize;
                let since = (at - *start_utc).num_milliseconds().max(0) as u64;
                let phase = (self.phase_s > 0).then(|| (since / 1000 / self.phase_s) as usize);
                (second, phase)
            }
            None => (0, None),
        };
        let Ok(mut shard) = self.shards[client % SHARDS].lock() else {
            return;
        };
        let micros = if micros < 0 {
            shard.negative += 1;
            0
        } else {
            micros as u64
        };
        if project {
            report::record(shard.project.get_or_insert_with(histogram), micros);
            if let Some(phase) = phase {
                if shard.phases.len() <= phase {
                    shard.phases.resize(phase + 1, None);
                }
                report::record(shard.phases[phase].get_or_insert_with(histogram), micros);
            }
        } else {
            report::record(shard.own.get_or_insert_with(histogram), micros);
        }
        drop(shard);
        if project {
            if let Ok(mut timeline) = self.timeline.lock() {
                timeline.record(second, micros);
            }
        }
    }
}

#[derive(Debug, Default)]
struct ClientState {
    own: StreamChecker,
    project: StreamChecker,
    connected: bool,
    failure: Option<String>,
    resumes: Resumes,
    own_resets: u64,
    project_resets: u64,
    /// Events of a stream that is neither the client's own nor its project's.
    foreign: u64,
    server_errors: Counts,
    presence: Counts,
}

struct ClientSpec {
    index: usize,
    token: String,
    project_stream: String,
    instance: usize,
    source: Option<IpAddr>,
}

pub async fn run(
    args: &TeamFanoutArgs,
    scenario: &'static str,
    ui: Ui,
) -> anyhow::Result<(TeamFanoutReport, PlotData)> {
    if args.projects == 0 || args.members == 0 {
        bail!("--projects and --members must be at least 1");
    }
    if args.rate.is_nan() || args.rate <= 0.0 || args.duration == 0 {
        bail!("--rate must be positive and --duration at least 1 s");
    }
    if args.instances.is_empty() {
        bail!("--instances names no instance");
    }
    if args.churn_rate.is_nan() || args.churn_rate < 0.0 || args.churn_hold <= 0.0 {
        bail!("--churn-rate must be 0 or more and --churn-hold positive");
    }
    let psql = Psql::new(&args.database_url, args.psql.as_deref())?;
    let clients = args.projects * args.members;
    let churn_users = args.churn_users();
    let instances = args.instances.len();
    let fd_limit = raise_fd_limit();
    let sockets = clients as u64 + (args.churn_rate * args.churn_hold * 2.0) as u64;
    if sockets + 300 > fd_limit.soft {
        warn(format!(
            "{sockets} sockets need more open files than this process may have ({}); \
             expect connect failures",
            fd_limit.soft
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
            .unwrap_or_else(|| SourceAddrs::default_count(clients)),
    );

    // Users 0..clients are the measured members (project p: p*M .. p*M+M, the first its
    // owner); then the churn users, member c of project c % P (P: --churn-projects).
    let churn_projects = args
        .churn_projects
        .unwrap_or(args.projects)
        .clamp(1, args.projects);
    let plan = TeamPlan {
        users: clients + churn_users,
        owners: (0..args.projects).map(|p| p * args.members).collect(),
        members: (0..clients)
            .filter(|u| u % args.members != 0)
            .map(|u| (u / args.members, u))
            .chain((0..churn_users).map(|c| (c % churn_projects, clients + c)))
            .collect(),
    };
    let teams = team::build(&apis, &psql, &plan, args.signup_concurrency, ui).await?;
    let accounts = Arc::new(teams.accounts);
    let projects = Arc::new(teams.projects);

    // The measured clients.
    let shared = Arc::new(Shared::new(if args.churn_rate > 0.0 {
        args.phase
    } else {
        0
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let targets = Arc::new(targets);
    let mut states = Vec::with_capacity(clients);
    let mut tasks = JoinSet::new();
    let connect_start = Instant::now();
    for index in 0..clients {
        let state = Arc::new(Mutex::new(ClientState::default()));
        states.push(state.clone());
        let spec = ClientSpec {
            index,
            token: accounts[index].token.clone(),
            project_stream: format!("project:{}", projects[index / args.members]),
            instance: index % instances,
            source: sources.pick(index),
        };
        tasks.spawn(client_task(
            spec,
            targets.clone(),
            state,
            shared.clone(),
            permits.clone(),
            stop_rx.clone(),
        ));
    }
    wait_connected(&shared.connected, &shared.failed, clients, ui).await;
    let connect_seconds = connect_start.elapsed().as_secs_f64();

    // Writes (and churn), measured.
    let machine_probe = MachineProbe::start(&args.metrics).await;
    let load_start = Instant::now();
    let _ = shared.load_start.set((load_start, Utc::now()));
    let churn = if args.churn_rate > 0.0 {
        let churn = Churn {
            rate: args.churn_rate,
            projects: churn_projects,
            hold: Duration::from_secs_f64(args.churn_hold),
            phase_s: args.phase,
            duration: Duration::from_secs(args.duration),
            tokens: accounts[clients..]
                .iter()
                .map(|a| a.token.clone())
                .collect(),
            targets: match &args.churn_url {
                Some(url) => Arc::new(vec![WsTarget::resolve(url).await?]),
                None => targets.clone(),
            },
            // Like the measured clients: own source addresses only on IPv4 loopback.
            sources: if sources.is_empty() {
                Vec::new()
            } else {
                (0..CHURN_SOURCES)
                    .map(|i| loopback(CHURN_BLOCK, i))
                    .collect()
            },
        };
        let runtime = UnmeasuredLoad::start("churn", args.churn_nice)?;
        let handle = runtime.handle().spawn(churn.run(load_start));
        Some((runtime, handle))
    } else {
        None
    };
    // Write k in project k mod P, by a random member, through the instances in turn.
    let writer = OpenLoop {
        rate: args.rate,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
        label: "writes",
    };
    let pools: Vec<Arc<TaskPool>> = (0..args.projects).map(|_| Arc::default()).collect();
    let (count, members, instances) = (projects.len(), args.members, apis.len());
    let (write_stats, write_latency) = writer
        .run(
            ui,
            || delivery_status(&shared.delivered, &shared.reconnects),
            |k, rng| {
                let project = k % count;
                let member = project * members + rng.below(members as u64) as usize;
                PlannedWrite {
                    api: apis[(k + k / count) % instances].clone(),
                    token: accounts[member].token.clone(),
                    pool: pools[project].clone(),
                    project_id: Some(projects[project].clone()),
                }
            },
        )
        .await;
    let churn = match churn {
        Some((runtime, handle)) => {
            let stats = handle.await.context("the churn task")?;
            runtime.stop();
            Some(ChurnStats {
                nice: args.churn_nice,
                url: args.churn_url.clone(),
                ..stats
            })
        }
        None => None,
    };
    let machine = machine_probe.finish().await;

    // Where every stream ended; then wait for the clients to get there.
    let finals = final_seqs(&apis, &accounts, &projects, args.members, &states).await?;
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
    let mut project_streams = StreamStats {
        behind_at_end: behind.0,
        ..StreamStats::default()
    };
    let mut own_streams = StreamStats {
        behind_at_end: behind.1,
        ..StreamStats::default()
    };
    let mut presence_messages = Counts::new();
    let mut foreign = 0;
    for (index, state) in states.iter().enumerate() {
        let Ok(state) = state.lock() else { continue };
        if !state.connected {
            let failure = state
                .failure
                .clone()
                .unwrap_or_else(|| "not connected".into());
            bump(&mut project_streams.connect_failures, failure.clone());
            bump(&mut own_streams.connect_failures, failure);
            continue;
        }
        let project_final = finals.projects[index / args.members];
        let own_final = finals.users[index];
        tally(&mut project_streams, &state.project, project_final);
        tally(&mut own_streams, &state.own, own_final);
        project_streams.resets += state.project_resets;
        own_streams.resets += state.own_resets;
        project_streams.reconnects += state.resumes.reconnects;
        project_streams.reconnect_failures += state.resumes.reconnect_failures;
        add_counts(&mut project_streams.closes, &state.resumes.closes);
        add_counts(&mut project_streams.server_errors, &state.server_errors);
        add_counts(&mut presence_messages, &state.presence);
        foreign += state.foreign;
    }
    if foreign > 0 {
        project_streams
            .server_errors
            .insert("event of another stream".into(), foreign);
    }
    let mut project_all = histogram();
    let mut own_all = histogram();
    // Calm and churn phases together, and each phase on its own.
    let mut phases = [histogram(), histogram()];
    let mut each_phase: Vec<Histogram> = Vec::new();
    for shard in &shared.shards {
        if let Ok(shard) = shard.lock() {
            if let Some(h) = &shard.project {
                report::merge(&mut project_all, h);
            }
            if let Some(h) = &shard.own {
                report::merge(&mut own_all, h);
            }
            for (phase, h) in shard.phases.iter().enumerate() {
                let Some(h) = h else { continue };
                report::merge(&mut phases[phase % 2], h);
                if each_phase.len() <= phase {
                    each_phase.resize_with(phase + 1, histogram);
                }
                report::merge(&mut each_phase[phase], h);
            }
            project_streams.negative_latency += shard.negative;
        }
    }
    let timeline = shared
        .timeline
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let latency = LatencySummary::of(&project_all);
    let by_phase = (churn.is_some() && args.phase > 0).then(|| {
        let calm = LatencySummary::of(&phases[0]);
        let churn = LatencySummary::of(&phases[1]);
        let p99_ratio = (calm.p99_ms > 0.0 && churn.count > 0).then(|| churn.p99_ms / calm.p99_ms);
        PhaseLatency {
            calm,
            churn,
            p99_ratio,
            phases: each_phase.iter().map(LatencySummary::of).collect(),
        }
    });
    let clean = [&project_streams, &own_streams].iter().all(|s| {
        s.connect_failures.is_empty()
            && s.lost == 0
            && s.duplicated == 0
            && s.out_of_order == 0
            && s.resets == 0
            && s.unexpected == 0
    }) && foreign == 0;
    let targets = Targets {
        p99_under_15ms: latency.count > 0 && latency.p99_ms < 15.0,
        clean,
        churn_within_20_percent: by_phase
            .as_ref()
            .and_then(|p| p.p99_ratio)
            .map(|r| r <= 1.2),
    };
    let passed = write_stats.ok > 0 && project_streams.delivered > 0 && clean;
    let deliveries_per_s = project_streams.delivered as f64 / args.duration as f64;
    let report = TeamFanoutReport {
        scenario,
        started_at,
        instances: args.instances.clone(),
        projects: args.projects,
        members: args.members,
        clients,
        rate: args.rate,
        duration_s: args.duration,
        source_addrs: sources.len(),
        fd_limit,
        setup: teams.stats,
        connect_seconds,
        writes: write_stats,
        project_streams,
        own_streams,
        latency,
        own_latency: LatencySummary::of(&own_all),
        deliveries_per_s,
        presence_messages,
        churn,
        by_phase,
        machine,
        targets,
        passed,
    };
    let mut cdf = vec![("project event, commit to client".to_string(), project_all)];
    if report.by_phase.is_some() {
        let [calm, churned] = phases;
        cdf.push(("phases without churn".into(), calm));
        cdf.push(("phases with churn".into(), churned));
    }
    cdf.push(("own-stream event, commit to client".into(), own_all));
    cdf.push(("write request (REST round trip)".into(), write_latency));
    let plot = PlotData {
        title: format!(
            "{scenario}: {} clients, {} projects of {}, {} writes/s{}",
            clients,
            args.projects,
            args.members,
            args.rate,
            if args.churn_rate > 0.0 {
                format!(", churn {}/s", args.churn_rate)
            } else {
                String::new()
            }
        ),
        cdf,
        timeline: vec![
            ("p50".into(), timeline.quantile_points(0.50)),
            ("p99".into(), timeline.quantile_points(0.99)),
            ("max".into(), timeline.quantile_points(1.0)),
        ],
        timeline_caption: "project events' latency per second".into(),
    };
    Ok((report, plot))
}

fn tally(stats: &mut StreamStats, checker: &StreamChecker, final_seq: i64) {
    stats.connected += 1;
    stats.expected += (final_seq - checker.start).max(0) as u64;
    stats.delivered += checker.delivered;
    stats.lost += checker.lost(final_seq);
    stats.duplicated += checker.duplicated;
    stats.out_of_order += checker.out_of_order;
    stats.late += checker.late;
    stats.unexpected += checker.beyond(final_seq);
}

/// One measured client: connect with `?projects=true`, then read and check both streams,
/// resuming with a position in each (see [`measured_socket`]), until told to stop.
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
        connect_ws_query(
            &targets[spec.instance],
            &spec.token,
            "projects=true",
            spec.source,
            CONNECT_TIMEOUT,
        )
        .await
    };
    let started = first.map_err(|e| e.key()).and_then(|(ws, ready)| {
        let own = ready.last_seq.unwrap_or(0);
        let project = ready
            .streams
            .iter()
            .flatten()
            .find(|s| s.stream == spec.project_stream)
            .map(|s| s.last_seq)
            .ok_or_else(|| "project missing from ready".to_string())?;
        Ok((ws, own, project))
    });
    let ws = match started {
        Ok((ws, own, project)) => {
            if let Ok(mut state) = state.lock() {
                state.own = StreamChecker::new(own);
                state.project = StreamChecker::new(project);
                state.connected = true;
            }
            shared.connected.fetch_add(1, Ordering::Relaxed);
            ws
        }
        Err(failure) => {
            if let Ok(mut state) = state.lock() {
                state.failure = Some(failure);
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

/// A measured client as [`measured_socket`] drives it.
struct Client {
    spec: ClientSpec,
    state: Arc<Mutex<ClientState>>,
    shared: Arc<Shared>,
}

impl MeasuredClient for Client {
    fn on_text(&self, text: &str) {
        handle_text(text, &self.spec, &self.state, &self.shared);
    }

    async fn reconnect(&self, target: &WsTarget) -> Result<Ws, ConnectError> {
        // A position in each stream: the auth message is the only place for the
        // project's.
        let (own, project) = self
            .state
            .lock()
            .map(|s| (s.own.last, s.project.last))
            .unwrap_or((0, 0));
        let auth = json!({
            "type": "auth",
            "token": self.spec.token,
            "since": own,
            "projects": true,
            "positions": { self.spec.project_stream.as_str(): project },
        });
        connect_ws_auth_message(target, &auth, self.spec.source, CONNECT_TIMEOUT)
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

/// Which of the client's streams a message is about.
enum Which {
    Own,
    Project,
    Foreign,
}

fn which(message: &Incoming, spec: &ClientSpec) -> Which {
    match message.stream.as_deref() {
        None => Which::Own,
        Some(s) if s == spec.project_stream => Which::Project,
        Some(s) if s.starts_with("user:") => Which::Own,
        Some(_) => Which::Foreign,
    }
}

fn handle_text(text: &str, spec: &ClientSpec, state: &Mutex<ClientState>, shared: &Shared) {
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
            let (seen, project) = match which(&message, spec) {
                Which::Own => (state.own.observe(seq), false),
                Which::Project => (state.project.observe(seq), true),
                Which::Foreign => {
                    state.foreign += 1;
                    return;
                }
            };
            drop(state);
            if seen != Seen::Duplicate {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = message.at() {
                    shared.record(spec.index, project, at, received);
                }
            }
        }
        "reset" => {
            let last_seq = message.last_seq.unwrap_or(0);
            match which(&message, spec) {
                Which::Own => {
                    state.own_resets += 1;
                    state.own.reset(last_seq);
                }
                Which::Project => {
                    state.project_resets += 1;
                    state.project.reset(last_seq);
                }
                Which::Foreign => state.foreign += 1,
            }
        }
        "error" => {
            let code = message.code.unwrap_or_else(|| "error".into());
            bump(&mut state.server_errors, code);
        }
        kind if kind.starts_with("presence") => bump(&mut state.presence, kind),
        // ready (after a reconnect), pong, auth.expiring, auth.refreshed
        _ => {}
    }
}

/// The churn: sockets that open, read for a while and close, at a steady rate, during the
/// churn phases.
struct Churn {
    rate: f64,
    projects: usize,
    hold: Duration,
    phase_s: u64,
    duration: Duration,
    tokens: Vec<String>,
    targets: Arc<Vec<WsTarget>>,
    sources: Vec<IpAddr>,
}

#[derive(Default)]
struct ChurnTally {
    opened: u64,
    failed: Counts,
    connect: Option<Histogram>,
    messages: Counts,
}

impl Churn {
    fn active_at(&self, offset: Duration) -> bool {
        self.phase_s == 0 || (offset.as_secs() / self.phase_s) % 2 == 1
    }

    async fn run(self, start: Instant) -> ChurnStats {
        let tally = Arc::new(Mutex::new(ChurnTally::default()));
        // Sockets alive at once are rate x hold; twice that (plus those closing) is trouble.
        let cap = ((self.rate * self.hold.as_secs_f64() * 3.0).ceil() as usize).max(8);
        let live = Arc::new(Semaphore::new(cap));
        let mut planned = 0u64;
        let mut skipped = 0u64;
        let mut tasks = JoinSet::new();
        let users = self.tokens.len().max(1);
        let mut k = 0u64;
        loop {
            let offset = Duration::from_secs_f64(k as f64 / self.rate);
            if offset >= self.duration {
                break;
            }
            k += 1;
            if !self.active_at(offset) {
                continue;
            }
            planned += 1;
            tokio::time::sleep_until((start + offset).into()).await;
            let Ok(permit) = live.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let i = planned as usize - 1;
            let token = self.tokens[i % users].clone();
            let target = self.targets[i % self.targets.len()].clone();
            let source = (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()]);
            let hold = self.hold;
            let tally = tally.clone();
            tasks.spawn(async move {
                churn_socket(&target, &token, source, hold, &tally).await;
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let tally = tally
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let churn_seconds = if self.phase_s == 0 {
            self.duration.as_secs_f64()
        } else {
            // Whole churn phases within the duration, and the part of the last one.
            let total = self.duration.as_secs();
            (0..total)
                .filter(|s| self.active_at(Duration::from_secs(*s)))
                .count() as f64
        };
        ChurnStats {
            rate: self.rate,
            hold_s: self.hold.as_secs_f64(),
            users: self.tokens.len(),
            projects: self.projects,
            phase_s: self.phase_s,
            planned,
            opened: tally.opened,
            failed: tally.failed,
            skipped,
            connect: LatencySummary::of(&tally.connect.unwrap_or_else(histogram)),
            messages: tally.messages,
            achieved_rate: tally.opened as f64 / churn_seconds.max(0.001),
            nice: 0,
            url: None,
        }
    }
}

async fn churn_socket(
    target: &WsTarget,
    token: &str,
    source: Option<IpAddr>,
    hold: Duration,
    tally: &Mutex<ChurnTally>,
) {
    let t0 = Instant::now();
    let connected = connect_ws_query(target, token, "projects=true", source, CONNECT_TIMEOUT).await;
    let mut ws = match connected {
        Ok((ws, _)) => {
            let micros = t0.elapsed().as_micros() as u64;
            if let Ok(mut tally) = tally.lock() {
                tally.opened += 1;
                report::record(tally.connect.get_or_insert_with(histogram), micros);
            }
            ws
        }
        Err(err) => {
            if let Ok(mut tally) = tally.lock() {
                bump(&mut tally.failed, err.key());
            }
            return;
        }
    };
    let mut messages: HashMap<String, u64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + hold;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(text)))) => {
                let kind = serde_json::from_str::<Incoming>(&text)
                    .map(|m| m.kind)
                    .unwrap_or_else(|_| "unparsable".into());
                *messages.entry(kind).or_insert(0) += 1;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map_or("none".to_string(), |f| u16::from(f.code).to_string());
                *messages
                    .entry(format!("closed by the server ({code})"))
                    .or_insert(0) += 1;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => {
                *messages.entry("transport".into()).or_insert(0) += 1;
                break;
            }
        }
    }
    close_ws(ws).await;
    if let Ok(mut tally) = tally.lock() {
        for (kind, n) in messages {
            *tally.messages.entry(kind).or_insert(0) += n;
        }
    }
}

/// Where every stream ended: each project's and each measured user's own.
struct Finals {
    projects: Vec<i64>,
    users: Vec<i64>,
}

async fn final_seqs(
    apis: &[Api],
    accounts: &[Account],
    projects: &[String],
    members: usize,
    states: &[Arc<Mutex<ClientState>>],
) -> anyhow::Result<Finals> {
    let mut project_since = vec![0i64; projects.len()];
    let mut user_since = vec![0i64; states.len()];
    for (index, state) in states.iter().enumerate() {
        if let Ok(state) = state.lock() {
            let p = index / members;
            project_since[p] = project_since[p].max(state.project.last);
            user_since[index] = state.own.last;
        }
    }
    // (stream, token of a member, since)
    let queries: Vec<(Option<String>, &str, i64)> = projects
        .iter()
        .enumerate()
        .map(|(p, id)| {
            (
                Some(format!("project:{id}")),
                accounts[p * members].token.as_str(),
                project_since[p],
            )
        })
        .chain(
            user_since
                .iter()
                .enumerate()
                .map(|(u, since)| (None, accounts[u].token.as_str(), *since)),
        )
        .collect();
    let results: Vec<anyhow::Result<i64>> =
        futures_util::stream::iter(queries.into_iter().enumerate())
            .map(|(i, (stream, token, since))| async move {
                let mut last_error = None;
                for j in 0..apis.len() {
                    match apis[(i + j) % apis.len()]
                        .latest_stream_seq(token, stream.as_deref(), since)
                        .await
                    {
                        Ok(seq) => return Ok(seq),
                        Err(err) => last_error = Some(err),
                    }
                }
                Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no instance")))
            })
            .buffered(32)
            .collect()
            .await;
    let mut all = results
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("reading the streams' latest seqs")?;
    let users = all.split_off(projects.len());
    Ok(Finals {
        projects: all,
        users,
    })
}

/// Waits until every connected client has both its streams up to their final seqs, or
/// the timeout; returns how many are still behind (project, own).
async fn drain(
    states: &[Arc<Mutex<ClientState>>],
    finals: &Finals,
    timeout: Duration,
    ui: Ui,
) -> (u64, u64) {
    let members = states.len() / finals.projects.len().max(1);
    let progress = Progress::new(ui, "drain", Some(states.len() as u64));
    let deadline = Instant::now() + timeout;
    loop {
        let (mut project, mut own) = (0u64, 0u64);
        for (index, state) in states.iter().enumerate() {
            let Ok(state) = state.lock() else { continue };
            if !state.connected {
                continue;
            }
            if !state
                .project
                .caught_up(finals.projects[index / members.max(1)])
            {
                project += 1;
            }
            if !state.own.caught_up(finals.users[index]) {
                own += 1;
            }
        }
        let behind = project.max(own);
        progress.set_position(states.len() as u64 - behind);
        progress.set_message(format!(
            "{project} project streams and {own} own streams behind"
        ));
        if (project == 0 && own == 0) || Instant::now() >= deadline {
            progress.finish(format!(
                "{project} project streams and {own} own streams behind"
            ));
            return (project, own);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClientSpec {
        ClientSpec {
            index: 0,
            token: String::new(),
            project_stream: "project:p1".into(),
            instance: 0,
            source: None,
        }
    }

    #[test]
    fn messages_are_told_apart_by_stream() {
        let parse = |s: &str| serde_json::from_str::<Incoming>(s).unwrap();
        let own = parse(r#"{"type":"event","seq":1,"at":"2026-11-29T10:00:00Z","data":{}}"#);
        let project = parse(r#"{"type":"event","stream":"project:p1","seq":1,"data":{}}"#);
        let other = parse(r#"{"type":"event","stream":"project:p2","seq":1,"data":{}}"#);
        assert!(matches!(which(&own, &spec()), Which::Own));
        assert!(matches!(which(&project, &spec()), Which::Project));
        assert!(matches!(which(&other, &spec()), Which::Foreign));
    }

    #[test]
    fn both_streams_are_checked() {
        let state = Mutex::new(ClientState {
            own: StreamChecker::new(3),
            project: StreamChecker::new(10),
            connected: true,
            ..ClientState::default()
        });
        let shared = Shared::new(0);
        let spec = spec();
        for text in [
            r#"{"type":"event","seq":4,"event":"notification.created","data":{}}"#,
            r#"{"type":"event","stream":"project:p1","seq":11,"data":{}}"#,
            r#"{"type":"event","stream":"project:p1","seq":13,"data":{}}"#,
            r#"{"type":"event","stream":"project:p1","seq":11,"data":{}}"#,
            r#"{"type":"presence.joined","stream":"project:p1","online":3,"members":[]}"#,
        ] {
            handle_text(text, &spec, &state, &shared);
        }
        let state = state.lock().unwrap();
        assert_eq!(state.own.delivered, 1);
        assert_eq!(state.project.delivered, 2);
        assert_eq!(state.project.out_of_order, 1);
        assert_eq!(state.project.duplicated, 1);
        assert_eq!(state.project.lost(13), 1);
        assert_eq!(state.presence.get("presence.joined"), Some(&1));
    }

    #[test]
    fn churn_runs_in_odd_phases() {
        let churn = Churn {
            rate: 1.0,
            projects: 1,
            hold: Duration::from_secs(1),
            phase_s: 5,
            duration: Duration::from_secs(20),
            tokens: Vec::new(),
            targets: Arc::new(Vec::new()),
            sources: Vec::new(),
        };
        assert!(!churn.active_at(Duration::from_secs(0)));
        assert!(!churn.active_at(Duration::from_millis(4_999)));
        assert!(churn.active_at(Duration::from_secs(5)));
        assert!(!churn.active_at(Duration::from_secs(10)));
        assert!(churn.active_at(Duration::from_secs(19)));
    }
}
