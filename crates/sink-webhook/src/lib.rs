//! The generic outbound webhook: every call step as a signed JSON POST to one URL.
//!
//! What it does: for each outbox job it POSTs [`Payload`] (the event name, the idempotency key
//! and the call snapshot) with
//! - `X-Kommutator-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with
//!   the shared secret, so the receiver can check origin and freshness;
//! - `Idempotency-Key: <connector:call_id:step>`, stable across retries, so the receiver can
//!   drop repeats (a retry after a lost answer sends the same key with a new signature);
//! - `X-Kommutator-Event: call_started | call_ended`.
//!
//! A 2xx answer delivers the job. 429 and 5xx, timeouts and refused connections pause the
//! connector (the outbox worker retries with backoff, honouring `Retry-After`); 401/403 are
//! treated as a credentials problem (retried); any other 4xx dead-letters the job.
//! The wire format is documented for receivers in `docs/webhooks.md`.
//!
//! What it is not: a CRM. It looks nobody up ([`Connector::find_customers`] returns nothing)
//! and it does not deduplicate for the receiver: delivery is at least once, the key makes it
//! exactly once on the receiving side.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use outbox::{
    BoxFuture, CallDto, Connector, ConnectorError, CrmCustomer, Delivery, EventJob, Job,
    RateLimiter, Step,
};
use serde::Serialize;
use sha2::Sha256;

/// Version of [`Payload`]; bumped on incompatible changes.
pub const PAYLOAD_VERSION: u32 = 1;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Kommutator-Signature";
/// The idempotency key header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The event name header.
pub const EVENT_HEADER: &str = "X-Kommutator-Event";

/// The connector's configuration (the binary fills it from `[[crm.webhook]]`).
#[derive(Clone)]
pub struct Config {
    /// Instance name (outbox connector column), e.g. `webhook`.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// The shared HMAC secret.
    pub secret: String,
    /// Send `call_started` too (otherwise only `call_ended`).
    pub call_started: bool,
    /// Request timeout.
    pub timeout: Duration,
    /// Requests per second at most (`0` = unlimited).
    pub rate_per_sec: f64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token in its query and the secret is a secret: neither is logged.
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("call_started", &self.call_started)
            .field("timeout", &self.timeout)
            .field("rate_per_sec", &self.rate_per_sec)
            .finish_non_exhaustive()
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// The JSON body of one delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Payload<'a> {
    /// [`PAYLOAD_VERSION`].
    pub version: u32,
    /// `call_started`, `call_ended` or `ping` (the healthcheck).
    pub event: &'a str,
    /// Same value as the `Idempotency-Key` header.
    pub idempotency_key: &'a str,
    /// The call; absent for `ping`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<&'a CallDto>,
}

/// The `X-Kommutator-Signature` value for `body` sent at `unix_secs`.
pub fn signature(secret: &[u8], unix_secs: i64, body: &[u8]) -> String {
    format!("t={unix_secs},v1={}", hex_hmac(secret, unix_secs, body))
}

fn hex_hmac(secret: &[u8], unix_secs: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice only fails for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` matches the body.
    #[error("signature mismatch")]
    Mismatch,
}

/// Verifies a signature header the way a receiver should: parse, check freshness, compare in
/// constant time. Several `v1=` values are accepted (one matching is enough), so a sender can
/// sign with an old and a new secret while it is rotated.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now_unix - t).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    for sig in sigs {
        let Ok(bytes) = hex::decode(sig) else {
            continue;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return Err(VerifyError::Mismatch);
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

/// The connector; see the crate documentation.
pub struct Webhook {
    config: Config,
    http: reqwest::Client,
    limiter: RateLimiter,
}

/// Builds the connector.
pub fn build(config: Config) -> Result<Arc<Webhook>, BuildError> {
    let url = reqwest::Url::parse(&config.url)
        .map_err(|err| BuildError::Invalid(format!("webhook url: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BuildError::Invalid(
            "webhook url must be http or https".to_owned(),
        ));
    }
    if config.secret.len() < 16 {
        return Err(BuildError::Invalid(
            "webhook secret must be at least 16 characters".to_owned(),
        ));
    }
    let http = outbox::http::client(config.timeout).map_err(BuildError::Invalid)?;
    let limiter = RateLimiter::new(config.rate_per_sec, 1);
    Ok(Arc::new(Webhook {
        config,
        http,
        limiter,
    }))
}

impl Webhook {
    async fn post(&self, event: &str, key: &str, call: Option<&CallDto>) -> Delivery {
        let body = serde_json::to_vec(&Payload {
            version: PAYLOAD_VERSION,
            event,
            idempotency_key: key,
            call,
        })
        .map_err(|err| ConnectorError::rejected(format!("cannot encode the payload: {err}")))?;
        self.send(event, key, body).await
    }

    /// POSTs `body`, signed, with the idempotency and event headers.
    async fn send(&self, event: &str, key: &str, body: Vec<u8>) -> Delivery {
        self.limiter.acquire().await;
        // Signed at send time, not at enqueue: the timestamp says when this attempt left, so a
        // receiver's freshness window is not eaten by an outage.
        let now = chrono::Utc::now().timestamp();
        let response = self
            .http
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(self.config.secret.as_bytes(), now, &body),
            )
            .header(IDEMPOTENCY_HEADER, key)
            .header(EVENT_HEADER, event)
            .body(body)
            .send()
            .await
            .map_err(outbox::http::send_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Err(outbox::http::status_error(status, &headers, &text))
    }

    /// Sends jobs one by one, in order; after a connector-wide (transient) failure the rest of
    /// the batch fails the same way without being tried.
    async fn each<'a, J>(
        &'a self,
        jobs: &'a [J],
        one: impl Fn(&'a J) -> BoxFuture<'a, Delivery>,
    ) -> Vec<Delivery> {
        let mut results = Vec::with_capacity(jobs.len());
        let mut failed: Option<ConnectorError> = None;
        for job in jobs {
            if let Some(err) = &failed {
                results.push(Err(err.clone()));
                continue;
            }
            let res = one(job).await;
            if let Err(err @ ConnectorError::Transient { .. }) = &res {
                failed = Some(err.clone());
            }
            results.push(res);
        }
        results
    }
}

impl Connector for Webhook {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn steps(&self) -> &'static [Step] {
        if self.config.call_started {
            &[Step::CallStarted, Step::CallEnded]
        } else {
            &[Step::CallEnded]
        }
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            let key = format!(
                "{}:ping:{}",
                self.config.name,
                chrono::Utc::now().timestamp()
            );
            self.post("ping", &key, None).await
        })
    }

    fn find_customers(
        &self,
        _phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(self.each(jobs, move |job| {
            Box::pin(self.post(job.step.as_str(), &job.key, Some(&job.payload.call)))
        }))
    }
}

/// The same webhook for domain events (`docs/events.md`): each event job is POSTed as the
/// event object itself, with the signature and `Idempotency-Key` headers of call records and
/// `X-Kommutator-Event: <kind>` (e.g. `call.answered`). Call records are not sent by it; a
/// receiver that wants both configures both.
pub struct EventWebhook(Arc<Webhook>);

/// Builds the event connector (`call_started` in `config` is not used).
pub fn build_events(config: Config) -> Result<Arc<EventWebhook>, BuildError> {
    Ok(Arc::new(EventWebhook(build(config)?)))
}

impl Connector for EventWebhook {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn steps(&self) -> &'static [Step] {
        &[Step::Event]
    }

    fn max_batch(&self) -> usize {
        // Events are small and many; one claim round trip for a handful of them.
        20
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        self.0.healthcheck()
    }

    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        self.0.find_customers(phone)
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        let refused = ConnectorError::rejected("an event webhook takes no call records");
        Box::pin(async move { vec![Err(refused); jobs.len()] })
    }

    fn deliver_events<'a>(&'a self, jobs: &'a [EventJob]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(self.0.each(jobs, move |job| {
            Box::pin(async move {
                let body = serde_json::to_vec(&job.event).map_err(|err| {
                    ConnectorError::rejected(format!("cannot encode the event: {err}"))
                })?;
                self.0.send(&job.kind, &job.key, body).await
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_fail_as_expected() {
        let secret = b"0123456789abcdef";
        let body = br#"{"event":"call_ended"}"#;
        let header = signature(secret, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        type Case<'a> = (&'a [u8], &'a str, &'a [u8], i64, Result<(), VerifyError>);
        let cases: [Case; 6] = [
            (secret, &header, body, 1_700_000_010, Ok(())),
            (
                b"another-secret!!",
                &header,
                body,
                1_700_000_010,
                Err(VerifyError::Mismatch),
            ),
            (
                secret,
                &header,
                b"{}",
                1_700_000_010,
                Err(VerifyError::Mismatch),
            ),
            (
                secret,
                &header,
                body,
                1_700_001_000,
                Err(VerifyError::Stale),
            ),
            (
                secret,
                "v1=00",
                body,
                1_700_000_000,
                Err(VerifyError::Malformed),
            ),
            (
                secret,
                "t=1700000000",
                body,
                1_700_000_000,
                Err(VerifyError::Malformed),
            ),
        ];
        for (key, header, body, now, expected) in cases {
            assert_eq!(verify(key, header, body, now, 300), expected, "{header}");
        }
    }

    #[test]
    fn known_vector() {
        // `printf '0.The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac key`
        assert_eq!(
            signature(b"key", 0, b"The quick brown fox jumps over the lazy dog"),
            "t=0,v1=8511f28f7a1949f0c42772b447d68b2daf760f5f0439a20a17e3b4e7cd395763"
        );
    }
}
