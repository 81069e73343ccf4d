//! Calls logged per second into the fake Bitrix24 under its 2 requests/s leaky bucket, with the
//! real outbox worker and SQLite outbox: every call is a register and a finish, packed into
//! `batch` requests. The client's own bucket is set to burst 1, so the figure is the
//! sustained rate, not the initial burst. Target: at least 20 calls/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::call::{NumberKind, PAYLOAD_VERSION};
use outbox::{CallDto, JobPayload, Step, WorkerSettings};
use test_support::bitrix24::{FakeBitrix24, FakeBitrix24Config};

const CALLS: usize = 600;

fn call(idx: usize) -> CallDto {
    CallDto {
        call_id: format!("1718010001.{idx}"),
        direction: "inbound".to_owned(),
        customer_number: Some(format!("+7916{:07}", 1_000_000 + idx)),
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
        talk_secs: 60 + (idx as i64 % 60),
        hold_secs: 0,
        recording_url: None,
        hangup_cause: Some(16),
        degraded: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_twenty_calls_per_second_under_two_requests_per_second() {
    let fake = FakeBitrix24::start(FakeBitrix24Config::default())
        .await
        .expect("fake portal");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage =
        storage::Storage::connect(&format!("sqlite://{}", dir.path().join("o.db").display()))
            .await
            .expect("storage");
    storage.migrate().await.expect("schema");
    let now = chrono::Utc::now();
    for idx in 0..CALLS {
        for step in [Step::CallStarted, Step::CallEnded] {
            let payload = serde_json::to_value(JobPayload {
                v: PAYLOAD_VERSION,
                call: call(idx),
            })
            .expect("payload");
            let job = storage::NewOutboxJob {
                connector: "b24".to_owned(),
                step: step.as_str().to_owned(),
                call_id: Some(storage::CallId::new(format!("1718010001.{idx}"))),
                idempotency_key: outbox::plan::idempotency_key(
                    "b24",
                    &format!("1718010001.{idx}"),
                    step,
                ),
                payload,
                next_attempt_at: now,
                created_at: now,
            };
            storage.enqueue(&job).await.expect("enqueue");
        }
    }
    let connector = crm_bitrix24::build(
        crm_bitrix24::Config {
            name: "b24".to_owned(),
            auth: crm_bitrix24::Auth::Webhook {
                url: fake.webhook_url(),
            },
            default_user_id: 1,
            users: [("101".to_owned(), 101)].into_iter().collect(),
            crm_create: true,
            show_card: true,
            line_number: None,
            timeout: Duration::from_secs(5),
            rate_per_sec: 2.0,
            burst: 1,
            max_jobs_per_delivery: 50,
        },
        storage.clone(),
    )
    .expect("connector");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = outbox::worker::spawn(
        connector as Arc<dyn outbox::Connector>,
        storage.clone(),
        WorkerSettings {
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        },
        stop_rx,
    );
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if storage.outbox_stats().await.expect("stats").depth() == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the outbox did not drain"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = worker.task.await;
    let calls = fake.calls();
    assert_eq!(calls.len(), CALLS);
    assert!(
        calls.iter().all(|c| c.finishes == 1 && c.registers == 1),
        "every call registered and finished once"
    );
    let (requests, rate_limited, commands) = fake.counters();
    let rate = CALLS as f64 / elapsed;
    eprintln!(
        "{CALLS} calls (register + finish) in {elapsed:.1} s = {rate:.1} calls/s; {requests} requests, \
         {rate_limited} rate-limited, {commands} commands"
    );
    assert_eq!(
        rate_limited, 0,
        "the client's bucket keeps under the portal's"
    );
    assert!(
        rate >= 20.0,
        "{rate:.1} calls/s is below the 20 calls/s target"
    );
}
