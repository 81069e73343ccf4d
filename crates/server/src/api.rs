//! REST API under `/api/v1`: call records and their timelines.
//!
//! DTOs here are the public wire format; storage rows are converted explicitly so a schema
//! change never silently changes the API. Times are RFC 3339 in UTC, durations in seconds.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/calls", get(list_calls))
        .route("/calls/{id}", get(get_call))
}

/// Query parameters of `GET /api/v1/calls`; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallQuery {
    /// Calls that started at or after this time (RFC 3339).
    from: Option<String>,
    /// Calls that started before this time (RFC 3339).
    to: Option<String>,
    /// Calls this extension answered or was rung for.
    agent: Option<String>,
    /// The customer's number (E.164, e.g. `+79161234567`).
    number: Option<String>,
    /// answered, missed, abandoned, busy, failed or voicemail.
    outcome: Option<String>,
    /// inbound, outbound or internal.
    direction: Option<String>,
    /// The line (DID) the call came in on.
    line: Option<String>,
    /// The queue the call went through.
    queue: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// The `next` value of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct CallPageDto {
    calls: Vec<CallDto>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct CallDto {
    id: String,
    source: String,
    direction: &'static str,
    customer_number: Option<String>,
    line: Option<String>,
    queue: Option<String>,
    started_at: String,
    answered_at: Option<String>,
    ended_at: Option<String>,
    /// `null` while the call is in progress.
    outcome: Option<&'static str>,
    answered_by: Option<String>,
    wait_s: f64,
    talk_s: f64,
    hold_s: f64,
    recording: Option<String>,
    degraded: bool,
    short_abandon: bool,
    internal: bool,
    disposition: Option<String>,
    wrapup_notes: Option<String>,
    /// The full call record (legs, agents rang, transfers, segments) as the tracker built it.
    record: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct CallDetailDto {
    #[serde(flatten)]
    call: CallDto,
    agents: Vec<CallAgentDto>,
    timeline: Vec<CallEventDto>,
}

#[derive(Debug, Serialize)]
struct CallAgentDto {
    extension: String,
    rang_at: Option<String>,
    answered_at: Option<String>,
    talk_s: f64,
    outcome: String,
}

#[derive(Debug, Serialize)]
struct CallEventDto {
    seq: i64,
    at: String,
    kind: String,
    data: serde_json::Value,
}

async fn list_calls(
    State(state): State<AppState>,
    axum::Extension(auth): axum::Extension<crate::auth::AuthUser>,
    Query(query): Query<CallQuery>,
) -> Result<Json<CallPageDto>, ApiError> {
    let filter = storage::CallFilter {
        // Agents are served only the calls they rang for or talked on.
        involving_user_id: (!auth.sees_everything()).then_some(auth.user.id),
        from: query.from.as_deref().map(|t| parse_time("from", t)).transpose()?,
        to: query.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
        extension: query.agent,
        customer_number: query.number.map(|n| normalize_number(&n)),
        outcome: query
            .outcome
            .as_deref()
            .map(|o| {
                storage::Outcome::parse(o).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "outcome `{o}` is not one of answered, missed, abandoned, busy, failed, voicemail"
                    ))
                })
            })
            .transpose()?,
        direction: query
            .direction
            .as_deref()
            .map(|d| {
                storage::Direction::parse(d).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "direction `{d}` is not one of inbound, outbound, internal"
                    ))
                })
            })
            .transpose()?,
        line: query.line.map(|n| normalize_number(&n)),
        queue: query.queue,
        after: query.cursor.as_deref().map(parse_cursor).transpose()?,
        limit: match query.limit {
            Some(0) | Some(1001..) => {
                return Err(ApiError::BadRequest(
                    "limit must be between 1 and 1000".to_owned(),
                ))
            }
            Some(n) => n,
            None => 50,
        },
        ..storage::CallFilter::default()
    };
    let page = state.storage.list_calls(&filter).await?;
    Ok(Json(CallPageDto {
        calls: page.calls.into_iter().map(call_dto).collect(),
        next: page.next.map(|cursor| {
            format!(
                "{}~{}",
                cursor.started_at.timestamp_micros(),
                cursor.id.as_str()
            )
        }),
    }))
}

async fn get_call(
    State(state): State<AppState>,
    axum::Extension(auth): axum::Extension<crate::auth::AuthUser>,
    Path(id): Path<String>,
) -> Result<Json<CallDetailDto>, ApiError> {
    let detail = state
        .storage
        .get_call(&storage::CallId::new(id.clone()))
        .await?
        .filter(|detail| auth.sees_everything() || crate::cti::call_involves(detail, &auth.user))
        .ok_or_else(|| ApiError::NotFound(format!("there is no call `{id}`")))?;
    Ok(Json(CallDetailDto {
        call: call_dto(detail.call),
        agents: detail
            .agents
            .into_iter()
            .map(|agent| CallAgentDto {
                extension: agent.extension,
                rang_at: agent.rang_at.map(time),
                answered_at: agent.answered_at.map(time),
                talk_s: millis_to_secs(agent.talk_ms),
                outcome: agent.outcome,
            })
            .collect(),
        timeline: detail
            .events
            .into_iter()
            .map(|event| CallEventDto {
                seq: event.seq,
                at: time(event.at),
                kind: event.kind,
                data: event.data,
            })
            .collect(),
    }))
}

fn call_dto(row: storage::CallRow) -> CallDto {
    let call = row.call;
    CallDto {
        id: call.id.as_str().to_owned(),
        source: call.source,
        direction: call.direction.as_str(),
        customer_number: call.customer_number,
        line: call.line,
        queue: call.queue,
        started_at: time(call.started_at),
        answered_at: call.answered_at.map(time),
        ended_at: call.ended_at.map(time),
        outcome: call.outcome.map(storage::Outcome::as_str),
        answered_by: call.answered_by,
        wait_s: millis_to_secs(call.wait_ms),
        talk_s: millis_to_secs(call.talk_ms),
        hold_s: millis_to_secs(call.hold_ms),
        recording: call.recording,
        degraded: call.degraded,
        short_abandon: call.short_abandon,
        internal: call.internal,
        disposition: row.disposition,
        wrapup_notes: row.wrapup_notes,
        record: call.record,
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn millis_to_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time such as 2026-12-01T09:00:00Z, got `{text}`"
            ))
        })
}

fn parse_cursor(text: &str) -> Result<storage::CallCursor, ApiError> {
    let bad =
        || ApiError::BadRequest("cursor is not a `next` value from a previous page".to_owned());
    let (micros, id) = text.split_once('~').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(storage::CallCursor {
        started_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: storage::CallId::new(id.to_owned()),
    })
}

/// Numbers are stored in E.164; accept what people type: spaces, dashes, brackets and a
/// missing `+` on an international number.
fn normalize_number(text: &str) -> String {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 8 {
        format!("+{digits}")
    } else {
        digits
    }
}
