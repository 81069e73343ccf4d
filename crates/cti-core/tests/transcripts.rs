//! Domain tests as data: each file in `tests/transcripts/` is a small synthetic event
//! transcript, a `=== effects` line, and the effects the tracker must produce, rendered as
//! text. `UPDATE_EXPECT=1 cargo test -p cti-core` rewrites the expected part.
//!
//! Transcript lines (times in seconds; `#` starts a comment):
//! - `config <field>=<value>`: `attribution=first|last|talk`, `short_abandon=<s>`,
//!   `trunk_names=a,b`
//! - `<t> new <id> <channel name> [ctx=..] [exten=..] [cid=..] [name=..] [state=ring|up|down] [link=<id>]`
//! - `<t> decl <id> <channel name> [link=<id>]`: register a channel without an event
//!   (to send its events out of order)
//! - `<t> up <id>`, `<t> cid <id> <number>`, `<t> relink <id> <linkedid>`
//! - `<t> dial <caller id or -> <dest id> [<dial string>]`, `<t> dialend <caller|-> <dest> <STATUS>`
//! - `<t> enter <id> <bridge>`, `<t> leave <id> <bridge>`, `<t> merge <from> <to>`
//! - `<t> hangup <id> [cause]`, `<t> pair <id1> <id2>`
//! - `<t> join <id> <queue>`, `<t> qleave <id> <queue>`, `<t> abandon <id> <queue>`
//! - `<t> called <caller> <dest> <queue> <interface>`, `<t> rna <caller> <dest> <queue> <interface>`
//! - `<t> hold <id>`, `<t> unhold <id>`, `<t> moh <id>`, `<t> mohstop <id>`
//! - `<t> blind <transferer> <transferee> <exten>`, `<t> attended <orig> <transferee> <target>`
//! - `<t> voicemail <id>`, `<t> record <id> [file]`
//! - `<t> resync <id>[:<bridge>] ...`: the live channels after a reconnect
//! - `<t> tick`

use std::collections::HashMap;
use std::path::Path;

use cti_core::{
    AttendedTransferInfo, AttributionRule, BlindTransferInfo, BridgeId, CallTracker, ChanRef,
    ChannelState, DialStatus, DialplanApp, Effect, LinkedId, LiveChannel, PbxEvent, QueueMember,
    QueueName, Timestamp, TrackerConfig, Uniqueid,
};

const EPOCH: i64 = 1_700_000_000;

struct Dsl {
    chans: HashMap<String, ChanRef>,
}

impl Dsl {
    fn chan(&self, id: &str) -> ChanRef {
        self.chans
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("channel {id} not declared"))
    }

    fn opt_chan(&self, id: &str) -> Option<ChanRef> {
        (id != "-").then(|| self.chan(id))
    }

    fn declare(&mut self, id: &str, name: &str, opts: &HashMap<&str, &str>) -> ChanRef {
        let link = opts.get("link").copied().unwrap_or(id);
        let linkedid = self
            .chans
            .get(link)
            .map_or_else(|| LinkedId::new(link), |c| c.linkedid.clone());
        let c = ChanRef {
            uniqueid: Uniqueid::new(id),
            linkedid,
            name: name.to_owned(),
        };
        self.chans.insert(id.to_owned(), c.clone());
        c
    }
}

fn options<'a>(words: &[&'a str]) -> HashMap<&'a str, &'a str> {
    words.iter().filter_map(|w| w.split_once('=')).collect()
}

fn member(interface: &str) -> QueueMember {
    QueueMember {
        interface: interface.to_owned(),
        name: String::new(),
    }
}

fn render(effect: &Effect, t: &str) -> String {
    match effect {
        Effect::CallStarted(r) => format!("{t} started {}\n", r.call_id),
        Effect::CallUpdated { record, reason } => {
            format!("{t} updated {} {reason:?}\n", record.call_id)
        }
        Effect::CallEnded(r) => format!("{t} ended {}\n{r}", r.call_id),
        Effect::CallsMerged { survivor, absorbed } => {
            format!("{t} merged {absorbed} into {survivor}\n")
        }
        Effect::AgentRinging {
            call_id,
            agent,
            queue,
        } => format!(
            "{t} ringing {call_id} {agent}{}\n",
            queue
                .as_ref()
                .map_or(String::new(), |q| format!(" queue={q}"))
        ),
        Effect::AgentRingEnded {
            call_id,
            agent,
            how,
        } => {
            format!("{t} ring-ended {call_id} {agent} {how:?}\n")
        }
        Effect::AgentConnected { call_id, agent } => format!("{t} connected {call_id} {agent}\n"),
        Effect::AgentDisconnected { call_id, agent } => {
            format!("{t} disconnected {call_id} {agent}\n")
        }
    }
}

fn run(transcript: &str) -> String {
    let mut config = TrackerConfig::default();
    let mut dsl = Dsl {
        chans: HashMap::new(),
    };
    let mut tracker: Option<CallTracker> = None;
    let mut out = String::new();
    for (lineno, line) in transcript.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "config" {
            for (k, v) in options(&words[1..]) {
                match k {
                    "attribution" => {
                        config.attribution = match v {
                            "first" => AttributionRule::FirstAnswerer,
                            "last" => AttributionRule::LastAgent,
                            "talk" => AttributionRule::TalkTime,
                            other => panic!("attribution {other}"),
                        }
                    }
                    "short_abandon" => {
                        config.short_abandon_us = v.parse::<i64>().unwrap() * 1_000_000
                    }
                    "trunk_names" => config.trunk_names = v.split(',').map(String::from).collect(),
                    other => panic!("config {other}"),
                }
            }
            continue;
        }
        let tracker = tracker.get_or_insert_with(|| CallTracker::new(config.clone()));
        let secs: f64 = words[0]
            .parse()
            .unwrap_or_else(|_| panic!("line {}: time", lineno + 1));
        let now = Timestamp::from_micros(EPOCH * 1_000_000 + (secs * 1e6).round() as i64);
        let w = |i: usize| {
            *words
                .get(i)
                .unwrap_or_else(|| panic!("line {}: argument {i}", lineno + 1))
        };
        let opts = options(&words[2..]);
        let event = match w(1) {
            "decl" => {
                dsl.declare(w(2), w(3), &opts);
                continue;
            }
            "tick" => {
                for e in tracker.tick(now) {
                    out.push_str(&render(&e, w(0)));
                }
                continue;
            }
            "new" => {
                let chan = dsl.declare(w(2), w(3), &opts);
                PbxEvent::ChannelCreated {
                    chan,
                    state: match opts.get("state").copied().unwrap_or("down") {
                        "ring" => ChannelState::Ring,
                        "up" => ChannelState::Up,
                        _ => ChannelState::Down,
                    },
                    caller_num: opts.get("cid").map(|s| s.to_string()),
                    caller_name: opts.get("name").map(|s| s.to_string()),
                    context: opts.get("ctx").copied().unwrap_or("").to_owned(),
                    exten: opts.get("exten").copied().unwrap_or("").to_owned(),
                }
            }
            "up" => PbxEvent::ChannelStateChanged {
                chan: dsl.chan(w(2)),
                state: ChannelState::Up,
            },
            "cid" => PbxEvent::CallerIdChanged {
                chan: dsl.chan(w(2)),
                caller_num: Some(w(3).to_owned()),
                caller_name: None,
            },
            "relink" => {
                let mut c = dsl.chan(w(2));
                c.linkedid = LinkedId::new(w(3));
                dsl.chans.insert(w(2).to_owned(), c.clone());
                PbxEvent::ChannelStateChanged {
                    chan: c,
                    state: ChannelState::Up,
                }
            }
            "pair" => PbxEvent::LocalPair {
                one: dsl.chan(w(2)),
                two: dsl.chan(w(3)),
            },
            "dial" => PbxEvent::DialBegin {
                caller: dsl.opt_chan(w(2)),
                caller_num: None,
                dest: dsl.chan(w(3)),
                dial_string: words.get(4).copied().unwrap_or("").to_owned(),
            },
            "dialend" => PbxEvent::DialEnd {
                caller: dsl.opt_chan(w(2)),
                dest: dsl.chan(w(3)),
                status: DialStatus::from_ami(w(4)),
            },
            "enter" => PbxEvent::BridgeEnter {
                chan: dsl.chan(w(2)),
                bridge: BridgeId::new(w(3)),
            },
            "leave" => PbxEvent::BridgeLeave {
                chan: dsl.chan(w(2)),
                bridge: BridgeId::new(w(3)),
            },
            "merge" => PbxEvent::BridgeMerge {
                from: BridgeId::new(w(2)),
                to: BridgeId::new(w(3)),
            },
            "hangup" => PbxEvent::Hangup {
                chan: dsl.chan(w(2)),
                cause: words.get(3).map_or(16, |c| c.parse().unwrap()),
            },
            "join" => PbxEvent::QueueCallerJoin {
                chan: dsl.chan(w(2)),
                queue: QueueName::new(w(3)),
            },
            "qleave" => PbxEvent::QueueCallerLeave {
                chan: dsl.chan(w(2)),
                queue: QueueName::new(w(3)),
            },
            "abandon" => PbxEvent::QueueCallerAbandon {
                chan: dsl.chan(w(2)),
                queue: QueueName::new(w(3)),
                hold_time_s: 0,
            },
            "called" => PbxEvent::AgentCalled {
                caller: dsl.chan(w(2)),
                dest: dsl.chan(w(3)),
                queue: QueueName::new(w(4)),
                member: member(w(5)),
            },
            "rna" => PbxEvent::AgentRingNoAnswer {
                caller: dsl.chan(w(2)),
                dest: dsl.chan(w(3)),
                queue: QueueName::new(w(4)),
                member: member(w(5)),
                ring_time_ms: 0,
            },
            "hold" => PbxEvent::Hold {
                chan: dsl.chan(w(2)),
            },
            "unhold" => PbxEvent::Unhold {
                chan: dsl.chan(w(2)),
            },
            "moh" => PbxEvent::MusicOnHoldStart {
                chan: dsl.chan(w(2)),
            },
            "mohstop" => PbxEvent::MusicOnHoldStop {
                chan: dsl.chan(w(2)),
            },
            "blind" => PbxEvent::BlindTransfer(BlindTransferInfo {
                success: true,
                transferer: dsl.opt_chan(w(2)),
                transferee: dsl.opt_chan(w(3)),
                extension: w(4).to_owned(),
                context: "from-internal".to_owned(),
            }),
            "attended" => PbxEvent::AttendedTransfer(AttendedTransferInfo {
                success: true,
                orig_transferer: dsl.opt_chan(w(2)),
                second_transferer: dsl.opt_chan(w(2)),
                transferee: dsl.opt_chan(w(3)),
                target: dsl.opt_chan(w(4)),
            }),
            "voicemail" => PbxEvent::AppStarted {
                chan: dsl.chan(w(2)),
                app: DialplanApp::VoiceMail,
            },
            "record" => match words.get(3) {
                Some(file) => PbxEvent::RecordingFile {
                    chan: dsl.chan(w(2)),
                    file: file.to_string(),
                },
                None => PbxEvent::MixMonitorStart {
                    chan: dsl.chan(w(2)),
                },
            },
            "resync" => PbxEvent::Resynced {
                channels: words[2..]
                    .iter()
                    .map(|item| {
                        let (id, bridge) = item
                            .split_once(':')
                            .map_or((*item, None), |(i, b)| (i, Some(b)));
                        LiveChannel {
                            chan: dsl.chan(id),
                            state: ChannelState::Up,
                            caller_num: None,
                            caller_name: None,
                            context: String::new(),
                            exten: String::new(),
                            bridge: bridge.map(BridgeId::new),
                            age_s: 0,
                        }
                    })
                    .collect(),
            },
            other => panic!("line {}: unknown command {other}", lineno + 1),
        };
        for e in tracker.apply(event, now) {
            out.push_str(&render(&e, w(0)));
        }
    }
    out
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/transcripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "transcripts missing");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let (input, expected) = match text.split_once("=== effects\n") {
            Some((i, e)) => (i, e),
            None => (text.as_str(), ""),
        };
        let actual = run(input);
        if update {
            std::fs::write(&path, format!("{input}=== effects\n{actual}")).unwrap();
        } else if actual != expected {
            failures.push(format!(
                "{}: effects differ (UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
