//! `reminders`: T tasks over U users, each with a due date chosen so that every task's
//! `TASK_DUE_SOON` reminder (`remind_at = due_date - REMINDER_LEAD`) falls in one window
//! (by default 100,000 reminders in one minute), spread evenly over it. Every user holds
//! one socket (the users spread over the instances), opened before its tasks are made so
//! that nothing can fire unseen, and the tool times each reminder's arrival as a
//! `notification.created` event: lag from `remind_at` to receipt, split into the wait until
//! an instance fired it (the notification's `created_at`) and fired-to-receipt; reminders
//! fired per second; duplicates (a task reminded twice) and lost ones (not arrived within
//! the grace period). Afterwards a REST audit of every user's notifications tells a
//! reminder fired twice from one delivered twice, and one never fired from one fired but
//! not delivered. `--overdue` also waits for each task's `TASK_OVERDUE` at its due date.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::measured_socket::{self, wait_connected, MeasuredClient, Resumes, CONNECT_TIMEOUT};
use crate::client::{
    connect_ws, sign_up_users, Account, Api, ConnectError, Seen, StreamChecker, Ws, WsTarget,
};
use crate::metrics::metric;
use crate::progress::{warn, Progress, Ui};
use crate::report::{
    self, bump, histogram, Counts, Histogram, LatencySummary, PlotData, ScenarioReport, Timeline,
};
use crate::sys::{load_average, CpuTimes, Rng};
use crate::workload::Call;
use crate::DEFAULT_URL;

#[derive(Debug, Clone, Args)]
pub struct RemindersArgs {
    /// Tasks in all, each with a due date: one `TASK_DUE_SOON` reminder each.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Users the tasks are spread over, round robin (each holds one socket); keep
    /// tasks/users within the server's MAX_TASKS_PER_USER.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Seconds the reminders' `remind_at` are spread over, evenly.
    #[arg(long, default_value_t = 60)]
    pub window: u64,
    /// The servers' REMINDER_LEAD in seconds: `remind_at = due_date - lead`. It must match,
    /// or every lag is off by the difference (a reminder seen before its `remind_at` is
    /// counted as early and fails the run).
    #[arg(long, default_value_t = 3600)]
    pub lead: u64,
    /// Seconds from the start of task creation to the window's start: room to create
    /// every task before the first reminder is due (the report says whether it sufficed).
    #[arg(long, default_value_t = 180)]
    pub setup: u64,
    /// Seconds after the window's end to wait for reminders still on their way; what has
    /// not arrived by then is lost.
    #[arg(long, default_value_t = 300)]
    pub grace: u64,
    /// Also wait for every task's `TASK_OVERDUE` at its due date (with a short
    /// REMINDER_LEAD and --lead to match; the run lasts the lead longer).
    #[arg(long)]
    pub overdue: bool,
    /// Comma-separated base URLs; users (their sockets and task creation) go round robin
    /// over them.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_URL)]
    pub instances: Vec<String>,
    /// Comma-separated metrics listeners (METRICS_BIND) of the instances, to report how
    /// many reminders each fired and its CPU time during the burst; none by default.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// REST calls per second (a task list and a task creation, alternately, by a few of
    /// the users) timed from the end of creation to the end of the burst: what the burst
    /// does to the API. 0: none.
    #[arg(long, default_value_t = 20.0)]
    pub probe_rate: f64,
    /// Task creations in flight at once.
    #[arg(long, default_value_t = 32)]
    pub create_concurrency: usize,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
}

impl RemindersArgs {
    /// The defaults of every optional flag, for `tasks` over `users` on `instances`.
    pub fn new(tasks: usize, users: usize, instances: Vec<String>) -> Self {
        Self {
            tasks,
            users,
            window: 60,
            lead: 3600,
            setup: 180,
            grace: 300,
            overdue: false,
            instances,
            metrics: Vec::new(),
            probe_rate: 20.0,
            create_concurrency: 32,
            signup_concurrency: 16,
            connect_concurrency: 256,
        }
    }
}

/// The two reminders of a due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DueSoon = 0,
    Overdue = 1,
}

impl Kind {
    fn parse(notification_type: &str) -> Option<Self> {
        match notification_type {
            "TASK_DUE_SOON" => Some(Self::DueSoon),
            "TASK_OVERDUE" => Some(Self::Overdue),
            _ => None,
        }
    }
}

/// Load and CPU of the machine around the burst (everything shares it: servers,
/// PostgreSQL, this tool, and whatever else runs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MachineState {
    pub cores: usize,
    /// 1, 5 and 15 min load averages when the run started.
    pub load_at_start: Option<[f64; 3]>,
    /// ... when the burst began and when it ended.
    pub load_at_burst: Option<[f64; 3]>,
    pub load_at_end: Option<[f64; 3]>,
    /// Share of all cores busy from the burst's start to its last reminder (0-1).
    pub cpu_busy_during_burst: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CreationStats {
    pub planned: usize,
    pub created: u64,
    /// Failed for good (after retries), by status or transport failure.
    pub errors: Counts,
    pub retries: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: LatencySummary,
    /// Seconds from the end of creation to the first `remind_at`; below 0 the window
    /// began while tasks were still being made (the burst then competed with creation).
    pub margin_s: f64,
}

/// One kind of reminder (`TASK_DUE_SOON`, or `TASK_OVERDUE`) over every task.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    /// Tasks created with a due date: one reminder each is expected.
    pub expected: u64,
    /// Tasks whose reminder arrived on their owner's socket.
    pub received: u64,
    /// Tasks whose reminder never arrived within the grace period.
    pub lost: u64,
    /// Reminders beyond the first for a task (distinct notifications: fired twice).
    pub duplicates: u64,
    /// The same notification received again on a socket (delivered twice).
    pub redelivered: u64,
    /// Reminders fired (`created_at`) before their `remind_at` (or due date).
    pub early: u64,
    /// Reminders for tasks this run did not see created (a create that timed out but
    /// committed).
    pub unknown_task: u64,
    /// `remind_at` (due date for overdue) to receipt on the socket.
    pub lag: LatencySummary,
    /// `remind_at` to the notification's `created_at`: the wait until an instance
    /// fired it (polling, backlog, a write connection).
    pub fire_delay: LatencySummary,
    /// `created_at` to receipt: the transaction, its commit, the bus and the socket.
    pub fired_to_receipt: LatencySummary,
    /// Reminders fired per second from the first to the last (by `created_at`).
    pub fired_per_second: f64,
    /// The busiest second.
    pub fired_peak_second: u64,
    /// The offered rate: reminders due per second over the window.
    pub due_per_second: f64,
    /// Seconds from the window's start to the first and the last reminder fired.
    pub first_fired_s: Option<f64>,
    pub last_fired_s: Option<f64>,
    /// Seconds from the window's start to the last receipt.
    pub last_received_s: Option<f64>,
    /// Reminders fired in each second of (and after) the window.
    pub fired_by_second: Vec<u64>,
}

/// Every socket's event stream: seqs exactly once, in order, none missing at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStats {
    pub connected: u64,
    pub connect_failures: Counts,
    pub events: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub closes: Counts,
    pub server_errors: Counts,
}

/// What the server holds afterwards, read through REST (every user's notifications).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditStats {
    pub users_read: u64,
    pub errors: Counts,
    /// `TASK_DUE_SOON` notifications found, and tasks with more than one.
    pub due_soon_notifications: u64,
    pub due_soon_fired_twice: u64,
    /// Created tasks with no `TASK_DUE_SOON` notification at all.
    pub due_soon_not_fired: u64,
    /// Tasks with a `TASK_DUE_SOON` notification that never reached the socket.
    pub due_soon_fired_not_received: u64,
    pub overdue_notifications: u64,
    pub overdue_fired_twice: u64,
}

/// The API's latency in one phase of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbePhase {
    /// `GET /tasks?limit=50`.
    pub reads: LatencySummary,
    /// `POST /tasks` (no due date).
    pub writes: LatencySummary,
    /// Failed calls, by route and status or transport failure.
    pub errors: Counts,
}

/// The REST probe: before the window (creation done, nothing due) and during the burst.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeStats {
    pub rate: f64,
    pub before: ProbePhase,
    pub during: ProbePhase,
}

/// Each instance's own count, from its metrics listener.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstanceStats {
    pub metrics: String,
    /// `taskstream_reminders_fired_total` during the burst.
    pub fired_due_soon: Option<f64>,
    pub fired_overdue: Option<f64>,
    /// Its process CPU seconds during the burst.
    pub cpu_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemindersReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub instances: Vec<String>,
    pub users: usize,
    pub tasks: usize,
    pub window_s: u64,
    pub lead_s: u64,
    pub setup_s: u64,
    pub grace_s: u64,
    pub window_start: String,
    pub machine: MachineState,
    pub signup_seconds: f64,
    pub creation: CreationStats,
    pub due_soon: KindStats,
    pub overdue: Option<KindStats>,
    pub stream: StreamStats,
    pub audit: AuditStats,
    pub probe: ProbeStats,
    pub servers: Vec<InstanceStats>,
    pub passed: bool,
}

impl ScenarioReport for RemindersReport {
    fn scenario(&self) -> &'static str {
        "reminders"
    }

    fn summary(&self) -> String {
        let c = &self.creation;
        let d = &self.due_soon;
        let overdue = self.overdue.as_ref().map_or(String::new(), |o| {
            format!(
                "; overdue {}/{} lost {} dup {} lag {}",
                o.received,
                o.expected,
                o.lost,
                o.duplicates,
                o.lag.line()
            )
        });
        format!(
            "reminders: {} tasks/{} users on {} instance(s), created in {:.1} s ({:.0}/s, \
             margin {:.1} s); due-soon {}/{} lost {} dup {} redelivered {} early {}; lag {}; \
             fired {:.0}/s (peak {}/s, {:.0}/s due){overdue}; audit: {} fired twice, {} not \
             fired; API p99 before/during the burst: reads {}/{}, writes {}/{} => {}",
            c.created,
            self.users,
            self.instances.len(),
            c.seconds,
            c.per_second,
            c.margin_s,
            d.received,
            d.expected,
            d.lost,
            d.duplicates,
            d.redelivered,
            d.early,
            d.lag.line(),
            d.fired_per_second,
            d.fired_peak_second,
            d.due_per_second,
            self.audit.due_soon_fired_twice + self.audit.overdue_fired_twice,
            self.audit.due_soon_not_fired,
            report::fmt_ms(self.probe.before.reads.p99_ms),
            report::fmt_ms(self.probe.during.reads.p99_ms),
            report::fmt_ms(self.probe.before.writes.p99_ms),
            report::fmt_ms(self.probe.during.writes.p99_ms),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

/// A reminder's arrival.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    received: DateTime<Utc>,
    /// The notification's `created_at`: when an instance fired it.
    fired: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
struct KindTrack {
    first: Option<Receipt>,
    /// Distinct notifications received for this task.
    notes: Vec<i64>,
    redelivered: u64,
}

#[derive(Debug, Clone, Default)]
struct TaskTrack {
    /// The due date the server stored; `None` for a task only known from a reminder.
    due: Option<DateTime<Utc>>,
    kinds: [KindTrack; 2],
}

const SHARDS: usize = 16;

/// What the socket tasks and the creators share.
struct Shared {
    tasks: Vec<Mutex<HashMap<i64, TaskTrack>>>,
    /// Created tasks whose reminder of each kind has arrived.
    arrived: [AtomicU64; 2],
    connected: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            tasks: (0..SHARDS).map(|_| Mutex::default()).collect(),
            arrived: [AtomicU64::new(0), AtomicU64::new(0)],
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            events: AtomicU64::new(0),
        }
    }

    fn shard(&self, task_id: i64) -> &Mutex<HashMap<i64, TaskTrack>> {
        &self.tasks[task_id.unsigned_abs() as usize % SHARDS]
    }

    /// A task the server created, with its stored due date.
    fn created(&self, task_id: i64, due: DateTime<Utc>) {
        let Ok(mut shard) = self.shard(task_id).lock() else {
            return;
        };
        let track = shard.entry(task_id).or_default();
        track.due = Some(due);
        // A reminder that beat the create's response to us (the window began early).
        for (kind, k) in track.kinds.iter().enumerate() {
            if k.first.is_some() {
                self.arrived[kind].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn received(&self, task_id: i64, kind: Kind, note_id: i64, receipt: Receipt) {
        let Ok(mut shard) = self.shard(task_id).lock() else {
            return;
        };
        let track = shard.entry(task_id).or_default();
        let known = track.due.is_some();
        let k = &mut track.kinds[kind as usize];
        if k.notes.contains(&note_id) {
            k.redelivered += 1;
            return;
        }
        k.notes.push(note_id);
        if k.first.is_none() {
            k.first = Some(receipt);
            if known {
                self.arrived[kind as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The fields of a server message this scenario reads.
#[derive(Debug, Deserialize)]
struct ServerMessage {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<i64>,
    event: Option<String>,
    last_seq: Option<i64>,
    code: Option<String>,
    /// Read as a notification only for `notification.created` (other events' data have
    /// other shapes).
    data: Option<serde_json::Value>,
}

/// The notification in a `notification.created` event.
#[derive(Debug, Deserialize)]
struct NotificationData {
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    task_id: Option<i64>,
    created_at: Option<DateTime<Utc>>,
}

/// One user's socket, read by the main task at the end.
#[derive(Debug, Default)]
struct ClientState {
    checker: StreamChecker,
    connected: bool,
    failure: Option<String>,
    resumes: Resumes,
    resets: u64,
    server_errors: Counts,
}

/// Attempts at one task creation (a transport failure, 429 or 5xx is tried again).
const CREATE_ATTEMPTS: u32 = 4;
/// The users whose sockets also make the probe's REST calls.
const PROBE_USERS: usize = 8;
/// After the last reminder arrived: time for a late duplicate to show itself.
const SETTLE: Duration = Duration::from_secs(3);

pub async fn run(args: &RemindersArgs, ui: Ui) -> anyhow::Result<(RemindersReport, PlotData)> {
    if args.tasks == 0 || args.users == 0 || args.window == 0 || args.lead == 0 {
        bail!("--tasks, --users, --window and --lead must be at least 1");
    }
    if args.instances.is_empty() {
        bail!("--instances names no instance");
    }
    if !args.metrics.is_empty() && args.metrics.len() != args.instances.len() {
        bail!("--metrics needs one listener per instance, in the same order");
    }
    if args.overdue && args.lead < args.window {
        warn("--lead is shorter than --window: the overdue burst will overlap the due-soon one");
    }
    let started_at = Utc::now().to_rfc3339();
    let mut machine = MachineState {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_at_start: load_average(),
        ..MachineState::default()
    };
    let apis = args
        .instances
        .iter()
        .map(|base| Api::new(base))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut targets = Vec::new();
    for base in &args.instances {
        targets.push(WsTarget::resolve(base).await?);
    }
    let instances = apis.len();

    let signup_start = std::time::Instant::now();
    let accounts = sign_up_users(&apis, args.users, args.signup_concurrency, ui).await?;
    let signup_seconds = signup_start.elapsed().as_secs_f64();
    // Task ids identify the reminders: every instance must serve the one database.
    if instances > 1 {
        for api in &apis {
            api.latest_seq(&accounts[0].token, 0)
                .await
                .with_context(|| {
                    format!(
                        "{} does not know a user signed up on {}: the instances must share one \
                     database",
                        api.base(),
                        apis[0].base()
                    )
                })?;
        }
    }

    // Sockets first: a reminder can then never fire before its owner listens, however
    // long creation takes.
    let shared = Arc::new(Shared::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let targets = Arc::new(targets);
    let mut states = Vec::with_capacity(args.users);
    let mut sockets = JoinSet::new();
    for (user, account) in accounts.iter().enumerate() {
        let state = Arc::new(Mutex::new(ClientState::default()));
        states.push(state.clone());
        sockets.spawn(client_task(
            account.token.clone(),
            user % instances,
            targets.clone(),
            state,
            shared.clone(),
            permits.clone(),
            stop_rx.clone(),
        ));
    }
    wait_connected(&shared.connected, &shared.failed, args.users, ui).await;

    // The plan: remind_at evenly spread over the window, in random order over the tasks
    // (so the users' reminders interleave, and a slow creation does not empty the window's
    // end).
    let create_start = Utc::now();
    let window_start = create_start + secs(args.setup as f64);
    let lead = chrono::Duration::seconds(args.lead as i64);
    let mut offsets: Vec<f64> = (0..args.tasks)
        .map(|k| (k as f64 + 0.5) * args.window as f64 / args.tasks as f64)
        .collect();
    let mut rng = Rng::from_entropy(args.tasks as u64);
    for i in (1..offsets.len()).rev() {
        offsets.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut creation = create_tasks(
        &apis,
        &accounts,
        &offsets,
        window_start + lead,
        args.create_concurrency,
        &shared,
        ui,
    )
    .await;
    let create_end = Utc::now();
    creation.margin_s = seconds_between(create_end, window_start);
    if creation.margin_s < 0.0 {
        warn(format!(
            "creating the tasks took {:.0} s, {:.0} s past the window's start: raise --setup \
             (the burst competed with creation)",
            creation.seconds, -creation.margin_s
        ));
    }

    let (probe_stop, probe_stopped) = watch::channel(false);
    let probe = (args.probe_rate > 0.0).then(|| {
        let probes: Vec<(Api, String)> = accounts
            .iter()
            .enumerate()
            .take(PROBE_USERS)
            .map(|(user, a)| (apis[user % instances].clone(), a.token.clone()))
            .collect();
        tokio::spawn(run_probe(probes, args.probe_rate, probe_stopped))
    });

    // Until the window: then the "before" samples, then the burst.
    let countdown = Progress::new(ui, "wait", None);
    while Utc::now() < window_start - secs(1.0) {
        let left = seconds_between(Utc::now(), window_start);
        countdown.set_message(format!(
            "{:.0} s until the first reminder is due ({} reminders arrived early)",
            left,
            shared.arrived[0].load(Ordering::Relaxed)
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    countdown.finish("window open");
    machine.load_at_burst = load_average();
    let cpu_before = CpuTimes::read();
    let server_before = sample_servers(&args.metrics).await;

    let created = creation.created;
    let wanted: [u64; 2] = [created, if args.overdue { created } else { 0 }];
    let window_end = window_start + secs(args.window as f64);
    let last_due = if args.overdue {
        window_end + lead
    } else {
        window_end
    };
    let deadline = last_due + secs(args.grace as f64);
    let burst = Progress::new(ui, "reminders", Some(wanted[0] + wanted[1]));
    loop {
        let due_soon = shared.arrived[0].load(Ordering::Relaxed);
        let overdue = shared.arrived[1].load(Ordering::Relaxed);
        burst.set_position(due_soon.min(wanted[0]) + overdue.min(wanted[1]));
        burst.set_message(format!(
            "due-soon {due_soon}/{}, overdue {overdue}/{}",
            wanted[0], wanted[1]
        ));
        if (due_soon >= wanted[0] && overdue >= wanted[1]) || Utc::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let burst_end = Utc::now();
    let _ = probe_stop.send(true);
    let cpu_after = CpuTimes::read();
    let server_after = sample_servers(&args.metrics).await;
    machine.load_at_end = load_average();
    machine.cpu_busy_during_burst = cpu_before
        .zip(cpu_after)
        .and_then(|(before, after)| before.busy_share(&after));
    burst.finish(format!(
        "due-soon {}/{}, overdue {}/{}",
        shared.arrived[0].load(Ordering::Relaxed),
        wanted[0],
        shared.arrived[1].load(Ordering::Relaxed),
        wanted[1]
    ));
    tokio::time::sleep(SETTLE).await;

    // Where every user's stream ended; then the sockets stop.
    let finals = final_seqs(&apis, &accounts).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline && !all_caught_up(&states, &finals) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    let join_all = async { while sockets.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(15), join_all)
        .await
        .is_err()
    {
        sockets.abort_all();
    }
    let stream = tally_streams(&states, &finals);
    let probe_samples = match probe {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let probe = probe_stats(&probe_samples, args.probe_rate, window_start, burst_end);

    let tracks: HashMap<i64, TaskTrack> = shared
        .tasks
        .iter()
        .filter_map(|shard| shard.lock().ok().map(|mut s| std::mem::take(&mut *s)))
        .flatten()
        .collect();
    let audit = audit(&apis, &accounts, &tracks, ui).await;

    let mut lag_all = histogram();
    let mut timeline = Timeline::default();
    let due_soon = kind_stats(
        &tracks,
        Kind::DueSoon,
        lead,
        window_start,
        args.window,
        Some((&mut lag_all, &mut timeline)),
    );
    let overdue = args.overdue.then(|| {
        kind_stats(
            &tracks,
            Kind::Overdue,
            lead,
            window_start + lead,
            args.window,
            None,
        )
    });
    let servers = args
        .metrics
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let delta = |f: fn(&ServerCounters) -> Option<f64>| {
                let before = server_before.get(i).and_then(f);
                let after = server_after.get(i).and_then(f);
                crate::metrics::delta(before, after)
            };
            InstanceStats {
                metrics: url.clone(),
                fired_due_soon: delta(|s| s.due_soon),
                fired_overdue: delta(|s| s.overdue),
                cpu_seconds: delta(|s| s.cpu_seconds),
            }
        })
        .collect();

    let kind_clean = |k: &KindStats| {
        k.received == k.expected
            && k.lost == 0
            && k.duplicates == 0
            && k.redelivered == 0
            && k.early == 0
            && k.unknown_task == 0
    };
    let passed = creation.created == args.tasks as u64
        && creation.errors.is_empty()
        && stream.connect_failures.is_empty()
        && stream.connected == args.users as u64
        && stream.lost == 0
        && stream.duplicated == 0
        && stream.out_of_order == 0
        && stream.resets == 0
        && kind_clean(&due_soon)
        && overdue.as_ref().is_none_or(kind_clean)
        && audit.errors.is_empty()
        && audit.users_read == args.users as u64
        && audit.due_soon_fired_twice == 0
        && audit.overdue_fired_twice == 0
        && audit.due_soon_not_fired == 0
        && probe.before.errors.is_empty()
        && probe.during.errors.is_empty();
    let report = RemindersReport {
        scenario: "reminders",
        started_at,
        instances: args.instances.clone(),
        users: args.users,
        tasks: args.tasks,
        window_s: args.window,
        lead_s: args.lead,
        setup_s: args.setup,
        grace_s: args.grace,
        window_start: window_start.to_rfc3339(),
        machine,
        signup_seconds,
        creation,
        due_soon,
        overdue,
        stream,
        audit,
        probe,
        servers,
        passed,
    };
    let plot = PlotData {
        title: format!(
            "reminders: {} due within {} s over {} instance(s)",
            args.tasks, args.window, instances
        ),
        cdf: vec![("remind_at to receipt".into(), lag_all)],
        timeline: vec![
            ("p50".into(), timeline.quantile_points(0.50)),
            ("p99".into(), timeline.quantile_points(0.99)),
            ("max".into(), timeline.quantile_points(1.0)),
        ],
        timeline_caption: "lag by the second of remind_at in the window".into(),
    };
    Ok((report, plot))
}

fn secs(seconds: f64) -> chrono::Duration {
    chrono::Duration::microseconds((seconds * 1e6) as i64)
}

/// `to - from` in seconds.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// Creates task k for user k % U, due at `first_due + offsets[k]`, `concurrency` at a
/// time, and registers each with its stored due date.
async fn create_tasks(
    apis: &[Api],
    accounts: &[Account],
    offsets: &[f64],
    first_due: DateTime<Utc>,
    concurrency: usize,
    shared: &Shared,
    ui: Ui,
) -> CreationStats {
    #[derive(Default)]
    struct Tally {
        created: u64,
        errors: Counts,
        retries: u64,
        latency: Option<Histogram>,
    }
    let tally = Mutex::new(Tally::default());
    let progress = Progress::new(ui, "create", Some(offsets.len() as u64));
    let done = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let users = accounts.len();
    futures_util::stream::iter(offsets.iter().enumerate())
        .for_each_concurrent(concurrency.max(1), |(k, offset)| {
            let user = k % users;
            let api = &apis[(user + k / users) % apis.len()];
            let token = &accounts[user].token;
            let due = first_due + secs(*offset);
            let (tally, progress, done) = (&tally, &progress, &done);
            async move {
                let title = format!("Reminder load {k}");
                let mut attempt = 0;
                let (outcome, stored, micros) = loop {
                    attempt += 1;
                    let t0 = std::time::Instant::now();
                    let (outcome, stored) = api.create_task_due(token, &title, due).await;
                    let micros = t0.elapsed().as_micros() as u64;
                    let retry = !outcome.ok
                        && outcome.status.is_none_or(|s| s == 429 || s >= 500)
                        && attempt < CREATE_ATTEMPTS;
                    if !retry {
                        break (outcome, stored, micros);
                    }
                    if let Ok(mut t) = tally.lock() {
                        t.retries += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                };
                if let (true, Some(id)) = (outcome.ok, outcome.created) {
                    shared.created(id, stored.unwrap_or(due));
                }
                if let Ok(mut t) = tally.lock() {
                    if outcome.ok {
                        t.created += 1;
                    } else {
                        bump(&mut t.errors, outcome.error_key());
                    }
                    report::record(t.latency.get_or_insert_with(histogram), micros);
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 64 == 0 {
                    progress.set_position(n);
                    let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
                    progress.set_message(format!("{n} tasks, {rate:.0}/s"));
                }
            }
        })
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let tally = tally.into_inner().unwrap_or_default();
    progress.finish(format!(
        "{} tasks in {seconds:.1} s ({:.0}/s)",
        tally.created,
        tally.created as f64 / seconds.max(0.001)
    ));
    CreationStats {
        planned: offsets.len(),
        created: tally.created,
        errors: tally.errors,
        retries: tally.retries,
        seconds,
        per_second: tally.created as f64 / seconds.max(0.001),
        latency: LatencySummary::of(&tally.latency.unwrap_or_else(histogram)),
        margin_s: 0.0,
    }
}

/// One user's socket: connect, then read and record, resuming with `since` (see
/// [`measured_socket`]), until told to stop.
async fn client_task(
    token: String,
    instance: usize,
    targets: Arc<Vec<WsTarget>>,
    state: Arc<Mutex<ClientState>>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let first = {
        let _permit = permits.acquire().await;
        connect_ws(&targets[instance], &token, None, None, CONNECT_TIMEOUT).await
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
    let client = Client {
        token,
        state,
        shared,
    };
    measured_socket::keep_reading(ws, &client, &targets, instance, 0, &mut stop).await;
}

/// A user's socket as [`measured_socket`] drives it.
struct Client {
    token: String,
    state: Arc<Mutex<ClientState>>,
    shared: Arc<Shared>,
}

impl MeasuredClient for Client {
    fn on_text(&self, text: &str) {
        handle_text(text, &self.state, &self.shared);
    }

    async fn reconnect(&self, target: &WsTarget) -> Result<Ws, ConnectError> {
        let since = self.state.lock().map(|s| s.checker.last).unwrap_or(0);
        connect_ws(target, &self.token, Some(since), None, CONNECT_TIMEOUT)
            .await
            .map(|(ws, _)| ws)
    }

    fn count(&self, f: impl FnOnce(&mut Resumes, &mut Counts)) {
        if let Ok(mut state) = self.state.lock() {
            let state = &mut *state;
            f(&mut state.resumes, &mut state.server_errors);
        }
    }
}

fn handle_text(text: &str, state: &Mutex<ClientState>, shared: &Shared) {
    let received = Utc::now();
    let Ok(message) = serde_json::from_str::<ServerMessage>(text) else {
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
            if state.checker.observe(seq) == Seen::Duplicate {
                return;
            }
            drop(state);
            shared.events.fetch_add(1, Ordering::Relaxed);
            if message.event.as_deref() != Some("notification.created") {
                return;
            }
            let Some(note) = message
                .data
                .and_then(|data| serde_json::from_value::<NotificationData>(data).ok())
            else {
                return;
            };
            let (Some(kind), Some(task_id), Some(id)) = (
                note.kind.as_deref().and_then(Kind::parse),
                note.task_id,
                note.id,
            ) else {
                return;
            };
            let receipt = Receipt {
                received,
                fired: note.created_at,
            };
            shared.received(task_id, kind, id, receipt);
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
        _ => {}
    }
}

/// Every user's latest seq (`GET /events`); `None` where it could not be read.
async fn final_seqs(apis: &[Api], accounts: &[Account]) -> Vec<Option<i64>> {
    futures_util::stream::iter(accounts.iter().enumerate())
        .map(|(user, account)| async move {
            let api = &apis[user % apis.len()];
            api.latest_seq(&account.token, 0).await.ok()
        })
        .buffered(32)
        .collect()
        .await
}

fn all_caught_up(states: &[Arc<Mutex<ClientState>>], finals: &[Option<i64>]) -> bool {
    states.iter().zip(finals).all(|(state, last)| {
        state
            .lock()
            .is_ok_and(|s| !s.connected || last.is_none_or(|last| s.checker.caught_up(last)))
    })
}

fn tally_streams(states: &[Arc<Mutex<ClientState>>], finals: &[Option<i64>]) -> StreamStats {
    let mut stream = StreamStats::default();
    for (state, last) in states.iter().zip(finals) {
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
        let c = &state.checker;
        stream.connected += 1;
        stream.events += c.delivered;
        match last {
            Some(last) => stream.lost += c.lost(*last),
            None => bump(&mut stream.server_errors, "final seq unreadable"),
        }
        stream.duplicated += c.duplicated;
        stream.out_of_order += c.out_of_order;
        stream.resets += state.resets;
        stream.reconnects += state.resumes.reconnects;
        report::add_counts(&mut stream.closes, &state.resumes.closes);
        report::add_counts(&mut stream.server_errors, &state.server_errors);
    }
    stream
}

/// One kind's numbers; `due_from` is when the first one was due (the window's start, or
/// a lead later for overdue). The due-soon lags also go into `plot`.
fn kind_stats(
    tracks: &HashMap<i64, TaskTrack>,
    kind: Kind,
    lead: chrono::Duration,
    due_from: DateTime<Utc>,
    window: u64,
    mut plot: Option<(&mut Histogram, &mut Timeline)>,
) -> KindStats {
    let mut stats = KindStats::default();
    let (mut lag, mut fire_delay, mut fired_to_receipt) = (histogram(), histogram(), histogram());
    let mut fired_times = Vec::new();
    let mut last_received: Option<DateTime<Utc>> = None;
    for track in tracks.values() {
        let k = &track.kinds[kind as usize];
        stats.redelivered += k.redelivered;
        stats.duplicates += k.notes.len().saturating_sub(1) as u64;
        let Some(due) = track.due else {
            stats.unknown_task += u64::from(k.first.is_some());
            continue;
        };
        stats.expected += 1;
        let Some(first) = k.first else {
            stats.lost += 1;
            continue;
        };
        stats.received += 1;
        let at = match kind {
            Kind::DueSoon => due - lead,
            Kind::Overdue => due,
        };
        let micros = |from: DateTime<Utc>, to: DateTime<Utc>| {
            (to - from).num_microseconds().unwrap_or(i64::MAX).max(0) as u64
        };
        report::record(&mut lag, micros(at, first.received));
        if let Some((all, timeline)) = plot.as_mut() {
            report::record(all, micros(at, first.received));
            let second = seconds_between(due_from, at).max(0.0) as usize;
            timeline.record(second, micros(at, first.received));
        }
        if let Some(fired) = first.fired {
            if fired < at {
                stats.early += 1;
            }
            report::record(&mut fire_delay, micros(at, fired));
            report::record(&mut fired_to_receipt, micros(fired, first.received));
            fired_times.push(seconds_between(due_from, fired));
        }
        last_received = last_received.max(Some(first.received));
    }
    stats.lag = LatencySummary::of(&lag);
    stats.fire_delay = LatencySummary::of(&fire_delay);
    stats.fired_to_receipt = LatencySummary::of(&fired_to_receipt);
    stats.due_per_second = stats.expected as f64 / window as f64;
    stats.last_received_s = last_received.map(|t| seconds_between(due_from, t));
    fired_times.sort_by(f64::total_cmp);
    if let (Some(&first), Some(&last)) = (fired_times.first(), fired_times.last()) {
        stats.first_fired_s = Some(first);
        stats.last_fired_s = Some(last);
        stats.fired_per_second = fired_times.len() as f64 / (last - first).max(1.0);
        for t in &fired_times {
            // Before the window (a slow creation) counts in its first second.
            let second = t.max(0.0) as usize;
            if stats.fired_by_second.len() <= second {
                stats.fired_by_second.resize(second + 1, 0);
            }
            stats.fired_by_second[second] += 1;
        }
        stats.fired_peak_second = stats.fired_by_second.iter().copied().max().unwrap_or(0);
    }
    stats
}

/// Reads every user's notifications through REST and compares them with what the sockets
/// received.
async fn audit(
    apis: &[Api],
    accounts: &[Account],
    tracks: &HashMap<i64, TaskTrack>,
    ui: Ui,
) -> AuditStats {
    let progress = Progress::new(ui, "audit", Some(accounts.len() as u64));
    let done = AtomicU64::new(0);
    let results: Vec<anyhow::Result<Vec<(i64, Kind)>>> =
        futures_util::stream::iter(accounts.iter().enumerate())
            .map(|(user, account)| {
                let (progress, done) = (&progress, &done);
                async move {
                    let api = &apis[user % apis.len()];
                    let mut found = Vec::new();
                    let mut offset = 0;
                    loop {
                        let (page, total) =
                            api.notifications_page(&account.token, offset, 100).await?;
                        if page.is_empty() {
                            break;
                        }
                        offset += page.len() as i64;
                        found.extend(
                            page.iter()
                                .filter_map(|n| Some((n.task_id?, Kind::parse(&n.kind)?))),
                        );
                        if offset >= total {
                            break;
                        }
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress.set_position(n);
                    Ok(found)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut stats = AuditStats::default();
    let mut fired: HashMap<(i64, usize), u64> = HashMap::new();
    for result in results {
        match result {
            Ok(found) => {
                stats.users_read += 1;
                for (task, kind) in found {
                    *fired.entry((task, kind as usize)).or_insert(0) += 1;
                }
            }
            Err(err) => bump(&mut stats.errors, format!("{err:#}")),
        }
    }
    for (&(task, kind), &count) in &fired {
        let received = tracks
            .get(&task)
            .is_some_and(|t| t.kinds[kind].first.is_some());
        if kind == Kind::DueSoon as usize {
            stats.due_soon_notifications += count;
            stats.due_soon_fired_twice += u64::from(count > 1);
            stats.due_soon_fired_not_received += u64::from(!received);
        } else {
            stats.overdue_notifications += count;
            stats.overdue_fired_twice += u64::from(count > 1);
        }
    }
    stats.due_soon_not_fired = tracks
        .iter()
        .filter(|(id, t)| t.due.is_some() && !fired.contains_key(&(**id, Kind::DueSoon as usize)))
        .count() as u64;
    progress.finish(format!(
        "{} users, {} due-soon notifications",
        stats.users_read, stats.due_soon_notifications
    ));
    stats
}

/// One probe call: when it started, whether it wrote, how long it took, how it ended.
#[derive(Debug, Clone)]
struct ProbeSample {
    started: DateTime<Utc>,
    write: bool,
    micros: u64,
    error: Option<String>,
}

/// Open loop: call k starts at k/rate seconds (a list, then a creation, alternately, over
/// the probe users) whatever the earlier ones are doing, until `stop`.
async fn run_probe(
    probes: Vec<(Api, String)>,
    rate: f64,
    stop: watch::Receiver<bool>,
) -> Vec<ProbeSample> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut calls = JoinSet::new();
    let start = tokio::time::Instant::now();
    let mut rng = Rng::from_entropy(probes.len() as u64);
    for k in 0u64.. {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
        if *stop.borrow() || probes.is_empty() {
            break;
        }
        let (api, token) = probes[(k / 2) as usize % probes.len()].clone();
        let write = k % 2 == 1;
        let call = if write {
            Call::CreateTask
        } else {
            Call::ListTasks
        };
        let word = rng.next_u64();
        let samples = samples.clone();
        calls.spawn(async move {
            let started = Utc::now();
            let t0 = std::time::Instant::now();
            let outcome = api.perform(&token, call, word).await;
            let sample = ProbeSample {
                started,
                write,
                micros: t0.elapsed().as_micros() as u64,
                error: (!outcome.ok)
                    .then(|| format!("{} {}", call.route().name(), outcome.error_key())),
            };
            if let Ok(mut samples) = samples.lock() {
                samples.push(sample);
            }
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    let samples = samples.lock().map(|mut s| std::mem::take(&mut *s));
    samples.unwrap_or_default()
}

/// The probe's calls started before the window, and between its start and `burst_end`.
fn probe_stats(
    samples: &[ProbeSample],
    rate: f64,
    window_start: DateTime<Utc>,
    burst_end: DateTime<Utc>,
) -> ProbeStats {
    let phase = |keep: &dyn Fn(DateTime<Utc>) -> bool| {
        let (mut reads, mut writes) = (histogram(), histogram());
        let mut errors = Counts::new();
        for sample in samples.iter().filter(|s| keep(s.started)) {
            match &sample.error {
                Some(error) => bump(&mut errors, error.clone()),
                None if sample.write => report::record(&mut writes, sample.micros),
                None => report::record(&mut reads, sample.micros),
            }
        }
        ProbePhase {
            reads: LatencySummary::of(&reads),
            writes: LatencySummary::of(&writes),
            errors,
        }
    };
    ProbeStats {
        rate,
        before: phase(&|t| t < window_start),
        during: phase(&|t| t >= window_start && t <= burst_end),
    }
}

/// One instance's counters at one moment.
#[derive(Debug, Clone, Default)]
struct ServerCounters {
    due_soon: Option<f64>,
    overdue: Option<f64>,
    cpu_seconds: Option<f64>,
}

async fn sample_servers(listeners: &[String]) -> Vec<ServerCounters> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut samples = Vec::new();
    for base in listeners {
        let url = format!("{}/metrics", base.trim().trim_end_matches('/'));
        let text = match http.get(&url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(err) => {
                warn(format!("reading {url}: {err}"));
                String::new()
            }
        };
        samples.push(ServerCounters {
            due_soon: metric(&text, "taskstream_reminders_fired_total{kind=\"due_soon\"}"),
            overdue: metric(&text, "taskstream_reminders_fired_total{kind=\"overdue\"}"),
            cpu_seconds: metric(&text, "process_cpu_seconds_total"),
        });
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
    }

    #[test]
    fn receipts_count_once_per_notification() {
        let shared = Shared::new();
        let receipt = Receipt {
            received: at(10),
            fired: Some(at(9)),
        };
        shared.created(1, at(3600));
        shared.received(1, Kind::DueSoon, 100, receipt);
        shared.received(1, Kind::DueSoon, 100, receipt); // the same one again
        shared.received(1, Kind::DueSoon, 101, receipt); // fired twice
        shared.received(2, Kind::DueSoon, 102, receipt); // arrives before its create
        assert_eq!(shared.arrived[0].load(Ordering::Relaxed), 1);
        shared.created(2, at(3601));
        shared.created(3, at(3602));
        assert_eq!(shared.arrived[0].load(Ordering::Relaxed), 2);

        let tracks: HashMap<i64, TaskTrack> = shared
            .tasks
            .iter()
            .flat_map(|s| s.lock().expect("lock").clone())
            .collect();
        let lead = chrono::Duration::seconds(3600);
        let stats = kind_stats(&tracks, Kind::DueSoon, lead, at(0), 60, None);
        assert_eq!(stats.expected, 3);
        assert_eq!(stats.received, 2);
        assert_eq!(stats.lost, 1);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.redelivered, 1);
        // Task 1 was due to remind at 0 and fired at 9; task 2 at 1, fired at 9.
        assert_eq!(stats.early, 0);
        assert!(
            (stats.lag.max_ms - 10_000.0).abs() < 20.0,
            "{:?}",
            stats.lag
        );
        assert!((stats.fire_delay.min_ms - 8_000.0).abs() < 20.0);
    }

    #[test]
    fn a_reminder_before_its_time_is_early() {
        let shared = Shared::new();
        shared.created(1, at(3600));
        let receipt = Receipt {
            received: at(-4),
            fired: Some(at(-5)),
        };
        shared.received(1, Kind::DueSoon, 7, receipt);
        let tracks: HashMap<i64, TaskTrack> = shared
            .tasks
            .iter()
            .flat_map(|s| s.lock().expect("lock").clone())
            .collect();
        let lead = chrono::Duration::seconds(3600);
        let stats = kind_stats(&tracks, Kind::DueSoon, lead, at(0), 60, None);
        assert_eq!(stats.early, 1);
        assert_eq!(stats.fired_by_second, vec![1]);
    }

    #[test]
    fn probe_calls_fall_in_their_phase() {
        let sample = |second: i64, write: bool, error: Option<&str>| ProbeSample {
            started: at(second),
            write,
            micros: 1_000 * (second.unsigned_abs() + 1),
            error: error.map(str::to_string),
        };
        let samples = [
            sample(-5, false, None),
            sample(-4, true, None),
            sample(1, false, None),
            sample(2, true, Some("create_task 503")),
            sample(3, true, None),
            sample(90, false, None), // after the burst: neither
        ];
        let stats = probe_stats(&samples, 2.0, at(0), at(60));
        assert_eq!(stats.before.reads.count, 1);
        assert_eq!(stats.before.writes.count, 1);
        assert_eq!(stats.during.reads.count, 1);
        assert_eq!(stats.during.writes.count, 1);
        assert_eq!(stats.during.errors.get("create_task 503"), Some(&1));
        assert!(stats.before.errors.is_empty());
    }

    #[test]
    fn notification_events_parse() {
        let text = r#"{"type":"event","seq":9,"event":"notification.created","at":"2026-11-29T10:00:00Z",
            "data":{"id":5,"user_id":"00000000-0000-0000-0000-000000000001","type":"TASK_DUE_SOON",
            "title":"Task due soon","message":"m","is_read":false,"task_id":42,
            "created_at":"2026-11-29T10:00:00.123456Z"}}"#;
        let message: ServerMessage = serde_json::from_str(text).expect("parses");
        let data: NotificationData =
            serde_json::from_value(message.data.expect("data")).expect("a notification");
        assert_eq!(
            data.kind.as_deref().and_then(Kind::parse),
            Some(Kind::DueSoon)
        );
        assert_eq!(data.task_id, Some(42));
        assert!(data.created_at.is_some());
        // A task event parses too (its fields are not a notification's).
        let task = r#"{"type":"event","seq":8,"event":"task.created","at":"2026-11-29T10:00:00Z",
            "data":{"id":42,"title":"t","completed":false,"priority":"MEDIUM","due_date":null}}"#;
        let message: ServerMessage = serde_json::from_str(task).expect("parses");
        assert_eq!(message.event.as_deref(), Some("task.created"));
    }
}
