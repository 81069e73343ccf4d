//! The HTTP surface through `server::app(state)` with `tower::ServiceExt::oneshot`: probes,
//! metrics, the calls API and its error responses.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use tower::ServiceExt;

async fn state() -> server::AppState {
    let storage = storage::Storage::open_in_memory()
        .await
        .expect("in-memory database");
    storage.migrate().await.expect("migrations");
    // Every API route needs authentication: the tests act as an admin with an API token.
    let admin = storage
        .create_user(
            &storage::NewUser {
                login: "test-admin".into(),
                display_name: "Test admin".into(),
                role: storage::Role::Admin,
                password_hash: None,
                extensions: vec![],
                queues: vec![],
            },
            Utc::now(),
        )
        .await
        .expect("admin user");
    storage
        .create_api_token(
            admin,
            "tests",
            &server::auth::hash_secret(TEST_TOKEN),
            Utc::now(),
        )
        .await
        .expect("admin token");
    server::AppState::new(storage, Arc::new(server::Metrics::new()))
}

const TEST_TOKEN: &str = "kmt_0000000000000000000000000000000000000000000000000000000000000000";

async fn get(state: &server::AppState, uri: &str) -> (StatusCode, String, axum::http::HeaderMap) {
    let response = server::app(state.clone())
        .oneshot(
            Request::get(uri)
                .header("authorization", format!("Bearer {TEST_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), headers)
}

#[tokio::test]
async fn probes_answer_and_carry_a_request_id() {
    let state = state().await;
    let (status, body, headers) = get(&state, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok\n");
    assert!(headers.contains_key("x-request-id"));
    let (status, _, _) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readiness_fails_when_storage_is_gone() {
    let state = state().await;
    state.storage.close().await;
    let (status, body, _) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn a_client_request_id_is_echoed() {
    let state = state().await;
    let response = server::app(state)
        .oneshot(
            Request::get("/healthz")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let state = state().await;
    get(&state, "/healthz").await;
    get(&state, "/api/v1/calls/nope").await;
    let (status, body, headers) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(
        body.contains(
            r#"kommutator_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{body}"
    );
    // The raw path never becomes a label: only the route pattern does.
    assert!(
        body.contains(r#"route="/api/v1/calls/{id}",status="404""#),
        "{body}"
    );
    assert!(body.contains("kommutator_build_info"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}

#[tokio::test]
async fn metrics_read_at_scrape_time() {
    let state = state().await;
    let value = Arc::new(std::sync::atomic::AtomicU64::new(41));
    let read = value.clone();
    state.metrics.counter_fn(
        "ami_events_in",
        "AMI event frames received",
        &[("pbx", "office")],
        Box::new(move || read.load(std::sync::atomic::Ordering::Relaxed)),
    );
    value.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (_, body, _) = get(&state, "/metrics").await;
    assert!(
        body.contains(r#"kommutator_ami_events_in_total{pbx="office"} 42"#),
        "{body}"
    );
}

fn call(
    id: &str,
    started_secs: i64,
    outcome: Option<storage::Outcome>,
    answered_by: Option<&str>,
) -> storage::NewCall {
    let started_at = Utc.timestamp_opt(1_790_000_000 + started_secs, 0).unwrap();
    storage::NewCall {
        id: storage::CallId::new(id),
        source: "office".to_owned(),
        direction: storage::Direction::Inbound,
        customer_number: Some("+79161234567".to_owned()),
        customer_number_raw: Some("89161234567".to_owned()),
        line: Some("+74951230000".to_owned()),
        queue: Some("sales".to_owned()),
        started_at,
        answered_at: answered_by.map(|_| started_at + chrono::Duration::seconds(5)),
        ended_at: Some(started_at + chrono::Duration::seconds(65)),
        outcome,
        answered_by: answered_by.map(str::to_owned),
        agent_user_id: None,
        wait_ms: 5_000,
        talk_ms: 60_000,
        hold_ms: 0,
        recording: None,
        degraded: false,
        short_abandon: false,
        internal: false,
        route_decision: None,
        record: serde_json::json!({ "call_id": id }),
        updated_at: started_at,
    }
}

async fn store(state: &server::AppState, calls: &[storage::NewCall]) {
    for call in calls {
        let event = storage::NewCallEvent {
            call_id: call.id.clone(),
            seq: 1,
            at: call.started_at,
            kind: "started".to_owned(),
            data: serde_json::json!({}),
        };
        state
            .storage
            .write_call(&storage::CallWrite {
                call,
                agents: &[],
                events: std::slice::from_ref(&event),
                jobs: &[],
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn calls_are_listed_newest_first_filtered_and_paged() {
    let state = state().await;
    store(
        &state,
        &[
            call("c1", 0, Some(storage::Outcome::Answered), Some("101")),
            call("c2", 10, Some(storage::Outcome::Missed), None),
            call("c3", 20, Some(storage::Outcome::Answered), Some("102")),
        ],
    )
    .await;

    let (status, body, _) = get(&state, "/api/v1/calls").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<_> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c3", "c2", "c1"]);
    assert_eq!(page["calls"][0]["talk_s"], 60.0);

    let (_, body, _) = get(&state, "/api/v1/calls?outcome=answered&agent=101").await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["calls"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(page["calls"][0]["id"], "c1");

    // People type numbers with spaces and brackets; storage holds E.164.
    let (_, body, _) = get(&state, "/api/v1/calls?number=7%20(916)%20123-45-67").await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["calls"].as_array().unwrap().len(), 3, "{body}");

    let (_, body, _) = get(&state, "/api/v1/calls?limit=2").await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["calls"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().expect("a next cursor").to_owned();
    let (_, body, _) = get(&state, &format!("/api/v1/calls?limit=2&cursor={next}")).await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<_> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1"]);
    assert!(page.get("next").is_none());
}

#[tokio::test]
async fn one_call_comes_with_its_timeline() {
    let state = state().await;
    store(
        &state,
        &[call("c1", 0, Some(storage::Outcome::Answered), Some("101"))],
    )
    .await;
    let (status, body, _) = get(&state, "/api/v1/calls/c1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["id"], "c1");
    assert_eq!(detail["timeline"][0]["kind"], "started");
    let (status, body, _) = get(&state, "/api/v1/calls/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("there is no call `missing`"), "{body}");
}

#[tokio::test]
async fn bad_filters_are_explained() {
    let state = state().await;
    for (uri, expected) in [
        ("/api/v1/calls?outcome=lost", "outcome `lost`"),
        ("/api/v1/calls?from=yesterday", "RFC 3339"),
        ("/api/v1/calls?limit=0", "limit must be"),
        ("/api/v1/calls?cursor=zzz", "cursor"),
        ("/api/v1/calls?colour=red", "colour"),
    ] {
        let (status, body, _) = get(&state, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains(expected), "{uri}: {body}");
    }
}
