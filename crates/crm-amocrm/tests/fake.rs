//! The amoCRM connector through the real outbox worker and SQLite outbox against the fake
//! account: an expired token is refreshed and the rotated refresh token persisted, a 5xx
//! outage and 429s above 7 requests/s only delay delivery, every call is logged once, a call
//! to a number no contact has is dead-lettered, an empty search (204) is no match.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::call::{NumberKind, PAYLOAD_VERSION};
use outbox::{CallDto, Connector, JobPayload, Step, WorkerSettings};
use test_support::amocrm::{FakeAmoCrm, FakeContact};
use test_support::Fault;

fn call(idx: usize, number: &str) -> CallDto {
    CallDto {
        call_id: format!("1718030001.{idx}"),
        direction: "inbound".to_owned(),
        customer_number: Some(number.to_owned()),
        customer_kind: NumberKind::E164,
        customer_name: None,
        line: None,
        started_at: chrono::Utc::now(),
        answered_at: None,
        ended_at: None,
        outcome: Some("answered".to_owned()),
        agent: Some("101".to_owned()),
        answered_by: Some("101".to_owned()),
        originator: None,
        agents_rang: vec!["101".to_owned()],
        queue: None,
        wait_secs: 1,
        talk_secs: 30,
        hold_secs: 0,
        recording_url: None,
        hangup_cause: Some(16),
        degraded: false,
    }
}

fn number(idx: usize) -> String {
    format!("+7916{:07}", 3_000_000 + idx)
}

async fn storage(dir: &tempfile::TempDir) -> storage::Storage {
    let storage =
        storage::Storage::connect(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .expect("storage");
    storage.migrate().await.expect("schema");
    storage
}

fn config(fake: &FakeAmoCrm, rate_per_sec: f64, batch: usize) -> crm_amocrm::Config {
    crm_amocrm::Config {
        name: "amo".to_owned(),
        base_url: fake.base_url(),
        auth: crm_amocrm::Auth::OAuth(crm_amocrm::OAuthApp {
            client_id: "id".to_owned(),
            client_secret: "secret".to_owned(),
            redirect_uri: "https://kommutator.example.com/amo".to_owned(),
            initial_access_token: Some("access-0".to_owned()),
            initial_refresh_token: Some("refresh-0".to_owned()),
        }),
        source: "kommutator".to_owned(),
        users: [("101".to_owned(), 555)].into_iter().collect(),
        default_user_id: None,
        timeout: Duration::from_secs(2),
        rate_per_sec,
        max_jobs_per_delivery: batch,
    }
}

async fn run_until_drained(storage: &storage::Storage, connector: Arc<dyn Connector>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = outbox::worker::spawn(
        connector,
        storage.clone(),
        WorkerSettings {
            poll_interval: Duration::from_millis(20),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
            ..WorkerSettings::default()
        },
        stop_rx,
    );
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if storage.outbox_stats().await.expect("stats").depth() == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not drained");
    }
    let _ = stop_tx.send(true);
    let _ = worker.task.await;
}

async fn enqueue(storage: &storage::Storage, calls: impl Iterator<Item = CallDto>) {
    let now = chrono::Utc::now();
    for call in calls {
        let job = storage::NewOutboxJob {
            connector: "amo".to_owned(),
            step: Step::CallEnded.as_str().to_owned(),
            call_id: Some(storage::CallId::new(call.call_id.clone())),
            idempotency_key: outbox::plan::idempotency_key("amo", &call.call_id, Step::CallEnded),
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

const CALLS: usize = 40;

fn contacts() -> Vec<FakeContact> {
    (0..CALLS)
        .map(|idx| FakeContact {
            id: 1000 + idx as u64,
            name: format!("Contact {idx}"),
            // Stored the way a user typed it: with the trunk prefix 8.
            phone: format!("8 (916) {:07}", 3_000_000 + idx),
            responsible_user_id: 555,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_outage_and_rate_limit_deliver_every_call_once() {
    let fake = FakeAmoCrm::start(contacts(), 7).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let storage = storage(&dir).await;
    let mut calls: Vec<CallDto> = (0..CALLS).map(|idx| call(idx, &number(idx))).collect();
    calls.push(call(999, "+79169999999"));
    enqueue(&storage, calls.into_iter()).await;
    // First the token is expired and the account is down.
    fake.expire_access_token();
    fake.faults.set(Fault::Error5xx);
    // One call per request, well above 7 requests/s: the account answers 429.
    let connector = crm_amocrm::build(config(&fake, 30.0, 1), storage.clone()).expect("build");
    let outage = tokio::spawn({
        let faults = fake.faults.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            faults.set(Fault::None);
        }
    });
    run_until_drained(&storage, connector).await;
    outage.await.expect("outage task");

    let logged = fake.calls();
    assert_eq!(logged.len(), CALLS, "every known call logged once");
    let mut uniqs: Vec<&str> = logged
        .iter()
        .filter_map(|c| c.element["uniq"].as_str())
        .collect();
    uniqs.sort_unstable();
    uniqs.dedup();
    assert_eq!(uniqs.len(), CALLS, "no duplicates");
    assert_eq!(logged[0].element["responsible_user_id"], 555);
    let counters = fake.counters();
    assert!(
        counters.rate_limited > 0,
        "the 7/s limit was hit: {counters:?}"
    );
    assert_eq!(counters.refreshes, 1, "{counters:?}");
    let stored = storage
        .get_crm_token("amo")
        .await
        .expect("token")
        .expect("stored");
    assert_eq!(
        stored.refresh_token.as_deref(),
        Some(fake.current_refresh_token().as_str()),
        "the rotated refresh token is persisted"
    );
    let dead = storage
        .list_jobs(Some(storage::JobStatus::Dead), Some("amo"), 10, 0)
        .await
        .expect("dead");
    assert_eq!(
        dead.len(),
        1,
        "the call to an unknown number is dead-lettered"
    );
    assert_eq!(
        dead[0].call_id,
        Some(storage::CallId::new("1718030001.999".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_rate_stays_under_the_limit_and_searches_handle_204() {
    let fake = FakeAmoCrm::start(contacts(), 7).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let storage = storage(&dir).await;
    let connector = crm_amocrm::build(config(&fake, 6.0, 10), storage.clone()).expect("build");
    connector.healthcheck().await.expect("healthy");
    let found = connector
        .find_customers(directory::phone::E164::parse(&number(3)).expect("e164"))
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entity_id, "1003");
    assert_eq!(found[0].responsible.as_deref(), Some("555"));
    let none = connector
        .find_customers(directory::phone::E164::parse("+14155550100").expect("e164"))
        .await
        .expect("204 is no match");
    assert!(none.is_empty());
    enqueue(&storage, (0..CALLS).map(|idx| call(idx, &number(idx)))).await;
    run_until_drained(&storage, connector).await;
    assert_eq!(fake.calls().len(), CALLS);
    assert_eq!(fake.counters().rate_limited, 0, "{:?}", fake.counters());
}
