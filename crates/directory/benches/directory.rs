//! Directory and decision benchmarks (no harness): build a 1,000,000-customer index, report
//! its memory and load time, then the latency of full routing decisions served from it.
//!
//! Run: `cargo bench -p directory --bench directory` (`DIRECTORY_BENCH_CUSTOMERS=N` to change
//! the size, `DIRECTORY_BENCH_STORAGE=N` to also load N customers from a SQLite file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cti_core::routing::{Action, KnownExtensions, Route, Router, RouterConfig, Rule, WorkingHours};
use directory::phone::{Region, E164};
use directory::{
    CustomerRecord, DecisionLog, Directory, Index, RouteQuery, RoutingService, ServiceSettings,
};

const SEGMENTS: [&str; 4] = ["vip", "regular", "new", "wholesale"];
const REGIONS: [&str; 5] = [
    "Moscow",
    "Saint Petersburg",
    "Novosibirsk",
    "Kazan",
    "Ekaterinburg",
];
const FIRST: [&str; 8] = [
    "Иван",
    "Ольга",
    "Пётр",
    "Анна",
    "Сергей",
    "Мария",
    "Алексей",
    "Елена",
];
const LAST: [&str; 8] = [
    "Петров",
    "Смирнова",
    "Иванов",
    "Кузнецова",
    "Соколов",
    "Попова",
    "Лебедев",
    "Новикова",
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn phone(i: u64) -> E164 {
    E164::from_u64(79_000_000_000 + i * 7).expect("generated numbers are E.164")
}

fn record(i: u64) -> CustomerRecord {
    let n = i as usize;
    CustomerRecord {
        id: i as i64 + 1,
        name: format!("{} {} {}", FIRST[n % 8], LAST[(n / 8) % 8], i),
        responsible_extension: i.is_multiple_of(3).then(|| format!("{}", 100 + i % 200)),
        segment: Some(SEGMENTS[n % 4].to_owned()),
        tags: if i.is_multiple_of(10) {
            vec!["wholesale".into(), "priority".into()]
        } else {
            Vec::new()
        },
        debtor: i.is_multiple_of(50),
        blacklisted: i.is_multiple_of(1000),
        region: Some(REGIONS[n % 5].to_owned()),
        language: None,
        phones: if i.is_multiple_of(5) {
            vec![phone(i), E164::from_u64(74_950_000_000 + i).expect("E.164")]
        } else {
            vec![phone(i)]
        },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let n: u64 = std::env::var("DIRECTORY_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let records: Vec<CustomerRecord> = (0..n).map(record).collect();
    let before = rss_bytes();
    let started = Instant::now();
    let mut index = Index::with_capacity(records.len());
    for r in &records {
        index.insert(r);
    }
    let build = started.elapsed();
    let after = rss_bytes();
    drop(records);
    let stats = index.stats();
    println!(
        "index: {} customers, {} phones, built in {:.0} ms, resident +{:.1} MiB ({:.0} bytes/customer)",
        stats.customers,
        stats.phones,
        build.as_secs_f64() * 1000.0,
        (after.saturating_sub(before)) as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / stats.customers.max(1) as f64
    );
    for i in (0..n).step_by(2) {
        index.record_agent(
            phone(i),
            "107",
            cti_core::Timestamp::from_secs(1_800_000_000 - (i as i64 % 40) * 86_400),
        );
    }

    let directory = Arc::new(Directory::new(None));
    directory.replace(index);
    let router = Router::new(RouterConfig {
        rules: vec![
            Rule::blacklist("blacklist"),
            Rule::after_hours("after-hours", Action::Voicemail("general".into())),
            Rule::debtors("debtors", "collections".into()),
            Rule::assigned_manager("manager"),
            Rule::last_agent("last-agent", 30),
            Rule::vip("vip", vec!["vip".into()], 10, None),
            Rule::area_code(
                "regional",
                REGIONS
                    .iter()
                    .map(|r| (r.to_string(), r.to_lowercase().replace(' ', "-").into()))
                    .collect(),
            ),
            Rule::default_queue("default", "sales".into()),
        ],
        hours: WorkingHours::always_open(),
        fallback: Route::Reject,
    })
    .expect("bench rules are valid");
    let agents = KnownExtensions::new(
        (100..300)
            .filter(|e| e % 2 == 0)
            .map(|e| e.to_string().into()),
    );
    let service = RoutingService::new(
        router,
        directory,
        Arc::new(agents),
        ServiceSettings {
            budget: Duration::from_millis(300),
            region: Region::russia(),
            utc_offset_minutes: 180,
        },
        Arc::new(DecisionLog::default()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime starts");
    let samples = 200_000u64;
    let queries: Vec<RouteQuery> = (0..samples)
        .map(|k| {
            let i = (k * 7_919) % n;
            // Every 10th caller is not in the directory; a third of the rest are dialled in
            // national format, so normalization through libphonenumber is measured too.
            let caller = if k.is_multiple_of(10) {
                format!("+7999{:07}", k)
            } else if k.is_multiple_of(3) {
                format!("8{}", &phone(i).digits()[1..])
            } else {
                phone(i).to_string()
            };
            RouteQuery {
                caller,
                line: Some("+74951112233".into()),
                channel_language: Some("ru".into()),
                call_ids: vec![format!("{k}.1")],
            }
        })
        .collect();
    let mut latencies = Vec::with_capacity(samples as usize);
    let mut routes = std::collections::BTreeMap::<String, u64>::new();
    runtime.block_on(async {
        for q in &queries {
            let t = Instant::now();
            let decision = service.route(q).await;
            latencies.push(t.elapsed());
            *routes.entry(decision.route.kind().to_owned()).or_default() += 1;
        }
    });
    latencies.sort_unstable();
    println!(
        "decision (cache, {} customers, {} decisions): p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs; routes {:?}",
        stats.customers,
        samples,
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        percentile(&latencies, 0.999).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
        routes
    );

    if let Some(m) = std::env::var("DIRECTORY_BENCH_STORAGE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        runtime.block_on(storage_load(m));
    }
}

async fn storage_load(n: u64) {
    use storage::{CustomerPhone, CustomerUpsert, Storage};
    let dir = std::env::temp_dir().join(format!("directory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let storage =
        Storage::open_sqlite_file(&dir.join("bench.db"), &storage::PoolSettings::default())
            .await
            .expect("sqlite opens");
    storage.migrate().await.expect("migrations");
    let now = chrono::Utc::now();
    let seeding = Instant::now();
    for i in 0..n {
        let r = record(i);
        storage
            .upsert_customer(
                &CustomerUpsert {
                    name: r.name,
                    segment: r.segment,
                    tags: r.tags,
                    debtor: r.debtor,
                    blacklisted: r.blacklisted,
                    region: r.region,
                    phones: r
                        .phones
                        .iter()
                        .map(|p| CustomerPhone {
                            phone_e164: p.to_string(),
                            phone_raw: None,
                            kind: None,
                        })
                        .collect(),
                    ..CustomerUpsert::default()
                },
                now,
            )
            .await
            .expect("customer stored");
    }
    println!(
        "storage: seeded {n} customers in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let before = rss_bytes();
    let t = Instant::now();
    let index = directory::from_storage::full_load(&storage, 30)
        .await
        .expect("load");
    println!(
        "storage: loaded {} customers from SQLite in {:.2} s ({:.0} customers/s), resident +{:.1} MiB",
        index.stats().customers,
        t.elapsed().as_secs_f64(),
        index.stats().customers as f64 / t.elapsed().as_secs_f64(),
        rss_bytes().saturating_sub(before) as f64 / 1048576.0
    );
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
}
