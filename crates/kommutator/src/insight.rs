//! Wiring of the supervisor side: the live dashboard and the domain event stream to NATS.
//!
//! Each pipeline gets [`PbxTaps`]: after the hub has its effects (a screen pop never waits
//! for this), the tracker task hands the same batch to the dashboard and, when `[events.nats]`
//! or `[[events.webhook]]` is on, maps it to domain events: NATS gets them at once (a feed);
//! for the webhooks they become outbox jobs that the pipeline's writer stores in the same
//! transaction as the call change they describe, so a kill loses none. Agent status changes
//! come from the dashboard's subscription to the hub and go the same two ways (their jobs
//! through a writer task of their own).

use std::sync::Arc;

use cti_core::{Effect, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::config::Settings;

/// Starts the dashboard task with the `[dashboard]` settings.
pub fn start_dashboard(
    settings: &Settings,
    storage: storage::Storage,
    hub: &server::cti::Hub,
    reports: &Arc<server::reports::ReportsConfig>,
) -> server::dashboard::Dashboard {
    let d = &settings.dashboard;
    let config = server::dashboard::DashboardConfig {
        windows_minutes: d.windows_minutes.clone(),
        shift_starts_min: d.shift_starts_min.clone(),
        refresh: d.refresh,
        queue_waiting_max: d.queue_waiting_max,
        wait_max: d.wait_max,
        away_max: d.away_max,
        callback_max: d.callback_max,
    };
    server::dashboard::Dashboard::start(storage, hub.clone(), reports.clone(), config)
}

/// Where tracker effects go besides storage and the hub.
#[derive(Clone)]
pub struct Taps {
    dashboard: server::dashboard::Dashboard,
    nats: Option<sink_nats::Publisher>,
    /// The event webhooks and the kinds each wants.
    filters: Arc<Vec<(String, outbox::events::KindFilter)>>,
    /// Outbox jobs of events that belong to no call change (agent statuses).
    hooks: Option<mpsc::Sender<Vec<storage::NewOutboxJob>>>,
}

/// Event batches waiting to be written to the outbox for the event webhooks; beyond this the
/// tracker waits (back-pressure, nothing dropped).
const EVENT_JOB_QUEUE: usize = 256;

impl Taps {
    /// Starts the NATS publisher and the event-webhook writer when configured, and the
    /// forwarding of agent statuses to them; the returned tasks end after `stop`.
    pub fn start(
        settings: &Settings,
        dashboard: &server::dashboard::Dashboard,
        storage: storage::Storage,
        stop: watch::Receiver<bool>,
    ) -> (Taps, Vec<(&'static str, tokio::task::JoinHandle<()>)>) {
        let mut tasks = Vec::new();
        let nats = settings.nats.as_ref().map(|nats| {
            let config = sink_nats::NatsConfig {
                url: nats.url.clone(),
                token: nats.token.as_ref().map(|t| t.expose().to_owned()),
                stream: nats.stream.clone(),
                subject_prefix: nats.subject_prefix.clone(),
                max_age: nats.max_age,
                buffer: nats.buffer,
            };
            let (publisher, task) = sink_nats::Publisher::start(config, stop.clone());
            tasks.push(("events", task));
            publisher
        });
        let filters: Arc<Vec<_>> = Arc::new(
            settings
                .event_webhooks
                .iter()
                .map(|h| (h.connector.name.clone(), h.kinds.clone()))
                .collect(),
        );
        let hooks = (!filters.is_empty()).then(|| {
            let (tx, rx) = mpsc::channel(EVENT_JOB_QUEUE);
            tasks.push((
                "event-webhooks",
                tokio::spawn(write_event_jobs(storage, rx)),
            ));
            tx
        });
        let taps = Taps {
            dashboard: dashboard.clone(),
            nats,
            filters,
            hooks,
        };
        if taps.nats.is_some() || taps.hooks.is_some() {
            let mut statuses = dashboard.agent_statuses();
            let forward = taps.clone();
            let mut forward_stop = stop;
            tokio::spawn(async move {
                loop {
                    let change = tokio::select! {
                        change = statuses.recv() => change,
                        _ = forward_stop.wait_for(|s| *s) => break,
                    };
                    match change {
                        Ok(c) => {
                            let event = sink_nats::agent_status(
                                "cti",
                                c.at,
                                &c.login,
                                &c.extensions,
                                &c.status,
                                c.reason.as_deref(),
                                &c.origin,
                            );
                            forward.events(vec![event]).await;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(
                                missed = n,
                                "Agent status events were dropped on the way to the event stream."
                            );
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        (taps, tasks)
    }

    /// Hands agent-status events to NATS and their webhook jobs to their writer.
    async fn events(&self, events: Vec<sink_nats::DomainEvent>) {
        if events.is_empty() {
            return;
        }
        let jobs = event_jobs(&self.filters, &events, chrono::Utc::now());
        if let Some(nats) = &self.nats {
            nats.publish(events);
        }
        if let Some(hooks) = &self.hooks {
            if !jobs.is_empty() {
                let _ = hooks.send(jobs).await;
            }
        }
    }

    /// The taps of one PBX connection; `availability` (routing's view of who is free) follows
    /// who is on a call from the same effects.
    pub fn for_pbx(
        &self,
        source: &str,
        availability: Option<Arc<crate::routing::LiveAvailability>>,
    ) -> PbxTaps {
        PbxTaps {
            source: source.to_owned(),
            taps: self.clone(),
            mapper: sink_nats::EventMapper::new(),
            availability,
        }
    }
}

/// [`Taps`] with the per-PBX state the event mapping needs.
pub struct PbxTaps {
    source: String,
    taps: Taps,
    mapper: sink_nats::EventMapper,
    availability: Option<Arc<crate::routing::LiveAvailability>>,
}

impl PbxTaps {
    /// Fans one batch of effects out, in order. Returns the event webhooks' outbox jobs for
    /// the batch, for the caller to store with the call changes that caused them.
    pub async fn publish(&mut self, batch: &[(Timestamp, Effect)]) -> Vec<storage::NewOutboxJob> {
        if batch.is_empty() {
            return Vec::new();
        }
        if let Some(availability) = &self.availability {
            for (_, effect) in batch {
                availability.apply_effect(effect);
            }
        }
        let mut jobs = Vec::new();
        if self.taps.nats.is_some() || !self.taps.filters.is_empty() {
            let events: Vec<_> = batch
                .iter()
                .flat_map(|(at, effect)| self.mapper.map(&self.source, *at, effect))
                .collect();
            jobs = event_jobs(&self.taps.filters, &events, chrono::Utc::now());
            if let Some(nats) = &self.taps.nats {
                nats.publish(events);
            }
        }
        self.taps.dashboard.publish(batch.to_vec()).await;
        jobs
    }
}

/// One outbox job per event and webhook that wants its kind.
fn event_jobs(
    filters: &[(String, outbox::events::KindFilter)],
    events: &[sink_nats::DomainEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<storage::NewOutboxJob> {
    if filters.is_empty() {
        return Vec::new();
    }
    events
        .iter()
        .flat_map(|event| {
            let value = serde_json::to_value(event).unwrap_or_default();
            filters
                .iter()
                .filter(|(_, kinds)| kinds.accepts(event.kind))
                .filter_map(move |(name, _)| {
                    outbox::events::event_job(name, value.clone(), event.call_id.as_deref(), now)
                })
        })
        .collect()
}

/// Writes the jobs of events that belong to no call change, a batch per transaction. A
/// database error is retried (with a pause) until it works: the jobs wait in the channel and
/// the senders wait behind them.
async fn write_event_jobs(
    storage: storage::Storage,
    mut batches: mpsc::Receiver<Vec<storage::NewOutboxJob>>,
) {
    while let Some(jobs) = batches.recv().await {
        let mut pause = std::time::Duration::from_millis(100);
        while let Err(err) = storage.enqueue_many(&jobs).await {
            tracing::warn!(error = %err, jobs = jobs.len(), "Cannot queue domain events for the webhooks; retrying.");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
    }
}
