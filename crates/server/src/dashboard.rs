//! The live supervisor dashboard: agents with their status, time in status and current call;
//! queues with waiting callers, the longest wait and available agents; KPI counters over
//! sliding windows (last 15 minutes, last hour, the current shift — configurable); alerts.
//!
//! One task owns the picture. It is fed the call tracker's effects by every pipeline
//! ([`Dashboard::publish`]) and agent presence by subscribing to the CTI hub as a supervisor,
//! and it is seeded at start from storage (the calls of the longest window), so a restart does
//! not reset the counters. Every `refresh` it renders one JSON frame and hands it to a
//! `watch` channel: each supervisor socket sends the latest frame, so a slow browser skips
//! pictures instead of slowing the others, and fan-out costs one serialization per refresh.
//!
//! Window counters use `cti_core::kpi` on the same facts storage keeps (milliseconds,
//! truncated), and status time and callbacks come from the same storage queries the reports
//! use: the dashboard's "last hour" equals the report of that hour.
//!
//! What it is not: a store. It keeps only what its windows need.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use cti_core::kpi::{self, CallFacts, KpiSums};
use cti_core::{CallRecord, Direction, Effect, Outcome, Timestamp, UpdateReason};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::auth::AuthUser;
use crate::reports::{self, KpiDto, Period, ReportsConfig};
use crate::{ApiError, AppState};

/// How the dashboard behaves; from the `[dashboard]` configuration section.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Sliding windows, minutes (a shift window is always added).
    pub windows_minutes: Vec<u32>,
    /// Local minutes after midnight at which shifts start.
    pub shift_starts_min: Vec<u32>,
    /// How often a new frame is rendered.
    pub refresh: Duration,
    /// Alert when more callers than this wait in a queue (0: off).
    pub queue_waiting_max: u32,
    /// Alert when a caller waits longer than this (zero: off).
    pub wait_max: Duration,
    /// Alert when an agent is away longer than this (zero: off).
    pub away_max: Duration,
    /// Alert when a missed call is not called back within this (zero: off).
    pub callback_max: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            windows_minutes: vec![15, 60],
            shift_starts_min: vec![0],
            refresh: Duration::from_secs(1),
            queue_waiting_max: 5,
            wait_max: Duration::from_secs(60),
            away_max: Duration::from_secs(15 * 60),
            callback_max: Duration::from_secs(30 * 60),
        }
    }
}

/// An agent's status changed (from the CTI hub's presence), for the event stream out.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStatusChange {
    /// When, as the hub stamped it.
    pub at: Timestamp,
    pub login: String,
    pub extensions: Vec<String>,
    pub status: String,
    pub reason: Option<String>,
    /// Who changed it (`agent`, `supervisor`, `pbx`, `timer`, …).
    pub origin: String,
}

/// Counters readable without asking the task.
#[derive(Debug, Default)]
pub struct DashboardStats {
    /// Supervisor sockets open now.
    pub sockets: AtomicUsize,
    /// Frames rendered since start.
    pub frames: AtomicU64,
}

/// Handle to the dashboard task; cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    tx: mpsc::Sender<Input>,
    frames: watch::Receiver<Arc<str>>,
    statuses: broadcast::Sender<AgentStatusChange>,
    stats: Arc<DashboardStats>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

enum Input {
    Effects(Vec<(Timestamp, Effect)>),
    Agents(Vec<Value>),
    AgentStatus(Value),
    Snapshot {
        now_us: i64,
        reply: oneshot::Sender<Value>,
    },
}

/// Effects waiting for the dashboard; bounded, so a stuck dashboard slows the pipeline rather
/// than growing without limit.
const INPUT_QUEUE: usize = 4096;

impl Dashboard {
    /// Starts the task: seeds the windows from storage, subscribes to the hub's presence,
    /// renders a frame every `config.refresh`.
    pub fn start(
        storage: storage::Storage,
        hub: crate::cti::Hub,
        reports: Arc<ReportsConfig>,
        config: DashboardConfig,
    ) -> Dashboard {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let (frame_tx, frames) = watch::channel(Arc::<str>::from("{}"));
        let (statuses, _) = broadcast::channel(1024);
        let stats = Arc::new(DashboardStats::default());
        let dashboard = Dashboard {
            tx: tx.clone(),
            frames,
            statuses: statuses.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(follow_hub(hub, tx.downgrade()));
        let state = Live {
            config,
            reports,
            storage,
            calls: HashMap::new(),
            ended: HashMap::new(),
            agents: BTreeMap::new(),
            late_callbacks: Vec::new(),
            members: HashMap::new(),
            activity: Vec::new(),
            statuses,
        };
        tokio::spawn(run(state, rx, frame_tx, stats));
        dashboard
    }

    /// Hands the dashboard what one batch of PBX input produced. Waits when it is behind.
    pub async fn publish(&self, items: Vec<(Timestamp, Effect)>) {
        if !items.is_empty() {
            let _ = self.tx.send(Input::Effects(items)).await;
        }
    }

    /// Agent status changes as they happen (for the event stream out).
    pub fn agent_statuses(&self) -> broadcast::Receiver<AgentStatusChange> {
        self.statuses.subscribe()
    }

    /// The picture as of `now_us` (µs since the epoch): tests and `GET /api/v1/dashboard`.
    pub async fn snapshot_at(&self, now_us: i64) -> Value {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Input::Snapshot { now_us, reply })
            .await
            .is_err()
        {
            return Value::Null;
        }
        rx.await.unwrap_or(Value::Null)
    }

    /// The latest rendered frame.
    pub fn latest(&self) -> Arc<str> {
        self.frames.borrow().clone()
    }

    /// A receiver of rendered frames (each socket holds one).
    pub fn frames(&self) -> watch::Receiver<Arc<str>> {
        self.frames.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &DashboardStats {
        &self.stats
    }
}

/// `/api/v1/dashboard` (the frame) and `/api/v1/dashboard/ws` (frames as they are rendered);
/// supervisors and admins only.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(current))
        .route("/dashboard/ws", get(socket))
}

/// The page (`/dashboard/`).
pub(crate) fn page_router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { axum::response::Redirect::temporary("/dashboard/") }))
        .route(
            "/dashboard/",
            get(|State(s): State<AppState>| async move { reports::asset(&s, reports::HTML, PAGE_HTML) }),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|State(s): State<AppState>| async move { reports::asset(&s, reports::JS, PAGE_JS) }),
        )
}

const PAGE_HTML: &str = include_str!("../../../web/dashboard/index.html");
const PAGE_JS: &str = include_str!("../../../web/dashboard/dashboard.js");

async fn current(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
) -> Result<Json<Value>, ApiError> {
    require_supervisor(&user)?;
    Ok(Json(
        state.dashboard.snapshot_at(crate::cti::wall_micros()).await,
    ))
}

async fn socket(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let dashboard = state.dashboard.clone();
    Ok(upgrade
        .on_upgrade(move |ws| serve_socket(ws, dashboard))
        .into_response())
}

fn require_supervisor(user: &AuthUser) -> Result<(), ApiError> {
    if user.sees_everything() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the dashboard is for supervisors and administrators".to_owned(),
        ))
    }
}

async fn serve_socket(mut ws: WebSocket, dashboard: Dashboard) {
    dashboard.stats.sockets.fetch_add(1, Ordering::Relaxed);
    let mut frames = dashboard.frames();
    let first = frames.borrow_and_update().clone();
    let mut ok = ws.send(Message::Text(first.as_ref().into())).await.is_ok();
    while ok {
        tokio::select! {
            changed = frames.changed() => {
                if changed.is_err() {
                    break;
                }
                let frame = frames.borrow_and_update().clone();
                ok = ws.send(Message::Text(frame.as_ref().into())).await.is_ok();
            }
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    dashboard.stats.sockets.fetch_sub(1, Ordering::Relaxed);
}

/// Subscribes to the CTI hub as a supervisor and forwards agent snapshots and status
/// changes; re-subscribes when the hub drops a slow subscriber.
async fn follow_hub(hub: crate::cti::Hub, tx: mpsc::WeakSender<Input>) {
    let viewer = crate::cti::Viewer {
        user_id: storage::UserId(0),
        login: "dashboard".to_owned(),
        display_name: "Dashboard".to_owned(),
        role: storage::Role::Supervisor,
        extensions: Vec::new(),
    };
    loop {
        let Some(mut subscription) = hub.subscribe(viewer.clone(), None).await else {
            return;
        };
        while let Some(frame) = subscription.frames.recv().await {
            let Ok(message) = serde_json::from_str::<Value>(&frame) else {
                continue;
            };
            let input = match message["type"].as_str() {
                Some("snapshot") => {
                    Input::Agents(message["agents"].as_array().cloned().unwrap_or_default())
                }
                Some("agent_status") => Input::AgentStatus(message),
                _ => continue,
            };
            let Some(tx) = tx.upgrade() else { return };
            if tx.send(input).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A call in progress, as the dashboard shows it.
struct LiveCall {
    record: CallRecord,
    /// When it entered its current queue (PBX time), while it waits there.
    queued_since: Option<Timestamp>,
    /// Agents whose phones ring for it.
    ringing: Vec<String>,
}

/// A finished call, kept while a window may hold it.
#[derive(Clone)]
struct Ended {
    started_at_us: i64,
    queue: Option<String>,
    facts: CallFacts,
}

struct Live {
    config: DashboardConfig,
    reports: Arc<ReportsConfig>,
    storage: storage::Storage,
    calls: HashMap<String, LiveCall>,
    ended: HashMap<String, Ended>,
    agents: BTreeMap<String, Value>,
    late_callbacks: Vec<Value>,
    /// Queue → logins of its members (from the user accounts).
    members: HashMap<String, Vec<String>>,
    /// Per window (same order as `windows()`): status time, agents' talk and callbacks from
    /// storage, refreshed every few seconds.
    activity: Vec<(i64, i64, kpi::ActivitySums, kpi::CallbackSums)>,
    statuses: broadcast::Sender<AgentStatusChange>,
}

async fn run(
    mut live: Live,
    mut rx: mpsc::Receiver<Input>,
    frames: watch::Sender<Arc<str>>,
    stats: Arc<DashboardStats>,
) {
    live.seed().await;
    let mut tick = tokio::time::interval(live.config.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let slow_every =
        (Duration::from_secs(5).as_millis() / live.config.refresh.as_millis().max(1)).max(1) as u64;
    let mut n_ticks: u64 = 0;
    loop {
        tokio::select! {
            input = rx.recv() => match input {
                Some(Input::Effects(items)) => {
                    for (at, effect) in items {
                        live.apply(at, effect);
                    }
                }
                Some(Input::Agents(agents)) => {
                    live.agents = agents
                        .into_iter()
                        .filter_map(|a| Some((a["login"].as_str()?.to_owned(), a)))
                        .collect();
                }
                Some(Input::AgentStatus(message)) => live.agent_status(message),
                Some(Input::Snapshot { now_us, reply }) => {
                    live.refresh_storage_parts(now_us).await;
                    let _ = reply.send(live.render(now_us));
                }
                None => break,
            },
            _ = tick.tick() => {
                let now_us = crate::cti::wall_micros();
                if n_ticks.is_multiple_of(slow_every) {
                    live.refresh_storage_parts(now_us).await;
                    live.prune(now_us);
                }
                n_ticks += 1;
                let frame = live.render(now_us).to_string();
                stats.frames.fetch_add(1, Ordering::Relaxed);
                let _ = frames.send(Arc::from(frame));
            }
        }
    }
}

impl Live {
    /// The windows as of `now_us`: (name, from µs).
    fn windows(&self, now_us: i64) -> Vec<(String, i64)> {
        let mut res: Vec<(String, i64)> = self
            .config
            .windows_minutes
            .iter()
            .map(|m| (format!("{m}m"), now_us - i64::from(*m) * 60_000_000))
            .collect();
        res.push((
            "shift".to_owned(),
            kpi::shift_start(
                now_us,
                self.reports.utc_offset_s,
                &self.config.shift_starts_min,
            ),
        ));
        res
    }

    /// How far back finished calls are kept: the longest window (a shift is at most a day).
    fn keep_us(&self) -> i64 {
        let longest = self
            .config
            .windows_minutes
            .iter()
            .max()
            .copied()
            .unwrap_or(0);
        (i64::from(longest) * 60_000_000).max(kpi::DAY_US) + kpi::HOUR_US
    }

    async fn seed(&mut self) {
        let now_us = crate::cti::wall_micros();
        let from = from_us(now_us - self.keep_us());
        let to = from_us(now_us + kpi::HOUR_US);
        match self.storage.report_call_facts(from, to).await {
            Ok(rows) => {
                for row in rows {
                    if let Some(facts) = facts_of_row(&row) {
                        self.ended.insert(
                            row.call_id.clone(),
                            Ended {
                                started_at_us: row.started_at_us,
                                queue: row.queue.clone(),
                                facts,
                            },
                        );
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot seed the dashboard from storage; counters start empty.")
            }
        }
    }

    fn apply(&mut self, at: Timestamp, effect: Effect) {
        match effect {
            Effect::CallStarted(record) => {
                self.calls.insert(
                    record.call_id.to_string(),
                    LiveCall {
                        record: *record,
                        queued_since: None,
                        ringing: Vec::new(),
                    },
                );
            }
            Effect::CallUpdated { record, reason } => {
                let id = record.call_id.to_string();
                let call = self.calls.entry(id).or_insert_with(|| LiveCall {
                    record: (*record).clone(),
                    queued_since: None,
                    ringing: Vec::new(),
                });
                match reason {
                    UpdateReason::Queued => call.queued_since = Some(at),
                    UpdateReason::Answered => {
                        call.queued_since = None;
                        call.ringing.clear();
                    }
                    _ => {}
                }
                call.record = *record;
            }
            Effect::CallEnded(record) => {
                let id = record.call_id.to_string();
                self.calls.remove(&id);
                if let Some(facts) = CallFacts::from_record(&record) {
                    self.ended.insert(
                        id,
                        Ended {
                            started_at_us: record.started_at.as_micros(),
                            queue: record.queue.as_ref().map(ToString::to_string),
                            facts,
                        },
                    );
                }
            }
            Effect::CallsMerged { absorbed, .. } => {
                self.calls.remove(absorbed.as_str());
            }
            Effect::AgentRinging { call_id, agent, .. } => {
                if let Some(call) = self.calls.get_mut(call_id.as_str()) {
                    if !call.ringing.iter().any(|a| a == agent.as_str()) {
                        call.ringing.push(agent.to_string());
                    }
                }
            }
            Effect::AgentRingEnded { call_id, agent, .. } => {
                if let Some(call) = self.calls.get_mut(call_id.as_str()) {
                    call.ringing.retain(|a| a != agent.as_str());
                }
            }
            Effect::AgentConnected { .. } | Effect::AgentDisconnected { .. } => {}
        }
    }

    fn agent_status(&mut self, message: Value) {
        let agent = message["agent"].clone();
        let Some(login) = agent["login"].as_str().map(str::to_owned) else {
            return;
        };
        let change = AgentStatusChange {
            at: agent["since"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map_or_else(
                    || Timestamp::from_micros(crate::cti::wall_micros()),
                    |t| Timestamp::from_micros(t.timestamp_micros()),
                ),
            login: login.clone(),
            extensions: agent["extensions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            status: agent["status"].as_str().unwrap_or_default().to_owned(),
            reason: agent["reason"].as_str().map(str::to_owned),
            origin: message["source"].as_str().unwrap_or_default().to_owned(),
        };
        let _ = self.statuses.send(change);
        self.agents.insert(login, agent);
    }

    fn prune(&mut self, now_us: i64) {
        let keep_from = now_us - self.keep_us();
        self.ended.retain(|_, e| e.started_at_us >= keep_from);
    }

    /// Status time, agents' talk and callbacks per window, and late callbacks, from storage.
    async fn refresh_storage_parts(&mut self, now_us: i64) {
        let now = from_us(now_us);
        let mut activity = Vec::new();
        for (_, from) in self.windows(now_us) {
            let period = Period {
                from: from_us(from),
                to: now,
            };
            match reports::activity_and_callbacks(&self.storage, period, now).await {
                Ok((a, c)) => activity.push((from, now_us, a, c)),
                Err(_) => activity.push((from, now_us, Default::default(), Default::default())),
            }
        }
        self.activity = activity;
        if let Ok(users) = self.storage.list_users().await {
            self.members.clear();
            for user in users.iter().filter(|u| !u.disabled) {
                for q in &user.queues {
                    self.members
                        .entry(q.queue.clone())
                        .or_default()
                        .push(user.login.clone());
                }
            }
        }
        self.late_callbacks.clear();
        if self.config.callback_max.is_zero() {
            return;
        }
        let filter = storage::TaskFilter {
            status: Some(storage::TaskStatus::Open),
            kind: Some(storage::TASK_KIND_CALLBACK.to_owned()),
            limit: 200,
            ..Default::default()
        };
        if let Ok(tasks) = self.storage.list_tasks(&filter).await {
            let limit = chrono::Duration::from_std(self.config.callback_max).unwrap_or_default();
            for task in tasks {
                let age = now - task.created_at;
                if age > limit {
                    self.late_callbacks.push(json!({
                        "kind": "callback_late", "number": task.phone_e164,
                        "task_id": task.id.0, "seconds": age.num_seconds(),
                    }));
                }
            }
        }
    }

    fn render(&self, now_us: i64) -> Value {
        let now = Timestamp::from_micros(now_us);
        let windows: Vec<Value> = self
            .windows(now_us)
            .into_iter()
            .map(|(name, from)| {
                let mut sums = KpiSums::default();
                let mut per_queue: BTreeMap<Option<String>, KpiSums> = BTreeMap::new();
                for e in self.ended.values() {
                    if e.started_at_us >= from && e.started_at_us < now_us {
                        let threshold = self.reports.service_level.threshold_ms(e.queue.as_deref());
                        sums.add(&e.facts, threshold);
                        per_queue.entry(e.queue.clone()).or_default().add(&e.facts, threshold);
                    }
                }
                let (activity, callbacks) = self
                    .activity
                    .iter()
                    .find(|(f, _, _, _)| *f == from)
                    .map(|(_, _, a, c)| (*a, *c))
                    .unwrap_or_default();
                let queues: Vec<Value> = per_queue
                    .iter()
                    .map(|(q, s)| json!({ "queue": q, "kpis": KpiDto::from(kpi::kpis(s, &Default::default(), &Default::default())) }))
                    .collect();
                json!({
                    "name": name,
                    "from": reports::rfc3339(from_us(from)),
                    "from_us": from,
                    "to_us": now_us,
                    "kpis": KpiDto::from(kpi::kpis(&sums, &activity, &callbacks)),
                    "queues": queues,
                })
            })
            .collect();

        // Queues: waiting callers, longest wait, available agents.
        let mut queues: BTreeMap<String, (Vec<Value>, i64)> = BTreeMap::new();
        for (id, call) in &self.calls {
            let (Some(since), Some(queue)) = (
                call.queued_since,
                call.record.queues.last().or(call.record.queue.as_ref()),
            ) else {
                continue;
            };
            let waited_us = now.micros_since(since).max(0);
            let entry = queues.entry(queue.to_string()).or_default();
            entry.1 = entry.1.max(waited_us);
            entry.0.push(json!({
                "call_id": id,
                "number": call.record.customer_number.as_ref().map(|n| n.text.clone()),
                "waiting_s": waited_us as f64 / 1e6,
            }));
        }
        for e in self.ended.values() {
            if let Some(q) = &e.queue {
                queues.entry(q.clone()).or_default();
            }
        }
        let mut alerts: Vec<Value> = Vec::new();
        let agent_on_call = |extensions: &[String]| -> Option<Value> {
            for (id, call) in &self.calls {
                let talking =
                    call.record.segments.iter().any(|s| {
                        s.end.is_none() && extensions.iter().any(|e| e == s.agent.as_str())
                    });
                let ringing = call.ringing.iter().any(|a| extensions.contains(a));
                if talking || ringing {
                    return Some(json!({
                        "id": id,
                        "state": if talking { "talking" } else { "ringing" },
                        "direction": call.record.direction.as_str(),
                        "number": call.record.customer_number.as_ref().map(|n| n.text.clone()),
                        "queue": call.record.queue.as_ref().map(ToString::to_string),
                        "since_s": now.micros_since(call.record.answered_at.unwrap_or(call.record.started_at)) as f64 / 1e6,
                    }));
                }
            }
            None
        };
        let mut agents = Vec::new();
        let mut available_logins: Vec<String> = Vec::new();
        for agent in self.agents.values() {
            let extensions: Vec<String> = agent["extensions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let since_us = agent["since"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.timestamp_micros());
            let in_status_s = since_us.map(|s| (now_us - s).max(0) as f64 / 1e6);
            let call = agent_on_call(&extensions);
            let status = agent["status"].as_str().unwrap_or("offline");
            if status == "available" && call.is_none() {
                if let Some(login) = agent["login"].as_str() {
                    available_logins.push(login.to_owned());
                }
            }
            if status == "away" && !self.config.away_max.is_zero() {
                if let Some(s) = in_status_s {
                    if s > self.config.away_max.as_secs_f64() {
                        alerts.push(json!({ "kind": "paused_long", "agent": agent["display_name"], "login": agent["login"], "seconds": s.round() }));
                    }
                }
            }
            agents.push(json!({
                "login": agent["login"], "name": agent["display_name"], "extensions": extensions,
                "status": status, "reason": agent["reason"], "since": agent["since"],
                "in_status_s": in_status_s, "call": call,
            }));
        }
        let queue_views: Vec<Value> = queues
            .into_iter()
            .map(|(queue, (callers, longest_us))| {
                let waiting = callers.len();
                if self.config.queue_waiting_max > 0 && waiting > self.config.queue_waiting_max as usize {
                    alerts.push(json!({ "kind": "queue_long", "queue": queue, "n": waiting }));
                }
                let longest_s = longest_us as f64 / 1e6;
                if !self.config.wait_max.is_zero() && waiting > 0 && longest_s > self.config.wait_max.as_secs_f64() {
                    alerts.push(json!({ "kind": "wait_long", "queue": queue, "seconds": longest_s.round() }));
                }
                // Members of the queue who are free; without memberships on record, every free agent.
                let available = match self.members.get(&queue) {
                    Some(members) => available_logins.iter().filter(|l| members.contains(l)).count(),
                    None => available_logins.len(),
                };
                json!({ "queue": queue, "waiting": waiting, "longest_wait_s": longest_s, "callers": callers, "available_agents": available })
            })
            .collect();
        alerts.extend(self.late_callbacks.iter().cloned());
        let live_calls = self
            .calls
            .values()
            .filter(|c| c.record.direction != Direction::Internal)
            .count();
        let talking = self
            .calls
            .values()
            .filter(|c| c.record.answered_at.is_some())
            .count();
        json!({
            "type": "dashboard",
            "v": 1,
            "at": reports::rfc3339(from_us(now_us)),
            "agents": agents,
            "available_agents": available_logins.len(),
            "queues": queue_views,
            "calls_in_progress": live_calls,
            "calls_talking": talking,
            "windows": windows,
            "alerts": alerts,
        })
    }
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn facts_of_row(row: &storage::CallFactsRow) -> Option<CallFacts> {
    Some(CallFacts {
        direction: match row.direction.as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            "internal" => Direction::Internal,
            _ => return None,
        },
        outcome: match row.outcome.as_str() {
            "answered" => Outcome::Answered,
            "missed" => Outcome::Missed,
            "abandoned" => Outcome::Abandoned,
            "busy" => Outcome::Busy,
            "failed" => Outcome::Failed,
            "voicemail" => Outcome::Voicemail,
            _ => return None,
        },
        short_abandon: row.short_abandon,
        wait_ms: row.wait_ms,
        talk_ms: row.talk_ms,
        hold_ms: row.hold_ms,
        transfers: row.transfers,
    })
}
