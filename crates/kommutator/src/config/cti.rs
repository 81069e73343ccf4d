//! The `[cti]` section: the operator panel, agent statuses, call control and sessions.
//! Parsed like the rest of the file (raw, then resolved once into the server's settings).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCti {
    /// Away reasons agents may pick (queue pause reasons on the PBX).
    /// Default `["lunch", "break", "meeting", "training"]`.
    pub away_reasons: Vec<String>,
    /// Automatic after-call work after each call, seconds (the agent is paused meanwhile);
    /// 0 turns it off. Default 30.
    pub after_call_work_secs: u64,
    /// Longest after-call work including extensions, seconds. Default 600.
    pub after_call_work_max_secs: u64,
    /// Pause reason sent to the PBX during after-call work. Default `"after-call-work"`.
    pub after_call_work_reason: String,
    /// Pause reason sent to the PBX while an agent is offline. Default `"offline"`.
    pub offline_reason: String,
    /// Disposition codes offered at wrap-up.
    /// Default `["sale", "question", "complaint", "callback", "other"]`.
    pub dispositions: Vec<String>,
    /// The agent's phone for click-to-call; `{extension}` is replaced. Default `"PJSIP/{extension}"`.
    pub phone_channel: String,
    /// Dialplan context that dials outside numbers (click-to-call, transfers to a number).
    /// Default `"outbound"`.
    pub dial_context: String,
    /// Dialplan context for transfers to an agent's extension. Default `"internal"`.
    pub transfer_context: String,
    /// Hold method: `"redirect"` sends the customer to `hold_exten` in `hold_context`
    /// (music on hold) and back to the agent's extension in the same context on unhold
    /// (dialplan: docs/asterisk-hold.md). Default `"redirect"`.
    pub hold_method: String,
    /// Dialplan context of the hold extensions. Default `"cti-hold"`.
    pub hold_context: String,
    /// The music-on-hold extension in `hold_context`. Default `"hold"`.
    pub hold_exten: String,
    /// Caller ID shown on the agent's phone while a click-to-call rings it. Default `"Kommutator"`.
    pub originate_caller_id: String,
    /// Seconds between heartbeats on each panel socket. Default 15.
    pub heartbeat_secs: u64,
    /// Panel events kept so a reconnecting panel gets what it missed. Default 20000.
    pub replay_events: usize,
    /// Milliseconds a screen pop waits for the directory before it shows the number alone.
    /// Default 300.
    pub lookup_timeout_ms: u64,
    /// Directory with call recordings; the panel plays files from here only. Default: none
    /// (no playback).
    pub recordings_dir: Option<PathBuf>,
    /// Instructions shown in the screen pop for calls on a line (DID).
    pub line_instructions: Vec<RawLineInstruction>,
    /// Instructions shown in the screen pop for customers of a segment.
    pub segment_instructions: Vec<RawSegmentInstruction>,
    /// The session cookie's SameSite: `"strict"` (default), `"lax"`, or `"none"` to work
    /// inside a CRM iframe on another site (needs HTTPS: the cookie is then `Secure`).
    pub cookie_same_site: String,
    /// Hours a browser session lasts after its last use. Default 12.
    pub session_hours: u64,
    /// Failed logins allowed per login within `login_window_secs`. Default 5.
    pub login_max_failures_per_user: u32,
    /// Failed logins allowed per client address within `login_window_secs`. Default 20.
    pub login_max_failures_per_ip: u32,
    /// The window of the login limits, seconds. Default 900.
    pub login_window_secs: u64,
}

/// One `[[cti.line_instructions]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLineInstruction {
    /// The line (DID) in E.164, e.g. `"+18005550100"`.
    pub line: String,
    /// What the operator should know or say.
    pub text: String,
}

/// One `[[cti.segment_instructions]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSegmentInstruction {
    /// The customer segment, e.g. `"vip"`.
    pub segment: String,
    /// What the operator should know or say.
    pub text: String,
}

impl Default for RawCti {
    fn default() -> Self {
        let cti = server::cti::CtiConfig::default();
        Self {
            away_reasons: cti.presence.away_reasons.clone(),
            after_call_work_secs: 30,
            after_call_work_max_secs: 600,
            after_call_work_reason: cti.presence.after_call_work_reason.clone(),
            offline_reason: cti.presence.offline_reason.clone(),
            dispositions: cti.dispositions.clone(),
            phone_channel: cti.phone_channel.clone(),
            dial_context: cti.dial_context.clone(),
            transfer_context: cti.transfer_context.clone(),
            hold_method: "redirect".to_owned(),
            hold_context: cti.hold_context.clone(),
            hold_exten: cti.hold_exten.clone(),
            originate_caller_id: cti.originate_caller_id.clone(),
            heartbeat_secs: cti.heartbeat_secs,
            replay_events: cti.replay_events,
            lookup_timeout_ms: cti.lookup_timeout_ms,
            recordings_dir: None,
            line_instructions: Vec::new(),
            segment_instructions: Vec::new(),
            cookie_same_site: "strict".to_owned(),
            session_hours: 12,
            login_max_failures_per_user: 5,
            login_max_failures_per_ip: 20,
            login_window_secs: 900,
        }
    }
}

/// The resolved `[cti]` section.
#[derive(Debug, Clone)]
pub struct CtiSettings {
    pub hub: server::cti::CtiConfig,
    pub auth: server::auth::AuthSettings,
}

impl RawCti {
    /// Validates the section; `frame_ancestors` and `https` come from `[server]`.
    pub fn resolve(
        self,
        frame_ancestors: &[String],
        https: bool,
    ) -> Result<CtiSettings, ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: format!("cti.{field}"),
            message,
        };
        if self.away_reasons.is_empty()
            || self
                .away_reasons
                .iter()
                .any(|r| r.trim().is_empty() || r.contains(['\r', '\n']))
        {
            return Err(invalid(
                "away_reasons",
                "list at least one reason; reasons are single-line words".to_owned(),
            ));
        }
        if !self.phone_channel.contains("{extension}") {
            return Err(invalid(
                "phone_channel",
                format!("`{}` must contain {{extension}}", self.phone_channel),
            ));
        }
        if self.hold_method != "redirect" {
            return Err(invalid(
                "hold_method",
                format!(
                    "`{}` is not a hold method; use \"redirect\"",
                    self.hold_method
                ),
            ));
        }
        if self.heartbeat_secs == 0 {
            return Err(invalid("heartbeat_secs", "must be at least 1".to_owned()));
        }
        if self.after_call_work_max_secs < self.after_call_work_secs {
            return Err(invalid(
                "after_call_work_max_secs",
                "must not be less than after_call_work_secs".to_owned(),
            ));
        }
        let same_site = match self.cookie_same_site.as_str() {
            "strict" => server::auth::SameSite::Strict,
            "lax" => server::auth::SameSite::Lax,
            "none" => server::auth::SameSite::None,
            other => {
                return Err(invalid(
                    "cookie_same_site",
                    format!("`{other}` is not strict, lax or none"),
                ))
            }
        };
        let secs = |s: u64| i64::try_from(s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        Ok(CtiSettings {
            hub: server::cti::CtiConfig {
                presence: cti_core::agents::PresenceConfig {
                    away_reasons: self.away_reasons,
                    after_call_work_us: secs(self.after_call_work_secs),
                    after_call_work_max_us: secs(self.after_call_work_max_secs),
                    after_call_work_reason: self.after_call_work_reason,
                    offline_reason: self.offline_reason,
                },
                dial_context: self.dial_context,
                transfer_context: self.transfer_context,
                phone_channel: self.phone_channel,
                hold_context: self.hold_context,
                hold_exten: self.hold_exten,
                originate_caller_id: self.originate_caller_id,
                heartbeat_secs: self.heartbeat_secs,
                replay_events: self.replay_events.max(100),
                lookup_timeout_ms: self.lookup_timeout_ms,
                line_instructions: self
                    .line_instructions
                    .into_iter()
                    .map(|i| (i.line, i.text))
                    .collect::<BTreeMap<_, _>>(),
                segment_instructions: self
                    .segment_instructions
                    .into_iter()
                    .map(|i| (i.segment, i.text))
                    .collect::<BTreeMap<_, _>>(),
                dispositions: self.dispositions,
                frame_ancestors: frame_ancestors.to_vec(),
                recordings_dir: self.recordings_dir,
            },
            auth: server::auth::AuthSettings {
                secure_cookie: https,
                same_site,
                session_ttl: Duration::from_secs(self.session_hours.max(1) * 3600),
                max_failures_per_login: self.login_max_failures_per_user.max(1),
                max_failures_per_ip: self.login_max_failures_per_ip.max(1),
                login_window: Duration::from_secs(self.login_window_secs.max(1)),
            },
        })
    }
}
