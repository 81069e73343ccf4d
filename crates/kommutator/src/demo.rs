//! `kommutator demo`: the whole product on one machine with nothing installed. A temporary
//! SQLite database with a seeded directory and demo agents, a simulated Asterisk speaking real
//! AMI on a loopback port, the real AMI client and call tracker connected to it, and the HTTP
//! server. Everything is thrown away on Ctrl-C.

mod control;
mod seed;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::{
    AmiAuth, AsteriskSettings, RawLog, RawPhone, Secret, ServerSettings, Settings, StorageSettings,
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address for the HTTP server. When the port is taken, a free one is used instead.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Simulated calls per minute (0: only the calls you place yourself).
    #[arg(long, default_value_t = 6)]
    calls_per_minute: u32,
    /// Keep the demo database in this directory instead of a temporary one.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// For test harnesses: serve a control endpoint on this loopback address (start scripted
    /// calls, read the simulator's QueuePause and Originate logs).
    #[arg(long)]
    control: Option<SocketAddr>,
    /// For test harnesses: once running, write the panel URL, the control URL and the demo
    /// accounts with their passwords to this file as JSON.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Seconds of automatic after-call work after each call.
    #[arg(long, default_value_t = 30)]
    after_call_work_secs: u64,
}

/// The AMI account the embedded simulator accepts; it never leaves the loopback interface.
const SIMULATOR_USER: &str = "kommutator-demo";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let temp_dir;
    let data_dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp_dir = tempfile::Builder::new()
                .prefix("kommutator-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo database")?;
            temp_dir.path().to_owned()
        }
    };
    let db_path = data_dir.join("demo.db");

    let simulator_secret = server::password::generate();
    let simulator = pbx_simulator::Simulator::start(
        pbx_simulator::SimulatorConfig {
            users: vec![pbx_simulator::AmiUser {
                username: SIMULATOR_USER.to_owned(),
                secret: simulator_secret.clone(),
                drop_varset: true,
            }],
            ..pbx_simulator::SimulatorConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .context("cannot start the simulated Asterisk on a loopback port")?;
    let ami_addr = simulator.local_addr();

    let settings = Settings {
        server: ServerSettings {
            listen: args.listen,
            public_url: String::new(),
            frame_ancestors: vec!["'self'".to_owned()],
            shutdown_grace: Duration::from_secs(3),
        },
        storage: StorageSettings {
            url: Secret::new(format!("sqlite://{}", db_path.display())),
            max_connections: 8,
        },
        log: RawLog::default(),
        phone: RawPhone {
            default_region: "RU".to_owned(),
        },
        asterisk: vec![AsteriskSettings {
            name: "demo".to_owned(),
            host: ami_addr.ip().to_string(),
            port: ami_addr.port(),
            username: SIMULATOR_USER.to_owned(),
            secret: Secret::new(simulator_secret),
            auth: AmiAuth::Md5,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            action_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            events: "on".to_owned(),
            drop_events: vec![],
            tracker: cti_core::TrackerConfig::default(),
        }],
        cti: demo_cti(args.after_call_work_secs)?,
        // The demo delivers to the built-in directory only (callback tasks for missed calls).
        crm: crate::config::crm::resolve(Default::default(), Default::default(), &|_| None)?,
        reports: crate::config::insight::resolve_reports(Default::default())?,
        dashboard: crate::config::insight::resolve_dashboard(Default::default())?,
        nats: None,
        event_webhooks: Vec::new(),
        routing: Some(crate::routing::demo_settings()?),
    };

    let storage = crate::serve::open_storage(&settings).await?;
    let passwords = seed(&storage).await?;

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(error = %err, addr = %args.listen, "The demo port is taken; using a free port instead.");
            tokio::net::TcpListener::bind(SocketAddr::new(args.listen.ip(), 0))
                .await
                .context("cannot open any port for the demo server")?
        }
    };
    let local = listener
        .local_addr()
        .context("cannot read the server address")?;
    let mut settings = settings;
    settings.server.listen = local;
    settings.server.public_url = format!("http://{local}");

    let (stop_tx, stop_rx) = watch::channel(false);
    let running = crate::serve::Running::start(&settings, storage.clone(), listener, stop_rx)?;
    let load = (args.calls_per_minute > 0).then(|| {
        simulator.handle().run_load(pbx_simulator::LoadProfile {
            calls_per_sec: f64::from(args.calls_per_minute) / 60.0,
            total_calls: None,
            mix: pbx_simulator::Mix::standard(),
            // Callers come from the directory, so screen pops find their cards.
            callers: seed::customers()
                .into_iter()
                .filter(|customer| !customer.blacklisted)
                .filter_map(|customer| customer.phones.into_iter().next().map(|phone| phone.1))
                .collect(),
            seed: rand::random(),
        })
    });

    let control = match args.control {
        Some(addr) => Some(control::start(addr, simulator.handle().clone()).await?),
        None => None,
    };
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &settings, control, &passwords)?;
    }
    print_banner(
        &settings,
        &passwords,
        &db_path,
        ami_addr,
        running.agi,
        started.elapsed(),
    );
    crate::shutdown_signal().await;
    let _ = stop_tx.send(true);
    if let Some(load) = load {
        load.stop().await;
    }
    // Stop the client first (it logs off), then the simulated PBX.
    running.join(settings.server.shutdown_grace).await;
    if let Err(err) = simulator.shutdown().await {
        tracing::warn!(error = %err, "The simulated Asterisk did not stop cleanly.");
    }
    storage.close().await;
    if args.data_dir.is_none() {
        println!("Demo stopped; its temporary database is gone.");
    } else {
        println!(
            "Demo stopped; its database stays in {}.",
            data_dir.display()
        );
    }
    Ok(())
}

/// The panel settings of the demo: the simulated Asterisk's dialplan (phones are
/// `Local/<ext>@agents/nm`, transfers go to `<ext>@internal`, outside numbers to `outbound`).
fn demo_cti(after_call_work_secs: u64) -> anyhow::Result<crate::config::cti::CtiSettings> {
    let raw = crate::config::cti::RawCti {
        phone_channel: "Local/{extension}@agents/nm".to_owned(),
        after_call_work_secs,
        after_call_work_max_secs: after_call_work_secs.max(600),
        line_instructions: vec![crate::config::cti::RawLineInstruction {
            line: "+18005550100".to_owned(),
            text: "Sales line: offer the spring discount.".to_owned(),
        }],
        ..crate::config::cti::RawCti::default()
    };
    Ok(raw.resolve(&["'self'".to_owned()], false)?)
}

fn write_ready_file(
    path: &std::path::Path,
    settings: &Settings,
    control: Option<SocketAddr>,
    passwords: &[(&'static str, String)],
) -> anyhow::Result<()> {
    let accounts: Vec<_> = passwords
        .iter()
        .map(|(login, password)| {
            let user = seed::USERS.iter().find(|u| u.login == *login);
            serde_json::json!({
                "login": login,
                "password": password,
                "role": user.map(|u| u.role),
                "extensions": user.map(|u| u.extensions.to_vec()),
            })
        })
        .collect();
    let ready = serde_json::json!({
        "url": settings.server.public_url,
        "panel": format!("{}/panel/", settings.server.public_url),
        "control": control.map(|c| format!("http://{c}")),
        "accounts": accounts,
    });
    // Written whole, then renamed, so a harness polling for the file never reads half of it.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&ready)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Creates the demo accounts (returning their generated passwords) and the customer directory.
async fn seed(storage: &storage::Storage) -> anyhow::Result<Vec<(&'static str, String)>> {
    let now = chrono::Utc::now();
    let mut user_ids = HashMap::new();
    let mut passwords = Vec::new();
    for user in seed::USERS {
        let password = server::password::generate();
        let role = storage::Role::parse(user.role).context("demo role is valid")?;
        let id = storage
            .create_user(
                &storage::NewUser {
                    login: user.login.to_owned(),
                    display_name: user.display_name.to_owned(),
                    role,
                    password_hash: Some(server::password::hash(&password)?),
                    extensions: user.extensions.iter().map(|e| (*e).to_owned()).collect(),
                    queues: user
                        .queues
                        .iter()
                        .flat_map(|queue| {
                            user.extensions
                                .iter()
                                .map(move |extension| storage::UserQueue {
                                    queue: (*queue).to_owned(),
                                    interface: format!("Local/{extension}@agents/nm"),
                                })
                        })
                        .collect(),
                },
                now,
            )
            .await
            .with_context(|| format!("cannot create demo user {}", user.login))?;
        user_ids.insert(user.login, id);
        passwords.push((user.login, password));
    }
    for customer in seed::customers() {
        storage
            .upsert_customer(
                &storage::CustomerUpsert {
                    name: customer.name.clone(),
                    company: customer.company,
                    responsible_user_id: customer
                        .responsible_login
                        .and_then(|login| user_ids.get(login).copied()),
                    segment: customer.segment.map(str::to_owned),
                    tags: customer.tags.iter().map(|t| (*t).to_owned()).collect(),
                    blacklisted: customer.blacklisted,
                    debtor: customer.debtor,
                    region: customer.region.map(str::to_owned),
                    notes: customer.notes,
                    instructions: customer.instructions,
                    phones: customer
                        .phones
                        .into_iter()
                        .map(|(raw, e164)| storage::CustomerPhone {
                            phone_e164: e164,
                            phone_raw: Some(raw),
                            kind: None,
                        })
                        .collect(),
                    ..storage::CustomerUpsert::default()
                },
                now,
            )
            .await
            .with_context(|| format!("cannot create demo customer {}", customer.name))?;
    }
    Ok(passwords)
}

fn print_banner(
    settings: &Settings,
    passwords: &[(&'static str, String)],
    db_path: &std::path::Path,
    ami: SocketAddr,
    agi: Option<SocketAddr>,
    elapsed: Duration,
) {
    let url = &settings.server.public_url;
    println!();
    println!(
        "Kommutator demo is running (started in {} ms).",
        elapsed.as_millis()
    );
    println!();
    println!("  Accounts (login / password / role / extension):");
    for (login, password) in passwords {
        let user = seed::USERS.iter().find(|u| u.login == *login);
        println!(
            "    {login:<10} {password}  {:<10} {}",
            user.map_or("", |u| u.role),
            user.map_or(String::new(), |u| u.extensions.join(","))
        );
    }
    println!();
    println!("  Open:");
    println!("    {url}/panel/          the operator panel (log in as an agent above)");
    println!("    {url}/dashboard/      the live supervisor dashboard (log in as olga)");
    println!("    {url}/reports/        historical reports with charts and CSV/XLSX export");
    println!("    {url}/api/v1/calls    call records as they happen (after logging in)");
    println!("    {url}/metrics         Prometheus metrics");
    println!("    {url}/healthz         liveness, {url}/readyz readiness");
    println!();
    println!(
        "  Simulated Asterisk (AMI) on {ami}; database {}",
        db_path.display()
    );
    if let Some(agi) = agi {
        println!("  Call routing (FastAGI): AGI(agi://{agi}) from the dialplan; {url}/api/v1/route over HTTP");
    }
    println!("  Press Ctrl-C to stop.");
    println!();
}
