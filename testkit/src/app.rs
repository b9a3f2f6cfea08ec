//! The server in this process: on port 0, over a fresh database.

use std::ops::Deref;
use std::path::Path;

use taskstream::config::{Config, DatabaseUrl, Secret};
use taskstream::limits::Policy;
use taskstream::startup::App;
use tokio::net::TcpListener;

use crate::api::ApiClient;
use crate::postgres::PgDatabase;

/// The storage backends every behaviour test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The configuration of every test server: cheap password hashing, everything under
/// `data_dir`, no metrics listener (the tests that scrape metrics turn it on).
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::for_tests();
    config.http.bind = "127.0.0.1:0".parse().expect("address");
    config.data_dir = data_dir.to_path_buf();
    config.auth.password.memory_kib = 256;
    config.auth.password.iterations = 1;
    // Tests that scrape metrics turn the listener on themselves.
    config.metrics.bind = None;
    // The suites sign up many users from one address; the rate-limit tests turn limits on
    // themselves.
    config.limits.rate_limits = Policy::Off;
    config
}

/// One server running in this process; stopped when dropped.
pub struct Server {
    pub address: String,
    /// `http://127.0.0.1:port` of the metrics listener, when it is on.
    pub metrics_address: Option<String>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(config: &Config) -> Self {
        // TEST_LOG=1 shows the servers' logs (with RUST_LOG as the filter).
        if std::env::var_os("TEST_LOG").is_some() {
            taskstream::telemetry::init(taskstream::config::LogFormat::Text);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = App::build_with_listener(config, listener)
            .await
            .expect("server builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let handle = tokio::spawn(async move {
            let _ = app.run(std::future::pending()).await;
        });
        Self {
            address,
            metrics_address,
            handle,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A server over its own fresh database and data folder, and the client of its API (a
/// `TestApp` derefs to its [`ApiClient`]: `app.signup("Ada")`).
pub struct TestApp {
    // Declared first so the server stops before the database is dropped.
    _server: Server,
    api_client: ApiClient,
    pub backend: Backend,
    /// `http://127.0.0.1:port` of the metrics listener, when the test turned it on.
    pub metrics_address: Option<String>,
    pub config: Config,
    pub database_url: String,
    _data_dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api_client
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns the server after `adjust` has changed the test configuration.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(data_dir.path());
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                config.database.url = Some(db.url.parse::<DatabaseUrl>().expect("url"));
                config.auth.jwt_secret = Some(Secret::new("test-secret-".repeat(4)));
                Some(db)
            }
        };
        adjust(&mut config);
        let server = Server::start(&config).await;
        let database_url = config.database_url().expose().to_string();
        Self {
            api_client: ApiClient::new(&server.address),
            backend,
            metrics_address: server.metrics_address.clone(),
            config,
            database_url,
            _data_dir: data_dir,
            _pg: pg,
            _server: server,
        }
    }

    /// A second server on the same database and data folder (another instance).
    pub async fn spawn_sibling(&self, adjust: impl FnOnce(&mut Config)) -> Server {
        let mut config = self.config.clone();
        adjust(&mut config);
        Server::start(&config).await
    }

    /// The secret tokens are signed with (configured, or generated in the data folder).
    pub fn jwt_secret(&self) -> String {
        match &self.config.auth.jwt_secret {
            Some(secret) => secret.expose().to_string(),
            None => std::fs::read_to_string(self.config.data_dir.join("jwt_secret"))
                .expect("generated secret")
                .trim()
                .to_string(),
        }
    }

    /// Runs SQL with the user's id as `$1` against the test's database directly (for what
    /// no API can do, such as deleting a user); returns the first column of the first row
    /// as text, if the statement returns rows.
    pub async fn sql_for_user(&self, sql: &str, user_id: &str) -> Option<String> {
        use sqlx::{Connection, Row};
        let id = uuid::Uuid::parse_str(user_id).expect("uuid");
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .expect("connect");
                let row = sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&mut conn)
                    .await
                    .expect("sql");
                row.and_then(|r| r.try_get::<String, _>(0).ok())
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("connect");
                let row = sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&mut conn)
                    .await
                    .expect("sql");
                row.and_then(|r| r.try_get::<String, _>(0).ok())
            }
        }
    }

    /// The mails written to the data folder (no SMTP server configured) to `address`.
    pub fn mail_files_to(&self, address: &str) -> Vec<crate::ReceivedMail> {
        let dir = self.config.data_dir.join("mail");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(crate::ReceivedMail::from_file)
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Verifies the user's address as they would: follows the link of the welcome mail
    /// the server wrote (waits for it up to 30 s).
    pub async fn verify_email(&self, user: &crate::api::TestUser) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let token = loop {
            let token = self.mail_files_to(&user.email).iter().find_map(|m| {
                m.text
                    .contains("verify-email")
                    .then(|| m.link_token())
                    .flatten()
            });
            if let Some(token) = token {
                break token;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no verification mail to {}",
                user.email
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let response = self
            .api(reqwest::Method::POST, "/auth/verify-email", None)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .expect("verify request");
        assert!(
            response.status().is_success(),
            "verifying {}: {}",
            user.email,
            response.status()
        );
    }

    /// A new user whose address is verified (as invitations need).
    pub async fn signup_verified(&self, who: &str) -> crate::api::TestUser {
        let user = self.signup(who).await;
        self.verify_email(&user).await;
        user
    }

    /// A number the SQL computes (a count, a sum) from the test's database directly.
    pub async fn sql_number(&self, sql: &str) -> i64 {
        use sqlx::{Connection, Row};
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .expect("connect");
                let row = sqlx::query(sql).fetch_one(&mut conn).await.expect("sql");
                row.try_get::<i64, _>(0).expect("a number")
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("connect");
                let row = sqlx::query(sql).fetch_one(&mut conn).await.expect("sql");
                row.try_get::<i64, _>(0).expect("a number")
            }
        }
    }

    /// Waits until the SQL's number satisfies `done` (polling; panics after 30 s with the
    /// last value).
    pub async fn wait_for_number(&self, sql: &str, done: impl Fn(i64) -> bool) -> i64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let value = self.sql_number(sql).await;
            if done(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{sql}` stayed at {value}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
