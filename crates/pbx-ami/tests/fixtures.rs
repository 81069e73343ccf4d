//! Every captured Asterisk 22 trace, through the real codec, translation and tracker:
//! exactly one call record each, matching the ground truth in `expected.json` field by field,
//! and matching its committed snapshot (`UPDATE_EXPECT=1` rewrites the snapshots).

mod fixtures_common;

use std::collections::BTreeMap;

use cti_core::{CallRecord, Direction, Outcome, TrackerConfig};
use fixtures_common::{check_snapshot, render, run, scenario, trace_dir, traces};

/// A value of the flat ground-truth file.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Str(String),
    Num(f64),
    List(Vec<String>),
}

/// Parses `expected.json`: an object of objects whose values are strings, numbers, null or
/// lists of strings. A tiny parser keeps the crate free of a JSON dev-dependency.
fn parse_expected(text: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) {
            self.ws();
            assert_eq!(self.s[self.i] as char, c as char, "at byte {}", self.i);
            self.i += 1;
        }
        fn peek(&mut self) -> u8 {
            self.ws();
            self.s[self.i]
        }
        fn string(&mut self) -> String {
            self.eat(b'"');
            let start = self.i;
            while self.s[self.i] != b'"' {
                self.i += 1;
            }
            self.i += 1;
            String::from_utf8(self.s[start..self.i - 1].to_vec()).unwrap()
        }
        fn value(&mut self) -> Value {
            match self.peek() {
                b'"' => Value::Str(self.string()),
                b'n' => {
                    self.i += 4;
                    Value::Null
                }
                b'[' => {
                    self.eat(b'[');
                    let mut items = Vec::new();
                    while self.peek() != b']' {
                        items.push(self.string());
                        if self.peek() == b',' {
                            self.eat(b',');
                        }
                    }
                    self.eat(b']');
                    Value::List(items)
                }
                _ => {
                    let start = self.i;
                    while self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.' {
                        self.i += 1;
                    }
                    Value::Num(
                        std::str::from_utf8(&self.s[start..self.i])
                            .unwrap()
                            .parse()
                            .unwrap(),
                    )
                }
            }
        }
        fn object<T>(&mut self, mut item: impl FnMut(&mut Self) -> T) -> BTreeMap<String, T> {
            let mut map = BTreeMap::new();
            self.eat(b'{');
            while self.peek() != b'}' {
                let key = self.string();
                self.eat(b':');
                map.insert(key, item(self));
                if self.peek() == b',' {
                    self.eat(b',');
                }
            }
            self.eat(b'}');
            map
        }
    }
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
    };
    p.object(|p| p.object(|p| p.value()))
}

fn text_of(v: &Value) -> Option<&str> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// Checks one record against its ground-truth entry; returns the mismatches.
fn compare(record: &CallRecord, expected: &BTreeMap<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let check = |errors: &mut Vec<String>, field: &str, got: Option<String>, want: Option<&str>| {
        if got.as_deref() != want {
            errors.push(format!("{field}: got {got:?}, want {want:?}"));
        }
    };
    for (field, want) in expected {
        match field.as_str() {
            "direction" => check(
                &mut errors,
                field,
                Some(record.direction.as_str().into()),
                text_of(want),
            ),
            "customer_number" => check(
                &mut errors,
                field,
                record.customer_number.as_ref().map(|n| n.text.clone()),
                text_of(want),
            ),
            "line" => check(
                &mut errors,
                field,
                record.line.as_ref().map(|n| n.text.clone()),
                text_of(want),
            ),
            "outcome" => check(
                &mut errors,
                field,
                record.outcome.map(|o| o.as_str().into()),
                text_of(want),
            ),
            "answered_by" => check(
                &mut errors,
                field,
                record.answered_by.as_ref().map(|a| a.to_string()),
                text_of(want),
            ),
            "queue" => check(
                &mut errors,
                field,
                record.queue.as_ref().map(|q| q.to_string()),
                text_of(want),
            ),
            "agent" => check(
                &mut errors,
                field,
                record.agent.as_ref().map(|a| a.to_string()),
                text_of(want),
            ),
            "rang" => {
                let Value::List(want) = want else {
                    panic!("rang is a list")
                };
                let mut want = want.clone();
                want.sort();
                let mut got: Vec<String> =
                    record.agents_rang.iter().map(|a| a.to_string()).collect();
                got.sort();
                if got != want {
                    errors.push(format!("rang: got {got:?}, want {want:?}"));
                }
            }
            "talk_s" | "hold_s" => {
                let Value::Num(want) = want else {
                    panic!("{field} is a number")
                };
                let got_us = if field == "talk_s" {
                    record.talk_us
                } else {
                    record.hold_us
                };
                let got = got_us as f64 / 1e6;
                if (got - want).abs() > 1.0 {
                    errors.push(format!("{field}: got {got:.2}, want {want} ±1"));
                }
            }
            "transfer_to" => {
                let want = text_of(want).expect("transfer_to is a string");
                let found = record.transfers.iter().any(|t| {
                    t.to == want || t.to_agent.as_ref().is_some_and(|a| a.as_str() == want)
                });
                if !found {
                    errors.push(format!("transfer_to {want} not in {:?}", record.transfers));
                }
            }
            other => errors.push(format!("unknown ground-truth field {other}")),
        }
    }
    errors
}

#[test]
fn every_trace_gives_one_record_matching_the_ground_truth() {
    let expected_text =
        std::fs::read_to_string(trace_dir().join("expected.json")).expect("expected.json");
    let expected = parse_expected(&expected_text);
    let all = traces();
    assert_eq!(all.len(), 28, "14 scenarios x 2 variants");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, bytes) in &all {
        let records = run(bytes, TrackerConfig::default());
        if records.len() != 1 {
            failures.push(format!(
                "{file}: {} records\n{}",
                records.len(),
                render(&records)
            ));
            continue;
        }
        let record = &records[0];
        if record.ended_at.is_none() || record.degraded {
            failures.push(format!("{file}: not closed by its own hangups"));
        }
        match expected.get(scenario(file)) {
            Some(truth) => {
                checked += 1;
                for e in compare(record, truth) {
                    failures.push(format!("{file}: {e}"));
                }
            }
            None => {
                // ari_stasis: answered by the ARI application, no agent.
                assert_eq!(scenario(file), "ari_stasis", "{file} has no ground truth");
                let ok = record.outcome == Some(Outcome::Answered)
                    && record.answered_by.is_none()
                    && record.agents_rang.is_empty()
                    && record.application.as_deref() == Some("cti")
                    && record.direction == Direction::Inbound
                    && record.customer_number.as_ref().map(|n| n.text.as_str())
                        == Some("+15551230013")
                    && record.line.as_ref().map(|n| n.text.as_str()) == Some("+18005550120");
                if !ok {
                    failures.push(format!("{file}: not answered by the ARI app\n{record}"));
                }
            }
        }
    }
    assert_eq!(checked, 26);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_trace_matches_its_snapshot() {
    let dir = trace_dir().join("records");
    std::fs::create_dir_all(&dir).expect("snapshot dir");
    for (file, bytes) in traces() {
        let records = run(&bytes, TrackerConfig::default());
        check_snapshot(&dir.join(format!("{file}.txt")), &render(&records));
    }
}

#[test]
fn abandon_shorter_than_the_threshold_is_flagged_and_the_threshold_is_configurable() {
    let (_, bytes) = traces()
        .into_iter()
        .find(|(f, _)| f == "queue_abandon.ami")
        .expect("queue_abandon trace");
    let default = run(&bytes, TrackerConfig::default());
    assert!(
        default[0].short_abandon,
        "2.5 s in queue is a short abandon at 5 s"
    );
    let strict = run(
        &bytes,
        TrackerConfig {
            short_abandon_us: 1_000_000,
            ..TrackerConfig::default()
        },
    );
    assert!(!strict[0].short_abandon);
    assert_eq!(strict[0].outcome, Some(Outcome::Abandoned));
}
