//! The durable outbox of jobs for external systems (CRMs, webhooks), and CRM OAuth tokens.
//!
//! A job is written in the same transaction as the change that causes it
//! ([`Storage::upsert_call_with_jobs`]), is unique by its idempotency key (call + step +
//! connector), and moves `pending → in_flight → done`, back to `pending` with a later
//! `next_attempt_at` on failure, or to `dead` after the maximum age. Workers claim jobs with a
//! lease (`locked_by`, `locked_until`): a job whose worker died (kill -9) becomes claimable again
//! when its lease expires, and a worker whose lease was taken over cannot settle the job.
//! Backoff policy (how far `next_attempt_at` moves) belongs to the caller, not to this module.

use chrono::{DateTime, Utc};

use crate::row::{bind_args, Arg, RowExt};
use crate::types::{opt_micros, to_micros};
use crate::users::require_affected;
use crate::{in_tx, on_pool, CallId, JobId, JobStatus, Pool, Storage, StorageError};

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxJob {
    /// Connector that will deliver it, e.g. `bitrix24`.
    pub connector: String,
    /// Step of the delivery, e.g. `register`, `finish`, `attach_recording`.
    pub step: String,
    /// The call it is about, if any.
    pub call_id: Option<CallId>,
    /// Unique key; enqueuing an existing key is a no-op.
    pub idempotency_key: String,
    /// What to deliver, as JSON.
    pub payload: serde_json::Value,
    /// Earliest delivery time (usually `created_at`).
    pub next_attempt_at: DateTime<Utc>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxJob {
    /// Row id.
    pub id: JobId,
    /// Connector that delivers it.
    pub connector: String,
    /// Delivery step.
    pub step: String,
    /// The call it is about, if any.
    pub call_id: Option<CallId>,
    /// Unique key.
    pub idempotency_key: String,
    /// What to deliver.
    pub payload: serde_json::Value,
    /// Where it is in its lifecycle.
    pub status: JobStatus,
    /// Delivery attempts started so far (a claim counts as an attempt).
    pub attempts: i64,
    /// Earliest next delivery time.
    pub next_attempt_at: DateTime<Utc>,
    /// Text of the last failure.
    pub last_error: Option<String>,
    /// Classification of the last failure, e.g. `rate_limited`, `unavailable`, `rejected`.
    pub last_error_kind: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Worker holding the lease.
    pub locked_by: Option<String>,
    /// When the lease expires.
    pub locked_until: Option<DateTime<Utc>>,
}

/// Result of settling a claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job was updated.
    Applied,
    /// This worker no longer holds the job (lease expired and another worker claimed it, or an
    /// administrator changed it); nothing was changed.
    LeaseLost,
}

/// Outbox depth per connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStats {
    /// Connector name.
    pub connector: String,
    /// Jobs waiting.
    pub pending: u64,
    /// Jobs being delivered.
    pub in_flight: u64,
    /// Jobs given up.
    pub dead: u64,
    /// Creation time of the oldest job not yet delivered (pending or in flight).
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// Jobs currently failing (pending, in flight or dead) by their last error kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    /// Connector name.
    pub connector: String,
    /// Last error kind.
    pub kind: String,
    /// Number of jobs.
    pub jobs: u64,
}

/// Snapshot for metrics and the admin page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Per connector, sorted by name.
    pub connectors: Vec<ConnectorStats>,
    /// Per connector and error kind, sorted.
    pub failures: Vec<FailureCount>,
}

impl OutboxStats {
    /// Jobs not yet delivered (pending and in flight), all connectors.
    pub fn depth(&self) -> u64 {
        self.connectors
            .iter()
            .map(|c| c.pending + c.in_flight)
            .sum()
    }

    /// Creation time of the oldest undelivered job, all connectors.
    pub fn oldest_pending_at(&self) -> Option<DateTime<Utc>> {
        self.connectors
            .iter()
            .filter_map(|c| c.oldest_pending_at)
            .min()
    }
}

/// OAuth tokens of a CRM connector, rotated on refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmToken {
    /// Connector name (one token set per connector instance).
    pub connector: String,
    /// Current access token.
    pub access_token: String,
    /// Current refresh token.
    pub refresh_token: Option<String>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Connector-specific extras (e.g. portal domain), as JSON.
    pub extra: serde_json::Value,
    /// When the tokens were stored.
    pub updated_at: DateTime<Utc>,
}

const JOB_COLUMNS: [&str; 15] = [
    "id",
    "connector",
    "step",
    "call_id",
    "idempotency_key",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "last_error_kind",
    "created_at",
    "updated_at",
    "locked_by",
    "locked_until",
];

/// Longest stored error text; CRM error pages can be large and are only diagnostics.
const MAX_ERROR_CHARS: usize = 2000;

fn job_columns(prefix: &str) -> String {
    JOB_COLUMNS
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts a pending job unless its idempotency key exists; returns the new id or no row.
pub(crate) fn insert_job_sql() -> &'static str {
    "INSERT INTO outbox (connector, step, call_id, idempotency_key, payload, status, attempts, \
     next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $7) \
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
}

fn job_from_row(row: &impl RowExt) -> Result<OutboxJob, StorageError> {
    Ok(OutboxJob {
        id: JobId(row.int("id")?),
        connector: row.text("connector")?,
        step: row.text("step")?,
        call_id: row.opt_text("call_id")?.map(CallId),
        idempotency_key: row.text("idempotency_key")?,
        payload: row.json("payload")?,
        status: JobStatus::decode(&row.text("status")?)?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.time("next_attempt_at")?,
        last_error: row.opt_text("last_error")?,
        last_error_kind: row.opt_text("last_error_kind")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        locked_by: row.opt_text("locked_by")?,
        locked_until: row.opt_time("locked_until")?,
    })
}

fn token_from_row(row: &impl RowExt) -> Result<CrmToken, StorageError> {
    Ok(CrmToken {
        connector: row.text("connector")?,
        access_token: row.text("access_token")?,
        refresh_token: row.opt_text("refresh_token")?,
        expires_at: row.opt_time("expires_at")?,
        extra: row.json("extra")?,
        updated_at: row.time("updated_at")?,
    })
}

fn truncate_error(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((idx, _)) => &error[..idx],
        None => error,
    }
}

fn settled(affected: u64) -> Settled {
    if affected > 0 {
        Settled::Applied
    } else {
        Settled::LeaseLost
    }
}

impl Storage {
    /// Enqueues one job on its own; returns `None` when the idempotency key already exists.
    pub async fn enqueue(&self, job: &NewOutboxJob) -> Result<Option<JobId>, StorageError> {
        let payload = job.payload.to_string();
        let id: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar(insert_job_sql())
                .bind(&job.connector)
                .bind(&job.step)
                .bind(job.call_id.as_ref().map(CallId::as_str))
                .bind(&job.idempotency_key)
                .bind(&payload)
                .bind(to_micros(job.next_attempt_at))
                .bind(to_micros(job.created_at))
                .fetch_optional(pool)
                .await?
        });
        Ok(id.map(JobId))
    }

    /// Enqueues `jobs` in one transaction: all of them or, on error, none. Keys that already
    /// exist are skipped; returns how many jobs were added. For jobs that are not written with
    /// a call (domain events for webhooks), so that a burst costs one commit.
    pub async fn enqueue_many(&self, jobs: &[NewOutboxJob]) -> Result<u64, StorageError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let added: u64 = in_tx!(self, tx => {
            let mut added = 0u64;
            for job in jobs {
                let id: Option<i64> = sqlx::query_scalar(insert_job_sql())
                    .bind(&job.connector)
                    .bind(&job.step)
                    .bind(job.call_id.as_ref().map(CallId::as_str))
                    .bind(&job.idempotency_key)
                    .bind(job.payload.to_string())
                    .bind(to_micros(job.next_attempt_at))
                    .bind(to_micros(job.created_at))
                    .fetch_optional(&mut *tx)
                    .await?;
                added += u64::from(id.is_some());
            }
            added
        });
        Ok(added)
    }

    /// Claims up to `limit` jobs of `connector` that are due at `now` (pending with
    /// `next_attempt_at <= now`, or in flight with an expired lease), oldest due first, leasing
    /// them to `worker_id` until `now + lease`. Each claim increments `attempts`.
    ///
    /// No job is ever handed to two workers with overlapping leases: PostgreSQL skips rows other
    /// claimers hold (`FOR UPDATE SKIP LOCKED`); SQLite runs the claim as one statement under
    /// its single write lock.
    pub async fn claim_due(
        &self,
        connector: &str,
        worker_id: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxJob>, StorageError> {
        let lease = chrono::Duration::from_std(lease).map_err(|_| StorageError::Rejected {
            message: "the outbox lease duration is too large".to_owned(),
        })?;
        let locked_until = now
            .checked_add_signed(lease)
            .ok_or_else(|| StorageError::Rejected {
                message: "the outbox lease ends beyond the representable time range".to_owned(),
            })?;
        let due = "connector = $1 AND ((status = 'pending' AND next_attempt_at <= $2) \
                   OR (status = 'in_flight' AND locked_until <= $2))";
        let set = "status = 'in_flight', attempts = outbox.attempts + 1, locked_by = $4, \
                   locked_until = $5, updated_at = $2";
        let sql = match &self.pool {
            Pool::Postgres(_) => format!(
                "WITH due AS (SELECT id FROM outbox WHERE {due} ORDER BY next_attempt_at, id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET {set} FROM due WHERE outbox.id = due.id RETURNING {}",
                job_columns("outbox.")
            ),
            Pool::Sqlite(_) => format!(
                "UPDATE outbox SET {set} WHERE id IN (SELECT id FROM outbox WHERE {due} \
                 ORDER BY next_attempt_at, id LIMIT $3) RETURNING {}",
                job_columns("")
            ),
        };
        let mut jobs = on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(connector)
                .bind(to_micros(now))
                .bind(i64::from(limit))
                .bind(worker_id)
                .bind(to_micros(locked_until))
                .fetch_all(pool)
                .await?;
            rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?
        });
        // RETURNING order is unspecified; hand jobs out in due order.
        jobs.sort_by_key(|job| (job.next_attempt_at, job.id));
        Ok(jobs)
    }

    /// Marks a claimed job delivered.
    pub async fn complete_job(
        &self,
        id: JobId,
        worker_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Settled, StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'done', locked_by = NULL, locked_until = NULL, updated_at = $3 \
                 WHERE id = $1 AND status = 'in_flight' AND locked_by = $2",
            )
            .bind(id.0)
            .bind(worker_id)
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(settled(affected))
    }

    /// Marks several jobs claimed by `worker_id` delivered in one statement; returns how many
    /// were still held by this worker (the others were lost to lease expiry).
    pub async fn complete_jobs(
        &self,
        ids: &[JobId],
        worker_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE outbox SET status = 'done', locked_by = NULL, locked_until = NULL, updated_at = $2 \
             WHERE status = 'in_flight' AND locked_by = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut args = vec![Arg::Text(worker_id.to_owned()), Arg::Int(to_micros(now))];
        args.extend(ids.iter().map(|id| Arg::Int(id.0)));
        let res = on_pool!(self, pool => {
            bind_args!(sqlx::query(&sql), args).execute(pool).await?.rows_affected()
        });
        Ok(res)
    }

    /// Returns a claimed job to `pending` after a failed attempt, to be retried at
    /// `next_attempt_at` (the caller's backoff, e.g. honouring Retry-After).
    pub async fn fail_job(
        &self,
        id: JobId,
        worker_id: &str,
        error: &str,
        error_kind: &str,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Settled, StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $3, last_error = $4, \
                 last_error_kind = $5, locked_by = NULL, locked_until = NULL, updated_at = $6 \
                 WHERE id = $1 AND status = 'in_flight' AND locked_by = $2",
            )
            .bind(id.0)
            .bind(worker_id)
            .bind(to_micros(next_attempt_at))
            .bind(truncate_error(error))
            .bind(error_kind)
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(settled(affected))
    }

    /// Moves a claimed job straight to `dead` (the remote side rejected it for good).
    pub async fn dead_letter_job(
        &self,
        id: JobId,
        worker_id: &str,
        error: &str,
        error_kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Settled, StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'dead', last_error = $3, last_error_kind = $4, \
                 locked_by = NULL, locked_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND status = 'in_flight' AND locked_by = $2",
            )
            .bind(id.0)
            .bind(worker_id)
            .bind(truncate_error(error))
            .bind(error_kind)
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(settled(affected))
    }

    /// Moves pending jobs created before `created_before` to `dead`; returns how many.
    ///
    /// Jobs in flight are left to finish their attempt; a failed one is caught by the next sweep.
    pub async fn dead_letter_expired(
        &self,
        created_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let res = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'dead', updated_at = $2, \
                 last_error = COALESCE(last_error, 'not delivered within the maximum age') \
                 WHERE status = 'pending' AND created_at < $1",
            )
            .bind(to_micros(created_before))
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(res)
    }

    /// One job by id.
    pub async fn get_job(&self, id: JobId) -> Result<Option<OutboxJob>, StorageError> {
        let sql = format!("SELECT {} FROM outbox WHERE id = $1", job_columns(""));
        let res = on_pool!(self, pool => {
            match sqlx::query(&sql).bind(id.0).fetch_optional(pool).await? {
                Some(row) => Some(job_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Jobs in `status` (all statuses when `None`), optionally of one connector, newest first.
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        connector: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<OutboxJob>, StorageError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE ($1 = '' OR status = $1) AND ($2 = '' OR connector = $2) \
             ORDER BY id DESC LIMIT $3 OFFSET $4",
            job_columns("")
        );
        let status = status.map_or("", JobStatus::as_str);
        let connector = connector.unwrap_or("");
        let res = on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(status)
                .bind(connector)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(pool)
                .await?;
            rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(res)
    }

    /// Makes a dead (or waiting) job due again at `now`; the attempt count is kept.
    pub async fn retry_job(&self, id: JobId, now: DateTime<Utc>) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, updated_at = $2 \
                 WHERE id = $1 AND status IN ('dead', 'pending')",
            )
            .bind(id.0)
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        require_affected(affected, || format!("dead or pending outbox job {id}"))
    }

    /// Discards a dead or waiting job for good; its idempotency key stays taken.
    pub async fn discard_job(&self, id: JobId, now: DateTime<Utc>) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'discarded', updated_at = $2 \
                 WHERE id = $1 AND status IN ('dead', 'pending')",
            )
            .bind(id.0)
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        require_affected(affected, || format!("dead or pending outbox job {id}"))
    }

    /// Deletes delivered and discarded jobs last changed before `before`; returns how many.
    ///
    /// This frees their idempotency keys, so only purge well past any window in which the same
    /// job could be enqueued again (e.g. a replay of old PBX traces).
    pub async fn purge_finished_jobs(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let res = on_pool!(self, pool => {
            sqlx::query("DELETE FROM outbox WHERE status IN ('done', 'discarded') AND updated_at < $1")
                .bind(to_micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(res)
    }

    /// Depth, oldest undelivered job and failures by kind, per connector.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StorageError> {
        let (status_rows, failure_rows) = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT connector, status, COUNT(*) AS jobs, MIN(created_at) AS oldest FROM outbox \
                 WHERE status IN ('pending', 'in_flight', 'dead') GROUP BY connector, status",
            )
            .fetch_all(pool)
            .await?;
            let mut status_rows = Vec::with_capacity(rows.len());
            for row in &rows {
                status_rows.push((
                    row.text("connector")?,
                    JobStatus::decode(&row.text("status")?)?,
                    row.int("jobs")?,
                    row.opt_time("oldest")?,
                ));
            }
            let rows = sqlx::query(
                "SELECT connector, last_error_kind, COUNT(*) AS jobs FROM outbox \
                 WHERE status IN ('pending', 'in_flight', 'dead') AND last_error_kind IS NOT NULL \
                 GROUP BY connector, last_error_kind ORDER BY connector, last_error_kind",
            )
            .fetch_all(pool)
            .await?;
            let mut failure_rows = Vec::with_capacity(rows.len());
            for row in &rows {
                failure_rows.push(FailureCount {
                    connector: row.text("connector")?,
                    kind: row.text("last_error_kind")?,
                    jobs: u64::try_from(row.int("jobs")?).unwrap_or(0),
                });
            }
            (status_rows, failure_rows)
        });
        let mut connectors: Vec<ConnectorStats> = Vec::new();
        for (connector, status, jobs, oldest) in status_rows {
            let idx = match connectors.iter().position(|c| c.connector == connector) {
                Some(idx) => idx,
                None => {
                    connectors.push(ConnectorStats {
                        connector,
                        pending: 0,
                        in_flight: 0,
                        dead: 0,
                        oldest_pending_at: None,
                    });
                    connectors.len() - 1
                }
            };
            let entry = &mut connectors[idx];
            let jobs = u64::try_from(jobs).unwrap_or(0);
            match status {
                JobStatus::Pending | JobStatus::InFlight => {
                    if status == JobStatus::Pending {
                        entry.pending = jobs;
                    } else {
                        entry.in_flight = jobs;
                    }
                    entry.oldest_pending_at = match (entry.oldest_pending_at, oldest) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                JobStatus::Dead => entry.dead = jobs,
                JobStatus::Done | JobStatus::Discarded => {}
            }
        }
        connectors.sort_by(|a, b| a.connector.cmp(&b.connector));
        Ok(OutboxStats {
            connectors,
            failures: failure_rows,
        })
    }

    /// The stored tokens of a connector.
    pub async fn get_crm_token(&self, connector: &str) -> Result<Option<CrmToken>, StorageError> {
        let res = on_pool!(self, pool => {
            match sqlx::query(
                "SELECT connector, access_token, refresh_token, expires_at, extra, updated_at \
                 FROM crm_tokens WHERE connector = $1",
            )
            .bind(connector)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some(token_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Stores (inserts or replaces) a connector's tokens.
    pub async fn save_crm_token(&self, token: &CrmToken) -> Result<(), StorageError> {
        let extra = token.extra.to_string();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO crm_tokens (connector, access_token, refresh_token, expires_at, extra, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connector) DO UPDATE SET \
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                 expires_at = excluded.expires_at, extra = excluded.extra, updated_at = excluded.updated_at",
            )
            .bind(&token.connector)
            .bind(&token.access_token)
            .bind(&token.refresh_token)
            .bind(opt_micros(token.expires_at))
            .bind(&extra)
            .bind(to_micros(token.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Replaces the tokens only if the stored refresh token is still `expected_refresh`.
    ///
    /// Two nodes refreshing at once both spend the same refresh token; only the first rotation
    /// is stored and the loser re-reads the winner's tokens. Returns false when it lost.
    pub async fn rotate_crm_token(
        &self,
        token: &CrmToken,
        expected_refresh: &str,
    ) -> Result<bool, StorageError> {
        let extra = token.extra.to_string();
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE crm_tokens SET access_token = $1, refresh_token = $2, expires_at = $3, extra = $4, \
                 updated_at = $5 WHERE connector = $6 AND refresh_token = $7",
            )
            .bind(&token.access_token)
            .bind(&token.refresh_token)
            .bind(opt_micros(token.expires_at))
            .bind(&extra)
            .bind(to_micros(token.updated_at))
            .bind(&token.connector)
            .bind(expected_refresh)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_truncated_on_a_char_boundary() {
        let long = "ошибка".repeat(1000);
        let cut = truncate_error(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert_eq!(truncate_error("short"), "short");
    }
}
