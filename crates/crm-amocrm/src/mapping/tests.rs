use super::*;
use outbox::call::NumberKind;

fn call(outcome: &str, direction: &str, number: Option<&str>) -> CallDto {
    CallDto {
        call_id: "1718010001.7".to_owned(),
        direction: direction.to_owned(),
        customer_number: number.map(str::to_owned),
        customer_kind: if number.is_some() {
            NumberKind::E164
        } else {
            NumberKind::Withheld
        },
        customer_name: None,
        line: None,
        started_at: chrono::DateTime::from_timestamp(1_718_010_001, 0).unwrap_or_default(),
        answered_at: None,
        ended_at: None,
        outcome: Some(outcome.to_owned()),
        agent: Some("101".to_owned()),
        answered_by: Some("101".to_owned()),
        originator: None,
        agents_rang: vec![],
        queue: None,
        wait_secs: 2,
        talk_secs: 148,
        hold_secs: 0,
        recording_url: Some("https://rec.example.com/1.mp3".to_owned()),
        hangup_cause: None,
        degraded: false,
    }
}

fn settings() -> MapSettings {
    MapSettings {
        source: "kommutator".to_owned(),
        users: [("101".to_owned(), 8_375_357)].into_iter().collect(),
        default_user_id: Some(1),
    }
}

#[test]
fn statuses() {
    let cases = [
        ("answered", 4),
        ("missed", 6),
        ("abandoned", 6),
        ("busy", 7),
        ("voicemail", 1),
        ("failed", 3),
    ];
    for (outcome, status) in cases {
        assert_eq!(
            call_status(&call(outcome, "inbound", Some("+79161234567"))),
            status,
            "{outcome}"
        );
    }
}

#[test]
fn element_matches_the_documented_example() {
    let element = call_element(
        &call("answered", "inbound", Some("+79161234567")),
        0,
        &settings(),
    );
    assert_eq!(
        element,
        Some(
            json!({"direction":"inbound","phone":"+79161234567","duration":148,
            "source":"kommutator","uniq":"1718010001.7","call_status":4,
            "call_result":"Answered by 101","created_at":1718010001,"request_id":"0",
            "link":"https://rec.example.com/1.mp3","responsible_user_id":8375357,
            "created_by":8375357})
        )
    );
    assert_eq!(
        call_element(&call("missed", "inbound", None), 0, &settings()),
        None
    );
}

#[test]
fn batch_results_per_element() {
    let answer = json!({"_embedded":{"calls":[{"id":1,"request_id":"0"},{"id":2,"request_id":"2"}],
        "errors":[{"request_id":"1","detail":"bad"}]}});
    let results = batch_results(&answer, 4);
    assert!(results[0].is_ok());
    assert!(
        matches!(&results[1], Err(ConnectorError::Rejected { message }) if message.contains("bad"))
    );
    assert!(results[2].is_ok());
    assert!(matches!(&results[3], Err(ConnectorError::Rejected { .. })));
}

#[test]
fn contacts_are_read() {
    let answer = json!({"_embedded":{"contacts":[
        {"id":8694432,"name":"Ivan Petrov","responsible_user_id":8375357},
        {"name":"no id"}]}});
    let found = contacts("amo", &answer);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entity_id, "8694432");
    assert_eq!(found[0].responsible.as_deref(), Some("8375357"));
    assert!(contacts("amo", &json!(null)).is_empty());
}
