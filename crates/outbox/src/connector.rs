//! The connector contract: what every CRM or sink looks like to the outbox worker.
//!
//! A connector is built from its configuration (each connector crate has a `Config` and a
//! `build` function), checked once with [`Connector::healthcheck`], then driven by the worker,
//! which hands it claimed jobs through [`Connector::deliver`]. A connector decides nothing about
//! retries: it classifies each failure ([`ConnectorError`]) and the worker applies the policy.
//!
//! What this is not: a place for CRM specifics, or a storage API; connectors that need state
//! (OAuth tokens, local tasks) get a `storage::Storage` at build time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::call::JobPayload;
use crate::plan::Step;

/// A boxed future, so the trait stays object-safe (`Arc<dyn Connector>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A claimed job, decoded for the connector.
#[derive(Debug, Clone)]
pub struct Job {
    /// Outbox row id.
    pub id: storage::JobId,
    /// The step to perform.
    pub step: Step,
    /// The idempotency key (`connector:call:step`), also usable as a remote dedup key.
    pub key: String,
    /// Delivery attempts started so far, this one included. Above 1 a previous attempt may have
    /// reached the remote side before the process died, so a connector whose remote operation
    /// is not idempotent checks before repeating it.
    pub attempts: i64,
    /// What to deliver.
    pub payload: JobPayload,
}

/// A claimed domain-event job ([`Step::Event`]), for connectors that stream events.
#[derive(Debug, Clone)]
pub struct EventJob {
    /// Outbox row id.
    pub id: storage::JobId,
    /// The idempotency key (`connector:event:<event id>`).
    pub key: String,
    /// Delivery attempts started so far, this one included.
    pub attempts: i64,
    /// The event's kind, e.g. `call.answered` (also inside `event`).
    pub kind: String,
    /// The versioned event object exactly as documented in `docs/events.md`.
    pub event: serde_json::Value,
}

/// Why a delivery failed, as a low-cardinality label for metrics and the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The remote side asked us to slow down (HTTP 429, Bitrix24 `QUERY_LIMIT_EXCEEDED`).
    RateLimited,
    /// The remote side is down or answered 5xx, or the connection failed.
    Unavailable,
    /// No answer in time.
    Timeout,
    /// Credentials were refused and could not be refreshed.
    Auth,
    /// The remote side refused this job for good (validation error, unknown user).
    Rejected,
    /// This job cannot be done yet (e.g. a recording not yet finished); retry it later.
    NotReady,
    /// The answer could not be understood.
    Protocol,
}

impl ErrorKind {
    /// The label stored in `outbox.last_error_kind` and used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Auth => "auth",
            ErrorKind::Rejected => "rejected",
            ErrorKind::NotReady => "not_ready",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// Every kind, for metric registration.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Auth,
        ErrorKind::Rejected,
        ErrorKind::NotReady,
        ErrorKind::Protocol,
    ];
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery, classified by what the worker should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The whole remote service is unavailable, overloaded or refusing our credentials for now:
    /// the worker pauses the connector (backoff with jitter, at least `retry_after`) and puts
    /// the job back in its place in the queue, so job order is kept across the outage.
    #[error("{kind}: {message}")]
    Transient {
        /// Classification (never [`ErrorKind::Rejected`]).
        kind: ErrorKind,
        /// Diagnostics for the admin page; no secrets, no phone numbers.
        message: String,
        /// What the remote side asked for (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// This job cannot be done yet, the others can: retry this one later with its own backoff.
    #[error("not ready: {message}")]
    NotReady {
        /// Why.
        message: String,
    },
    /// The remote side refused this job for good: it goes to the dead letters for an
    /// administrator to look at, retry or discard.
    #[error("rejected: {message}")]
    Rejected {
        /// Why.
        message: String,
    },
}

impl ConnectorError {
    /// A connector-wide transient failure without a Retry-After.
    pub fn transient(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError::Transient {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent refusal of one job.
    pub fn rejected(message: impl Into<String>) -> Self {
        ConnectorError::Rejected {
            message: message.into(),
        }
    }

    /// The classification label.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectorError::Transient { kind, .. } => *kind,
            ConnectorError::NotReady { .. } => ErrorKind::NotReady,
            ConnectorError::Rejected { .. } => ErrorKind::Rejected,
        }
    }
}

/// The result of delivering one job.
pub type Delivery = Result<(), ConnectorError>;

/// A customer as a CRM knows it, returned by a phone lookup (several matches are possible; the
/// operator chooses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmCustomer {
    /// The connector that found it.
    pub connector: String,
    /// The CRM's entity type, e.g. `CONTACT`, `LEAD`, `contacts`, `contact`.
    pub entity_type: String,
    /// The CRM's id of the entity.
    pub entity_id: String,
    /// Display name, when the CRM returned one.
    pub name: Option<String>,
    /// The responsible manager's CRM user id, when known.
    pub responsible: Option<String>,
}

/// One CRM or sink. See the module documentation.
pub trait Connector: Send + Sync {
    /// The instance name from the configuration; also the `outbox.connector` column.
    fn name(&self) -> &str;

    /// Which planner steps this connector wants jobs for.
    fn steps(&self) -> &'static [Step];

    /// How many jobs the worker may hand over in one [`Connector::deliver`] call (connectors
    /// with a batch API take many, others one).
    fn max_batch(&self) -> usize {
        1
    }

    /// Checks credentials and reachability with one cheap request.
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// Finds customers by phone number (every phone field, any stored format).
    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>>;

    /// Delivers jobs, in order; returns one result per job, in the same order. Jobs of one call
    /// arrive in the order they were planned (start before end).
    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>>;

    /// Delivers domain-event jobs, in order; one result per job. Only connectors whose
    /// [`Connector::steps`] include [`Step::Event`] get any; the others refuse them.
    fn deliver_events<'a>(&'a self, jobs: &'a [EventJob]) -> BoxFuture<'a, Vec<Delivery>> {
        let refused = ConnectorError::rejected(format!(
            "connector `{}` does not take domain events",
            self.name()
        ));
        Box::pin(async move { vec![Err(refused); jobs.len()] })
    }
}
