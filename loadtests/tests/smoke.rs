//! Smoke test of the load scenarios against the real server, in process: a few hundred
//! WebSockets checking their streams under writes, on the embedded database and on two
//! instances sharing one fresh PostgreSQL database. No timing assertions: only that
//! events flow and none is lost, duplicated or reordered.

use taskstream::config::{BusKind, Config, DatabaseUrl, Secret};
use taskstream::startup::App;
use taskstream_load::progress::Ui;
use taskstream_load::report::ScenarioReport;
use taskstream_load::scenario::connections::{self, ConnectionsArgs};
use taskstream_load::scenario::fanout::{self, FanoutArgs, FanoutReport};
use taskstream_load::scenario::rest::{self, RestArgs};
use tokio::net::TcpListener;

/// One test at a time: each runs a server and a few hundred sockets on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server in this process; stopped when dropped.
struct Server {
    base: String,
    metrics: Option<String>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(config: &Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = App::build_with_listener(config, listener)
            .await
            .expect("server builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let handle = tokio::spawn(async move {
            let _ = app.run(std::future::pending()).await;
        });
        Self {
            base,
            metrics,
            handle,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The test configuration of the server's own tests: cheap hashing, a fresh data folder.
fn config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".parse().expect("address");
    config.data_dir = data_dir.to_path_buf();
    config.database_url = None;
    config.jwt_secret = None;
    config.media_dir = None;
    config.argon2_memory_kib = 256;
    config.argon2_iterations = 1;
    config.allowed_hosts = vec!["*".into()];
    // Metrics are per process: on, on a free port, only where a test reads them.
    config.metrics_bind = "off".into();
    config
}

fn smoke_fanout(instances: &[&Server]) -> FanoutArgs {
    let mut args = FanoutArgs::new(200, 20, 50.0, 3);
    args.instances = instances.iter().map(|s| s.base.clone()).collect();
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
    let mut config = config(data.path());
    config.metrics_bind = "127.0.0.1:0".into();
    let server = Server::start(&config).await;

    let (report, plot) = fanout::run(&smoke_fanout(&[&server]), Ui::quiet())
        .await
        .expect("fanout runs");
    assert_clean(&report);
    assert!(!plot.cdf.is_empty());

    let mut conn = ConnectionsArgs::new(100, &server.base);
    conn.hold = 1;
    conn.metrics = server.metrics.clone().unwrap_or_default();
    let report = connections::run(&conn, Ui::quiet())
        .await
        .expect("connections runs");
    assert_eq!(report.opened, 100, "{report:#?}");
    // The server's own numbers were read (this process's, since it runs in-process).
    assert_eq!(report.server_after_open.source, "metrics", "{report:#?}");
    assert!(report.server_after_open.rss_bytes.is_some(), "{report:#?}");
    assert!(report.passed(), "{}", report.summary());

    let report = rest::run(&RestArgs::new(4, 1, &server.base), Ui::quiet())
        .await
        .expect("rest runs");
    assert!(report.0.requests > 0, "{report:#?}");
    assert_eq!(report.0.errors, 0, "{}", report.0.summary());
}

/// A fresh PostgreSQL database, dropped at the end.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> Self {
        use sqlx::Connection;
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let name = format!("taskstream_load_{}", uuid_like());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL must be running for this test");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for PgDatabase {
    /// Drops the database even when the test failed; with a runtime of its own, since
    /// the test's may be gone.
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_across_two_instances_on_postgres() {
    let _serial = SERIAL.lock().await;
    let db = PgDatabase::create().await;
    let data_a = tempfile::tempdir().expect("temp dir");
    let data_b = tempfile::tempdir().expect("temp dir");
    let configure = |dir: &std::path::Path| {
        let mut config = config(dir);
        config.database_url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
        config.jwt_secret = Some(Secret::new("load-smoke-secret-".repeat(3)));
        config.event_bus = Some(BusKind::Postgres);
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
