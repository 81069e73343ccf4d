//! How the tracker reads one particular PBX: which channels are trunks, which are phones,
//! how calls are attributed. A plain struct (no serde: serialization lives at the edge); the
//! binary builds it from its TOML config.

/// Who gets the credit for a call that several agents handled (transfers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttributionRule {
    /// The first agent who talked with the customer.
    #[default]
    FirstAnswerer,
    /// The last agent who talked with the customer.
    LastAgent,
    /// The agent with the most talk time; the per-agent split is in the record.
    TalkTime,
}

/// The tracker's settings. `Default` fits stock Asterisk, FreePBX and the shared fixtures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Dialplan contexts in which calls from the outside world start (the trunk's context).
    /// A channel whose first context is one of these is the customer's leg of an inbound call.
    pub trunk_contexts: Vec<String>,
    /// Contexts of Local channels that stand for the outside world when we dial out
    /// (`Local/+15550001111@pstn`): the customer's leg of an outbound call.
    pub outside_contexts: Vec<String>,
    /// Contexts of Local channels that stand for an agent's phone (`Local/101@agents`,
    /// FreePBX queue members `Local/101@from-queue`).
    pub agent_contexts: Vec<String>,
    /// Endpoint names that are trunks (`PJSIP/<name>-0000001`), in addition to the rule that
    /// a SIP/PJSIP/IAX2 endpoint whose name is not an extension is a trunk.
    pub trunk_names: Vec<String>,
    /// Channel technologies whose channels are always trunks (`DAHDI`).
    pub trunk_techs: Vec<String>,
    /// Shortest internal extension, in digits.
    pub min_extension_len: usize,
    /// Longest internal extension, in digits; longer digit strings are phone numbers.
    pub max_extension_len: usize,
    /// Country calling code used to turn national numbers into E.164 (`"7"`, `"49"`).
    /// `None`: numbers that are not already international are kept as they are.
    pub country_code: Option<String>,
    /// National trunk prefix stripped before adding the country code (`"0"`, `"8"`).
    pub national_prefix: String,
    /// The attribution rule for calls handled by several agents.
    pub attribution: AttributionRule,
    /// Unanswered inbound calls that waited less than this (microseconds) are flagged
    /// `short_abandon`.
    pub short_abandon_us: i64,
    /// Where MixMonitor writes files given without a directory (Asterisk's `astspooldir/monitor`).
    pub recording_dir: String,
    /// Turns a recording into a link: `{file}` (file name without directory), `{path}` (full
    /// path), `{uniqueid}` (recorded channel), `{call_id}`. `None`: the record keeps the path.
    pub recording_url_template: Option<String>,
    /// A call with live channels but no event for this long (microseconds) is closed by
    /// [`crate::CallTracker::tick`] as degraded.
    pub stale_call_us: i64,
    /// How long ended channels are remembered so late or duplicated events about them are
    /// ignored (microseconds).
    pub tombstone_us: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            trunk_contexts: strings(&[
                "from-trunk",
                "from-pstn",
                "from-external",
                "from-did-direct",
                "incoming",
            ]),
            outside_contexts: strings(&["pstn"]),
            agent_contexts: strings(&["agents", "from-queue", "from-internal", "ext-local"]),
            trunk_names: Vec::new(),
            trunk_techs: strings(&["DAHDI"]),
            min_extension_len: 2,
            max_extension_len: 6,
            country_code: None,
            national_prefix: "0".to_owned(),
            attribution: AttributionRule::FirstAnswerer,
            short_abandon_us: 5_000_000,
            recording_dir: "/var/spool/asterisk/monitor".to_owned(),
            recording_url_template: None,
            stale_call_us: 12 * 3600 * 1_000_000,
            tombstone_us: 3600 * 1_000_000,
        }
    }
}

impl TrackerConfig {
    /// Whether `text` looks like an internal extension under this config.
    pub fn is_extension(&self, text: &str) -> bool {
        (self.min_extension_len..=self.max_extension_len).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_digit())
    }
}
