//! Tasks for people, above all missed-call callbacks.
//!
//! Invariant: at most one open task of a kind per customer (or, for unknown callers, per phone
//! number). It is enforced by a partial unique index on `(kind, dedup_key) WHERE status =
//! 'open'`, so concurrent missed calls from one customer cannot create two tasks; a repeated
//! miss bumps `attempts` on the open task instead.

use chrono::{DateTime, Utc};

use crate::row::{bind_args, Arg, Conditions, RowExt};
use crate::types::{opt_micros, to_micros};
use crate::users::require_affected;
use crate::{
    on_pool, CallId, CustomerId, Storage, StorageError, TaskId, TaskStatus, UserId,
    TASK_KIND_CALLBACK,
};

/// A missed call that needs a callback.
#[derive(Debug, Clone)]
pub struct NewCallbackTask {
    /// The customer, when the number is in the directory.
    pub customer_id: Option<CustomerId>,
    /// The number to call back (E.164).
    pub phone_e164: String,
    /// Who should call back (the responsible manager).
    pub assignee_user_id: Option<UserId>,
    /// The missed call.
    pub call_id: Option<CallId>,
    /// When the callback is due.
    pub due_at: Option<DateTime<Utc>>,
    /// Text for the assignee.
    pub note: Option<String>,
}

/// Result of [`Storage::open_callback_task`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedTask {
    /// The open task (new, or the existing one with `attempts` incremented).
    pub task: TaskRow,
    /// True when this call created the task.
    pub created: bool,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// Row id.
    pub id: TaskId,
    /// Kind, e.g. [`TASK_KIND_CALLBACK`].
    pub kind: String,
    /// The customer, if known.
    pub customer_id: Option<CustomerId>,
    /// The phone number concerned.
    pub phone_e164: Option<String>,
    /// Who should act.
    pub assignee_user_id: Option<UserId>,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// The call that created the task.
    pub call_id: Option<CallId>,
    /// The call that closed it (the customer was reached).
    pub closed_by_call_id: Option<CallId>,
    /// How many times the triggering event happened while the task was open.
    pub attempts: i64,
    /// Text for the assignee.
    pub note: Option<String>,
    /// Id of the mirrored task in a CRM.
    pub external_ref: Option<String>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// Filters for [`Storage::list_tasks`].
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Tasks of this assignee.
    pub assignee_user_id: Option<UserId>,
    /// Tasks in this state.
    pub status: Option<TaskStatus>,
    /// Tasks of this kind.
    pub kind: Option<String>,
    /// Tasks for this customer.
    pub customer_id: Option<CustomerId>,
    /// Tasks for this number.
    pub phone_e164: Option<String>,
    /// Page size; 0 means 100.
    pub limit: u32,
}

const TASK_COLUMNS: &str = "id, kind, customer_id, phone_e164, assignee_user_id, status, call_id, \
     closed_by_call_id, attempts, note, external_ref, created_at, updated_at, due_at, closed_at";

fn task_from_row(row: &impl RowExt) -> Result<TaskRow, StorageError> {
    Ok(TaskRow {
        id: TaskId(row.int("id")?),
        kind: row.text("kind")?,
        customer_id: row.opt_int("customer_id")?.map(CustomerId),
        phone_e164: row.opt_text("phone_e164")?,
        assignee_user_id: row.opt_int("assignee_user_id")?.map(UserId),
        status: TaskStatus::decode(&row.text("status")?)?,
        call_id: row.opt_text("call_id")?.map(CallId),
        closed_by_call_id: row.opt_text("closed_by_call_id")?.map(CallId),
        attempts: row.int("attempts")?,
        note: row.opt_text("note")?,
        external_ref: row.opt_text("external_ref")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        due_at: row.opt_time("due_at")?,
        closed_at: row.opt_time("closed_at")?,
    })
}

fn dedup_key(customer_id: Option<CustomerId>, phone_e164: &str) -> String {
    match customer_id {
        Some(id) => format!("customer:{id}"),
        None => format!("phone:{phone_e164}"),
    }
}

impl Storage {
    /// Opens a callback task, or, when one is already open for this customer (or, without a
    /// customer, this number), bumps its `attempts` and returns it. One statement, so concurrent
    /// calls for the same customer end with exactly one open task.
    pub async fn open_callback_task(
        &self,
        task: &NewCallbackTask,
        now: DateTime<Utc>,
    ) -> Result<OpenedTask, StorageError> {
        let sql = format!(
            "INSERT INTO tasks (kind, customer_id, phone_e164, assignee_user_id, status, dedup_key, call_id, \
             attempts, note, created_at, updated_at, due_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6, 1, $7, $8, $8, $9) \
             ON CONFLICT (kind, dedup_key) WHERE status = 'open' \
             DO UPDATE SET attempts = tasks.attempts + 1, updated_at = excluded.updated_at \
             RETURNING {TASK_COLUMNS}"
        );
        let row = on_pool!(self, pool => {
            let row = sqlx::query(&sql)
                .bind(TASK_KIND_CALLBACK)
                .bind(task.customer_id.map(|c| c.0))
                .bind(&task.phone_e164)
                .bind(task.assignee_user_id.map(|u| u.0))
                .bind(dedup_key(task.customer_id, &task.phone_e164))
                .bind(task.call_id.as_ref().map(CallId::as_str))
                .bind(&task.note)
                .bind(to_micros(now))
                .bind(opt_micros(task.due_at))
                .fetch_one(pool)
                .await?;
            task_from_row(&row)?
        });
        Ok(OpenedTask {
            created: row.attempts == 1,
            task: row,
        })
    }

    /// Closes (as done) every open callback task for this customer or this number, recording
    /// the call that reached them; returns the closed tasks (to close their CRM mirrors).
    pub async fn close_callback_tasks_for(
        &self,
        customer_id: Option<CustomerId>,
        phone_e164: Option<&str>,
        call_id: Option<&CallId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskRow>, StorageError> {
        if customer_id.is_none() && phone_e164.is_none() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE tasks SET status = 'done', closed_at = $1, updated_at = $1, closed_by_call_id = $2 \
             WHERE kind = $3 AND status = 'open' AND (customer_id = $4 OR phone_e164 = $5) \
             RETURNING {TASK_COLUMNS}"
        );
        let mut res = on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(to_micros(now))
                .bind(call_id.map(CallId::as_str))
                .bind(TASK_KIND_CALLBACK)
                .bind(customer_id.map(|c| c.0))
                .bind(phone_e164)
                .fetch_all(pool)
                .await?;
            rows.iter().map(task_from_row).collect::<Result<Vec<_>, _>>()?
        });
        res.sort_by_key(|t| t.id);
        Ok(res)
    }

    /// Sets a task's status by hand (done or cancelled by the assignee, or reopened).
    pub async fn set_task_status(
        &self,
        id: TaskId,
        status: TaskStatus,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let closed_at = match status {
            TaskStatus::Open => None,
            TaskStatus::Done | TaskStatus::Cancelled => Some(to_micros(now)),
        };
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE tasks SET status = $1, closed_at = $2, updated_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(closed_at)
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("task {id}"))
    }

    /// Records the id of the task mirrored in a CRM.
    pub async fn set_task_external_ref(
        &self,
        id: TaskId,
        external_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE tasks SET external_ref = $1, updated_at = $2 WHERE id = $3")
                .bind(external_ref)
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("task {id}"))
    }

    /// One task by id.
    pub async fn get_task(&self, id: TaskId) -> Result<Option<TaskRow>, StorageError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let res = on_pool!(self, pool => {
            match sqlx::query(&sql).bind(id.0).fetch_optional(pool).await? {
                Some(row) => Some(task_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Tasks matching `filter`, newest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRow>, StorageError> {
        let mut cond = Conditions::default();
        if let Some(user) = filter.assignee_user_id {
            let p = cond.arg(Arg::Int(user.0));
            cond.push(format!("assignee_user_id = {p}"));
        }
        if let Some(status) = filter.status {
            let p = cond.arg(Arg::Text(status.as_str().to_owned()));
            cond.push(format!("status = {p}"));
        }
        if let Some(kind) = &filter.kind {
            let p = cond.arg(Arg::Text(kind.clone()));
            cond.push(format!("kind = {p}"));
        }
        if let Some(customer) = filter.customer_id {
            let p = cond.arg(Arg::Int(customer.0));
            cond.push(format!("customer_id = {p}"));
        }
        if let Some(phone) = &filter.phone_e164 {
            let p = cond.arg(Arg::Text(phone.clone()));
            cond.push(format!("phone_e164 = {p}"));
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let limit_p = cond.arg(Arg::Int(i64::from(limit)));
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks{} ORDER BY created_at DESC, id DESC LIMIT {limit_p}",
            cond.where_sql()
        );
        let args = cond.args;
        let res = on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(&sql), args).fetch_all(pool).await?;
            rows.iter().map(task_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(res)
    }
}
