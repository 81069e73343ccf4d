//! Wiring of the supervisor side: the live dashboard and the domain event stream to NATS.
//!
//! Each pipeline gets [`PbxTaps`]: after the hub has its effects (a screen pop never waits
//! for this), the tracker task hands the same batch to the dashboard and, when `[events.nats]`
//! is on, maps it to domain events for the publisher. Agent status changes come from the
//! dashboard's subscription to the hub and are published too.

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
    hooks: Option<mpsc::Sender<Vec<sink_nats::DomainEvent>>>,
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
        let hooks = (!settings.event_webhooks.is_empty()).then(|| {
            let (tx, rx) = mpsc::channel(EVENT_JOB_QUEUE);
            let filters = settings
                .event_webhooks
                .iter()
                .map(|h| (h.connector.name.clone(), h.kinds.clone()))
                .collect();
            tasks.push((
                "event-webhooks",
                tokio::spawn(write_event_jobs(storage, filters, rx)),
            ));
            tx
        });
        let taps = Taps {
            dashboard: dashboard.clone(),
            nats,
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

    /// Hands domain events to NATS and to the event-webhook writer.
    async fn events(&self, events: Vec<sink_nats::DomainEvent>) {
        if events.is_empty() {
            return;
        }
        match (&self.nats, &self.hooks) {
            (Some(nats), Some(hooks)) => {
                nats.publish(events.clone());
                let _ = hooks.send(events).await;
            }
            (Some(nats), None) => nats.publish(events),
            (None, Some(hooks)) => {
                let _ = hooks.send(events).await;
            }
            (None, None) => {}
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
    /// Fans one batch of effects out, in order.
    pub async fn publish(&mut self, batch: &[(Timestamp, Effect)]) {
        if batch.is_empty() {
            return;
        }
        if let Some(availability) = &self.availability {
            for (_, effect) in batch {
                availability.apply_effect(effect);
            }
        }
        if self.taps.nats.is_some() || self.taps.hooks.is_some() {
            let events = batch
                .iter()
                .flat_map(|(at, effect)| self.mapper.map(&self.source, *at, effect))
                .collect();
            self.taps.events(events).await;
        }
        self.taps.dashboard.publish(batch.to_vec()).await;
    }
}

/// Writes each event as one outbox job per webhook that wants its kind, a batch per
/// transaction. A database error is retried (with a pause) until it works: the events wait in
/// the channel and the tracker waits behind them, so none is lost while the database is away.
async fn write_event_jobs(
    storage: storage::Storage,
    filters: Vec<(String, outbox::events::KindFilter)>,
    mut events: mpsc::Receiver<Vec<sink_nats::DomainEvent>>,
) {
    while let Some(batch) = events.recv().await {
        let now = chrono::Utc::now();
        let jobs: Vec<storage::NewOutboxJob> = batch
            .iter()
            .flat_map(|event| {
                let value = serde_json::to_value(event).unwrap_or_default();
                filters
                    .iter()
                    .filter(|(_, kinds)| kinds.accepts(event.kind))
                    .filter_map(move |(name, _)| {
                        outbox::events::event_job(
                            name,
                            value.clone(),
                            event.call_id.as_deref(),
                            now,
                        )
                    })
            })
            .collect();
        let mut pause = std::time::Duration::from_millis(100);
        while let Err(err) = storage.enqueue_many(&jobs).await {
            tracing::warn!(error = %err, events = batch.len(), "Cannot queue domain events for the webhooks; retrying.");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
    }
}
