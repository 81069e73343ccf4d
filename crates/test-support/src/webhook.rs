//! A fake webhook receiver: checks `X-Kommutator-Signature` itself (HMAC-SHA256 of
//! `"<t>.<body>"`, independent of the sender's code), deduplicates by `Idempotency-Key` and
//! records what arrived.
//!
//! Besides the shared [`Faults`] switch it can record a delivery and still answer 500
//! ([`FakeWebhookReceiver::lose_answers`]): a receiver that committed and then failed to
//! answer, which is what makes the sender repeat a delivery that did arrive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::faults::{serve, Faults};

/// One delivery as the receiver accepted it (first arrival of its key).
#[derive(Debug, Clone)]
pub struct Received {
    /// `Idempotency-Key`.
    pub key: String,
    /// `X-Kommutator-Event`.
    pub event: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// How many times this key arrived with a valid signature.
    pub arrivals: u32,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: BTreeMap<String, Received>,
    order: Vec<String>,
    bad_signatures: u32,
    lose_answers: u32,
}

#[derive(Clone)]
struct AppState {
    secret: Arc<Vec<u8>>,
    inner: Arc<Mutex<Inner>>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FakeWebhookReceiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// The misbehaviour switch.
    pub faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn signature_ok(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (now - t).abs() > 300 {
        return false;
    }
    v1.iter().any(|sig| {
        let Ok(bytes) = hex::decode(sig) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&bytes).is_ok()
    })
}

async fn hook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let Ok(mut inner) = state.inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    if !signature_ok(&state.secret, &header("x-kommutator-signature"), &body) {
        inner.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let key = header("idempotency-key");
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    // A call record carries its key in the body; a domain event is keyed by its own id.
    let body_key = match json.get("idempotency_key").and_then(|k| k.as_str()) {
        Some(k) => Some(k.to_owned()),
        None => json
            .get("id")
            .and_then(|id| id.as_str())
            .and_then(|id| key.rsplit_once(":event:").filter(|(_, k)| *k == id))
            .map(|_| key.clone()),
    };
    if key.is_empty() || body_key.as_deref() != Some(key.as_str()) {
        return StatusCode::BAD_REQUEST;
    }
    let event = header("x-kommutator-event");
    if let Some(seen) = inner.by_key.get_mut(&key) {
        seen.arrivals += 1;
    } else {
        inner.order.push(key.clone());
        inner.by_key.insert(
            key.clone(),
            Received {
                key,
                event,
                body: json,
                arrivals: 1,
            },
        );
    }
    if inner.lose_answers > 0 {
        inner.lose_answers -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl FakeWebhookReceiver {
    /// Starts a receiver on `127.0.0.1:0` that accepts `POST /hook` signed with `secret`.
    pub async fn start(secret: &str) -> std::io::Result<FakeWebhookReceiver> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = AppState {
            secret: Arc::new(secret.as_bytes().to_vec()),
            inner: inner.clone(),
        };
        let faults = Faults::default();
        let router = Router::new().route("/hook", post(hook)).with_state(state);
        let (addr, task) = serve(router, faults.clone()).await?;
        Ok(FakeWebhookReceiver {
            addr,
            inner,
            faults,
            task,
        })
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Records the next `n` valid deliveries but answers them 500.
    pub fn lose_answers(&self, n: u32) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.lose_answers = n;
        }
    }

    /// Distinct deliveries in first-arrival order.
    pub fn received(&self) -> Vec<Received> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner
            .order
            .iter()
            .filter_map(|k| inner.by_key.get(k).cloned())
            .collect()
    }

    /// Requests refused for a bad or missing signature.
    pub fn bad_signatures(&self) -> u32 {
        self.inner.lock().map(|i| i.bad_signatures).unwrap_or(0)
    }
}
