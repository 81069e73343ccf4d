//! Identifier newtypes, closed value sets and timestamp conversion shared by all tables.
//!
//! These are storage DTO types: plain data the rest of the system converts to and from its own
//! domain types explicitly. They carry no behaviour beyond parsing their stored form.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::StorageError;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// Row id of a user (agent, supervisor, admin).
    UserId
);
int_id!(
    /// Row id of a customer in the built-in directory.
    CustomerId
);
int_id!(
    /// Row id of a task (e.g. a missed-call callback).
    TaskId
);
int_id!(
    /// Row id of an outbox job.
    JobId
);
int_id!(
    /// Row id of an API token.
    ApiTokenId
);

/// The id of a call: the PBX's identity of the customer interaction (Asterisk: the Linkedid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub String);

impl CallId {
    /// Wraps a call id string.
    pub fn new(id: impl Into<String>) -> Self {
        CallId(id.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the stored spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub(crate) fn decode(text: &str) -> Result<Self, StorageError> {
                Self::parse(text).ok_or_else(|| {
                    StorageError::corrupt(format!("unknown {} {:?} in the database", $what, text))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a user may see and do.
    Role, "role" {
        /// Sees only their own calls, customers and tasks.
        Agent = "agent",
        /// Sees everything, manages nothing.
        Supervisor = "supervisor",
        /// Sees and manages everything.
        Admin = "admin",
    }
);

text_enum!(
    /// Direction of a call, seen from the company.
    Direction, "call direction" {
        /// A customer called us.
        Inbound = "inbound",
        /// We called a customer (including click-to-call).
        Outbound = "outbound",
        /// Agent to agent.
        Internal = "internal",
    }
);

text_enum!(
    /// Final outcome of a call; absent while the call is live.
    Outcome, "call outcome" {
        /// Someone talked with the customer.
        Answered = "answered",
        /// Nobody answered.
        Missed = "missed",
        /// The caller hung up while waiting.
        Abandoned = "abandoned",
        /// The other side was busy.
        Busy = "busy",
        /// The call failed (congestion, unreachable, error).
        Failed = "failed",
        /// The call ended in voicemail.
        Voicemail = "voicemail",
    }
);

text_enum!(
    /// Lifecycle of a task.
    TaskStatus, "task status" {
        /// Waiting for someone to act.
        Open = "open",
        /// Done (e.g. the customer was reached).
        Done = "done",
        /// Withdrawn without being done.
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// Lifecycle of an outbox job.
    JobStatus, "outbox job status" {
        /// Waiting for `next_attempt_at`.
        Pending = "pending",
        /// Claimed by a worker until `locked_until`.
        InFlight = "in_flight",
        /// Delivered.
        Done = "done",
        /// Given up after the maximum age; an administrator may retry or discard it.
        Dead = "dead",
        /// Discarded by an administrator; kept so the idempotency key is never reused.
        Discarded = "discarded",
    }
);

/// Task kind used for missed-call callbacks.
pub const TASK_KIND_CALLBACK: &str = "callback";

/// Converts a timestamp to its stored form: microseconds since the Unix epoch, UTC.
///
/// Sub-microsecond precision is truncated; every stored timestamp round-trips at microseconds.
pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Converts a stored timestamp back; `None` only for values outside chrono's range.
pub fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

pub(crate) fn opt_micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(to_micros)
}
