//! A fake Bitrix24 portal: REST under `/rest/`, OAuth under `/oauth/token/`.
//!
//! Behaves like the cloud service where connectors break:
//! - leaky bucket per portal: +1 per HTTP request (a `batch` is one), drains `drain_per_sec`,
//!   a request above `bucket_cap` gets `503 {"error":"QUERY_LIMIT_EXCEEDED"}`;
//! - OAuth mode: [`FakeBitrix24::expire_access_token`] makes the current token answer
//!   `401 {"error":"expired_token"}`; `GET /oauth/token/?grant_type=refresh_token` issues a new
//!   pair and invalidates the old refresh token (`invalid_grant` when reused);
//! - `batch`: up to 50 commands run in key order, `$result[key][FIELD]` references substituted,
//!   errors per command in `result_error`, empty maps serialized as `[]`;
//! - `telephony.externalcall.register` returns the same `CALL_ID` for the same
//!   `EXTERNAL_CALL_ID` while the call is unfinished; `finish` of an unknown or finished call
//!   is an error; `attachRecord` only after `finish`; `voximplant.statistic.get` lists finished
//!   calls filtered by `EXTERNAL_CALL_ID`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::{php_query, serve, Faults};

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeBitrix24Config {
    /// Bucket drain rate, requests per second (cloud: 2).
    pub drain_per_sec: f64,
    /// Requests above this level are refused (cloud: 50).
    pub bucket_cap: f64,
    /// The inbound webhook path, `<user_id>/<code>`.
    pub webhook: String,
    /// The first OAuth access and refresh tokens.
    pub access_token: String,
    /// See `access_token`.
    pub refresh_token: String,
    /// OAuth app credentials the token endpoint accepts.
    pub client_id: String,
    /// See `client_id`.
    pub client_secret: String,
}

impl Default for FakeBitrix24Config {
    fn default() -> Self {
        FakeBitrix24Config {
            drain_per_sec: 2.0,
            bucket_cap: 50.0,
            webhook: "1/fakewebhookcode".to_owned(),
            access_token: "access-0".to_owned(),
            refresh_token: "refresh-0".to_owned(),
            client_id: "local.fake".to_owned(),
            client_secret: "fake-secret".to_owned(),
        }
    }
}

/// A registered external call as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// Bitrix24 `CALL_ID`.
    pub call_id: String,
    /// `EXTERNAL_CALL_ID` sent at register.
    pub external_call_id: Option<String>,
    /// Register parameters.
    pub phone_number: String,
    /// `TYPE`.
    pub call_type: String,
    /// `USER_ID` or `USER_PHONE_INNER` at register.
    pub register_user: String,
    /// `CALL_START_DATE`.
    pub start_date: Option<String>,
    /// `LINE_NUMBER`.
    pub line_number: Option<String>,
    /// How many register requests named this call (repeats return the same CALL_ID).
    pub registers: u32,
    /// Finish parameters, once finished.
    pub finish: Option<FakeFinish>,
    /// How many finish requests were accepted (must end at 1).
    pub finishes: u32,
    /// Attached recording URL.
    pub record_url: Option<String>,
}

/// What `finish` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFinish {
    /// `USER_ID` or `USER_PHONE_INNER`.
    pub user: String,
    /// `DURATION`.
    pub duration: i64,
    /// `STATUS_CODE`.
    pub status_code: String,
}

#[derive(Debug)]
struct State0 {
    config: FakeBitrix24Config,
    bucket: f64,
    bucket_at: Instant,
    access_token: String,
    refresh_token: String,
    token_seq: u32,
    calls: Vec<FakeCall>,
    open_by_external: HashMap<String, usize>,
    by_call_id: HashMap<String, usize>,
    requests: u64,
    rate_limited: u64,
    commands: u64,
    leads: Vec<Value>,
    tasks: Vec<Value>,
    entities: Vec<Value>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State0>>,
}

/// A running fake portal.
#[derive(Clone)]
pub struct FakeBitrix24 {
    shared: Shared,
    addr: SocketAddr,
    faults: Faults,
}

impl std::fmt::Debug for FakeBitrix24 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBitrix24")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

type Answer = (StatusCode, Json<Value>);

fn b24_error(status: StatusCode, code: &str, description: &str) -> Answer {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
}

impl FakeBitrix24 {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(config: FakeBitrix24Config) -> std::io::Result<FakeBitrix24> {
        let state = State0 {
            bucket: 0.0,
            bucket_at: Instant::now(),
            access_token: config.access_token.clone(),
            refresh_token: config.refresh_token.clone(),
            token_seq: 0,
            calls: Vec::new(),
            open_by_external: HashMap::new(),
            by_call_id: HashMap::new(),
            requests: 0,
            rate_limited: 0,
            commands: 0,
            leads: Vec::new(),
            tasks: Vec::new(),
            entities: Vec::new(),
            config,
        };
        let shared = Shared {
            state: Arc::new(Mutex::new(state)),
        };
        let faults = Faults::default();
        let router = Router::new()
            .route("/rest/{*path}", post(rest).get(rest_get))
            .route("/oauth/token/", get(token))
            .with_state(shared.clone());
        let (addr, _task) = serve(router, faults.clone()).await?;
        Ok(FakeBitrix24 {
            shared,
            addr,
            faults,
        })
    }

    /// The portal base, e.g. `http://127.0.0.1:1234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The inbound webhook URL (with trailing slash).
    pub fn webhook_url(&self) -> String {
        let webhook = self.lock().config.webhook.clone();
        format!("{}/rest/{webhook}/", self.base_url())
    }

    /// The OAuth `client_endpoint`.
    pub fn client_endpoint(&self) -> String {
        format!("{}/rest/", self.base_url())
    }

    /// The OAuth token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token/", self.base_url())
    }

    /// The misbehaviour switch.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Makes the current access token answer `expired_token`.
    pub fn expire_access_token(&self) {
        let mut state = self.lock();
        state.access_token = format!("expired-{}", state.token_seq);
        state.token_seq += 1;
    }

    /// The refresh token the fake currently accepts.
    pub fn current_refresh_token(&self) -> String {
        self.lock().refresh_token.clone()
    }

    /// Every registered call.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// HTTP requests received, requests refused with QUERY_LIMIT_EXCEEDED, commands run.
    pub fn counters(&self) -> (u64, u64, u64) {
        let state = self.lock();
        (state.requests, state.rate_limited, state.commands)
    }

    /// Leads created with `crm.lead.add`.
    pub fn leads(&self) -> Vec<Value> {
        self.lock().leads.clone()
    }

    /// Tasks created with `tasks.task.add`.
    pub fn tasks(&self) -> Vec<Value> {
        self.lock().tasks.clone()
    }

    /// Adds a CRM entity found by `searchCrmEntities` (`CRM_ENTITY_TYPE`, `CRM_ENTITY_ID`,
    /// `NAME`, `ASSIGNED_BY_ID`, and `PHONE`: digits).
    pub fn add_entity(&self, entity: Value) {
        self.lock().entities.push(entity);
    }

    /// A user clicks a number in the CRM: Bitrix24 registers an outgoing call itself (no
    /// `EXTERNAL_CALL_ID`, no register request from us) and returns its `CALL_ID`, which the
    /// `ONEXTERNALCALLSTART` event then carries. Tests post that event themselves.
    pub fn start_click_to_call(&self, user_id: u64, phone: &str) -> String {
        let mut state = self.lock();
        let idx = state.calls.len();
        let call_id = format!("externalCall.c2c{:029x}.{}", idx + 1, 1_773_236_989 + idx);
        state.calls.push(FakeCall {
            call_id: call_id.clone(),
            external_call_id: None,
            phone_number: phone.to_owned(),
            call_type: "1".to_owned(),
            register_user: user_id.to_string(),
            start_date: None,
            line_number: None,
            registers: 0,
            finish: None,
            finishes: 0,
            record_url: None,
        });
        state.by_call_id.insert(call_id.clone(), idx);
        call_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State0> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State0> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

async fn rest_get(state: State<Shared>, path: Path<String>, query: RawQuery) -> Response {
    rest(state, path, query, Bytes::new()).await
}

async fn rest(
    State(shared): State<Shared>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut params = php_query(query.as_deref().unwrap_or(""));
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => {
                if let Value::Object(params) = &mut params {
                    params.extend(map);
                }
            }
            _ => {
                let form = php_query(&String::from_utf8_lossy(&body));
                if let (Value::Object(params), Value::Object(form)) = (&mut params, form) {
                    params.extend(form);
                }
            }
        }
    }
    let mut state = shared.lock();
    state.requests += 1;
    // The leaky bucket, per portal.
    let now = Instant::now();
    let drained = now.duration_since(state.bucket_at).as_secs_f64() * state.config.drain_per_sec;
    state.bucket = (state.bucket - drained).max(0.0);
    state.bucket_at = now;
    if state.bucket + 1.0 > state.config.bucket_cap {
        state.rate_limited += 1;
        return b24_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "QUERY_LIMIT_EXCEEDED",
            "Too many requests",
        )
        .into_response();
    }
    state.bucket += 1.0;

    let webhook_prefix = format!("{}/", state.config.webhook);
    let method = match path.strip_prefix(&webhook_prefix) {
        Some(method) => method.to_owned(),
        None if path.contains('/') => {
            return b24_error(
                StatusCode::UNAUTHORIZED,
                "NO_AUTH_FOUND",
                "Wrong authorization data",
            )
            .into_response();
        }
        None => {
            let auth = params.get("auth").and_then(Value::as_str).unwrap_or("");
            if auth.starts_with("expired-")
                || (auth != state.access_token && auth.starts_with("access-"))
            {
                return b24_error(
                    StatusCode::UNAUTHORIZED,
                    "expired_token",
                    "The access token provided has expired.",
                )
                .into_response();
            }
            if auth != state.access_token {
                return b24_error(
                    StatusCode::UNAUTHORIZED,
                    "NO_AUTH_FOUND",
                    "Wrong authorization data",
                )
                .into_response();
            }
            path.clone()
        }
    };
    let method = method.trim_end_matches(".json").to_ascii_lowercase();
    let answer = if method == "batch" {
        Ok(batch(&mut state, &params))
    } else {
        state.commands += 1;
        run_method(&mut state, &method, &params)
    };
    match answer {
        Ok(result) => {
            Json(json!({ "result": result, "time": { "start": 0, "finish": 0 } })).into_response()
        }
        Err((code, description)) => {
            b24_error(StatusCode::BAD_REQUEST, code, &description).into_response()
        }
    }
}

fn batch(state: &mut State0, params: &Value) -> Value {
    let halt = params
        .get("halt")
        .map(|h| h.as_i64() == Some(1) || h.as_str() == Some("1"))
        .unwrap_or(false);
    let commands: BTreeMap<String, String> = params
        .get("cmd")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut results = serde_json::Map::new();
    let mut errors = serde_json::Map::new();
    for (key, command) in commands.iter().take(50) {
        let command = substitute(command, &results);
        let (method, query) = command.split_once('?').unwrap_or((command.as_str(), ""));
        let method = method.trim_end_matches(".json").to_ascii_lowercase();
        state.commands += 1;
        let res = if method == "batch" {
            Err((
                "ERROR_BATCH_METHOD_NOT_ALLOWED",
                "Batch is not allowed in batch".to_owned(),
            ))
        } else {
            run_method(state, &method, &php_query(query))
        };
        match res {
            Ok(value) => {
                results.insert(key.clone(), value);
            }
            Err((code, description)) => {
                errors.insert(
                    key.clone(),
                    json!({ "error": code, "error_description": description }),
                );
                if halt {
                    break;
                }
            }
        }
    }
    let as_map_or_empty = |m: serde_json::Map<String, Value>| {
        if m.is_empty() {
            json!([])
        } else {
            Value::Object(m)
        }
    };
    json!({
        "result": as_map_or_empty(results),
        "result_error": as_map_or_empty(errors),
        "result_total": [],
        "result_next": [],
        "result_time": [],
    })
}

/// Replaces `$result[key][FIELD]` with earlier results (URL-encoded).
fn substitute(command: &str, results: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(idx) = rest.find("$result[") {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + "$result[".len()..];
        let parsed = after.split_once(']').and_then(|(key, tail)| {
            let tail = tail.strip_prefix('[')?;
            let (field, tail) = tail.split_once(']')?;
            Some((key, field, tail))
        });
        match parsed {
            Some((key, field, tail)) => {
                let value = results
                    .get(key)
                    .and_then(|r| r.get(field))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                let value = value.unwrap_or_default();
                out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
                rest = tail;
            }
            None => {
                out.push_str("$result[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn text(params: &Value, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

type MethodResult = Result<Value, (&'static str, String)>;

fn run_method(state: &mut State0, method: &str, params: &Value) -> MethodResult {
    match method {
        "profile" => Ok(json!({ "ID": "1", "ADMIN": true })),
        "telephony.externalcall.register" => register(state, params),
        "telephony.externalcall.finish" => finish(state, params),
        "telephony.externalcall.attachrecord" => attach(state, params),
        "telephony.externalcall.show" | "telephony.externalcall.hide" => {
            let call_id = text(params, "CALL_ID").unwrap_or_default();
            if state.by_call_id.contains_key(&call_id) {
                Ok(json!(true))
            } else {
                Err(("ERROR_CORE", "Call is not found".to_owned()))
            }
        }
        "voximplant.statistic.get" => {
            let filter = |key: &str| {
                params
                    .pointer(&format!("/FILTER/{key}"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (external, by_call_id) = (filter("EXTERNAL_CALL_ID"), filter("CALL_ID"));
            let rows: Vec<Value> = state
                .calls
                .iter()
                .filter(|c| {
                    c.finish.is_some()
                        && (external.is_none() || c.external_call_id == external)
                        && by_call_id.as_ref().is_none_or(|id| c.call_id == *id)
                })
                .map(|c| json!({ "CALL_ID": c.call_id, "EXTERNAL_CALL_ID": c.external_call_id }))
                .collect();
            Ok(Value::Array(rows))
        }
        "telephony.externalcall.searchcrmentities" => {
            let phone = text(params, "PHONE_NUMBER").unwrap_or_default();
            let found: Vec<Value> = state
                .entities
                .iter()
                .filter(|e| e.get("PHONE").and_then(Value::as_str) == Some(phone.as_str()))
                .cloned()
                .collect();
            Ok(Value::Array(found))
        }
        "crm.lead.add" => {
            state
                .leads
                .push(params.get("fields").cloned().unwrap_or(Value::Null));
            Ok(json!(state.leads.len()))
        }
        "tasks.task.add" => {
            state
                .tasks
                .push(params.get("fields").cloned().unwrap_or(Value::Null));
            Ok(json!({ "task": { "id": state.tasks.len().to_string() } }))
        }
        _ => Err((
            "ERROR_METHOD_NOT_FOUND",
            format!("Method not found: {method}"),
        )),
    }
}

fn register(state: &mut State0, params: &Value) -> MethodResult {
    let user = text(params, "USER_ID")
        .or_else(|| text(params, "USER_PHONE_INNER").map(|inner| format!("inner:{inner}")))
        .ok_or((
            "ERROR_CORE",
            "USER_ID or USER_PHONE_INNER should be set".to_owned(),
        ))?;
    let phone = text(params, "PHONE_NUMBER")
        .ok_or(("ERROR_CORE", "PHONE_NUMBER should be set".to_owned()))?;
    let call_type = text(params, "TYPE").ok_or(("ERROR_CORE", "Unknown TYPE".to_owned()))?;
    if !["1", "2", "3", "4", "5"].contains(&call_type.as_str()) {
        return Err(("ERROR_CORE", "Unknown TYPE".to_owned()));
    }
    let start_date = text(params, "CALL_START_DATE");
    if let Some(date) = &start_date {
        let has_offset = date.ends_with('Z') || date.rfind(['+', '-']).is_some_and(|i| i > 10);
        if !has_offset {
            return Err((
                "ERROR_CORE",
                "CALL_START_DATE should be in the ISO-8601 format".to_owned(),
            ));
        }
    }
    let external = text(params, "EXTERNAL_CALL_ID");
    if let Some(idx) = external
        .as_ref()
        .and_then(|e| state.open_by_external.get(e))
        .copied()
    {
        let call = &mut state.calls[idx];
        call.registers += 1;
        return Ok(
            json!({ "CALL_ID": call.call_id, "CRM_CREATED_LEAD": null, "CRM_CREATED_ENTITIES": [],
            "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 797 }),
        );
    }
    let call_id = format!(
        "externalCall.{:032x}.{}",
        state.calls.len() + 1,
        1_773_130_779 + state.calls.len()
    );
    let idx = state.calls.len();
    state.calls.push(FakeCall {
        call_id: call_id.clone(),
        external_call_id: external.clone(),
        phone_number: phone,
        call_type,
        register_user: user,
        start_date,
        line_number: text(params, "LINE_NUMBER"),
        registers: 1,
        finish: None,
        finishes: 0,
        record_url: None,
    });
    state.by_call_id.insert(call_id.clone(), idx);
    if let Some(external) = external {
        state.open_by_external.insert(external, idx);
    }
    Ok(
        json!({ "CALL_ID": call_id, "CRM_CREATED_LEAD": null, "CRM_CREATED_ENTITIES": [],
        "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 797 }),
    )
}

fn finish(state: &mut State0, params: &Value) -> MethodResult {
    let call_id = text(params, "CALL_ID")
        .ok_or(("INVALID_ARGUMENT", "CALL_ID must be a string".to_owned()))?;
    let idx = *state.by_call_id.get(&call_id).ok_or((
        "ERROR_CORE",
        "Call is not found (call should be registered prior to finishing)".to_owned(),
    ))?;
    let user = text(params, "USER_ID")
        .or_else(|| text(params, "USER_PHONE_INNER").map(|inner| format!("inner:{inner}")))
        .ok_or((
            "ERROR_CORE",
            "USER_ID or USER_PHONE_INNER should be set".to_owned(),
        ))?;
    let duration: i64 = text(params, "DURATION")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let status_code = text(params, "STATUS_CODE")
        .unwrap_or_else(|| if duration > 0 { "200" } else { "304" }.to_owned());
    let call = &mut state.calls[idx];
    if call.finish.is_some() {
        return Err((
            "ERROR_CORE",
            "Call is not found (call should be registered prior to finishing)".to_owned(),
        ));
    }
    call.finish = Some(FakeFinish {
        user,
        duration,
        status_code: status_code.clone(),
    });
    call.finishes += 1;
    let external = call.external_call_id.clone();
    let row = json!({ "ID": idx + 1, "CALL_ID": call.call_id, "EXTERNAL_CALL_ID": external,
        "CALL_DURATION": duration, "CALL_FAILED_CODE": status_code });
    if let Some(external) = external {
        state.open_by_external.remove(&external);
    }
    Ok(row)
}

fn attach(state: &mut State0, params: &Value) -> MethodResult {
    let call_id = text(params, "CALL_ID").unwrap_or_default();
    let idx = *state
        .by_call_id
        .get(&call_id)
        .ok_or(("ERROR_CORE", "Call is not found".to_owned()))?;
    let call = &mut state.calls[idx];
    if call.finish.is_none() {
        return Err((
            "ERROR_CORE",
            "Call is not found in the statistic table. It looks like it is not finished yet."
                .to_owned(),
        ));
    }
    call.record_url = text(params, "RECORD_URL");
    Ok(json!({ "FILE_ID": idx + 9000 }))
}

async fn token(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut state = shared.lock();
    state.requests += 1;
    let ok_client = query.get("client_id") == Some(&state.config.client_id)
        && query.get("client_secret") == Some(&state.config.client_secret);
    if !ok_client {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Invalid client" })),
        )
            .into_response();
    }
    if query.get("grant_type").map(String::as_str) != Some("refresh_token")
        || query.get("refresh_token") != Some(&state.refresh_token)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "error_description": "Invalid refresh token" })),
        )
            .into_response();
    }
    state.token_seq += 1;
    state.access_token = format!("access-{}", state.token_seq);
    state.refresh_token = format!("refresh-{}", state.token_seq);
    Json(json!({
        "access_token": state.access_token,
        "refresh_token": state.refresh_token,
        "expires_in": 3600,
        "client_endpoint": "",
        "member_id": "fake-member",
        "status": "L",
    }))
    .into_response()
}
