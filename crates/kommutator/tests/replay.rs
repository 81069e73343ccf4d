//! `kommutator replay` on every captured Asterisk 22 trace, through the real binary: one JSON
//! record per trace with the issue's fields, the same records with the shipped fixture PBX
//! config, and committed snapshots (`UPDATE_EXPECT=1` rewrites them).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn traces() -> Vec<PathBuf> {
    let dir = root().join("crates/pbx-ami/test_data/asterisk-22.10.1");
    let mut res: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture traces")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ami"))
        .collect();
    res.sort();
    res
}

fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kommutator"))
        .arg("replay")
        .args(args)
        .output()
        .expect("kommutator runs");
    assert!(
        out.status.success(),
        "replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn check_snapshot(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(path, actual).expect("snapshot writable");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "snapshot {} differs (UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

const FIELDS: &[&str] = &[
    "call_id",
    "direction",
    "customer_number",
    "line",
    "started_at",
    "answered_at",
    "ended_at",
    "outcome",
    "answered_by",
    "agents_rang",
    "queue",
    "wait_s",
    "talk_s",
    "hold_s",
    "transfers",
    "recording",
    "degraded",
];

#[test]
fn every_trace_replays_to_one_json_record_with_the_issue_fields() {
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let config = root().join("config/fixtures-pbx.toml");
    for trace in traces() {
        let file = trace.to_str().expect("UTF-8 path");
        let json = replay(&[file, "--format", "json"]);
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), 1, "{file}: one record expected\n{json}");
        let record: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
        for field in FIELDS {
            assert!(record.get(field).is_some(), "{file}: missing {field}");
        }
        assert_eq!(record["degraded"], false, "{file}");

        // The shipped description of the fixture PBX reads the same calls the same way; only
        // the recording link differs (it comes from the config's template).
        let with_config = replay(&[file, "--config", config.to_str().unwrap()]);
        let mut configured: serde_json::Value =
            serde_json::from_str(with_config.trim()).expect("valid JSON");
        let mut plain = record.clone();
        if record["recorded"] == true {
            let link = configured["recording"]
                .as_str()
                .expect("a recording link")
                .to_owned();
            assert!(
                link.starts_with("https://pbx.example.com/recordings/"),
                "{link}"
            );
            configured["recording"] = serde_json::Value::Null;
            plain["recording"] = serde_json::Value::Null;
        }
        assert_eq!(configured, plain, "{file}: --config changes the record");

        let name = trace.file_name().unwrap().to_string_lossy();
        check_snapshot(&snapshots.join(format!("{name}.jsonl")), &json);
    }
}

#[test]
fn table_format_lists_the_call() {
    let trace = traces()
        .into_iter()
        .find(|p| p.ends_with("blind_transfer.ami"))
        .expect("blind_transfer trace");
    let table = replay(&[trace.to_str().unwrap(), "--format", "table"]);
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    check_snapshot(&snapshots.join("blind_transfer.table.txt"), &table);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("101>102")),
        "{table}"
    );
}

#[test]
fn a_bad_config_is_rejected_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("kommutator-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[pbx.asterisk.tracker]\ntrunk_context = [\"x\"]\n").unwrap();
    let trace = traces().remove(0);
    let out = Command::new(env!("CARGO_BIN_EXE_kommutator"))
        .args([
            "replay",
            trace.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .expect("kommutator runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trunk_context"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
