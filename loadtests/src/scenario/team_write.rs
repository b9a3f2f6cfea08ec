//! `team-write-cost`: task creation in a project of many members against a project of
//! one, in one run on one server: the write must not cost more with the team's size (one
//! event row per change, whatever the number of members).
//!
//! Two owners each create a project through the API; the big one gets `--members - 1`
//! more members (with SQL, see [`super::team`]). Then, in rounds, each project in turn
//! gets `--phase` seconds of task creation (`POST /tasks` with its `project_id`, by its
//! owner) from `--concurrency` closed-loop workers; each round starts with the other
//! project, so that a machine getting busier or quieter, and the tables growing, favour
//! neither. The ratio is the big project's creates per second over the small one's (all
//! phases together; the per-round ratios are reported too). No socket is open: this is
//! the write path; what the members' sockets cost is `team-fanout`'s business.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use clap::Args;
use serde::Serialize;
use tokio::task::JoinSet;

use super::team::{self, MachineProbe, MachineState, SetupStats, TeamPlan};
use crate::client::Api;
use crate::pg::Psql;
use crate::progress::{Progress, Ui};
use crate::report::{self, bump, histogram, Counts, Histogram, LatencySummary, ScenarioReport};
use crate::sys::Rng;
use crate::DEFAULT_URL;

#[derive(Debug, Clone, Args)]
pub struct TeamWriteArgs {
    /// The server's base URL.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The server's PostgreSQL database (setup only: the members are added with SQL).
    #[arg(long)]
    pub database_url: String,
    /// The psql program (default: on PATH, or /usr/lib/postgresql/*/bin/psql).
    #[arg(long)]
    pub psql: Option<PathBuf>,
    /// The server's metrics listener, for its CPU time per create.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Members of the big project (the small one has its owner only).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Closed-loop workers creating tasks.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds per phase (one project).
    #[arg(long, default_value_t = 10)]
    pub phase: u64,
    /// Rounds; each has a phase per project, the order alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of creation in each project before the rounds (not counted).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
}

impl TeamWriteArgs {
    pub fn new(url: &str, database_url: &str, members: usize) -> Self {
        Self {
            url: url.to_string(),
            database_url: database_url.to_string(),
            psql: None,
            metrics: None,
            members,
            concurrency: 16,
            phase: 10,
            rounds: 3,
            warmup: 2,
            signup_concurrency: 16,
        }
    }
}

/// One phase: one project, `phase` seconds.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub round: usize,
    /// "small" or "big".
    pub project: &'static str,
    pub ok: u64,
    pub errors: Counts,
    pub seconds: f64,
    pub creates_per_s: f64,
    pub latency: LatencySummary,
    /// The server's CPU time per create in this phase, in microseconds.
    pub server_cpu_us_per_create: Option<f64>,
}

/// One project over all its phases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectTotals {
    pub members: i64,
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub creates_per_s: f64,
    pub latency: LatencySummary,
    pub server_cpu_us_per_create: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamWriteReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub url: String,
    pub concurrency: usize,
    pub phase_s: u64,
    pub rounds: usize,
    pub setup: SetupStats,
    pub small: ProjectTotals,
    pub big: ProjectTotals,
    /// big / small creates per second, over all phases (target: at least 0.9).
    pub ratio: Option<f64>,
    /// big / small within each round.
    pub round_ratios: Vec<Option<f64>>,
    pub phases: Vec<PhaseResult>,
    pub machine: MachineState,
    pub target_met: bool,
    pub passed: bool,
}

impl ScenarioReport for TeamWriteReport {
    fn scenario(&self) -> &'static str {
        "team-write-cost"
    }

    fn summary(&self) -> String {
        format!(
            "team-write-cost: {} workers, {} rounds of {} s: project of {} members {:.0} creates/s \
             (p99 {}), project of {} {:.0} creates/s (p99 {}), {} errors => ratio {} (rounds: {}) => {}",
            self.concurrency,
            self.rounds,
            self.phase_s,
            self.big.members,
            self.big.creates_per_s,
            report::fmt_ms(self.big.latency.p99_ms),
            self.small.members,
            self.small.creates_per_s,
            report::fmt_ms(self.small.latency.p99_ms),
            self.big.errors + self.small.errors,
            report::or_na(self.ratio, |r| format!("{r:.3}")),
            self.round_ratios
                .iter()
                .map(|r| report::or_na(*r, |r| format!("{r:.3}")))
                .collect::<Vec<_>>()
                .join(", "),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

const SMALL: usize = 0;
const BIG: usize = 1;
const NAMES: [&str; 2] = ["small", "big"];

pub async fn run(args: &TeamWriteArgs, ui: Ui) -> anyhow::Result<TeamWriteReport> {
    if args.members < 2 || args.concurrency == 0 || args.phase == 0 || args.rounds == 0 {
        bail!("--members must be at least 2, --concurrency, --phase and --rounds at least 1");
    }
    let psql = Psql::new(&args.database_url, args.psql.as_deref())?;
    let api = Api::new(&args.url)?;
    let started_at = Utc::now().to_rfc3339();
    // User 0 owns the small project, user 1 the big one, users 2.. are its other members.
    let plan = TeamPlan {
        users: args.members + 1,
        owners: vec![0, 1],
        members: (2..=args.members).map(|u| (BIG, u)).collect(),
    };
    let apis = [api.clone()];
    let teams = team::build(&apis, &psql, &plan, args.signup_concurrency, ui).await?;
    let mut members = [0i64; 2];
    for (p, count) in members.iter_mut().enumerate() {
        *count = psql
            .scalar(&format!(
                "SELECT count(*) FROM project_members WHERE project_id = '{}'",
                teams.projects[p]
            ))
            .await?
            .parse()?;
    }
    let tokens = [
        teams.accounts[0].token.clone(),
        teams.accounts[1].token.clone(),
    ];
    let metrics: Vec<String> = args.metrics.iter().cloned().collect();

    for p in [SMALL, BIG] {
        if args.warmup > 0 {
            phase(
                &api,
                &tokens[p],
                &teams.projects[p],
                args,
                args.warmup,
                &metrics,
            )
            .await;
        }
    }
    let progress = Progress::new(ui, "phases", Some((args.rounds * 2) as u64));
    let machine_probe = MachineProbe::start(&metrics).await;
    let mut phases = Vec::new();
    let mut all = [histogram(), histogram()];
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [SMALL, BIG]
        } else {
            [BIG, SMALL]
        };
        for p in order {
            let (mut result, latency) = phase(
                &api,
                &tokens[p],
                &teams.projects[p],
                args,
                args.phase,
                &metrics,
            )
            .await;
            result.round = round + 1;
            result.project = NAMES[p];
            report::merge(&mut all[p], &latency);
            progress.inc(1);
            progress.set_message(format!(
                "round {}: {} {:.0} creates/s",
                round + 1,
                NAMES[p],
                result.creates_per_s
            ));
            phases.push(result);
        }
    }
    let machine = machine_probe.finish().await;
    progress.finish(format!("{} phases", phases.len()));

    let totals = |p: usize, latency: &Histogram| {
        let mine: Vec<&PhaseResult> = phases.iter().filter(|r| r.project == NAMES[p]).collect();
        let ok: u64 = mine.iter().map(|r| r.ok).sum();
        let seconds: f64 = mine.iter().map(|r| r.seconds).sum();
        let cpu: Option<f64> = mine
            .iter()
            .map(|r| r.server_cpu_us_per_create.map(|c| c * r.ok as f64))
            .sum();
        ProjectTotals {
            members: members[p],
            ok,
            errors: mine.iter().map(|r| r.errors.values().sum::<u64>()).sum(),
            seconds,
            creates_per_s: ok as f64 / seconds.max(0.001),
            latency: LatencySummary::of(latency),
            server_cpu_us_per_create: cpu.map(|c| c / ok.max(1) as f64),
        }
    };
    let small = totals(SMALL, &all[SMALL]);
    let big = totals(BIG, &all[BIG]);
    let ratio = (small.creates_per_s > 0.0).then(|| big.creates_per_s / small.creates_per_s);
    let round_ratios = (1..=args.rounds)
        .map(|round| {
            let rate = |name: &str| {
                phases
                    .iter()
                    .find(|r| r.round == round && r.project == name)
                    .map(|r| r.creates_per_s)
            };
            match (rate("big"), rate("small")) {
                (Some(big), Some(small)) if small > 0.0 => Some(big / small),
                _ => None,
            }
        })
        .collect();
    let passed = small.ok > 0
        && big.ok > 0
        && small.errors == 0
        && big.errors == 0
        && members[SMALL] == 1
        && members[BIG] == args.members as i64;
    Ok(TeamWriteReport {
        scenario: "team-write-cost",
        started_at,
        url: args.url.clone(),
        concurrency: args.concurrency,
        phase_s: args.phase,
        rounds: args.rounds,
        setup: teams.stats,
        target_met: ratio.is_some_and(|r| r >= 0.9),
        small,
        big,
        ratio,
        round_ratios,
        phases,
        machine,
        passed,
    })
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: Counts,
    latency: Option<Histogram>,
}

/// `seconds` of closed-loop creation in one project; the result and its latencies.
async fn phase(
    api: &Api,
    token: &str,
    project_id: &str,
    args: &TeamWriteArgs,
    seconds: u64,
    metrics: &[String],
) -> (PhaseResult, Histogram) {
    let probe = MachineProbe::start(metrics).await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..args.concurrency {
        let (api, token, project_id) = (api.clone(), token.to_string(), project_id.to_string());
        let (tally, stop) = (tally.clone(), stop.clone());
        workers.spawn(async move {
            let mut rng = Rng::from_entropy(w as u64);
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let outcome = api
                    .create_project_task(&token, &project_id, rng.next_u64())
                    .await;
                let micros = t0.elapsed().as_micros() as u64;
                if let Ok(mut tally) = tally.lock() {
                    if outcome.ok {
                        tally.ok += 1;
                        report::record(tally.latency.get_or_insert_with(histogram), micros);
                    } else {
                        bump(&mut tally.errors, outcome.error_key());
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let machine = probe.finish().await;
    let tally = tally
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let latency = tally.latency.unwrap_or_else(histogram);
    let cpu = machine.server_cpu_s.values().next().copied().flatten();
    let result = PhaseResult {
        round: 0,
        project: "",
        ok: tally.ok,
        errors: tally.errors,
        seconds: elapsed,
        creates_per_s: tally.ok as f64 / elapsed.max(0.001),
        latency: LatencySummary::of(&latency),
        server_cpu_us_per_create: cpu.map(|c| c * 1e6 / tally.ok.max(1) as f64),
    };
    (result, latency)
}
