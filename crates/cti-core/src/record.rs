//! The call record: what one customer interaction was, as storage, the CTI panel, CRM logging
//! and reports all see it.

use std::fmt;

use crate::ids::{CallId, Extension, QueueName, Uniqueid};
use crate::number::PhoneNumber;
use crate::time::Timestamp;

/// Which way the call went, from the company's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The customer called in (the first leg came from a trunk).
    Inbound,
    /// An agent called out (the first leg was a phone, then an outside party was dialled).
    Outbound,
    /// Agent to agent; no outside party took part.
    Internal,
}

/// How the call ended for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Someone talked with the customer (an agent, the callee of an outbound call, or an ARI
    /// application that answered).
    Answered,
    /// Offered to at least one agent (or dialled out), nobody answered.
    Missed,
    /// The caller hung up while waiting, before any agent was offered the call.
    Abandoned,
    /// The callee was busy.
    Busy,
    /// The call could not be set up (congestion, unavailable channel, network failure).
    Failed,
    /// The caller reached voicemail.
    Voicemail,
}

impl Direction {
    /// Lower-case name used in records and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Internal => "internal",
        }
    }
}

impl Outcome {
    /// Lower-case name used in records and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Missed => "missed",
            Self::Abandoned => "abandoned",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::Voicemail => "voicemail",
        }
    }
}

/// How a call moved from one agent to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// `BlindTransfer`: the agent sent the caller to an extension without talking to it first.
    Blind,
    /// `AttendedTransfer`: the agent consulted the target, then joined the caller to it.
    Attended,
    /// The caller left one agent and reached another with no transfer event: AMI `Redirect`,
    /// or dialplan routing.
    Redirect,
}

impl TransferKind {
    /// Lower-case name used in records and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blind => "blind",
            Self::Attended => "attended",
            Self::Redirect => "redirect",
        }
    }
}

/// One transfer of the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The agent who transferred (or who had the caller before a redirect).
    pub from: Option<Extension>,
    /// Where the caller was sent: the dialled extension (blind), the consulted agent
    /// (attended) or the agent reached (redirect).
    pub to: String,
    /// The agent who then talked with the caller, once known.
    pub to_agent: Option<Extension>,
    /// What kind of transfer.
    pub kind: TransferKind,
    /// When.
    pub at: Timestamp,
}

/// A span during which one agent handled the customer: connected through bridges, or holding
/// the customer while consulting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkSegment {
    /// The agent.
    pub agent: Extension,
    /// Start of the span.
    pub start: Timestamp,
    /// End of the span; `None` while it lasts.
    pub end: Option<Timestamp>,
}

/// One agent's share of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTalk {
    /// The agent.
    pub agent: Extension,
    /// Total talk time, microseconds.
    pub talk_us: i64,
}

/// A recording of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The recorded channel.
    pub uniqueid: Uniqueid,
    /// When it started.
    pub started_at: Timestamp,
    /// The file, when Asterisk told us (`MIXMONITOR_FILENAME`), with the recording directory
    /// added to a bare file name.
    pub path: Option<String>,
    /// The link built from the configured template.
    pub url: Option<String>,
}

/// One customer interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Stable id (the first Linkedid of the family).
    pub call_id: CallId,
    /// Which way the call went.
    pub direction: Direction,
    /// The outside party (the caller of an inbound call, the callee of an outbound call).
    pub customer_number: Option<PhoneNumber>,
    /// The caller ID name the customer presented.
    pub customer_name: Option<String>,
    /// The company line: the DID called (inbound) or the number presented (outbound).
    pub line: Option<PhoneNumber>,
    /// First channel seen.
    pub started_at: Timestamp,
    /// When someone first talked with the customer.
    pub answered_at: Option<Timestamp>,
    /// When the last channel hung up (or the call was closed by resync or timeout).
    pub ended_at: Option<Timestamp>,
    /// The outcome; `None` while the call lasts.
    pub outcome: Option<Outcome>,
    /// The first agent who talked with the customer.
    pub answered_by: Option<Extension>,
    /// The agent the call is attributed to under the configured rule (for outbound calls
    /// without a talking agent: the agent who placed it).
    pub agent: Option<Extension>,
    /// The agent whose phone placed an outbound or internal call.
    pub originator: Option<Extension>,
    /// Every agent the call was offered to, in order of first ring.
    pub agents_rang: Vec<Extension>,
    /// The first queue the call entered.
    pub queue: Option<QueueName>,
    /// Every queue the call entered, in order.
    pub queues: Vec<QueueName>,
    /// Time from start to answer (or to the end when never answered), microseconds.
    pub wait_us: i64,
    /// Time spent in queues, microseconds.
    pub queue_wait_us: i64,
    /// Time the customer spent with agents (hold included), microseconds.
    pub talk_us: i64,
    /// Time the customer spent on hold after being answered, microseconds.
    pub hold_us: i64,
    /// Transfers, in order.
    pub transfers: Vec<Transfer>,
    /// Who handled the customer and when.
    pub segments: Vec<TalkSegment>,
    /// Talk time per agent, in order of first talk.
    pub agent_talk: Vec<AgentTalk>,
    /// The recording, if the call was recorded.
    pub recording: Option<Recording>,
    /// The ARI application that answered the call, if one did.
    pub application: Option<String>,
    /// Closed by a resync or timeout rather than by its own hangups, or picked up mid-call
    /// after a reconnect: some events were not seen.
    pub degraded: bool,
    /// An unanswered inbound call that waited less than the configured threshold.
    pub short_abandon: bool,
    /// The Q.850 cause of the customer's hangup.
    pub hangup_cause: Option<u16>,
    /// The Linkedids merged into this call, in order (the first is the call id).
    pub linkedids: Vec<String>,
}

fn secs(us: i64) -> String {
    format!("{}.{:01}", us / 1_000_000, (us % 1_000_000) / 100_000)
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// A compact, stable, human-readable rendering used by tests and support tools; times are
/// shown relative to `started_at` so renderings of different runs of a scenario compare.
impl fmt::Display for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rel = |t: Timestamp| secs(t.micros_since(self.started_at));
        writeln!(
            f,
            "call {} {} customer={} name={} line={}",
            self.direction.as_str(),
            self.outcome.map_or("open", |o| o.as_str()),
            self.customer_number
                .as_ref()
                .map_or("-", |n| n.text.as_str()),
            opt(&self.customer_name),
            self.line.as_ref().map_or("-", |n| n.text.as_str()),
        )?;
        writeln!(
            f,
            "  answered_by={} agent={} originator={} rang={} queue={} queues={}",
            opt(&self.answered_by),
            opt(&self.agent),
            opt(&self.originator),
            list(&self.agents_rang),
            opt(&self.queue),
            list(&self.queues),
        )?;
        writeln!(
            f,
            "  answered_at={} ended_at={} wait={} queue_wait={} talk={} hold={}",
            self.answered_at.map_or_else(|| "-".to_owned(), rel),
            self.ended_at.map_or_else(|| "-".to_owned(), rel),
            secs(self.wait_us),
            secs(self.queue_wait_us),
            secs(self.talk_us),
            secs(self.hold_us),
        )?;
        writeln!(
            f,
            "  degraded={} short_abandon={} cause={} app={} recording={}",
            self.degraded,
            self.short_abandon,
            opt(&self.hangup_cause),
            opt(&self.application),
            self.recording.as_ref().map_or_else(
                || "-".to_owned(),
                |r| r
                    .url
                    .clone()
                    .or_else(|| r.path.clone())
                    .unwrap_or_else(|| "yes".to_owned())
            ),
        )?;
        for s in &self.segments {
            writeln!(
                f,
                "  segment {} {}..{}",
                s.agent,
                rel(s.start),
                s.end.map_or_else(|| "open".to_owned(), rel)
            )?;
        }
        for t in &self.transfers {
            writeln!(
                f,
                "  transfer {} {}->{} agent={} at={}",
                t.kind.as_str(),
                opt(&t.from),
                t.to,
                opt(&t.to_agent),
                rel(t.at)
            )?;
        }
        Ok(())
    }
}
