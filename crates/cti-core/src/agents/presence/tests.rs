//! Presence tests as data: a script of inputs (one per line, `<t> <input>`, times in seconds)
//! and the effects it must produce, rendered one per line.
//!
//! Inputs: `set <agent> available|offline|acw|away:<reason>`, `extend <agent> <s>`,
//! `connect <ext>`, `disconnect <ext>`, `pbx <interface> paused|unpaused [reason]`,
//! `snapshot <interface>=paused:<reason>|unpaused ...`, `tick`.
//! Agents: `anna` (101, `Local/101@agents/nm` in sales and support), `boris` (102,
//! `PJSIP/102` in sales). After-call work: 30 s, at most 60 s.

use super::*;

fn setup(restored: Option<(AgentStatus, Timestamp)>) -> Presence {
    let mut presence = Presence::new(PresenceConfig {
        after_call_work_us: 30_000_000,
        after_call_work_max_us: 60_000_000,
        ..PresenceConfig::default()
    });
    let member = |queue: &str, interface: &str| Membership {
        queue: QueueName::new(queue),
        interface: interface.to_owned(),
    };
    presence.register(
        AgentSetup {
            agent: AgentId::new("anna"),
            extensions: vec![Extension::new("101")],
            members: vec![
                member("sales", "Local/101@agents/nm"),
                member("support", "Local/101@agents/nm"),
            ],
            restored: restored.clone(),
        },
        Timestamp::from_secs(0),
    );
    presence.register(
        AgentSetup {
            agent: AgentId::new("boris"),
            extensions: vec![Extension::new("102")],
            members: vec![member("sales", "PJSIP/102")],
            restored,
        },
        Timestamp::from_secs(0),
    );
    presence
}

fn pause_report(interface: &str, state: &str) -> MemberPauseState {
    let (paused, reason) = match state.split_once(':') {
        Some((_, reason)) => (true, reason.to_owned()),
        None => (state == "paused", String::new()),
    };
    MemberPauseState {
        interface: interface.to_owned(),
        queue: None,
        paused,
        reason,
    }
}

fn run(mut presence: Presence, script: &str) -> String {
    let mut out = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let now = Timestamp::from_secs(words[0].parse().expect("time"));
        let input = match words[1] {
            "set" => PresenceInput::SetStatus {
                agent: AgentId::new(words[2]),
                status: match words[3] {
                    "available" => RequestedStatus::Available,
                    "offline" => RequestedStatus::Offline,
                    "acw" => RequestedStatus::AfterCallWork,
                    away => RequestedStatus::Away(away.trim_start_matches("away:").to_owned()),
                },
            },
            "extend" => PresenceInput::ExtendAfterCallWork {
                agent: AgentId::new(words[2]),
                by_us: words[3].parse::<i64>().expect("seconds") * 1_000_000,
            },
            "connect" => PresenceInput::CallConnected {
                extension: Extension::new(words[2]),
            },
            "disconnect" => PresenceInput::CallDisconnected {
                extension: Extension::new(words[2]),
            },
            "pbx" => PresenceInput::MemberPaused(MemberPauseState {
                interface: words[2].to_owned(),
                queue: Some(QueueName::new("sales")),
                paused: words[3] == "paused",
                reason: words.get(4).copied().unwrap_or_default().to_owned(),
            }),
            "snapshot" => PresenceInput::QueueSnapshot(
                words[2..]
                    .iter()
                    .map(|w| {
                        let (interface, state) = w.split_once('=').expect("interface=state");
                        pause_report(interface, state)
                    })
                    .collect(),
            ),
            "tick" => PresenceInput::Tick,
            other => panic!("unknown input {other}"),
        };
        out.push_str(&format!("{line}\n"));
        for effect in presence.apply(input, now) {
            out.push_str(&format!("  {}\n", render(&effect)));
        }
    }
    out
}

fn render(effect: &PresenceEffect) -> String {
    match effect {
        PresenceEffect::StatusChanged {
            agent,
            status,
            since,
            source,
        } => {
            let status = match status {
                AgentStatus::AfterCallWork { until } => {
                    format!("after_call_work until {}", until.as_micros() / 1_000_000)
                }
                AgentStatus::Away { reason } => format!("away:{reason}"),
                other => other.name().to_owned(),
            };
            format!(
                "status {agent} {status} since {} ({})",
                since.as_micros() / 1_000_000,
                source.as_str()
            )
        }
        PresenceEffect::PauseMember {
            interface,
            paused,
            reason,
        } => format!(
            "QueuePause {interface} paused={paused} reason={}",
            reason.as_deref().unwrap_or("-")
        ),
        PresenceEffect::Refused { agent, reason } => format!("refused {agent}: {reason}"),
    }
}

fn check(script: &str, expected: &str) {
    let got = run(setup(None), script);
    assert_eq!(got.trim(), expected.trim(), "\n--- got ---\n{got}");
}

#[test]
fn away_then_available_pauses_and_unpauses_every_interface_once() {
    check(
        "
        10 set anna away:lunch
        20 pbx Local/101@agents/nm paused lunch
        30 set anna available
        ",
        "
10 set anna away:lunch
  QueuePause Local/101@agents/nm paused=true reason=lunch
  status anna away:lunch since 10 (panel)
20 pbx Local/101@agents/nm paused lunch
30 set anna available
  QueuePause Local/101@agents/nm paused=false reason=-
  status anna available since 30 (panel)
        ",
    );
}

#[test]
fn unknown_reason_and_unknown_agent_are_refused() {
    check(
        "
        1 set anna away:nap
        2 set olga available
        ",
        "
1 set anna away:nap
  refused anna: `nap` is not an away reason; use one of: lunch, break, meeting, training
2 set olga available
  refused olga: this user is not an agent (no extension or queue)
        ",
    );
}

#[test]
fn after_call_work_follows_a_call_and_ends_on_time_or_when_extended() {
    check(
        "
        0 set anna available
        5 connect 101
        50 disconnect 101
        60 extend anna 20
        79 tick
        100 tick
        200 set anna available
        210 extend anna 10
        ",
        "
0 set anna available
  QueuePause Local/101@agents/nm paused=false reason=-
  status anna available since 0 (panel)
5 connect 101
50 disconnect 101
  QueuePause Local/101@agents/nm paused=true reason=after-call-work
  status anna after_call_work until 80 since 50 (call_ended)
60 extend anna 20
  status anna after_call_work until 100 since 50 (panel)
79 tick
100 tick
  QueuePause Local/101@agents/nm paused=false reason=-
  status anna available since 100 (timer)
200 set anna available
  status anna available since 100 (panel)
210 extend anna 10
  refused anna: after-call work is not running
        ",
    );
}

#[test]
fn after_call_work_extension_is_capped() {
    check(
        "
        0 set boris available
        1 connect 102
        2 disconnect 102
        3 extend boris 100
        4 extend boris 5
        ",
        "
0 set boris available
  QueuePause PJSIP/102 paused=false reason=-
  status boris available since 0 (panel)
1 connect 102
2 disconnect 102
  QueuePause PJSIP/102 paused=true reason=after-call-work
  status boris after_call_work until 32 since 2 (call_ended)
3 extend boris 100
  status boris after_call_work until 62 since 2 (panel)
4 extend boris 5
  refused boris: after-call work cannot last longer than 60 s
        ",
    );
}

#[test]
fn away_agents_and_busy_agents_get_no_after_call_work() {
    check(
        "
        0 set anna away:meeting
        1 connect 101
        2 disconnect 101
        3 set boris available
        4 connect 102
        5 connect 102
        6 disconnect 102
        ",
        "
0 set anna away:meeting
  QueuePause Local/101@agents/nm paused=true reason=meeting
  status anna away:meeting since 0 (panel)
1 connect 101
2 disconnect 101
3 set boris available
  QueuePause PJSIP/102 paused=false reason=-
  status boris available since 3 (panel)
4 connect 102
5 connect 102
6 disconnect 102
        ",
    );
}

#[test]
fn a_pause_from_the_phone_shows_up_in_the_panel() {
    check(
        "
        0 set boris available
        10 pbx PJSIP/102 paused
        11 pbx PJSIP/102 paused
        20 pbx PJSIP/102 unpaused
        30 pbx PJSIP/102 paused offline
        ",
        "
0 set boris available
  QueuePause PJSIP/102 paused=false reason=-
  status boris available since 0 (panel)
10 pbx PJSIP/102 paused
  status boris away:phone since 10 (phone)
11 pbx PJSIP/102 paused
20 pbx PJSIP/102 unpaused
  status boris available since 20 (phone)
30 pbx PJSIP/102 paused offline
  status boris offline since 30 (phone)
        ",
    );
}

#[test]
fn after_a_pbx_restart_the_live_status_is_sent_again() {
    check(
        "
        0 set anna away:break
        0 set boris available
        50 snapshot Local/101@agents/nm=unpaused Local/101@agents/nm=unpaused PJSIP/102=unpaused
        ",
        "
0 set anna away:break
  QueuePause Local/101@agents/nm paused=true reason=break
  status anna away:break since 0 (panel)
0 set boris available
  QueuePause PJSIP/102 paused=false reason=-
  status boris available since 0 (panel)
50 snapshot Local/101@agents/nm=unpaused Local/101@agents/nm=unpaused PJSIP/102=unpaused
  QueuePause Local/101@agents/nm paused=true reason=break
        ",
    );
}

#[test]
fn after_a_server_restart_the_pbx_state_is_adopted() {
    let presence = setup(Some((AgentStatus::Offline, Timestamp::from_secs(0))));
    let got = run(
        presence,
        "
        5 snapshot Local/101@agents/nm=paused:lunch Local/101@agents/nm=unpaused PJSIP/102=paused:offline
        ",
    );
    let expected = "
5 snapshot Local/101@agents/nm=paused:lunch Local/101@agents/nm=unpaused PJSIP/102=paused:offline
  status anna away:lunch since 5 (reconcile)
  QueuePause Local/101@agents/nm paused=true reason=lunch
    ";
    assert_eq!(got.trim(), expected.trim(), "\n--- got ---\n{got}");
}

#[test]
fn next_deadline_is_the_earliest_after_call_work_end() {
    let mut presence = setup(None);
    assert_eq!(presence.next_deadline(), None);
    let t = Timestamp::from_secs;
    for (agent, ext, at) in [("anna", "101", 10), ("boris", "102", 5)] {
        presence.apply(
            PresenceInput::SetStatus {
                agent: AgentId::new(agent),
                status: RequestedStatus::Available,
            },
            t(0),
        );
        presence.apply(
            PresenceInput::CallConnected {
                extension: Extension::new(ext),
            },
            t(1),
        );
        presence.apply(
            PresenceInput::CallDisconnected {
                extension: Extension::new(ext),
            },
            t(at),
        );
    }
    assert_eq!(presence.next_deadline(), Some(t(35)));
    assert_eq!(
        presence.agent_of_extension("101"),
        Some(&AgentId::new("anna"))
    );
}
