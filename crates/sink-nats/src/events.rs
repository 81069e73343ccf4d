//! Domain events as versioned JSON (`docs/events.md`): what the call tracker's effects and
//! agent presence mean to a BI or BPM system, one self-contained object per event.
//!
//! [`EventMapper`] turns tracker effects into events in order; it keeps the one piece of
//! state events need that an effect does not carry (which queue a call is waiting in, so that
//! `queue.left` can be told). Agent status changes come from presence and are built with
//! [`agent_status`].

use std::collections::HashMap;

use cti_core::{CallRecord, Effect, RingEnd, Timestamp, UpdateReason};
use serde::Serialize;
use serde_json::{json, Value};

/// Version of the event schema; a breaking change bumps it (and `docs/events.md`).
pub const SCHEMA_VERSION: u32 = 1;

/// One domain event, ready to serialize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Unique id (UUID v4): consumers de-duplicate by it; JetStream does too (`Nats-Msg-Id`).
    pub id: String,
    /// `call.started`, `call.ringing`, …; the NATS subject is `<prefix>.<kind>`.
    pub kind: &'static str,
    /// When it happened (PBX time), RFC 3339 UTC with microseconds.
    pub at: String,
    /// The PBX connection it came from (configuration name).
    pub source: String,
    /// The call, for call, agent-on-call and queue events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Kind-specific fields (see `docs/events.md`).
    #[serde(flatten)]
    pub data: serde_json::Map<String, Value>,
}

impl DomainEvent {
    fn new(
        kind: &'static str,
        at: Timestamp,
        source: &str,
        call_id: Option<String>,
        data: Value,
    ) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        DomainEvent {
            v: SCHEMA_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            at: at.to_string(),
            source: source.to_owned(),
            call_id,
            data,
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and maps always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The snapshot of a call carried by every `call.*` event.
pub fn call_snapshot(record: &CallRecord) -> Value {
    json!({
        "direction": record.direction.as_str(),
        "customer_number": record.customer_number.as_ref().map(|n| n.text.clone()),
        "customer_name": record.customer_name,
        "line": record.line.as_ref().map(|n| n.text.clone()),
        "queue": record.queue.as_ref().map(ToString::to_string),
        "queues": record.queues.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "started_at": record.started_at.to_string(),
        "answered_at": record.answered_at.map(|t| t.to_string()),
        "ended_at": record.ended_at.map(|t| t.to_string()),
        "outcome": record.outcome.map(|o| o.as_str()),
        "answered_by": record.answered_by.as_ref().map(ToString::to_string),
        "agent": record.agent.as_ref().map(ToString::to_string),
        "agents_rang": record.agents_rang.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "wait_ms": record.wait_us / 1000,
        "talk_ms": record.talk_us / 1000,
        "hold_ms": record.hold_us / 1000,
        "transfers": record.transfers.len(),
        "short_abandon": record.short_abandon,
        "degraded": record.degraded,
    })
}

/// Turns tracker effects into domain events, remembering which queue each call waits in.
#[derive(Debug, Default)]
pub struct EventMapper {
    waiting_in: HashMap<String, String>,
}

impl EventMapper {
    /// New mapper with no calls waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events one effect produced at PBX time `at`, in order.
    pub fn map(&mut self, source: &str, at: Timestamp, effect: &Effect) -> Vec<DomainEvent> {
        let mut out = Vec::new();
        match effect {
            Effect::CallStarted(record) => {
                out.push(call_event("call.started", record.started_at, source, record));
            }
            Effect::CallUpdated { record, reason } => {
                let id = record.call_id.to_string();
                match reason {
                    UpdateReason::Queued => {
                        let queue = record.queues.last().or(record.queue.as_ref()).map(ToString::to_string);
                        if let Some(queue) = queue {
                            if let Some(previous) = self.waiting_in.insert(id.clone(), queue.clone()) {
                                out.push(queue_left(at, source, &id, &previous, "moved"));
                            }
                            out.push(DomainEvent::new(
                                "queue.joined",
                                at,
                                source,
                                Some(id),
                                json!({ "queue": queue, "call": call_snapshot(record) }),
                            ));
                        }
                    }
                    UpdateReason::Answered => {
                        let when = record.answered_at.unwrap_or(at);
                        if let Some(queue) = self.waiting_in.remove(&id) {
                            out.push(queue_left(when, source, &id, &queue, "answered"));
                        }
                        out.push(call_event("call.answered", when, source, record));
                    }
                    UpdateReason::Held => out.push(call_event("call.held", at, source, record)),
                    UpdateReason::Unheld => out.push(call_event("call.unheld", at, source, record)),
                    UpdateReason::Transferred | UpdateReason::TransferExplained => {
                        let name = if *reason == UpdateReason::TransferExplained {
                            "call.transfer_explained"
                        } else {
                            "call.transferred"
                        };
                        let when = record.transfers.last().map_or(at, |t| t.at);
                        let mut event = call_event(name, when, source, record);
                        if let Some(t) = record.transfers.last() {
                            event.data.insert("from".into(), json!(t.from.as_ref().map(ToString::to_string)));
                            event.data.insert("to".into(), json!(t.to));
                            event.data.insert("transfer_kind".into(), json!(t.kind.as_str()));
                        }
                        out.push(event);
                    }
                    UpdateReason::CallerIdentified => out.push(call_event("call.identified", at, source, record)),
                    UpdateReason::Recording => out.push(call_event("call.recording", at, source, record)),
                }
            }
            Effect::CallEnded(record) => {
                let id = record.call_id.to_string();
                let when = record.ended_at.unwrap_or(at);
                if let Some(queue) = self.waiting_in.remove(&id) {
                    out.push(queue_left(when, source, &id, &queue, "hung_up"));
                }
                out.push(call_event("call.ended", when, source, record));
            }
            Effect::CallsMerged { survivor, absorbed } => {
                let absorbed_id = absorbed.to_string();
                if let Some(queue) = self.waiting_in.remove(&absorbed_id) {
                    self.waiting_in.entry(survivor.to_string()).or_insert(queue);
                }
                out.push(DomainEvent::new(
                    "call.merged",
                    at,
                    source,
                    Some(survivor.to_string()),
                    json!({ "absorbed_call_id": absorbed_id }),
                ));
            }
            Effect::AgentRinging { call_id, agent, queue } => out.push(DomainEvent::new(
                "call.ringing",
                at,
                source,
                Some(call_id.to_string()),
                json!({ "agent": agent.to_string(), "queue": queue.as_ref().map(ToString::to_string) }),
            )),
            Effect::AgentRingEnded { call_id, agent, how } => out.push(DomainEvent::new(
                "agent.ring_ended",
                at,
                source,
                Some(call_id.to_string()),
                json!({ "agent": agent.to_string(), "how": ring_end(*how) }),
            )),
            Effect::AgentConnected { call_id, agent } => out.push(DomainEvent::new(
                "agent.connected",
                at,
                source,
                Some(call_id.to_string()),
                json!({ "agent": agent.to_string() }),
            )),
            Effect::AgentDisconnected { call_id, agent } => out.push(DomainEvent::new(
                "agent.disconnected",
                at,
                source,
                Some(call_id.to_string()),
                json!({ "agent": agent.to_string() }),
            )),
        }
        out
    }
}

/// `agent.status`: an agent's availability changed (from presence).
pub fn agent_status(
    source: &str,
    at: Timestamp,
    login: &str,
    extensions: &[String],
    status: &str,
    reason: Option<&str>,
    origin: &str,
) -> DomainEvent {
    DomainEvent::new(
        "agent.status",
        at,
        source,
        None,
        json!({ "login": login, "extensions": extensions, "status": status, "reason": reason, "origin": origin }),
    )
}

fn call_event(kind: &'static str, at: Timestamp, source: &str, record: &CallRecord) -> DomainEvent {
    DomainEvent::new(
        kind,
        at,
        source,
        Some(record.call_id.to_string()),
        json!({ "call": call_snapshot(record) }),
    )
}

fn queue_left(at: Timestamp, source: &str, call_id: &str, queue: &str, why: &str) -> DomainEvent {
    DomainEvent::new(
        "queue.left",
        at,
        source,
        Some(call_id.to_owned()),
        json!({ "queue": queue, "reason": why }),
    )
}

fn ring_end(how: RingEnd) -> &'static str {
    match how {
        RingEnd::Answered => "answered",
        RingEnd::NoAnswer => "no_answer",
        RingEnd::Busy => "busy",
        RingEnd::Cancelled => "cancelled",
        RingEnd::Failed => "failed",
    }
}
