//! The simulator over real TCP, seen by a raw AMI client: what it sends must be what Asterisk
//! 22.10.1 sent in the captures, and what it is sent must be answered and recorded like Asterisk.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pbx_ami::codec::{encode_action, Decoder, Frame, Item, Limits};
use pbx_simulator::{
    CallParams, Scenario, Simulator, SimulatorConfig, SimulatorHandle, TransferTrigger, Variant,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

fn config() -> SimulatorConfig {
    SimulatorConfig {
        time_factor: 20.0,
        seed: Some(7),
        auth_failure_delay: Duration::from_millis(50),
        ..SimulatorConfig::default()
    }
}

struct Client {
    stream: TcpStream,
    decoder: Decoder,
    banner: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut client = Client {
            stream,
            decoder: Decoder::new(Limits::default()),
            banner: Vec::new(),
        };
        // The banner is the first item, before any frame.
        loop {
            if let Some(item) = client.decoder.next_item() {
                match item {
                    Item::Banner(b) => client.banner = b.to_vec(),
                    other => panic!("expected the banner first, got {other:?}"),
                }
                break;
            }
            assert!(client.fill().await, "connection closed before the banner");
        }
        client
    }

    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
            .await
            .expect("timed out waiting for the simulator")
            .expect("read");
        self.decoder.push(&buf[..n]);
        n > 0
    }

    async fn send(&mut self, action: &str, action_id: &str, headers: &[(&str, &str)]) {
        let mut out = Vec::new();
        encode_action(&mut out, action, action_id, headers).expect("valid action");
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next frame, or `None` when the simulator closed the connection.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(item) = self.decoder.next_item() {
                match item {
                    Item::Frame(f) => return Some(f.to_owned()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn expect_frame(&mut self) -> Frame {
        self.frame().await.expect("connection closed")
    }

    /// Frames up to and including the first one matching `pred`.
    async fn until(&mut self, pred: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let f = self.expect_frame().await;
            let done = pred(&f);
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    async fn login(&mut self, user: &str) -> Vec<Frame> {
        self.send(
            "Login",
            "login-1",
            &[("Username", user), ("Secret", "cti-secret")],
        )
        .await;
        self.until(|f| f.event() == Some(b"SuccessfulAuth")).await
    }
}

fn text(f: &Frame) -> String {
    String::from_utf8_lossy(f.raw()).into_owned()
}

fn get(f: &Frame, name: &str) -> String {
    f.get_str(name).unwrap_or_default().into_owned()
}

/// Replaces what identifies a call with placeholders numbered by first appearance, and times
/// with offsets, so two renderings of the same call compare equal and any other difference
/// shows.
struct Normalizer {
    ids: HashMap<String, String>,
    first_timestamp_us: Option<i64>,
    replacements: Vec<(String, String)>,
}

impl Normalizer {
    fn new(replacements: &[(&str, &str)]) -> Normalizer {
        Normalizer {
            ids: HashMap::new(),
            first_timestamp_us: None,
            replacements: replacements
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn frame(&mut self, raw: &[u8]) -> String {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let mut frame_secs = 0i64;
        let mut out = String::new();
        for line in raw.split_inclusive("\r\n") {
            let (name, value) = match line.strip_suffix("\r\n").and_then(|l| l.split_once(": ")) {
                Some(nv) => nv,
                None => {
                    out.push_str(line);
                    continue;
                }
            };
            let value = match name {
                "Timestamp" => {
                    let (s, us) = value.split_once('.').expect("epoch.usec");
                    let t: i64 = s.parse::<i64>().expect("secs") * 1_000_000
                        + us.parse::<i64>().expect("usec");
                    frame_secs = t.div_euclid(1_000_000);
                    let first = *self.first_timestamp_us.get_or_insert(t);
                    format!("+{}", t - first)
                }
                "EventTime" | "StartTime" | "AnswerTime" | "EndTime" if value.len() == 19 => {
                    format!("<time {}>", datetime_secs(value) - frame_secs)
                }
                "LastCall" | "LastPause" | "Value"
                    if value.len() == 10 && value != "0000000000" =>
                {
                    match value.parse::<i64>() {
                        Ok(v) if v > 1_000_000_000 => format!("<epoch {}>", v - frame_secs),
                        _ => value.to_owned(),
                    }
                }
                "LoginTime" => "<boot>".to_owned(),
                _ => self.value(value),
            };
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out
    }

    fn value(&mut self, value: &str) -> String {
        let mut v = value.to_owned();
        for (from, to) in &self.replacements {
            v = v.replace(from.as_str(), to.as_str());
        }
        let b = v.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            let prev = i.checked_sub(1).map(|j| b[j]);
            // <10 digits>.<digits>: a Uniqueid.
            if b[i].is_ascii_digit() && !matches!(prev, Some(p) if p.is_ascii_digit() || p == b'.')
            {
                let mut j = i;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j - i == 10 && j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
                    let mut k = j + 1;
                    while k < b.len() && b[k].is_ascii_digit() {
                        k += 1;
                    }
                    out.push_str(&self.id("uid", &v[i..k]));
                    i = k;
                    continue;
                }
            }
            // -<8 hex>;: a channel sequence number.
            if b[i] == b'-'
                && i + 9 < b.len()
                && b[i + 9] == b';'
                && b[i + 1..i + 9].iter().all(|c| c.is_ascii_hexdigit())
            {
                let id = self.id("chan", &v[i + 1..i + 9]);
                out.push('-');
                out.push_str(&id);
                i += 9;
                continue;
            }
            // A UUID: a bridge id.
            if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
                out.push_str(&self.id("bridge", &v[i..i + 36]));
                i += 36;
                continue;
            }
            out.push(b[i] as char);
            i += 1;
        }
        out
    }

    fn id(&mut self, kind: &str, raw: &str) -> String {
        let n = self.ids.len();
        self.ids
            .entry(format!("{kind}:{raw}"))
            .or_insert_with(|| format!("<{kind}#{n}>"))
            .clone()
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

fn datetime_secs(v: &str) -> i64 {
    // Days from civil (UTC), enough for comparing offsets.
    let n = |a: usize, b: usize| v[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

/// The call's frames in a capture: without the banner, the session frames and the responses to
/// the recording client's actions, and without OriginateResponse (nobody originated it here).
fn capture_call_frames(capture: &[u8]) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.push(capture);
    let mut frames = Vec::new();
    while let Some(item) = decoder.next_item() {
        if let Item::Frame(f) = item {
            let session = f.response().is_some()
                || matches!(
                    f.event(),
                    Some(b"FullyBooted" | b"SuccessfulAuth" | b"OriginateResponse")
                );
            if !session {
                frames.push(f.raw().to_vec());
            }
        }
    }
    frames
}

fn count_events(capture: &[u8], event: &[u8]) -> usize {
    let mut decoder = Decoder::new(Limits::default());
    decoder.push(capture);
    let mut n = 0;
    while let Some(item) = decoder.next_item() {
        if let Item::Frame(f) = item {
            n += usize::from(f.event() == Some(event));
        }
    }
    n
}

async fn start() -> Simulator {
    Simulator::start(config(), "127.0.0.1:0")
        .await
        .expect("bind")
}

#[tokio::test]
async fn rendered_queue_call_equals_the_capture_frame_by_frame() {
    for variant in [Variant::Full, Variant::Filtered] {
        let sim = Simulator::start(
            SimulatorConfig {
                variant,
                ..config()
            },
            "127.0.0.1:0",
        )
        .await
        .expect("bind");
        let mut client = Client::connect(sim.local_addr()).await;
        assert_eq!(client.banner, b"Asterisk Call Manager/11.0.0");
        let login = client.login("cti").await;
        assert_eq!(
            text(&login[0]),
            "Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\n"
        );
        assert_eq!(login[1].event(), Some(&b"FullyBooted"[..]));

        let params = CallParams {
            caller: Some("+79161234567".into()),
            caller_name: Some("Ivan Petrov".into()),
            ..CallParams::default()
        };
        sim.handle()
            .start_call(Scenario::QueueAnswered, params)
            .expect("start");
        let capture = Scenario::QueueAnswered.capture(variant);
        let expected = capture_call_frames(capture);
        let mut received = Vec::new();
        for _ in 0..expected.len() {
            received.push(client.expect_frame().await.raw().to_vec());
        }

        let mut norm_expected =
            Normalizer::new(&[("+15551230001", "<caller>"), ("Alice Anderson", "<name>")]);
        let mut norm_received =
            Normalizer::new(&[("+79161234567", "<caller>"), ("Ivan Petrov", "<name>")]);
        for (i, (e, r)) in expected.iter().zip(&received).enumerate() {
            assert_eq!(
                norm_received.frame(r),
                norm_expected.frame(e),
                "{variant:?} frame {i} differs"
            );
        }
        // The ids are fresh and the times are now.
        let uids = |frames: &[Vec<u8>]| -> HashSet<String> {
            frames
                .iter()
                .filter_map(|raw| Frame::parse(raw).ok())
                .filter_map(|f| f.get_str("Uniqueid").map(|v| v.into_owned()))
                .collect()
        };
        let recorded_uids = uids(&expected);
        let rendered_uids = uids(&received);
        assert_eq!(recorded_uids.len(), rendered_uids.len());
        assert!(recorded_uids.is_disjoint(&rendered_uids));
        let first = Frame::parse(&received[0]).expect("frame");
        let ts: f64 = get(&first, "Timestamp").parse().expect("timestamp");
        let now = sim.handle().clock().now_us() as f64 / 1e6;
        assert!((now - ts).abs() < 60.0, "{ts} vs {now}");
        // The recorded caller is gone from the rendered call, the configured one is there.
        let all: Vec<u8> = received.concat();
        let all = String::from_utf8_lossy(&all);
        assert!(!all.contains("+15551230001") && !all.contains("Alice Anderson"));
        assert!(all.contains("CallerIDNum: +79161234567\r\nCallerIDName: Ivan Petrov\r\n"));
        // Nothing else follows: the call is over.
        sim.handle().wait_idle().await;
        assert_eq!(sim.handle().live_channels(), 0);
        sim.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn filtered_user_gets_no_varset_and_events_off_gets_nothing() {
    let sim = start().await;
    let mut filtered = Client::connect(sim.local_addr()).await;
    filtered.login("cti_filtered").await;
    let mut quiet = Client::connect(sim.local_addr()).await;
    quiet
        .send(
            "Login",
            "l",
            &[
                ("Username", "cti"),
                ("Secret", "cti-secret"),
                ("Events", "off"),
            ],
        )
        .await;
    let r = quiet.expect_frame().await;
    assert_eq!(get(&r, "Message"), "Authentication accepted");

    sim.handle()
        .start_call(Scenario::QueueAbandon, CallParams::default())
        .expect("start");
    sim.handle().wait_idle().await;
    filtered.send("Ping", "end", &[]).await;
    let frames = filtered.until(|f| get(f, "ActionID") == "end").await;
    assert!(frames.iter().all(|f| f.event() != Some(b"VarSet")));
    assert!(frames
        .iter()
        .any(|f| f.event() == Some(b"QueueCallerAbandon")));
    // The other client's login is announced too (SuccessfulAuth), then the call.
    assert_eq!(frames[0].event(), Some(&b"SuccessfulAuth"[..]));
    assert_eq!(
        frames.len() - 2,
        Scenario::QueueAbandon.n_events(Variant::Full)
            - count_events(Scenario::QueueAbandon.capture(Variant::Full), b"VarSet")
    );

    quiet.send("Ping", "p1", &[]).await;
    let pong = quiet.expect_frame().await;
    assert_eq!(pong.response(), Some(&b"Success"[..]), "{}", text(&pong));
    assert_eq!(get(&pong, "ActionID"), "p1");
    assert_eq!(get(&pong, "Ping"), "Pong");
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn core_show_channels_mid_call_lists_exactly_the_live_channels() {
    let sim = start().await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    sim.handle()
        .start_call(Scenario::AttendedTransfer, CallParams::default())
        .expect("start");
    let mut live: HashSet<String> = HashSet::new();
    let mut seen_connect = false;
    while !seen_connect {
        let f = client.expect_frame().await;
        match f.event() {
            Some(b"Newchannel") => {
                live.insert(get(&f, "Uniqueid"));
            }
            Some(b"Hangup") => {
                live.remove(&get(&f, "Uniqueid"));
            }
            Some(b"AgentConnect") => seen_connect = true,
            _ => {}
        }
    }
    client.send("CoreShowChannels", "resync-1", &[]).await;
    // Events emitted before the response are part of the state it lists.
    let mut listed = HashSet::new();
    let mut got_response = false;
    loop {
        let f = client.expect_frame().await;
        if f.response().is_some() {
            assert_eq!(
                text(&f),
                "Response: Success\r\nActionID: resync-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
            );
            got_response = true;
            continue;
        }
        if !got_response {
            match f.event() {
                Some(b"Newchannel") => {
                    live.insert(get(&f, "Uniqueid"));
                }
                Some(b"Hangup") => {
                    live.remove(&get(&f, "Uniqueid"));
                }
                _ => {}
            }
            continue;
        }
        match f.event() {
            Some(b"CoreShowChannel") => {
                assert_eq!(get(&f, "ActionID"), "resync-1");
                let names: Vec<String> = f
                    .headers()
                    .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                    .collect();
                assert_eq!(
                    names,
                    [
                        "Event",
                        "ActionID",
                        "Channel",
                        "ChannelState",
                        "ChannelStateDesc",
                        "CallerIDNum",
                        "CallerIDName",
                        "ConnectedLineNum",
                        "ConnectedLineName",
                        "Language",
                        "AccountCode",
                        "Context",
                        "Exten",
                        "Priority",
                        "Uniqueid",
                        "Linkedid",
                        "Application",
                        "ApplicationData",
                        "Duration",
                        "BridgeId"
                    ]
                );
                listed.insert(get(&f, "Uniqueid"));
            }
            Some(b"CoreShowChannelsComplete") => {
                assert_eq!(get(&f, "EventList"), "Complete");
                assert_eq!(get(&f, "ListItems"), listed.len().to_string());
                break;
            }
            // Live events may interleave with the list, as on Asterisk.
            _ => {}
        }
    }
    assert!(listed.len() >= 4, "{listed:?}");
    assert_eq!(listed, live);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn queue_pause_is_answered_announced_and_recorded_once() {
    let sim = start().await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    client
        .send(
            "QueuePause",
            "pause-1",
            &[
                ("Interface", "Local/102@agents/nm"),
                ("Paused", "true"),
                ("Reason", "Lunch"),
            ],
        )
        .await;
    let r = client.expect_frame().await;
    assert_eq!(
        text(&r),
        "Response: Success\r\nActionID: pause-1\r\nMessage: Interface paused successfully\r\n\r\n"
    );
    // 102 is a member of sales and support.
    for queue in ["sales", "support"] {
        let e = client.expect_frame().await;
        assert_eq!(e.event(), Some(&b"QueueMemberPause"[..]));
        assert_eq!(get(&e, "Queue"), queue);
        assert_eq!(get(&e, "Paused"), "1");
        assert_eq!(get(&e, "PausedReason"), "Lunch");
    }
    client
        .send("QueueStatus", "qs-1", &[("Queue", "support")])
        .await;
    let frames = client
        .until(|f| f.event() == Some(b"QueueStatusComplete"))
        .await;
    let member = frames
        .iter()
        .find(|f| f.event() == Some(b"QueueMember") && get(f, "Location") == "Local/102@agents/nm")
        .expect("102 listed");
    assert_eq!(get(member, "Paused"), "1");
    assert_eq!(get(member, "ActionID"), "qs-1");
    assert!(frames
        .iter()
        .any(|f| f.event() == Some(b"QueueParams") && get(f, "Strategy") == "linear"));

    client
        .send(
            "QueuePause",
            "pause-2",
            &[("Interface", "Local/999@agents/nm"), ("Paused", "false")],
        )
        .await;
    let r = client.expect_frame().await;
    assert_eq!(get(&r, "Response"), "Error");
    assert_eq!(get(&r, "Message"), "Interface not found");

    // A queue call now reports the paused member as paused, where the recording said 0.
    sim.handle()
        .start_call(Scenario::QueueAnswered, CallParams::default())
        .expect("start");
    sim.handle().wait_idle().await;
    client.send("Ping", "end", &[]).await;
    let frames = client.until(|f| get(f, "ActionID") == "end").await;
    let member_events: Vec<&Frame> = frames
        .iter()
        .filter(|f| {
            f.event() == Some(b"QueueMemberStatus")
                && get(f, "Interface") == "Local/102@agents/nm"
                && get(f, "Queue") == "sales"
        })
        .collect();
    assert!(!member_events.is_empty());
    for f in member_events {
        assert_eq!(get(f, "Paused"), "1", "{}", text(f));
        assert_eq!(get(f, "PausedReason"), "Lunch");
    }
    let recorded = String::from_utf8_lossy(Scenario::QueueAnswered.capture(Variant::Full));
    assert!(!recorded.contains("Paused: 1\r\nPausedReason: Lunch"));

    let log = sim.handle().pause_log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action_id.as_deref(), Some("pause-1"));
    assert!(log[0].paused && log[0].accepted);
    assert_eq!(log[0].reason.as_deref(), Some("Lunch"));
    assert!(!log[1].accepted);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn originate_plays_click_to_call_and_is_recorded_once() {
    let sim = start().await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    client
        .send(
            "Originate",
            "c2c-7f3a",
            &[
                ("Channel", "Local/102@agents/nm"),
                ("Context", "outbound"),
                ("Exten", "+79161234567"),
                ("Priority", "1"),
                ("CallerID", "\"+79161234567\" <+79161234567>"),
                ("Async", "true"),
            ],
        )
        .await;
    let r = client.expect_frame().await;
    assert_eq!(
        text(&r),
        "Response: Success\r\nActionID: c2c-7f3a\r\nMessage: Originate successfully queued\r\n\r\n"
    );
    let frames = client
        .until(|f| f.event() == Some(b"OriginateResponse"))
        .await;
    let resp = frames.last().expect("frame");
    assert_eq!(get(resp, "ActionID"), "c2c-7f3a");
    assert_eq!(get(resp, "Response"), "Success");
    assert!(get(resp, "Channel").starts_with("Local/102@agents-"));
    assert_eq!(get(resp, "Exten"), "+79161234567");
    sim.handle().wait_idle().await;

    let log = sim.handle().originate_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].action_id.as_deref(), Some("c2c-7f3a"));
    assert_eq!(log[0].exten.as_deref(), Some("+79161234567"));
    assert!(log[0].is_async && log[0].call.is_some());

    // An originate the recorded dialplan cannot place fails like Asterisk's async originate.
    client
        .send(
            "Originate",
            "bad-1",
            &[
                ("Channel", "DAHDI/1"),
                ("Application", "Wait"),
                ("Data", "1"),
            ],
        )
        .await;
    let frames = client.until(|f| get(f, "ActionID") == "bad-1").await;
    let r = frames.last().expect("frame");
    assert_eq!(get(r, "Message"), "Originate successfully queued");
    let e = client.expect_frame().await;
    assert_eq!(e.event(), Some(&b"OriginateResponse"[..]));
    assert_eq!(get(&e, "Response"), "Failure");
    assert_eq!(get(&e, "ActionID"), "bad-1");
    assert_eq!(sim.handle().originate_log().len(), 2);
    sim.shutdown().await.expect("shutdown");
}

/// A CRM's click-to-call picks the call id before it exists: `ChannelId` becomes the
/// originated channel's Uniqueid and the call's Linkedid; the Local `;2` half is `<id>;2`.
#[tokio::test]
async fn originate_channel_id_names_the_call() {
    let sim = start().await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    client
        .send(
            "Originate",
            "c2c-b24",
            &[
                ("Channel", "Local/101@agents/nm"),
                ("Context", "outbound"),
                ("Exten", "+79161234567"),
                ("Priority", "1"),
                ("Async", "true"),
                ("ChannelId", "kc2c-0123abcd"),
            ],
        )
        .await;
    let frames = client.until(|f| f.event() == Some(b"Hangup")).await;
    let first = frames
        .iter()
        .find(|f| f.event() == Some(b"Newchannel"))
        .expect("a Newchannel");
    assert_eq!(get(first, "Uniqueid"), "kc2c-0123abcd");
    assert!(get(first, "Channel").ends_with(";1"), "{}", text(first));
    let half = frames
        .iter()
        .find(|f| f.event() == Some(b"Newchannel") && get(f, "Channel").ends_with(";2"))
        .expect("the ;2 half");
    assert_eq!(get(half, "Uniqueid"), "kc2c-0123abcd;2");
    for frame in frames.iter().filter(|f| f.event().is_some()) {
        let linkedid = get(frame, "Linkedid");
        if !linkedid.is_empty() {
            assert_eq!(linkedid, "kc2c-0123abcd", "{}", text(frame));
        }
    }
    let response = frames
        .iter()
        .find(|f| f.event() == Some(b"OriginateResponse"))
        .expect("OriginateResponse");
    assert_eq!(get(response, "Uniqueid"), "kc2c-0123abcd");
    let log = sim.handle().originate_log();
    assert_eq!(log[0].channel_id.as_deref(), Some("kc2c-0123abcd"));

    // Asterisk refuses an id of 149 bytes or more at once.
    let long = "x".repeat(149);
    client
        .send(
            "Originate",
            "c2c-long",
            &[
                ("Channel", "Local/101@agents/nm"),
                ("Context", "outbound"),
                ("Exten", "+79161234567"),
                ("Async", "true"),
                ("ChannelId", long.as_str()),
            ],
        )
        .await;
    let frames = client.until(|f| get(f, "ActionID") == "c2c-long").await;
    let r = frames.last().expect("frame");
    assert_eq!(get(r, "Response"), "Error");
    assert!(get(r, "Message").contains("149"), "{}", text(r));
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn inbound_originate_like_the_recording_rig_plays_the_did_scenario() {
    let sim = start().await;
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    client
        .send(
            "Originate",
            "originate-2",
            &[
                ("Channel", "Local/+18005550102@incoming/n"),
                ("Application", "Wait"),
                ("Data", "60"),
                ("CallerID", "\"Carol Clark\" <+15551230003>"),
                ("Async", "true"),
                ("Variable", "CALLER_NUM=+79990001122"),
            ],
        )
        .await;
    let frames = client
        .until(|f| f.event() == Some(b"QueueCallerAbandon"))
        .await;
    assert!(frames
        .iter()
        .any(|f| f.event() == Some(b"QueueCallerJoin") && get(f, "Queue") == "billing"));
    assert!(frames.iter().any(
        |f| get(f, "CallerIDNum") == "+79990001122" && get(f, "CallerIDName") == "Carol Clark"
    ));
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn blind_transfer_waits_for_the_client_action() {
    let sim = Simulator::start(
        SimulatorConfig {
            time_factor: 10.0,
            action_wait: Duration::from_secs(600),
            ..config()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("bind");
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    sim.handle()
        .start_call(
            Scenario::BlindTransfer,
            CallParams {
                transfer: TransferTrigger::AwaitAction,
                ..CallParams::default()
            },
        )
        .expect("start");
    let frames = client.until(|f| f.event() == Some(b"AgentConnect")).await;
    let agent_leg = get(frames.last().expect("frame"), "DestChannel");
    assert!(agent_leg.starts_with("Local/101@agents-") && agent_leg.ends_with(";1"));

    // A transfer of the wrong channel is refused like Asterisk refuses an impossible one.
    client
        .send(
            "BlindTransfer",
            "bt-0",
            &[("Channel", "Local/999@agents-00000000;1"), ("Exten", "102")],
        )
        .await;
    let r = client
        .until(|f| f.response().is_some())
        .await
        .pop()
        .expect("frame");
    assert_eq!(get(&r, "Message"), "Channel specified does not exist");

    client
        .send(
            "BlindTransfer",
            "bt-1",
            &[
                ("Channel", &agent_leg),
                ("Context", "internal"),
                ("Exten", "102"),
            ],
        )
        .await;
    let frames = client.until(|f| f.response().is_some()).await;
    let r = frames.last().expect("frame");
    assert_eq!(
        text(r),
        "Response: Success\r\nActionID: bt-1\r\nMessage: Transfer succeeded\r\n\r\n"
    );
    let frames = client.until(|f| f.event() == Some(b"BlindTransfer")).await;
    let bt = frames.last().expect("frame");
    assert_eq!(get(bt, "Result"), "Success");
    assert_eq!(get(bt, "TransfererChannel"), agent_leg);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn hangup_action_ends_the_call() {
    let sim = Simulator::start(
        SimulatorConfig {
            time_factor: 2.0,
            ..config()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("bind");
    let mut client = Client::connect(sim.local_addr()).await;
    client.login("cti").await;
    sim.handle()
        .start_call(Scenario::QueueMissed, CallParams::default())
        .expect("start");
    let frames = client
        .until(|f| f.event() == Some(b"QueueCallerJoin"))
        .await;
    let caller_channel = get(frames.last().expect("frame"), "Channel");
    client
        .send("Hangup", "h-1", &[("Channel", &caller_channel)])
        .await;
    let frames = client.until(|f| f.response().is_some()).await;
    assert_eq!(
        get(frames.last().expect("frame"), "Message"),
        "Channel Hungup"
    );
    let hangup_request = client.expect_frame().await;
    assert_eq!(hangup_request.event(), Some(&b"HangupRequest"[..]));
    assert_eq!(get(&hangup_request, "Channel"), caller_channel);
    // The Hangups were queued with the response; a Ping answered after them marks their end.
    client.send("Ping", "after", &[]).await;
    let frames = client.until(|f| get(f, "ActionID") == "after").await;
    let hung_up = frames.len() - 1;
    for f in &frames[..hung_up] {
        assert_eq!(f.event(), Some(&b"Hangup"[..]), "{}", text(f));
        assert_eq!(get(f, "Cause"), "16");
        assert_eq!(get(f, "Cause-txt"), "Normal Clearing");
    }
    assert!(hung_up >= 2);
    assert_eq!(sim.handle().active_calls(), 0);
    assert_eq!(sim.handle().live_channels(), 0);
    client
        .send("Hangup", "h-2", &[("Channel", &caller_channel)])
        .await;
    let r = client.until(|f| get(f, "ActionID") == "h-2").await;
    assert_eq!(get(r.last().expect("frame"), "Message"), "No such channel");
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn login_rules_match_asterisk() {
    let sim = start().await;
    // Actions before login are refused.
    let mut client = Client::connect(sim.local_addr()).await;
    client.send("CoreShowChannels", "x", &[]).await;
    assert_eq!(
        text(&client.expect_frame().await),
        "Response: Error\r\nActionID: x\r\nMessage: Permission denied\r\n\r\n"
    );
    // A wrong secret is answered, then the socket is closed.
    client
        .send("Login", "l1", &[("Username", "cti"), ("Secret", "wrong")])
        .await;
    assert_eq!(
        text(&client.expect_frame().await),
        "Response: Error\r\nActionID: l1\r\nMessage: Authentication failed\r\n\r\n"
    );
    assert!(client.frame().await.is_none(), "socket must be closed");

    // MD5 challenge login.
    let mut client = Client::connect(sim.local_addr()).await;
    client.send("Challenge", "c1", &[("AuthType", "MD5")]).await;
    let c = client.expect_frame().await;
    let challenge = get(&c, "Challenge");
    assert!(challenge.parse::<u64>().is_ok(), "{}", text(&c));
    use md5::Digest as _;
    let key = hex::encode(md5::Md5::digest(format!("{challenge}cti-secret")));
    client
        .send(
            "Login",
            "l2",
            &[("AuthType", "MD5"), ("Username", "cti"), ("Key", &key)],
        )
        .await;
    assert_eq!(
        get(&client.expect_frame().await, "Message"),
        "Authentication accepted"
    );
    client.until(|f| f.event() == Some(b"SuccessfulAuth")).await;

    client.send("Frobnicate", "u1", &[]).await;
    assert_eq!(
        get(&client.expect_frame().await, "Message"),
        "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands."
    );
    client
        .send("Command", "cmd", &[("Command", "core show channels")])
        .await;
    let out = client.expect_frame().await;
    assert_eq!(get(&out, "Message"), "Command output follows");
    assert_eq!(get(&out, "Output"), "0 active channels");
    client.send("ExtensionStateList", "e", &[]).await;
    let frames = client
        .until(|f| f.event() == Some(b"ExtensionStateListComplete"))
        .await;
    assert!(frames
        .iter()
        .any(|f| get(f, "Exten") == "101" && get(f, "Hint") == "Custom:agent-101"));
    client.send("DeviceStateList", "d", &[]).await;
    let frames = client
        .until(|f| f.event() == Some(b"DeviceStateListComplete"))
        .await;
    assert!(frames
        .iter()
        .any(|f| get(f, "Device") == "Custom:agent-104" && get(f, "ActionID") == "d"));
    client.send("Logoff", "bye", &[]).await;
    assert_eq!(
        text(&client.expect_frame().await),
        "Response: Goodbye\r\nActionID: bye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    );
    assert!(client.frame().await.is_none());
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn restart_on_the_same_port_loses_calls_and_accepts_clients() {
    let sim = Simulator::start(
        SimulatorConfig {
            time_factor: 1.0,
            ..config()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("bind");
    let addr = sim.local_addr();
    let mut client = Client::connect(addr).await;
    client.login("cti").await;
    sim.handle()
        .start_call(Scenario::AttendedTransfer, CallParams::default())
        .expect("start");
    client
        .until(|f| f.event() == Some(b"QueueCallerJoin"))
        .await;
    let handle: SimulatorHandle = sim.handle().clone();
    sim.shutdown().await.expect("shutdown");
    // Killed mid-call: the client's connection ends.
    while client.frame().await.is_some() {}
    assert_eq!(handle.active_calls(), 0);

    // A new simulator on the same port.
    let sim = Simulator::start(config(), addr)
        .await
        .expect("rebind same port");
    let mut client = Client::connect(addr).await;
    client.login("cti").await;
    client.send("CoreShowChannels", "resync", &[]).await;
    let frames = client
        .until(|f| f.event() == Some(b"CoreShowChannelsComplete"))
        .await;
    assert_eq!(get(frames.last().expect("frame"), "ListItems"), "0");
    assert!(sim.handle().originate_log().is_empty());

    // The old handle can serve again too (an Asterisk restart keeping the test's logs).
    sim.shutdown().await.expect("shutdown");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let again = Simulator::serve(handle, listener);
    let mut client = Client::connect(addr).await;
    client.login("cti").await;
    again.shutdown().await.expect("shutdown");
}
