//! REST calls of the panel under `/api/v1/cti/…`: agents for the transfer list, customer
//! search, recent and missed calls, status history, and recording playback; and click-to-call
//! for integrations (`POST /api/v1/cti/dial`: a CRM button with an API token).
//!
//! Every route is behind `require_auth`. An agent gets only their own calls, tasks and status
//! history; supervisors and admins get everyone's. The directory and the agents' availability
//! are shared (an agent needs them to dial a contact or pick a free colleague).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::hub::{card, interaction_view, task_view};
use super::protocol::{display_number, AgentView, CustomerCard, InteractionView, TaskView};
use crate::auth::AuthUser;
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/cti/agents", get(agents))
        .route("/cti/customers", get(customers))
        .route("/cti/calls/recent", get(recent_calls))
        .route("/cti/missed", get(missed))
        .route("/cti/status/history", get(status_history))
        .route("/cti/recordings/{call_id}", get(recording))
        .route("/cti/dial", post(dial))
}

/// How long the dial endpoint waits for an immediate refusal before answering 202.
const DIAL_REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DialRequest {
    /// What to dial once the agent answers.
    number: String,
    /// The phone to ring first; an agent's own first extension when left out. Agents may
    /// name only their own; supervisors and admins any.
    extension: Option<String>,
}

#[derive(Debug, Serialize)]
struct DialAccepted {
    /// The id the call will have in `/api/v1/calls`, the panel, events and CRM records.
    call_id: String,
    extension: String,
    number: String,
}

/// Click-to-call for integrations: rings the extension's phone, then dials the number. The
/// answer (202) comes at once with the call's id, chosen before the call exists; the call
/// itself then shows up like any other (panel, `/api/v1/calls/{id}`, events, CRMs).
async fn dial(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Json(request): Json<DialRequest>,
) -> Result<(StatusCode, Json<DialAccepted>), ApiError> {
    let own = &user.user.extensions;
    let extension = match request.extension {
        Some(ext) if own.contains(&ext) || user.sees_everything() => ext,
        Some(ext) => {
            return Err(ApiError::Forbidden(format!(
                "you may dial only from your own extension, not `{ext}`"
            )))
        }
        None => own.first().cloned().ok_or_else(|| {
            ApiError::BadRequest(
                "you have no extension: name the phone to ring in `extension`".to_owned(),
            )
        })?,
    };
    let call_id = super::new_call_id();
    let refused = |err: super::CommandError| match err {
        super::CommandError::Rejected(reason) => ApiError::BadRequest(reason),
        other => ApiError::PbxUnavailable(other.to_string()),
    };
    let mut place = state
        .cti
        .prepare_originate(&extension, &request.number, &call_id)
        .await
        .map_err(refused)?;
    tracing::info!(%call_id, %extension, user = %user.user.login, "Click-to-call requested over the API.");
    // A PBX that is not connected or refuses the channel says so at once: answer with that.
    // Otherwise the agent's phone is ringing, which can last the whole ring timeout.
    match tokio::time::timeout(DIAL_REFUSAL_WAIT, &mut place).await {
        Ok(Err(err)) => return Err(refused(err)),
        Ok(Ok(())) => {}
        Err(_) => {
            let id = call_id.clone();
            tokio::spawn(async move {
                if let Err(err) = place.await {
                    tracing::warn!(call_id = %id, error = %err, "The PBX did not place the requested call.");
                }
            });
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(DialAccepted {
            call_id,
            extension,
            number: request.number,
        }),
    ))
}

async fn agents(State(state): State<AppState>) -> Json<Vec<AgentView>> {
    Json(state.cti.agents().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
    limit: Option<u32>,
}

async fn customers(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<CustomerCard>>, ApiError> {
    let q = query.q.trim();
    if q.chars().count() < 2 {
        return Err(ApiError::BadRequest(
            "type at least 2 characters".to_owned(),
        ));
    }
    let limit = query.limit.unwrap_or(20).clamp(1, 50);
    let users = user_names(&state).await?;
    let mut cards = Vec::new();
    for customer in state.storage.search_customers(q, limit).await? {
        cards.push(card(&state.storage, &users, state.cti.config(), customer, None).await?);
    }
    Ok(Json(cards))
}

async fn user_names(
    state: &AppState,
) -> Result<std::collections::HashMap<storage::UserId, String>, ApiError> {
    Ok(state
        .storage
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

#[derive(Debug, Serialize)]
struct RecentCall {
    #[serde(flatten)]
    call: InteractionView,
    number: Option<String>,
    number_display: Option<String>,
    queue: Option<String>,
    talk_s: f64,
    has_recording: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecentQuery {
    limit: Option<u32>,
}

async fn recent_calls(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Query(query): Query<RecentQuery>,
) -> Result<Json<Vec<RecentCall>>, ApiError> {
    let filter = storage::CallFilter {
        involving_user_id: (!auth.sees_everything()).then_some(auth.user.id),
        limit: query.limit.unwrap_or(20).clamp(1, 100),
        ..storage::CallFilter::default()
    };
    let page = state.storage.list_calls(&filter).await?;
    Ok(Json(
        page.calls
            .into_iter()
            .map(|row| {
                let number = row.call.customer_number.clone();
                RecentCall {
                    number_display: number.as_deref().map(display_number),
                    number,
                    queue: row.call.queue.clone(),
                    talk_s: row.call.talk_ms as f64 / 1000.0,
                    has_recording: row.call.recording.is_some(),
                    call: interaction_view(row),
                }
            })
            .collect(),
    ))
}

async fn missed(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    let filter = storage::TaskFilter {
        assignee_user_id: (!auth.sees_everything()).then_some(auth.user.id),
        status: Some(storage::TaskStatus::Open),
        kind: Some(storage::TASK_KIND_CALLBACK.to_owned()),
        limit: 100,
        ..storage::TaskFilter::default()
    };
    let users = user_names(&state).await?;
    let mut out = Vec::new();
    for task in state.storage.list_tasks(&filter).await? {
        let name = match task.customer_id {
            Some(id) => state.storage.get_customer(id).await?.map(|c| c.name),
            None => None,
        };
        out.push(task_view(task, &users, name));
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Another user's history (supervisors only).
    login: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct StatusSpanDto {
    login: String,
    status: String,
    reason: Option<String>,
    started_at: String,
    ended_at: Option<String>,
}

async fn status_history(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<StatusSpanDto>>, ApiError> {
    let user = match query.login {
        Some(login) if login != auth.user.login => {
            if !auth.sees_everything() {
                return Err(ApiError::Forbidden(
                    "agents see only their own status history".to_owned(),
                ));
            }
            state
                .storage
                .get_user_by_login(&login)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("there is no user `{login}`")))?
        }
        _ => auth.user.clone(),
    };
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - chrono::Duration::days(1));
    let spans = state
        .storage
        .list_status_history(Some(user.id), from, to)
        .await?;
    Ok(Json(
        spans
            .into_iter()
            .map(|s| StatusSpanDto {
                login: user.login.clone(),
                status: s.status,
                reason: s.reason,
                started_at: super::hub::rfc3339(s.started_at),
                ended_at: s.ended_at.map(super::hub::rfc3339),
            })
            .collect(),
    ))
}

/// Streams a call's recording to someone allowed to see the call. Only files inside the
/// configured recordings directory are served, whatever path the PBX reported.
async fn recording(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Path(call_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("this call has no recording you may play".to_owned());
    let detail = state
        .storage
        .get_call(&storage::CallId::new(call_id.clone()))
        .await?
        .ok_or_else(not_found)?;
    if !auth.sees_everything() && !call_involves(&detail, &auth.user) {
        return Err(not_found());
    }
    let dir = state
        .cti
        .config()
        .recordings_dir
        .clone()
        .ok_or_else(not_found)?;
    let file = detail.call.call.recording.clone().ok_or_else(not_found)?;
    let path = resolve_recording(&dir, &file).ok_or_else(not_found)?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        _ => "audio/wav",
    };
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// True when an agent rang or talked on the call, or it is credited to them.
pub(crate) fn call_involves(detail: &storage::CallDetail, user: &storage::UserRow) -> bool {
    let call = &detail.call.call;
    call.agent_user_id == Some(user.id)
        || call
            .answered_by
            .as_ref()
            .is_some_and(|a| user.extensions.contains(a))
        || detail
            .agents
            .iter()
            .any(|a| a.user_id == Some(user.id) || user.extensions.contains(&a.extension))
}

/// The recording's path inside `dir`, or `None` when it points outside (`..`, another root).
fn resolve_recording(dir: &std::path::Path, file: &str) -> Option<std::path::PathBuf> {
    let name = file
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != ".." && *n != ".")?;
    let candidate = dir.join(name);
    let dir = dir.canonicalize().ok()?;
    let resolved = candidate.canonicalize().ok()?;
    resolved.starts_with(&dir).then_some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_outside_the_directory_are_never_served() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wav"), b"RIFF").unwrap();
        let found = resolve_recording(dir.path(), "/var/spool/asterisk/monitor/a.wav").unwrap();
        assert!(found.ends_with("a.wav"));
        assert!(resolve_recording(dir.path(), "../../etc/passwd").is_none());
        assert!(resolve_recording(dir.path(), "/etc/").is_none());
        assert!(resolve_recording(dir.path(), "missing.wav").is_none());
    }
}
