//! `[outbox]` and `[crm]`: where calls are delivered (CRMs, the built-in directory) and how
//! the outbox retries them. Parsed like the rest of the file: raw structs documented field by
//! field, resolved once into [`CrmSettings`] with secrets from the environment or files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, resolve_secret, ConfigError, Secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutbox {
    /// Jobs not delivered within this many hours go to the dead letters (listed, retried and
    /// discarded under `/api/v1/admin/outbox`). Default 72.
    pub max_age_hours: u64,
    /// Seconds a worker leases a job; after a crash the job is delivered again once its lease
    /// ends. Default 60.
    pub lease_secs: u64,
    /// Milliseconds between looks for new jobs when idle. Default 250.
    pub poll_interval_ms: u64,
    /// First retry delay in milliseconds after a CRM failure; it doubles, with jitter, up to
    /// `backoff_max_secs`. A `Retry-After` from the CRM wins. Default 500.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, in seconds. Default 300.
    pub backoff_max_secs: u64,
    /// This node's name in job leases; keep it stable across restarts and unique per node when
    /// several share a PostgreSQL database. Default: the host name.
    pub node_id: Option<String>,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_age_hours: 72,
            lease_secs: 60,
            poll_interval_ms: 250,
            backoff_initial_ms: 500,
            backoff_max_secs: 300,
            node_id: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCrm {
    /// The built-in directory: missed-call callback tasks in Kommutator's own storage.
    pub directory: RawDirectoryCrm,
    /// Bitrix24 portals, one `[[crm.bitrix24]]` table each.
    pub bitrix24: Vec<RawBitrix24>,
    /// amoCRM / Kommo accounts, one `[[crm.amocrm]]` table each.
    pub amocrm: Vec<RawAmoCrm>,
    /// Dynamics 365 (Dataverse) organizations, one `[[crm.dynamics]]` table each.
    pub dynamics: Vec<RawDynamics>,
    /// Signed JSON webhooks (`docs/webhooks.md`), one `[[crm.webhook]]` table each.
    pub webhook: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDirectoryCrm {
    /// Open a callback task for every customer whose inbound call nobody answered (one open
    /// task per customer; closed when the customer is reached). Default true.
    pub callback_tasks: bool,
}

impl Default for RawDirectoryCrm {
    fn default() -> Self {
        RawDirectoryCrm {
            callback_tasks: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBitrix24 {
    /// A short name for this portal, used in logs, metrics and the outbox, e.g. `"bitrix24"`.
    pub name: String,
    /// `"webhook"` (an inbound webhook of one user, scopes `telephony, crm, user`) or `"oauth"`
    /// (a local or marketplace application; needed where the portal requires application
    /// context for `telephony.externalcall.register`).
    pub mode: String,
    /// Webhook mode: the inbound webhook URL, `https://<portal>/rest/<user_id>/<code>/`. It is
    /// a secret: prefer `webhook_url_file` or the environment variable
    /// `KOMMUTATOR_CRM_<NAME>_WEBHOOK_URL`, which win over this.
    pub webhook_url: Option<String>,
    /// A file whose first line is the webhook URL.
    pub webhook_url_file: Option<PathBuf>,
    /// OAuth mode: the portal's REST endpoint (`client_endpoint`), e.g.
    /// `"https://acme.bitrix24.ru/rest/"`.
    pub portal_url: Option<String>,
    /// OAuth mode: the token endpoint. Default `"https://oauth.bitrix.info/oauth/token/"`.
    pub token_url: Option<String>,
    /// OAuth mode: the application id (`local.…`).
    pub client_id: Option<String>,
    /// OAuth mode: the application secret. Prefer `client_secret_file` or
    /// `KOMMUTATOR_CRM_<NAME>_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// A file whose first line is the application secret.
    pub client_secret_file: Option<PathBuf>,
    /// OAuth mode: the access token from the installation, used once to seed the token store
    /// (refreshed tokens are kept in the database). Or `KOMMUTATOR_CRM_<NAME>_ACCESS_TOKEN`.
    pub access_token: Option<String>,
    /// OAuth mode: the refresh token from the installation (seed, like `access_token`). Or
    /// `KOMMUTATOR_CRM_<NAME>_REFRESH_TOKEN`.
    pub refresh_token: Option<String>,
    /// The `application_token` Bitrix24 sends with events; needed to accept click-to-call
    /// (`ONEXTERNALCALLSTART`) at `/hooks/bitrix24/<name>`. Or
    /// `KOMMUTATOR_CRM_<NAME>_APPLICATION_TOKEN`. Default: events are refused.
    pub application_token: Option<String>,
    /// Bitrix24 user id credited with calls no mapped agent handled.
    pub default_user_id: u64,
    /// Agent extension → Bitrix24 user id, e.g. `{ "101" = 1269 }`. Unlisted extensions are
    /// sent as `USER_PHONE_INNER` (the user's internal number in Bitrix24). Default: none.
    #[serde(default)]
    pub users: BTreeMap<String, u64>,
    /// Let Bitrix24 create a lead for an unknown number (`CRM_CREATE`). Default true.
    #[serde(default = "yes")]
    pub crm_create: bool,
    /// Pop Bitrix24's call card for the registered user (`SHOW`). Default true.
    #[serde(default = "yes")]
    pub show_card: bool,
    /// `LINE_NUMBER` for calls without a known line, e.g. `"74951112233"`. Default: none.
    pub line_number: Option<String>,
    /// Seconds to wait for an answer. Default 15.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Requests per second; the cloud drains 2 per second (Enterprise 5). Default 2.
    #[serde(default = "default_b24_rate")]
    pub rate_per_sec: f64,
    /// Requests sent at once before `rate_per_sec` applies; the cloud blocks above 50, shared
    /// with other applications on the same IP. Default 10.
    #[serde(default = "default_b24_burst")]
    pub burst: u32,
    /// Jobs per delivery; they go out as `batch` requests of up to 50 commands. Default 40.
    #[serde(default = "default_b24_jobs")]
    pub jobs_per_batch: usize,
    /// Parallel delivery slots. Keep 1: a call's start and end must arrive in order. Default 1.
    #[serde(default = "one")]
    pub concurrency: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmoCrm {
    /// A short name for this account, used in logs, metrics and the outbox, e.g. `"amocrm"`.
    pub name: String,
    /// The account's address, e.g. `"https://acme.amocrm.ru"` (Kommo: `"https://acme.kommo.com"`).
    pub base_url: String,
    /// `"token"` (a long-lived token of a private integration) or `"oauth"` (integration
    /// credentials; the rotated refresh token is kept in the database).
    pub mode: String,
    /// Token mode: the long-lived token. It is a secret: prefer `token_file` or the
    /// environment variable `KOMMUTATOR_CRM_<NAME>_TOKEN`, which win over this.
    pub token: Option<String>,
    /// A file whose first line is the long-lived token.
    pub token_file: Option<PathBuf>,
    /// OAuth mode: the integration id.
    pub client_id: Option<String>,
    /// OAuth mode: the integration secret. Prefer `client_secret_file` or
    /// `KOMMUTATOR_CRM_<NAME>_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// A file whose first line is the integration secret.
    pub client_secret_file: Option<PathBuf>,
    /// OAuth mode: the integration's redirect URI (amoCRM checks it on every refresh).
    pub redirect_uri: Option<String>,
    /// OAuth mode: the access token from the authorization, used once to seed the token
    /// store. Or `KOMMUTATOR_CRM_<NAME>_ACCESS_TOKEN`.
    pub access_token: Option<String>,
    /// OAuth mode: the refresh token from the authorization (seed, like `access_token`). Or
    /// `KOMMUTATOR_CRM_<NAME>_REFRESH_TOKEN`.
    pub refresh_token: Option<String>,
    /// `source` shown in amoCRM's call card. Default `"Kommutator"`.
    #[serde(default = "default_source")]
    pub source: String,
    /// Agent extension → amoCRM user id, e.g. `{ "101" = 5012 }`. Default: none.
    #[serde(default)]
    pub users: BTreeMap<String, u64>,
    /// amoCRM user credited with calls no mapped agent handled. Default: none (amoCRM shows
    /// the call as made by a robot).
    pub default_user_id: Option<u64>,
    /// Seconds to wait for an answer. Default 15.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Requests per second; amoCRM allows 7 per account. Default 6.
    #[serde(default = "default_amo_rate")]
    pub rate_per_sec: f64,
    /// Calls per `POST /api/v4/calls` (at most 50). Default 50.
    #[serde(default = "default_amo_jobs")]
    pub jobs_per_batch: usize,
    /// Parallel delivery slots. Default 1.
    #[serde(default = "one")]
    pub concurrency: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDynamics {
    /// A short name for this organization, used in logs, metrics and the outbox, e.g.
    /// `"dynamics"`.
    pub name: String,
    /// The organization URL, e.g. `"https://acme.crm4.dynamics.com"`.
    pub base_url: String,
    /// The Entra ID token endpoint,
    /// `"https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token"`.
    pub token_url: String,
    /// The application (client) id of the app registration that is an application user of
    /// the organization.
    pub client_id: String,
    /// The client secret. Prefer `client_secret_file` or `KOMMUTATOR_CRM_<NAME>_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// A file whose first line is the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Agent extension → `systemuserid` GUID, e.g.
    /// `{ "101" = "00000000-0000-0000-0000-000000000101" }`. Default: none.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Seconds to wait for an answer. Default 15.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Parallel delivery slots. Default 1.
    #[serde(default = "one")]
    pub concurrency: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// A short name for this receiver, used in logs, metrics and the outbox, e.g. `"webhook"`.
    pub name: String,
    /// Where to POST, an http(s) URL.
    pub url: String,
    /// The shared HMAC-SHA256 key, at least 16 bytes. Prefer `secret_file` or
    /// `KOMMUTATOR_CRM_<NAME>_SECRET`.
    pub secret: Option<String>,
    /// A file whose first line is the shared key.
    pub secret_file: Option<PathBuf>,
    /// Send `call_started` as well as `call_ended`. Default false.
    #[serde(default)]
    pub call_started: bool,
    /// Seconds to wait for an answer. Default 15.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Requests per second at most; 0 is unlimited. Default 0.
    #[serde(default)]
    pub rate_per_sec: f64,
    /// Parallel delivery slots. Keep 1 so a call's start arrives before its end. Default 1.
    #[serde(default = "one")]
    pub concurrency: usize,
}

fn default_source() -> String {
    "Kommutator".to_owned()
}
fn default_amo_rate() -> f64 {
    6.0
}
fn default_amo_jobs() -> usize {
    50
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_timeout() -> u64 {
    15
}
fn default_b24_rate() -> f64 {
    2.0
}
fn default_b24_burst() -> u32 {
    10
}
fn default_b24_jobs() -> usize {
    40
}

/// The resolved `[outbox]` and `[crm]`.
#[derive(Debug)]
pub struct CrmSettings {
    pub worker: outbox::WorkerSettings,
    pub max_age: Duration,
    pub directory_callback_tasks: bool,
    pub bitrix24: Vec<Bitrix24Settings>,
    pub amocrm: Vec<AmoCrmSettings>,
    pub dynamics: Vec<DynamicsSettings>,
    pub webhook: Vec<WebhookSettings>,
}

#[derive(Debug)]
pub struct AmoCrmSettings {
    pub connector: crm_amocrm::Config,
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct DynamicsSettings {
    pub connector: crm_dynamics::Config,
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct WebhookSettings {
    pub connector: sink_webhook::Config,
    pub concurrency: usize,
}

impl CrmSettings {
    /// One line per connector for `check-config`; secrets are masked.
    pub fn describe(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "crm.directory: callback_tasks = {}",
            self.directory_callback_tasks
        );
        for b24 in &self.bitrix24 {
            let c = &b24.connector;
            let mode = match &c.auth {
                crm_bitrix24::Auth::Webhook { .. } => "webhook url=********".to_owned(),
                crm_bitrix24::Auth::OAuth(app) => format!(
                    "oauth portal_url={} client_id={} client_secret=********",
                    app.portal_url, app.client_id
                ),
            };
            // Where to point the portal's event handler, so nobody has to guess the path.
            let events = match &b24.application_token {
                Some(token) => format!(
                    "{token} (click-to-call events at /hooks/bitrix24/{})",
                    c.name
                ),
                None => "none (click-to-call events refused)".to_owned(),
            };
            let _ = writeln!(
                out,
                "crm.bitrix24 {}: {mode} users={} application_token={events}",
                c.name,
                c.users.len(),
            );
        }
        for amo in &self.amocrm {
            let c = &amo.connector;
            let mode = match &c.auth {
                crm_amocrm::Auth::LongLived { .. } => "token=********".to_owned(),
                crm_amocrm::Auth::OAuth(app) => {
                    format!("oauth client_id={} client_secret=********", app.client_id)
                }
            };
            let _ = writeln!(
                out,
                "crm.amocrm {}: {} {mode} users={} rate_per_sec={}",
                c.name,
                c.base_url,
                c.users.len(),
                c.rate_per_sec
            );
        }
        for dyn365 in &self.dynamics {
            let c = &dyn365.connector;
            let _ = writeln!(
                out,
                "crm.dynamics {}: {} client_id={} client_secret=******** users={}",
                c.name,
                c.base_url,
                c.client_id,
                c.users.len()
            );
        }
        for hook in &self.webhook {
            let c = &hook.connector;
            // The URL may carry a token in its query: only its origin is shown.
            let origin = url_origin(&c.url);
            let _ = writeln!(
                out,
                "crm.webhook {}: {origin} secret=******** call_started={}",
                c.name, c.call_started
            );
        }
    }
}

/// `scheme://host[:port]` of an URL, without path or query.
fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/…")
}

#[derive(Debug)]
pub struct Bitrix24Settings {
    pub connector: crm_bitrix24::Config,
    pub concurrency: usize,
    pub application_token: Option<Secret>,
}

fn env_name(name: &str, what: &str) -> String {
    format!(
        "KOMMUTATOR_CRM_{}_{what}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kommutator".to_owned())
}

pub fn resolve(
    crm: RawCrm,
    raw_outbox: RawOutbox,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<CrmSettings, ConfigError> {
    if raw_outbox.lease_secs == 0 {
        return Err(invalid(
            "outbox.lease_secs",
            "must be at least 1".to_owned(),
        ));
    }
    if raw_outbox.max_age_hours == 0 {
        return Err(invalid(
            "outbox.max_age_hours",
            "must be at least 1".to_owned(),
        ));
    }
    if raw_outbox.backoff_initial_ms == 0
        || raw_outbox.backoff_max_secs.saturating_mul(1000) < raw_outbox.backoff_initial_ms
    {
        return Err(invalid(
            "outbox.backoff_max_secs",
            "must be positive and not shorter than backoff_initial_ms".to_owned(),
        ));
    }
    let worker = outbox::WorkerSettings {
        node_id: raw_outbox
            .node_id
            .filter(|n| !n.is_empty())
            .unwrap_or_else(host_name),
        concurrency: 1,
        lease: Duration::from_secs(raw_outbox.lease_secs),
        poll_interval: Duration::from_millis(raw_outbox.poll_interval_ms.max(10)),
        backoff_initial: Duration::from_millis(raw_outbox.backoff_initial_ms),
        backoff_max: Duration::from_secs(raw_outbox.backoff_max_secs),
    };
    let mut names: Vec<String> = vec!["directory".to_owned()];
    let mut bitrix24 = Vec::new();
    for (index, raw) in crm.bitrix24.into_iter().enumerate() {
        let field = |name: &str| format!("crm.bitrix24[{index}].{name}");
        if !valid_name(&raw.name) {
            return Err(invalid(
                &field("name"),
                format!("`{}` must be letters, digits, - or _", raw.name),
            ));
        }
        if names.contains(&raw.name) {
            return Err(invalid(
                &field("name"),
                format!("`{}` names two connectors", raw.name),
            ));
        }
        names.push(raw.name.clone());
        let secret = |what: &str, inline: Option<String>, file: Option<&std::path::Path>| {
            resolve_secret(
                &field(&what.to_ascii_lowercase()),
                inline,
                file,
                &env_name(&raw.name, what),
                environment,
            )
        };
        let auth = match raw.mode.as_str() {
            "webhook" => {
                let url = secret(
                    "WEBHOOK_URL",
                    raw.webhook_url.clone(),
                    raw.webhook_url_file.as_deref(),
                )?
                .ok_or_else(|| {
                    invalid(
                        &field("webhook_url"),
                        "is required in webhook mode".to_owned(),
                    )
                })?;
                if !url.expose().starts_with("https://") && !url.expose().starts_with("http://") {
                    return Err(invalid(
                        &field("webhook_url"),
                        "must be an http(s) URL".to_owned(),
                    ));
                }
                crm_bitrix24::Auth::Webhook {
                    url: url.expose().to_owned(),
                }
            }
            "oauth" => {
                let portal_url = raw
                    .portal_url
                    .clone()
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                    .ok_or_else(|| {
                        invalid(
                            &field("portal_url"),
                            "is required in oauth mode (an http(s) URL)".to_owned(),
                        )
                    })?;
                let client_id =
                    raw.client_id
                        .clone()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| {
                            invalid(&field("client_id"), "is required in oauth mode".to_owned())
                        })?;
                let client_secret = secret(
                    "CLIENT_SECRET",
                    raw.client_secret.clone(),
                    raw.client_secret_file.as_deref(),
                )?
                .ok_or_else(|| {
                    invalid(
                        &field("client_secret"),
                        "is required in oauth mode".to_owned(),
                    )
                })?;
                crm_bitrix24::Auth::OAuth(crm_bitrix24::OAuthApp {
                    portal_url,
                    token_url: raw
                        .token_url
                        .clone()
                        .unwrap_or_else(|| "https://oauth.bitrix.info/oauth/token/".to_owned()),
                    client_id,
                    client_secret: client_secret.expose().to_owned(),
                    initial_access_token: secret("ACCESS_TOKEN", raw.access_token.clone(), None)?
                        .map(|s| s.expose().to_owned()),
                    initial_refresh_token: secret(
                        "REFRESH_TOKEN",
                        raw.refresh_token.clone(),
                        None,
                    )?
                    .map(|s| s.expose().to_owned()),
                })
            }
            other => {
                return Err(invalid(
                    &field("mode"),
                    format!("`{other}` must be \"webhook\" or \"oauth\""),
                ));
            }
        };
        if raw.default_user_id == 0 {
            return Err(invalid(
                &field("default_user_id"),
                "must be a Bitrix24 user id".to_owned(),
            ));
        }
        if raw.rate_per_sec.is_nan() || raw.rate_per_sec <= 0.0 || raw.burst == 0 || raw.burst > 50
        {
            return Err(invalid(
                &field("rate_per_sec"),
                "rate must be positive and burst between 1 and 50".to_owned(),
            ));
        }
        let application_token = secret("APPLICATION_TOKEN", raw.application_token.clone(), None)?;
        bitrix24.push(Bitrix24Settings {
            connector: crm_bitrix24::Config {
                name: raw.name,
                auth,
                default_user_id: raw.default_user_id,
                users: raw.users.into_iter().collect(),
                crm_create: raw.crm_create,
                show_card: raw.show_card,
                line_number: raw.line_number,
                timeout: Duration::from_secs(raw.timeout_secs.max(1)),
                rate_per_sec: raw.rate_per_sec,
                burst: raw.burst,
                max_jobs_per_delivery: raw.jobs_per_batch.clamp(1, 200),
            },
            concurrency: raw.concurrency.max(1),
            application_token,
        });
    }
    let mut amocrm = Vec::new();
    for (index, raw) in crm.amocrm.into_iter().enumerate() {
        let field = |name: &str| format!("crm.amocrm[{index}].{name}");
        claim_name(&mut names, &raw.name, &field("name"))?;
        let secret = |what: &str, inline: Option<String>, file: Option<&std::path::Path>| {
            resolve_secret(
                &field(&what.to_ascii_lowercase()),
                inline,
                file,
                &env_name(&raw.name, what),
                environment,
            )
        };
        let base_url = http_url(&raw.base_url, &field("base_url"))?;
        let auth = match raw.mode.as_str() {
            "token" => {
                let token = secret("TOKEN", raw.token.clone(), raw.token_file.as_deref())?
                    .ok_or_else(|| {
                        invalid(
                            &field("token"),
                            "is required in token mode (or token_file, or the environment \
                             variable)"
                                .to_owned(),
                        )
                    })?;
                crm_amocrm::Auth::LongLived {
                    token: token.expose().to_owned(),
                }
            }
            "oauth" => {
                let client_id = required(raw.client_id.clone(), &field("client_id"))?;
                let redirect_uri = required(raw.redirect_uri.clone(), &field("redirect_uri"))?;
                let client_secret = secret(
                    "CLIENT_SECRET",
                    raw.client_secret.clone(),
                    raw.client_secret_file.as_deref(),
                )?
                .ok_or_else(|| {
                    invalid(
                        &field("client_secret"),
                        "is required in oauth mode".to_owned(),
                    )
                })?;
                let access = secret("ACCESS_TOKEN", raw.access_token.clone(), None)?;
                let refresh = secret("REFRESH_TOKEN", raw.refresh_token.clone(), None)?;
                crm_amocrm::Auth::OAuth(crm_amocrm::OAuthApp {
                    client_id,
                    client_secret: client_secret.expose().to_owned(),
                    redirect_uri,
                    initial_access_token: access.map(|s| s.expose().to_owned()),
                    initial_refresh_token: refresh.map(|s| s.expose().to_owned()),
                })
            }
            other => {
                return Err(invalid(
                    &field("mode"),
                    format!("`{other}` must be \"token\" or \"oauth\""),
                ));
            }
        };
        if raw.rate_per_sec.is_nan() || raw.rate_per_sec <= 0.0 || raw.rate_per_sec > 7.0 {
            return Err(invalid(
                &field("rate_per_sec"),
                "must be above 0 and at most 7 (amoCRM's limit per account)".to_owned(),
            ));
        }
        if raw.jobs_per_batch == 0 || raw.jobs_per_batch > 50 {
            return Err(invalid(
                &field("jobs_per_batch"),
                "must be between 1 and 50".to_owned(),
            ));
        }
        amocrm.push(AmoCrmSettings {
            connector: crm_amocrm::Config {
                name: raw.name,
                base_url,
                auth,
                source: raw.source,
                users: raw.users.into_iter().collect(),
                default_user_id: raw.default_user_id,
                timeout: Duration::from_secs(raw.timeout_secs.max(1)),
                rate_per_sec: raw.rate_per_sec,
                max_jobs_per_delivery: raw.jobs_per_batch,
            },
            concurrency: raw.concurrency.max(1),
        });
    }
    let mut dynamics = Vec::new();
    for (index, raw) in crm.dynamics.into_iter().enumerate() {
        let field = |name: &str| format!("crm.dynamics[{index}].{name}");
        claim_name(&mut names, &raw.name, &field("name"))?;
        let base_url = http_url(&raw.base_url, &field("base_url"))?;
        let token_url = http_url(&raw.token_url, &field("token_url"))?;
        let client_id = required(Some(raw.client_id), &field("client_id"))?;
        let client_secret = resolve_secret(
            &field("client_secret"),
            raw.client_secret,
            raw.client_secret_file.as_deref(),
            &env_name(&raw.name, "CLIENT_SECRET"),
            environment,
        )?
        .ok_or_else(|| {
            invalid(
                &field("client_secret"),
                "is required (or client_secret_file, or the environment variable)".to_owned(),
            )
        })?;
        dynamics.push(DynamicsSettings {
            connector: crm_dynamics::Config {
                name: raw.name,
                base_url,
                token_url,
                client_id,
                client_secret: client_secret.expose().to_owned(),
                users: raw.users.into_iter().collect(),
                timeout: Duration::from_secs(raw.timeout_secs.max(1)),
            },
            concurrency: raw.concurrency.max(1),
        });
    }
    let mut webhook = Vec::new();
    for (index, raw) in crm.webhook.into_iter().enumerate() {
        let field = |name: &str| format!("crm.webhook[{index}].{name}");
        claim_name(&mut names, &raw.name, &field("name"))?;
        let url = http_url(&raw.url, &field("url"))?;
        let secret = resolve_secret(
            &field("secret"),
            raw.secret,
            raw.secret_file.as_deref(),
            &env_name(&raw.name, "SECRET"),
            environment,
        )?
        .ok_or_else(|| {
            invalid(
                &field("secret"),
                "is required (or secret_file, or the environment variable)".to_owned(),
            )
        })?;
        if secret.expose().len() < 16 {
            return Err(invalid(
                &field("secret"),
                "must be at least 16 bytes; generate one with `openssl rand -hex 32`".to_owned(),
            ));
        }
        if raw.rate_per_sec.is_nan() || raw.rate_per_sec < 0.0 {
            return Err(invalid(
                &field("rate_per_sec"),
                "must be 0 (unlimited) or positive".to_owned(),
            ));
        }
        webhook.push(WebhookSettings {
            connector: sink_webhook::Config {
                name: raw.name,
                url,
                secret: secret.expose().to_owned(),
                call_started: raw.call_started,
                timeout: Duration::from_secs(raw.timeout_secs.max(1)),
                rate_per_sec: raw.rate_per_sec,
            },
            concurrency: raw.concurrency.max(1),
        });
    }
    Ok(CrmSettings {
        worker,
        max_age: Duration::from_secs(raw_outbox.max_age_hours.saturating_mul(3600)),
        directory_callback_tasks: crm.directory.callback_tasks,
        bitrix24,
        amocrm,
        dynamics,
        webhook,
    })
}

/// Records a connector name, refusing a bad or repeated one.
fn claim_name(names: &mut Vec<String>, name: &str, field: &str) -> Result<(), ConfigError> {
    if !valid_name(name) {
        return Err(invalid(
            field,
            format!("`{name}` must be letters, digits, - or _"),
        ));
    }
    if names.iter().any(|n| n == name) {
        return Err(invalid(field, format!("`{name}` names two connectors")));
    }
    names.push(name.to_owned());
    Ok(())
}

fn http_url(url: &str, field: &str) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.to_owned())
    } else {
        Err(invalid(field, format!("`{url}` must be an http(s) URL")))
    }
}

fn required(value: Option<String>, field: &str) -> Result<String, ConfigError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| invalid(field, "is required".to_owned()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    fn settings(
        crm: &str,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<super::super::Settings, super::ConfigError> {
        parse(crm, Path::new("test.toml"))?.resolve(environment)
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn connector_secrets_come_from_the_environment_and_files_and_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("d365");
        std::fs::write(&secret_file, "dynamics-file-secret\n").unwrap();
        let text = format!(
            "[[crm.amocrm]]\nname = \"amo-1\"\nbase_url = \"https://a.amocrm.ru\"\nmode = \"token\"\n\
             [[crm.dynamics]]\nname = \"d365\"\nbase_url = \"https://o.crm4.dynamics.com\"\n\
             token_url = \"https://login.microsoftonline.com/t/oauth2/v2.0/token\"\nclient_id = \"app\"\n\
             client_secret_file = \"{}\"\n\
             [[crm.webhook]]\nname = \"hook\"\nurl = \"https://h.example.com/in?token=url-token\"\n\
             secret = \"inline-webhook-secret\"\n\
             [[crm.bitrix24]]\nname = \"b24\"\nmode = \"webhook\"\ndefault_user_id = 1\n",
            secret_file.display()
        );
        let environment = |name: &str| match name {
            "KOMMUTATOR_CRM_B24_WEBHOOK_URL" => {
                Some("https://acme.bitrix24.ru/rest/1/webhook-code/".to_owned())
            }
            "KOMMUTATOR_CRM_B24_APPLICATION_TOKEN" => Some("b24-app-token".to_owned()),
            "KOMMUTATOR_CRM_AMO_1_TOKEN" => Some("amo-env-token".to_owned()),
            "KOMMUTATOR_CRM_HOOK_SECRET" => Some("webhook-env-secret".to_owned()),
            _ => None,
        };
        let settings = settings(&text, &environment).expect("resolves");
        let crm = &settings.crm;
        assert!(matches!(
            &crm.amocrm[0].connector.auth,
            crm_amocrm::Auth::LongLived { token } if token == "amo-env-token"
        ));
        assert_eq!(
            crm.dynamics[0].connector.client_secret,
            "dynamics-file-secret"
        );
        // The environment wins over the inline value.
        assert_eq!(crm.webhook[0].connector.secret, "webhook-env-secret");
        let described = settings.describe();
        for secret in [
            "amo-env-token",
            "dynamics-file-secret",
            "webhook-env-secret",
            "url-token",
            "webhook-code",
            "b24-app-token",
        ] {
            assert!(!described.contains(secret), "{secret} in {described}");
        }
        // The administrator is told where the portal's event handler must point.
        assert!(
            described.contains("click-to-call events at /hooks/bitrix24/b24"),
            "{described}"
        );
        assert!(described.contains("crm.amocrm amo-1"), "{described}");
        assert!(described.contains("crm.dynamics d365"), "{described}");
        assert!(
            described.contains("crm.webhook hook: https://h.example.com/"),
            "{described}"
        );
    }

    #[test]
    fn errors_name_the_connector_field() {
        let cases = [
            (
                "[[crm.amocrm]]\nname = \"amo\"\nbase_url = \"https://a.amocrm.ru\"\nmode = \"token\"\n",
                "crm.amocrm[0].token",
            ),
            (
                "[[crm.amocrm]]\nname = \"amo\"\nbase_url = \"a.amocrm.ru\"\nmode = \"token\"\ntoken = \"t\"\n",
                "crm.amocrm[0].base_url",
            ),
            (
                "[[crm.amocrm]]\nname = \"amo\"\nbase_url = \"https://a.amocrm.ru\"\nmode = \"token\"\n\
                 token = \"t\"\nrate_per_sec = 10.0\n",
                "crm.amocrm[0].rate_per_sec",
            ),
            (
                "[[crm.amocrm]]\nname = \"amo\"\nbase_url = \"https://a.amocrm.ru\"\nmode = \"oauth\"\n\
                 client_id = \"c\"\nclient_secret = \"s\"\n",
                "crm.amocrm[0].redirect_uri",
            ),
            (
                "[[crm.dynamics]]\nname = \"d\"\nbase_url = \"https://o\"\ntoken_url = \"https://t\"\n\
                 client_id = \"app\"\n",
                "crm.dynamics[0].client_secret",
            ),
            (
                "[[crm.webhook]]\nname = \"h\"\nurl = \"https://h\"\nsecret = \"short\"\n",
                "crm.webhook[0].secret",
            ),
            (
                "[[crm.webhook]]\nname = \"directory\"\nurl = \"https://h\"\nsecret = \"long-enough-secret\"\n",
                "crm.webhook[0].name",
            ),
        ];
        for (text, field) in cases {
            let err = settings(text, &none).expect_err(text).to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
    }

    #[test]
    fn an_unknown_connector_key_names_its_line() {
        let text = "[[crm.webhook]]\nname = \"h\"\nurl = \"https://h\"\nsecrte = \"x\"\n";
        let err = parse(text, Path::new("test.toml")).unwrap_err().to_string();
        assert!(err.contains("secrte") && err.contains('4'), "{err}");
    }
}
