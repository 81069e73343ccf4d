//! Protocol tests of `/api/v1/ws` over a real socket: agents receive only their own calls,
//! unauthenticated sockets and API calls are refused, and a reconnect with `since` replays
//! what was missed.

use std::sync::Arc;
use std::time::Duration;

use cti_core::{CallId, CallRecord, Direction, Effect, Extension, PhoneNumber, Timestamp};
use futures_util::{SinkExt, StreamExt};
use server::cti::HubItem;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Harness {
    addr: std::net::SocketAddr,
    state: server::AppState,
    cookies: Vec<(String, String)>,
}

async fn harness() -> Harness {
    harness_with(0).await
}

/// The harness with `extra` more agents (`agent-N` on extension 2000+N, never logged in).
async fn harness_with(extra: usize) -> Harness {
    let storage = storage::Storage::open_in_memory().await.unwrap();
    storage.migrate().await.unwrap();
    let now = chrono::Utc::now();
    for i in 0..extra {
        storage
            .create_user(
                &storage::NewUser {
                    login: format!("agent-{i}"),
                    display_name: format!("Agent {i}"),
                    role: storage::Role::parse("agent").unwrap(),
                    password_hash: None,
                    extensions: vec![format!("{}", 2000 + i)],
                    queues: vec![],
                },
                now,
            )
            .await
            .unwrap();
    }
    let mut cookies = Vec::new();
    for (login, ext, role) in [
        ("anna", "101", "agent"),
        ("boris", "102", "agent"),
        ("olga", "", "supervisor"),
    ] {
        let id = storage
            .create_user(
                &storage::NewUser {
                    login: login.into(),
                    display_name: login.into(),
                    role: storage::Role::parse(role).unwrap(),
                    password_hash: None,
                    extensions: if ext.is_empty() {
                        vec![]
                    } else {
                        vec![ext.into()]
                    },
                    queues: vec![],
                },
                now,
            )
            .await
            .unwrap();
        let session = format!("{:064x}", id.0);
        storage
            .create_session(&storage::NewSession {
                id_hash: server::auth::hash_secret(&session),
                user_id: id,
                csrf_token: "csrf".into(),
                created_at: now,
                expires_at: now + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
        cookies.push((login.to_owned(), session));
    }
    let state = server::AppState::new(storage, Arc::new(server::Metrics::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app_state = state.clone();
    tokio::spawn(async move { server::run(listener, app_state, std::future::pending()).await });
    Harness {
        addr,
        state,
        cookies,
    }
}

impl Harness {
    async fn connect(&self, login: &str, since: Option<u64>) -> Socket {
        let session = &self.cookies.iter().find(|(l, _)| l == login).unwrap().1;
        let query = since.map_or(String::new(), |s| format!("?since={s}"));
        let mut request = format!("ws://{}/api/v1/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "cookie",
            format!("kommutator_session={session}").parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
    }

    async fn ring(&self, call: &str, number: &str, agent: &str) {
        let record = record(call, number);
        let items = vec![
            HubItem::Effect(record.started_at, Effect::CallStarted(Box::new(record))),
            HubItem::Effect(
                Timestamp::from_secs(1),
                Effect::AgentRinging {
                    call_id: CallId::new(call),
                    agent: Extension::new(agent),
                    queue: None,
                },
            ),
        ];
        self.state
            .cti
            .publish("pbx", server::cti::wall_micros(), items)
            .await;
    }
}

fn record(call: &str, number: &str) -> CallRecord {
    CallRecord {
        call_id: CallId::new(call),
        direction: Direction::Inbound,
        customer_number: Some(PhoneNumber {
            text: number.to_owned(),
            kind: cti_core::NumberKind::E164,
        }),
        customer_name: Some("<img src=x onerror=alert(1)>".into()),
        line: None,
        started_at: Timestamp::from_secs(1),
        answered_at: None,
        ended_at: None,
        outcome: None,
        answered_by: None,
        agent: None,
        originator: None,
        agents_rang: vec![],
        queue: None,
        queues: vec![],
        wait_us: 0,
        queue_wait_us: 0,
        talk_us: 0,
        hold_us: 0,
        transfers: vec![],
        segments: vec![],
        agent_talk: vec![],
        recording: None,
        application: None,
        degraded: false,
        short_abandon: false,
        hangup_cause: None,
        linkedids: vec![call.to_owned()],
    }
}

/// Reads JSON messages until one of `kind` arrives (or fails after 3 s).
async fn next_of(socket: &mut Socket, kind: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` message within 3 s"))
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = frame {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}

/// Every text message that arrives within `wait`.
async fn drain(socket: &mut Socket, wait: Duration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(wait, socket.next()).await {
        if let Message::Text(text) = frame {
            out.push(serde_json::from_str(text.as_str()).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn an_agent_never_receives_another_agents_call() {
    let h = harness().await;
    let mut anna = h.connect("anna", None).await;
    let mut boris = h.connect("boris", None).await;
    let mut olga = h.connect("olga", None).await;
    for socket in [&mut anna, &mut boris, &mut olga] {
        next_of(socket, "snapshot").await;
    }
    h.ring("call-b", "+15551230005", "102").await;
    let pop = next_of(&mut boris, "ringing").await;
    assert_eq!(pop["call"]["id"], "call-b");
    assert_eq!(pop["agent"], "102");
    assert_eq!(
        pop["call"]["caller_name"], "<img src=x onerror=alert(1)>",
        "sent as data, unchanged"
    );
    assert_eq!(
        next_of(&mut olga, "ringing").await["call"]["id"],
        "call-b",
        "supervisors see all"
    );
    let seen = drain(&mut anna, Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|m| !m.to_string().contains("call-b")),
        "anna received boris's call: {seen:?}"
    );
    // Commands on another agent's call are refused as if it did not exist.
    anna.send(Message::Text(
        r#"{"type":"hangup","id":"h1","call_id":"call-b"}"#.into(),
    ))
    .await
    .unwrap();
    let result = next_of(&mut anna, "command_result").await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "not_found");
}

#[tokio::test]
async fn unauthenticated_sockets_and_api_calls_are_refused() {
    let h = harness().await;
    let url = format!("ws://{}/api/v1/ws", h.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!(
            "an unauthenticated socket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let mut forged = url.into_client_request().unwrap();
    forged.headers_mut().insert(
        "cookie",
        format!("kommutator_session={}", "f".repeat(64))
            .parse()
            .unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(forged).await.is_err());
    // A socket opened by another site's page with a valid cookie is refused too.
    let session = &h.cookies[0].1;
    let mut cross_site = format!("ws://{}/api/v1/ws", h.addr)
        .into_client_request()
        .unwrap();
    cross_site.headers_mut().insert(
        "cookie",
        format!("kommutator_session={session}").parse().unwrap(),
    );
    cross_site
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(cross_site).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "a cross-site socket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    for path in [
        "/api/v1/calls",
        "/api/v1/cti/agents",
        "/api/v1/cti/missed",
        "/api/v1/auth/me",
    ] {
        let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 401"), "{path}: {response}");
    }
}

#[tokio::test]
async fn resume_after_reconnect_replays_missed_events() {
    let h = harness().await;
    let mut boris = h.connect("boris", None).await;
    let snapshot = next_of(&mut boris, "snapshot").await;
    h.ring("call-1", "+15551230001", "102").await;
    let first = next_of(&mut boris, "ringing").await;
    let last_seen = first["seq"].as_u64().unwrap();
    assert!(last_seen > snapshot["seq"].as_u64().unwrap());
    boris.close(None).await.unwrap();
    drop(boris);
    // The laptop sleeps: two calls ring meanwhile.
    h.ring("call-2", "+15551230002", "102").await;
    h.ring("call-3", "+15551230003", "102").await;
    let mut boris = h.connect("boris", Some(last_seen)).await;
    let hello = next_of(&mut boris, "hello").await;
    assert_eq!(hello["resumed"], true);
    let replayed: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let pop = next_of(&mut boris, "ringing").await;
            assert!(pop["seq"].as_u64().unwrap() > last_seen);
            ids.push(pop["call"]["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    assert_eq!(replayed, ["call-2", "call-3"]);
    // A position the server no longer has (or never had) gets a fresh snapshot instead.
    let mut stale = h.connect("boris", Some(1)).await;
    assert_eq!(next_of(&mut stale, "hello").await["resumed"], false);
    let snapshot = next_of(&mut stale, "snapshot").await;
    assert_eq!(snapshot["calls"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_large_team_arrives_in_snapshot_pieces() {
    let h = harness_with(150).await;
    // The hub loads the users in the background: reconnect until it knows them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (mut olga, first) = loop {
        let mut olga = h.connect("olga", None).await;
        let first = next_of(&mut olga, "snapshot").await;
        if first["more"] == true || std::time::Instant::now() > deadline {
            break (olga, first);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut logins: Vec<String> = Vec::new();
    let mut frame = first;
    let mut pieces = 1;
    loop {
        let agents = frame["agents"].as_array().unwrap();
        assert!(agents.len() <= 64, "a piece holds at most 64 agents");
        assert!(frame.to_string().len() < 20_000, "pieces stay small");
        logins.extend(
            agents
                .iter()
                .map(|a| a["login"].as_str().unwrap().to_owned()),
        );
        if frame["more"] == false {
            break;
        }
        frame = next_of(&mut olga, "snapshot_more").await;
        pieces += 1;
    }
    logins.sort();
    logins.dedup();
    assert_eq!(logins.len(), 152, "every agent once: 150, anna and boris");
    assert_eq!(pieces, 3);
}
