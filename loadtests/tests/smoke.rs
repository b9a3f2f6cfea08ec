//! Smoke test of the load scenarios against the real server, in process: a few hundred
//! WebSockets checking their streams under writes, on the embedded database and on two
//! instances sharing one fresh PostgreSQL database, a handful of due-date reminders, and
//! the project scenarios (team fan-out with presence churn, write cost by team size) on
//! PostgreSQL. No timing assertions: only that events flow and none is lost, duplicated or
//! reordered, and that every reminder arrives exactly once.

use taskstream::config::{BusKind, DatabaseUrl, Secret};
use taskstream::limits::Policy;
use taskstream_load::progress::Ui;
use taskstream_load::report::ScenarioReport;
use taskstream_load::scenario::abuse::{self, AbuseArgs};
use taskstream_load::scenario::connections::{self, ConnectionsArgs};
use taskstream_load::scenario::fanout::{self, FanoutArgs, FanoutReport};
use taskstream_load::scenario::reminders::{self, RemindersArgs, RemindersReport};
use taskstream_load::scenario::rest::{self, RestArgs};
use taskstream_load::scenario::team_fanout::{self, TeamFanoutArgs};
use taskstream_load::scenario::team_write::{self, TeamWriteArgs};
use testkit::{test_config, PgDatabase, Server};

/// One test at a time: each runs a server and a few hundred sockets on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn smoke_fanout(instances: &[&Server]) -> FanoutArgs {
    let mut args = FanoutArgs::new(200, 20, 50.0, 3);
    args.instances = instances.iter().map(|s| s.address.clone()).collect();
    args.drain = 30;
    args
}

fn assert_clean(report: &FanoutReport) {
    let s = &report.stream;
    assert!(report.writes.ok > 0, "no write succeeded: {report:#?}");
    assert!(s.delivered > 0, "no event delivered: {report:#?}");
    assert_eq!(s.connected, 200, "{report:#?}");
    assert!(s.connect_failures.is_empty(), "{report:#?}");
    assert_eq!(s.lost, 0, "{report:#?}");
    assert_eq!(s.duplicated, 0, "{report:#?}");
    assert_eq!(s.out_of_order, 0, "{report:#?}");
    assert_eq!(s.delivered, s.expected, "{report:#?}");
    assert!(report.passed(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_run_against_the_embedded_database() {
    let _serial = SERIAL.lock().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data.path());
    config.metrics.bind = Some(([127, 0, 0, 1], 0).into());
    let server = Server::start(&config).await;

    let (report, plot) = fanout::run(&smoke_fanout(&[&server]), Ui::quiet())
        .await
        .expect("fanout runs");
    assert_clean(&report);
    assert!(!plot.cdf.is_empty());

    let mut conn = ConnectionsArgs::new(100, &server.address);
    conn.hold = 1;
    conn.metrics = server.metrics_address.clone().unwrap_or_default();
    let report = connections::run(&conn, Ui::quiet())
        .await
        .expect("connections runs");
    assert_eq!(report.opened, 100, "{report:#?}");
    // The server's own numbers were read (this process's, since it runs in-process).
    assert_eq!(report.server_after_open.source, "metrics", "{report:#?}");
    assert!(report.server_after_open.rss_bytes.is_some(), "{report:#?}");
    assert!(report.passed(), "{}", report.summary());

    let report = rest::run(&RestArgs::new(4, 1, &server.address), Ui::quiet())
        .await
        .expect("rest runs");
    assert!(report.0.requests > 0, "{report:#?}");
    assert_eq!(report.0.errors, 0, "{}", report.0.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_across_two_instances_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = PgDatabase::create().await;
    let data_a = tempfile::tempdir().expect("temp dir");
    let data_b = tempfile::tempdir().expect("temp dir");
    let configure = |dir: &std::path::Path| {
        let mut config = test_config(dir);
        config.database.url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
        config.auth.jwt_secret = Some(Secret::new("load-smoke-secret-".repeat(3)));
        config.event_bus.kind = Some(BusKind::Postgres);
        config
    };
    let a = Server::start(&configure(data_a.path())).await;
    let b = Server::start(&configure(data_b.path())).await;

    let (report, _) = fanout::run(&smoke_fanout(&[&a, &b]), Ui::quiet())
        .await
        .expect("fanout runs");
    drop((a, b));
    assert_eq!(report.instances.len(), 2);
    assert_clean(&report);
}

/// The abuse scenario, briefly, against a server with tight budgets so that a handful of
/// attempts is enough to meet each defence: honest users must get no error, no attack may
/// sign in or store a bomb of declared size, and every defence must have answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_is_refused_and_honest_users_are_served() {
    let _serial = SERIAL.lock().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data.path());
    config.limits.rate_limits = "signin_ip=3/1h,photo=2/1h"
        .parse::<Policy>()
        .expect("policy");
    config.realtime.limits.unauthenticated_per_ip = 2;
    let server = Server::start(&config).await;

    let mut args = AbuseArgs::new(&server.address);
    args.honest_users = 4;
    args.honest_rate = 20.0;
    args.baseline = 1;
    args.attack = 2;
    args.signin_rate = 20.0;
    args.signin_workers = 2;
    args.signin_addresses = 2;
    args.signin_per_address = 10;
    args.socket_rate = 20.0;
    args.socket_addresses = 1;
    args.bomb_accounts = 2;
    args.bomb_rate = 8.0;
    args.bomb_side = 512;
    let (report, _) = abuse::run(&args, Ui::quiet()).await.expect("abuse runs");
    drop(server);
    let summary = report.summary();
    for phase in [&report.baseline, &report.under_attack] {
        assert!(phase.requests > 0, "{summary}");
        assert_eq!(phase.errors, 0, "{summary}");
    }
    let signin = &report.attacks.signin.answers;
    assert!(!signin.contains_key("200"), "{summary}");
    // Two addresses with 3 attempts each: the rest is refused per address.
    assert!(signin.get("429").copied().unwrap_or(0) > 0, "{summary}");
    assert!(
        signin
            .keys()
            .all(|k| ["401", "429", "503"].contains(&k.as_str())),
        "{summary}"
    );
    // One address may hold two sockets waiting to authenticate; more are refused.
    let sockets = &report.attacks.sockets;
    assert!(
        sockets.answers.get("101").copied().unwrap_or(0) >= 1,
        "{summary}"
    );
    assert!(
        sockets.answers.get("http 429").copied().unwrap_or(0) > 0,
        "{summary}"
    );
    let uploads = &report.attacks.uploads.answers;
    for (kind, count) in uploads {
        if kind.contains("(declared)") {
            assert!(!kind.ends_with(" 200"), "{kind}: {count}; {summary}");
        }
    }
    // Two uploads each are allowed (the first, a real 512x512, is stored); then 429.
    assert!(uploads.get("512x512 (decoded) 200").is_some(), "{summary}");
    assert!(uploads.keys().any(|k| k.ends_with(" 429")), "{summary}");
    assert!(
        uploads.keys().any(|k| k.ends_with("(declared) 422")),
        "{summary}"
    );
}

/// The servers' REMINDER_LEAD in the reminder smoke runs (the scenario is told the same).
const SMOKE_LEAD: std::time::Duration = std::time::Duration::from_secs(3600);

/// 60 tasks over 6 users, their reminders due within 2 s of a window opening 3 s after
/// creation starts.
fn smoke_reminders(instances: &[&Server]) -> RemindersArgs {
    let mut args = RemindersArgs::new(60, 6, instances.iter().map(|s| s.address.clone()).collect());
    args.window = 2;
    args.setup = 3;
    args.lead = SMOKE_LEAD.as_secs();
    args.grace = 60;
    args
}

fn assert_reminded_once(report: &RemindersReport) {
    let summary = report.summary();
    assert_eq!(report.creation.created, 60, "{summary}");
    let d = &report.due_soon;
    assert_eq!(d.expected, 60, "{summary}");
    assert_eq!(d.received, 60, "{summary}");
    assert_eq!(d.lost, 0, "{summary}");
    assert_eq!(d.duplicates, 0, "{summary}");
    assert_eq!(d.redelivered, 0, "{summary}");
    assert_eq!(d.early, 0, "{summary}");
    assert_eq!(d.fired_by_second.iter().sum::<u64>(), 60, "{summary}");
    assert_eq!(report.audit.users_read, 6, "{report:#?}");
    assert_eq!(report.audit.due_soon_notifications, 60, "{report:#?}");
    assert_eq!(report.audit.due_soon_fired_twice, 0, "{summary}");
    assert_eq!(report.stream.connected, 6, "{report:#?}");
    assert_eq!(report.stream.lost, 0, "{report:#?}");
    // The REST probe ran alongside and was answered.
    let p = &report.probe;
    assert!(
        p.before.reads.count + p.during.reads.count > 0,
        "{report:#?}"
    );
    assert!(
        p.before.errors.is_empty() && p.during.errors.is_empty(),
        "{report:#?}"
    );
    assert!(report.passed(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_arrive_once_on_the_embedded_database() {
    let _serial = SERIAL.lock().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data.path());
    config.delivery.reminder_lead = SMOKE_LEAD;
    let server = Server::start(&config).await;
    let (report, _) = reminders::run(&smoke_reminders(&[&server]), Ui::quiet())
        .await
        .expect("reminders runs");
    drop(server);
    assert_reminded_once(&report);
}

/// Two instances fire from one database: each reminder still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_arrive_once_across_two_instances_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = PgDatabase::create().await;
    let data_a = tempfile::tempdir().expect("temp dir");
    let data_b = tempfile::tempdir().expect("temp dir");
    let configure = |dir: &std::path::Path| {
        let mut config = test_config(dir);
        config.database.url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
        config.auth.jwt_secret = Some(Secret::new("load-smoke-secret-".repeat(3)));
        config.event_bus.kind = Some(BusKind::Postgres);
        config.delivery.reminder_lead = SMOKE_LEAD;
        config
    };
    let a = Server::start(&configure(data_a.path())).await;
    let b = Server::start(&configure(data_b.path())).await;
    let (report, _) = reminders::run(&smoke_reminders(&[&a, &b]), Ui::quiet())
        .await
        .expect("reminders runs");
    drop((a, b));
    assert_eq!(report.instances.len(), 2);
    assert_reminded_once(&report);
}

/// Four projects of five members over two PostgreSQL instances, project-task writes, and
/// churn sockets joining and leaving every other second: both streams of every client
/// whole, the churn sockets opened, latencies measured in both kinds of phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_fanout_with_churn_across_two_instances_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = PgDatabase::create().await;
    let data_a = tempfile::tempdir().expect("temp dir");
    let data_b = tempfile::tempdir().expect("temp dir");
    let configure = |dir: &std::path::Path| {
        let mut config = test_config(dir);
        config.database.url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
        config.auth.jwt_secret = Some(Secret::new("load-smoke-secret-".repeat(3)));
        config.event_bus.kind = Some(BusKind::Postgres);
        config
    };
    let a = Server::start(&configure(data_a.path())).await;
    let b = Server::start(&configure(data_b.path())).await;
    let mut args = TeamFanoutArgs::new(4, 5, 20.0, 4, &db.url);
    args.instances = vec![a.address.clone(), b.address.clone()];
    args.churn_rate = 10.0;
    args.churn_hold = 0.5;
    args.phase = 1;
    let (report, plot) = team_fanout::run(&args, "presence-churn", Ui::quiet())
        .await
        .expect("team fan-out runs");
    drop((a, b));
    let summary = report.summary();
    assert_eq!(report.setup.memberships_by_sql, 4 * 4 + 10, "{summary}");
    for streams in [&report.project_streams, &report.own_streams] {
        assert_eq!(streams.connected, 20, "{report:#?}");
        assert!(streams.connect_failures.is_empty(), "{report:#?}");
        assert_eq!(streams.lost, 0, "{report:#?}");
        assert_eq!(streams.duplicated, 0, "{report:#?}");
        assert_eq!(streams.out_of_order, 0, "{report:#?}");
        assert_eq!(streams.delivered, streams.expected, "{report:#?}");
    }
    // Every write is one project event, delivered to the project's five members.
    assert_eq!(
        report.project_streams.expected,
        report.writes.ok * 5,
        "{report:#?}"
    );
    let churn = report.churn.as_ref().expect("churn stats");
    assert!(churn.opened > 0, "{report:#?}");
    assert!(churn.failed.is_empty(), "{report:#?}");
    let phases = report.by_phase.as_ref().expect("latency by phase");
    assert!(
        phases.calm.count > 0 && phases.churn.count > 0,
        "{report:#?}"
    );
    // Each phase on its own adds up to the two kinds together.
    assert!(phases.phases.len() >= 2, "{report:#?}");
    let each: u64 = phases.phases.iter().map(|p| p.count).sum();
    assert_eq!(each, phases.calm.count + phases.churn.count, "{report:#?}");
    assert!(report.targets.clean, "{summary}");
    assert!(report.passed(), "{summary}");
    assert!(plot.cdf.len() >= 4);
}

/// A project of 20 members against a project of one: every create succeeds in both, in
/// alternating phases, and the members are where the setup put them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_write_cost_compares_two_projects_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = PgDatabase::create().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(data.path());
    config.database.url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
    config.auth.jwt_secret = Some(Secret::new("load-smoke-secret-".repeat(3)));
    config.metrics.bind = Some(([127, 0, 0, 1], 0).into());
    let server = Server::start(&config).await;
    let mut args = TeamWriteArgs::new(&server.address, &db.url, 20);
    args.metrics = server.metrics_address.clone();
    args.concurrency = 4;
    args.phase = 1;
    args.rounds = 2;
    args.warmup = 0;
    let report = team_write::run(&args, Ui::quiet())
        .await
        .expect("team write cost runs");
    drop(server);
    let summary = report.summary();
    assert_eq!(report.small.members, 1, "{summary}");
    assert_eq!(report.big.members, 20, "{summary}");
    assert_eq!(report.phases.len(), 4, "{report:#?}");
    assert_eq!(
        report.phases.iter().map(|p| p.project).collect::<Vec<_>>(),
        ["small", "big", "big", "small"]
    );
    assert!(report.small.ok > 0 && report.big.ok > 0, "{summary}");
    assert!(report.ratio.is_some(), "{summary}");
    assert!(
        report.small.server_cpu_us_per_create.is_some(),
        "{report:#?}"
    );
    assert!(report.passed(), "{summary}");
}
