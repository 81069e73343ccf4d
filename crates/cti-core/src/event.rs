//! The normalized PBX events the tracker consumes.
//!
//! The set was designed from what real Asterisk 22 captures contain (see
//! `crates/pbx-ami/test_data/`), not from the full AMI catalogue: only what changes a call
//! record or what the CTI panel shows. Each variant carries just the fields the tracker reads,
//! so an adapter allocates little per event. Other PBX adapters (ARI, cloud webhooks) can
//! produce the same events.

use crate::ids::{BridgeId, LinkedId, QueueName, Uniqueid};

/// A reference to a channel as every channel event names it.
///
/// The Linkedid travels with every reference because Asterisk can change it at any time
/// (bridges adopt the oldest Linkedid); the name is kept so the tracker can create a channel it
/// has not seen yet (events out of order, or a missed `Newchannel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChanRef {
    /// The channel's `Uniqueid`: the only stable key of a leg.
    pub uniqueid: Uniqueid,
    /// The channel's current `Linkedid`.
    pub linkedid: LinkedId,
    /// The channel name (`PJSIP/101-0000002a`, `Local/101@agents-00000001;1`); display and
    /// classification only, never a key (names change on masquerade).
    pub name: String,
}

/// Asterisk channel states (`ChannelState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// 0 Down, 1 Rsrvd, 2 OffHook, 3 Dialing, 8 Dialing Offhook, 9 Pre-ring.
    Down,
    /// 4 Ring: the channel is calling (an inbound leg before answer).
    Ring,
    /// 5 Ringing: the far end is alerting.
    Ringing,
    /// 6 Up: answered.
    Up,
    /// 7 Busy.
    Busy,
}

impl ChannelState {
    /// From Asterisk's numeric `ChannelState`; unknown numbers count as `Down`.
    pub fn from_ami_code(code: u32) -> Self {
        match code {
            4 => Self::Ring,
            5 => Self::Ringing,
            6 => Self::Up,
            7 => Self::Busy,
            _ => Self::Down,
        }
    }
}

/// How one dial attempt ended (`DialEnd` `DialStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStatus {
    /// The callee answered.
    Answer,
    /// The callee was busy.
    Busy,
    /// Nobody answered within the timeout.
    NoAnswer,
    /// The dial was cancelled (caller hung up, or another callee answered first).
    Cancel,
    /// Network congestion.
    Congestion,
    /// The channel could not be created (unregistered phone, dead trunk).
    ChanUnavail,
    /// Anything else (`ABORT`, `CONTINUE`, `GOTO`, unknown).
    Other,
}

impl DialStatus {
    /// From the AMI `DialStatus` text (case-insensitive).
    pub fn from_ami(text: &str) -> Self {
        match text.to_ascii_uppercase().as_str() {
            "ANSWER" => Self::Answer,
            "BUSY" => Self::Busy,
            "NOANSWER" => Self::NoAnswer,
            "CANCEL" => Self::Cancel,
            "CONGESTION" => Self::Congestion,
            "CHANUNAVAIL" => Self::ChanUnavail,
            _ => Self::Other,
        }
    }
}

/// A queue member as queue events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMember {
    /// `Interface`, e.g. `PJSIP/101` or `Local/101@agents/nm`.
    pub interface: String,
    /// `MemberName`, e.g. `Agent 101`.
    pub name: String,
}

/// Why a queue call with an agent ended (`AgentComplete` `Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCompleteReason {
    /// The caller hung up.
    Caller,
    /// The agent hung up.
    Agent,
    /// The call was transferred.
    Transfer,
    /// Anything else.
    Other,
}

/// Dialplan applications the tracker cares about, from `Newexten`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialplanApp {
    /// `VoiceMail(...)`: the caller reached a mailbox.
    VoiceMail,
    /// `Stasis(app,...)`: the channel is handed to an ARI application (the name).
    Stasis(String),
}

/// Fields of a successful or failed blind transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindTransferInfo {
    /// Whether Asterisk reported `Result: Success`.
    pub success: bool,
    /// The channel that requested the transfer (usually the agent's leg).
    pub transferer: Option<ChanRef>,
    /// The channel that was transferred (usually the customer).
    pub transferee: Option<ChanRef>,
    /// The dialplan extension the transferee was sent to.
    pub extension: String,
    /// The dialplan context of that extension.
    pub context: String,
}

/// Fields of an attended transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendedTransferInfo {
    /// Whether Asterisk reported `Result: Success`.
    pub success: bool,
    /// The transferer's leg in the original call (with the customer).
    pub orig_transferer: Option<ChanRef>,
    /// The transferer's leg in the consultation call.
    pub second_transferer: Option<ChanRef>,
    /// The party being transferred (usually the customer).
    pub transferee: Option<ChanRef>,
    /// The party the transferee was connected to (the consultation target).
    pub target: Option<ChanRef>,
}

/// One channel from a resync snapshot (`CoreShowChannel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChannel {
    /// The channel.
    pub chan: ChanRef,
    /// Its state at snapshot time.
    pub state: ChannelState,
    /// Caller ID number (`None` for `<unknown>`).
    pub caller_num: Option<String>,
    /// Caller ID name.
    pub caller_name: Option<String>,
    /// The dialplan context at snapshot time.
    pub context: String,
    /// The dialplan extension at snapshot time.
    pub exten: String,
    /// The bridge it is in, if any (`BridgeId`).
    pub bridge: Option<BridgeId>,
    /// How long the channel has existed, in seconds (`Duration`).
    pub age_s: u32,
}

/// A normalized PBX event. Adapters produce these; [`crate::CallTracker::apply`] consumes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxEvent {
    /// A channel appeared (`Newchannel`). `context`/`exten` are where it started, which is how
    /// trunk legs are told from phones, and the exten of an inbound trunk leg is the DID.
    ChannelCreated {
        chan: ChanRef,
        state: ChannelState,
        caller_num: Option<String>,
        caller_name: Option<String>,
        context: String,
        exten: String,
    },
    /// The channel state changed (`Newstate`).
    ChannelStateChanged { chan: ChanRef, state: ChannelState },
    /// The caller ID changed (`NewCallerid`).
    CallerIdChanged {
        chan: ChanRef,
        caller_num: Option<String>,
        caller_name: Option<String>,
    },
    /// The channel was renamed (`Rename`). The Uniqueid stays.
    ChannelRenamed {
        uniqueid: Uniqueid,
        new_name: String,
    },
    /// The two halves of a Local channel were linked (`LocalBridge`).
    LocalPair { one: ChanRef, two: ChanRef },
    /// A dial attempt started (`DialBegin`). `caller` is absent for an AMI Originate's first
    /// leg; `caller_num` is the number the caller presents (the line of an outbound call).
    DialBegin {
        caller: Option<ChanRef>,
        caller_num: Option<String>,
        dest: ChanRef,
        dial_string: String,
    },
    /// A dial attempt ended (`DialEnd`).
    DialEnd {
        caller: Option<ChanRef>,
        dest: ChanRef,
        status: DialStatus,
    },
    /// The channel entered a bridge (`BridgeEnter`).
    BridgeEnter { chan: ChanRef, bridge: BridgeId },
    /// The channel left a bridge (`BridgeLeave`).
    BridgeLeave { chan: ChanRef, bridge: BridgeId },
    /// All members of bridge `from` moved into bridge `to` (`BridgeMerge`).
    BridgeMerge { from: BridgeId, to: BridgeId },
    /// The channel is gone (`Hangup`), with its Q.850 cause.
    Hangup { chan: ChanRef, cause: u16 },
    /// The caller entered a queue (`QueueCallerJoin`).
    QueueCallerJoin { chan: ChanRef, queue: QueueName },
    /// The caller left a queue, answered or not (`QueueCallerLeave`).
    QueueCallerLeave { chan: ChanRef, queue: QueueName },
    /// The caller hung up while waiting in a queue (`QueueCallerAbandon`).
    QueueCallerAbandon {
        chan: ChanRef,
        queue: QueueName,
        hold_time_s: u32,
    },
    /// A queue rings a member (`AgentCalled`).
    AgentCalled {
        caller: ChanRef,
        dest: ChanRef,
        queue: QueueName,
        member: QueueMember,
    },
    /// A member's phone rang out (`AgentRingNoAnswer`; ring time in milliseconds).
    AgentRingNoAnswer {
        caller: ChanRef,
        dest: ChanRef,
        queue: QueueName,
        member: QueueMember,
        ring_time_ms: u64,
    },
    /// A member answered a queue call (`AgentConnect`).
    AgentConnect {
        caller: ChanRef,
        dest: ChanRef,
        queue: QueueName,
        member: QueueMember,
        hold_time_s: u32,
    },
    /// A queue call with a member ended (`AgentComplete`). Its `TalkTime` is Asterisk's view;
    /// the tracker measures talk time from bridges, because after an AMI Redirect this event
    /// only arrives when the whole call ends.
    AgentComplete {
        caller: ChanRef,
        dest: Option<ChanRef>,
        queue: QueueName,
        member: QueueMember,
        talk_time_s: u32,
        reason: AgentCompleteReason,
    },
    /// A phone put the call on hold (`Hold`), raised on the holding party's channel.
    Hold { chan: ChanRef },
    /// The hold ended (`Unhold`).
    Unhold { chan: ChanRef },
    /// The channel started hearing music on hold (`MusicOnHoldStart`).
    MusicOnHoldStart { chan: ChanRef },
    /// The music on hold stopped (`MusicOnHoldStop`).
    MusicOnHoldStop { chan: ChanRef },
    /// A recording started on the channel (`MixMonitorStart`).
    MixMonitorStart { chan: ChanRef },
    /// The recording's file name became known (`VarSet MIXMONITOR_FILENAME`).
    RecordingFile { chan: ChanRef, file: String },
    /// A blind transfer happened (`BlindTransfer`).
    BlindTransfer(BlindTransferInfo),
    /// An attended transfer happened (`AttendedTransfer`).
    AttendedTransfer(AttendedTransferInfo),
    /// The channel entered a dialplan application the tracker cares about (`Newexten`).
    AppStarted { chan: ChanRef, app: DialplanApp },
    /// A dialplan `UserEvent` tied to a channel, with its custom headers.
    UserEvent {
        chan: Option<ChanRef>,
        name: String,
        headers: Vec<(String, String)>,
    },
    /// The adapter reconnected and took a snapshot of every live channel. Tracked channels that
    /// are not in it ended while we were not looking.
    Resynced { channels: Vec<LiveChannel> },
}
