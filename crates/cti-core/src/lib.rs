//! The pure core of Kommutator: the call tracker that turns normalized PBX signalling into
//! one truthful record per customer call.
//!
//! What it is: plain data types ([`PbxEvent`], [`CallRecord`], [`Effect`]) and a state machine
//! ([`CallTracker`]) driven by `apply(event, now) -> Vec<Effect>`. Time is always a parameter.
//!
//! What it is not: it does no I/O, reads no clock, spawns nothing and depends on no other crate
//! of ours (nor on any external crate). Adapters (`pbx-ami`, later ARI and cloud PBXs) translate
//! their wire formats into [`PbxEvent`]s; sinks turn [`Effect`]s into storage rows, panel
//! messages and CRM requests. Serialization lives in those adapters and sinks, not here.

pub mod agents;
mod channel;
mod config;
mod event;
mod fxhash;
mod ids;
pub mod kpi;
mod number;
mod record;
pub mod routing;
mod time;
mod tracker;

pub use channel::{ChannelName, LocalHalf};
pub use config::{AttributionRule, TrackerConfig};
pub use event::{
    AgentCompleteReason, AttendedTransferInfo, BlindTransferInfo, ChanRef, ChannelState,
    DialStatus, DialplanApp, LiveChannel, PbxEvent, QueueMember,
};
pub use ids::{BridgeId, CallId, Extension, LinkedId, QueueName, Uniqueid};
pub use number::{classify_number, NumberKind, PhoneNumber};
pub use record::{
    AgentTalk, CallRecord, Direction, Outcome, Recording, TalkSegment, Transfer, TransferKind,
};
pub use time::Timestamp;
pub use tracker::{close_orphan, CallTracker, Effect, RingEnd, UpdateReason};
