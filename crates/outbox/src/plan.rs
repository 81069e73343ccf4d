//! The outbox planner: which jobs a tracker effect causes, for which connectors.
//!
//! Pure: no I/O, no clock (the caller passes `now`). The binary calls [`jobs_for`] for every
//! effect and writes the jobs in the same transaction as the call snapshot the effect produced,
//! so a job exists exactly when the change that causes it is stored.
//!
//! Steps:
//! - [`Step::CallStarted`]: the first effect that knows the customer's number (the call
//!   started, or the caller became known). For CRMs that show their own call card (Bitrix24
//!   `register`) and for event sinks.
//! - [`Step::CallEnded`]: the final record. For every CRM that logs calls.
//!
//! Internal calls (agent to agent) and calls without an outside number cause no jobs.
//! The idempotency key is `connector:call_id:step`: a repeated effect (the tracker repeats
//! nothing, but a restarted pipeline may) plans the same key, which the outbox ignores.

use chrono::{DateTime, Utc};
use cti_core::{CallRecord, Direction, Effect, UpdateReason};
use directory::phone::Region;

use crate::call::{CallDto, JobPayload, PAYLOAD_VERSION};

/// A delivery step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The call started and its customer is known.
    CallStarted,
    /// The call is over.
    CallEnded,
    /// A domain event (`docs/events.md`) for a connector that streams them; planned by
    /// [`crate::events::event_jobs`], not from call effects.
    Event,
}

impl Step {
    /// The name stored in `outbox.step`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CallStarted => "call_started",
            Step::CallEnded => "call_ended",
            Step::Event => "event",
        }
    }

    /// The inverse of [`Step::as_str`].
    pub fn parse(text: &str) -> Option<Step> {
        match text {
            "call_started" => Some(Step::CallStarted),
            "call_ended" => Some(Step::CallEnded),
            "event" => Some(Step::Event),
            _ => None,
        }
    }
}

/// A connector the planner plans for, with the steps it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Connector instance name (the `outbox.connector` column).
    pub connector: String,
    /// Steps it takes.
    pub steps: Vec<Step>,
}

/// What the planner needs besides the effect.
#[derive(Debug, Clone)]
pub struct PlanContext {
    /// Connectors to plan for.
    pub targets: Vec<Target>,
    /// Region for numbers without a country code.
    pub region: Region,
}

/// The idempotency key of a (connector, call, step).
pub fn idempotency_key(connector: &str, call_id: &str, step: Step) -> String {
    format!("{connector}:{call_id}:{}", step.as_str())
}

fn step_of(effect: &Effect) -> Option<(Step, &CallRecord)> {
    match effect {
        Effect::CallStarted(record) => Some((Step::CallStarted, record)),
        Effect::CallUpdated {
            record,
            reason: UpdateReason::CallerIdentified | UpdateReason::Answered,
        } => Some((Step::CallStarted, record)),
        Effect::CallEnded(record) => Some((Step::CallEnded, record)),
        _ => None,
    }
}

/// The jobs one effect causes; empty for most effects.
pub fn jobs_for(
    effect: &Effect,
    context: &PlanContext,
    now: DateTime<Utc>,
) -> Vec<storage::NewOutboxJob> {
    let Some((step, record)) = step_of(effect) else {
        return Vec::new();
    };
    if record.direction == Direction::Internal || context.targets.is_empty() {
        return Vec::new();
    }
    let call = CallDto::from_record(record, context.region);
    // A call start is only worth a CRM card when the customer's number is known; the end is
    // always logged (an anonymous caller who was missed is still a missed call).
    if step == Step::CallStarted && call.customer_number.is_none() {
        return Vec::new();
    }
    let payload = serde_json::to_value(JobPayload {
        v: PAYLOAD_VERSION,
        call,
    })
    .unwrap_or_default();
    context
        .targets
        .iter()
        .filter(|target| target.steps.contains(&step))
        .map(|target| storage::NewOutboxJob {
            connector: target.connector.clone(),
            step: step.as_str().to_owned(),
            call_id: Some(storage::CallId::new(record.call_id.to_string())),
            idempotency_key: idempotency_key(&target.connector, record.call_id.as_str(), step),
            payload: payload.clone(),
            next_attempt_at: now,
            created_at: now,
        })
        .collect()
}

#[cfg(test)]
mod tests;
