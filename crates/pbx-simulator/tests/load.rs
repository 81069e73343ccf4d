//! The load generator and scripts drive calls that every connected client sees, including one
//! that connects while calls are already in progress.

use std::collections::HashSet;
use std::time::Duration;

use pbx_ami::codec::{encode_action, Decoder, Item, Limits};
use pbx_simulator::{LoadProfile, Mix, Script, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Logs in and collects the Uniqueids of created and hung-up channels until `done` turns true;
/// then a Ping answered after everything queued before it ends the watch.
async fn watch_calls(
    addr: std::net::SocketAddr,
    mut done: watch::Receiver<bool>,
) -> (HashSet<String>, HashSet<String>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut out = Vec::new();
    encode_action(
        &mut out,
        "Login",
        "l",
        &[("Username", "cti_filtered"), ("Secret", "cti-secret")],
    )
    .expect("action");
    stream.write_all(&out).await.expect("write");
    let mut decoder = Decoder::new(Limits::default());
    let (mut created, mut ended) = (HashSet::new(), HashSet::new());
    let mut buf = [0u8; 16384];
    let mut pinged = false;
    loop {
        while let Some(item) = decoder.next_item() {
            match item {
                Item::Frame(f) => {
                    if f.action_id() == Some(b"end") {
                        return (created, ended);
                    }
                    let uid = f.get_str("Uniqueid").unwrap_or_default().into_owned();
                    match f.event() {
                        Some(b"Newchannel") => {
                            created.insert(uid);
                        }
                        Some(b"Hangup") => {
                            ended.insert(uid);
                        }
                        Some(b"VarSet") => panic!("cti_filtered must not get VarSet"),
                        _ => {}
                    }
                }
                Item::Banner(_) => {}
                Item::Error(e) => panic!("codec error {e}"),
            }
        }
        tokio::select! {
            n = stream.read(&mut buf) => {
                let n = n.expect("read");
                assert!(n > 0, "closed");
                decoder.push(&buf[..n]);
            }
            changed = done.changed(), if !pinged => {
                let finished = changed.is_ok() && *done.borrow();
                if !finished {
                    continue;
                }
                pinged = true;
                let mut out = Vec::new();
                encode_action(&mut out, "Ping", "end", &[]).expect("action");
                stream.write_all(&out).await.expect("write");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_run_plays_its_calls_to_every_client() {
    let sim = Simulator::start(
        SimulatorConfig {
            time_factor: 10.0,
            seed: Some(3),
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("bind");
    let addr = sim.local_addr();
    let (done_tx, done_rx) = watch::channel(false);
    let first = tokio::spawn(watch_calls(addr, done_rx.clone()));
    // Let the first client log in before the load starts.
    while sim.handle().sessions() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run = sim.handle().run_load(LoadProfile {
        calls_per_sec: 2.0,
        total_calls: Some(20),
        mix: Mix::standard(),
        callers: vec!["+79161234567".into(), "+79035550000".into()],
        seed: 11,
    });
    // A second client that connects mid-run sees the rest of the calls in progress.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = tokio::spawn(watch_calls(addr, done_rx));
    assert_eq!(run.finished().await, 20);
    sim.handle().wait_idle().await;
    assert_eq!(sim.handle().live_channels(), 0);
    done_tx.send_replace(true);
    let (created, ended) = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("first client done")
        .expect("task");
    assert_eq!(created, ended);
    // 20 calls of at least two channels each.
    assert!(created.len() >= 40, "{}", created.len());
    let (late_created, late_ended) = late.await.expect("task");
    assert!(late_created.is_subset(&created));
    // The late client saw hangups of channels created before it connected.
    assert!(
        late_ended.len() > late_created.len(),
        "{} {}",
        late_ended.len(),
        late_created.len()
    );
    assert!(sim.handle().originate_log().is_empty());
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn script_starts_calls_at_their_times() {
    let sim = Simulator::start(
        SimulatorConfig {
            time_factor: 20.0,
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("bind");
    let script = Script::parse(
        "0 queue_answered caller=+79161234567 name=\"Ivan Petrov\"\n\
         1 direct_noanswer\n\
         2 click_to_call agent=103 caller=+79035550000\n",
    )
    .expect("script");
    let run = sim.handle().play_script(script);
    assert_eq!(run.finished().await, 3);
    sim.handle().wait_idle().await;
    sim.shutdown().await.expect("shutdown");
}

/// Direct-DID calls can ring any agent (a large team each gets their own calls), and the frames
/// are observable with their send times; a queue capture refuses an agent it cannot ring.
#[tokio::test]
async fn direct_calls_ring_the_agent_asked_for() {
    use pbx_simulator::{CallParams, Scenario, SimError};
    let config = SimulatorConfig {
        time_factor: 20.0,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0")
        .await
        .expect("start");
    let handle = sim.handle().clone();
    let mut frames = handle.watch_events();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    handle
        .start_call(
            Scenario::DirectAnswered,
            CallParams {
                agent: Some("517".into()),
                ..CallParams::default()
            },
        )
        .expect("a direct call takes an agent");
    let refused = handle.start_call(
        Scenario::QueueAnswered,
        CallParams {
            agent: Some("517".into()),
            ..CallParams::default()
        },
    );
    assert!(
        matches!(refused, Err(SimError::InvalidParam { what: "agent", .. })),
        "{refused:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), handle.wait_idle())
        .await
        .expect("the call ends");
    let mut text = String::new();
    let mut last = before;
    while let Ok(frame) = frames.try_recv() {
        assert!(frame.at_unix_us >= last, "send times are in order");
        last = frame.at_unix_us;
        text.push_str(&String::from_utf8_lossy(&frame.bytes));
    }
    let dials: Vec<&str> = text
        .split("\r\n\r\n")
        .filter(|f| f.starts_with("Event: DialBegin") && f.contains("@agents-"))
        .collect();
    assert_eq!(dials.len(), 1, "{dials:?}");
    assert!(
        dials[0].contains("DestChannel: Local/517@agents-"),
        "{}",
        dials[0]
    );
    assert!(
        text.contains("Agent: 517"),
        "the CtiRoute user event names 517"
    );
    assert!(
        !text.contains("Local/102@") && !text.contains("agent-102"),
        "the recorded agent is replaced everywhere"
    );
    assert!(
        text.contains("+18005551102"),
        "the DID, which ends in the recorded extension, is kept"
    );
    sim.shutdown().await.expect("shutdown");
}
