//! FastAGI round trip under load (no harness): 200 concurrent fake-Asterisk clients, each
//! running sessions back to back against the real server over loopback TCP; one session is
//! connect → environment → GET VARIABLE → decision from a 100,000-customer cache → eight
//! SET VARIABLE → close.
//!
//! Run: `cargo bench -p pbx-agi --bench fastagi` (`FASTAGI_BENCH_CONCURRENCY`,
//! `FASTAGI_BENCH_SESSIONS` per client, `FASTAGI_BENCH_PAUSE_MS` between a client's sessions).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cti_core::routing::{KnownExtensions, Route, Router, RouterConfig, Rule, WorkingHours};
use directory::phone::{Region, E164};
use directory::{CustomerRecord, DecisionLog, Directory, Index, RoutingService, ServiceSettings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CAPTURE: &str = include_str!("../test_data/agi_routed.fastagi.recv");

fn environment(caller: &str) -> String {
    let header = CAPTURE.split("\n\n").next().expect("capture has a header");
    let mut out = String::new();
    for line in header.lines() {
        if line.starts_with("agi_callerid:") {
            out.push_str(&format!("agi_callerid: {caller}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

async fn session(addr: std::net::SocketAddr, env: &str) -> usize {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(env.as_bytes()).await.expect("send");
    let mut n = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.expect("read") == 0 {
            return n;
        }
        n += 1;
        let reply: &[u8] = if line.starts_with("GET VARIABLE") {
            b"200 result=1 (1795335185.240)\n"
        } else {
            b"200 result=1\n"
        };
        write.write_all(reply).await.expect("reply");
    }
}

fn main() {
    let concurrency: usize = std::env::var("FASTAGI_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Pause between one client's sessions: calls arrive spread out, not back to back; with 0
    // the bench measures saturation throughput instead (latency is then queueing, 200/rate).
    let pause_ms: u64 = std::env::var("FASTAGI_BENCH_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let per_client: usize = std::env::var("FASTAGI_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut index = Index::with_capacity(100_000);
        for i in 0..100_000u64 {
            index.insert(&CustomerRecord {
                id: i as i64 + 1,
                name: format!("Клиент {i}"),
                responsible_extension: Some(format!("{}", 100 + i % 50)),
                segment: Some(if i % 4 == 0 { "vip" } else { "regular" }.into()),
                phones: vec![E164::from_u64(79_160_000_000 + i).expect("E.164")],
                ..CustomerRecord::default()
            });
        }
        let directory = Arc::new(Directory::new(None));
        directory.replace(index);
        let router = Router::new(RouterConfig {
            rules: vec![
                Rule::blacklist("blacklist"),
                Rule::assigned_manager("manager"),
                Rule::vip("vip", vec!["vip".into()], 10, None),
                Rule::default_queue("default", "support".into()),
            ],
            hours: WorkingHours::always_open(),
            fallback: Route::Reject,
        })
        .expect("rules");
        let service = Arc::new(RoutingService::new(
            router,
            directory,
            Arc::new(KnownExtensions::new((100..125).map(|e| e.to_string().into()))),
            ServiceSettings { budget: Duration::from_millis(300), region: Region::russia(), utc_offset_minutes: 180 },
            Arc::new(DecisionLog::default()),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(pbx_agi::run(listener, service, async {
            let _ = stopped.await;
        }));
        // Warm up connections and the allocator.
        for i in 0..50u64 {
            session(addr, &environment(&format!("+7916{:07}", i))).await;
        }
        let started = Instant::now();
        let mut clients = Vec::new();
        for c in 0..concurrency {
            clients.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                // Stagger the clients over one pause so arrivals are spread evenly.
                let offset = pause_ms * c as u64 / concurrency.max(1) as u64;
                tokio::time::sleep(Duration::from_millis(offset)).await;
                for s in 0..per_client {
                    if s > 0 && pause_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                    }
                    let env = environment(&format!("+7916{:07}", (c * per_client + s) % 100_000));
                    let t = Instant::now();
                    let n = session(addr, &env).await;
                    latencies.push(t.elapsed());
                    assert_eq!(n, 9, "GET VARIABLE + eight SET VARIABLE");
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for client in clients {
            all.extend(client.await.expect("client"));
        }
        let wall = started.elapsed();
        all.sort_unstable();
        let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
        println!(
            "fastagi: {} sessions, {concurrency} clients, pause {pause_ms} ms, {:.0} sessions/s; round trip p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            all.len(),
            all.len() as f64 / wall.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            all.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
        let _ = stop.send(());
        let _ = server.await;
    });
}
