//! The configuration file: one TOML file that says what runs (server, storage, PBXes).
//!
//! Parsing happens in two steps, as STYLE.md asks: the file is deserialized into `Raw*` structs
//! (which reject unknown keys and document every field), then [`RawConfig::resolve`] validates
//! it once into [`Settings`], with secrets read from the environment or `*_file` paths. Nothing
//! downstream re-checks. Command-line flags (log level, log format) are not part of this file.
//!
//! The doc comment of each `Raw*` field is its reference documentation; `kommutator.example.toml`
//! at the repository root shows every field, and a test keeps the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod crm;
pub mod cti;
pub mod insight;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The HTTP server: API, panel, probes and metrics.
    #[serde(default)]
    pub server: RawServer,
    /// Where calls, users, the customer directory and the outbox are stored.
    #[serde(default)]
    pub storage: RawStorage,
    /// Defaults for logging; `--log-level` and `--log-format` on the command line win.
    #[serde(default)]
    pub log: RawLog,
    /// How phone numbers are read and shown.
    #[serde(default)]
    pub phone: RawPhone,
    /// The telephone systems to connect to.
    #[serde(default)]
    pub pbx: RawPbx,
    /// The operator panel: agent statuses, call control, sessions.
    #[serde(default)]
    pub cti: cti::RawCti,
    /// The outbox that delivers calls to CRMs: retries, leases, dead letters.
    #[serde(default)]
    pub outbox: crm::RawOutbox,
    /// Where calls are delivered: the built-in directory and CRM connectors.
    #[serde(default)]
    pub crm: crm::RawCrm,
    /// Historical reports: local time, service level, campaigns, tariffs.
    #[serde(default)]
    pub reports: insight::RawReports,
    /// The live supervisor dashboard: counter windows, shifts, alerts.
    #[serde(default)]
    pub dashboard: insight::RawDashboard,
    /// The domain event stream out (NATS JetStream).
    #[serde(default)]
    pub events: insight::RawEvents,
    /// `[routing]`: call routing rules and the FastAGI listener.
    #[serde(default)]
    pub routing: crate::routing::RawRouting,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address and port the HTTP server listens on, e.g. `"0.0.0.0:8080"`.
    /// Default `"127.0.0.1:8080"`: reachable from this machine only.
    pub listen: String,
    /// The URL users open, used in links printed on start and sent to CRMs
    /// (e.g. recording links). Default: `http://` + `listen`.
    pub public_url: Option<String>,
    /// Origins allowed to embed the panel in an iframe (CSP `frame-ancestors`), e.g.
    /// `["https://example.bitrix24.ru"]`. Default: `["'self'"]`.
    pub frame_ancestors: Vec<String>,
    /// Seconds to let requests in flight finish after SIGTERM or Ctrl-C. Default 10.
    pub shutdown_grace_secs: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            public_url: None,
            frame_ancestors: vec!["'self'".to_owned()],
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    /// Database URL: `sqlite://kommutator.db` (a file, created when missing; the default) or
    /// `postgres://user:password@host:5432/db`. Because a PostgreSQL URL may carry a password,
    /// it can also come from `url_file` or the environment variable `KOMMUTATOR_STORAGE_URL`
    /// (the environment wins, then the file, then this field).
    pub url: Option<String>,
    /// A file whose first line is the database URL (e.g. a mounted secret).
    pub url_file: Option<PathBuf>,
    /// Largest number of open database connections. Default 8.
    pub max_connections: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// Minimum level or a filter in `RUST_LOG` syntax, e.g. `"info"` or
    /// `"info,pbx_ami=debug"`. Default `"info"`.
    pub level: String,
    /// `"auto"` (pretty on a terminal, JSON otherwise), `"pretty"` or `"json"`. Default `"auto"`.
    pub format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty when standard error is a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPhone {
    /// Two-letter country (ISO 3166) assumed for numbers dialled without a country code,
    /// e.g. `"RU"` reads `8 (916) 123-45-67` as `+79161234567`. Default `"RU"`.
    pub default_region: String,
}

impl Default for RawPhone {
    fn default() -> Self {
        Self {
            default_region: "RU".to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPbx {
    /// Asterisk servers reached over AMI, one `[[pbx.asterisk]]` table each.
    pub asterisk: Vec<RawAsterisk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAsterisk {
    /// A short name for this PBX, used in logs, metrics and call ids, e.g. `"office"`.
    pub name: String,
    /// Host name or address of the Asterisk server.
    pub host: String,
    /// AMI port (`manager.conf` `port`). Default 5038.
    #[serde(default = "default_ami_port")]
    pub port: u16,
    /// AMI user (a `[section]` of `manager.conf`).
    pub username: String,
    /// AMI secret. Prefer `secret_file` or the environment variable
    /// `KOMMUTATOR_ASTERISK_<NAME>_SECRET` (NAME upper-cased, `-` as `_`), which win over this.
    pub secret: Option<String>,
    /// A file whose first line is the AMI secret.
    pub secret_file: Option<PathBuf>,
    /// `"md5"` (challenge-response: the secret never crosses the network; the default) or
    /// `"plain"`.
    #[serde(default)]
    pub auth: AmiAuth,
    /// Seconds between keep-alive `Ping`s. Default 10.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Seconds to wait for the answer to a `Ping` before the connection is declared dead and
    /// re-established (detects half-open TCP connections). Default 5.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_secs: u64,
    /// Seconds to wait for the answer to any other action. Default 10.
    #[serde(default = "default_action_timeout")]
    pub action_timeout_secs: u64,
    /// First delay before reconnecting, in milliseconds; it doubles (with jitter) on every
    /// failed attempt up to `reconnect_max_secs`. Default 500.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    /// Longest delay between reconnect attempts, in seconds. Default 30.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
    /// The `Events:` mask sent at login: `"on"` (all the user may read) or a comma list of
    /// classes such as `"call,agent,cdr,user,system"`. Default `"on"`.
    #[serde(default = "default_events_mask")]
    pub events: String,
    /// Event names to drop as soon as they arrive, before any processing, e.g.
    /// `["VarSet", "Newexten", "RTCPSent"]`. Filtering in `manager.conf` (`eventfilter`) is
    /// cheaper still. Default: none.
    #[serde(default)]
    pub drop_events: Vec<String>,
    /// How the call tracker reads this PBX: trunk and agent contexts, attribution,
    /// recordings. Every field is optional; the defaults fit stock Asterisk and FreePBX.
    #[serde(default)]
    pub tracker: crate::replay::TrackerSettings,
}

/// How the AMI login proves the secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmiAuth {
    /// `Action: Challenge` then `Login` with the MD5 of challenge + secret.
    #[default]
    Md5,
    /// `Login` with the secret in clear text.
    Plain,
}

fn default_ami_port() -> u16 {
    5038
}
fn default_ping_interval() -> u64 {
    10
}
fn default_ping_timeout() -> u64 {
    5
}
fn default_action_timeout() -> u64 {
    10
}
fn default_reconnect_initial() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30
}
fn default_events_mask() -> String {
    "on".to_owned()
}

/// A secret value: shown as `********` by `Debug` and `Display`, so it cannot reach a log or
/// `check-config` output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear-text value, for the one place that sends it (a login, a connection string).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// The validated configuration. Every value here has been checked.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub log: RawLog,
    pub phone: RawPhone,
    pub asterisk: Vec<AsteriskSettings>,
    pub cti: cti::CtiSettings,
    pub crm: crm::CrmSettings,
    pub reports: server::reports::ReportsConfig,
    pub dashboard: insight::DashboardSettings,
    /// `None` when `[events.nats]` is off.
    pub nats: Option<insight::NatsSettings>,
    /// `[[events.webhook]]` receivers of domain events.
    pub event_webhooks: Vec<insight::EventWebhookSettings>,
    /// Call routing; `None` when `[routing]` has no rules.
    pub routing: Option<crate::routing::RoutingSettings>,
}

#[derive(Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub frame_ancestors: Vec<String>,
    pub shutdown_grace: Duration,
}

#[derive(Debug)]
pub struct StorageSettings {
    /// The database URL; a secret because a PostgreSQL URL may carry a password.
    pub url: Secret,
    pub max_connections: u32,
}

impl StorageSettings {
    /// The URL with any password replaced by `********`, for logs and `check-config`.
    pub fn masked_url(&self) -> String {
        mask_url_password(self.url.expose())
    }
}

#[derive(Debug)]
pub struct AsteriskSettings {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub secret: Secret,
    pub auth: AmiAuth,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub action_timeout: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub events: String,
    pub drop_events: Vec<String>,
    pub tracker: cti_core::TrackerConfig,
}

/// A configuration problem, worded so the reader knows what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}, column {column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Syntax0 { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// Reads, parses and validates a configuration file; `environment` supplies secrets (pass
/// `std::env::var` in production, a map in tests).
pub fn load(
    path: &Path,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)?.resolve(environment)
}

/// Parses TOML text into the raw structs; errors name the offending key and its line.
pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(text).map_err(|err| {
        // toml's own message carries a source excerpt over several lines; keep one sentence.
        let message = err.message().trim_end_matches('.').to_owned();
        match err.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                ConfigError::Syntax {
                    path: path.to_owned(),
                    line,
                    column,
                    message,
                }
            }
            None => ConfigError::Syntax0 {
                path: path.to_owned(),
                message,
            },
        }
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl RawConfig {
    /// Validates everything once and reads secrets from the environment or files.
    pub fn resolve(
        self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "`{}` is not an address and port such as \"127.0.0.1:8080\"",
                    self.server.listen
                ),
            )
        })?;
        let public_url = match self.server.public_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(url) => {
                return Err(invalid(
                    "server.public_url",
                    format!("`{url}` must start with http:// or https://"),
                ))
            }
            None => format!("http://{listen}"),
        };
        let storage_url = resolve_secret(
            "storage.url",
            self.storage.url,
            self.storage.url_file.as_deref(),
            "KOMMUTATOR_STORAGE_URL",
            environment,
        )?
        .unwrap_or_else(|| Secret::new("sqlite://kommutator.db"));
        let scheme_ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| storage_url.expose().starts_with(scheme));
        if !scheme_ok {
            return Err(invalid(
                "storage.url",
                format!(
                    "`{}` must start with sqlite:// or postgres://",
                    mask_url_password(storage_url.expose())
                ),
            ));
        }
        if self.storage.max_connections == 0 {
            return Err(invalid(
                "storage.max_connections",
                "must be at least 1".to_owned(),
            ));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid(
                "log.level",
                format!("`{}` is not a log filter ({err})", self.log.level),
            ));
        }
        let region = self.phone.default_region.to_ascii_uppercase();
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "phone.default_region",
                format!(
                    "`{}` is not a two-letter country code such as \"RU\"",
                    self.phone.default_region
                ),
            ));
        }

        let mut asterisk = Vec::new();
        for (index, raw) in self.pbx.asterisk.into_iter().enumerate() {
            let field = |name: &str| format!("pbx.asterisk[{index}].{name}");
            if raw.name.is_empty()
                || !raw
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    &field("name"),
                    format!("`{}` must be letters, digits, - or _", raw.name),
                ));
            }
            if asterisk
                .iter()
                .any(|a: &AsteriskSettings| a.name == raw.name)
            {
                return Err(invalid(
                    &field("name"),
                    format!("`{}` is used by two [[pbx.asterisk]] tables", raw.name),
                ));
            }
            if raw.host.is_empty() {
                return Err(invalid(&field("host"), "must not be empty".to_owned()));
            }
            let env_name = format!(
                "KOMMUTATOR_ASTERISK_{}_SECRET",
                raw.name.to_ascii_uppercase().replace('-', "_")
            );
            let secret = resolve_secret(
                &field("secret"),
                raw.secret,
                raw.secret_file.as_deref(),
                &env_name,
                environment,
            )?
            .ok_or_else(|| {
                invalid(
                    &field("secret"),
                    format!("is missing: set `secret`, `secret_file` or the environment variable {env_name}"),
                )
            })?;
            if raw.ping_interval_secs == 0 || raw.ping_timeout_secs == 0 {
                return Err(invalid(
                    &field("ping_interval_secs"),
                    "ping interval and timeout must be at least 1 second".to_owned(),
                ));
            }
            if raw.reconnect_initial_ms == 0
                || raw.reconnect_max_secs.saturating_mul(1000) < raw.reconnect_initial_ms
            {
                return Err(invalid(
                    &field("reconnect_max_secs"),
                    "must be positive and not shorter than reconnect_initial_ms".to_owned(),
                ));
            }
            if raw.events.trim().is_empty() || raw.events.contains(['\r', '\n']) {
                return Err(invalid(
                    &field("events"),
                    "must be \"on\", \"off\" or a comma list of event classes".to_owned(),
                ));
            }
            raw.tracker
                .validate()
                .map_err(|err| invalid(&field("tracker"), err.to_string()))?;
            asterisk.push(AsteriskSettings {
                name: raw.name,
                host: raw.host,
                port: raw.port,
                username: raw.username,
                secret,
                auth: raw.auth,
                ping_interval: Duration::from_secs(raw.ping_interval_secs),
                ping_timeout: Duration::from_secs(raw.ping_timeout_secs),
                action_timeout: Duration::from_secs(raw.action_timeout_secs.max(1)),
                reconnect_initial: Duration::from_millis(raw.reconnect_initial_ms),
                reconnect_max: Duration::from_secs(raw.reconnect_max_secs),
                events: raw.events,
                drop_events: raw.drop_events,
                tracker: raw.tracker.into_tracker_config(),
            });
        }

        let cti = self.cti.resolve(
            &self.server.frame_ancestors,
            public_url.starts_with("https://"),
        )?;
        let crm = crm::resolve(self.crm, self.outbox, environment)?;
        let reports = insight::resolve_reports(self.reports)?;
        let dashboard = insight::resolve_dashboard(self.dashboard)?;
        let nats = insight::resolve_nats(self.events.nats, environment)?;
        let event_webhooks = insight::resolve_event_webhooks(self.events.webhook, environment)?;
        let routing = crate::routing::resolve(self.routing)?;
        Ok(Settings {
            routing,
            cti,
            crm,
            reports,
            dashboard,
            nats,
            event_webhooks,
            server: ServerSettings {
                listen,
                public_url,
                frame_ancestors: self.server.frame_ancestors,
                shutdown_grace: Duration::from_secs(self.server.shutdown_grace_secs),
            },
            storage: StorageSettings {
                url: storage_url,
                max_connections: self.storage.max_connections,
            },
            log: self.log,
            phone: RawPhone {
                default_region: region,
            },
            asterisk,
        })
    }
}

fn invalid(field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message,
    }
}

/// Environment first, then the `*_file`, then the inline value.
fn resolve_secret(
    field: &str,
    inline: Option<String>,
    file: Option<&Path>,
    env_name: &str,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(value) = environment(env_name).filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(value)));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|err| {
            invalid(
                &format!("{field}_file"),
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        let value = text.lines().next().unwrap_or("").trim().to_owned();
        if value.is_empty() {
            return Err(invalid(
                &format!("{field}_file"),
                format!("{} is empty", path.display()),
            ));
        }
        return Ok(Some(Secret::new(value)));
    }
    Ok(inline.map(Secret::new))
}

/// `postgres://user:pw@host/db` → `postgres://user:********@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:********{}",
            &url[..scheme_end],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

impl Settings {
    /// A human-readable summary for `check-config`, with every secret masked.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "server.listen = {}", self.server.listen);
        let _ = writeln!(out, "server.public_url = {}", self.server.public_url);
        let _ = writeln!(
            out,
            "server.frame_ancestors = {}",
            self.server.frame_ancestors.join(" ")
        );
        let _ = writeln!(
            out,
            "server.shutdown_grace_secs = {}",
            self.server.shutdown_grace.as_secs()
        );
        let _ = writeln!(out, "storage.url = {}", self.storage.masked_url());
        let _ = writeln!(
            out,
            "storage.max_connections = {}",
            self.storage.max_connections
        );
        let _ = writeln!(out, "log.level = {}", self.log.level);
        let _ = writeln!(out, "log.format = {:?}", self.log.format);
        let _ = writeln!(out, "phone.default_region = {}", self.phone.default_region);
        if let Some(routing) = &self.routing {
            let listen = routing.listen.map_or("off".to_owned(), |a| a.to_string());
            let _ = writeln!(
                out,
                "routing: {} rules, fastagi = {listen}, budget_ms = {}",
                routing.router.config().rules.len(),
                routing.service.budget.as_millis()
            );
        }
        for pbx in &self.asterisk {
            let _ = writeln!(
                out,
                "pbx.asterisk {}: {}@{}:{} auth={:?} secret={} events={} drop_events=[{}]",
                pbx.name,
                pbx.username,
                pbx.host,
                pbx.port,
                pbx.auth,
                pbx.secret,
                pbx.events,
                pbx.drop_events.join(", ")
            );
        }
        self.crm.describe(&mut out);
        for hook in &self.event_webhooks {
            // The URL may carry a token in its query: only its origin is shown.
            let origin = hook
                .connector
                .url
                .split(['?', '#'])
                .next()
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "events.webhook {}: {origin} secret=*** kinds={:?}",
                hook.connector.name, hook.kinds
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;
