//! Issue 7, "the event stream out", webhook side: the real binary with an `[[events.webhook]]`
//! receiver that is down (5xx, then dropped connections) while simulated calls run, and the
//! server killed with SIGKILL in the middle and restarted (an event's job is stored with the
//! call change it describes, so the kill loses none). Afterwards
//! every stored call's events are at the receiver, each once, signed, as the documented event
//! object, in the order the tracker produced them: the call's first event is `call.started`,
//! its last `call.ended` (`at` is when a thing happened, so a transfer can be told after a
//! later event).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::outage::{
    callers, free_port, start_server, start_simulator, stored_calls, tail, wait_drained,
    write_config,
};
use pbx_simulator::{LoadProfile, Mix};
use test_support::webhook::FakeWebhookReceiver;
use test_support::Fault;

const CALLS: u64 = 40;
const SECRET: &str = "events-webhook-shared-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_every_call_reaches_the_webhook_once_through_an_outage() {
    let receiver = FakeWebhookReceiver::start(SECRET).await.expect("receiver");
    let simulator = start_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let config = dir.path().join("kommutator.toml");
    let hook = format!(
        "[[events.webhook]]\nname = \"bi\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nkinds = [\"call.*\", \"queue.*\", \"agent.*\"]\n",
        receiver.url(),
    );
    write_config(
        &config,
        &format!("127.0.0.1:{}", free_port()),
        &db,
        simulator.local_addr().port(),
        &hook,
    );
    let log = dir.path().join("server.log");
    let mut server = start_server(&config, &log, "warn,outbox=info");
    tokio::time::sleep(Duration::from_millis(700)).await;

    receiver.faults.set(Fault::Error5xx);
    let load = simulator.handle().run_load(LoadProfile {
        calls_per_sec: 1.0,
        total_calls: Some(CALLS),
        mix: Mix::standard(),
        callers: callers(20),
        seed: 11,
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    receiver.faults.set(Fault::Drop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server = start_server(&config, &log, "warn,outbox=info");
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiver.lose_answers(2);
    receiver.faults.set(Fault::None);
    assert_eq!(load.finished().await, CALLS);
    tokio::time::timeout(Duration::from_secs(60), simulator.handle().wait_idle())
        .await
        .expect("simulator idle");

    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    // The tracker hands its last effects over after the simulator went idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_drained(&storage, &log, Duration::from_secs(60)).await;
    drop(server);
    let stats = storage.outbox_stats().await.unwrap();
    assert!(
        stats.connectors.iter().all(|c| c.dead == 0),
        "dead letters: {stats:?}\nserver log:\n{}",
        tail(&log)
    );

    // The start-up healthcheck's ping is not an event.
    let received: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.event != "ping")
        .collect();
    assert_eq!(receiver.bad_signatures(), 0);
    // The lost answers are sent again under the same key; so may be a delivery the kill cut
    // short. The receiver keeps one of each.
    let repeated: u32 = received.iter().map(|r| r.arrivals - 1).sum();
    assert!(
        repeated >= 2,
        "the lost answers were sent again: {repeated}"
    );
    let mut by_call: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &received {
        let event = &r.body;
        assert_eq!(event["v"], 1, "{event}");
        assert_eq!(r.event, event["kind"].as_str().unwrap(), "{event}");
        assert_eq!(r.key, format!("bi:event:{}", event["id"].as_str().unwrap()));
        let kind = event["kind"].as_str().unwrap();
        assert!(
            ["call.", "queue.", "agent."]
                .iter()
                .any(|p| kind.starts_with(p)),
            "{kind} passed the filter"
        );
        if let Some(call) = event["call_id"].as_str() {
            by_call.entry(call.to_owned()).or_default().push(event);
        }
    }
    let rows = stored_calls(&storage).await;
    // A call that began and ended while the server was dead is not visible over AMI.
    assert!(
        rows.len() as u64 >= CALLS * 3 / 4,
        "{} calls stored",
        rows.len()
    );
    let mut problems = Vec::new();
    for row in &rows {
        let call = &row.call;
        let Some(events) = by_call.get(call.id.as_str()) else {
            problems.push(format!("{}: no events", call.id));
            continue;
        };
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        let ended = kinds.iter().filter(|k| **k == "call.ended").count();
        if kinds.first() != Some(&"call.started")
            || kinds.last() != Some(&"call.ended")
            || ended != 1
        {
            problems.push(format!("{}: {kinds:?}", call.id));
        }
        let last = events.last().unwrap();
        if call.outcome.as_ref().map(|o| o.as_str()) != last["call"]["outcome"].as_str() {
            problems.push(format!(
                "{}: stored {:?}, call.ended says {}",
                call.id, call.outcome, last["call"]["outcome"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\nserver log:\n{}",
        problems.len(),
        problems.join("\n"),
        tail(&log)
    );
}
