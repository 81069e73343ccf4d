//! Call records, the agents each call rang, and each call's event timeline.
//!
//! The tracker writes a call as it progresses: every write replaces the call row and its agent
//! list with the latest snapshot (last write wins) and appends timeline events idempotently by
//! `(call_id, seq)`, so replaying the same writes after a crash changes nothing. Wrap-up
//! (disposition, notes) belongs to the operator and is never overwritten by tracker snapshots.
//! Outbox jobs caused by a call change are written in the same transaction ([`CallWrite`]).

use chrono::{DateTime, Utc};

use crate::outbox::{insert_job_sql, NewOutboxJob};
use crate::row::{bind_args, Arg, Conditions, RowExt};
use crate::types::{opt_micros, to_micros};
use crate::users::require_affected;
use crate::{in_tx, on_pool, CallId, Direction, JobId, Outcome, Storage, StorageError, UserId};

/// A call snapshot as written by the tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// Call id (Asterisk: the Linkedid of the family).
    pub id: CallId,
    /// Which PBX connection it came from (config name).
    pub source: String,
    /// Direction seen from the company.
    pub direction: Direction,
    /// The outside party in E.164, when known.
    pub customer_number: Option<String>,
    /// The outside party exactly as the PBX sent it.
    pub customer_number_raw: Option<String>,
    /// The line (DID) the call came in on or went out through.
    pub line: Option<String>,
    /// The (last) queue the call went through.
    pub queue: Option<String>,
    /// When the call started.
    pub started_at: DateTime<Utc>,
    /// When an agent first answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended; `None` while live.
    pub ended_at: Option<DateTime<Utc>>,
    /// Final outcome; `None` while live.
    pub outcome: Option<Outcome>,
    /// Extension credited with the call under the attribution rule.
    pub answered_by: Option<String>,
    /// The user owning `answered_by`, when mapped.
    pub agent_user_id: Option<UserId>,
    /// Time the customer waited before an answer (or hang-up), in milliseconds.
    pub wait_ms: i64,
    /// Talk time in milliseconds.
    pub talk_ms: i64,
    /// Hold time in milliseconds.
    pub hold_ms: i64,
    /// Recording URL or file.
    pub recording: Option<String>,
    /// Parts of the call were reconstructed after a PBX disconnect.
    pub degraded: bool,
    /// Abandoned within the short-abandon threshold.
    pub short_abandon: bool,
    /// Agent-to-agent call.
    pub internal: bool,
    /// The router's decision with its reason, as JSON.
    pub route_decision: Option<serde_json::Value>,
    /// The full call record as JSON (legs, transfers, hold spans, ...), opaque to storage.
    pub record: serde_json::Value,
    /// When this snapshot was produced.
    pub updated_at: DateTime<Utc>,
}

/// One agent a call rang, aggregated per extension.
#[derive(Debug, Clone, PartialEq)]
pub struct CallAgent {
    /// Agent extension.
    pub extension: String,
    /// Mapped user, when known.
    pub user_id: Option<UserId>,
    /// First time it rang.
    pub rang_at: Option<DateTime<Utc>>,
    /// When this agent answered, if they did.
    pub answered_at: Option<DateTime<Utc>>,
    /// This agent's talk time in milliseconds.
    pub talk_ms: i64,
    /// Per-agent outcome, e.g. `answered`, `rang`, `busy`, `transferred`.
    pub outcome: String,
}

/// A timeline event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCallEvent {
    /// The call it belongs to (the call row must exist).
    pub call_id: CallId,
    /// Position in the timeline, unique per call; re-appending a seq is a no-op.
    pub seq: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Event kind, e.g. `ringing`, `answered`, `hold`.
    pub kind: String,
    /// Event details as JSON.
    pub data: serde_json::Value,
}

/// A stored timeline event.
pub type CallEventRow = NewCallEvent;

/// Everything a call change writes, atomically.
#[derive(Debug, Clone, Copy)]
pub struct CallWrite<'a> {
    /// The call snapshot.
    pub call: &'a NewCall,
    /// The complete agent list; replaces the stored one.
    pub agents: &'a [CallAgent],
    /// Timeline events to append (already stored seqs are skipped).
    pub events: &'a [NewCallEvent],
    /// Outbox jobs caused by this change (already stored idempotency keys are skipped).
    pub jobs: &'a [NewOutboxJob],
}

/// What a [`CallWrite`] added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallWriteResult {
    /// Number of events that were new.
    pub events_inserted: u64,
    /// Ids of jobs that were new, in input order.
    pub jobs_enqueued: Vec<JobId>,
}

/// A stored call: the tracker's snapshot plus the operator's wrap-up.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    /// The latest snapshot.
    pub call: NewCall,
    /// Disposition code chosen at wrap-up.
    pub disposition: Option<String>,
    /// Wrap-up notes.
    pub wrapup_notes: Option<String>,
    /// When wrap-up was saved.
    pub wrapup_at: Option<DateTime<Utc>>,
}

/// A call with its agents and timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CallDetail {
    /// The call.
    pub call: CallRow,
    /// Agents it rang, ordered by ring time.
    pub agents: Vec<CallAgent>,
    /// Timeline, ordered by seq.
    pub events: Vec<CallEventRow>,
}

/// Position in a newest-first call list, to continue after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    /// `started_at` of the last call of the previous page.
    pub started_at: DateTime<Utc>,
    /// `id` of the last call of the previous page.
    pub id: CallId,
}

/// Filters for [`Storage::list_calls`]; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Calls that started at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this.
    pub to: Option<DateTime<Utc>>,
    /// Calls this extension answered or was rung for (an agent's "my calls").
    pub extension: Option<String>,
    /// Calls credited to this extension.
    pub answered_by: Option<String>,
    /// Calls credited to this user.
    pub agent_user_id: Option<UserId>,
    /// Calls this user answered or was rung for, through their id or any of their extensions
    /// (what an agent may see).
    pub involving_user_id: Option<UserId>,
    /// Calls with this outside number (exact E.164).
    pub customer_number: Option<String>,
    /// Calls with this outcome.
    pub outcome: Option<Outcome>,
    /// Calls in this direction.
    pub direction: Option<Direction>,
    /// Calls on this line (DID).
    pub line: Option<String>,
    /// Calls through this queue.
    pub queue: Option<String>,
    /// Continue after this position (keyset paging; preferred over `offset`).
    pub after: Option<CallCursor>,
    /// Skip this many matching calls (offset paging).
    pub offset: u32,
    /// Page size; 0 means 50, capped at 1000.
    pub limit: u32,
}

/// One page of calls, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    /// The calls.
    pub calls: Vec<CallRow>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<CallCursor>,
}

const CALL_COLUMNS: &str = "id, source, direction, customer_number, customer_number_raw, line, queue, \
     started_at, answered_at, ended_at, outcome, answered_by, agent_user_id, wait_ms, talk_ms, hold_ms, \
     recording, degraded, short_abandon, internal, route_decision, disposition, wrapup_notes, wrapup_at, \
     record, updated_at";

/// Inserts or replaces the snapshot columns; wrap-up columns are left alone on update.
const UPSERT_CALL_SQL: &str = "INSERT INTO calls (id, source, direction, customer_number, customer_number_raw, \
     line, queue, started_at, answered_at, ended_at, outcome, answered_by, agent_user_id, wait_ms, talk_ms, \
     hold_ms, recording, degraded, short_abandon, internal, route_decision, record, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) \
     ON CONFLICT (id) DO UPDATE SET source = excluded.source, direction = excluded.direction, \
     customer_number = excluded.customer_number, customer_number_raw = excluded.customer_number_raw, \
     line = excluded.line, queue = excluded.queue, started_at = excluded.started_at, \
     answered_at = excluded.answered_at, ended_at = excluded.ended_at, outcome = excluded.outcome, \
     answered_by = excluded.answered_by, agent_user_id = excluded.agent_user_id, wait_ms = excluded.wait_ms, \
     talk_ms = excluded.talk_ms, hold_ms = excluded.hold_ms, recording = excluded.recording, \
     degraded = excluded.degraded, short_abandon = excluded.short_abandon, internal = excluded.internal, \
     route_decision = COALESCE(excluded.route_decision, calls.route_decision), record = excluded.record, updated_at = excluded.updated_at";

const INSERT_AGENT_SQL: &str = "INSERT INTO call_agents (call_id, extension, user_id, rang_at, answered_at, talk_ms, outcome) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

const INSERT_EVENT_SQL: &str =
    "INSERT INTO call_events (call_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (call_id, seq) DO NOTHING";

fn call_from_row(row: &impl RowExt) -> Result<CallRow, StorageError> {
    let outcome = match row.opt_text("outcome")? {
        Some(text) => Some(Outcome::decode(&text)?),
        None => None,
    };
    Ok(CallRow {
        call: NewCall {
            id: CallId(row.text("id")?),
            source: row.text("source")?,
            direction: Direction::decode(&row.text("direction")?)?,
            customer_number: row.opt_text("customer_number")?,
            customer_number_raw: row.opt_text("customer_number_raw")?,
            line: row.opt_text("line")?,
            queue: row.opt_text("queue")?,
            started_at: row.time("started_at")?,
            answered_at: row.opt_time("answered_at")?,
            ended_at: row.opt_time("ended_at")?,
            outcome,
            answered_by: row.opt_text("answered_by")?,
            agent_user_id: row.opt_int("agent_user_id")?.map(UserId),
            wait_ms: row.int("wait_ms")?,
            talk_ms: row.int("talk_ms")?,
            hold_ms: row.int("hold_ms")?,
            recording: row.opt_text("recording")?,
            degraded: row.flag("degraded")?,
            short_abandon: row.flag("short_abandon")?,
            internal: row.flag("internal")?,
            route_decision: row.opt_json("route_decision")?,
            record: row.json("record")?,
            updated_at: row.time("updated_at")?,
        },
        disposition: row.opt_text("disposition")?,
        wrapup_notes: row.opt_text("wrapup_notes")?,
        wrapup_at: row.opt_time("wrapup_at")?,
    })
}

fn agent_from_row(row: &impl RowExt) -> Result<CallAgent, StorageError> {
    Ok(CallAgent {
        extension: row.text("extension")?,
        user_id: row.opt_int("user_id")?.map(UserId),
        rang_at: row.opt_time("rang_at")?,
        answered_at: row.opt_time("answered_at")?,
        talk_ms: row.int("talk_ms")?,
        outcome: row.text("outcome")?,
    })
}

fn event_from_row(row: &impl RowExt) -> Result<CallEventRow, StorageError> {
    Ok(NewCallEvent {
        call_id: CallId(row.text("call_id")?),
        seq: row.int("seq")?,
        at: row.time("at")?,
        kind: row.text("kind")?,
        data: row.json("data")?,
    })
}

/// A [`CallWrite`] with its JSON serialized up front, outside the transaction.
struct PreparedWrite<'a> {
    call: &'a NewCall,
    agents: &'a [CallAgent],
    record: String,
    route: Option<String>,
    events: Vec<(String, &'a NewCallEvent)>,
    jobs: Vec<(String, &'a NewOutboxJob)>,
}

impl<'a> PreparedWrite<'a> {
    fn new(write: &CallWrite<'a>) -> Result<Self, StorageError> {
        let call = write.call;
        if let Some(stray) = write.events.iter().find(|e| e.call_id != call.id) {
            return Err(StorageError::Rejected {
                message: format!(
                    "an event of call {} was written with call {}; write each call's events with that call",
                    stray.call_id, call.id
                ),
            });
        }
        Ok(PreparedWrite {
            call,
            agents: write.agents,
            record: call.record.to_string(),
            route: call.route_decision.as_ref().map(|v| v.to_string()),
            events: write
                .events
                .iter()
                .map(|e| (e.data.to_string(), e))
                .collect(),
            jobs: write
                .jobs
                .iter()
                .map(|j| (j.payload.to_string(), j))
                .collect(),
        })
    }
}

/// The WHERE conditions of a [`CallFilter`] without its paging fields.
fn call_conditions(filter: &CallFilter) -> Conditions {
    let mut cond = Conditions::default();
    if let Some(from) = filter.from {
        let p = cond.arg(Arg::Int(to_micros(from)));
        cond.push(format!("started_at >= {p}"));
    }
    if let Some(to) = filter.to {
        let p = cond.arg(Arg::Int(to_micros(to)));
        cond.push(format!("started_at < {p}"));
    }
    if let Some(extension) = &filter.extension {
        let p = cond.arg(Arg::Text(extension.clone()));
        cond.push(format!(
            "(answered_by = {p} OR EXISTS (SELECT 1 FROM call_agents a WHERE a.call_id = calls.id AND a.extension = {p}))"
        ));
    }
    if let Some(user) = filter.involving_user_id {
        // Through the user's id on the call or an agent row, or through any of their
        // extensions, so calls stored before the extension was mapped still count.
        let p = cond.arg(Arg::Int(user.0));
        cond.push(format!(
            "(agent_user_id = {p} \
             OR answered_by IN (SELECT extension FROM user_extensions WHERE user_id = {p}) \
             OR EXISTS (SELECT 1 FROM call_agents a WHERE a.call_id = calls.id AND (a.user_id = {p} \
                 OR a.extension IN (SELECT extension FROM user_extensions WHERE user_id = {p}))))"
        ));
    }
    let text_filters = [
        ("answered_by", &filter.answered_by),
        ("customer_number", &filter.customer_number),
        ("line", &filter.line),
        ("queue", &filter.queue),
    ];
    for (column, value) in text_filters {
        if let Some(value) = value {
            let p = cond.arg(Arg::Text(value.clone()));
            cond.push(format!("{column} = {p}"));
        }
    }
    if let Some(user) = filter.agent_user_id {
        let p = cond.arg(Arg::Int(user.0));
        cond.push(format!("agent_user_id = {p}"));
    }
    if let Some(outcome) = filter.outcome {
        let p = cond.arg(Arg::Text(outcome.as_str().to_owned()));
        cond.push(format!("outcome = {p}"));
    }
    if let Some(direction) = filter.direction {
        let p = cond.arg(Arg::Text(direction.as_str().to_owned()));
        cond.push(format!("direction = {p}"));
    }
    cond
}

impl Storage {
    /// Inserts or updates the call and replaces its agent list (idempotent).
    pub async fn upsert_call(
        &self,
        call: &NewCall,
        agents: &[CallAgent],
    ) -> Result<(), StorageError> {
        self.write_call(&CallWrite {
            call,
            agents,
            events: &[],
            jobs: &[],
        })
        .await
        .map(|_| ())
    }

    /// Upserts the call and enqueues `jobs` in the same transaction: either both are stored or
    /// neither is. Returns the ids of jobs that were new (existing idempotency keys are skipped).
    pub async fn upsert_call_with_jobs(
        &self,
        call: &NewCall,
        agents: &[CallAgent],
        jobs: &[NewOutboxJob],
    ) -> Result<Vec<JobId>, StorageError> {
        self.write_call(&CallWrite {
            call,
            agents,
            events: &[],
            jobs,
        })
        .await
        .map(|res| res.jobs_enqueued)
    }

    /// Writes a call snapshot, its agents, new timeline events and outbox jobs atomically.
    pub async fn write_call(&self, write: &CallWrite<'_>) -> Result<CallWriteResult, StorageError> {
        let mut res = self.write_calls(std::slice::from_ref(write)).await?;
        Ok(res.pop().unwrap_or_default())
    }

    /// Writes several call changes in one transaction (all or nothing), in order; results are
    /// in input order. Batching amortizes the commit when many calls change at once.
    pub async fn write_calls(
        &self,
        writes: &[CallWrite<'_>],
    ) -> Result<Vec<CallWriteResult>, StorageError> {
        let mut prepared = Vec::with_capacity(writes.len());
        for write in writes {
            prepared.push(PreparedWrite::new(write)?);
        }
        let job_sql = insert_job_sql();
        let results = in_tx!(self, tx => {
            let mut results = Vec::with_capacity(prepared.len());
            for write in &prepared {
                let call = write.call;
                sqlx::query(UPSERT_CALL_SQL)
                    .bind(call.id.as_str())
                    .bind(&call.source)
                    .bind(call.direction.as_str())
                    .bind(&call.customer_number)
                    .bind(&call.customer_number_raw)
                    .bind(&call.line)
                    .bind(&call.queue)
                    .bind(to_micros(call.started_at))
                    .bind(opt_micros(call.answered_at))
                    .bind(opt_micros(call.ended_at))
                    .bind(call.outcome.map(Outcome::as_str))
                    .bind(&call.answered_by)
                    .bind(call.agent_user_id.map(|u| u.0))
                    .bind(call.wait_ms)
                    .bind(call.talk_ms)
                    .bind(call.hold_ms)
                    .bind(&call.recording)
                    .bind(call.degraded)
                    .bind(call.short_abandon)
                    .bind(call.internal)
                    .bind(&write.route)
                    .bind(&write.record)
                    .bind(to_micros(call.updated_at))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM call_agents WHERE call_id = $1")
                    .bind(call.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for agent in write.agents {
                    sqlx::query(INSERT_AGENT_SQL)
                        .bind(call.id.as_str())
                        .bind(&agent.extension)
                        .bind(agent.user_id.map(|u| u.0))
                        .bind(opt_micros(agent.rang_at))
                        .bind(opt_micros(agent.answered_at))
                        .bind(agent.talk_ms)
                        .bind(&agent.outcome)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut events_inserted = 0;
                for (data, event) in &write.events {
                    events_inserted += sqlx::query(INSERT_EVENT_SQL)
                        .bind(event.call_id.as_str())
                        .bind(event.seq)
                        .bind(to_micros(event.at))
                        .bind(&event.kind)
                        .bind(data)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                let mut jobs_enqueued = Vec::new();
                for (payload, job) in &write.jobs {
                    let id: Option<i64> = sqlx::query_scalar(job_sql)
                        .bind(&job.connector)
                        .bind(&job.step)
                        .bind(job.call_id.as_ref().map(CallId::as_str))
                        .bind(&job.idempotency_key)
                        .bind(payload)
                        .bind(to_micros(job.next_attempt_at))
                        .bind(to_micros(job.created_at))
                        .fetch_optional(&mut *tx)
                        .await?;
                    jobs_enqueued.extend(id.map(JobId));
                }
                results.push(CallWriteResult { events_inserted, jobs_enqueued });
            }
            results
        });
        Ok(results)
    }

    /// Appends one timeline event; returns false when `(call_id, seq)` was already stored.
    pub async fn append_call_event(&self, event: &NewCallEvent) -> Result<bool, StorageError> {
        let data = event.data.to_string();
        let affected = on_pool!(self, pool => {
            sqlx::query(INSERT_EVENT_SQL)
                .bind(event.call_id.as_str())
                .bind(event.seq)
                .bind(to_micros(event.at))
                .bind(&event.kind)
                .bind(&data)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// The call with its agents and timeline.
    pub async fn get_call(&self, id: &CallId) -> Result<Option<CallDetail>, StorageError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1");
        let res = on_pool!(self, pool => {
            match sqlx::query(&sql).bind(id.as_str()).fetch_optional(pool).await? {
                None => None,
                Some(row) => {
                    let call = call_from_row(&row)?;
                    let agent_rows = sqlx::query(
                        "SELECT extension, user_id, rang_at, answered_at, talk_ms, outcome FROM call_agents \
                         WHERE call_id = $1 ORDER BY rang_at, extension",
                    )
                    .bind(id.as_str())
                    .fetch_all(pool)
                    .await?;
                    let event_rows = sqlx::query(
                        "SELECT call_id, seq, at, kind, data FROM call_events WHERE call_id = $1 ORDER BY seq",
                    )
                    .bind(id.as_str())
                    .fetch_all(pool)
                    .await?;
                    Some(CallDetail {
                        call,
                        agents: agent_rows.iter().map(agent_from_row).collect::<Result<_, _>>()?,
                        events: event_rows.iter().map(event_from_row).collect::<Result<_, _>>()?,
                    })
                }
            }
        });
        Ok(res)
    }

    /// Calls matching `filter`, newest first (by `started_at`, then id).
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<CallPage, StorageError> {
        let limit = match filter.limit {
            0 => 50,
            n => n.min(1000),
        };
        let mut cond = call_conditions(filter);
        if let Some(after) = &filter.after {
            let at = cond.arg(Arg::Int(to_micros(after.started_at)));
            let id = cond.arg(Arg::Text(after.id.0.clone()));
            cond.push(format!(
                "(started_at < {at} OR (started_at = {at} AND id < {id}))"
            ));
        }
        // Fetch one extra row to know whether a next page exists.
        let limit_p = cond.arg(Arg::Int(i64::from(limit) + 1));
        let offset_p = cond.arg(Arg::Int(i64::from(filter.offset)));
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls{} ORDER BY started_at DESC, id DESC LIMIT {limit_p} OFFSET {offset_p}",
            cond.where_sql()
        );
        let args = cond.args;
        let mut calls = on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(&sql), args).fetch_all(pool).await?;
            rows.iter().map(call_from_row).collect::<Result<Vec<_>, _>>()?
        });
        let next = if calls.len() > limit as usize {
            calls.truncate(limit as usize);
            calls.last().map(|last| CallCursor {
                started_at: last.call.started_at,
                id: last.call.id.clone(),
            })
        } else {
            None
        };
        Ok(CallPage { calls, next })
    }

    /// Number of calls matching `filter`, ignoring its paging fields (`after`, `offset`, `limit`).
    pub async fn count_calls(&self, filter: &CallFilter) -> Result<u64, StorageError> {
        let cond = call_conditions(filter);
        let sql = format!("SELECT COUNT(*) FROM calls{}", cond.where_sql());
        let args = cond.args;
        let n: i64 = on_pool!(self, pool => {
            bind_args!(sqlx::query_scalar(&sql), args).fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Saves the operator's wrap-up for a call.
    pub async fn set_call_wrapup(
        &self,
        id: &CallId,
        disposition: Option<&str>,
        notes: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE calls SET disposition = $1, wrapup_notes = $2, wrapup_at = $3 WHERE id = $4")
                .bind(disposition)
                .bind(notes)
                .bind(to_micros(now))
                .bind(id.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("call {id}"))
    }

    /// Calls that have no end yet, oldest first (to close them after a PBX resync).
    pub async fn list_open_calls(&self, source: &str) -> Result<Vec<CallRow>, StorageError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE source = $1 AND ended_at IS NULL ORDER BY started_at, id"
        );
        let res = on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(source).fetch_all(pool).await?;
            rows.iter().map(call_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(res)
    }
}

impl Storage {
    /// Open calls of one PBX with the time of the last timeline event stored for each (`None`
    /// when a call has none): the best known end of a call that ended while nobody listened.
    pub async fn list_open_calls_last_seen(
        &self,
        source: &str,
    ) -> Result<Vec<(CallRow, Option<DateTime<Utc>>)>, StorageError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS}, \
             (SELECT MAX(e.at) FROM call_events e WHERE e.call_id = calls.id) AS last_event_at \
             FROM calls WHERE source = $1 AND ended_at IS NULL ORDER BY started_at, id"
        );
        let res = on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(source).fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok((call_from_row(row)?, row.opt_time("last_event_at")?)))
                .collect::<Result<Vec<_>, StorageError>>()?
        });
        Ok(res)
    }
}
