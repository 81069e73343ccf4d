//! A fake Asterisk 22 that speaks real AMI over TCP, for tests, benchmarks and the demo.
//!
//! Every call it plays is rendered from a real capture of Asterisk 22.10.1
//! (`scenarios/asterisk-22.10.1/`): the same frames, in the same order, with the same fields,
//! byte for byte, except for what identifies the call (Uniqueids, channel sequence numbers,
//! bridge ids, times, caller, DID, agent).
//! On top of that it answers the AMI actions a CTI server sends (Login, Ping, CoreShowChannels,
//! QueueStatus, QueuePause, Originate, transfers, Hangup, ...) the way Asterisk does, and records
//! them so tests can assert what a client sent.
//!
//! It is not a PBX: it has no dialplan, no media, and it does not invent call flows the
//! captures do not contain. An agent paused through `QueuePause` is reported paused, but a
//! scripted queue call still rings the agents its capture rang.
//!
//! Entry points: [`Simulator`] and [`run`] for the TCP server, [`SimulatorHandle`] to drive it,
//! [`Script`] and [`LoadProfile`] to start calls, [`render_trace`] to render a whole load run
//! to bytes without a socket.

mod live;
mod scenario;
mod script;
mod server;
mod template;
mod time;
mod trace;

pub use live::{MemberConfig, QueueConfig};
pub use scenario::{
    scenario_for_did, CallParams, Category, Direction, Mix, Scenario, TransferTrigger, Variant,
};
pub use script::{Script, ScriptError, ScriptStep};
pub use server::{
    run, ActionRecord, AmiUser, CallId, LoadProfile, LoadRun, OriginateRecord, QueuePauseRecord,
    Simulator, SimulatorConfig, SimulatorHandle,
};
pub use time::SimClock;
pub use trace::{render_trace, render_trace_to, TraceOptions, TraceStats};

/// Errors of the simulator's public API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A call parameter cannot be put on the wire.
    #[error("invalid {what}: {reason}")]
    InvalidParam {
        what: &'static str,
        reason: &'static str,
    },
    /// The simulator has been shut down.
    #[error("the simulator is shut down")]
    ShutDown,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
