//! The bulk trace the benchmarks use: 20,000 calls, about 200 at a time, must be a clean AMI
//! stream (the codec finds no error) in which every call has its own ids.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::time::Instant;

use pbx_ami::codec::{Decoder, Item, Limits};
use pbx_simulator::{render_trace, render_trace_to, Mix, Scenario, TraceOptions};

/// Feeds rendered bytes straight into the codec, so the test needs no multi-gigabyte buffer.
struct CodecSink {
    decoder: Decoder,
    frames: u64,
    errors: Vec<String>,
    banners: u64,
    /// Uniqueid → how many Newchannel events named it.
    newchannels: HashMap<Vec<u8>, u32>,
    hangups: u64,
    /// Linkedids of channels that started their own call (Uniqueid == Linkedid).
    roots: HashSet<Vec<u8>>,
    max_live: usize,
    live: HashSet<Vec<u8>>,
}

impl Write for CodecSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.decoder.push(buf);
        while let Some(item) = self.decoder.next_item() {
            match item {
                Item::Banner(_) => self.banners += 1,
                Item::Error(e) => self.errors.push(e.to_string()),
                Item::Frame(f) => {
                    self.frames += 1;
                    match f.event() {
                        Some(b"Newchannel") => {
                            let uid = f.get("Uniqueid").unwrap_or_default().to_vec();
                            if f.get("Linkedid") == Some(&uid[..]) {
                                self.roots.insert(uid.clone());
                            }
                            self.live.insert(uid.clone());
                            self.max_live = self.max_live.max(self.live.len());
                            *self.newchannels.entry(uid).or_default() += 1;
                        }
                        Some(b"Hangup") => {
                            self.hangups += 1;
                            self.live.remove(f.get("Uniqueid").unwrap_or_default());
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn twenty_thousand_call_trace_parses_cleanly_with_unique_ids() {
    let n_calls = 20_000;
    let mix = Mix::standard();
    let mut sink = CodecSink {
        decoder: Decoder::new(Limits::default()),
        frames: 0,
        errors: Vec::new(),
        banners: 0,
        newchannels: HashMap::new(),
        hangups: 0,
        roots: HashSet::new(),
        max_live: 0,
        live: HashSet::new(),
    };
    let started = Instant::now();
    let stats =
        render_trace_to(&mut sink, &TraceOptions::new(mix, n_calls, 200, 2026)).expect("render");
    let elapsed = started.elapsed();
    println!(
        "rendered+parsed {} calls, {} frames, {} MiB in {:.1?}; max concurrency {}",
        stats.calls,
        stats.frames,
        stats.bytes >> 20,
        elapsed,
        stats.max_concurrency
    );
    assert!(
        sink.errors.is_empty(),
        "codec errors: {:?}",
        &sink.errors[..sink.errors.len().min(5)]
    );
    assert_eq!(sink.banners, 1);
    assert_eq!(sink.frames, stats.frames as u64);
    assert_eq!(stats.calls, n_calls);
    // Interleaved: about 200 calls in progress at a time.
    assert!(
        (150..=300).contains(&stats.max_concurrency),
        "max concurrency {}",
        stats.max_concurrency
    );
    // Every channel of every call has its own Uniqueid, each created once and hung up once.
    assert!(sink.newchannels.values().all(|n| *n == 1));
    assert_eq!(sink.hangups, sink.newchannels.len() as u64);
    assert!(sink.live.is_empty());
    // Each call is its own Linkedid family.
    assert_eq!(sink.roots.len(), n_calls);
    assert!(
        stats.calls_by_scenario.len() >= 10,
        "{:?}",
        stats.calls_by_scenario
    );
}

#[test]
fn render_trace_returns_the_same_bytes_as_streaming() {
    let mix = Mix::only(Scenario::QueueAnswered).with(Scenario::ClickToCall, 1);
    let bytes = render_trace(&mix, 50, 10, 5);
    let mut streamed = Vec::new();
    render_trace_to(&mut streamed, &TraceOptions::new(mix, 50, 10, 5)).expect("vec");
    assert_eq!(bytes, streamed);
    let text = String::from_utf8_lossy(&bytes);
    // Click-to-call calls carry an OriginateResponse of some other AMI client.
    assert!(text.contains("ActionID: sim-originate-"));
}
