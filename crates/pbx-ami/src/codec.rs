//! The AMI wire codec: an incremental, zero-copy decoder for the byte stream Asterisk
//! sends, and an encoder for the actions we send back.
//!
//! What it is: pure code over bytes, no I/O. Bytes are appended as they arrive from the
//! socket (split anywhere, even between `\r` and `\n`), and complete items are handed
//! out as views into the decoder's own buffer ([`Item`], [`FrameRef`]). A normal frame that
//! arrives whole is found by two vectorised searches for its end and its lines are read only
//! when asked (a lazy frame); any other frame's headers are indexed while its lines are
//! scanned. [`FrameRef::to_owned`] makes a [`Frame`] that owns its bytes in a single
//! allocation.
//!
//! What it is not: it knows nothing about actions, events or calls beyond the framing
//! rules, except for the legacy `Response: Follows` shape (below) which changes framing.
//!
//! # Framing rules
//!
//! * Lines end with `\r\n` or a bare `\n` (a trailing `\r` is stripped).
//! * A frame is a block of `Name: value` lines ended by an empty line. Exactly one space
//!   after the colon is removed from the value; anything else is kept byte for byte (values
//!   are not required to be UTF-8: a cp1251 `CallerIDName` stays as sent).
//! * Empty lines between frames are ignored.
//! * A line without a colon at a frame boundary that looks like a banner
//!   (`Asterisk Call Manager/11.0.0`, or any `name/1.2.3`) is an [`Item::Banner`]. Asterisk
//!   sends it once, first, with no empty line after it; accepting it at any frame boundary
//!   lets a transparent proxy restart the stream without confusing us.
//! * Any other line without a colon at a frame boundary starts a garbage block: it is
//!   reported once as [`DecodeError::Garbage`] and skipped up to the next empty line.
//! * A line without a colon *inside* a frame (after a valid first header) is kept as a
//!   header with an empty name and the whole line as its value; [`FrameRef::body_lines`]
//!   returns such lines. Dropping them would lose data, rejecting the frame would lose the
//!   event.
//! * Legacy `Response: Follows` (the `Command` action on Asterisk 13 and older): after the
//!   `Response` line, `Privilege:` and `ActionID:` lines are headers, then every line (empty
//!   ones included) is a body line up to the line ending in `--END COMMAND--`, which ends the
//!   frame. Text before the marker on that line is the last body line. The empty line that
//!   follows the marker is skipped as an inter-frame blank line.
//!
//! # Limits
//!
//! [`Limits`] bounds a line, a frame and the header count. A violation is reported once as
//! an [`Item::Error`] and the rest of the offending frame is discarded as it arrives, up to
//! the next empty line, without being buffered. Memory stays bounded by the limits plus
//! whatever the caller pushes in one call; nothing from the network can cause a panic.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use memchr::{memchr, memmem};

/// Bounds that keep a hostile or broken peer from making the decoder buffer without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line in bytes, without its line ending.
    pub max_line: usize,
    /// Largest frame in bytes, line endings and the terminating empty line included.
    pub max_frame: usize,
    /// Most header lines (body lines included) in one frame.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 8 KiB lines, 64 KiB frames, 256 headers. Real Asterisk 22 frames are below 2 KiB,
    /// but a `Command` response with many `Output:` lines or a channel with many
    /// `ChanVariable:` lines can be far larger than a typical event.
    fn default() -> Self {
        Limits {
            max_line: 8 * 1024,
            max_frame: 64 * 1024,
            max_headers: 256,
        }
    }
}

/// Why some input was skipped. Decoding continues after it, at the next frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A line grew beyond [`Limits::max_line`]; the rest of its frame was skipped.
    #[error("AMI line at stream offset {offset} is longer than {limit} bytes; frame skipped")]
    LineTooLong { offset: u64, limit: usize },
    /// A frame grew beyond [`Limits::max_frame`]; the rest of it was skipped.
    #[error("AMI frame at stream offset {offset} is larger than {limit} bytes; frame skipped")]
    FrameTooLarge { offset: u64, limit: usize },
    /// A frame has more than [`Limits::max_headers`] lines; the rest of it was skipped.
    #[error("AMI frame at stream offset {offset} has more than {limit} headers; frame skipped")]
    TooManyHeaders { offset: u64, limit: usize },
    /// A block that does not start with a `Name: value` line (nor is a banner).
    #[error("garbage at AMI stream offset {offset} (starts with {preview:?}); block skipped")]
    Garbage { offset: u64, preview: String },
}

impl DecodeError {
    /// Stream offset (bytes since the decoder started) of the frame or line concerned.
    pub fn offset(&self) -> u64 {
        match self {
            DecodeError::LineTooLong { offset, .. }
            | DecodeError::FrameTooLarge { offset, .. }
            | DecodeError::TooManyHeaders { offset, .. }
            | DecodeError::Garbage { offset, .. } => *offset,
        }
    }
}

/// One decoded item, borrowing the decoder's buffer until the next call on the decoder.
#[derive(Debug)]
pub enum Item<'a> {
    /// The greeting line, e.g. `Asterisk Call Manager/11.0.0`, without the line ending.
    Banner(&'a [u8]),
    /// A complete frame.
    Frame(FrameRef<'a>),
    /// Input that was reported and skipped.
    Error(DecodeError),
}

/// An [`Item`] that owns its data, for collecting items or sending them between tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedItem {
    Banner(Vec<u8>),
    Frame(Frame),
    Error(DecodeError),
}

/// Byte offsets of one header line inside its frame's raw bytes.
///
/// The name is `raw[line_start..name_end]`, the value `raw[value_start..value_end]`. A line
/// without a colon has `name_end == line_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    line_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
}

const SPAN_BYTES: usize = 16;

impl Span {
    fn write_to(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.line_start.to_le_bytes());
        out[4..8].copy_from_slice(&self.name_end.to_le_bytes());
        out[8..12].copy_from_slice(&self.value_start.to_le_bytes());
        out[12..16].copy_from_slice(&self.value_end.to_le_bytes());
    }

    fn read_from(bytes: &[u8]) -> Span {
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i * 4..i * 4 + 4]);
            u32::from_le_bytes(b)
        };
        Span {
            line_start: word(0),
            name_end: word(1),
            value_start: word(2),
            value_end: word(3),
        }
    }
}

/// How a frame's header index is stored: borrowed from the decoder, or encoded after the
/// raw bytes inside an owned [`Frame`] (so that an owned frame costs one allocation).
///
/// `Lazy`: no index at all. A normal frame (not `Response: Follows`) that the decoder found
/// complete and within the limits in one search for its empty line; its headers are read
/// from the raw bytes by the same line rules when asked for. Most consumers look at one or
/// two headers of most frames (the event name, an ActionID), so indexing every line of
/// every frame up front would be wasted work.
#[derive(Clone, Copy)]
enum Spans<'a> {
    Slice(&'a [Span]),
    Encoded(&'a [u8]),
    Lazy,
}

impl Spans<'_> {
    /// Number of indexed lines (0 for `Lazy`).
    fn len(&self) -> usize {
        match self {
            Spans::Slice(s) => s.len(),
            Spans::Encoded(b) => b.len() / SPAN_BYTES,
            Spans::Lazy => 0,
        }
    }

    fn at(&self, i: usize) -> Span {
        match self {
            Spans::Slice(s) => s[i],
            Spans::Encoded(b) => Span::read_from(&b[i * SPAN_BYTES..(i + 1) * SPAN_BYTES]),
            Spans::Lazy => unreachable!("a lazy frame has no index"),
        }
    }
}

/// The headers of a frame, from its index or, for a lazy frame, from its lines.
#[derive(Clone)]
pub struct Headers<'a> {
    raw: &'a [u8],
    spans: Spans<'a>,
    /// Index of the next span, or byte position of the next line for a lazy frame.
    next: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.raw;
        if let Spans::Lazy = self.spans {
            let start = self.next;
            let (colon, newline) = find_line(raw, start)?;
            let mut line_end = newline;
            if line_end > start && raw[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            if line_end == start {
                // The frame's empty line.
                self.next = raw.len();
                return None;
            }
            self.next = newline + 1;
            return Some(match colon {
                Some(c) => {
                    let value_start = if c + 1 < line_end && raw[c + 1] == b' ' {
                        c + 2
                    } else {
                        c + 1
                    };
                    (&raw[start..c], &raw[value_start..line_end])
                }
                None => (&raw[start..start], &raw[start..line_end]),
            });
        }
        if self.next >= self.spans.len() {
            return None;
        }
        let s = self.spans.at(self.next);
        self.next += 1;
        Some((
            &raw[s.line_start as usize..s.name_end as usize],
            &raw[s.value_start as usize..s.value_end as usize],
        ))
    }
}

/// A view of one frame in the decoder's buffer (or in a [`Frame`]).
#[derive(Clone, Copy)]
pub struct FrameRef<'a> {
    raw: &'a [u8],
    spans: Spans<'a>,
}

impl<'a> FrameRef<'a> {
    /// Value of the first header called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// Values of every header called `name`, in order (`ChanVariable`, `Output`, `Variable`).
    pub fn get_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let name = name.as_bytes();
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// [`FrameRef::get`] as text; invalid UTF-8 (e.g. a cp1251 `CallerIDName`) is replaced
    /// with U+FFFD for display. Use [`FrameRef::get`] when the exact bytes matter.
    pub fn get_str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).map(String::from_utf8_lossy)
    }

    /// Every `(name, value)` pair in wire order. Body lines have an empty name.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            raw: self.raw,
            spans: self.spans,
            next: 0,
        }
    }

    /// Calls `f(name, value)` for every header in wire order, like [`FrameRef::headers`].
    ///
    /// For a lazy frame this reads the whole frame in one pass of eight bytes at a time,
    /// finding every line end and colon on the way, instead of starting a new search at
    /// each line: cheaper when most lines are wanted (translation reads every header of
    /// the frames it keeps).
    #[inline]
    pub fn for_each_header(&self, mut f: impl FnMut(&'a [u8], &'a [u8])) {
        match self.spans {
            Spans::Lazy => for_each_lazy_line(self.raw, f),
            _ => self.headers().for_each(|(name, value)| f(name, value)),
        }
    }

    /// Whether the frame has no header index (see `Spans::Lazy`): a normal frame, complete
    /// in one piece, whose raw bytes end with its empty line and whose headers are exactly
    /// its lines up to it.
    pub(crate) fn is_lazy(&self) -> bool {
        matches!(self.spans, Spans::Lazy)
    }

    /// Lines that are not `Name: value` headers: the output of a legacy `Response: Follows`,
    /// or stray colon-less lines inside a frame.
    pub fn body_lines(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.headers().filter(|(n, _)| n.is_empty()).map(|(_, v)| v)
    }

    /// Number of header lines, body lines included.
    pub fn header_count(&self) -> usize {
        match self.spans {
            Spans::Lazy => self.headers().count(),
            _ => self.spans.len(),
        }
    }

    /// Value of `Event:`.
    #[inline]
    pub fn event(&self) -> Option<&'a [u8]> {
        // Asterisk puts `Event` first: read that line alone when so, which is what the search
        // below would find first (a first line named `Event` is the first `Event` header).
        if let Some(rest) = self.raw.strip_prefix(b"Event:") {
            if let Some(newline) = first_newline(rest) {
                let mut line = &rest[..newline];
                if let Some(l) = line.strip_suffix(b"\r") {
                    line = l;
                }
                return Some(line.strip_prefix(b" ").unwrap_or(line));
            }
        }
        self.get("Event")
    }

    /// Value of `Response:`.
    pub fn response(&self) -> Option<&'a [u8]> {
        self.get("Response")
    }

    /// Value of `ActionID:`.
    pub fn action_id(&self) -> Option<&'a [u8]> {
        self.get("ActionID")
    }

    /// The frame's bytes exactly as received, from its first line up to and including the
    /// line ending of its terminating empty line (or of the `--END COMMAND--` line).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// An owned copy (one allocation).
    pub fn to_owned(&self) -> Frame {
        let mut data = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut data);
        Frame {
            buf: Arc::from(data),
            start: 0,
            raw_len: self.raw.len(),
            spans_len: self.spans.len() * SPAN_BYTES,
            lazy: matches!(self.spans, Spans::Lazy),
        }
    }

    fn encoded_len(&self) -> usize {
        self.raw.len() + self.spans.len() * SPAN_BYTES
    }

    /// Appends the raw bytes, then the encoded header index, to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        let raw_len = self.raw.len();
        let n = self.spans.len();
        let at = out.len();
        out.extend_from_slice(self.raw);
        out.resize(at + raw_len + n * SPAN_BYTES, 0);
        for (i, slot) in out[at + raw_len..].chunks_exact_mut(SPAN_BYTES).enumerate() {
            self.spans.at(i).write_to(slot);
        }
    }
}

impl fmt::Debug for FrameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in self.headers() {
            list.entry(&format_args!(
                "{}: {}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            ));
        }
        list.finish()
    }
}

/// An owned frame: the raw bytes and the header index, in a shared immutable buffer.
///
/// A frame made by [`FrameRef::to_owned`] has a buffer of its own. The frames of one
/// [`FrameBatch`] (the AMI client delivers one per socket read) share one buffer: one
/// allocation and one copy per batch instead of per frame. Keeping any frame of a batch
/// keeps that batch's buffer alive; copy it with [`Frame::detach`] to store it for long.
#[derive(Clone)]
pub struct Frame {
    buf: Arc<[u8]>,
    start: usize,
    raw_len: usize,
    spans_len: usize,
    /// No index is stored: see `Spans::Lazy`.
    lazy: bool,
}

impl PartialEq for Frame {
    /// Same bytes and same headers (however each side stores its index).
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw() && self.headers().eq(other.headers())
    }
}

impl Eq for Frame {}

/// Builds frames that share one buffer; see [`Frame`].
#[derive(Debug, Default)]
pub struct FrameBatch {
    buf: Vec<u8>,
    /// Start, raw length, header index length (bytes) and laziness of each frame in `buf`.
    frames: Vec<(usize, usize, usize, bool)>,
}

impl FrameBatch {
    /// Appends a copy of `frame`.
    pub fn push(&mut self, frame: &FrameRef<'_>) {
        let start = self.buf.len();
        self.buf.reserve(frame.encoded_len());
        frame.encode_into(&mut self.buf);
        self.frames.push((
            start,
            frame.raw.len(),
            frame.spans.len() * SPAN_BYTES,
            matches!(frame.spans, Spans::Lazy),
        ));
    }

    /// Number of frames pushed since the last [`FrameBatch::finish`].
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was pushed since the last [`FrameBatch::finish`].
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames pushed so far, sharing one buffer; the builder is empty again.
    pub fn finish(&mut self) -> Vec<Frame> {
        let buf: Arc<[u8]> = Arc::from(self.buf.as_slice());
        self.buf.clear();
        let frames = self
            .frames
            .drain(..)
            .map(|(start, raw_len, spans_len, lazy)| Frame {
                buf: Arc::clone(&buf),
                start,
                raw_len,
                spans_len,
                lazy,
            })
            .collect();
        frames
    }
}

impl Frame {
    /// Decode exactly one frame from `text` (a trailing empty line is optional), e.g. in
    /// tests: `Frame::parse(b"Event: Hangup\r\nCause: 16\r\n")`.
    pub fn parse(text: &[u8]) -> Result<Frame, DecodeError> {
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(text);
        decoder.push(b"\r\n\r\n");
        match decoder.next_item() {
            Some(Item::Frame(frame)) => Ok(frame.to_owned()),
            Some(Item::Error(e)) => Err(e),
            Some(Item::Banner(b)) => Err(DecodeError::Garbage {
                offset: 0,
                preview: preview(b),
            }),
            None => Err(DecodeError::Garbage {
                offset: 0,
                preview: String::new(),
            }),
        }
    }

    /// A borrowed view with every accessor.
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            raw: self.raw(),
            spans: if self.lazy {
                Spans::Lazy
            } else {
                Spans::Encoded(self.spans_bytes())
            },
        }
    }

    /// A copy with a buffer of its own, so that keeping it does not keep the rest of its
    /// batch in memory.
    pub fn detach(&self) -> Frame {
        self.as_ref().to_owned()
    }

    fn spans_bytes(&self) -> &[u8] {
        let at = self.start + self.raw_len;
        &self.buf[at..at + self.spans_len]
    }

    /// See [`FrameRef::get`].
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.as_ref().get(name)
    }

    /// See [`FrameRef::get_all`].
    pub fn get_all<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.as_ref().get_all(name)
    }

    /// See [`FrameRef::get_str`].
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.as_ref().get_str(name)
    }

    /// See [`FrameRef::headers`].
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.as_ref().headers()
    }

    /// See [`FrameRef::body_lines`].
    pub fn body_lines(&self) -> impl Iterator<Item = &[u8]> {
        self.as_ref().body_lines()
    }

    /// See [`FrameRef::header_count`].
    pub fn header_count(&self) -> usize {
        self.as_ref().header_count()
    }

    /// See [`FrameRef::event`].
    pub fn event(&self) -> Option<&[u8]> {
        self.as_ref().event()
    }

    /// See [`FrameRef::response`].
    pub fn response(&self) -> Option<&[u8]> {
        self.as_ref().response()
    }

    /// See [`FrameRef::action_id`].
    pub fn action_id(&self) -> Option<&[u8]> {
        self.as_ref().action_id()
    }

    /// See [`FrameRef::raw`].
    pub fn raw(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.raw_len]
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl Item<'_> {
    /// An owned copy of this item.
    pub fn to_owned(&self) -> OwnedItem {
        match self {
            Item::Banner(b) => OwnedItem::Banner(b.to_vec()),
            Item::Frame(f) => OwnedItem::Frame(f.to_owned()),
            Item::Error(e) => OwnedItem::Error(e.clone()),
        }
    }
}

/// Where the decoder is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: skipping blank lines, waiting for a banner or a first header.
    Boundary,
    /// Inside a normal frame, which ends at an empty line.
    Frame,
    /// Inside a legacy `Response: Follows` frame; `in_body` once the headers are over.
    Follows { in_body: bool },
    /// Discarding the rest of a bad frame up to the next empty line.
    Skip(SkipLine),
}

/// Progress through the current line while skipping, kept because skipped bytes are
/// thrown away as they arrive and a line (or its `\r\n`) may be split across pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SkipLine {
    AtStart,
    SawCr,
    Mid,
}

/// Incremental AMI decoder. See the module docs for the framing rules.
///
/// Two ways to feed it: [`Decoder::push`] copies a slice in; [`Decoder::spare`] plus
/// [`Decoder::commit`] let a socket read go straight into the buffer.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Initialised storage; `buf[start..end]` holds undecoded bytes, `buf[end..]` is spare.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Next line to look at; `start <= scan <= end`.
    scan: usize,
    state: State,
    /// Header index of the frame being assembled, offsets relative to `start`.
    spans: Vec<Span>,
    /// Stream offset of `buf[0]`, for error messages.
    base_offset: u64,
    /// Searchers for the end of a frame: "\n\r\n" and the bare-LF "\n\n".
    crlf_end: memmem::Finder<'static>,
    lf_end: memmem::Finder<'static>,
}

/// Spare bytes made available when the buffer has to grow.
const MIN_READ: usize = 16 * 1024;

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scan: 0,
            state: State::Boundary,
            spans: Vec::new(),
            base_offset: 0,
            crlf_end: memmem::Finder::new(b"\n\r\n").into_owned(),
            lf_end: memmem::Finder::new(b"\n\n").into_owned(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forget all buffered input, e.g. when a new connection starts.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scan = 0;
        self.state = State::Boundary;
        self.spans.clear();
        self.base_offset = 0;
    }

    /// Append bytes read from the socket (any split, anywhere, even mid-`\r\n`).
    pub fn push(&mut self, bytes: &[u8]) {
        let spare = self.spare(bytes.len());
        spare[..bytes.len()].copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// At least `min` writable bytes at the end of the buffer (more if the buffer already
    /// has room). Write into them, then call [`Decoder::commit`] with the count written.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.buf.len() - self.end < min {
            self.compact();
            if self.buf.len() - self.end < min {
                let want = (self.end + min).max(self.end + MIN_READ);
                self.buf.resize(want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Mark `n` bytes written into [`Decoder::spare`] as received.
    ///
    /// `n` beyond the spare space is clamped: that is a caller bug, but not one worth a panic.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Bytes received but not yet handed out or discarded.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Size of the allocated buffer (for checking that memory stays bounded).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Move undecoded bytes to the front of the buffer, and give back memory after a
    /// single oversized push.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base_offset += self.start as u64;
            self.end -= self.start;
            self.scan -= self.start;
            self.start = 0;
        }
        let keep = (2 * self.limits.max_frame).max(MIN_READ);
        if self.buf.len() > keep && self.end <= keep / 2 {
            self.buf.truncate(keep);
            self.buf.shrink_to_fit();
        }
    }

    fn offset_of(&self, pos: usize) -> u64 {
        self.base_offset + pos as u64
    }

    /// Report `error` and discard the current frame; `pos` is where skipping resumes.
    fn fail(&mut self, error: DecodeError, pos: usize, skip: SkipLine) -> DecodeError {
        self.start = pos;
        self.scan = pos;
        self.spans.clear();
        self.state = State::Skip(skip);
        error
    }

    /// Discard bytes up to and including the next empty line. True once it is found.
    fn skip_to_boundary(&mut self, mut line: SkipLine) -> bool {
        let mut pos = self.scan;
        while let Some(i) = memchr(b'\n', &self.buf[pos..self.end]) {
            let segment = &self.buf[pos..pos + i];
            let empty = match line {
                SkipLine::AtStart => segment.is_empty() || segment == b"\r",
                SkipLine::SawCr => segment.is_empty(),
                SkipLine::Mid => false,
            };
            pos += i + 1;
            if empty {
                self.start = pos;
                self.scan = pos;
                self.state = State::Boundary;
                return true;
            }
            line = SkipLine::AtStart;
        }
        let rest = &self.buf[pos..self.end];
        line = match (line, rest) {
            (line, []) => line,
            (SkipLine::AtStart, b"\r") => SkipLine::SawCr,
            _ => SkipLine::Mid,
        };
        self.start = self.end;
        self.scan = self.end;
        self.state = State::Skip(line);
        false
    }

    /// Next complete item, borrowing the decoder's buffer (zero-copy). `None` means more
    /// bytes are needed; everything pushed so far has then been decoded or discarded,
    /// except at most one partial frame (bounded by the limits).
    pub fn next_item(&mut self) -> Option<Item<'_>> {
        loop {
            if let State::Skip(line) = self.state {
                if !self.skip_to_boundary(line) {
                    return None;
                }
            }
            if self.state == State::Frame {
                if let Some(next) = self.complete_frame_end() {
                    return Some(self.finish_lazy(next));
                }
            }
            let line_start = self.scan;
            let Some((colon, newline)) = find_line(&self.buf[..self.end], line_start) else {
                return self.check_partial().map(Item::Error);
            };
            let mut line_end = newline;
            if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let next = newline + 1;
            if line_end - line_start > self.limits.max_line {
                let error = DecodeError::LineTooLong {
                    offset: self.offset_of(self.frame_or_line_start(line_start)),
                    limit: self.limits.max_line,
                };
                return Some(Item::Error(self.fail(error, next, SkipLine::AtStart)));
            }
            match self.state {
                State::Boundary => {
                    if line_end == line_start {
                        self.start = next;
                        self.scan = next;
                        continue;
                    }
                    let line = &self.buf[line_start..line_end];
                    // A colon found after the line's '\r' is not part of the line.
                    match colon.filter(|&c| c < line_end).map(|c| c - line_start) {
                        None if looks_like_banner(line) => {
                            self.start = next;
                            self.scan = next;
                            return Some(Item::Banner(&self.buf[line_start..line_end]));
                        }
                        None => {
                            let error = DecodeError::Garbage {
                                offset: self.offset_of(line_start),
                                preview: preview(line),
                            };
                            return Some(Item::Error(self.fail(error, next, SkipLine::AtStart)));
                        }
                        Some(colon) => {
                            let follows = line[..colon].eq_ignore_ascii_case(b"Response")
                                && value_after(line, colon).eq_ignore_ascii_case(b"Follows");
                            self.spans.clear();
                            self.start = line_start;
                            self.add_header(line_start, line_end, Some(line_start + colon));
                            self.state = if follows {
                                State::Follows { in_body: false }
                            } else {
                                State::Frame
                            };
                            self.scan = next;
                        }
                    }
                }
                State::Frame => {
                    if line_end == line_start {
                        return Some(self.finish_frame(next));
                    }
                    if let Some(error) = self.check_frame(next) {
                        return Some(Item::Error(error));
                    }
                    self.add_header(line_start, line_end, colon);
                    self.scan = next;
                }
                State::Follows { in_body } => {
                    if let Some(error) = self.check_frame(next) {
                        return Some(Item::Error(error));
                    }
                    const END: &[u8] = b"--END COMMAND--";
                    let line = &self.buf[line_start..line_end];
                    if line.ends_with(END) {
                        if line.len() > END.len() {
                            self.add_header(line_start, line_end - END.len(), None);
                        }
                        return Some(self.finish_frame(next));
                    }
                    let colon = colon.filter(|&c| {
                        let name = &self.buf[line_start..c];
                        !in_body
                            && (name.eq_ignore_ascii_case(b"Privilege")
                                || name.eq_ignore_ascii_case(b"ActionID"))
                    });
                    self.state = State::Follows {
                        in_body: colon.is_none(),
                    };
                    self.add_header(line_start, line_end, colon);
                    self.scan = next;
                }
                State::Skip(_) => unreachable!("handled at the top of the loop"),
            }
        }
    }

    /// The hot path, for a normal frame whose first line was read: the end of the frame
    /// (after its empty line) when the frame is complete in the buffer and certainly within
    /// the limits. Two vectorised substring searches instead of a look at every line; the
    /// lines are read later, only if someone asks (see `Spans::Lazy`). `None` leaves the
    /// frame to the line-by-line path, which waits for more bytes or reports the limit.
    fn complete_frame_end(&self) -> Option<usize> {
        // `scan` starts a line inside the frame, so `buf[scan - 1]` ends the previous one;
        // an empty line is "\r\n" or "\n" right after a '\n'.
        let from = self.scan.checked_sub(1)?;
        let hay = &self.buf[from..self.end];
        let crlf = self.crlf_end.find(hay);
        let lf = self.lf_end.find(&hay[..crlf.map_or(hay.len(), |p| p + 1)]);
        let next = match (lf, crlf) {
            (Some(p), _) => from + p + 2,
            (None, Some(p)) => from + p + 3,
            (None, None) => return None,
        };
        let len = next - self.start;
        // A frame no longer than a line cannot hold an over-long line; one with fewer bytes
        // than two per header line cannot hold too many of them.
        if len > self.limits.max_frame || len > self.limits.max_line {
            return None;
        }
        if len / 2 > self.limits.max_headers {
            // Counting every byte here cost more than the rest of the decoder for frames of
            // more than 512 bytes; a vectorised search that stops at the first newline past
            // the limit asks the same question. The last newline ends the empty line.
            let raw = &self.buf[self.start..next];
            // (`count` is vectorised in memchr, unlike stepping the iterator.)
            if memchr::memchr_iter(b'\n', raw).count() > self.limits.max_headers + 1 {
                return None;
            }
        }
        Some(next)
    }

    /// The frame that started at `self.start` is complete up to `next`; its lines are read
    /// on demand.
    fn finish_lazy(&mut self, next: usize) -> Item<'_> {
        let frame_start = self.start;
        self.start = next;
        self.scan = next;
        self.state = State::Boundary;
        self.spans.clear();
        Item::Frame(FrameRef {
            raw: &self.buf[frame_start..next],
            spans: Spans::Lazy,
        })
    }

    fn frame_or_line_start(&self, line_start: usize) -> usize {
        match self.state {
            State::Boundary => line_start,
            _ => self.start,
        }
    }

    /// Enforce the frame and header limits before adding a line that ends at `next`.
    fn check_frame(&mut self, next: usize) -> Option<DecodeError> {
        if next - self.start > self.limits.max_frame {
            let error = DecodeError::FrameTooLarge {
                offset: self.offset_of(self.start),
                limit: self.limits.max_frame,
            };
            return Some(self.fail(error, next, SkipLine::AtStart));
        }
        if self.spans.len() >= self.limits.max_headers {
            let error = DecodeError::TooManyHeaders {
                offset: self.offset_of(self.start),
                limit: self.limits.max_headers,
            };
            return Some(self.fail(error, next, SkipLine::AtStart));
        }
        None
    }

    /// No complete line is buffered: enforce the limits on what is, so that a peer that
    /// never sends a newline cannot make us buffer without end.
    fn check_partial(&mut self) -> Option<DecodeError> {
        let partial_line = self.end - self.scan;
        if partial_line > self.limits.max_line + 1 {
            // +1: the line may still end in "\r\n", whose '\r' is not part of the line.
            let error = DecodeError::LineTooLong {
                offset: self.offset_of(self.frame_or_line_start(self.scan)),
                limit: self.limits.max_line,
            };
            let end = self.end;
            return Some(self.fail(error, end, SkipLine::Mid));
        }
        if self.state != State::Boundary && self.end - self.start > self.limits.max_frame {
            let error = DecodeError::FrameTooLarge {
                offset: self.offset_of(self.start),
                limit: self.limits.max_frame,
            };
            let end = self.end;
            let line = if self.end == self.scan {
                SkipLine::AtStart
            } else if self.end - self.scan == 1 && self.buf[self.scan] == b'\r' {
                SkipLine::SawCr
            } else {
                SkipLine::Mid
            };
            return Some(self.fail(error, end, line));
        }
        if self.state == State::Boundary {
            // Nothing of a frame is held yet; let compaction drop consumed bytes.
            self.start = self.scan;
        }
        None
    }

    fn add_header(&mut self, line_start: usize, line_end: usize, colon: Option<usize>) {
        let rel = |p: usize| (p - self.start) as u32;
        let span = match colon {
            Some(colon) => {
                let value_start = if colon + 1 < line_end && self.buf[colon + 1] == b' ' {
                    colon + 2
                } else {
                    colon + 1
                };
                Span {
                    line_start: rel(line_start),
                    name_end: rel(colon),
                    value_start: rel(value_start),
                    value_end: rel(line_end),
                }
            }
            None => Span {
                line_start: rel(line_start),
                name_end: rel(line_start),
                value_start: rel(line_start),
                value_end: rel(line_end),
            },
        };
        self.spans.push(span);
    }

    /// The frame that started at `self.start` is complete up to `next` (exclusive).
    fn finish_frame(&mut self, next: usize) -> Item<'_> {
        let frame_start = self.start;
        self.start = next;
        self.scan = next;
        self.state = State::Boundary;
        if next - frame_start > self.limits.max_frame {
            // Complete but too large: nothing is left to skip.
            self.spans.clear();
            return Item::Error(DecodeError::FrameTooLarge {
                offset: self.offset_of(frame_start),
                limit: self.limits.max_frame,
            });
        }
        Item::Frame(FrameRef {
            raw: &self.buf[frame_start..next],
            spans: Spans::Slice(&self.spans),
        })
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` equal to `byte`. Bits above the lowest match may be
/// false positives (a borrow propagates only upwards from a true match), the lowest one is
/// exact: callers only use the lowest.
#[inline(always)]
fn byte_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW_BITS * u64::from(byte));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

const LOW_SEVEN_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in each byte of `word` equal to `byte`, and only there (no false positives:
/// no carry crosses a byte, unlike [`byte_mask`]).
#[inline(always)]
fn exact_byte_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW_BITS * u64::from(byte));
    !((x & LOW_SEVEN_BITS).wrapping_add(LOW_SEVEN_BITS) | x) & HIGH_BITS
}

/// The line rules of [`Headers::next`] for a lazy frame, in one pass over the frame.
struct LineScan {
    /// Start of the current line.
    line_start: usize,
    /// First colon of the current line, `usize::MAX` while none was seen.
    colon: usize,
}

impl LineScan {
    /// Handles the newlines and colons in the eight bytes at `base`; true at the empty line.
    #[inline(always)]
    fn word<'a>(
        &mut self,
        raw: &'a [u8],
        base: usize,
        word: u64,
        f: &mut impl FnMut(&'a [u8], &'a [u8]),
    ) -> bool {
        let newlines = exact_byte_mask(word, b'\n');
        let mut hits = newlines | exact_byte_mask(word, b':');
        while hits != 0 {
            let bit = 1u64 << hits.trailing_zeros();
            let at = base + (hits.trailing_zeros() / 8) as usize;
            hits ^= bit;
            if newlines & bit == 0 {
                // A colon: only the first of a line separates the name.
                if self.colon == usize::MAX {
                    self.colon = at;
                }
                continue;
            }
            let start = self.line_start;
            let mut end = at;
            if end > start && raw[end - 1] == b'\r' {
                end -= 1;
            }
            if end == start {
                return true;
            }
            self.line_start = at + 1;
            let colon = std::mem::replace(&mut self.colon, usize::MAX);
            if colon == usize::MAX {
                f(&raw[start..start], &raw[start..end]);
            } else {
                // The colon comes before this line's '\n' and is not a stripped '\r', so it
                // lies before `end`.
                let value_start = if colon + 1 < end && raw[colon + 1] == b' ' {
                    colon + 2
                } else {
                    colon + 1
                };
                f(&raw[start..colon], &raw[value_start..end]);
            }
        }
        false
    }
}

/// Every header of a lazy frame (`raw` ends with its empty line), by the rules of
/// [`Headers::next`]; a final line without a newline is not a header, as there.
///
/// One pass over the frame, eight bytes at a time, finds every line end and colon, instead
/// of a new search per line.
#[inline]
fn for_each_lazy_line<'a>(raw: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) {
    let mut scan = LineScan {
        line_start: 0,
        colon: usize::MAX,
    };
    let mut chunks = raw.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if scan.word(raw, base, word, &mut f) {
            return;
        }
        base += 8;
    }
    // The last bytes, zero-padded: a zero byte is neither a newline nor a colon.
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    scan.word(raw, base, u64::from_le_bytes(last), &mut f);
}

/// Position of the first `\n` in `bytes`, eight bytes at a time: for a short line this is
/// cheaper than a SIMD `memchr`, whose setup costs more than the line.
#[inline]
fn first_newline(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let newlines = byte_mask(
            u64::from_le_bytes(chunk.try_into().unwrap_or_default()),
            b'\n',
        );
        if newlines != 0 {
            // The lowest match of `byte_mask` is exact.
            return Some(base + (newlines.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    memchr(b'\n', chunks.remainder()).map(|i| base + i)
}

/// The line starting at `start` in `buf`: the position of its first colon (if any) and of
/// its `\n`; `None` while the line is incomplete.
///
/// Eight bytes at a time in one pass: AMI lines are short (names ~10 bytes, values ~20),
/// where a word loop without call setup beats a SIMD memchr, whose per-call overhead is
/// larger than a whole line. Reading past the line's end is fine: only the lowest match
/// of a word is used.
#[inline]
fn find_line(buf: &[u8], start: usize) -> Option<(Option<usize>, usize)> {
    let mut pos = start;
    let mut colon = None;
    while let Some(chunk) = buf.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let newlines = byte_mask(word, b'\n');
        let mut hits = newlines;
        if colon.is_none() {
            hits |= byte_mask(word, b':');
        }
        if hits != 0 {
            let first = hits.trailing_zeros() / 8;
            if chunk[first as usize] == b'\n' {
                return Some((colon, pos + first as usize));
            }
            colon = Some(pos + first as usize);
            // Bits above `first` that are left: the lowest is exact (a false positive
            // needs a true newline below it, which would be above `first` and lower).
            let above = newlines & !(2u64 << (first * 8 + 7)).wrapping_sub(1);
            if above != 0 {
                return Some((colon, pos + (above.trailing_zeros() / 8) as usize));
            }
        }
        pos += 8;
    }
    for (i, &b) in buf[pos..].iter().enumerate() {
        if b == b'\n' {
            return Some((colon, pos + i));
        }
        if b == b':' && colon.is_none() {
            colon = Some(pos + i);
        }
    }
    None
}

/// Value of a `Name: value` line whose colon is at `colon`, one leading space trimmed.
fn value_after(line: &[u8], colon: usize) -> &[u8] {
    let value = &line[colon + 1..];
    value.strip_prefix(b" ").unwrap_or(value)
}

/// `Asterisk Call Manager/11.0.0`, or any `name/1.2.3` greeting (forks, proxies).
fn looks_like_banner(line: &[u8]) -> bool {
    if line.starts_with(b"Asterisk Call Manager/") {
        return true;
    }
    let Some(slash) = line.iter().rposition(|&b| b == b'/') else {
        return false;
    };
    let (name, version) = (&line[..slash], &line[slash + 1..]);
    !name.is_empty()
        && name.iter().all(|&b| b.is_ascii_graphic() || b == b' ')
        && !version.is_empty()
        && version.contains(&b'.')
        && version.iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && version.first().is_some_and(u8::is_ascii_digit)
}

fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(32)];
    cut.escape_ascii().to_string()
}

/// Why an action could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A header name is empty or contains a colon, a space, CR or LF.
    #[error("invalid AMI header name {name:?}")]
    InvalidName { name: String },
    /// A value contains CR or LF, which would end the line (or the whole action) early and
    /// let the rest be read as extra headers or another action.
    #[error("value of AMI header {name:?} contains CR or LF")]
    InvalidValue { name: String },
}

/// Append one action to `out`:
/// `Action: X\r\nActionID: ..\r\nKey: Value\r\n...\r\n\r\n`.
///
/// Values containing CR or LF are rejected (header injection); nothing is appended then.
/// Repeated keys (several `Variable:`) are written in the given order.
pub fn encode_action(
    out: &mut Vec<u8>,
    action: &str,
    action_id: &str,
    headers: &[(&str, &str)],
) -> Result<(), EncodeError> {
    check_value("Action", action)?;
    check_value("ActionID", action_id)?;
    for (name, value) in headers {
        if name.is_empty()
            || name
                .bytes()
                .any(|b| matches!(b, b':' | b' ' | b'\r' | b'\n'))
        {
            return Err(EncodeError::InvalidName {
                name: (*name).to_string(),
            });
        }
        check_value(name, value)?;
    }
    let mut line = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    line("Action", action);
    line("ActionID", action_id);
    for (name, value) in headers {
        line(name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn check_value(name: &str, value: &str) -> Result<(), EncodeError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(EncodeError::InvalidValue {
            name: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Render every item of `input`, decoded with `limits`, one line per item, so that a
    /// test reads as input text next to the expected transcript.
    fn render_with(limits: Limits, chunks: &[&[u8]]) -> String {
        let mut decoder = Decoder::new(limits);
        let mut out = String::new();
        for chunk in chunks {
            decoder.push(chunk);
            drain_rendered(&mut decoder, &mut out);
        }
        out
    }

    fn drain_rendered(decoder: &mut Decoder, out: &mut String) {
        while let Some(item) = decoder.next_item() {
            match item {
                Item::Banner(b) => out.push_str(&format!("banner {}\n", b.escape_ascii())),
                Item::Frame(f) => {
                    let fields: Vec<String> = f
                        .headers()
                        .map(|(n, v)| format!("{}={}", n.escape_ascii(), v.escape_ascii()))
                        .collect();
                    out.push_str(&format!("frame [{}]\n", fields.join(" | ")));
                }
                Item::Error(e) => out.push_str(&format!("error {e:?}\n")),
            }
        }
    }

    fn check(input: &[u8], expect: &str) {
        assert_eq!(
            render_with(Limits::default(), &[input]),
            expect,
            "whole input"
        );
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            render_with(Limits::default(), &bytes),
            expect,
            "1-byte pushes"
        );
    }

    fn decode_all(limits: Limits, chunks: impl IntoIterator<Item = Vec<u8>>) -> Vec<OwnedItem> {
        let mut decoder = Decoder::new(limits);
        let mut items = Vec::new();
        for chunk in chunks {
            decoder.push(&chunk);
            while let Some(item) = decoder.next_item() {
                items.push(item.to_owned());
            }
        }
        items
    }

    fn header_lists(items: &[OwnedItem]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        items
            .iter()
            .map(|item| match item {
                OwnedItem::Frame(f) => f.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                other => panic!("not a frame: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn lazy_frames_read_the_same_headers_as_indexed_ones() {
        // Odd but legal lines: bare LF, no space or two spaces after the colon, colons in
        // values, a colon-less body line, a lone '\r' inside a value, an empty name.
        let input: &[u8] = b"Event: Newchannel\r\nChannel: PJSIP/101-0000002a\r\nExten:s\r\n\
            AppData:  two spaces\r\nDuration: 01:02:03\r\nstray body line\r\n: empty name\r\n\
            Value: a\rb\r\n\r\nEvent: Hangup\nCause: 16\n\nEvent: X\r\n\r\n";
        // Default limits: every frame is found in one search and read lazily.
        let lazy = decode_all(Limits::default(), [input.to_vec()]);
        assert!(lazy
            .iter()
            .all(|i| matches!(i, OwnedItem::Frame(f) if f.lazy)));
        // Lines up to 40 bytes but frames longer than that: the line-by-line path indexes.
        let limits = Limits {
            max_line: 40,
            ..Limits::default()
        };
        let indexed = decode_all(limits, [input.to_vec()]);
        assert!(matches!(&indexed[0], OwnedItem::Frame(f) if !f.lazy));
        assert_eq!(header_lists(&lazy), header_lists(&indexed));
        assert_eq!(lazy, indexed, "frames compare by bytes and headers");
        assert_eq!(header_lists(&lazy)[1].len(), 2);
        match &lazy[0] {
            OwnedItem::Frame(f) => {
                assert_eq!(f.header_count(), 8);
                assert_eq!(f.get("Exten"), Some(&b"s"[..]));
                assert_eq!(f.get("AppData"), Some(&b" two spaces"[..]));
                assert_eq!(f.get("Duration"), Some(&b"01:02:03"[..]));
                assert_eq!(f.get("Value"), Some(&b"a\rb"[..]));
                // An empty name reads like a body line, as with an index.
                assert_eq!(
                    f.body_lines().collect::<Vec<_>>(),
                    [&b"stray body line"[..], b"empty name"]
                );
            }
            other => panic!("not a frame: {other:?}"),
        }
        // Split anywhere, the lazy path gives the same frames.
        for seed in 1..50 {
            let chunks = random_chunks(input, 17, seed);
            assert_eq!(decode_all(Limits::default(), chunks), lazy, "seed {seed}");
        }
    }

    /// What `for_each_header` gives, collected.
    fn each_header(frame: &FrameRef<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        frame.for_each_header(|n, v| out.push((n.to_vec(), v.to_vec())));
        out
    }

    fn iter_headers(frame: &FrameRef<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        frame
            .headers()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn one_pass_line_reading_matches_the_line_iterator() {
        // Random frames over the bytes that matter to the line rules, every length from 0 to
        // well past a few words, lazy (no index) as the decoder hands them out.
        let alphabet = b"ab:: \r\n\nE";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 70) as usize;
            let mut raw = Vec::with_capacity(len + 2);
            for i in 0..len {
                let x = seed.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x2545_f491);
                raw.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if round % 2 == 0 {
                raw.extend_from_slice(b"\r\n\r\n");
            }
            let frame = FrameRef {
                raw: &raw,
                spans: Spans::Lazy,
            };
            assert_eq!(
                each_header(&frame),
                iter_headers(&frame),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
            assert_eq!(frame.event(), frame.get("Event"), "{raw:?}");
        }
    }

    #[test]
    fn one_pass_line_reading_matches_on_every_fixture() {
        let mut fixtures = shared_fixtures();
        fixtures.push((
            "odd lines".into(),
            b"Event: Newchannel\r\nExten:s\r\nAppData:  two\r\nstray\r\n: e\r\nV: a\rb\r\n\r\n\
              Event:X\n\nEvent:\r\n\r\nevent: lower\r\nEvent: second\r\n\r\n"
                .to_vec(),
        ));
        for limits in [
            Limits::default(),
            Limits {
                max_line: 40,
                ..Limits::default()
            },
        ] {
            for (name, bytes) in &fixtures {
                let mut decoder = Decoder::new(limits);
                decoder.push(bytes);
                while let Some(item) = decoder.next_item() {
                    if let Item::Frame(frame) = item {
                        assert_eq!(each_header(&frame), iter_headers(&frame), "{name}");
                        assert_eq!(frame.event(), frame.get("Event"), "{name}");
                    }
                }
            }
        }
    }

    /// Deterministic chunk sizes in `1..=max` (xorshift), so failures reproduce.
    fn random_chunks(bytes: &[u8], max: usize, mut seed: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (1 + (seed % max as u64) as usize).min(bytes.len() - pos);
            out.push(bytes[pos..pos + n].to_vec());
            pos += n;
        }
        out
    }

    fn shared_fixtures() -> Vec<(String, Vec<u8>)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ami");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("shared fixtures expected at {}: {e}", dir.display()));
        let mut files: Vec<(String, Vec<u8>)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ami"))
            .map(|p| {
                let bytes = std::fs::read(&p).expect("fixture is readable");
                (p.display().to_string(), bytes)
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= 28,
            "expected 28 .ami fixtures in {}",
            dir.display()
        );
        files
    }

    fn local_fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data")
            .join(name);
        std::fs::read(path).expect("test_data fixture is readable")
    }

    fn assert_clean_trace(name: &str, bytes: &[u8]) {
        let items = decode_all(Limits::default(), [bytes.to_vec()]);
        let blocks = memchr::memmem::find_iter(bytes, b"\r\n\r\n").count();
        assert!(
            matches!(&items[0], OwnedItem::Banner(b) if b == b"Asterisk Call Manager/11.0.0"),
            "{name}: banner first"
        );
        let errors: Vec<_> = items
            .iter()
            .filter(|i| matches!(i, OwnedItem::Error(_)))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let frames = items
            .iter()
            .filter(|i| matches!(i, OwnedItem::Frame(_)))
            .count();
        assert_eq!(frames, blocks, "{name}: one frame per block");
        assert_eq!(items.len(), blocks + 1, "{name}: banner + frames only");
        match items.last() {
            Some(OwnedItem::Frame(f)) => assert_eq!(f.response(), Some(&b"Goodbye"[..])),
            other => panic!("{name}: last item {other:?}"),
        }
        // Every frame's raw bytes, concatenated after the banner line, give back the file.
        let mut rebuilt = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
        for item in &items[1..] {
            if let OwnedItem::Frame(f) = item {
                rebuilt.extend_from_slice(f.raw());
            }
        }
        assert_eq!(rebuilt, bytes, "{name}: raw() covers the stream exactly");
    }

    #[test]
    fn every_shared_fixture_parses_cleanly() {
        for (name, bytes) in shared_fixtures() {
            assert_clean_trace(&name, &bytes);
        }
    }

    #[test]
    fn local_fixtures_parse_cleanly() {
        for name in ["queue_abandon.ami", "click_to_call.ami"] {
            assert_clean_trace(name, &local_fixture(name));
        }
    }

    #[test]
    fn random_splits_give_identical_items() {
        let mut traces: Vec<(String, Vec<u8>)> = vec![
            ("queue_abandon".into(), local_fixture("queue_abandon.ami")),
            ("click_to_call".into(), local_fixture("click_to_call.ami")),
        ];
        traces.extend(shared_fixtures().into_iter().step_by(5));
        for (name, bytes) in traces {
            let whole = decode_all(Limits::default(), [bytes.clone()]);
            for (max, seed) in [(1, 1), (2, 7), (7, 3), (64, 11), (1500, 5), (70_000, 9)] {
                let split = decode_all(Limits::default(), random_chunks(&bytes, max, seed));
                assert_eq!(whole, split, "{name}: chunks of 1..={max}");
            }
        }
    }

    #[test]
    fn real_frame_accessors() {
        let bytes = local_fixture("queue_abandon.ami");
        let items = decode_all(Limits::default(), [bytes]);
        let OwnedItem::Frame(login) = &items[1] else {
            panic!("login response second: {:?}", items[1]);
        };
        assert_eq!(login.response(), Some(&b"Success"[..]));
        assert_eq!(login.action_id(), Some(&b"login-1"[..]));
        assert_eq!(
            login.get_str("message").as_deref(),
            Some("Authentication accepted")
        );
        assert_eq!(login.event(), None);
        let abandon = items
            .iter()
            .find_map(|i| match i {
                OwnedItem::Frame(f) if f.event() == Some(b"QueueCallerAbandon") => Some(f),
                _ => None,
            })
            .expect("trace has a QueueCallerAbandon");
        assert_eq!(abandon.get("HoldTime"), Some(&b"2"[..]));
        assert_eq!(abandon.get("QUEUE"), Some(&b"hotline"[..]));
    }

    #[test]
    fn banner_then_frames_with_mixed_line_endings() {
        check(
            b"Asterisk Call Manager/11.0.0\r\nResponse: Success\nActionID: 1\r\nMessage: Authentication accepted\n\r\n",
            "banner Asterisk Call Manager/11.0.0\n\
             frame [Response=Success | ActionID=1 | Message=Authentication accepted]\n",
        );
    }

    #[test]
    fn other_banners_and_a_banner_mid_stream() {
        check(
            b"Asterisk Call Manager/1.1\r\n\r\nEvent: A\r\n\r\nAMI Proxy/2.10.3\r\nEvent: B\r\n\r\n",
            "banner Asterisk Call Manager/1.1\n\
             frame [Event=A]\n\
             banner AMI Proxy/2.10.3\n\
             frame [Event=B]\n",
        );
    }

    #[test]
    fn blank_lines_between_frames_are_ignored() {
        check(
            b"\r\n\n\r\nEvent: A\r\n\r\n\r\n\r\n\nEvent: B\n\n",
            "frame [Event=A]\nframe [Event=B]\n",
        );
    }

    #[test]
    fn one_space_after_the_colon_is_trimmed() {
        check(
            b"Event: X\r\nA:b\r\nB:  two\r\nC:\r\nD: \r\nE: a: b\r\n\r\n",
            "frame [Event=X | A=b | B= two | C= | D= | E=a: b]\n",
        );
    }

    #[test]
    fn colonless_lines_inside_a_frame_are_body_lines() {
        check(
            b"Event: X\r\nloose line\r\nY: 1\r\n\r\n",
            "frame [Event=X | =loose line | Y=1]\n",
        );
        let frame = Frame::parse(b"Event: X\r\nloose line\r\nY: 1\r\n").expect("valid frame");
        assert_eq!(frame.body_lines().collect::<Vec<_>>(), [&b"loose line"[..]]);
    }

    #[test]
    fn legacy_response_follows_keeps_output_lines() {
        check(
            b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n\
              Channel              Location\n\nName: with colon\n2 active channels\n\
              --END COMMAND--\r\n\r\nEvent: After\r\n\r\n",
            "frame [Response=Follows | Privilege=Command | ActionID=c1 | \
             =Channel              Location | = | =Name: with colon | =2 active channels]\n\
             frame [Event=After]\n",
        );
        // Asterisk 1.8 glues the marker to output that did not end with a newline.
        check(
            b"Response: Follows\r\nPrivilege: Command\r\nno newline--END COMMAND--\r\n\r\n",
            "frame [Response=Follows | Privilege=Command | =no newline]\n",
        );
    }

    #[test]
    fn repeated_headers_and_case_insensitive_names() {
        let frame = Frame::parse(
            b"Event: Newchannel\r\nChanVariable: A=1\r\nchanvariable: B=2\r\nCHANVARIABLE: C=3\r\n",
        )
        .expect("valid frame");
        let all: Vec<&[u8]> = frame.get_all("ChanVariable").collect();
        assert_eq!(all, [&b"A=1"[..], b"B=2", b"C=3"]);
        assert_eq!(frame.get("chanVARIABLE"), Some(&b"A=1"[..]));
        assert_eq!(frame.get("Missing"), None);
        assert_eq!(frame.header_count(), 4);
        assert_eq!(
            frame.raw(),
            b"Event: Newchannel\r\nChanVariable: A=1\r\nchanvariable: B=2\r\nCHANVARIABLE: C=3\r\n\r\n"
        );
    }

    #[test]
    fn non_utf8_values_are_kept_exactly() {
        // "Иван" in cp1251.
        let mut input = b"Event: Newchannel\r\nCallerIDName: ".to_vec();
        input.extend_from_slice(&[0xc8, 0xe2, 0xe0, 0xed]);
        input.extend_from_slice(b"\r\n\r\n");
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(&input);
        let Some(Item::Frame(frame)) = decoder.next_item() else {
            panic!("one frame");
        };
        assert_eq!(
            frame.get("CallerIDName"),
            Some(&[0xc8, 0xe2, 0xe0, 0xed][..])
        );
        assert_eq!(
            frame.get_str("CallerIDName").as_deref(),
            Some("\u{fffd}\u{fffd}\u{fffd}\u{fffd}")
        );
        let owned = frame.to_owned();
        assert_eq!(
            owned.get("CallerIDName"),
            Some(&[0xc8, 0xe2, 0xe0, 0xed][..])
        );
        assert_eq!(owned.raw(), &input[..]);
    }

    #[test]
    fn owned_frame_matches_borrowed_view() {
        let bytes = local_fixture("click_to_call.ami");
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(&bytes);
        let mut n = 0;
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(f) = item {
                let owned = f.to_owned();
                assert!(owned.headers().eq(f.headers()));
                assert_eq!(owned.raw(), f.raw());
                assert_eq!(owned.event(), f.event());
                assert_eq!(owned.action_id(), f.action_id());
                n += 1;
            }
        }
        assert_eq!(n, memchr::memmem::find_iter(&bytes, b"\r\n\r\n").count());
    }

    fn small_limits() -> Limits {
        Limits {
            max_line: 32,
            max_frame: 128,
            max_headers: 4,
        }
    }

    #[test]
    fn oversized_line_is_reported_once_and_skipped() {
        let long = "x".repeat(200);
        let input = format!("Event: A\r\nBig: {long}\r\nAfter: 1\r\n\r\nEvent: B\r\n\r\n");
        let expect = "error LineTooLong { offset: 0, limit: 32 }\nframe [Event=B]\n";
        assert_eq!(render_with(small_limits(), &[input.as_bytes()]), expect);
        let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        assert_eq!(render_with(small_limits(), &bytes), expect);
        // The first line of a frame, too.
        let input = format!("{long}\r\n\r\nEvent: B\r\n\r\n");
        assert_eq!(
            render_with(small_limits(), &[input.as_bytes()]),
            "error LineTooLong { offset: 0, limit: 32 }\nframe [Event=B]\n"
        );
    }

    #[test]
    fn endless_line_is_not_buffered() {
        let mut decoder = Decoder::new(small_limits());
        decoder.push(b"Event: A\r\nBig: ");
        let mut errors = 0;
        for _ in 0..100_000 {
            decoder.push(b"yyyyyyyyyy");
            while let Some(item) = decoder.next_item() {
                assert!(matches!(item, Item::Error(DecodeError::LineTooLong { .. })));
                errors += 1;
            }
            assert!(decoder.buffered_len() <= 64, "{}", decoder.buffered_len());
        }
        assert!(decoder.capacity() <= 64 * 1024, "{}", decoder.capacity());
        assert_eq!(errors, 1, "reported once");
        decoder.push(b"\r\n\r\nEvent: B\r\n\r\n");
        match decoder.next_item() {
            Some(Item::Frame(f)) => assert_eq!(f.event(), Some(&b"B"[..])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_frame_is_reported_once_and_skipped() {
        let mut input = b"Event: A\r\n".to_vec();
        for i in 0..3 {
            input.extend_from_slice(format!("H{i}: {}\r\n", "v".repeat(25)).as_bytes());
        }
        let limits = Limits {
            max_frame: 64,
            ..small_limits()
        };
        input.extend_from_slice(b"\r\nEvent: B\r\n\r\n");
        let expect = "error FrameTooLarge { offset: 0, limit: 64 }\nframe [Event=B]\n";
        assert_eq!(render_with(limits, &[&input]), expect);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(render_with(limits, &bytes), expect);
        let bytes: Vec<&[u8]> = input.chunks(5).collect();
        assert_eq!(render_with(limits, &bytes), expect);
    }

    #[test]
    fn endless_frame_is_not_buffered() {
        let mut decoder = Decoder::new(small_limits());
        decoder.push(b"Event: A\r\n");
        let mut errors = 0;
        for i in 0..50_000 {
            decoder.push(format!("H{i}: v\r\n").as_bytes());
            while let Some(item) = decoder.next_item() {
                assert!(matches!(
                    item,
                    Item::Error(
                        DecodeError::FrameTooLarge { .. } | DecodeError::TooManyHeaders { .. }
                    )
                ));
                errors += 1;
            }
            assert!(decoder.buffered_len() <= 128);
        }
        assert_eq!(errors, 1);
        assert!(decoder.capacity() <= 64 * 1024);
    }

    #[test]
    fn too_many_headers() {
        let input =
            b"Event: A\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\nF: 5\r\n\r\nEvent: B\r\nX: 1\r\n\r\n";
        let expect = "error TooManyHeaders { offset: 0, limit: 4 }\nframe [Event=B | X=1]\n";
        assert_eq!(render_with(small_limits(), &[input]), expect);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(render_with(small_limits(), &bytes), expect);
    }

    #[test]
    fn garbage_is_reported_and_skipped() {
        check(
            b"\x00\x01\xffnoise\r\nmore noise: x\r\n\r\nEvent: A\r\n\r\n",
            "error Garbage { offset: 0, preview: \"\\\\x00\\\\x01\\\\xffnoise\" }\nframe [Event=A]\n",
        );
        check(
            b"Event: A\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\nEvent: B\r\n\r\n",
            "frame [Event=A]\n\
             error Garbage { offset: 12, preview: \"HTTP/1.1 400 Bad Request\" }\n\
             frame [Event=B]\n",
        );
    }

    #[test]
    fn incomplete_frame_waits_for_more_bytes() {
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(b"Event: A\r\nX: 1\r\n\r");
        assert!(decoder.next_item().is_none());
        decoder.push(b"\n");
        assert!(matches!(decoder.next_item(), Some(Item::Frame(_))));
        assert!(decoder.next_item().is_none());
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn spare_capacity_reads() {
        let bytes = local_fixture("queue_abandon.ami");
        let whole = decode_all(Limits::default(), [bytes.clone()]);
        let mut decoder = Decoder::new(Limits::default());
        let mut items = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let spare = decoder.spare(4096);
            let n = spare.len().min(bytes.len() - pos).min(3000);
            spare[..n].copy_from_slice(&bytes[pos..pos + n]);
            decoder.commit(n);
            pos += n;
            while let Some(item) = decoder.next_item() {
                items.push(item.to_owned());
            }
        }
        assert_eq!(items, whole);
        assert!(decoder.capacity() <= 64 * 1024);
    }

    #[test]
    fn encode_action_writes_one_block() {
        let mut out = Vec::new();
        encode_action(
            &mut out,
            "Originate",
            "c2c-1",
            &[
                ("Channel", "Local/101@agents/nm"),
                ("Variable", "A=1"),
                ("Variable", "B=2"),
                ("Async", "true"),
            ],
        )
        .expect("valid action");
        assert_eq!(
            out,
            b"Action: Originate\r\nActionID: c2c-1\r\nChannel: Local/101@agents/nm\r\n\
              Variable: A=1\r\nVariable: B=2\r\nAsync: true\r\n\r\n"
        );
        let frame = Frame::parse(&out).expect("decodes back");
        assert_eq!(frame.get("action"), Some(&b"Originate"[..]));
        assert_eq!(frame.get_all("Variable").count(), 2);
    }

    #[test]
    fn encode_action_rejects_injection() {
        let mut out = Vec::new();
        let err = encode_action(
            &mut out,
            "Originate",
            "1",
            &[("CallerID", "x\r\n\r\nAction: Hangup")],
        )
        .expect_err("CR/LF rejected");
        assert_eq!(
            err,
            EncodeError::InvalidValue {
                name: "CallerID".into()
            }
        );
        assert!(encode_action(&mut out, "Ping", "1\n", &[]).is_err());
        assert!(encode_action(&mut out, "Ping", "1", &[("Bad: name", "v")]).is_err());
        assert!(encode_action(&mut out, "Ping", "1", &[("", "v")]).is_err());
        assert!(out.is_empty(), "nothing written on error");
    }

    #[test]
    fn errors_explain_themselves() {
        let e = DecodeError::LineTooLong {
            offset: 10,
            limit: 8192,
        };
        assert_eq!(
            e.to_string(),
            "AMI line at stream offset 10 is longer than 8192 bytes; frame skipped"
        );
    }
}
