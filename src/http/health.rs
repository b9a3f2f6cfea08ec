//! `/health` (database included) and `/health/live` (the process answers), at the root.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::Services;

pub fn router() -> Router<Services> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is down.
    status: &'static str,
    version: &'static str,
    /// `ok` or `unavailable`.
    database: &'static str,
}

/// Readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable", body = Health),
    ))]
pub async fn health(State(svc): State<Services>) -> (StatusCode, Json<Health>) {
    let database_ok =
        match tokio::time::timeout(std::time::Duration::from_secs(3), svc.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "health check: database unreachable");
                false
            }
            Err(_) => {
                tracing::warn!("health check: database ping timed out");
                false
            }
        };
    let (status, word) = if database_ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(Health {
            status: word,
            version: env!("CARGO_PKG_VERSION"),
            database: word,
        }),
    )
}

/// Liveness: 200 whenever the process serves.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive")))]
pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}
