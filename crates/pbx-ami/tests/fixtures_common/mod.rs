//! Shared helpers for the fixture tests: run captured AMI bytes through the real codec,
//! translation and tracker, render records, compare with committed snapshots.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cti_core::{CallRecord, CallTracker, Effect, Timestamp, TrackerConfig};
use pbx_ami::codec::{Decoder, Item, Limits};
use pbx_ami::translate::apply_frame;

/// The captured traces of Asterisk 22.10.1.
pub fn trace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/asterisk-22.10.1")
}

/// Every `.ami` trace (`x.ami` and `x.full.ami`), sorted by file name.
pub fn traces() -> Vec<(String, Vec<u8>)> {
    let mut res: Vec<(String, Vec<u8>)> = std::fs::read_dir(trace_dir())
        .expect("test_data/asterisk-22.10.1 exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ami"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("trace readable"))
        })
        .collect();
    res.sort();
    res
}

/// The scenario name: `queue_answered.full.ami` → `queue_answered`.
pub fn scenario(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// Feeds `chunks` (the trace, split anywhere) and returns every ended call plus the calls
/// still open at the end.
pub fn run_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    config: TrackerConfig,
) -> Vec<CallRecord> {
    let mut decoder = Decoder::new(Limits::default());
    let mut tracker = CallTracker::new(config);
    let mut clock = Timestamp::default();
    let mut records = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(frame) = item {
                for effect in apply_frame(&mut tracker, &frame, &mut clock) {
                    if let Effect::CallEnded(record) = effect {
                        records.push(*record);
                    }
                }
            }
        }
    }
    records.extend(tracker.snapshot(clock));
    records
}

/// Feeds a whole trace in one piece.
pub fn run(bytes: &[u8], config: TrackerConfig) -> Vec<CallRecord> {
    run_chunks([bytes], config)
}

/// Renders records for snapshots: the call id plus the record's own text form.
pub fn render(records: &[CallRecord]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&format!("id={} linkedids={:?}\n", r.call_id, r.linkedids));
        out.push_str(&r.to_string());
    }
    out
}

/// Compares `actual` with the snapshot file; `UPDATE_EXPECT=1` rewrites the file instead.
pub fn check_snapshot(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(path, actual).expect("snapshot writable");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        panic!(
            "snapshot {} differs (run with UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}
