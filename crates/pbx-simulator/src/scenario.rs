//! The scenario catalogue: which real captures exist, what each one is, and how one call is
//! prepared from it (fresh ids, caller, agent).
//!
//! Each scenario is one real Asterisk 22.10.1 call (see `scenarios/asterisk-22.10.1/README.md`).
//! This module is pure apart from reading the embedded bytes; it knows nothing about sockets.

use std::collections::HashMap;
use std::sync::OnceLock;

use rand::Rng;

use crate::template::{self, Bindings, Param, Template};
use crate::SimError;

/// One kind of call, named after the capture it is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Queue `sales`, all three agents ring, 101 answers, the agent hangs up.
    QueueAnswered,
    /// Queue `support`: 103 does not answer, then 102 answers.
    QueueRnaAnswered,
    /// Queue `billing`: 103 rings twice without answer, the caller gives up (missed).
    QueueMissed,
    /// Queue `hotline`: its only member is paused, the caller hangs up (abandoned).
    QueueAbandon,
    /// A DID dialled straight to agent 102, who answers.
    DirectAnswered,
    /// A DID dialled straight to agent 103, no answer within the Dial timeout.
    DirectNoanswer,
    /// AMI Originate: agent 101's phone rings and answers, then the outside number is dialled.
    ClickToCall,
    /// Queue `sales`, 101 answers, then an AMI `BlindTransfer` of the agent leg to 102.
    BlindTransfer,
    /// Queue `sales`, 101 answers, then an AMI `Redirect` of the caller's channel to 102.
    RedirectTransfer,
    /// Queue `sales`, 101 answers, then an AMI `Atxfer` of the agent leg to 102.
    AttendedTransfer,
    /// Queue `sales`, 101 answers and holds the caller for 3 s (MOH).
    HoldMoh,
    /// A DID routed by a FastAGI server to queue `support`; 102 answers.
    AgiRouted,
    /// The same DID with no FastAGI server: fallback to queue `sales`; 101 answers.
    AgiFallback,
    /// A DID handed to an ARI (Stasis) application that answers, plays and hangs up.
    AriStasis,
}

/// Which capture of a scenario to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// The unfiltered capture (`.full.ami`): every event, VarSet included.
    #[default]
    Full,
    /// The capture of user `cti_filtered` (`.ami`): VarSet dropped by Asterisk.
    Filtered,
}

/// How a transfer scenario's transfer happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferTrigger {
    /// The transfer happens on its own at the recorded moment, as if a phone did it.
    #[default]
    Scripted,
    /// The call waits at the recorded moment until a client sends the matching AMI action
    /// (`BlindTransfer`/`Redirect`/`Atxfer` on the recorded channel), or until the wait ends,
    /// after which it goes on as scripted.
    AwaitAction,
}

/// Per-call values. `None` keeps the capture's own value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallParams {
    /// Inbound: the external caller's number. Click-to-call: the number the agent dials.
    pub caller: Option<String>,
    /// Inbound only: the external caller's name.
    pub caller_name: Option<String>,
    /// Inbound only: the DID that was dialled.
    pub did: Option<String>,
    /// Click-to-call: the agent extension whose phone places the call. Direct-DID scenarios
    /// ([`Scenario::takes_agent`]): the agent whose phone rings. Other scenarios refuse it.
    pub agent: Option<String>,
    pub transfer: TransferTrigger,
    /// Originate `ChannelId`: the Uniqueid of the call's first channel (and so its Linkedid)
    /// instead of a fresh `<epoch>.<seq>`.
    pub channel_id: Option<String>,
    /// Originate `OtherChannelId`: the Uniqueid of the second channel (the `;2` half of a
    /// Local channel). With only `channel_id` given, Asterisk names it `<channel_id>;2`.
    pub other_channel_id: Option<String>,
}

/// Direction of a scenario's call as the PBX sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Rough outcome class, used to build load mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Answered,
    Missed,
    Abandoned,
    Transfer,
    Outbound,
    Other,
}

impl Scenario {
    pub const ALL: [Scenario; 14] = [
        Scenario::QueueAnswered,
        Scenario::QueueRnaAnswered,
        Scenario::QueueMissed,
        Scenario::QueueAbandon,
        Scenario::DirectAnswered,
        Scenario::DirectNoanswer,
        Scenario::ClickToCall,
        Scenario::BlindTransfer,
        Scenario::RedirectTransfer,
        Scenario::AttendedTransfer,
        Scenario::HoldMoh,
        Scenario::AgiRouted,
        Scenario::AgiFallback,
        Scenario::AriStasis,
    ];

    /// The capture's file stem, e.g. `queue_answered`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::QueueAnswered => "queue_answered",
            Scenario::QueueRnaAnswered => "queue_rna_answered",
            Scenario::QueueMissed => "queue_missed",
            Scenario::QueueAbandon => "queue_abandon",
            Scenario::DirectAnswered => "direct_answered",
            Scenario::DirectNoanswer => "direct_noanswer",
            Scenario::ClickToCall => "click_to_call",
            Scenario::BlindTransfer => "blind_transfer",
            Scenario::RedirectTransfer => "redirect_transfer",
            Scenario::AttendedTransfer => "attended_transfer",
            Scenario::HoldMoh => "hold_moh",
            Scenario::AgiRouted => "agi_routed",
            Scenario::AgiFallback => "agi_fallback",
            Scenario::AriStasis => "ari_stasis",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn direction(self) -> Direction {
        match self {
            Scenario::ClickToCall => Direction::Outbound,
            _ => Direction::Inbound,
        }
    }

    pub fn category(self) -> Category {
        match self {
            Scenario::QueueAnswered
            | Scenario::QueueRnaAnswered
            | Scenario::DirectAnswered
            | Scenario::HoldMoh
            | Scenario::AgiRouted
            | Scenario::AgiFallback => Category::Answered,
            Scenario::QueueMissed | Scenario::DirectNoanswer => Category::Missed,
            Scenario::QueueAbandon => Category::Abandoned,
            Scenario::BlindTransfer | Scenario::RedirectTransfer | Scenario::AttendedTransfer => {
                Category::Transfer
            }
            Scenario::ClickToCall => Category::Outbound,
            Scenario::AriStasis => Category::Other,
        }
    }

    /// The agent a direct-DID scenario's dialplan dials (fixture README: `[incoming]` sends
    /// +18005551102 to 102 and +18005551103 to 103); these calls can ring any agent.
    pub fn direct_agent(self) -> Option<&'static str> {
        match self {
            Scenario::DirectAnswered => Some("102"),
            Scenario::DirectNoanswer => Some("103"),
            _ => None,
        }
    }

    /// Whether [`CallParams::agent`] applies: click-to-call (the agent who dials) and the
    /// direct-DID scenarios (the agent who is rung). Queue scenarios ring their recorded members.
    pub fn takes_agent(self) -> bool {
        self.direction() == Direction::Outbound || self.direct_agent().is_some()
    }

    /// The raw capture (banner, session frames and all), exactly as recorded.
    pub fn capture(self, variant: Variant) -> &'static [u8] {
        let (full, _, filtered, _) = self.files();
        match variant {
            Variant::Full => full,
            Variant::Filtered => filtered,
        }
    }

    /// What the recording client sent for this capture.
    pub fn sent_actions(self, variant: Variant) -> &'static [u8] {
        let (_, full_sent, _, filtered_sent) = self.files();
        match variant {
            Variant::Full => full_sent,
            Variant::Filtered => filtered_sent,
        }
    }

    /// The capture's own value of a parameter (its caller, DID, agent or dialled number).
    pub fn recorded_caller(self, variant: Variant) -> Option<&'static str> {
        let t = self.template(variant);
        let p = match self.direction() {
            Direction::Inbound => Param::CallerNumber,
            Direction::Outbound => Param::Outside,
        };
        t.params.get(&p).map(String::as_str)
    }

    /// The DID the capture dialled (inbound scenarios).
    pub fn recorded_did(self, variant: Variant) -> Option<&'static str> {
        self.template(variant)
            .params
            .get(&Param::Did)
            .map(String::as_str)
    }

    /// Simulated time from the call's first to its last frame.
    pub fn duration(self, variant: Variant) -> std::time::Duration {
        let us = self.template(variant).duration_us.max(0);
        std::time::Duration::from_micros(us as u64)
    }

    /// Number of frames one call of this scenario emits (without the OriginateResponse and the
    /// transfer action's response).
    pub fn n_events(self, variant: Variant) -> usize {
        self.template(variant)
            .frames
            .iter()
            .filter(|f| f.kind == template::FrameKind::Event)
            .count()
    }

    pub(crate) fn template(self, variant: Variant) -> &'static Template {
        static TEMPLATES: [OnceLock<Template>; 28] = [const { OnceLock::new() }; 28];
        let idx = self as usize * 2 + usize::from(variant == Variant::Filtered);
        TEMPLATES[idx].get_or_init(|| {
            let mut sent = template::parse_sent(self.sent_actions(variant));
            sent.direct_agent = self.direct_agent().map(str::to_owned);
            template::compile(self.capture(variant), &sent).unwrap_or_else(|e| {
                // The captures are embedded at build time and covered by tests; a failure here
                // is a broken build, not bad input.
                panic!("embedded capture {} does not compile: {}", self.name(), e.0)
            })
        })
    }

    /// (full.ami, full.sent, ami, sent)
    fn files(self) -> (&'static [u8], &'static [u8], &'static [u8], &'static [u8]) {
        match self {
            Scenario::QueueAnswered => (
                include_bytes!("../scenarios/asterisk-22.10.1/queue_answered.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_answered.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_answered.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_answered.sent"),
            ),
            Scenario::QueueRnaAnswered => (
                include_bytes!("../scenarios/asterisk-22.10.1/queue_rna_answered.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_rna_answered.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_rna_answered.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_rna_answered.sent"),
            ),
            Scenario::QueueMissed => (
                include_bytes!("../scenarios/asterisk-22.10.1/queue_missed.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_missed.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_missed.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_missed.sent"),
            ),
            Scenario::QueueAbandon => (
                include_bytes!("../scenarios/asterisk-22.10.1/queue_abandon.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_abandon.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_abandon.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/queue_abandon.sent"),
            ),
            Scenario::DirectAnswered => (
                include_bytes!("../scenarios/asterisk-22.10.1/direct_answered.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_answered.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_answered.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_answered.sent"),
            ),
            Scenario::DirectNoanswer => (
                include_bytes!("../scenarios/asterisk-22.10.1/direct_noanswer.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_noanswer.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_noanswer.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/direct_noanswer.sent"),
            ),
            Scenario::ClickToCall => (
                include_bytes!("../scenarios/asterisk-22.10.1/click_to_call.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/click_to_call.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/click_to_call.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/click_to_call.sent"),
            ),
            Scenario::BlindTransfer => (
                include_bytes!("../scenarios/asterisk-22.10.1/blind_transfer.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/blind_transfer.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/blind_transfer.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/blind_transfer.sent"),
            ),
            Scenario::RedirectTransfer => (
                include_bytes!("../scenarios/asterisk-22.10.1/redirect_transfer.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/redirect_transfer.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/redirect_transfer.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/redirect_transfer.sent"),
            ),
            Scenario::AttendedTransfer => (
                include_bytes!("../scenarios/asterisk-22.10.1/attended_transfer.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/attended_transfer.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/attended_transfer.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/attended_transfer.sent"),
            ),
            Scenario::HoldMoh => (
                include_bytes!("../scenarios/asterisk-22.10.1/hold_moh.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/hold_moh.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/hold_moh.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/hold_moh.sent"),
            ),
            Scenario::AgiRouted => (
                include_bytes!("../scenarios/asterisk-22.10.1/agi_routed.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_routed.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_routed.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_routed.sent"),
            ),
            Scenario::AgiFallback => (
                include_bytes!("../scenarios/asterisk-22.10.1/agi_fallback.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_fallback.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_fallback.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/agi_fallback.sent"),
            ),
            Scenario::AriStasis => (
                include_bytes!("../scenarios/asterisk-22.10.1/ari_stasis.full.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/ari_stasis.full.sent"),
                include_bytes!("../scenarios/asterisk-22.10.1/ari_stasis.ami"),
                include_bytes!("../scenarios/asterisk-22.10.1/ari_stasis.sent"),
            ),
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The inbound scenario that a real Asterisk with the recording's dialplan runs for a DID.
pub fn scenario_for_did(did: &str) -> Option<Scenario> {
    Scenario::ALL.into_iter().find(|s| {
        s.direction() == Direction::Inbound
            && s.recorded_did(Variant::Full) == Some(did)
            // Two scenarios share the AGI DID; the routed one needs a FastAGI server.
            && *s != Scenario::AgiRouted
    })
}

/// A weighted choice of scenarios for a load run.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    entries: Vec<(Scenario, u32)>,
}

impl Mix {
    /// Weights per outcome class, spread evenly over the scenarios of each class:
    /// answered (queue, direct, hold, AGI), missed (queue, direct), abandoned, transfer
    /// (blind, redirect, attended).
    pub fn new(answered: u32, missed: u32, abandoned: u32, transfer: u32) -> Mix {
        let mut entries = Vec::new();
        for (category, weight) in [
            (Category::Answered, answered),
            (Category::Missed, missed),
            (Category::Abandoned, abandoned),
            (Category::Transfer, transfer),
        ] {
            let members: Vec<Scenario> = Scenario::ALL
                .into_iter()
                .filter(|s| s.category() == category)
                .collect();
            let n = members.len() as u32;
            for (i, s) in members.into_iter().enumerate() {
                // Spread the class weight; the remainder goes to the first members.
                let w = weight / n + u32::from((i as u32) < weight % n);
                if w > 0 {
                    entries.push((s, w));
                }
            }
        }
        Mix { entries }
    }

    /// A contact-centre-like default: 60 answered, 15 missed, 10 abandoned, 10 transferred,
    /// 5 click-to-call.
    pub fn standard() -> Mix {
        Mix::new(60, 15, 10, 10).with(Scenario::ClickToCall, 5)
    }

    /// Only one scenario.
    pub fn only(scenario: Scenario) -> Mix {
        Mix {
            entries: vec![(scenario, 1)],
        }
    }

    /// Adds (or raises) a scenario's weight.
    pub fn with(mut self, scenario: Scenario, weight: u32) -> Mix {
        match self.entries.iter_mut().find(|e| e.0 == scenario) {
            Some(e) => e.1 += weight,
            None if weight > 0 => self.entries.push((scenario, weight)),
            None => {}
        }
        self
    }

    pub fn entries(&self) -> &[(Scenario, u32)] {
        &self.entries
    }

    /// Picks a scenario; `None` when every weight is zero.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<Scenario> {
        let total: u64 = self.entries.iter().map(|e| u64::from(e.1)).sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.gen_range(0..total);
        for (s, w) in &self.entries {
            let w = u64::from(*w);
            if x < w {
                return Some(*s);
            }
            x -= w;
        }
        None
    }

    /// Weighted mean call duration (simulated).
    pub fn mean_duration(&self, variant: Variant) -> std::time::Duration {
        let total: u64 = self.entries.iter().map(|e| u64::from(e.1)).sum();
        if total == 0 {
            return std::time::Duration::ZERO;
        }
        let sum: f64 = self
            .entries
            .iter()
            .map(|(s, w)| s.duration(variant).as_secs_f64() * f64::from(*w))
            .sum();
        std::time::Duration::from_secs_f64(sum / total as f64)
    }
}

/// Allocates the identifiers of successive calls, like one Asterisk process does.
#[derive(Debug, Clone)]
pub(crate) struct IdAllocator {
    next_uid: u64,
    next_chan: u64,
}

impl IdAllocator {
    pub fn new(first_uid: u64, first_chan: u64) -> IdAllocator {
        IdAllocator {
            next_uid: first_uid,
            next_chan: first_chan,
        }
    }

    /// Binds a template to fresh ids and the given parameters for a call starting at `start_us`.
    pub fn bind(
        &mut self,
        scenario: Scenario,
        variant: Variant,
        params: &CallParams,
        start_us: i64,
        boot_secs: i64,
        rng: &mut impl Rng,
    ) -> Result<Bindings, SimError> {
        let t = scenario.template(variant);
        let mut values = HashMap::new();
        let mut set = |param: Param, value: &Option<String>, what: &'static str| {
            if let Some(v) = value {
                validate_param(what, v)?;
                if t.params.contains_key(&param) {
                    values.insert(param, v.as_bytes().to_vec());
                }
            }
            Ok::<(), SimError>(())
        };
        if let Some(agent) = &params.agent {
            if agent.is_empty() || !agent.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(SimError::InvalidParam {
                    what: "agent",
                    reason: "an extension is letters and digits",
                });
            }
            if !t.params.contains_key(&Param::Agent) {
                return Err(SimError::InvalidParam {
                    what: "agent",
                    reason: "this scenario rings the queue members its capture rang",
                });
            }
        }
        match scenario.direction() {
            Direction::Inbound => {
                set(Param::CallerNumber, &params.caller, "caller")?;
                set(Param::CallerName, &params.caller_name, "caller_name")?;
                set(Param::Did, &params.did, "did")?;
            }
            Direction::Outbound => set(Param::Outside, &params.caller, "caller")?,
        }
        set(Param::Agent, &params.agent, "agent")?;
        let assigned_uids = [&params.channel_id, &params.other_channel_id]
            .into_iter()
            .map(|id| id.as_ref().map(|id| id.as_bytes().to_vec()))
            .collect();
        let bindings = Bindings {
            start_us,
            boot_secs,
            assigned_uids,
            uid_base: self.next_uid,
            chan_base: self.next_chan,
            bridges: (0..t.n_bridges).map(|_| random_uuid(rng)).collect(),
            params: values,
        };
        self.next_uid += t.uid_epoch_delta.len() as u64;
        self.next_chan += t.n_chan_seqs as u64;
        Ok(bindings)
    }
}

fn validate_param(what: &'static str, value: &str) -> Result<(), SimError> {
    if value.is_empty() {
        return Err(SimError::InvalidParam {
            what,
            reason: "must not be empty",
        });
    }
    if value.len() > 80 {
        return Err(SimError::InvalidParam {
            what,
            reason: "longer than 80 bytes",
        });
    }
    // A CR or LF would end the AMI header line and let the value forge frames.
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(SimError::InvalidParam {
            what,
            reason: "contains a control character",
        });
    }
    Ok(())
}

/// A random RFC 4122 version-4 UUID in the lowercase form Asterisk uses for bridge ids.
fn random_uuid(rng: &mut impl Rng) -> [u8; 36] {
    let mut bytes: [u8; 16] = rng.gen();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut pos = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            pos += 1;
        }
        out[pos] = HEX[usize::from(b >> 4)];
        out[pos + 1] = HEX[usize::from(b & 0x0f)];
        pos += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_capture_compiles_with_its_recorded_parameters() {
        for s in Scenario::ALL {
            for v in [Variant::Full, Variant::Filtered] {
                let t = s.template(v);
                assert!(t.frames.len() > 10, "{s} {v:?}");
                assert!(!t.uid_epoch_delta.is_empty(), "{s} {v:?}");
                match s.direction() {
                    Direction::Inbound => {
                        assert!(t.params.contains_key(&Param::CallerNumber), "{s}");
                        assert!(t.params.contains_key(&Param::Did), "{s}");
                    }
                    Direction::Outbound => {
                        assert_eq!(t.params[&Param::Agent], "101");
                        assert_eq!(t.params[&Param::Outside], "+15550001111");
                    }
                }
                let has_action = matches!(
                    s,
                    Scenario::BlindTransfer
                        | Scenario::RedirectTransfer
                        | Scenario::AttendedTransfer
                );
                assert_eq!(t.action_point.is_some(), has_action, "{s} {v:?}");
            }
        }
    }

    #[test]
    fn durations_match_the_fixture_readme() {
        // README: queue_answered total 6 s, attended_transfer 15 s, click_to_call 6.5 s.
        let secs = |s: Scenario| s.duration(Variant::Filtered).as_secs_f64();
        assert!((5.0..8.0).contains(&secs(Scenario::QueueAnswered)));
        assert!((14.0..17.0).contains(&secs(Scenario::AttendedTransfer)));
        assert!((5.5..8.0).contains(&secs(Scenario::ClickToCall)));
    }

    #[test]
    fn dids_route_to_their_scenarios() {
        assert_eq!(
            scenario_for_did("+18005550100"),
            Some(Scenario::QueueAnswered)
        );
        assert_eq!(
            scenario_for_did("+18005550102"),
            Some(Scenario::QueueMissed)
        );
        assert_eq!(
            scenario_for_did("+18005550110"),
            Some(Scenario::AgiFallback)
        );
        assert_eq!(scenario_for_did("+19999999999"), None);
    }

    #[test]
    fn mix_spreads_class_weights_over_scenarios() {
        let mix = Mix::new(6, 2, 1, 3);
        let weight = |s| mix.entries().iter().find(|e| e.0 == s).map(|e| e.1);
        assert_eq!(weight(Scenario::QueueAnswered), Some(1));
        assert_eq!(weight(Scenario::QueueMissed), Some(1));
        assert_eq!(weight(Scenario::QueueAbandon), Some(1));
        assert_eq!(weight(Scenario::BlindTransfer), Some(1));
        assert_eq!(weight(Scenario::ClickToCall), None);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert!(Mix::new(0, 0, 0, 0).pick(&mut rng).is_none());
        assert_eq!(
            Mix::only(Scenario::HoldMoh).pick(&mut rng),
            Some(Scenario::HoldMoh)
        );
    }

    #[test]
    fn parameters_with_line_breaks_are_rejected() {
        let mut ids = IdAllocator::new(1, 1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let params = CallParams {
            caller_name: Some("Eve\r\nEvent: Forged".into()),
            ..CallParams::default()
        };
        let res = ids.bind(
            Scenario::QueueAnswered,
            Variant::Full,
            &params,
            0,
            0,
            &mut rng,
        );
        assert!(matches!(
            res,
            Err(SimError::InvalidParam {
                what: "caller_name",
                ..
            })
        ));
    }

    #[test]
    fn uuids_look_like_asterisk_bridge_ids() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let id = random_uuid(&mut rng);
        let s = std::str::from_utf8(&id).expect("ascii");
        let parts: Vec<&str> = s.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
    }
}
