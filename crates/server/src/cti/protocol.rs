//! The panel protocol's wire types, version [`VERSION`]: what the server sends on
//! `/api/v1/ws` and what it accepts. Documented with an example of every message in
//! `docs/ws-protocol.md`; a change here is a change there.
//!
//! Every server message is one JSON object with `"type"`; events that can be replayed also
//! carry `"seq"`, increasing across the server (an agent sees gaps: other agents' events).

use serde::{Deserialize, Serialize};

/// Protocol version; a client that speaks another one is told so in `hello`.
pub const VERSION: u32 = 1;

/// A call as the panel shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallView {
    pub id: String,
    pub direction: &'static str,
    /// E.164, or the extension of an internal party.
    pub number: Option<String>,
    /// The number formatted for display (`+7 916 123-45-67`).
    pub number_display: Option<String>,
    /// The caller ID name the PBX presented (untrusted text).
    pub caller_name: Option<String>,
    /// The line (DID) the call came in on, E.164.
    pub line: Option<String>,
    pub queue: Option<String>,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub outcome: Option<&'static str>,
    /// Who talks with the customer now (extension), if anyone.
    pub agent: Option<String>,
    /// Every extension offered the call.
    pub agents_rang: Vec<String>,
    pub on_hold: bool,
    pub talk_s: f64,
    pub hold_s: f64,
    pub route_reason: Option<String>,
    pub recording: bool,
}

/// A directory card for the screen pop (all text untrusted: insert as text).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustomerCard {
    pub id: i64,
    pub name: String,
    pub company: Option<String>,
    pub responsible: Option<String>,
    pub segment: Option<String>,
    pub tags: Vec<String>,
    pub blacklisted: bool,
    pub debtor: bool,
    pub region: Option<String>,
    pub notes: Option<String>,
    pub phones: Vec<String>,
    /// The customer's own instructions, then the segment's, then the line's.
    pub instructions: Vec<String>,
    pub last_calls: Vec<InteractionView>,
    pub open_tasks: Vec<TaskView>,
}

/// One earlier call with the customer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InteractionView {
    pub call_id: String,
    pub at: String,
    pub direction: &'static str,
    pub outcome: Option<&'static str>,
    pub agent: Option<String>,
    pub disposition: Option<String>,
    pub notes: Option<String>,
}

/// A task (missed-call callback).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskView {
    pub id: i64,
    pub kind: String,
    pub status: &'static str,
    pub phone: Option<String>,
    pub phone_display: Option<String>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub assignee: Option<String>,
    pub call_id: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub note: Option<String>,
}

/// An agent as the transfer list and the dashboard show them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentView {
    pub login: String,
    pub display_name: String,
    pub extensions: Vec<String>,
    pub status: &'static str,
    pub reason: Option<String>,
    pub since: String,
    /// After-call work end, when in after-call work.
    pub until: Option<String>,
    /// Talking on a call now.
    pub on_call: bool,
}

/// Calls and agents per snapshot frame. Why: a socket's write buffer keeps the capacity of the
/// largest frame it ever sent, so one 170 KB snapshot of a 1,000-agent team would cost every
/// panel 170 KB for as long as it stays connected; pieces of about 16 KB keep that small.
pub const SNAPSHOT_CHUNK: usize = 64;

/// Server → client messages.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        v: u32,
        user: UserView,
        /// The newest event number; resume from here after a disconnect.
        seq: u64,
        /// True when the missed events since `since` were replayed right after this message.
        resumed: bool,
        heartbeat_s: u64,
        away_reasons: Vec<String>,
        dispositions: Vec<String>,
        after_call_work_s: i64,
        server_time: String,
    },
    /// Everything live now, sent when a connection does not (or cannot) resume. Large lists
    /// come in pieces: the first [`SNAPSHOT_CHUNK`] calls and agents here, the rest in
    /// `snapshot_more` frames right after it; `more` says whether one follows.
    Snapshot {
        seq: u64,
        calls: Vec<CallView>,
        agents: Vec<AgentView>,
        more: bool,
    },
    /// The next piece of a snapshot's lists (added to them, not replacing them).
    SnapshotMore {
        calls: Vec<CallView>,
        agents: Vec<AgentView>,
        more: bool,
    },
    /// Screen pop: `agent`'s phone rings for `call`.
    Ringing {
        seq: u64,
        call: CallView,
        agent: String,
        queue: Option<String>,
        /// Every directory customer with this number (several when the number is shared).
        customers: Vec<CustomerCard>,
        /// Line instructions when no customer matched.
        instructions: Vec<String>,
        /// `found`, `not_found`, `no_number` or `timeout`.
        lookup: &'static str,
        /// When the PBX event reached the server (ms since the epoch).
        received_at_ms: i64,
    },
    RingEnded {
        seq: u64,
        call_id: String,
        agent: String,
        how: &'static str,
    },
    Answered {
        seq: u64,
        call: CallView,
        agent: Option<String>,
    },
    Held {
        seq: u64,
        call: CallView,
    },
    Unheld {
        seq: u64,
        call: CallView,
    },
    Transferred {
        seq: u64,
        call: CallView,
        from: Option<String>,
        to: String,
        kind: &'static str,
    },
    /// Any other change of the call (caller identified, queued, recording started).
    CallUpdated {
        seq: u64,
        call: CallView,
        what: &'static str,
    },
    /// The agent is no longer on the call (wrap-up may start).
    AgentLeft {
        seq: u64,
        call_id: String,
        agent: String,
    },
    Ended {
        seq: u64,
        call: CallView,
    },
    AgentStatus {
        seq: u64,
        agent: AgentView,
        source: &'static str,
    },
    MissedCall {
        seq: u64,
        task: TaskView,
        call: CallView,
    },
    TaskUpdated {
        seq: u64,
        task: TaskView,
    },
    /// Progress of a click-to-call (`dialing`, `failed`).
    DialProgress {
        id: Option<String>,
        state: &'static str,
        number: String,
        message: Option<String>,
    },
    /// The answer to a client command with an `id`.
    CommandResult {
        id: Option<String>,
        ok: bool,
        error: Option<ErrorView>,
    },
    Heartbeat {
        seq: u64,
        server_time: String,
    },
    Pong {
        id: Option<String>,
    },
    Error {
        error: ErrorView,
    },
}

/// The logged-in user, in `hello`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserView {
    pub login: String,
    pub display_name: String,
    pub role: &'static str,
    pub extensions: Vec<String>,
}

/// An error with a stable code and a message in words.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorView {
    pub code: &'static str,
    pub message: String,
}

/// Where a transfer goes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferTarget {
    /// Another agent, by login.
    Agent(String),
    /// A number or extension.
    Number(String),
}

/// Client → server messages.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Ping {
        #[serde(default)]
        id: Option<String>,
    },
    SetStatus {
        #[serde(default)]
        id: Option<String>,
        /// `available`, `away`, `after_call_work` or `offline`.
        status: String,
        #[serde(default)]
        reason: Option<String>,
        /// A supervisor may set another agent's status.
        #[serde(default)]
        agent: Option<String>,
    },
    ExtendWrapup {
        #[serde(default)]
        id: Option<String>,
        seconds: u32,
    },
    Dial {
        #[serde(default)]
        id: Option<String>,
        number: String,
        /// The callback task this call answers (closes when the customer is reached).
        #[serde(default)]
        task_id: Option<i64>,
    },
    Hangup {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
    },
    Transfer {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
        to: TransferTarget,
        /// `blind` (default) or `attended`.
        #[serde(default)]
        kind: Option<String>,
    },
    Hold {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
    },
    Unhold {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
    },
    Wrapup {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
        #[serde(default)]
        disposition: Option<String>,
        #[serde(default)]
        notes: Option<String>,
    },
}

impl ClientMessage {
    /// The client's command id, echoed in the result.
    pub fn id(&self) -> Option<String> {
        match self {
            Self::Ping { id }
            | Self::SetStatus { id, .. }
            | Self::ExtendWrapup { id, .. }
            | Self::Dial { id, .. }
            | Self::Hangup { id, .. }
            | Self::Transfer { id, .. }
            | Self::Hold { id, .. }
            | Self::Unhold { id, .. }
            | Self::Wrapup { id, .. } => id.clone(),
        }
    }
}

/// Formats an E.164 number for people: `+79161234567` → `+7 916 123-45-67`,
/// `+15551230001` → `+1 555 123-0001`; anything else is returned as is.
pub fn display_number(number: &str) -> String {
    let Some(digits) = number.strip_prefix('+') else {
        return number.to_owned();
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return number.to_owned();
    }
    match (digits.as_bytes().first(), digits.len()) {
        (Some(b'7'), 11) => format!(
            "+7 {} {}-{}-{}",
            &digits[1..4],
            &digits[4..7],
            &digits[7..9],
            &digits[9..11]
        ),
        (Some(b'1'), 11) => format!("+1 {} {}-{}", &digits[1..4], &digits[4..7], &digits[7..11]),
        _ => number.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_display() {
        for (raw, shown) in [
            ("+79161234567", "+7 916 123-45-67"),
            ("+15551230001", "+1 555 123-0001"),
            ("+442071234567", "+442071234567"),
            ("101", "101"),
            ("+7abc", "+7abc"),
        ] {
            assert_eq!(display_number(raw), shown);
        }
    }

    #[test]
    fn client_messages_parse_and_reject_unknown_fields() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"transfer","id":"7","call_id":"1.2","to":{"agent":"boris"},"kind":"blind"}"#,
        )
        .unwrap();
        assert_eq!(msg.id().as_deref(), Some("7"));
        assert!(serde_json::from_str::<ClientMessage>(
            r#"{"type":"hangup","call_id":"x","evil":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"format_disk"}"#).is_err());
    }
}
