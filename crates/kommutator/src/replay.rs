//! `kommutator replay FILE.ami`: feeds a raw AMI capture through the real codec, translation
//! and call tracker and prints the call records, one JSON object per line or as a table.
//!
//! What it is: the support tool for traces customers send, and the end-to-end check our tests
//! run on the captured fixtures. The record DTO (`CallRecordDto`) lives here because domain
//! types do not derive `Serialize`.
//!
//! What it is not: a live connection. Time comes from each event's `Timestamp` header, so a
//! capture must have been taken with `timestampevents = yes` for durations to mean anything.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use cti_core::{
    AttributionRule, CallRecord, CallTracker, Effect, NumberKind, Timestamp, TrackerConfig,
};
use pbx_ami::codec::{Decoder, Item, Limits};
use pbx_ami::translate::apply_frame;
use serde::{Deserialize, Serialize};

/// Arguments of `kommutator replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The raw AMI capture (the bytes Asterisk sent, banner included or not).
    pub file: PathBuf,
    /// Output format: one JSON object per line, or a table for people.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Json)]
    pub format: ReplayFormat,
    /// A TOML file describing the PBX: a `[pbx.asterisk.tracker]` table (or `[tracker]`, or
    /// the tracker settings at the top level). Without it the defaults fit stock
    /// Asterisk/FreePBX.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Output format of `kommutator replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// One JSON object per call record per line.
    Json,
    /// A fixed-width table.
    Table,
}

/// How the call tracker reads one Asterisk: which channels are trunks, which are phones, and
/// how calls are attributed. Every field is optional; an absent field keeps the default that
/// fits stock Asterisk and FreePBX.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSettings {
    /// Dialplan contexts in which calls from the outside world start (the trunks' context).
    /// Default: `["from-trunk", "from-pstn", "from-external", "from-did-direct", "incoming"]`.
    pub trunk_contexts: Option<Vec<String>>,
    /// Contexts of Local channels that stand for the outside world when dialling out
    /// (`Local/+15550001111@pstn`). Default: `["pstn"]`.
    pub outside_contexts: Option<Vec<String>>,
    /// Contexts of Local channels that are an agent's phone (`Local/101@agents`).
    /// Default: `["agents", "from-queue", "from-internal", "ext-local"]`.
    pub agent_contexts: Option<Vec<String>>,
    /// SIP/PJSIP/IAX2 endpoint names that are trunks even though they look like extensions.
    /// Endpoints whose name is not an extension are trunks anyway. Default: none.
    pub trunk_names: Option<Vec<String>>,
    /// Channel technologies that are always trunks. Default: `["DAHDI"]`.
    pub trunk_techs: Option<Vec<String>>,
    /// Shortest internal extension in digits. Default: 2.
    pub min_extension_len: Option<usize>,
    /// Longest internal extension in digits; longer digit strings are phone numbers. Default: 6.
    pub max_extension_len: Option<usize>,
    /// Country calling code for turning national numbers into E.164 (`"7"`, `"49"`).
    /// Default: none (national numbers are kept as they are).
    pub country_code: Option<String>,
    /// National trunk prefix removed before the country code is added. Default: `"0"`.
    pub national_prefix: Option<String>,
    /// Who gets the credit for a call several agents handled: `first_answerer`, `last_agent`
    /// or `talk_time` (most talk time). Default: `first_answerer`.
    pub attribution: Option<AttributionSetting>,
    /// Unanswered inbound calls that waited less than this many seconds are flagged
    /// `short_abandon`. Default: 5.
    pub short_abandon_s: Option<f64>,
    /// Directory MixMonitor writes bare file names to. Default: `/var/spool/asterisk/monitor`.
    pub recording_dir: Option<String>,
    /// Link to a recording: `{file}`, `{path}`, `{uniqueid}`, `{call_id}` are replaced.
    /// Default: none (the record carries the file path).
    pub recording_url_template: Option<String>,
    /// Seconds without any event after which an open call is closed as degraded.
    /// Default: 43200 (12 hours).
    pub stale_call_s: Option<u64>,
    /// Seconds an ended channel is remembered so late or repeated events are ignored.
    /// Default: 3600.
    pub tombstone_s: Option<u64>,
}

/// The attribution rule as written in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionSetting {
    /// The first agent who talked with the customer.
    FirstAnswerer,
    /// The last agent who talked with the customer.
    LastAgent,
    /// The agent with the most talk time.
    TalkTime,
}

impl TrackerSettings {
    /// Checks values that would make the tracker misread every call.
    pub fn validate(&self) -> anyhow::Result<()> {
        let min = self.min_extension_len.unwrap_or(2);
        let max = self.max_extension_len.unwrap_or(6);
        if min == 0 || min > max {
            bail!("min_extension_len ({min}) must be between 1 and max_extension_len ({max})");
        }
        if let Some(s) = self.short_abandon_s {
            if !(0.0..=3600.0).contains(&s) {
                bail!("short_abandon_s must be between 0 and 3600 seconds, got {s}");
            }
        }
        if let Some(cc) = &self.country_code {
            if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
                bail!("country_code must be 1 to 3 digits, got {cc:?}");
            }
        }
        Ok(())
    }

    /// The tracker configuration these settings describe (defaults for absent fields).
    pub fn into_tracker_config(self) -> TrackerConfig {
        let d = TrackerConfig::default();
        let secs = |s: u64| i64::try_from(s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        TrackerConfig {
            trunk_contexts: self.trunk_contexts.unwrap_or(d.trunk_contexts),
            outside_contexts: self.outside_contexts.unwrap_or(d.outside_contexts),
            agent_contexts: self.agent_contexts.unwrap_or(d.agent_contexts),
            trunk_names: self.trunk_names.unwrap_or(d.trunk_names),
            trunk_techs: self.trunk_techs.unwrap_or(d.trunk_techs),
            min_extension_len: self.min_extension_len.unwrap_or(d.min_extension_len),
            max_extension_len: self.max_extension_len.unwrap_or(d.max_extension_len),
            country_code: self.country_code.or(d.country_code),
            national_prefix: self.national_prefix.unwrap_or(d.national_prefix),
            attribution: match self.attribution {
                None => d.attribution,
                Some(AttributionSetting::FirstAnswerer) => AttributionRule::FirstAnswerer,
                Some(AttributionSetting::LastAgent) => AttributionRule::LastAgent,
                Some(AttributionSetting::TalkTime) => AttributionRule::TalkTime,
            },
            short_abandon_us: self
                .short_abandon_s
                .map_or(d.short_abandon_us, |s| (s * 1e6).round() as i64),
            recording_dir: self.recording_dir.unwrap_or(d.recording_dir),
            recording_url_template: self.recording_url_template.or(d.recording_url_template),
            stale_call_us: self.stale_call_s.map_or(d.stale_call_us, secs),
            tombstone_us: self.tombstone_s.map_or(d.tombstone_us, secs),
        }
    }
}

/// Reads the tracker settings from a TOML file: `[pbx.asterisk.tracker]`, `[tracker]`, or
/// the settings at the top level.
pub fn load_settings(path: &Path) -> anyhow::Result<TrackerSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_settings(&text).with_context(|| format!("parsing {}", path.display()))
}

fn parse_settings(text: &str) -> anyhow::Result<TrackerSettings> {
    let value: toml::Table = toml::from_str(text).context("invalid TOML")?;
    let nested = value
        .get("pbx")
        .and_then(|v| v.get("asterisk"))
        .and_then(|v| v.get("tracker"))
        .or_else(|| value.get("tracker"))
        .cloned();
    let settings: TrackerSettings = match nested {
        Some(table) => table.try_into().context("in the tracker table")?,
        None => toml::Value::Table(value)
            .try_into()
            .context("in the tracker settings")?,
    };
    settings.validate()?;
    Ok(settings)
}

/// One call record as `replay` prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallRecordDto {
    pub call_id: String,
    pub direction: &'static str,
    pub customer_number: Option<String>,
    /// `e164`, `national`, `extension`, `anonymous` or `other`.
    pub customer_number_kind: Option<&'static str>,
    pub customer_name: Option<String>,
    pub line: Option<String>,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub outcome: Option<&'static str>,
    pub answered_by: Option<String>,
    /// The agent the call is attributed to under the configured rule.
    pub agent: Option<String>,
    pub originator: Option<String>,
    pub agents_rang: Vec<String>,
    pub queue: Option<String>,
    pub queues: Vec<String>,
    pub wait_s: f64,
    pub queue_wait_s: f64,
    pub talk_s: f64,
    pub hold_s: f64,
    pub transfers: Vec<TransferDto>,
    pub segments: Vec<SegmentDto>,
    pub agent_talk: Vec<AgentTalkDto>,
    /// The recording's link (from the template), or its file path, or `null`.
    pub recording: Option<String>,
    /// Whether the call was recorded at all (even when the file name is unknown).
    pub recorded: bool,
    pub application: Option<String>,
    pub degraded: bool,
    pub short_abandon: bool,
    pub hangup_cause: Option<u16>,
    pub linkedids: Vec<String>,
}

/// One transfer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransferDto {
    pub kind: &'static str,
    pub from: Option<String>,
    pub to: String,
    pub to_agent: Option<String>,
    pub at: String,
}

/// One span of an agent handling the customer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentDto {
    pub agent: String,
    pub start: String,
    pub end: Option<String>,
}

/// One agent's talk time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentTalkDto {
    pub agent: String,
    pub talk_s: f64,
}

fn seconds(us: i64) -> f64 {
    (us as f64 / 1_000.0).round() / 1_000.0
}

impl From<&CallRecord> for CallRecordDto {
    fn from(r: &CallRecord) -> Self {
        let ts = |t: Timestamp| t.to_string();
        Self {
            call_id: r.call_id.to_string(),
            direction: r.direction.as_str(),
            customer_number: r.customer_number.as_ref().map(|n| n.text.clone()),
            customer_number_kind: r.customer_number.as_ref().map(|n| match n.kind {
                NumberKind::E164 => "e164",
                NumberKind::National => "national",
                NumberKind::Extension => "extension",
                NumberKind::Anonymous => "anonymous",
                NumberKind::Other => "other",
            }),
            customer_name: r.customer_name.clone(),
            line: r.line.as_ref().map(|n| n.text.clone()),
            started_at: ts(r.started_at),
            answered_at: r.answered_at.map(ts),
            ended_at: r.ended_at.map(ts),
            outcome: r.outcome.map(|o| o.as_str()),
            answered_by: r.answered_by.as_ref().map(|a| a.to_string()),
            agent: r.agent.as_ref().map(|a| a.to_string()),
            originator: r.originator.as_ref().map(|a| a.to_string()),
            agents_rang: r.agents_rang.iter().map(|a| a.to_string()).collect(),
            queue: r.queue.as_ref().map(|q| q.to_string()),
            queues: r.queues.iter().map(|q| q.to_string()).collect(),
            wait_s: seconds(r.wait_us),
            queue_wait_s: seconds(r.queue_wait_us),
            talk_s: seconds(r.talk_us),
            hold_s: seconds(r.hold_us),
            transfers: r
                .transfers
                .iter()
                .map(|t| TransferDto {
                    kind: t.kind.as_str(),
                    from: t.from.as_ref().map(|a| a.to_string()),
                    to: t.to.clone(),
                    to_agent: t.to_agent.as_ref().map(|a| a.to_string()),
                    at: ts(t.at),
                })
                .collect(),
            segments: r
                .segments
                .iter()
                .map(|s| SegmentDto {
                    agent: s.agent.to_string(),
                    start: ts(s.start),
                    end: s.end.map(ts),
                })
                .collect(),
            agent_talk: r
                .agent_talk
                .iter()
                .map(|a| AgentTalkDto {
                    agent: a.agent.to_string(),
                    talk_s: seconds(a.talk_us),
                })
                .collect(),
            recording: r
                .recording
                .as_ref()
                .and_then(|rec| rec.url.clone().or_else(|| rec.path.clone())),
            recorded: r.recording.is_some(),
            application: r.application.clone(),
            degraded: r.degraded,
            short_abandon: r.short_abandon,
            hangup_cause: r.hangup_cause,
            linkedids: r.linkedids.clone(),
        }
    }
}

/// What a replay produced besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Frames decoded.
    pub frames: u64,
    /// Blocks the codec reported and skipped.
    pub decode_errors: u64,
    /// Calls still open at the end of the capture (closed as degraded).
    pub unfinished: usize,
}

/// Replays raw AMI bytes; returns the records in the order the calls ended.
pub fn replay_bytes(bytes: &[u8], config: TrackerConfig) -> (Vec<CallRecord>, ReplayStats) {
    let mut decoder = Decoder::new(Limits::default());
    let mut tracker = CallTracker::new(config);
    let mut clock = Timestamp::default();
    let mut records = Vec::new();
    let mut stats = ReplayStats::default();
    // Pushing in socket-sized pieces keeps the decoder's buffer small on big captures.
    for chunk in bytes.chunks(64 * 1024) {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            match item {
                Item::Frame(frame) => {
                    stats.frames += 1;
                    for effect in apply_frame(&mut tracker, &frame, &mut clock) {
                        if let Effect::CallEnded(record) = effect {
                            records.push(*record);
                        }
                    }
                }
                Item::Error(_) => stats.decode_errors += 1,
                Item::Banner(_) => {}
            }
        }
    }
    let open = tracker.close_all(clock);
    for effect in open {
        if let Effect::CallEnded(record) = effect {
            stats.unfinished += 1;
            records.push(*record);
        }
    }
    (records, stats)
}

/// Runs `kommutator replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => load_settings(path)?.into_tracker_config(),
        None => TrackerConfig::default(),
    };
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let (records, stats) = replay_bytes(&bytes, config);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        ReplayFormat::Json => {
            for record in &records {
                serde_json::to_writer(&mut out, &CallRecordDto::from(record))
                    .context("writing JSON")?;
                out.write_all(b"\n").context("writing output")?;
            }
        }
        ReplayFormat::Table => write_table(&mut out, &records).context("writing output")?,
    }
    out.flush().context("writing output")?;
    if stats.decode_errors > 0 || stats.unfinished > 0 {
        eprintln!(
            "kommutator replay: {} frames, {} undecodable blocks skipped, {} calls unfinished at \
             the end of the capture (closed as degraded).",
            stats.frames, stats.decode_errors, stats.unfinished
        );
    }
    Ok(())
}

fn write_table(out: &mut impl Write, records: &[CallRecord]) -> std::io::Result<()> {
    // The header goes through the row format so the columns line up.
    #[allow(clippy::write_literal)]
    writeln!(
        out,
        "{:<22} {:<8} {:<16} {:<14} {:<9} {:<5} {:<12} {:<8} {:>6} {:>6} {:>6} {:<16} {}",
        "call_id",
        "dir",
        "customer",
        "line",
        "outcome",
        "agent",
        "rang",
        "queue",
        "wait",
        "talk",
        "hold",
        "transfers",
        "flags"
    )?;
    for r in records {
        let dto = CallRecordDto::from(r);
        let transfers: Vec<String> = dto
            .transfers
            .iter()
            .map(|t| format!("{}>{}", t.from.as_deref().unwrap_or("?"), t.to))
            .collect();
        let mut flags = Vec::new();
        if dto.degraded {
            flags.push("degraded");
        }
        if dto.short_abandon {
            flags.push("short");
        }
        if dto.recorded {
            flags.push("rec");
        }
        writeln!(
            out,
            "{:<22} {:<8} {:<16} {:<14} {:<9} {:<5} {:<12} {:<8} {:>6.1} {:>6.1} {:>6.1} {:<16} {}",
            dto.call_id,
            dto.direction,
            dto.customer_number.as_deref().unwrap_or("-"),
            dto.line.as_deref().unwrap_or("-"),
            dto.outcome.unwrap_or("open"),
            dto.agent.as_deref().unwrap_or("-"),
            dto.agents_rang.join(","),
            dto.queue.as_deref().unwrap_or("-"),
            dto.wait_s,
            dto.talk_s,
            dto.hold_s,
            if transfers.is_empty() {
                "-".to_owned()
            } else {
                transfers.join(",")
            },
            flags.join(","),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reject_unknown_fields_and_bad_values() {
        assert!(parse_settings("[pbx.asterisk.tracker]\ntrunk_context = [\"x\"]\n").is_err());
        assert!(parse_settings("min_extension_len = 7\n").is_err());
        assert!(parse_settings("[tracker]\ncountry_code = \"+7\"\n").is_err());
        let s = parse_settings("[tracker]\nattribution = \"last_agent\"\nshort_abandon_s = 2.5\n")
            .expect("valid settings");
        let c = s.into_tracker_config();
        assert_eq!(c.attribution, AttributionRule::LastAgent);
        assert_eq!(c.short_abandon_us, 2_500_000);
        assert_eq!(c.trunk_contexts, TrackerConfig::default().trunk_contexts);
    }

    #[test]
    fn shipped_fixture_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/fixtures-pbx.toml");
        let settings = load_settings(&path).expect("config/fixtures-pbx.toml is valid");
        let config = settings.into_tracker_config();
        assert!(config.trunk_contexts.iter().any(|c| c == "incoming"));
        assert!(config.recording_url_template.is_some());
    }
}
