//! Compiling a real AMI capture into a call template.
//!
//! A template is the byte stream of one recorded call, cut into frames, with every value that
//! identifies the call (ids, channel sequence numbers, bridge ids, times, caller and agent) replaced
//! by a placeholder.
//! Rendering a template with fresh values gives the byte stream a real Asterisk would have sent for
//! another call of the same kind.
//!
//! This module is pure: no I/O, no clock.
//! It only understands the captures shipped in `scenarios/`, which are well-formed `\r\n` AMI;
//! it is not a general AMI parser (the codec in `pbx-ami` is).

use std::collections::HashMap;

use crate::time::{parse_datetime, write_datetime};

/// Why a capture could not be turned into a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError(pub String);

/// What a frame of the template is, which decides when it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A call event, always rendered.
    Event,
    /// `Event: OriginateResponse`: rendered only when somebody originated the call, with that
    /// originator's ActionID.
    OriginateResponse,
    /// The response to the transfer action the recording client sent mid-call; rendered only to
    /// the client that sends the matching action.
    ActionResponse,
}

/// Values substituted into a template, one per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Param {
    CallerNumber,
    CallerName,
    Did,
    Agent,
    Outside,
}

/// One piece of a rendered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Bytes copied from the capture: `arena[start..end]`.
    Lit {
        start: u32,
        end: u32,
    },
    /// The i-th channel Uniqueid of the call (`<epoch>.<seq>`).
    Uid(u16),
    /// The i-th channel sequence suffix of the call (8 lowercase hex digits).
    ChanSeq(u16),
    /// The i-th bridge id of the call (a UUID).
    Bridge(u16),
    /// The frame's `Timestamp` value: `<epoch>.<usec>`.
    Timestamp,
    /// A `YYYY-MM-DD HH:MM:SS` time this many seconds after the frame's own second.
    DateTime(i64),
    /// Epoch seconds this many seconds after the frame's own second (`LastCall`).
    Epoch(i64),
    /// The epoch second the simulated Asterisk booted (`LoginTime`).
    BootEpoch,
    Param(Param),
    /// The ActionID of the action this frame answers.
    ActionId,
}

#[derive(Debug, Clone)]
pub(crate) struct TemplateFrame {
    /// Microseconds after the first frame of the call.
    pub offset_us: i64,
    pub kind: FrameKind,
    /// The value of the `Event` header (empty for responses).
    pub event: Box<[u8]>,
    pub segs: Vec<Seg>,
}

/// The transfer action the recording client sent during the call.
#[derive(Debug, Clone)]
pub(crate) struct ActionPoint {
    /// Index in `frames` of the response to the action; the call waits there for a client's action
    /// when it is played in await mode.
    pub frame_idx: usize,
    /// `BlindTransfer`, `Redirect` or `Atxfer`.
    pub action: String,
    /// The channel the action named, as segments (rendered with the call's ids).
    pub channel: Vec<Seg>,
    pub context: String,
    pub exten: String,
}

/// A compiled capture.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub arena: Vec<u8>,
    pub frames: Vec<TemplateFrame>,
    /// For each Uniqueid, its epoch second minus the epoch second of the first frame.
    pub uid_epoch_delta: Vec<i64>,
    pub n_chan_seqs: usize,
    pub n_bridges: usize,
    /// The template's own values of each parameter.
    pub params: HashMap<Param, String>,
    pub action_point: Option<ActionPoint>,
    /// Offset of the last frame.
    pub duration_us: i64,
}

/// What the recording client sent, read from the `.sent` file.
#[derive(Debug, Clone, Default)]
pub(crate) struct SentActions {
    pub originate_channel: String,
    pub originate_exten: Option<String>,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub transfer: Option<SentTransfer>,
    /// The agent a direct-DID capture dials (the dialplan's choice, not in the actions); its
    /// extension becomes a parameter so every call can ring another agent.
    pub direct_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct SentTransfer {
    pub action: String,
    pub action_id: String,
    pub channel: String,
    pub context: String,
    pub exten: String,
}

/// Everything a render needs besides the template.
#[derive(Debug, Clone)]
pub(crate) struct Bindings {
    /// Simulated epoch microseconds of the call's first frame.
    pub start_us: i64,
    pub boot_secs: i64,
    /// Uniqueids the originator assigned (`ChannelId`, `OtherChannelId`), by uid index; the
    /// others are `<epoch>.<uid_base + index>`.
    pub assigned_uids: Vec<Option<Vec<u8>>>,
    pub uid_base: u64,
    pub chan_base: u64,
    pub bridges: Vec<[u8; 36]>,
    pub params: HashMap<Param, Vec<u8>>,
}

impl Template {
    /// Appends frame `idx`, rendered, to `out` (including the terminating empty line).
    /// `shift_us` delays the frame's times (a call that waited for a client's action).
    pub fn render_frame(
        &self,
        idx: usize,
        bindings: &Bindings,
        shift_us: i64,
        action_id: &[u8],
        out: &mut Vec<u8>,
    ) {
        let frame = &self.frames[idx];
        let frame_us = bindings.start_us + frame.offset_us + shift_us;
        self.render_segs(&frame.segs, bindings, frame_us, action_id, out);
        out.extend_from_slice(b"\r\n");
    }

    /// Renders loose segments (e.g. a channel name) in the context of a frame time.
    pub fn render_segs(
        &self,
        segs: &[Seg],
        bindings: &Bindings,
        frame_us: i64,
        action_id: &[u8],
        out: &mut Vec<u8>,
    ) {
        use std::io::Write as _;
        let frame_secs = frame_us.div_euclid(1_000_000);
        for seg in segs {
            match seg {
                Seg::Lit { start, end } => {
                    out.extend_from_slice(&self.arena[*start as usize..*end as usize])
                }
                Seg::Uid(i) => {
                    if let Some(Some(id)) = bindings.assigned_uids.get(usize::from(*i)) {
                        out.extend_from_slice(id);
                        continue;
                    }
                    let epoch = bindings.start_us.div_euclid(1_000_000)
                        + self.uid_epoch_delta[usize::from(*i)];
                    let _ = write!(out, "{}.{}", epoch, bindings.uid_base + u64::from(*i));
                }
                Seg::ChanSeq(i) => {
                    let seq = (bindings.chan_base + u64::from(*i)) & 0xffff_ffff;
                    let _ = write!(out, "{seq:08x}");
                }
                Seg::Bridge(i) => out.extend_from_slice(&bindings.bridges[usize::from(*i)]),
                Seg::Timestamp => {
                    let _ = write!(out, "{}.{:06}", frame_secs, frame_us.rem_euclid(1_000_000));
                }
                Seg::DateTime(delta) => write_datetime(frame_secs + delta, out),
                Seg::Epoch(delta) => {
                    let _ = write!(out, "{}", frame_secs + delta);
                }
                Seg::BootEpoch => {
                    let _ = write!(out, "{}", bindings.boot_secs);
                }
                Seg::Param(p) => match bindings.params.get(p) {
                    Some(v) => out.extend_from_slice(v),
                    None => out.extend_from_slice(self.params[p].as_bytes()),
                },
                Seg::ActionId => out.extend_from_slice(action_id),
            }
        }
    }
}

/// The `(name, value)` headers of one frame, borrowing the capture.
pub(crate) type RawFrame<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Splits a capture into frames of `(name, value)` header pairs, skipping the banner line.
pub(crate) fn split_frames(raw: &[u8]) -> Vec<RawFrame<'_>> {
    let mut rest = raw;
    if rest.starts_with(b"Asterisk Call Manager/") {
        let end = find(rest, b"\r\n").map_or(rest.len(), |i| i + 2);
        rest = &rest[end..];
    }
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (block, next) = match find(rest, b"\r\n\r\n") {
            Some(i) => (&rest[..i], &rest[i + 4..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let headers: Vec<(&[u8], &[u8])> = block
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(split_header)
            .collect();
        if !headers.is_empty() {
            frames.push(headers);
        }
    }
    frames
}

/// `Name: value` → (`Name`, `value`). A line without `": "` becomes a name with an empty value.
pub(crate) fn split_header(line: &[u8]) -> (&[u8], &[u8]) {
    match find(line, b": ") {
        Some(i) => (&line[..i], &line[i + 2..]),
        None => match line.strip_suffix(b":") {
            Some(name) => (name, &line[line.len()..]),
            None => (line, &line[line.len()..]),
        },
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the recording client's actions.
pub(crate) fn parse_sent(raw: &[u8]) -> SentActions {
    let mut sent = SentActions::default();
    for frame in split_frames(raw) {
        let get = |name: &str| {
            frame
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        match get("Action").as_deref() {
            Some("Originate") => {
                sent.originate_channel = get("Channel").unwrap_or_default();
                sent.originate_exten = get("Exten");
                for (name, value) in &frame {
                    if !name.eq_ignore_ascii_case(b"Variable") {
                        continue;
                    }
                    let value = String::from_utf8_lossy(value);
                    if let Some(v) = value.strip_prefix("CALLER_NUM=") {
                        sent.caller_number = Some(v.to_owned());
                    } else if let Some(v) = value.strip_prefix("CALLER_NAME=") {
                        sent.caller_name = Some(v.to_owned());
                    }
                }
            }
            Some(action @ ("BlindTransfer" | "Redirect" | "Atxfer")) => {
                sent.transfer = Some(SentTransfer {
                    action: action.to_owned(),
                    action_id: get("ActionID").unwrap_or_default(),
                    channel: get("Channel").unwrap_or_default(),
                    context: get("Context").unwrap_or_default(),
                    exten: get("Exten").unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    sent
}

/// The agent extension in an Originate channel such as `Local/101@agents/nm` or `PJSIP/101`.
pub(crate) fn extension_of_channel(channel: &str) -> Option<&str> {
    let (_, rest) = channel.split_once('/')?;
    let end = rest.find(['@', '/']).unwrap_or(rest.len());
    let ext = &rest[..end];
    (!ext.is_empty()).then_some(ext)
}

/// The DID in an inbound Originate channel `Local/<DID>@incoming/n`.
pub(crate) fn did_of_channel(channel: &str) -> Option<&str> {
    let rest = channel.strip_prefix("Local/")?;
    let (did, _) = rest.split_once("@incoming")?;
    (!did.is_empty()).then_some(did)
}

/// Compiles a capture and what its recording client sent into a template.
pub(crate) fn compile(raw: &[u8], sent: &SentActions) -> Result<Template, TemplateError> {
    let frames = split_frames(raw);
    let transfer_action_id = sent.transfer.as_ref().map(|t| t.action_id.as_bytes());

    // Keep the call's frames; drop what belongs to the recording session.
    let mut kept: Vec<(FrameKind, &RawFrame)> = Vec::new();
    for frame in &frames {
        let (first_name, first_value) = frame[0];
        let kind = if first_name == b"Response" {
            let action_id = frame.iter().find(|(n, _)| *n == b"ActionID").map(|h| h.1);
            if action_id.is_some() && action_id == transfer_action_id {
                FrameKind::ActionResponse
            } else {
                continue;
            }
        } else if first_name == b"Event" {
            match first_value {
                b"FullyBooted" | b"SuccessfulAuth" => continue,
                b"OriginateResponse" => FrameKind::OriginateResponse,
                _ => FrameKind::Event,
            }
        } else {
            return Err(TemplateError(format!(
                "frame starting with {:?} is neither a response nor an event",
                String::from_utf8_lossy(first_name)
            )));
        };
        kept.push((kind, frame));
    }

    // Times: every event carries a Timestamp; a frame without one (a response) takes the
    // previous frame's time.
    let mut times_us = Vec::with_capacity(kept.len());
    let mut last_us: Option<i64> = None;
    for (_, frame) in &kept {
        let ts = frame
            .iter()
            .find(|(n, _)| *n == b"Timestamp")
            .and_then(|(_, v)| parse_timestamp_us(v));
        if let Some(ts) = ts {
            last_us = Some(ts);
        }
        times_us.push(ts.or(last_us));
    }
    let t0_us = times_us
        .iter()
        .flatten()
        .copied()
        .next()
        .ok_or_else(|| TemplateError("no frame carries a Timestamp".into()))?;
    let t0_secs = t0_us.div_euclid(1_000_000);

    // Identifiers of this call.
    let mut uids: Vec<(i64, u64, Vec<u8>)> = Vec::new();
    let mut chan_seqs: Vec<Vec<u8>> = Vec::new();
    let mut bridges: Vec<Vec<u8>> = Vec::new();
    for (_, frame) in &kept {
        for (name, value) in frame.iter() {
            let lname = name.to_ascii_lowercase();
            if lname.ends_with(b"uniqueid") || lname.ends_with(b"linkedid") {
                if lname.ends_with(b"bridgeuniqueid") {
                    if value.len() == 36 && !bridges.iter().any(|b| b == value) {
                        bridges.push(value.to_vec());
                    }
                } else if let Some((epoch, seq)) = parse_uid(value) {
                    if !uids.iter().any(|u| u.2 == *value) {
                        uids.push((epoch, seq, value.to_vec()));
                    }
                }
            }
            if name.ends_with(b"Channel") || *name == b"Peer" {
                if let Some(seq) = channel_seq(value) {
                    if !chan_seqs.iter().any(|s| s == seq) {
                        chan_seqs.push(seq.to_vec());
                    }
                }
            }
        }
    }
    uids.sort_by_key(|u| (u.1, u.0));
    chan_seqs.sort();
    if uids.len() > usize::from(u16::MAX)
        || chan_seqs.len() > usize::from(u16::MAX)
        || bridges.len() > usize::from(u16::MAX)
    {
        return Err(TemplateError("too many identifiers in one call".into()));
    }

    let mut params: HashMap<Param, String> = HashMap::new();
    let mut needles: Vec<(Vec<u8>, Param, bool)> = Vec::new();
    if let Some(did) = did_of_channel(&sent.originate_channel) {
        params.insert(Param::Did, did.to_owned());
        needles.push((did.as_bytes().to_vec(), Param::Did, false));
        if let Some(n) = &sent.caller_number {
            params.insert(Param::CallerNumber, n.clone());
            needles.push((n.as_bytes().to_vec(), Param::CallerNumber, false));
        }
        if let Some(n) = &sent.caller_name {
            params.insert(Param::CallerName, n.clone());
            needles.push((n.as_bytes().to_vec(), Param::CallerName, false));
        }
        if let Some(agent) = &sent.direct_agent {
            params.insert(Param::Agent, agent.clone());
            needles.push((agent.as_bytes().to_vec(), Param::Agent, true));
        }
    } else {
        let agent = extension_of_channel(&sent.originate_channel)
            .ok_or_else(|| TemplateError("Originate channel names no extension".into()))?;
        params.insert(Param::Agent, agent.to_owned());
        needles.push((agent.as_bytes().to_vec(), Param::Agent, true));
        if let Some(exten) = &sent.originate_exten {
            params.insert(Param::Outside, exten.clone());
            needles.push((exten.as_bytes().to_vec(), Param::Outside, false));
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));

    let mut compiler = Compiler {
        arena: Vec::new(),
        uids: uids
            .iter()
            .enumerate()
            .map(|(i, u)| (u.2.clone(), i as u16))
            .collect(),
        chan_seqs: chan_seqs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u16))
            .collect(),
        bridges: bridges
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), i as u16))
            .collect(),
        needles,
    };

    let mut out_frames = Vec::with_capacity(kept.len());
    let mut action_point = None;
    for ((kind, frame), time_us) in kept.iter().zip(&times_us) {
        let frame_us = time_us.unwrap_or(t0_us);
        let frame_secs = frame_us.div_euclid(1_000_000);
        let mut segs = Vec::new();
        let mut event: &[u8] = b"";
        let mut previous_value_of_variable: &[u8] = b"";
        for (name, value) in frame.iter() {
            compiler.lit(&mut segs, name);
            compiler.lit(&mut segs, b": ");
            match *name {
                b"Event" => {
                    event = value;
                    compiler.lit(&mut segs, value);
                }
                b"Timestamp" => segs.push(Seg::Timestamp),
                b"ActionID" => segs.push(Seg::ActionId),
                b"EventTime" | b"StartTime" | b"AnswerTime" | b"EndTime"
                    if parse_datetime(value).is_some() =>
                {
                    let secs = parse_datetime(value).unwrap_or(frame_secs);
                    segs.push(Seg::DateTime(secs - frame_secs));
                }
                b"LoginTime" if parse_epoch(value).is_some() => segs.push(Seg::BootEpoch),
                b"LastCall" | b"LastPause" if parse_epoch(value).is_some() => {
                    let secs = parse_epoch(value).unwrap_or(frame_secs);
                    segs.push(Seg::Epoch(secs - frame_secs));
                }
                b"Value"
                    if previous_value_of_variable == b"MEMBERLASTCALL"
                        && parse_epoch(value).is_some() =>
                {
                    let secs = parse_epoch(value).unwrap_or(frame_secs);
                    segs.push(Seg::Epoch(secs - frame_secs));
                }
                _ => compiler.value(&mut segs, value),
            }
            compiler.lit(&mut segs, b"\r\n");
            if *name == b"Variable" {
                previous_value_of_variable = value;
            }
        }
        if *kind == FrameKind::ActionResponse {
            if let Some(t) = &sent.transfer {
                let mut channel = Vec::new();
                compiler.value(&mut channel, t.channel.as_bytes());
                action_point = Some(ActionPoint {
                    frame_idx: out_frames.len(),
                    action: t.action.clone(),
                    channel,
                    context: t.context.clone(),
                    exten: t.exten.clone(),
                });
            }
        }
        out_frames.push(TemplateFrame {
            offset_us: frame_us - t0_us,
            kind: *kind,
            event: event.into(),
            segs,
        });
    }
    let duration_us = out_frames.last().map_or(0, |f| f.offset_us);
    Ok(Template {
        arena: compiler.arena,
        frames: out_frames,
        uid_epoch_delta: uids.iter().map(|u| u.0 - t0_secs).collect(),
        n_chan_seqs: chan_seqs.len(),
        n_bridges: bridges.len(),
        params,
        action_point,
        duration_us,
    })
}

struct Compiler {
    arena: Vec<u8>,
    uids: HashMap<Vec<u8>, u16>,
    chan_seqs: HashMap<Vec<u8>, u16>,
    bridges: HashMap<Vec<u8>, u16>,
    /// (text, parameter, must not touch other digits)
    needles: Vec<(Vec<u8>, Param, bool)>,
}

impl Compiler {
    fn lit(&mut self, segs: &mut Vec<Seg>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        let end = self.arena.len() as u32;
        // Adjacent literals are merged so rendering copies long runs.
        if let Some(Seg::Lit { end: last_end, .. }) = segs.last_mut() {
            if *last_end == start {
                *last_end = end;
                return;
            }
        }
        segs.push(Seg::Lit { start, end });
    }

    /// Cuts a value into literal runs and placeholders.
    fn value(&mut self, segs: &mut Vec<Seg>, v: &[u8]) {
        let mut i = 0;
        let mut lit_start = 0;
        while i < v.len() {
            if let Some((len, seg)) = self.match_at(v, i) {
                self.lit(segs, &v[lit_start..i]);
                segs.push(seg);
                i += len;
                lit_start = i;
            } else {
                i += 1;
            }
        }
        self.lit(segs, &v[lit_start..]);
    }

    fn match_at(&self, v: &[u8], i: usize) -> Option<(usize, Seg)> {
        let before = i.checked_sub(1).map(|j| v[j]);
        // A Uniqueid: 10 digits, '.', digits; not part of a longer number.
        if v[i].is_ascii_digit() && !matches!(before, Some(b) if b.is_ascii_digit() || b == b'.') {
            let mut j = i;
            while j < v.len() && v[j].is_ascii_digit() {
                j += 1;
            }
            if j - i == 10 && j + 1 < v.len() && v[j] == b'.' && v[j + 1].is_ascii_digit() {
                let mut k = j + 1;
                while k < v.len() && v[k].is_ascii_digit() {
                    k += 1;
                }
                if let Some(idx) = self.uids.get(&v[i..k]) {
                    return Some((k - i, Seg::Uid(*idx)));
                }
            }
        }
        // A channel sequence suffix: `-` 8 hex digits `;`.
        if before == Some(b'-') && v.len() >= i + 9 && v[i + 8] == b';' {
            if let Some(idx) = self.chan_seqs.get(&v[i..i + 8]) {
                return Some((8, Seg::ChanSeq(*idx)));
            }
        }
        if v.len() >= i + 36 {
            if let Some(idx) = self.bridges.get(&v[i..i + 36]) {
                return Some((36, Seg::Bridge(*idx)));
            }
        }
        for (needle, param, digit_bounded) in &self.needles {
            if !v[i..].starts_with(needle) {
                continue;
            }
            if *digit_bounded {
                let after = v.get(i + needle.len());
                let touches = |b: Option<&u8>| matches!(b, Some(b) if b.is_ascii_digit());
                if touches(before.as_ref()) || touches(after) || before == Some(b'.') {
                    continue;
                }
            }
            return Some((needle.len(), Seg::Param(*param)));
        }
        None
    }
}

/// `1795334968.947536` → microseconds.
pub(crate) fn parse_timestamp_us(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.')?;
    let secs: i64 = secs.parse().ok()?;
    if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let usec: i64 = format!("{frac:0<6}").parse().ok()?;
    Some(secs * 1_000_000 + usec)
}

/// A Uniqueid `<10-digit epoch>.<seq>` → (epoch, seq).
fn parse_uid(v: &[u8]) -> Option<(i64, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (epoch, seq) = s.split_once('.')?;
    if epoch.len() != 10 || seq.is_empty() {
        return None;
    }
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// A nonzero 10-digit epoch-seconds value.
fn parse_epoch(v: &[u8]) -> Option<i64> {
    if v.len() != 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The 8 hex digits of `Local/101@agents-0000002c;1`.
fn channel_seq(v: &[u8]) -> Option<&[u8]> {
    let semi = v.iter().rposition(|b| *b == b';')?;
    if semi < 9 || v[semi - 9] != b'-' {
        return None;
    }
    let hex = &v[semi - 8..semi];
    hex.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_and_did_of_originate_channels() {
        assert_eq!(extension_of_channel("Local/101@agents/nm"), Some("101"));
        assert_eq!(extension_of_channel("PJSIP/102"), Some("102"));
        assert_eq!(extension_of_channel("SIP/"), None);
        assert_eq!(
            did_of_channel("Local/+18005550100@incoming/n"),
            Some("+18005550100")
        );
        assert_eq!(did_of_channel("Local/101@agents/nm"), None);
    }

    #[test]
    fn timestamps_parse_to_microseconds() {
        assert_eq!(
            parse_timestamp_us(b"1795334968.947536"),
            Some(1_795_334_968_947_536)
        );
        assert_eq!(parse_timestamp_us(b"1.5"), Some(1_500_000));
        assert_eq!(parse_timestamp_us(b"1795334968"), None);
        assert_eq!(parse_timestamp_us(b"x.1"), None);
    }

    #[test]
    fn value_placeholders_respect_boundaries() {
        let raw = b"Asterisk Call Manager/11.0.0\r\n\
Event: Newchannel\r\nTimestamp: 1795334968.500000\r\nChannel: Local/101@agents-0000002c;1\r\n\
Uniqueid: 1795334968.5\r\nLinkedid: 1795334968.4\r\n\r\n\
Event: VarSet\r\nTimestamp: 1795334969.000000\r\nChannel: Local/101@agents-0000002c;2\r\n\
Uniqueid: 1795334968.4\r\nVariable: X\r\nValue: /m/1795334968.5.wav 1795334968.55 101 1101\r\n\r\n";
        let sent = SentActions {
            originate_channel: "Local/101@agents/nm".into(),
            originate_exten: Some("+15550001111".into()),
            ..SentActions::default()
        };
        let t = compile(raw, &sent).expect("compiles");
        assert_eq!(t.frames.len(), 2);
        assert_eq!(t.uid_epoch_delta, vec![0, 0]);
        assert_eq!(t.n_chan_seqs, 1);
        let bindings = Bindings {
            start_us: 2_000_000_000_250_000,
            boot_secs: 1_999_999_000,
            assigned_uids: vec![],
            uid_base: 70,
            chan_base: 0x1f,
            bridges: vec![],
            params: HashMap::from([(Param::Agent, b"205".to_vec())]),
        };
        let mut out = Vec::new();
        t.render_frame(0, &bindings, 0, b"", &mut out);
        t.render_frame(1, &bindings, 0, b"", &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "Event: Newchannel\r\nTimestamp: 2000000000.250000\r\n\
Channel: Local/205@agents-0000001f;1\r\nUniqueid: 2000000000.71\r\nLinkedid: 2000000000.70\r\n\r\n\
Event: VarSet\r\nTimestamp: 2000000000.750000\r\nChannel: Local/205@agents-0000001f;2\r\n\
Uniqueid: 2000000000.70\r\nVariable: X\r\n\
Value: /m/2000000000.71.wav 1795334968.55 205 1101\r\n\r\n"
        );
    }
}
