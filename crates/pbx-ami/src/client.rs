//! The AMI client: one long-lived session to one Asterisk, kept alive, re-established
//! forever, resynchronised after every (re)connect, with actions correlated by ActionID.
//!
//! What it is: the I/O shell around [`crate::codec`]. It owns the TCP socket, logs in
//! (plain or MD5 challenge), sends `Ping`s to detect half-open connections, reconnects with
//! capped exponential backoff and jitter, and hands every received event to the consumer.
//! What it is not: it does not interpret events (that is [`crate::translate`] and the call
//! tracker), and it never retries an action on its own.
//!
//! # Shape
//!
//! ```no_run
//! # async fn example() {
//! use pbx_ami::client::{client, Action, AmiClientConfig, AmiUpdate};
//! let config = AmiClientConfig::new("127.0.0.1", 5038, "cti", "secret");
//! let (handle, mut updates, task) = client(config);
//! tokio::spawn(task.run(std::future::pending::<()>()));
//! tokio::spawn(async move {
//!     while let Some(update) = updates.recv().await {
//!         if let AmiUpdate::Events(frames) = update { /* translate */ }
//!     }
//! });
//! let pong = handle.send_action(Action::new("Ping")).await;
//! # }
//! ```
//!
//! [`client`] builds three things: an [`AmiClient`] handle (cheap to clone) for actions, the
//! receiving end of the bounded update channel, and an [`AmiTask`] whose
//! [`AmiTask::run`]`(shutdown)` is the long-running entry point. `run` returns when
//! `shutdown` completes (it then sends `Logoff`) or when the update receiver is dropped.
//!
//! # Ordering and delivery guarantees
//!
//! * Every frame from the socket that is not the reply to one of our own actions is
//!   delivered, in wire order, in [`AmiUpdate::Events`] batches (one batch per socket read
//!   at most). Nothing is dropped except what [`AmiClientConfig::drop_events`] asks for.
//!   List items answering our own list actions (including the resync lists) go to the
//!   caller instead; `OriginateResponse` goes to both the caller and the event stream.
//! * Back-pressure: the update channel is bounded. When it is full the client waits and
//!   stops reading the socket, so a slow consumer slows Asterisk down instead of losing
//!   events. (Asterisk itself drops a session that does not drain its socket within the
//!   user's `writetimeout`; size `channel_capacity` for bursts.) Time spent waiting for the
//!   consumer does not count towards the ping and action timeouts.
//! * Per session: `Connected` comes first, then `Events` and exactly one `Resynced` (unless
//!   the session ends first), then `Disconnected`. `Resynced` is emitted at the position in
//!   the stream of the last resync list's `Complete` frame: events delivered before it
//!   arrived before that frame (some of them while the lists were being produced, so the
//!   snapshot may already include their effect, or not: apply it idempotently). The channel
//!   list is requested last, so its snapshot is taken exactly where `Resynced` stands.
//! * Actions are never re-sent after a reconnect. Actions still waiting for their reply when
//!   the connection drops fail with [`ActionError::ConnectionLost`]; an `Originate` fails with
//!   [`ActionError::OutcomeUnknown`] (the phone may be ringing). Actions issued while
//!   disconnected fail at once with [`ActionError::NotConnected`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout_at, Instant};
use tracing::{debug, info, warn};

use crate::codec::{
    encode_action, Decoder, EncodeError, Frame, FrameBatch, FrameRef, Item, Limits,
};

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Secret:` in clear text.
    Plain,
    /// `Action: Challenge` then `Key: md5(challenge + secret)`; the secret never crosses the
    /// wire.
    Md5,
}

/// Everything the client needs. Plain data: the binary owns the TOML and converts.
#[derive(Clone)]
pub struct AmiClientConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub secret: String,
    pub auth: AuthMethod,
    /// How often to send `Action: Ping`.
    pub ping_interval: Duration,
    /// How long to wait for the pong before declaring the connection dead.
    pub ping_timeout: Duration,
    /// How long an action may wait for its response (list actions: between two items).
    pub action_timeout: Duration,
    /// TCP connect plus banner plus login.
    pub connect_timeout: Duration,
    /// First reconnect delay; doubled per failed attempt up to `reconnect_max`, with jitter.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// `Events:` header sent with Login (e.g. `call,agent,system,user`); empty = omitted,
    /// which means the user's whole `read` set.
    pub events_mask: String,
    /// Event names (case-insensitive) dropped before delivery, e.g. `VarSet`, `Newexten`.
    pub drop_events: Vec<String>,
    /// Capacity of the update channel, in updates (an `Events` update is one socket read).
    pub channel_capacity: usize,
    /// Codec limits.
    pub limits: Limits,
    /// Bytes asked for per socket read.
    pub read_size: usize,
}

impl std::fmt::Debug for AmiClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("auth", &self.auth)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("action_timeout", &self.action_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_initial", &self.reconnect_initial)
            .field("reconnect_max", &self.reconnect_max)
            .field("events_mask", &self.events_mask)
            .field("drop_events", &self.drop_events)
            .field("channel_capacity", &self.channel_capacity)
            .field("limits", &self.limits)
            .field("read_size", &self.read_size)
            .finish()
    }
}

impl AmiClientConfig {
    /// Defaults: MD5 login, ping every 15 s with a 5 s timeout, 10 s action timeout,
    /// reconnect from 0.5 s up to 30 s, all events, 64 updates of buffer.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        AmiClientConfig {
            host: host.into(),
            port,
            username: username.into(),
            secret: secret.into(),
            auth: AuthMethod::Md5,
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(5),
            action_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            events_mask: String::new(),
            drop_events: Vec::new(),
            channel_capacity: 64,
            limits: Limits::default(),
            read_size: 128 * 1024,
        }
    }
}

/// What the client tells its consumer.
#[derive(Debug)]
pub enum AmiUpdate {
    /// Logged in. `session` counts sessions from 1.
    Connected { session: u64, banner: String },
    /// A session ended; a reconnect follows.
    Disconnected {
        session: u64,
        reason: DisconnectReason,
    },
    /// A connection attempt failed (refused, timed out, bad password); retried after
    /// `retry_in`.
    ConnectFailed {
        reason: DisconnectReason,
        retry_in: Duration,
    },
    /// Frames in wire order, one socket read's worth at most. The frames of one batch share
    /// one buffer (see [`Frame`]): use [`Frame::detach`] for a frame kept for long.
    Events(Vec<Frame>),
    /// State as Asterisk reports it right after login: `CoreShowChannel`, the `QueueStatus`
    /// items (`QueueParams`, `QueueMember`, `QueueEntry`), `DeviceStateChange` items of
    /// `DeviceStateList` and `ExtensionStatus` items of `ExtensionStateList`. A list that
    /// failed (e.g. permission denied) is empty; see the logs.
    Resynced {
        session: u64,
        channels: Vec<Frame>,
        queue_status: Vec<Frame>,
        device_states: Vec<Frame>,
        extension_states: Vec<Frame>,
    },
}

/// Why a session ended or could not be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("timed out while {0}")]
    Timeout(&'static str),
    #[error("AMI authentication failed for user {username:?} ({message}); check username and secret in manager.conf")]
    AuthenticationFailed { username: String, message: String },
    #[error("AMI login rejected: {message}")]
    LoginRejected { message: String },
    #[error("AMI protocol error: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("no pong within {0:?}: connection presumed dead")]
    PingTimeout(Duration),
    #[error("resync list {action} stalled")]
    ResyncTimeout { action: &'static str },
}

/// Why an action did not produce a result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    /// No session right now; the action was not sent. Safe to retry later.
    #[error("not connected to Asterisk; action not sent")]
    NotConnected,
    /// The connection dropped after the action was sent and before its reply; it may or may
    /// not have been executed.
    #[error("connection to Asterisk lost before the reply; the action may or may not have run")]
    ConnectionLost,
    /// An `Originate` was sent but its `OriginateResponse` never arrived (the connection
    /// dropped, or it took too long): the call may be ringing. It is not re-sent.
    #[error("originate outcome unknown: the call may have been placed (check the phone)")]
    OutcomeUnknown,
    /// No response within the action timeout. The action may still run.
    #[error("no response from Asterisk within {0:?}")]
    Timeout(Duration),
    /// Asterisk answered `Response: Error`.
    #[error("Asterisk rejected the action: {message}")]
    Rejected { message: String, response: Frame },
    /// The action cannot be encoded (CR/LF in a value, bad header name, own ActionID).
    #[error("invalid action: {0}")]
    InvalidAction(#[from] EncodeError),
    /// The client task has stopped.
    #[error("AMI client stopped")]
    ClientStopped,
}

impl ActionError {
    /// True when retrying later may succeed and cannot cause a duplicate.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ActionError::NotConnected | ActionError::ClientStopped)
    }
}

/// An action to send. The client adds `ActionID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    name: String,
    headers: Vec<(String, String)>,
}

impl Action {
    pub fn new(name: impl Into<String>) -> Self {
        Action {
            name: name.into(),
            headers: Vec::new(),
        }
    }

    /// Add a header; repeat the call for repeated headers (`Variable`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_originate(&self) -> bool {
        self.name.eq_ignore_ascii_case("Originate")
    }

    fn encode(&self, action_id: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.get("ActionID").is_some() {
            return Err(EncodeError::InvalidName {
                name: "ActionID (assigned by the client)".into(),
            });
        }
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        encode_action(out, &self.name, action_id, &headers)
    }
}

/// The answer to a list action (`EventList: start` … `EventList: Complete`).
#[derive(Debug, Clone)]
pub struct EventList {
    pub response: Frame,
    pub items: Vec<Frame>,
    /// The `…Complete` event; `None` when the response did not announce a list.
    pub complete: Option<Frame>,
}

/// Counters for the server's `/metrics`. Updated once per socket read, read with
/// `Ordering::Relaxed`.
#[derive(Debug, Default)]
pub struct AmiMetrics {
    /// Event frames received (list items and filtered ones included).
    pub events_in: AtomicU64,
    /// Frames handed to the consumer.
    pub frames_delivered: AtomicU64,
    pub frames_dropped_by_filter: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Connection attempts after a failure or a lost session.
    pub reconnects: AtomicU64,
    /// Sessions that logged in.
    pub sessions: AtomicU64,
    pub actions_sent: AtomicU64,
    pub action_timeouts: AtomicU64,
    pub bytes_in: AtomicU64,
}

impl AmiMetrics {
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Handle for sending actions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AmiClient {
    commands: mpsc::Sender<Command>,
    metrics: Arc<AmiMetrics>,
}

/// The long-running part; see [`AmiTask::run`].
pub struct AmiTask {
    config: AmiClientConfig,
    updates: mpsc::Sender<AmiUpdate>,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<AmiMetrics>,
}

/// Build the client handle, the update receiver and the task to spawn.
pub fn client(config: AmiClientConfig) -> (AmiClient, mpsc::Receiver<AmiUpdate>, AmiTask) {
    let (updates_tx, updates_rx) = mpsc::channel(config.channel_capacity.max(1));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let metrics = Arc::new(AmiMetrics::default());
    let handle = AmiClient {
        commands: commands_tx,
        metrics: metrics.clone(),
    };
    let task = AmiTask {
        config,
        updates: updates_tx,
        commands: commands_rx,
        metrics,
    };
    (handle, updates_rx, task)
}

impl AmiClient {
    pub fn metrics(&self) -> Arc<AmiMetrics> {
        self.metrics.clone()
    }

    /// Send one action and return its `Response:` frame (`Success`, `Goodbye`, `Follows`).
    /// `Response: Error` is [`ActionError::Rejected`]. An `Originate` goes through
    /// [`AmiClient::originate`].
    pub async fn send_action(&self, action: Action) -> Result<Frame, ActionError> {
        if action.is_originate() {
            return self.originate(action).await;
        }
        match self.request(action, RequestKind::Simple).await? {
            Reply::Response(frame) => Ok(frame),
            Reply::List(list) => Ok(list.response),
        }
    }

    /// Send a list action (`CoreShowChannels`, `QueueStatus`, `Status`, …) and collect its
    /// items up to the `EventList: Complete` event.
    pub async fn send_list_action(&self, action: Action) -> Result<EventList, ActionError> {
        match self.request(action, RequestKind::List).await? {
            Reply::List(list) => Ok(list),
            Reply::Response(response) => Ok(EventList {
                response,
                items: Vec::new(),
                complete: None,
            }),
        }
    }

    /// Click-to-call. Sent with `Async: true` (any `Async` header given is replaced) and
    /// answered with its `OriginateResponse` event (`Response: Success` = first leg answered,
    /// `Failure` with a `Reason` code otherwise). Waits up to the action's `Timeout` (ms,
    /// default 30000) plus the action timeout. Never re-sent: see [`ActionError::OutcomeUnknown`].
    pub async fn originate(&self, action: Action) -> Result<Frame, ActionError> {
        let mut action = action;
        action
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("Async"));
        action.headers.push(("Async".into(), "true".into()));
        match self.request(action, RequestKind::Originate).await? {
            Reply::Response(frame) => Ok(frame),
            Reply::List(list) => Ok(list.response),
        }
    }

    async fn request(&self, action: Action, kind: RequestKind) -> Result<Reply, ActionError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command {
                action,
                kind,
                reply,
            })
            .await
            .map_err(|_| ActionError::ClientStopped)?;
        rx.await.map_err(|_| ActionError::ClientStopped)?
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Simple,
    List,
    Originate,
}

enum Reply {
    Response(Frame),
    List(EventList),
}

type ReplySender = oneshot::Sender<Result<Reply, ActionError>>;

#[derive(Debug)]
struct Command {
    action: Action,
    kind: RequestKind,
    reply: ReplySender,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Response(r) => f.debug_tuple("Response").field(r).finish(),
            Reply::List(l) => f.debug_tuple("List").field(l).finish(),
        }
    }
}

/// Why a session loop stopped.
enum SessionEnd {
    Shutdown,
    ConsumerGone,
    Lost(DisconnectReason),
}

impl AmiTask {
    /// Run until `shutdown` completes or the update receiver is dropped. Reconnects
    /// forever in between.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let filter: Vec<Vec<u8>> = self
            .config
            .drop_events
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        let mut failures: u32 = 0;
        let mut session_id: u64 = 0;
        loop {
            if failures > 0 {
                AmiMetrics::add(&self.metrics.reconnects, 1);
            }
            let attempt = tokio::select! {
                biased;
                () = &mut shutdown => return,
                res = connect_and_login(&self.config) => res,
            };
            let (conn, banner) = match attempt {
                Ok(ok) => ok,
                Err(reason) => {
                    failures = failures.saturating_add(1);
                    let retry_in = backoff(&self.config, failures);
                    warn!(error = %reason, retry_in_ms = retry_in.as_millis() as u64, "AMI connection attempt failed.");
                    let update = AmiUpdate::ConnectFailed { reason, retry_in };
                    if deliver(&self.updates, update, &mut shutdown).await.is_err() {
                        return;
                    }
                    if !self.wait_offline(retry_in, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            session_id += 1;
            AmiMetrics::add(&self.metrics.sessions, 1);
            info!(session = session_id, banner = %banner, "AMI session established.");
            let started = Instant::now();
            let update = AmiUpdate::Connected {
                session: session_id,
                banner,
            };
            if deliver(&self.updates, update, &mut shutdown).await.is_err() {
                return;
            }
            let session = Session::new(&self.config, session_id, &self.metrics, &filter, conn);
            let end = session
                .run(&self.updates, &mut self.commands, &mut shutdown)
                .await;
            let reason = match end {
                SessionEnd::Shutdown | SessionEnd::ConsumerGone => return,
                SessionEnd::Lost(reason) => reason,
            };
            warn!(session = session_id, error = %reason, "AMI session lost.");
            let update = AmiUpdate::Disconnected {
                session: session_id,
                reason,
            };
            if deliver(&self.updates, update, &mut shutdown).await.is_err() {
                return;
            }
            // A session that lived long was healthy: start the backoff over. One that died
            // right after login keeps escalating, so a flapping server is not hammered.
            failures = if started.elapsed() >= self.config.reconnect_max {
                1
            } else {
                failures.saturating_add(1)
            };
            let retry_in = backoff(&self.config, failures);
            if !self.wait_offline(retry_in, &mut shutdown).await {
                return;
            }
        }
    }

    /// Sleep before reconnecting, answering actions with `NotConnected` meanwhile. False on
    /// shutdown.
    async fn wait_offline<S: Future<Output = ()>>(
        &mut self,
        delay: Duration,
        shutdown: &mut Pin<&mut S>,
    ) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return false,
                () = sleep_until(until) => return true,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => { let _ = cmd.reply.send(Err(ActionError::NotConnected)); }
                    // No handle left: nothing to answer, keep delivering events.
                    None => { sleep_until(until).await; return true; }
                },
            }
        }
    }
}

/// Capped exponential backoff with "equal jitter": a delay in `[d/2, d]`.
fn backoff(config: &AmiClientConfig, failures: u32) -> Duration {
    let initial = config.reconnect_initial.max(Duration::from_millis(1));
    let max = config.reconnect_max.max(initial);
    let exp = failures.saturating_sub(1).min(20);
    let full = initial.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_micros() as u64);
    half + Duration::from_micros(jitter)
}

/// Send an update, waiting (back-pressure) when the channel is full. Returns how long the
/// consumer kept us waiting, or `Err` when the consumer is gone or shutdown fired.
async fn deliver<S: Future<Output = ()>>(
    updates: &mpsc::Sender<AmiUpdate>,
    update: AmiUpdate,
    shutdown: &mut Pin<&mut S>,
) -> Result<Duration, ()> {
    match updates.try_send(update) {
        Ok(()) => Ok(Duration::ZERO),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        Err(mpsc::error::TrySendError::Full(update)) => {
            let waited = Instant::now();
            tokio::select! {
                biased;
                () = shutdown.as_mut() => Err(()),
                res = updates.send(update) => res.map(|()| waited.elapsed()).map_err(|_| ()),
            }
        }
    }
}

/// An open, logged-in connection.
struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    decoder: Decoder,
}

impl Conn {
    /// Read once into the decoder. `Ok(false)` on EOF.
    async fn read_some(&mut self, read_size: usize) -> Result<usize, DisconnectReason> {
        let spare = self.decoder.spare(read_size);
        match self.reader.read(spare).await {
            Ok(0) => Err(DisconnectReason::Closed),
            Ok(n) => {
                self.decoder.commit(n);
                Ok(n)
            }
            Err(e) => Err(DisconnectReason::Io(e.to_string())),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), DisconnectReason> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| DisconnectReason::Io(e.to_string()))
    }

    /// Read until the response with `action_id`; anything else is a protocol error at this
    /// stage (Asterisk sends nothing unsolicited before login).
    async fn response(
        &mut self,
        action_id: &str,
        read_size: usize,
    ) -> Result<Frame, DisconnectReason> {
        loop {
            while let Some(item) = self.decoder.next_item() {
                match item {
                    Item::Frame(f) if f.action_id() == Some(action_id.as_bytes()) => {
                        return Ok(f.to_owned())
                    }
                    Item::Frame(f) => {
                        debug!(frame = ?f, "Ignoring a frame received before login completed.");
                    }
                    Item::Banner(_) => {}
                    Item::Error(e) => return Err(DisconnectReason::Protocol(e.to_string())),
                }
            }
            self.read_some(read_size).await?;
        }
    }
}

/// TCP connect, banner, login. Bounded by `connect_timeout` as a whole.
async fn connect_and_login(config: &AmiClientConfig) -> Result<(Conn, String), DisconnectReason> {
    let deadline = Instant::now() + config.connect_timeout;
    let addr = format!("{}:{}", config.host, config.port);
    let stream = timeout_at(deadline, TcpStream::connect(&addr))
        .await
        .map_err(|_| DisconnectReason::Timeout("connecting"))?
        .map_err(|e| DisconnectReason::Connect {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
    // Actions are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut conn = Conn {
        reader,
        writer,
        decoder: Decoder::new(config.limits),
    };
    let read_size = config.read_size.max(4096);
    let banner = timeout_at(deadline, async {
        loop {
            match conn.decoder.next_item() {
                Some(Item::Banner(b)) => return Ok(String::from_utf8_lossy(b).into_owned()),
                Some(Item::Frame(f)) => {
                    return Err(DisconnectReason::Protocol(format!(
                        "expected the AMI banner, got a frame: {f:?}"
                    )))
                }
                Some(Item::Error(e)) => return Err(DisconnectReason::Protocol(e.to_string())),
                None => {
                    conn.read_some(read_size).await?;
                }
            }
        }
    })
    .await
    .map_err(|_| DisconnectReason::Timeout("waiting for the AMI banner"))??;

    let login = timeout_at(deadline, login(&mut conn, config, read_size))
        .await
        .map_err(|_| DisconnectReason::Timeout("logging in"))??;
    let message = login.get_str("Message").unwrap_or_default().into_owned();
    if login
        .response()
        .is_some_and(|r| r.eq_ignore_ascii_case(b"Success"))
    {
        return Ok((conn, banner));
    }
    if message
        .to_ascii_lowercase()
        .contains("authentication failed")
    {
        return Err(DisconnectReason::AuthenticationFailed {
            username: config.username.clone(),
            message,
        });
    }
    Err(DisconnectReason::LoginRejected { message })
}

async fn login(
    conn: &mut Conn,
    config: &AmiClientConfig,
    read_size: usize,
) -> Result<Frame, DisconnectReason> {
    let key: String;
    let mut out = Vec::new();
    let mut headers: Vec<(&str, &str)> = vec![("Username", config.username.as_str())];
    match config.auth {
        AuthMethod::Plain => headers.push(("Secret", config.secret.as_str())),
        AuthMethod::Md5 => {
            encode_action(
                &mut out,
                "Challenge",
                "login-challenge",
                &[("AuthType", "MD5")],
            )
            .map_err(|e| DisconnectReason::Protocol(e.to_string()))?;
            conn.write(&out).await?;
            out.clear();
            let challenge = conn.response("login-challenge", read_size).await?;
            let Some(text) = challenge.get("Challenge") else {
                let message = challenge
                    .get_str("Message")
                    .unwrap_or_default()
                    .into_owned();
                return Err(DisconnectReason::LoginRejected {
                    message: format!("no MD5 challenge: {message}"),
                });
            };
            let mut md5 = Md5::new();
            md5.update(text);
            md5.update(config.secret.as_bytes());
            key = hex::encode(md5.finalize());
            headers.push(("AuthType", "MD5"));
            headers.push(("Key", key.as_str()));
        }
    }
    if !config.events_mask.is_empty() {
        headers.push(("Events", config.events_mask.as_str()));
    }
    encode_action(&mut out, "Login", "login", &headers).map_err(|e| {
        // The secret may be the culprit: never echo values.
        DisconnectReason::Protocol(format!("cannot encode Login: {e}"))
    })?;
    conn.write(&out).await?;
    conn.response("login", read_size).await
}

/// One resync list and where its items go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResyncPart {
    Channels,
    QueueStatus,
    DeviceStates,
    ExtensionStates,
}

impl ResyncPart {
    /// Sending order. `CoreShowChannels` goes last: Asterisk answers one session's actions in
    /// order, so its `Complete` is the last list's, where `Resynced` is emitted, and no event
    /// sits between the channel snapshot and `Resynced`. Sent first, a channel created after
    /// the snapshot (its `Newchannel` delivered before `Resynced`) would be taken for one the
    /// PBX lost, and one that hung up after it (its `Hangup` delivered before `Resynced`, when
    /// the tracker did not know it yet) would be adopted and never end.
    const ALL: [ResyncPart; 4] = [
        ResyncPart::ExtensionStates,
        ResyncPart::DeviceStates,
        ResyncPart::QueueStatus,
        ResyncPart::Channels,
    ];

    fn action(self) -> &'static str {
        match self {
            ResyncPart::Channels => "CoreShowChannels",
            ResyncPart::QueueStatus => "QueueStatus",
            ResyncPart::DeviceStates => "DeviceStateList",
            ResyncPart::ExtensionStates => "ExtensionStateList",
        }
    }
}

enum Pending {
    Simple {
        reply: ReplySender,
    },
    List {
        sink: ListSink,
        response: Option<Frame>,
        items: Vec<Frame>,
    },
    Originate {
        reply: ReplySender,
        queued: bool,
        early_event: Option<Frame>,
        wait: Duration,
    },
    Ping,
}

enum ListSink {
    Caller(ReplySender),
    Resync(ResyncPart),
}

struct PendingEntry {
    pending: Pending,
    deadline: Instant,
}

#[derive(Default)]
struct ResyncState {
    remaining: usize,
    channels: Vec<Frame>,
    queue_status: Vec<Frame>,
    device_states: Vec<Frame>,
    extension_states: Vec<Frame>,
}

/// Per-read counters, added to the shared atomics once per read.
#[derive(Default)]
struct Counts {
    events_in: u64,
    delivered: u64,
    filtered: u64,
    decode_errors: u64,
}

/// Frame routing state of one session, apart from the decoder so that a borrowed
/// [`FrameRef`] can be routed while the decoder is borrowed.
struct Router<'c> {
    session: u64,
    config: &'c AmiClientConfig,
    filter: &'c [Vec<u8>],
    pending: HashMap<String, PendingEntry>,
    /// Number of pending entries that expect `Event:` frames (lists, originates).
    event_waiters: usize,
    ping: Option<(String, Instant)>,
    resync: Option<ResyncState>,
    /// Frames of the current read, copied into one shared buffer.
    batch: FrameBatch,
    out: Vec<AmiUpdate>,
    counts: Counts,
    fatal: Option<DisconnectReason>,
}

struct Session<'c> {
    conn: Conn,
    router: Router<'c>,
    metrics: &'c AmiMetrics,
    next_id: u64,
}

impl<'c> Session<'c> {
    fn new(
        config: &'c AmiClientConfig,
        session: u64,
        metrics: &'c AmiMetrics,
        filter: &'c [Vec<u8>],
        conn: Conn,
    ) -> Self {
        Session {
            conn,
            router: Router {
                session,
                config,
                filter,
                pending: HashMap::new(),
                event_waiters: 0,
                ping: None,
                resync: None,
                batch: FrameBatch::default(),
                out: Vec::new(),
                counts: Counts::default(),
                fatal: None,
            },
            metrics,
            next_id: 0,
        }
    }

    fn new_action_id(&mut self) -> String {
        self.next_id += 1;
        format!("kmt-{}-{}", self.router.session, self.next_id)
    }

    async fn run<S: Future<Output = ()>>(
        mut self,
        updates: &mpsc::Sender<AmiUpdate>,
        commands: &mut mpsc::Receiver<Command>,
        shutdown: &mut Pin<&mut S>,
    ) -> SessionEnd {
        let end = self.serve(updates, commands, shutdown).await;
        if matches!(end, SessionEnd::Shutdown) {
            // Polite goodbye; the answer is not awaited.
            let mut out = Vec::new();
            let id = self.new_action_id();
            if encode_action(&mut out, "Logoff", &id, &[]).is_ok() {
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), self.conn.write(&out)).await;
            }
        }
        self.router.fail_all();
        end
    }

    async fn serve<S: Future<Output = ()>>(
        &mut self,
        updates: &mpsc::Sender<AmiUpdate>,
        commands: &mut mpsc::Receiver<Command>,
        shutdown: &mut Pin<&mut S>,
    ) -> SessionEnd {
        if let Err(reason) = self.start_resync().await {
            return SessionEnd::Lost(reason);
        }
        let read_size = self.router.config.read_size.max(4096);
        let mut next_ping = Instant::now() + self.router.config.ping_interval;
        let mut commands_open = true;
        loop {
            // Decode what is buffered (including bytes that came with the login response).
            while let Some(item) = self.conn.decoder.next_item() {
                self.router.route(item);
            }
            self.router.flush_counts(self.metrics);
            for update in std::mem::take(&mut self.router.out) {
                match deliver(updates, update, shutdown).await {
                    Ok(waited) if waited > Duration::ZERO => {
                        self.router.postpone(waited);
                        next_ping += waited;
                    }
                    Ok(_) => {}
                    Err(()) => {
                        return if updates.is_closed() {
                            SessionEnd::ConsumerGone
                        } else {
                            SessionEnd::Shutdown
                        };
                    }
                }
            }
            if let Some(reason) = self.router.fatal.take() {
                return SessionEnd::Lost(reason);
            }
            let timer = self
                .router
                .next_deadline()
                .map_or(next_ping, |d| d.min(next_ping));
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return SessionEnd::Shutdown,
                () = sleep_until(timer) => {
                    let now = Instant::now();
                    if let Some(reason) = self.router.expire(now, self.metrics) {
                        return SessionEnd::Lost(reason);
                    }
                    if now >= next_ping {
                        next_ping = now + self.router.config.ping_interval;
                        if self.router.ping.is_none() {
                            if let Err(reason) = self.send_ping(now).await {
                                return SessionEnd::Lost(reason);
                            }
                        }
                    }
                }
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => {
                        if let Err(reason) = self.send_command(cmd).await {
                            return SessionEnd::Lost(reason);
                        }
                    }
                    None => commands_open = false,
                },
                res = self.conn.read_some(read_size) => match res {
                    Ok(n) => AmiMetrics::add(&self.metrics.bytes_in, n as u64),
                    Err(reason) => return SessionEnd::Lost(reason),
                },
            }
        }
    }

    async fn start_resync(&mut self) -> Result<(), DisconnectReason> {
        let mut out = Vec::new();
        let deadline = Instant::now() + self.router.config.action_timeout;
        for part in ResyncPart::ALL {
            let id = self.new_action_id();
            encode_action(&mut out, part.action(), &id, &[])
                .map_err(|e| DisconnectReason::Protocol(e.to_string()))?;
            self.router.insert(
                id,
                Pending::List {
                    sink: ListSink::Resync(part),
                    response: None,
                    items: Vec::new(),
                },
                deadline,
            );
        }
        self.router.resync = Some(ResyncState {
            remaining: ResyncPart::ALL.len(),
            ..ResyncState::default()
        });
        AmiMetrics::add(&self.metrics.actions_sent, ResyncPart::ALL.len() as u64);
        self.conn.write(&out).await
    }

    async fn send_ping(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        let id = self.new_action_id();
        let mut out = Vec::new();
        encode_action(&mut out, "Ping", &id, &[])
            .map_err(|e| DisconnectReason::Protocol(e.to_string()))?;
        let deadline = now + self.router.config.ping_timeout;
        self.router.ping = Some((id.clone(), deadline));
        self.router.pending.insert(
            id,
            PendingEntry {
                pending: Pending::Ping,
                deadline,
            },
        );
        self.conn.write(&out).await
    }

    async fn send_command(&mut self, cmd: Command) -> Result<(), DisconnectReason> {
        let id = self.new_action_id();
        let mut out = Vec::new();
        if let Err(e) = cmd.action.encode(&id, &mut out) {
            let _ = cmd.reply.send(Err(ActionError::InvalidAction(e)));
            return Ok(());
        }
        let now = Instant::now();
        let timeout = self.router.config.action_timeout;
        let pending = match cmd.kind {
            RequestKind::Simple => Pending::Simple { reply: cmd.reply },
            RequestKind::List => Pending::List {
                sink: ListSink::Caller(cmd.reply),
                response: None,
                items: Vec::new(),
            },
            RequestKind::Originate => {
                let ring_ms = cmd
                    .action
                    .get("Timeout")
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(30_000);
                Pending::Originate {
                    reply: cmd.reply,
                    queued: false,
                    early_event: None,
                    wait: Duration::from_millis(ring_ms) + timeout,
                }
            }
        };
        self.router.insert(id, pending, now + timeout);
        AmiMetrics::add(&self.metrics.actions_sent, 1);
        // If this write fails the entry is failed by `fail_all`: an Originate then reports
        // `OutcomeUnknown`, since part of it may have reached Asterisk.
        self.conn.write(&out).await
    }
}

/// How a frame was classified by its first header (Asterisk always puts `Event` or
/// `Response` first; other frames are looked up).
enum Kind {
    Event,
    Response,
    Other,
}

fn kind_of(frame: &FrameRef<'_>) -> Kind {
    // Asterisk writes the first line's name exactly so: a prefix test answers without
    // reading the line (the match below would find the same).
    let raw = frame.raw();
    if raw.starts_with(b"Event:") {
        return Kind::Event;
    }
    if raw.starts_with(b"Response:") {
        return Kind::Response;
    }
    match frame.headers().next() {
        Some((name, _)) if name.eq_ignore_ascii_case(b"Event") => Kind::Event,
        Some((name, _)) if name.eq_ignore_ascii_case(b"Response") => Kind::Response,
        _ if frame.event().is_some() => Kind::Event,
        _ if frame.response().is_some() => Kind::Response,
        _ => Kind::Other,
    }
}

impl Router<'_> {
    fn insert(&mut self, id: String, pending: Pending, deadline: Instant) {
        if matches!(pending, Pending::List { .. } | Pending::Originate { .. }) {
            self.event_waiters += 1;
        }
        self.pending.insert(id, PendingEntry { pending, deadline });
    }

    fn remove(&mut self, id: &str) -> Option<PendingEntry> {
        let entry = self.pending.remove(id)?;
        if matches!(
            entry.pending,
            Pending::List { .. } | Pending::Originate { .. }
        ) {
            self.event_waiters -= 1;
        }
        Some(entry)
    }

    fn route(&mut self, item: Item<'_>) {
        let frame = match item {
            Item::Frame(frame) => frame,
            Item::Banner(banner) => {
                debug!(banner = %String::from_utf8_lossy(banner), "Ignoring a repeated AMI banner.");
                return;
            }
            Item::Error(error) => {
                self.counts.decode_errors += 1;
                warn!(error = %error, "Skipped malformed AMI input.");
                return;
            }
        };
        match kind_of(&frame) {
            Kind::Response => {
                if let Some(id) = frame
                    .action_id()
                    .and_then(|id| std::str::from_utf8(id).ok())
                {
                    if self.pending.contains_key(id) {
                        let id = id.to_owned();
                        self.on_response(&id, &frame);
                        return;
                    }
                    if id.starts_with("kmt-") {
                        debug!(
                            action_id = id,
                            "Dropping a late reply to a timed-out action."
                        );
                        return;
                    }
                }
                self.deliver(&frame);
            }
            Kind::Event => {
                self.counts.events_in += 1;
                if self.event_waiters > 0 {
                    if let Some(id) = frame
                        .action_id()
                        .and_then(|id| std::str::from_utf8(id).ok())
                    {
                        if self.pending.contains_key(id) {
                            let id = id.to_owned();
                            if !self.on_correlated_event(&id, &frame) {
                                return;
                            }
                        }
                    }
                }
                self.deliver(&frame);
            }
            Kind::Other => self.deliver(&frame),
        }
    }

    /// Filter, then add to the current batch.
    fn deliver(&mut self, frame: &FrameRef<'_>) {
        if !self.filter.is_empty() {
            if let Some(event) = frame.event() {
                if self.filter.iter().any(|n| n.eq_ignore_ascii_case(event)) {
                    self.counts.filtered += 1;
                    return;
                }
            }
        }
        self.counts.delivered += 1;
        self.batch.push(frame);
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            self.out.push(AmiUpdate::Events(self.batch.finish()));
        }
    }

    fn flush_counts(&mut self, metrics: &AmiMetrics) {
        self.flush_batch();
        let counts = std::mem::take(&mut self.counts);
        AmiMetrics::add(&metrics.events_in, counts.events_in);
        AmiMetrics::add(&metrics.frames_delivered, counts.delivered);
        AmiMetrics::add(&metrics.frames_dropped_by_filter, counts.filtered);
        AmiMetrics::add(&metrics.decode_errors, counts.decode_errors);
    }

    fn on_response(&mut self, id: &str, frame: &FrameRef<'_>) {
        let is_error = frame
            .response()
            .is_some_and(|r| r.eq_ignore_ascii_case(b"Error"));
        let rejected = |frame: &FrameRef<'_>| ActionError::Rejected {
            message: frame.get_str("Message").unwrap_or_default().into_owned(),
            response: frame.to_owned(),
        };
        let Some(mut entry) = self.remove(id) else {
            return;
        };
        match entry.pending {
            Pending::Ping => self.ping = None,
            Pending::Simple { reply } => {
                let res = if is_error {
                    Err(rejected(frame))
                } else {
                    Ok(Reply::Response(frame.to_owned()))
                };
                let _ = reply.send(res);
            }
            Pending::List {
                sink,
                response: _,
                items,
            } => {
                let starts_list = frame
                    .get("EventList")
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"start"));
                if is_error {
                    self.finish_list(sink, Err(rejected(frame)));
                } else if !starts_list {
                    // Not a list after all (e.g. a server that answers `Success` only).
                    let list = EventList {
                        response: frame.to_owned(),
                        items,
                        complete: None,
                    };
                    self.finish_list(sink, Ok(list));
                } else {
                    entry.pending = Pending::List {
                        sink,
                        response: Some(frame.to_owned()),
                        items,
                    };
                    entry.deadline = Instant::now() + self.config.action_timeout;
                    self.insert(id.to_owned(), entry.pending, entry.deadline);
                }
            }
            Pending::Originate {
                reply,
                early_event,
                wait,
                ..
            } => {
                if is_error {
                    let _ = reply.send(Err(rejected(frame)));
                } else if let Some(event) = early_event {
                    let _ = reply.send(Ok(Reply::Response(event)));
                } else {
                    let pending = Pending::Originate {
                        reply,
                        queued: true,
                        early_event: None,
                        wait,
                    };
                    self.insert(id.to_owned(), pending, Instant::now() + wait);
                }
            }
        }
    }

    /// An event carrying one of our ActionIDs. Returns true if it must also be delivered
    /// to the consumer (an `OriginateResponse`), false if it was a list item.
    fn on_correlated_event(&mut self, id: &str, frame: &FrameRef<'_>) -> bool {
        let Some(entry) = self.pending.get_mut(id) else {
            return true;
        };
        match &mut entry.pending {
            Pending::List { items, .. } => {
                let complete = frame
                    .get("EventList")
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"Complete"));
                if !complete {
                    items.push(frame.to_owned());
                    entry.deadline = Instant::now() + self.config.action_timeout;
                    return false;
                }
                let Some(PendingEntry {
                    pending:
                        Pending::List {
                            sink,
                            response,
                            items,
                        },
                    ..
                }) = self.remove(id)
                else {
                    return false;
                };
                let list = EventList {
                    response: response.unwrap_or_else(|| frame.to_owned()),
                    items,
                    complete: Some(frame.to_owned()),
                };
                self.finish_list(sink, Ok(list));
                false
            }
            Pending::Originate {
                queued,
                early_event,
                ..
            } => {
                if !frame
                    .event()
                    .is_some_and(|e| e.eq_ignore_ascii_case(b"OriginateResponse"))
                {
                    return true;
                }
                if !*queued {
                    // The event overtook the response; answer when the response arrives.
                    *early_event = Some(frame.to_owned());
                    return true;
                }
                if let Some(PendingEntry {
                    pending: Pending::Originate { reply, .. },
                    ..
                }) = self.remove(id)
                {
                    let _ = reply.send(Ok(Reply::Response(frame.to_owned())));
                }
                true
            }
            Pending::Simple { .. } | Pending::Ping => true,
        }
    }

    fn finish_list(&mut self, sink: ListSink, res: Result<EventList, ActionError>) {
        match sink {
            ListSink::Caller(reply) => {
                let _ = reply.send(res.map(Reply::List));
            }
            ListSink::Resync(part) => {
                let items = match res {
                    Ok(list) => list.items,
                    Err(error) => {
                        warn!(action = part.action(), error = %error, "AMI resync list failed; continuing without it.");
                        Vec::new()
                    }
                };
                let Some(state) = self.resync.as_mut() else {
                    return;
                };
                match part {
                    ResyncPart::Channels => state.channels = items,
                    ResyncPart::QueueStatus => state.queue_status = items,
                    ResyncPart::DeviceStates => state.device_states = items,
                    ResyncPart::ExtensionStates => state.extension_states = items,
                }
                state.remaining -= 1;
                if state.remaining == 0 {
                    if let Some(state) = self.resync.take() {
                        // Keep stream order: what came before the last Complete goes first.
                        self.flush_batch();
                        self.out.push(AmiUpdate::Resynced {
                            session: self.session,
                            channels: state.channels,
                            queue_status: state.queue_status,
                            device_states: state.device_states,
                            extension_states: state.extension_states,
                        });
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|e| e.deadline).min()
    }

    /// The consumer kept us from reading for `waited`: replies could not be read meanwhile.
    fn postpone(&mut self, waited: Duration) {
        for entry in self.pending.values_mut() {
            entry.deadline += waited;
        }
        if let Some((_, deadline)) = self.ping.as_mut() {
            *deadline += waited;
        }
    }

    /// Fail expired actions. A missing pong or a stalled resync ends the session.
    fn expire(&mut self, now: Instant, metrics: &AmiMetrics) -> Option<DisconnectReason> {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(entry) = self.remove(&id) else {
                continue;
            };
            AmiMetrics::add(&metrics.action_timeouts, 1);
            let timeout = self.config.action_timeout;
            match entry.pending {
                Pending::Ping => {
                    return Some(DisconnectReason::PingTimeout(self.config.ping_timeout));
                }
                Pending::Simple { reply } => {
                    let _ = reply.send(Err(ActionError::Timeout(timeout)));
                }
                Pending::List {
                    sink: ListSink::Caller(reply),
                    ..
                } => {
                    let _ = reply.send(Err(ActionError::Timeout(timeout)));
                }
                Pending::List {
                    sink: ListSink::Resync(part),
                    ..
                } => {
                    return Some(DisconnectReason::ResyncTimeout {
                        action: part.action(),
                    });
                }
                Pending::Originate { reply, .. } => {
                    let _ = reply.send(Err(ActionError::OutcomeUnknown));
                }
            }
        }
        None
    }

    /// The session is over: everybody still waiting learns it.
    fn fail_all(&mut self) {
        for (_, entry) in self.pending.drain() {
            match entry.pending {
                Pending::Ping
                | Pending::List {
                    sink: ListSink::Resync(_),
                    ..
                } => {}
                Pending::Simple { reply }
                | Pending::List {
                    sink: ListSink::Caller(reply),
                    ..
                } => {
                    let _ = reply.send(Err(ActionError::ConnectionLost));
                }
                Pending::Originate { reply, .. } => {
                    let _ = reply.send(Err(ActionError::OutcomeUnknown));
                }
            }
        }
        self.event_waiters = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut config = AmiClientConfig::new("h", 1, "u", "s");
        config.reconnect_initial = Duration::from_millis(100);
        config.reconnect_max = Duration::from_secs(2);
        for (failures, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (5, 1600),
            (6, 2000),
            (60, 2000),
        ] {
            for _ in 0..50 {
                let d = backoff(&config, failures).as_millis() as u64;
                assert!(
                    (full_ms / 2..=full_ms).contains(&d),
                    "failures={failures}: {d} ms"
                );
            }
        }
    }

    #[test]
    fn action_encoding_rejects_own_action_id() {
        let mut out = Vec::new();
        let res = Action::new("Ping")
            .header("ActionID", "mine")
            .encode("kmt-1-1", &mut out);
        assert!(res.is_err());
        Action::new("Ping")
            .encode("kmt-1-1", &mut out)
            .expect("valid");
        assert_eq!(out, b"Action: Ping\r\nActionID: kmt-1-1\r\n\r\n");
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let config = AmiClientConfig::new("h", 1, "u", "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
