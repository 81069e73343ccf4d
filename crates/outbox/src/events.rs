//! Domain events through the outbox: the jobs that carry events (`docs/events.md`) to the
//! connectors that stream them (signed webhooks), so that an event survives a receiver that is
//! down, a restart and kill -9 the same way a call record does.
//!
//! The event object is stored as it is and delivered as it is; its `id` makes the idempotency
//! key, so enqueuing the same event twice is a no-op and a receiver can drop repeats.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::plan::Step;

/// The outbox job that delivers `event` (a domain event object with `id` and `kind`) to
/// `connector`; `None` when the object lacks either.
pub fn event_job(
    connector: &str,
    event: Value,
    call_id: Option<&str>,
    now: DateTime<Utc>,
) -> Option<storage::NewOutboxJob> {
    let id = event.get("id")?.as_str()?.to_owned();
    event.get("kind")?.as_str()?;
    Some(storage::NewOutboxJob {
        connector: connector.to_owned(),
        step: Step::Event.as_str().to_owned(),
        call_id: call_id.map(|c| storage::CallId(c.to_owned())),
        idempotency_key: format!("{connector}:event:{id}"),
        payload: event,
        next_attempt_at: now,
        created_at: now,
    })
}

/// Which event kinds a connector wants: exact kinds (`call.answered`), families
/// (`call.*`) or everything (`*`, also an empty list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindFilter(Vec<String>);

impl KindFilter {
    /// A filter from configured patterns. Errors name the first pattern that is not a kind,
    /// a `family.*` or `*`.
    pub fn new(patterns: &[String]) -> Result<KindFilter, String> {
        for p in patterns {
            let body = p.strip_suffix(".*").unwrap_or(p);
            let valid = p == "*"
                || (!body.is_empty()
                    && body.split('.').all(|part| {
                        !part.is_empty()
                            && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }));
            if !valid {
                return Err(format!(
                    "`{p}` is not an event kind: use e.g. \"call.answered\", \"call.*\" or \"*\" (see docs/events.md)"
                ));
            }
        }
        Ok(KindFilter(patterns.to_vec()))
    }

    /// Whether `kind` passes.
    pub fn accepts(&self, kind: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| {
                p == "*"
                    || p == kind
                    || p.strip_suffix(".*").is_some_and(|family| {
                        kind.strip_prefix(family)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
            })
    }
}

/// The `kind` of a stored event job's payload.
pub(crate) fn kind_of(payload: &Value) -> Result<String, String> {
    payload
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "event job without a `kind`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_kinds_families_and_everything() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "call.answered", true),
            (&["*"], "agent.status", true),
            (&["call.*"], "call.answered", true),
            (&["call.*"], "callback.done", false),
            (&["call.*"], "agent.status", false),
            (&["agent.status"], "agent.status", true),
            (&["agent.status"], "agent.status.x", false),
            (&["queue.joined", "agent.*"], "agent.status", true),
        ];
        for (patterns, kind, expected) in cases {
            let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
            let filter = KindFilter::new(&patterns).unwrap();
            assert_eq!(filter.accepts(kind), *expected, "{patterns:?} vs {kind}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_an_example() {
        for bad in [
            "",
            "Call.answered",
            "call.",
            "call.**",
            ".*",
            "call answered",
        ] {
            let err = KindFilter::new(&[bad.to_owned()]).unwrap_err();
            assert!(err.contains("call.*"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_event_job_is_keyed_by_the_event_id() {
        let now = Utc::now();
        let event =
            serde_json::json!({"v": 1, "id": "e1", "kind": "call.answered", "call_id": "c1"});
        let job = event_job("hook", event.clone(), Some("c1"), now).unwrap();
        assert_eq!(job.idempotency_key, "hook:event:e1");
        assert_eq!(job.step, "event");
        assert_eq!(job.payload, event);
        assert_eq!(kind_of(&job.payload).unwrap(), "call.answered");
        assert!(event_job("hook", serde_json::json!({"kind": "x"}), None, now).is_none());
    }
}
