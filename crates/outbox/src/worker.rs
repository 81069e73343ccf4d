//! The outbox worker: claims due jobs of one connector, delivers them, settles them.
//!
//! Policy, in one place:
//! - A connector-wide transient failure (down, 5xx, timeout, rate limit, refused credentials)
//!   pauses the whole connector for an exponential backoff with jitter (at least the remote
//!   side's `Retry-After`), and puts the job back *with its original due time*: job order is
//!   kept across outages, so a call's end is never delivered before its start.
//! - A job that is not ready yet is retried on its own, with its own backoff.
//! - A job the remote side refused for good goes to the dead letters at once; any job still
//!   undelivered after the maximum age is dead-lettered by the sweeper ([`spawn_sweeper`]).
//! - Concurrency: `concurrency` slots claim and deliver in parallel, all sharing the pause and
//!   the connector's rate limiter. Keep one slot for CRMs whose steps of one call must stay in
//!   order (two slots may deliver a call's start and end at the same time).
//! - Survives kill -9: every claim is a lease in storage. Slot ids are stable per node
//!   (`node/connector/slot`), so on start a slot first releases the leases its previous life
//!   held instead of waiting for them to expire.
//!
//! What it is not: it does not plan jobs (see [`crate::plan`]) nor speak any CRM's protocol.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::call::{JobPayload, PAYLOAD_VERSION};
use crate::connector::{Connector, ConnectorError, Delivery, ErrorKind, EventJob, Job};
use crate::metrics::{OutboxMetrics, StatsSnapshot};
use crate::plan::Step;

/// How a connector's worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This node's id; slot ids derive from it, so keep it stable across restarts.
    pub node_id: String,
    /// Parallel delivery slots.
    pub concurrency: usize,
    /// How long a claim is leased; a job whose worker died is claimable again after this.
    pub lease: Duration,
    /// How often an idle slot looks for due jobs.
    pub poll_interval: Duration,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            node_id: "node".to_owned(),
            concurrency: 1,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Delivery counters.
    pub metrics: Arc<OutboxMetrics>,
    /// Ends after `stop` turned true and the slots finished their current delivery.
    pub task: tokio::task::JoinHandle<()>,
}

/// Exponential backoff with "equal jitter": between half and all of `initial * 2^failures`,
/// capped at `max`.
pub fn backoff(initial: Duration, max: Duration, failures: u32, rng: &mut impl Rng) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.min(20)).min(max);
    let half = exp / 2;
    half + exp.mul_f64(rng.gen_range(0.0..0.5))
}

/// The wait after a connector-wide failure: the backoff, but never shorter than `Retry-After`.
pub fn pause_for(
    settings: &WorkerSettings,
    failures: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let computed = backoff(
        settings.backoff_initial,
        settings.backoff_max,
        failures,
        rng,
    );
    match retry_after {
        // Retry-After is the remote side's exact instruction; a little jitter on top keeps
        // several nodes from coming back in the same millisecond.
        Some(after) => {
            after
                + after
                    .mul_f64(rng.gen_range(0.0..0.1))
                    .min(Duration::from_secs(5))
        }
        None => computed,
    }
}

#[derive(Debug)]
struct Pause {
    until: Option<Instant>,
    failures: u32,
}

struct Slot {
    connector: Arc<dyn Connector>,
    storage: storage::Storage,
    settings: WorkerSettings,
    metrics: Arc<OutboxMetrics>,
    pause: Arc<Mutex<Pause>>,
    worker_id: String,
}

/// Starts `settings.concurrency` slots for `connector`.
pub fn spawn(
    connector: Arc<dyn Connector>,
    storage: storage::Storage,
    settings: WorkerSettings,
    stop: watch::Receiver<bool>,
) -> WorkerHandle {
    let metrics = Arc::new(OutboxMetrics::default());
    let pause = Arc::new(Mutex::new(Pause {
        until: None,
        failures: 0,
    }));
    let mut slots = Vec::new();
    for idx in 0..settings.concurrency.max(1) {
        let slot = Slot {
            worker_id: format!("{}/{}/{idx}", settings.node_id, connector.name()),
            connector: connector.clone(),
            storage: storage.clone(),
            settings: settings.clone(),
            metrics: metrics.clone(),
            pause: pause.clone(),
        };
        slots.push(tokio::spawn(slot.run(stop.clone())));
    }
    let name = connector.name().to_owned();
    let task = tokio::spawn(async move {
        for slot in slots {
            let _ = slot.await;
        }
        tracing::info!(connector = %name, "Outbox worker stopped.");
    });
    WorkerHandle { metrics, task }
}

async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

impl Slot {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        self.release_own_leases().await;
        let mut storage_failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let paused = self.pause.lock().await.until;
            if let Some(until) = paused {
                let now = Instant::now();
                if until > now && sleep_or_stop(until - now, &mut stop).await {
                    return;
                }
            }
            let limit = u32::try_from(self.connector.max_batch().max(1)).unwrap_or(u32::MAX);
            let claimed = self
                .storage
                .claim_due(
                    self.connector.name(),
                    &self.worker_id,
                    limit,
                    Utc::now(),
                    self.settings.lease,
                )
                .await;
            let jobs = match claimed {
                Ok(jobs) => {
                    storage_failures = 0;
                    jobs
                }
                Err(err) => {
                    let wait = backoff(
                        Duration::from_millis(200),
                        Duration::from_secs(10),
                        storage_failures,
                        &mut rand::thread_rng(),
                    );
                    storage_failures = storage_failures.saturating_add(1);
                    tracing::warn!(connector = %self.connector.name(), error = %err, "Cannot claim outbox jobs; retrying.");
                    if sleep_or_stop(wait, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            if jobs.is_empty() {
                if sleep_or_stop(self.settings.poll_interval, &mut stop).await {
                    return;
                }
                continue;
            }
            self.deliver(jobs).await;
        }
    }

    /// Puts back jobs this slot leased before the process died, keeping their place.
    async fn release_own_leases(&self) {
        let mut offset = 0;
        loop {
            let page = match self
                .storage
                .list_jobs(
                    Some(storage::JobStatus::InFlight),
                    Some(self.connector.name()),
                    500,
                    offset,
                )
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(connector = %self.connector.name(), error = %err, "Cannot list leased outbox jobs; they are retried when their lease ends.");
                    return;
                }
            };
            for job in &page {
                if job.locked_by.as_deref() == Some(self.worker_id.as_str()) {
                    let _ = self
                        .storage
                        .fail_job(
                            job.id,
                            &self.worker_id,
                            "released after a restart",
                            "restart",
                            job.next_attempt_at,
                            Utc::now(),
                        )
                        .await;
                }
            }
            if page.len() < 500 {
                return;
            }
            offset += 500;
        }
    }

    async fn deliver(&self, claimed: Vec<storage::OutboxJob>) {
        let mut calls = Vec::with_capacity(claimed.len());
        let mut events = Vec::new();
        let mut originals = Vec::with_capacity(claimed.len());
        for row in claimed {
            match decode(&row) {
                Ok(Decoded::Call(job)) => {
                    calls.push(*job);
                    originals.push((false, row));
                }
                Ok(Decoded::Event(job)) => {
                    events.push(job);
                    originals.push((true, row));
                }
                Err(message) => {
                    tracing::error!(connector = %self.connector.name(), job = %row.id, error = %message, "An outbox job cannot be read; moved to the dead letters.");
                    self.metrics.failure(ErrorKind::Protocol);
                    self.settle_dead(&row, &message, ErrorKind::Protocol).await;
                }
            }
        }
        if originals.is_empty() {
            return;
        }
        // The lease bounds a delivery: a slower one would let another worker take the jobs.
        let budget = self.settings.lease.mul_f64(0.8);
        let started = Instant::now();
        let mut call_results = if calls.is_empty() {
            Vec::new()
        } else {
            self.bounded(budget, calls.len(), self.connector.deliver(&calls))
                .await
        }
        .into_iter();
        let mut event_results = if events.is_empty() {
            Vec::new()
        } else {
            let left = budget.saturating_sub(started.elapsed());
            self.bounded(left, events.len(), self.connector.deliver_events(&events))
                .await
        }
        .into_iter();
        // Back in claim order: a batch holds call and event jobs only for a connector that
        // takes both, and each kind kept its own order.
        let results: Vec<Delivery> = originals
            .iter()
            .map(|(is_event, _)| {
                let next = if *is_event {
                    event_results.next()
                } else {
                    call_results.next()
                };
                next.unwrap_or_else(|| {
                    Err(ConnectorError::transient(
                        ErrorKind::Protocol,
                        "connector returned a wrong number of results",
                    ))
                })
            })
            .collect();
        let originals: Vec<storage::OutboxJob> =
            originals.into_iter().map(|(_, row)| row).collect();
        let mut connector_failure: Option<(ErrorKind, Option<Duration>, String)> = None;
        let mut any_success = false;
        for (row, result) in originals.iter().zip(results) {
            let job = row;
            match result {
                Ok(()) => {
                    any_success = true;
                    self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                    self.settle(|storage, now| async move {
                        storage.complete_job(job.id, &self.worker_id, now).await
                    })
                    .await;
                }
                Err(err) => {
                    let kind = err.kind();
                    self.metrics.failure(kind);
                    let message = err.to_string();
                    match err {
                        ConnectorError::Transient { retry_after, .. } => {
                            self.metrics.retried.fetch_add(1, Ordering::Relaxed);
                            let keep_place = row.next_attempt_at;
                            self.settle(|storage, now| {
                                let message = message.clone();
                                async move {
                                    storage
                                        .fail_job(
                                            job.id,
                                            &self.worker_id,
                                            &message,
                                            kind.as_str(),
                                            keep_place,
                                            now,
                                        )
                                        .await
                                }
                            })
                            .await;
                            let longest = connector_failure
                                .as_ref()
                                .and_then(|f| f.1)
                                .max(retry_after);
                            connector_failure = Some((kind, longest, message));
                        }
                        ConnectorError::NotReady { .. } => {
                            self.metrics.retried.fetch_add(1, Ordering::Relaxed);
                            let failures =
                                u32::try_from(job.attempts.saturating_sub(1)).unwrap_or(u32::MAX);
                            let wait = backoff(
                                self.settings.backoff_initial,
                                self.settings.backoff_max,
                                failures,
                                &mut rand::thread_rng(),
                            );
                            let next =
                                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                            self.settle(|storage, now| {
                                let message = message.clone();
                                async move {
                                    storage
                                        .fail_job(
                                            job.id,
                                            &self.worker_id,
                                            &message,
                                            kind.as_str(),
                                            next,
                                            now,
                                        )
                                        .await
                                }
                            })
                            .await;
                        }
                        ConnectorError::Rejected { .. } => {
                            self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(connector = %self.connector.name(), job = %job.id, step = %job.step, error = %message, "The CRM refused a job; moved to the dead letters.");
                            self.settle_dead(row, &message, kind).await;
                        }
                    }
                }
            }
        }
        let mut pause = self.pause.lock().await;
        match connector_failure {
            Some((kind, retry_after, message)) => {
                let wait = pause_for(
                    &self.settings,
                    pause.failures,
                    retry_after,
                    &mut rand::thread_rng(),
                );
                pause.failures = pause.failures.saturating_add(1);
                let until = Instant::now() + wait;
                pause.until = Some(pause.until.map_or(until, |u| u.max(until)));
                tracing::warn!(
                    connector = %self.connector.name(),
                    kind = kind.as_str(),
                    error = %message,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "The CRM is not accepting calls right now; pausing delivery."
                );
            }
            None if any_success => {
                if pause.failures > 0 {
                    tracing::info!(connector = %self.connector.name(), "The CRM accepts calls again.");
                }
                pause.failures = 0;
                pause.until = None;
            }
            None => {}
        }
    }

    /// Runs one `deliver*` call within `budget` and checks it answered once per job; a
    /// timeout or a wrong count fails the whole batch as transient (it is retried).
    async fn bounded(
        &self,
        budget: Duration,
        expected: usize,
        delivery: impl std::future::Future<Output = Vec<Delivery>>,
    ) -> Vec<Delivery> {
        match tokio::time::timeout(budget, delivery).await {
            Ok(results) if results.len() == expected => results,
            Ok(results) => {
                tracing::error!(connector = %self.connector.name(), expected, got = results.len(), "A connector returned the wrong number of results; retrying the batch.");
                vec![
                    Err(ConnectorError::transient(
                        ErrorKind::Protocol,
                        "connector returned a wrong number of results"
                    ));
                    expected
                ]
            }
            Err(_) => vec![
                Err(ConnectorError::transient(
                    ErrorKind::Timeout,
                    "delivery exceeded the lease"
                ));
                expected
            ],
        }
    }

    async fn settle_dead(&self, row: &storage::OutboxJob, message: &str, kind: ErrorKind) {
        self.settle(|storage, now| async move {
            storage
                .dead_letter_job(row.id, &self.worker_id, message, kind.as_str(), now)
                .await
        })
        .await;
    }

    /// Runs a settle statement, retrying transient storage errors a few times; a job that
    /// cannot be settled is delivered again after its lease (connectors tolerate that).
    async fn settle<'s, F, Fut>(&'s self, op: F)
    where
        F: Fn(&'s storage::Storage, chrono::DateTime<Utc>) -> Fut,
        Fut: std::future::Future<Output = Result<storage::Settled, storage::StorageError>>,
    {
        let mut delay = Duration::from_millis(50);
        for _ in 0..6 {
            match op(&self.storage, Utc::now()).await {
                Ok(storage::Settled::Applied) => return,
                Ok(storage::Settled::LeaseLost) => {
                    tracing::warn!(connector = %self.connector.name(), "An outbox lease expired during delivery; another worker owns the job now.");
                    return;
                }
                Err(err) if err.is_transient() => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    tracing::error!(connector = %self.connector.name(), error = %err, "Cannot settle an outbox job; it is retried after its lease.");
                    return;
                }
            }
        }
    }
}

/// A claimed row, decoded for the connector.
enum Decoded {
    Call(Box<Job>),
    Event(EventJob),
}

fn decode(row: &storage::OutboxJob) -> Result<Decoded, String> {
    let step = Step::parse(&row.step).ok_or_else(|| format!("unknown step `{}`", row.step))?;
    if step == Step::Event {
        let kind = crate::events::kind_of(&row.payload)?;
        return Ok(Decoded::Event(EventJob {
            id: row.id,
            key: row.idempotency_key.clone(),
            attempts: row.attempts,
            kind,
            event: row.payload.clone(),
        }));
    }
    let payload: JobPayload =
        serde_json::from_value(row.payload.clone()).map_err(|err| format!("bad payload: {err}"))?;
    if payload.v > PAYLOAD_VERSION {
        return Err(format!(
            "payload version {} is newer than this build",
            payload.v
        ));
    }
    Ok(Decoded::Call(Box::new(Job {
        id: row.id,
        step,
        key: row.idempotency_key.clone(),
        attempts: row.attempts,
        payload,
    })))
}

/// Dead-letters jobs older than `max_age` and refreshes `snapshot` every `interval`.
pub fn spawn_sweeper(
    storage: storage::Storage,
    max_age: Duration,
    interval: Duration,
    snapshot: StatsSnapshot,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = Utc::now();
            let cutoff = now - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            match storage.dead_letter_expired(cutoff, now).await {
                Ok(0) => {}
                Ok(n) => tracing::error!(jobs = n, "Outbox jobs were not delivered within the maximum age and were moved to the dead letters; see /api/v1/admin/outbox."),
                Err(err) => tracing::warn!(error = %err, "Cannot sweep expired outbox jobs; retrying."),
            }
            match storage.outbox_stats().await {
                Ok(stats) => snapshot.set(stats),
                Err(err) => tracing::warn!(error = %err, "Cannot read outbox statistics."),
            }
            if sleep_or_stop(interval, &mut stop).await {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for failures in 0..12 {
            let exp = (initial * 2u32.pow(failures)).min(max);
            let wait = backoff(initial, max, failures, &mut rng);
            assert!(
                wait >= exp / 2 && wait <= exp,
                "failures={failures} wait={wait:?} exp={exp:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let settings = WorkerSettings::default();
        let wait = pause_for(&settings, 0, Some(Duration::from_secs(30)), &mut rng);
        assert!(
            wait >= Duration::from_secs(30) && wait <= Duration::from_secs(33),
            "{wait:?}"
        );
    }
}
