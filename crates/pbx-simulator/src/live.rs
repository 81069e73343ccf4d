//! What the simulated Asterisk knows right now: live channels, device and extension states,
//! queue members and waiting callers, learned from the frames it emitted.
//!
//! It answers the list actions a client uses to resync (`CoreShowChannels`, `QueueStatus`,
//! `DeviceStateList`, `ExtensionStateList`) in Asterisk 22's field layout, and produces the
//! events for state the simulator changes itself (`QueueMemberPause`, a `Hangup` action).
//! Pure: no I/O, no clock; times are parameters.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use crate::template::split_frames;
use crate::time::hms;

/// Channel snapshot fields, in the order `ast_manager_build_channel_state_string` writes them.
const SNAPSHOT: [&str; 14] = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
];

/// A queue as configured in the recording's `queues.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    pub strategy: String,
    pub members: Vec<MemberConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// `MemberName`, e.g. `Agent 101`.
    pub name: String,
    /// `Interface`, e.g. `Local/101@agents/nm`.
    pub interface: String,
    /// `StateInterface`, e.g. `Custom:agent-101`.
    pub state_interface: String,
    pub paused: bool,
}

impl QueueConfig {
    /// The queues of the recording Asterisk (`scenarios/asterisk-22.10.1/asterisk-etc/queues.conf`).
    pub fn recorded() -> Vec<QueueConfig> {
        let member = |ext: u32, paused: bool| MemberConfig {
            name: format!("Agent {ext}"),
            interface: format!("Local/{ext}@agents/nm"),
            state_interface: format!("Custom:agent-{ext}"),
            paused,
        };
        let queue = |name: &str, strategy: &str, members: Vec<MemberConfig>| QueueConfig {
            name: name.into(),
            strategy: strategy.into(),
            members,
        };
        vec![
            queue(
                "sales",
                "ringall",
                vec![member(101, false), member(102, false), member(103, false)],
            ),
            queue(
                "support",
                "linear",
                vec![member(103, false), member(102, false)],
            ),
            queue("billing", "rrmemory", vec![member(103, false)]),
            queue("hotline", "ringall", vec![member(104, true)]),
        ]
    }
}

#[derive(Debug, Clone)]
struct LiveChannel {
    call: u64,
    /// Snapshot values, indexed like `SNAPSHOT`.
    snapshot: [Vec<u8>; 14],
    application: Vec<u8>,
    application_data: Vec<u8>,
    created_us: i64,
    bridge_id: Vec<u8>,
}

#[derive(Debug, Clone)]
struct MemberState {
    queue: String,
    config: MemberConfig,
    calls_taken: Vec<u8>,
    last_call: Vec<u8>,
    in_call: Vec<u8>,
    status: Vec<u8>,
    paused: bool,
    paused_reason: String,
    last_pause_secs: i64,
}

#[derive(Debug, Clone)]
struct QueueEntryState {
    queue: String,
    uniqueid: Vec<u8>,
    joined_us: i64,
}

#[derive(Debug, Clone)]
struct QueueStats {
    strategy: String,
    completed: u64,
    abandoned: u64,
}

#[derive(Debug, Clone)]
struct ExtensionState {
    hint: Vec<u8>,
    status: Vec<u8>,
    status_text: Vec<u8>,
}

/// The channels of a call that was cut short, to announce their hangup.
#[derive(Debug, Clone)]
pub(crate) struct EndedChannel {
    snapshot: [Vec<u8>; 14],
}

/// A change of a member's pause state, as `QueuePause` requests it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PauseOutcome {
    /// The `QueueMemberPause` events to send, one per queue the member is in.
    Changed(Vec<Vec<u8>>),
    NotFound,
}

#[derive(Debug, Clone)]
pub(crate) struct LiveState {
    channels: BTreeMap<u64, LiveChannel>,
    by_uniqueid: HashMap<Vec<u8>, u64>,
    next_channel_key: u64,
    devices: BTreeMap<Vec<u8>, Vec<u8>>,
    extensions: BTreeMap<(Vec<u8>, Vec<u8>), ExtensionState>,
    members: Vec<MemberState>,
    queues: BTreeMap<String, QueueStats>,
    queue_order: Vec<String>,
    entries: Vec<QueueEntryState>,
    boot_secs: i64,
}

impl LiveState {
    pub fn new(queues: &[QueueConfig], boot_secs: i64) -> LiveState {
        let mut state = LiveState {
            channels: BTreeMap::new(),
            by_uniqueid: HashMap::new(),
            next_channel_key: 0,
            devices: BTreeMap::new(),
            extensions: BTreeMap::new(),
            members: Vec::new(),
            queues: BTreeMap::new(),
            queue_order: Vec::new(),
            entries: Vec::new(),
            boot_secs,
        };
        for q in queues {
            state.queue_order.push(q.name.clone());
            state.queues.insert(
                q.name.clone(),
                QueueStats {
                    strategy: q.strategy.clone(),
                    completed: 0,
                    abandoned: 0,
                },
            );
            for m in &q.members {
                state.members.push(MemberState {
                    queue: q.name.clone(),
                    config: m.clone(),
                    calls_taken: b"0".to_vec(),
                    last_call: b"0".to_vec(),
                    in_call: b"0".to_vec(),
                    status: b"1".to_vec(),
                    paused: m.paused,
                    paused_reason: String::new(),
                    last_pause_secs: 0,
                });
                state.devices.insert(
                    m.state_interface.clone().into_bytes(),
                    b"NOT_INUSE".to_vec(),
                );
                // The recording's hints are `10X@agents` → `Custom:agent-10X`.
                if let Some(ext) = m.state_interface.strip_prefix("Custom:agent-") {
                    state.extensions.insert(
                        (ext.as_bytes().to_vec(), b"agents".to_vec()),
                        ExtensionState {
                            hint: m.state_interface.clone().into_bytes(),
                            status: b"0".to_vec(),
                            status_text: b"Idle".to_vec(),
                        },
                    );
                }
            }
        }
        state
    }

    /// Learns from one emitted frame of call `call`.
    pub fn apply(&mut self, call: u64, frame: &[u8], now_us: i64) {
        let frames = split_frames(frame);
        let Some(headers) = frames.first() else {
            return;
        };
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name.as_bytes())
                .map(|(_, v)| *v)
        };
        let Some(event) = get("Event") else {
            return;
        };
        match event {
            b"Cdr" | b"CEL" => return,
            b"Newchannel" => {
                if let Some(uid) = get("Uniqueid") {
                    let snapshot = SNAPSHOT.map(|f| get(f).unwrap_or_default().to_vec());
                    let key = self.next_channel_key;
                    self.next_channel_key += 1;
                    self.by_uniqueid.insert(uid.to_vec(), key);
                    self.channels.insert(
                        key,
                        LiveChannel {
                            call,
                            snapshot,
                            application: Vec::new(),
                            application_data: Vec::new(),
                            created_us: now_us,
                            bridge_id: Vec::new(),
                        },
                    );
                }
                return;
            }
            _ => {}
        }
        // Every call event carries fresh snapshots; keep the latest of each live channel.
        for prefix in ["", "Dest"] {
            let uid_name = format!("{prefix}Uniqueid");
            let Some(uid) = get(&uid_name) else { continue };
            let Some(key) = self.by_uniqueid.get(uid).copied() else {
                continue;
            };
            if let Some(ch) = self.channels.get_mut(&key) {
                for (i, field) in SNAPSHOT.iter().enumerate() {
                    if let Some(v) = get(&format!("{prefix}{field}")) {
                        ch.snapshot[i] = v.to_vec();
                    }
                }
            }
        }
        let primary = get("Uniqueid").and_then(|u| self.by_uniqueid.get(u).copied());
        match event {
            b"Newexten" => {
                if let Some(ch) = primary.and_then(|k| self.channels.get_mut(&k)) {
                    ch.application = get("Application").unwrap_or_default().to_vec();
                    ch.application_data = get("AppData").unwrap_or_default().to_vec();
                }
            }
            b"BridgeEnter" => {
                if let Some(ch) = primary.and_then(|k| self.channels.get_mut(&k)) {
                    ch.bridge_id = get("BridgeUniqueid").unwrap_or_default().to_vec();
                }
            }
            b"BridgeLeave" => {
                if let Some(ch) = primary.and_then(|k| self.channels.get_mut(&k)) {
                    ch.bridge_id.clear();
                }
            }
            b"Hangup" => {
                if let (Some(key), Some(uid)) = (primary, get("Uniqueid")) {
                    self.channels.remove(&key);
                    self.by_uniqueid.remove(uid);
                    self.entries.retain(|e| e.uniqueid != uid);
                }
            }
            b"DeviceStateChange" => {
                if let (Some(device), Some(state)) = (get("Device"), get("State")) {
                    self.devices.insert(device.to_vec(), state.to_vec());
                }
            }
            b"ExtensionStatus" => {
                if let (Some(exten), Some(context)) = (get("Exten"), get("Context")) {
                    self.extensions.insert(
                        (exten.to_vec(), context.to_vec()),
                        ExtensionState {
                            hint: get("Hint").unwrap_or_default().to_vec(),
                            status: get("Status").unwrap_or_default().to_vec(),
                            status_text: get("StatusText").unwrap_or_default().to_vec(),
                        },
                    );
                }
            }
            b"QueueMemberStatus" => {
                let (Some(queue), Some(interface)) = (get("Queue"), get("Interface")) else {
                    return;
                };
                if let Some(m) = self.member_mut(queue, interface) {
                    let copy = |v: Option<&[u8]>, into: &mut Vec<u8>| {
                        if let Some(v) = v {
                            *into = v.to_vec();
                        }
                    };
                    copy(get("CallsTaken"), &mut m.calls_taken);
                    copy(get("LastCall"), &mut m.last_call);
                    copy(get("InCall"), &mut m.in_call);
                    copy(get("Status"), &mut m.status);
                }
            }
            b"QueueCallerJoin" => {
                if let (Some(queue), Some(uid)) = (get("Queue"), get("Uniqueid")) {
                    self.entries.push(QueueEntryState {
                        queue: String::from_utf8_lossy(queue).into_owned(),
                        uniqueid: uid.to_vec(),
                        joined_us: now_us,
                    });
                }
            }
            b"QueueCallerLeave" | b"QueueCallerAbandon" => {
                if let Some(uid) = get("Uniqueid") {
                    self.entries.retain(|e| e.uniqueid != uid);
                }
                if event == b"QueueCallerAbandon" {
                    if let Some(q) = get("Queue").and_then(|q| self.queue_stats_mut(q)) {
                        q.abandoned += 1;
                    }
                }
            }
            b"AgentComplete" => {
                if let Some(q) = get("Queue").and_then(|q| self.queue_stats_mut(q)) {
                    q.completed += 1;
                }
            }
            _ => {}
        }
    }

    /// A template's `QueueMemberStatus` frame carries the pause state of the recording; when the
    /// simulator's state differs (a client paused the member), returns the frame with the
    /// simulator's values, as Asterisk would report them.
    pub fn patch_member_frame(&self, frame: &[u8]) -> Option<Vec<u8>> {
        if !frame.starts_with(b"Event: QueueMemberStatus\r\n") {
            return None;
        }
        let frames = split_frames(frame);
        let headers = frames.first()?;
        let get = |name: &[u8]| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let member = self.member(get(b"Queue")?, get(b"Interface")?)?;
        let paused: &[u8] = if member.paused { b"1" } else { b"0" };
        let last_pause = member.last_pause_secs.to_string();
        if get(b"Paused") == Some(paused)
            && get(b"PausedReason") == Some(member.paused_reason.as_bytes())
            && (member.last_pause_secs == 0 || get(b"LastPause") == Some(last_pause.as_bytes()))
        {
            return None;
        }
        let mut out = Vec::with_capacity(frame.len() + 16);
        for (name, value) in headers {
            let value: &[u8] = match *name {
                b"Paused" => paused,
                b"PausedReason" => member.paused_reason.as_bytes(),
                b"LastPause" if member.last_pause_secs != 0 => last_pause.as_bytes(),
                _ => value,
            };
            push_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        Some(out)
    }

    /// Applies `QueuePause`: `queue` `None` = every queue the interface is a member of.
    pub fn pause(
        &mut self,
        interface: &str,
        queue: Option<&str>,
        paused: bool,
        reason: &str,
        now_us: i64,
    ) -> PauseOutcome {
        let now_secs = now_us.div_euclid(1_000_000);
        let boot_secs = self.boot_secs;
        let mut events = Vec::new();
        for m in self.members.iter_mut() {
            if m.config.interface != interface || queue.is_some_and(|q| q != m.queue) {
                continue;
            }
            m.paused = paused;
            m.paused_reason = if paused {
                reason.to_owned()
            } else {
                String::new()
            };
            m.last_pause_secs = now_secs;
            events.push(member_event("QueueMemberPause", m, boot_secs, now_us));
        }
        if events.is_empty() {
            PauseOutcome::NotFound
        } else {
            PauseOutcome::Changed(events)
        }
    }

    /// Live channels of one call, oldest first.
    pub fn channels_of_call(&self, call: u64) -> Vec<EndedChannel> {
        self.channels
            .values()
            .filter(|c| c.call == call)
            .map(|c| EndedChannel {
                snapshot: c.snapshot.clone(),
            })
            .collect()
    }

    /// The call a channel (by exact name) belongs to.
    pub fn call_of_channel(&self, name: &[u8]) -> Option<u64> {
        self.channels
            .values()
            .find(|c| c.snapshot[0] == name)
            .map(|c| c.call)
    }

    /// Forgets a call's channels and queue entries (the call is gone).
    pub fn remove_call(&mut self, call: u64) {
        let uids: Vec<Vec<u8>> = self
            .channels
            .values()
            .filter(|c| c.call == call)
            .map(|c| c.snapshot[12].clone())
            .collect();
        self.channels.retain(|_, c| c.call != call);
        for uid in &uids {
            self.by_uniqueid.remove(uid);
        }
        self.entries.retain(|e| !uids.contains(&e.uniqueid));
    }

    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }

    /// `CoreShowChannels`: the response, one `CoreShowChannel` per live channel, and the
    /// completion event.
    pub fn core_show_channels(&self, action_id: Option<&[u8]>, now_us: i64) -> Vec<u8> {
        let mut out = Vec::new();
        list_ack(&mut out, action_id, b"Channels will follow");
        for ch in self.channels.values() {
            push_header(&mut out, b"Event", b"CoreShowChannel");
            if let Some(id) = action_id {
                push_header(&mut out, b"ActionID", id);
            }
            for (name, value) in SNAPSHOT.iter().zip(&ch.snapshot) {
                push_header(&mut out, name.as_bytes(), value);
            }
            push_header(&mut out, b"Application", &ch.application);
            push_header(&mut out, b"ApplicationData", &ch.application_data);
            let secs = (now_us - ch.created_us).div_euclid(1_000_000);
            push_header(&mut out, b"Duration", hms(secs).as_bytes());
            push_header(&mut out, b"BridgeId", &ch.bridge_id);
            out.extend_from_slice(b"\r\n");
        }
        list_complete(
            &mut out,
            b"CoreShowChannelsComplete",
            action_id,
            self.channels.len(),
        );
        out
    }

    /// `QueueStatus`, optionally for one queue and/or one member interface.
    pub fn queue_status(
        &self,
        action_id: Option<&[u8]>,
        queue_filter: Option<&[u8]>,
        member_filter: Option<&[u8]>,
        now_us: i64,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut items = 0;
        list_ack(&mut out, action_id, b"Queue status will follow");
        for queue in &self.queue_order {
            if queue_filter.is_some_and(|f| f != queue.as_bytes()) {
                continue;
            }
            let Some(stats) = self.queues.get(queue) else {
                continue;
            };
            let entries: Vec<&QueueEntryState> =
                self.entries.iter().filter(|e| &e.queue == queue).collect();
            let _ = write!(
                out,
                "Event: QueueParams\r\nQueue: {queue}\r\nMax: 0\r\nStrategy: {}\r\n\
Calls: {}\r\nHoldtime: 0\r\nTalkTime: 0\r\nCompleted: {}\r\nAbandoned: {}\r\n\
ServiceLevel: 20\r\nServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0\r\n",
                stats.strategy,
                entries.len(),
                stats.completed,
                stats.abandoned
            );
            end_list_item(&mut out, action_id);
            items += 1;
            for m in self.members.iter().filter(|m| &m.queue == queue) {
                if member_filter.is_some_and(|f| f != m.config.interface.as_bytes()) {
                    continue;
                }
                let _ = write!(
                    out,
                    "Event: QueueMember\r\nQueue: {queue}\r\nName: {}\r\nLocation: {}\r\n\
StateInterface: {}\r\nMembership: static\r\nPenalty: 0\r\n",
                    m.config.name, m.config.interface, m.config.state_interface
                );
                push_header(&mut out, b"CallsTaken", &m.calls_taken);
                push_header(&mut out, b"LastCall", &m.last_call);
                let _ = write!(
                    out,
                    "LastPause: {}\r\nLoginTime: {}\r\n",
                    m.last_pause_secs, self.boot_secs
                );
                push_header(&mut out, b"InCall", &m.in_call);
                push_header(&mut out, b"Status", &m.status);
                let _ = write!(
                    out,
                    "Paused: {}\r\nPausedReason: {}\r\nWrapuptime: 0\r\n",
                    u8::from(m.paused),
                    m.paused_reason
                );
                end_list_item(&mut out, action_id);
                items += 1;
            }
            for (pos, e) in entries.iter().enumerate() {
                let Some(ch) = self
                    .by_uniqueid
                    .get(&e.uniqueid)
                    .and_then(|k| self.channels.get(k))
                else {
                    continue;
                };
                let _ = write!(
                    out,
                    "Event: QueueEntry\r\nQueue: {queue}\r\nPosition: {}\r\n",
                    pos + 1
                );
                push_header(&mut out, b"Channel", &ch.snapshot[0]);
                push_header(&mut out, b"Uniqueid", &ch.snapshot[12]);
                push_header(&mut out, b"CallerIDNum", &ch.snapshot[3]);
                push_header(&mut out, b"CallerIDName", &ch.snapshot[4]);
                push_header(&mut out, b"ConnectedLineNum", &ch.snapshot[5]);
                push_header(&mut out, b"ConnectedLineName", &ch.snapshot[6]);
                let wait = (now_us - e.joined_us).div_euclid(1_000_000);
                let _ = write!(out, "Wait: {wait}\r\nPriority: 0\r\n");
                end_list_item(&mut out, action_id);
                items += 1;
            }
        }
        list_complete(&mut out, b"QueueStatusComplete", action_id, items);
        out
    }

    pub fn device_state_list(&self, action_id: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        list_ack(&mut out, action_id, b"Device State Changes will follow");
        for (device, state) in &self.devices {
            push_header(&mut out, b"Event", b"DeviceStateChange");
            if let Some(id) = action_id {
                push_header(&mut out, b"ActionID", id);
            }
            push_header(&mut out, b"Device", device);
            push_header(&mut out, b"State", state);
            out.extend_from_slice(b"\r\n");
        }
        list_complete(
            &mut out,
            b"DeviceStateListComplete",
            action_id,
            self.devices.len(),
        );
        out
    }

    pub fn extension_state_list(&self, action_id: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        list_ack(&mut out, action_id, b"Extension Statuses will follow");
        for ((exten, context), state) in &self.extensions {
            push_header(&mut out, b"Event", b"ExtensionStatus");
            if let Some(id) = action_id {
                push_header(&mut out, b"ActionID", id);
            }
            push_header(&mut out, b"Exten", exten);
            push_header(&mut out, b"Context", context);
            push_header(&mut out, b"Hint", &state.hint);
            push_header(&mut out, b"Status", &state.status);
            push_header(&mut out, b"StatusText", &state.status_text);
            out.extend_from_slice(b"\r\n");
        }
        list_complete(
            &mut out,
            b"ExtensionStateListComplete",
            action_id,
            self.extensions.len(),
        );
        out
    }

    fn member(&self, queue: &[u8], interface: &[u8]) -> Option<&MemberState> {
        self.members
            .iter()
            .find(|m| m.queue.as_bytes() == queue && m.config.interface.as_bytes() == interface)
    }

    fn member_mut(&mut self, queue: &[u8], interface: &[u8]) -> Option<&mut MemberState> {
        self.members
            .iter_mut()
            .find(|m| m.queue.as_bytes() == queue && m.config.interface.as_bytes() == interface)
    }

    fn queue_stats_mut(&mut self, queue: &[u8]) -> Option<&mut QueueStats> {
        let name = std::str::from_utf8(queue).ok()?;
        self.queues.get_mut(name)
    }
}

/// The `HangupRequest` of the channel an AMI `Hangup` named, then a `Hangup` for every channel of
/// its call, newest first, as Asterisk tears a call down.
pub(crate) fn hangup_events(
    channels: &[EndedChannel],
    requested: &[u8],
    cause: u8,
    now_us: i64,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let timestamp = format!(
        "{}.{:06}",
        now_us.div_euclid(1_000_000),
        now_us.rem_euclid(1_000_000)
    );
    let snapshot_event = |event: &[u8], ch: &EndedChannel, extra: &[(&[u8], &[u8])]| {
        let mut out = Vec::new();
        push_header(&mut out, b"Event", event);
        push_header(&mut out, b"Privilege", b"call,all");
        push_header(&mut out, b"Timestamp", timestamp.as_bytes());
        for (name, value) in SNAPSHOT.iter().zip(&ch.snapshot) {
            push_header(&mut out, name.as_bytes(), value);
        }
        for (name, value) in extra {
            push_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        out
    };
    let cause_text = cause.to_string();
    if let Some(ch) = channels.iter().find(|c| c.snapshot[0] == requested) {
        frames.push(snapshot_event(
            b"HangupRequest",
            ch,
            &[(b"Cause", cause_text.as_bytes())],
        ));
    }
    for ch in channels.iter().rev() {
        frames.push(snapshot_event(
            b"Hangup",
            ch,
            &[
                (b"Cause", cause_text.as_bytes()),
                (b"Cause-txt", cause_description(cause).as_bytes()),
            ],
        ));
    }
    frames
}

/// `Cause-txt` of the Q.850 causes Asterisk names (`include/asterisk/causes.h`).
pub(crate) fn cause_description(cause: u8) -> &'static str {
    match cause {
        1 => "Unallocated (unassigned) number",
        3 => "No route to destination",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        20 => "Subscriber absent",
        21 => "Call Rejected",
        26 => "Answered elsewhere",
        27 => "Destination out of order",
        28 => "Invalid number format",
        31 => "Normal, unspecified",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        44 => "Requested channel not available",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

fn member_event(event: &str, m: &MemberState, boot_secs: i64, now_us: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = write!(
        out,
        "Event: {event}\r\nPrivilege: agent,all\r\nTimestamp: {}.{:06}\r\nQueue: {}\r\n\
MemberName: {}\r\nInterface: {}\r\nStateInterface: {}\r\nMembership: static\r\nPenalty: 0\r\n",
        now_us.div_euclid(1_000_000),
        now_us.rem_euclid(1_000_000),
        m.queue,
        m.config.name,
        m.config.interface,
        m.config.state_interface
    );
    push_header(&mut out, b"CallsTaken", &m.calls_taken);
    push_header(&mut out, b"LastCall", &m.last_call);
    let _ = write!(
        out,
        "LastPause: {}\r\nLoginTime: {boot_secs}\r\n",
        m.last_pause_secs
    );
    push_header(&mut out, b"InCall", &m.in_call);
    push_header(&mut out, b"Status", &m.status);
    let _ = write!(
        out,
        "Paused: {}\r\nPausedReason: {}\r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n",
        u8::from(m.paused),
        m.paused_reason
    );
    out
}

pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `astman_send_listack`: the response that opens an event list.
fn list_ack(out: &mut Vec<u8>, action_id: Option<&[u8]>, message: &[u8]) {
    push_header(out, b"Response", b"Success");
    if let Some(id) = action_id {
        push_header(out, b"ActionID", id);
    }
    push_header(out, b"EventList", b"start");
    push_header(out, b"Message", message);
    out.extend_from_slice(b"\r\n");
}

/// `astman_send_list_complete_start` + `_end`.
fn list_complete(out: &mut Vec<u8>, event: &[u8], action_id: Option<&[u8]>, items: usize) {
    push_header(out, b"Event", event);
    if let Some(id) = action_id {
        push_header(out, b"ActionID", id);
    }
    push_header(out, b"EventList", b"Complete");
    push_header(out, b"ListItems", items.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// app_queue writes the ActionID last in its list items.
fn end_list_item(out: &mut Vec<u8>, action_id: Option<&[u8]>) {
    if let Some(id) = action_id {
        push_header(out, b"ActionID", id);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newchannel(name: &str, uid: &str) -> Vec<u8> {
        format!(
            "Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1.000000\r\nChannel: {name}\r\n\
ChannelState: 4\r\nChannelStateDesc: Ring\r\nCallerIDNum: +15551230001\r\nCallerIDName: Alice\r\n\
ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n\
Context: incoming\r\nExten: +18005550100\r\nPriority: 1\r\nUniqueid: {uid}\r\nLinkedid: 1.1\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn channels_appear_update_and_hang_up() {
        let mut s = LiveState::new(&QueueConfig::recorded(), 100);
        s.apply(7, &newchannel("Local/a-00000001;1", "1.1"), 1_000_000);
        s.apply(7, &newchannel("Local/a-00000001;2", "1.2"), 1_000_000);
        s.apply(
            7,
            b"Event: Newexten\r\nChannel: Local/a-00000001;2\r\nChannelState: 6\r\n\
ChannelStateDesc: Up\r\nUniqueid: 1.2\r\nApplication: Queue\r\nAppData: sales,tT\r\n\r\n",
            2_000_000,
        );
        let list = String::from_utf8(s.core_show_channels(Some(b"r1"), 4_500_000)).expect("utf-8");
        assert!(list.starts_with(
            "Response: Success\r\nActionID: r1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
        ));
        assert_eq!(list.matches("Event: CoreShowChannel\r\n").count(), 2);
        assert!(list.contains("ChannelState: 6\r\nChannelStateDesc: Up\r\n"));
        assert!(list.contains(
            "Linkedid: 1.1\r\nApplication: Queue\r\nApplicationData: sales,tT\r\nDuration: 00:00:03\r\nBridgeId: \r\n\r\n"
        ));
        assert!(list.ends_with(
            "Event: CoreShowChannelsComplete\r\nActionID: r1\r\nEventList: Complete\r\nListItems: 2\r\n\r\n"
        ));
        assert_eq!(s.call_of_channel(b"Local/a-00000001;1"), Some(7));
        let ended = s.channels_of_call(7);
        let frames = hangup_events(&ended, b"Local/a-00000001;1", 16, 5_000_000);
        assert_eq!(frames.len(), 3);
        assert!(frames[0].starts_with(b"Event: HangupRequest\r\n"));
        for f in &frames {
            s.apply(7, f, 5_000_000);
        }
        assert_eq!(s.n_channels(), 0);
    }

    #[test]
    fn pause_changes_queue_status_and_patches_member_events() {
        let mut s = LiveState::new(&QueueConfig::recorded(), 100);
        assert_eq!(
            s.pause("Local/999@agents/nm", None, true, "x", 0),
            PauseOutcome::NotFound
        );
        let PauseOutcome::Changed(events) =
            s.pause("Local/102@agents/nm", None, true, "Lunch", 7_000_000)
        else {
            panic!("agent 102 is a member of sales and support");
        };
        assert_eq!(events.len(), 2);
        let text = String::from_utf8(events[0].clone()).expect("utf-8");
        assert!(text.starts_with("Event: QueueMemberPause\r\nPrivilege: agent,all\r\nTimestamp: 7.000000\r\nQueue: sales\r\nMemberName: Agent 102\r\n"));
        assert!(text.contains("Paused: 1\r\nPausedReason: Lunch\r\n"));
        let status =
            String::from_utf8(s.queue_status(Some(b"q"), Some(b"sales"), None, 0)).expect("utf-8");
        assert_eq!(status.matches("Event: QueueMember\r\n").count(), 3);
        assert!(status.contains("Location: Local/102@agents/nm\r\n"));
        assert!(
            status.contains("Paused: 1\r\nPausedReason: Lunch\r\nWrapuptime: 0\r\nActionID: q\r\n")
        );
        assert!(status.ends_with("ListItems: 4\r\n\r\n"));

        let recorded = b"Event: QueueMemberStatus\r\nPrivilege: agent,all\r\nQueue: sales\r\n\
MemberName: Agent 102\r\nInterface: Local/102@agents/nm\r\nLastPause: 0\r\nStatus: 6\r\n\
Paused: 0\r\nPausedReason: \r\n\r\n";
        let patched = s.patch_member_frame(recorded).expect("differs");
        let patched = String::from_utf8(patched).expect("utf-8");
        assert!(
            patched.contains("LastPause: 7\r\nStatus: 6\r\nPaused: 1\r\nPausedReason: Lunch\r\n")
        );
        // The paused hotline member already matches the recording: nothing to patch.
        let hotline =
            b"Event: QueueMemberStatus\r\nQueue: hotline\r\nInterface: Local/104@agents/nm\r\n\
Paused: 1\r\nPausedReason: \r\n\r\n";
        assert_eq!(s.patch_member_frame(hotline), None);
    }
}
