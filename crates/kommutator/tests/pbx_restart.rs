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

/// Issues 3 and 5, "a call that ends while Kommutator is down": storage holds a call as open
/// (the server was killed mid-call) and the PBX no longer has it when the server comes back.
/// The first resync closes it as degraded at its last stored event and plans its CRM finish
/// through the outbox, once; a later resync (a PBX restart) adds nothing. Calls that began and
/// ended entirely while the server was down left nothing behind and cannot be recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ended_while_the_server_was_down_is_closed_and_finished_once() {
    let fake = test_support::bitrix24::FakeBitrix24::start(Default::default())
        .await
        .unwrap();
    let simulator = Simulator::start(simulator_config(), "127.0.0.1:0")
        .await
        .unwrap();
    let ami = simulator.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let config = crm_config(dir.path(), &db, ami.port(), &fake.webhook_url());

    // What a killed server left behind: an answered call, open, last heard of 10 minutes ago.
    let storage = storage::Storage::connect(&db).await.unwrap();
    storage.migrate().await.unwrap();
    let started = chrono::DateTime::from_timestamp_micros(
        (chrono::Utc::now() - chrono::Duration::minutes(10)).timestamp_micros(),
    )
    .unwrap();
    let answered = started + chrono::Duration::seconds(4);
    let id = storage::CallId::new("1700000000.42");
    let call = storage::NewCall {
        id: id.clone(),
        source: "office".to_owned(),
        direction: storage::Direction::Inbound,
        customer_number: Some("+79161234567".to_owned()),
        customer_number_raw: Some("+79161234567".to_owned()),
        line: Some("+74950000000".to_owned()),
        queue: None,
        started_at: started,
        answered_at: Some(answered),
        ended_at: None,
        outcome: None,
        answered_by: Some("101".to_owned()),
        agent_user_id: None,
        wait_ms: 4000,
        talk_ms: 0,
        hold_ms: 0,
        recording: None,
        degraded: false,
        short_abandon: false,
        internal: false,
        route_decision: None,
        record: serde_json::json!({"customer_number_kind": "e164", "agents_rang": ["101"]}),
        updated_at: answered,
    };
    let last_event = answered + chrono::Duration::seconds(30);
    let events: Vec<_> = [
        (started, "call_started"),
        (answered, "answered"),
        (last_event, "hold"),
    ]
    .into_iter()
    .enumerate()
    .map(|(seq, (at, kind))| storage::NewCallEvent {
        call_id: id.clone(),
        seq: seq as i64 + 1,
        at,
        kind: kind.to_owned(),
        data: serde_json::json!({}),
    })
    .collect();
    storage
        .write_call(&storage::CallWrite {
            call: &call,
            agents: &[],
            events: &events,
            jobs: &[],
        })
        .await
        .unwrap();

    let server = serve(&config);
    let finishes = |fake: &test_support::bitrix24::FakeBitrix24| {
        fake.calls()
            .iter()
            .filter(|c| c.external_call_id.as_deref() == Some(id.as_str()))
            .map(|c| c.finishes)
            .sum::<u32>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while finishes(&fake) == 0 {
        assert!(
            Instant::now() < deadline,
            "the orphan was never finished in the CRM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = storage.get_call(&id).await.unwrap().unwrap().call.call;
    assert_eq!(
        row.ended_at,
        Some(last_event),
        "ended at its last stored event"
    );
    assert!(row.degraded);
    assert_eq!(row.outcome, Some(storage::Outcome::Answered));
    assert_eq!(row.talk_ms, 30_000, "answered to last event");
    let ended_jobs = |jobs: &[storage::OutboxJob]| {
        jobs.iter()
            .filter(|j| j.call_id.as_ref() == Some(&id) && j.step == "call_ended")
            .map(|j| j.idempotency_key.clone())
            .collect::<Vec<_>>()
    };
    let jobs = storage.list_jobs(None, None, 1000, 0).await.unwrap();
    // One finish per connector (the CRM and the built-in directory), under the live keys.
    let mut keys = ended_jobs(&jobs);
    keys.sort();
    let expected: Vec<String> = ["b24", "directory"]
        .iter()
        .map(|c| outbox::plan::idempotency_key(c, id.as_str(), outbox::Step::CallEnded))
        .collect();
    assert_eq!(keys, expected);

    // The PBX restarts: a second session, a second resync, nothing more for this call.
    let handle = simulator.handle().clone();
    simulator.shutdown().await.unwrap();
    let listener = tokio::net::TcpListener::bind(ami).await.unwrap();
    let simulator = Simulator::serve(handle, listener);
    wait_until("the reconnect", Duration::from_secs(15), || {
        simulator.handle().sessions() == 1
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs = storage.list_jobs(None, None, 1000, 0).await.unwrap();
    assert_eq!(ended_jobs(&jobs).len(), expected.len());
    assert_eq!(finishes(&fake), 1);
    let again = storage.get_call(&id).await.unwrap().unwrap().call.call;
    assert_eq!(again, row);
    drop(server);
    simulator.shutdown().await.unwrap();
}

/// A server on `db` connected to the simulator at `ami_port`, finishing calls in the fake
/// Bitrix24 at `webhook` (agent 101 mapped).
fn crm_config(dir: &std::path::Path, db: &str, ami_port: u16, webhook: &str) -> std::path::PathBuf {
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("kommutator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http_port}\"\n[storage]\nurl = \"{db}\"\n\
             [[pbx.asterisk]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {ami_port}\nusername = \"cti\"\n\
             secret = \"cti-secret\"\nreconnect_initial_ms = 100\nreconnect_max_secs = 1\n\
             [outbox]\npoll_interval_ms = 100\nbackoff_initial_ms = 200\nbackoff_max_secs = 1\n\
             [[crm.bitrix24]]\nname = \"b24\"\nmode = \"webhook\"\nwebhook_url = \"{webhook}\"\ndefault_user_id = 1\n\
             users = {{ \"101\" = 101, \"102\" = 102 }}\ntimeout_secs = 2\n",
        ),
    )
    .unwrap();
    config
}

fn serve(config: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Kommutator is killed while a call is up and comes back before it ends: the resync hands
/// the live call back to the tracker (it is not an orphan), which ends it when it hangs up;
/// the stored call is ended once, and each connector finishes it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_up_across_a_kommutator_restart_is_readopted_and_finished_once() {
    let fake = test_support::bitrix24::FakeBitrix24::start(Default::default())
        .await
        .unwrap();
    let simulator = Simulator::start(simulator_config(), "127.0.0.1:0")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let config = crm_config(
        dir.path(),
        &db,
        simulator.local_addr().port(),
        &fake.webhook_url(),
    );
    let mut server = serve(&config);
    wait_until("the AMI login", Duration::from_secs(20), || {
        simulator.handle().sessions() == 1
    });
    let storage = storage::Storage::connect(&db).await.unwrap();
    let all = storage::CallFilter {
        limit: 100,
        ..Default::default()
    };
    // A long call (attended transfer, ~15 s): answered, then the server dies under it.
    simulator
        .handle()
        .start_call(Scenario::AttendedTransfer, CallParams::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = storage.list_calls(&all).await.unwrap();
        if page.calls.iter().any(|c| c.call.answered_at.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call was never stored as answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.0.kill().unwrap();
    let _ = server.0.wait();
    server = serve(&config);

    tokio::time::timeout(Duration::from_secs(60), simulator.handle().wait_idle())
        .await
        .expect("simulator idle");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = storage.list_calls(&all).await.unwrap().calls;
        let finished: u32 = fake.calls().iter().map(|c| c.finishes).sum();
        if !rows.is_empty() && rows.iter().all(|c| c.call.ended_at.is_some()) && finished > 0 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the call was not ended and finished: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let call = &rows[0].call;
    assert_eq!(call.outcome, Some(storage::Outcome::Answered), "{call:?}");
    let crm: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.external_call_id.as_deref() == Some(call.id.as_str()))
        .collect();
    assert_eq!(crm.len(), 1, "{crm:?}");
    assert_eq!(crm[0].finishes, 1, "{crm:?}");
    let jobs = storage.list_jobs(None, None, 1000, 0).await.unwrap();
    let mut ended: Vec<_> = jobs
        .iter()
        .filter(|j| j.step == "call_ended")
        .map(|j| j.idempotency_key.clone())
        .collect();
    ended.sort();
    let expected: Vec<String> = ["b24", "directory"]
        .iter()
        .map(|c| outbox::plan::idempotency_key(c, call.id.as_str(), outbox::Step::CallEnded))
        .collect();
    assert_eq!(ended, expected);
    drop(server);
    simulator.shutdown().await.unwrap();
}
