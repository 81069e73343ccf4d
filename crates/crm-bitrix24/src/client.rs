//! The Bitrix24 REST client: authorization (webhook or OAuth app with refresh-token rotation),
//! the rate limit, `batch`, and Bitrix24's error codes mapped to outbox error kinds.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use outbox::{ConnectorError, ErrorKind, RateLimiter};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// How requests are authorized.
#[derive(Clone)]
pub enum Auth {
    /// Inbound webhook: `https://<portal>/rest/<user_id>/<code>/`; the code is a secret.
    Webhook {
        /// The webhook URL, with a trailing slash.
        url: String,
    },
    /// A local or marketplace application.
    OAuth(OAuthApp),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Webhook { .. } => f.write_str("Webhook(********)"),
            Auth::OAuth(app) => write!(f, "OAuth({})", app.portal_url),
        }
    }
}

/// OAuth application credentials and endpoints.
#[derive(Clone)]
pub struct OAuthApp {
    /// The portal's REST endpoint (`client_endpoint`), e.g. `https://acme.bitrix24.ru/rest/`.
    pub portal_url: String,
    /// The token endpoint, normally `https://oauth.bitrix.info/oauth/token/`.
    pub token_url: String,
    /// Application id (`local.65f0…`).
    pub client_id: String,
    /// Application secret; only ever sent to the token endpoint.
    pub client_secret: String,
    /// Tokens from the installation, used when storage has none yet.
    pub initial_access_token: Option<String>,
    /// Refresh token from the installation, used when storage has none yet.
    pub initial_refresh_token: Option<String>,
}

/// A Bitrix24 error body: `{"error": "...", "error_description": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B24Error {
    /// `error`.
    pub code: String,
    /// `error_description`.
    pub description: String,
}

/// The answer of one `batch` request.
#[derive(Debug, Default, Clone)]
pub struct BatchAnswer {
    /// `result.result`: command key → result.
    pub results: BTreeMap<String, Value>,
    /// `result.result_error`: command key → error.
    pub errors: BTreeMap<String, B24Error>,
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: Option<String>,
}

/// See the module documentation.
pub struct Client {
    connector: String,
    auth: Auth,
    http: reqwest::Client,
    limiter: RateLimiter,
    storage: storage::Storage,
    tokens: Mutex<Option<Tokens>>,
}

/// What one POST returned.
enum Answer {
    Ok(Value),
    ExpiredToken,
}

impl Client {
    /// A client; nothing is sent until the first call.
    pub fn new(
        connector: &str,
        auth: Auth,
        timeout: Duration,
        limiter: RateLimiter,
        storage: storage::Storage,
    ) -> Result<Client, String> {
        Ok(Client {
            connector: connector.to_owned(),
            auth,
            http: outbox::http::client(timeout)?,
            limiter,
            storage,
            tokens: Mutex::new(None),
        })
    }

    /// Calls one method; returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ConnectorError> {
        let mut refreshed = false;
        loop {
            let access = self.access_token().await?;
            match self.post(method, &params, access.as_deref()).await? {
                Answer::Ok(body) => return Ok(body.get("result").cloned().unwrap_or(Value::Null)),
                Answer::ExpiredToken if !refreshed => {
                    self.refresh(access.as_deref()).await?;
                    refreshed = true;
                }
                Answer::ExpiredToken => {
                    return Err(ConnectorError::transient(
                        ErrorKind::Auth,
                        "the access token expired again right after a refresh",
                    ));
                }
            }
        }
    }

    /// Runs up to 50 commands (`key`, `method?query`) in one request with `halt=0`.
    pub async fn batch(
        &self,
        commands: &[(String, String)],
    ) -> Result<BatchAnswer, ConnectorError> {
        let cmd: serde_json::Map<String, Value> = commands
            .iter()
            .map(|(key, command)| (key.clone(), Value::String(command.clone())))
            .collect();
        let result = self.call("batch", json!({ "halt": 0, "cmd": cmd })).await?;
        let mut answer = BatchAnswer::default();
        if let Some(results) = result.get("result").and_then(Value::as_object) {
            for (key, value) in results {
                answer.results.insert(key.clone(), value.clone());
            }
        }
        if let Some(errors) = result.get("result_error").and_then(Value::as_object) {
            for (key, value) in errors {
                answer.errors.insert(key.clone(), error_of(value));
            }
        }
        Ok(answer)
    }

    /// Which of these Kommutator call ids Bitrix24's call statistics already hold (finished).
    /// Each comes with the Bitrix24 `CALL_ID` it is linked to, when Bitrix24 started it.
    pub async fn finished_calls<'c>(
        &self,
        calls: &[(&'c str, Option<&str>)],
    ) -> Result<HashSet<&'c str>, ConnectorError> {
        let mut finished = HashSet::new();
        for chunk in calls.chunks(50) {
            let commands: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .map(|(idx, (id, linked))| {
                    // A call Bitrix24 started itself (click-to-call) carries its CALL_ID and no
                    // EXTERNAL_CALL_ID of ours.
                    let filter = match linked {
                        Some(b24_call_id) => ("FILTER[CALL_ID]", *b24_call_id),
                        None => ("FILTER[EXTERNAL_CALL_ID]", *id),
                    };
                    let query = form_urlencoded::Serializer::new(String::new())
                        .append_pair(filter.0, filter.1)
                        .append_pair("SELECT[]", "CALL_ID")
                        .finish();
                    (
                        format!("s{idx}"),
                        format!("voximplant.statistic.get?{query}"),
                    )
                })
                .collect();
            let answer = self.batch(&commands).await?;
            if let Some((key, error)) = answer.errors.iter().next() {
                return Err(ConnectorError::transient(
                    ErrorKind::Protocol,
                    format!(
                        "looking up finished calls failed ({key}): {} {}",
                        error.code, error.description
                    ),
                ));
            }
            for (idx, (id, _)) in chunk.iter().enumerate() {
                let rows = answer.results.get(&format!("s{idx}"));
                if rows
                    .and_then(Value::as_array)
                    .is_some_and(|rows| !rows.is_empty())
                {
                    finished.insert(*id);
                }
            }
        }
        Ok(finished)
    }

    /// Shows the call card to these users (`telephony.externalcall.show`).
    pub async fn show(&self, b24_call_id: &str, user_ids: &[u64]) -> Result<(), ConnectorError> {
        self.call(
            "telephony.externalcall.show",
            json!({ "CALL_ID": b24_call_id, "USER_ID": user_ids }),
        )
        .await
        .map(|_| ())
    }

    /// Hides the call card from these users (`telephony.externalcall.hide`).
    pub async fn hide(&self, b24_call_id: &str, user_ids: &[u64]) -> Result<(), ConnectorError> {
        self.call(
            "telephony.externalcall.hide",
            json!({ "CALL_ID": b24_call_id, "USER_ID": user_ids }),
        )
        .await
        .map(|_| ())
    }

    /// Creates a lead for a phone number (`crm.lead.add`); returns its id.
    pub async fn lead_add(
        &self,
        title: &str,
        phone: &str,
        assigned_by: u64,
    ) -> Result<u64, ConnectorError> {
        let res = self
            .call(
                "crm.lead.add",
                json!({ "fields": { "TITLE": title, "STATUS_ID": "NEW", "ASSIGNED_BY_ID": assigned_by,
                    "PHONE": [{ "VALUE": phone, "VALUE_TYPE": "WORK" }] } }),
            )
            .await?;
        lenient_u64(&res).ok_or_else(|| {
            ConnectorError::transient(ErrorKind::Protocol, "crm.lead.add returned no id")
        })
    }

    /// Creates a task (`tasks.task.add`), e.g. a callback for a missed call; returns its id.
    pub async fn task_add(
        &self,
        title: &str,
        responsible: u64,
        description: &str,
        crm_bindings: &[String],
    ) -> Result<u64, ConnectorError> {
        let res = self
            .call(
                "tasks.task.add",
                json!({ "fields": { "TITLE": title, "RESPONSIBLE_ID": responsible, "DESCRIPTION": description,
                    "UF_CRM_TASK": crm_bindings } }),
            )
            .await?;
        res.pointer("/task/id")
            .and_then(lenient_u64)
            .ok_or_else(|| {
                ConnectorError::transient(ErrorKind::Protocol, "tasks.task.add returned no task id")
            })
    }

    fn method_url(&self, method: &str) -> String {
        match &self.auth {
            Auth::Webhook { url } => format!("{}{method}", with_slash(url)),
            Auth::OAuth(app) => format!("{}{method}", with_slash(&app.portal_url)),
        }
    }

    async fn post(
        &self,
        method: &str,
        params: &Value,
        access: Option<&str>,
    ) -> Result<Answer, ConnectorError> {
        let mut body = params.clone();
        if let (Some(token), Some(map)) = (access, body.as_object_mut()) {
            map.insert("auth".to_owned(), Value::String(token.to_owned()));
        }
        self.limiter.acquire().await;
        let response = self
            .http
            .post(self.method_url(method))
            .json(&body)
            .send()
            .await
            .map_err(outbox::http::send_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(outbox::http::send_error)?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let error = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .map(|_| error_of(parsed.as_ref().unwrap_or(&Value::Null)));
        if let Some(error) = error {
            return self.classify(status, &headers, error).await;
        }
        if !status.is_success() {
            return Err(outbox::http::status_error(status, &headers, &text));
        }
        parsed.map(Answer::Ok).ok_or_else(|| {
            ConnectorError::transient(
                ErrorKind::Protocol,
                format!("{method}: the answer is not JSON"),
            )
        })
    }

    async fn classify(
        &self,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        error: B24Error,
    ) -> Result<Answer, ConnectorError> {
        let message = format!(
            "{}: {}",
            error.code,
            outbox::http::shorten(&error.description)
        );
        let retry_after = outbox::http::retry_after(headers);
        match error.code.as_str() {
            "expired_token" => Ok(Answer::ExpiredToken),
            "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" => {
                // Our bucket thought there was room; the portal's did not (another app on the
                // same IP shares it). Start from empty so the next request waits.
                self.limiter.drain().await;
                Err(ConnectorError::Transient {
                    kind: ErrorKind::RateLimited,
                    message,
                    retry_after,
                })
            }
            "NO_AUTH_FOUND"
            | "INVALID_CREDENTIALS"
            | "insufficient_scope"
            | "invalid_token"
            | "ACCESS_DENIED"
            | "user_access_error"
            | "invalid_grant"
            | "invalid_client"
            | "PAYMENT_REQUIRED" => Err(ConnectorError::transient(ErrorKind::Auth, message)),
            "WRONG_AUTH_TYPE" => Err(ConnectorError::transient(
                ErrorKind::Auth,
                format!("{message} (this method needs OAuth-app mode, not an inbound webhook)"),
            )),
            "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" | "OVERLOAD_LIMIT" => {
                Err(ConnectorError::Transient {
                    kind: ErrorKind::Unavailable,
                    message,
                    retry_after,
                })
            }
            _ if status.is_server_error() => Err(ConnectorError::Transient {
                kind: ErrorKind::Unavailable,
                message,
                retry_after,
            }),
            _ => Err(ConnectorError::rejected(message)),
        }
    }

    /// The access token to send (`None` in webhook mode).
    async fn access_token(&self) -> Result<Option<String>, ConnectorError> {
        let Auth::OAuth(app) = &self.auth else {
            return Ok(None);
        };
        let mut tokens = self.tokens.lock().await;
        if let Some(tokens) = tokens.as_ref() {
            return Ok(Some(tokens.access.clone()));
        }
        let stored = self
            .storage
            .get_crm_token(&self.connector)
            .await
            .map_err(storage_error)?;
        let loaded = match stored {
            Some(stored) => Tokens {
                access: stored.access_token,
                refresh: stored.refresh_token,
            },
            None => {
                let (Some(access), refresh) = (
                    app.initial_access_token.clone(),
                    app.initial_refresh_token.clone(),
                ) else {
                    return Err(ConnectorError::transient(
                        ErrorKind::Auth,
                        "no OAuth tokens: install the application or set access_token and refresh_token",
                    ));
                };
                let token = storage::CrmToken {
                    connector: self.connector.clone(),
                    access_token: access.clone(),
                    refresh_token: refresh.clone(),
                    expires_at: None,
                    extra: json!({ "portal_url": app.portal_url }),
                    updated_at: chrono::Utc::now(),
                };
                self.storage
                    .save_crm_token(&token)
                    .await
                    .map_err(storage_error)?;
                Tokens { access, refresh }
            }
        };
        let access = loaded.access.clone();
        *tokens = Some(loaded);
        Ok(Some(access))
    }

    /// Refreshes after `expired_token` on `used_access`. If another task (or node) already
    /// rotated the tokens, their result is used instead of spending the refresh token twice.
    async fn refresh(&self, used_access: Option<&str>) -> Result<(), ConnectorError> {
        let Auth::OAuth(app) = &self.auth else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                "expired_token in webhook mode",
            ));
        };
        let mut tokens = self.tokens.lock().await;
        if let Some(current) = tokens.as_ref() {
            if Some(current.access.as_str()) != used_access {
                return Ok(());
            }
        }
        let stored = self
            .storage
            .get_crm_token(&self.connector)
            .await
            .map_err(storage_error)?;
        if let Some(stored) = &stored {
            if Some(stored.access_token.as_str()) != used_access {
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
                "the access token expired and there is no refresh token",
            ));
        };
        self.limiter.acquire().await;
        let response = self
            .http
            .get(&app.token_url)
            .query(&[
                ("grant_type", "refresh_token"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_str()),
                ("refresh_token", refresh.as_str()),
            ])
            .send()
            .await
            .map_err(outbox::http::send_error)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(outbox::http::send_error)?;
        if let Some(code) = body.get("error").and_then(Value::as_str) {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                format!("refreshing the Bitrix24 token failed: {code} (re-install the application if this persists)"),
            ));
        }
        let (Some(access), Some(new_refresh)) = (
            body.get("access_token").and_then(Value::as_str),
            body.get("refresh_token").and_then(Value::as_str),
        ) else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                format!("the token endpoint answered {status} without tokens"),
            ));
        };
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let now = chrono::Utc::now();
        let token = storage::CrmToken {
            connector: self.connector.clone(),
            access_token: access.to_owned(),
            refresh_token: Some(new_refresh.to_owned()),
            expires_at: Some(now + chrono::Duration::seconds(expires_in)),
            extra: json!({ "portal_url": app.portal_url }),
            updated_at: now,
        };
        let won = self
            .storage
            .rotate_crm_token(&token, &refresh)
            .await
            .map_err(storage_error)?;
        if won {
            tracing::info!(connector = %self.connector, "Bitrix24 access token refreshed; the new refresh token is stored.");
            *tokens = Some(Tokens {
                access: access.to_owned(),
                refresh: Some(new_refresh.to_owned()),
            });
        } else {
            let stored = self
                .storage
                .get_crm_token(&self.connector)
                .await
                .map_err(storage_error)?;
            *tokens = stored.map(|s| Tokens {
                access: s.access_token,
                refresh: s.refresh_token,
            });
        }
        Ok(())
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

fn error_of(value: &Value) -> B24Error {
    B24Error {
        code: value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_owned(),
        description: value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

fn storage_error(err: storage::StorageError) -> ConnectorError {
    ConnectorError::transient(ErrorKind::Unavailable, format!("token storage: {err}"))
}

/// Bitrix24 sends ids as numbers or strings.
pub(crate) fn lenient_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}
