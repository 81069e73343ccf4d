//! Issue 5, "every call in the CRM, exactly once": 1,000 simulated calls go through the real
//! binary (AMI → tracker → outbox → Bitrix24 connector) into the fake Bitrix24 portal, which
//! is down for a stretch in the middle (5xx, then dropped connections), while the server is
//! killed with SIGKILL once and restarted. Afterwards every call Kommutator stored is in the
//! fake CRM exactly once, with the right fields, checked record by record, and ended: calls
//! that ended while the server was dead are closed by its first resync and finished too.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::outage::{
    callers, free_port, start_server, start_simulator, stored_calls, tail, wait_drained,
    write_config,
};
use pbx_simulator::{LoadProfile, Mix};
use test_support::bitrix24::{FakeBitrix24, FakeBitrix24Config, FakeCall};
use test_support::Fault;

const CALLS: u64 = 1000;
const LOG_LEVEL: &str = "warn,outbox=info,crm_bitrix24=info";

fn status_code(outcome: &str, direction: &str) -> &'static str {
    match (outcome, direction) {
        ("answered", _) => "200",
        ("missed" | "abandoned", "outbound") => "603-S",
        ("missed" | "abandoned" | "voicemail", _) => "304",
        ("busy", _) => "486",
        _ => "OTHER",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_reaches_bitrix24_exactly_once_through_an_outage_and_a_kill() {
    let fake = FakeBitrix24::start(FakeBitrix24Config::default())
        .await
        .expect("fake portal");
    let simulator = start_simulator().await;
    let http_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let config = dir.path().join("kommutator.toml");
    let crm = format!(
        "[[crm.bitrix24]]\nname = \"b24\"\nmode = \"webhook\"\nwebhook_url = \"{}\"\ndefault_user_id = 1\n\
         users = {{ \"101\" = 101, \"102\" = 102, \"103\" = 103 }}\ntimeout_secs = 2\n",
        fake.webhook_url(),
    );
    write_config(
        &config,
        &format!("127.0.0.1:{http_port}"),
        &db,
        simulator.local_addr().port(),
        &crm,
    );
    let log = dir.path().join("server.log");
    let mut server = start_server(&config, &log, LOG_LEVEL);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let started = Instant::now();
    // 20 simulated seconds per second: 1.0 call per simulated second is 20 calls per second.
    let load = simulator.handle().run_load(LoadProfile {
        calls_per_sec: 1.0,
        total_calls: Some(CALLS),
        mix: Mix::standard(),
        callers: callers(200),
        seed: 5,
    });

    // The portal goes down for a stretch: 5xx, then dropped connections.
    tokio::time::sleep(Duration::from_secs(6)).await;
    fake.faults().set(Fault::Error5xx);
    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.faults().set(Fault::Drop);
    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.faults().set(Fault::None);
    // Kill -9 while the backlog drains, then restart.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server = start_server(&config, &log, LOG_LEVEL);

    let started_calls = load.finished().await;
    assert_eq!(started_calls, CALLS);
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
        "dead letters: {stats:?}"
    );

    let rows = stored_calls(&storage).await;
    let fake_calls = fake.calls();
    let mut by_external: HashMap<String, Vec<&FakeCall>> = HashMap::new();
    for call in &fake_calls {
        let key = call
            .external_call_id
            .clone()
            .expect("every register carries EXTERNAL_CALL_ID");
        by_external.entry(key).or_default().push(call);
    }
    let mut ended = 0;
    let mut external_calls = 0;
    let mut problems = Vec::new();
    for row in &rows {
        let call = &row.call;
        if call.internal {
            continue;
        }
        external_calls += 1;
        if call.ended_at.is_none() {
            problems.push(format!("{}: still open in storage", call.id));
        }
        let Some(found) = by_external.get(call.id.as_str()) else {
            problems.push(format!("{}: not in the CRM", call.id));
            continue;
        };
        if found.len() != 1 {
            problems.push(format!("{}: {} CRM records", call.id, found.len()));
            continue;
        }
        let crm = found[0];
        let phone = call
            .customer_number
            .as_deref()
            .map_or("anonymous".to_owned(), |n| {
                n.trim_start_matches('+').to_owned()
            });
        let direction = call.direction.as_str();
        let expected_type = if direction == "inbound" { "2" } else { "1" };
        if crm.phone_number != phone || crm.call_type != expected_type {
            problems.push(format!(
                "{}: registered {} type {}, stored {phone} {direction}",
                call.id, crm.phone_number, crm.call_type
            ));
        }
        // No call may stay registered but unfinished: one that ended while the server was dead
        // is closed (degraded) by the first resync after the restart and finished like any other.
        match (&call.outcome, &crm.finish) {
            (Some(outcome), Some(finish)) => {
                ended += 1;
                let outcome = outcome.as_str();
                let duration = if outcome == "answered" {
                    (call.talk_ms + 500) / 1000
                } else {
                    0
                };
                if crm.finishes != 1
                    || finish.duration != duration
                    || finish.status_code != status_code(outcome, direction)
                {
                    problems.push(format!(
                        "{}: finished {:?} x{}, stored {outcome} talk {} ms",
                        call.id, finish, crm.finishes, call.talk_ms
                    ));
                }
                if outcome == "answered" {
                    if let Some(agent) = &call.answered_by {
                        if finish.user != *agent {
                            problems.push(format!(
                                "{}: finished by {}, answered by {agent}",
                                call.id, finish.user
                            ));
                        }
                    }
                }
            }
            (outcome, finish) => problems.push(format!(
                "{}: stored outcome {outcome:?}, CRM finish {finish:?}",
                call.id
            )),
        }
    }
    let stored: std::collections::HashSet<&str> = rows.iter().map(|r| r.call.id.as_str()).collect();
    for external in by_external.keys() {
        if !stored.contains(external.as_str()) {
            problems.push(format!("{external}: in the CRM but not stored"));
        }
    }
    // How many calls the restart's first resync found ended while the server was dead.
    let orphans = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("Closed a call that ended while Kommutator was not connected")
        .count();
    eprintln!("{orphans} calls closed by the first resync after the kill");
    let (requests, rate_limited, commands) = fake.counters();
    eprintln!(
        "{} calls started, {} stored, {ended} finished in the CRM, {} CRM records; {requests} requests \
         ({rate_limited} rate-limited), {commands} commands; {:.1} s",
        CALLS,
        rows.len(),
        fake_calls.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\nserver log:\n{}",
        problems.len(),
        problems.join("\n"),
        tail(&log)
    );
    // Calls that began and ended entirely while the server was dead are invisible to it (AMI
    // has no history, and nothing of them was stored): they are neither stored nor in the CRM,
    // and are not made up. Everything else must be there, ended and finished exactly once.
    assert!(
        rows.len() as u64 >= CALLS * 9 / 10,
        "only {} of {CALLS} calls were stored; server log:\n{}",
        rows.len(),
        tail(&log)
    );
    assert_eq!(
        ended, external_calls,
        "{external_calls} external calls stored but only {ended} finished in the CRM"
    );
}
