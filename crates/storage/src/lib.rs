//! Durable state of Kommutator: calls and their timelines, users, the customer directory,
//! tasks and the CRM outbox, on SQLite (the default, one file in WAL mode) or PostgreSQL.
//!
//! Both backends run the same schema (migrations in `migrations/sqlite` and
//! `migrations/postgres`, kept column-for-column identical) and the same portable SQL with `$n`
//! placeholders; the few statements that must differ (claiming outbox jobs with
//! `FOR UPDATE SKIP LOCKED`, starting write transactions) are chosen per backend in one place.
//! Timestamps are stored as microseconds since the Unix epoch, UTC; JSON documents as text.
//!
//! Tables: `calls`, `call_agents`, `call_events` (the timeline); `users`, `user_extensions`,
//! `user_queues`, `api_tokens`, `sessions`, `agent_status_history`; `customers`,
//! `customer_phones`; `tasks`; `outbox`, `crm_tokens`; `crm_call_links`.
//!
//! Invariants the schema enforces on both backends:
//! - an extension belongs to at most one user; a login is unique;
//! - a call's timeline has at most one event per `seq`, so replays append nothing twice;
//! - at most one open task of a kind per customer (or per number for unknown callers);
//! - an outbox idempotency key exists once, whatever its status;
//! - a user has at most one open status span.
//!
//! Migrations are append-only: a released file is never edited (sqlx checks its checksum);
//! schema changes add `NNNN_name.sql` to both directories, and a suite test proves the two
//! dialects still produce the same tables, columns and indexes.
//!
//! What this crate is not: it holds no domain logic and does not depend on `cti-core`. Its row
//! and DTO structs are plain data; the tracker, server and connectors convert explicitly.
//! It never reads the clock either: every function that stamps a row takes `now`.

mod calls;
mod customers;
mod error;
mod links;
mod merge;
mod outbox;
mod reports;
mod row;
mod status;
mod tasks;
mod types;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use calls::{
    CallAgent, CallCursor, CallDetail, CallEventRow, CallFilter, CallPage, CallRow, CallWrite,
    CallWriteResult, NewCall, NewCallEvent,
};
pub use customers::{CustomerPhone, CustomerRow, CustomerUpsert, ExternalRef};
pub use error::StorageError;
pub use outbox::{
    ConnectorStats, CrmToken, FailureCount, NewOutboxJob, OutboxJob, OutboxStats, Settled,
};
pub use reports::{
    rollup_applies, AgentCallsRow, CallFactsRow, CallbackRow, CostCallRow, KpiSumsRow, LineRow,
    ReportGroup, ReportQuery, StatusTimeRow, ROLLUP_SL_THRESHOLDS_S,
};
pub use status::StatusSpan;
pub use tasks::{NewCallbackTask, OpenedTask, TaskFilter, TaskRow};
pub use types::{
    from_micros, to_micros, ApiTokenId, CallId, CustomerId, Direction, JobId, JobStatus, Outcome,
    Role, TaskId, TaskStatus, UserId, TASK_KIND_CALLBACK,
};
pub use users::{ApiTokenRow, NewSession, NewUser, SessionRow, UserQueue, UserRow};

/// Which database a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: a local file (or an in-memory database for tests).
    Sqlite,
    /// PostgreSQL: shared by several nodes.
    Postgres,
}

/// Connection pool sizing and waiting limits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum open connections. SQLite serializes writers anyway; readers run in parallel.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before getting a transient error.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the write lock before a transient error.
    pub busy_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A cheap-to-clone handle to the database pool.
#[derive(Clone)]
pub struct Storage {
    pool: Pool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: it may hold a password.
        f.debug_struct("Storage")
            .field("backend", &self.backend())
            .finish()
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
///
/// The body is compiled once per backend, so the same portable query code serves both.
macro_rules! on_pool {
    ($storage:expr, $pool:ident => $body:expr) => {
        match &$storage.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` inside a write transaction bound to `$tx`, committing when it evaluates to a
/// value; an early `?` return drops the transaction, which rolls it back.
///
/// SQLite write transactions start with `BEGIN IMMEDIATE`: a deferred transaction that reads
/// first and writes later cannot wait for the write lock (it fails with SQLITE_BUSY at once),
/// while an immediate one waits up to the busy timeout.
macro_rules! in_tx {
    ($storage:expr, $tx:ident => $body:block) => {
        match &$storage.pool {
            $crate::Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let res = $body;
                $tx.commit().await?;
                res
            }
            $crate::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let res = $body;
                $tx.commit().await?;
                res
            }
        }
    };
}
pub(crate) use in_tx;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Storage {
    /// Opens the database named by `url` with default pool settings.
    ///
    /// Accepted: `sqlite://PATH` or `sqlite:PATH` (file created if missing, WAL mode, foreign
    /// keys on), `sqlite::memory:` (private in-memory database, one connection), and
    /// `postgres://...` / `postgresql://...`. Does not run migrations: call [`Storage::migrate`].
    pub async fn connect(url: &str) -> Result<Storage, StorageError> {
        Storage::connect_with(url, &PoolSettings::default()).await
    }

    /// Like [`Storage::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, settings: &PoolSettings) -> Result<Storage, StorageError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| StorageError::Config {
                message: format!("the PostgreSQL URL cannot be parsed ({e}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections.max(1))
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(|e| connect_error("PostgreSQL", e))?;
            Ok(Storage {
                pool: Pool::Postgres(pool),
            })
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(|e| StorageError::Config {
                message: format!("the SQLite URL cannot be parsed ({e}); expected sqlite://PATH or sqlite::memory:"),
            })?;
            let in_memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
            Storage::open_sqlite(options, in_memory, settings).await
        } else {
            Err(StorageError::Config {
                message: "the storage URL must start with sqlite:// (a file), sqlite::memory: or postgres://".to_owned(),
            })
        }
    }

    /// Opens (creating if missing) the SQLite database file at `path`.
    pub async fn open_sqlite_file(
        path: &std::path::Path,
        settings: &PoolSettings,
    ) -> Result<Storage, StorageError> {
        Storage::open_sqlite(SqliteConnectOptions::new().filename(path), false, settings).await
    }

    /// Opens a private in-memory SQLite database; it disappears with the handle.
    pub async fn open_in_memory() -> Result<Storage, StorageError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(|e| {
            StorageError::Config {
                message: e.to_string(),
            }
        })?;
        Storage::open_sqlite(options, true, &PoolSettings::default()).await
    }

    async fn open_sqlite(
        options: SqliteConnectOptions,
        in_memory: bool,
        settings: &PoolSettings,
    ) -> Result<Storage, StorageError> {
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout);
        let (options, pool_options) = if in_memory {
            // An in-memory database lives as long as its connection: keep exactly one, forever.
            (
                options,
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            )
        } else {
            (
                // WAL lets readers run while one writer commits; NORMAL sync is durable across
                // process crashes (kill -9) and loses at most the last commits on power loss.
                options
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
                SqlitePoolOptions::new().max_connections(settings.max_connections.max(1)),
            )
        };
        let pool = pool_options
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| connect_error("SQLite", e))?;
        Ok(Storage {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Which backend this handle uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StorageError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// SQLite journal mode (`"wal"` for files, `"memory"` in memory); `None` on PostgreSQL.
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>, StorageError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(pool)
                    .await?;
                Ok(Some(mode.to_lowercase()))
            }
            Pool::Postgres(_) => Ok(None),
        }
    }

    /// Closes every connection, waiting for checked-out ones to be returned.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

fn connect_error(backend: &str, err: sqlx::Error) -> StorageError {
    match StorageError::from(err) {
        StorageError::Transient { reason, source } => StorageError::Transient { reason, source },
        StorageError::Config { message } => StorageError::Config {
            message: format!("cannot open {backend}: {message}"),
        },
        other => StorageError::Config {
            message: format!("cannot open {backend} ({other}); check the URL, credentials and that the database exists"),
        },
    }
}
