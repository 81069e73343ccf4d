//! Report and dashboard benchmarks (`harness = false`):
//!
//! 1. A historical KPI report over N stored calls (default 1,000,000 spread over 30 days) on
//!    SQLite and on PostgreSQL, through the real HTTP endpoint (`GET /api/v1/reports/kpis`)
//!    for each grouping, and the weekday × hour heatmap.
//! 2. Dashboard fan-out: S supervisor WebSockets (default 200) on a real TCP server; how long
//!    after rendering each frame reaches every socket.
//!
//! ```text
//! cargo bench -p server --bench reports -- [calls] [sockets]
//! KOMMUTATOR_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test   (default; a
//!   dedicated schema is created and dropped; set it to "off" to skip PostgreSQL)
//! ```
//!
//! Calls are generated in the database with one INSERT … SELECT (recursive CTE on SQLite,
//! generate_series on PostgreSQL) with realistic shares: 5 % outbound, 2 % internal, and for
//! inbound calls about 78 % answered, 12 % missed, 7 % abandoned, 3 % short abandons.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use tower::ServiceExt;

const DAYS: i64 = 30;
/// 2026-11-01T00:00:00Z.
const START_US: i64 = 1_793_491_200_000_000;

fn generator_sql(postgres: bool, n: u64) -> String {
    let span_us = DAYS * 86_400_000_000;
    let step = span_us / n as i64;
    // i is 0..n; every column a deterministic function of it.
    let cols = format!(
        "'b' || i, 'bench', \
         CASE WHEN i % 20 = 0 THEN 'outbound' WHEN i % 50 = 1 THEN 'internal' ELSE 'inbound' END, \
         '+7916' || (1000000 + (i * 7919) % 400000), 'sales', \
         '+7495000000' || (i % 10), \
         CASE i % 5 WHEN 0 THEN 'sales' WHEN 1 THEN 'support' WHEN 2 THEN 'billing' WHEN 3 THEN 'vip' ELSE 'hotline' END, \
         {START_US} + i * {step}, \
         CASE WHEN (i * 37) % 100 < 78 THEN {START_US} + i * {step} + ((i * 7919) % 60000) * 1000 END, \
         {START_US} + i * {step} + 200000000, \
         CASE WHEN (i * 37) % 100 < 78 THEN 'answered' WHEN (i * 37) % 100 < 90 THEN 'missed' ELSE 'abandoned' END, \
         CASE WHEN (i * 37) % 100 < 78 THEN CAST(100 + i % 50 AS TEXT) END, \
         (i * 7919) % 60000, CASE WHEN (i * 37) % 100 < 78 THEN 30000 + (i * 104729) % 400000 ELSE 0 END, \
         CASE WHEN i % 9 = 0 THEN 15000 ELSE 0 END, \
         (i * 37) % 100 >= 97, i % 50 = 1, \
         CASE WHEN i % 17 = 0 THEN '{{\"transfers\":[{{\"to\":\"102\"}}]}}' ELSE '{{\"transfers\":[]}}' END, {START_US}"
    );
    let insert = "INSERT INTO calls (id, source, direction, customer_number, customer_number_raw, line, queue, \
         started_at, answered_at, ended_at, outcome, answered_by, wait_ms, talk_ms, hold_ms, short_abandon, \
         internal, record, updated_at) ";
    if postgres {
        format!(
            "{insert} SELECT {} FROM generate_series(0::bigint, {}::bigint) AS g(i)",
            cols.replace("CAST(100 + i % 50 AS TEXT)", "(100 + i % 50)::text"),
            n - 1
        )
    } else {
        format!("{insert} WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}) SELECT {cols} FROM s", n - 1)
    }
}

async fn supervisor_token(storage: &storage::Storage) -> String {
    let id = storage
        .create_user(
            &storage::NewUser {
                login: "bench".to_owned(),
                display_name: "Bench".to_owned(),
                role: storage::Role::Supervisor,
                password_hash: None,
                extensions: vec![],
                queues: vec![],
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    server::auth::issue_api_token(storage, id, "bench")
        .await
        .unwrap()
        .0
}

async fn bench_reports(name: &str, storage: storage::Storage, n: u64) {
    let token = supervisor_token(&storage).await;
    let state = server::AppState::new(storage, Arc::new(server::Metrics::new()));
    let from = chrono::DateTime::from_timestamp_micros(START_US).unwrap();
    let to = from + chrono::Duration::days(DAYS);
    let q = format!("from={}&to={}", from.to_rfc3339(), to.to_rfc3339()).replace('+', "%2B");
    println!("{name}: {n} calls over {DAYS} days");
    for path in [
        "kpis?group=total",
        "kpis?group=queue",
        "kpis?group=agent",
        "kpis?group=line",
        "kpis?group=day",
        "kpis?group=hour",
        "heatmap?x=1",
    ] {
        let path = path.replace("?x=1", "?");
        let uri = format!("/api/v1/reports/{path}&{q}").replace("?&", "?");
        let mut times = Vec::new();
        let mut offered = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let response = server::app(state.clone())
                .oneshot(
                    Request::get(&uri)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{uri}: {}",
                response.status()
            );
            let body = axum::body::to_bytes(response.into_body(), 64 << 20)
                .await
                .unwrap();
            times.push(started.elapsed());
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            offered = v["total"]["offered"].as_i64().unwrap_or_else(|| {
                v["cells"].as_array().map_or(0, |c| {
                    c.iter().map(|c| c["offered"].as_i64().unwrap_or(0)).sum()
                })
            });
        }
        times.sort();
        println!(
            "  {:<18} best {:>7.1} ms  median {:>7.1} ms  (offered {offered})",
            path.split('&').next().unwrap_or(&path),
            times[0].as_secs_f64() * 1e3,
            times[1].as_secs_f64() * 1e3
        );
    }
}

async fn bench_fanout(sockets: usize) {
    let storage = storage::Storage::open_in_memory().await.unwrap();
    storage.migrate().await.unwrap();
    let token = supervisor_token(&storage).await;
    let mut state = server::AppState::new(storage.clone(), Arc::new(server::Metrics::new()));
    state.dashboard = server::dashboard::Dashboard::start(
        storage,
        state.cti.clone(),
        state.reports.clone(),
        server::dashboard::DashboardConfig {
            refresh: Duration::from_millis(250),
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let frames_per_socket = 20;
    let mut clients = Vec::new();
    let connect_started = Instant::now();
    for _ in 0..sockets {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{addr}/api/v1/dashboard/ws"),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        clients.push(ws);
    }
    let connect_time = connect_started.elapsed();
    let mut tasks = Vec::new();
    for mut ws in clients {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut bytes = 0usize;
            // The first frame is the latest one at connect time; measure the following ones.
            let _ = ws.next().await;
            while latencies.len() < frames_per_socket {
                let Some(Ok(message)) = ws.next().await else {
                    break;
                };
                let received = server::cti::wall_micros();
                let text = message.into_text().unwrap();
                bytes += text.len();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let rendered = v["windows"][0]["to_us"].as_i64().unwrap();
                latencies.push(received - rendered);
            }
            (latencies, bytes)
        }));
    }
    let mut all = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let (latencies, b) = task.await.unwrap();
        all.extend(latencies);
        bytes += b;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!(
        "dashboard fan-out: {sockets} sockets connected in {:.0} ms; {} frames received ({} per socket, {:.1} KiB each); render→receive p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        connect_time.as_secs_f64() * 1e3,
        all.len(),
        frames_per_socket,
        bytes as f64 / all.len().max(1) as f64 / 1024.0,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    let _ = stop_tx.send(());
    let _ = server.await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sockets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);

    // SQLite: a file in WAL mode, as in production.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let lite = storage::Storage::connect(&url).await.unwrap();
    lite.migrate().await.unwrap();
    let started = Instant::now();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(&generator_sql(false, n))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
    println!(
        "sqlite: generated {n} calls in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    bench_reports("sqlite", lite.clone(), n).await;
    lite.close().await;

    let pg_url = std::env::var("KOMMUTATOR_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if pg_url != "off" {
        let schema = format!("bench_reports_{}", std::process::id());
        match sqlx::PgPool::connect(&pg_url).await {
            Ok(admin) => {
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                let sep = if pg_url.contains('?') { '&' } else { '?' };
                let url = format!("{pg_url}{sep}options[search_path]={schema}");
                let pg = storage::Storage::connect(&url).await.unwrap();
                pg.migrate().await.unwrap();
                let started = Instant::now();
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(&generator_sql(true, n))
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("VACUUM ANALYZE calls")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                println!(
                    "postgres: generated {n} calls in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                bench_reports("postgres", pg.clone(), n).await;
                pg.close().await;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .unwrap();
            }
            Err(err) => println!("postgres: skipped ({err})"),
        }
    }

    bench_fanout(sockets).await;
}
