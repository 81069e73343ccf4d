//! The call as connectors see it: a serializable snapshot of a [`CallRecord`] stored in the
//! job payload, so a job can be delivered after a restart without the tracker's state.
//!
//! The customer's number is normalized here, once, with `directory::phone` in the configured
//! region; connectors format it for their CRM from the E.164 form.
//! This is not the storage or API DTO of a call; it carries only what connectors use.

use chrono::{DateTime, Utc};
use cti_core::{CallRecord, Direction, Outcome};
use directory::phone::{normalize, Normalized, Region, E164};
use serde::{Deserialize, Serialize};

/// Version of [`JobPayload`]; a worker refuses payloads from a newer version.
pub const PAYLOAD_VERSION: u32 = 1;

/// What is stored in `outbox.payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// [`PAYLOAD_VERSION`] at enqueue time.
    pub v: u32,
    /// The call as it was when the job was planned.
    pub call: CallDto,
}

/// How the customer's number was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// A phone number in E.164: `customer_number` is `+` and digits.
    E164,
    /// An internal extension.
    Extension,
    /// Withheld or not sent.
    Withheld,
    /// Anything else (a SIP URI, an invalid number), kept as received.
    Other,
}

/// A call snapshot for connectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDto {
    /// Kommutator's call id (the first Linkedid), also the CRMs' external call id.
    pub call_id: String,
    /// `inbound`, `outbound` or `internal`.
    pub direction: String,
    /// The outside party: E.164 (`+79161234567`) when [`NumberKind::E164`].
    pub customer_number: Option<String>,
    /// What `customer_number` is.
    pub customer_kind: NumberKind,
    /// Caller ID name.
    pub customer_name: Option<String>,
    /// The company line (DID called or number presented).
    pub line: Option<String>,
    /// First channel seen.
    pub started_at: DateTime<Utc>,
    /// First answer.
    pub answered_at: Option<DateTime<Utc>>,
    /// End; `None` while the call lasts.
    pub ended_at: Option<DateTime<Utc>>,
    /// `answered`, `missed`, `abandoned`, `busy`, `failed`, `voicemail`; `None` while it lasts.
    pub outcome: Option<String>,
    /// The agent (extension) the call is attributed to.
    pub agent: Option<String>,
    /// The first agent who answered.
    pub answered_by: Option<String>,
    /// The agent whose phone placed an outbound call.
    pub originator: Option<String>,
    /// Every agent the call was offered to.
    pub agents_rang: Vec<String>,
    /// First queue.
    pub queue: Option<String>,
    /// Wait before answer (or until the end), whole seconds, rounded.
    pub wait_secs: i64,
    /// Talk time, whole seconds, rounded.
    pub talk_secs: i64,
    /// Hold time, whole seconds, rounded.
    pub hold_secs: i64,
    /// Recording link, when the call was recorded and a link template is configured.
    pub recording_url: Option<String>,
    /// Q.850 cause of the customer's hangup.
    pub hangup_cause: Option<u16>,
    /// Some events were not seen (resync, timeout, reconnect mid-call).
    pub degraded: bool,
}

fn to_utc(t: cti_core::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.as_micros()).unwrap_or_default()
}

fn rounded_secs(us: i64) -> i64 {
    (us + 500_000).div_euclid(1_000_000)
}

impl CallDto {
    /// Snapshot of a record; the customer number is normalized in `region`.
    pub fn from_record(record: &CallRecord, region: Region) -> CallDto {
        let (customer_number, customer_kind) = match &record.customer_number {
            None => (None, NumberKind::Withheld),
            Some(number) => match normalize(&number.text, region) {
                Normalized::E164(e164) => (Some(e164.to_string()), NumberKind::E164),
                Normalized::Extension(text) => (Some(text), NumberKind::Extension),
                Normalized::Withheld => (None, NumberKind::Withheld),
                Normalized::Other(text) => (Some(text), NumberKind::Other),
            },
        };
        CallDto {
            call_id: record.call_id.to_string(),
            direction: record.direction.as_str().to_owned(),
            customer_number,
            customer_kind,
            customer_name: record.customer_name.clone(),
            line: record.line.as_ref().map(|n| n.text.clone()),
            started_at: to_utc(record.started_at),
            answered_at: record.answered_at.map(to_utc),
            ended_at: record.ended_at.map(to_utc),
            outcome: record.outcome.map(|o| o.as_str().to_owned()),
            agent: record.agent.as_ref().map(ToString::to_string),
            answered_by: record.answered_by.as_ref().map(ToString::to_string),
            originator: record.originator.as_ref().map(ToString::to_string),
            agents_rang: record.agents_rang.iter().map(ToString::to_string).collect(),
            queue: record.queue.as_ref().map(ToString::to_string),
            wait_secs: rounded_secs(record.wait_us),
            talk_secs: rounded_secs(record.talk_us),
            hold_secs: rounded_secs(record.hold_us),
            recording_url: record.recording.as_ref().and_then(|r| r.url.clone()),
            hangup_cause: record.hangup_cause,
            degraded: record.degraded,
        }
    }

    /// The customer's number when it is a phone number.
    pub fn customer_e164(&self) -> Option<E164> {
        match self.customer_kind {
            NumberKind::E164 => self.customer_number.as_deref().and_then(E164::parse),
            _ => None,
        }
    }

    /// True for calls that came in from outside.
    pub fn is_inbound(&self) -> bool {
        self.direction == Direction::Inbound.as_str()
    }

    /// True when someone talked with the customer.
    pub fn is_answered(&self) -> bool {
        self.outcome.as_deref() == Some(Outcome::Answered.as_str())
    }

    /// True for an inbound call nobody answered (missed, abandoned, or sent to voicemail).
    pub fn is_missed_inbound(&self) -> bool {
        self.is_inbound()
            && matches!(
                self.outcome.as_deref(),
                Some("missed") | Some("abandoned") | Some("voicemail")
            )
    }

    /// The agent to credit in a CRM: the attributed agent, else the first who answered, else
    /// the originator of an outbound call, else the first agent who rang.
    pub fn responsible_agent(&self) -> Option<&str> {
        self.agent
            .as_deref()
            .or(self.answered_by.as_deref())
            .or(self.originator.as_deref())
            .or(self.agents_rang.first().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_the_nearest_second() {
        assert_eq!(rounded_secs(0), 0);
        assert_eq!(rounded_secs(499_999), 0);
        assert_eq!(rounded_secs(500_000), 1);
        assert_eq!(rounded_secs(148_400_000), 148);
    }
}
