//! Wiring of the supervisor side: the live dashboard and the domain event stream to NATS.
//!
//! Each pipeline gets [`PbxTaps`]: after the hub has its effects (a screen pop never waits
//! for this), the tracker task hands the same batch to the dashboard and, when `[events.nats]`
//! is on, maps it to domain events for the publisher. Agent status changes come from the
//! dashboard's subscription to the hub and are published too.

use std::sync::Arc;

use cti_core::{Effect, Timestamp};
use tokio::sync::watch;

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
}

impl Taps {
    /// Starts the NATS publisher when configured (and the forwarding of agent statuses to it);
    /// the returned task ends after `stop`.
    pub fn start(
        settings: &Settings,
        dashboard: &server::dashboard::Dashboard,
        stop: watch::Receiver<bool>,
    ) -> (Taps, Option<tokio::task::JoinHandle<()>>) {
        let Some(nats) = &settings.nats else {
            return (
                Taps {
                    dashboard: dashboard.clone(),
                    nats: None,
                },
                None,
            );
        };
        let config = sink_nats::NatsConfig {
            url: nats.url.clone(),
            token: nats.token.as_ref().map(|t| t.expose().to_owned()),
            stream: nats.stream.clone(),
            subject_prefix: nats.subject_prefix.clone(),
            max_age: nats.max_age,
            buffer: nats.buffer,
        };
        let (publisher, task) = sink_nats::Publisher::start(config, stop.clone());
        let mut statuses = dashboard.agent_statuses();
        let forward = publisher.clone();
        let mut forward_stop = stop;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    change = statuses.recv() => match change {
                        Ok(c) => forward.publish(vec![sink_nats::agent_status(
                            "cti", c.at, &c.login, &c.extensions, &c.status, c.reason.as_deref(), &c.origin,
                        )]),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "Agent status events were dropped on the way to NATS.");
                        }
                        Err(_) => break,
                    },
                    _ = forward_stop.wait_for(|s| *s) => break,
                }
            }
        });
        (
            Taps {
                dashboard: dashboard.clone(),
                nats: Some(publisher),
            },
            Some(task),
        )
    }

    /// The taps of one PBX connection.
    pub fn for_pbx(&self, source: &str) -> PbxTaps {
        PbxTaps {
            source: source.to_owned(),
            taps: self.clone(),
            mapper: sink_nats::EventMapper::new(),
        }
    }
}

/// [`Taps`] with the per-PBX state the event mapping needs.
pub struct PbxTaps {
    source: String,
    taps: Taps,
    mapper: sink_nats::EventMapper,
}

impl PbxTaps {
    /// Fans one batch of effects out, in order.
    pub async fn publish(&mut self, batch: &[(Timestamp, Effect)]) {
        if batch.is_empty() {
            return;
        }
        if let Some(nats) = &self.taps.nats {
            let events = batch
                .iter()
                .flat_map(|(at, effect)| self.mapper.map(&self.source, *at, effect))
                .collect();
            nats.publish(events);
        }
        self.taps.dashboard.publish(batch.to_vec()).await;
    }
}
