//! Attended transfer end to end: a panel's `transfer` command (kind `attended`) becomes an AMI
//! `Atxfer` on the agent's leg, the simulated Asterisk plays the real captured attended-transfer
//! sequence from that moment, the tracker records the transfer and the panels are told.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pbx_simulator::{CallParams, Scenario, Simulator, SimulatorConfig, TransferTrigger};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_of(socket: &mut Socket, kind: &str, within: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` message within {within:?}"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attended_transfer_from_the_panel_plays_on_the_pbx_and_reaches_both_panels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let mut tokens = Vec::new();
    for (login, ext) in [("anna", "101"), ("boris", "102")] {
        let id = storage
            .create_user(
                &storage::NewUser {
                    login: login.into(),
                    display_name: login.into(),
                    role: storage::Role::Agent,
                    password_hash: None,
                    extensions: vec![ext.into()],
                    queues: vec![],
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        tokens.push(
            server::auth::issue_api_token(&storage, id, "test")
                .await
                .unwrap()
                .0,
        );
    }
    storage.close().await;

    let sim = Simulator::start(SimulatorConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("kommutator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\nurl = \"sqlite://{}\"\n\
             [[pbx.asterisk]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\n\
             username = \"cti\"\nsecret = \"cti-secret\"\n",
            db.display(),
            sim.local_addr().port()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kommutator"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.handle().sessions() == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never logged in to the PBX"
        );
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sockets = Vec::new();
    for token in &tokens {
        let mut request = format!("ws://127.0.0.1:{port}/api/v1/ws")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        next_of(&mut socket, "snapshot", Duration::from_secs(5)).await;
        sockets.push(socket);
    }
    let (anna, boris) = sockets.split_at_mut(1);
    let (anna, boris) = (&mut anna[0], &mut boris[0]);

    sim.handle()
        .start_call(
            Scenario::AttendedTransfer,
            CallParams {
                transfer: TransferTrigger::AwaitAction,
                ..CallParams::default()
            },
        )
        .unwrap();
    let answered = next_of(anna, "answered", Duration::from_secs(10)).await;
    assert_eq!(answered["agent"], "101", "{answered}");
    let call_id = answered["call"]["id"].as_str().unwrap().to_owned();
    let command = serde_json::json!({
        "type": "transfer", "id": "t1", "call_id": call_id,
        "to": {"agent": "boris"}, "kind": "attended",
    });
    anna.send(Message::Text(command.to_string().into()))
        .await
        .unwrap();
    let result = next_of(anna, "command_result", Duration::from_secs(10)).await;
    assert_eq!(result["ok"], true, "{result}");
    let sent: Vec<String> = sim
        .handle()
        .action_log()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(
        sent.iter().any(|a| a.eq_ignore_ascii_case("atxfer")),
        "{sent:?}"
    );
    // The rest of the capture: consultation with 102, 101 hangs up, the bridges merge.
    let transferred = next_of(boris, "transferred", Duration::from_secs(20)).await;
    assert_eq!(transferred["call"]["id"], call_id.as_str(), "{transferred}");
    assert_eq!(transferred["to"], "102", "{transferred}");
    assert_eq!(transferred["from"], "101", "{transferred}");
    // The tracker infers the move from the bridges first (the first frame says `redirect`) and
    // learns it was attended from the later `AttendedTransfer` event: the panels are told with
    // a second frame for the same transfer, and the stored record has it.
    assert_eq!(transferred["kind"], "redirect", "{transferred}");
    let explained = next_of(boris, "transferred", Duration::from_secs(20)).await;
    assert_eq!(explained["kind"], "attended", "{explained}");
    assert_eq!(explained["to"], "102", "{explained}");
    let ended = next_of(boris, "ended", Duration::from_secs(20)).await;
    assert_eq!(ended["call"]["agent"], serde_json::Value::Null, "{ended}");
    let body = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut body = String::new();
        for _ in 0..50 {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let request = format!(
                "GET /api/v1/calls/{call_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                tokens[0]
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            body.clear();
            stream.read_to_string(&mut body).await.unwrap();
            if body.contains("\"attended\"") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        body
    };
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("\"attended\"") && body.contains("102"),
        "the stored call records the attended transfer to 102: {body}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
