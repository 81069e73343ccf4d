//! Pure mapping between Kommutator calls and amoCRM v4 JSON: the `/api/v4/calls` element of a
//! call, the per-element results of a batch, and contacts from a search. No I/O.

use std::collections::HashMap;

use outbox::{CallDto, ConnectorError, CrmCustomer, Delivery};
use serde_json::{json, Map, Value};

/// What the mapping needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct MapSettings {
    /// `source` shown in the card.
    pub source: String,
    /// Agent extension → amoCRM user id.
    pub users: HashMap<String, u64>,
    /// User credited when no agent maps.
    pub default_user_id: Option<u64>,
}

/// `call_status`: 4 conversation held, 6 not reached, 7 busy, 1 left a message, 3 not
/// available.
pub fn call_status(call: &CallDto) -> u8 {
    match call.outcome.as_deref() {
        Some("answered") => 4,
        Some("busy") => 7,
        Some("voicemail") => 1,
        Some("failed") => 3,
        _ => 6,
    }
}

fn call_result(call: &CallDto) -> String {
    let who = call.answered_by.as_deref().or(call.agent.as_deref());
    match (call.outcome.as_deref(), who) {
        (Some("answered"), Some(agent)) => format!("Answered by {agent}"),
        (Some("answered"), None) => "Answered".to_owned(),
        (Some("missed"), _) => "Missed".to_owned(),
        (Some("abandoned"), _) => "Caller hung up before an answer".to_owned(),
        (Some("voicemail"), _) => "Voicemail".to_owned(),
        (Some("busy"), _) => "Busy".to_owned(),
        (Some("failed"), _) => "Failed".to_owned(),
        (Some(other), _) => other.to_owned(),
        (None, _) => "Unknown".to_owned(),
    }
}

/// The `/api/v4/calls` element of a finished call, or `None` when the call has no phone
/// number amoCRM could match (withheld, extension, SIP URI): amoCRM files calls by number only.
pub fn call_element(call: &CallDto, request_id: usize, settings: &MapSettings) -> Option<Value> {
    let phone = call.customer_e164()?;
    let mut element = Map::new();
    element.insert(
        "direction".into(),
        json!(if call.is_inbound() {
            "inbound"
        } else {
            "outbound"
        }),
    );
    element.insert("phone".into(), json!(phone.to_string()));
    element.insert("duration".into(), json!(call.talk_secs.max(0)));
    element.insert("source".into(), json!(settings.source));
    element.insert("uniq".into(), json!(call.call_id));
    element.insert("call_status".into(), json!(call_status(call)));
    element.insert("call_result".into(), json!(call_result(call)));
    element.insert("created_at".into(), json!(call.started_at.timestamp()));
    element.insert("request_id".into(), json!(request_id.to_string()));
    if let Some(link) = &call.recording_url {
        element.insert("link".into(), json!(link));
    }
    let user = call
        .responsible_agent()
        .and_then(|agent| settings.users.get(agent).copied())
        .or(settings.default_user_id);
    if let Some(user) = user {
        element.insert("responsible_user_id".into(), json!(user));
        element.insert("created_by".into(), json!(user));
    }
    Some(Value::Object(element))
}

fn request_id_of(value: &Value) -> Option<String> {
    match value.get("request_id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The result of every element `0..count` of a `/api/v4/calls` answer. An element in
/// `_embedded.calls` was logged; one in `_embedded.errors`, or missing (amoCRM drops calls to
/// numbers no contact or company has), is refused for good.
pub fn batch_results(answer: &Value, count: usize) -> Vec<Delivery> {
    let embedded = answer.get("_embedded");
    let logged: Vec<String> = embedded
        .and_then(|e| e.get("calls"))
        .and_then(Value::as_array)
        .map(|calls| calls.iter().filter_map(request_id_of).collect())
        .unwrap_or_default();
    let errors: Vec<(String, String)> = embedded
        .and_then(|e| e.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| Some((request_id_of(e)?, outbox::http::shorten(&e.to_string()))))
                .collect()
        })
        .unwrap_or_default();
    (0..count)
        .map(|idx| {
            let id = idx.to_string();
            if logged.contains(&id) {
                Ok(())
            } else if let Some((_, detail)) = errors.iter().find(|(rid, _)| *rid == id) {
                Err(ConnectorError::rejected(format!(
                    "amoCRM refused the call: {detail}"
                )))
            } else {
                Err(ConnectorError::rejected(
                    "amoCRM did not log the call (no contact or company has this number)",
                ))
            }
        })
        .collect()
}

/// Contacts of a `GET /api/v4/contacts` answer.
pub fn contacts(connector: &str, answer: &Value) -> Vec<CrmCustomer> {
    answer
        .get("_embedded")
        .and_then(|e| e.get("contacts"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| {
                    let id = c.get("id")?.as_u64()?;
                    Some(CrmCustomer {
                        connector: connector.to_owned(),
                        entity_type: "contacts".to_owned(),
                        entity_id: id.to_string(),
                        name: c.get("name").and_then(Value::as_str).map(str::to_owned),
                        responsible: c
                            .get("responsible_user_id")
                            .and_then(Value::as_u64)
                            .map(|u| u.to_string()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
