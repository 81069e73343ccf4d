//! The built-in directory connector against real SQLite storage: a customer who called three
//! times without being answered has one open callback task (three attempts); the next answered
//! call with them closes it. Unknown callers get a task per number; withheld calls none.

use outbox::builtin::{build, Config};
use outbox::call::{NumberKind, PAYLOAD_VERSION};
use outbox::{CallDto, Connector, Job, JobPayload, Step};
use storage::{TaskFilter, TaskStatus};

fn call(id: &str, number: Option<&str>, direction: &str, outcome: &str) -> CallDto {
    CallDto {
        call_id: id.to_owned(),
        direction: direction.to_owned(),
        customer_number: number.map(str::to_owned),
        customer_kind: if number.is_some() {
            NumberKind::E164
        } else {
            NumberKind::Withheld
        },
        customer_name: None,
        line: Some("74951112233".to_owned()),
        started_at: chrono::Utc::now(),
        answered_at: None,
        ended_at: Some(chrono::Utc::now()),
        outcome: Some(outcome.to_owned()),
        agent: None,
        answered_by: None,
        originator: None,
        agents_rang: vec!["101".to_owned()],
        queue: Some("sales".to_owned()),
        wait_secs: 20,
        talk_secs: 0,
        hold_secs: 0,
        recording_url: None,
        hangup_cause: Some(16),
        degraded: false,
    }
}

fn job(n: i64, call: CallDto) -> Job {
    Job {
        id: storage::JobId(n),
        step: Step::CallEnded,
        key: format!("directory:{}:call_ended", call.call_id),
        attempts: 1,
        payload: JobPayload {
            v: PAYLOAD_VERSION,
            call,
        },
    }
}

async fn tasks(storage: &storage::Storage, phone: &str) -> Vec<storage::TaskRow> {
    storage
        .list_tasks(&TaskFilter {
            phone_e164: Some(phone.to_owned()),
            ..TaskFilter::default()
        })
        .await
        .expect("tasks")
}

#[tokio::test]
async fn three_missed_calls_one_task_then_reached_closes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage =
        storage::Storage::connect(&format!("sqlite://{}", dir.path().join("d.db").display()))
            .await
            .expect("storage");
    storage.migrate().await.expect("schema");
    let customer = storage
        .upsert_customer(
            &storage::CustomerUpsert {
                name: "Ivan Petrov".to_owned(),
                phones: vec![storage::CustomerPhone {
                    phone_e164: "+79161234567".to_owned(),
                    phone_raw: Some("8 (916) 123-45-67".to_owned()),
                    kind: Some("mobile".to_owned()),
                }],
                ..storage::CustomerUpsert::default()
            },
            chrono::Utc::now(),
        )
        .await
        .expect("customer");
    let connector = build(
        Config {
            name: "directory".to_owned(),
            callback_tasks: true,
        },
        storage.clone(),
    );
    let known = "+79161234567";
    let missed = [
        job(1, call("c1", Some(known), "inbound", "missed")),
        job(2, call("c2", Some(known), "inbound", "abandoned")),
        job(3, call("c3", Some(known), "inbound", "voicemail")),
        // Not a missed call: an outbound attempt that failed, and a withheld missed call.
        job(4, call("c4", Some(known), "outbound", "busy")),
        job(5, call("c5", None, "inbound", "missed")),
    ];
    let results = connector.deliver(&missed).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let open = tasks(&storage, known).await;
    assert_eq!(open.len(), 1, "one task for three missed calls: {open:?}");
    assert_eq!(open[0].status, TaskStatus::Open);
    assert_eq!(open[0].attempts, 3);
    assert_eq!(open[0].customer_id, Some(customer));

    // A different, unknown number gets its own task.
    let stranger = "+79169998877";
    let results = connector
        .deliver(&[job(6, call("c6", Some(stranger), "inbound", "missed"))])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(tasks(&storage, stranger).await.len(), 1);

    // The customer is reached (an agent called back and they answered).
    let results = connector
        .deliver(&[job(7, call("c7", Some(known), "outbound", "answered"))])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let after = tasks(&storage, known).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, TaskStatus::Done);
    assert_eq!(
        after[0].closed_by_call_id,
        Some(storage::CallId::new("c7".to_owned()))
    );
    assert_eq!(
        tasks(&storage, stranger).await[0].status,
        TaskStatus::Open,
        "reaching one customer closes only their task"
    );

    // A new missed call after that opens a fresh task.
    let results = connector
        .deliver(&[job(8, call("c8", Some(known), "inbound", "missed"))])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let again = tasks(&storage, known).await;
    assert_eq!(
        again
            .iter()
            .filter(|t| t.status == TaskStatus::Open)
            .count(),
        1
    );
    assert_eq!(again.len(), 2);
}
