//! The `[reports]`, `[dashboard]` and `[events]` sections: how KPIs are computed and labelled,
//! the live supervisor dashboard's windows and alerts, and the event stream out (NATS).
//! Parsed raw, then resolved once into the server's and the sinks' settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, resolve_secret, ConfigError, Secret};

/// `[reports]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReports {
    /// Local time of the contact center as minutes east of UTC (Moscow: 180). Hour-of-day,
    /// weekday and day buckets of reports and the dashboard's shifts use it. Default 0.
    pub utc_offset_minutes: i32,
    /// Longest period one report request may cover, days. Default 400.
    pub max_period_days: u32,
    /// Currency code shown with call costs. Default `"RUB"`.
    pub currency: String,
    /// Service-level thresholds (the N of "answered within N seconds").
    pub service_level: RawServiceLevel,
    /// Lines (DIDs) mapped to advertising campaigns, for the call-tracking report.
    pub campaigns: Vec<RawCampaign>,
    /// Prices of outbound calls; without any, the cost report says it is not configured.
    pub tariffs: Vec<RawTariff>,
}

impl Default for RawReports {
    fn default() -> Self {
        Self {
            utc_offset_minutes: 0,
            max_period_days: 400,
            currency: "RUB".to_owned(),
            service_level: RawServiceLevel::default(),
            campaigns: Vec::new(),
            tariffs: Vec::new(),
        }
    }
}

/// `[reports.service_level]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServiceLevel {
    /// Threshold for queues not listed in `per_queue`, seconds. Default 20.
    pub default_seconds: u32,
    /// Thresholds of particular queues.
    pub per_queue: Vec<RawQueueServiceLevel>,
}

impl Default for RawServiceLevel {
    fn default() -> Self {
        Self {
            default_seconds: 20,
            per_queue: Vec::new(),
        }
    }
}

/// One `[[reports.service_level.per_queue]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueueServiceLevel {
    /// The queue name as the PBX spells it.
    pub queue: String,
    /// Its threshold, seconds.
    pub seconds: u32,
}

/// One `[[reports.campaigns]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    /// The line (DID) in E.164, as stored with calls (`+74951234567`).
    pub line: String,
    /// The campaign it was published in (`"Yandex Direct, winter"`).
    pub campaign: String,
}

/// One `[[reports.tariffs]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTariff {
    /// Number prefix in E.164 (`"+7495"`; `"+"` matches every number). The longest matching
    /// prefix applies.
    pub prefix: String,
    /// Price of one minute in the currency (`1.50`).
    pub per_minute: f64,
    /// Billing increment, seconds (60: per started minute, 1: per second). Default 60.
    #[serde(default = "default_increment")]
    pub increment_seconds: u32,
    /// Calls with less talk than this are free, seconds. Default 0.
    #[serde(default)]
    pub free_seconds: u32,
}

fn default_increment() -> u32 {
    60
}

/// `[dashboard]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboard {
    /// Sliding windows of the dashboard's counters, minutes (the shift window is always
    /// there too). Default `[15, 60]`.
    pub windows_minutes: Vec<u32>,
    /// Local times at which shifts start, `"HH:MM"`; the "shift" window counts from the latest
    /// one. Default `["00:00"]` (the calendar day). A 24/7 center sets e.g. `["08:00", "20:00"]`.
    pub shift_starts: Vec<String>,
    /// How often the dashboard sends a new picture to supervisors, milliseconds. Default 1000.
    pub refresh_ms: u64,
    /// When to raise alerts.
    pub alerts: RawAlerts,
}

impl Default for RawDashboard {
    fn default() -> Self {
        Self {
            windows_minutes: vec![15, 60],
            shift_starts: vec!["00:00".to_owned()],
            refresh_ms: 1000,
            alerts: RawAlerts::default(),
        }
    }
}

/// `[dashboard.alerts]`; 0 turns an alert off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Alert when more callers than this wait in one queue. Default 5.
    pub queue_waiting_max: u32,
    /// Alert when a caller has waited longer than this, seconds. Default 60.
    pub wait_max_seconds: u32,
    /// Alert when an agent has been away longer than this, minutes. Default 15.
    pub away_max_minutes: u32,
    /// Alert when a missed call has not been called back within this, minutes. Default 30.
    pub callback_max_minutes: u32,
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            queue_waiting_max: 5,
            wait_max_seconds: 60,
            away_max_minutes: 15,
            callback_max_minutes: 30,
        }
    }
}

/// `[events]`: the domain event stream out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEvents {
    /// Publish every domain event to NATS JetStream.
    pub nats: RawNats,
    /// `[[events.webhook]]`: POST domain events, signed, retried through the outbox.
    pub webhook: Vec<RawEventWebhook>,
}

/// One `[[events.webhook]]`: a receiver of domain events (`docs/events.md`, `docs/webhooks.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventWebhook {
    /// Instance name: letters, digits, `-`, `_`; unique among connectors (it names the
    /// outbox queue and the metrics).
    pub name: String,
    /// Where to POST (http or https).
    pub url: String,
    /// Shared HMAC secret, at least 16 characters; prefer `secret_file` or the environment
    /// variable `KOMMUTATOR_EVENTS_<NAME>_SECRET`.
    pub secret: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
    /// Which events: kinds (`call.answered`), families (`call.*`) or `*`. Default: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Request timeout, seconds. Default 10.
    #[serde(default = "default_event_webhook_timeout")]
    pub timeout_secs: u64,
    /// Requests per second at most; 0 is unlimited. Default 0.
    #[serde(default)]
    pub rate_per_sec: f64,
}

fn default_event_webhook_timeout() -> u64 {
    10
}

/// A resolved `[[events.webhook]]`.
#[derive(Debug, Clone)]
pub struct EventWebhookSettings {
    pub connector: sink_webhook::Config,
    pub kinds: outbox::events::KindFilter,
}

/// Resolves `[[events.webhook]]`.
pub fn resolve_event_webhooks(
    raw: Vec<RawEventWebhook>,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<EventWebhookSettings>, ConfigError> {
    let mut out: Vec<EventWebhookSettings> = Vec::new();
    for hook in raw {
        let field = |f: &str| format!("events.webhook {}: {f}", hook.name);
        let valid_name = !hook.name.is_empty()
            && hook
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(invalid(
                "events.webhook.name",
                format!("`{}` must be letters, digits, - or _", hook.name),
            ));
        }
        if out.iter().any(|o| o.connector.name == hook.name) {
            return Err(invalid(
                &field("name"),
                "is used twice: give each webhook its own name".to_owned(),
            ));
        }
        let url_ok = hook.url.starts_with("http://") || hook.url.starts_with("https://");
        if !url_ok {
            return Err(invalid(
                &field("url"),
                "must be an http:// or https:// URL".to_owned(),
            ));
        }
        let env = format!(
            "KOMMUTATOR_EVENTS_{}_SECRET",
            hook.name.to_ascii_uppercase().replace('-', "_")
        );
        let secret = resolve_secret(
            &field("secret"),
            hook.secret,
            hook.secret_file.as_deref(),
            &env,
            environment,
        )?
        .ok_or_else(|| {
            invalid(
                &field("secret"),
                format!("is required: set secret_file or {env}"),
            )
        })?;
        if secret.expose().len() < 16 {
            return Err(invalid(
                &field("secret"),
                "must be at least 16 characters".to_owned(),
            ));
        }
        let kinds = outbox::events::KindFilter::new(&hook.kinds)
            .map_err(|err| invalid(&field("kinds"), err))?;
        if !(hook.rate_per_sec >= 0.0 && hook.rate_per_sec.is_finite()) {
            return Err(invalid(
                &field("rate_per_sec"),
                "must be 0 (unlimited) or more".to_owned(),
            ));
        }
        out.push(EventWebhookSettings {
            connector: sink_webhook::Config {
                name: hook.name.clone(),
                url: hook.url,
                secret: secret.expose().to_owned(),
                call_started: false,
                timeout: Duration::from_secs(hook.timeout_secs.max(1)),
                rate_per_sec: hook.rate_per_sec,
            },
            kinds,
        });
    }
    Ok(out)
}

/// `[events.nats]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNats {
    /// Turn the publisher on. Default false.
    pub enabled: bool,
    /// Server URL(s), comma-separated. Default `"nats://127.0.0.1:4222"`.
    pub url: String,
    /// The JetStream stream that stores the events; created when missing. Default
    /// `"KOMMUTATOR_EVENTS"`.
    pub stream: String,
    /// Subject prefix; events go to `<prefix>.<kind>`. Default `"kommutator.events"`.
    pub subject_prefix: String,
    /// How long the stream keeps events, hours (when this server creates it). Default 168.
    pub max_age_hours: u64,
    /// Authentication token; prefer `token_file` or the environment variable
    /// `KOMMUTATOR_EVENTS_NATS_TOKEN`. Default: none.
    pub token: Option<String>,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
    /// Events waiting for NATS while it is unreachable; beyond this the oldest are dropped and
    /// counted (storage keeps the truth). Default 100000.
    pub buffer: usize,
}

impl Default for RawNats {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "KOMMUTATOR_EVENTS".to_owned(),
            subject_prefix: "kommutator.events".to_owned(),
            max_age_hours: 168,
            token: None,
            token_file: None,
            buffer: 100_000,
        }
    }
}

/// Resolved `[dashboard]`.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub windows_minutes: Vec<u32>,
    /// Minutes after local midnight.
    pub shift_starts_min: Vec<u32>,
    pub refresh: Duration,
    pub queue_waiting_max: u32,
    pub wait_max: Duration,
    pub away_max: Duration,
    pub callback_max: Duration,
}

/// Resolved `[events.nats]`; `None` when off.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    pub max_age: Duration,
    pub token: Option<Secret>,
    pub buffer: usize,
}

/// Resolves `[reports]`.
pub fn resolve_reports(raw: RawReports) -> Result<server::reports::ReportsConfig, ConfigError> {
    if raw.utc_offset_minutes.abs() > 14 * 60 {
        return Err(invalid(
            "reports.utc_offset_minutes",
            "must be within ±840 minutes".to_owned(),
        ));
    }
    if raw.max_period_days == 0 {
        return Err(invalid(
            "reports.max_period_days",
            "must be at least 1".to_owned(),
        ));
    }
    let mut campaigns = BTreeMap::new();
    for c in raw.campaigns {
        if !c.line.starts_with('+') {
            return Err(invalid(
                "reports.campaigns.line",
                format!("{:?} must be an E.164 number like +74951234567", c.line),
            ));
        }
        if campaigns.insert(c.line.clone(), c.campaign).is_some() {
            return Err(invalid(
                "reports.campaigns.line",
                format!("{} is listed twice", c.line),
            ));
        }
    }
    let mut tariffs = Vec::new();
    for t in raw.tariffs {
        if !t.prefix.starts_with('+') || !t.prefix[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "reports.tariffs.prefix",
                format!("{:?} must be + and digits, e.g. +7495", t.prefix),
            ));
        }
        if !t.per_minute.is_finite() || t.per_minute < 0.0 {
            return Err(invalid(
                "reports.tariffs.per_minute",
                "must be a non-negative price".to_owned(),
            ));
        }
        if t.increment_seconds == 0 {
            return Err(invalid(
                "reports.tariffs.increment_seconds",
                "must be at least 1".to_owned(),
            ));
        }
        tariffs.push(cti_core::kpi::Tariff {
            prefix: t.prefix,
            per_minute_minor: (t.per_minute * 100.0).round() as i64,
            increment_s: i64::from(t.increment_seconds),
            free_s: i64::from(t.free_seconds),
        });
    }
    Ok(server::reports::ReportsConfig {
        utc_offset_s: raw.utc_offset_minutes * 60,
        service_level: cti_core::kpi::ServiceLevel {
            default_ms: i64::from(raw.service_level.default_seconds) * 1000,
            per_queue: raw
                .service_level
                .per_queue
                .into_iter()
                .map(|q| (q.queue, i64::from(q.seconds) * 1000))
                .collect(),
        },
        campaigns,
        tariffs,
        currency: raw.currency,
        max_period_days: i64::from(raw.max_period_days),
    })
}

/// Resolves `[dashboard]`.
pub fn resolve_dashboard(raw: RawDashboard) -> Result<DashboardSettings, ConfigError> {
    if raw
        .windows_minutes
        .iter()
        .any(|m| *m == 0 || *m > 7 * 24 * 60)
    {
        return Err(invalid(
            "dashboard.windows_minutes",
            "each window must be 1 to 10080 minutes".to_owned(),
        ));
    }
    let mut shift_starts_min = Vec::new();
    for text in &raw.shift_starts {
        let parsed = text
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60 && text.len() == 5);
        let Some((h, m)) = parsed else {
            return Err(invalid(
                "dashboard.shift_starts",
                format!("{text:?} must be HH:MM, e.g. 08:00"),
            ));
        };
        shift_starts_min.push(h * 60 + m);
    }
    if raw.refresh_ms < 100 {
        return Err(invalid(
            "dashboard.refresh_ms",
            "must be at least 100".to_owned(),
        ));
    }
    Ok(DashboardSettings {
        windows_minutes: raw.windows_minutes,
        shift_starts_min,
        refresh: Duration::from_millis(raw.refresh_ms),
        queue_waiting_max: raw.alerts.queue_waiting_max,
        wait_max: Duration::from_secs(u64::from(raw.alerts.wait_max_seconds)),
        away_max: Duration::from_secs(u64::from(raw.alerts.away_max_minutes) * 60),
        callback_max: Duration::from_secs(u64::from(raw.alerts.callback_max_minutes) * 60),
    })
}

/// Resolves `[events.nats]`.
pub fn resolve_nats(
    raw: RawNats,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<NatsSettings>, ConfigError> {
    if !raw.enabled {
        return Ok(None);
    }
    if raw.url.trim().is_empty() {
        return Err(invalid(
            "events.nats.url",
            "must name a server, e.g. nats://127.0.0.1:4222".to_owned(),
        ));
    }
    let valid_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !valid_token(&raw.stream) {
        return Err(invalid(
            "events.nats.stream",
            "must be letters, digits, _ or -".to_owned(),
        ));
    }
    if raw.subject_prefix.is_empty()
        || raw.subject_prefix.contains([' ', '*', '>'])
        || raw.subject_prefix.ends_with('.')
    {
        return Err(invalid(
            "events.nats.subject_prefix",
            "must be a subject without spaces or wildcards, e.g. kommutator.events".to_owned(),
        ));
    }
    let token = resolve_secret(
        "events.nats.token",
        raw.token,
        raw.token_file.as_deref(),
        "KOMMUTATOR_EVENTS_NATS_TOKEN",
        environment,
    )?;
    Ok(Some(NatsSettings {
        url: raw.url,
        stream: raw.stream,
        subject_prefix: raw.subject_prefix,
        max_age: Duration::from_secs(raw.max_age_hours.max(1) * 3600),
        token,
        buffer: raw.buffer.max(1000),
    }))
}
