//! The router with its inputs, under a deadline: what the FastAGI server, the HTTP endpoint,
//! the demo and `kommutator route explain` call.
//!
//! [`RoutingService::route`] normalizes the numbers, asks the [`Directory`] (cache first, then
//! the on-miss source) with whatever remains of the budget, converts the clock into office
//! time and runs the pure [`Router`]. If the directory has not answered by the deadline the
//! decision is made without the customer and marked degraded; the whole call never takes
//! longer than the budget plus the microseconds the router needs.
//!
//! It also keeps the [`DecisionLog`]: decisions by channel id, so the pipeline that writes the
//! call record can attach the decision that routed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{Datelike, FixedOffset, TimeZone, Timelike, Utc};
use cti_core::routing::{
    AgentAvailability, Caller, CustomerLookup, Date, Decision, LocalTime, RouteRequest, Router,
    StepOutcome, Weekday,
};
use cti_core::Timestamp;

use crate::directory::{Directory, Resolved};
use crate::phone::{normalize, Normalized, Region};

/// Agent availability shared across tasks.
pub type SharedAvailability = Arc<dyn AgentAvailability + Send + Sync>;

/// What the PBX or the HTTP client tells about a call to route.
#[derive(Debug, Clone, Default)]
pub struct RouteQuery {
    /// Caller ID number as received.
    pub caller: String,
    /// The dialled line (DID) as received, if any.
    pub line: Option<String>,
    /// The channel's language (`agi_language`).
    pub channel_language: Option<String>,
    /// Channel ids to file the decision under (Asterisk uniqueid and linkedid).
    pub call_ids: Vec<String>,
}

/// Settings of the service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSettings {
    /// Hard deadline per decision.
    pub budget: Duration,
    /// Default region for number normalization.
    pub region: Region,
    /// Office time zone as a fixed UTC offset, in minutes (Moscow: +180).
    pub utc_offset_minutes: i32,
}

/// The router and its inputs.
pub struct RoutingService {
    router: RwLock<Arc<Router>>,
    directory: Arc<Directory>,
    agents: RwLock<SharedAvailability>,
    settings: ServiceSettings,
    log: Arc<DecisionLog>,
}

impl std::fmt::Debug for RoutingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingService")
            .field("settings", &self.settings)
            .field("directory", &self.directory)
            .finish()
    }
}

/// Recent decisions by channel id, for the pipeline to attach to call records.
///
/// Bounded by age and count: a decision nobody collects (a call routed by a PBX we do not
/// track) is dropped after `ttl`.
#[derive(Debug)]
pub struct DecisionLog {
    entries: Mutex<HashMap<String, (Instant, Arc<Decision>)>>,
    ttl: Duration,
    capacity: usize,
}

impl DecisionLog {
    /// A log keeping decisions for `ttl`, at most `capacity` keys.
    pub fn new(ttl: Duration, capacity: usize) -> DecisionLog {
        DecisionLog {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Files `decision` under every id.
    pub fn insert(&self, ids: &[String], decision: Arc<Decision>) {
        if ids.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() + ids.len() > self.capacity {
            entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if entries.len() + ids.len() > self.capacity {
                entries.clear();
            }
        }
        for id in ids {
            if !id.is_empty() {
                entries.insert(id.clone(), (now, decision.clone()));
            }
        }
    }

    /// The decision filed under `id`, if still fresh. It stays in the log: a call record is
    /// written several times while the call goes on.
    pub fn get(&self, id: &str) -> Option<Arc<Decision>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, d)| d.clone())
    }
}

impl Default for DecisionLog {
    fn default() -> Self {
        DecisionLog::new(Duration::from_secs(6 * 3600), 200_000)
    }
}

impl RoutingService {
    /// A service over `router`, `directory` and `agents`.
    pub fn new(
        router: Router,
        directory: Arc<Directory>,
        agents: SharedAvailability,
        settings: ServiceSettings,
        log: Arc<DecisionLog>,
    ) -> RoutingService {
        crate::phone::warm_up();
        RoutingService {
            router: RwLock::new(Arc::new(router)),
            directory,
            agents: RwLock::new(agents),
            settings,
            log,
        }
    }

    /// The directory it reads.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The decision log it writes.
    pub fn log(&self) -> &Arc<DecisionLog> {
        &self.log
    }

    /// The settings.
    pub fn settings(&self) -> ServiceSettings {
        self.settings
    }

    /// Replaces the rules (configuration reload).
    pub fn set_router(&self, router: Router) {
        *self.router.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(router);
    }

    /// Replaces the availability source (e.g. when live agent status starts).
    pub fn set_agents(&self, agents: SharedAvailability) {
        *self.agents.write().unwrap_or_else(PoisonError::into_inner) = agents;
    }

    /// Decides where the call goes, within the budget, and files the decision under
    /// `query.call_ids`.
    pub async fn route(&self, query: &RouteQuery) -> Arc<Decision> {
        let deadline = tokio::time::Instant::now() + self.settings.budget;
        let now = now_timestamp();
        let decision = self.route_at(query, now, deadline).await;
        let decision = Arc::new(decision);
        self.log.insert(&query.call_ids, decision.clone());
        decision
    }

    /// Like [`RoutingService::route`] at a given time and deadline, without filing: for
    /// `route explain`, the what-if replay and tests.
    pub async fn route_at(
        &self,
        query: &RouteQuery,
        now: Timestamp,
        deadline: tokio::time::Instant,
    ) -> Decision {
        let caller = match normalize(&query.caller, self.settings.region) {
            Normalized::E164(n) => Caller::E164(n.to_string()),
            Normalized::Extension(e) => Caller::Extension(e),
            Normalized::Withheld => Caller::Withheld,
            Normalized::Other(o) => Caller::Other(o),
        };
        let line = query
            .line
            .as_deref()
            .filter(|l| !l.trim().is_empty() && !l.eq_ignore_ascii_case("unknown"))
            .map(|l| match normalize(l, self.settings.region) {
                Normalized::E164(n) => n.to_string(),
                Normalized::Extension(e) | Normalized::Other(e) => e,
                Normalized::Withheld => String::new(),
            });
        let (customer, degraded) = match &caller {
            Caller::E164(text) => match crate::phone::E164::parse(text) {
                Some(phone) => match self.directory.resolve(phone, deadline).await {
                    Resolved::Found(summary) => (CustomerLookup::Found(summary), None),
                    Resolved::NotFound => (CustomerLookup::NotFound, None),
                    Resolved::TimedOut => (
                        CustomerLookup::Unavailable,
                        Some(format!(
                            "the customer lookup did not answer within the {} ms budget",
                            self.settings.budget.as_millis()
                        )),
                    ),
                    Resolved::Failed(why) => (
                        CustomerLookup::Unavailable,
                        Some(format!("the customer lookup failed: {why}")),
                    ),
                },
                None => (CustomerLookup::NotFound, None),
            },
            _ => (CustomerLookup::NotFound, None),
        };
        let request = RouteRequest {
            caller,
            line,
            channel_language: query.channel_language.clone().filter(|l| !l.is_empty()),
            local_time: local_time(now, self.settings.utc_offset_minutes),
            now,
            customer,
            degraded,
        };
        let router = self
            .router
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let agents = self
            .agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        router.decide(&request, agents.as_ref())
    }
}

/// The current time as a core timestamp.
pub fn now_timestamp() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

/// Office wall-clock time for a UTC timestamp and a fixed offset.
pub fn local_time(now: Timestamp, utc_offset_minutes: i32) -> LocalTime {
    let offset = FixedOffset::east_opt(utc_offset_minutes.clamp(-1439, 1439) * 60)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero is a valid offset"));
    let utc = Utc
        .timestamp_micros(now.as_micros())
        .single()
        .unwrap_or_default();
    let local = utc.with_timezone(&offset);
    let weekday = Weekday::ALL[local.weekday().num_days_from_monday() as usize];
    LocalTime {
        date: Date {
            year: local.year(),
            month: local.month() as u8,
            day: local.day() as u8,
        },
        weekday,
        minute_of_day: (local.hour() * 60 + local.minute()) as u16,
    }
}

/// The decision as stored with the call and sent to the panel: route, reason, customer,
/// degraded flag and the rule trace.
pub fn decision_json(decision: &Decision) -> serde_json::Value {
    let trace: Vec<serde_json::Value> = decision
        .trace
        .iter()
        .map(|step| {
            let (outcome, detail) = match &step.outcome {
                StepOutcome::Decided(d) => ("decided", d),
                StepOutcome::Applied(d) => ("applied", d),
                StepOutcome::Skipped(d) => ("skipped", d),
            };
            serde_json::json!({ "rule": step.rule, "outcome": outcome, "detail": detail })
        })
        .collect();
    let variables: serde_json::Map<String, serde_json::Value> = decision
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
        .collect();
    serde_json::json!({
        "route": decision.route.kind(),
        "target": decision.route.target(),
        "priority": decision.route.priority(),
        "rule": decision.rule,
        "reason": decision.reason,
        "customer_id": decision.customer_id,
        "customer_name": decision.customer_name,
        "segment": decision.segment,
        "language": decision.language,
        "variables": variables,
        "degraded": decision.degraded.is_some(),
        "degraded_reason": decision.degraded,
        "trace": trace,
    })
}
