//! Call snapshots → Bitrix24 batch commands, and batch answers → job results.
//!
//! Pure functions; the request/answer shapes follow `telephony.externalcall.*` as documented.

use std::collections::HashMap;

use outbox::call::NumberKind;
use outbox::{CallDto, ConnectorError, CrmCustomer, ErrorKind};
use serde_json::Value;

use crate::client::{lenient_u64, B24Error, BatchAnswer};
use crate::Config;

/// The most commands Bitrix24 runs in one `batch`.
pub const MAX_COMMANDS: usize = 50;

/// What one job turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    /// Index into the delivered jobs.
    pub job_idx: usize,
    /// Kommutator call id.
    pub call_id: String,
    /// The command whose result carries the `CALL_ID` (a register), if one was sent.
    pub register_key: Option<String>,
    /// The finish command, for the end of a call.
    pub finish_key: Option<String>,
    /// The attachRecord command, if the call has a recording.
    pub attach_key: Option<String>,
    /// The `CALL_ID` the finish used from the cache (no register sent).
    pub cached_call_id: Option<String>,
    /// After this job the call is finished: drop it from the cache.
    pub forget_after: bool,
}

/// One `batch` request.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// `(key, "method?query")`, in execution order.
    pub commands: Vec<(String, String)>,
    /// The jobs it carries.
    pub jobs: Vec<PlannedJob>,
}

/// Packs jobs into as few requests as possible, in order.
#[derive(Debug, Default)]
pub struct BatchPlan {
    requests: Vec<Request>,
    next_key: usize,
    /// call id → register key in the *current* (last) request.
    registered_here: HashMap<String, String>,
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, value);
    }
    out.finish()
}

/// `PHONE_NUMBER`: digits of the E.164 form (as Bitrix24 stores them), else what was received.
pub fn phone_param(call: &CallDto) -> String {
    match (call.customer_kind, call.customer_number.as_deref()) {
        (NumberKind::E164, Some(number)) => number.trim_start_matches('+').to_owned(),
        (_, Some(number)) => number.to_owned(),
        (_, None) => "anonymous".to_owned(),
    }
}

/// `USER_ID` for a mapped extension or the default user, else `USER_PHONE_INNER`.
pub fn user_param(extension: Option<&str>, config: &Config) -> (&'static str, String) {
    match extension {
        Some(ext) => match config.users.get(ext) {
            Some(id) => ("USER_ID", id.to_string()),
            None => ("USER_PHONE_INNER", ext.to_owned()),
        },
        None => ("USER_ID", config.default_user_id.to_string()),
    }
}

/// `TYPE`: 1 outgoing, 2 incoming.
pub fn type_param(call: &CallDto) -> &'static str {
    if call.is_inbound() {
        "2"
    } else {
        "1"
    }
}

/// `STATUS_CODE` of `finish` from the outcome (and the Q.850 cause of a failed call).
pub fn status_code(call: &CallDto) -> &'static str {
    match call.outcome.as_deref() {
        Some("answered") => "200",
        Some("missed") | Some("abandoned") if !call.is_inbound() => "603-S",
        Some("missed") | Some("abandoned") | Some("voicemail") => "304",
        Some("busy") => "486",
        Some("failed") => match call.hangup_cause {
            Some(1) | Some(28) => "404",
            Some(17) => "486",
            Some(18) | Some(19) => "480",
            Some(34) | Some(38) | Some(41) | Some(42) => "503",
            _ => "OTHER",
        },
        _ => "OTHER",
    }
}

/// The register command.
pub fn register_command(call: &CallDto, config: &Config) -> String {
    // The card pops for the agent who placed an outbound call; an inbound call is registered
    // to the default user until an agent answers (finish then credits that agent).
    let user = if call.is_inbound() {
        user_param(None, config)
    } else {
        user_param(call.originator.as_deref().or(call.agent.as_deref()), config)
    };
    let mut pairs = vec![
        (user.0, user.1),
        ("PHONE_NUMBER", phone_param(call)),
        ("TYPE", type_param(call).to_owned()),
        (
            "CALL_START_DATE",
            call.started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        ),
        (
            "CRM_CREATE",
            if config.crm_create { "1" } else { "0" }.to_owned(),
        ),
        ("SHOW", if config.show_card { "1" } else { "0" }.to_owned()),
        ("EXTERNAL_CALL_ID", call.call_id.clone()),
    ];
    if let Some(line) = call.line.clone().or_else(|| config.line_number.clone()) {
        pairs.push(("LINE_NUMBER", line));
    }
    format!("telephony.externalcall.register?{}", query(&pairs))
}

/// The finish command; `call_id_ref` is a `CALL_ID` or a batch reference to one.
pub fn finish_command(call: &CallDto, config: &Config, call_id_ref: &str) -> String {
    let user = user_param(call.responsible_agent(), config);
    let duration = if call.is_answered() {
        call.talk_secs
    } else {
        0
    };
    let mut pairs = vec![
        (user.0, user.1),
        ("DURATION", duration.to_string()),
        ("STATUS_CODE", status_code(call).to_owned()),
        ("ADD_TO_CHAT", "0".to_owned()),
    ];
    if !call.is_answered() {
        if let Some(outcome) = &call.outcome {
            pairs.push(("FAILED_REASON", outcome.clone()));
        }
    }
    // The reference must reach Bitrix24 unencoded so that it is substituted.
    format!(
        "telephony.externalcall.finish?CALL_ID={}&{}",
        encode_ref(call_id_ref),
        query(&pairs)
    )
}

/// The attachRecord command.
pub fn attach_command(url: &str, call_id_ref: &str) -> String {
    format!(
        "telephony.externalCall.attachRecord?CALL_ID={}&{}",
        encode_ref(call_id_ref),
        query(&[("RECORD_URL", url.to_owned())])
    )
}

/// Batch references (`$result[r0][CALL_ID]`) go as they are; real ids are encoded.
fn encode_ref(call_id_ref: &str) -> String {
    if call_id_ref.starts_with("$result[") {
        call_id_ref.to_owned()
    } else {
        form_urlencoded::byte_serialize(call_id_ref.as_bytes()).collect()
    }
}

fn reference(key: &str) -> String {
    format!("$result[{key}][CALL_ID]")
}

impl BatchPlan {
    /// Keys sort in command order (`k000r`, `k001f`, …): a JSON object's key order is not
    /// guaranteed to survive serialization, and Bitrix24 runs commands in the order it reads.
    fn key(&mut self, suffix: char) -> String {
        let key = format!("k{:03}{suffix}", self.next_key);
        self.next_key += 1;
        key
    }

    /// The request with room for `n` more commands.
    fn request_for(&mut self, n: usize) -> &mut Request {
        let full = self
            .requests
            .last()
            .is_none_or(|r| r.commands.len() + n > MAX_COMMANDS);
        if full {
            self.requests.push(Request::default());
            self.registered_here.clear();
        }
        self.requests
            .last_mut()
            .expect("a request was just ensured")
    }

    /// Plans the start of a call.
    pub fn register(&mut self, job_idx: usize, call: &CallDto, config: &Config) {
        let key = self.key('r');
        let command = register_command(call, config);
        self.request_for(1).commands.push((key.clone(), command));
        self.registered_here
            .insert(call.call_id.clone(), key.clone());
        self.requests
            .last_mut()
            .expect("just pushed")
            .jobs
            .push(PlannedJob {
                job_idx,
                call_id: call.call_id.clone(),
                register_key: Some(key),
                finish_key: None,
                attach_key: None,
                cached_call_id: None,
                forget_after: false,
            });
    }

    /// Plans the end of a call: registers again unless the `CALL_ID` is known (in the cache,
    /// or registered earlier in the same request), then finishes and attaches the recording.
    pub fn finish(
        &mut self,
        job_idx: usize,
        call: &CallDto,
        config: &Config,
        cached: Option<&str>,
    ) {
        let attach = usize::from(call.recording_url.is_some());
        let room = |plan: &BatchPlan, n: usize| {
            plan.requests
                .last()
                .is_some_and(|r| r.commands.len() + n <= MAX_COMMANDS)
        };
        let in_request = self
            .registered_here
            .get(&call.call_id)
            .cloned()
            .filter(|_| room(self, 1 + attach));
        let (register_key, call_ref, register_needed) = match (in_request, cached) {
            (Some(key), _) => {
                let r = reference(&key);
                (Some(key), r, false)
            }
            (None, Some(id)) => (None, id.to_owned(), false),
            (None, None) => {
                let key = self.key('r');
                let r = reference(&key);
                (Some(key), r, true)
            }
        };
        let finish_key = self.key('f');
        let attach_key = call.recording_url.as_ref().map(|_| self.key('a'));
        let request = self.request_for(1 + attach + usize::from(register_needed));
        if register_needed {
            if let Some(key) = &register_key {
                request
                    .commands
                    .push((key.clone(), register_command(call, config)));
            }
        }
        request
            .commands
            .push((finish_key.clone(), finish_command(call, config, &call_ref)));
        if let (Some(key), Some(url)) = (&attach_key, &call.recording_url) {
            request
                .commands
                .push((key.clone(), attach_command(url, &call_ref)));
        }
        request.jobs.push(PlannedJob {
            job_idx,
            call_id: call.call_id.clone(),
            cached_call_id: if register_key.is_some() {
                None
            } else {
                cached.map(str::to_owned)
            },
            register_key,
            finish_key: Some(finish_key),
            attach_key,
            forget_after: true,
        });
    }

    /// The requests, in order.
    pub fn into_requests(self) -> Vec<Request> {
        self.requests
    }
}

/// A command error as a job failure.
pub fn command_error(error: &B24Error) -> ConnectorError {
    let message = format!(
        "{}: {}",
        error.code,
        outbox::http::shorten(&error.description)
    );
    match error.code.as_str() {
        "OPERATION_TIME_LIMIT" | "QUERY_LIMIT_EXCEEDED" => {
            ConnectorError::transient(ErrorKind::RateLimited, message)
        }
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => {
            ConnectorError::transient(ErrorKind::Unavailable, message)
        }
        "WRONG_AUTH_TYPE" | "insufficient_scope" | "NO_AUTH_FOUND" => {
            ConnectorError::transient(ErrorKind::Auth, message)
        }
        _ => ConnectorError::rejected(message),
    }
}

/// The result of one planned job: the Bitrix24 `CALL_ID` on success.
pub fn job_result(
    job: &PlannedJob,
    answer: &BatchAnswer,
) -> Result<Option<String>, ConnectorError> {
    let mut call_id = job.cached_call_id.clone();
    if let Some(key) = &job.register_key {
        if let Some(error) = answer.errors.get(key) {
            return Err(command_error(error));
        }
        call_id = answer
            .results
            .get(key)
            .and_then(|r| r.get("CALL_ID"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if call_id.is_none() {
            return Err(ConnectorError::transient(
                ErrorKind::Protocol,
                "register returned no CALL_ID",
            ));
        }
    }
    if let Some(key) = &job.finish_key {
        if let Some(error) = answer.errors.get(key) {
            if job.cached_call_id.is_some() && error.description.contains("not found") {
                // The cached CALL_ID is unknown to the portal (e.g. registered by another
                // node's process that has since restarted): register again next time.
                return Err(ConnectorError::NotReady {
                    message: format!("{}: {}", error.code, error.description),
                });
            }
            return Err(command_error(error));
        }
        if !answer.results.contains_key(key) {
            return Err(ConnectorError::transient(
                ErrorKind::Protocol,
                "finish returned no result",
            ));
        }
    }
    if let Some(key) = &job.attach_key {
        if let Some(error) = answer.errors.get(key) {
            // The call itself is logged; a recording Bitrix24 cannot fetch must not repeat it.
            tracing::warn!(call_id = %job.call_id, error = %error.code, "Bitrix24 did not attach the recording.");
        }
    }
    Ok(call_id)
}

/// `telephony.externalCall.searchCrmEntities` results → customers.
pub fn customers(connector: &str, found: &Value) -> Vec<CrmCustomer> {
    found
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some(CrmCustomer {
                        connector: connector.to_owned(),
                        entity_type: item.get("CRM_ENTITY_TYPE")?.as_str()?.to_owned(),
                        entity_id: item.get("CRM_ENTITY_ID").and_then(lenient_u64)?.to_string(),
                        name: item.get("NAME").and_then(Value::as_str).map(str::to_owned),
                        responsible: item
                            .get("ASSIGNED_BY_ID")
                            .and_then(lenient_u64)
                            .map(|id| id.to_string()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
