//! The router: where an incoming call goes, decided from the caller's number, the line, the
//! local time, what the directory knows about the customer and which agents are free.
//!
//! What it is: ordered, named rules (first terminal match wins), each a set of conditions and
//! an action, evaluated by [`Router::decide`] into a [`Decision`] that carries the route, the
//! variables for a personalized IVR and a trace of every rule looked at and why it did or did
//! not match. Built-in rule kinds for the common cases are constructors on [`Rule`].
//!
//! What it is not: it does no lookup and keeps no time. The customer summary, the agent
//! availability and the local wall-clock time are inputs; the hard deadline is enforced by the
//! async caller (which then passes [`CustomerLookup::Unavailable`] and a degraded reason).
//! Rules arrive as plain structs: TOML parsing lives in the binary.

mod pattern;
mod region;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use crate::{Extension, QueueName, Timestamp};

pub use pattern::{NumberPattern, PatternError};
pub use region::region_of_number;

/// Everything the router knows about one call at decision time.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    /// The caller as sent by the PBX, normalized by the caller of the router.
    pub caller: Caller,
    /// The line (DID) the customer dialled, in E.164 when it is a phone number.
    pub line: Option<String>,
    /// The channel's language as the PBX knows it (`agi_language`), used when neither a rule
    /// nor the customer says otherwise.
    pub channel_language: Option<String>,
    /// Wall-clock time at the office, for working hours and holidays.
    pub local_time: LocalTime,
    /// The current time, UTC, for "last agent within N days".
    pub now: Timestamp,
    /// What the directory answered.
    pub customer: CustomerLookup,
    /// Why the inputs are incomplete (a lookup timed out, failed), if they are.
    pub degraded: Option<String>,
}

/// The calling party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Caller {
    /// A phone number in E.164 (`+79161234567`).
    E164(String),
    /// An internal extension.
    Extension(String),
    /// Number withheld or not sent.
    #[default]
    Withheld,
    /// Anything else (SIP URI, invalid number), as received.
    Other(String),
}

/// The answer of the directory for the caller's number.
// One value per decision, never stored in bulk: boxing the summary would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
pub enum CustomerLookup {
    /// A known customer.
    Found(CustomerSummary),
    /// The directory answered: nobody has this number.
    #[default]
    NotFound,
    /// The directory could not answer in time; the decision is degraded.
    Unavailable,
}

/// The part of a customer the router uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSummary {
    /// Directory id (opaque text).
    pub id: String,
    /// Display name, for the IVR greeting and the screen pop.
    pub name: String,
    /// Extension of the responsible manager.
    pub responsible: Option<Extension>,
    /// Segment, e.g. `vip`.
    pub segment: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Owes money.
    pub debtor: bool,
    /// Calls are not wanted.
    pub blacklisted: bool,
    /// Region from the CRM, e.g. `Moscow`.
    pub region: Option<String>,
    /// Preferred language (`ru`, `en`), if the CRM has one.
    pub language: Option<String>,
    /// The agent who last talked to this customer, and when that call started.
    pub last_agent: Option<(Extension, Timestamp)>,
}

/// Local wall-clock time at the office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalTime {
    /// Calendar date.
    pub date: Date,
    /// Day of the week.
    pub weekday: Weekday,
    /// Minutes since local midnight, 0..1440.
    pub minute_of_day: u16,
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day, 1..=31.
    pub day: u8,
}

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Weekday {
    /// Monday.
    #[default]
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// Agent availability, as far as the caller knows it.
pub trait AgentAvailability {
    /// Whether a call offered to this extension now would likely be answered.
    fn is_available(&self, extension: &Extension) -> bool;
}

/// Availability from the user list alone: every extension that belongs to a user is treated
/// as available, any other extension as unknown and so unavailable. Used until live agent
/// status feeds the router.
#[derive(Debug, Clone, Default)]
pub struct KnownExtensions {
    extensions: HashSet<Extension>,
}

/// The office calendar: working hours per weekday and holidays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingHours {
    /// Open intervals per weekday (Monday first), minutes since midnight, `[start, end)`.
    /// An empty list means closed all day.
    pub days: [Vec<(u16, u16)>; 7],
    /// Dates the office is closed regardless of the weekday.
    pub holidays: Vec<Date>,
}

/// The router's configuration: the ordered rules, the calendar and the route taken when no
/// rule matches.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Ordered rules; the first terminal rule that matches decides.
    pub rules: Vec<Rule>,
    /// Office hours for `within_hours` conditions.
    pub hours: WorkingHours,
    /// Taken when no rule matches.
    pub fallback: Route,
}

/// One named rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, shown in the trace and the reason.
    pub name: String,
    /// All conditions must hold.
    pub when: Conditions,
    /// What happens when they do.
    pub action: Action,
}

/// Conditions of a rule; an empty list or `None` does not constrain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The caller's E.164 number starts with one of these (`+7495`).
    pub caller_prefixes: Vec<String>,
    /// The caller's number matches one of these Asterisk-style patterns.
    pub caller_patterns: Vec<NumberPattern>,
    /// The call came in on one of these lines (DIDs), compared as normalized text.
    pub lines: Vec<String>,
    /// The caller's region (from the number's area code, else the customer's region) is one
    /// of these, compared case-insensitively.
    pub regions: Vec<String>,
    /// `Some(true)`: only during working hours (not on holidays); `Some(false)`: only outside.
    pub within_hours: Option<bool>,
    /// Only on these weekdays.
    pub weekdays: Vec<Weekday>,
    /// Only between these local times, minutes since midnight, `[start, end)`; `start > end`
    /// wraps past midnight.
    pub time_of_day: Option<(u16, u16)>,
    /// `Some(true)`: only on holidays; `Some(false)`: never on holidays.
    pub holiday: Option<bool>,
    /// `Some(true)`: only for callers found in the directory; `Some(false)`: only for others.
    pub known_customer: Option<bool>,
    /// The customer's segment is one of these (case-insensitive).
    pub segments: Vec<String>,
    /// The customer has at least one of these tags (case-insensitive).
    pub tags: Vec<String>,
    /// The customer's debtor flag equals this.
    pub debtor: Option<bool>,
    /// The customer's blacklist flag equals this.
    pub blacklisted: Option<bool>,
    /// `Some(true)`: only withheld numbers; `Some(false)`: only callers with a number.
    pub withheld: Option<bool>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Route to a queue.
    Queue {
        /// Queue name on the PBX.
        queue: QueueName,
        /// Queue priority (`QUEUE_PRIO`); `None` keeps a priority set by an earlier rule.
        priority: Option<u8>,
    },
    /// Route to an agent; the rule does not match when the agent is unknown or unavailable.
    Agent(AgentTarget),
    /// Route to an agent when available, otherwise to the queue.
    AgentElseQueue {
        /// Who.
        agent: AgentTarget,
        /// Where otherwise.
        queue: QueueName,
        /// Queue priority for the fallback.
        priority: Option<u8>,
    },
    /// Route to the regional office queue of the caller's region; no match when the region
    /// is unknown or has no office.
    QueueByRegion {
        /// Region name (case-insensitive) → queue.
        offices: Vec<(String, QueueName)>,
        /// Queue priority.
        priority: Option<u8>,
    },
    /// Dial a number (an outside line, a mobile).
    Number(String),
    /// Send to voicemail.
    Voicemail(String),
    /// Reject the call.
    Reject,
    /// Send to an IVR menu (a dialplan context).
    Ivr(String),
    /// Not terminal: set the priority for a later queue route, then go on.
    SetPriority(u8),
    /// Not terminal: set IVR variables (language, greeting, ...), then go on.
    SetVariables(Vec<(String, String)>),
}

/// Which agent an agent route means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTarget {
    /// A fixed extension.
    Extension(Extension),
    /// The customer's responsible manager.
    Responsible,
    /// The agent who last talked to the customer, if that was within this many days.
    LastAgent {
        /// Maximum age of that call.
        within_days: u32,
    },
}

/// Where the call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Into a queue with a priority (0 = normal).
    Queue {
        /// Queue name.
        queue: QueueName,
        /// Priority.
        priority: u8,
    },
    /// Straight to an agent's extension.
    Agent(Extension),
    /// To a number.
    Number(String),
    /// To a voicemail box.
    Voicemail(String),
    /// Rejected.
    Reject,
    /// To an IVR menu.
    Ivr(String),
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Where the call goes.
    pub route: Route,
    /// The rule that decided; `None` when the fallback route was taken.
    pub rule: Option<String>,
    /// One sentence saying why, for the screen pop and `KOMMUTATOR_REASON`.
    pub reason: String,
    /// Customer name, when known.
    pub customer_name: Option<String>,
    /// Customer id in the directory, when known.
    pub customer_id: Option<String>,
    /// Customer segment, when known.
    pub segment: Option<String>,
    /// Language for prompts.
    pub language: Option<String>,
    /// Extra IVR variables set by rules.
    pub variables: Vec<(String, String)>,
    /// Why the inputs were incomplete, if they were.
    pub degraded: Option<String>,
    /// Every rule looked at, in order.
    pub trace: Vec<TraceStep>,
}

/// One rule in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// Rule name.
    pub rule: String,
    /// What happened.
    pub outcome: StepOutcome,
}

/// What one rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The rule decided the route.
    Decided(String),
    /// A non-terminal rule applied; evaluation went on.
    Applied(String),
    /// The rule did not match, and why.
    Skipped(String),
}

/// A configuration error, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule, or `routing` for settings outside any rule.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

/// A validated, ready router.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "routing rule {:?}: {}", self.rule, self.message)
    }
}

impl std::error::Error for RuleError {}

impl KnownExtensions {
    /// From the extensions of all (enabled) users.
    pub fn new(extensions: impl IntoIterator<Item = Extension>) -> Self {
        KnownExtensions {
            extensions: extensions.into_iter().collect(),
        }
    }
}

impl AgentAvailability for KnownExtensions {
    fn is_available(&self, extension: &Extension) -> bool {
        self.extensions.contains(extension)
    }
}

impl Weekday {
    /// Every weekday, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Monday = 0 … Sunday = 6.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses `mon`, `Monday`, `пн` …, case-insensitively.
    pub fn parse(text: &str) -> Option<Weekday> {
        let lower = text.trim().to_lowercase();
        let res = match lower.as_str() {
            "mon" | "monday" | "пн" => Weekday::Mon,
            "tue" | "tuesday" | "вт" => Weekday::Tue,
            "wed" | "wednesday" | "ср" => Weekday::Wed,
            "thu" | "thursday" | "чт" => Weekday::Thu,
            "fri" | "friday" | "пт" => Weekday::Fri,
            "sat" | "saturday" | "сб" => Weekday::Sat,
            "sun" | "sunday" | "вс" => Weekday::Sun,
            _ => return None,
        };
        Some(res)
    }
}

impl WorkingHours {
    /// Open every day, all day, no holidays.
    pub fn always_open() -> Self {
        WorkingHours {
            days: std::array::from_fn(|_| vec![(0, 1440)]),
            holidays: Vec::new(),
        }
    }

    /// Whether `time` is a holiday.
    pub fn is_holiday(&self, time: &LocalTime) -> bool {
        self.holidays.contains(&time.date)
    }

    /// Whether the office is open at `time`.
    pub fn is_open(&self, time: &LocalTime) -> bool {
        !self.is_holiday(time)
            && self.days[time.weekday.index()]
                .iter()
                .any(|&(start, end)| time.minute_of_day >= start && time.minute_of_day < end)
    }
}

impl Route {
    /// The `KOMMUTATOR_ROUTE` value: `queue`, `agent`, `number`, `voicemail`, `reject`, `ivr`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Queue { .. } => "queue",
            Route::Agent(_) => "agent",
            Route::Number(_) => "number",
            Route::Voicemail(_) => "voicemail",
            Route::Reject => "reject",
            Route::Ivr(_) => "ivr",
        }
    }

    /// The `KOMMUTATOR_TARGET` value: queue, extension, number, mailbox, menu; empty for reject.
    pub fn target(&self) -> &str {
        match self {
            Route::Queue { queue, .. } => queue.as_str(),
            Route::Agent(extension) => extension.as_str(),
            Route::Number(target) | Route::Voicemail(target) | Route::Ivr(target) => target,
            Route::Reject => "",
        }
    }

    /// The queue priority (0 for routes that are not queues).
    pub fn priority(&self) -> u8 {
        match self {
            Route::Queue { priority, .. } => *priority,
            _ => 0,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Queue { queue, priority } => write!(f, "queue {queue} (priority {priority})"),
            Route::Reject => f.write_str("reject"),
            other => write!(f, "{} {}", other.kind(), other.target()),
        }
    }
}

impl Rule {
    /// Blacklisted customers are rejected.
    pub fn blacklist(name: &str) -> Rule {
        Rule::new(
            name,
            Conditions {
                blacklisted: Some(true),
                ..Conditions::default()
            },
            Action::Reject,
        )
    }

    /// The responsible manager when available (no match otherwise).
    pub fn assigned_manager(name: &str) -> Rule {
        Rule::new(
            name,
            Conditions::default(),
            Action::Agent(AgentTarget::Responsible),
        )
    }

    /// The last agent who talked to the customer within `within_days`, when available.
    pub fn last_agent(name: &str, within_days: u32) -> Rule {
        Rule::new(
            name,
            Conditions::default(),
            Action::Agent(AgentTarget::LastAgent { within_days }),
        )
    }

    /// Customers of these segments get `priority`; in `queue` when given (terminal), else the
    /// priority carries over to whichever queue a later rule picks.
    pub fn vip(name: &str, segments: Vec<String>, priority: u8, queue: Option<QueueName>) -> Rule {
        let action = match queue {
            Some(queue) => Action::Queue {
                queue,
                priority: Some(priority),
            },
            None => Action::SetPriority(priority),
        };
        Rule::new(
            name,
            Conditions {
                segments,
                ..Conditions::default()
            },
            action,
        )
    }

    /// Debtors go to the collections queue.
    pub fn debtors(name: &str, queue: QueueName) -> Rule {
        Rule::new(
            name,
            Conditions {
                debtor: Some(true),
                ..Conditions::default()
            },
            Action::Queue {
                queue,
                priority: None,
            },
        )
    }

    /// The regional office queue of the caller's region.
    pub fn area_code(name: &str, offices: Vec<(String, QueueName)>) -> Rule {
        Rule::new(
            name,
            Conditions::default(),
            Action::QueueByRegion {
                offices,
                priority: None,
            },
        )
    }

    /// Outside working hours (and on holidays), `action`.
    pub fn after_hours(name: &str, action: Action) -> Rule {
        Rule::new(
            name,
            Conditions {
                within_hours: Some(false),
                ..Conditions::default()
            },
            action,
        )
    }

    /// Everything that got this far goes to `queue`.
    pub fn default_queue(name: &str, queue: QueueName) -> Rule {
        Rule::new(
            name,
            Conditions::default(),
            Action::Queue {
                queue,
                priority: None,
            },
        )
    }

    /// A rule from parts.
    pub fn new(name: &str, when: Conditions, action: Action) -> Rule {
        Rule {
            name: name.to_owned(),
            when,
            action,
        }
    }

    /// Whether the rule ends evaluation whenever its conditions hold.
    fn always_terminal(&self) -> bool {
        matches!(
            self.action,
            Action::Queue { .. }
                | Action::Number(_)
                | Action::Voicemail(_)
                | Action::Reject
                | Action::Ivr(_)
                | Action::AgentElseQueue { .. }
        )
    }
}

impl Conditions {
    /// True when no condition is set, so the rule matches every call.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }
}

impl Router {
    /// Validates the configuration: unique non-empty names, non-empty targets, sane times,
    /// and no rule hidden behind an earlier rule that matches every call.
    pub fn new(config: RouterConfig) -> Result<Router, RuleError> {
        let mut names: HashSet<&str> = HashSet::new();
        let mut catch_all: Option<&str> = None;
        for rule in &config.rules {
            let err = |message: String| RuleError {
                rule: rule.name.clone(),
                message,
            };
            if rule.name.trim().is_empty() {
                return Err(RuleError {
                    rule: String::new(),
                    message: "every rule needs a name".to_owned(),
                });
            }
            if !names.insert(rule.name.as_str()) {
                return Err(err("the name is used by an earlier rule".to_owned()));
            }
            if let Some(earlier) = catch_all {
                return Err(err(format!(
                    "can never match: rule {earlier:?} before it matches every call"
                )));
            }
            validate_action(&rule.action).map_err(err)?;
            if let Some((start, end)) = rule.when.time_of_day {
                if start > 1440 || end > 1440 || start == end {
                    return Err(err(
                        "time_of_day must be two different times within the day".to_owned(),
                    ));
                }
            }
            if rule.when.is_empty() && rule.always_terminal() {
                catch_all = Some(rule.name.as_str());
            }
        }
        validate_route(&config.fallback).map_err(|message| RuleError {
            rule: "routing".to_owned(),
            message: format!("fallback route: {message}"),
        })?;
        for (i, day) in config.hours.days.iter().enumerate() {
            for &(start, end) in day {
                if start >= end || end > 1440 {
                    return Err(RuleError {
                        rule: "routing".to_owned(),
                        message: format!(
                            "working hours on {:?}: an interval must start before it ends",
                            Weekday::ALL[i]
                        ),
                    });
                }
            }
        }
        Ok(Router { config })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Decides where the call goes. Pure: same inputs, same decision.
    pub fn decide(&self, request: &RouteRequest, agents: &dyn AgentAvailability) -> Decision {
        let customer = match &request.customer {
            CustomerLookup::Found(customer) => Some(customer),
            _ => None,
        };
        let mut trace = Vec::with_capacity(self.config.rules.len());
        let mut priority: Option<u8> = None;
        let mut variables: Vec<(String, String)> = Vec::new();
        let mut language: Option<String> = None;
        let mut decided: Option<(Route, String, String)> = None;
        for rule in &self.config.rules {
            if let Err(why) = self.conditions_hold(&rule.when, request, customer) {
                trace.push(TraceStep {
                    rule: rule.name.clone(),
                    outcome: StepOutcome::Skipped(why),
                });
                continue;
            }
            match apply_action(&rule.action, request, customer, agents, priority) {
                ActionResult::Decided(route, why) => {
                    trace.push(TraceStep {
                        rule: rule.name.clone(),
                        outcome: StepOutcome::Decided(why.clone()),
                    });
                    decided = Some((route, rule.name.clone(), why));
                    break;
                }
                ActionResult::NoMatch(why) => trace.push(TraceStep {
                    rule: rule.name.clone(),
                    outcome: StepOutcome::Skipped(why),
                }),
                ActionResult::Priority(value) => {
                    priority = Some(value);
                    trace.push(TraceStep {
                        rule: rule.name.clone(),
                        outcome: StepOutcome::Applied(format!("priority {value}")),
                    });
                }
                ActionResult::Variables(values) => {
                    let mut text = String::new();
                    for (name, value) in values {
                        if name.eq_ignore_ascii_case("language") {
                            language = Some(value.clone());
                        }
                        if !text.is_empty() {
                            text.push_str(", ");
                        }
                        let _ = write!(text, "{name}={value}");
                        variables.retain(|(n, _)| *n != name);
                        variables.push((name.clone(), value.clone()));
                    }
                    trace.push(TraceStep {
                        rule: rule.name.clone(),
                        outcome: StepOutcome::Applied(text),
                    });
                }
            }
        }
        let (route, rule, reason) = match decided {
            Some((route, rule, why)) => {
                let reason = format!("{rule}: {why}");
                (route, Some(rule), reason)
            }
            None => {
                let route = match (&self.config.fallback, priority) {
                    (Route::Queue { queue, .. }, Some(priority)) => Route::Queue {
                        queue: queue.clone(),
                        priority,
                    },
                    (route, _) => route.clone(),
                };
                let reason = format!("no rule matched; fallback to {route}");
                (route, None, reason)
            }
        };
        let language = language
            .or_else(|| customer.and_then(|c| c.language.clone()))
            .or_else(|| request.channel_language.clone());
        Decision {
            route,
            rule,
            reason,
            customer_name: customer.map(|c| c.name.clone()),
            customer_id: customer.map(|c| c.id.clone()),
            segment: customer.and_then(|c| c.segment.clone()),
            language,
            variables,
            degraded: request.degraded.clone(),
            trace,
        }
    }

    fn conditions_hold(
        &self,
        when: &Conditions,
        request: &RouteRequest,
        customer: Option<&CustomerSummary>,
    ) -> Result<(), String> {
        let number = match &request.caller {
            Caller::E164(number) => Some(number.as_str()),
            _ => None,
        };
        if let Some(want) = when.withheld {
            let withheld = request.caller == Caller::Withheld;
            if withheld != want {
                return Err(if want {
                    "the caller's number is not withheld".to_owned()
                } else {
                    "the caller's number is withheld".to_owned()
                });
            }
        }
        if !when.caller_prefixes.is_empty() {
            let hit = number.is_some_and(|n| when.caller_prefixes.iter().any(|p| n.starts_with(p)));
            if !hit {
                return Err("the caller's number has none of the prefixes".to_owned());
            }
        }
        if !when.caller_patterns.is_empty() {
            let text = match &request.caller {
                Caller::E164(n) | Caller::Extension(n) | Caller::Other(n) => n.as_str(),
                Caller::Withheld => "",
            };
            if !when.caller_patterns.iter().any(|p| p.matches(text)) {
                return Err("the caller's number matches none of the patterns".to_owned());
            }
        }
        if !when.lines.is_empty() {
            let hit = request
                .line
                .as_deref()
                .is_some_and(|line| when.lines.iter().any(|l| l == line));
            if !hit {
                return Err(format!(
                    "the line {} is not one of the rule's lines",
                    request.line.as_deref().unwrap_or("(none)")
                ));
            }
        }
        if !when.regions.is_empty() {
            match caller_region(request, customer) {
                Some(region) if when.regions.iter().any(|r| r.eq_ignore_ascii_case(&region)) => {}
                Some(region) => return Err(format!("region {region} is not one of the rule's")),
                None => return Err("the caller's region is unknown".to_owned()),
            }
        }
        if let Some(want) = when.holiday {
            if self.config.hours.is_holiday(&request.local_time) != want {
                return Err(if want {
                    "today is not a holiday".to_owned()
                } else {
                    "today is a holiday".to_owned()
                });
            }
        }
        if let Some(want) = when.within_hours {
            if self.config.hours.is_open(&request.local_time) != want {
                return Err(if want {
                    "outside working hours".to_owned()
                } else {
                    "within working hours".to_owned()
                });
            }
        }
        if !when.weekdays.is_empty() && !when.weekdays.contains(&request.local_time.weekday) {
            return Err(format!("not on {:?}", request.local_time.weekday));
        }
        if let Some((start, end)) = when.time_of_day {
            let minute = request.local_time.minute_of_day;
            let inside = if start < end {
                minute >= start && minute < end
            } else {
                minute >= start || minute < end
            };
            if !inside {
                return Err(format!(
                    "{} is outside {}–{}",
                    clock(minute),
                    clock(start),
                    clock(end)
                ));
            }
        }
        let needs_customer = when.known_customer == Some(true)
            || !when.segments.is_empty()
            || !when.tags.is_empty()
            || when.debtor.is_some()
            || when.blacklisted.is_some();
        if when.known_customer == Some(false) && customer.is_some() {
            return Err("the caller is a known customer".to_owned());
        }
        if needs_customer {
            let Some(customer) = customer else {
                return Err(unknown_customer(request));
            };
            if !when.segments.is_empty() {
                let hit = customer
                    .segment
                    .as_deref()
                    .is_some_and(|s| when.segments.iter().any(|w| w.eq_ignore_ascii_case(s)));
                if !hit {
                    return Err(format!(
                        "segment {} is not one of the rule's",
                        customer.segment.as_deref().unwrap_or("(none)")
                    ));
                }
            }
            if !when.tags.is_empty() {
                let hit = customer
                    .tags
                    .iter()
                    .any(|t| when.tags.iter().any(|w| w.eq_ignore_ascii_case(t)));
                if !hit {
                    return Err("the customer has none of the tags".to_owned());
                }
            }
            if let Some(want) = when.debtor {
                if customer.debtor != want {
                    return Err(if want {
                        "the customer is not a debtor".to_owned()
                    } else {
                        "the customer is a debtor".to_owned()
                    });
                }
            }
            if let Some(want) = when.blacklisted {
                if customer.blacklisted != want {
                    return Err(if want {
                        "the customer is not blacklisted".to_owned()
                    } else {
                        "the customer is blacklisted".to_owned()
                    });
                }
            }
        }
        Ok(())
    }
}

impl Decision {
    /// A multi-line human explanation: the route, the reason, then one line per rule.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "route: {}", self.route);
        let _ = writeln!(out, "reason: {}", self.reason);
        if let Some(name) = &self.customer_name {
            let _ = writeln!(
                out,
                "customer: {name} (segment {})",
                self.segment.as_deref().unwrap_or("none")
            );
        }
        if let Some(why) = &self.degraded {
            let _ = writeln!(out, "degraded: {why}");
        }
        for step in &self.trace {
            let (mark, text) = match &step.outcome {
                StepOutcome::Decided(why) => ("=>", why),
                StepOutcome::Applied(what) => ("+ ", what),
                StepOutcome::Skipped(why) => ("- ", why),
            };
            let _ = writeln!(out, "  {mark} {}: {text}", step.rule);
        }
        out
    }
}

enum ActionResult {
    Decided(Route, String),
    NoMatch(String),
    Priority(u8),
    Variables(Vec<(String, String)>),
}

fn apply_action(
    action: &Action,
    request: &RouteRequest,
    customer: Option<&CustomerSummary>,
    agents: &dyn AgentAvailability,
    priority: Option<u8>,
) -> ActionResult {
    let queue_route = |queue: &QueueName, own: Option<u8>| Route::Queue {
        queue: queue.clone(),
        priority: own.or(priority).unwrap_or(0),
    };
    match action {
        Action::Queue {
            queue,
            priority: own,
        } => {
            let route = queue_route(queue, *own);
            let why = format!("to {route}");
            ActionResult::Decided(route, why)
        }
        Action::Agent(target) => match resolve_agent(target, request, customer, agents) {
            Ok((extension, why)) => ActionResult::Decided(Route::Agent(extension), why),
            Err(why) => ActionResult::NoMatch(why),
        },
        Action::AgentElseQueue {
            agent,
            queue,
            priority: own,
        } => match resolve_agent(agent, request, customer, agents) {
            Ok((extension, why)) => ActionResult::Decided(Route::Agent(extension), why),
            Err(why) => {
                let route = queue_route(queue, *own);
                let why = format!("{why}; to {route} instead");
                ActionResult::Decided(route, why)
            }
        },
        Action::QueueByRegion {
            offices,
            priority: own,
        } => match caller_region(request, customer) {
            Some(region) => match offices
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&region))
            {
                Some((_, queue)) => {
                    let route = queue_route(queue, *own);
                    let why = format!("caller from {region}; to the regional office, {route}");
                    ActionResult::Decided(route, why)
                }
                None => ActionResult::NoMatch(format!("no regional office for {region}")),
            },
            None => ActionResult::NoMatch("the caller's region is unknown".to_owned()),
        },
        Action::Number(number) => {
            ActionResult::Decided(Route::Number(number.clone()), format!("to number {number}"))
        }
        Action::Voicemail(mailbox) => ActionResult::Decided(
            Route::Voicemail(mailbox.clone()),
            format!("to voicemail {mailbox}"),
        ),
        Action::Reject => ActionResult::Decided(Route::Reject, "rejected".to_owned()),
        Action::Ivr(menu) => {
            ActionResult::Decided(Route::Ivr(menu.clone()), format!("to IVR {menu}"))
        }
        Action::SetPriority(value) => ActionResult::Priority(*value),
        Action::SetVariables(values) => ActionResult::Variables(values.clone()),
    }
}

fn resolve_agent(
    target: &AgentTarget,
    request: &RouteRequest,
    customer: Option<&CustomerSummary>,
    agents: &dyn AgentAvailability,
) -> Result<(Extension, String), String> {
    let (extension, who) = match target {
        AgentTarget::Extension(extension) => (extension.clone(), "agent".to_owned()),
        AgentTarget::Responsible => {
            let customer = customer.ok_or_else(|| unknown_customer(request))?;
            let extension = customer
                .responsible
                .clone()
                .ok_or_else(|| "the customer has no responsible manager".to_owned())?;
            (extension, "responsible manager".to_owned())
        }
        AgentTarget::LastAgent { within_days } => {
            let customer = customer.ok_or_else(|| unknown_customer(request))?;
            let (extension, at) = customer
                .last_agent
                .clone()
                .ok_or_else(|| "no earlier call with an agent".to_owned())?;
            let age_days = request.now.micros_since(at) / 86_400_000_000;
            if age_days > i64::from(*within_days) {
                return Err(format!(
                    "the last agent {extension} talked {age_days} days ago, more than {within_days}"
                ));
            }
            (extension, format!("last agent ({age_days} days ago)"))
        }
    };
    if agents.is_available(&extension) {
        Ok((extension.clone(), format!("{who} {extension} is available")))
    } else {
        Err(format!("{who} {extension} is not available"))
    }
}

fn caller_region(request: &RouteRequest, customer: Option<&CustomerSummary>) -> Option<String> {
    if let Caller::E164(number) = &request.caller {
        if let Some(region) = region_of_number(number) {
            return Some(region.to_owned());
        }
    }
    customer.and_then(|c| c.region.clone())
}

fn unknown_customer(request: &RouteRequest) -> String {
    match request.customer {
        CustomerLookup::Unavailable => "the directory did not answer in time".to_owned(),
        _ => "the caller is not a known customer".to_owned(),
    }
}

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn validate_action(action: &Action) -> Result<(), String> {
    let non_empty = |what: &str, value: &str| {
        if value.trim().is_empty() {
            Err(format!("the {what} is empty"))
        } else {
            Ok(())
        }
    };
    match action {
        Action::Queue { queue, .. } => non_empty("queue", queue.as_str()),
        Action::Agent(target) => validate_target(target),
        Action::AgentElseQueue { agent, queue, .. } => {
            validate_target(agent)?;
            non_empty("queue", queue.as_str())
        }
        Action::QueueByRegion { offices, .. } => {
            if offices.is_empty() {
                return Err("an area_code rule needs at least one office".to_owned());
            }
            for (region, queue) in offices {
                non_empty("region", region)?;
                non_empty("queue", queue.as_str())?;
            }
            Ok(())
        }
        Action::Number(number) => non_empty("number", number),
        Action::Voicemail(mailbox) => non_empty("mailbox", mailbox),
        Action::Ivr(menu) => non_empty("IVR menu", menu),
        Action::Reject | Action::SetPriority(_) => Ok(()),
        Action::SetVariables(values) => {
            if values.is_empty() {
                return Err("set no variables".to_owned());
            }
            for (name, _) in values {
                let ok = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(format!(
                        "variable name {name:?} must be letters, digits and _"
                    ));
                }
            }
            Ok(())
        }
    }
}

fn validate_target(target: &AgentTarget) -> Result<(), String> {
    match target {
        AgentTarget::Extension(extension) if extension.as_str().trim().is_empty() => {
            Err("the agent extension is empty".to_owned())
        }
        _ => Ok(()),
    }
}

fn validate_route(route: &Route) -> Result<(), String> {
    match route {
        Route::Reject => Ok(()),
        other if other.target().trim().is_empty() => Err("the target is empty".to_owned()),
        _ => Ok(()),
    }
}
