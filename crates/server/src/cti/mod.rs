//! The CTI server: the live side of the operator panel.
//!
//! - [`Hub`]: one task that receives the call tracker's effects and PBX facts from every
//!   pipeline, runs agent presence ([`cti_core::agents::Presence`]), turns both into numbered
//!   panel events, keeps the recent ones for resume, and fans each one out only to the sockets
//!   allowed to see it (an agent: calls they rang or talked on, their tasks, everyone's
//!   availability; a supervisor or admin: everything). Commands from panels go back through it
//!   to the PBX via [`PbxControl`].
//! - `ws`: the WebSocket endpoint `/api/v1/ws` (protocol in `docs/ws-protocol.md`).
//! - `rest`: the panel's REST calls (customers, recent and missed calls, agents, recordings).
//! - `panel`: the embedded web panel (`web/`) with its security headers.
//!
//! What it is not: it does not track calls (the core does) and speaks no PBX protocol (the
//! binary implements [`PbxControl`] on top of the AMI client).

mod hub;
mod panel;
pub(crate) mod protocol;
mod rest;
mod ws;

use std::future::Future;
use std::pin::Pin;

pub(crate) use hub::Viewer;
pub use hub::{new_call_id, wall_micros, Hub, HubItem, HubStats};
pub(crate) use panel::router as panel_router;
pub(crate) use rest::{call_involves, router as rest_router};
pub(crate) use ws::router as ws_router;

/// A command for the PBX, already resolved to channel names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxCommand {
    /// Click-to-call: ring `agent_channel` (the agent's phone) first, then dial `number` in
    /// `context`.
    Originate {
        /// The agent's phone, e.g. `PJSIP/101`.
        agent_channel: String,
        /// What to dial once the agent answers.
        number: String,
        /// The dialplan context that dials out.
        context: String,
        /// Caller ID shown on the agent's phone while it rings.
        caller_id: String,
        /// Ring timeout of the agent's phone, milliseconds.
        timeout_ms: u64,
        /// `ChannelId`: the Uniqueid, hence the call id, the call will have. Set when the
        /// caller must know the call before it exists (a CRM's click-to-call).
        channel_id: Option<String>,
    },
    /// Hang up a channel.
    Hangup {
        /// The channel.
        channel: String,
    },
    /// Blind transfer of the party bridged with `channel` to `exten@context` (`BlindTransfer`).
    BlindTransfer {
        /// The transferring agent's leg.
        channel: String,
        /// Target extension or number.
        exten: String,
        /// Dialplan context.
        context: String,
    },
    /// Attended transfer started from `channel` (`Atxfer`).
    AttendedTransfer {
        /// The transferring agent's leg.
        channel: String,
        /// Target extension or number.
        exten: String,
        /// Dialplan context.
        context: String,
    },
    /// Send a channel somewhere else in the dialplan (`Redirect`): hold, unhold, redirect
    /// transfers.
    Redirect {
        /// The channel (the customer's).
        channel: String,
        /// Target extension.
        exten: String,
        /// Dialplan context.
        context: String,
    },
    /// Pause or unpause a queue member in every queue (`QueuePause`).
    QueuePause {
        /// The member interface.
        interface: String,
        /// Paused or not.
        paused: bool,
        /// Reason shown in queue logs.
        reason: Option<String>,
    },
}

/// Why a PBX command did not run, in words an operator understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The PBX is not connected right now; nothing happened.
    #[error("the phone system is not connected; try again in a moment")]
    NotConnected,
    /// The PBX refused (no such channel, transfer not possible, ...).
    #[error("the phone system refused: {0}")]
    Rejected(String),
    /// The outcome is unknown (connection lost after sending).
    #[error("the phone system did not confirm; check your phone: {0}")]
    Unknown(String),
}

/// Boxed future returned by [`PbxControl::execute`].
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<(), CommandError>> + Send>>;

/// Executes [`PbxCommand`]s on one PBX (the binary implements it with the AMI client).
pub trait PbxControl: Send + Sync + 'static {
    /// Runs one command.
    fn execute(&self, command: PbxCommand) -> CommandFuture;
}

/// How the hub behaves; from the `[cti]` section of the configuration.
#[derive(Debug, Clone)]
pub struct CtiConfig {
    /// Agent presence (away reasons, after-call work).
    pub presence: cti_core::agents::PresenceConfig,
    /// Dialplan context for click-to-call and for transfers to outside numbers.
    pub dial_context: String,
    /// Dialplan context for transfers to agents' extensions.
    pub transfer_context: String,
    /// How an agent's phone is addressed for click-to-call: `{extension}` is replaced.
    pub phone_channel: String,
    /// Hold by redirecting the customer to `hold_context`/`hold_exten`; unhold redirects them
    /// to `hold_context`/<agent extension>.
    pub hold_context: String,
    /// The music-on-hold extension in `hold_context`.
    pub hold_exten: String,
    /// Caller ID shown on the agent's phone for click-to-call.
    pub originate_caller_id: String,
    /// Seconds between heartbeats on each socket.
    pub heartbeat_secs: u64,
    /// Events kept for resume.
    pub replay_events: usize,
    /// How long a screen pop waits for the directory before it is sent without a card, ms.
    pub lookup_timeout_ms: u64,
    /// Instructions shown for calls on a line (DID, E.164).
    pub line_instructions: std::collections::BTreeMap<String, String>,
    /// Instructions shown for customers of a segment.
    pub segment_instructions: std::collections::BTreeMap<String, String>,
    /// Disposition codes offered at wrap-up.
    pub dispositions: Vec<String>,
    /// CSP `frame-ancestors` sources allowed to embed the panel (`'self'`, CRM origins).
    pub frame_ancestors: Vec<String>,
    /// Recordings are served only from inside this directory (`None`: playback is off).
    pub recordings_dir: Option<std::path::PathBuf>,
}

impl Default for CtiConfig {
    fn default() -> Self {
        Self {
            presence: cti_core::agents::PresenceConfig::default(),
            dial_context: "outbound".to_owned(),
            transfer_context: "internal".to_owned(),
            phone_channel: "PJSIP/{extension}".to_owned(),
            hold_context: "cti-hold".to_owned(),
            hold_exten: "hold".to_owned(),
            originate_caller_id: "Kommutator".to_owned(),
            heartbeat_secs: 15,
            replay_events: 20_000,
            lookup_timeout_ms: 300,
            line_instructions: Default::default(),
            segment_instructions: Default::default(),
            dispositions: ["sale", "question", "complaint", "callback", "other"]
                .map(str::to_owned)
                .to_vec(),
            frame_ancestors: vec!["'self'".to_owned()],
            recordings_dir: None,
        }
    }
}
