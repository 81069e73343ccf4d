//! The call tracker: a state machine from normalized PBX events to call records.
//!
//! How it sees a call:
//! - Channels (legs) are keyed by Uniqueid, never by name. Each channel has a role read from
//!   its name and first context (see [`TrackerConfig`]): the customer's leg (a trunk, or a
//!   Local channel into a trunk or outside context), an agent's phone, or a transit channel
//!   (Local channels that only connect other channels).
//! - A call is a Linkedid family. When a channel shows up with another Linkedid, the two
//!   families are merged ([`Effect::CallsMerged`]).
//! - Who talks with the customer is derived from bridges, not from queue or dial events: an
//!   agent is connected when a path leads from a customer leg through bridges and Local pairs
//!   (the `;1`/`;2` halves, and transit channels) to the agent's leg. This one rule covers
//!   queue calls, direct dials, blind, attended and redirect transfers, and it tolerates the
//!   races Asterisk has between `DialEnd`, `BridgeEnter` and `Hangup`.
//! - Hold is a `Hold` on any leg of a connected call or music on hold on a customer leg after
//!   the customer was connected; music while waiting in a queue is waiting, not hold. While the
//!   customer is on hold, the agent who put them there keeps the call (attended transfers).
//! - A call ends when its last channel hangs up.
//!
//! Every handler is idempotent: a repeated event finds the state it would create already there.
//! Ended channels are remembered for a while (tombstones) so late or repeated events about them
//! neither reopen nor change the record.
//!
//! What it is not: no I/O, no clock, no knowledge of AMI text. `AgentComplete` talk times and
//! CDRs are ignored on purpose: they disagree with the bridges after redirects and transfers.

use crate::channel::{dialed_number, interface_endpoint, ChannelName};
use crate::config::{AttributionRule, TrackerConfig};
use crate::event::{
    AttendedTransferInfo, BlindTransferInfo, ChanRef, ChannelState, DialStatus, DialplanApp,
    LiveChannel, PbxEvent, QueueMember,
};
use crate::fxhash::FxHashMap;
use crate::ids::{BridgeId, CallId, Extension, LinkedId, QueueName, Uniqueid};
use crate::number::{classify_number, PhoneNumber};
use crate::record::{
    AgentTalk, CallRecord, Direction, Outcome, Recording, TalkSegment, Transfer, TransferKind,
};
use crate::time::Timestamp;

/// Something the rest of the system should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new call appeared (its first channel). Records are boxed to keep effects small.
    CallStarted(Box<CallRecord>),
    /// A milestone changed the record.
    CallUpdated {
        /// The record as it is now.
        record: Box<CallRecord>,
        /// What changed.
        reason: UpdateReason,
    },
    /// The call is over; the record is final.
    CallEnded(Box<CallRecord>),
    /// Two Linkedid families turned out to be one call; `absorbed` will not be reported again.
    CallsMerged {
        /// The call that continues.
        survivor: CallId,
        /// The call that was folded into it.
        absorbed: CallId,
    },
    /// An agent's phone rings for the call.
    AgentRinging {
        /// The call.
        call_id: CallId,
        /// The agent.
        agent: Extension,
        /// The queue that rings the agent, if any.
        queue: Option<QueueName>,
    },
    /// An agent's phone stopped ringing.
    AgentRingEnded {
        /// The call.
        call_id: CallId,
        /// The agent.
        agent: Extension,
        /// Why.
        how: RingEnd,
    },
    /// An agent is now connected with the customer (or, internal call, with the other agent).
    AgentConnected {
        /// The call.
        call_id: CallId,
        /// The agent.
        agent: Extension,
    },
    /// An agent is no longer handling the customer.
    AgentDisconnected {
        /// The call.
        call_id: CallId,
        /// The agent.
        agent: Extension,
    },
}

/// Why an agent's phone stopped ringing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingEnd {
    /// This agent answered.
    Answered,
    /// The phone rang out.
    NoAnswer,
    /// The phone was busy.
    Busy,
    /// Ringing was cancelled: someone else answered, or the caller hung up.
    Cancelled,
    /// The phone could not be reached.
    Failed,
}

/// What a [`Effect::CallUpdated`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// The customer's number or name became known or changed.
    CallerIdentified,
    /// The call entered a queue.
    Queued,
    /// Someone answered the customer.
    Answered,
    /// The customer was put on hold.
    Held,
    /// The hold ended.
    Unheld,
    /// The call was transferred.
    Transferred,
    /// The last transfer, first inferred from the bridges (reported as `redirect`), is now
    /// explained by the PBX's own transfer event: its kind (attended, blind) and target are
    /// corrected. Not a second transfer.
    TransferExplained,
    /// A recording started.
    Recording,
}

/// The call tracker. See the module documentation.
#[derive(Debug)]
pub struct CallTracker {
    config: TrackerConfig,
    channels: FxHashMap<Uniqueid, Chan>,
    calls: FxHashMap<u64, Call>,
    by_linkedid: FxHashMap<LinkedId, u64>,
    bridges: FxHashMap<BridgeId, Vec<Uniqueid>>,
    tombstones: FxHashMap<Uniqueid, Timestamp>,
    ended_linkedids: FxHashMap<LinkedId, (Timestamp, u32)>,
    next_key: u64,
    last_sweep: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Customer,
    Agent(Extension),
    Transit,
}

#[derive(Debug)]
struct Chan {
    name: String,
    linkedid: LinkedId,
    call: u64,
    role: Role,
    pair: Option<Uniqueid>,
    bridge: Option<BridgeId>,
    up: bool,
    hung_up: bool,
    cause: Option<u16>,
    caller_num: Option<String>,
    caller_name: Option<String>,
    first_exten: String,
    /// The dial string that created this channel, and the number the dialling side presented.
    dialed: Option<String>,
    presented: Option<String>,
    /// Time of the last bridge or hold change; an older event of those kinds is a late
    /// duplicate and is ignored.
    last_change: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldKind {
    Hold,
    Music,
}

#[derive(Debug)]
struct DialTarget {
    uniqueid: Uniqueid,
    agent: Option<Extension>,
    status: Option<DialStatus>,
}

#[derive(Debug)]
struct Call {
    id: CallId,
    linkedids: Vec<LinkedId>,
    channels: Vec<Uniqueid>,
    live: usize,
    origin: Uniqueid,
    started_at: Timestamp,
    last_event_at: Timestamp,
    dests: Vec<DialTarget>,
    agents_rang: Vec<Extension>,
    queues: Vec<QueueName>,
    queue_joined_at: Option<Timestamp>,
    queue_wait_us: i64,
    connected: Vec<Extension>,
    segments: Vec<TalkSegment>,
    answered_at: Option<Timestamp>,
    hold_sources: Vec<(Uniqueid, HoldKind)>,
    hold_started: Option<Timestamp>,
    hold_us: i64,
    transfers: Vec<Transfer>,
    /// Index of a blind/attended transfer whose receiving agent is not known yet.
    pending_transfer: Option<usize>,
    /// Index of a transfer inferred from bridges, which a late transfer event may explain.
    inferred_transfer: Option<usize>,
    recording: Option<Recording>,
    application: Option<String>,
    app_channel: Option<Uniqueid>,
    app_answered_at: Option<Timestamp>,
    voicemail: bool,
    degraded: bool,
    last_customer_number: Option<String>,
}

impl CallTracker {
    /// A tracker for one PBX.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            channels: FxHashMap::default(),
            calls: FxHashMap::default(),
            by_linkedid: FxHashMap::default(),
            bridges: FxHashMap::default(),
            tombstones: FxHashMap::default(),
            ended_linkedids: FxHashMap::default(),
            next_key: 0,
            last_sweep: Timestamp::from_micros(i64::MIN),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Number of calls in progress.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Records of every call in progress, oldest first.
    pub fn snapshot(&self, now: Timestamp) -> Vec<CallRecord> {
        let mut keys: Vec<u64> = self.calls.keys().copied().collect();
        keys.sort_unstable();
        keys.iter()
            .map(|k| self.build_record(*k, now, false))
            .collect()
    }

    /// Feeds one event observed at `now`; returns what changed.
    pub fn apply(&mut self, event: PbxEvent, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.sweep_tombstones(now);
        match event {
            PbxEvent::ChannelCreated {
                chan,
                state,
                caller_num,
                caller_name,
                context,
                exten,
            } => {
                let Some(key) = self.ensure(&chan, Some((&context, &exten)), now, &mut fx) else {
                    return fx;
                };
                if let Some(c) = self.channels.get_mut(&chan.uniqueid) {
                    c.up |= state == ChannelState::Up;
                    if caller_num.is_some() {
                        c.caller_num = caller_num;
                    }
                    if caller_name.is_some() {
                        c.caller_name = caller_name;
                    }
                }
                self.caller_changed(key, now, &mut fx);
            }
            PbxEvent::ChannelStateChanged { chan, state } => {
                let Some(key) = self.ensure(&chan, None, now, &mut fx) else {
                    return fx;
                };
                if state == ChannelState::Up {
                    if let Some(c) = self.channels.get_mut(&chan.uniqueid) {
                        c.up = true;
                    }
                    if let Some(call) = self.calls.get_mut(&key) {
                        if call.app_channel.as_ref() == Some(&chan.uniqueid)
                            && call.app_answered_at.is_none()
                        {
                            call.app_answered_at = Some(now);
                        }
                    }
                }
            }
            PbxEvent::CallerIdChanged {
                chan,
                caller_num,
                caller_name,
            } => {
                let Some(key) = self.ensure(&chan, None, now, &mut fx) else {
                    return fx;
                };
                let answered = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.answered_at.is_some());
                if let Some(c) = self.channels.get_mut(&chan.uniqueid) {
                    // Transfers rewrite caller IDs on Local channels (connected-line updates);
                    // the customer does not change numbers mid-call, and `<unknown>` is no news.
                    let frozen = answered && c.role == Role::Customer;
                    if !frozen {
                        if caller_num.is_some() {
                            c.caller_num = caller_num;
                        }
                        if caller_name.is_some() {
                            c.caller_name = caller_name;
                        }
                    }
                }
                self.caller_changed(key, now, &mut fx);
            }
            PbxEvent::ChannelRenamed { uniqueid, new_name } => {
                if let Some(c) = self.channels.get_mut(&uniqueid) {
                    c.name = new_name;
                }
            }
            PbxEvent::LocalPair { one, two } => {
                let k1 = self.ensure(&one, None, now, &mut fx);
                let k2 = self.ensure(&two, None, now, &mut fx);
                if let (Some(k1), Some(_)) = (k1, k2) {
                    self.link_pair(&one.uniqueid, &two.uniqueid);
                    self.recompute(k1, now, &mut fx);
                }
            }
            PbxEvent::DialBegin {
                caller,
                caller_num,
                dest,
                dial_string,
            } => {
                if let Some(caller) = &caller {
                    self.ensure(caller, None, now, &mut fx);
                }
                let Some(key) = self.ensure(&dest, None, now, &mut fx) else {
                    return fx;
                };
                let role = match self.channels.get_mut(&dest.uniqueid) {
                    Some(c) => {
                        if c.dialed.is_none() {
                            c.dialed = Some(dial_string);
                            c.presented = caller_num;
                        }
                        c.role.clone()
                    }
                    None => return fx,
                };
                match role {
                    Role::Agent(ext) if caller.is_some() => {
                        self.ring(key, &dest.uniqueid, Some(ext), None, &mut fx)
                    }
                    Role::Customer if caller.is_some() => {
                        self.ring(key, &dest.uniqueid, None, None, &mut fx)
                    }
                    _ => {}
                }
            }
            PbxEvent::DialEnd { dest, status, .. } => {
                if let Some(key) = self.known(&dest, now, &mut fx) {
                    self.ring_ended(key, &dest.uniqueid, status, &mut fx);
                }
            }
            PbxEvent::BridgeEnter { chan, bridge } => {
                let Some(key) = self.ensure(&chan, None, now, &mut fx) else {
                    return fx;
                };
                if self.stale(&chan.uniqueid, now) {
                    return fx;
                }
                if self.put_in_bridge(&chan.uniqueid, Some(bridge)) {
                    self.recompute(key, now, &mut fx);
                }
            }
            PbxEvent::BridgeLeave { chan, bridge } => {
                let Some(key) = self.known(&chan, now, &mut fx) else {
                    return fx;
                };
                if self.stale(&chan.uniqueid, now) {
                    return fx;
                }
                let inside = self
                    .channels
                    .get(&chan.uniqueid)
                    .is_some_and(|c| c.bridge.as_ref() == Some(&bridge));
                if inside && self.put_in_bridge(&chan.uniqueid, None) {
                    self.recompute(key, now, &mut fx);
                }
            }
            PbxEvent::BridgeMerge { from, to } => {
                let members = self.bridges.remove(&from).unwrap_or_default();
                let mut keys = Vec::new();
                for uid in members {
                    if let Some(c) = self.channels.get_mut(&uid) {
                        c.bridge = Some(to.clone());
                        if !keys.contains(&c.call) {
                            keys.push(c.call);
                        }
                        let list = self.bridges.entry(to.clone()).or_default();
                        if !list.contains(&uid) {
                            list.push(uid);
                        }
                    }
                }
                for key in keys {
                    self.recompute(key, now, &mut fx);
                }
            }
            PbxEvent::Hangup { chan, cause } => self.hangup(&chan, Some(cause), now, &mut fx),
            PbxEvent::QueueCallerJoin { chan, queue } => {
                let Some(key) = self.ensure(&chan, None, now, &mut fx) else {
                    return fx;
                };
                if let Some(call) = self.calls.get_mut(&key) {
                    if call.queue_joined_at.is_none() {
                        call.queue_joined_at = Some(now);
                        if call.queues.last() != Some(&queue) {
                            call.queues.push(queue);
                        }
                        let record = self.build_record(key, now, false);
                        fx.push(Effect::CallUpdated {
                            record: Box::new(record),
                            reason: UpdateReason::Queued,
                        });
                    }
                }
            }
            PbxEvent::QueueCallerLeave { chan, .. } | PbxEvent::QueueCallerAbandon { chan, .. } => {
                if let Some(key) = self.known(&chan, now, &mut fx) {
                    if let Some(call) = self.calls.get_mut(&key) {
                        if let Some(joined) = call.queue_joined_at.take() {
                            call.queue_wait_us += now.micros_since(joined).max(0);
                        }
                    }
                }
            }
            PbxEvent::AgentCalled {
                caller,
                dest,
                queue,
                member,
            } => {
                self.ensure(&caller, None, now, &mut fx);
                let Some(key) = self.ensure(&dest, None, now, &mut fx) else {
                    return fx;
                };
                let agent = self.member_agent(&dest, &member);
                self.ring(key, &dest.uniqueid, agent, Some(queue), &mut fx);
            }
            PbxEvent::AgentRingNoAnswer { dest, .. } => {
                if let Some(key) = self.known(&dest, now, &mut fx) {
                    self.ring_ended(key, &dest.uniqueid, DialStatus::NoAnswer, &mut fx);
                }
            }
            PbxEvent::AgentConnect { caller, dest, .. } => {
                // Bridges decide who is connected; this only keeps the channels known.
                self.ensure(&caller, None, now, &mut fx);
                self.ensure(&dest, None, now, &mut fx);
            }
            PbxEvent::AgentComplete { caller, .. } => {
                self.known(&caller, now, &mut fx);
            }
            PbxEvent::Hold { chan } => {
                if let Some(key) = self
                    .known(&chan, now, &mut fx)
                    .filter(|_| !self.stale(&chan.uniqueid, now))
                {
                    self.hold_start(key, &chan.uniqueid, HoldKind::Hold, now, &mut fx);
                }
            }
            PbxEvent::Unhold { chan } => {
                if let Some(key) = self
                    .known(&chan, now, &mut fx)
                    .filter(|_| !self.stale(&chan.uniqueid, now))
                {
                    self.hold_stop(key, &chan.uniqueid, Some(HoldKind::Hold), now, &mut fx);
                }
            }
            PbxEvent::MusicOnHoldStart { chan } => {
                if let Some(key) = self
                    .known(&chan, now, &mut fx)
                    .filter(|_| !self.stale(&chan.uniqueid, now))
                {
                    if self.role_of(&chan.uniqueid) == Some(&Role::Customer) {
                        self.hold_start(key, &chan.uniqueid, HoldKind::Music, now, &mut fx);
                    }
                }
            }
            PbxEvent::MusicOnHoldStop { chan } => {
                if let Some(key) = self
                    .known(&chan, now, &mut fx)
                    .filter(|_| !self.stale(&chan.uniqueid, now))
                {
                    self.hold_stop(key, &chan.uniqueid, Some(HoldKind::Music), now, &mut fx);
                }
            }
            PbxEvent::MixMonitorStart { chan } => {
                if let Some(key) = self.known(&chan, now, &mut fx) {
                    if let Some(call) = self.calls.get_mut(&key) {
                        if call.recording.is_none() {
                            call.recording = Some(Recording {
                                uniqueid: chan.uniqueid.clone(),
                                started_at: now,
                                path: None,
                                url: None,
                            });
                            let record = self.build_record(key, now, false);
                            fx.push(Effect::CallUpdated {
                                record: Box::new(record),
                                reason: UpdateReason::Recording,
                            });
                        }
                    }
                }
            }
            PbxEvent::RecordingFile { chan, file } => {
                if let Some(key) = self.known(&chan, now, &mut fx) {
                    let path = if file.contains('/') || self.config.recording_dir.is_empty() {
                        file
                    } else {
                        format!(
                            "{}/{}",
                            self.config.recording_dir.trim_end_matches('/'),
                            file
                        )
                    };
                    if let Some(call) = self.calls.get_mut(&key) {
                        let rec = call.recording.get_or_insert_with(|| Recording {
                            uniqueid: chan.uniqueid.clone(),
                            started_at: now,
                            path: None,
                            url: None,
                        });
                        if rec.uniqueid == chan.uniqueid || rec.path.is_none() {
                            rec.path = Some(path);
                        }
                    }
                }
            }
            PbxEvent::BlindTransfer(info) => self.blind_transfer(info, now, &mut fx),
            PbxEvent::AttendedTransfer(info) => self.attended_transfer(info, now, &mut fx),
            PbxEvent::AppStarted { chan, app } => {
                if let Some(key) = self.known(&chan, now, &mut fx) {
                    let up = self.channels.get(&chan.uniqueid).is_some_and(|c| c.up);
                    if let Some(call) = self.calls.get_mut(&key) {
                        match app {
                            DialplanApp::VoiceMail => call.voicemail = true,
                            DialplanApp::Stasis(name) => {
                                if call.application.is_none() {
                                    call.application = Some(name);
                                    call.app_channel = Some(chan.uniqueid.clone());
                                    if up {
                                        call.app_answered_at = Some(now);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            PbxEvent::UserEvent { chan, .. } => {
                if let Some(chan) = chan {
                    self.known(&chan, now, &mut fx);
                }
            }
            PbxEvent::Resynced { channels } => self.resync(channels, now, &mut fx),
        }
        fx
    }

    /// Closes calls that have seen no event for [`TrackerConfig::stale_call_us`] (flagged
    /// degraded) and forgets old tombstones. Call it every few seconds.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let stale: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| now.micros_since(c.last_event_at) > self.config.stale_call_us)
            .map(|(k, _)| *k)
            .collect();
        let mut stale = stale;
        stale.sort_unstable();
        for key in stale {
            if let Some(call) = self.calls.get_mut(&key) {
                call.degraded = true;
            }
            self.end_call(key, now, &mut fx);
        }
        self.last_sweep = Timestamp::from_micros(i64::MIN);
        self.sweep_tombstones(now);
        fx
    }

    /// Ends every open call now as degraded (shutdown of a replay, or a PBX removed).
    pub fn close_all(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut keys: Vec<u64> = self.calls.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(call) = self.calls.get_mut(&key) {
                call.degraded = true;
            }
            self.end_call(key, now, &mut fx);
        }
        fx
    }

    // ---------------------------------------------------------------- channels and calls

    /// Finds or creates the channel; handles Linkedid changes. `None` for tombstoned channels.
    fn ensure(
        &mut self,
        chan: &ChanRef,
        start: Option<(&str, &str)>,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> Option<u64> {
        if let Some(key) = self.known(chan, now, fx) {
            return Some(key);
        }
        if self.tombstones.contains_key(&chan.uniqueid) || chan.uniqueid.is_empty() {
            return None;
        }
        let key = match self.by_linkedid.get(&chan.linkedid) {
            Some(key) => *key,
            None => self.new_call(chan, now),
        };
        let name = ChannelName::parse(&chan.name);
        let (context, exten) = match start {
            Some((ctx, ext)) => (ctx, ext),
            None => match name.local {
                Some((ext, ctx, _)) => (ctx, ext),
                None => ("", ""),
            },
        };
        let role = self.classify(&name, context);
        self.channels.insert(
            chan.uniqueid.clone(),
            Chan {
                name: chan.name.clone(),
                linkedid: chan.linkedid.clone(),
                call: key,
                role,
                pair: None,
                bridge: None,
                up: false,
                hung_up: false,
                cause: None,
                caller_num: None,
                caller_name: None,
                first_exten: exten.to_owned(),
                dialed: None,
                presented: None,
                last_change: now,
            },
        );
        let fresh = match self.calls.get_mut(&key) {
            Some(call) => {
                call.channels.push(chan.uniqueid.clone());
                call.live += 1;
                call.last_event_at = now;
                call.channels.len() == 1
            }
            None => false,
        };
        // Local halves: the name says which other channel is the twin (`…;1` / `…;2`), which
        // also covers a missed `LocalBridge`.
        if let Some(base) = chan
            .name
            .strip_suffix(";1")
            .or(chan.name.strip_suffix(";2"))
        {
            let twin = self.calls.get(&key).and_then(|call| {
                call.channels.iter().find(|u| {
                    **u != chan.uniqueid
                        && self.channels.get(*u).is_some_and(|c| {
                            c.name.len() == chan.name.len()
                                && c.name.starts_with(base)
                                && c.name != chan.name
                        })
                })
            });
            if let Some(twin) = twin.cloned() {
                self.link_pair(&chan.uniqueid, &twin);
            }
        }
        if fresh {
            let record = self.build_record(key, now, false);
            fx.push(Effect::CallStarted(Box::new(record)));
        }
        Some(key)
    }

    /// Finds a tracked channel; handles Linkedid changes. Never creates.
    fn known(&mut self, chan: &ChanRef, now: Timestamp, fx: &mut Vec<Effect>) -> Option<u64> {
        let c = self.channels.get(&chan.uniqueid)?;
        let mut key = c.call;
        if c.linkedid != chan.linkedid && !chan.linkedid.is_empty() {
            key = self.linkedid_changed(chan, key, now, fx);
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.last_event_at = now;
        }
        Some(key)
    }

    fn new_call(&mut self, chan: &ChanRef, now: Timestamp) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        // A Linkedid that already ended and shows up again is a new interaction.
        let id = match self.ended_linkedids.get_mut(&chan.linkedid) {
            Some((_, n)) => {
                *n += 1;
                CallId::new(format!("{}#{}", chan.linkedid, n))
            }
            None => CallId::new(chan.linkedid.as_str()),
        };
        self.by_linkedid.insert(chan.linkedid.clone(), key);
        self.calls.insert(
            key,
            Call {
                id,
                linkedids: vec![chan.linkedid.clone()],
                channels: Vec::new(),
                live: 0,
                origin: chan.uniqueid.clone(),
                started_at: now,
                last_event_at: now,
                dests: Vec::new(),
                agents_rang: Vec::new(),
                queues: Vec::new(),
                queue_joined_at: None,
                queue_wait_us: 0,
                connected: Vec::new(),
                segments: Vec::new(),
                answered_at: None,
                hold_sources: Vec::new(),
                hold_started: None,
                hold_us: 0,
                transfers: Vec::new(),
                pending_transfer: None,
                inferred_transfer: None,
                recording: None,
                application: None,
                app_channel: None,
                app_answered_at: None,
                voicemail: false,
                degraded: false,
                last_customer_number: None,
            },
        );
        key
    }

    fn linkedid_changed(
        &mut self,
        chan: &ChanRef,
        key: u64,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> u64 {
        if let Some(c) = self.channels.get_mut(&chan.uniqueid) {
            c.linkedid = chan.linkedid.clone();
        }
        match self.by_linkedid.get(&chan.linkedid).copied() {
            Some(other) if other != key => {
                // Asterisk moved the channel to the oldest Linkedid in its bridge: the family
                // that owns that Linkedid survives.
                self.merge(key, other, now, fx);
                other
            }
            Some(_) => key,
            None => {
                self.by_linkedid.insert(chan.linkedid.clone(), key);
                if let Some(call) = self.calls.get_mut(&key) {
                    call.linkedids.push(chan.linkedid.clone());
                }
                key
            }
        }
    }

    fn merge(&mut self, from: u64, into: u64, now: Timestamp, fx: &mut Vec<Effect>) {
        let Some(absorbed) = self.calls.remove(&from) else {
            return;
        };
        for uid in &absorbed.channels {
            if let Some(c) = self.channels.get_mut(uid) {
                c.call = into;
            }
        }
        for lid in &absorbed.linkedids {
            self.by_linkedid.insert(lid.clone(), into);
        }
        let Some(call) = self.calls.get_mut(&into) else {
            return;
        };
        if absorbed.started_at < call.started_at {
            call.started_at = absorbed.started_at;
            call.origin = absorbed.origin.clone();
            let mut channels = absorbed.channels.clone();
            channels.append(&mut call.channels);
            call.channels = channels;
        } else {
            call.channels.extend(absorbed.channels.iter().cloned());
        }
        call.linkedids.extend(absorbed.linkedids.iter().cloned());
        call.live += absorbed.live;
        call.dests.extend(absorbed.dests);
        for agent in absorbed.agents_rang {
            if !call.agents_rang.contains(&agent) {
                call.agents_rang.push(agent);
            }
        }
        for queue in absorbed.queues {
            if !call.queues.contains(&queue) {
                call.queues.push(queue);
            }
        }
        call.queue_wait_us += absorbed.queue_wait_us;
        if call.queue_joined_at.is_none() {
            call.queue_joined_at = absorbed.queue_joined_at;
        }
        // Talk segments of the absorbed family were agent-to-agent (no customer there); the
        // survivor recomputes who is connected with its customer below.
        call.hold_us += absorbed.hold_us;
        call.transfers.extend(absorbed.transfers);
        call.transfers.sort_by_key(|t| t.at);
        if call.recording.is_none() {
            call.recording = absorbed.recording;
        }
        if call.application.is_none() {
            call.application = absorbed.application;
            call.app_channel = absorbed.app_channel;
            call.app_answered_at = absorbed.app_answered_at;
        }
        call.voicemail |= absorbed.voicemail;
        call.degraded |= absorbed.degraded;
        fx.push(Effect::CallsMerged {
            survivor: call.id.clone(),
            absorbed: absorbed.id.clone(),
        });
        for agent in absorbed.connected {
            fx.push(Effect::AgentDisconnected {
                call_id: absorbed.id.clone(),
                agent,
            });
        }
        self.recompute(into, now, fx);
    }

    fn classify(&self, name: &ChannelName<'_>, context: &str) -> Role {
        let cfg = &self.config;
        let has = |list: &[String], item: &str| list.iter().any(|s| s.eq_ignore_ascii_case(item));
        if let Some((exten, ctx, _)) = name.local {
            if has(&cfg.agent_contexts, ctx) && cfg.is_extension(exten) {
                return Role::Agent(Extension::new(exten));
            }
            if has(&cfg.trunk_contexts, ctx) || has(&cfg.outside_contexts, ctx) {
                return Role::Customer;
            }
            return Role::Transit;
        }
        if name.is_local() || name.tech.is_empty() {
            return Role::Transit;
        }
        if has(&cfg.trunk_techs, name.tech) || has(&cfg.trunk_names, name.endpoint) {
            return Role::Customer;
        }
        if has(&cfg.trunk_contexts, context) {
            return Role::Customer;
        }
        if cfg.is_extension(name.endpoint) {
            return Role::Agent(Extension::new(name.endpoint));
        }
        if ["PJSIP", "SIP", "IAX2"]
            .iter()
            .any(|t| name.tech.eq_ignore_ascii_case(t))
        {
            // A SIP endpoint that is not an extension is a provider.
            return Role::Customer;
        }
        Role::Transit
    }

    /// Whether a bridge or hold event at `now` is older than the channel's last such change
    /// (a late duplicate); otherwise records `now` as the last change.
    fn stale(&mut self, uid: &Uniqueid, now: Timestamp) -> bool {
        match self.channels.get_mut(uid) {
            Some(c) if now < c.last_change => true,
            Some(c) => {
                c.last_change = now;
                false
            }
            None => true,
        }
    }

    fn role_of(&self, uid: &Uniqueid) -> Option<&Role> {
        self.channels.get(uid).map(|c| &c.role)
    }

    fn link_pair(&mut self, a: &Uniqueid, b: &Uniqueid) {
        if a == b {
            return;
        }
        if let Some(c) = self.channels.get_mut(a) {
            c.pair = Some(b.clone());
        }
        if let Some(c) = self.channels.get_mut(b) {
            c.pair = Some(a.clone());
        }
    }

    /// Moves a channel into `bridge` (or out of any). Returns whether anything changed.
    fn put_in_bridge(&mut self, uid: &Uniqueid, bridge: Option<BridgeId>) -> bool {
        let Some(c) = self.channels.get_mut(uid) else {
            return false;
        };
        if c.bridge == bridge || (c.hung_up && bridge.is_some()) {
            return false;
        }
        let old = std::mem::replace(&mut c.bridge, bridge.clone());
        if let Some(old) = old {
            if let Some(list) = self.bridges.get_mut(&old) {
                list.retain(|u| u != uid);
                if list.is_empty() {
                    self.bridges.remove(&old);
                }
            }
        }
        if let Some(new) = bridge {
            let list = self.bridges.entry(new).or_default();
            if !list.contains(uid) {
                list.push(uid.clone());
            }
        }
        true
    }

    fn hangup(&mut self, chan: &ChanRef, cause: Option<u16>, now: Timestamp, fx: &mut Vec<Effect>) {
        let Some(key) = self.known(chan, now, fx) else {
            return;
        };
        let Some(c) = self.channels.get_mut(&chan.uniqueid) else {
            return;
        };
        if c.hung_up {
            return;
        }
        c.hung_up = true;
        c.cause = cause;
        self.put_in_bridge(&chan.uniqueid, None);
        self.ring_ended(key, &chan.uniqueid, DialStatus::Cancel, fx);
        self.hold_stop(key, &chan.uniqueid, None, now, fx);
        let live = match self.calls.get_mut(&key) {
            Some(call) => {
                call.live = call.live.saturating_sub(1);
                call.live
            }
            None => return,
        };
        self.recompute(key, now, fx);
        if live == 0 {
            self.end_call(key, now, fx);
        }
    }

    fn end_call(&mut self, key: u64, now: Timestamp, fx: &mut Vec<Effect>) {
        if !self.calls.contains_key(&key) {
            return;
        }
        // Close what is still open at `now`: segments and hold.
        if let Some(call) = self.calls.get_mut(&key) {
            if let Some(started) = call.hold_started.take() {
                call.hold_us += now.micros_since(started).max(0);
                call.hold_sources.clear();
            }
            for seg in call.segments.iter_mut().filter(|s| s.end.is_none()) {
                seg.end = Some(now);
                fx.push(Effect::AgentDisconnected {
                    call_id: call.id.clone(),
                    agent: seg.agent.clone(),
                });
            }
            call.connected.clear();
        }
        let record = self.build_record(key, now, true);
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        for uid in &call.channels {
            if let Some(c) = self.channels.remove(uid) {
                if let Some(bridge) = c.bridge {
                    if let Some(list) = self.bridges.get_mut(&bridge) {
                        list.retain(|u| u != uid);
                        if list.is_empty() {
                            self.bridges.remove(&bridge);
                        }
                    }
                }
            }
            self.tombstones.insert(uid.clone(), now);
        }
        for lid in call.linkedids {
            self.by_linkedid.remove(&lid);
            self.ended_linkedids.entry(lid).or_insert((now, 0)).0 = now;
        }
        fx.push(Effect::CallEnded(Box::new(record)));
    }

    fn sweep_tombstones(&mut self, now: Timestamp) {
        let ttl = self.config.tombstone_us;
        if now.micros_since(self.last_sweep) < ttl / 4 {
            return;
        }
        self.last_sweep = now;
        self.tombstones.retain(|_, at| now.micros_since(*at) <= ttl);
        self.ended_linkedids
            .retain(|_, (at, _)| now.micros_since(*at) <= ttl);
    }

    // ---------------------------------------------------------------- ringing

    fn member_agent(&self, dest: &ChanRef, member: &QueueMember) -> Option<Extension> {
        if let Some(Role::Agent(ext)) = self.role_of(&dest.uniqueid) {
            return Some(ext.clone());
        }
        let endpoint = interface_endpoint(&member.interface);
        if self.config.is_extension(endpoint) {
            return Some(Extension::new(endpoint));
        }
        let digits: String = member.name.chars().filter(|c| c.is_ascii_digit()).collect();
        self.config
            .is_extension(&digits)
            .then(|| Extension::new(digits))
    }

    fn ring(
        &mut self,
        key: u64,
        dest: &Uniqueid,
        agent: Option<Extension>,
        queue: Option<QueueName>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.dests.iter().any(|d| &d.uniqueid == dest) {
            return;
        }
        call.dests.push(DialTarget {
            uniqueid: dest.clone(),
            agent: agent.clone(),
            status: None,
        });
        if let Some(agent) = agent {
            if !call.agents_rang.contains(&agent) {
                call.agents_rang.push(agent.clone());
            }
            fx.push(Effect::AgentRinging {
                call_id: call.id.clone(),
                agent,
                queue,
            });
        }
    }

    fn ring_ended(&mut self, key: u64, dest: &Uniqueid, status: DialStatus, fx: &mut Vec<Effect>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(target) = call.dests.iter_mut().find(|d| &d.uniqueid == dest) else {
            return;
        };
        if target.status.is_some() {
            return;
        }
        target.status = Some(status);
        if let Some(agent) = &target.agent {
            let how = match status {
                DialStatus::Answer => RingEnd::Answered,
                DialStatus::NoAnswer => RingEnd::NoAnswer,
                DialStatus::Busy => RingEnd::Busy,
                DialStatus::Congestion | DialStatus::ChanUnavail => RingEnd::Failed,
                DialStatus::Cancel | DialStatus::Other => RingEnd::Cancelled,
            };
            fx.push(Effect::AgentRingEnded {
                call_id: call.id.clone(),
                agent: agent.clone(),
                how,
            });
        }
    }

    // ---------------------------------------------------------------- who talks with whom

    /// The agents a path of bridges and Local pairs connects to the customer (or, in an
    /// internal call, to the calling agent).
    fn connected_agents(&self, key: u64) -> Vec<Extension> {
        let mut res = Vec::new();
        let Some(call) = self.calls.get(&key) else {
            return res;
        };
        let live = |u: &Uniqueid| self.channels.get(u).filter(|c| !c.hung_up);
        let mut anchors: Vec<&Uniqueid> = call
            .channels
            .iter()
            .filter(|u| live(u).is_some_and(|c| c.role == Role::Customer))
            .collect();
        let mut excluded: Option<&Extension> = None;
        if anchors.is_empty() {
            // Internal call: measure from the calling agent's phone.
            let caller = std::iter::once(&call.origin)
                .chain(call.channels.iter())
                .find(|u| live(u).is_some_and(|c| matches!(c.role, Role::Agent(_))));
            if let Some(caller) = caller {
                if let Some(Role::Agent(ext)) = self.role_of(caller) {
                    excluded = Some(ext);
                }
                anchors.push(caller);
            }
        }
        let mut visited: Vec<&Uniqueid> = anchors.clone();
        let mut stack: Vec<&Uniqueid> = anchors;
        while let Some(uid) = stack.pop() {
            let Some(c) = live(uid) else { continue };
            let members = c
                .bridge
                .as_ref()
                .and_then(|b| self.bridges.get(b))
                .map_or(&[][..], |m| m.as_slice());
            for m in c.pair.iter().chain(members.iter()) {
                if m == uid || visited.contains(&m) {
                    continue;
                }
                visited.push(m);
                let Some(mc) = live(m) else { continue };
                match &mc.role {
                    Role::Agent(ext) => {
                        if Some(ext) != excluded && !res.contains(ext) {
                            res.push(ext.clone());
                        }
                    }
                    Role::Customer => {}
                    Role::Transit => stack.push(m),
                }
            }
        }
        res
    }

    fn recompute(&mut self, key: u64, now: Timestamp, fx: &mut Vec<Effect>) {
        let connected = self.connected_agents(key);
        let unchanged = self
            .calls
            .get(&key)
            .is_some_and(|c| c.connected == connected);
        if unchanged {
            return;
        }
        self.sync_segments(key, connected, now, fx);
    }

    fn sync_segments(
        &mut self,
        key: u64,
        connected: Vec<Extension>,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let on_hold = call.hold_started.is_some();
        let mut closed_other: Option<(Extension, Timestamp)> = None;
        for seg in call.segments.iter_mut().filter(|s| s.end.is_none()) {
            if connected.contains(&seg.agent) {
                continue;
            }
            // The agent holding the customer keeps the call until someone else takes it.
            if on_hold && connected.is_empty() {
                continue;
            }
            seg.end = Some(now);
            closed_other = Some((seg.agent.clone(), now));
            fx.push(Effect::AgentDisconnected {
                call_id: call.id.clone(),
                agent: seg.agent.clone(),
            });
        }
        let mut newly: Vec<Extension> = Vec::new();
        for agent in &connected {
            if call
                .segments
                .iter()
                .any(|s| s.end.is_none() && &s.agent == agent)
            {
                continue;
            }
            let previous = call
                .segments
                .iter()
                .rev()
                .find(|s| &s.agent != agent)
                .map(|s| (s.agent.clone(), s.end.unwrap_or(now)));
            call.segments.push(TalkSegment {
                agent: agent.clone(),
                start: now,
                end: None,
            });
            fx.push(Effect::AgentConnected {
                call_id: call.id.clone(),
                agent: agent.clone(),
            });
            newly.push(agent.clone());
            if let Some(idx) = call.pending_transfer.take() {
                if let Some(t) = call.transfers.get_mut(idx) {
                    t.to_agent = Some(agent.clone());
                }
            } else if let Some((from, ended)) = previous.or(closed_other.clone()) {
                let still_there = call
                    .segments
                    .iter()
                    .any(|s| s.end.is_none() && s.agent == from);
                if !still_there {
                    call.transfers.push(Transfer {
                        from: Some(from),
                        to: agent.to_string(),
                        to_agent: Some(agent.clone()),
                        kind: TransferKind::Redirect,
                        at: ended,
                    });
                    call.inferred_transfer = Some(call.transfers.len() - 1);
                }
            }
        }
        call.connected = connected;
        let first_answer = call.answered_at.is_none() && !newly.is_empty();
        if first_answer {
            call.answered_at = Some(now);
        }
        let transferred = call.answered_at.is_some()
            && !first_answer
            && !newly.is_empty()
            && call.inferred_transfer.is_some();
        if first_answer {
            let record = self.build_record(key, now, false);
            fx.push(Effect::CallUpdated {
                record: Box::new(record),
                reason: UpdateReason::Answered,
            });
        } else if transferred {
            let record = self.build_record(key, now, false);
            fx.push(Effect::CallUpdated {
                record: Box::new(record),
                reason: UpdateReason::Transferred,
            });
        }
    }

    // ---------------------------------------------------------------- hold

    fn hold_start(
        &mut self,
        key: u64,
        uid: &Uniqueid,
        kind: HoldKind,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // Music before anyone answered is the queue or IVR, not hold.
        if call.connected.is_empty() {
            return;
        }
        if call
            .hold_sources
            .iter()
            .any(|(u, k)| u == uid && *k == kind)
        {
            return;
        }
        call.hold_sources.push((uid.clone(), kind));
        if call.hold_started.is_none() {
            call.hold_started = Some(now);
            let record = self.build_record(key, now, false);
            fx.push(Effect::CallUpdated {
                record: Box::new(record),
                reason: UpdateReason::Held,
            });
        }
    }

    fn hold_stop(
        &mut self,
        key: u64,
        uid: &Uniqueid,
        kind: Option<HoldKind>,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let before = call.hold_sources.len();
        call.hold_sources
            .retain(|(u, k)| !(u == uid && kind.is_none_or(|want| *k == want)));
        if call.hold_sources.len() == before || !call.hold_sources.is_empty() {
            return;
        }
        let Some(started) = call.hold_started.take() else {
            return;
        };
        call.hold_us += now.micros_since(started).max(0);
        let connected = call.connected.clone();
        let record = self.build_record(key, now, false);
        fx.push(Effect::CallUpdated {
            record: Box::new(record),
            reason: UpdateReason::Unheld,
        });
        // Segments kept open only because of the hold close now.
        self.sync_segments(key, connected, now, fx);
    }

    // ---------------------------------------------------------------- transfers

    fn agent_of(&self, chan: &Option<ChanRef>) -> Option<Extension> {
        let chan = chan.as_ref()?;
        match self.role_of(&chan.uniqueid) {
            Some(Role::Agent(ext)) => Some(ext.clone()),
            _ => {
                let name = ChannelName::parse(&chan.name);
                let endpoint = name.local.map_or(name.endpoint, |(ext, _, _)| ext);
                self.config
                    .is_extension(endpoint)
                    .then(|| Extension::new(endpoint))
            }
        }
    }

    fn call_of(
        &mut self,
        chans: &[&Option<ChanRef>],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> Option<u64> {
        chans
            .iter()
            .filter_map(|c| c.as_ref())
            .find_map(|c| self.known(c, now, fx))
    }

    fn blind_transfer(&mut self, info: BlindTransferInfo, now: Timestamp, fx: &mut Vec<Effect>) {
        if !info.success {
            return;
        }
        let Some(key) = self.call_of(&[&info.transferee, &info.transferer], now, fx) else {
            return;
        };
        let from = self
            .agent_of(&info.transferer)
            .or_else(|| self.current_agent(key));
        self.record_transfer(
            key,
            from,
            info.extension,
            None,
            TransferKind::Blind,
            now,
            fx,
        );
    }

    fn attended_transfer(
        &mut self,
        info: AttendedTransferInfo,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if !info.success {
            return;
        }
        let Some(key) = self.call_of(
            &[
                &info.transferee,
                &info.orig_transferer,
                &info.target,
                &info.second_transferer,
            ],
            now,
            fx,
        ) else {
            return;
        };
        let from = self
            .agent_of(&info.orig_transferer)
            .or_else(|| self.agent_of(&info.second_transferer))
            .or_else(|| self.current_agent(key));
        let target_agent = info
            .target
            .as_ref()
            .and_then(|t| self.agents_behind(&t.uniqueid, from.as_ref()))
            .or_else(|| self.agent_of(&info.target));
        let to = target_agent
            .as_ref()
            .map(|a| a.to_string())
            .or_else(|| info.target.as_ref().map(|t| t.name.clone()))
            .unwrap_or_default();
        self.record_transfer(key, from, to, target_agent, TransferKind::Attended, now, fx);
    }

    /// The first agent reachable from `start` through transit channels (the consulted party).
    fn agents_behind(&self, start: &Uniqueid, except: Option<&Extension>) -> Option<Extension> {
        let mut visited = vec![start.clone()];
        let mut stack = vec![start.clone()];
        while let Some(uid) = stack.pop() {
            let c = self.channels.get(&uid)?;
            match &c.role {
                Role::Agent(ext) if Some(ext) != except => return Some(ext.clone()),
                Role::Agent(_) | Role::Customer if uid != *start => continue,
                _ => {}
            }
            let mut next: Vec<Uniqueid> = c.pair.iter().cloned().collect();
            if let Some(b) = &c.bridge {
                if let Some(members) = self.bridges.get(b) {
                    next.extend(members.iter().cloned());
                }
            }
            for n in next {
                if !visited.contains(&n) {
                    visited.push(n.clone());
                    stack.push(n);
                }
            }
        }
        None
    }

    fn current_agent(&self, key: u64) -> Option<Extension> {
        let call = self.calls.get(&key)?;
        call.segments
            .iter()
            .rev()
            .find(|s| s.end.is_none())
            .or(call.segments.last())
            .map(|s| s.agent.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn record_transfer(
        &mut self,
        key: u64,
        from: Option<Extension>,
        to: String,
        to_agent: Option<Extension>,
        kind: TransferKind,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call
            .transfers
            .iter()
            .any(|t| t.kind == kind && t.from == from && t.to == to && t.at == now)
        {
            return;
        }
        // The bridges may already have shown the move (attended transfers complete before
        // Asterisk reports them): explain the inferred transfer instead of adding another.
        if let Some(idx) = call.inferred_transfer.take() {
            if let Some(t) = call.transfers.get_mut(idx) {
                let recent = now.micros_since(t.at).abs() <= 5_000_000;
                if recent && t.kind == TransferKind::Redirect && (from.is_none() || t.from == from)
                {
                    t.kind = kind;
                    t.at = now;
                    if kind == TransferKind::Blind {
                        t.to = to;
                    }
                    let record = self.build_record(key, now, false);
                    fx.push(Effect::CallUpdated {
                        record: Box::new(record),
                        reason: UpdateReason::TransferExplained,
                    });
                    return;
                }
            }
        }
        let answered_target = to_agent.as_ref().is_some_and(|a| {
            call.segments
                .iter()
                .any(|s| s.end.is_none() && &s.agent == a)
        });
        call.transfers.push(Transfer {
            from,
            to,
            to_agent: to_agent.filter(|_| answered_target),
            kind,
            at: now,
        });
        if !answered_target {
            call.pending_transfer = Some(call.transfers.len() - 1);
        }
        let record = self.build_record(key, now, false);
        fx.push(Effect::CallUpdated {
            record: Box::new(record),
            reason: UpdateReason::Transferred,
        });
    }

    // ---------------------------------------------------------------- resync

    fn resync(&mut self, live: Vec<LiveChannel>, now: Timestamp, fx: &mut Vec<Effect>) {
        // Channels we track that the PBX no longer has ended while we were away.
        let mut gone: Vec<(u64, Uniqueid)> = Vec::new();
        for (uid, c) in &self.channels {
            if !c.hung_up && !live.iter().any(|l| &l.chan.uniqueid == uid) {
                gone.push((c.call, uid.clone()));
            }
        }
        gone.sort();
        for (key, uid) in gone {
            if let Some(call) = self.calls.get_mut(&key) {
                call.degraded = true;
            }
            let linkedid = self
                .channels
                .get(&uid)
                .map(|c| c.linkedid.clone())
                .unwrap_or_default();
            let chan = ChanRef {
                uniqueid: uid,
                linkedid,
                name: String::new(),
            };
            self.hangup(&chan, None, now, fx);
        }
        // Channels we did not know about: calls that started while we were away.
        for l in live {
            let new = !self.channels.contains_key(&l.chan.uniqueid);
            let Some(key) = self.ensure(&l.chan, Some((&l.context, &l.exten)), now, fx) else {
                continue;
            };
            if let Some(c) = self.channels.get_mut(&l.chan.uniqueid) {
                c.up |= l.state == ChannelState::Up;
                if new {
                    c.caller_num = l.caller_num;
                    c.caller_name = l.caller_name;
                }
            }
            if new {
                if let Some(call) = self.calls.get_mut(&key) {
                    call.degraded = true;
                    let started = now.plus_micros(-i64::from(l.age_s) * 1_000_000);
                    if started < call.started_at {
                        call.started_at = started;
                    }
                }
            }
            if self.put_in_bridge(&l.chan.uniqueid, l.bridge) {
                self.recompute(key, now, fx);
            }
        }
    }

    // ---------------------------------------------------------------- the record

    fn caller_changed(&mut self, key: u64, now: Timestamp, fx: &mut Vec<Effect>) {
        let number = self.customer_number(key).map(|n| n.text);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if number.is_some() && call.last_customer_number != number {
            let first = call.last_customer_number.is_none() && call.channels.len() <= 1;
            call.last_customer_number = number;
            if !first {
                let record = self.build_record(key, now, false);
                fx.push(Effect::CallUpdated {
                    record: Box::new(record),
                    reason: UpdateReason::CallerIdentified,
                });
            }
        }
    }

    fn direction(&self, call: &Call) -> Direction {
        match self.role_of(&call.origin) {
            Some(Role::Customer) => Direction::Inbound,
            _ => {
                let has_customer = call
                    .channels
                    .iter()
                    .any(|u| self.role_of(u) == Some(&Role::Customer));
                if has_customer {
                    Direction::Outbound
                } else {
                    Direction::Internal
                }
            }
        }
    }

    fn customer_chan(&self, call: &Call) -> Option<&Chan> {
        std::iter::once(&call.origin)
            .chain(call.channels.iter())
            .filter_map(|u| self.channels.get(u))
            .find(|c| c.role == Role::Customer)
    }

    fn customer_number(&self, key: u64) -> Option<PhoneNumber> {
        let call = self.calls.get(&key)?;
        let customer = self.customer_chan(call)?;
        let raw = match self.direction(call) {
            Direction::Inbound => customer.caller_num.clone(),
            _ => {
                let name = ChannelName::parse(&customer.name);
                match name.local {
                    Some((exten, _, _)) => Some(exten.to_owned()),
                    None => customer
                        .dialed
                        .as_deref()
                        .map(|d| dialed_number(d).to_owned())
                        .or_else(|| {
                            (!customer.first_exten.is_empty() && customer.first_exten != "s")
                                .then(|| customer.first_exten.clone())
                        }),
                }
            }
        };
        classify_number(raw.as_deref()?, &self.config)
    }

    fn build_record(&self, key: u64, now: Timestamp, ended: bool) -> CallRecord {
        let Some(call) = self.calls.get(&key) else {
            return empty_record(now);
        };
        let direction = self.direction(call);
        let customer = self.customer_chan(call);
        let line_raw = match direction {
            Direction::Inbound => customer.map(|c| c.first_exten.clone()),
            Direction::Outbound => customer.and_then(|c| c.presented.clone()),
            Direction::Internal => None,
        };
        let line = line_raw
            .filter(|l| !l.is_empty() && l != "s")
            .and_then(|l| classify_number(&l, &self.config));
        let customer_name = match direction {
            Direction::Inbound => customer.and_then(|c| c.caller_name.clone()),
            _ => None,
        }
        .filter(|n| !n.is_empty() && n != "<unknown>");
        let originator = match self.role_of(&call.origin) {
            Some(Role::Agent(ext)) => Some(ext.clone()),
            _ => call.channels.first().and_then(|u| match self.role_of(u) {
                Some(Role::Agent(ext)) if direction != Direction::Inbound => Some(ext.clone()),
                _ => None,
            }),
        };

        let seg_end = |s: &TalkSegment| s.end.unwrap_or(now);
        let mut agent_talk: Vec<AgentTalk> = Vec::new();
        for s in &call.segments {
            let us = seg_end(s).micros_since(s.start).max(0);
            match agent_talk.iter_mut().find(|a| a.agent == s.agent) {
                Some(a) => a.talk_us += us,
                None => agent_talk.push(AgentTalk {
                    agent: s.agent.clone(),
                    talk_us: us,
                }),
            }
        }
        let talk_us: i64 = agent_talk.iter().map(|a| a.talk_us).sum();
        let answered_by = call.segments.first().map(|s| s.agent.clone());
        let attributed = match self.config.attribution {
            AttributionRule::FirstAnswerer => answered_by.clone(),
            AttributionRule::LastAgent => call.segments.last().map(|s| s.agent.clone()),
            AttributionRule::TalkTime => agent_talk
                .iter()
                .fold(None::<&AgentTalk>, |best, a| match best {
                    Some(b) if b.talk_us >= a.talk_us => Some(b),
                    _ => Some(a),
                })
                .map(|a| a.agent.clone()),
        };
        let agent = attributed.or_else(|| match direction {
            Direction::Inbound => None,
            _ => originator.clone(),
        });
        let answered_at = match (call.answered_at, call.app_answered_at) {
            (Some(a), _) => Some(a),
            (None, app) => app,
        };
        let ended_at = ended.then_some(now);
        let hold_us = call.hold_us + call.hold_started.map_or(0, |s| now.micros_since(s).max(0));
        let queue_wait_us = call.queue_wait_us
            + call
                .queue_joined_at
                .map_or(0, |j| now.micros_since(j).max(0));
        let wait_until = answered_at.unwrap_or(now);
        let wait_us = wait_until.micros_since(call.started_at).max(0);
        let hangup_cause = customer.and_then(|c| c.cause);
        let outcome = ended.then(|| self.outcome(call, direction, answered_at, hangup_cause));
        let short_abandon = matches!(outcome, Some(Outcome::Abandoned | Outcome::Missed))
            && direction == Direction::Inbound
            && (if call.queues.is_empty() {
                wait_us
            } else {
                queue_wait_us
            }) < self.config.short_abandon_us;
        let recording = call.recording.clone().map(|mut r| {
            if let Some(template) = &self.config.recording_url_template {
                let path = r.path.clone().unwrap_or_default();
                let file = path.rsplit('/').next().unwrap_or("").to_owned();
                r.url = Some(
                    template
                        .replace("{file}", &file)
                        .replace("{path}", &path)
                        .replace("{uniqueid}", r.uniqueid.as_str())
                        .replace("{call_id}", call.id.as_str()),
                );
            }
            r
        });
        CallRecord {
            call_id: call.id.clone(),
            direction,
            customer_number: self.customer_number(key),
            customer_name,
            line,
            started_at: call.started_at,
            answered_at,
            ended_at,
            outcome,
            answered_by,
            agent,
            originator,
            agents_rang: call.agents_rang.clone(),
            queue: call.queues.first().cloned(),
            queues: call.queues.clone(),
            wait_us,
            queue_wait_us,
            talk_us,
            hold_us,
            transfers: call.transfers.clone(),
            segments: call.segments.clone(),
            agent_talk,
            recording,
            application: call.application.clone(),
            degraded: call.degraded,
            short_abandon,
            hangup_cause,
            linkedids: call.linkedids.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn outcome(
        &self,
        call: &Call,
        direction: Direction,
        answered_at: Option<Timestamp>,
        cause: Option<u16>,
    ) -> Outcome {
        if answered_at.is_some() {
            return Outcome::Answered;
        }
        if call.voicemail {
            return Outcome::Voicemail;
        }
        let relevant: Vec<&DialTarget> = call
            .dests
            .iter()
            .filter(|d| match direction {
                Direction::Inbound | Direction::Internal => d.agent.is_some(),
                Direction::Outbound => {
                    d.agent.is_none() || self.role_of(&d.uniqueid) == Some(&Role::Customer)
                }
            })
            .collect();
        let rang = relevant.iter().any(|d| {
            matches!(
                d.status,
                None | Some(
                    DialStatus::NoAnswer
                        | DialStatus::Cancel
                        | DialStatus::Answer
                        | DialStatus::Other
                )
            )
        });
        let failure_cause = |c: u16| {
            matches!(
                c,
                1 | 2 | 3 | 20 | 21 | 22 | 27 | 28 | 34 | 38 | 41 | 42 | 44 | 58 | 127
            )
        };
        if rang {
            return Outcome::Missed;
        }
        if relevant.iter().any(|d| d.status == Some(DialStatus::Busy)) || cause == Some(17) {
            return Outcome::Busy;
        }
        if relevant.iter().any(|d| {
            matches!(
                d.status,
                Some(DialStatus::Congestion | DialStatus::ChanUnavail)
            )
        }) || cause.is_some_and(failure_cause)
        {
            return Outcome::Failed;
        }
        match direction {
            Direction::Inbound if relevant.is_empty() => Outcome::Abandoned,
            _ => Outcome::Missed,
        }
    }
}

fn empty_record(now: Timestamp) -> CallRecord {
    CallRecord {
        call_id: CallId::default(),
        direction: Direction::Internal,
        customer_number: None,
        customer_name: None,
        line: None,
        started_at: now,
        answered_at: None,
        ended_at: None,
        outcome: None,
        answered_by: None,
        agent: None,
        originator: None,
        agents_rang: Vec::new(),
        queue: None,
        queues: Vec::new(),
        wait_us: 0,
        queue_wait_us: 0,
        talk_us: 0,
        hold_us: 0,
        transfers: Vec::new(),
        segments: Vec::new(),
        agent_talk: Vec::new(),
        recording: None,
        application: None,
        degraded: false,
        short_abandon: false,
        hangup_cause: None,
        linkedids: Vec::new(),
    }
}

/// Ends a call that storage still holds as open although neither the PBX (its resync channel
/// list) nor the tracker knows it any more: it ended while Kommutator was not listening.
/// `last_seen` is the last time anything was recorded for it (never the current time, which
/// would invent talk time for the whole outage). The result is degraded, like every call
/// closed by a resync, and its outcome follows from what was known: answered if someone
/// answered, missed if an agent was offered it or it was dialled out, abandoned otherwise.
pub fn close_orphan(mut record: CallRecord, last_seen: Timestamp) -> CallRecord {
    let ended = if last_seen < record.started_at {
        record.started_at
    } else {
        last_seen
    };
    record.ended_at = Some(ended);
    record.degraded = true;
    record.outcome = Some(match record.answered_at {
        Some(answered) => {
            let talked = ended.micros_since(answered).max(0);
            record.talk_us = record.talk_us.max(talked);
            Outcome::Answered
        }
        None => {
            record.wait_us = record.wait_us.max(ended.micros_since(record.started_at));
            if !record.agents_rang.is_empty() || record.direction == Direction::Outbound {
                Outcome::Missed
            } else {
                Outcome::Abandoned
            }
        }
    });
    record
}

#[cfg(test)]
mod close_orphan_tests {
    use super::*;

    fn open_call(started: i64) -> CallRecord {
        CallRecord {
            call_id: CallId::new("1700000000.1"),
            direction: Direction::Inbound,
            ..empty_record(Timestamp::from_micros(started))
        }
    }

    #[test]
    fn ends_at_the_last_seen_time_with_the_known_outcome() {
        let mut answered = open_call(1_000_000);
        answered.answered_at = Some(Timestamp::from_micros(3_000_000));
        let closed = close_orphan(answered, Timestamp::from_micros(10_000_000));
        assert_eq!(closed.ended_at, Some(Timestamp::from_micros(10_000_000)));
        assert_eq!(closed.outcome, Some(Outcome::Answered));
        assert_eq!(closed.talk_us, 7_000_000);
        assert!(closed.degraded);

        let mut rang = open_call(1_000_000);
        rang.agents_rang.push(Extension::new("101"));
        let closed = close_orphan(rang, Timestamp::from_micros(4_000_000));
        assert_eq!(closed.outcome, Some(Outcome::Missed));
        assert_eq!(closed.wait_us, 3_000_000);

        let closed = close_orphan(open_call(1_000_000), Timestamp::from_micros(500_000));
        assert_eq!(closed.outcome, Some(Outcome::Abandoned));
        assert_eq!(closed.ended_at, Some(Timestamp::from_micros(1_000_000)));
    }
}
