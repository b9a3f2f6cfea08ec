//! Smoke test of the load scenarios against the real server, in process: a few hundred
//! WebSockets checking their streams under writes, on the embedded database and on two
//! instances sharing one fresh PostgreSQL database. No timing assertions: only that
//! events flow and none is lost, duplicated or reordered.

use taskstream::config::{BusKind, DatabaseUrl, Secret};
use taskstream_load::progress::Ui;
use taskstream_load::report::ScenarioReport;
use taskstream_load::scenario::connections::{self, ConnectionsArgs};
use taskstream_load::scenario::fanout::{self, FanoutArgs, FanoutReport};
use taskstream_load::scenario::rest::{self, RestArgs};
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
