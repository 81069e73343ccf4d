//! The storage suite: every test is written once and runs on SQLite (a fresh temporary file)
//! and on PostgreSQL when `KOMMUTATOR_TEST_POSTGRES_URL` is set (CI sets it), each PostgreSQL
//! test in its own schema that is dropped afterwards, so parallel and repeated runs never meet.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use storage::{
    Backend, CallAgent, CallFilter, CallId, CallWrite, CrmToken, CustomerId, CustomerPhone,
    CustomerUpsert, Direction, ExternalRef, JobStatus, NewCall, NewCallEvent, NewCallbackTask,
    NewOutboxJob, NewSession, NewUser, Outcome, ReportGroup, ReportQuery, Role, Settled, Storage,
    StorageError, TaskFilter, TaskStatus, UserId, UserQueue,
};

/// What each test gets: an empty, migrated database and the URL to open it again.
struct Ctx {
    db: Storage,
    url: String,
}

const PG_ENV: &str = "KOMMUTATOR_TEST_POSTGRES_URL";

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory for the SQLite test database");
    let url = format!("sqlite://{}", dir.path().join("kommutator.db").display());
    let db = Storage::connect(&url).await.expect("open SQLite");
    db.migrate().await.expect("migrate SQLite");
    test(Ctx {
        db: db.clone(),
        url,
    })
    .await;
    db.close().await;
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base_url) = std::env::var(PG_ENV) else {
        eprintln!("skipped: {PG_ENV} is not set, so this PostgreSQL test did not run");
        return;
    };
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let admin = sqlx::PgPool::connect(&base_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create the test schema");
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{sep}options[search_path]={schema}");
    let db = Storage::connect(&url).await.expect("open PostgreSQL");
    db.migrate().await.expect("migrate PostgreSQL");
    // Run the test as its own task so a failing assertion still lets us drop the schema.
    let res = tokio::spawn(test(Ctx {
        db: db.clone(),
        url,
    }))
    .await;
    db.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("drop the test schema");
    admin.close().await;
    if let Err(err) = res {
        std::panic::resume_unwind(err.into_panic());
    }
}

macro_rules! storage_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    crate::run_sqlite(super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    crate::run_postgres(super::$name).await;
                }
            }
        )+
    };
}

storage_tests!(
    migrations_run_twice_are_a_no_op,
    sqlite_files_are_in_wal_mode,
    timestamps_round_trip_at_microseconds,
    call_upsert_is_idempotent_and_keeps_wrapup,
    call_write_is_atomic,
    batched_call_writes_are_all_or_nothing,
    list_calls_filters_and_pages,
    phone_lookup_returns_every_match,
    customer_upsert_by_external_ref_and_paging,
    one_open_callback_task_per_customer,
    outbox_claims_are_exclusive_under_concurrency,
    outbox_retry_backoff_lease_and_dead_letter,
    outbox_idempotency_key_is_unique,
    users_extensions_tokens_and_sessions,
    agent_status_history_spans,
    crm_tokens_rotate_once,
    crm_call_links_are_unique_per_connector,
    report_rollup_equals_raw_rows,
);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0)
        .single()
        .expect("test timestamps are in range")
}

fn call(id: &str, started: i64) -> NewCall {
    NewCall {
        id: CallId::new(id),
        source: "asterisk".into(),
        direction: Direction::Inbound,
        customer_number: Some("+79161234567".into()),
        customer_number_raw: Some("89161234567".into()),
        line: Some("+74950000001".into()),
        queue: Some("sales".into()),
        started_at: t(started),
        answered_at: None,
        ended_at: None,
        outcome: None,
        answered_by: None,
        agent_user_id: None,
        wait_ms: 0,
        talk_ms: 0,
        hold_ms: 0,
        recording: None,
        degraded: false,
        short_abandon: false,
        internal: false,
        route_decision: None,
        record: json!({"call_id": id}),
        updated_at: t(started),
    }
}

fn event(call_id: &str, seq: i64, kind: &str) -> NewCallEvent {
    NewCallEvent {
        call_id: CallId::new(call_id),
        seq,
        at: t(seq),
        kind: kind.into(),
        data: json!({"seq": seq}),
    }
}

fn job(key: &str, created: DateTime<Utc>) -> NewOutboxJob {
    NewOutboxJob {
        connector: "bitrix24".into(),
        step: "finish".into(),
        call_id: None,
        idempotency_key: key.into(),
        payload: json!({"key": key}),
        next_attempt_at: created,
        created_at: created,
    }
}

fn user(login: &str, extensions: &[&str]) -> NewUser {
    NewUser {
        login: login.into(),
        display_name: format!("User {login}"),
        role: Role::Agent,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        queues: vec![UserQueue {
            queue: "sales".into(),
            interface: format!("Local/{}@agents", extensions.first().unwrap_or(&"0")),
        }],
    }
}

fn customer(name: &str, phones: &[&str]) -> CustomerUpsert {
    CustomerUpsert {
        name: name.into(),
        company: Some("ООО Ромашка".into()),
        phones: phones
            .iter()
            .map(|p| CustomerPhone {
                phone_e164: (*p).to_owned(),
                phone_raw: Some(format!("8 {p}")),
                kind: Some("mobile".into()),
            })
            .collect(),
        ..CustomerUpsert::default()
    }
}

async fn migrations_run_twice_are_a_no_op(ctx: Ctx) {
    let id = ctx
        .db
        .create_user(&user("anna", &["101"]), t(0))
        .await
        .unwrap();
    ctx.db
        .migrate()
        .await
        .expect("second migrate on the same handle");
    let again = Storage::connect(&ctx.url).await.expect("reopen");
    again.migrate().await.expect("migrate on a fresh handle");
    let anna = again.get_user(id).await.unwrap().expect("data survives");
    assert_eq!(anna.login, "anna");
    again.ping().await.expect("ping");
    again.close().await;
}

async fn sqlite_files_are_in_wal_mode(ctx: Ctx) {
    let mode = ctx.db.sqlite_journal_mode().await.unwrap();
    match ctx.db.backend() {
        Backend::Sqlite => assert_eq!(mode.as_deref(), Some("wal")),
        Backend::Postgres => assert_eq!(mode, None),
    }
}

async fn timestamps_round_trip_at_microseconds(ctx: Ctx) {
    let precise = Utc
        .timestamp_opt(1_750_000_123, 456_789_999)
        .single()
        .unwrap();
    let truncated = Utc
        .timestamp_opt(1_750_000_123, 456_789_000)
        .single()
        .unwrap();
    let before_epoch = Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 40).unwrap();
    let far_future = Utc.with_ymd_and_hms(2999, 12, 31, 23, 59, 59).unwrap();
    let mut c = call("ts", 0);
    c.started_at = precise;
    c.answered_at = Some(before_epoch);
    c.ended_at = Some(far_future);
    ctx.db.upsert_call(&c, &[]).await.unwrap();
    let got = ctx.db.get_call(&c.id).await.unwrap().unwrap().call.call;
    assert_eq!(got.started_at, truncated);
    assert_eq!(got.answered_at, Some(before_epoch));
    assert_eq!(got.ended_at, Some(far_future));
}

async fn call_upsert_is_idempotent_and_keeps_wrapup(ctx: Ctx) {
    let mut c = call("1750000000.1", 0);
    let agents = vec![
        CallAgent {
            extension: "101".into(),
            user_id: None,
            rang_at: Some(t(1)),
            answered_at: None,
            talk_ms: 0,
            outcome: "rang".into(),
        },
        CallAgent {
            extension: "102".into(),
            user_id: None,
            rang_at: Some(t(1)),
            answered_at: Some(t(5)),
            talk_ms: 0,
            outcome: "answered".into(),
        },
    ];
    let events = vec![event(&c.id.0, 1, "ringing"), event(&c.id.0, 2, "answered")];
    for _ in 0..2 {
        let res = ctx
            .db
            .write_call(&CallWrite {
                call: &c,
                agents: &agents,
                events: &events,
                jobs: &[],
            })
            .await
            .unwrap();
        assert!(res.jobs_enqueued.is_empty());
    }
    assert!(
        !ctx.db
            .append_call_event(&event(&c.id.0, 2, "answered"))
            .await
            .unwrap(),
        "re-appending a stored seq is a no-op"
    );
    assert!(ctx
        .db
        .append_call_event(&event(&c.id.0, 3, "hangup"))
        .await
        .unwrap());
    ctx.db
        .set_call_wrapup(&c.id, Some("sale"), Some("wants a quote"), t(60))
        .await
        .unwrap();

    // The final snapshot: outcome and durations change, the agent list shrinks, wrap-up stays.
    c.answered_at = Some(t(5));
    c.ended_at = Some(t(65));
    c.outcome = Some(Outcome::Answered);
    c.answered_by = Some("102".into());
    c.wait_ms = 5_000;
    c.talk_ms = 60_000;
    c.route_decision = Some(json!({"rule": "vip", "reason": "segment vip"}));
    c.updated_at = t(65);
    ctx.db.upsert_call(&c, &agents[1..]).await.unwrap();
    ctx.db.upsert_call(&c, &agents[1..]).await.unwrap();

    let detail = ctx.db.get_call(&c.id).await.unwrap().expect("stored");
    assert_eq!(detail.call.call, c);
    assert_eq!(detail.call.disposition.as_deref(), Some("sale"));
    assert_eq!(detail.call.wrapup_notes.as_deref(), Some("wants a quote"));
    assert_eq!(detail.call.wrapup_at, Some(t(60)));
    assert_eq!(detail.agents, agents[1..].to_vec());
    let kinds: Vec<_> = detail
        .events
        .iter()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    assert_eq!(kinds, vec![(1, "ringing"), (2, "answered"), (3, "hangup")]);
    assert_eq!(detail.events[0].data, json!({"seq": 1}));
    let page = ctx.db.list_calls(&CallFilter::default()).await.unwrap();
    assert_eq!(page.calls.len(), 1);
    assert!(ctx
        .db
        .get_call(&CallId::new("nope"))
        .await
        .unwrap()
        .is_none());
    let missing = ctx
        .db
        .set_call_wrapup(&CallId::new("nope"), None, None, t(0))
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound { .. })),
        "{missing:?}"
    );
}

async fn call_write_is_atomic(ctx: Ctx) {
    let c = call("atomic", 0);
    // The second agent names a user that does not exist: its foreign key fails after the call
    // row, the first agent and the event were written, so the whole write must roll back.
    let agents = [
        CallAgent {
            extension: "101".into(),
            user_id: None,
            rang_at: Some(t(0)),
            answered_at: None,
            talk_ms: 0,
            outcome: "rang".into(),
        },
        CallAgent {
            extension: "102".into(),
            user_id: Some(UserId(987_654)),
            rang_at: Some(t(0)),
            answered_at: None,
            talk_ms: 0,
            outcome: "rang".into(),
        },
    ];
    let res = ctx
        .db
        .write_call(&CallWrite {
            call: &c,
            agents: &agents,
            events: &[event("atomic", 1, "ringing")],
            jobs: &[job("atomic:finish:bitrix24", t(0))],
        })
        .await;
    match &res {
        Err(StorageError::Rejected { message }) => {
            assert!(message.contains("does not exist"), "{message}")
        }
        other => panic!("expected a foreign key rejection, got {other:?}"),
    }
    assert!(ctx.db.get_call(&c.id).await.unwrap().is_none());
    assert!(ctx
        .db
        .list_jobs(None, None, 10, 0)
        .await
        .unwrap()
        .is_empty());

    let stray = ctx
        .db
        .write_call(&CallWrite {
            call: &c,
            agents: &[],
            events: &[event("other-call", 1, "ringing")],
            jobs: &[],
        })
        .await;
    assert!(
        matches!(stray, Err(StorageError::Rejected { .. })),
        "{stray:?}"
    );
    assert!(ctx.db.get_call(&c.id).await.unwrap().is_none());

    let jobs = [
        job("atomic:register:bitrix24", t(0)),
        job("atomic:finish:bitrix24", t(0)),
    ];
    let first = ctx.db.upsert_call_with_jobs(&c, &[], &jobs).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = ctx.db.upsert_call_with_jobs(&c, &[], &jobs).await.unwrap();
    assert!(second.is_empty(), "existing idempotency keys are skipped");
    assert_eq!(ctx.db.list_jobs(None, None, 10, 0).await.unwrap().len(), 2);
}

async fn batched_call_writes_are_all_or_nothing(ctx: Ctx) {
    let calls: Vec<NewCall> = (0..50).map(|i| call(&format!("b{i}"), i)).collect();
    let events: Vec<[NewCallEvent; 2]> = calls
        .iter()
        .map(|c| [event(&c.id.0, 1, "ringing"), event(&c.id.0, 2, "hangup")])
        .collect();
    let jobs: Vec<[NewOutboxJob; 1]> = calls
        .iter()
        .map(|c| {
            let mut j = job(&format!("{}:finish:bitrix24", c.id), t(0));
            j.call_id = Some(c.id.clone());
            [j]
        })
        .collect();
    let writes: Vec<CallWrite<'_>> = calls
        .iter()
        .zip(&events)
        .zip(&jobs)
        .map(|((call, events), jobs)| CallWrite {
            call,
            agents: &[],
            events,
            jobs,
        })
        .collect();
    let res = ctx.db.write_calls(&writes).await.unwrap();
    assert_eq!(res.len(), 50);
    assert!(res
        .iter()
        .all(|r| r.events_inserted == 2 && r.jobs_enqueued.len() == 1));
    let again = ctx.db.write_calls(&writes).await.unwrap();
    assert!(again
        .iter()
        .all(|r| r.events_inserted == 0 && r.jobs_enqueued.is_empty()));
    assert_eq!(
        ctx.db.count_calls(&CallFilter::default()).await.unwrap(),
        50
    );
    let jobs_stored = ctx.db.list_jobs(None, None, 100, 0).await.unwrap();
    assert_eq!(jobs_stored.len(), 50);
    assert!(jobs_stored.iter().all(|j| j.call_id.is_some()));

    // One bad write in a batch keeps the whole batch out.
    let fresh = call("fresh", 0);
    let mut bad = call("bad", 0);
    bad.agent_user_id = Some(UserId(555_555));
    let batch = [
        CallWrite {
            call: &fresh,
            agents: &[],
            events: &[],
            jobs: &[],
        },
        CallWrite {
            call: &bad,
            agents: &[],
            events: &[],
            jobs: &[],
        },
    ];
    assert!(ctx.db.write_calls(&batch).await.is_err());
    assert!(ctx.db.get_call(&fresh.id).await.unwrap().is_none());
    assert!(ctx.db.write_calls(&[]).await.unwrap().is_empty());
}

async fn list_calls_filters_and_pages(ctx: Ctx) {
    // 30 calls, one per minute: every third missed, agents 101/102 alternate, two lines.
    for i in 0..30_i64 {
        let mut c = call(&format!("c{i:02}"), i * 60);
        c.customer_number = Some(format!("+7916000000{}", i % 3));
        c.line = Some(
            if i % 2 == 0 {
                "+74950000001"
            } else {
                "+74950000002"
            }
            .into(),
        );
        c.queue = Some(if i < 15 { "sales" } else { "support" }.into());
        c.direction = if i % 5 == 0 {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let ext = if i % 2 == 0 { "101" } else { "102" };
        let agents = if i % 3 == 0 {
            c.outcome = Some(Outcome::Missed);
            vec![CallAgent {
                extension: ext.into(),
                user_id: None,
                rang_at: Some(t(i * 60)),
                answered_at: None,
                talk_ms: 0,
                outcome: "rang".into(),
            }]
        } else {
            c.outcome = Some(Outcome::Answered);
            c.answered_by = Some(ext.into());
            vec![]
        };
        ctx.db.upsert_call(&c, &agents).await.unwrap();
    }
    let ids = |page: &storage::CallPage| -> Vec<String> {
        page.calls.iter().map(|c| c.call.id.0.clone()).collect()
    };
    let count = |filter: CallFilter| {
        let db = ctx.db.clone();
        async move {
            db.list_calls(&CallFilter {
                limit: 1000,
                ..filter
            })
            .await
            .unwrap()
            .calls
            .len()
        }
    };

    let all = ctx
        .db
        .list_calls(&CallFilter {
            limit: 100,
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.calls.len(), 30);
    assert_eq!(all.calls[0].call.id.0, "c29", "newest first");
    assert!(all.next.is_none());

    let period = CallFilter {
        from: Some(t(600)),
        to: Some(t(1200)),
        ..CallFilter::default()
    };
    assert_eq!(count(period).await, 10, "from is inclusive, to exclusive");
    let missed = CallFilter {
        outcome: Some(Outcome::Missed),
        ..CallFilter::default()
    };
    assert_eq!(count(missed).await, 10);
    let answered_by = CallFilter {
        answered_by: Some("101".into()),
        ..CallFilter::default()
    };
    assert_eq!(count(answered_by).await, 10);
    let involving = CallFilter {
        extension: Some("101".into()),
        ..CallFilter::default()
    };
    assert_eq!(count(involving).await, 15, "answered or rang");
    let number = CallFilter {
        customer_number: Some("+79160000001".into()),
        ..CallFilter::default()
    };
    assert_eq!(count(number).await, 10);
    let outbound = CallFilter {
        direction: Some(Direction::Outbound),
        ..CallFilter::default()
    };
    assert_eq!(count(outbound).await, 6);
    let line_queue = CallFilter {
        line: Some("+74950000002".into()),
        queue: Some("support".into()),
        ..CallFilter::default()
    };
    assert_eq!(count(line_queue).await, 8, "odd calls from c15 on");
    let combined = CallFilter {
        from: Some(t(0)),
        to: Some(t(900)),
        extension: Some("102".into()),
        outcome: Some(Outcome::Missed),
        ..CallFilter::default()
    };
    assert_eq!(count(combined.clone()).await, 2, "c03 and c09");
    assert_eq!(ctx.db.count_calls(&combined).await.unwrap(), 2);
    assert_eq!(
        ctx.db.count_calls(&CallFilter::default()).await.unwrap(),
        30
    );

    // An agent sees the calls of every extension they own, answered or only rung.
    let anna = ctx
        .db
        .create_user(&user("anna", &["101", "111"]), t(0))
        .await
        .unwrap();
    let mine = CallFilter {
        involving_user_id: Some(anna),
        ..CallFilter::default()
    };
    assert_eq!(count(mine.clone()).await, 15);
    ctx.db
        .set_user_extensions(anna, &["102".to_owned()])
        .await
        .unwrap();
    let now_mine = ctx.db.list_calls(&mine).await.unwrap();
    assert_eq!(now_mine.calls.len(), 15);
    assert!(now_mine
        .calls
        .iter()
        .all(|c| c.call.id.0[1..].parse::<u32>().is_ok_and(|i| i % 2 == 1)));

    // Keyset paging walks every call exactly once, in order.
    let mut seen = Vec::new();
    let mut filter = CallFilter {
        limit: 7,
        ..CallFilter::default()
    };
    loop {
        let page = ctx.db.list_calls(&filter).await.unwrap();
        assert!(page.calls.len() <= 7);
        seen.extend(ids(&page));
        match page.next {
            Some(cursor) => filter.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));

    let offset_page = ctx
        .db
        .list_calls(&CallFilter {
            limit: 5,
            offset: 10,
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&offset_page), ids(&all)[10..15].to_vec());
    assert!(offset_page.next.is_some());
}

async fn phone_lookup_returns_every_match(ctx: Ctx) {
    let shared = "+74951234567";
    let a = ctx
        .db
        .upsert_customer(&customer("Иван Петров", &[shared, "+79161112233"]), t(0))
        .await
        .unwrap();
    let b = ctx
        .db
        .upsert_customer(&customer("Мария Сидорова", &[shared]), t(0))
        .await
        .unwrap();
    let c = ctx
        .db
        .upsert_customer(&customer("John Smith", &["+442071234567"]), t(0))
        .await
        .unwrap();

    let matches = ctx.db.find_customers_by_phone(shared).await.unwrap();
    let found: Vec<CustomerId> = matches.iter().map(|m| m.id).collect();
    assert_eq!(found, vec![a, b]);
    assert_eq!(
        matches[0].phones.len(),
        2,
        "every phone of a match is loaded"
    );
    assert_eq!(matches[0].name, "Иван Петров");
    let john = ctx
        .db
        .find_customers_by_phone("+442071234567")
        .await
        .unwrap();
    assert_eq!(john.len(), 1);
    assert_eq!(john[0].id, c);
    assert!(ctx
        .db
        .find_customers_by_phone("+10000000000")
        .await
        .unwrap()
        .is_empty());

    // Search is case-insensitive for Cyrillic and matches phones by digits in any format.
    let by_name = ctx.db.search_customers("ПЕТРОВ", 10).await.unwrap();
    assert_eq!(by_name.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a]);
    let by_company = ctx.db.search_customers("ромашка", 10).await.unwrap();
    assert_eq!(by_company.len(), 3);
    let by_phone = ctx
        .db
        .search_customers("+7 (916) 111-22", 10)
        .await
        .unwrap();
    assert_eq!(by_phone.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a]);
    let wildcard = ctx.db.search_customers("%", 10).await.unwrap();
    assert!(
        wildcard.is_empty(),
        "LIKE wildcards in the query are literal"
    );
    let limited = ctx.db.search_customers("ромашка", 2).await.unwrap();
    assert_eq!(limited.len(), 2);
}

async fn customer_upsert_by_external_ref_and_paging(ctx: Ctx) {
    let manager = ctx
        .db
        .create_user(&user("boss", &["100"]), t(0))
        .await
        .unwrap();
    let mut vip = customer("VIP Client", &["+79990000001", "+79990000001"]);
    vip.external = Some(ExternalRef {
        crm: "bitrix24".into(),
        id: "C-42".into(),
    });
    vip.segment = Some("vip".into());
    vip.tags = vec!["gold".into(), "moscow".into()];
    vip.responsible_user_id = Some(manager);
    vip.debtor = true;
    vip.instructions = Some("Greet by name".into());
    let id = ctx.db.upsert_customer(&vip, t(0)).await.unwrap();
    let stored = ctx.db.get_customer(id).await.unwrap().unwrap();
    assert_eq!(stored.phones.len(), 1, "duplicate phones collapse");
    assert_eq!(stored.tags, vec!["gold", "moscow"]);
    assert_eq!(stored.responsible_user_id, Some(manager));
    assert!(stored.debtor && !stored.blacklisted);

    // Same external reference: the same row is updated and the phone list replaced.
    vip.phones = vec![CustomerPhone {
        phone_e164: "+79990000002".into(),
        phone_raw: None,
        kind: None,
    }];
    vip.blacklisted = true;
    let again = ctx.db.upsert_customer(&vip, t(10)).await.unwrap();
    assert_eq!(again, id);
    let updated = ctx.db.get_customer(id).await.unwrap().unwrap();
    assert!(updated.blacklisted);
    assert_eq!(updated.created_at, t(0));
    assert_eq!(updated.updated_at, t(10));
    assert!(ctx
        .db
        .find_customers_by_phone("+79990000001")
        .await
        .unwrap()
        .is_empty());
    let by_ref = ctx
        .db
        .find_customer_by_external(vip.external.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref.id, id);

    let missing = ctx
        .db
        .upsert_customer(
            &CustomerUpsert {
                id: Some(CustomerId(999_999)),
                ..customer("Ghost", &[])
            },
            t(0),
        )
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound { .. })),
        "{missing:?}"
    );

    for i in 0..23 {
        ctx.db
            .upsert_customer(&customer(&format!("Customer {i}"), &[]), t(0))
            .await
            .unwrap();
    }
    assert_eq!(ctx.db.count_customers().await.unwrap(), 24);
    let mut after = None;
    let mut seen = HashSet::new();
    loop {
        let page = ctx.db.list_customers_page(after, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        for c in &page {
            assert!(seen.insert(c.id), "customer {} seen twice", c.id);
        }
        after = page.last().map(|c| c.id);
    }
    assert_eq!(seen.len(), 24);
    ctx.db.delete_customer(id).await.unwrap();
    assert_eq!(ctx.db.count_customers().await.unwrap(), 23);
}

async fn one_open_callback_task_per_customer(ctx: Ctx) {
    let manager = ctx
        .db
        .create_user(&user("mgr", &["200"]), t(0))
        .await
        .unwrap();
    let cust = ctx
        .db
        .upsert_customer(&customer("Repeat Caller", &["+79161230000"]), t(0))
        .await
        .unwrap();
    let missed = |n: i64| NewCallbackTask {
        customer_id: Some(cust),
        phone_e164: "+79161230000".into(),
        assignee_user_id: Some(manager),
        call_id: Some(CallId::new(format!("missed-{n}"))),
        due_at: Some(t(3600)),
        note: Some("call back".into()),
    };
    let mut created = Vec::new();
    for n in 0..3 {
        let opened = ctx.db.open_callback_task(&missed(n), t(n)).await.unwrap();
        created.push(opened.created);
        assert_eq!(opened.task.attempts, n + 1);
        assert_eq!(opened.task.call_id, Some(CallId::new("missed-0")));
    }
    assert_eq!(created, vec![true, false, false]);

    // Concurrent misses still leave one open task.
    let mut handles = Vec::new();
    for n in 3..11 {
        let db = ctx.db.clone();
        let task = missed(n);
        handles.push(tokio::spawn(async move {
            db.open_callback_task(&task, t(n)).await
        }));
    }
    for h in handles {
        let opened = h.await.unwrap().unwrap();
        assert!(!opened.created);
    }
    let open = ctx
        .db
        .list_tasks(&TaskFilter {
            assignee_user_id: Some(manager),
            status: Some(TaskStatus::Open),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].attempts, 11);

    // The customer is reached: the task closes; the next miss opens a new one.
    let reached = CallId::new("reached");
    let closed = ctx
        .db
        .close_callback_tasks_for(Some(cust), Some("+79161230000"), Some(&reached), t(100))
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].status, TaskStatus::Done);
    assert_eq!(closed[0].closed_by_call_id, Some(reached));
    assert_eq!(closed[0].closed_at, Some(t(100)));
    let next = ctx
        .db
        .open_callback_task(&missed(20), t(200))
        .await
        .unwrap();
    assert!(next.created);
    assert_ne!(next.task.id, closed[0].id);

    // An unknown caller is keyed by number.
    let stranger = NewCallbackTask {
        customer_id: None,
        phone_e164: "+79005550000".into(),
        assignee_user_id: None,
        call_id: None,
        due_at: None,
        note: None,
    };
    assert!(
        ctx.db
            .open_callback_task(&stranger, t(0))
            .await
            .unwrap()
            .created
    );
    assert!(
        !ctx.db
            .open_callback_task(&stranger, t(1))
            .await
            .unwrap()
            .created
    );
    let closed = ctx
        .db
        .close_callback_tasks_for(None, Some("+79005550000"), None, t(2))
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    ctx.db
        .set_task_status(next.task.id, TaskStatus::Cancelled, t(300))
        .await
        .unwrap();
    let cancelled = ctx.db.get_task(next.task.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let done = ctx
        .db
        .list_tasks(&TaskFilter {
            status: Some(TaskStatus::Done),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
}

async fn outbox_claims_are_exclusive_under_concurrency(ctx: Ctx) {
    const JOBS: usize = 300;
    const WORKERS: usize = 8;
    for i in 0..JOBS {
        let id = ctx.db.enqueue(&job(&format!("k{i}"), t(0))).await.unwrap();
        assert!(id.is_some());
    }
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let db = ctx.db.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut claimed = Vec::new();
            loop {
                let jobs = db
                    .claim_due("bitrix24", &worker, 7, t(10), Duration::from_secs(300))
                    .await
                    .expect("claim");
                if jobs.is_empty() {
                    break;
                }
                for j in jobs {
                    assert_eq!(j.status, JobStatus::InFlight);
                    assert_eq!(j.locked_by.as_deref(), Some(worker.as_str()));
                    assert_eq!(j.attempts, 1);
                    let settled = db
                        .complete_job(j.id, &worker, t(11))
                        .await
                        .expect("complete");
                    assert_eq!(settled, Settled::Applied);
                    claimed.push(j.id);
                }
                tokio::task::yield_now().await;
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    let mut workers_with_jobs = 0;
    for h in handles {
        let claimed = h.await.unwrap();
        if !claimed.is_empty() {
            workers_with_jobs += 1;
        }
        all.extend(claimed);
    }
    for i in 0..20 {
        let id = ctx
            .db
            .enqueue(&job(&format!("batch{i}"), t(20)))
            .await
            .unwrap();
        assert!(id.is_some());
    }
    let claimed = ctx
        .db
        .claim_due("bitrix24", "batcher", 50, t(20), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 20);
    let ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(
        ctx.db
            .complete_jobs(&ids, "someone-else", t(21))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        ctx.db.complete_jobs(&ids, "batcher", t(21)).await.unwrap(),
        20
    );
    assert_eq!(
        ctx.db.complete_jobs(&[], "batcher", t(21)).await.unwrap(),
        0
    );
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a job was claimed twice");
    assert_eq!(all.len(), JOBS, "every job was claimed");
    assert!(workers_with_jobs > 1, "claims were actually concurrent");
    let done = ctx
        .db
        .list_jobs(Some(JobStatus::Done), None, 1000, 0)
        .await
        .unwrap();
    assert_eq!(done.len(), JOBS + 20);
    assert_eq!(ctx.db.outbox_stats().await.unwrap().depth(), 0);
}

async fn outbox_retry_backoff_lease_and_dead_letter(ctx: Ctx) {
    let db = &ctx.db;
    let a = db.enqueue(&job("a", t(0))).await.unwrap().unwrap();
    let mut later = job("later", t(0));
    later.next_attempt_at = t(80);
    db.enqueue(&later).await.unwrap().unwrap();
    let mut other = job("other-connector", t(0));
    other.connector = "amocrm".into();
    db.enqueue(&other).await.unwrap().unwrap();

    let lease = Duration::from_secs(30);
    let first = db
        .claim_due("bitrix24", "w1", 10, t(0), lease)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![a],
        "only due jobs"
    );
    assert_eq!(first[0].locked_until, Some(t(30)));

    // A failure reschedules the job; it is invisible until its backoff elapses.
    let failed = db
        .fail_job(a, "w1", "HTTP 503 from CRM", "unavailable", t(60), t(1))
        .await
        .unwrap();
    assert_eq!(failed, Settled::Applied);
    let stored = db.get_job(a).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Pending);
    assert_eq!(stored.next_attempt_at, t(60));
    assert_eq!(stored.last_error.as_deref(), Some("HTTP 503 from CRM"));
    assert_eq!(stored.last_error_kind.as_deref(), Some("unavailable"));
    assert_eq!(stored.locked_by, None);
    assert!(db
        .claim_due("bitrix24", "w1", 10, t(59), lease)
        .await
        .unwrap()
        .is_empty());
    let stats = db.outbox_stats().await.unwrap();
    assert_eq!(stats.depth(), 3);
    assert_eq!(stats.oldest_pending_at(), Some(t(0)));
    assert_eq!(stats.failures.len(), 1);
    assert_eq!(stats.failures[0].kind, "unavailable");
    assert_eq!(stats.failures[0].jobs, 1);

    // Claimed again after the backoff; the worker "dies", the lease expires, another takes it.
    let second = db
        .claim_due("bitrix24", "w1", 1, t(60), lease)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, a);
    assert_eq!(second[0].attempts, 2);
    let before_expiry = db
        .claim_due("bitrix24", "w2", 10, t(89), lease)
        .await
        .unwrap();
    assert_eq!(
        before_expiry.len(),
        1,
        "only 'later' is due; 'a' is still leased"
    );
    assert_ne!(before_expiry[0].id, a);
    // The CRM refuses 'later' for good: straight to dead.
    let rejected = db
        .dead_letter_job(
            before_expiry[0].id,
            "w2",
            "HTTP 400 invalid field",
            "rejected",
            t(89),
        )
        .await
        .unwrap();
    assert_eq!(rejected, Settled::Applied);
    let third = db
        .claim_due("bitrix24", "w2", 10, t(90), lease)
        .await
        .unwrap();
    assert_eq!(
        third.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![a],
        "expired lease is reclaimed"
    );
    assert_eq!(third[0].attempts, 3);
    assert_eq!(
        db.complete_job(a, "w1", t(91)).await.unwrap(),
        Settled::LeaseLost,
        "the old worker cannot settle a job it lost"
    );
    assert_eq!(
        db.complete_job(a, "w2", t(91)).await.unwrap(),
        Settled::Applied
    );

    // Dead-letter by age: only pending jobs older than the cutoff.
    let old = db.enqueue(&job("old", t(0))).await.unwrap().unwrap();
    db.enqueue(&job("young", t(500))).await.unwrap().unwrap();
    let n = db.dead_letter_expired(t(100), t(1000)).await.unwrap();
    assert_eq!(n, 2, "'old' and amocrm's job");
    let dead = db
        .list_jobs(Some(JobStatus::Dead), None, 10, 0)
        .await
        .unwrap();
    assert_eq!(dead.len(), 3);
    let dead_bitrix = db
        .list_jobs(Some(JobStatus::Dead), Some("bitrix24"), 10, 0)
        .await
        .unwrap();
    assert_eq!(dead_bitrix.len(), 2);
    assert_eq!(
        db.get_job(old)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .as_deref(),
        Some("not delivered within the maximum age")
    );
    let stats = db.outbox_stats().await.unwrap();
    let bitrix = stats
        .connectors
        .iter()
        .find(|c| c.connector == "bitrix24")
        .unwrap();
    assert_eq!((bitrix.pending, bitrix.in_flight, bitrix.dead), (1, 0, 2));
    assert_eq!(bitrix.oldest_pending_at, Some(t(500)));

    // Admin retry brings a dead job back; discard retires one for good.
    db.retry_job(old, t(1000)).await.unwrap();
    let retried = db
        .claim_due("bitrix24", "w3", 10, t(1000), lease)
        .await
        .unwrap();
    assert!(retried.iter().any(|j| j.id == old));
    let amocrm_dead = db
        .list_jobs(Some(JobStatus::Dead), Some("amocrm"), 10, 0)
        .await
        .unwrap();
    db.discard_job(amocrm_dead[0].id, t(1001)).await.unwrap();
    assert_eq!(
        db.get_job(amocrm_dead[0].id).await.unwrap().unwrap().status,
        JobStatus::Discarded
    );
    let again = db.discard_job(amocrm_dead[0].id, t(1002)).await;
    assert!(
        matches!(again, Err(StorageError::NotFound { .. })),
        "{again:?}"
    );
    assert_eq!(
        db.enqueue(&other).await.unwrap(),
        None,
        "a discarded key stays taken"
    );
    assert_eq!(
        db.purge_finished_jobs(t(2000)).await.unwrap(),
        2,
        "done 'a' and discarded"
    );
}

async fn outbox_idempotency_key_is_unique(ctx: Ctx) {
    let first = ctx
        .db
        .enqueue(&job("call-1:finish:bitrix24", t(0)))
        .await
        .unwrap();
    assert!(first.is_some());
    let mut dup = job("call-1:finish:bitrix24", t(5));
    dup.payload = json!({"different": true});
    assert_eq!(ctx.db.enqueue(&dup).await.unwrap(), None);
    let jobs = ctx.db.list_jobs(None, None, 10, 0).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload, json!({"key": "call-1:finish:bitrix24"}));
    assert_eq!(Some(jobs[0].id), first);

    // Concurrent enqueues of one key: exactly one wins.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let db = ctx.db.clone();
        handles.push(tokio::spawn(async move {
            db.enqueue(&job("race", t(0))).await.unwrap()
        }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn users_extensions_tokens_and_sessions(ctx: Ctx) {
    let db = &ctx.db;
    let anna = db
        .create_user(&user("anna", &["101", "111"]), t(0))
        .await
        .unwrap();
    let dup_login = db.create_user(&user("anna", &["199"]), t(0)).await;
    assert!(
        matches!(dup_login, Err(StorageError::Conflict { .. })),
        "{dup_login:?}"
    );
    let dup_ext = db.create_user(&user("boris", &["101"]), t(0)).await;
    match &dup_ext {
        Err(StorageError::Conflict { what, .. }) => assert!(what.contains("extension"), "{what}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        db.get_user_by_login("boris").await.unwrap().is_none(),
        "rolled back"
    );
    let boris = db
        .create_user(&user("boris", &["102"]), t(0))
        .await
        .unwrap();

    let found = db.find_user_by_extension("111").await.unwrap().unwrap();
    assert_eq!(found.id, anna);
    assert_eq!(found.extensions, vec!["101", "111"]);
    assert_eq!(found.queues[0].queue, "sales");
    assert_eq!(found.role, Role::Agent);
    assert!(db.find_user_by_extension("999").await.unwrap().is_none());

    db.set_user_extensions(anna, &["103".to_owned()])
        .await
        .unwrap();
    let taken = db.set_user_extensions(anna, &["102".to_owned()]).await;
    assert!(
        matches!(taken, Err(StorageError::Conflict { .. })),
        "{taken:?}"
    );
    assert_eq!(
        db.get_user(anna).await.unwrap().unwrap().extensions,
        vec!["103"]
    );
    db.set_user_queues(
        anna,
        &[UserQueue {
            queue: "support".into(),
            interface: "PJSIP/103".into(),
        }],
    )
    .await
    .unwrap();
    db.update_user_profile(anna, "Anna K.", Role::Supervisor, t(1))
        .await
        .unwrap();
    db.set_password_hash(boris, Some("new-hash"), t(2))
        .await
        .unwrap();
    let users = db.list_users().await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].display_name, "Anna K.");
    assert_eq!(users[0].role, Role::Supervisor);
    assert_eq!(users[0].queues[0].interface, "PJSIP/103");
    assert_eq!(users[1].password_hash.as_deref(), Some("new-hash"));
    assert_eq!(users[1].updated_at, t(2));

    let token = db
        .create_api_token(anna, "crm webhook", "hash-1", t(0))
        .await
        .unwrap();
    assert_eq!(
        db.find_active_api_token("hash-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        token
    );
    db.revoke_api_token(token, t(5)).await.unwrap();
    db.revoke_api_token(token, t(9)).await.unwrap();
    assert!(db.find_active_api_token("hash-1").await.unwrap().is_none());
    let tokens = db.list_api_tokens(anna).await.unwrap();
    assert_eq!(
        tokens[0].revoked_at,
        Some(t(5)),
        "first revocation time is kept"
    );

    let session = NewSession {
        id_hash: "sess-hash".into(),
        user_id: boris,
        csrf_token: "csrf".into(),
        created_at: t(0),
        expires_at: t(3600),
    };
    db.create_session(&session).await.unwrap();
    assert_eq!(
        db.get_session("sess-hash", t(10))
            .await
            .unwrap()
            .unwrap()
            .csrf_token,
        "csrf"
    );
    assert!(
        db.get_session("sess-hash", t(3600))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    db.extend_session("sess-hash", t(7200)).await.unwrap();
    assert!(db
        .get_session("sess-hash", t(3600))
        .await
        .unwrap()
        .is_some());
    db.set_user_disabled(boris, true, t(3)).await.unwrap();
    assert!(
        db.get_session("sess-hash", t(10)).await.unwrap().is_none(),
        "disabled user"
    );
    db.set_user_disabled(boris, false, t(4)).await.unwrap();
    assert_eq!(db.delete_expired_sessions(t(7200)).await.unwrap(), 1);
    db.create_session(&session).await.unwrap();
    db.delete_session("sess-hash").await.unwrap();
    assert!(db.get_session("sess-hash", t(10)).await.unwrap().is_none());
    assert_eq!(db.delete_user_sessions(boris).await.unwrap(), 0);
    let missing = db
        .set_password_hash(storage::UserId(424_242), None, t(0))
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound { .. })),
        "{missing:?}"
    );
}

async fn agent_status_history_spans(ctx: Ctx) {
    let db = &ctx.db;
    let anna = db.create_user(&user("anna", &["101"]), t(0)).await.unwrap();
    let boris = db
        .create_user(&user("boris", &["102"]), t(0))
        .await
        .unwrap();
    db.record_status_change(anna, "available", None, t(0))
        .await
        .unwrap();
    db.record_status_change(anna, "away", Some("lunch"), t(100))
        .await
        .unwrap();
    db.record_status_change(boris, "available", None, t(50))
        .await
        .unwrap();
    db.record_status_change(anna, "available", None, t(400))
        .await
        .unwrap();
    // A change stamped before the open span started (clock skew) does not go negative.
    db.record_status_change(anna, "offline", None, t(390))
        .await
        .unwrap();

    let current = db.current_status(anna).await.unwrap().unwrap();
    assert_eq!(current.status, "offline");
    let spans = db
        .list_status_history(Some(anna), t(0), t(1000))
        .await
        .unwrap();
    let shape: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.status.as_str(),
                s.reason.as_deref(),
                s.started_at,
                s.ended_at,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("available", None, t(0), Some(t(100))),
            ("away", Some("lunch"), t(100), Some(t(400))),
            ("offline", None, t(390), None),
            ("available", None, t(400), Some(t(400))),
        ]
    );
    let window = db
        .list_status_history(Some(anna), t(150), t(200))
        .await
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].status, "away");
    let everyone = db.list_status_history(None, t(0), t(1000)).await.unwrap();
    assert_eq!(everyone.len(), 5);
}

async fn crm_tokens_rotate_once(ctx: Ctx) {
    let db = &ctx.db;
    assert!(db.get_crm_token("bitrix24").await.unwrap().is_none());
    let mut token = CrmToken {
        connector: "bitrix24".into(),
        access_token: "access-1".into(),
        refresh_token: Some("refresh-1".into()),
        expires_at: Some(t(3600)),
        extra: json!({"domain": "example.bitrix24.ru"}),
        updated_at: t(0),
    };
    db.save_crm_token(&token).await.unwrap();
    assert_eq!(db.get_crm_token("bitrix24").await.unwrap().unwrap(), token);

    token.access_token = "access-2".into();
    token.refresh_token = Some("refresh-2".into());
    token.updated_at = t(3500);
    assert!(db.rotate_crm_token(&token, "refresh-1").await.unwrap());
    let mut loser = token.clone();
    loser.access_token = "access-x".into();
    assert!(
        !db.rotate_crm_token(&loser, "refresh-1").await.unwrap(),
        "a spent refresh token cannot rotate twice"
    );
    assert_eq!(db.get_crm_token("bitrix24").await.unwrap().unwrap(), token);
}

async fn crm_call_links_are_unique_per_connector(ctx: Ctx) {
    let db = &ctx.db;
    assert!(db
        .link_crm_call("b24", "kc2c-1", "externalCall.aa.1", t(0))
        .await
        .unwrap());
    // The CRM delivered the same click twice: the second link (a new call id) is refused.
    assert!(!db
        .link_crm_call("b24", "kc2c-2", "externalCall.aa.1", t(1))
        .await
        .unwrap());
    // One call id links to one CRM call per connector.
    assert!(!db
        .link_crm_call("b24", "kc2c-1", "externalCall.bb.2", t(2))
        .await
        .unwrap());
    // Another connector has ids of its own.
    assert!(db
        .link_crm_call("b24-second", "kc2c-1", "externalCall.aa.1", t(3))
        .await
        .unwrap());
    let many: Vec<String> = (0..450).map(|i| format!("other-{i}")).collect();
    let mut ids: Vec<&str> = many.iter().map(String::as_str).collect();
    ids.push("kc2c-1");
    ids.push("kc2c-2");
    let links = db.crm_call_links("b24", &ids).await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links["kc2c-1"], "externalCall.aa.1");
    assert!(db.crm_call_links("b24", &[]).await.unwrap().is_empty());
    // Old links are forgotten, newer ones kept.
    assert_eq!(db.forget_crm_call_links_before(t(3)).await.unwrap(), 1);
    assert!(db
        .crm_call_links("b24", &["kc2c-1"])
        .await
        .unwrap()
        .is_empty());
    let kept = db.crm_call_links("b24-second", &["kc2c-1"]).await.unwrap();
    assert_eq!(kept.len(), 1);
}

#[tokio::test]
async fn in_memory_sqlite_works_and_is_private() {
    let a = Storage::connect("sqlite::memory:").await.unwrap();
    a.migrate().await.unwrap();
    a.create_user(&user("anna", &["101"]), t(0)).await.unwrap();
    assert_eq!(a.list_users().await.unwrap().len(), 1);
    let b = Storage::open_in_memory().await.unwrap();
    b.migrate().await.unwrap();
    assert!(b.list_users().await.unwrap().is_empty());
    assert_eq!(
        a.sqlite_journal_mode().await.unwrap().as_deref(),
        Some("memory")
    );
}

#[tokio::test]
async fn unusable_urls_are_configuration_errors() {
    for url in ["mysql://localhost/db", "", "sqlite"] {
        let res = Storage::connect(url).await;
        assert!(
            matches!(res, Err(StorageError::Config { .. })),
            "{url}: {res:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let missing_parent = format!("sqlite://{}/no/such/dir/db", dir.path().display());
    let res = Storage::connect(&missing_parent).await;
    assert!(
        res.is_err(),
        "a file in a missing directory cannot be created"
    );
    let message = res.unwrap_err().to_string();
    assert!(message.contains("SQLite"), "{message}");
}

#[tokio::test]
async fn a_locked_sqlite_database_is_a_transient_error() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let settings = storage::PoolSettings {
        busy_timeout: Duration::from_millis(50),
        ..storage::PoolSettings::default()
    };
    let db = Storage::open_sqlite_file(&path, &settings).await.unwrap();
    db.migrate().await.unwrap();
    // Another process holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let res = db.create_user(&user("anna", &["101"]), t(0)).await;
    match &res {
        Err(err @ StorageError::Transient { .. }) => assert!(err.is_transient()),
        other => panic!("expected a transient error, got {other:?}"),
    }
    let res = db.enqueue(&job("k", t(0))).await;
    assert!(
        matches!(res, Err(StorageError::Transient { .. })),
        "{res:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    db.create_user(&user("anna", &["101"]), t(0))
        .await
        .expect("works once the lock is released");
}

/// Both migrations must describe the same schema: same tables and views, same columns in the
/// same order, same explicitly created indexes.
#[tokio::test]
async fn schema_is_the_same_on_both_backends() {
    if std::env::var(PG_ENV).is_err() {
        eprintln!("skipped: {PG_ENV} is not set, so the schema comparison did not run");
        return;
    }
    run_postgres(|pg| async move {
        let pg_url = pg.url.clone();
        let dir = tempfile::tempdir().unwrap();
        let sqlite_url = format!("sqlite://{}", dir.path().join("schema.db").display());
        let lite = Storage::connect(&sqlite_url).await.unwrap();
        lite.migrate().await.unwrap();
        lite.close().await;

        let lite_pool = sqlx::SqlitePool::connect(&sqlite_url).await.unwrap();
        // Tables and views (the BI views are part of the contract too), with their columns.
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&lite_pool)
        .await
        .unwrap();
        let mut lite_schema = Vec::new();
        for (kind, table) in &tables {
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))
                    .fetch_all(&lite_pool)
                    .await
                    .unwrap();
            lite_schema.push((kind.clone(), table.clone(), columns));
        }
        let lite_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&lite_pool)
        .await
        .unwrap();
        lite_pool.close().await;

        let pg_pool = sqlx::PgPool::connect(&pg_url).await.unwrap();
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END, table_name::text \
             FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name NOT LIKE '\\_sqlx%' ORDER BY table_name",
        )
        .fetch_all(&pg_pool)
        .await
        .unwrap();
        let mut pg_schema = Vec::new();
        for (kind, table) in &tables {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&pg_pool)
            .await
            .unwrap();
            pg_schema.push((kind.clone(), table.clone(), columns));
        }
        // Explicitly created indexes only (PostgreSQL also lists those behind keys).
        let pg_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' ORDER BY indexname",
        )
        .fetch_all(&pg_pool)
        .await
        .unwrap();
        pg_pool.close().await;

        assert_eq!(lite_schema, pg_schema);
        assert_eq!(lite_indexes, pg_indexes);
        assert!(lite_indexes.len() > 20, "{lite_indexes:?}");
    })
    .await;
}

/// A deterministic pseudo-random call for the rollup test: every direction and outcome,
/// missing queues, lines and agents, waits around the service-level thresholds, transfers.
fn rollup_call(i: u64, seed: u64) -> NewCall {
    let mut x = (i + 1).wrapping_mul(6_364_136_223_846_793_005) ^ seed;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let id = format!("rollup.{i}");
    let mut c = call(&id, (next(2 * 86_400)) as i64);
    c.direction = match next(20) {
        0 => Direction::Outbound,
        1 => Direction::Internal,
        _ => Direction::Inbound,
    };
    c.queue =
        [None, Some("sales"), Some("vip"), Some("support")][next(4) as usize].map(str::to_owned);
    c.line =
        [None, Some("+74950000001"), Some("+74950000002")][next(3) as usize].map(str::to_owned);
    let outcome = [
        Outcome::Answered,
        Outcome::Answered,
        Outcome::Answered,
        Outcome::Missed,
        Outcome::Abandoned,
        Outcome::Busy,
        Outcome::Voicemail,
    ][next(7) as usize];
    c.outcome = Some(outcome);
    c.answered_by =
        (outcome == Outcome::Answered && next(5) > 0).then(|| format!("{}", 100 + next(4)));
    c.short_abandon = outcome != Outcome::Answered && next(4) == 0;
    // Waits land exactly on, just below and just above the thresholds too.
    c.wait_ms = match next(4) {
        0 => [10_000, 20_000, 30_000][next(3) as usize] + [0, 1, -1][next(3) as usize],
        _ => next(90_000) as i64,
    };
    if outcome == Outcome::Answered {
        c.talk_ms = 1_000 + next(300_000) as i64;
        c.hold_ms = [0, 0, 5_000][next(3) as usize];
    }
    let transfers: Vec<_> = (0..next(3)).map(|_| json!({"to": "102"})).collect();
    c.record = json!({"call_id": id, "transfers": transfers});
    c.ended_at = Some(c.started_at + chrono::Duration::milliseconds(c.wait_ms + c.talk_ms + 1));
    c
}

/// The hourly rollup (migration 0003) gives exactly the raw-row sums for every grouping,
/// filter, service-level setting and local offset it accepts, after calls were written live,
/// finished, and rewritten later (wrap-up, a corrected close that moves a call to another
/// queue, agent or hour, a shorter wait that was the hour's maximum), and deleted.
async fn report_rollup_equals_raw_rows(ctx: Ctx) {
    let write = |c: NewCall| {
        let db = ctx.db.clone();
        async move {
            db.write_call(&CallWrite {
                call: &c,
                agents: &[],
                events: &[],
                jobs: &[],
            })
            .await
            .unwrap();
        }
    };
    let n = 400;
    for i in 0..n {
        let finished = rollup_call(i, 1);
        // First the live snapshot (not counted), then the finished call.
        let mut live = finished.clone();
        live.ended_at = None;
        live.outcome = None;
        write(live).await;
        write(finished).await;
    }
    // Rewrites of finished calls: every fourth call gets a different close (queue, agent,
    // hour, wait, outcome all drawn again), every third a wrap-up.
    for i in (0..n).step_by(4) {
        let mut rewritten = rollup_call(i, 2);
        rewritten.id = CallId::new(format!("rollup.{i}"));
        rewritten.degraded = true;
        write(rewritten).await;
    }
    for i in (0..n).step_by(3) {
        ctx.db
            .set_call_wrapup(
                &CallId::new(format!("rollup.{i}")),
                Some("sale"),
                None,
                t(3 * 86_400),
            )
            .await
            .unwrap();
    }
    // The longest counted wait of some hour shrinks: the rollup's maximum must follow.
    let mut longest = rollup_call(1, 1);
    longest.id = CallId::new("rollup.longest");
    longest.direction = Direction::Inbound;
    longest.outcome = Some(Outcome::Missed);
    longest.short_abandon = false;
    longest.wait_ms = 10_000_000;
    write(longest.clone()).await;
    longest.wait_ms = 3;
    write(longest.clone()).await;
    // And a call that is deleted outright (retention, a manual fix).
    let mut doomed = rollup_call(2, 1);
    doomed.id = CallId::new("rollup.doomed");
    doomed.wait_ms = 20_000_000;
    doomed.direction = Direction::Inbound;
    doomed.short_abandon = false;
    write(doomed).await;
    match ctx.db.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            sqlx::query("DELETE FROM calls WHERE id = 'rollup.doomed'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            sqlx::query("DELETE FROM calls WHERE id = 'rollup.doomed'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }

    let groups = [
        ReportGroup::Total,
        ReportGroup::Queue,
        ReportGroup::Agent,
        ReportGroup::Line,
        ReportGroup::Day,
        ReportGroup::Hour,
        ReportGroup::Weekday,
        ReportGroup::WeekdayHour,
    ];
    let filters: [(Option<&str>, Option<&str>, Option<&str>); 4] = [
        (None, None, None),
        (Some("vip"), None, None),
        (None, Some("+74950000002"), None),
        (Some("sales"), None, Some("101")),
    ];
    // Whole hours, and a period whose ends cut hours (raw rows for the partial hours).
    let periods = [(t(-3_600), t(3 * 86_400)), (t(1_234), t(86_400 + 777))];
    let mut compared = 0;
    for (from, to) in periods {
        for (utc_offset_s, sl_per_queue) in [
            (0, vec![]),
            (
                3 * 3600,
                vec![("vip".to_owned(), 10_000), ("support".to_owned(), 30_000)],
            ),
        ] {
            for group in groups {
                for (queue, line, agent) in filters {
                    let q = ReportQuery {
                        from,
                        to,
                        group,
                        utc_offset_s,
                        sl_default_ms: 20_000,
                        sl_per_queue: sl_per_queue.clone(),
                        queue: queue.map(str::to_owned),
                        line: line.map(str::to_owned),
                        agent: agent.map(str::to_owned),
                    };
                    assert!(storage::rollup_applies(&q), "{q:?}");
                    let rollup = ctx.db.report_kpi_sums(&q).await.unwrap();
                    let raw = ctx.db.report_kpi_sums_raw(&q).await.unwrap();
                    assert_eq!(rollup, raw, "{q:?}");
                    assert!(!raw.is_empty(), "{q:?}");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * 2 * 8 * 4);

    // The maximum followed the shrinking wait and the deleted call: no hour keeps 10,000 s.
    let q = ReportQuery {
        from: t(-3_600),
        to: t(3 * 86_400),
        group: ReportGroup::Total,
        utc_offset_s: 0,
        sl_default_ms: 20_000,
        sl_per_queue: vec![],
        queue: None,
        line: None,
        agent: None,
    };
    let total = ctx.db.report_kpi_sums(&q).await.unwrap();
    assert_eq!(total.len(), 1);
    assert!(total[0].wait_max_ms < 90_000, "{total:?}");
    // Counted once each: n calls plus `longest`, internal ones excluded.
    let internal = (0..n)
        .map(|i| {
            if i % 4 == 0 {
                rollup_call(i, 2)
            } else {
                rollup_call(i, 1)
            }
        })
        .filter(|c| c.direction == Direction::Internal)
        .count() as i64;
    assert_eq!(
        total[0].offered + total[0].outbound,
        n as i64 + 1 - internal
    );

    // Thresholds off the ladder and half-hour offsets are answered from raw rows.
    let mut off_ladder = q.clone();
    off_ladder.sl_default_ms = 12_345;
    assert!(!storage::rollup_applies(&off_ladder));
    let mut half_hour = q.clone();
    half_hour.utc_offset_s = 5 * 3600 + 1800;
    assert!(!storage::rollup_applies(&half_hour));
    assert_eq!(
        ctx.db.report_kpi_sums(&half_hour).await.unwrap(),
        ctx.db.report_kpi_sums_raw(&half_hour).await.unwrap()
    );
}
