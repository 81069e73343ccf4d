use cti_core::{
    CallId, CallRecord, Direction, Extension, NumberKind, Outcome, PhoneNumber, Timestamp,
};

use super::*;

fn record(direction: Direction, number: Option<&str>, outcome: Option<Outcome>) -> CallRecord {
    let started = Timestamp::from_micros(1_718_010_001_000_000);
    CallRecord {
        call_id: CallId::new("1718010001.101"),
        direction,
        customer_number: number.map(|n| PhoneNumber {
            text: n.to_owned(),
            kind: NumberKind::National,
        }),
        customer_name: None,
        line: None,
        started_at: started,
        answered_at: None,
        ended_at: outcome.map(|_| Timestamp::from_micros(started.as_micros() + 30_000_000)),
        outcome,
        answered_by: None,
        agent: Some(Extension::new("101")),
        originator: None,
        agents_rang: vec![],
        queue: None,
        queues: vec![],
        wait_us: 0,
        queue_wait_us: 0,
        talk_us: 29_600_000,
        hold_us: 0,
        transfers: vec![],
        segments: vec![],
        agent_talk: vec![],
        recording: None,
        application: None,
        degraded: false,
        short_abandon: false,
        hangup_cause: Some(16),
        linkedids: vec![],
    }
}

fn context() -> PlanContext {
    PlanContext {
        targets: vec![
            Target {
                connector: "b24".to_owned(),
                steps: vec![Step::CallStarted, Step::CallEnded],
            },
            Target {
                connector: "amo".to_owned(),
                steps: vec![Step::CallEnded],
            },
        ],
        region: Region::parse("RU").expect("RU is a region"),
    }
}

/// Renders the planned jobs as `connector step key number` lines.
fn plan(effect: &Effect) -> Vec<String> {
    jobs_for(effect, &context(), DateTime::<Utc>::UNIX_EPOCH)
        .into_iter()
        .map(|job| {
            let payload: JobPayload = serde_json::from_value(job.payload).expect("payload decodes");
            format!(
                "{} {} {} {}",
                job.connector,
                job.step,
                job.idempotency_key,
                payload
                    .call
                    .customer_number
                    .unwrap_or_else(|| "-".to_owned())
            )
        })
        .collect()
}

#[test]
fn effects_become_jobs_per_connector_and_step() {
    let cases: Vec<(Effect, Vec<&str>)> = vec![
        (
            Effect::CallStarted(Box::new(record(
                Direction::Inbound,
                Some("8 (916) 123-45-67"),
                None,
            ))),
            vec!["b24 call_started b24:1718010001.101:call_started +79161234567"],
        ),
        (
            Effect::CallEnded(Box::new(record(
                Direction::Inbound,
                Some("79161234567"),
                Some(Outcome::Answered),
            ))),
            vec![
                "b24 call_ended b24:1718010001.101:call_ended +79161234567",
                "amo call_ended amo:1718010001.101:call_ended +79161234567",
            ],
        ),
        // No number yet: no card; the end is still logged.
        (
            Effect::CallStarted(Box::new(record(Direction::Outbound, None, None))),
            vec![],
        ),
        (
            Effect::CallEnded(Box::new(record(
                Direction::Inbound,
                None,
                Some(Outcome::Missed),
            ))),
            vec![
                "b24 call_ended b24:1718010001.101:call_ended -",
                "amo call_ended amo:1718010001.101:call_ended -",
            ],
        ),
        // Agent to agent: nothing for CRMs.
        (
            Effect::CallEnded(Box::new(record(
                Direction::Internal,
                Some("102"),
                Some(Outcome::Answered),
            ))),
            vec![],
        ),
        (
            Effect::AgentConnected {
                call_id: CallId::new("1718010001.101"),
                agent: Extension::new("101"),
            },
            vec![],
        ),
    ];
    for (effect, expected) in cases {
        assert_eq!(plan(&effect), expected, "for {effect:?}");
    }
}

#[test]
fn the_same_effect_plans_the_same_keys() {
    let effect = Effect::CallEnded(Box::new(record(
        Direction::Inbound,
        Some("+79161234567"),
        Some(Outcome::Answered),
    )));
    assert_eq!(plan(&effect), plan(&effect));
}
