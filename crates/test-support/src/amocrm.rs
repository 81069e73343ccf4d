//! A fake amoCRM account (API v4).
//!
//! Behaves like the service where connectors break:
//! - more than `max_per_sec` requests within one second → `429` with a plain-text body;
//! - `GET /api/v4/contacts?query=` matches contacts whose phone digits contain the query, and
//!   answers `204 No Content` with an empty body when nothing matches;
//! - `POST /api/v4/calls` (array, at most 50): a call whose number (last 10 digits) no contact
//!   has is silently not logged, like the real service; invalid elements are listed in
//!   `_embedded.errors`;
//! - OAuth: [`FakeAmoCrm::expire_access_token`] makes the current token answer 401;
//!   `POST /oauth2/access_token` with the current refresh token issues a new pair and
//!   invalidates the old refresh token.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::{serve, Faults};

/// A contact in the fake account.
#[derive(Debug, Clone)]
pub struct FakeContact {
    /// Contact id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Phone as stored (any format).
    pub phone: String,
    /// Responsible user.
    pub responsible_user_id: u64,
}

/// A logged call: the element as sent, and the contact it was filed under.
#[derive(Debug, Clone)]
pub struct FakeAmoCall {
    /// The element as received.
    pub element: Value,
    /// The contact id it landed on.
    pub contact_id: u64,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmoCounters {
    /// Requests received (past the fault switch).
    pub requests: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Successful refreshes.
    pub refreshes: u64,
}

#[derive(Debug)]
struct Inner {
    max_per_sec: usize,
    recent: VecDeque<Instant>,
    contacts: Vec<FakeContact>,
    calls: Vec<FakeAmoCall>,
    access: String,
    refresh: String,
    generation: u32,
    counters: AmoCounters,
}

type Shared = Arc<Mutex<Inner>>;

/// See the module documentation.
#[derive(Debug)]
pub struct FakeAmoCrm {
    addr: SocketAddr,
    inner: Shared,
    /// The misbehaviour switch.
    pub faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAmoCrm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn tail10(text: &str) -> String {
    let d = digits(text);
    d[d.len().saturating_sub(10)..].to_owned()
}

/// Counts the request and checks the rate and the token; `Some` is the refusal to send.
fn admit(inner: &mut Inner, headers: Option<&HeaderMap>) -> Option<Response> {
    inner.counters.requests += 1;
    let now = Instant::now();
    while inner
        .recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        inner.recent.pop_front();
    }
    if inner.recent.len() >= inner.max_per_sec {
        inner.counters.rate_limited += 1;
        return Some((StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response());
    }
    inner.recent.push_back(now);
    if let Some(headers) = headers {
        let expected = format!("Bearer {}", inner.access);
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent != expected {
            inner.counters.unauthorized += 1;
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(
                        json!({"title":"Unauthorized","type":"https://httpstatus.es/401",
                    "status":401,"detail":"Invalid access token"}),
                    ),
                )
                    .into_response(),
            );
        }
    }
    None
}

async fn account(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(answer) = admit(&mut inner, Some(&headers)) {
        return answer;
    }
    Json(json!({"id": 123, "name": "fake", "subdomain": "fake"})).into_response()
}

async fn search_contacts(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(answer) = admit(&mut inner, Some(&headers)) {
        return answer;
    }
    let wanted = query
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| digits(v))
        .unwrap_or_default();
    let found: Vec<Value> = inner
        .contacts
        .iter()
        .filter(|c| !wanted.is_empty() && digits(&c.phone).contains(&wanted))
        .map(|c| {
            json!({"id": c.id, "name": c.name, "responsible_user_id": c.responsible_user_id,
                "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": c.phone}]}]})
        })
        .collect();
    if found.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"_page": 1, "_embedded": {"contacts": found}})).into_response()
}

async fn calls(State(inner): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(answer) = admit(&mut inner, Some(&headers)) {
        return answer;
    }
    let Ok(Value::Array(elements)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"title":"Bad Request","status":400,"detail":"Request body must be an array"})),
        )
            .into_response();
    };
    if elements.len() > 50 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"status":400,"detail":"Too many elements"})),
        )
            .into_response();
    }
    let mut logged = Vec::new();
    let mut errors = Vec::new();
    for element in elements {
        let request_id = element.get("request_id").cloned().unwrap_or(Value::Null);
        let valid = element.get("direction").and_then(Value::as_str).is_some()
            && element.get("duration").and_then(Value::as_i64).is_some()
            && element.get("source").and_then(Value::as_str).is_some();
        let phone = element.get("phone").and_then(Value::as_str).map(tail10);
        let (true, Some(phone)) = (valid, phone) else {
            errors.push(json!({"request_id": request_id, "detail": "validation failed"}));
            continue;
        };
        let Some(contact) = inner.contacts.iter().find(|c| tail10(&c.phone) == phone) else {
            continue;
        };
        let contact_id = contact.id;
        let id = inner.calls.len() as u64 + 1;
        inner.calls.push(FakeAmoCall {
            element,
            contact_id,
        });
        logged.push(
            json!({"id": id, "entity_id": contact_id, "entity_type": "contacts",
            "request_id": request_id}),
        );
    }
    Json(json!({"_total_items": logged.len(), "_embedded": {"calls": logged, "errors": errors}}))
        .into_response()
}

async fn token(State(inner): State<Shared>, Json(body): Json<Value>) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(answer) = admit(&mut inner, None) {
        return answer;
    }
    let grant = body.get("grant_type").and_then(Value::as_str);
    let refresh = body.get("refresh_token").and_then(Value::as_str);
    if grant != Some("refresh_token") || refresh != Some(inner.refresh.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"title":"Bad Request","status":400,"hint":"Token has been revoked"})),
        )
            .into_response();
    }
    inner.generation += 1;
    inner.access = format!("access-{}", inner.generation);
    inner.refresh = format!("refresh-{}", inner.generation);
    inner.counters.refreshes += 1;
    Json(
        json!({"token_type":"Bearer","expires_in":86400,"access_token":inner.access,
        "refresh_token":inner.refresh}),
    )
    .into_response()
}

impl FakeAmoCrm {
    /// Starts an account with these contacts, allowing `max_per_sec` requests per second.
    /// The first tokens are `access-0` / `refresh-0`.
    pub async fn start(
        contacts: Vec<FakeContact>,
        max_per_sec: usize,
    ) -> std::io::Result<FakeAmoCrm> {
        let inner = Arc::new(Mutex::new(Inner {
            max_per_sec,
            recent: VecDeque::new(),
            contacts,
            calls: Vec::new(),
            access: "access-0".to_owned(),
            refresh: "refresh-0".to_owned(),
            generation: 0,
            counters: AmoCounters::default(),
        }));
        let faults = Faults::default();
        let router = Router::new()
            .route("/api/v4/account", get(account))
            .route("/api/v4/contacts", get(search_contacts))
            .route("/api/v4/calls", post(calls))
            .route("/oauth2/access_token", post(token))
            .with_state(inner.clone());
        let (addr, task) = serve(router, faults.clone()).await?;
        Ok(FakeAmoCrm {
            addr,
            inner,
            faults,
            task,
        })
    }

    /// The account's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Invalidates the current access token (the refresh token stays valid).
    pub fn expire_access_token(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.access = format!("expired-{}", inner.generation);
        }
    }

    /// The refresh token the fake accepts now.
    pub fn current_refresh_token(&self) -> String {
        self.inner
            .lock()
            .map(|i| i.refresh.clone())
            .unwrap_or_default()
    }

    /// Calls logged so far.
    pub fn calls(&self) -> Vec<FakeAmoCall> {
        self.inner
            .lock()
            .map(|i| i.calls.clone())
            .unwrap_or_default()
    }

    /// Counters.
    pub fn counters(&self) -> AmoCounters {
        self.inner.lock().map(|i| i.counters).unwrap_or_default()
    }
}
