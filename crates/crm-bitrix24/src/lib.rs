//! Bitrix24 external telephony ("externalCall") connector.
//!
//! What it does, per call: `telephony.externalcall.register` when the call starts (Bitrix24
//! pops its call card and finds or creates the CRM client), `telephony.externalcall.finish`
//! with the outcome and talk time when it ends, then `telephony.externalCall.attachRecord` with
//! the recording link. Jobs go out in `batch` requests of up to 50 commands, so the portal's
//! leaky bucket (2 requests/s, 50 burst) carries dozens of calls per second; the end of a call
//! refers to its `CALL_ID` with a batch result reference (`$result[r3][CALL_ID]`) when the
//! register is in the same batch.
//!
//! Exactly once: register is idempotent while a call is unfinished (Bitrix24 returns the same
//! `CALL_ID` for the same `EXTERNAL_CALL_ID`), so the end of a call can always re-register to
//! learn its `CALL_ID` after a restart. Finish is not idempotent, so a job that may have been
//! sent before (`attempts > 1`: the process died mid-delivery, or the answer was lost) is first
//! looked up in the call statistics (`voximplant.statistic.get` filtered by
//! `EXTERNAL_CALL_ID`); a call found there is not sent again. The statistics filter on
//! `EXTERNAL_CALL_ID` is an assumption drawn from the statistics row carrying that field.
//!
//! Auth: inbound-webhook mode (`https://portal/rest/<user>/<code>/`) or OAuth-app mode with
//! the access token refreshed once on `expired_token` and the rotated refresh token stored in
//! `crm_tokens` (compare-and-swap, so two nodes never both spend it).
//! Inbound events: [`events`] serves `ONEXTERNALCALLSTART` (click-to-call from the CRM) and
//! hands a [`events::ClickToCall`] to whoever executes calls on the PBX. That call is
//! registered by Bitrix24 itself: the executor links the PBX call id it chose to Bitrix24's
//! `CALL_ID` in storage (`crm_call_links`) before it originates, and this connector then skips
//! the register and finishes that `CALL_ID`, in this process or after a restart.
//!
//! What it is not: a general Bitrix24 SDK; only the methods a PBX connector needs.

mod client;
pub mod events;
mod mapping;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox::{
    BoxFuture, Connector, ConnectorError, CrmCustomer, Delivery, ErrorKind, Job, RateLimiter, Step,
};

pub use client::{Auth, Client, OAuthApp};

/// The connector's configuration (the binary fills it from `[[crm.bitrix24]]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Instance name (outbox connector column), e.g. `bitrix24`.
    pub name: String,
    /// How requests are authorized.
    pub auth: Auth,
    /// Bitrix24 user id credited when no agent of the call maps to a user.
    pub default_user_id: u64,
    /// Agent extension → Bitrix24 user id. Extensions not listed are sent as
    /// `USER_PHONE_INNER` (the user's internal number in Bitrix24).
    pub users: HashMap<String, u64>,
    /// `CRM_CREATE`: let Bitrix24 create a lead for an unknown number.
    pub crm_create: bool,
    /// `SHOW`: pop the call card for the registered user.
    pub show_card: bool,
    /// `LINE_NUMBER` sent when the call has no line of its own.
    pub line_number: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
    /// Requests per second (the portal drains 2/s; Enterprise 5/s).
    pub rate_per_sec: f64,
    /// Requests allowed at once before the rate applies (the portal blocks above 50).
    pub burst: u32,
    /// Jobs handed over per delivery (several become one `batch` request).
    pub max_jobs_per_delivery: usize,
}

/// A configuration or startup problem.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// The connector; see the crate documentation.
pub struct Bitrix24 {
    config: Config,
    client: Client,
    /// Kommutator call id → Bitrix24 `CALL_ID` of calls registered by this process, so the end
    /// of a call needs no second register. Bounded; a miss only costs one batch command.
    call_ids: Mutex<HashMap<String, String>>,
    /// Where click-to-call links live (`crm_call_links`): calls Bitrix24 registered itself.
    storage: storage::Storage,
}

/// Longest the `CALL_ID` cache gets before it is cleared.
const CALL_ID_CACHE: usize = 20_000;

/// Builds the connector. `storage` keeps the OAuth tokens.
pub fn build(config: Config, storage: storage::Storage) -> Result<Arc<Bitrix24>, BuildError> {
    if config.default_user_id == 0 {
        return Err(BuildError::Invalid(
            "default_user_id must be a Bitrix24 user id".to_owned(),
        ));
    }
    let limiter = RateLimiter::new(config.rate_per_sec, config.burst);
    let client = Client::new(
        &config.name,
        config.auth.clone(),
        config.timeout,
        limiter,
        storage.clone(),
    )
    .map_err(BuildError::Invalid)?;
    Ok(Arc::new(Bitrix24 {
        config,
        client,
        call_ids: Mutex::new(HashMap::new()),
        storage,
    }))
}

impl Bitrix24 {
    /// The HTTP client, for the `show`/`hide` card calls and tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn cached_call_id(&self, call_id: &str) -> Option<String> {
        self.call_ids.lock().ok()?.get(call_id).cloned()
    }

    fn remember_call_id(&self, call_id: &str, b24_call_id: &str) {
        if let Ok(mut map) = self.call_ids.lock() {
            if map.len() >= CALL_ID_CACHE {
                map.clear();
            }
            map.insert(call_id.to_owned(), b24_call_id.to_owned());
        }
    }

    fn forget_call_id(&self, call_id: &str) {
        if let Ok(mut map) = self.call_ids.lock() {
            map.remove(call_id);
        }
    }

    async fn deliver_all(&self, jobs: &[Job]) -> Vec<Delivery> {
        let mut results: Vec<Option<Delivery>> = vec![None; jobs.len()];
        // Calls Bitrix24 started (click-to-call) are registered already, under its CALL_ID.
        let ids: Vec<&str> = jobs
            .iter()
            .map(|j| j.payload.call.call_id.as_str())
            .collect();
        let links = match self.storage.crm_call_links(&self.config.name, &ids).await {
            Ok(links) => links,
            Err(err) => {
                let err = ConnectorError::transient(
                    ErrorKind::Unavailable,
                    format!("cannot read click-to-call links from storage: {err}"),
                );
                return vec![Err(err); jobs.len()];
            }
        };
        let linked = |call_id: &str| links.get(call_id).map(String::as_str);
        // Jobs that may have reached Bitrix24 already: look them up first.
        let retried: Vec<(&str, Option<&str>)> = jobs
            .iter()
            .filter(|j| j.attempts > 1)
            .map(|j| {
                let id = j.payload.call.call_id.as_str();
                (id, linked(id))
            })
            .collect();
        let finished = if retried.is_empty() {
            Default::default()
        } else {
            match self.client.finished_calls(&retried).await {
                Ok(finished) => finished,
                Err(err) => return vec![Err(err); jobs.len()],
            }
        };
        let mut plan = mapping::BatchPlan::default();
        for (idx, job) in jobs.iter().enumerate() {
            let call = &job.payload.call;
            if finished.contains(call.call_id.as_str()) {
                tracing::info!(call_id = %call.call_id, step = job.step.as_str(), "The call is already finished in Bitrix24; not sending it again.");
                results[idx] = Some(Ok(()));
                continue;
            }
            let link = linked(&call.call_id);
            match job.step {
                // Bitrix24 registered its own click-to-call and shows its card: a second
                // register would make a second call in the CRM.
                Step::CallStarted if link.is_some() => results[idx] = Some(Ok(())),
                Step::CallStarted => plan.register(idx, call, &self.config),
                Step::CallEnded => {
                    let known = link
                        .map(str::to_owned)
                        .or_else(|| self.cached_call_id(&call.call_id));
                    plan.finish(idx, call, &self.config, known.as_deref());
                }
                // Never planned for Bitrix24 (its steps do not include it).
                Step::Event => {
                    results[idx] = Some(Err(ConnectorError::rejected(
                        "Bitrix24 takes no domain events",
                    )));
                }
            }
        }
        for chunk in plan.into_requests() {
            match self.client.batch(&chunk.commands).await {
                Ok(answer) => {
                    for outcome in chunk.jobs {
                        let res = mapping::job_result(&outcome, &answer);
                        if let Ok(Some(b24_call_id)) = &res {
                            if outcome.forget_after {
                                self.forget_call_id(&outcome.call_id);
                            } else {
                                self.remember_call_id(&outcome.call_id, b24_call_id);
                            }
                        }
                        if let Some(slot) = results.get_mut(outcome.job_idx) {
                            *slot = Some(res.map(|_| ()));
                        }
                    }
                }
                Err(err) => {
                    for outcome in chunk.jobs {
                        if let Some(slot) = results.get_mut(outcome.job_idx) {
                            *slot = Some(Err(err.clone()));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::transient(
                        ErrorKind::Protocol,
                        "job was not planned",
                    ))
                })
            })
            .collect()
    }
}

impl Connector for Bitrix24 {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn steps(&self) -> &'static [Step] {
        &[Step::CallStarted, Step::CallEnded]
    }

    fn max_batch(&self) -> usize {
        self.config.max_jobs_per_delivery.max(1)
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.client
                .call("profile", serde_json::json!({}))
                .await
                .map(|_| ())
        })
    }

    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        Box::pin(async move {
            let found = self
                .client
                .call(
                    "telephony.externalCall.searchCrmEntities",
                    serde_json::json!({ "PHONE_NUMBER": phone.digits() }),
                )
                .await?;
            Ok(mapping::customers(&self.config.name, &found))
        })
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(self.deliver_all(jobs))
    }
}
