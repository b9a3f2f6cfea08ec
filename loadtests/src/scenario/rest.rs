//! `rest`: C closed-loop workers making a realistic mix of REST calls (or creates only)
//! for D seconds; throughput, latency percentiles and errors per route.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::client::{sign_up_users, Account, Api};
use crate::progress::{Progress, Ui};
use crate::report::{
    self, add_counts, bump, histogram, Counts, Histogram, LatencySummary, PlotData, ScenarioReport,
    Timeline,
};
use crate::sys::{loopback, Rng};
use crate::workload::{Mix, Route, TaskPool};
use crate::DEFAULT_URL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MixKind {
    /// Lists, creates, patches, completes, deletes, notifications, unread count.
    Realistic,
    /// Task creation only.
    Create,
}

impl MixKind {
    pub fn mix(self) -> Mix {
        match self {
            MixKind::Realistic => Mix::realistic(),
            MixKind::Create => Mix::creates(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RestArgs {
    /// Workers, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Base URL of the server.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// Users the workers act as (default: one per worker).
    #[arg(long)]
    pub users: Option<usize>,
    /// The mix of calls.
    #[arg(long, value_enum, default_value = "realistic")]
    pub mix: MixKind,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
    /// Give each user its own source address, `127.BLOCK.x.y` (sign-up and requests), so
    /// that per-address rate limits treat the users as the distinct clients they stand
    /// for; without it every request comes from 127.0.0.1.
    #[arg(long, value_name = "BLOCK")]
    pub source_block: Option<u8>,
}

impl RestArgs {
    pub fn new(concurrency: usize, duration: u64, url: &str) -> Self {
        Self {
            concurrency,
            duration,
            url: url.to_string(),
            users: None,
            mix: MixKind::Realistic,
            signup_concurrency: 16,
            source_block: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: &'static str,
    pub requests: u64,
    pub errors: u64,
    /// Errors by HTTP status or transport failure.
    pub errors_by_kind: Counts,
    pub throughput_rps: f64,
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub url: String,
    pub concurrency: usize,
    pub users: usize,
    pub mix: &'static str,
    pub elapsed_s: f64,
    pub requests: u64,
    pub errors: u64,
    /// Requests refused with 429 (a rate limit), counted among the errors.
    pub rate_limited: u64,
    /// Where the users' requests came from: `127.0.0.1`, or one address each.
    pub sources: String,
    pub throughput_rps: f64,
    pub latency: LatencySummary,
    pub routes: Vec<RouteReport>,
    pub passed: bool,
}

impl ScenarioReport for RestReport {
    fn scenario(&self) -> &'static str {
        "rest"
    }

    fn summary(&self) -> String {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {:.0}/s p99={}",
                    r.route,
                    r.throughput_rps,
                    report::fmt_ms(r.latency.p99_ms)
                )
            })
            .collect();
        format!(
            "rest: {:.1} req/s ({} requests in {:.1} s, {} errors ({} rate-limited), concurrency {}, mix {}); {} [{}] => {}",
            self.throughput_rps,
            self.requests,
            self.elapsed_s,
            self.errors,
            self.rate_limited,
            self.concurrency,
            self.mix,
            self.latency.line(),
            routes.join("; "),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

pub async fn run(args: &RestArgs, ui: Ui) -> anyhow::Result<(RestReport, PlotData)> {
    if args.concurrency == 0 || args.duration == 0 {
        bail!("--concurrency and --duration must be at least 1");
    }
    let users = args.users.unwrap_or(args.concurrency).max(1);
    let apis = match args.source_block {
        Some(block) => {
            let sources: Vec<_> = (0..users).map(|i| loopback(block, i)).collect();
            Api::per_source(&args.url, &sources)?
        }
        None => vec![Api::new(&args.url)?],
    };
    // With one address per user, user i signs up from its own address (round robin).
    let accounts = sign_up_users(&apis, users, args.signup_concurrency, ui).await?;
    run_load(
        &apis,
        &accounts,
        &Load {
            concurrency: args.concurrency,
            duration: Duration::from_secs(args.duration),
            mix: args.mix.mix(),
            pace: None,
        },
        ui,
    )
    .await
}

/// How the workers call: `concurrency` workers for `duration`, each either closed loop
/// (`pace: None`, the next call as soon as the last answered) or starting a call every
/// `pace` on a fixed schedule (an open loop per worker; the latency is then counted from
/// the scheduled start, so a slow answer also counts against the calls it delayed).
#[derive(Debug, Clone)]
pub struct Load {
    pub concurrency: usize,
    pub duration: Duration,
    pub mix: Mix,
    pub pace: Option<Duration>,
}

#[derive(Default)]
struct RouteTally {
    requests: u64,
    errors: Counts,
    latency: Option<Histogram>,
}

#[derive(Default)]
struct WorkerTally {
    routes: BTreeMap<Route, RouteTally>,
    timeline: Timeline,
}

/// The workload with accounts already made (the `limit` scenario reuses its users).
pub async fn run_with_accounts(
    api: &Api,
    accounts: &[Account],
    concurrency: usize,
    duration: Duration,
    mix: Mix,
    ui: Ui,
) -> anyhow::Result<(RestReport, PlotData)> {
    let load = Load {
        concurrency,
        duration,
        mix,
        pace: None,
    };
    run_load(std::slice::from_ref(api), accounts, &load, ui).await
}

/// The workload with accounts already made; worker `w` acts as user `w % accounts` through
/// `apis[(w % accounts) % apis]` (one `Api` per user when each has its own address).
pub async fn run_load(
    apis: &[Api],
    accounts: &[Account],
    load: &Load,
    ui: Ui,
) -> anyhow::Result<(RestReport, PlotData)> {
    if accounts.is_empty() || apis.is_empty() {
        bail!("no users to act as");
    }
    let (concurrency, duration, mix) = (load.concurrency, load.duration, load.mix.clone());
    let sources = if apis.len() > 1 {
        format!("{} addresses", apis.len())
    } else {
        "one address".to_string()
    };
    let started_at = Utc::now().to_rfc3339();
    let pools: Vec<Arc<TaskPool>> = accounts.iter().map(|_| Arc::default()).collect();
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let api = apis[(w % accounts.len()) % apis.len()].clone();
        let token = accounts[w % accounts.len()].token.clone();
        let pace = load.pace;
        let pool = pools[w % accounts.len()].clone();
        let mix = mix.clone();
        let requests = requests.clone();
        let errors = errors.clone();
        workers.spawn(async move {
            let mut rng = Rng::from_entropy(w as u64);
            let mut tally = WorkerTally::default();
            // Paced workers start spread over one interval, not all at once.
            let mut next = pace.map(|p| start + p.mul_f64(w as f64 / concurrency as f64));
            while Instant::now() < deadline {
                let t0 = match (next, pace) {
                    (Some(at), Some(p)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + p);
                        at
                    }
                    _ => Instant::now(),
                };
                if t0 >= deadline {
                    break;
                }
                let call = pool.plan(mix.pick(&mut rng), &mut rng);
                let outcome = api.perform(&token, call, rng.next_u64()).await;
                let micros = t0.elapsed().as_micros() as u64;
                pool.settle(call, outcome.ok, outcome.status, outcome.created);
                let route = tally.routes.entry(call.route()).or_default();
                route.requests += 1;
                report::record(route.latency.get_or_insert_with(histogram), micros);
                if !outcome.ok {
                    bump(&mut route.errors, outcome.error_key());
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                // Requests that end after the deadline would make a last, partial second.
                if Instant::now() < deadline {
                    tally
                        .timeline
                        .record(start.elapsed().as_secs() as usize, micros);
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
            tally
        });
    }

    let progress = Progress::new(ui, "rest", Some(duration.as_secs()));
    let mut tallies = Vec::new();
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(tally)) => tallies.push(tally),
                Some(Err(err)) => bail!("a worker failed: {err}"),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                let n = requests.load(Ordering::Relaxed);
                let elapsed = start.elapsed().as_secs_f64();
                progress.set_position(start.elapsed().as_secs().min(duration.as_secs()));
                progress.set_message(format!(
                    "{n} requests ({:.0}/s), {} errors",
                    n as f64 / elapsed.max(0.001),
                    errors.load(Ordering::Relaxed)
                ));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(0.001);

    // Merge the workers' tallies.
    let mut routes: BTreeMap<Route, (u64, Counts, Histogram)> = BTreeMap::new();
    let mut timeline = Timeline::default();
    let mut all = histogram();
    for tally in &tallies {
        timeline.merge(&tally.timeline);
        for (route, t) in &tally.routes {
            let entry = routes
                .entry(*route)
                .or_insert_with(|| (0, Counts::new(), histogram()));
            entry.0 += t.requests;
            add_counts(&mut entry.1, &t.errors);
            if let Some(h) = &t.latency {
                report::merge(&mut entry.2, h);
                report::merge(&mut all, h);
            }
        }
    }
    let route_reports: Vec<RouteReport> = routes
        .iter()
        .map(|(route, (n, errs, h))| RouteReport {
            route: route.name(),
            requests: *n,
            errors: errs.values().sum(),
            errors_by_kind: errs.clone(),
            throughput_rps: *n as f64 / elapsed,
            latency: LatencySummary::of(h),
        })
        .collect();
    let total: u64 = route_reports.iter().map(|r| r.requests).sum();
    let total_errors: u64 = route_reports.iter().map(|r| r.errors).sum();
    let rate_limited: u64 = route_reports
        .iter()
        .filter_map(|r| r.errors_by_kind.get("429"))
        .sum();
    progress.finish(format!("{total} requests, {total_errors} errors"));
    let report = RestReport {
        scenario: "rest",
        started_at,
        url: apis[0].base().to_string(),
        concurrency,
        users: accounts.len(),
        mix: mix.name,
        elapsed_s: elapsed,
        requests: total,
        errors: total_errors,
        rate_limited,
        sources,
        throughput_rps: total as f64 / elapsed,
        latency: LatencySummary::of(&all),
        routes: route_reports,
        passed: total > 0 && total_errors == 0,
    };
    let mut cdf: Vec<(String, Histogram)> = routes
        .into_iter()
        .map(|(route, (_, _, h))| (route.name().to_string(), h))
        .collect();
    if cdf.len() > 1 {
        cdf.insert(0, ("all".to_string(), all));
    }
    let plot = PlotData {
        title: format!("rest ({}, concurrency {concurrency})", mix.name),
        cdf,
        timeline: vec![
            ("p50".into(), timeline.quantile_points(0.50)),
            ("p99".into(), timeline.quantile_points(0.99)),
        ],
        timeline_caption: "request latency per second (all routes)".into(),
    };
    Ok((report, plot))
}
