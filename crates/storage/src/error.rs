//! The one error type at the storage crate boundary.
//!
//! Callers act on the variant, not on the message: [`StorageError::Transient`] means "retry
//! with backoff" (connection lost, database busy or locked, pool exhausted, serialization
//! failure), everything else means "report and give up" for this request.
//! This module is not a place for domain outcomes: "no such user" from a lookup is `Ok(None)`.

use std::fmt;

/// An error from the storage layer, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage URL or options are unusable; nothing was opened.
    #[error("storage configuration is invalid: {message}")]
    Config {
        /// What is wrong and how to fix it, as a sentence fragment.
        message: String,
    },

    /// The database is temporarily unreachable or busy; the same call may succeed later.
    #[error(
        "database is temporarily unavailable ({reason}); the operation can be retried: {source}"
    )]
    Transient {
        /// Short classification, e.g. "connection lost", "database is locked".
        reason: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// A uniqueness rule was broken: the thing already exists or belongs to someone else.
    #[error("{what} already exists (constraint {constraint})")]
    Conflict {
        /// What collided, e.g. "a user with this login".
        what: String,
        /// Name of the violated constraint or index as reported by the database.
        constraint: String,
    },

    /// The row the operation refers to does not exist.
    #[error("{what} was not found")]
    NotFound {
        /// What was looked for, e.g. "call 1700000000.1".
        what: String,
    },

    /// The database refused the data (foreign key, check, not-null) or the input is invalid.
    #[error("the database rejected the change: {message}")]
    Rejected {
        /// What was refused and why.
        message: String,
    },

    /// The stored data or schema does not match what this build expects.
    #[error("stored data is not what this version of Kommutator expects: {message}; run `kommutator migrate` or check for manual edits")]
    Corrupt {
        /// What could not be read.
        message: String,
    },

    /// Applying the schema migrations failed.
    #[error("database migration failed: {message}")]
    Migration {
        /// What failed and what to do about it.
        message: String,
    },

    /// The storage handle was closed (the process is shutting down).
    #[error("storage is closed (the server is shutting down)")]
    Closed,
}

impl StorageError {
    /// True when retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }

    pub(crate) fn corrupt(message: impl fmt::Display) -> Self {
        StorageError::Corrupt {
            message: message.to_string(),
        }
    }

    pub(crate) fn not_found(what: impl fmt::Display) -> Self {
        StorageError::NotFound {
            what: what.to_string(),
        }
    }
}

/// SQLite primary result codes (the low byte of the extended code) that mean "try again".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_PROTOCOL: i64 = 15;

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        classify(err)
    }
}

fn transient(reason: &'static str, source: sqlx::Error) -> StorageError {
    StorageError::Transient { reason, source }
}

fn classify(err: sqlx::Error) -> StorageError {
    match err {
        sqlx::Error::Io(_) => transient("connection lost", err),
        sqlx::Error::Tls(_) => transient("TLS failure", err),
        sqlx::Error::Protocol(_) => transient("protocol error on the connection", err),
        sqlx::Error::PoolTimedOut => transient("all database connections are busy", err),
        sqlx::Error::WorkerCrashed => transient("database worker crashed", err),
        sqlx::Error::PoolClosed => StorageError::Closed,
        sqlx::Error::RowNotFound => StorageError::not_found("the requested row"),
        sqlx::Error::Configuration(source) => StorageError::Config {
            message: source.to_string(),
        },
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => StorageError::corrupt(err),
        sqlx::Error::Migrate(migrate) => migration_error(*migrate),
        sqlx::Error::Database(db) => database_error(db),
        other => StorageError::Rejected {
            message: other.to_string(),
        },
    }
}

fn database_error(db: Box<dyn sqlx::error::DatabaseError>) -> StorageError {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // PostgreSQL SQLSTATE classes: 08 connection, 40 transaction rollback (serialization,
    // deadlock), 53 insufficient resources, 57 operator intervention (shutdown, cancel).
    let pg_transient = code.len() == 5
        && (code.starts_with("08")
            || code.starts_with("40")
            || code.starts_with("53")
            || code.starts_with("57"));
    let sqlite_primary = code.parse::<i64>().ok().map(|c| c & 0xff);
    let sqlite_transient = matches!(
        sqlite_primary,
        Some(SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_PROTOCOL)
    );
    if pg_transient || sqlite_transient {
        let reason = if sqlite_transient {
            "database is locked by another writer"
        } else if code.starts_with("40") {
            "transaction conflict"
        } else {
            "database connection interrupted"
        };
        return transient(reason, sqlx::Error::Database(db));
    }
    let constraint = db.constraint().unwrap_or("").to_owned();
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => StorageError::Conflict {
            what: describe_unique(&constraint, db.message()),
            constraint: if constraint.is_empty() {
                db.message().to_owned()
            } else {
                constraint
            },
        },
        sqlx::error::ErrorKind::ForeignKeyViolation => StorageError::Rejected {
            message: format!(
                "it refers to a row that does not exist ({}); create the referenced user, customer or call first",
                db.message()
            ),
        },
        _ => StorageError::Rejected {
            message: format!("{} (code {code})", db.message()),
        },
    }
}

/// Names the colliding thing in words; SQLite reports columns, PostgreSQL reports index names.
fn describe_unique(constraint: &str, message: &str) -> String {
    let haystack = format!("{constraint} {message}");
    let table = [
        ("users.login", "a user with this login"),
        ("users_login", "a user with this login"),
        (
            "user_extensions",
            "this extension (assigned to another user)",
        ),
        ("api_tokens", "an API token with this hash"),
        ("sessions", "a session with this id"),
        ("outbox", "an outbox job with this idempotency key"),
        ("customers", "a customer with this external CRM reference"),
        ("calls", "a call with this id"),
    ];
    table
        .iter()
        .find(|(needle, _)| haystack.contains(needle))
        .map(|(_, what)| (*what).to_owned())
        .unwrap_or_else(|| "a row with the same unique key".to_owned())
}

fn migration_error(err: sqlx::migrate::MigrateError) -> StorageError {
    use sqlx::migrate::MigrateError as M;
    let message = match &err {
        M::VersionMissing(v) => format!(
            "the database has migration {v} which this build does not know; it was migrated by a newer Kommutator, so upgrade the binary"
        ),
        M::VersionMismatch(v) => format!(
            "migration {v} was changed after it was applied; restore the original migration file or use a fresh database"
        ),
        M::Dirty(v) => format!(
            "migration {v} failed half-way earlier; fix the cause, repair the schema by hand and delete its row from _sqlx_migrations"
        ),
        M::Execute(e) | M::ExecuteMigration(e, _) if is_transient_sqlx(e) => {
            return StorageError::Migration {
                message: format!("the database became unavailable during migration ({e}); run it again"),
            }
        }
        other => other.to_string(),
    };
    StorageError::Migration { message }
}

fn is_transient_sqlx(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    )
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        migration_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_are_named_in_words_on_both_backends() {
        let cases = [
            (
                "",
                "UNIQUE constraint failed: users.login",
                "a user with this login",
            ),
            (
                "users_login_key",
                "duplicate key value",
                "a user with this login",
            ),
            (
                "",
                "UNIQUE constraint failed: user_extensions.extension",
                "this extension (assigned to another user)",
            ),
            (
                "user_extensions_pkey",
                "duplicate key value",
                "this extension (assigned to another user)",
            ),
            (
                "outbox_idempotency_key_key",
                "duplicate key value",
                "an outbox job with this idempotency key",
            ),
            (
                "",
                "UNIQUE constraint failed: something.else",
                "a row with the same unique key",
            ),
        ];
        for (constraint, message, expected) in cases {
            assert_eq!(
                describe_unique(constraint, message),
                expected,
                "{constraint} {message}"
            );
        }
    }

    #[test]
    fn operator_messages_say_what_to_do() {
        let err = migration_error(sqlx::migrate::MigrateError::VersionMissing(7));
        assert!(err.to_string().contains("upgrade the binary"), "{err}");
        let err = StorageError::from(sqlx::Error::PoolTimedOut);
        assert!(err.is_transient());
        assert!(err.to_string().contains("can be retried"), "{err}");
        assert!(matches!(
            StorageError::from(sqlx::Error::PoolClosed),
            StorageError::Closed
        ));
    }
}
