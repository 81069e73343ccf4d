//! amoCRM / Kommo (API v4) call-logging connector.
//!
//! What it does: when a call ends, logs it with `POST /api/v4/calls` (a JSON array; up to
//! `max_jobs_per_delivery` calls per request, `uniq` = Kommutator's call id, `request_id` =
//! position, so each element's result is matched back to its job). amoCRM files a call in the
//! card of the contact or company with that number (last 10 digits); a call to a number
//! nobody has is not logged, and the job is dead-lettered with that reason. Calls without a
//! phone number (withheld, internal) are skipped: amoCRM has nothing to file them under.
//! Customer lookup: `GET /api/v4/contacts?query=<digits>`, retried with the 10-digit tail;
//! `204 No Content` means no match.
//!
//! Auth: a long-lived token, or OAuth 2.0 with the access token refreshed once on 401 and the
//! rotated (single-use) refresh token stored in `crm_tokens` by compare-and-swap, so two
//! nodes never both spend it. Rate: a token bucket below the account's 7 requests/s; a 429
//! pauses the connector through the outbox worker.
//!
//! Delivery is at least once: amoCRM cannot read calls back, so a call whose answer was lost
//! may be logged twice (with the same `uniq`).
//!
//! What it is not: an amoCRM SDK; it creates no contacts or unsorted leads.

mod mapping;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use outbox::{
    BoxFuture, Connector, ConnectorError, CrmCustomer, Delivery, ErrorKind, Job, RateLimiter, Step,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Mutex;

pub use mapping::MapSettings;

/// How requests are authorized.
#[derive(Clone)]
pub enum Auth {
    /// A long-lived token of a private integration (no refresh).
    LongLived {
        /// The token.
        token: String,
    },
    /// OAuth 2.0 integration credentials.
    OAuth(OAuthApp),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::LongLived { .. } => f.write_str("LongLived(********)"),
            Auth::OAuth(app) => write!(f, "OAuth({})", app.client_id),
        }
    }
}

/// OAuth integration credentials.
#[derive(Clone)]
pub struct OAuthApp {
    /// Integration id.
    pub client_id: String,
    /// Integration secret; only sent to the token endpoint.
    pub client_secret: String,
    /// The integration's redirect URI (amoCRM wants it on refresh too).
    pub redirect_uri: String,
    /// Tokens used when storage has none yet.
    pub initial_access_token: Option<String>,
    /// See `initial_access_token`.
    pub initial_refresh_token: Option<String>,
}

/// The connector's configuration (the binary fills it from `[[crm.amocrm]]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Instance name (outbox connector column), e.g. `amocrm`.
    pub name: String,
    /// The account's base URL, e.g. `https://acme.amocrm.ru`.
    pub base_url: String,
    /// How requests are authorized.
    pub auth: Auth,
    /// `source` shown in the call card.
    pub source: String,
    /// Agent extension → amoCRM user id.
    pub users: HashMap<String, u64>,
    /// User credited when no agent maps (none: the call shows as made by a robot).
    pub default_user_id: Option<u64>,
    /// Request timeout.
    pub timeout: Duration,
    /// Requests per second (the account allows 7).
    pub rate_per_sec: f64,
    /// Calls per `/api/v4/calls` request (at most 50).
    pub max_jobs_per_delivery: usize,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration cannot work.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: Option<String>,
}

/// The connector; see the crate documentation.
pub struct AmoCrm {
    config: Config,
    map: MapSettings,
    http: reqwest::Client,
    limiter: RateLimiter,
    storage: storage::Storage,
    tokens: Mutex<Option<Tokens>>,
}

/// Builds the connector. `storage` keeps the OAuth tokens.
pub fn build(config: Config, storage: storage::Storage) -> Result<Arc<AmoCrm>, BuildError> {
    let url = reqwest::Url::parse(&config.base_url)
        .map_err(|err| BuildError::Invalid(format!("amoCRM base_url: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BuildError::Invalid(
            "amoCRM base_url must be https".to_owned(),
        ));
    }
    if config.max_jobs_per_delivery == 0 || config.max_jobs_per_delivery > 50 {
        return Err(BuildError::Invalid(
            "max_jobs_per_delivery must be 1..=50".to_owned(),
        ));
    }
    let http = outbox::http::client(config.timeout).map_err(BuildError::Invalid)?;
    let limiter = RateLimiter::new(config.rate_per_sec, 1);
    let map = MapSettings {
        source: config.source.clone(),
        users: config.users.clone(),
        default_user_id: config.default_user_id,
    };
    Ok(Arc::new(AmoCrm {
        config,
        map,
        http,
        limiter,
        storage,
        tokens: Mutex::new(None),
    }))
}

fn storage_error(err: storage::StorageError) -> ConnectorError {
    ConnectorError::transient(ErrorKind::Unavailable, format!("storage: {err}"))
}

/// What one request returned.
enum Answer {
    Json(Value),
    NoContent,
}

impl AmoCrm {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    async fn access_token(&self) -> Result<String, ConnectorError> {
        let app = match &self.config.auth {
            Auth::LongLived { token } => return Ok(token.clone()),
            Auth::OAuth(app) => app,
        };
        let mut tokens = self.tokens.lock().await;
        if let Some(tokens) = tokens.as_ref() {
            return Ok(tokens.access.clone());
        }
        let stored = self
            .storage
            .get_crm_token(&self.config.name)
            .await
            .map_err(storage_error)?;
        let loaded = match stored {
            Some(stored) => Tokens {
                access: stored.access_token,
                refresh: stored.refresh_token,
            },
            None => {
                let Some(access) = app.initial_access_token.clone() else {
                    return Err(ConnectorError::transient(
                        ErrorKind::Auth,
                        "no amoCRM tokens: set access_token and refresh_token",
                    ));
                };
                let refresh = app.initial_refresh_token.clone();
                self.storage
                    .save_crm_token(&storage::CrmToken {
                        connector: self.config.name.clone(),
                        access_token: access.clone(),
                        refresh_token: refresh.clone(),
                        expires_at: None,
                        extra: json!({ "base_url": self.config.base_url }),
                        updated_at: chrono::Utc::now(),
                    })
                    .await
                    .map_err(storage_error)?;
                Tokens { access, refresh }
            }
        };
        let access = loaded.access.clone();
        *tokens = Some(loaded);
        Ok(access)
    }

    /// Refreshes after a 401 on `used_access`; if another task or node rotated the tokens
    /// meanwhile, their tokens are used instead of spending the refresh token again.
    async fn refresh(&self, used_access: &str) -> Result<(), ConnectorError> {
        let Auth::OAuth(app) = &self.config.auth else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                "amoCRM refused the long-lived token (expired or revoked): generate a new one",
            ));
        };
        let mut tokens = self.tokens.lock().await;
        if let Some(current) = tokens.as_ref() {
            if current.access != used_access {
                return Ok(());
            }
        }
        let stored = self
            .storage
            .get_crm_token(&self.config.name)
            .await
            .map_err(storage_error)?;
        if let Some(stored) = &stored {
            if stored.access_token != used_access {
                *tokens = Some(Tokens {
                    access: stored.access_token.clone(),
                    refresh: stored.refresh_token.clone(),
                });
                return Ok(());
            }
        }
        let Some(refresh) = tokens.as_ref().and_then(|t| t.refresh.clone()) else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                "the amoCRM access token expired and there is no refresh token",
            ));
        };
        self.limiter.acquire().await;
        let response = self
            .http
            .post(self.url("/oauth2/access_token"))
            .json(&json!({
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "redirect_uri": app.redirect_uri,
            }))
            .send()
            .await
            .map_err(outbox::http::send_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(outbox::http::send_error)?;
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(outbox::http::status_error(status, &headers, &text));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (Some(access), Some(new_refresh)) = (
            body.get("access_token").and_then(Value::as_str),
            body.get("refresh_token").and_then(Value::as_str),
        ) else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                format!(
                    "refreshing the amoCRM token failed (HTTP {}): {} (re-authorize the integration if this persists)",
                    status.as_u16(),
                    outbox::http::shorten(&text)
                ),
            ));
        };
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_i64)
            .unwrap_or(86_400);
        let now = chrono::Utc::now();
        let token = storage::CrmToken {
            connector: self.config.name.clone(),
            access_token: access.to_owned(),
            refresh_token: Some(new_refresh.to_owned()),
            expires_at: Some(now + chrono::Duration::seconds(expires_in)),
            extra: json!({ "base_url": self.config.base_url }),
            updated_at: now,
        };
        let won = self
            .storage
            .rotate_crm_token(&token, &refresh)
            .await
            .map_err(storage_error)?;
        if won {
            tracing::info!(connector = %self.config.name, "amoCRM access token refreshed; the new refresh token is stored.");
            *tokens = Some(Tokens {
                access: access.to_owned(),
                refresh: Some(new_refresh.to_owned()),
            });
        } else {
            let stored = self
                .storage
                .get_crm_token(&self.config.name)
                .await
                .map_err(storage_error)?;
            *tokens = stored.map(|s| Tokens {
                access: s.access_token,
                refresh: s.refresh_token,
            });
        }
        Ok(())
    }

    /// Sends one request, refreshing the token once on 401.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            self.limiter.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(&token)
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(outbox::http::send_error)?;
            let status = response.status();
            if status == StatusCode::NO_CONTENT {
                return Ok(Answer::NoContent);
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.refresh(&token).await?;
                continue;
            }
            let headers = response.headers().clone();
            let text = response.text().await.map_err(outbox::http::send_error)?;
            if !status.is_success() {
                return Err(outbox::http::status_error(status, &headers, &text));
            }
            return serde_json::from_str(&text)
                .map(Answer::Json)
                .map_err(|err| {
                    ConnectorError::transient(
                        ErrorKind::Protocol,
                        format!("amoCRM answered with invalid JSON: {err}"),
                    )
                });
        }
    }

    async fn deliver_all(&self, jobs: &[Job]) -> Vec<Delivery> {
        let mut results: Vec<Option<Delivery>> = vec![None; jobs.len()];
        let mut elements = Vec::new();
        let mut positions = Vec::new();
        for (idx, job) in jobs.iter().enumerate() {
            if job.step != Step::CallEnded {
                results[idx] = Some(Ok(()));
                continue;
            }
            match mapping::call_element(&job.payload.call, elements.len(), &self.map) {
                Some(element) => {
                    elements.push(element);
                    positions.push(idx);
                }
                None => results[idx] = Some(Ok(())),
            }
        }
        if !elements.is_empty() {
            let body = Value::Array(elements);
            let answer = self
                .request(reqwest::Method::POST, "/api/v4/calls", &[], Some(&body))
                .await;
            let per_element = match answer {
                Ok(Answer::Json(answer)) => mapping::batch_results(&answer, positions.len()),
                Ok(Answer::NoContent) => mapping::batch_results(&Value::Null, positions.len()),
                Err(err) => vec![Err(err); positions.len()],
            };
            for (idx, result) in positions.into_iter().zip(per_element) {
                results[idx] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::transient(
                        ErrorKind::Protocol,
                        "job was not planned",
                    ))
                })
            })
            .collect()
    }

    async fn search(&self, digits: &str) -> Result<Vec<CrmCustomer>, ConnectorError> {
        let answer = self
            .request(
                reqwest::Method::GET,
                "/api/v4/contacts",
                &[("query", digits), ("limit", "50")],
                None,
            )
            .await?;
        Ok(match answer {
            Answer::NoContent => Vec::new(),
            Answer::Json(value) => mapping::contacts(&self.config.name, &value),
        })
    }
}

impl Connector for AmoCrm {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn steps(&self) -> &'static [Step] {
        &[Step::CallEnded]
    }

    fn max_batch(&self) -> usize {
        self.config.max_jobs_per_delivery
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.request(reqwest::Method::GET, "/api/v4/account", &[], None)
                .await
                .map(|_| ())
        })
    }

    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        Box::pin(async move {
            let digits = phone.digits();
            let found = self.search(&digits).await?;
            // amoCRM matches stored numbers by text: `8916…` is not found by `7916…`, its
            // 10-digit tail is.
            if found.is_empty() && digits.len() > 10 {
                return self.search(&digits[digits.len() - 10..]).await;
            }
            Ok(found)
        })
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(self.deliver_all(jobs))
    }
}
