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
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pbx_simulator::{CallParams, LoadProfile, Mix, Scenario, Simulator, SimulatorConfig};
//!
//! // Logins: `cti` / `cti-secret` (every event) and `cti_filtered` (no VarSet).
//! let sim = Simulator::start(SimulatorConfig::default(), "127.0.0.1:5038").await?;
//! let handle = sim.handle().clone();
//! handle
//!     .start_call(
//!         Scenario::QueueAnswered,
//!         CallParams {
//!             caller: Some("+79161234567".into()),
//!             caller_name: Some("Ivan Petrov".into()),
//!             ..CallParams::default()
//!         },
//!     )
//!     .expect("valid parameters");
//! let load = handle.run_load(LoadProfile {
//!     calls_per_sec: 0.5,
//!     total_calls: Some(100),
//!     mix: Mix::standard(),
//!     callers: vec!["+79161234567".into()],
//!     seed: 1,
//! });
//! load.finished().await;
//! handle.wait_idle().await;
//! println!("originates received: {}", handle.originate_log().len());
//! sim.shutdown().await
//! # }
//! ```
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
    SentFrame, Simulator, SimulatorConfig, SimulatorHandle,
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
