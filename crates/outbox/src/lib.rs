//! The connector contract and the durable outbox that feeds it.
//!
//! What it is:
//! - [`Connector`]: the one trait every CRM or sink implements (Bitrix24, amoCRM, Dynamics 365,
//!   the generic webhook, the built-in directory). Every connector crate looks the same from
//!   the outside: a `Config` struct → `build(config, …)` → [`Connector::healthcheck`] → run by
//!   [`worker::run`].
//! - [`plan::jobs_for`]: the pure planner that turns a tracker [`cti_core::Effect`] into outbox
//!   jobs, one per (call, step, connector), each with an idempotency key, so the binary can write
//!   them in the same transaction as the call change that causes them.
//! - [`worker`]: claims due jobs, hands them to the connector, settles them (done, retried with
//!   exponential backoff and jitter honouring `Retry-After`, or dead-lettered), with a rate
//!   limit and concurrency per connector and a sweep that dead-letters jobs older than the
//!   configured age. [`metrics::OutboxMetrics`] counts what happened.
//! - [`http`]: the HTTP plumbing the remote connectors share (status → error kind, Retry-After).
//! - [`builtin`]: the built-in directory connector: customers from local storage and missed-call
//!   callback tasks (one open task per customer, closed when the customer is reached).
//!
//! What it is not: it knows no CRM's API (those live in `crm-*` and `sink-*` crates, which
//! depend on this one and never on each other) and it does not decide what a call is (the
//! tracker in `cti-core` does). The planner does no I/O.

pub mod builtin;
pub mod call;
pub mod connector;
pub mod events;
pub mod http;
pub mod limiter;
pub mod metrics;
pub mod plan;
pub mod worker;

pub use call::{CallDto, JobPayload};
pub use connector::{
    BoxFuture, Connector, ConnectorError, CrmCustomer, Delivery, ErrorKind, EventJob, Job,
};
pub use limiter::RateLimiter;
pub use metrics::OutboxMetrics;
pub use plan::{jobs_for, PlanContext, Step, Target};
pub use worker::{WorkerHandle, WorkerSettings};
