//! The writers of the fan-out scenarios (`fanout`, `team-fanout`, `presence-churn`): an
//! open loop, where write k is due at k/rate seconds whatever the earlier ones are doing.
//! A write due while `max_in_flight` are still pending is skipped and counted, so a slow
//! server shows as skipped writes and long REST latencies, not as a lower planned rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::Api;
use crate::progress::{Progress, Ui};
use crate::report::{self, bump, histogram, Counts, Histogram, LatencySummary};
use crate::sys::Rng;
use crate::workload::TaskPool;

/// The writers' side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteStats {
    pub planned: u64,
    pub sent: u64,
    pub ok: u64,
    /// Writes not sent because `max_in_flight` were pending.
    pub skipped: u64,
    pub errors: Counts,
    pub by_route: Counts,
    pub achieved_rate: f64,
    /// REST latency of the writes.
    pub latency: LatencySummary,
}

/// One write as the scenario plans it: through which instance, by whom, on which of the
/// scenario's task pools, and in which project (`None`: a personal task).
pub struct PlannedWrite {
    pub api: Api,
    pub token: String,
    pub pool: Arc<TaskPool>,
    pub project_id: Option<String>,
}

pub struct OpenLoop {
    pub rate: f64,
    /// Seconds of writing.
    pub duration: u64,
    pub max_in_flight: usize,
    /// The progress line's name.
    pub label: &'static str,
}

#[derive(Default)]
struct WriteTally {
    sent: u64,
    ok: u64,
    errors: Counts,
    by_route: Counts,
    latency: Option<Histogram>,
}

impl OpenLoop {
    /// Makes write k with `plan(k, rng)` when it is due (its call is drawn from the
    /// `fanout` mix on the planned pool). `clients` says how the receiving side is doing,
    /// for the progress line.
    pub async fn run(
        &self,
        ui: Ui,
        clients: impl Fn() -> String,
        mut plan: impl FnMut(usize, &mut Rng) -> PlannedWrite,
    ) -> (WriteStats, Histogram) {
        let (rate, duration) = (self.rate, self.duration);
        let planned = (rate * duration as f64).round().max(1.0) as u64;
        let tally = Arc::new(Mutex::new(WriteTally::default()));
        let in_flight = Arc::new(Semaphore::new(self.max_in_flight.max(1)));
        let mix = crate::workload::Mix::writes();
        let mut rng = Rng::from_entropy(planned);
        let mut skipped = 0u64;
        let status = |skipped: u64| {
            let (ok, errors) = tally
                .lock()
                .map(|t| (t.ok, t.errors.values().sum::<u64>()))
                .unwrap_or_default();
            format!(
                "writes {ok} ok, {errors} errors, {skipped} skipped; {}",
                clients()
            )
        };
        let progress = Progress::new(ui, self.label, Some(duration));
        let start = Instant::now();
        let mut jobs = JoinSet::new();
        for k in 0..planned {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            if k % 16 == 0 {
                progress.set_position(start.elapsed().as_secs().min(duration));
                progress.set_message(status(skipped));
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let write = plan(k as usize, &mut rng);
            let call = write.pool.plan(mix.pick(&mut rng), &mut rng);
            let word = rng.next_u64();
            let tally = tally.clone();
            jobs.spawn(async move {
                let t0 = Instant::now();
                let outcome = write
                    .api
                    .perform_in(&write.token, call, word, write.project_id.as_deref())
                    .await;
                let micros = t0.elapsed().as_micros() as u64;
                write
                    .pool
                    .settle(call, outcome.ok, outcome.status, outcome.created);
                drop(permit);
                if let Ok(mut tally) = tally.lock() {
                    tally.sent += 1;
                    bump(&mut tally.by_route, call.route().name());
                    if outcome.ok {
                        tally.ok += 1;
                    } else {
                        bump(
                            &mut tally.errors,
                            format!("{} {}", call.route().name(), outcome.error_key()),
                        );
                    }
                    report::record(tally.latency.get_or_insert_with(histogram), micros);
                }
            });
            // Reap finished writes so the set stays small.
            while jobs.try_join_next().is_some() {}
        }
        while jobs.join_next().await.is_some() {}
        let elapsed = start.elapsed().as_secs_f64();
        progress.finish(status(skipped));
        let tally = tally
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let latency = tally.latency.unwrap_or_else(histogram);
        let stats = WriteStats {
            planned,
            sent: tally.sent,
            ok: tally.ok,
            skipped,
            errors: tally.errors,
            by_route: tally.by_route,
            achieved_rate: tally.ok as f64 / elapsed.max(0.001),
            latency: LatencySummary::of(&latency),
        };
        (stats, latency)
    }
}

/// The receiving side of a fan-out scenario, for the writers' progress line.
pub fn delivery_status(delivered: &AtomicU64, reconnects: &AtomicU64) -> String {
    format!(
        "{} events delivered, {} reconnects",
        delivered.load(Ordering::Relaxed),
        reconnects.load(Ordering::Relaxed)
    )
}
