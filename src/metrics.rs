//! Prometheus metrics: the process-wide recorder, the separate listener that serves
//! `/metrics` (never the public port), and the few helpers the rest of the code calls.
//! With `METRICS_BIND=off` no recorder is installed and the macros record nothing.
//!
//! Names, for dashboards:
//! - `taskstream_ws_connections` (gauge), `taskstream_ws_connections_opened_total`,
//!   `taskstream_ws_disconnects_total{code}`, `taskstream_ws_messages_sent_total`,
//!   `taskstream_ws_resumes_total{result="replayed|reset"}`,
//!   `taskstream_ws_slow_consumer_closes_total`
//! - `taskstream_events_total{type}`, `taskstream_event_delivery_seconds` (from the
//!   event's `at` to its socket write, on the delivering instance; `at` is read when the
//!   write's transaction begins, so this includes the transaction; a frame is counted,
//!   like `taskstream_ws_messages_sent_total`, when queued on the socket, which sends the
//!   frames of a turn together before it waits for anything),
//!   `taskstream_write_transaction_seconds` (a write's transaction, from its `at` to its
//!   commit: the part of the two latencies around it that is the database's),
//!   `taskstream_bus_lag_seconds{bus}` (from `at` to receipt from the bus), `taskstream_gap_fills_total`, `taskstream_bus_rejected_total{bus}`
//!   (bus messages dropped because no instance signed them), `taskstream_bus_connects_total{bus}`
//!   (subscriptions made: the first, then one per reconnection),
//!   `taskstream_presence_reads_total` (reads of project members' presence: a pass reads
//!   only when a socket here, a watched membership or another instance's presence
//!   changed, and every ten seconds),
//!   `taskstream_catch_up_pass_seconds` (the time one pass of the periodic check spends
//!   reading the ends of the streams with sockets here from the table), `taskstream_catch_up_wakeups_total` (streams
//!   that pass found behind twice and woke: events a bus dropped; above zero outside bus
//!   reconnections, a bus is losing messages)
//! - `taskstream_http_requests_total{method,route,status}`,
//!   `taskstream_http_request_duration_seconds{method,route}` (route = matched template,
//!   `<unmatched>` for any other path; method = a standard method's name, else `OTHER`)
//! - `taskstream_rate_limited_total{limit}` (requests refused with 429, by limit name),
//!   `taskstream_rate_limit_fallbacks_total` (checks counted per instance because Redis
//!   was unreachable)
//! - `taskstream_password_hash_rejected_total` (sign-ins and sign-ups refused with 503
//!   because every hashing slot and queue place was taken),
//!   `taskstream_password_hashes_in_flight` (gauge: argon2 computations running)
//! - `taskstream_token_reuse_total` (refreshes with an already-rotated token: token theft
//!   suspected, the session was ended)
//! - `taskstream_quota_exceeded_total{quota="tasks"}` (writes refused with 409
//!   `QUOTA_EXCEEDED`), `taskstream_notifications_pruned_total{reason="quota|retention"}`
//! - `taskstream_db_pool_connections{state="in_use|idle"}`,
//!   `taskstream_db_connections_checked_total` (connections given back that had to be
//!   flushed or tested before another use: a dropped transaction, a failed statement),
//!   `taskstream_db_connections_dropped_total` (closed as broken or unresponsive),
//!   `process_resident_memory_bytes`,
//!   `process_open_fds`, `process_max_fds`, `process_cpu_seconds_total`

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::store::Store;

pub const WS_CONNECTIONS: &str = "taskstream_ws_connections";
pub const WS_OPENED: &str = "taskstream_ws_connections_opened_total";
pub const WS_DISCONNECTS: &str = "taskstream_ws_disconnects_total";
pub const WS_MESSAGES_SENT: &str = "taskstream_ws_messages_sent_total";
pub const WS_RESUMES: &str = "taskstream_ws_resumes_total";
pub const WS_SLOW_CONSUMER_CLOSES: &str = "taskstream_ws_slow_consumer_closes_total";
pub const EVENTS: &str = "taskstream_events_total";
pub const EVENT_DELIVERY: &str = "taskstream_event_delivery_seconds";
pub const BUS_LAG: &str = "taskstream_bus_lag_seconds";
pub const WRITE_TRANSACTION: &str = "taskstream_write_transaction_seconds";
pub const GAP_FILLS: &str = "taskstream_gap_fills_total";
pub const BUS_REJECTED: &str = "taskstream_bus_rejected_total";
pub const BUS_CONNECTS: &str = "taskstream_bus_connects_total";
pub const RATE_LIMITED: &str = "taskstream_rate_limited_total";
pub const RATE_LIMIT_FALLBACKS: &str = "taskstream_rate_limit_fallbacks_total";
pub const TOKEN_REUSE: &str = "taskstream_token_reuse_total";
pub const QUOTA_EXCEEDED: &str = "taskstream_quota_exceeded_total";
pub const NOTIFICATIONS_PRUNED: &str = "taskstream_notifications_pruned_total";
pub const PASSWORD_HASH_REJECTED: &str = "taskstream_password_hash_rejected_total";
pub const PASSWORD_HASHES_IN_FLIGHT: &str = "taskstream_password_hashes_in_flight";
pub const DELIVERIES: &str = "taskstream_deliveries_total";
pub const DELIVERIES_PENDING: &str = "taskstream_deliveries_pending";
pub const DELIVERY_OLDEST_PENDING: &str = "taskstream_delivery_oldest_pending_seconds";
pub const DELIVERY_SEND: &str = "taskstream_delivery_send_seconds";
pub const REMINDERS_FIRED: &str = "taskstream_reminders_fired_total";
pub const PROJECT_SUBSCRIPTIONS: &str = "taskstream_ws_project_subscriptions";
pub const PRESENCE_PROJECTS: &str = "taskstream_presence_projects";
pub const PRESENCE_MESSAGES: &str = "taskstream_presence_messages_total";
/// Sockets woken to send presence alone (no other frame took it within PRESENCE_HOLD).
pub const PRESENCE_WAKEUPS: &str = "taskstream_presence_wakeups_total";
pub const PRESENCE_READS: &str = "taskstream_presence_reads_total";
pub const CATCH_UP_PASS: &str = "taskstream_catch_up_pass_seconds";
pub const CATCH_UP_WAKEUPS: &str = "taskstream_catch_up_wakeups_total";
const HTTP_REQUESTS: &str = "taskstream_http_requests_total";
const HTTP_DURATION: &str = "taskstream_http_request_duration_seconds";

/// Latency buckets in seconds: fine below 10 ms, where event delivery lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide recorder (one per process, however many servers it runs: tests run
/// several).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed already (an embedding program's): keep a
                // private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Shows every counter and gauge from the start (at zero, or as they are: other servers
/// may share the process's recorder), with each label value known in advance, so that
/// dashboards and `rate()` see a series before the first event of its kind (histograms
/// appear with their first sample).
pub fn register(bus: &'static str) {
    use crate::config::Limit;
    use crate::domain::EventKind;

    for gauge in [
        WS_CONNECTIONS,
        PASSWORD_HASHES_IN_FLIGHT,
        DELIVERIES_PENDING,
        DELIVERY_OLDEST_PENDING,
        PROJECT_SUBSCRIPTIONS,
        PRESENCE_PROJECTS,
    ] {
        metrics::gauge!(gauge).increment(0.0);
    }
    for counter in [
        WS_OPENED,
        WS_MESSAGES_SENT,
        WS_SLOW_CONSUMER_CLOSES,
        GAP_FILLS,
        RATE_LIMIT_FALLBACKS,
        TOKEN_REUSE,
        PASSWORD_HASH_REJECTED,
        PRESENCE_MESSAGES,
        PRESENCE_WAKEUPS,
        PRESENCE_READS,
        CATCH_UP_WAKEUPS,
    ] {
        metrics::counter!(counter).increment(0);
    }
    for limit in Limit::ALL {
        metrics::counter!(RATE_LIMITED, "limit" => limit.name()).increment(0);
    }
    for kind in EventKind::ALL {
        metrics::counter!(EVENTS, "type" => kind.as_str()).increment(0);
    }
    for result in ["replayed", "reset"] {
        metrics::counter!(WS_RESUMES, "result" => result).increment(0);
    }
    for reason in ["quota", "retention"] {
        metrics::counter!(NOTIFICATIONS_PRUNED, "reason" => reason).increment(0);
    }
    for quota in ["tasks", "projects"] {
        metrics::counter!(QUOTA_EXCEEDED, "quota" => quota).increment(0);
    }
    for channel in ["email", "push"] {
        for outcome in ["sent", "skipped", "failed", "retried"] {
            metrics::counter!(DELIVERIES, "channel" => channel, "outcome" => outcome).increment(0);
        }
    }
    for kind in ["due_soon", "overdue"] {
        metrics::counter!(REMINDERS_FIRED, "kind" => kind).increment(0);
    }
    metrics::counter!(BUS_REJECTED, "bus" => bus).increment(0);
    metrics::counter!(BUS_CONNECTS, "bus" => bus).increment(0);
}

/// Serves `GET /metrics` on its own listener until the task is aborted, and keeps the
/// recorder's histograms trimmed.
pub async fn serve(listener: TcpListener, store: Arc<dyn Store>) {
    let handle = handle();
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state((handle, store));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::warn!(error = %err, "metrics listener failed");
    }
    upkeep_task.abort();
}

async fn render(State((handle, store)): State<(PrometheusHandle, Arc<dyn Store>)>) -> Response {
    let pool = store.pool_stats();
    metrics::gauge!("taskstream_db_pool_connections", "state" => "in_use").set(pool.in_use as f64);
    metrics::gauge!("taskstream_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::counter!("taskstream_db_connections_checked_total").absolute(pool.checked);
    metrics::counter!("taskstream_db_connections_dropped_total").absolute(pool.dropped);
    process::record();
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Counts and times every request, labelled by the matched route template (never the raw
/// path, so the label set stays bounded).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard ones by name, any other as `OTHER`. Methods are
/// whatever the client sends, and every distinct label value is a series kept forever.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Seconds from `at` (a commit time) until now; never negative (clocks of different
/// instances may disagree slightly).
pub fn seconds_since(at: DateTime<Utc>) -> f64 {
    (Utc::now() - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
}

/// Process figures read from /proc (Linux); absent elsewhere.
mod process {
    pub fn record() {
        #[cfg(target_os = "linux")]
        linux::record();
    }

    #[cfg(target_os = "linux")]
    mod linux {
        /// The kernel's clock ticks per second for /proc/self/stat (USER_HZ, 100 on Linux).
        const TICKS_PER_SECOND: f64 = 100.0;
        const PAGE_SIZE: f64 = 4096.0;

        pub fn record() {
            if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
                if let Some(resident) = statm
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<f64>().ok())
                {
                    metrics::gauge!("process_resident_memory_bytes").set(resident * PAGE_SIZE);
                }
            }
            if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
                metrics::gauge!("process_open_fds").set(fds.count() as f64);
            }
            if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
                metrics::gauge!("process_max_fds").set(soft as f64);
            }
            if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
                // Fields after the command name (which may hold spaces) start at ") ".
                if let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
                    let ticks: f64 = [11, 12]
                        .iter()
                        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
                        .sum();
                    metrics::gauge!("process_cpu_seconds_total").set(ticks / TICKS_PER_SECOND);
                }
            }
        }
    }
}
