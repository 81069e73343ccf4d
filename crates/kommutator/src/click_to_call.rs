//! Click-to-call requested by a CRM (Bitrix24 `ONEXTERNALCALLSTART`), placed on the PBX.
//!
//! The CRM has already registered the call under its own id, so it must be finished, never
//! registered again. For each request this module:
//! 1. picks the PBX call id in advance (Originate `ChannelId`: the originated channel's
//!    Uniqueid becomes the call's Linkedid, which is the tracker's call id);
//! 2. stores the link call id → CRM call id (`crm_call_links`) *before* originating, so the
//!    connector finishes the CRM's call even if Kommutator restarts mid-call, and a repeated
//!    event (same CRM id) places no second call;
//! 3. originates agent-first through the CTI hub (the same path as the panel's click-to-call);
//! 4. when the PBX refuses the call before any channel exists (not connected, no such phone),
//!    writes the CRM's call as failed through the outbox, so it does not stay open in the CRM.
//!
//! Everything else (the call's progress, its record, its finish with the CRM's id) goes the
//! usual way: AMI → tracker → storage + outbox → connector.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_bitrix24::events::ClickToCall;
use outbox::call::NumberKind;
use outbox::{CallDto, JobPayload, PlanContext, Step};
use server::cti::{CommandError, Hub};
use tokio::sync::{mpsc, watch};

/// How long after a refused originate the tracker may still report the call's channels; only
/// a call it never saw is written as failed.
const REFUSED_GRACE: Duration = Duration::from_secs(5);
/// How long a link to the CRM's call is kept: far beyond any call, and beyond the outbox's
/// dead letters an administrator may still retry.
const KEEP_LINKS: chrono::TimeDelta = chrono::TimeDelta::days(90);
/// How often old links are forgotten.
const SWEEP_LINKS: Duration = Duration::from_secs(3600);
/// Click-to-calls being placed at once. Each waits for its agent to answer, up to the ring
/// timeout; beyond this, requests wait in the channel, and when that is full too the event
/// endpoint answers 503 instead of piling up originates.
const MAX_PLACING: usize = 32;

/// Runs until `stop` or until every sender of `requests` is gone.
pub fn start(
    mut requests: mpsc::Receiver<ClickToCall>,
    hub: Hub,
    storage: storage::Storage,
    plan: Arc<PlanContext>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let sweep_storage = storage.clone();
    let mut sweep_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            match sweep_storage
                .forget_crm_call_links_before(Utc::now() - KEEP_LINKS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(links = n, "Forgot old click-to-call links."),
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot forget old click-to-call links; will retry.")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_LINKS) => {}
                _ = sweep_stop.changed() => break,
            }
        }
    });
    tokio::spawn(async move {
        let placing = Arc::new(tokio::sync::Semaphore::new(MAX_PLACING));
        loop {
            let permit = tokio::select! {
                permit = placing.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            let request = tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
                _ = stop.changed() => break,
            };
            // Each originate waits for the agent to answer (up to the ring timeout): one task
            // per request, so one slow agent does not hold up the others.
            let (hub, storage, plan) = (hub.clone(), storage.clone(), plan.clone());
            tokio::spawn(async move {
                place(request, hub, storage, plan).await;
                drop(permit);
            });
        }
    })
}

async fn place(request: ClickToCall, hub: Hub, storage: storage::Storage, plan: Arc<PlanContext>) {
    let Some(extension) = request.extension.clone() else {
        tracing::error!(
            connector = %request.connector,
            user_id = request.user_id,
            crm_call_id = %request.b24_call_id,
            "Click-to-call from the CRM cannot be placed: this Bitrix24 user has no extension. Map the user in `users` of the connector's configuration, or set the user's internal number in Bitrix24."
        );
        return;
    };
    let call_id = server::cti::new_call_id();
    match storage
        .link_crm_call(
            &request.connector,
            &call_id,
            &request.b24_call_id,
            Utc::now(),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(connector = %request.connector, crm_call_id = %request.b24_call_id, "The CRM sent this click-to-call again; it was placed already.");
            return;
        }
        Err(err) => {
            // Without the link the call's end would register a second CRM call: do not dial.
            tracing::error!(connector = %request.connector, crm_call_id = %request.b24_call_id, error = %err, "Click-to-call from the CRM is not placed: the link to the CRM's call cannot be stored.");
            return;
        }
    }
    tracing::info!(connector = %request.connector, %call_id, %extension, number = %request.phone, "Placing a click-to-call from the CRM.");
    let err = match hub
        .originate_for_crm(&extension, &request.phone, &call_id)
        .await
    {
        Ok(()) => return,
        Err(err) => err,
    };
    tracing::warn!(connector = %request.connector, %call_id, %extension, error = %err, "The PBX did not place the CRM's click-to-call.");
    // An unanswered agent phone still made channels the tracker ends as a call of its own;
    // only a call the PBX never started is closed here.
    tokio::time::sleep(REFUSED_GRACE).await;
    match storage
        .get_call(&storage::CallId::new(call_id.clone()))
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            let job = unplaced_call_job(&request, &extension, &call_id, &err, &plan);
            if let Err(err) = storage.enqueue(&job).await {
                tracing::error!(%call_id, error = %err, "Cannot write the failed click-to-call to the outbox; the CRM's call stays open.");
            }
        }
        Err(err) => {
            tracing::error!(%call_id, error = %err, "Cannot check whether the click-to-call reached the PBX; the CRM's call stays open.")
        }
    }
}

/// The end of a click-to-call the PBX never started, for the CRM that asked for it only
/// (it is not a PBX call: nothing is stored in `calls`). Its idempotency key is the one the
/// planner gives the call's end, so if the tracker did see the call after all, one of the two
/// jobs is kept, never both.
fn unplaced_call_job(
    request: &ClickToCall,
    extension: &str,
    call_id: &str,
    err: &CommandError,
    plan: &PlanContext,
) -> storage::NewOutboxJob {
    let now = Utc::now();
    let kind = match directory::phone::normalize(&request.phone, plan.region) {
        directory::phone::Normalized::E164(_) => NumberKind::E164,
        _ => NumberKind::Other,
    };
    let call = CallDto {
        call_id: call_id.to_owned(),
        direction: cti_core::Direction::Outbound.as_str().to_owned(),
        customer_number: Some(request.phone.clone()),
        customer_kind: kind,
        customer_name: None,
        line: request.line_number.clone(),
        started_at: now,
        answered_at: None,
        ended_at: Some(now),
        outcome: Some(cti_core::Outcome::Failed.as_str().to_owned()),
        agent: None,
        answered_by: None,
        originator: Some(extension.to_owned()),
        agents_rang: vec![extension.to_owned()],
        queue: None,
        wait_secs: 0,
        talk_secs: 0,
        hold_secs: 0,
        recording_url: None,
        hangup_cause: None,
        degraded: false,
    };
    tracing::info!(%call_id, reason = %err, "The CRM's click-to-call is closed as failed.");
    storage::NewOutboxJob {
        connector: request.connector.clone(),
        step: Step::CallEnded.as_str().to_owned(),
        call_id: Some(storage::CallId::new(call_id.to_owned())),
        idempotency_key: outbox::plan::idempotency_key(
            &request.connector,
            call_id,
            Step::CallEnded,
        ),
        payload: serde_json::to_value(JobPayload {
            v: outbox::call::PAYLOAD_VERSION,
            call,
        })
        .unwrap_or_default(),
        next_attempt_at: now,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unplaced_call_is_a_failed_outbound_call_keyed_like_the_planner() {
        let request = ClickToCall {
            connector: "b24".to_owned(),
            b24_call_id: "externalCall.1".to_owned(),
            user_id: 1269,
            extension: Some("101".to_owned()),
            phone: "+79161234567".to_owned(),
            line_number: Some("74951112233".to_owned()),
            crm_entity: None,
        };
        let plan = PlanContext {
            targets: vec![],
            region: directory::phone::Region::parse("RU").expect("RU"),
        };
        let job = unplaced_call_job(
            &request,
            "101",
            "kc2c-1",
            &CommandError::NotConnected,
            &plan,
        );
        assert_eq!(job.connector, "b24");
        assert_eq!(
            job.idempotency_key,
            outbox::plan::idempotency_key("b24", "kc2c-1", Step::CallEnded)
        );
        let payload: JobPayload = serde_json::from_value(job.payload).expect("payload");
        assert_eq!(payload.call.outcome.as_deref(), Some("failed"));
        assert_eq!(payload.call.direction, "outbound");
        assert_eq!(payload.call.customer_kind, NumberKind::E164);
        assert_eq!(payload.call.responsible_agent(), Some("101"));
        assert_eq!(payload.call.line.as_deref(), Some("74951112233"));
    }
}
