//! Admin REST for the CRM outbox: what is pending, what failed for good, and the two actions
//! an administrator takes on a dead letter (retry it, or discard it).
//!
//! - `GET  /api/v1/admin/outbox` — depth, oldest job and failures by kind, per connector.
//! - `GET  /api/v1/admin/outbox/jobs?status=dead&connector=b24&limit=50&offset=0` — jobs,
//!   newest first (status one of pending, in_flight, done, dead, discarded; default dead).
//! - `POST /api/v1/admin/outbox/jobs/{id}/retry` — a dead or waiting job is due again now.
//! - `POST /api/v1/admin/outbox/jobs/{id}/discard` — a dead or waiting job is dropped for good.
//!
//! Every route is admin-only (checked with [`crate::auth::AuthUser::require_admin`]; the
//! routes sit behind `require_auth` in [`crate::api_router`]). Payloads are not returned: they
//! hold customers' numbers, and the admin page needs only the job's identity and last error.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::{ApiError, AppState};

/// The routes, to merge into the authenticated `/api/v1` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/outbox", get(stats))
        .route("/admin/outbox/jobs", get(list))
        .route("/admin/outbox/jobs/{id}/retry", post(retry))
        .route("/admin/outbox/jobs/{id}/discard", post(discard))
}

#[derive(Debug, Serialize)]
struct ConnectorDto {
    connector: String,
    pending: u64,
    in_flight: u64,
    dead: u64,
    oldest_pending_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize)]
struct FailureDto {
    connector: String,
    kind: String,
    jobs: u64,
}

#[derive(Debug, Serialize)]
struct StatsDto {
    depth: u64,
    oldest_pending_at: Option<chrono::DateTime<chrono::Utc>>,
    connectors: Vec<ConnectorDto>,
    failures: Vec<FailureDto>,
}

#[derive(Debug, Serialize)]
struct JobDto {
    id: i64,
    connector: String,
    step: String,
    call_id: Option<String>,
    status: &'static str,
    attempts: i64,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
    last_error: Option<String>,
    last_error_kind: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    connector: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn stats(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
) -> Result<Json<StatsDto>, ApiError> {
    auth.require_admin()?;
    let stats = state.storage.outbox_stats().await?;
    Ok(Json(StatsDto {
        depth: stats.depth(),
        oldest_pending_at: stats.oldest_pending_at(),
        connectors: stats
            .connectors
            .into_iter()
            .map(|c| ConnectorDto {
                connector: c.connector,
                pending: c.pending,
                in_flight: c.in_flight,
                dead: c.dead,
                oldest_pending_at: c.oldest_pending_at,
            })
            .collect(),
        failures: stats
            .failures
            .into_iter()
            .map(|f| FailureDto {
                connector: f.connector,
                kind: f.kind,
                jobs: f.jobs,
            })
            .collect(),
    }))
}

fn parse_status(text: &str) -> Result<storage::JobStatus, ApiError> {
    storage::JobStatus::parse(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown status `{text}`; use pending, in_flight, done, dead or discarded"
        ))
    })
}

async fn list(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<JobDto>>, ApiError> {
    auth.require_admin()?;
    let status = parse_status(query.status.as_deref().unwrap_or("dead"))?;
    let jobs = state
        .storage
        .list_jobs(
            Some(status),
            query.connector.as_deref(),
            query.limit.unwrap_or(50).min(500),
            query.offset.unwrap_or(0),
        )
        .await?;
    Ok(Json(
        jobs.into_iter()
            .map(|job| JobDto {
                id: job.id.0,
                connector: job.connector,
                step: job.step,
                call_id: job.call_id.map(|c| c.as_str().to_owned()),
                status: job.status.as_str(),
                attempts: job.attempts,
                next_attempt_at: job.next_attempt_at,
                last_error: job.last_error,
                last_error_kind: job.last_error_kind,
                created_at: job.created_at,
                updated_at: job.updated_at,
            })
            .collect(),
    ))
}

async fn retry(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.require_admin()?;
    state
        .storage
        .retry_job(storage::JobId(id), chrono::Utc::now())
        .await?;
    tracing::info!(job = id, admin = %auth.user.login, "Outbox job retried by an administrator.");
    Ok(Json(serde_json::json!({ "id": id, "status": "pending" })))
}

async fn discard(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.require_admin()?;
    state
        .storage
        .discard_job(storage::JobId(id), chrono::Utc::now())
        .await?;
    tracing::info!(job = id, admin = %auth.user.login, "Outbox job discarded by an administrator.");
    Ok(Json(serde_json::json!({ "id": id, "status": "discarded" })))
}
