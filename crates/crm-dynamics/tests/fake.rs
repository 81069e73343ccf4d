//! The Dynamics connector through the real outbox worker against the fake organization:
//! 429 with `Retry-After` delays delivery by at least that long, a revoked token is replaced
//! on 401, every call becomes one phonecall with the right parties.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::call::{NumberKind, PAYLOAD_VERSION};
use outbox::{CallDto, Connector, JobPayload, Step, WorkerSettings};
use test_support::dynamics::{FakeDynContact, FakeDynamics};

const CONTACT: &str = "9b1e2c0d-5a4f-4e2d-9c0b-9a8f7e6d5c4b";
const AGENT: &str = "2f0c6a1e-8d7b-4c3a-9e1f-0a2b3c4d5e6f";

fn call(idx: usize, number: &str, direction: &str) -> CallDto {
    CallDto {
        call_id: format!("1718040001.{idx}"),
        direction: direction.to_owned(),
        customer_number: Some(number.to_owned()),
        customer_kind: NumberKind::E164,
        customer_name: None,
        line: None,
        started_at: chrono::Utc::now(),
        answered_at: None,
        ended_at: Some(chrono::Utc::now()),
        outcome: Some("answered".to_owned()),
        agent: Some("101".to_owned()),
        answered_by: Some("101".to_owned()),
        originator: None,
        agents_rang: vec!["101".to_owned()],
        queue: Some("sales".to_owned()),
        wait_secs: 1,
        talk_secs: 148,
        hold_secs: 0,
        recording_url: None,
        hangup_cause: Some(16),
        degraded: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_revoked_then_every_call_logged_with_parties() {
    let fake = FakeDynamics::start(
        "app",
        "secret",
        vec![FakeDynContact {
            id: CONTACT.to_owned(),
            fullname: "Ivan Petrov".to_owned(),
            phones: [None, Some("+79161234567".to_owned()), None],
        }],
    )
    .await
    .expect("fake");
    let connector = crm_dynamics::build(crm_dynamics::Config {
        name: "d365".to_owned(),
        base_url: fake.base_url(),
        token_url: fake.token_url(),
        client_id: "app".to_owned(),
        client_secret: "secret".to_owned(),
        users: [("101".to_owned(), AGENT.to_owned())].into_iter().collect(),
        timeout: Duration::from_secs(2),
    })
    .expect("build");
    connector.healthcheck().await.expect("healthy");
    let found = connector
        .find_customers(directory::phone::E164::parse("+79161234567").expect("e164"))
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entity_id, CONTACT);
    fake.revoke_tokens();

    let dir = tempfile::tempdir().expect("dir");
    let storage =
        storage::Storage::connect(&format!("sqlite://{}", dir.path().join("d.db").display()))
            .await
            .expect("storage");
    storage.migrate().await.expect("schema");
    let now = chrono::Utc::now();
    let calls = [
        call(0, "+79161234567", "inbound"),
        call(1, "+79161234567", "outbound"),
        call(2, "+79165550000", "inbound"),
    ];
    for call in calls {
        let job = storage::NewOutboxJob {
            connector: "d365".to_owned(),
            step: Step::CallEnded.as_str().to_owned(),
            call_id: Some(storage::CallId::new(call.call_id.clone())),
            idempotency_key: outbox::plan::idempotency_key("d365", &call.call_id, Step::CallEnded),
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
    fake.throttle(1, 2);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = outbox::worker::spawn(
        connector as Arc<dyn Connector>,
        storage.clone(),
        WorkerSettings {
            poll_interval: Duration::from_millis(20),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            ..WorkerSettings::default()
        },
        stop_rx,
    );
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if storage.outbox_stats().await.expect("stats").depth() == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not drained");
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = worker.task.await;
    assert_eq!(fake.throttled(), 1);
    assert!(
        elapsed >= Duration::from_secs(2),
        "Retry-After honoured: {elapsed:?}"
    );
    assert!(fake.tokens_issued() >= 2, "a new token after the 401");
    let created = fake.phonecalls();
    assert_eq!(created.len(), 3);
    let inbound = &created[0];
    assert_eq!(inbound["directioncode"], false);
    assert_eq!(inbound["actualdurationminutes"], 3);
    assert_eq!(
        inbound["regardingobjectid_contact_phonecall@odata.bind"],
        format!("/contacts({CONTACT})")
    );
    assert_eq!(
        inbound["phonecall_activity_parties"],
        serde_json::json!([
            {"partyid_contact@odata.bind": format!("/contacts({CONTACT})"), "participationtypemask": 1},
            {"partyid_systemuser@odata.bind": format!("/systemusers({AGENT})"), "participationtypemask": 2}
        ])
    );
    let outbound = &created[1];
    assert_eq!(outbound["directioncode"], true);
    assert_eq!(
        outbound["phonecall_activity_parties"][0]["participationtypemask"],
        2
    );
    let unknown = &created[2];
    assert_eq!(
        unknown["phonecall_activity_parties"][0],
        serde_json::json!({"addressused": "+79165550000", "participationtypemask": 1})
    );
    assert!(unknown
        .get("regardingobjectid_contact_phonecall@odata.bind")
        .is_none());
}
