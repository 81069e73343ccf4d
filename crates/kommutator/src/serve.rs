//! `kommutator serve` and `kommutator migrate`: open storage, start every configured component,
//! serve until Ctrl-C or SIGTERM, then stop in order (stop accepting, finish requests in flight,
//! flush the pipelines, close the database).

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;

/// Connects to the configured database and brings its schema up to date.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<storage::Storage> {
    let masked = settings.storage.masked_url();
    let pool = storage::PoolSettings {
        max_connections: settings.storage.max_connections,
        ..storage::PoolSettings::default()
    };
    let storage = storage::Storage::connect_with(settings.storage.url.expose(), &pool)
        .await
        .with_context(|| format!("cannot open the database {masked} (check storage.url)"))?;
    storage
        .migrate()
        .await
        .with_context(|| format!("cannot migrate the database {masked}"))?;
    Ok(storage)
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    tracing::info!(storage = %settings.storage.masked_url(), "Database schema is up to date.");
    storage.close().await;
    Ok(())
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let storage = open_storage(&settings).await?;
    let listener = bind(&settings).await?;
    tracing::info!(
        url = %settings.server.public_url,
        storage = %settings.storage.masked_url(),
        "Kommutator is serving."
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = Running::start(&settings, storage.clone(), listener, stop_rx)?;
    crate::shutdown_signal().await;
    let _ = stop_tx.send(true);
    running.join(settings.server.shutdown_grace).await;
    storage.close().await;
    tracing::info!("Kommutator stopped.");
    Ok(())
}

pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let addr = settings.server.listen;
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: another program may use the port; change server.listen")
    })
}

/// The components of a running server, each a tokio task that stops when `stop` turns true.
pub struct Running {
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    /// Where FastAGI routing listens, when it is on (the demo prints it).
    pub agi: Option<std::net::SocketAddr>,
}

impl Running {
    pub fn start(
        settings: &Settings,
        storage: storage::Storage,
        listener: TcpListener,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(server::Metrics::new());
        let hub = server::cti::Hub::start(storage.clone(), settings.cti.hub.clone());
        let reports = Arc::new(settings.reports.clone());
        let dashboard = crate::insight::start_dashboard(settings, storage.clone(), &hub, &reports);
        let (taps, event_tasks) =
            crate::insight::Taps::start(settings, &dashboard, storage.clone(), stop.clone());
        let mut tasks = event_tasks;
        let crm = crate::crm::start(settings, storage.clone(), &metrics, stop.clone())
            .context("cannot start the CRM connectors")?;
        tasks.extend(crm.tasks);
        let hooks = crm.hooks;
        if let Some(requests) = crm.click_to_call {
            tasks.push((
                "click-to-call",
                crate::click_to_call::start(
                    requests,
                    hub.clone(),
                    storage.clone(),
                    crm.plan.clone(),
                    stop.clone(),
                ),
            ));
        }
        let mut agi = None;
        let mut availability = None;
        let routing = match &settings.routing {
            Some(routing) => {
                let started = crate::routing::start(
                    routing,
                    storage.clone(),
                    Arc::new(directory::DecisionLog::default()),
                    stop.clone(),
                )
                .context("cannot start call routing")?;
                tasks.extend(started.tasks);
                // "If available" rules read the hub's live agent presence.
                tasks.push((
                    "routing-presence",
                    crate::routing::follow_presence(
                        started.availability.clone(),
                        dashboard.agent_statuses(),
                        stop.clone(),
                    ),
                ));
                agi = started.agi_addr;
                availability = Some(started.availability);
                Some(started.service)
            }
            None => None,
        };
        for pbx in &settings.asterisk {
            let handle = crate::pipeline::start_asterisk(
                pbx,
                storage.clone(),
                &metrics,
                &hub,
                crm.plan.clone(),
                taps.for_pbx(&pbx.name, availability.clone()),
                stop.clone(),
                routing.clone(),
            )
            .with_context(|| format!("cannot start the AMI connection to {}", pbx.name))?;
            tasks.push(("asterisk", handle));
        }
        let state = server::AppState {
            storage,
            metrics,
            cti: hub,
            auth: Arc::new(server::auth::Auth::new(settings.cti.auth.clone())),
            reports: reports.clone(),
            dashboard: dashboard.clone(),
            routing,
        };
        let mut server_stop = stop;
        tasks.push((
            "http",
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = server_stop.wait_for(|stop| *stop).await;
                };
                if let Err(err) = server::run_with_routes(listener, state, hooks, shutdown).await {
                    tracing::error!(error = %err, "The HTTP server failed.");
                }
            }),
        ));
        Ok(Self { tasks, agi })
    }

    /// Waits for every task, giving up on those still running after `grace`.
    pub async fn join(self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for (name, handle) in self.tasks {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) if err.is_panic() => {
                    tracing::error!(component = name, "A component panicked during shutdown.");
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        component = name,
                        "A component did not stop in time; aborting it."
                    );
                    abort.abort();
                }
            }
        }
    }
}
