//! One Asterisk connection, end to end: the AMI client reads frames, the tracker task turns
//! them into call effects, the writer task stores calls and their timelines.
//!
//! ```text
//! AMI client ──Events/Resynced──▶ tracker task ──Vec<Effect>──▶ writer task ──▶ storage
//!            (bounded channel)                  (bounded channel)
//! ```
//!
//! Both channels are bounded, so a slow database slows the tracker, which slows the client,
//! which stops reading the socket: back-pressure all the way to Asterisk, nothing dropped.
//! A call is written as it progresses (every effect is one timeline event and a new snapshot of
//! the call row), so a crash mid-call loses nothing that was received.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use cti_core::{
    CallRecord, CallTracker, Direction, Effect, Outcome, RingEnd, Timestamp, UpdateReason,
};
use pbx_ami::client::{AmiClientConfig, AmiUpdate, AuthMethod};
use pbx_ami::translate;
use tokio::sync::{mpsc, watch};

use crate::config::{AmiAuth, AsteriskSettings};
use crate::replay::CallRecordDto;

/// How often open calls are checked for staleness (see `TrackerConfig::stale_call_us`).
const TICK: Duration = Duration::from_secs(5);
/// Effect batches in flight between the tracker and the writer.
const WRITER_QUEUE: usize = 256;

/// Starts the client, tracker and writer tasks for one PBX. The returned task ends once all
/// three have stopped after `stop` turned true, with every received effect written.
// Each argument is one sink or source of the pipeline; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn start_asterisk(
    pbx: &AsteriskSettings,
    storage: storage::Storage,
    metrics: &Arc<server::Metrics>,
    hub: &server::cti::Hub,
    plan: Arc<outbox::PlanContext>,
    taps: crate::insight::PbxTaps,
    stop: watch::Receiver<bool>,
    routing: Option<Arc<directory::RoutingService>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut config = AmiClientConfig::new(&pbx.host, pbx.port, &pbx.username, pbx.secret.expose());
    config.auth = match pbx.auth {
        AmiAuth::Md5 => AuthMethod::Md5,
        AmiAuth::Plain => AuthMethod::Plain,
    };
    config.ping_interval = pbx.ping_interval;
    config.ping_timeout = pbx.ping_timeout;
    config.action_timeout = pbx.action_timeout;
    config.reconnect_initial = pbx.reconnect_initial;
    config.reconnect_max = pbx.reconnect_max;
    config.events_mask = if pbx.events == "on" {
        String::new()
    } else {
        pbx.events.clone()
    };
    config.drop_events = pbx.drop_events.clone();
    let (client, updates, task) = pbx_ami::client::client(config);
    register_ami_metrics(metrics, &pbx.name, client.metrics());

    let tracker = CallTracker::new(pbx.tracker.clone());
    let source = pbx.name.clone();
    let (effects_tx, effects_rx) = mpsc::channel(WRITER_QUEUE);
    let storage_for_tracker = storage.clone();
    let writer = tokio::spawn(write_effects(
        storage,
        source.clone(),
        plan,
        effects_rx,
        routing,
    ));
    // The client handle stays with the hub, which sends the panel's commands through it.
    let control = crate::cti::AmiControl::new(client.clone());
    let attach_hub = hub.clone();
    let attach_name = source.clone();
    tokio::spawn(async move { attach_hub.attach_pbx(&attach_name, control).await });
    let tracker_task = tokio::spawn(track(
        tracker,
        storage_for_tracker,
        updates,
        effects_tx,
        source.clone(),
        hub.clone(),
        taps,
    ));
    let mut client_stop = stop;
    let client_task = tokio::spawn(task.run(async move {
        let _ = client_stop.wait_for(|stop| *stop).await;
    }));
    Ok(tokio::spawn(async move {
        // The client stops first (Logoff), which closes the update channel, which ends the
        // tracker (closing open calls is not done: they continue on the PBX and are resynced
        // on the next start), which closes the effect channel, which ends the writer.
        let _ = client_task.await;
        let _ = tracker_task.await;
        let _ = writer.await;
        tracing::info!(pbx = %source, "AMI pipeline stopped.");
    }))
}

fn register_ami_metrics(
    metrics: &server::Metrics,
    pbx: &str,
    ami: Arc<pbx_ami::client::AmiMetrics>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    type Field = fn(&pbx_ami::client::AmiMetrics) -> &AtomicU64;
    let counters: [(&str, &str, Field); 6] = [
        ("ami_events_in", "AMI event frames received", |m| {
            &m.events_in
        }),
        (
            "ami_frames_delivered",
            "AMI frames handed to the call tracker",
            |m| &m.frames_delivered,
        ),
        (
            "ami_frames_filtered",
            "AMI frames dropped by drop_events",
            |m| &m.frames_dropped_by_filter,
        ),
        (
            "ami_decode_errors",
            "Malformed or oversized AMI frames skipped",
            |m| &m.decode_errors,
        ),
        ("ami_reconnects", "AMI reconnect attempts", |m| {
            &m.reconnects
        }),
        ("ami_bytes_in", "Bytes read from AMI sockets", |m| {
            &m.bytes_in
        }),
    ];
    for (name, help, field) in counters {
        let ami = ami.clone();
        metrics.counter_fn(
            name,
            help,
            &[("pbx", pbx)],
            Box::new(move || field(&ami).load(Ordering::Relaxed)),
        );
    }
}

/// The wall clock as a core timestamp, for inputs that carry no time of their own.
pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

async fn track(
    mut tracker: CallTracker,
    storage: storage::Storage,
    mut updates: mpsc::Receiver<AmiUpdate>,
    effects: mpsc::Sender<EffectBatch>,
    source: String,
    hub: server::cti::Hub,
    mut taps: crate::insight::PbxTaps,
) {
    // The tracker's clock follows the PBX's event timestamps; `clock` remembers the last one
    // for frames that carry none (and for ticks, which use the wall clock).
    let mut clock = now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Until the first resync: every call this process ended (or merged away). Such a call may
    // still be open in storage only because its end is queued for the writer, so it is never
    // an orphan. Other effects do not count: a late event of a stored call can reach the
    // tracker before the resync without the tracker keeping the call. `None` once the
    // orphans were closed.
    let mut seen: Option<HashSet<String>> = Some(HashSet::new());
    loop {
        let (batch, hub_items) = tokio::select! {
            update = updates.recv() => match update {
                Some(update) => {
                    let resync = matches!(update, AmiUpdate::Resynced { .. });
                    let (mut batch, mut items) = apply_update(&mut tracker, update, &mut clock, &source);
                    if let Some(known) = seen.as_mut() {
                        known.extend(batch.iter().filter_map(|(_, e)| match e {
                            Effect::CallEnded(record) => Some(record.call_id.to_string()),
                            Effect::CallsMerged { absorbed, .. } => Some(absorbed.to_string()),
                            _ => None,
                        }));
                    }
                    if resync {
                        if let Some(known) = seen.take() {
                            let orphans = close_orphans(&storage, &source, &tracker, &known, clock).await;
                            items.extend(orphans.iter().map(|(at, e)| server::cti::HubItem::Effect(*at, e.clone())));
                            batch.extend(orphans);
                        }
                    }
                    (batch, items)
                }
                None => break,
            },
            _ = tick.tick() => {
                let at = now();
                let batch: Vec<_> = tracker.tick(at).into_iter().map(|effect| (at, effect)).collect();
                let items = batch.iter().map(|(at, e)| server::cti::HubItem::Effect(*at, e.clone())).collect();
                (batch, items)
            }
        };
        // The panel first (a screen pop must not wait for the database), then storage.
        hub.publish(&source, now().as_micros(), hub_items).await;
        // Then the dashboard and the event stream (both bounded, neither blocks for long).
        let event_jobs = taps.publish(&batch).await;
        let batch = EffectBatch {
            effects: batch,
            event_jobs,
        };
        if !batch.effects.is_empty() && effects.send(batch).await.is_err() {
            tracing::error!(pbx = %source, "The call writer stopped; call records are no longer stored.");
            break;
        }
    }
}

/// Calls that storage holds as open for this PBX but that neither the resync (live channels,
/// now adopted by the tracker) nor this process knows: they ended while Kommutator was down.
/// Each is ended through the same effect path as a live call, so the writer stores it with
/// its CRM finish jobs in one transaction. Calls that began and ended entirely while
/// Kommutator was down left nothing in storage and are not visible over AMI: not made up here.
async fn close_orphans(
    storage: &storage::Storage,
    source: &str,
    tracker: &CallTracker,
    seen: &HashSet<String>,
    at: Timestamp,
) -> Vec<(Timestamp, Effect)> {
    let live: HashSet<String> = tracker
        .snapshot(at)
        .iter()
        .map(|record| record.call_id.to_string())
        .collect();
    let open = retry_forever("list open calls", || {
        storage.list_open_calls_last_seen(source)
    })
    .await
    .unwrap_or_default();
    let mut effects = Vec::new();
    for (row, last_event) in open {
        let id = row.call.id.0.as_str();
        if live.contains(id) || seen.contains(id) {
            continue;
        }
        let last_seen = last_event
            .unwrap_or(row.call.updated_at)
            .max(row.call.started_at);
        let last_seen = Timestamp::from_micros(last_seen.timestamp_micros());
        let record = cti_core::close_orphan(stored_record(&row.call), last_seen);
        tracing::warn!(
            pbx = %source,
            call = %id,
            ended_at = %to_datetime(last_seen),
            "Closed a call that ended while Kommutator was not connected (degraded, ended at its last stored event)."
        );
        effects.push((last_seen, Effect::CallEnded(Box::new(record))));
    }
    effects
}

/// The call record as far as storage knows it: the columns, plus the lists only the stored
/// record JSON has (agents offered the call, queues, caller name).
fn stored_record(call: &storage::NewCall) -> CallRecord {
    let json = &call.record;
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let texts = |key: &str| -> Vec<String> {
        json.get(key)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = match text("customer_number_kind").as_deref() {
        Some("e164") => cti_core::NumberKind::E164,
        Some("national") => cti_core::NumberKind::National,
        Some("extension") => cti_core::NumberKind::Extension,
        Some("anonymous") => cti_core::NumberKind::Anonymous,
        _ => cti_core::NumberKind::Other,
    };
    let micros = |t: DateTime<Utc>| Timestamp::from_micros(t.timestamp_micros());
    let mut linkedids = texts("linkedids");
    if linkedids.is_empty() {
        linkedids.push(call.id.0.clone());
    }
    CallRecord {
        call_id: cti_core::CallId::new(call.id.0.clone()),
        direction: match call.direction {
            storage::Direction::Inbound => Direction::Inbound,
            storage::Direction::Outbound => Direction::Outbound,
            storage::Direction::Internal => Direction::Internal,
        },
        customer_number: text("customer_number")
            .or_else(|| call.customer_number.clone())
            .map(|text| cti_core::PhoneNumber { text, kind }),
        customer_name: text("customer_name"),
        line: call.line.clone().map(|text| cti_core::PhoneNumber {
            text,
            kind: cti_core::NumberKind::Other,
        }),
        started_at: micros(call.started_at),
        answered_at: call.answered_at.map(micros),
        ended_at: None,
        outcome: None,
        answered_by: text("answered_by").map(cti_core::Extension::new),
        agent: call.answered_by.clone().map(cti_core::Extension::new),
        originator: text("originator").map(cti_core::Extension::new),
        agents_rang: texts("agents_rang")
            .into_iter()
            .map(cti_core::Extension::new)
            .collect(),
        queue: call.queue.clone().map(cti_core::QueueName::new),
        queues: texts("queues")
            .into_iter()
            .map(cti_core::QueueName::new)
            .collect(),
        wait_us: call.wait_ms * 1000,
        queue_wait_us: 0,
        talk_us: call.talk_ms * 1000,
        hold_us: call.hold_ms * 1000,
        transfers: Vec::new(),
        segments: Vec::new(),
        agent_talk: Vec::new(),
        // Kept as the stored link or path, so the finished CRM call still points at it.
        recording: call.recording.clone().map(|link| cti_core::Recording {
            uniqueid: cti_core::Uniqueid::new(call.id.0.clone()),
            started_at: micros(call.started_at),
            path: None,
            url: Some(link),
        }),
        application: text("application"),
        degraded: true,
        short_abandon: false,
        hangup_cause: None,
        linkedids,
    }
}

fn apply_update(
    tracker: &mut CallTracker,
    update: AmiUpdate,
    clock: &mut Timestamp,
    source: &str,
) -> (Vec<(Timestamp, Effect)>, Vec<server::cti::HubItem>) {
    match update {
        AmiUpdate::Events(frames) => crate::cti::apply_frames(tracker, &frames, clock),
        AmiUpdate::Resynced {
            session,
            channels,
            queue_status,
            ..
        } => {
            let mut items = crate::cti::resync_items(&channels, &queue_status);
            let at = now();
            let effects: Vec<_> = tracker
                .apply(translate::resync_event(&channels), at)
                .into_iter()
                .map(|effect| (at, effect))
                .collect();
            tracing::info!(
                pbx = %source,
                session,
                live_channels = channels.len(),
                open_calls = tracker.open_calls(),
                "Resynchronised with Asterisk."
            );
            items.extend(
                effects
                    .iter()
                    .map(|(at, e)| server::cti::HubItem::Effect(*at, e.clone())),
            );
            (effects, items)
        }
        AmiUpdate::Connected { session, banner } => {
            tracing::info!(pbx = %source, session, banner = %banner, "Connected to Asterisk.");
            (Vec::new(), Vec::new())
        }
        AmiUpdate::Disconnected { session, reason } => {
            tracing::warn!(pbx = %source, session, reason = %reason, "Lost the AMI connection; reconnecting.");
            (Vec::new(), Vec::new())
        }
        AmiUpdate::ConnectFailed { reason, retry_in } => {
            tracing::warn!(
                pbx = %source,
                reason = %reason,
                retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                "Cannot connect to Asterisk; retrying."
            );
            (Vec::new(), Vec::new())
        }
    }
}

/// One batch of tracker effects for the writer, with the event webhooks' jobs for them.
pub(crate) struct EffectBatch {
    effects: Vec<(Timestamp, Effect)>,
    /// Domain-event jobs (`Step::Event`), each stored with the call change it describes.
    event_jobs: Vec<storage::NewOutboxJob>,
}

/// Stores effects in order. Each batch becomes one transaction per call it touches: the
/// latest snapshot of the call row, the timeline events the batch added to it, and the outbox
/// jobs (CRM steps and domain events) those changes cause.
async fn write_effects(
    storage: storage::Storage,
    source: String,
    plan: Arc<outbox::PlanContext>,
    mut effects: mpsc::Receiver<EffectBatch>,
    routing: Option<Arc<directory::RoutingService>>,
) {
    let mut sequence = EventSequence::new();
    while let Some(EffectBatch {
        effects: batch,
        event_jobs,
    }) = effects.recv().await
    {
        let mut pending = PendingWrites::default();
        pending.add_event_jobs(event_jobs);
        for (at, effect) in batch {
            if let Effect::CallsMerged { survivor, absorbed } = &effect {
                // Everything before the merge must be stored first: the merge moves it.
                pending.flush(&storage, &source, routing.as_deref()).await;
                let absorbed = storage::CallId::new(absorbed.to_string());
                let survivor = storage::CallId::new(survivor.to_string());
                retry_forever("merge two calls", || {
                    storage.merge_calls(&absorbed, &survivor)
                })
                .await;
                continue;
            }
            pending.add(at, &effect, &mut sequence);
            // Outbox jobs go into the same transaction as the call snapshot that causes them.
            pending.add_jobs(&effect, outbox::jobs_for(&effect, &plan, Utc::now()));
        }
        pending.flush(&storage, &source, routing.as_deref()).await;
        pending.flush_unclaimed_jobs(&storage).await;
    }
}

/// The writes one batch of effects causes, grouped by call in first-seen order.
#[derive(Default)]
struct PendingWrites {
    calls: Vec<(
        storage::CallId,
        Option<CallRecord>,
        Vec<storage::NewCallEvent>,
    )>,
    /// Outbox jobs per call, written with the call's snapshot.
    jobs: HashMap<storage::CallId, Vec<storage::NewOutboxJob>>,
    /// Event jobs of no call, written after the calls.
    callless_jobs: Vec<storage::NewOutboxJob>,
}

impl PendingWrites {
    /// Event jobs go with their call's snapshot; those without a call are written on their own.
    fn add_event_jobs(&mut self, jobs: Vec<storage::NewOutboxJob>) {
        for job in jobs {
            match job.call_id.clone() {
                Some(call_id) => self.jobs.entry(call_id).or_default().push(job),
                None => self.callless_jobs.push(job),
            }
        }
    }

    /// Jobs no call write of this batch took (a call whose row an earlier batch wrote, or no
    /// call at all): written after the calls, so nothing planned is left behind.
    async fn flush_unclaimed_jobs(&mut self, storage: &storage::Storage) {
        let mut jobs: Vec<storage::NewOutboxJob> = self.jobs.drain().flat_map(|(_, j)| j).collect();
        jobs.append(&mut self.callless_jobs);
        if !jobs.is_empty() {
            retry_forever("queue outbox jobs", || storage.enqueue_many(&jobs)).await;
        }
    }

    fn add_jobs(&mut self, effect: &Effect, jobs: Vec<storage::NewOutboxJob>) {
        if jobs.is_empty() {
            return;
        }
        let (call_id, ..) = describe(Timestamp::from_micros(0), effect);
        self.jobs
            .entry(storage::CallId::new(call_id.to_string()))
            .or_default()
            .extend(jobs);
    }

    fn add(&mut self, at: Timestamp, effect: &Effect, sequence: &mut EventSequence) {
        let (call_id, record, kind, at, data) = describe(at, effect);
        let call_id = storage::CallId::new(call_id.to_string());
        let event = storage::NewCallEvent {
            call_id: call_id.clone(),
            seq: sequence.next(),
            at: to_datetime(at),
            kind: kind.to_owned(),
            data,
        };
        match self.calls.iter_mut().find(|(id, _, _)| *id == call_id) {
            Some((_, latest, events)) => {
                if record.is_some() {
                    *latest = record.cloned();
                }
                events.push(event);
            }
            None => self.calls.push((call_id, record.cloned(), vec![event])),
        }
    }

    async fn flush(
        &mut self,
        storage: &storage::Storage,
        source: &str,
        routing: Option<&directory::RoutingService>,
    ) {
        for (call_id, record, events) in self.calls.drain(..) {
            match record {
                Some(record) => {
                    let jobs = self.jobs.remove(&call_id).unwrap_or_default();
                    let mut call = new_call(&record, source);
                    // The FastAGI/HTTP router filed its decision under the channel ids.
                    if let Some(routing) = routing {
                        if let Some(decision) = routing.log().get(call.id.0.as_str()) {
                            call.route_decision =
                                Some(directory::service::decision_json(&decision));
                        }
                        // "Last agent" routing: who talked to this customer, as soon as it is known.
                        if let (Some(ended), Some(agent), Some(phone)) = (
                            call.ended_at,
                            call.answered_by.as_deref(),
                            call.customer_number
                                .as_deref()
                                .and_then(directory::phone::E164::parse),
                        ) {
                            routing.directory().record_agent(
                                phone,
                                agent,
                                Timestamp::from_micros(ended.timestamp_micros()),
                            );
                        }
                    }
                    let agents = call_agents(&record);
                    let write = storage::CallWrite {
                        call: &call,
                        agents: &agents,
                        events: &events,
                        jobs: &jobs,
                    };
                    retry_forever("store a call", || storage.write_call(&write)).await;
                }
                // Agent events of a call whose row an earlier batch wrote (their event jobs
                // stay for `flush_unclaimed_jobs`).
                None => {
                    for event in &events {
                        retry_forever("store a call event", || storage.append_call_event(event))
                            .await;
                    }
                }
            }
        }
    }
}

/// What an effect adds to its call's timeline: (call, new snapshot if any, kind, time, details).
/// `now` is the PBX time at which the tracker produced the effect.
fn describe(
    now: Timestamp,
    effect: &Effect,
) -> (
    &cti_core::CallId,
    Option<&CallRecord>,
    &'static str,
    Timestamp,
    serde_json::Value,
) {
    use serde_json::json;
    match effect {
        Effect::CallStarted(record) => (
            &record.call_id,
            Some(record),
            "started",
            record.started_at,
            json!({}),
        ),
        Effect::CallUpdated { record, reason } => {
            let at = match reason {
                UpdateReason::Answered => record.answered_at.unwrap_or(record.started_at),
                UpdateReason::Transferred | UpdateReason::TransferExplained => {
                    record.transfers.last().map_or(record.started_at, |t| t.at)
                }
                _ => record.started_at,
            };
            let data = match reason {
                UpdateReason::Answered => {
                    json!({ "agent": record.answered_by.as_ref().map(ToString::to_string) })
                }
                UpdateReason::Queued => {
                    json!({ "queue": record.queue.as_ref().map(ToString::to_string) })
                }
                UpdateReason::Transferred | UpdateReason::TransferExplained => json!({
                    "to": record.transfers.last().map(|t| t.to.clone()),
                    "kind": record.transfers.last().map(|t| t.kind.as_str()),
                }),
                UpdateReason::CallerIdentified => json!({
                    "number": record.customer_number.as_ref().map(|n| n.text.clone()),
                }),
                _ => json!({}),
            };
            (
                &record.call_id,
                Some(record),
                update_kind(*reason),
                at,
                data,
            )
        }
        Effect::CallEnded(record) => (
            &record.call_id,
            Some(record),
            "ended",
            record.ended_at.unwrap_or(record.started_at),
            json!({ "outcome": record.outcome.map(Outcome::as_str), "degraded": record.degraded }),
        ),
        Effect::AgentRinging {
            call_id,
            agent,
            queue,
        } => (
            call_id,
            None,
            "agent_ringing",
            now,
            json!({ "agent": agent.to_string(), "queue": queue.as_ref().map(ToString::to_string) }),
        ),
        Effect::AgentRingEnded {
            call_id,
            agent,
            how,
        } => (
            call_id,
            None,
            "agent_ring_ended",
            now,
            json!({ "agent": agent.to_string(), "how": ring_end(*how) }),
        ),
        Effect::AgentConnected { call_id, agent } => (
            call_id,
            None,
            "agent_connected",
            now,
            json!({ "agent": agent.to_string() }),
        ),
        Effect::AgentDisconnected { call_id, agent } => (
            call_id,
            None,
            "agent_disconnected",
            now,
            json!({ "agent": agent.to_string() }),
        ),
        Effect::CallsMerged { survivor, absorbed } => (
            survivor,
            None,
            "merged",
            now,
            json!({ "absorbed": absorbed.to_string() }),
        ),
    }
}

/// Retries transient storage errors with backoff (a database restart must not lose calls);
/// gives up on errors a retry cannot fix, logging them for an operator.
async fn retry_forever<T, F, Fut>(what: &str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, storage::StorageError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "Cannot {what} yet; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => {
                tracing::error!(error = %err, "Cannot {what}; the change is lost.");
                return None;
            }
        }
    }
}

/// Timeline sequence numbers: unique and increasing per process and across restarts (they
/// start from the wall clock in microseconds), so a restarted server never reuses one.
struct EventSequence(i64);

impl EventSequence {
    fn new() -> Self {
        Self(now().as_micros())
    }

    fn next(&mut self) -> i64 {
        self.0 += 1;
        self.0
    }
}

fn update_kind(reason: UpdateReason) -> &'static str {
    match reason {
        UpdateReason::CallerIdentified => "caller_identified",
        UpdateReason::Queued => "queued",
        UpdateReason::Answered => "answered",
        UpdateReason::Held => "held",
        UpdateReason::Unheld => "unheld",
        UpdateReason::Transferred => "transferred",
        UpdateReason::TransferExplained => "transfer_explained",
        UpdateReason::Recording => "recording",
    }
}

fn to_datetime(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.as_micros()).unwrap_or_default()
}

fn new_call(record: &CallRecord, source: &str) -> storage::NewCall {
    let dto = CallRecordDto::from(record);
    storage::NewCall {
        id: storage::CallId::new(record.call_id.to_string()),
        source: source.to_owned(),
        direction: match record.direction {
            Direction::Inbound => storage::Direction::Inbound,
            Direction::Outbound => storage::Direction::Outbound,
            Direction::Internal => storage::Direction::Internal,
        },
        customer_number: record.customer_number.as_ref().map(|n| n.text.clone()),
        customer_number_raw: record.customer_number.as_ref().map(|n| n.text.clone()),
        line: record.line.as_ref().map(|n| n.text.clone()),
        queue: record.queue.as_ref().map(ToString::to_string),
        started_at: to_datetime(record.started_at),
        answered_at: record.answered_at.map(to_datetime),
        ended_at: record.ended_at.map(to_datetime),
        outcome: record
            .outcome
            .and_then(|o| storage::Outcome::parse(o.as_str())),
        answered_by: record
            .agent
            .as_ref()
            .or(record.answered_by.as_ref())
            .map(ToString::to_string),
        agent_user_id: None,
        wait_ms: record.wait_us / 1000,
        talk_ms: record.talk_us / 1000,
        hold_ms: record.hold_us / 1000,
        recording: dto.recording.clone(),
        degraded: record.degraded,
        short_abandon: record.short_abandon,
        internal: record.direction == Direction::Internal,
        route_decision: None,
        record: serde_json::to_value(&dto).unwrap_or_default(),
        updated_at: Utc::now(),
    }
}

fn call_agents(record: &CallRecord) -> Vec<storage::CallAgent> {
    let mut agents: HashMap<String, storage::CallAgent> = HashMap::new();
    for extension in &record.agents_rang {
        agents
            .entry(extension.to_string())
            .or_insert_with(|| storage::CallAgent {
                extension: extension.to_string(),
                user_id: None,
                rang_at: None,
                answered_at: None,
                talk_ms: 0,
                outcome: "rang".to_owned(),
            });
    }
    for segment in &record.segments {
        let agent = agents
            .entry(segment.agent.to_string())
            .or_insert_with(|| storage::CallAgent {
                extension: segment.agent.to_string(),
                user_id: None,
                rang_at: None,
                answered_at: None,
                talk_ms: 0,
                outcome: "answered".to_owned(),
            });
        agent.outcome = "answered".to_owned();
        if agent.answered_at.is_none() {
            agent.answered_at = Some(to_datetime(segment.start));
        }
    }
    for talk in &record.agent_talk {
        if let Some(agent) = agents.get_mut(&talk.agent.to_string()) {
            agent.talk_ms = talk.talk_us / 1000;
        }
    }
    let mut agents: Vec<_> = agents.into_values().collect();
    agents.sort_by(|a, b| a.extension.cmp(&b.extension));
    agents
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
