//! Real FastAGI sessions over TCP against the real server: the environment block is the
//! Asterisk 22 capture in `test_data/`, with the caller ID changed per seed case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cti_core::routing::{Action, KnownExtensions, Route, Router, RouterConfig, Rule, WorkingHours};
use directory::phone::{Region, E164};
use directory::{
    BoxFuture, CustomerRecord, DecisionLog, Directory, LookupError, LookupSource, RoutingService,
    ServiceSettings,
};
use pbx_agi::AgiSettings;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CAPTURE: &str = include_str!("../test_data/agi_routed.fastagi.recv");
const DAY_SECS: i64 = 86_400;

/// The environment block of the capture, with another caller ID.
fn environment(caller: &str) -> String {
    let header = CAPTURE.split("\n\n").next().expect("capture has a header");
    let mut out = String::new();
    for line in header.lines() {
        if line.starts_with("agi_callerid:") {
            out.push_str(&format!("agi_callerid: {caller}\n"));
        } else if line.starts_with("agi_arg_2:") {
            out.push_str(&format!("agi_arg_2: {caller}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

struct HangingCrm;

impl LookupSource for HangingCrm {
    fn lookup(&self, _phone: E164) -> BoxFuture<'_, Result<Option<CustomerRecord>, LookupError>> {
        Box::pin(std::future::pending())
    }
}

fn customer(id: i64, name: &str, phone: &str) -> CustomerRecord {
    CustomerRecord {
        id,
        name: name.into(),
        phones: vec![E164::parse(phone).expect("test phone is E.164")],
        ..CustomerRecord::default()
    }
}

fn seed_router(after_hours: bool) -> Router {
    let hours = if after_hours {
        WorkingHours::default()
    } else {
        WorkingHours::always_open()
    };
    Router::new(RouterConfig {
        rules: vec![
            Rule::blacklist("blacklist"),
            Rule::after_hours("after-hours", Action::Voicemail("general".into())),
            Rule::debtors("debtors", "collections".into()),
            Rule::assigned_manager("manager"),
            Rule::last_agent("last-agent", 30),
            Rule::vip("vip", vec!["vip".into()], 10, None),
            Rule::area_code(
                "regional",
                vec![
                    ("Moscow".into(), "moscow".into()),
                    ("Saint Petersburg".into(), "spb".into()),
                ],
            ),
            Rule::default_queue("default", "support".into()),
        ],
        hours,
        fallback: Route::Reject,
    })
    .expect("seed rules are valid")
}

fn seed_directory(source: Option<Arc<dyn LookupSource>>) -> Arc<Directory> {
    let directory = Arc::new(Directory::new(source));
    let mut blacklisted = customer(1, "Спамер", "+79160000001");
    blacklisted.blacklisted = true;
    let mut debtor = customer(2, "Должник Д.", "+79160000002");
    debtor.debtor = true;
    debtor.responsible_extension = Some("101".into());
    let mut managed = customer(3, "Иван Петров", "+79160000003");
    managed.responsible_extension = Some("101".into());
    managed.segment = Some("regular".into());
    let served = customer(4, "Ольга Смирнова", "+79160000004");
    let mut vip = customer(5, "ООО \"Ромашка\"", "+79160000005");
    vip.segment = Some("vip".into());
    vip.responsible_extension = Some("109".into());
    vip.language = Some("en".into());
    for record in [blacklisted, debtor, managed, served, vip] {
        directory.upsert(&record);
    }
    let now = directory::service::now_timestamp();
    directory.record_agent(
        E164::parse("+79160000004").expect("valid"),
        "102",
        now.plus_micros(-3 * DAY_SECS * 1_000_000),
    );
    directory
}

fn service(router: Router, directory: Arc<Directory>, budget_ms: u64) -> Arc<RoutingService> {
    Arc::new(RoutingService::new(
        router,
        directory,
        Arc::new(KnownExtensions::new(["101".into(), "102".into()])),
        ServiceSettings {
            budget: Duration::from_millis(budget_ms),
            region: Region::russia(),
            utc_offset_minutes: 180,
        },
        Arc::new(DecisionLog::default()),
    ))
}

async fn start(
    service: Arc<RoutingService>,
    settings: AgiSettings,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        pbx_agi::run_with(listener, service, settings, async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    (addr, stop, task)
}

/// Plays Asterisk: sends the environment, answers every command like Asterisk 22 did in the
/// capture (`200 result=1 (...)` for GET VARIABLE, `200 result=1` for SET VARIABLE) and
/// returns the variables set, in order, once the server closes.
async fn asterisk(
    addr: std::net::SocketAddr,
    caller: &str,
) -> (Vec<String>, BTreeMap<String, String>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(environment(caller).as_bytes())
        .await
        .expect("send environment");
    let mut commands = Vec::new();
    let mut vars = BTreeMap::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("server answers in time")
            .expect("read");
        if n == 0 {
            break;
        }
        assert!(
            line.ends_with('\n') && !line.ends_with("\r\n"),
            "LF only: {line:?}"
        );
        let line = line.trim_end_matches('\n').to_owned();
        if line == "GET VARIABLE CHANNEL(linkedid)" {
            write
                .write_all(b"200 result=1 (1795335185.240)\n")
                .await
                .expect("reply");
        } else if let Some(rest) = line.strip_prefix("SET VARIABLE ") {
            let (name, value) = rest
                .split_once(' ')
                .expect("SET VARIABLE has two arguments");
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .expect("value is quoted")
                .replace("\\\"", "\"");
            vars.insert(name.to_owned(), value);
            write.write_all(b"200 result=1\n").await.expect("reply");
        } else {
            write
                .write_all(b"510 Invalid or unknown command\n")
                .await
                .expect("reply");
        }
        commands.push(line);
    }
    (commands, vars)
}

fn route_of(vars: &BTreeMap<String, String>) -> String {
    format!(
        "{} {} {} | {} | {} | {}",
        vars["KOMMUTATOR_ROUTE"],
        vars["KOMMUTATOR_TARGET"],
        vars["KOMMUTATOR_PRIORITY"],
        vars["KOMMUTATOR_CUSTOMER_NAME"],
        vars["KOMMUTATOR_SEGMENT"],
        vars["KOMMUTATOR_LANGUAGE"],
    )
}

#[tokio::test]
async fn seed_cases_set_the_expected_variables() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let (addr, stop, task) = start(service.clone(), AgiSettings::default()).await;
    let cases = [
        ("+79160000001", "reject  0 | Спамер |  | en", "blacklist: rejected"),
        ("+79160000002", "queue collections 0 | Должник Д. |  | en", "debtors: to queue collections (priority 0)"),
        ("89160000003", "agent 101 0 | Иван Петров | regular | en", "manager: responsible manager 101 is available"),
        ("+7 916 000-00-04", "agent 102 0 | Ольга Смирнова |  | en", "last-agent: last agent (3 days ago) 102 is available"),
        ("+79160000005", "queue support 10 | ООО \"Ромашка\" | vip | en", "default: to queue support (priority 10)"),
        ("+74951234567", "queue moscow 0 |  |  | en", "regional: caller from Moscow; to the regional office, queue moscow (priority 0)"),
        ("8 (812) 312-45-67", "queue spb 0 |  |  | en", "regional: caller from Saint Petersburg; to the regional office, queue spb (priority 0)"),
        ("+15551230011", "queue support 0 |  |  | en", "default: to queue support (priority 0)"),
        ("anonymous", "queue support 0 |  |  | en", "default: to queue support (priority 0)"),
    ];
    for (caller, want, reason) in cases {
        let (commands, vars) = asterisk(addr, caller).await;
        assert_eq!(commands[0], "GET VARIABLE CHANNEL(linkedid)");
        assert_eq!(route_of(&vars), want, "{caller}");
        assert_eq!(vars["KOMMUTATOR_REASON"], reason, "{caller}");
        assert_eq!(vars["KOMMUTATOR_DEGRADED"], "0");
    }
    // Filed under both the channel's uniqueid (from the header) and the linkedid.
    let logged = service
        .log()
        .get("1795335185.240")
        .expect("filed under linkedid");
    assert_eq!(logged.route.kind(), "queue");
    assert!(
        service.log().get("1795335185.241").is_some(),
        "filed under uniqueid"
    );
    let _ = stop.send(());
    task.await.expect("server stops");
}

#[tokio::test]
async fn the_captured_session_routes_and_sends_lf_commands() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let (addr, _stop, _task) = start(service, AgiSettings::default()).await;
    let (commands, vars) = asterisk(addr, "+15551230011").await;
    assert_eq!(vars["KOMMUTATOR_ROUTE"], "queue");
    assert_eq!(
        vars["KOMMUTATOR_TARGET"], "support",
        "the capture's call went to support too"
    );
    assert_eq!(
        commands.len(),
        1 + 8,
        "GET VARIABLE then eight SET VARIABLE: {commands:?}"
    );
}

#[tokio::test]
async fn after_hours_goes_to_voicemail() {
    let service = service(seed_router(true), seed_directory(None), 300);
    let (addr, _stop, _task) = start(service, AgiSettings::default()).await;
    let (_, vars) = asterisk(addr, "+79160000003").await;
    assert_eq!(vars["KOMMUTATOR_ROUTE"], "voicemail");
    assert_eq!(vars["KOMMUTATOR_TARGET"], "general");
}

#[tokio::test]
async fn hanging_crm_answers_within_the_budget_marked_degraded() {
    let service = service(
        seed_router(false),
        seed_directory(Some(Arc::new(HangingCrm))),
        150,
    );
    let (addr, _stop, _task) = start(service, AgiSettings::default()).await;
    let started = Instant::now();
    let (_, vars) = asterisk(addr, "+74957654321").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    assert_eq!(vars["KOMMUTATOR_DEGRADED"], "1");
    assert_eq!(
        vars["KOMMUTATOR_TARGET"], "moscow",
        "decided from the number alone"
    );
    // A known customer is still served from the cache without waiting.
    let started = Instant::now();
    let (_, vars) = asterisk(addr, "+79160000003").await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(vars["KOMMUTATOR_DEGRADED"], "0");
    assert_eq!(vars["KOMMUTATOR_TARGET"], "101");
}

async fn read_to_end(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out))
        .await
        .expect("server closes in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hangup_mid_session_ends_it_and_the_decision_is_still_filed() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let (addr, _stop, _task) = start(service.clone(), AgiSettings::default()).await;

    // HANGUP arrives between our GET VARIABLE and its reply.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(environment("+79160000003").as_bytes())
        .await
        .expect("send");
    let mut first = [0u8; 31];
    stream.read_exact(&mut first).await.expect("read command");
    assert_eq!(&first, b"GET VARIABLE CHANNEL(linkedid)\n");
    stream
        .write_all(b"HANGUP\n200 result=1 (1795335185.240)\n")
        .await
        .expect("send");
    let rest = read_to_end(&mut stream).await;
    assert_eq!(rest, "", "nothing is sent after HANGUP");
    let logged = service
        .log()
        .get("1795335185.241")
        .expect("decision filed for the record");
    assert_eq!(logged.route.target(), "101");

    // HANGUP in the middle of the SET VARIABLE run.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(environment("+79160000003").as_bytes())
        .await
        .expect("send");
    let mut n_commands = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.expect("read") == 0 {
            break;
        }
        n_commands += 1;
        let reply: &[u8] = match n_commands {
            1 => b"200 result=1 (1795335185.240)\n",
            3 => b"HANGUP\n",
            _ => b"200 result=1\n",
        };
        write.write_all(reply).await.expect("reply");
    }
    assert_eq!(n_commands, 3, "the server stopped at the HANGUP");

    // HANGUP before the environment is complete.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"agi_network: yes\nHANGUP\n")
        .await
        .expect("send");
    assert_eq!(read_to_end(&mut stream).await, "");
}

#[tokio::test]
async fn garbage_peers_are_dropped_without_commands() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let (addr, _stop, _task) = start(service, AgiSettings::default()).await;
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        b"\n",
        &[b'a'; 9000],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(bytes).await;
        assert_eq!(
            read_to_end(&mut stream).await,
            "",
            "{:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(20)])
        );
    }
    // A garbage reply to our command ends the session too.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(environment("+79160000003").as_bytes())
        .await
        .expect("send");
    let mut first = [0u8; 31];
    stream.read_exact(&mut first).await.expect("read command");
    stream.write_all(b"lol what\n").await.expect("send");
    assert_eq!(read_to_end(&mut stream).await, "");
    // The server is still healthy.
    let (_, vars) = asterisk(addr, "+79160000003").await;
    assert_eq!(vars["KOMMUTATOR_TARGET"], "101");
}

#[tokio::test]
async fn silent_and_slow_peers_time_out() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let settings = AgiSettings {
        header_timeout: Duration::from_millis(200),
        reply_timeout: Duration::from_millis(200),
        ..AgiSettings::default()
    };
    let (addr, _stop, _task) = start(service, settings).await;
    // Silent: connects and sends nothing.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(read_to_end(&mut stream).await, "");
    assert!(
        started.elapsed() >= Duration::from_millis(190)
            && started.elapsed() < Duration::from_secs(2)
    );
    // Slow: half an environment, then nothing.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"agi_network: yes\nagi_request: agi://x/route\n")
        .await
        .expect("send");
    assert_eq!(read_to_end(&mut stream).await, "");
    // Never replies to a command.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(environment("+79160000003").as_bytes())
        .await
        .expect("send");
    assert_eq!(
        read_to_end(&mut stream).await,
        "GET VARIABLE CHANNEL(linkedid)\n"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_sessions() {
    let service = service(seed_router(false), seed_directory(None), 300);
    let (addr, _stop, _task) = start(service, AgiSettings::default()).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        tasks.push(tokio::spawn(async move {
            let caller = if i % 2 == 0 {
                "+79160000003"
            } else {
                "+74951234567"
            };
            let (_, vars) = asterisk(addr, caller).await;
            (i, vars["KOMMUTATOR_TARGET"].clone())
        }));
    }
    for task in tasks {
        let (i, target) = task.await.expect("session task");
        assert_eq!(target, if i % 2 == 0 { "101" } else { "moscow" });
    }
}
