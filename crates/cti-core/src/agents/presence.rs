//! Agent availability: available, away with a reason, after-call work, offline.
//!
//! Each status maps to the queue pause state on the PBX: available is unpaused, everything
//! else is paused with a reason (the away reason, the after-call-work reason or the offline
//! reason). The machine emits the `QueuePause` commands it needs and reads the PBX's pause
//! events back, so a pause made on the phone (a feature code) becomes the panel's status too.
//!
//! Who wins when panel and PBX disagree:
//! - a live `QueueMemberPause` we did not ask for is a change made elsewhere (phone, another
//!   tool): it is adopted;
//! - after a (re)connect the PBX reports every member (`QueueStatus`). A status restored from
//!   storage at server start has not been confirmed by anyone since, so the PBX's state is
//!   adopted; a status set while this process ran is re-sent to the PBX (it restarted and lost
//!   it). Either way a disagreement ends in one state and is reported, never silently kept.
//!
//! After-call work starts automatically when an available agent's call ends, lasts the
//! configured time and can be extended; when it runs out the agent is available again.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{Extension, QueueName};
use crate::time::Timestamp;

/// Identifies an agent (the server uses the user's login).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AgentId(String);

impl AgentId {
    /// Wraps a value as received; opaque.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({:?})", self.0)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent's availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    /// Takes calls.
    Available,
    /// Does not take calls for a reason (lunch, break, meeting, training, or what the phone said).
    Away {
        /// The reason, as configured or as reported by the PBX.
        reason: String,
    },
    /// Finishing the last call's paperwork; available again at `until`.
    AfterCallWork {
        /// When after-call work ends on its own.
        until: Timestamp,
    },
    /// Not working.
    Offline,
}

impl AgentStatus {
    /// Lower-case name used in storage and on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away { .. } => "away",
            Self::AfterCallWork { .. } => "after_call_work",
            Self::Offline => "offline",
        }
    }

    /// The away reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Away { reason } => Some(reason),
            _ => None,
        }
    }
}

/// What an agent (or a supervisor for them) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedStatus {
    /// Take calls.
    Available,
    /// Away for a reason; the reason must be one of the configured ones.
    Away(String),
    /// Start after-call work now (without a call ending), for the configured time.
    AfterCallWork,
    /// Stop working.
    Offline,
}

/// Why a status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// The agent (or a supervisor) asked in the panel.
    Panel,
    /// The PBX reported a pause change nobody asked for here (feature code on the phone).
    Phone,
    /// A call ended and after-call work started.
    CallEnded,
    /// After-call work ran out.
    Timer,
    /// A reconnect to the PBX found a different pause state and it was adopted.
    Reconcile,
    /// Registered at server start with the last stored status.
    Restored,
}

impl ChangeSource {
    /// Lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panel => "panel",
            Self::Phone => "phone",
            Self::CallEnded => "call_ended",
            Self::Timer => "timer",
            Self::Reconcile => "reconcile",
            Self::Restored => "restored",
        }
    }
}

/// Whether the current status has been confirmed since the server started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOrigin {
    /// Loaded from storage at start; the PBX's state wins on the first `QueueStatus`.
    Restored,
    /// Set or confirmed while this process ran; re-sent to a PBX that disagrees.
    Live,
}

/// A queue membership: the queue and the interface the PBX knows the agent by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The queue.
    pub queue: QueueName,
    /// The member interface, e.g. `PJSIP/101` or `Local/101@agents/nm`.
    pub interface: String,
}

/// An agent to manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSetup {
    /// The agent.
    pub agent: AgentId,
    /// The extensions the agent answers on.
    pub extensions: Vec<Extension>,
    /// Queue memberships (several queues may share one interface).
    pub members: Vec<Membership>,
    /// The last stored status and when it began, or `None` (then: offline).
    pub restored: Option<(AgentStatus, Timestamp)>,
}

/// The pause state of one member as the PBX reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPauseState {
    /// The member interface.
    pub interface: String,
    /// The queue, when the report names one.
    pub queue: Option<QueueName>,
    /// Paused or not.
    pub paused: bool,
    /// `PausedReason` (empty when none).
    pub reason: String,
}

/// Tuning of the presence machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceConfig {
    /// Away reasons agents may choose (lunch, break, ...).
    pub away_reasons: Vec<String>,
    /// Automatic after-call work after each call, microseconds; 0 = none.
    pub after_call_work_us: i64,
    /// Longest after-call work including extensions, microseconds.
    pub after_call_work_max_us: i64,
    /// Pause reason sent to the PBX during after-call work.
    pub after_call_work_reason: String,
    /// Pause reason sent to the PBX while offline.
    pub offline_reason: String,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            away_reasons: ["lunch", "break", "meeting", "training"]
                .map(str::to_owned)
                .to_vec(),
            after_call_work_us: 30_000_000,
            after_call_work_max_us: 600_000_000,
            after_call_work_reason: "after-call-work".to_owned(),
            offline_reason: "offline".to_owned(),
        }
    }
}

/// An input to [`Presence::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceInput {
    /// Someone asked for a status in the panel.
    SetStatus {
        /// Whose status.
        agent: AgentId,
        /// What they asked for.
        status: RequestedStatus,
    },
    /// Make after-call work last `by_us` longer (from now if it already ran out).
    ExtendAfterCallWork {
        /// Whose.
        agent: AgentId,
        /// How much longer, microseconds.
        by_us: i64,
    },
    /// An agent started talking on a call (tracker `AgentConnected`).
    CallConnected {
        /// The extension.
        extension: Extension,
    },
    /// An agent stopped handling a call (tracker `AgentDisconnected`).
    CallDisconnected {
        /// The extension.
        extension: Extension,
    },
    /// The PBX reported a pause change of one member (`QueueMemberPause`).
    MemberPaused(MemberPauseState),
    /// The PBX's full member list after a (re)connect (`QueueStatus` `QueueMember` items).
    QueueSnapshot(Vec<MemberPauseState>),
    /// Time passes (after-call work expiry).
    Tick,
}

/// What [`Presence::apply`] asks the world to do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEffect {
    /// An agent's status changed.
    StatusChanged {
        /// Whose.
        agent: AgentId,
        /// The new status.
        status: AgentStatus,
        /// When it began.
        since: Timestamp,
        /// Why.
        source: ChangeSource,
    },
    /// Pause or unpause a member on the PBX (`QueuePause`; no queue = all its queues).
    PauseMember {
        /// The member interface.
        interface: String,
        /// Paused or not.
        paused: bool,
        /// The reason to send (`None` when unpausing).
        reason: Option<String>,
    },
    /// A request was refused; the panel tells the agent why.
    Refused {
        /// Whose request.
        agent: AgentId,
        /// Why, in words.
        reason: String,
    },
}

/// One agent's state, readable by the server for snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    /// The agent.
    pub agent: AgentId,
    /// The extensions.
    pub extensions: Vec<Extension>,
    /// The status.
    pub status: AgentStatus,
    /// When it began.
    pub since: Timestamp,
    /// Whether it was confirmed since start.
    pub origin: StatusOrigin,
    /// Calls the agent is talking on now.
    pub calls: u32,
    interfaces: Vec<String>,
    /// The pause state last sent per interface, to recognise the PBX's echo of it.
    sent: BTreeMap<String, (bool, String)>,
    /// When after-call work began (to cap extensions).
    acw_started: Option<Timestamp>,
}

/// The presence state machine. See the module documentation.
#[derive(Debug, Default)]
pub struct Presence {
    config: PresenceConfig,
    agents: BTreeMap<AgentId, AgentState>,
    by_extension: BTreeMap<Extension, AgentId>,
    by_interface: BTreeMap<String, AgentId>,
}

impl Presence {
    /// An empty machine.
    pub fn new(config: PresenceConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// Adds or replaces an agent. A replaced agent keeps its live status.
    pub fn register(&mut self, setup: AgentSetup, now: Timestamp) {
        let mut interfaces: Vec<String> =
            setup.members.iter().map(|m| m.interface.clone()).collect();
        interfaces.sort();
        interfaces.dedup();
        if let Some(old) = self.agents.remove(&setup.agent) {
            self.by_extension.retain(|_, a| *a != old.agent);
            self.by_interface.retain(|_, a| *a != old.agent);
            self.agents.insert(
                setup.agent.clone(),
                AgentState {
                    extensions: setup.extensions.clone(),
                    interfaces: interfaces.clone(),
                    ..old
                },
            );
        } else {
            let (status, since) = setup.restored.unwrap_or((AgentStatus::Offline, now));
            self.agents.insert(
                setup.agent.clone(),
                AgentState {
                    agent: setup.agent.clone(),
                    extensions: setup.extensions.clone(),
                    status,
                    since,
                    origin: StatusOrigin::Restored,
                    calls: 0,
                    interfaces: interfaces.clone(),
                    sent: BTreeMap::new(),
                    acw_started: None,
                },
            );
        }
        for extension in setup.extensions {
            self.by_extension.insert(extension, setup.agent.clone());
        }
        for interface in interfaces {
            self.by_interface.insert(interface, setup.agent.clone());
        }
    }

    /// The agent's state.
    pub fn agent(&self, agent: &AgentId) -> Option<&AgentState> {
        self.agents.get(agent)
    }

    /// Every agent, ordered by id.
    pub fn agents(&self) -> impl Iterator<Item = &AgentState> {
        self.agents.values()
    }

    /// The agent answering on `extension`.
    pub fn agent_of_extension(&self, extension: &str) -> Option<&AgentId> {
        self.by_extension.get(extension)
    }

    /// The earliest time at which [`PresenceInput::Tick`] would change something.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.agents
            .values()
            .filter_map(|a| match a.status {
                AgentStatus::AfterCallWork { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Applies one input at `now`.
    pub fn apply(&mut self, input: PresenceInput, now: Timestamp) -> Vec<PresenceEffect> {
        let mut out = Vec::new();
        match input {
            PresenceInput::SetStatus { agent, status } => {
                self.set_status(agent, status, now, &mut out)
            }
            PresenceInput::ExtendAfterCallWork { agent, by_us } => {
                self.extend(agent, by_us, now, &mut out)
            }
            PresenceInput::CallConnected { extension } => {
                if let Some(state) = self.by_extension_mut(extension.as_str()) {
                    state.calls = state.calls.saturating_add(1);
                }
            }
            PresenceInput::CallDisconnected { extension } => {
                self.call_disconnected(extension.as_str(), now, &mut out)
            }
            PresenceInput::MemberPaused(report) => self.member_paused(report, now, &mut out),
            PresenceInput::QueueSnapshot(members) => self.snapshot(members, now, &mut out),
            PresenceInput::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn by_extension_mut(&mut self, extension: &str) -> Option<&mut AgentState> {
        let agent = self.by_extension.get(extension)?;
        self.agents.get_mut(agent)
    }

    fn set_status(
        &mut self,
        agent: AgentId,
        requested: RequestedStatus,
        now: Timestamp,
        out: &mut Vec<PresenceEffect>,
    ) {
        let status = match requested {
            RequestedStatus::Available => AgentStatus::Available,
            RequestedStatus::Offline => AgentStatus::Offline,
            RequestedStatus::AfterCallWork => AgentStatus::AfterCallWork {
                until: now.plus_micros(self.config.after_call_work_us.max(1)),
            },
            RequestedStatus::Away(reason) => {
                if !self.config.away_reasons.contains(&reason) {
                    out.push(PresenceEffect::Refused {
                        agent,
                        reason: format!(
                            "`{reason}` is not an away reason; use one of: {}",
                            self.config.away_reasons.join(", ")
                        ),
                    });
                    return;
                }
                AgentStatus::Away { reason }
            }
        };
        if !self.agents.contains_key(&agent) {
            out.push(PresenceEffect::Refused {
                agent,
                reason: "this user is not an agent (no extension or queue)".to_owned(),
            });
            return;
        }
        self.change(&agent, status, now, ChangeSource::Panel, out);
    }

    fn extend(
        &mut self,
        agent: AgentId,
        by_us: i64,
        now: Timestamp,
        out: &mut Vec<PresenceEffect>,
    ) {
        let max_us = self.config.after_call_work_max_us;
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        let AgentStatus::AfterCallWork { until } = state.status else {
            out.push(PresenceEffect::Refused {
                agent,
                reason: "after-call work is not running".to_owned(),
            });
            return;
        };
        let started = state.acw_started.unwrap_or(state.since);
        let wanted = until.max(now).plus_micros(by_us.max(0));
        let capped = wanted.min(started.plus_micros(max_us));
        if capped <= until {
            out.push(PresenceEffect::Refused {
                agent,
                reason: format!(
                    "after-call work cannot last longer than {} s",
                    max_us / 1_000_000
                ),
            });
            return;
        }
        state.status = AgentStatus::AfterCallWork { until: capped };
        state.origin = StatusOrigin::Live;
        out.push(PresenceEffect::StatusChanged {
            agent,
            status: state.status.clone(),
            since: state.since,
            source: ChangeSource::Panel,
        });
    }

    fn call_disconnected(
        &mut self,
        extension: &str,
        now: Timestamp,
        out: &mut Vec<PresenceEffect>,
    ) {
        let acw_us = self.config.after_call_work_us;
        let Some(state) = self.by_extension_mut(extension) else {
            return;
        };
        state.calls = state.calls.saturating_sub(1);
        // Only an available agent goes into after-call work: an away agent who took a direct
        // call stays away, and a second call ending during after-call work does not restart it.
        if state.calls > 0 || acw_us <= 0 || state.status != AgentStatus::Available {
            return;
        }
        let agent = state.agent.clone();
        let until = now.plus_micros(acw_us);
        self.change(
            &agent,
            AgentStatus::AfterCallWork { until },
            now,
            ChangeSource::CallEnded,
            out,
        );
    }

    fn member_paused(
        &mut self,
        report: MemberPauseState,
        now: Timestamp,
        out: &mut Vec<PresenceEffect>,
    ) {
        let Some(agent) = self.by_interface.get(&report.interface).cloned() else {
            return;
        };
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        if let Some((paused, reason)) = state.sent.get(&report.interface) {
            // The echo of what we sent (one event per queue of the member).
            if *paused == report.paused && (!report.paused || *reason == report.reason) {
                return;
            }
        }
        if pause_of(&self.config, &state.status) == (report.paused, report.reason.clone()) {
            return;
        }
        let status = self.status_from_pbx(&report);
        if let Some(state) = self.agents.get_mut(&agent) {
            state.sent.insert(
                report.interface.clone(),
                (report.paused, report.reason.clone()),
            );
        }
        self.change_quietly(&agent, status, now, ChangeSource::Phone, out);
    }

    fn snapshot(
        &mut self,
        members: Vec<MemberPauseState>,
        now: Timestamp,
        out: &mut Vec<PresenceEffect>,
    ) {
        let mut per_agent: BTreeMap<AgentId, Vec<MemberPauseState>> = BTreeMap::new();
        for member in members {
            if let Some(agent) = self.by_interface.get(&member.interface) {
                per_agent.entry(agent.clone()).or_default().push(member);
            }
        }
        for (agent, reports) in per_agent {
            let Some(state) = self.agents.get(&agent) else {
                continue;
            };
            let wanted = pause_of(&self.config, &state.status);
            let agrees =
                |r: &MemberPauseState| r.paused == wanted.0 && (!r.paused || r.reason == wanted.1);
            match state.origin {
                StatusOrigin::Live => {
                    let mut interfaces: Vec<String> = reports
                        .iter()
                        .filter(|r| !agrees(r))
                        .map(|r| r.interface.clone())
                        .collect();
                    interfaces.dedup();
                    for interface in interfaces {
                        out.push(pause_effect(&interface, &wanted));
                        if let Some(state) = self.agents.get_mut(&agent) {
                            state.sent.insert(interface, wanted.clone());
                        }
                    }
                }
                StatusOrigin::Restored => {
                    let status = match reports.iter().find(|r| !agrees(r)) {
                        Some(differs) => self.status_from_pbx(differs),
                        None => state.status.clone(),
                    };
                    if let Some(state) = self.agents.get_mut(&agent) {
                        state.origin = StatusOrigin::Live;
                        for r in &reports {
                            state
                                .sent
                                .insert(r.interface.clone(), (r.paused, r.reason.clone()));
                        }
                    }
                    // Members of several queues may still disagree among themselves; make
                    // them all say the adopted status.
                    let wanted = pause_of(&self.config, &status);
                    let mut stray: Vec<String> = reports
                        .iter()
                        .filter(|r| r.paused != wanted.0 || (r.paused && r.reason != wanted.1))
                        .map(|r| r.interface.clone())
                        .collect();
                    stray.dedup();
                    self.change_quietly(&agent, status, now, ChangeSource::Reconcile, out);
                    for interface in stray {
                        out.push(pause_effect(&interface, &wanted));
                        if let Some(state) = self.agents.get_mut(&agent) {
                            state.sent.insert(interface, wanted.clone());
                        }
                    }
                }
            }
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<PresenceEffect>) {
        let due: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| matches!(a.status, AgentStatus::AfterCallWork { until } if until <= now))
            .map(|a| a.agent.clone())
            .collect();
        for agent in due {
            self.change(
                &agent,
                AgentStatus::Available,
                now,
                ChangeSource::Timer,
                out,
            );
        }
    }

    /// What a pause report from the PBX means as a status.
    fn status_from_pbx(&self, report: &MemberPauseState) -> AgentStatus {
        if !report.paused {
            AgentStatus::Available
        } else if report.reason == self.config.offline_reason {
            AgentStatus::Offline
        } else if report.reason.is_empty() {
            // A feature code pause usually carries no reason.
            AgentStatus::Away {
                reason: "phone".to_owned(),
            }
        } else {
            AgentStatus::Away {
                reason: report.reason.clone(),
            }
        }
    }

    /// Changes the status and sends the pause commands the new status needs.
    fn change(
        &mut self,
        agent: &AgentId,
        status: AgentStatus,
        now: Timestamp,
        source: ChangeSource,
        out: &mut Vec<PresenceEffect>,
    ) {
        let wanted = pause_of(&self.config, &status);
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        for interface in &state.interfaces {
            if state.sent.get(interface) != Some(&wanted) {
                out.push(pause_effect(interface, &wanted));
                state.sent.insert(interface.clone(), wanted.clone());
            }
        }
        self.change_quietly(agent, status, now, source, out);
    }

    /// Changes the status without commanding the PBX (it is the PBX that told us).
    fn change_quietly(
        &mut self,
        agent: &AgentId,
        status: AgentStatus,
        now: Timestamp,
        source: ChangeSource,
        out: &mut Vec<PresenceEffect>,
    ) {
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        state.origin = StatusOrigin::Live;
        let same_kind = state.status == status;
        if same_kind && source != ChangeSource::Panel {
            return;
        }
        if !same_kind {
            state.since = now;
        }
        state.acw_started = matches!(status, AgentStatus::AfterCallWork { .. }).then_some(now);
        state.status = status;
        out.push(PresenceEffect::StatusChanged {
            agent: agent.clone(),
            status: state.status.clone(),
            since: state.since,
            source,
        });
    }
}

/// The pause state (paused, reason) a status needs on the PBX.
fn pause_of(config: &PresenceConfig, status: &AgentStatus) -> (bool, String) {
    match status {
        AgentStatus::Available => (false, String::new()),
        AgentStatus::Away { reason } => (true, reason.clone()),
        AgentStatus::AfterCallWork { .. } => (true, config.after_call_work_reason.clone()),
        AgentStatus::Offline => (true, config.offline_reason.clone()),
    }
}

fn pause_effect(interface: &str, wanted: &(bool, String)) -> PresenceEffect {
    PresenceEffect::PauseMember {
        interface: interface.to_owned(),
        paused: wanted.0,
        reason: wanted.0.then(|| wanted.1.clone()),
    }
}

#[cfg(test)]
mod tests;
