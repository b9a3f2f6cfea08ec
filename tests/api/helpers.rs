//! Test harness: the real server on port 0 over a fresh database (a temporary SQLite file,
//! or a freshly created PostgreSQL database), and a typed HTTP client for it.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use taskstream::config::{Config, DatabaseUrl, Secret};
use taskstream::startup::App;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the tests find PostgreSQL: `TEST_DATABASE_URL`, by default the local server.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A throwaway PostgreSQL database, dropped when this is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let name = format!("taskstream_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL must be running for the tests (see README)");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a small one of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
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

pub struct TestApp {
    // Declared first so it stops before the database is dropped.
    _server: Server,
    pub backend: Backend,
    pub address: String,
    /// Read by the metrics tests only.
    #[allow(dead_code)]
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub config: Config,
    pub database_url: String,
    _data_dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// One running server; stopped when dropped.
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

/// A signed-up user and their token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

pub const PASSWORD: &str = "Corr3ct-Horse!Battery";

/// A configuration for tests: cheap password hashing, everything under `data_dir`.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::for_tests();
    config.http.bind = "127.0.0.1:0".parse().expect("address");
    config.data_dir = data_dir.to_path_buf();
    config.auth.password.memory_kib = 256;
    config.auth.password.iterations = 1;
    // Tests that scrape metrics turn the listener on themselves.
    config.metrics.bind = None;
    config
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
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
            backend,
            address: server.address.clone(),
            metrics_address: server.metrics_address.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            config,
            database_url,
            _data_dir: data_dir,
            _pg: pg,
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request to `/api/v1{path}`, with the bearer token when given.
    pub fn api(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self
            .client
            .request(method, self.url(&format!("/api/v1{path}")));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn signup_as(&self, name: &str, email: &str) -> TestUser {
        let response = self
            .api(Method::POST, "/auth/signup", None)
            .json(&json!({ "name": name, "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("signup request");
        let body = expect_json(response, StatusCode::CREATED).await;
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_string(),
            email: email.to_lowercase(),
            password: PASSWORD.to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// A new user with a name and e-mail derived from `who` (letters only).
    pub async fn signup(&self, who: &str) -> TestUser {
        self.signup_as(
            &format!("{who} Tester"),
            &format!("{}@example.com", who.to_lowercase()),
        )
        .await
    }

    pub async fn create_task(&self, user: &TestUser, body: Value) -> Value {
        let response = self
            .api(Method::POST, "/tasks", Some(&user.token))
            .json(&body)
            .send()
            .await
            .expect("create task");
        expect_json(response, StatusCode::CREATED).await
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
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error response: status, envelope shape and code. Returns the envelope.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries X-Request-ID"
    );
    let body = expect_json(response, status).await;
    assert_eq!(body["success"], json!(false), "envelope: {body}");
    assert_eq!(body["error"]["code"], json!(code), "envelope: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "envelope: {body}"
    );
    body
}

/// The fields named in a validation error's details.
pub fn detail_fields(envelope: &Value) -> Vec<String> {
    envelope["error"]["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter_map(|d| d["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a behaviour test once per storage backend: `backend_tests!(a, b)` makes
/// `a::sqlite`, `a::postgres`, `b::sqlite`, `b::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await
                }
            }
        )*
    };
}

/// Like `backend_tests!` for tests that configure their own server:
/// each named function takes the `Backend`.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}
