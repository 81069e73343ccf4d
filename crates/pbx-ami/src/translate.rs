//! Translation of AMI frames into the core's [`PbxEvent`]s.
//!
//! What it is: a pure function per frame. Only the events the call tracker needs are
//! translated; everything else (`Newexten` of ordinary applications, `VarSet` of other
//! variables, `Cdr`, `CEL`, `DeviceStateChange`, ...) returns `None` after looking at the event
//! name, before anything is allocated. Of a relevant frame only the headers the event needs
//! are looked for (one vectorised search each, see `Fields`), and its UTF-8 is checked once.
//!
//! What it is not: no call logic (that is `cti_core::CallTracker`), no I/O. Field names follow
//! Asterisk 12+ (`DialBegin`, `BridgeEnter`, `Uniqueid`); Asterisk 11 names are not supported.

use cti_core::{
    AgentCompleteReason, AttendedTransferInfo, BlindTransferInfo, BridgeId, CallTracker, ChanRef,
    ChannelState, DialStatus, DialplanApp, Effect, LinkedId, LiveChannel, PbxEvent, QueueMember,
    QueueName, Timestamp, Uniqueid,
};

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::codec::{Frame, FrameRef};

/// The events this module understands, chosen by the `Event` header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Newchannel,
    Newstate,
    NewCallerid,
    Rename,
    LocalBridge,
    DialBegin,
    DialEnd,
    BridgeEnter,
    BridgeLeave,
    BridgeMerge,
    Hangup,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueCallerAbandon,
    AgentCalled,
    AgentRingNoAnswer,
    AgentConnect,
    AgentComplete,
    Hold,
    Unhold,
    MusicOnHoldStart,
    MusicOnHoldStop,
    MixMonitorStart,
    VarSet,
    BlindTransfer,
    AttendedTransfer,
    Newexten,
    UserEvent,
}

fn kind(event: &[u8]) -> Option<Kind> {
    Some(match event {
        b"Newchannel" => Kind::Newchannel,
        b"Newstate" => Kind::Newstate,
        b"NewCallerid" => Kind::NewCallerid,
        b"Rename" => Kind::Rename,
        b"LocalBridge" => Kind::LocalBridge,
        b"DialBegin" => Kind::DialBegin,
        b"DialEnd" => Kind::DialEnd,
        b"BridgeEnter" => Kind::BridgeEnter,
        b"BridgeLeave" => Kind::BridgeLeave,
        b"BridgeMerge" => Kind::BridgeMerge,
        b"Hangup" => Kind::Hangup,
        b"QueueCallerJoin" => Kind::QueueCallerJoin,
        b"QueueCallerLeave" => Kind::QueueCallerLeave,
        b"QueueCallerAbandon" => Kind::QueueCallerAbandon,
        b"AgentCalled" => Kind::AgentCalled,
        b"AgentRingNoAnswer" => Kind::AgentRingNoAnswer,
        b"AgentConnect" => Kind::AgentConnect,
        b"AgentComplete" => Kind::AgentComplete,
        b"Hold" => Kind::Hold,
        b"Unhold" => Kind::Unhold,
        b"MusicOnHoldStart" => Kind::MusicOnHoldStart,
        b"MusicOnHoldStop" => Kind::MusicOnHoldStop,
        b"MixMonitorStart" => Kind::MixMonitorStart,
        b"VarSet" => Kind::VarSet,
        b"BlindTransfer" => Kind::BlindTransfer,
        b"AttendedTransfer" => Kind::AttendedTransfer,
        b"Newexten" => Kind::Newexten,
        b"UserEvent" => Kind::UserEvent,
        _ => return None,
    })
}

/// Header slots read in one pass. A channel snapshot with a prefix (`Dest`, `Transferer`, ...)
/// uses the same three slots at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum F {
    Channel,
    Uniqueid,
    Linkedid,
    DestChannel,
    DestUniqueid,
    DestLinkedid,
    LocalOneChannel,
    LocalOneUniqueid,
    LocalOneLinkedid,
    LocalTwoChannel,
    LocalTwoUniqueid,
    LocalTwoLinkedid,
    TransfererChannel,
    TransfererUniqueid,
    TransfererLinkedid,
    TransfereeChannel,
    TransfereeUniqueid,
    TransfereeLinkedid,
    OrigTransfererChannel,
    OrigTransfererUniqueid,
    OrigTransfererLinkedid,
    SecondTransfererChannel,
    SecondTransfererUniqueid,
    SecondTransfererLinkedid,
    TransferTargetChannel,
    TransferTargetUniqueid,
    TransferTargetLinkedid,
    ChannelState,
    CallerIdNum,
    CallerIdName,
    Context,
    Exten,
    DialString,
    DialStatus,
    BridgeUniqueid,
    Cause,
    Queue,
    MemberName,
    Interface,
    HoldTime,
    RingTime,
    TalkTime,
    Reason,
    Newname,
    ToBridgeUniqueid,
    FromBridgeUniqueid,
    Result,
    Extension,
    Application,
    AppData,
    Variable,
    Value,
    UserEvent,
    BridgeId,
    Duration,
    Timestamp,
    Count,
}

const N_FIELDS: usize = F::Count as usize;

/// Every header name [`Fields::read`] keeps, with its slot.
const NAMES: [(&[u8], F); 56] = [
    (b"Channel", F::Channel),
    (b"Uniqueid", F::Uniqueid),
    (b"Linkedid", F::Linkedid),
    (b"DestChannel", F::DestChannel),
    (b"DestUniqueid", F::DestUniqueid),
    (b"DestLinkedid", F::DestLinkedid),
    (b"LocalOneChannel", F::LocalOneChannel),
    (b"LocalOneUniqueid", F::LocalOneUniqueid),
    (b"LocalOneLinkedid", F::LocalOneLinkedid),
    (b"LocalTwoChannel", F::LocalTwoChannel),
    (b"LocalTwoUniqueid", F::LocalTwoUniqueid),
    (b"LocalTwoLinkedid", F::LocalTwoLinkedid),
    (b"TransfererChannel", F::TransfererChannel),
    (b"TransfererUniqueid", F::TransfererUniqueid),
    (b"TransfererLinkedid", F::TransfererLinkedid),
    (b"TransfereeChannel", F::TransfereeChannel),
    (b"TransfereeUniqueid", F::TransfereeUniqueid),
    (b"TransfereeLinkedid", F::TransfereeLinkedid),
    (b"OrigTransfererChannel", F::OrigTransfererChannel),
    (b"OrigTransfererUniqueid", F::OrigTransfererUniqueid),
    (b"OrigTransfererLinkedid", F::OrigTransfererLinkedid),
    (b"SecondTransfererChannel", F::SecondTransfererChannel),
    (b"SecondTransfererUniqueid", F::SecondTransfererUniqueid),
    (b"SecondTransfererLinkedid", F::SecondTransfererLinkedid),
    (b"TransferTargetChannel", F::TransferTargetChannel),
    (b"TransferTargetUniqueid", F::TransferTargetUniqueid),
    (b"TransferTargetLinkedid", F::TransferTargetLinkedid),
    (b"ChannelState", F::ChannelState),
    (b"CallerIDNum", F::CallerIdNum),
    (b"CallerIDName", F::CallerIdName),
    (b"Context", F::Context),
    (b"Exten", F::Exten),
    (b"DialString", F::DialString),
    (b"DialStatus", F::DialStatus),
    (b"BridgeUniqueid", F::BridgeUniqueid),
    (b"Cause", F::Cause),
    (b"Queue", F::Queue),
    (b"MemberName", F::MemberName),
    (b"Interface", F::Interface),
    (b"HoldTime", F::HoldTime),
    (b"RingTime", F::RingTime),
    (b"TalkTime", F::TalkTime),
    (b"Reason", F::Reason),
    (b"Newname", F::Newname),
    (b"ToBridgeUniqueid", F::ToBridgeUniqueid),
    (b"FromBridgeUniqueid", F::FromBridgeUniqueid),
    (b"Result", F::Result),
    (b"Extension", F::Extension),
    (b"Application", F::Application),
    (b"AppData", F::AppData),
    (b"Variable", F::Variable),
    (b"Value", F::Value),
    (b"UserEvent", F::UserEvent),
    (b"BridgeId", F::BridgeId),
    (b"Duration", F::Duration),
    (b"Timestamp", F::Timestamp),
];

/// Multiplier of the name hash, found by search so that the names above land in distinct
/// cells of [`SLOTS`] (checked at compile time by `build_slots`).
const NAME_HASH_MUL: u64 = 0xdd30_3e47_cac7_82df;

/// Eight bytes of `b` from `at`, zero past the end (for the compile-time table).
const fn word_at(b: &[u8], at: usize) -> u64 {
    let mut x = 0u64;
    let mut i = 0;
    while i < 8 {
        if at + i < b.len() {
            x |= (b[at + i] as u64) << (8 * i);
        }
        i += 1;
    }
    x
}

/// Longest name in [`NAMES`]. Up to 24 bytes, the three eight-byte windows of a name key
/// (first, middle, last) cover every byte, so equal keys and lengths mean equal names.
const MAX_NAME: usize = 24;

/// The key of a name: its length and the eight-byte windows the hash reads (zero-padded
/// below eight bytes). Compile-time version.
const fn name_key_const(b: &[u8]) -> (usize, [u64; 3]) {
    let l = b.len();
    if l < 8 {
        (l, [word_at(b, 0), 0, 0])
    } else {
        (l, [word_at(b, 0), word_at(b, l / 2 - 4), word_at(b, l - 8)])
    }
}

/// The key at run time, with word loads instead of byte loops (a header name costs a
/// handful of instructions, where a `match` on byte strings costs a call to `bcmp` per
/// candidate of the same length). `None` for names longer than any known one.
#[inline]
fn name_key(b: &[u8]) -> Option<(usize, [u64; 3])> {
    let l = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    if l > MAX_NAME {
        return None;
    }
    Some(if l >= 8 {
        (l, [word(0), word(l / 2 - 4), word(l - 8)])
    } else if l >= 4 {
        let half = |at: usize| {
            u64::from(u32::from_le_bytes(
                b[at..at + 4].try_into().unwrap_or_default(),
            ))
        };
        // The two halves overlap for l < 8; OR-ing equal bytes keeps them.
        (l, [half(0) | half(l - 4) << (8 * (l - 4)), 0, 0])
    } else {
        (l, [word_at(b, 0), 0, 0])
    })
}

/// The table cell of a key: the words mixed by a multiplicative hash.
const fn name_hash(key: &(usize, [u64; 3])) -> usize {
    let (l, w) = key;
    let mixed = if *l < 8 {
        w[0] ^ *l as u64
    } else {
        w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(43) ^ *l as u64
    };
    (mixed.wrapping_mul(NAME_HASH_MUL) >> 56) as usize
}

/// A known header name in the table: its key and its slot.
#[derive(Clone, Copy)]
struct Slot {
    key: (usize, [u64; 3]),
    field: F,
}

const fn build_slots() -> [Option<Slot>; 256] {
    let mut table: [Option<Slot>; 256] = [None; 256];
    let mut i = 0;
    while i < NAMES.len() {
        assert!(NAMES[i].0.len() <= MAX_NAME, "raise MAX_NAME's proof first");
        assert!(
            NAMES[i].1 as usize == i,
            "NAMES lists the slots in their order"
        );
        let mut j = 0;
        while j < NAMES[i].0.len() {
            assert!(NAMES[i].0[j] != b':', "a name holds no colon");
            j += 1;
        }
        let key = name_key_const(NAMES[i].0);
        let h = name_hash(&key);
        assert!(
            table[h].is_none(),
            "header name hash collision: pick another NAME_HASH_MUL"
        );
        table[h] = Some(Slot {
            key,
            field: NAMES[i].1,
        });
        i += 1;
    }
    table
}

static SLOTS: [Option<Slot>; 256] = build_slots();

#[inline]
fn slot(name: &[u8]) -> Option<F> {
    let key = name_key(name)?;
    match SLOTS[name_hash(&key)] {
        Some(known) if known.key == key => Some(known.field),
        _ => None,
    }
}

/// The headers translation reads, by slot.
///
/// A lazy frame (see `codec`) is not read line by line: each wanted header is found by one
/// vectorised search of the raw bytes for `"\nName:"` (or the name at the very start), which
/// is the first line of that name, so the same header the line-by-line read keeps. The
/// relevant frames have 17 to 37 lines of which an event reads 5 to 12, so searching for
/// those costs a fraction of reading every line. Frames with an index (split across socket
/// reads, over a limit) are read through the index.
struct Fields<'a> {
    raw: &'a [u8],
    /// The whole frame as text when it is valid UTF-8 (nearly always): one check for the
    /// frame instead of one per value, whose values are then cut from it.
    text: Option<&'a str>,
    source: Source<'a>,
}

// It lives on the stack for the one frame being translated: boxing the large variant would
// cost an allocation per indexed frame to save a copy nobody makes.
#[allow(clippy::large_enum_variant)]
enum Source<'a> {
    Indexed([Option<&'a [u8]>; N_FIELDS]),
    Lazy,
}

/// One searcher per slot for `"\nName:"`.
static LINE_FINDERS: LazyLock<Vec<Finder<'static>>> = LazyLock::new(|| {
    NAMES
        .iter()
        .map(|(name, _)| {
            let mut needle = Vec::with_capacity(name.len() + 2);
            needle.push(b'\n');
            needle.extend_from_slice(name);
            needle.push(b':');
            Finder::new(&needle).into_owned()
        })
        .collect()
});

impl<'a> Fields<'a> {
    fn read(frame: &FrameRef<'a>) -> Self {
        if frame.is_lazy() {
            return Fields::new(frame, Source::Lazy);
        }
        Self::read_lines(frame)
    }

    fn new(frame: &FrameRef<'a>, source: Source<'a>) -> Self {
        Fields {
            raw: frame.raw(),
            text: std::str::from_utf8(frame.raw()).ok(),
            source,
        }
    }

    /// Every line read, the first value of each wanted name kept.
    fn read_lines(frame: &FrameRef<'a>) -> Self {
        let mut fields = [None; N_FIELDS];
        frame.for_each_header(|name, value| {
            if let Some(f) = slot(name) {
                let cell = &mut fields[f as usize];
                if cell.is_none() {
                    *cell = Some(value);
                }
            }
        });
        Fields::new(frame, Source::Indexed(fields))
    }

    fn raw(&self, f: F) -> Option<&'a [u8]> {
        self.raw_at(f as usize)
    }

    /// The value of slot `i` (`NAMES[i]`).
    fn raw_at(&self, i: usize) -> Option<&'a [u8]> {
        match &self.source {
            Source::Indexed(fields) => fields[i],
            Source::Lazy => first_value(self.raw, NAMES[i].0, &LINE_FINDERS[i]),
        }
    }

    /// `value` (a slice of this frame) as text, exactly when `std::str::from_utf8` would give
    /// it: cut from the frame's text when the frame is valid UTF-8 (the cut is at ASCII
    /// delimiters, so `get` finds char boundaries; if it did not, the bytes would not be
    /// valid alone either), checked alone otherwise.
    fn str_of(&self, value: &'a [u8]) -> Option<&'a str> {
        let start = (value.as_ptr() as usize).wrapping_sub(self.raw.as_ptr() as usize);
        self.text
            .and_then(|text| text.get(start..start.checked_add(value.len())?))
            .or_else(|| std::str::from_utf8(value).ok())
    }

    /// A value as an owned text: valid UTF-8 (nearly everything) is copied as is; anything
    /// else (a cp1251 `CallerIDName`) is decoded lossily for display.
    fn owned(&self, value: &'a [u8]) -> String {
        match self.str_of(value) {
            Some(text) => text.to_owned(),
            None => String::from_utf8_lossy(value).into_owned(),
        }
    }

    /// A value as borrowed text when valid UTF-8, else decoded lossily (as [`Fields::owned`]).
    fn id_text(&self, value: &'a [u8]) -> Cow<'a, str> {
        match self.str_of(value) {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(String::from_utf8_lossy(value).into_owned()),
        }
    }

    fn text(&self, f: F) -> Option<String> {
        self.raw(f).map(|v| self.owned(v))
    }

    /// An id (`Uniqueid`, `BridgeUniqueid`, `Queue`, ...) made straight from the bytes: short
    /// ids are kept inside the id, so this allocates nothing for them.
    fn id<T: for<'s> From<&'s str>>(&self, f: F) -> Option<T> {
        self.raw(f).map(|v| T::from(&*self.id_text(v)))
    }

    fn text_or_empty(&self, f: F) -> String {
        self.text(f).unwrap_or_default()
    }

    /// Caller ID style values: Asterisk writes a literal `<unknown>` when empty.
    fn party(&self, f: F) -> Option<String> {
        self.raw(f)
            .filter(|v| !v.is_empty() && *v != b"<unknown>")
            .map(|v| self.owned(v))
    }

    fn number<T: std::str::FromStr>(&self, f: F) -> Option<T> {
        self.str_of(self.raw(f)?)?.trim().parse().ok()
    }

    /// The channel named by the `Channel`/`Uniqueid`/`Linkedid` triple starting at `base`.
    fn chan(&self, base: F) -> Option<ChanRef> {
        let b = base as usize;
        let uniqueid = self
            .raw_at(b + 1)
            .filter(|v| !v.is_empty() && *v != b"<unknown>")?;
        Some(ChanRef {
            uniqueid: Uniqueid::from(&*self.id_text(uniqueid)),
            linkedid: LinkedId::from(&*self.id_text(self.raw_at(b + 2).unwrap_or_default())),
            name: self.owned(self.raw_at(b).unwrap_or_default()),
        })
    }

    fn queue(&self) -> QueueName {
        self.id(F::Queue).unwrap_or_default()
    }

    fn member(&self) -> QueueMember {
        QueueMember {
            interface: self.text_or_empty(F::Interface),
            name: self.text_or_empty(F::MemberName),
        }
    }
}

static VOICEMAIL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"VoiceMail"));
static STASIS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Stasis"));
static MIXMONITOR_FILENAME: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"MIXMONITOR_FILENAME"));

/// The value of the first header called exactly `name` in a lazy frame's bytes, by the line
/// rules of `codec` (one space after the colon trimmed, a `\r` before the `\n` dropped).
///
/// A header line starts the frame or follows a `\n`, and its name runs up to its first
/// colon; `name` holds no colon, so the first `"\nname:"` (`finder`) is the first line of
/// that name. A line that does not end in a `\n` is not a header (a lazy frame ends with its
/// empty line, so there is none).
fn first_value<'a>(raw: &'a [u8], name: &[u8], finder: &Finder<'_>) -> Option<&'a [u8]> {
    let colon = if raw.len() > name.len() && raw.starts_with(name) && raw[name.len()] == b':' {
        name.len()
    } else {
        finder.find(raw)? + 1 + name.len()
    };
    let newline = colon + memchr::memchr(b'\n', &raw[colon..])?;
    // The line starts before the colon, so it is not empty; a '\r' right before the '\n'
    // is not part of it (it cannot be the colon itself).
    let end = if raw[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let value_start = if colon + 1 < end && raw[colon + 1] == b' ' {
        colon + 2
    } else {
        colon + 1
    };
    Some(&raw[value_start..end])
}

/// Translates one frame; `None` for frames the tracker does not need (responses included).
pub fn translate(frame: &FrameRef<'_>) -> Option<PbxEvent> {
    translate_timed(frame).map(|(event, _)| event)
}

/// [`translate`] plus the frame's `Timestamp`, read in the same pass over the headers.
pub fn translate_timed(frame: &FrameRef<'_>) -> Option<(PbxEvent, Option<Timestamp>)> {
    let kind = kind(frame.event()?)?;
    // The two noisiest events matter only for a few values: look before reading every header.
    // Asterisk spells header names exactly, so an exact comparison is enough here.
    let exact = |name: &[u8]| frame.headers().find(|(n, _)| *n == name).map(|(_, v)| v);
    // Before reading lines, one vectorised search of the raw bytes: a frame that does not
    // even contain the wanted value cannot have it as a header (most of them).
    let raw = frame.raw();
    match kind {
        Kind::Newexten => {
            if VOICEMAIL.find(raw).is_none() && STASIS.find(raw).is_none() {
                return None;
            }
            let app = exact(b"Application")?;
            if app != b"VoiceMail" && app != b"Stasis" {
                return None;
            }
        }
        Kind::VarSet
            if MIXMONITOR_FILENAME.find(raw).is_none()
                || exact(b"Variable")? != b"MIXMONITOR_FILENAME" =>
        {
            return None;
        }
        _ => {}
    }
    let f = Fields::read(frame);
    let at = f
        .raw(F::Timestamp)
        .and_then(|t| f.str_of(t))
        .and_then(Timestamp::parse_epoch);
    Some((event(kind, &f, frame)?, at))
}

fn event(kind: Kind, f: &Fields<'_>, frame: &FrameRef<'_>) -> Option<PbxEvent> {
    let chan = || f.chan(F::Channel);
    let dest = || f.chan(F::DestChannel);
    Some(match kind {
        Kind::Newchannel => PbxEvent::ChannelCreated {
            chan: chan()?,
            state: state(f),
            caller_num: f.party(F::CallerIdNum),
            caller_name: f.party(F::CallerIdName),
            context: f.text_or_empty(F::Context),
            exten: f.text_or_empty(F::Exten),
        },
        Kind::Newstate => PbxEvent::ChannelStateChanged {
            chan: chan()?,
            state: state(f),
        },
        Kind::NewCallerid => PbxEvent::CallerIdChanged {
            chan: chan()?,
            caller_num: f.party(F::CallerIdNum),
            caller_name: f.party(F::CallerIdName),
        },
        Kind::Rename => PbxEvent::ChannelRenamed {
            uniqueid: f.id(F::Uniqueid)?,
            new_name: f.text(F::Newname)?,
        },
        Kind::LocalBridge => PbxEvent::LocalPair {
            one: f.chan(F::LocalOneChannel)?,
            two: f.chan(F::LocalTwoChannel)?,
        },
        Kind::DialBegin => PbxEvent::DialBegin {
            caller: chan(),
            caller_num: f.party(F::CallerIdNum),
            dest: dest()?,
            dial_string: f.text_or_empty(F::DialString),
        },
        Kind::DialEnd => PbxEvent::DialEnd {
            caller: chan(),
            dest: dest()?,
            status: DialStatus::from_ami(&f.text_or_empty(F::DialStatus)),
        },
        Kind::BridgeEnter => PbxEvent::BridgeEnter {
            chan: chan()?,
            bridge: f.id(F::BridgeUniqueid)?,
        },
        Kind::BridgeLeave => PbxEvent::BridgeLeave {
            chan: chan()?,
            bridge: f.id(F::BridgeUniqueid)?,
        },
        Kind::BridgeMerge => PbxEvent::BridgeMerge {
            from: f.id(F::FromBridgeUniqueid)?,
            to: f.id(F::ToBridgeUniqueid)?,
        },
        Kind::Hangup => PbxEvent::Hangup {
            chan: chan()?,
            cause: f.number(F::Cause).unwrap_or(0),
        },
        Kind::QueueCallerJoin => PbxEvent::QueueCallerJoin {
            chan: chan()?,
            queue: f.queue(),
        },
        Kind::QueueCallerLeave => PbxEvent::QueueCallerLeave {
            chan: chan()?,
            queue: f.queue(),
        },
        Kind::QueueCallerAbandon => PbxEvent::QueueCallerAbandon {
            chan: chan()?,
            queue: f.queue(),
            hold_time_s: f.number(F::HoldTime).unwrap_or(0),
        },
        Kind::AgentCalled => PbxEvent::AgentCalled {
            caller: chan()?,
            dest: dest()?,
            queue: f.queue(),
            member: f.member(),
        },
        Kind::AgentRingNoAnswer => PbxEvent::AgentRingNoAnswer {
            caller: chan()?,
            dest: dest()?,
            queue: f.queue(),
            member: f.member(),
            ring_time_ms: f.number(F::RingTime).unwrap_or(0),
        },
        Kind::AgentConnect => PbxEvent::AgentConnect {
            caller: chan()?,
            dest: dest()?,
            queue: f.queue(),
            member: f.member(),
            hold_time_s: f.number(F::HoldTime).unwrap_or(0),
        },
        Kind::AgentComplete => PbxEvent::AgentComplete {
            caller: chan()?,
            dest: dest(),
            queue: f.queue(),
            member: f.member(),
            talk_time_s: f.number(F::TalkTime).unwrap_or(0),
            reason: match f.raw(F::Reason) {
                Some(b"caller") => AgentCompleteReason::Caller,
                Some(b"agent") => AgentCompleteReason::Agent,
                Some(b"transfer") => AgentCompleteReason::Transfer,
                _ => AgentCompleteReason::Other,
            },
        },
        Kind::Hold => PbxEvent::Hold { chan: chan()? },
        Kind::Unhold => PbxEvent::Unhold { chan: chan()? },
        Kind::MusicOnHoldStart => PbxEvent::MusicOnHoldStart { chan: chan()? },
        Kind::MusicOnHoldStop => PbxEvent::MusicOnHoldStop { chan: chan()? },
        Kind::MixMonitorStart => PbxEvent::MixMonitorStart { chan: chan()? },
        Kind::VarSet => PbxEvent::RecordingFile {
            chan: chan()?,
            file: f.text(F::Value).filter(|v| !v.is_empty())?,
        },
        Kind::BlindTransfer => PbxEvent::BlindTransfer(BlindTransferInfo {
            success: f.raw(F::Result) == Some(b"Success"),
            transferer: f.chan(F::TransfererChannel),
            transferee: f.chan(F::TransfereeChannel),
            extension: f.text_or_empty(F::Extension),
            context: f.text_or_empty(F::Context),
        }),
        Kind::AttendedTransfer => PbxEvent::AttendedTransfer(AttendedTransferInfo {
            success: f.raw(F::Result) == Some(b"Success"),
            orig_transferer: f.chan(F::OrigTransfererChannel),
            second_transferer: f.chan(F::SecondTransfererChannel),
            transferee: f.chan(F::TransfereeChannel),
            target: f.chan(F::TransferTargetChannel),
        }),
        Kind::Newexten => PbxEvent::AppStarted {
            chan: chan()?,
            app: match f.raw(F::Application)? {
                b"VoiceMail" => DialplanApp::VoiceMail,
                _ => {
                    let data = f.text_or_empty(F::AppData);
                    DialplanApp::Stasis(data.split(',').next().unwrap_or("").to_owned())
                }
            },
        },
        Kind::UserEvent => PbxEvent::UserEvent {
            chan: chan(),
            name: f.text_or_empty(F::UserEvent),
            headers: user_headers(frame),
        },
    })
}

/// [`translate`] for an owned frame (the AMI client hands out `Vec<Frame>` batches).
pub fn translate_frame(frame: &Frame) -> Option<PbxEvent> {
    translate(&frame.as_ref())
}

/// Translates `frame` and applies it to `tracker` at the frame's own time (its `Timestamp`
/// header). `clock` holds the last time seen, used for a frame without a timestamp; frames the
/// tracker does not need cost only the event-name check.
pub fn apply_frame(
    tracker: &mut CallTracker,
    frame: &FrameRef<'_>,
    clock: &mut Timestamp,
) -> Vec<Effect> {
    let Some((event, at)) = translate_timed(frame) else {
        return Vec::new();
    };
    if let Some(ts) = at {
        *clock = ts;
    }
    tracker.apply(event, *clock)
}

/// The event's `Timestamp` header (`timestampevents = yes`), if present and valid.
pub fn timestamp(frame: &FrameRef<'_>) -> Option<Timestamp> {
    Timestamp::parse_epoch(std::str::from_utf8(frame.get("Timestamp")?).ok()?)
}

/// One `CoreShowChannel` list item as a live channel; `None` for any other frame.
pub fn live_channel(frame: &FrameRef<'_>) -> Option<LiveChannel> {
    if frame.event()? != b"CoreShowChannel" {
        return None;
    }
    let f = Fields::read(frame);
    Some(LiveChannel {
        chan: f.chan(F::Channel)?,
        state: state(&f),
        caller_num: f.party(F::CallerIdNum),
        caller_name: f.party(F::CallerIdName),
        context: f.text_or_empty(F::Context),
        exten: f.text_or_empty(F::Exten),
        bridge: f
            .text(F::BridgeId)
            .filter(|b| !b.is_empty())
            .map(BridgeId::new),
        age_s: f.raw(F::Duration).and_then(parse_duration).unwrap_or(0),
    })
}

/// The resync input for the tracker from the frames the client collected after a reconnect.
/// Only `CoreShowChannel` items matter to the call tracker; queue and device state items are
/// skipped here (they feed agent presence, not call records).
pub fn resync_event<'f>(frames: impl IntoIterator<Item = &'f Frame>) -> PbxEvent {
    PbxEvent::Resynced {
        channels: frames
            .into_iter()
            .filter_map(|f| live_channel(&f.as_ref()))
            .collect(),
    }
}

fn state(f: &Fields<'_>) -> ChannelState {
    ChannelState::from_ami_code(f.number(F::ChannelState).unwrap_or(0))
}

/// `HH:MM:SS` to seconds.
fn parse_duration(text: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(text).ok()?;
    let mut total: u32 = 0;
    for part in text.split(':') {
        total = total
            .checked_mul(60)?
            .checked_add(part.trim().parse().ok()?)?;
    }
    Some(total)
}

/// A `UserEvent`'s own headers: everything after the standard ones.
fn user_headers(frame: &FrameRef<'_>) -> Vec<(String, String)> {
    const STANDARD: &[&[u8]] = &[
        b"Event",
        b"Privilege",
        b"Timestamp",
        b"SystemName",
        b"UserEvent",
        b"Channel",
        b"ChannelState",
        b"ChannelStateDesc",
        b"CallerIDNum",
        b"CallerIDName",
        b"ConnectedLineNum",
        b"ConnectedLineName",
        b"Language",
        b"AccountCode",
        b"Context",
        b"Exten",
        b"Priority",
        b"Uniqueid",
        b"Linkedid",
        b"Tenantid",
    ];
    // Every line is wanted here: one pass over the frame.
    let mut headers = Vec::new();
    frame.for_each_header(|name, value| {
        if !name.is_empty() && !STANDARD.contains(&name) {
            headers.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
    });
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Decoder, Item, Limits};

    fn frame(text: &str) -> Frame {
        Frame::parse(text.replace('\n', "\r\n").as_bytes()).expect("test frame parses")
    }

    /// Every frame of `bytes` decoded with `limits`, translated (and read as a live channel).
    fn translations(bytes: &[u8], limits: Limits) -> Vec<(bool, String)> {
        let mut decoder = Decoder::new(limits);
        decoder.push(bytes);
        let mut out = Vec::new();
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(frame) = item {
                out.push((
                    frame.is_lazy(),
                    format!("{:?} {:?}", translate_timed(&frame), live_channel(&frame)),
                ));
            }
        }
        out
    }

    #[test]
    fn searching_lazy_frames_reads_the_same_headers_as_the_index() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ami");
        let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("shared fixtures")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ami"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read(&p).expect("readable"),
                )
            })
            .collect();
        assert!(inputs.len() >= 28, "fixtures in {}", dir.display());
        // Odd but legal frames: repeated headers (the first counts), a wanted name as a
        // prefix of another or with a space before the colon, a name in another case, a
        // wanted name first in the frame, no space or two after the colon, bare LF.
        inputs.push((
            "odd frames".into(),
            b"Event: Hangup\r\nUniqueidX: 9\r\nUniqueid : 8\r\nuniqueid: 7\r\n\
              Uniqueid:1.1\r\nUniqueid: 1.2\r\nLinkedid:  2.1\r\nChannel: PJSIP/1-1\r\n\
              Cause: 16\r\n\r\n\
              Uniqueid: 3.1\r\nEvent: Newstate\r\nChannel: PJSIP/2-2\r\nChannelState: 6\r\n\
              Linkedid: 3.1\r\n\r\n\
              Event: BridgeEnter\nBridgeUniqueid: b-1\nChannel: x\nUniqueid: 4.1\nLinkedid:\n\n\
              Event: CoreShowChannel\r\nChannel: PJSIP/3-3\r\nUniqueid: 5.1\r\nLinkedid: 5.1\r\n\
              ChannelState: 6\r\nBridgeId: b-2\r\nDuration: 00:01:05\r\n\r\n"
                .to_vec(),
        ));
        // Lines up to 512 bytes (the fixtures' longest is 425): a frame longer than that is
        // read line by line and indexed, shorter ones stay lazy.
        let limits = Limits {
            max_line: 512,
            ..Limits::default()
        };
        let mut n_indexed = 0;
        for (name, bytes) in &inputs {
            let lazy = translations(bytes, Limits::default());
            let with_index = translations(bytes, limits);
            assert!(lazy.iter().all(|(l, _)| *l), "{name}: lazy frames");
            n_indexed += with_index.iter().filter(|(l, _)| !*l).count();
            assert_eq!(lazy.len(), with_index.len(), "{name}");
            for (a, b) in lazy.iter().zip(&with_index) {
                assert_eq!(a.1, b.1, "{name}");
            }
            // Slot by slot, the search against reading every line.
            let mut decoder = Decoder::new(Limits::default());
            decoder.push(bytes);
            while let Some(item) = decoder.next_item() {
                if let Item::Frame(frame) = item {
                    let (searched, read) = (Fields::read(&frame), Fields::read_lines(&frame));
                    assert!(matches!(searched.source, Source::Lazy), "{name}");
                    for i in 0..N_FIELDS {
                        assert_eq!(searched.raw_at(i), read.raw_at(i), "{name}: {:?}", frame);
                    }
                }
            }
        }
        assert!(n_indexed > 500, "{n_indexed} frames compared with an index");
    }

    #[test]
    fn every_header_name_finds_its_slot_and_nothing_else_does() {
        for (name, f) in NAMES {
            assert_eq!(slot(name), Some(f), "{}", String::from_utf8_lossy(name));
        }
        for name in [
            &b""[..],
            b"E",
            b"Eve",
            b"Event",
            b"Privilege",
            b"ChannelStateDesc",
            b"channel",
            b"Channel ",
            b"ConnectedLineName",
            b"TransfererUniqueidX",
            b"SecondTransfererUniqueid2",
        ] {
            assert_eq!(slot(name), None, "{}", String::from_utf8_lossy(name));
        }
        // The run-time key is the compile-time one, for every length; longer names have none.
        let text = b"SecondTransfererLinkedidAndSomeMoreBytes";
        for len in 0..text.len() {
            let key = name_key(&text[..len]);
            if len <= MAX_NAME {
                assert_eq!(key, Some(name_key_const(&text[..len])), "{len}");
            } else {
                assert_eq!(key, None, "{len}");
            }
        }
        // The key compares every byte: any one byte changed is no known name.
        for (name, _) in NAMES {
            for at in 0..name.len() {
                let mut other = name.to_vec();
                other[at] ^= 0x20;
                if !NAMES.iter().any(|(n, _)| *n == &other[..]) {
                    assert_eq!(slot(&other), None, "{}", String::from_utf8_lossy(&other));
                }
            }
        }
    }

    #[test]
    fn ignores_noise_without_reading_it() {
        for text in [
            "Event: Cdr\nUniqueID: 1.1\n",
            "Event: Newexten\nApplication: Playback\nUniqueid: 1.1\nLinkedid: 1.1\n",
            "Event: VarSet\nVariable: BRIDGEPEER\nValue: x\nUniqueid: 1.1\n",
            "Response: Success\nActionID: 1\n",
            "Event: Hangup\nChannel: PJSIP/1-1\n",
        ] {
            assert_eq!(translate_frame(&frame(text)), None, "{text}");
        }
    }

    #[test]
    fn values_of_frames_with_and_without_valid_utf8() {
        // A UTF-8 frame: values are cut from the frame's text; a cp1251 `CallerIDName` makes
        // the frame invalid, and then each value is checked alone (the name lossily).
        for (name, expected) in [
            ("Иван".as_bytes().to_vec(), "Иван".to_owned()),
            (vec![0xc8, 0xe2, 0xe0, 0xed], "\u{fffd}".repeat(4)),
        ] {
            let mut bytes = b"Event: Newchannel\r\nChannel: PJSIP/trunk-01\r\nChannelState: 4\r\n\
                CallerIDNum: +15551230001\r\nCallerIDName: "
                .to_vec();
            bytes.extend_from_slice(&name);
            bytes.extend_from_slice(
                b"\r\nContext: from-trunk\r\nExten: 5550100\r\nUniqueid: 1.1\r\n\
                  Linkedid: 1.1\r\nTimestamp: 1795334968.271370\r\n\r\n",
            );
            let f = Frame::parse(&bytes).expect("frame parses");
            let Some((
                PbxEvent::ChannelCreated {
                    chan,
                    state,
                    caller_num,
                    caller_name,
                    context,
                    exten,
                },
                at,
            )) = translate_timed(&f.as_ref())
            else {
                panic!("not a Newchannel");
            };
            assert_eq!(caller_name.as_deref(), Some(expected.as_str()));
            assert_eq!(
                (
                    chan.name.as_str(),
                    chan.uniqueid.as_str(),
                    chan.linkedid.as_str()
                ),
                ("PJSIP/trunk-01", "1.1", "1.1")
            );
            assert_eq!(state, ChannelState::Ring);
            assert_eq!(caller_num.as_deref(), Some("+15551230001"));
            assert_eq!(
                (context.as_str(), exten.as_str()),
                ("from-trunk", "5550100")
            );
            assert_eq!(at.map(|t| t.as_micros()), Some(1_795_334_968_271_370));
        }
    }

    #[test]
    fn translates_a_dial_and_a_resync_item() {
        let f = frame(
            "Event: DialBegin\nChannel: PJSIP/trunk-01\nCallerIDNum: +15551230001\nUniqueid: 1.1\n\
             Linkedid: 1.1\nDestChannel: PJSIP/101-02\nDestCallerIDNum: <unknown>\n\
             DestUniqueid: 1.2\nDestLinkedid: 1.1\nDialString: 101\nTimestamp: 1795334968.271370\n",
        );
        let got = translate_frame(&f).expect("DialBegin translates");
        let PbxEvent::DialBegin {
            caller,
            caller_num,
            dest,
            dial_string,
        } = got
        else {
            panic!("wrong event: {got:?}");
        };
        assert_eq!(caller.map(|c| c.name), Some("PJSIP/trunk-01".to_owned()));
        assert_eq!(caller_num.as_deref(), Some("+15551230001"));
        assert_eq!(
            (dest.uniqueid.as_str(), dest.linkedid.as_str()),
            ("1.2", "1.1")
        );
        assert_eq!(dial_string, "101");
        assert_eq!(
            timestamp(&f.as_ref()).map(|t| t.as_micros()),
            Some(1_795_334_968_271_370)
        );

        let item = frame(
            "Event: CoreShowChannel\nActionID: r1\nChannel: PJSIP/101-02\nChannelState: 6\n\
             Uniqueid: 1.2\nLinkedid: 1.1\nContext: from-internal\nExten: 101\n\
             BridgeId: b-1\nDuration: 01:02:03\n",
        );
        let PbxEvent::Resynced { channels } = resync_event([&item]) else {
            panic!("not a resync");
        };
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].age_s, 3723);
        assert_eq!(channels[0].state, ChannelState::Up);
        assert_eq!(channels[0].bridge.as_ref().map(|b| b.as_str()), Some("b-1"));
    }
}
