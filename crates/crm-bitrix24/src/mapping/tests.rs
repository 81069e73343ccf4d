use std::collections::HashMap;

use outbox::call::NumberKind;

use super::*;
use crate::client::Auth;

fn config() -> Config {
    Config {
        name: "b24".to_owned(),
        auth: Auth::Webhook {
            url: "http://127.0.0.1:1/rest/1/x/".to_owned(),
        },
        default_user_id: 1,
        users: HashMap::from([("101".to_owned(), 1269)]),
        crm_create: true,
        show_card: true,
        line_number: Some("74951112233".to_owned()),
        timeout: std::time::Duration::from_secs(5),
        rate_per_sec: 2.0,
        burst: 10,
        max_jobs_per_delivery: 40,
    }
}

fn call(id: &str, outcome: Option<&str>, recording: bool) -> CallDto {
    CallDto {
        call_id: id.to_owned(),
        direction: "inbound".to_owned(),
        customer_number: Some("+79161234567".to_owned()),
        customer_kind: NumberKind::E164,
        customer_name: None,
        line: None,
        started_at: chrono::DateTime::from_timestamp(1_718_010_001, 0).expect("valid time"),
        answered_at: None,
        ended_at: None,
        outcome: outcome.map(str::to_owned),
        agent: Some("101".to_owned()),
        answered_by: Some("101".to_owned()),
        originator: None,
        agents_rang: vec!["101".to_owned()],
        queue: Some("sales".to_owned()),
        wait_secs: 3,
        talk_secs: 148,
        hold_secs: 0,
        recording_url: recording.then(|| "https://rec.example.com/1.mp3".to_owned()),
        hangup_cause: Some(16),
        degraded: false,
    }
}

fn render(plan: BatchPlan) -> Vec<String> {
    plan.into_requests()
        .iter()
        .enumerate()
        .flat_map(|(idx, request)| {
            request
                .commands
                .iter()
                .map(move |(key, command)| format!("#{idx} {key} {command}"))
        })
        .collect()
}

#[test]
fn start_and_end_in_one_batch_refer_to_the_register_result() {
    let mut plan = BatchPlan::default();
    plan.register(0, &call("1.1", None, false), &config());
    plan.finish(1, &call("1.1", Some("answered"), true), &config(), None);
    assert_eq!(
        render(plan),
        vec![
            "#0 k000r telephony.externalcall.register?USER_ID=1&PHONE_NUMBER=79161234567&TYPE=2&CALL_START_DATE=2024-06-10T09%3A00%3A01%2B00%3A00&CRM_CREATE=1&SHOW=1&EXTERNAL_CALL_ID=1.1&LINE_NUMBER=74951112233",
            "#0 k001f telephony.externalcall.finish?CALL_ID=$result[k000r][CALL_ID]&USER_ID=1269&DURATION=148&STATUS_CODE=200&ADD_TO_CHAT=0",
            "#0 k002a telephony.externalCall.attachRecord?CALL_ID=$result[k000r][CALL_ID]&RECORD_URL=https%3A%2F%2Frec.example.com%2F1.mp3",
        ]
    );
}

#[test]
fn an_end_without_a_known_call_id_registers_again_and_a_cached_one_does_not() {
    let mut plan = BatchPlan::default();
    plan.finish(0, &call("1.2", Some("missed"), false), &config(), None);
    plan.finish(
        1,
        &call("1.3", Some("missed"), false),
        &config(),
        Some("externalCall.abc"),
    );
    let lines = render(plan);
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("#0 k000r telephony.externalcall.register?"));
    assert!(lines[1].starts_with("#0 k001f telephony.externalcall.finish?CALL_ID=$result[k000r][CALL_ID]&USER_ID=1269&DURATION=0&STATUS_CODE=304"));
    assert!(
        lines[2].starts_with("#0 k002f telephony.externalcall.finish?CALL_ID=externalCall.abc&")
    );
}

#[test]
fn batches_hold_at_most_fifty_commands() {
    let mut plan = BatchPlan::default();
    for idx in 0..40 {
        plan.finish(
            idx,
            &call(&format!("1.{idx}"), Some("answered"), false),
            &config(),
            None,
        );
    }
    let requests = plan.into_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.commands.len() <= MAX_COMMANDS));
    assert_eq!(requests[0].commands.len(), 50);
    assert_eq!(requests.iter().map(|r| r.jobs.len()).sum::<usize>(), 40);
}

#[test]
fn outcomes_map_to_status_codes() {
    let cases = [
        ("inbound", "answered", None, "200"),
        ("inbound", "missed", None, "304"),
        ("inbound", "abandoned", None, "304"),
        ("outbound", "missed", None, "603-S"),
        ("outbound", "busy", None, "486"),
        ("outbound", "failed", Some(19), "480"),
        ("outbound", "failed", Some(1), "404"),
        ("outbound", "failed", Some(99), "OTHER"),
    ];
    for (direction, outcome, cause, expected) in cases {
        let mut c = call("1", Some(outcome), false);
        c.direction = direction.to_owned();
        c.hangup_cause = cause;
        assert_eq!(status_code(&c), expected, "{direction} {outcome} {cause:?}");
    }
}
