//! Behaviour tests: the real server over HTTP and WebSocket, on SQLite and on PostgreSQL.

mod auth;
mod conflicts;
mod contact;
mod delivery;
mod hostile_input;
mod limits;
mod notifications;
mod operations;
mod password_hashing;
mod profile;
mod projects;
mod quotas;
mod realtime;
mod sessions;
mod store_pool;
mod tasks;
mod transport;

/// Runs a behaviour test once per storage backend: `backend_tests!(a, b)` makes
/// `a::sqlite`, `a::postgres`, `b::sqlite`, `b::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(testkit::TestApp::spawn(testkit::Backend::Sqlite).await).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(testkit::TestApp::spawn(testkit::Backend::Postgres).await).await
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
                    super::$name(testkit::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(testkit::Backend::Postgres).await
                }
            }
        )*
    };
}
