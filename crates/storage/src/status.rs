//! History of agent statuses (available, away with a reason, after-call work, offline) as
//! non-overlapping spans per user.
//!
//! Each change closes the user's open span and opens the next one in one transaction; a
//! partial unique index guarantees at most one open span per user. Which statuses exist is the
//! domain's business: this module stores the spelling it is given.

use chrono::{DateTime, Utc};

use crate::row::RowExt;
use crate::types::to_micros;
use crate::{in_tx, on_pool, Storage, StorageError, UserId};

/// One span of an agent's status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSpan {
    /// Whose status.
    pub user_id: UserId,
    /// Status, e.g. `available`, `away`, `after_call_work`, `offline`.
    pub status: String,
    /// Reason, e.g. `lunch`.
    pub reason: Option<String>,
    /// When the status began.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` for the current status.
    pub ended_at: Option<DateTime<Utc>>,
}

fn span_from_row(row: &impl RowExt) -> Result<StatusSpan, StorageError> {
    Ok(StatusSpan {
        user_id: UserId(row.int("user_id")?),
        status: row.text("status")?,
        reason: row.opt_text("reason")?,
        started_at: row.time("started_at")?,
        ended_at: row.opt_time("ended_at")?,
    })
}

impl Storage {
    /// Ends the user's current status at `at` and starts `status` (with `reason`) at `at`.
    ///
    /// If `at` is earlier than the current span's start (clock skew between nodes), the old span
    /// is closed at its own start rather than getting a negative length.
    pub async fn record_status_change(
        &self,
        user_id: UserId,
        status: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let at = to_micros(at);
        in_tx!(self, tx => {
            sqlx::query(
                "UPDATE agent_status_history SET ended_at = CASE WHEN started_at > $1 THEN started_at ELSE $1 END \
                 WHERE user_id = $2 AND ended_at IS NULL",
            )
            .bind(at)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO agent_status_history (user_id, status, reason, started_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user_id.0)
            .bind(status)
            .bind(reason)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The user's current (open) status span, if any.
    pub async fn current_status(
        &self,
        user_id: UserId,
    ) -> Result<Option<StatusSpan>, StorageError> {
        let res = on_pool!(self, pool => {
            match sqlx::query(
                "SELECT user_id, status, reason, started_at, ended_at FROM agent_status_history \
                 WHERE user_id = $1 AND ended_at IS NULL",
            )
            .bind(user_id.0)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some(span_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Spans of `user_id` (every user when `None`) overlapping `[from, to)`, oldest first.
    /// Spans are returned whole; clip them to the period when summing durations.
    pub async fn list_status_history(
        &self,
        user_id: Option<UserId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StatusSpan>, StorageError> {
        let res = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT user_id, status, reason, started_at, ended_at FROM agent_status_history \
                 WHERE ($1 = 0 OR user_id = $1) AND started_at < $3 AND (ended_at IS NULL OR ended_at > $2) \
                 ORDER BY started_at, id",
            )
            .bind(user_id.map_or(0, |u| u.0))
            .bind(to_micros(from))
            .bind(to_micros(to))
            .fetch_all(pool)
            .await?;
            rows.iter().map(span_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(res)
    }
}
