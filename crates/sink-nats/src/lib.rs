//! The event stream out to NATS JetStream: every domain event (call started, ringing,
//! answered, ended, held, transferred; queue joined and left; agent status) as versioned
//! JSON (`docs/events.md`) on subject `<prefix>.<kind>`, e.g. `kommutator.events.call.ended`.
//!
//! What it is: [`events`] (effects → [`DomainEvent`]s) and a [`Publisher`] task that connects
//! (retrying forever), makes sure the stream exists, and publishes events in order, waiting for
//! JetStream's acknowledgement in batches; each message carries `Nats-Msg-Id` = the event id,
//! so a retried publish is stored once.
//!
//! What it is not: the system of record. Calls live in storage; the stream is a feed. When
//! NATS is unreachable for long, the buffer (bounded) drops the oldest events and counts them
//! rather than slowing call tracking. Guaranteed delivery to outside systems is the outbox's
//! job (webhooks).

pub mod events;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use events::{agent_status, DomainEvent, EventMapper, SCHEMA_VERSION};
use tokio::sync::{watch, Notify};

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Token, if the server wants one.
    pub token: Option<String>,
    /// Stream name; created with `subjects = ["<prefix>.>"]` when missing.
    pub stream: String,
    /// Subject prefix.
    pub subject_prefix: String,
    /// Retention of a stream this publisher creates.
    pub max_age: Duration,
    /// Events held while NATS is unreachable.
    pub buffer: usize,
}

/// Errors talking to NATS. All are transient for the publisher (it retries); they are public
/// for callers that set up streams themselves.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// Could not connect.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// The stream could not be created or read.
    #[error("cannot set up the JetStream stream: {0}")]
    Stream(String),
    /// A publish was not acknowledged.
    #[error("NATS did not acknowledge a publish: {0}")]
    Publish(String),
}

/// Counters of one publisher.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Events acknowledged by JetStream.
    pub published: AtomicU64,
    /// Events dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Connection or publish failures (each followed by a retry).
    pub errors: AtomicU64,
}

/// Handle to a running publisher; cheap to clone. Publishing never waits.
#[derive(Clone, Debug)]
pub struct Publisher {
    queue: Arc<Mutex<VecDeque<DomainEvent>>>,
    notify: Arc<Notify>,
    stats: Arc<PublisherStats>,
    capacity: usize,
}

/// Events published per acknowledgement round trip.
const BATCH: usize = 256;

impl Publisher {
    /// Starts the publisher task; it ends when `stop` turns true, after publishing what is
    /// buffered (if NATS is reachable).
    pub fn start(
        config: NatsConfig,
        stop: watch::Receiver<bool>,
    ) -> (Publisher, tokio::task::JoinHandle<()>) {
        let publisher = Publisher {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            notify: Arc::new(Notify::new()),
            stats: Arc::new(PublisherStats::default()),
            capacity: config.buffer.max(1),
        };
        let task = tokio::spawn(run(config, publisher.clone(), stop));
        (publisher, task)
    }

    /// Queues events for publishing, in order. When the buffer is full the oldest are dropped.
    pub fn publish(&self, events: Vec<DomainEvent>) {
        if events.is_empty() {
            return;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            for event in events {
                if queue.len() >= self.capacity {
                    queue.pop_front();
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                queue.push_back(event);
            }
        }
        self.notify.notify_one();
    }

    /// Counters.
    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }

    /// Events waiting to be published.
    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_batch(&self) -> Vec<DomainEvent> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = queue.len().min(BATCH);
        queue.drain(..n).collect()
    }

    fn put_back(&self, batch: Vec<DomainEvent>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for event in batch.into_iter().rev() {
            queue.push_front(event);
        }
        while queue.len() > self.capacity {
            queue.pop_front();
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connects and creates the stream if needed; returns the JetStream context.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::jetstream::Context, NatsError> {
    let mut options = async_nats::ConnectOptions::new().name("kommutator-events");
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    let urls: Vec<&str> = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let client = options
        .connect(urls.join(","))
        .await
        .map_err(|e| NatsError::Connect(e.to_string()))?;
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        max_age: config.max_age,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::Stream(e.to_string()))?;
    Ok(js)
}

/// Publishes one batch in order and waits for every acknowledgement.
pub async fn publish_batch(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    batch: &[DomainEvent],
) -> Result<(), NatsError> {
    let mut acks = Vec::with_capacity(batch.len());
    for event in batch {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
        let ack = js
            .publish_with_headers(
                format!("{prefix}.{}", event.kind),
                headers,
                event.to_json().into(),
            )
            .await
            .map_err(|e| NatsError::Publish(e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| NatsError::Publish(e.to_string()))?;
    }
    Ok(())
}

async fn run(config: NatsConfig, publisher: Publisher, mut stop: watch::Receiver<bool>) {
    let mut delay = Duration::from_millis(200);
    let mut js: Option<async_nats::jetstream::Context> = None;
    loop {
        let stopping = *stop.borrow();
        if js.is_none() {
            match connect(&config).await {
                Ok(context) => {
                    tracing::info!(stream = %config.stream, "Publishing domain events to NATS.");
                    js = Some(context);
                    delay = Duration::from_millis(200);
                }
                Err(err) => {
                    publisher.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if stopping {
                        tracing::warn!(error = %err, pending = publisher.pending(), "NATS is unreachable at shutdown; buffered events are not published.");
                        return;
                    }
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "Cannot reach NATS; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let batch = publisher.take_batch();
        if batch.is_empty() {
            if stopping {
                return;
            }
            tokio::select! {
                _ = publisher.notify.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let context = js.as_ref().expect("connected above");
        match publish_batch(context, &config.subject_prefix, &batch).await {
            Ok(()) => {
                publisher
                    .stats
                    .published
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                publisher.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "Publishing to NATS failed; reconnecting.");
                // Message ids make the retry of an already stored event a no-op.
                publisher.put_back(batch);
                js = None;
                if stopping {
                    return;
                }
            }
        }
    }
}
