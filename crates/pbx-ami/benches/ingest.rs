//! Ingest benchmark: raw AMI bytes → codec → translation → call tracker, on one core.
//!
//! Run: `cargo bench -p pbx-ami --bench ingest [-- TRACE.ami]`. Without a trace argument it
//! uses `/tmp/kommutator-ingest-trace.ami`, generating it first with
//! `shared/bench/ami-ingest/gen_trace.py -n 20000 -c 200 --timestamp` when missing.
//! The trace is read into memory first, so the numbers exclude disk and socket I/O.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cti_core::{CallTracker, Effect, Outcome, Timestamp, TrackerConfig};
use pbx_ami::codec::{Decoder, Item, Limits};
use pbx_ami::translate::apply_frame;

const DEFAULT_TRACE: &str = "/tmp/kommutator-ingest-trace.ami";
const GENERATOR: &str = "../../../shared/bench/ami-ingest/gen_trace.py";

fn trace_path() -> PathBuf {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let path = PathBuf::from(arg.unwrap_or_else(|| DEFAULT_TRACE.to_owned()));
    if !path.exists() {
        let generator = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GENERATOR);
        eprintln!("generating {} with {}", path.display(), generator.display());
        let status = Command::new("python3")
            .arg(&generator)
            .args(["-n", "20000", "-c", "200", "--timestamp", "-o"])
            .arg(&path)
            .status()
            .expect("python3 runs the trace generator");
        assert!(status.success(), "trace generator failed");
    }
    path
}

struct Run {
    frames: u64,
    ended: u64,
    answered: u64,
    seconds: f64,
    cpu_seconds: Option<f64>,
}

/// CPU time this thread spent on a core (Linux `schedstat`, nanoseconds): on a shared machine
/// wall time also counts the time other processes held the core.
fn thread_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn rates(frames: u64, r: &Run) -> String {
    let cpu = r.cpu_seconds.map_or_else(String::new, |c| {
        format!(", on-CPU {c:.3} s = {:.0} events/s", frames as f64 / c)
    });
    format!(
        "{frames:>9} events, wall {:.3} s = {:>9.0} events/s{cpu}",
        r.seconds,
        frames as f64 / r.seconds
    )
}

// Not inlined, so that callgrind reports each phase as its own function (docs/bench/ingest.md).
#[inline(never)]
fn decode_only(bytes: &[u8]) -> Run {
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let mut decoder = Decoder::new(Limits::default());
    let mut frames = 0u64;
    for chunk in bytes.chunks(64 * 1024) {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(frame) = item {
                frames += 1;
                std::hint::black_box(frame.event());
            }
        }
    }
    Run {
        frames,
        ended: 0,
        answered: 0,
        seconds: start.elapsed().as_secs_f64(),
        cpu_seconds: thread_cpu().zip(cpu0).map(|(b, a)| b - a),
    }
}

#[inline(never)]
fn ingest(bytes: &[u8]) -> Run {
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let mut decoder = Decoder::new(Limits::default());
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut clock = Timestamp::default();
    let (mut frames, mut ended, mut answered) = (0u64, 0u64, 0u64);
    for chunk in bytes.chunks(64 * 1024) {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(frame) = item {
                frames += 1;
                for effect in apply_frame(&mut tracker, &frame, &mut clock) {
                    if let Effect::CallEnded(record) = effect {
                        ended += 1;
                        answered += u64::from(record.outcome == Some(Outcome::Answered));
                    }
                }
            }
        }
    }
    Run {
        frames,
        ended,
        answered,
        seconds: start.elapsed().as_secs_f64(),
        cpu_seconds: thread_cpu().zip(cpu0).map(|(b, a)| b - a),
    }
}

fn main() {
    let path = trace_path();
    let bytes = std::fs::read(&path).expect("trace readable");
    println!(
        "trace {} ({:.1} MB)",
        path.display(),
        bytes.len() as f64 / 1e6
    );
    for round in 1..=3 {
        let d = decode_only(&bytes);
        println!(
            "round {round} codec only:              {}",
            rates(d.frames, &d)
        );
        let r = ingest(&bytes);
        println!(
            "round {round} codec+translate+tracker: {}; {} calls ended, {} answered",
            rates(r.frames, &r),
            r.ended,
            r.answered
        );
    }
}
