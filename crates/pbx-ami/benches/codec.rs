//! Decoder throughput: decode a large AMI trace many times and print events/s and MB/s.
//!
//! `AMI_BENCH_TRACE=/tmp/trace.ami cargo bench -p pbx-ami --bench codec`
//! (make a trace with `python3 shared/bench/ami-ingest/gen_trace.py -n 4000 -o /tmp/trace.ami`).
//! Without `AMI_BENCH_TRACE` the real Asterisk captures in `shared/fixtures/ami/` are
//! concatenated (banners stripped) and repeated up to about 64 MB.
//! No criterion: a plain `main`, best of `AMI_BENCH_REPS` (default 5) runs.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use pbx_ami::codec::{Decoder, Item, Limits};

const CHUNK: usize = 128 * 1024;

fn load_trace() -> (String, Vec<u8>) {
    if let Ok(path) = std::env::var("AMI_BENCH_TRACE") {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        return (path, bytes);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ami");
    let mut one_pass = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ami"))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).expect("fixture readable");
        let body = match memchr::memmem::find(&bytes, b"\r\n") {
            Some(i) if bytes.starts_with(b"Asterisk Call Manager/") => &bytes[i + 2..],
            _ => &bytes[..],
        };
        one_pass.extend_from_slice(body);
    }
    let mut trace = Vec::with_capacity(64 << 20);
    while trace.len() < 64 << 20 {
        trace.extend_from_slice(&one_pass);
    }
    (format!("{} (fixtures, repeated)", dir.display()), trace)
}

/// Decode `trace` in socket-sized chunks; `own` also makes an owned `Frame` per frame, as
/// the client does. Returns (frames, elapsed).
fn run(trace: &[u8], own: bool) -> (u64, Duration) {
    let start = Instant::now();
    let mut decoder = Decoder::new(Limits::default());
    let mut frames = 0u64;
    let mut event_bytes = 0usize;
    for chunk in trace.chunks(CHUNK) {
        let spare = decoder.spare(chunk.len());
        spare[..chunk.len()].copy_from_slice(chunk);
        decoder.commit(chunk.len());
        while let Some(item) = decoder.next_item() {
            match item {
                Item::Frame(frame) => {
                    frames += 1;
                    event_bytes += frame.event().map_or(0, <[u8]>::len);
                    if own {
                        let owned = frame.to_owned();
                        black_box(owned.event());
                        black_box(owned);
                    }
                }
                Item::Banner(_) => {}
                Item::Error(e) => panic!("trace must decode cleanly: {e}"),
            }
        }
    }
    black_box(event_bytes);
    (frames, start.elapsed())
}

fn main() {
    let (source, trace) = load_trace();
    let reps: usize = std::env::var("AMI_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!(
        "trace: {source}, {:.1} MB, {CHUNK} B chunks, best of {reps}",
        trace.len() as f64 / 1e6
    );
    for (label, own) in [
        ("borrowed (FrameRef + event())", false),
        ("owned (to_owned per frame)", true),
    ] {
        let mut best: Option<(u64, Duration)> = None;
        for _ in 0..reps {
            let res = run(&trace, own);
            if best.is_none_or(|(_, d)| res.1 < d) {
                best = Some(res);
            }
        }
        let (frames, elapsed) = best.expect("at least one rep");
        let secs = elapsed.as_secs_f64();
        println!(
            "{label:32} frames={frames} seconds={secs:.3} events/s={:.0} MB/s={:.0}",
            frames as f64 / secs,
            trace.len() as f64 / secs / 1e6
        );
    }
}
