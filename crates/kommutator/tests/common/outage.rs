//! The "every call in the CRM exactly once" scenario shared by the connector tests: a pbx
//! simulator under load, the real binary with one CRM table, the fake CRM down for a stretch,
//! one SIGKILL and restart, then the outbox drained and every stored call listed for the test
//! to check record by record against its fake.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pbx_simulator::{AmiUser, LoadProfile, Mix, Simulator, SimulatorConfig};
use test_support::{Fault, Faults};

const BIN: &str = env!("CARGO_BIN_EXE_kommutator");

/// Agents the simulator's calls ring; the tests map them to CRM users.
pub const AGENTS: [&str; 3] = ["101", "102", "103"];

/// A server process, SIGKILLed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kommutator serve` with `config`, appending its JSON log to `log`.
pub fn start_server(config: &Path, log: &Path, log_level: &str) -> KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    KillOnDrop(
        Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "--log-level",
                log_level,
                "serve",
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kommutator starts"),
    )
}

/// The last 40 lines of the server log, for failure messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A simulated Asterisk that accepts `cti` / `cti-secret`, 20 simulated seconds per second.
pub async fn start_simulator() -> Simulator {
    start_simulator_at(20.0).await
}

/// The same simulated Asterisk, `time_factor` simulated seconds per second.
pub async fn start_simulator_at(time_factor: f64) -> Simulator {
    Simulator::start(
        SimulatorConfig {
            users: vec![AmiUser {
                username: "cti".to_owned(),
                secret: "cti-secret".to_owned(),
                drop_varset: true,
            }],
            time_factor,
            variant: pbx_simulator::Variant::Filtered,
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("simulator")
}

/// The customers calling in: `+7916100000N`.
pub fn callers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("+7916{:07}", 1_000_000 + i))
        .collect()
}

/// Writes the server configuration the end-to-end tests share: HTTP on `listen`, SQLite at
/// `db`, the simulated Asterisk on `pbx_port` (quick reconnects), a quick outbox; `extra`
/// adds the tables under test (`[cti]`, `[[crm.*]]`, `[[events.webhook]]`).
pub fn write_config(path: &Path, listen: &str, db: &Path, pbx_port: u16, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"{listen}\"\n[storage]\nurl = \"sqlite://{}\"\n\
             [[pbx.asterisk]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {pbx_port}\nusername = \"cti\"\n\
             secret = \"cti-secret\"\nreconnect_initial_ms = 100\nreconnect_max_secs = 1\nping_timeout_secs = 20\naction_timeout_secs = 30\n\
             [outbox]\nlease_secs = 5\npoll_interval_ms = 100\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\nnode_id = \"test-node\"\n\
             {extra}",
            db.display(),
        ),
    )
    .unwrap();
}

/// Everything the scenario leaves for the test's checks.
pub struct Finished {
    /// Every call the server stored, in id order.
    pub rows: Vec<storage::CallRow>,
    pub log: PathBuf,
    pub elapsed: Duration,
    /// Kept so the database and the log outlive the scenario.
    pub dir: tempfile::TempDir,
}

/// The scenario. `crm_toml` is the `[[crm.*]]` table under test; `faults` is the fake's
/// switch; `outage` runs when the fake goes down (to add a 429 stretch, say).
pub async fn run(
    calls: u64,
    crm_toml: &str,
    faults: &Faults,
    log_level: &str,
    outage: impl FnOnce(),
) -> Finished {
    let simulator = start_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let config = dir.path().join("kommutator.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    write_config(
        &config,
        &listen,
        &db,
        simulator.local_addr().port(),
        crm_toml,
    );
    let log = dir.path().join("server.log");
    let mut server = start_server(&config, &log, log_level);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let started = Instant::now();
    // 1.0 call per simulated second is 20 calls per second of wall time.
    let load = simulator.handle().run_load(LoadProfile {
        calls_per_sec: 1.0,
        total_calls: Some(calls),
        mix: Mix::standard(),
        callers: callers(100),
        seed: 5,
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    outage();
    faults.set(Fault::Error5xx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    faults.set(Fault::Drop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    faults.set(Fault::None);
    // Kill -9 while the backlog drains, then restart.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server = start_server(&config, &log, log_level);

    assert_eq!(load.finished().await, calls);
    tokio::time::timeout(Duration::from_secs(60), simulator.handle().wait_idle())
        .await
        .expect("simulator idle");

    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    wait_drained(&storage, &log, Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    drop(server);
    let stats = storage.outbox_stats().await.unwrap();
    assert!(
        stats.connectors.iter().all(|c| c.dead == 0),
        "dead letters: {stats:?}\nserver log:\n{}",
        tail(&log)
    );
    let rows = stored_calls(&storage).await;
    // Calls that began and ended entirely while the server was dead are invisible to it (AMI
    // has no history); everything else must be there.
    assert!(
        rows.len() as u64 >= calls * 8 / 10,
        "only {} of {calls} calls were stored; server log:\n{}",
        rows.len(),
        tail(&log)
    );
    Finished {
        rows,
        log,
        elapsed,
        dir,
    }
}

/// Waits until no outbox job is pending or in flight.
pub async fn wait_drained(storage: &storage::Storage, log: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if matches!(storage.outbox_stats().await, Ok(stats) if stats.depth() == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain; server log:\n{}",
            tail(log)
        );
    }
}

/// Every stored call, all pages.
pub async fn stored_calls(storage: &storage::Storage) -> Vec<storage::CallRow> {
    let mut filter = storage::CallFilter {
        limit: 5000,
        ..Default::default()
    };
    let mut rows = Vec::new();
    loop {
        let page = storage.list_calls(&filter).await.unwrap();
        rows.extend(page.calls);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return rows,
        }
    }
}

/// Rounded talk seconds, as the connectors send them.
pub fn talk_secs(call: &storage::NewCall) -> i64 {
    (call.talk_ms + 500).div_euclid(1000)
}

/// The number a CRM is given for the customer: E.164 with its `+`.
pub fn customer(call: &storage::NewCall) -> Option<&str> {
    call.customer_number.as_deref()
}
