//! Starts the outbox: builds every configured connector, checks it once, runs its worker, the
//! dead-letter sweeper and the metrics; returns the planner context the AMI pipelines use to
//! write jobs with their calls, and the click-to-call commands received from CRMs.
//!
//! Glue only: the policy lives in the `outbox` crate, the protocols in the connector crates.

use std::sync::Arc;
use std::time::Duration;

use outbox::{Connector, PlanContext, Target};
use tokio::sync::{mpsc, watch};

use crate::config::Settings;

/// How many click-to-call commands wait for the CTI side before new ones are refused.
const CLICK_TO_CALL_QUEUE: usize = 64;

/// What the running outbox gives the rest of the binary.
pub struct Outbox {
    /// Planner context for the AMI pipelines.
    pub plan: Arc<PlanContext>,
    /// Tasks to join at shutdown.
    pub tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    /// Inbound CRM event endpoints (`/hooks/...`), merged into the server's routes.
    pub hooks: axum::Router,
    /// Click-to-call requests from CRMs (Bitrix24 `ONEXTERNALCALLSTART`), for
    /// [`crate::click_to_call`] to place on the PBX.
    pub click_to_call: Option<mpsc::Receiver<crm_bitrix24::events::ClickToCall>>,
}

pub fn start(
    settings: &Settings,
    storage: storage::Storage,
    metrics: &Arc<server::Metrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Outbox> {
    let crm = &settings.crm;
    let region = directory::phone::Region::parse(&settings.phone.default_region)
        .map_err(|err| anyhow::anyhow!("phone.default_region: {err}"))?;
    let mut connectors: Vec<(Arc<dyn Connector>, usize)> = Vec::new();
    let directory = outbox::builtin::build(
        outbox::builtin::Config {
            name: "directory".to_owned(),
            callback_tasks: crm.directory_callback_tasks,
        },
        storage.clone(),
    );
    connectors.push((Arc::new(directory), 1));
    let (click_tx, click_rx) = mpsc::channel(CLICK_TO_CALL_QUEUE);
    let mut hooks = axum::Router::new();
    for b24 in &crm.bitrix24 {
        let connector = crm_bitrix24::build(b24.connector.clone(), storage.clone())
            .map_err(|err| anyhow::anyhow!("crm.bitrix24 {}: {err}", b24.connector.name))?;
        if let Some(token) = &b24.application_token {
            let events = crm_bitrix24::events::EventSettings {
                connector: b24.connector.name.clone(),
                application_token: token.expose().to_owned(),
                extensions: b24
                    .connector
                    .users
                    .iter()
                    .map(|(ext, id)| (*id, ext.clone()))
                    .collect(),
                region,
            };
            hooks = hooks.nest(
                &format!("/hooks/bitrix24/{}", b24.connector.name),
                crm_bitrix24::events::router(events, click_tx.clone()),
            );
        }
        connectors.push((connector, b24.concurrency));
    }
    drop(click_tx);
    for hook in &settings.event_webhooks {
        if connectors
            .iter()
            .any(|(c, _)| c.name() == hook.connector.name)
        {
            anyhow::bail!(
                "events.webhook {}: the name is already used by a CRM connector; pick another",
                hook.connector.name
            );
        }
        let connector = sink_webhook::build_events(hook.connector.clone())
            .map_err(|err| anyhow::anyhow!("events.webhook {}: {err}", hook.connector.name))?;
        // One slot: a receiver gets a stream's events in the order they happened.
        connectors.push((connector, 1));
    }
    for amo in &crm.amocrm {
        let connector = crm_amocrm::build(amo.connector.clone(), storage.clone())
            .map_err(|err| anyhow::anyhow!("crm.amocrm {}: {err}", amo.connector.name))?;
        connectors.push((connector, amo.concurrency));
    }
    for dyn365 in &crm.dynamics {
        let connector = crm_dynamics::build(dyn365.connector.clone())
            .map_err(|err| anyhow::anyhow!("crm.dynamics {}: {err}", dyn365.connector.name))?;
        connectors.push((connector, dyn365.concurrency));
    }
    for hook in &crm.webhook {
        let connector = sink_webhook::build(hook.connector.clone())
            .map_err(|err| anyhow::anyhow!("crm.webhook {}: {err}", hook.connector.name))?;
        connectors.push((connector, hook.concurrency));
    }

    let mut tasks = Vec::new();
    let mut targets = Vec::new();
    for (connector, concurrency) in connectors {
        targets.push(Target {
            connector: connector.name().to_owned(),
            steps: connector.steps().to_vec(),
        });
        let check = connector.clone();
        tokio::spawn(async move {
            match check.healthcheck().await {
                Ok(()) => tracing::info!(connector = %check.name(), "CRM connector is reachable."),
                Err(err) => {
                    tracing::warn!(connector = %check.name(), error = %err, "CRM connector check failed; calls wait in the outbox until it works.")
                }
            }
        });
        let worker = outbox::worker::spawn(
            connector.clone(),
            storage.clone(),
            outbox::WorkerSettings {
                concurrency,
                ..crm.worker.clone()
            },
            stop.clone(),
        );
        register_connector_metrics(metrics, connector.name(), &worker.metrics);
        tasks.push(("outbox", worker.task));
    }
    let snapshot = outbox::metrics::StatsSnapshot::default();
    register_outbox_metrics(metrics, &snapshot, &targets);
    tasks.push((
        "outbox-sweeper",
        outbox::worker::spawn_sweeper(storage, crm.max_age, Duration::from_secs(5), snapshot, stop),
    ));
    Ok(Outbox {
        plan: Arc::new(PlanContext { targets, region }),
        tasks,
        hooks,
        click_to_call: Some(click_rx),
    })
}

fn register_connector_metrics(
    metrics: &server::Metrics,
    connector: &str,
    counters: &Arc<outbox::OutboxMetrics>,
) {
    use std::sync::atomic::Ordering;
    type Field = fn(&outbox::OutboxMetrics) -> u64;
    let fields: [(&str, &str, Field); 3] = [
        ("outbox_delivered", "Outbox jobs delivered", |m| {
            m.delivered.load(Ordering::Relaxed)
        }),
        (
            "outbox_retried",
            "Outbox delivery attempts that will be retried",
            |m| m.retried.load(Ordering::Relaxed),
        ),
        (
            "outbox_dead_lettered",
            "Outbox jobs the remote side rejected",
            |m| m.dead_lettered.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, field) in fields {
        let counters = counters.clone();
        metrics.counter_fn(
            name,
            help,
            &[("connector", connector)],
            Box::new(move || field(&counters)),
        );
    }
    for kind in outbox::ErrorKind::ALL {
        let counters = counters.clone();
        metrics.counter_fn(
            "outbox_failures",
            "Failed outbox delivery attempts by kind",
            &[("connector", connector), ("kind", kind.as_str())],
            Box::new(move || counters.failures(kind)),
        );
    }
}

fn register_outbox_metrics(
    metrics: &server::Metrics,
    snapshot: &outbox::metrics::StatsSnapshot,
    targets: &[Target],
) {
    for target in targets {
        let name = target.connector.clone();
        let read = snapshot.clone();
        metrics.gauge_fn(
            "outbox_depth",
            "Outbox jobs not yet delivered (pending and in flight)",
            &[("connector", &target.connector)],
            Box::new(move || {
                read.get()
                    .connectors
                    .iter()
                    .find(|c| c.connector == name)
                    .map_or(0, |c| c.pending + c.in_flight)
            }),
        );
        let name = target.connector.clone();
        let read = snapshot.clone();
        metrics.gauge_fn(
            "outbox_dead",
            "Outbox jobs in the dead letters",
            &[("connector", &target.connector)],
            Box::new(move || {
                read.get()
                    .connectors
                    .iter()
                    .find(|c| c.connector == name)
                    .map_or(0, |c| c.dead)
            }),
        );
        let name = target.connector.clone();
        let read = snapshot.clone();
        metrics.gauge_fn(
            "outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox job",
            &[("connector", &target.connector)],
            Box::new(move || {
                read.get()
                    .connectors
                    .iter()
                    .find(|c| c.connector == name)
                    .and_then(|c| c.oldest_pending_at)
                    .map_or(0, |at| {
                        u64::try_from((chrono::Utc::now() - at).num_seconds()).unwrap_or(0)
                    })
            }),
        );
    }
}
