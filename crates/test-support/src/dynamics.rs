//! A fake Dataverse organization with its Entra ID token endpoint.
//!
//! - `POST /token` (client credentials, form-encoded) issues `token-<n>`;
//!   [`FakeDynamics::revoke_tokens`] makes every issued token answer 401;
//! - `GET /api/data/v9.2/contacts?$filter=…` matches contacts whose `telephone1`,
//!   `mobilephone` or `telephone2` equals a quoted literal of the filter;
//! - `POST /api/data/v9.2/phonecalls` stores the body, answers `204` with `OData-EntityId`;
//! - [`FakeDynamics::throttle`]: the next `n` API requests get `429` with `Retry-After`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::{serve, Faults};

/// A contact row.
#[derive(Debug, Clone)]
pub struct FakeDynContact {
    /// `contactid` (GUID).
    pub id: String,
    /// `fullname`.
    pub fullname: String,
    /// `telephone1`, `mobilephone`, `telephone2`.
    pub phones: [Option<String>; 3],
}

#[derive(Debug, Default)]
struct Inner {
    client_id: String,
    client_secret: String,
    issued: u32,
    valid_from: u32,
    throttle: u32,
    retry_after: u64,
    throttled: u32,
    contacts: Vec<FakeDynContact>,
    phonecalls: Vec<Value>,
}

type Shared = Arc<Mutex<Inner>>;

/// See the module documentation.
#[derive(Debug)]
pub struct FakeDynamics {
    addr: SocketAddr,
    inner: Shared,
    /// The misbehaviour switch.
    pub faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDynamics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn token(State(inner): State<Shared>, body: String) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some("client_credentials")
        || get("client_id") != Some(inner.client_id.as_str())
        || get("client_secret") != Some(inner.client_secret.as_str())
        || !get("scope").is_some_and(|s| s.ends_with("/.default"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error":"invalid_client"})),
        )
            .into_response();
    }
    inner.issued += 1;
    Json(json!({"token_type":"Bearer","expires_in":3599,"access_token":format!("token-{}", inner.issued)}))
        .into_response()
}

fn admit(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    if inner.throttle > 0 {
        inner.throttle -= 1;
        inner.throttled += 1;
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", inner.retry_after.to_string())],
                Json(json!({"error":{"code":"0x80072322","message":"Number of requests exceeded the limit"}})),
            )
                .into_response(),
        );
    }
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let valid = sent
        .strip_prefix("Bearer token-")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n >= inner.valid_from && n <= inner.issued);
    if !valid {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error":{"code":"0x80040220","message":"ExpiredAuthTicket"}})),
            )
                .into_response(),
        );
    }
    None
}

async fn search_contacts(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(refusal) = admit(&mut inner, &headers) {
        return refusal;
    }
    let filter = query
        .iter()
        .find(|(k, _)| k == "$filter")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let literals: Vec<String> = filter
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    let value: Vec<Value> = inner
        .contacts
        .iter()
        .filter(|c| c.phones.iter().flatten().any(|p| literals.contains(p)))
        .map(|c| json!({"contactid": c.id, "fullname": c.fullname, "_ownerid_value": null}))
        .collect();
    Json(json!({"@odata.context":"fake","value": value})).into_response()
}

async fn phonecalls(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(refusal) = admit(&mut inner, &headers) {
        return refusal;
    }
    if body.get("subject").and_then(Value::as_str).is_none() || body.get("statecode").is_some() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error":{"code":"0x80040203","message":"invalid"}})),
        )
            .into_response();
    }
    inner.phonecalls.push(body);
    let id = format!("00000000-0000-0000-0000-{:012}", inner.phonecalls.len());
    (
        StatusCode::NO_CONTENT,
        [(
            "OData-EntityId",
            format!("http://fake/api/data/v9.2/phonecalls({id})"),
        )],
    )
        .into_response()
}

async fn who_am_i(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let Ok(mut inner) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(refusal) = admit(&mut inner, &headers) {
        return refusal;
    }
    Json(json!({"UserId":"00000000-0000-0000-0000-0000000000aa"})).into_response()
}

impl FakeDynamics {
    /// Starts an organization accepting these client credentials.
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        contacts: Vec<FakeDynContact>,
    ) -> std::io::Result<FakeDynamics> {
        let inner = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            contacts,
            retry_after: 1,
            ..Inner::default()
        }));
        let faults = Faults::default();
        let router = Router::new()
            .route("/token", post(token))
            .route("/api/data/v9.2/contacts", get(search_contacts))
            .route("/api/data/v9.2/phonecalls", post(phonecalls))
            .route("/api/data/v9.2/WhoAmI", get(who_am_i))
            .with_state(inner.clone());
        let (addr, task) = serve(router, faults.clone()).await?;
        Ok(FakeDynamics {
            addr,
            inner,
            faults,
            task,
        })
    }

    /// The organization URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Invalidates every token issued so far.
    pub fn revoke_tokens(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.valid_from = inner.issued + 1;
        }
    }

    /// The next `n` API requests get 429 with `Retry-After: retry_after_secs`.
    pub fn throttle(&self, n: u32, retry_after_secs: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.throttle = n;
            inner.retry_after = retry_after_secs;
        }
    }

    /// Requests answered 429 so far.
    pub fn throttled(&self) -> u32 {
        self.inner.lock().map(|i| i.throttled).unwrap_or(0)
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        self.inner.lock().map(|i| i.issued).unwrap_or(0)
    }

    /// Phone calls created.
    pub fn phonecalls(&self) -> Vec<Value> {
        self.inner
            .lock()
            .map(|i| i.phonecalls.clone())
            .unwrap_or_default()
    }
}
