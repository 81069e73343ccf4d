//! Agents as the CTI panel sees them: their availability ([`Presence`]) and, per call, which
//! PBX channel is whose ([`ChannelBook`]), so panel commands (transfer, hold, hang up) can name
//! the right channel.
//!
//! What it is: two pure state machines fed with inputs and the current time, returning effects.
//! What it is not: it sends nothing to the PBX and stores nothing; the server turns
//! [`PresenceEffect::PauseMember`] into a `QueuePause` action and status changes into history
//! rows and panel messages.

mod channels;
mod presence;

pub use channels::{extension_of_channel, CallChannels, ChannelBook};
pub use presence::{
    AgentId, AgentSetup, AgentState, AgentStatus, ChangeSource, MemberPauseState, Membership,
    Presence, PresenceConfig, PresenceEffect, PresenceInput, RequestedStatus, StatusOrigin,
};
