//! Dynamics 365 (Dataverse Web API v9.2) connector: a `phonecall` activity per finished call.
//!
//! What it does: when a call ends, finds the contact by phone (`$filter` on `telephone1`,
//! `mobilephone`, `telephone2`, exact E.164), then `POST /api/data/v9.2/phonecalls` with the
//! activity parties deep-inserted (`phonecall_activity_parties`: the contact bound with
//! `partyid_contact@odata.bind`, or an unresolved party with only `addressused`; the agent
//! with `partyid_systemuser@odata.bind`), sender/recipient swapped for outbound calls,
//! `directioncode` false for inbound, duration in minutes (exact seconds in `description`),
//! and `regardingobjectid_contact_phonecall@odata.bind` when the contact is known.
//! Auth: Entra ID client credentials; the token is cached until a minute before it expires
//! and fetched again on a 401. Throttling: 429 with `Retry-After` pauses the connector for at
//! least that long (the outbox worker honours it).
//!
//! Delivery is at least once: a create whose answer was lost may be repeated.
//! What it is not: a CIF softphone; the activity is not completed (statecode) by this crate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use outbox::{
    BoxFuture, CallDto, Connector, ConnectorError, CrmCustomer, Delivery, ErrorKind, Job, Step,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The connector's configuration (the binary fills it from `[[crm.dynamics]]`).
#[derive(Clone)]
pub struct Config {
    /// Instance name (outbox connector column), e.g. `dynamics`.
    pub name: String,
    /// The organization URL, e.g. `https://acme.crm4.dynamics.com`.
    pub base_url: String,
    /// The token endpoint, `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Agent extension → systemuser GUID.
    pub users: HashMap<String, String>,
    /// Request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
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

/// The connector; see the crate documentation.
pub struct Dynamics {
    config: Config,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

/// Builds the connector.
pub fn build(config: Config) -> Result<Arc<Dynamics>, BuildError> {
    for (what, url) in [
        ("base_url", &config.base_url),
        ("token_url", &config.token_url),
    ] {
        reqwest::Url::parse(url).map_err(|err| BuildError::Invalid(format!("{what}: {err}")))?;
    }
    let http = outbox::http::client(config.timeout).map_err(BuildError::Invalid)?;
    Ok(Arc::new(Dynamics {
        config,
        http,
        token: Mutex::new(None),
    }))
}

/// An OData string literal: quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `$filter` finding contacts with this number in any phone column.
pub fn phone_filter(e164: &str) -> String {
    let lit = literal(e164);
    format!("telephone1 eq {lit} or mobilephone eq {lit} or telephone2 eq {lit}")
}

/// The `phonecall` body for a finished call; `contact` is the matched contact's GUID.
pub fn phonecall(call: &CallDto, contact: Option<&str>, users: &HashMap<String, String>) -> Value {
    let number = call.customer_number.clone().unwrap_or_default();
    let inbound = call.is_inbound();
    let customer_party = match contact {
        Some(id) => json!({ "partyid_contact@odata.bind": format!("/contacts({id})") }),
        None => json!({ "addressused": number }),
    };
    let agent_party = call
        .responsible_agent()
        .and_then(|agent| users.get(agent))
        .map(|id| json!({ "partyid_systemuser@odata.bind": format!("/systemusers({id})") }));
    // participationtypemask: 1 = sender (from), 2 = recipient (to).
    let (customer_mask, agent_mask) = if inbound { (1, 2) } else { (2, 1) };
    let mut parties = vec![with_mask(customer_party, customer_mask)];
    if let Some(agent) = agent_party {
        parties.push(with_mask(agent, agent_mask));
    }
    let outcome = call.outcome.as_deref().unwrap_or("unknown");
    let mut description = format!(
        "Call {} ({outcome}), talk {} s, wait {} s",
        call.call_id, call.talk_secs, call.wait_secs
    );
    if let Some(queue) = &call.queue {
        description.push_str(&format!(", queue {queue}"));
    }
    if let Some(link) = &call.recording_url {
        description.push_str(&format!(", recording {link}"));
    }
    let subject = format!(
        "{} call {number} ({outcome})",
        if inbound { "Inbound" } else { "Outbound" }
    );
    let mut body = json!({
        "subject": subject,
        "phonenumber": number,
        "directioncode": !inbound,
        "actualstart": call.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "actualdurationminutes": (call.talk_secs.max(0) + 59) / 60,
        "leftvoicemail": call.outcome.as_deref() == Some("voicemail"),
        "description": description,
        "phonecall_activity_parties": parties,
    });
    if let Some(end) = call.ended_at {
        body["actualend"] = json!(end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let Some(queue) = &call.queue {
        body["category"] = json!(queue);
    }
    if let Some(id) = contact {
        body["regardingobjectid_contact_phonecall@odata.bind"] = json!(format!("/contacts({id})"));
    }
    body
}

fn with_mask(mut party: Value, mask: u8) -> Value {
    party["participationtypemask"] = json!(mask);
    party
}

impl Dynamics {
    async fn token(&self, renew: bool) -> Result<String, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if !renew && *until > Instant::now() {
                return Ok(token.clone());
            }
        }
        let scope = format!("{}/.default", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .post(&self.config.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.as_str()),
                ("scope", scope.as_str()),
            ])
            .send()
            .await
            .map_err(outbox::http::send_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(outbox::http::send_error)?;
        if !status.is_success() {
            return Err(match outbox::http::status_error(status, &headers, &text) {
                ConnectorError::Rejected { message } => ConnectorError::transient(
                    ErrorKind::Auth,
                    format!("Entra ID refused the client credentials: {message}"),
                ),
                other => other,
            });
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let Some(token) = body.get("access_token").and_then(Value::as_str) else {
            return Err(ConnectorError::transient(
                ErrorKind::Auth,
                "the token endpoint returned no access_token",
            ));
        };
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3599);
        // A minute early, so no request leaves with a token about to expire.
        let until = Instant::now() + Duration::from_secs(expires_in.saturating_sub(60));
        *cached = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        let mut renew = false;
        loop {
            let token = self.token(renew).await?;
            let mut request = self
                .http
                .request(
                    method.clone(),
                    format!(
                        "{}/api/data/v9.2/{path_and_query}",
                        self.config.base_url.trim_end_matches('/')
                    ),
                )
                .bearer_auth(token)
                .header("Accept", "application/json")
                .header("OData-MaxVersion", "4.0")
                .header("OData-Version", "4.0");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(outbox::http::send_error)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            let headers = response.headers().clone();
            let text = response.text().await.map_err(outbox::http::send_error)?;
            if !status.is_success() {
                return Err(outbox::http::status_error(status, &headers, &text));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|err| {
                ConnectorError::transient(
                    ErrorKind::Protocol,
                    format!("Dataverse answered with invalid JSON: {err}"),
                )
            });
        }
    }

    async fn contacts(&self, e164: &str) -> Result<Vec<Value>, ConnectorError> {
        let query: String = reqwest::Url::parse_with_params(
            "http://x/contacts",
            &[
                ("$select", "contactid,fullname,_ownerid_value"),
                ("$filter", phone_filter(e164).as_str()),
                ("$top", "5"),
            ],
        )
        .map(|u| format!("contacts?{}", u.query().unwrap_or_default()))
        .map_err(|err| ConnectorError::rejected(format!("cannot build the query: {err}")))?;
        let answer = self.request(reqwest::Method::GET, &query, None).await?;
        Ok(answer
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    async fn deliver_one(&self, job: &Job) -> Delivery {
        if job.step != Step::CallEnded {
            return Ok(());
        }
        let call = &job.payload.call;
        let contact = match call.customer_e164() {
            Some(e164) => self
                .contacts(&e164.to_string())
                .await?
                .first()
                .and_then(|c| c.get("contactid"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => None,
        };
        let body = phonecall(call, contact.as_deref(), &self.config.users);
        self.request(reqwest::Method::POST, "phonecalls", Some(&body))
            .await
            .map(|_| ())
    }
}

impl Connector for Dynamics {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn steps(&self) -> &'static [Step] {
        &[Step::CallEnded]
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.request(reqwest::Method::GET, "WhoAmI", None)
                .await
                .map(|_| ())
        })
    }

    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        Box::pin(async move {
            let rows = self.contacts(&phone.to_string()).await?;
            Ok(rows
                .iter()
                .filter_map(|c| {
                    Some(CrmCustomer {
                        connector: self.config.name.clone(),
                        entity_type: "contact".to_owned(),
                        entity_id: c.get("contactid")?.as_str()?.to_owned(),
                        name: c.get("fullname").and_then(Value::as_str).map(str::to_owned),
                        responsible: c
                            .get("_ownerid_value")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                })
                .collect())
        })
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                results.push(self.deliver_one(job).await);
            }
            results
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_quote_literals() {
        assert_eq!(
            phone_filter("+79161234567"),
            "telephone1 eq '+79161234567' or mobilephone eq '+79161234567' or telephone2 eq '+79161234567'"
        );
        assert_eq!(literal("O'Brien"), "'O''Brien'");
    }
}
