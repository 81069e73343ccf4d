//! Rough throughput of the hot storage paths, on SQLite (temporary file) and, when
//! `KOMMUTATOR_TEST_POSTGRES_URL` is set, on PostgreSQL (in a throw-away schema).
//!
//! `cargo run --release -p storage --example storage_bench [N_CALLS]`
//!
//! Measures: call writes (snapshot + 2 agents + 4 events + 1 outbox job) one transaction per
//! call and in batches of 100; `list_calls` with a filter; phone lookups; outbox claim+complete.
//! It is a measuring tool, not a test: it prints numbers and asserts only that work was done.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use storage::{
    CallAgent, CallFilter, CallId, CallWrite, CustomerPhone, CustomerUpsert, Direction, NewCall,
    NewCallEvent, NewOutboxJob, Outcome, Storage,
};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0)
        .single()
        .expect("bench timestamps are in range")
}

struct Fixture {
    call: NewCall,
    agents: Vec<CallAgent>,
    events: Vec<NewCallEvent>,
    jobs: Vec<NewOutboxJob>,
}

fn fixture(prefix: &str, i: i64) -> Fixture {
    let id = CallId::new(format!("{prefix}{i}"));
    let ext = format!("{}", 100 + i % 20);
    let call = NewCall {
        id: id.clone(),
        source: "asterisk".into(),
        direction: if i % 4 == 0 {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        customer_number: Some(format!("+7916{:07}", i % 5000)),
        customer_number_raw: None,
        line: Some(format!("+7495000000{}", i % 4)),
        queue: Some(if i % 2 == 0 { "sales" } else { "support" }.into()),
        started_at: t(i),
        answered_at: Some(t(i + 5)),
        ended_at: Some(t(i + 65)),
        outcome: Some(if i % 5 == 0 {
            Outcome::Missed
        } else {
            Outcome::Answered
        }),
        answered_by: Some(ext.clone()),
        agent_user_id: None,
        wait_ms: 5000,
        talk_ms: 60000,
        hold_ms: 0,
        recording: None,
        degraded: false,
        short_abandon: false,
        internal: false,
        route_decision: None,
        record: json!({"legs": [{"uniqueid": format!("{i}.1")}, {"uniqueid": format!("{i}.2")}]}),
        updated_at: t(i + 65),
    };
    let agents = vec![
        CallAgent {
            extension: ext,
            user_id: None,
            rang_at: Some(t(i + 1)),
            answered_at: Some(t(i + 5)),
            talk_ms: 60000,
            outcome: "answered".into(),
        },
        CallAgent {
            extension: "199".into(),
            user_id: None,
            rang_at: Some(t(i + 1)),
            answered_at: None,
            talk_ms: 0,
            outcome: "rang".into(),
        },
    ];
    let events = ["newchannel", "ringing", "answered", "hangup"]
        .iter()
        .enumerate()
        .map(|(seq, kind)| NewCallEvent {
            call_id: id.clone(),
            seq: seq as i64,
            at: t(i),
            kind: (*kind).into(),
            data: json!({"seq": seq}),
        })
        .collect();
    let jobs = vec![NewOutboxJob {
        connector: "bitrix24".into(),
        step: "finish".into(),
        call_id: Some(id.clone()),
        idempotency_key: format!("{id}:finish:bitrix24"),
        payload: json!({"call_id": id.0}),
        next_attempt_at: t(i),
        created_at: t(i),
    }];
    Fixture {
        call,
        agents,
        events,
        jobs,
    }
}

fn write_of(f: &Fixture) -> CallWrite<'_> {
    CallWrite {
        call: &f.call,
        agents: &f.agents,
        events: &f.events,
        jobs: &f.jobs,
    }
}

async fn bench(name: &str, db: &Storage, n: i64) -> Result<(), storage::StorageError> {
    db.migrate().await?;
    let single: Vec<Fixture> = (0..n).map(|i| fixture("s", i)).collect();
    let started = Instant::now();
    for f in &single {
        db.write_call(&write_of(f)).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: write_call, one transaction per call: {:.0} calls/s",
        n as f64 / secs
    );

    let batched: Vec<Fixture> = (0..n).map(|i| fixture("b", i)).collect();
    let started = Instant::now();
    for chunk in batched.chunks(100) {
        let writes: Vec<CallWrite<'_>> = chunk.iter().map(write_of).collect();
        db.write_calls(&writes).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: write_calls, batches of 100: {:.0} calls/s",
        n as f64 / secs
    );

    let started = Instant::now();
    let mut seen = 0;
    for k in 0..100 {
        let page = db
            .list_calls(&CallFilter {
                extension: Some(format!("{}", 100 + k % 20)),
                outcome: Some(Outcome::Answered),
                limit: 50,
                ..CallFilter::default()
            })
            .await?;
        seen += page.calls.len();
    }
    println!(
        "{name}: list_calls (extension + outcome, 50 rows): {:.2} ms per page ({seen} rows)",
        started.elapsed().as_secs_f64() * 10.0
    );

    for c in 0..1000 {
        db.upsert_customer(
            &CustomerUpsert {
                name: format!("Customer {c}"),
                phones: vec![CustomerPhone {
                    phone_e164: format!("+7916{:07}", c),
                    phone_raw: None,
                    kind: None,
                }],
                ..CustomerUpsert::default()
            },
            t(0),
        )
        .await?;
    }
    let started = Instant::now();
    for c in 0..1000 {
        let found = db
            .find_customers_by_phone(&format!("+7916{:07}", c))
            .await?;
        assert_eq!(found.len(), 1);
    }
    println!(
        "{name}: find_customers_by_phone: {:.0} µs per lookup",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let started = Instant::now();
    let mut delivered = 0;
    loop {
        let jobs = db
            .claim_due(
                "bitrix24",
                "bench",
                50,
                t(n * 10),
                std::time::Duration::from_secs(60),
            )
            .await?;
        if jobs.is_empty() {
            break;
        }
        let ids: Vec<_> = jobs.iter().map(|job| job.id).collect();
        delivered += db.complete_jobs(&ids, "bench", t(n * 10)).await?;
    }
    println!(
        "{name}: outbox claim (50) + complete_jobs (50): {:.0} jobs/s ({delivered} jobs)",
        delivered as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = Storage::connect(&url).await?;
    bench("sqlite", &db, n).await?;
    db.close().await;

    if let Ok(base) = std::env::var("KOMMUTATOR_TEST_POSTGRES_URL") {
        let schema = format!("bench_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let db = Storage::connect(&format!("{base}{sep}options[search_path]={schema}")).await?;
        let res = bench("postgres", &db, n).await;
        db.close().await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await?;
        res?;
    }
    Ok(())
}
