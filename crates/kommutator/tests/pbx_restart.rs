//! Issue 3, "killing the simulator mid-call": `kommutator serve` connected to a simulated
//! Asterisk that dies in the middle of a call and comes back on the same port. The AMI client
//! must reconnect and resync, the call that died with the PBX must be closed and flagged
//! degraded instead of staying open forever, and later calls must be tracked normally.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pbx_simulator::{AmiUser, CallParams, Scenario, Simulator, SimulatorConfig};

const BIN: &str = env!("CARGO_BIN_EXE_kommutator");

use common::get as http_get;

fn calls(addr: &str, cookie: &str) -> Vec<serde_json::Value> {
    let (status, body) = common::get_as(addr, cookie, "/api/v1/calls?limit=100");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    page["calls"].as_array().cloned().unwrap_or_default()
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn simulator_config() -> SimulatorConfig {
    SimulatorConfig {
        users: vec![AmiUser {
            username: "cti".to_owned(),
            secret: "cti-secret".to_owned(),
            drop_varset: true,
        }],
        ..SimulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_restart_mid_call_closes_the_call_as_degraded() {
    let simulator = Simulator::start(simulator_config(), "127.0.0.1:0")
        .await
        .unwrap();
    let ami = simulator.local_addr();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{http_port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kommutator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n[storage]\nurl = \"sqlite://{}\"\n\
             [[pbx.asterisk]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"cti\"\n\
             secret = \"cti-secret\"\nreconnect_initial_ms = 100\nreconnect_max_secs = 1\n",
            dir.path().join("k.db").display(),
            ami.port()
        ),
    )
    .unwrap();
    // An administrator to read the calls API with.
    let mut add = Command::new(BIN)
        .args([
            "user",
            "add",
            "--config",
            config.to_str().unwrap(),
            "--login",
            "admin",
            "--name",
            "Admin",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"admin-password\n").unwrap();
    assert!(add.wait().unwrap().success());
    let server = KillOnDrop(
        Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probe = addr.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the server", Duration::from_secs(20), || {
            TcpStream::connect(&probe).is_ok() && http_get(&probe, "/healthz").0 == 200
        })
    })
    .await
    .unwrap();
    wait_until("the AMI login", Duration::from_secs(10), || {
        simulator.handle().sessions() == 1
    });
    let cookie = common::login(&addr, "admin", "admin-password");

    // A long call (attended transfer, ~15 s) is in progress when the PBX dies.
    simulator
        .handle()
        .start_call(Scenario::AttendedTransfer, CallParams::default())
        .unwrap();
    let probe = addr.clone();
    let cookie_ = cookie.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the call to be stored", Duration::from_secs(10), || {
            !calls(&probe, &cookie_).is_empty()
        })
    })
    .await
    .unwrap();
    let handle = simulator.handle().clone();
    simulator.shutdown().await.unwrap();

    // Asterisk comes back on the same port, with no calls (a restart loses them).
    let listener = tokio::net::TcpListener::bind(ami).await.unwrap();
    let simulator = Simulator::serve(handle, listener);
    wait_until("the reconnect", Duration::from_secs(15), || {
        simulator.handle().sessions() == 1
    });

    let probe = addr.clone();
    let cookie_ = cookie.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut stored = Vec::new();
        wait_until(
            "the dead call to be closed",
            Duration::from_secs(15),
            || {
                stored = calls(&probe, &cookie_);
                stored.iter().all(|c| !c["ended_at"].is_null())
            },
        );
        stored
    })
    .await
    .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["degraded"], true, "{:?}", stored[0]);

    // The new session is tracked normally: a short call ends on its own, not degraded.
    simulator
        .handle()
        .start_call(Scenario::QueueAbandon, CallParams::default())
        .unwrap();
    let probe = addr.clone();
    let cookie_ = cookie.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut stored = Vec::new();
        wait_until("the second call", Duration::from_secs(20), || {
            stored = calls(&probe, &cookie_);
            stored.len() == 2 && stored.iter().all(|c| !c["outcome"].is_null())
        });
        stored
    })
    .await
    .unwrap();
    let fresh = &stored[0];
    assert_eq!(fresh["outcome"], "abandoned", "{fresh:?}");
    assert_eq!(fresh["degraded"], false, "{fresh:?}");
    // Nothing was originated by the client on its own around the reconnect.
    assert!(simulator.handle().originate_log().is_empty());
    drop(server);
    simulator.shutdown().await.unwrap();
}
