//! The webhook through the real outbox worker and SQLite outbox, against a receiver that checks
//! signatures: the receiver is down (503) for a while, then loses a few answers after
//! committing; every job still arrives, once per idempotency key, in order per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::call::{NumberKind, PAYLOAD_VERSION};
use outbox::{CallDto, JobPayload, Step, WorkerSettings};
use test_support::webhook::FakeWebhookReceiver;
use test_support::Fault;

const CALLS: usize = 20;
const SECRET: &str = "a-long-shared-secret";

fn call(idx: usize) -> CallDto {
    CallDto {
        call_id: format!("1718020001.{idx}"),
        direction: "inbound".to_owned(),
        customer_number: Some(format!("+7916{:07}", 2_000_000 + idx)),
        customer_kind: NumberKind::E164,
        customer_name: None,
        line: Some("74951112233".to_owned()),
        started_at: chrono::Utc::now(),
        answered_at: None,
        ended_at: None,
        outcome: Some("answered".to_owned()),
        agent: Some("101".to_owned()),
        answered_by: Some("101".to_owned()),
        originator: None,
        agents_rang: vec!["101".to_owned()],
        queue: Some("sales".to_owned()),
        wait_secs: 3,
        talk_secs: 42,
        hold_secs: 0,
        recording_url: None,
        hangup_cause: Some(16),
        degraded: false,
    }
}

async fn open_storage(dir: &tempfile::TempDir) -> storage::Storage {
    let storage =
        storage::Storage::connect(&format!("sqlite://{}", dir.path().join("o.db").display()))
            .await
            .expect("storage");
    storage.migrate().await.expect("schema");
    storage
}

fn config(receiver: &FakeWebhookReceiver) -> sink_webhook::Config {
    sink_webhook::Config {
        name: "hook".to_owned(),
        url: receiver.url(),
        secret: SECRET.to_owned(),
        call_started: true,
        timeout: Duration::from_secs(2),
        rate_per_sec: 0.0,
    }
}

fn spawn_worker(
    connector: Arc<dyn outbox::Connector>,
    storage: &storage::Storage,
) -> (tokio::sync::watch::Sender<bool>, outbox::WorkerHandle) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = outbox::worker::spawn(
        connector,
        storage.clone(),
        WorkerSettings {
            poll_interval: Duration::from_millis(20),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            ..WorkerSettings::default()
        },
        stop_rx,
    );
    (stop_tx, worker)
}

/// Waits (at most 30 s) until no job is left to deliver.
async fn wait_drained(storage: &storage::Storage) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if storage.outbox_stats().await.expect("stats").depth() == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the outbox did not drain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_arrives_once_after_an_outage() {
    let receiver = FakeWebhookReceiver::start(SECRET).await.expect("receiver");
    receiver.faults.set(Fault::Error5xx);
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = open_storage(&dir).await;
    let now = chrono::Utc::now();
    for idx in 0..CALLS {
        for step in [Step::CallStarted, Step::CallEnded] {
            let call = call(idx);
            let job = storage::NewOutboxJob {
                connector: "hook".to_owned(),
                step: step.as_str().to_owned(),
                call_id: Some(storage::CallId::new(call.call_id.clone())),
                idempotency_key: outbox::plan::idempotency_key("hook", &call.call_id, step),
                payload: serde_json::to_value(JobPayload {
                    v: PAYLOAD_VERSION,
                    call,
                })
                .expect("payload"),
                next_attempt_at: now,
                created_at: now,
            };
            storage.enqueue(&job).await.expect("enqueue");
        }
    }
    let connector = sink_webhook::build(config(&receiver)).expect("connector");
    let (stop_tx, worker) = spawn_worker(connector, &storage);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.received().is_empty(), "nothing gets through a 503");
    let stats = storage.outbox_stats().await.expect("stats");
    assert_eq!(stats.depth(), (CALLS * 2) as u64, "every job waits");
    receiver.lose_answers(3);
    receiver.faults.set(Fault::None);
    wait_drained(&storage).await;
    let _ = stop_tx.send(true);
    let _ = worker.task.await;

    let received = receiver.received();
    assert_eq!(receiver.bad_signatures(), 0);
    assert_eq!(received.len(), CALLS * 2, "every job arrived");
    let repeated: u32 = received.iter().map(|r| r.arrivals - 1).sum();
    assert_eq!(repeated, 3, "exactly the lost answers were repeated");
    for idx in 0..CALLS {
        let call_id = format!("1718020001.{idx}");
        let positions: Vec<(usize, &str)> = received
            .iter()
            .enumerate()
            .filter(|(_, r)| r.body["call"]["call_id"] == call_id.as_str())
            .map(|(pos, r)| (pos, r.event.as_str()))
            .collect();
        assert_eq!(positions.len(), 2, "{call_id}");
        assert_eq!(positions[0].1, "call_started", "{call_id}: start first");
        assert_eq!(positions[1].1, "call_ended", "{call_id}");
    }
    let first = &received[0];
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["idempotency_key"], first.key.as_str());
    assert_eq!(first.body["call"]["customer_number"], "+79162000000");
}

/// Domain events take the same road: queued while the receiver is down, each delivered once
/// (by event id) as the event object itself, with its kind in `X-Kommutator-Event`, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_after_an_outage() {
    let receiver = FakeWebhookReceiver::start(SECRET).await.expect("receiver");
    receiver.faults.set(Fault::Drop);
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = open_storage(&dir).await;
    let now = chrono::Utc::now();
    let kinds = [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.ended",
        "agent.status",
    ];
    let events: Vec<serde_json::Value> = (0..60)
        .map(|i| {
            serde_json::json!({
                "v": 1,
                "id": format!("event-{i:03}"),
                "kind": kinds[i % kinds.len()],
                "at": "2026-12-01T10:00:00.000000Z",
                "source": "office",
                "call_id": format!("1718020001.{}", i / kinds.len()),
            })
        })
        .collect();
    let jobs: Vec<storage::NewOutboxJob> = events
        .iter()
        .map(|e| outbox::events::event_job("hook", e.clone(), None, now).expect("job"))
        .collect();
    assert_eq!(storage.enqueue_many(&jobs).await.expect("enqueue"), 60);
    assert_eq!(
        storage.enqueue_many(&jobs).await.expect("enqueue again"),
        0,
        "the same events twice are one set of jobs"
    );
    let connector = sink_webhook::build_events(config(&receiver)).expect("connector");
    assert_eq!(outbox::Connector::steps(connector.as_ref()), [Step::Event]);
    let (stop_tx, worker) = spawn_worker(connector, &storage);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        receiver.received().is_empty(),
        "nothing gets through dropped connections"
    );
    receiver.lose_answers(2);
    receiver.faults.set(Fault::None);
    wait_drained(&storage).await;
    let _ = stop_tx.send(true);
    let _ = worker.task.await;

    let received = receiver.received();
    assert_eq!(receiver.bad_signatures(), 0);
    let repeated: u32 = received.iter().map(|r| r.arrivals - 1).sum();
    assert_eq!(repeated, 2, "exactly the lost answers were repeated");
    let got: Vec<&serde_json::Value> = received.iter().map(|r| &r.body).collect();
    let sent: Vec<&serde_json::Value> = events.iter().collect();
    assert_eq!(got, sent, "every event, as it was, in order");
    for r in &received {
        assert_eq!(r.event, r.body["kind"].as_str().unwrap());
        assert_eq!(
            r.key,
            format!("hook:event:{}", r.body["id"].as_str().unwrap())
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_retried() {
    let receiver = FakeWebhookReceiver::start(SECRET).await.expect("receiver");
    let connector = sink_webhook::build(sink_webhook::Config {
        name: "hook".to_owned(),
        url: receiver.url(),
        secret: "not-the-shared-secret".to_owned(),
        call_started: false,
        timeout: Duration::from_secs(2),
        rate_per_sec: 0.0,
    })
    .expect("connector");
    let err = outbox::Connector::healthcheck(connector.as_ref())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), outbox::ErrorKind::Auth);
    assert_eq!(receiver.bad_signatures(), 1);
    let good = sink_webhook::build(sink_webhook::Config {
        secret: SECRET.to_owned(),
        ..sink_webhook::Config {
            name: "hook".to_owned(),
            url: receiver.url(),
            secret: String::new(),
            call_started: false,
            timeout: Duration::from_secs(2),
            rate_per_sec: 0.0,
        }
    })
    .expect("connector");
    outbox::Connector::healthcheck(good.as_ref())
        .await
        .expect("ping accepted");
}
