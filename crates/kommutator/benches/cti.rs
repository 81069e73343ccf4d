//! CTI fan-out benchmark (issue 4): latency from an AMI event entering the server to the
//! screen-pop frame leaving the WebSocket, with 1,000 connected panels and 50 new calls/s, and
//! the server's memory per connected panel.
//!
//! The real pipeline, through the release binary: `pbx-simulator` (in this process) plays
//! direct-DID calls from the Asterisk 22 captures, each ringing one of the 1,000 agents, over AMI
//! to `kommutator serve` (AMI client → translate → call tracker → hub → axum WebSocket), and
//! 1,000 agent panels plus a few supervisor panels (tokio-tungstenite, bearer tokens) read their
//! frames here.
//!
//! Latency per screen pop = time the agent's panel read the `ringing` frame − time the simulator
//! queued the `DialBegin` that rings that agent to its AMI session. Both ends are outside the
//! server, so this is an upper bound of "AMI frame read → WS frame written": it adds two
//! loopback hops and the scheduling of this process, which shares the two cores with the server.
//! Memory per panel = growth of the server's RSS (`/proc/<pid>/status`) from before the first
//! socket to after the last one got its snapshot, divided by the number of sockets.
//!
//! `cargo bench -p kommutator --bench cti -- [agents] [supervisors] [calls_per_sec] [seconds]`
//! (defaults 1000 10 50 30). Results: docs/bench/cti.md.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use pbx_simulator::{LoadProfile, Mix, Scenario, Simulator, SimulatorConfig};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_kommutator");

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A screen pop as a panel read it.
struct Pop {
    supervisor: bool,
    call_id: String,
    agent: String,
    read_at_us: i64,
    /// The server's own stamp: when the batch left the call tracker for the hub.
    received_at_ms: i64,
    lookup: String,
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    closed: AtomicU64,
    snapshot_bytes: AtomicU64,
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let agents = args.first().copied().unwrap_or(1000) as usize;
    let supervisors = args.get(1).copied().unwrap_or(10) as usize;
    let rate = args.get(2).copied().unwrap_or(50) as f64;
    let seconds = args.get(3).copied().unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(agents, supervisors, rate, seconds));
}

async fn run(agents: usize, supervisors: usize, rate: f64, seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let extensions: Vec<String> = (0..agents).map(|i| format!("{}", 20000 + i)).collect();
    let tokens = seed(&db, &extensions, supervisors).await;

    let sim = Simulator::start(
        SimulatorConfig {
            seed: Some(4),
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("simulator");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.path().join("kommutator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\nurl = \"sqlite://{}\"\n\
             [log]\nlevel = \"warn\"\nformat = \"json\"\n\
             [[pbx.asterisk]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\n\
             username = \"cti\"\nsecret = \"cti-secret\"\n",
            db.display(),
            sim.local_addr().port()
        ),
    )
    .expect("config");
    let mut server = Server(
        Command::new(BIN)
            .args(["serve", "--config", config.to_str().expect("utf-8 path")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kommutator serve starts"),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_healthy(&addr, &mut server.0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.handle().sessions() == 0 {
        assert!(
            Instant::now() < deadline,
            "the server did not log in to the simulator"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hub loads agents right after start; give it that moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.0.id();
    let rss_before = rss_kib(pid);

    let (pops_tx, mut pops_rx) = mpsc::unbounded_channel::<Pop>();
    let counters = Arc::new(Counters::default());
    let connect_started = Instant::now();
    let mut ready = Vec::new();
    for (i, (token, supervisor)) in tokens.iter().enumerate() {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        let socket = connect(&addr, token).await;
        tokio::spawn(read_panel(
            socket,
            *supervisor,
            pops_tx.clone(),
            counters.clone(),
            ready_tx,
        ));
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    for r in ready {
        let _ = tokio::time::timeout(Duration::from_secs(30), r).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    // Let allocations from the burst of upgrades settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = rss_kib(pid);
    let sockets = tokens.len();

    // Which DialBegin rang which agent, and when it was sent.
    let mut sent = sim.handle().watch_events();
    let rang: Arc<std::sync::Mutex<HashMap<(String, String), i64>>> = Default::default();
    let rang_writer = rang.clone();
    let watcher = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(frame) = sent.recv().await {
            if !frame.bytes.starts_with(b"Event: DialBegin\r\n") {
                continue;
            }
            let text = String::from_utf8_lossy(&frame.bytes);
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                    .map(str::to_owned)
            };
            let (Some(dest), Some(linked)) = (field("DestChannel"), field("Linkedid")) else {
                continue;
            };
            let Some(ext) = dest
                .strip_prefix("Local/")
                .and_then(|r| r.split_once("@agents-"))
                .map(|(e, _)| e.to_owned())
            else {
                continue;
            };
            rang_writer
                .lock()
                .expect("lock")
                .entry((linked, ext))
                .or_insert(frame.at_unix_us);
            n += 1;
        }
        n
    });

    let cpu_before = cpu_ticks(pid);
    let frames_before = counters.frames.load(Ordering::Relaxed);
    let load_started = Instant::now();
    let callers: Vec<String> = (0..3000).map(|i| format!("+7916{:07}", i)).collect();
    let total = (rate * seconds as f64).round() as u64;
    let load = sim.handle().run_load_on(
        LoadProfile {
            calls_per_sec: rate,
            total_calls: Some(total),
            mix: Mix::only(Scenario::DirectAnswered)
                .with(Scenario::DirectAnswered, 2)
                .with(Scenario::DirectNoanswer, 1),
            callers,
            seed: 7,
        },
        extensions.clone(),
    );
    let mut rss_peak = rss_connected;
    let started_calls = {
        let mut load = Box::pin(load.finished());
        loop {
            tokio::select! {
                n = &mut load => break n,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    rss_peak = rss_peak.max(rss_kib(pid));
                }
            }
        }
    };
    let load_secs = load_started.elapsed().as_secs_f64();
    let _ = tokio::time::timeout(Duration::from_secs(30), sim.handle().wait_idle()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_used = cpu_ticks(pid).saturating_sub(cpu_before) as f64 / clock_ticks();
    let frames = counters.frames.load(Ordering::Relaxed) - frames_before;
    rss_peak = rss_peak.max(rss_kib(pid));
    let rss_after = rss_kib(pid);
    let closed = counters.closed.load(Ordering::Relaxed);

    drop(sim);
    let _ = tokio::time::timeout(Duration::from_secs(2), watcher).await;
    let rang = rang.lock().expect("lock").clone();
    let mut agent_lat = Vec::new();
    let mut sup_lat = Vec::new();
    let mut seen_agent = std::collections::HashSet::new();
    // Where the time goes: AMI sent → tracker done (server stamp, ms) and tracker → panel.
    let (mut to_tracker, mut to_panel) = (Vec::new(), Vec::new());
    let mut lookups: HashMap<String, u64> = HashMap::new();
    while let Ok(pop) = pops_rx.try_recv() {
        let Some(sent_at) = rang.get(&(pop.call_id.clone(), pop.agent.clone())) else {
            continue;
        };
        let lat = (pop.read_at_us - sent_at).max(0) as u64;
        if pop.supervisor {
            sup_lat.push(lat);
        } else {
            seen_agent.insert((pop.call_id, pop.agent));
            agent_lat.push(lat);
            to_tracker.push((pop.received_at_ms * 1000 - sent_at).max(0) as u64);
            to_panel.push((pop.read_at_us - pop.received_at_ms * 1000).max(0) as u64);
            *lookups.entry(pop.lookup).or_default() += 1;
        }
    }
    let expected = rang.len();
    agent_lat.sort_unstable();
    sup_lat.sort_unstable();

    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("CTI fan-out bench: {agents} agent panels + {supervisors} supervisor panels, {rate} calls/s for {seconds} s");
    println!(
        "  machine load before/after (1/5/15 min): {}",
        load_avg.trim()
    );
    println!(
        "  connected {sockets} sockets in {connect_secs:.1} s; calls started {started_calls} in {load_secs:.1} s"
    );
    println!(
        "  screen pops to agents: {} of {expected} rings ({} missing); to supervisors: {}",
        agent_lat.len(),
        expected.saturating_sub(seen_agent.len()),
        sup_lat.len()
    );
    print_latency("agent panels", &agent_lat);
    print_latency("supervisor panels", &sup_lat);
    to_tracker.sort_unstable();
    to_panel.sort_unstable();
    print_latency("  of which AMI sent → tracker done (±1 ms)", &to_tracker);
    print_latency("  of which tracker done → panel read (±1 ms)", &to_panel);
    println!("  directory lookups in the pops: {lookups:?}");
    println!(
        "  largest snapshot frame: {} bytes",
        counters.snapshot_bytes.load(Ordering::Relaxed)
    );
    let per_panel = (rss_connected.saturating_sub(rss_before)) as f64 * 1024.0 / sockets as f64;
    println!(
        "  server RSS: {} KiB before sockets, {} KiB with {sockets} sockets, peak {} KiB under load, {} KiB after",
        rss_before, rss_connected, rss_peak, rss_after
    );
    println!(
        "  memory per connected panel: {:.1} KB (target ≤ 50 KB)",
        per_panel / 1000.0
    );
    println!(
        "  server CPU during the load: {cpu_used:.2} s for {started_calls} calls ({:.1} ms per call); frames read by panels: {frames} ({:.0}/s); sockets closed by the server: {closed}",
        cpu_used * 1000.0 / started_calls.max(1) as f64,
        frames as f64 / load_secs
    );
    let p99 = percentile(&agent_lat, 99.0);
    println!(
        "  verdict: p99 {} µs {} 5,000 µs; memory per panel {:.1} KB {} 50 KB",
        p99,
        if p99 <= 5000 { "≤" } else { ">" },
        per_panel / 1000.0,
        if per_panel <= 50_000.0 { "≤" } else { ">" }
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.0.wait();
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_latency(what: &str, sorted: &[u64]) {
    if sorted.is_empty() {
        println!("  {what}: no samples");
        return;
    }
    println!(
        "  {what}: n={} p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        sorted.len(),
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 99.0),
        percentile(sorted, 99.9),
        sorted[sorted.len() - 1]
    );
}

/// Kills the server if the bench panics.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Users (agents with one extension each, supervisors), a bearer token each, and customers for
/// two thirds of the callers, so most pops carry a card from the directory.
async fn seed(db: &Path, extensions: &[String], supervisors: usize) -> Vec<(String, bool)> {
    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    storage.migrate().await.expect("migrate");
    let now = chrono::Utc::now();
    let mut tokens = Vec::new();
    let people = extensions
        .iter()
        .map(|e| (format!("agent{e}"), Some(e.clone()), storage::Role::Agent))
        .chain((0..supervisors).map(|i| (format!("super{i}"), None, storage::Role::Supervisor)));
    for (login, extension, role) in people {
        let id = storage
            .create_user(
                &storage::NewUser {
                    login: login.clone(),
                    display_name: login.clone(),
                    role,
                    password_hash: None,
                    extensions: extension.into_iter().collect(),
                    queues: vec![],
                },
                now,
            )
            .await
            .expect("user");
        let (token, _) = server::auth::issue_api_token(&storage, id, "bench")
            .await
            .expect("token");
        tokens.push((token, role == storage::Role::Supervisor));
    }
    for i in 0..2000 {
        storage
            .upsert_customer(
                &storage::CustomerUpsert {
                    name: format!("Customer {i}"),
                    company: Some("ACME".into()),
                    segment: Some(if i % 10 == 0 { "vip" } else { "regular" }.into()),
                    phones: vec![storage::CustomerPhone {
                        phone_e164: format!("+7916{:07}", i),
                        phone_raw: None,
                        kind: Some("mobile".into()),
                    }],
                    ..storage::CustomerUpsert::default()
                },
                now,
            )
            .await
            .expect("customer");
    }
    storage.close().await;
    tokens
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, token: &str) -> Socket {
    let mut request = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens");
    socket
}

/// Reads one panel's frames; only `ringing` frames are parsed (the prefix check keeps this
/// process from competing with the server for the two cores).
async fn read_panel(
    mut socket: Socket,
    supervisor: bool,
    pops: mpsc::UnboundedSender<Pop>,
    counters: Arc<Counters>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let read_at_us = unix_us();
        counters.frames.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        if text.starts_with(r#"{"type":"snapshot"#) {
            // `snapshot` then `snapshot_more` pieces; the last one says `"more":false`.
            counters
                .snapshot_bytes
                .fetch_max(text.len() as u64, Ordering::Relaxed);
            if text.ends_with(r#""more":false}"#) {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
        } else if text.starts_with(r#"{"type":"ringing""#) {
            let value: serde_json::Value = match serde_json::from_str(text.as_str()) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let (Some(call_id), Some(agent)) =
                (value["call"]["id"].as_str(), value["agent"].as_str())
            else {
                continue;
            };
            let _ = pops.send(Pop {
                supervisor,
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
                read_at_us,
                received_at_ms: value["received_at_ms"].as_i64().unwrap_or(0),
                lookup: value["lookup"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    counters.closed.fetch_add(1, Ordering::Relaxed);
}

async fn wait_healthy(addr: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("child") {
            panic!("kommutator serve exited early with {status}");
        }
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response).await;
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; here 0-based after the state field (3).
    field(11) + field(12)
}

fn clock_ticks() -> f64 {
    100.0
}
