//! The `[routing]` configuration section and its conversion into a validated
//! [`cti_core::routing::Router`] plus service settings. It is glue: the rule semantics live in
//! `cti-core::routing`, the directory and the service in `crates/directory`. It is not the
//! place for I/O beyond building the service from storage at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cti_core::routing::{
    Action, Date, KnownExtensions, Route, Router, RouterConfig, Rule, RuleError, Weekday,
    WorkingHours,
};
use directory::from_storage::{StorageSource, UserExtensions};
use directory::phone::{Region, E164};
use directory::{
    BoxFuture, CustomerRecord, DecisionLog, Directory, LookupError, LookupSource, RoutingService,
    ServiceSettings,
};
use serde::Deserialize;

use crate::config::ConfigError;

/// `[routing]` as written in the file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// FastAGI listener address, e.g. "0.0.0.0:4573". Absent: no FastAGI listener.
    pub listen: Option<String>,
    /// Hard deadline per decision, in milliseconds. Default 300.
    pub budget_ms: Option<u64>,
    /// Default country for number normalization. Default "RU".
    pub region: Option<String>,
    /// Office time zone as a fixed offset, "+03:00". Default "+03:00".
    pub utc_offset: Option<String>,
    /// Open intervals per weekday: `mon = ["09:00-18:00"]`. Absent: always open.
    pub hours: Option<BTreeMap<String, Vec<String>>>,
    /// Closed dates, "YYYY-MM-DD".
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Seconds between full reloads of the customer directory. Default 300.
    pub refresh_secs: Option<u64>,
    /// How far back the "last agent" of a customer is looked up, in days. Default 30.
    pub last_agent_days: Option<u32>,
    /// Ordered rules.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// One `[[routing.rules]]` entry: a name, a kind and the parameters that kind takes.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique rule name, shown in traces and reasons.
    pub name: String,
    /// blacklist, assigned_manager, last_agent, vip, debtors, area_code, after_hours, default.
    pub kind: String,
    /// Target queue (vip, debtors, default; after_hours with action = "queue").
    pub queue: Option<String>,
    /// Queue priority (vip). Default 10.
    pub priority: Option<u8>,
    /// Customer segments (vip). Default ["vip"].
    pub segments: Option<Vec<String>>,
    /// Maximum age of the last call, in days (last_agent). Default: `last_agent_days`.
    pub within_days: Option<u32>,
    /// Region → queue (area_code).
    pub offices: Option<BTreeMap<String, String>>,
    /// after_hours: voicemail, queue, ivr, number or reject.
    pub action: Option<String>,
    /// after_hours: the voicemail box, IVR context or number.
    pub target: Option<String>,
}

/// The resolved `[routing]` section.
#[derive(Debug, Clone)]
pub struct RoutingSettings {
    /// FastAGI listener, if any.
    pub listen: Option<SocketAddr>,
    /// The validated rules.
    pub router: Router,
    /// Service settings (budget, region, offset).
    pub service: ServiceSettings,
    /// Directory reload interval.
    pub refresh: Duration,
    /// Last-agent lookback.
    pub last_agent_days: u32,
}

fn invalid(field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message,
    }
}

/// Validates `[routing]`; `None` when the section has no rules (routing off).
pub fn resolve(raw: RawRouting) -> Result<Option<RoutingSettings>, ConfigError> {
    if raw.rules.is_empty() {
        return Ok(None);
    }
    let listen = match &raw.listen {
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "routing.listen",
                format!("`{text}` is not an address and port such as \"0.0.0.0:4573\""),
            )
        })?),
        None => None,
    };
    let region_text = raw.region.as_deref().unwrap_or("RU");
    let region = Region::parse(region_text).map_err(|e| {
        invalid(
            "routing.region",
            format!("`{region_text}` is not a country code: {e}"),
        )
    })?;
    let offset_text = raw.utc_offset.as_deref().unwrap_or("+03:00");
    let utc_offset_minutes = parse_offset(offset_text).ok_or_else(|| {
        invalid(
            "routing.utc_offset",
            format!("`{offset_text}` is not an offset such as \"+03:00\""),
        )
    })?;
    let last_agent_days = raw.last_agent_days.unwrap_or(30);
    let router = build_router(&raw, last_agent_days)
        .map_err(|e| invalid(&format!("routing.rules.{}", e.rule), e.to_string()))?;
    Ok(Some(RoutingSettings {
        listen,
        router,
        service: ServiceSettings {
            budget: Duration::from_millis(raw.budget_ms.unwrap_or(300).max(1)),
            region,
            utc_offset_minutes,
        },
        refresh: Duration::from_secs(raw.refresh_secs.unwrap_or(300).max(1)),
        last_agent_days,
    }))
}

/// Parses the rules file of `route simulate`: a TOML document with a `[routing]` section.
pub fn router_from_toml(text: &str) -> anyhow::Result<Router> {
    #[derive(Deserialize)]
    struct File {
        routing: RawRouting,
    }
    let file: File = toml::from_str(text)?;
    let days = file.routing.last_agent_days.unwrap_or(30);
    Ok(build_router(&file.routing, days)?)
}

/// Converts the raw rules and calendar into a validated router.
pub fn build_router(raw: &RawRouting, last_agent_days: u32) -> Result<Router, RuleError> {
    let hours = match &raw.hours {
        None => WorkingHours {
            holidays: parse_holidays(&raw.holidays)?,
            ..WorkingHours::always_open()
        },
        Some(map) => {
            let mut hours = WorkingHours {
                holidays: parse_holidays(&raw.holidays)?,
                ..WorkingHours::default()
            };
            for (day, intervals) in map {
                let weekday = Weekday::parse(day).ok_or_else(|| RuleError {
                    rule: "routing".into(),
                    message: format!("hours: `{day}` is not a weekday such as \"mon\""),
                })?;
                for interval in intervals {
                    let parsed = parse_interval(interval).ok_or_else(|| RuleError {
                        rule: "routing".into(),
                        message: format!("hours.{day}: `{interval}` is not \"09:00-18:00\""),
                    })?;
                    hours.days[weekday.index()].push(parsed);
                }
            }
            hours
        }
    };
    let mut rules = Vec::with_capacity(raw.rules.len());
    for rule in &raw.rules {
        rules.push(convert_rule(rule, last_agent_days)?);
    }
    Router::new(RouterConfig {
        rules,
        hours,
        fallback: Route::Reject,
    })
}

fn convert_rule(raw: &RawRule, last_agent_days: u32) -> Result<Rule, RuleError> {
    let name = raw.name.as_str();
    let error = |message: String| RuleError {
        rule: name.to_owned(),
        message,
    };
    let queue = || {
        raw.queue
            .clone()
            .filter(|q| !q.is_empty())
            .ok_or_else(|| error(format!("kind `{}` needs `queue`", raw.kind)))
    };
    let rule = match raw.kind.as_str() {
        "blacklist" => Rule::blacklist(name),
        "assigned_manager" => Rule::assigned_manager(name),
        "last_agent" => Rule::last_agent(name, raw.within_days.unwrap_or(last_agent_days)),
        "vip" => Rule::vip(
            name,
            raw.segments.clone().unwrap_or_else(|| vec!["vip".into()]),
            raw.priority.unwrap_or(10),
            raw.queue.clone().map(Into::into),
        ),
        "debtors" => Rule::debtors(name, queue()?.into()),
        "area_code" => {
            let offices: Vec<_> = raw
                .offices
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(region, queue)| (region, queue.into()))
                .collect();
            if offices.is_empty() {
                return Err(error("kind `area_code` needs `offices`".into()));
            }
            Rule::area_code(name, offices)
        }
        "after_hours" => {
            let target = || {
                raw.target
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| error("this after_hours action needs `target`".into()))
            };
            let action = match raw.action.as_deref().unwrap_or("voicemail") {
                "voicemail" => Action::Voicemail(target()?),
                "ivr" => Action::Ivr(target()?),
                "number" => Action::Number(target()?),
                "reject" => Action::Reject,
                "queue" => Action::Queue {
                    queue: queue()?.into(),
                    priority: raw.priority,
                },
                other => {
                    return Err(error(format!(
                        "action `{other}` is not voicemail, ivr, number, reject or queue"
                    )))
                }
            };
            Rule::after_hours(name, action)
        }
        "default" => Rule::default_queue(name, queue()?.into()),
        other => {
            return Err(error(format!(
                "kind `{other}` is not one of blacklist, assigned_manager, last_agent, vip, \
                 debtors, area_code, after_hours, default"
            )))
        }
    };
    Ok(rule)
}

fn parse_holidays(list: &[String]) -> Result<Vec<Date>, RuleError> {
    list.iter()
        .map(|text| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| {
                    use chrono::Datelike;
                    Date {
                        year: d.year(),
                        month: d.month() as u8,
                        day: d.day() as u8,
                    }
                })
                .map_err(|_| RuleError {
                    rule: "routing".into(),
                    message: format!("holidays: `{text}` is not a date such as \"2026-01-01\""),
                })
        })
        .collect()
}

fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    // 24:00 closes a day that runs to midnight.
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn parse_interval(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-')?;
    let (start, end) = (parse_hhmm(start)?, parse_hhmm(end)?);
    (start < end).then_some((start, end))
}

fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let minutes = i32::from(parse_hhmm(rest)?);
    (minutes <= 14 * 60).then_some(sign * minutes)
}

/// Builds the directory over `storage` and the routing service. The directory starts empty;
/// the caller spawns [`directory::from_storage::refresh_task`] to fill it.
pub async fn build_service(
    settings: &RoutingSettings,
    storage: &storage::Storage,
    log: Arc<DecisionLog>,
) -> anyhow::Result<Arc<RoutingService>> {
    let users = Arc::new(UserExtensions::load(storage).await?);
    let known = KnownExtensions::new(users.extensions().map(Into::into));
    let source = StorageSource::new(storage.clone(), users);
    let directory = Arc::new(Directory::new(Some(Arc::new(source))));
    Ok(Arc::new(RoutingService::new(
        settings.router.clone(),
        directory,
        Arc::new(known),
        settings.service,
        log,
    )))
}

/// On-miss lookup in storage whose user → extension map is refreshed with the directory, so
/// a customer added after start-up still gets a responsible manager's extension.
#[derive(Debug)]
struct LiveUsersSource {
    storage: storage::Storage,
    users: RwLock<Arc<UserExtensions>>,
}

impl LookupSource for LiveUsersSource {
    fn lookup(&self, phone: E164) -> BoxFuture<'_, Result<Option<CustomerRecord>, LookupError>> {
        Box::pin(async move {
            let users = self
                .users
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            StorageSource::new(self.storage.clone(), users)
                .lookup(phone)
                .await
        })
    }
}

/// A started routing service and its tasks.
pub struct Started {
    /// The service, for the HTTP route endpoint and the pipeline.
    pub service: Arc<RoutingService>,
    /// The agent availability the service decides with; feed it live presence with
    /// [`follow_presence`].
    pub availability: Arc<LiveAvailability>,
    /// Directory refresh and FastAGI server.
    pub tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    /// The FastAGI address actually bound (port 0 resolved), if a listener is configured.
    pub agi_addr: Option<SocketAddr>,
}

/// Starts routing inside a tokio runtime: the directory (filled by
/// [`directory::from_storage::refresh_task`]), the user list refresh that feeds agent
/// availability, and the FastAGI server when `listen` is set. Synchronous so that
/// `Running::start` stays synchronous; the socket is bound here so a taken port fails the
/// start instead of a background task.
pub fn start(
    settings: &RoutingSettings,
    storage: storage::Storage,
    log: Arc<DecisionLog>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let source = Arc::new(LiveUsersSource {
        storage: storage.clone(),
        users: RwLock::new(Arc::new(UserExtensions::default())),
    });
    let directory = Arc::new(Directory::new(
        Some(source.clone() as Arc<dyn LookupSource>),
    ));
    let availability = Arc::new(LiveAvailability::default());
    let service = Arc::new(RoutingService::new(
        settings.router.clone(),
        directory.clone(),
        availability.clone(),
        settings.service,
        log,
    ));
    let mut tasks = Vec::new();
    tasks.push((
        "routing-directory",
        tokio::spawn(directory::from_storage::refresh_task(
            directory,
            storage.clone(),
            settings.refresh,
            settings.last_agent_days,
            stop.clone(),
        )),
    ));
    {
        let (availability, storage, mut stop, interval) = (
            availability.clone(),
            storage,
            stop.clone(),
            settings.refresh,
        );
        tasks.push((
            "routing-users",
            tokio::spawn(async move {
                loop {
                    match UserExtensions::load(&storage).await {
                        Ok(users) => {
                            availability.set_known(users.extensions());
                            *source.users.write().unwrap_or_else(PoisonError::into_inner) =
                                Arc::new(users);
                        }
                        Err(e) => tracing::warn!(
                            error = %e,
                            "Cannot load users for routing; keeping the previous list."
                        ),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = stop.changed() => return,
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            }),
        ));
    }
    let mut agi_addr = None;
    if let Some(addr) = settings.listen {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
            anyhow::anyhow!("cannot listen for FastAGI on {addr} ({e}); change routing.listen")
        })?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let bound = listener.local_addr()?;
        agi_addr = Some(bound);
        let (service, mut stop) = (service.clone(), stop);
        tasks.push((
            "fastagi",
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = pbx_agi::run(listener, service, shutdown).await {
                    tracing::error!(error = %e, "The FastAGI server failed.");
                }
            }),
        ));
        // The demo binds port 0: the log line is where the agi:// address is announced.
        tracing::info!(url = %format!("agi://{bound}"), "FastAGI routing is listening.");
    }
    Ok(Started {
        service,
        availability,
        tasks,
        agi_addr,
    })
}

/// Agent availability for routing rules ("assigned manager if available", "last agent if
/// available", agent-else-queue): an extension is available when it belongs to a user and the
/// CTI hub's live presence last said its agent is `available`. Away, after-call work and
/// offline are not available. An extension whose agent has not reported a status since
/// start counts as available, as before live presence existed: the hub only announces
/// changes, and refusing every manager after a restart would send all customers to queues.
#[derive(Debug, Default)]
pub struct LiveAvailability {
    known: RwLock<KnownExtensions>,
    /// Extension → status name (`available`, `away`, `after_call_work`, `offline`).
    statuses: RwLock<std::collections::HashMap<String, String>>,
    /// Extension → the calls it is talking on now (from the tracker's effects).
    on_call: RwLock<std::collections::HashMap<String, std::collections::HashSet<String>>>,
}

impl LiveAvailability {
    /// Replaces the set of extensions that belong to users (from the periodic user refresh).
    pub fn set_known<'a>(&self, extensions: impl Iterator<Item = &'a str>) {
        *self.known.write().unwrap_or_else(PoisonError::into_inner) =
            KnownExtensions::new(extensions.map(Into::into));
    }

    /// Applies one status change from the hub's presence.
    pub fn apply(&self, change: &server::dashboard::AgentStatusChange) {
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for extension in &change.extensions {
            statuses.insert(extension.clone(), change.status.clone());
        }
    }
}

impl LiveAvailability {
    /// Follows who is on a call from one tracker effect. Keyed by call, and cleared when a
    /// call ends, so an agent whose disconnect was never seen (a PBX restart) is not held busy
    /// beyond the call's end.
    pub fn apply_effect(&self, effect: &cti_core::Effect) {
        use cti_core::Effect;
        let mut on_call = self.on_call.write().unwrap_or_else(PoisonError::into_inner);
        match effect {
            Effect::AgentConnected { call_id, agent } => {
                on_call
                    .entry(agent.to_string())
                    .or_default()
                    .insert(call_id.to_string());
            }
            Effect::AgentDisconnected { call_id, agent } => {
                if let Some(calls) = on_call.get_mut(agent.as_str()) {
                    calls.remove(call_id.as_str());
                }
            }
            Effect::CallEnded(record) => {
                let id = record.call_id.as_str();
                for calls in on_call.values_mut() {
                    calls.remove(id);
                }
            }
            _ => return,
        }
        on_call.retain(|_, calls| !calls.is_empty());
    }
}

impl cti_core::routing::AgentAvailability for LiveAvailability {
    fn is_available(&self, extension: &cti_core::Extension) -> bool {
        if self
            .on_call
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(extension.as_str())
        {
            return false;
        }
        let known = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_available(extension);
        known
            && self
                .statuses
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(extension.as_str())
                .is_none_or(|status| status == "available")
    }
}

/// Follows the hub's agent status changes (through the dashboard's broadcast) into `live`
/// until `stop` turns true.
pub fn follow_presence(
    live: Arc<LiveAvailability>,
    mut statuses: tokio::sync::broadcast::Receiver<server::dashboard::AgentStatusChange>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                change = statuses.recv() => match change {
                    Ok(change) => live.apply(&change),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(
                        missed = n,
                        "Routing missed agent status changes; availability catches up with the next ones."
                    ),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = stop.changed() => {
                    if *stop.borrow() {
                        return;
                    }
                }
            }
        }
    })
}

/// The demo's routing: the seed rules, always open, FastAGI on a free loopback port.
pub fn demo_settings() -> Result<RoutingSettings, ConfigError> {
    let rule = |name: &str, kind: &str| RawRule {
        name: name.into(),
        kind: kind.into(),
        ..RawRule::default()
    };
    let raw = RawRouting {
        listen: Some("127.0.0.1:0".into()),
        rules: vec![
            rule("blacklist", "blacklist"),
            RawRule {
                queue: Some("collections".into()),
                ..rule("debtors", "debtors")
            },
            rule("manager", "assigned_manager"),
            rule("last-agent", "last_agent"),
            rule("vip", "vip"),
            RawRule {
                offices: Some(BTreeMap::from([
                    ("Moscow".to_owned(), "moscow".to_owned()),
                    ("Saint Petersburg".to_owned(), "spb".to_owned()),
                ])),
                ..rule("regional", "area_code")
            },
            RawRule {
                queue: Some("support".into()),
                ..rule("default", "default")
            },
        ],
        ..RawRouting::default()
    };
    resolve(raw)?.ok_or_else(|| invalid("routing.rules", "the demo has no rules".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, kind: &str) -> RawRule {
        RawRule {
            name: name.into(),
            kind: kind.into(),
            ..RawRule::default()
        }
    }

    #[test]
    fn broken_rule_is_named() {
        for (raw, wanted) in [
            (rule("collect", "debtors"), "collect"),
            (rule("oops", "nonsense"), "oops"),
            (rule("regions", "area_code"), "regions"),
        ] {
            let err = build_router(
                &RawRouting {
                    rules: vec![raw],
                    ..RawRouting::default()
                },
                30,
            )
            .unwrap_err();
            assert_eq!(err.rule, wanted);
        }
    }

    fn status(extension: &str, status: &str) -> server::dashboard::AgentStatusChange {
        server::dashboard::AgentStatusChange {
            at: cti_core::Timestamp::from_micros(0),
            login: "anna".into(),
            extensions: vec![extension.into()],
            status: status.into(),
            reason: (status == "away").then(|| "lunch".to_owned()),
            origin: "agent".into(),
        }
    }

    /// "Assigned manager if available" follows the hub's live presence: the manager's own
    /// extension while available, the queue while away, in after-call work or offline.
    #[test]
    fn assigned_manager_follows_live_presence() {
        let router = build_router(
            &RawRouting {
                rules: vec![
                    rule("manager", "assigned_manager"),
                    RawRule {
                        queue: Some("support".into()),
                        ..rule("default", "default")
                    },
                ],
                ..RawRouting::default()
            },
            30,
        )
        .unwrap();
        let request = cti_core::routing::RouteRequest {
            caller: cti_core::routing::Caller::E164("+79161234567".into()),
            line: None,
            channel_language: None,
            local_time: cti_core::routing::LocalTime::default(),
            now: cti_core::Timestamp::from_micros(0),
            customer: cti_core::routing::CustomerLookup::Found(
                cti_core::routing::CustomerSummary {
                    id: "c1".into(),
                    name: "Romashka".into(),
                    responsible: Some("101".into()),
                    ..Default::default()
                },
            ),
            degraded: None,
        };
        let live = LiveAvailability::default();
        let route = |live: &LiveAvailability| router.decide(&request, live).route.to_string();
        // Not a user's extension: never available.
        assert_eq!(route(&live), "queue support (priority 0)");
        live.set_known(["101", "102"].into_iter());
        // A user, no status reported since start.
        assert_eq!(route(&live), "agent 101");
        live.apply(&status("101", "away"));
        assert_eq!(route(&live), "queue support (priority 0)");
        live.apply(&status("101", "available"));
        assert_eq!(route(&live), "agent 101");
        live.apply(&status("101", "after_call_work"));
        assert_eq!(route(&live), "queue support (priority 0)");
        // Another agent's change does not touch 101.
        live.apply(&status("102", "available"));
        assert_eq!(route(&live), "queue support (priority 0)");
        live.apply(&status("101", "offline"));
        assert_eq!(route(&live), "queue support (priority 0)");
        live.apply(&status("101", "available"));
        assert_eq!(route(&live), "agent 101");
        // On a call (two at once after a consultation): busy until both legs are gone.
        let connected = |call: &str| cti_core::Effect::AgentConnected {
            call_id: cti_core::CallId::new(call),
            agent: cti_core::Extension::new("101"),
        };
        let disconnected = |call: &str| cti_core::Effect::AgentDisconnected {
            call_id: cti_core::CallId::new(call),
            agent: cti_core::Extension::new("101"),
        };
        live.apply_effect(&connected("c1"));
        live.apply_effect(&connected("c2"));
        assert_eq!(route(&live), "queue support (priority 0)");
        live.apply_effect(&disconnected("c1"));
        assert_eq!(route(&live), "queue support (priority 0)");
        live.apply_effect(&disconnected("c2"));
        assert_eq!(route(&live), "agent 101");
    }

    #[test]
    fn offsets_and_intervals() {
        assert_eq!(parse_offset("+03:00"), Some(180));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("03:00"), None);
        assert_eq!(parse_interval("09:00-18:00"), Some((540, 1080)));
        assert_eq!(parse_interval("18:00-09:00"), None);
        assert_eq!(parse_interval("9-18"), None);
    }
}
