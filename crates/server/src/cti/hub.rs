//! The hub task: PBX effects in, numbered panel events out, per viewer.
//!
//! One task owns all state (live calls, channel names, presence, the replay buffer and the
//! subscriber list), so ordering is simple: an event is numbered, stored and sent to every
//! subscriber that may see it before the next input is read, and a new subscriber gets its
//! replay and then live events with nothing lost in between. Anything slow (directory
//! lookups, storage writes, PBX commands) runs in spawned tasks that report back through the
//! same input channel, so a slow database never delays a screen pop to another agent.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use cti_core::agents::{
    AgentId, AgentSetup, AgentStatus, ChannelBook, Membership, Presence, PresenceEffect,
    PresenceInput, RequestedStatus,
};
use cti_core::{CallRecord, Direction, Effect, Outcome, RingEnd, Timestamp, UpdateReason};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{
    display_number, AgentView, CallView, ClientMessage, CustomerCard, ErrorView, InteractionView,
    ServerMessage, TaskView, TransferTarget, UserView, SNAPSHOT_CHUNK, VERSION,
};
use super::{CommandError, CommandFuture, CtiConfig, PbxCommand, PbxControl};

/// Inputs from one PBX pipeline, in the order the PBX produced them.
// PBX events are moved once per batch, not stored; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum HubItem {
    /// A call tracker effect at PBX time.
    Effect(Timestamp, Effect),
    /// A PBX event the channel book reads (see `ChannelBook::wants`).
    Event(cti_core::PbxEvent),
    /// A presence fact from the PBX (pause events, `QueueStatus` after a reconnect).
    Presence(PresenceInput),
    /// The router's reason for a call's route (shown in the screen pop).
    RouteReason {
        /// The call (tracker call id / Linkedid).
        call_id: String,
        /// The reason, in words.
        reason: String,
    },
}

/// Counters readable without asking the hub task.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Sockets subscribed now.
    pub subscribers: AtomicUsize,
    /// Events numbered since start.
    pub events: AtomicU64,
    /// Frames queued to sockets since start.
    pub frames_out: AtomicU64,
    /// Subscribers dropped because they did not keep up.
    pub slow_dropped: AtomicU64,
}

/// Who is looking: decides what a socket may receive.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub user_id: storage::UserId,
    pub login: String,
    pub display_name: String,
    pub role: storage::Role,
    pub extensions: Vec<String>,
}

impl Viewer {
    pub fn sees_everything(&self) -> bool {
        matches!(self.role, storage::Role::Supervisor | storage::Role::Admin)
    }

    fn sees(&self, audience: &Audience) -> bool {
        if self.sees_everything() {
            return true;
        }
        match audience {
            Audience::All => true,
            Audience::Extensions(extensions) => {
                self.extensions.iter().any(|e| extensions.contains(e))
            }
            Audience::UserOrExtensions(user, extensions) => {
                *user == Some(self.user_id)
                    || self.extensions.iter().any(|e| extensions.contains(e))
            }
            Audience::User(user) => *user == self.user_id,
            Audience::Supervisors => false,
        }
    }
}

/// Who may see an event.
#[derive(Debug, Clone)]
enum Audience {
    All,
    /// Agents on these extensions (the call's participants).
    Extensions(BTreeSet<String>),
    /// A user (task assignee) and agents on these extensions.
    UserOrExtensions(Option<storage::UserId>, BTreeSet<String>),
    User(storage::UserId),
    #[allow(dead_code)]
    Supervisors,
}

struct StoredEvent {
    seq: u64,
    audience: Audience,
    text: Arc<str>,
}

/// A subscription handed to a socket task.
pub(crate) struct Subscription {
    pub frames: mpsc::Receiver<Arc<str>>,
    /// The socket's own sender, for command results.
    pub reply: mpsc::Sender<Arc<str>>,
}

enum Msg {
    Pbx {
        pbx: String,
        received_at_us: i64,
        items: Vec<HubItem>,
    },
    AttachPbx(String, Arc<dyn PbxControl>),
    Subscribe {
        viewer: Viewer,
        since: Option<u64>,
        reply: oneshot::Sender<Subscription>,
    },
    Command {
        viewer: Viewer,
        command: ClientMessage,
        reply: mpsc::Sender<Arc<str>>,
    },
    CardReady {
        call_id: String,
        number: String,
        cards: Vec<CustomerCard>,
    },
    Agents(Vec<AgentRow>),
    ListAgents(oneshot::Sender<Vec<AgentView>>),
    TaskOpened {
        task: TaskView,
        call: Box<CallView>,
        audience_user: Option<storage::UserId>,
        extensions: BTreeSet<String>,
    },
    TasksClosed(Vec<(TaskView, Option<storage::UserId>)>),
    /// The PBX commands go to (the first attached), for work done outside the hub task.
    FirstPbx(oneshot::Sender<Option<Arc<dyn PbxControl>>>),
    DialFailed {
        reply: mpsc::Sender<Arc<str>>,
        id: Option<String>,
        number: String,
        message: String,
    },
}

/// A user the presence machine manages, with what the panel shows of them.
struct AgentRow {
    user_id: storage::UserId,
    setup: AgentSetup,
    display_name: String,
}

/// Handle to the hub task; cheap to clone. The task ends when every handle is dropped.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Msg>,
    head: Arc<AtomicU64>,
    stats: Arc<HubStats>,
    config: Arc<CtiConfig>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("head", &self.head).finish()
    }
}

/// Inputs waiting for the hub; bounded, so a stuck hub slows the pipeline instead of growing.
const INPUT_QUEUE: usize = 4096;
/// Frames queued per socket; a socket further behind is dropped and resumes on reconnect.
const SOCKET_QUEUE: usize = 512;
/// How often presence timers and pending screen pops are checked.
const TICK: Duration = Duration::from_millis(250);
/// How often the agent list is reloaded from storage (accounts added with the CLI).
const RELOAD_AGENTS: Duration = Duration::from_secs(60);
/// How long an agent's phone rings for a click-to-call before the PBX gives up.
const ORIGINATE_TIMEOUT_MS: u64 = 30_000;

/// A call id for a call placed on behalf of an integration, chosen before the call exists
/// (Originate `ChannelId`): `kc2c-<unix ms, hex>-<random>`, well under Asterisk's 149-byte
/// limit for an assigned Uniqueid.
pub fn new_call_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    format!("kc2c-{:x}-{:08x}", wall_micros() / 1000, OsRng.next_u32())
}

impl Hub {
    /// Starts the hub task. Agents are loaded from storage right away and every minute.
    pub fn start(storage: storage::Storage, config: CtiConfig) -> Hub {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let head = Arc::new(AtomicU64::new(wall_micros().max(1) as u64));
        let stats = Arc::new(HubStats::default());
        let config = Arc::new(config);
        let hub = Hub {
            tx: tx.clone(),
            head: head.clone(),
            stats: stats.clone(),
            config: config.clone(),
        };
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_statuses(storage.clone(), status_rx));
        let weak = tx.downgrade();
        let loader_storage = storage.clone();
        tokio::spawn(async move {
            loop {
                let Some(tx) = weak.upgrade() else { break };
                match load_agents(&loader_storage, &config).await {
                    Ok(agents) => {
                        if tx.send(Msg::Agents(agents)).await.is_err() {
                            break;
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "Cannot load agents; retrying."),
                }
                drop(tx);
                tokio::time::sleep(RELOAD_AGENTS).await;
            }
        });
        let state = State {
            presence: Presence::new(hub.config.presence.clone()),
            config: hub.config.clone(),
            storage,
            calls: HashMap::new(),
            book: ChannelBook::default(),
            events: VecDeque::new(),
            subscribers: Vec::new(),
            pbxes: Vec::new(),
            agents: HashMap::new(),
            users: HashMap::new(),
            pending: Vec::new(),
            last_snapshot: None,
            head,
            stats,
            self_tx: tx.downgrade(),
            status_tx,
        };
        tokio::spawn(run(state, rx));
        hub
    }

    /// Lets the hub send commands to a PBX (the pipeline calls this once it has a client).
    pub async fn attach_pbx(&self, name: &str, control: Arc<dyn PbxControl>) {
        let _ = self.tx.send(Msg::AttachPbx(name.to_owned(), control)).await;
    }

    /// Hands the hub what one batch of PBX input produced. `received_at_us` is when the batch
    /// reached the server (wall clock, µs since the epoch). Waits when the hub is behind.
    pub async fn publish(&self, pbx: &str, received_at_us: i64, items: Vec<HubItem>) {
        if items.is_empty() {
            return;
        }
        let _ = self
            .tx
            .send(Msg::Pbx {
                pbx: pbx.to_owned(),
                received_at_us,
                items,
            })
            .await;
    }

    /// Records the router's reason for a call's route; it appears in the call's screen pops.
    pub async fn route_decided(&self, pbx: &str, call_id: &str, reason: &str) {
        let item = HubItem::RouteReason {
            call_id: call_id.to_owned(),
            reason: reason.to_owned(),
        };
        self.publish(pbx, wall_micros(), vec![item]).await;
    }

    /// Click-to-call on behalf of an integration (a CRM's event, the REST dial): checks the
    /// request and picks the PBX now, and returns the command that rings `extension`'s phone
    /// and then dials `number`, with the call's id fixed to `channel_id` in advance. The
    /// returned future resolves when the PBX has placed or refused the call (the agent
    /// answered, or did not).
    pub async fn prepare_originate(
        &self,
        extension: &str,
        number: &str,
        channel_id: &str,
    ) -> Result<CommandFuture, CommandError> {
        let number = dialable(number).ok_or_else(|| {
            CommandError::Rejected(format!(
                "`{number}` is not a number that can be dialled (digits, +, * and #)"
            ))
        })?;
        if extension.is_empty() || !extension.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CommandError::Rejected(format!(
                "`{extension}` is not an extension"
            )));
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::FirstPbx(reply)).await.is_err() {
            return Err(CommandError::NotConnected);
        }
        let control = rx.await.ok().flatten().ok_or(CommandError::NotConnected)?;
        let command = originate(&self.config, extension, number, Some(channel_id.to_owned()));
        Ok(control.execute(command))
    }

    /// [`Hub::prepare_originate`] and then the call placed: resolves when the agent answered
    /// (or did not).
    pub async fn originate_for_crm(
        &self,
        extension: &str,
        number: &str,
        channel_id: &str,
    ) -> Result<(), CommandError> {
        self.prepare_originate(extension, number, channel_id)
            .await?
            .await
    }

    /// Counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// The newest event number.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    pub(crate) fn config(&self) -> &CtiConfig {
        &self.config
    }

    pub(crate) async fn subscribe(
        &self,
        viewer: Viewer,
        since: Option<u64>,
    ) -> Option<Subscription> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Subscribe {
                viewer,
                since,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    pub(crate) async fn command(
        &self,
        viewer: Viewer,
        command: ClientMessage,
        reply: mpsc::Sender<Arc<str>>,
    ) {
        let _ = self
            .tx
            .send(Msg::Command {
                viewer,
                command,
                reply,
            })
            .await;
    }

    pub(crate) async fn agents(&self) -> Vec<AgentView> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::ListAgents(reply)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub(crate) async fn set_status(&self, viewer: Viewer, status: RequestedStatus) {
        let (status, reason) = match status {
            RequestedStatus::Available => ("available", None),
            RequestedStatus::Away(reason) => ("away", Some(reason)),
            RequestedStatus::AfterCallWork => ("after_call_work", None),
            RequestedStatus::Offline => ("offline", None),
        };
        let (reply, _rx) = mpsc::channel(1);
        self.command(
            viewer,
            ClientMessage::SetStatus {
                id: None,
                status: status.to_owned(),
                reason,
                agent: None,
            },
            reply,
        )
        .await;
    }
}

/// A live call as the hub knows it.
struct LiveCall {
    pbx: String,
    record: CallRecord,
    participants: BTreeSet<String>,
    route_reason: Option<String>,
    card: CardState,
    on_hold: bool,
}

#[derive(Clone)]
enum CardState {
    /// No number to look up.
    NoNumber,
    /// A lookup for this number is running.
    Pending(String),
    /// The cards for this number.
    Ready(String, Vec<CustomerCard>),
}

struct PendingRing {
    call_id: String,
    agent: String,
    queue: Option<String>,
    received_at_us: i64,
    deadline: Instant,
}

struct Subscriber {
    viewer: Viewer,
    tx: mpsc::Sender<Arc<str>>,
}

struct AgentInfo {
    user_id: storage::UserId,
    display_name: String,
    extensions: Vec<String>,
}

struct State {
    presence: Presence,
    config: Arc<CtiConfig>,
    storage: storage::Storage,
    calls: HashMap<String, LiveCall>,
    book: ChannelBook,
    events: VecDeque<StoredEvent>,
    subscribers: Vec<Subscriber>,
    pbxes: Vec<(String, Arc<dyn PbxControl>)>,
    agents: HashMap<AgentId, AgentInfo>,
    /// Display names of every user (responsible managers on cards).
    users: HashMap<storage::UserId, String>,
    pending: Vec<PendingRing>,
    /// The PBX's last member list, re-applied to agents loaded after it arrived.
    last_snapshot: Option<Vec<cti_core::agents::MemberPauseState>>,
    head: Arc<AtomicU64>,
    stats: Arc<HubStats>,
    self_tx: mpsc::WeakSender<Msg>,
    status_tx: mpsc::UnboundedSender<(storage::UserId, String, Option<String>, DateTime<Utc>)>,
}

async fn run(mut state: State, mut rx: mpsc::Receiver<Msg>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => state.handle(msg),
                None => break,
            },
            _ = tick.tick() => state.tick(),
        }
    }
}

impl State {
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Pbx {
                pbx,
                received_at_us,
                items,
            } => {
                for item in items {
                    self.pbx_item(&pbx, received_at_us, item);
                }
            }
            Msg::AttachPbx(name, control) => {
                self.pbxes.retain(|(n, _)| *n != name);
                self.pbxes.push((name, control));
            }
            Msg::Subscribe {
                viewer,
                since,
                reply,
            } => self.subscribe(viewer, since, reply),
            Msg::Command {
                viewer,
                command,
                reply,
            } => self.command(viewer, command, reply),
            Msg::CardReady {
                call_id,
                number,
                cards,
            } => self.card_ready(&call_id, number, cards),
            Msg::Agents(rows) => self.set_agents(rows),
            Msg::ListAgents(reply) => {
                let _ = reply.send(self.agent_views());
            }
            Msg::TaskOpened {
                task,
                call,
                audience_user,
                extensions,
            } => {
                let seq = self.next_seq();
                self.emit(
                    Audience::UserOrExtensions(audience_user, extensions),
                    &ServerMessage::MissedCall {
                        seq,
                        task,
                        call: *call,
                    },
                    seq,
                );
            }
            Msg::TasksClosed(tasks) => {
                for (task, assignee) in tasks {
                    let seq = self.next_seq();
                    let audience = match assignee {
                        Some(user) => Audience::User(user),
                        None => Audience::Supervisors,
                    };
                    self.emit(audience, &ServerMessage::TaskUpdated { seq, task }, seq);
                }
            }
            Msg::FirstPbx(reply) => {
                let _ = reply.send(self.pbxes.first().map(|(_, c)| c.clone()));
            }
            Msg::DialFailed {
                reply,
                id,
                number,
                message,
            } => {
                send_now(
                    &reply,
                    &ServerMessage::DialProgress {
                        id,
                        state: "failed",
                        number,
                        message: Some(message),
                    },
                );
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.head.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Serializes once, keeps for replay, queues to every subscriber allowed to see it.
    fn emit(&mut self, audience: Audience, message: &ServerMessage, seq: u64) {
        let text: Arc<str> = match serde_json::to_string(message) {
            Ok(text) => text.into(),
            Err(err) => {
                tracing::error!(error = %err, "Cannot serialize a panel event.");
                return;
            }
        };
        let mut dropped = 0;
        self.subscribers.retain(|sub| {
            if !sub.viewer.sees(&audience) {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(text.clone()) {
                Ok(()) => true,
                Err(_) => {
                    dropped += 1;
                    false
                }
            }
        });
        let frames = self
            .subscribers
            .iter()
            .filter(|s| s.viewer.sees(&audience))
            .count();
        self.stats
            .frames_out
            .fetch_add(frames as u64, Ordering::Relaxed);
        if dropped > 0 {
            // Closed sockets and sockets too far behind; the latter resume on reconnect.
            self.stats
                .slow_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
        self.stats
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
        self.events.push_back(StoredEvent {
            seq,
            audience,
            text,
        });
        while self.events.len() > self.config.replay_events {
            self.events.pop_front();
        }
    }

    fn subscribe(
        &mut self,
        viewer: Viewer,
        since: Option<u64>,
        reply: oneshot::Sender<Subscription>,
    ) {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let head = self.head.load(Ordering::Relaxed);
        let oldest = self.events.front().map_or(head + 1, |e| e.seq);
        // Resume works when every event after `since` is still in the buffer.
        let resumable = since.is_some_and(|s| s <= head && s + 1 >= oldest);
        let hello = ServerMessage::Hello {
            v: VERSION,
            user: UserView {
                login: viewer.login.clone(),
                display_name: viewer.display_name.clone(),
                role: viewer.role.as_str(),
                extensions: viewer.extensions.clone(),
            },
            seq: head,
            resumed: resumable,
            heartbeat_s: self.config.heartbeat_secs,
            away_reasons: self.config.presence.away_reasons.clone(),
            dispositions: self.config.dispositions.clone(),
            after_call_work_s: self.config.presence.after_call_work_us / 1_000_000,
            server_time: rfc3339(Utc::now()),
        };
        let mut backlog: Vec<Arc<str>> = Vec::new();
        if let Ok(text) = serde_json::to_string(&hello) {
            backlog.push(text.into());
        }
        if let (true, Some(since)) = (resumable, since) {
            for event in self.events.iter().filter(|e| e.seq > since) {
                if viewer.sees(&event.audience) {
                    backlog.push(event.text.clone());
                }
            }
        } else {
            let calls: Vec<CallView> = self
                .calls
                .values()
                .filter(|c| viewer.sees(&Audience::Extensions(c.participants.clone())))
                .map(call_view)
                .collect();
            let agents = self.agent_views();
            let pieces = calls
                .len()
                .max(agents.len())
                .div_ceil(SNAPSHOT_CHUNK)
                .max(1);
            let mut calls = calls.into_iter();
            let mut agents = agents.into_iter();
            for piece in 0..pieces {
                let calls: Vec<CallView> = calls.by_ref().take(SNAPSHOT_CHUNK).collect();
                let agents: Vec<AgentView> = agents.by_ref().take(SNAPSHOT_CHUNK).collect();
                let more = piece + 1 < pieces;
                let message = if piece == 0 {
                    ServerMessage::Snapshot {
                        seq: head,
                        calls,
                        agents,
                        more,
                    }
                } else {
                    ServerMessage::SnapshotMore {
                        calls,
                        agents,
                        more,
                    }
                };
                if let Ok(text) = serde_json::to_string(&message) {
                    backlog.push(text.into());
                }
            }
        }
        // A replay longer than the socket queue is sent by a forwarding task so nothing is
        // dropped; the socket reads from `rx` either way.
        let (sub_tx, sub_rx) = if backlog.len() < SOCKET_QUEUE / 2 {
            for text in backlog {
                let _ = tx.try_send(text);
            }
            (tx.clone(), rx)
        } else {
            let (out_tx, out_rx) = mpsc::channel(SOCKET_QUEUE);
            let mut live = rx;
            let forward = out_tx.clone();
            tokio::spawn(async move {
                for text in backlog {
                    if forward.send(text).await.is_err() {
                        return;
                    }
                }
                while let Some(text) = live.recv().await {
                    if forward.send(text).await.is_err() {
                        return;
                    }
                }
            });
            (tx.clone(), out_rx)
        };
        let _ = reply.send(Subscription {
            frames: sub_rx,
            reply: sub_tx,
        });
        self.subscribers.push(Subscriber { viewer, tx });
        self.stats
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
    }

    fn set_agents(&mut self, rows: Vec<AgentRow>) {
        let now = wall_now();
        for row in &rows {
            for extension in &row.setup.extensions {
                self.book.add_agent_extension(extension.as_str());
            }
            self.users.insert(row.user_id, row.display_name.clone());
        }
        let mut added = false;
        for row in rows {
            if row.setup.extensions.is_empty() && row.setup.members.is_empty() {
                continue;
            }
            self.agents.insert(
                row.setup.agent.clone(),
                AgentInfo {
                    user_id: row.user_id,
                    display_name: row.display_name,
                    extensions: row
                        .setup
                        .extensions
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                },
            );
            let new = self.presence.agent(&row.setup.agent).is_none();
            self.presence.register(row.setup, now);
            added |= new;
        }
        // Agents loaded after the PBX reported its members reconcile with that report now.
        if let (true, Some(members)) = (added, self.last_snapshot.clone()) {
            let effects = self
                .presence
                .apply(PresenceInput::QueueSnapshot(members), now);
            self.presence_effects(effects);
        }
    }

    fn agent_views(&self) -> Vec<AgentView> {
        self.presence
            .agents()
            .map(|state| {
                let info = self.agents.get(&state.agent);
                agent_view(state, info.map_or("", |i| i.display_name.as_str()))
            })
            .collect()
    }

    fn tick(&mut self) {
        let effects = self.presence.apply(PresenceInput::Tick, wall_now());
        self.presence_effects(effects);
        let now = Instant::now();
        let due: Vec<PendingRing> = {
            let (due, keep) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| p.deadline <= now);
            self.pending = keep;
            due
        };
        for ring in due {
            self.send_ring(ring, "timeout");
        }
    }

    fn pbx_item(&mut self, pbx: &str, received_at_us: i64, item: HubItem) {
        match item {
            HubItem::Event(event) => self.book.observe(&event),
            HubItem::Presence(input) => {
                if let PresenceInput::QueueSnapshot(members) = &input {
                    self.last_snapshot = Some(members.clone());
                }
                let effects = self.presence.apply(input, wall_now());
                self.presence_effects(effects);
            }
            HubItem::RouteReason { call_id, reason } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.route_reason = Some(reason);
                }
            }
            HubItem::Effect(_, effect) => self.effect(pbx, received_at_us, effect),
        }
    }

    fn effect(&mut self, pbx: &str, received_at_us: i64, effect: Effect) {
        match effect {
            Effect::CallStarted(record) => {
                let participants = participants(&record);
                let call = LiveCall {
                    pbx: pbx.to_owned(),
                    record: *record,
                    participants,
                    route_reason: None,
                    card: CardState::NoNumber,
                    on_hold: false,
                };
                let id = call.record.call_id.to_string();
                self.calls.insert(id.clone(), call);
                self.look_up(&id);
            }
            Effect::CallUpdated { record, reason } => {
                let id = record.call_id.to_string();
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.participants.extend(participants(&record));
                call.record = *record;
                match reason {
                    UpdateReason::Held => call.on_hold = true,
                    UpdateReason::Unheld
                    | UpdateReason::Transferred
                    | UpdateReason::TransferExplained => call.on_hold = false,
                    _ => {}
                }
                let view = call_view(call);
                let audience = Audience::Extensions(call.participants.clone());
                let seq = self.next_seq();
                let message = match reason {
                    UpdateReason::Answered => {
                        self.close_callbacks(&id);
                        ServerMessage::Answered {
                            seq,
                            agent: view.agent.clone(),
                            call: view,
                        }
                    }
                    UpdateReason::Held => ServerMessage::Held { seq, call: view },
                    UpdateReason::Unheld => ServerMessage::Unheld { seq, call: view },
                    // An explained transfer is the same transfer with its kind corrected: the
                    // panel redraws it.
                    UpdateReason::Transferred | UpdateReason::TransferExplained => {
                        let last = self
                            .calls
                            .get(&id)
                            .and_then(|c| c.record.transfers.last().cloned());
                        ServerMessage::Transferred {
                            seq,
                            call: view,
                            from: last
                                .as_ref()
                                .and_then(|t| t.from.as_ref().map(ToString::to_string)),
                            to: last.as_ref().map(|t| t.to.clone()).unwrap_or_default(),
                            kind: last.map_or("blind", |t| t.kind.as_str()),
                        }
                    }
                    UpdateReason::CallerIdentified => {
                        self.look_up(&id);
                        ServerMessage::CallUpdated {
                            seq,
                            call: view,
                            what: "caller_identified",
                        }
                    }
                    UpdateReason::Queued => ServerMessage::CallUpdated {
                        seq,
                        call: view,
                        what: "queued",
                    },
                    UpdateReason::Recording => ServerMessage::CallUpdated {
                        seq,
                        call: view,
                        what: "recording",
                    },
                };
                self.emit(audience, &message, seq);
            }
            Effect::CallEnded(record) => {
                let id = record.call_id.to_string();
                let Some(mut call) = self.calls.remove(&id) else {
                    return;
                };
                call.participants.extend(participants(&record));
                call.record = *record;
                call.on_hold = false;
                self.book.end(&id);
                self.pending.retain(|p| p.call_id != id);
                let seq = self.next_seq();
                let view = call_view(&call);
                self.emit(
                    Audience::Extensions(call.participants.clone()),
                    &ServerMessage::Ended {
                        seq,
                        call: view.clone(),
                    },
                    seq,
                );
                self.open_callback(&call, view);
            }
            Effect::CallsMerged { survivor, absorbed } => {
                self.book.merge(survivor.as_str(), absorbed.as_str());
                if let Some(old) = self.calls.remove(absorbed.as_str()) {
                    if let Some(call) = self.calls.get_mut(survivor.as_str()) {
                        call.participants.extend(old.participants);
                    }
                }
            }
            Effect::AgentRinging {
                call_id,
                agent,
                queue,
            } => {
                let id = call_id.to_string();
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.participants.insert(agent.to_string());
                let ring = PendingRing {
                    call_id: id,
                    agent: agent.to_string(),
                    queue: queue.map(|q| q.to_string()),
                    received_at_us,
                    deadline: Instant::now() + Duration::from_millis(self.config.lookup_timeout_ms),
                };
                match &call.card {
                    CardState::Pending(_) => self.pending.push(ring),
                    CardState::Ready(..) => self.send_ring(ring, "found"),
                    CardState::NoNumber => self.send_ring(ring, "no_number"),
                }
            }
            Effect::AgentRingEnded {
                call_id,
                agent,
                how,
            } => {
                let id = call_id.to_string();
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                let audience = Audience::Extensions(call.participants.clone());
                self.pending
                    .retain(|p| !(p.call_id == id && p.agent == agent.as_str()));
                let seq = self.next_seq();
                self.emit(
                    audience,
                    &ServerMessage::RingEnded {
                        seq,
                        call_id: id,
                        agent: agent.to_string(),
                        how: ring_end(how),
                    },
                    seq,
                );
            }
            Effect::AgentConnected { call_id, agent } => {
                if let Some(call) = self.calls.get_mut(call_id.as_str()) {
                    call.participants.insert(agent.to_string());
                }
                let effects = self.presence.apply(
                    PresenceInput::CallConnected { extension: agent },
                    wall_now(),
                );
                self.presence_effects(effects);
            }
            Effect::AgentDisconnected { call_id, agent } => {
                let audience = match self.calls.get(call_id.as_str()) {
                    Some(call) => Audience::Extensions(call.participants.clone()),
                    None => Audience::Extensions([agent.to_string()].into()),
                };
                let seq = self.next_seq();
                self.emit(
                    audience,
                    &ServerMessage::AgentLeft {
                        seq,
                        call_id: call_id.to_string(),
                        agent: agent.to_string(),
                    },
                    seq,
                );
                let effects = self.presence.apply(
                    PresenceInput::CallDisconnected { extension: agent },
                    wall_now(),
                );
                self.presence_effects(effects);
            }
        }
    }

    /// Starts a directory lookup for the call's number unless one ran for it already.
    fn look_up(&mut self, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(number) = call.record.customer_number.as_ref().map(|n| n.text.clone()) else {
            return;
        };
        match &call.card {
            CardState::Pending(n) | CardState::Ready(n, _) if *n == number => return,
            _ => {}
        }
        call.card = CardState::Pending(number.clone());
        let line = call.record.line.as_ref().map(|l| l.text.clone());
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        let storage = self.storage.clone();
        let users = self.users.clone();
        let config = self.config.clone();
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            let cards =
                match customer_cards(&storage, &users, &config, &number, line.as_deref()).await {
                    Ok(cards) => cards,
                    Err(err) => {
                        tracing::warn!(error = %err, "Directory lookup for a screen pop failed.");
                        Vec::new()
                    }
                };
            let _ = tx
                .send(Msg::CardReady {
                    call_id,
                    number,
                    cards,
                })
                .await;
        });
    }

    fn card_ready(&mut self, call_id: &str, number: String, cards: Vec<CustomerCard>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        match &call.card {
            CardState::Pending(n) if *n == number => {}
            // A newer number is being looked up.
            _ => return,
        }
        call.card = CardState::Ready(number, cards);
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.call_id == call_id);
        self.pending = keep;
        for ring in due {
            self.send_ring(ring, "found");
        }
    }

    fn send_ring(&mut self, ring: PendingRing, lookup: &'static str) {
        let Some(call) = self.calls.get(&ring.call_id) else {
            return;
        };
        let line_instructions: Vec<String> = call
            .record
            .line
            .as_ref()
            .and_then(|l| self.config.line_instructions.get(&l.text))
            .cloned()
            .into_iter()
            .collect();
        let (customers, lookup) = match &call.card {
            CardState::Ready(_, cards) if cards.is_empty() => (Vec::new(), "not_found"),
            CardState::Ready(_, cards) => (cards.clone(), "found"),
            CardState::Pending(_) => (Vec::new(), lookup),
            CardState::NoNumber => (Vec::new(), "no_number"),
        };
        // A matched customer's card already carries the line's instructions.
        let line_instructions = if customers.is_empty() {
            line_instructions
        } else {
            Vec::new()
        };
        let audience = Audience::Extensions(call.participants.clone());
        let view = call_view(call);
        let seq = self.next_seq();
        self.emit(
            audience,
            &ServerMessage::Ringing {
                seq,
                call: view,
                agent: ring.agent,
                queue: ring.queue,
                customers,
                instructions: line_instructions,
                lookup,
                received_at_ms: ring.received_at_us / 1000,
            },
            seq,
        );
    }

    fn presence_effects(&mut self, effects: Vec<PresenceEffect>) {
        for effect in effects {
            match effect {
                PresenceEffect::StatusChanged {
                    agent,
                    status,
                    since,
                    source,
                } => {
                    let Some(state) = self.presence.agent(&agent) else {
                        continue;
                    };
                    let info = self.agents.get(&agent);
                    let view = agent_view(state, info.map_or("", |i| i.display_name.as_str()));
                    if let Some(info) = info {
                        let _ = self.status_tx.send((
                            info.user_id,
                            status.name().to_owned(),
                            status.reason().map(str::to_owned),
                            to_datetime(since),
                        ));
                    }
                    let seq = self.next_seq();
                    self.emit(
                        Audience::All,
                        &ServerMessage::AgentStatus {
                            seq,
                            agent: view,
                            source: source.as_str(),
                        },
                        seq,
                    );
                }
                PresenceEffect::PauseMember {
                    interface,
                    paused,
                    reason,
                } => {
                    let command = PbxCommand::QueuePause {
                        interface,
                        paused,
                        reason,
                    };
                    for (name, control) in &self.pbxes {
                        let future = control.execute(command.clone());
                        let name = name.clone();
                        tokio::spawn(async move {
                            if let Err(err) = future.await {
                                tracing::warn!(pbx = %name, error = %err, "QueuePause failed.");
                            }
                        });
                    }
                }
                PresenceEffect::Refused { agent, reason } => {
                    tracing::info!(agent = %agent, reason = %reason, "Status change refused.");
                }
            }
        }
    }

    fn command(&mut self, viewer: Viewer, command: ClientMessage, reply: mpsc::Sender<Arc<str>>) {
        let id = command.id();
        match self.resolve(&viewer, command, &reply) {
            Ok(Resolved::Done) => send_result(&reply, id, Ok(())),
            Ok(Resolved::Pbx(pbx, pbx_command)) => {
                let Some(control) = self.pbx(&pbx) else {
                    send_result(&reply, id, Err(CommandError::NotConnected.into()));
                    return;
                };
                let future = control.execute(pbx_command);
                tokio::spawn(async move {
                    let res = future.await.map_err(ErrorView::from);
                    send_result(&reply, id, res);
                });
            }
            Ok(Resolved::Dial {
                pbx_command,
                number,
            }) => {
                let Some(control) = self.pbxes.first().map(|(_, c)| c.clone()) else {
                    send_result(&reply, id, Err(CommandError::NotConnected.into()));
                    return;
                };
                send_now(
                    &reply,
                    &ServerMessage::DialProgress {
                        id: id.clone(),
                        state: "dialing",
                        number: number.clone(),
                        message: None,
                    },
                );
                let tx = self.self_tx.clone();
                let future = control.execute(pbx_command);
                tokio::spawn(async move {
                    let res = future.await;
                    if let Err(err) = &res {
                        if let Some(tx) = tx.upgrade() {
                            let _ = tx
                                .send(Msg::DialFailed {
                                    reply: reply.clone(),
                                    id: id.clone(),
                                    number,
                                    message: err.to_string(),
                                })
                                .await;
                        }
                    }
                    send_result(&reply, id, res.map_err(ErrorView::from));
                });
            }
            Ok(Resolved::Wrapup {
                call_id,
                disposition,
                notes,
            }) => {
                let storage = self.storage.clone();
                let viewer = viewer.clone();
                tokio::spawn(async move {
                    let res = save_wrapup(&storage, &viewer, &call_id, disposition, notes).await;
                    send_result(&reply, id, res);
                });
            }
            Err(error) => send_result(&reply, id, Err(error)),
        }
    }

    fn pbx(&self, name: &str) -> Option<Arc<dyn PbxControl>> {
        self.pbxes
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| self.pbxes.first())
            .map(|(_, c)| c.clone())
    }

    fn agent_of_viewer(&self, viewer: &Viewer) -> AgentId {
        AgentId::new(viewer.login.clone())
    }

    /// Checks a command against the viewer's rights and the live state, and says what to do.
    fn resolve(
        &mut self,
        viewer: &Viewer,
        command: ClientMessage,
        reply: &mpsc::Sender<Arc<str>>,
    ) -> Result<Resolved, ErrorView> {
        match command {
            ClientMessage::Ping { id } => {
                send_now(reply, &ServerMessage::Pong { id });
                Err(ErrorView {
                    code: "no_result",
                    message: String::new(),
                })
            }
            ClientMessage::SetStatus {
                status,
                reason,
                agent,
                ..
            } => {
                let target = match agent {
                    Some(login) if login != viewer.login => {
                        if !viewer.sees_everything() {
                            return Err(forbidden(
                                "only a supervisor may change another agent's status",
                            ));
                        }
                        AgentId::new(login)
                    }
                    _ => self.agent_of_viewer(viewer),
                };
                let requested = match (status.as_str(), reason) {
                    ("available", _) => RequestedStatus::Available,
                    ("offline", _) => RequestedStatus::Offline,
                    ("after_call_work", _) => RequestedStatus::AfterCallWork,
                    ("away", Some(reason)) => RequestedStatus::Away(reason),
                    ("away", None) => return Err(bad("an away status needs a reason")),
                    (other, _) => {
                        return Err(bad(&format!(
                            "`{other}` is not a status; use available, away, after_call_work or offline"
                        )))
                    }
                };
                let effects = self.presence.apply(
                    PresenceInput::SetStatus {
                        agent: target,
                        status: requested,
                    },
                    wall_now(),
                );
                if let Some(PresenceEffect::Refused { reason, .. }) = effects
                    .iter()
                    .find(|e| matches!(e, PresenceEffect::Refused { .. }))
                {
                    return Err(bad(reason));
                }
                self.presence_effects(effects);
                Ok(Resolved::Done)
            }
            ClientMessage::ExtendWrapup { seconds, .. } => {
                let effects = self.presence.apply(
                    PresenceInput::ExtendAfterCallWork {
                        agent: self.agent_of_viewer(viewer),
                        by_us: i64::from(seconds) * 1_000_000,
                    },
                    wall_now(),
                );
                if let Some(PresenceEffect::Refused { reason, .. }) = effects
                    .iter()
                    .find(|e| matches!(e, PresenceEffect::Refused { .. }))
                {
                    return Err(bad(reason));
                }
                self.presence_effects(effects);
                Ok(Resolved::Done)
            }
            ClientMessage::Dial { number, .. } => {
                let extension = viewer
                    .extensions
                    .first()
                    .ok_or_else(|| forbidden("you have no extension to call from"))?;
                let number = dialable(&number).ok_or_else(|| {
                    bad("the number may contain only digits, +, *, # and spaces or dashes")
                })?;
                Ok(Resolved::Dial {
                    pbx_command: originate(&self.config, extension, number.clone(), None),
                    number,
                })
            }
            ClientMessage::Hangup { call_id, .. } => {
                let (pbx, channel) = self.my_leg(viewer, &call_id)?;
                Ok(Resolved::Pbx(pbx, PbxCommand::Hangup { channel }))
            }
            ClientMessage::Transfer {
                call_id, to, kind, ..
            } => {
                let (pbx, channel) = self.my_leg(viewer, &call_id)?;
                let (exten, context) = match to {
                    TransferTarget::Agent(login) => {
                        let info = self
                            .agents
                            .get(&AgentId::new(login.clone()))
                            .ok_or_else(|| bad(&format!("there is no agent `{login}`")))?;
                        let exten = info
                            .extensions
                            .first()
                            .cloned()
                            .ok_or_else(|| bad("that agent has no extension"))?;
                        (exten, self.config.transfer_context.clone())
                    }
                    TransferTarget::Number(number) => {
                        let number = dialable(&number)
                            .ok_or_else(|| bad("the number may contain only digits, +, * and #"))?;
                        let context =
                            if self.agents.values().any(|a| a.extensions.contains(&number)) {
                                self.config.transfer_context.clone()
                            } else {
                                self.config.dial_context.clone()
                            };
                        (number, context)
                    }
                };
                let command = match kind.as_deref() {
                    None | Some("blind") => PbxCommand::BlindTransfer {
                        channel,
                        exten,
                        context,
                    },
                    Some("attended") => PbxCommand::AttendedTransfer {
                        channel,
                        exten,
                        context,
                    },
                    Some(other) => return Err(bad(&format!("`{other}` is not blind or attended"))),
                };
                Ok(Resolved::Pbx(pbx, command))
            }
            ClientMessage::Hold { call_id, .. } => self.hold(viewer, &call_id, true),
            ClientMessage::Unhold { call_id, .. } => self.hold(viewer, &call_id, false),
            ClientMessage::Wrapup {
                call_id,
                disposition,
                notes,
                ..
            } => {
                if let Some(d) = &disposition {
                    if !self.config.dispositions.contains(d) {
                        return Err(bad(&format!(
                            "`{d}` is not a disposition; use one of: {}",
                            self.config.dispositions.join(", ")
                        )));
                    }
                }
                Ok(Resolved::Wrapup {
                    call_id,
                    disposition,
                    notes: notes.map(|n| n.chars().take(4000).collect()),
                })
            }
        }
    }

    /// Hold redirects the customer to the music-on-hold extension; unhold redirects them to
    /// the agent's extension in the same context (see `docs/asterisk-hold.md`).
    fn hold(&self, viewer: &Viewer, call_id: &str, hold: bool) -> Result<Resolved, ErrorView> {
        let call = self
            .calls
            .get(call_id)
            .filter(|c| viewer.sees(&Audience::Extensions(c.participants.clone())))
            .ok_or_else(|| not_found("the call is over or unknown"))?;
        let pbx = call.pbx.clone();
        let customer = self
            .book
            .call(call_id)
            .and_then(|c| c.customer.clone())
            .ok_or_else(|| bad("the customer's channel is not known; hold is not possible"))?;
        let exten = if hold {
            self.config.hold_exten.clone()
        } else {
            viewer
                .extensions
                .first()
                .cloned()
                .ok_or_else(|| bad("you have no extension to take the call back on"))?
        };
        Ok(Resolved::Pbx(
            pbx,
            PbxCommand::Redirect {
                channel: customer,
                exten,
                context: self.config.hold_context.clone(),
            },
        ))
    }

    /// The viewer's leg in a live call (a supervisor acts on the customer's channel).
    fn my_leg(&self, viewer: &Viewer, call_id: &str) -> Result<(String, String), ErrorView> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| not_found("the call is over or unknown"))?;
        let allowed = viewer.sees(&Audience::Extensions(call.participants.clone()));
        if !allowed {
            return Err(not_found("the call is over or unknown"));
        }
        let channels = self.book.call(call_id);
        let leg = viewer
            .extensions
            .iter()
            .find_map(|e| channels.and_then(|c| c.agent_leg(e)))
            .map(str::to_owned);
        let channel = match leg {
            Some(leg) => leg,
            None if viewer.sees_everything() => channels
                .and_then(|c| c.customer.clone())
                .ok_or_else(|| bad("the call's channels are not known"))?,
            None => return Err(bad("you are not on this call")),
        };
        Ok((call.pbx.clone(), channel))
    }

    fn close_callbacks(&mut self, call_id: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.record.direction != Direction::Outbound {
            return;
        }
        let Some(number) = call.record.customer_number.as_ref().map(|n| n.text.clone()) else {
            return;
        };
        let customer = match &call.card {
            CardState::Ready(_, cards) => cards.first().map(|c| storage::CustomerId(c.id)),
            _ => None,
        };
        let (Some(tx), storage) = (self.self_tx.upgrade(), self.storage.clone()) else {
            return;
        };
        let users = self.users.clone();
        let call_id = storage::CallId::new(call_id.to_owned());
        tokio::spawn(async move {
            match storage
                .close_callback_tasks_for(customer, Some(&number), Some(&call_id), Utc::now())
                .await
            {
                Ok(tasks) if !tasks.is_empty() => {
                    let views = tasks
                        .into_iter()
                        .map(|t| {
                            let assignee = t.assignee_user_id;
                            (task_view(t, &users, None), assignee)
                        })
                        .collect();
                    let _ = tx.send(Msg::TasksClosed(views)).await;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "Cannot close callback tasks."),
            }
        });
    }

    /// A missed inbound call becomes a callback task for the responsible manager.
    fn open_callback(&mut self, call: &LiveCall, view: CallView) {
        let record = &call.record;
        let missed = matches!(record.outcome, Some(Outcome::Missed | Outcome::Abandoned));
        if !missed || record.direction != Direction::Inbound || record.short_abandon {
            return;
        }
        let Some(number) = record.customer_number.as_ref().map(|n| n.text.clone()) else {
            return;
        };
        let card = match &call.card {
            CardState::Ready(_, cards) => cards.first().cloned(),
            _ => None,
        };
        let responsible = card.as_ref().and_then(|c| {
            self.users
                .iter()
                .find(|(_, name)| Some(name.as_str()) == c.responsible.as_deref())
                .map(|(id, _)| *id)
        });
        let (Some(tx), storage) = (self.self_tx.upgrade(), self.storage.clone()) else {
            return;
        };
        let users = self.users.clone();
        let extensions = call.participants.clone();
        let task = storage::NewCallbackTask {
            customer_id: card.as_ref().map(|c| storage::CustomerId(c.id)),
            phone_e164: number,
            assignee_user_id: responsible,
            call_id: Some(storage::CallId::new(record.call_id.to_string())),
            due_at: None,
            note: None,
        };
        let customer_name = card.map(|c| c.name);
        tokio::spawn(async move {
            match storage.open_callback_task(&task, Utc::now()).await {
                Ok(opened) => {
                    let assignee = opened.task.assignee_user_id;
                    let view_task = task_view(opened.task, &users, customer_name);
                    let _ = tx
                        .send(Msg::TaskOpened {
                            task: view_task,
                            call: Box::new(view),
                            audience_user: assignee,
                            extensions,
                        })
                        .await;
                }
                Err(err) => tracing::warn!(error = %err, "Cannot open a callback task."),
            }
        });
    }
}

enum Resolved {
    Done,
    Pbx(String, PbxCommand),
    Dial {
        pbx_command: PbxCommand,
        number: String,
    },
    Wrapup {
        call_id: String,
        disposition: Option<String>,
        notes: Option<String>,
    },
}

impl From<CommandError> for ErrorView {
    fn from(err: CommandError) -> Self {
        let code = match err {
            CommandError::NotConnected => "pbx_not_connected",
            CommandError::Rejected(_) => "pbx_rejected",
            CommandError::Unknown(_) => "pbx_outcome_unknown",
        };
        ErrorView {
            code,
            message: err.to_string(),
        }
    }
}

fn bad(message: &str) -> ErrorView {
    ErrorView {
        code: "bad_request",
        message: message.to_owned(),
    }
}

fn forbidden(message: &str) -> ErrorView {
    ErrorView {
        code: "forbidden",
        message: message.to_owned(),
    }
}

fn not_found(message: &str) -> ErrorView {
    ErrorView {
        code: "not_found",
        message: message.to_owned(),
    }
}

fn send_now(reply: &mpsc::Sender<Arc<str>>, message: &ServerMessage) {
    if let Ok(text) = serde_json::to_string(message) {
        let _ = reply.try_send(text.into());
    }
}

fn send_result(reply: &mpsc::Sender<Arc<str>>, id: Option<String>, res: Result<(), ErrorView>) {
    let message = match res {
        Ok(()) => ServerMessage::CommandResult {
            id,
            ok: true,
            error: None,
        },
        Err(error) if error.code == "no_result" => return,
        Err(error) => ServerMessage::CommandResult {
            id,
            ok: false,
            error: Some(error),
        },
    };
    send_now(reply, &message);
}

/// Keeps what a dial string may hold; `None` when something else is in it.
/// Click-to-call as the configuration says to place it: `extension`'s phone first
/// (`phone_channel`), then `number` in `dial_context`.
fn originate(
    config: &CtiConfig,
    extension: &str,
    number: String,
    channel_id: Option<String>,
) -> PbxCommand {
    PbxCommand::Originate {
        agent_channel: config.phone_channel.replace("{extension}", extension),
        caller_id: format!("{} <{number}>", config.originate_caller_id),
        number,
        context: config.dial_context.clone(),
        timeout_ms: ORIGINATE_TIMEOUT_MS,
        channel_id,
    }
}

fn dialable(number: &str) -> Option<String> {
    let kept: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let valid = !kept.is_empty()
        && kept.len() <= 32
        && kept
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0));
    valid.then_some(kept)
}

async fn save_wrapup(
    storage: &storage::Storage,
    viewer: &Viewer,
    call_id: &str,
    disposition: Option<String>,
    notes: Option<String>,
) -> Result<(), ErrorView> {
    let id = storage::CallId::new(call_id.to_owned());
    let detail = storage
        .get_call(&id)
        .await
        .map_err(|_| ErrorView {
            code: "unavailable",
            message: "the database is temporarily unavailable".to_owned(),
        })?
        .ok_or_else(|| not_found("there is no such call"))?;
    let mine = viewer.sees_everything()
        || detail
            .agents
            .iter()
            .any(|a| viewer.extensions.contains(&a.extension))
        || detail
            .call
            .call
            .answered_by
            .as_ref()
            .is_some_and(|a| viewer.extensions.contains(a));
    if !mine {
        return Err(not_found("there is no such call"));
    }
    storage
        .set_call_wrapup(&id, disposition.as_deref(), notes.as_deref(), Utc::now())
        .await
        .map_err(|_| ErrorView {
            code: "unavailable",
            message: "the wrap-up could not be saved; try again".to_owned(),
        })
}

async fn write_statuses(
    storage: storage::Storage,
    mut rx: mpsc::UnboundedReceiver<(storage::UserId, String, Option<String>, DateTime<Utc>)>,
) {
    while let Some((user, status, reason, at)) = rx.recv().await {
        if let Err(err) = storage
            .record_status_change(user, &status, reason.as_deref(), at)
            .await
        {
            tracing::warn!(error = %err, "Cannot store an agent status change.");
        }
    }
}

async fn load_agents(
    storage: &storage::Storage,
    config: &CtiConfig,
) -> Result<Vec<AgentRow>, storage::StorageError> {
    let mut rows = Vec::new();
    for user in storage.list_users().await? {
        if user.disabled {
            continue;
        }
        let restored = match storage.current_status(user.id).await? {
            Some(span) => {
                let since = Timestamp::from_micros(span.started_at.timestamp_micros());
                let status = match span.status.as_str() {
                    "available" => Some(AgentStatus::Available),
                    "away" => Some(AgentStatus::Away {
                        reason: span.reason.clone().unwrap_or_default(),
                    }),
                    "after_call_work" => Some(AgentStatus::AfterCallWork {
                        until: since.plus_micros(config.presence.after_call_work_us),
                    }),
                    "offline" => Some(AgentStatus::Offline),
                    _ => None,
                };
                status.map(|s| (s, since))
            }
            None => None,
        };
        rows.push(AgentRow {
            user_id: user.id,
            display_name: user.display_name.clone(),
            setup: AgentSetup {
                agent: AgentId::new(user.login.clone()),
                extensions: user
                    .extensions
                    .iter()
                    .map(|e| cti_core::Extension::new(e.as_str()))
                    .collect(),
                members: user
                    .queues
                    .iter()
                    .map(|q| Membership {
                        queue: cti_core::QueueName::new(q.queue.as_str()),
                        interface: q.interface.clone(),
                    })
                    .collect(),
                restored,
            },
        });
    }
    Ok(rows)
}

/// Every directory customer with this number, as screen-pop cards.
pub(crate) async fn customer_cards(
    storage: &storage::Storage,
    users: &HashMap<storage::UserId, String>,
    config: &CtiConfig,
    number: &str,
    line: Option<&str>,
) -> Result<Vec<CustomerCard>, storage::StorageError> {
    let customers = storage.find_customers_by_phone(number).await?;
    let mut cards = Vec::with_capacity(customers.len());
    for customer in customers {
        cards.push(card(storage, users, config, customer, line).await?);
    }
    Ok(cards)
}

pub(crate) async fn card(
    storage: &storage::Storage,
    users: &HashMap<storage::UserId, String>,
    config: &CtiConfig,
    customer: storage::CustomerRow,
    line: Option<&str>,
) -> Result<CustomerCard, storage::StorageError> {
    let mut last_calls = Vec::new();
    for phone in customer.phones.iter().take(3) {
        let page = storage
            .list_calls(&storage::CallFilter {
                customer_number: Some(phone.phone_e164.clone()),
                limit: 5,
                ..storage::CallFilter::default()
            })
            .await?;
        last_calls.extend(page.calls.into_iter().map(interaction_view));
    }
    last_calls.sort_by(|a, b| b.at.cmp(&a.at));
    last_calls.truncate(5);
    let open_tasks = storage
        .list_tasks(&storage::TaskFilter {
            customer_id: Some(customer.id),
            status: Some(storage::TaskStatus::Open),
            limit: 10,
            ..storage::TaskFilter::default()
        })
        .await?
        .into_iter()
        .map(|t| task_view(t, users, Some(customer.name.clone())))
        .collect();
    let mut instructions: Vec<String> = customer.instructions.iter().cloned().collect();
    if let Some(text) = customer
        .segment
        .as_ref()
        .and_then(|s| config.segment_instructions.get(s))
    {
        instructions.push(text.clone());
    }
    if let Some(text) = line.and_then(|l| config.line_instructions.get(l)) {
        instructions.push(text.clone());
    }
    Ok(CustomerCard {
        id: customer.id.0,
        responsible: customer
            .responsible_user_id
            .and_then(|u| users.get(&u).cloned()),
        name: customer.name,
        company: customer.company,
        segment: customer.segment,
        tags: customer.tags,
        blacklisted: customer.blacklisted,
        debtor: customer.debtor,
        region: customer.region,
        notes: customer.notes,
        phones: customer.phones.into_iter().map(|p| p.phone_e164).collect(),
        instructions,
        last_calls,
        open_tasks,
    })
}

pub(crate) fn interaction_view(row: storage::CallRow) -> InteractionView {
    InteractionView {
        call_id: row.call.id.as_str().to_owned(),
        at: rfc3339(row.call.started_at),
        direction: row.call.direction.as_str(),
        outcome: row.call.outcome.map(storage::Outcome::as_str),
        agent: row.call.answered_by,
        disposition: row.disposition,
        notes: row.wrapup_notes,
    }
}

pub(crate) fn task_view(
    task: storage::TaskRow,
    users: &HashMap<storage::UserId, String>,
    customer_name: Option<String>,
) -> TaskView {
    TaskView {
        id: task.id.0,
        kind: task.kind,
        status: task.status.as_str(),
        phone_display: task.phone_e164.as_deref().map(display_number),
        phone: task.phone_e164,
        customer_id: task.customer_id.map(|c| c.0),
        customer_name,
        assignee: task.assignee_user_id.and_then(|u| users.get(&u).cloned()),
        call_id: task.call_id.map(|c| c.0),
        attempts: task.attempts,
        created_at: rfc3339(task.created_at),
        note: task.note,
    }
}

fn participants(record: &CallRecord) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = record.agents_rang.iter().map(ToString::to_string).collect();
    out.extend(record.segments.iter().map(|s| s.agent.to_string()));
    out.extend(record.originator.iter().map(ToString::to_string));
    out.extend(record.agent.iter().map(ToString::to_string));
    out.extend(record.answered_by.iter().map(ToString::to_string));
    out.extend(
        record
            .transfers
            .iter()
            .filter_map(|t| t.to_agent.as_ref().map(ToString::to_string)),
    );
    out
}

fn call_view(call: &LiveCall) -> CallView {
    let record = &call.record;
    let number = record.customer_number.as_ref().map(|n| n.text.clone());
    let talking = record
        .segments
        .iter()
        .rev()
        .find(|s| s.end.is_none())
        .map(|s| s.agent.to_string());
    CallView {
        id: record.call_id.to_string(),
        direction: record.direction.as_str(),
        number_display: number.as_deref().map(display_number),
        number,
        caller_name: record.customer_name.clone(),
        line: record.line.as_ref().map(|l| l.text.clone()),
        queue: record.queue.as_ref().map(ToString::to_string),
        started_at: record.started_at.to_string(),
        answered_at: record.answered_at.map(|t| t.to_string()),
        ended_at: record.ended_at.map(|t| t.to_string()),
        outcome: record.outcome.map(Outcome::as_str),
        agent: talking,
        agents_rang: record.agents_rang.iter().map(ToString::to_string).collect(),
        on_hold: call.on_hold,
        talk_s: record.talk_us as f64 / 1e6,
        hold_s: record.hold_us as f64 / 1e6,
        route_reason: call.route_reason.clone(),
        recording: record.recording.is_some(),
    }
}

fn agent_view(state: &cti_core::agents::AgentState, display_name: &str) -> AgentView {
    AgentView {
        login: state.agent.to_string(),
        display_name: display_name.to_owned(),
        extensions: state.extensions.iter().map(ToString::to_string).collect(),
        status: state.status.name(),
        reason: state.status.reason().map(str::to_owned),
        since: rfc3339(to_datetime(state.since)),
        until: match state.status {
            AgentStatus::AfterCallWork { until } => Some(rfc3339(to_datetime(until))),
            _ => None,
        },
        on_call: state.calls > 0,
    }
}

fn ring_end(how: RingEnd) -> &'static str {
    match how {
        RingEnd::Answered => "answered",
        RingEnd::NoAnswer => "no_answer",
        RingEnd::Busy => "busy",
        RingEnd::Cancelled => "cancelled",
        RingEnd::Failed => "failed",
    }
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn to_datetime(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.as_micros()).unwrap_or_default()
}

/// Wall clock, µs since the epoch.
pub fn wall_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn wall_now() -> Timestamp {
    Timestamp::from_micros(wall_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_strings_keep_only_what_a_pbx_dials() {
        assert_eq!(
            dialable("+7 (916) 123-45-67").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(dialable("*72#").as_deref(), Some("*72#"));
        assert_eq!(dialable("101&Local/evil"), None);
        assert_eq!(dialable("1+1"), None);
        assert_eq!(dialable(""), None);
    }

    #[test]
    fn placed_call_ids_are_unique_and_short_enough_for_asterisk() {
        let a = new_call_id();
        let b = new_call_id();
        assert_ne!(a, b);
        assert!(a.starts_with("kc2c-") && a.len() < 149, "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
