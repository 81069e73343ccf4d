//! The AMI client against a scripted fake Asterisk on 127.0.0.1:0.
//!
//! Each test drives the server side explicitly (accept, read the client's actions, write
//! replies), so every step the client takes is checked, in order.

use std::time::Duration;

use md5::{Digest, Md5};
use pbx_ami::client::{
    client, Action, ActionError, AmiClient, AmiClientConfig, AmiMetrics, AmiUpdate, AuthMethod,
    DisconnectReason,
};
use pbx_ami::codec::{Decoder, Frame, Item, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";
const STEP: Duration = Duration::from_secs(5);

struct FakeServer {
    listener: TcpListener,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        FakeServer { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("local addr").port()
    }

    async fn accept(&self) -> FakeConn {
        let (stream, _) = timeout(STEP, self.listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        FakeConn {
            stream,
            decoder: Decoder::new(Limits::default()),
        }
    }
}

struct FakeConn {
    stream: TcpStream,
    decoder: Decoder,
}

impl FakeConn {
    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.expect("write");
    }

    /// The next action from the client, or `None` on EOF or after `within`.
    async fn try_action(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.decoder.next_item() {
                Some(Item::Frame(f)) => return Some(f.to_owned()),
                Some(other) => panic!("client sent {other:?}"),
                None => {}
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(_)) => return None,
            }
        }
    }

    async fn action(&mut self) -> Frame {
        self.try_action(STEP)
            .await
            .expect("client sends an action in time")
    }

    async fn expect_action(&mut self, name: &str) -> Frame {
        let frame = self.action().await;
        assert_eq!(
            frame.get_str("Action").as_deref(),
            Some(name),
            "unexpected action {frame:?}"
        );
        frame
    }

    /// Banner, plain Login (checked), success reply.
    async fn login(&mut self) -> Frame {
        self.send(BANNER).await;
        let login = self.expect_action("Login").await;
        let reply = success(&login, "Message: Authentication accepted\r\n");
        self.send(reply).await;
        login
    }

    /// Answer the four resync list actions with empty lists.
    async fn answer_resync_empty(&mut self) {
        for name in [
            "ExtensionStateList",
            "DeviceStateList",
            "QueueStatus",
            "CoreShowChannels",
        ] {
            let action = self.expect_action(name).await;
            self.send(list_start(&action)).await;
            self.send(list_complete(&action, &format!("{name}Complete"), 0))
                .await;
        }
    }
}

fn id(frame: &Frame) -> String {
    frame.get_str("ActionID").expect("ActionID").into_owned()
}

fn success(action: &Frame, body: &str) -> String {
    format!(
        "Response: Success\r\nActionID: {}\r\n{body}\r\n",
        id(action)
    )
}

fn list_start(action: &Frame) -> String {
    success(action, "EventList: start\r\nMessage: Items will follow\r\n")
}

fn list_item(action: &Frame, event: &str, body: &str) -> String {
    format!("Event: {event}\r\nActionID: {}\r\n{body}\r\n", id(action))
}

fn list_complete(action: &Frame, event: &str, n: usize) -> String {
    format!(
        "Event: {event}\r\nActionID: {}\r\nEventList: Complete\r\nListItems: {n}\r\n\r\n",
        id(action)
    )
}

fn event(name: &str, body: &str) -> String {
    format!("Event: {name}\r\nPrivilege: call,all\r\n{body}\r\n")
}

fn config(port: u16) -> AmiClientConfig {
    let mut config = AmiClientConfig::new("127.0.0.1", port, "cti", "s3cret");
    config.auth = AuthMethod::Plain;
    config.ping_interval = Duration::from_secs(3600);
    config.ping_timeout = Duration::from_secs(2);
    config.action_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect_initial = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    config
}

/// A client connected to a fresh fake server, logged in and past its first (empty) resync:
/// the starting point of most tests. `tweak` adjusts the client configuration first.
async fn connected(tweak: impl FnOnce(&mut AmiClientConfig)) -> (FakeServer, Running, FakeConn) {
    let server = FakeServer::start().await;
    let mut config = config(server.port());
    tweak(&mut config);
    let mut client = start(config);
    let mut conn = server.accept().await;
    conn.login().await;
    client.expect_connected(1).await;
    conn.answer_resync_empty().await;
    assert!(matches!(client.update().await, AmiUpdate::Resynced { .. }));
    (server, client, conn)
}

/// A running client plus the means to stop it.
struct Running {
    handle: AmiClient,
    updates: mpsc::Receiver<AmiUpdate>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start(config: AmiClientConfig) -> Running {
    let (handle, updates, task) = client(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(task.run(async {
        let _ = stopped.await;
    }));
    Running {
        handle,
        updates,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn update(&mut self) -> AmiUpdate {
        timeout(STEP, self.updates.recv())
            .await
            .expect("update in time")
            .expect("client running")
    }

    async fn expect_connected(&mut self, session: u64) {
        match self.update().await {
            AmiUpdate::Connected { session: s, banner } => {
                assert_eq!(s, session);
                assert_eq!(banner, "Asterisk Call Manager/11.0.0");
            }
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    /// Event frames up to (not including) the next non-`Events` update, which is returned.
    async fn events_until_other(&mut self) -> (Vec<Frame>, AmiUpdate) {
        let mut frames = Vec::new();
        loop {
            match self.update().await {
                AmiUpdate::Events(batch) => frames.extend(batch),
                other => return (frames, other),
            }
        }
    }

    /// Collect exactly `n` event frames.
    async fn events(&mut self, n: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        while frames.len() < n {
            match self.update().await {
                AmiUpdate::Events(batch) => frames.extend(batch),
                other => panic!("expected events, got {other:?}"),
            }
        }
        assert_eq!(frames.len(), n, "{frames:?}");
        frames
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(STEP, self.task)
            .await
            .expect("client stops in time")
            .expect("client task did not panic");
    }
}

fn names(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            f.get_str("Event")
                .or_else(|| f.get_str("Response"))
                .unwrap_or_default()
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn plain_login_resync_and_stream_order() {
    let server = FakeServer::start().await;
    let mut config = config(server.port());
    config.events_mask = "call,agent,system".into();
    let mut client = start(config);
    let mut conn = server.accept().await;
    conn.send(BANNER).await;
    let login = conn.expect_action("Login").await;
    assert_eq!(login.get_str("Username").as_deref(), Some("cti"));
    assert_eq!(login.get_str("Secret").as_deref(), Some("s3cret"));
    assert_eq!(
        login.get_str("Events").as_deref(),
        Some("call,agent,system")
    );
    // FullyBooted in the same write as the login response must not be lost.
    let mut reply = success(&login, "Message: Authentication accepted\r\n");
    reply.push_str(&event("FullyBooted", "Status: Fully Booted\r\n"));
    conn.send(reply).await;
    client.expect_connected(1).await;

    // CoreShowChannels comes last, so that its snapshot is where Resynced is emitted.
    let extensions = conn.expect_action("ExtensionStateList").await;
    let devices = conn.expect_action("DeviceStateList").await;
    let queues = conn.expect_action("QueueStatus").await;
    let channels = conn.expect_action("CoreShowChannels").await;
    let mut wire = list_start(&extensions);
    wire += &list_item(
        &extensions,
        "ExtensionStatus",
        "Exten: 101\r\nStatus: 0\r\n",
    );
    wire += &list_complete(&extensions, "ExtensionStateListComplete", 1);
    // A list that fails resyncs as empty instead of killing the session.
    wire += &format!(
        "Response: Error\r\nActionID: {}\r\nMessage: Permission denied\r\n\r\n",
        id(&devices)
    );
    wire += &list_start(&queues);
    wire += &list_item(&queues, "QueueParams", "Queue: sales\r\n");
    // An event in the middle of a list is delivered in stream order.
    wire += &event("Newchannel", "Channel: Local/102@agents-2;1\r\n");
    wire += &list_item(
        &queues,
        "QueueMember",
        "Queue: sales\r\nName: Agent 101\r\n",
    );
    wire += &list_complete(&queues, "QueueStatusComplete", 2);
    wire += &event("Newstate", "ChannelState: 5\r\n");
    wire += &list_start(&channels);
    wire += &list_item(
        &channels,
        "CoreShowChannel",
        "Channel: Local/101@agents-1;1\r\n",
    );
    wire += &list_item(
        &channels,
        "CoreShowChannel",
        "Channel: Local/101@agents-1;2\r\n",
    );
    wire += &list_complete(&channels, "CoreShowChannelsComplete", 2);
    wire += &event("Hangup", "Cause: 16\r\n");
    // Split the script at awkward places to exercise the client's buffering.
    for piece in wire.as_bytes().chunks(37) {
        conn.send(piece).await;
    }

    let (before, update) = client.events_until_other().await;
    assert_eq!(names(&before), ["FullyBooted", "Newchannel", "Newstate"]);
    match update {
        AmiUpdate::Resynced {
            session,
            channels,
            queue_status,
            device_states,
            extension_states,
        } => {
            assert_eq!(session, 1);
            assert_eq!(names(&channels), ["CoreShowChannel", "CoreShowChannel"]);
            assert_eq!(
                channels[1].get_str("Channel").as_deref(),
                Some("Local/101@agents-1;2")
            );
            assert_eq!(names(&queue_status), ["QueueParams", "QueueMember"]);
            assert!(device_states.is_empty());
            assert_eq!(names(&extension_states), ["ExtensionStatus"]);
        }
        other => panic!("expected Resynced, got {other:?}"),
    }
    let after = client.events(1).await;
    assert_eq!(names(&after), ["Hangup"]);
    let metrics = client.handle.metrics();
    assert_eq!(AmiMetrics::get(&metrics.frames_delivered), 4);
    assert_eq!(AmiMetrics::get(&metrics.sessions), 1);
    client.stop().await;
    // A clean shutdown says goodbye.
    let logoff = conn.action().await;
    assert_eq!(logoff.get_str("Action").as_deref(), Some("Logoff"));
}

#[tokio::test]
async fn md5_challenge_login() {
    let server = FakeServer::start().await;
    let mut config = config(server.port());
    config.auth = AuthMethod::Md5;
    let mut client = start(config);
    let mut conn = server.accept().await;
    conn.send(BANNER).await;
    let challenge = conn.expect_action("Challenge").await;
    assert_eq!(challenge.get_str("AuthType").as_deref(), Some("MD5"));
    conn.send(success(&challenge, "Challenge: 840592417\r\n"))
        .await;
    let login = conn.expect_action("Login").await;
    let mut md5 = Md5::new();
    md5.update(b"840592417s3cret");
    let expected = hex::encode(md5.finalize());
    assert_eq!(login.get_str("AuthType").as_deref(), Some("MD5"));
    assert_eq!(login.get_str("Key").as_deref(), Some(expected.as_str()));
    assert_eq!(
        login.get("Secret"),
        None,
        "the secret never crosses the wire"
    );
    conn.send(success(&login, "Message: Authentication accepted\r\n"))
        .await;
    client.expect_connected(1).await;
    conn.answer_resync_empty().await;
    match client.update().await {
        AmiUpdate::Resynced { channels, .. } => assert!(channels.is_empty()),
        other => panic!("expected Resynced, got {other:?}"),
    }
    client.stop().await;
}

#[tokio::test]
async fn authentication_failure_is_reported_and_retried() {
    let server = FakeServer::start().await;
    let mut client = start(config(server.port()));
    let mut conn = server.accept().await;
    conn.send(BANNER).await;
    let login = conn.expect_action("Login").await;
    conn.send(format!(
        "Response: Error\r\nActionID: {}\r\nMessage: Authentication failed\r\n\r\n",
        id(&login)
    ))
    .await;
    drop(conn);
    match client.update().await {
        AmiUpdate::ConnectFailed { reason, retry_in } => {
            assert_eq!(
                reason,
                DisconnectReason::AuthenticationFailed {
                    username: "cti".into(),
                    message: "Authentication failed".into()
                }
            );
            assert!(
                reason.to_string().contains("authentication failed"),
                "{reason}"
            );
            assert!(retry_in <= Duration::from_millis(100));
        }
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    // It tries again, and a fixed password then works.
    let mut conn = server.accept().await;
    conn.login().await;
    client.expect_connected(1).await;
    assert!(AmiMetrics::get(&client.handle.metrics().reconnects) >= 1);
    client.stop().await;
}

#[tokio::test]
async fn missing_pong_is_detected_and_the_client_reconnects() {
    let (server, mut client, mut conn) = connected(|config| {
        config.ping_interval = Duration::from_millis(100);
        config.ping_timeout = Duration::from_millis(300);
    })
    .await;
    let ping = conn.expect_action("Ping").await;
    conn.send(success(&ping, "Ping: Pong\r\nTimestamp: 1.0\r\n"))
        .await;
    // The server now goes silent but keeps the socket open: a half-open connection.
    let started = tokio::time::Instant::now();
    let ping = conn.expect_action("Ping").await;
    assert!(ping.get("ActionID").is_some());
    match client.update().await {
        AmiUpdate::Disconnected { session, reason } => {
            assert_eq!(session, 1);
            assert_eq!(
                reason,
                DisconnectReason::PingTimeout(Duration::from_millis(300))
            );
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut conn2 = server.accept().await;
    conn2.login().await;
    client.expect_connected(2).await;
    drop(conn);
    client.stop().await;
}

#[tokio::test]
async fn reconnect_after_drop_resyncs_again() {
    let server = FakeServer::start().await;
    let mut client = start(config(server.port()));
    for session in 1..=3u64 {
        let mut conn = server.accept().await;
        conn.login().await;
        client.expect_connected(session).await;
        conn.answer_resync_empty().await;
        match client.update().await {
            AmiUpdate::Resynced { session: s, .. } => assert_eq!(s, session),
            other => panic!("expected Resynced, got {other:?}"),
        }
        conn.send(event("Newchannel", &format!("Uniqueid: {session}\r\n")))
            .await;
        let frames = client.events(1).await;
        assert_eq!(
            frames[0].get_str("Uniqueid").as_deref(),
            Some(session.to_string().as_str())
        );
        drop(conn);
        match client.update().await {
            AmiUpdate::Disconnected { session: s, reason } => {
                assert_eq!(s, session);
                assert_eq!(reason, DisconnectReason::Closed);
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
    let metrics = client.handle.metrics();
    assert_eq!(AmiMetrics::get(&metrics.sessions), 3);
    assert!(AmiMetrics::get(&metrics.reconnects) >= 2);
    client.stop().await;
}

#[tokio::test]
async fn originate_is_async_and_never_resent_after_a_reconnect() {
    let (server, mut client, mut conn) = connected(|_| {}).await;

    let handle = client.handle.clone();
    let originate = tokio::spawn(async move {
        handle
            .originate(
                Action::new("Originate")
                    .header("Channel", "Local/101@agents/nm")
                    .header("Context", "outbound")
                    .header("Exten", "+15550001111")
                    .header("Priority", "1")
                    .header("Async", "false"),
            )
            .await
    });
    let sent = conn.expect_action("Originate").await;
    let async_values: Vec<&[u8]> = sent.get_all("Async").collect();
    assert_eq!(async_values, [&b"true"[..]], "always Async: true, once");
    conn.send(success(&sent, "Message: Originate successfully queued\r\n"))
        .await;
    // The connection drops before OriginateResponse.
    drop(conn);
    let res = timeout(STEP, originate)
        .await
        .expect("originate settles")
        .expect("no panic");
    let err = res.expect_err("outcome unknown");
    assert!(matches!(err, ActionError::OutcomeUnknown), "{err:?}");
    assert!(err.to_string().contains("check the phone"));
    assert!(!err.is_retryable());

    match client.update().await {
        AmiUpdate::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let mut conn = server.accept().await;
    conn.login().await;
    client.expect_connected(2).await;
    conn.answer_resync_empty().await;
    assert!(matches!(client.update().await, AmiUpdate::Resynced { .. }));
    // Nothing else reaches the server: in particular no second Originate.
    while let Some(action) = conn.try_action(Duration::from_millis(700)).await {
        assert_ne!(
            action.get_str("Action").as_deref(),
            Some("Originate"),
            "Originate re-sent after reconnect"
        );
    }
    client.stop().await;
}

#[tokio::test]
async fn originate_waits_for_its_originate_response() {
    let (_server, mut client, mut conn) = connected(|_| {}).await;

    let handle = client.handle.clone();
    let originate = tokio::spawn(async move {
        // Through send_action too: an Originate is always the async kind.
        handle
            .send_action(
                Action::new("Originate")
                    .header("Channel", "Local/101@agents/nm")
                    .header("Application", "Wait")
                    .header("Data", "5"),
            )
            .await
    });
    let sent = conn.expect_action("Originate").await;
    assert_eq!(sent.get_str("Async").as_deref(), Some("true"));
    let mut wire = success(&sent, "Message: Originate successfully queued\r\n");
    wire += &event("Newchannel", "Channel: Local/101@agents-00000001;1\r\n");
    wire += &format!(
        "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {}\r\nResponse: Failure\r\nReason: 3\r\n\r\n",
        id(&sent)
    );
    conn.send(wire).await;
    let res = timeout(STEP, originate)
        .await
        .expect("settles")
        .expect("no panic");
    let frame = res.expect("OriginateResponse");
    assert_eq!(frame.event(), Some(&b"OriginateResponse"[..]));
    assert_eq!(frame.get_str("Response").as_deref(), Some("Failure"));
    assert_eq!(frame.get_str("Reason").as_deref(), Some("3"));
    // The event stream sees it too, in order.
    let frames = client.events(2).await;
    assert_eq!(names(&frames), ["Newchannel", "OriginateResponse"]);
    client.stop().await;
}

#[tokio::test]
async fn action_timeout_keeps_the_session_and_late_replies_are_dropped() {
    let (_server, mut client, mut conn) = connected(|config| {
        config.action_timeout = Duration::from_millis(300);
    })
    .await;

    let handle = client.handle.clone();
    let slow = tokio::spawn(async move { handle.send_action(Action::new("Status")).await });
    let status = conn.expect_action("Status").await;
    let res = timeout(STEP, slow)
        .await
        .expect("settles")
        .expect("no panic");
    assert!(
        matches!(res, Err(ActionError::Timeout(d)) if d == Duration::from_millis(300)),
        "{res:?}"
    );
    // The late reply is not mistaken for an event; the session still works.
    conn.send(success(&status, "Message: late\r\n")).await;
    let handle = client.handle.clone();
    let ping = tokio::spawn(async move { handle.send_action(Action::new("Ping")).await });
    let ping_action = conn.expect_action("Ping").await;
    conn.send(success(&ping_action, "Ping: Pong\r\n")).await;
    let pong = timeout(STEP, ping)
        .await
        .expect("settles")
        .expect("no panic");
    assert_eq!(pong.expect("pong").get_str("Ping").as_deref(), Some("Pong"));
    conn.send(event("Hangup", "")).await;
    let frames = client.events(1).await;
    assert_eq!(names(&frames), ["Hangup"]);
    assert_eq!(AmiMetrics::get(&client.handle.metrics().action_timeouts), 1);
    client.stop().await;
}

#[tokio::test]
async fn rejected_action_carries_the_message() {
    let server = FakeServer::start().await;
    let mut client = start(config(server.port()));
    let mut conn = server.accept().await;
    conn.login().await;
    client.expect_connected(1).await;
    conn.answer_resync_empty().await;
    let handle = client.handle.clone();
    let hangup = tokio::spawn(async move {
        handle
            .send_action(Action::new("Hangup").header("Channel", "PJSIP/nope"))
            .await
    });
    let sent = conn.expect_action("Hangup").await;
    conn.send(format!(
        "Response: Error\r\nActionID: {}\r\nMessage: No such channel\r\n\r\n",
        id(&sent)
    ))
    .await;
    match timeout(STEP, hangup)
        .await
        .expect("settles")
        .expect("no panic")
    {
        Err(ActionError::Rejected { message, response }) => {
            assert_eq!(message, "No such channel");
            assert_eq!(response.response(), Some(&b"Error"[..]));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Header injection never reaches the wire.
    let res = client
        .handle
        .send_action(Action::new("Hangup").header("Channel", "x\r\n\r\nAction: Originate"))
        .await;
    assert!(matches!(res, Err(ActionError::InvalidAction(_))), "{res:?}");
    assert!(conn.try_action(Duration::from_millis(200)).await.is_none());
    client.stop().await;
}

#[tokio::test]
async fn list_action_collects_items_while_live_events_flow() {
    let (_server, mut client, mut conn) = connected(|_| {}).await;

    let handle = client.handle.clone();
    let list = tokio::spawn(async move { handle.send_list_action(Action::new("Status")).await });
    let sent = conn.expect_action("Status").await;
    let mut wire = list_start(&sent);
    wire += &list_item(&sent, "Status", "Channel: A\r\n");
    wire += &event("Newchannel", "Channel: live\r\n");
    wire += &list_item(&sent, "Status", "Channel: B\r\n");
    wire += &list_complete(&sent, "StatusComplete", 2);
    conn.send(wire).await;
    let list = timeout(STEP, list)
        .await
        .expect("settles")
        .expect("no panic")
        .expect("list");
    let channels: Vec<String> = list
        .items
        .iter()
        .map(|f| f.get_str("Channel").unwrap_or_default().into_owned())
        .collect();
    assert_eq!(channels, ["A", "B"]);
    assert_eq!(
        list.complete.as_ref().and_then(|c| c.event()),
        Some(&b"StatusComplete"[..])
    );
    assert_eq!(list.response.get_str("EventList").as_deref(), Some("start"));
    let frames = client.events(1).await;
    assert_eq!(frames[0].get_str("Channel").as_deref(), Some("live"));
    client.stop().await;
}

#[tokio::test]
async fn event_filter_drops_named_events_only() {
    let (_server, mut client, mut conn) = connected(|config| {
        config.drop_events = vec!["varset".into(), "Newexten".into()];
    })
    .await;
    let mut wire = event("VarSet", "Variable: A\r\n");
    wire += &event("Newchannel", "");
    wire += &event("Newexten", "");
    wire += &event("VarSet", "Variable: B\r\n");
    wire += &event("Hangup", "");
    conn.send(wire).await;
    let frames = client.events(2).await;
    assert_eq!(names(&frames), ["Newchannel", "Hangup"]);
    let metrics = client.handle.metrics();
    assert_eq!(AmiMetrics::get(&metrics.frames_dropped_by_filter), 3);
    assert!(AmiMetrics::get(&metrics.events_in) >= 5);
    client.stop().await;
}

#[tokio::test]
#[allow(clippy::manual_is_multiple_of)]
async fn slow_consumer_loses_nothing() {
    const N: usize = 60_000;
    let (_server, mut client, mut conn) = connected(|config| {
        config.channel_capacity = 1;
        config.read_size = 4096;
    })
    .await;
    let writer = tokio::spawn(async move {
        let mut wire = String::new();
        for seq in 0..N {
            wire += &event("Test", &format!("Seq: {seq}\r\n"));
            if wire.len() > 200_000 {
                conn.send(std::mem::take(&mut wire)).await;
            }
        }
        conn.send(wire).await;
        conn
    });
    let mut seen = 0usize;
    let mut batches = 0usize;
    while seen < N {
        match client.update().await {
            AmiUpdate::Events(batch) => {
                for frame in batch {
                    assert_eq!(
                        frame.get_str("Seq").as_deref(),
                        Some(seen.to_string().as_str()),
                        "in order, none missing"
                    );
                    seen += 1;
                }
                batches += 1;
                // (Not `is_multiple_of`: the workspace supports Rust 1.85.)
                if batches % 20 == 0 {
                    // A slow consumer: the client must wait, not drop.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            other => panic!("expected events, got {other:?}"),
        }
    }
    let _conn = timeout(STEP, writer)
        .await
        .expect("writer done")
        .expect("no panic");
    assert_eq!(seen, N);
    assert_eq!(
        AmiMetrics::get(&client.handle.metrics().frames_delivered),
        N as u64
    );
    client.stop().await;
}

#[tokio::test]
async fn actions_fail_fast_while_disconnected() {
    // A port with nobody listening.
    let port = {
        let server = FakeServer::start().await;
        server.port()
    };
    let mut client = start(config(port));
    match client.update().await {
        AmiUpdate::ConnectFailed {
            reason: DisconnectReason::Connect { .. },
            ..
        } => {}
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    let res = client.handle.send_action(Action::new("Ping")).await;
    assert!(matches!(res, Err(ActionError::NotConnected)), "{res:?}");
    let res = client
        .handle
        .originate(Action::new("Originate").header("Channel", "Local/1@x"))
        .await;
    assert!(matches!(res, Err(ActionError::NotConnected)), "{res:?}");
    client.stop().await;
}

#[tokio::test]
async fn run_ends_when_the_consumer_goes_away() {
    let server = FakeServer::start().await;
    let (handle, updates, task) = client(config(server.port()));
    let task = tokio::spawn(task.run(std::future::pending::<()>()));
    let mut conn = server.accept().await;
    conn.login().await;
    conn.answer_resync_empty().await;
    drop(updates);
    conn.send(event("Newchannel", "")).await;
    timeout(STEP, task)
        .await
        .expect("run returns")
        .expect("no panic");
    let res = handle.send_action(Action::new("Ping")).await;
    assert!(matches!(res, Err(ActionError::ClientStopped)), "{res:?}");
}
