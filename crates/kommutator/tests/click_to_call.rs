//! Click-to-call started outside the panel, through the real binary and the simulated PBX.
//!
//! Issue 5, "the ONEXTERNALCALLSTART event from Bitrix24 starts a click-to-call": a user clicks
//! a number in the (fake) portal, Bitrix24 registers the call itself and posts the event;
//! Kommutator rings the agent's phone first and then dials the number (the simulator records
//! the Originate), and the call's end finishes *that* CALL_ID, never registering a second call,
//! also when the server is killed mid-call and restarted. A repeated event places no second
//! call, before or after the restart; a click the PBX cannot place is closed in the CRM as
//! failed.
//!
//! And the same for any integration over REST (`POST /api/v1/cti/dial` with an API token): the
//! answer carries the id the call then has everywhere.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::outage::{free_port, start_server, start_simulator_at, tail, write_config};
use pbx_simulator::{OriginateRecord, Simulator};
use serde_json::Value;
use test_support::bitrix24::{FakeBitrix24, FakeBitrix24Config, FakeCall};

const LOG_LEVEL: &str = "warn,kommutator=info,crm_bitrix24=info";
const TOKEN: &str = "51610fefc120afg4b628cc82d6298cce";
/// The Bitrix24 user who clicks, mapped to extension 101.
const USER: u64 = 1269;

fn event(call_id: &str, phone: &str, token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("event", "ONEXTERNALCALLSTART")
        .append_pair("event_handler_id", "1055")
        .append_pair("data[PHONE_NUMBER]", phone)
        .append_pair("data[PHONE_NUMBER_INTERNATIONAL]", phone)
        .append_pair("data[EXTENSION]", "")
        .append_pair("data[USER_ID]", &USER.to_string())
        .append_pair("data[CALL_LIST_ID]", "0")
        .append_pair("data[LINE_NUMBER]", "74951112233")
        .append_pair("data[IS_MOBILE]", "0")
        .append_pair("data[CALL_ID]", call_id)
        .append_pair("data[CRM_ENTITY_TYPE]", "CONTACT")
        .append_pair("data[CRM_ENTITY_ID]", "797")
        .append_pair("ts", "1773236988")
        .append_pair("auth[domain]", "acme.bitrix24.ru")
        .append_pair("auth[application_token]", token)
        .finish()
}

/// A user clicks `phone` in the portal: the fake registers the call and its event is posted
/// to Kommutator, which must accept it. Returns the CRM's `CALL_ID`.
fn click(fake: &FakeBitrix24, addr: &str, phone: &str) -> String {
    let call_id = fake.start_click_to_call(USER, phone);
    assert_eq!(
        post_event(addr, &event(&call_id, phone, TOKEN)),
        (200, "ok\n".to_owned())
    );
    call_id
}

fn post_event(addr: &str, body: &str) -> (u16, String) {
    let res = common::request(
        addr,
        "POST",
        "/hooks/bitrix24/b24",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body,
    );
    (res.status, res.body)
}

/// Polls `check` every 100 ms until it gives a value or `timeout` passes.
async fn wait_for<T>(
    what: &str,
    log: &Path,
    timeout: Duration,
    check: impl Fn() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server log:\n{}",
            tail(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn originates(sim: &Simulator) -> Vec<OriginateRecord> {
    sim.handle().originate_log()
}

/// The fake's record of `call_id` once it is finished.
fn finished(fake: &FakeBitrix24, call_id: &str) -> Option<FakeCall> {
    fake.calls()
        .into_iter()
        .find(|c| c.call_id == call_id && c.finish.is_some())
}

/// Waits until the simulator logged in a client and that client resynced (so the AMI
/// connection is up); `sessions_before` resyncs seen earlier do not count.
async fn wait_connected(sim: &Simulator, log: &Path, resyncs_before: usize) {
    wait_for(
        "the AMI client to connect",
        log,
        Duration::from_secs(20),
        || {
            let resyncs = sim
                .handle()
                .action_log()
                .iter()
                .filter(|a| a.action.eq_ignore_ascii_case("CoreShowChannels"))
                .count();
            (resyncs > resyncs_before).then_some(resyncs)
        },
    )
    .await;
}

/// How the agents' phones are dialled in the simulator's dialplan.
const CTI: &str =
    "[cti]\nphone_channel = \"Local/{extension}@agents/nm\"\ndial_context = \"outbound\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_in_bitrix24_rings_the_agent_and_finishes_the_crm_call_once() {
    let fake = FakeBitrix24::start(FakeBitrix24Config::default())
        .await
        .expect("fake portal");
    // Real time, so that a call lasts long enough (6.5 s) to kill the server in the middle.
    let sim = start_simulator_at(1.0).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let config = dir.path().join("kommutator.toml");
    let crm = format!(
        "[[crm.bitrix24]]\nname = \"b24\"\nmode = \"webhook\"\nwebhook_url = \"{}\"\ndefault_user_id = 1\n\
         users = {{ \"101\" = {USER} }}\napplication_token = \"{TOKEN}\"\ntimeout_secs = 2\n",
        fake.webhook_url()
    );
    write_config(
        &config,
        &addr,
        &db,
        sim.local_addr().port(),
        &format!("{CTI}{crm}"),
    );
    let log = dir.path().join("server.log");
    let mut server = start_server(&config, &log, LOG_LEVEL);
    wait_connected(&sim, &log, 0).await;

    // A forged event (wrong token) is refused and places nothing.
    let (status, _) = post_event(&addr, &event("externalCall.forged", "+79160000000", "nope"));
    assert_eq!(status, 403);

    // 1. A click, delivered twice as Bitrix24 may do: one call.
    let phone = "+79161234567";
    let first = fake.start_click_to_call(USER, phone);
    let body = event(&first, phone, TOKEN);
    assert_eq!(post_event(&addr, &body), (200, "ok\n".to_owned()));
    assert_eq!(post_event(&addr, &body), (200, "duplicate\n".to_owned()));
    let placed = wait_for("the first originate", &log, Duration::from_secs(10), || {
        originates(&sim).first().cloned()
    })
    .await;
    assert_eq!(
        placed.channel, "Local/101@agents/nm",
        "agent first: {placed:?}"
    );
    assert_eq!(placed.exten.as_deref(), Some(phone));
    assert_eq!(placed.context.as_deref(), Some("outbound"));
    assert!(placed.is_async);
    let first_call_id = placed
        .channel_id
        .clone()
        .expect("the call id is chosen up front");
    let crm = wait_for(
        "the first call's finish",
        &log,
        Duration::from_secs(30),
        || finished(&fake, &first),
    )
    .await;
    assert_eq!(crm.finishes, 1);
    assert_eq!(
        crm.registers, 0,
        "Bitrix24 registered it; Kommutator must not"
    );
    let finish = crm.finish.expect("finished");
    assert_eq!(
        finish.user,
        USER.to_string(),
        "credited to the user who clicked"
    );
    assert_eq!(finish.status_code, "200");
    assert!(finish.duration > 0, "{finish:?}");

    // 2. A second click; the server is killed while the call is up and restarted.
    let second = click(&fake, &addr, "+79167654321");
    let second_call_id = wait_for(
        "the second originate",
        &log,
        Duration::from_secs(10),
        || originates(&sim).get(1).and_then(|o| o.channel_id.clone()),
    )
    .await;
    assert_ne!(second_call_id, first_call_id);
    wait_for(
        "the second call to be answered",
        &log,
        Duration::from_secs(10),
        || (sim.handle().active_calls() == 1).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sim.handle().active_calls(),
        1,
        "the kill must land mid-call"
    );
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    let resyncs = sim
        .handle()
        .action_log()
        .iter()
        .filter(|a| a.action.eq_ignore_ascii_case("CoreShowChannels"))
        .count();
    server = start_server(&config, &log, LOG_LEVEL);
    wait_connected(&sim, &log, resyncs).await;
    let crm = wait_for(
        "the second call's finish",
        &log,
        Duration::from_secs(30),
        || finished(&fake, &second),
    )
    .await;
    assert_eq!((crm.finishes, crm.registers), (1, 0), "{crm:?}");

    // The first event once more, after the restart (the in-memory repeat filter is empty now):
    // the stored link says it was placed already.
    assert_eq!(post_event(&addr, &body), (200, "ok\n".to_owned()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        originates(&sim).len(),
        2,
        "a repeated event placed a call again"
    );

    // 3. The PBX is gone: the click cannot be placed and is closed in the CRM as failed.
    sim.shutdown().await.expect("simulator stops");
    let third = click(&fake, &addr, "+79165550000");
    let crm = wait_for(
        "the unplaced call's finish",
        &log,
        Duration::from_secs(30),
        || finished(&fake, &third),
    )
    .await;
    assert_eq!((crm.finishes, crm.registers), (1, 0), "{crm:?}");
    let finish = crm.finish.expect("finished");
    assert_eq!(finish.duration, 0);
    assert_ne!(finish.status_code, "200");

    // Storage: the two placed calls under the ids chosen up front, outbound, answered by 101;
    // every CRM call exactly once and nothing else in the CRM.
    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    for id in [&first_call_id, &second_call_id] {
        let call = storage
            .get_call(&storage::CallId::new(id.clone()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} is stored; log:\n{}", tail(&log)));
        assert_eq!(
            call.call.call.direction,
            storage::Direction::Outbound,
            "{id}"
        );
        assert_eq!(call.call.call.answered_by.as_deref(), Some("101"), "{id}");
        assert!(call.call.call.ended_at.is_some(), "{id}");
    }
    drop(server);
    let all = fake.calls();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().all(|c| c.registers == 0 && c.finishes == 1),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_dials_over_rest_and_gets_the_calls_id() {
    let sim = start_simulator_at(20.0).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let storage = storage::Storage::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let mut tokens = Vec::new();
    for (login, role, extensions) in [
        ("anna", storage::Role::Agent, vec!["101".to_owned()]),
        ("crm", storage::Role::Supervisor, vec![]),
    ] {
        let id = storage
            .create_user(
                &storage::NewUser {
                    login: login.into(),
                    display_name: login.into(),
                    role,
                    password_hash: None,
                    extensions,
                    queues: vec![],
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let (token, _) = server::auth::issue_api_token(&storage, id, "test")
            .await
            .unwrap();
        tokens.push(format!("Bearer {token}"));
    }
    let config = dir.path().join("kommutator.toml");
    write_config(&config, &addr, &db, sim.local_addr().port(), CTI);
    let log = dir.path().join("server.log");
    let server = start_server(&config, &log, LOG_LEVEL);
    wait_connected(&sim, &log, 0).await;
    let dial = |token: &str, body: &str| {
        let res = common::request(
            &addr,
            "POST",
            "/api/v1/cti/dial",
            &[
                ("Authorization", token),
                ("Content-Type", "application/json"),
            ],
            body,
        );
        let json: Value = serde_json::from_str(&res.body).unwrap_or(Value::Null);
        (res.status, json)
    };

    // Refused before anything is dialled: no token, a number that is not one, another
    // agent's phone.
    let (status, _) = dial("Bearer nope", r#"{"number":"+79161234567"}"#);
    assert_eq!(status, 401);
    let (status, body) = dial(&tokens[0], r#"{"number":"101&Local/evil"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = dial(&tokens[0], r#"{"number":"+79161234567","extension":"102"}"#);
    assert_eq!(status, 403, "{body}");
    let (status, body) = dial(&tokens[1], r#"{"number":"+79161234567"}"#);
    assert_eq!(
        status, 400,
        "a supervisor without a phone must name one: {body}"
    );
    assert!(originates(&sim).is_empty());

    // An agent dials from their own phone; the answer names the call before it exists.
    let (status, body) = dial(&tokens[0], r#"{"number":"+7 916 123-45-67"}"#);
    assert_eq!(status, 202, "{body}");
    let call_id = body["call_id"].as_str().expect("call_id").to_owned();
    assert_eq!(body["extension"], "101");
    let placed = wait_for("the originate", &log, Duration::from_secs(10), || {
        originates(&sim).first().cloned()
    })
    .await;
    assert_eq!(placed.channel, "Local/101@agents/nm");
    assert_eq!(placed.exten.as_deref(), Some("+79161234567"));
    assert_eq!(placed.channel_id.as_deref(), Some(call_id.as_str()));
    // The integration (a supervisor token) rings a named phone.
    let (status, body) = dial(&tokens[1], r#"{"number":"+79167654321","extension":"101"}"#);
    assert_eq!(status, 202, "{body}");
    let second = body["call_id"].as_str().expect("call_id").to_owned();
    assert_ne!(second, call_id);

    // Both calls are recorded under those ids, as outbound calls answered by 101.
    for id in [&call_id, &second] {
        let (status, body) = wait_for("the call's end", &log, Duration::from_secs(20), || {
            let res = common::request(
                &addr,
                "GET",
                &format!("/api/v1/calls/{id}"),
                &[("Authorization", &tokens[1])],
                "",
            );
            let json: Value = serde_json::from_str(&res.body).unwrap_or(Value::Null);
            (res.status == 200 && !json["ended_at"].is_null()).then_some((res.status, json))
        })
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["direction"], "outbound", "{body}");
        assert_eq!(body["answered_by"], "101", "{body}");
    }

    // With the PBX gone the request fails at once, and says why.
    sim.shutdown().await.expect("simulator stops");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = dial(&tokens[0], r#"{"number":"+79161234567"}"#);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "pbx_unavailable", "{body}");
    drop(server);
}
