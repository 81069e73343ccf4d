//! The TCP side of the simulator: AMI sessions, the action handlers, the scheduler that plays
//! calls in simulated time, and the load generator.
//!
//! Calls belong to the simulator, not to a connection: the scheduler emits each call's frames at
//! their time to every logged-in session with events on. A client that connects mid-call sees the
//! rest of the call and can resync with `CoreShowChannels`. Stopping the server loses every call
//! in progress, as an Asterisk restart does.
//!
//! Sessions behave like Asterisk's: banner first, only `Login`/`Challenge`/`Logoff` before
//! authentication, a failed login is answered, delayed and closed, every response echoes the
//! ActionID, and a client that does not read its events is disconnected instead of making the
//! simulator buffer without bound (Asterisk's `writetimeout`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use md5::{Digest, Md5};
use pbx_ami::codec::{Decoder, FrameRef, Item, Limits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::live::{hangup_events, push_header, LiveState, PauseOutcome, QueueConfig};
use crate::scenario::{
    scenario_for_did, CallParams, Direction, IdAllocator, Mix, Scenario, TransferTrigger, Variant,
};
use crate::script::Script;
use crate::template::{did_of_channel, extension_of_channel, Bindings, FrameKind, Template};
use crate::time::SimClock;
use crate::SimError;

pub(crate) const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

/// An AMI account (`manager.conf` user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiUser {
    pub username: String,
    pub secret: String,
    /// Drop `VarSet` events for this user, like the recording's `cti_filtered` user
    /// (`eventfilter(action(exclude),name(VarSet))`).
    pub drop_varset: bool,
}

/// How the simulated Asterisk is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Accounts that may log in. Default: the recording's `cti` and `cti_filtered`, both with
    /// secret `cti-secret`.
    pub users: Vec<AmiUser>,
    /// Which capture of each scenario calls are rendered from.
    pub variant: Variant,
    /// Simulated seconds per wall-clock second (10 = calls play ten times faster, with
    /// Timestamps that still show real durations).
    pub time_factor: f64,
    /// The queues `QueueStatus` and `QueuePause` know.
    pub queues: Vec<QueueConfig>,
    /// How long a failed login waits before the socket is closed (Asterisk: 1 s).
    pub auth_failure_delay: Duration,
    /// How long (simulated) a transfer call in [`TransferTrigger::AwaitAction`] mode waits for
    /// the client's action before it goes on as scripted.
    pub action_wait: Duration,
    /// Frames queued for one client before it is considered stuck and disconnected.
    pub session_queue: usize,
    /// Seed for bridge ids, challenges and the first Uniqueid and channel sequence numbers;
    /// `None` = random, so that a restarted simulator does not reuse ids.
    pub seed: Option<u64>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        let user = |name: &str, drop_varset| AmiUser {
            username: name.into(),
            secret: "cti-secret".into(),
            drop_varset,
        };
        SimulatorConfig {
            users: vec![user("cti", false), user("cti_filtered", true)],
            variant: Variant::Full,
            time_factor: 1.0,
            queues: QueueConfig::recorded(),
            auth_failure_delay: Duration::from_secs(1),
            action_wait: Duration::from_secs(30),
            session_queue: 200_000,
            seed: None,
        }
    }
}

/// Identifies a call started by the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A `QueuePause` action as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePauseRecord {
    pub action_id: Option<String>,
    pub interface: String,
    pub queue: Option<String>,
    pub paused: bool,
    pub reason: Option<String>,
    /// Whether a member matched (the response was Success).
    pub accepted: bool,
    /// Simulated epoch microseconds when it arrived.
    pub at_us: i64,
}

/// Any action as received (name as sent, ActionID), for asserting what a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub session: u64,
    pub action: String,
    pub action_id: Option<String>,
    pub at_us: i64,
}

/// How many [`ActionRecord`]s are kept; older ones are forgotten.
const ACTION_LOG_LIMIT: usize = 10_000;
/// Asterisk's `AST_MAX_PUBLIC_UNIQUEID`: an assigned `ChannelId` must be shorter.
const MAX_PUBLIC_UNIQUEID: usize = 149;

/// An `Originate` action as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateRecord {
    pub action_id: Option<String>,
    pub channel: String,
    pub context: Option<String>,
    pub exten: Option<String>,
    pub application: Option<String>,
    pub data: Option<String>,
    pub caller_id: Option<String>,
    pub variables: Vec<String>,
    pub is_async: bool,
    /// `ChannelId`: the Uniqueid the originator chose for the channel.
    pub channel_id: Option<String>,
    /// The call it started, if the simulator could play one.
    pub call: Option<CallId>,
    pub at_us: i64,
}

/// A load profile: calls started at a steady rate with a weighted mix.
#[derive(Debug, Clone)]
pub struct LoadProfile {
    /// Calls per simulated second.
    pub calls_per_sec: f64,
    /// Stop after this many calls (`None` = until stopped).
    pub total_calls: Option<u64>,
    pub mix: Mix,
    /// External numbers to call from (e.g. the demo's customer directory); empty = the
    /// captures' own callers.
    pub callers: Vec<String>,
    pub seed: u64,
}

/// An event frame as the simulator handed it to its AMI sessions, for timing what a client
/// does with it (see [`SimulatorHandle::watch_events`]).
#[derive(Debug, Clone)]
pub struct SentFrame {
    /// Wall clock when it was queued to the sessions, µs since the Unix epoch.
    pub at_unix_us: i64,
    /// The frame, byte for byte as sent.
    pub bytes: Arc<[u8]>,
}

/// A running load generator.
#[derive(Debug)]
pub struct LoadRun {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<u64>,
}

impl LoadRun {
    /// Stops starting new calls (calls in progress go on) and returns how many were started.
    pub async fn stop(self) -> u64 {
        self.stop.notify_one();
        self.task.await.unwrap_or(0)
    }

    /// Waits until the profile's `total_calls` were started; returns how many.
    pub async fn finished(self) -> u64 {
        self.task.await.unwrap_or(0)
    }
}

/// A cloneable handle to one simulated Asterisk: start calls, read what clients sent.
#[derive(Clone)]
pub struct SimulatorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle").finish_non_exhaustive()
    }
}

/// A simulator serving on a TCP port, started with [`Simulator::start`].
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    handle: SimulatorHandle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Simulator {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves AMI there until [`Simulator::shutdown`].
    pub async fn start(
        config: SimulatorConfig,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Simulator::serve(SimulatorHandle::new(config), listener))
    }

    /// Serves an existing handle on a bound listener (e.g. to restart on the same port with
    /// the same logs).
    pub fn serve(handle: SimulatorHandle, listener: TcpListener) -> Simulator {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, handle.clone(), async move {
            let _ = rx.await;
        }));
        Simulator {
            addr,
            handle,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> &SimulatorHandle {
        &self.handle
    }

    /// Stops serving: closes every connection and loses every call in progress. The port is
    /// free again when this returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Shared {
    config: SimulatorConfig,
    clock: SimClock,
    core: Mutex<Core>,
    /// Wakes the scheduler when calls change.
    wake: Notify,
    active_calls: watch::Sender<usize>,
}

struct Core {
    live: LiveState,
    ids: IdAllocator,
    rng: StdRng,
    calls: BTreeMap<u64, LiveCall>,
    /// When each call's next frame is due: (due, call, generation). An entry whose generation
    /// is not the call's current one is stale and skipped.
    agenda: BinaryHeap<Reverse<(i64, u64, u64)>>,
    next_call: u64,
    sessions: Vec<SessionTx>,
    /// Observers of every broadcast event frame.
    watchers: Vec<mpsc::UnboundedSender<SentFrame>>,
    next_session: u64,
    pause_log: Vec<QueuePauseRecord>,
    originate_log: Vec<OriginateRecord>,
    action_log: VecDeque<ActionRecord>,
    boot_us: i64,
    calls_processed: u64,
    stopped: bool,
}

struct LiveCall {
    scenario: Scenario,
    template: &'static Template,
    bindings: Bindings,
    next_frame: usize,
    /// Delay added to the remaining frames (time spent waiting for a client's action).
    shift_us: i64,
    /// The originator's ActionID, for `OriginateResponse`.
    origin_action_id: Option<Vec<u8>>,
    trigger: TransferTrigger,
    /// The rendered channel the transfer action must name.
    expected_channel: Option<Vec<u8>>,
    /// A client's transfer action waiting to be answered at the action point.
    pending_action: Option<(u64, Option<Vec<u8>>)>,
    /// Bumped whenever the next frame's due time changes (see `Core::agenda`).
    generation: u64,
}

struct SessionTx {
    id: u64,
    tx: mpsc::Sender<Arc<[u8]>>,
    kill: Arc<Notify>,
    events: bool,
    drop_varset: bool,
}

impl SimulatorHandle {
    pub fn new(config: SimulatorConfig) -> SimulatorHandle {
        let clock = SimClock::starting_now(config.time_factor);
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        // Asterisk restarts its counters at 0, but its Uniqueids also carry the boot time; a
        // random start keeps a quickly restarted simulator from reusing ids.
        let first_uid = rng.gen_range(0..1_000_000);
        let first_chan = rng.gen_range(0..0x0100_0000);
        let boot_us = clock.now_us();
        let core = Core {
            live: LiveState::new(&config.queues, boot_us.div_euclid(1_000_000)),
            ids: IdAllocator::new(first_uid, first_chan),
            rng,
            calls: BTreeMap::new(),
            agenda: BinaryHeap::new(),
            next_call: 1,
            sessions: Vec::new(),
            watchers: Vec::new(),
            next_session: 1,
            pause_log: Vec::new(),
            originate_log: Vec::new(),
            action_log: VecDeque::new(),
            boot_us,
            calls_processed: 0,
            stopped: false,
        };
        let (active_calls, _) = watch::channel(0);
        SimulatorHandle {
            shared: Arc::new(Shared {
                config,
                clock,
                core: Mutex::new(core),
                wake: Notify::new(),
                active_calls,
            }),
        }
    }

    /// Starts one call now. It plays to every connected client as the scheduler reaches its
    /// frames.
    pub fn start_call(&self, scenario: Scenario, params: CallParams) -> Result<CallId, SimError> {
        let now_us = self.shared.clock.now_us();
        let mut core = self.shared.lock();
        if core.stopped {
            return Err(SimError::ShutDown);
        }
        let id = core.start_call(&self.shared, scenario, &params, now_us, None)?;
        drop(core);
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Starts calls with `profile` until it has started `total_calls` or is stopped. Needs a
    /// tokio runtime.
    pub fn run_load(&self, profile: LoadProfile) -> LoadRun {
        let stop = Arc::new(Notify::new());
        let handle = self.clone();
        let stop_rx = stop.clone();
        let task = tokio::spawn(async move { handle.load_loop(profile, &[], stop_rx).await });
        LoadRun { stop, task }
    }

    /// Like [`run_load`](Self::run_load), but every scenario that can ring any agent
    /// ([`Scenario::takes_agent`]: direct-DID calls, click-to-call) uses one picked at random
    /// from `agents`, so a large team each gets their own calls.
    pub fn run_load_on(&self, profile: LoadProfile, agents: Vec<String>) -> LoadRun {
        let stop = Arc::new(Notify::new());
        let handle = self.clone();
        let stop_rx = stop.clone();
        let task = tokio::spawn(async move { handle.load_loop(profile, &agents, stop_rx).await });
        LoadRun { stop, task }
    }

    /// Every event frame sent to the AMI sessions from now on, with the time it was sent.
    /// Unbounded: read it as fast as the load it watches.
    pub fn watch_events(&self) -> mpsc::UnboundedReceiver<SentFrame> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.lock().watchers.push(tx);
        rx
    }

    /// Plays a scenario script: each step's call starts at its (simulated) time after now.
    /// Needs a tokio runtime.
    pub fn play_script(&self, script: Script) -> LoadRun {
        let stop = Arc::new(Notify::new());
        let handle = self.clone();
        let stop_rx = stop.clone();
        let task = tokio::spawn(async move {
            let origin = tokio::time::Instant::now();
            let mut started = 0u64;
            for step in script.steps {
                let due = origin + handle.shared.clock.wall_duration(step.at);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop_rx.notified() => break,
                }
                match handle.start_call(step.scenario, step.params) {
                    Ok(_) => started += 1,
                    Err(SimError::ShutDown) => break,
                    Err(e) => warn!(error = %e, "Script step could not start a call."),
                }
            }
            started
        });
        LoadRun { stop, task }
    }

    async fn load_loop(&self, profile: LoadProfile, agents: &[String], stop: Arc<Notify>) -> u64 {
        let mut rng = StdRng::seed_from_u64(profile.seed);
        let rate = if profile.calls_per_sec.is_finite() && profile.calls_per_sec > 0.0 {
            profile.calls_per_sec
        } else {
            return 0;
        };
        let gap = self
            .shared
            .clock
            .wall_duration(Duration::from_secs_f64(1.0 / rate));
        let mut next = tokio::time::Instant::now();
        let mut started = 0u64;
        while profile.total_calls.is_none_or(|total| started < total) {
            let Some(scenario) = profile.mix.pick(&mut rng) else {
                break;
            };
            let caller = (!profile.callers.is_empty())
                .then(|| profile.callers[rng.gen_range(0..profile.callers.len())].clone());
            let agent = (scenario.takes_agent() && !agents.is_empty())
                .then(|| agents[rng.gen_range(0..agents.len())].clone());
            let params = CallParams {
                caller,
                agent,
                ..CallParams::default()
            };
            match self.start_call(scenario, params) {
                Ok(_) => started += 1,
                Err(SimError::ShutDown) => break,
                Err(e) => {
                    warn!(error = %e, "Load generator could not start a call.");
                    break;
                }
            }
            next += gap;
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.notified() => break,
            }
        }
        started
    }

    /// Every `QueuePause` received, in order.
    pub fn pause_log(&self) -> Vec<QueuePauseRecord> {
        self.shared.lock().pause_log.clone()
    }

    /// Every `Originate` received, in order.
    pub fn originate_log(&self) -> Vec<OriginateRecord> {
        self.shared.lock().originate_log.clone()
    }

    /// The last actions received (up to 10,000), oldest first.
    pub fn action_log(&self) -> Vec<ActionRecord> {
        self.shared.lock().action_log.iter().cloned().collect()
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.shared.lock().calls.len()
    }

    /// Channels alive now (what `CoreShowChannels` would list).
    pub fn live_channels(&self) -> usize {
        self.shared.lock().live.n_channels()
    }

    /// Logged-in sessions.
    pub fn sessions(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Waits until no call is in progress.
    pub async fn wait_idle(&self) {
        let mut rx = self.shared.active_calls.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// The simulated clock (for converting durations under time compression).
    pub fn clock(&self) -> SimClock {
        self.shared.clock
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a simulator bug; the state is still usable
        // for the remaining test output, so recover it rather than cascade.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves AMI on `listener` until `shutdown` completes. Then every connection is closed and
/// every call in progress is lost, as when Asterisk stops. The handle can be served again
/// (a restart): its logs are kept, its live state starts empty.
pub async fn run(
    listener: TcpListener,
    sim: SimulatorHandle,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = sim.shared.clone();
    {
        let mut core = shared.lock();
        core.stopped = false;
        core.boot_us = shared.clock.now_us();
        core.live = LiveState::new(&shared.config.queues, core.boot_us.div_euclid(1_000_000));
    }
    info!(addr = ?listener.local_addr().ok(), "PBX simulator is listening.");
    let mut sessions = JoinSet::new();
    let scheduler = tokio::spawn(scheduler(shared.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok();
                    sessions.spawn(session(shared.clone(), stream, peer, local));
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    warn!(error = %e, "Accepting an AMI connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    scheduler.abort();
    {
        let mut core = shared.lock();
        core.stopped = true;
        core.calls.clear();
        core.agenda.clear();
        for s in core.sessions.drain(..) {
            s.kill.notify_one();
        }
        shared.active_calls.send_replace(0);
    }
    sessions.shutdown().await;
    let _ = scheduler.await;
    info!("PBX simulator stopped.");
    Ok(())
}

async fn scheduler(shared: Arc<Shared>) {
    loop {
        let next_due = {
            let mut core = shared.lock();
            let now_us = shared.clock.now_us();
            core.emit_due(&shared, now_us)
        };
        let sleep = match next_due {
            Some(due_us) => tokio::time::sleep_until(shared.clock.instant_of(due_us).into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.wake.notified() => {}
        }
    }
}

impl Core {
    fn start_call(
        &mut self,
        shared: &Shared,
        scenario: Scenario,
        params: &CallParams,
        now_us: i64,
        origin_action_id: Option<Vec<u8>>,
    ) -> Result<CallId, SimError> {
        let variant = shared.config.variant;
        let boot_secs = self.boot_us.div_euclid(1_000_000);
        let bindings =
            self.ids
                .bind(scenario, variant, params, now_us, boot_secs, &mut self.rng)?;
        let template = scenario.template(variant);
        let expected_channel = template.action_point.as_ref().map(|point| {
            let mut out = Vec::new();
            template.render_segs(&point.channel, &bindings, now_us, b"", &mut out);
            out
        });
        let id = self.next_call;
        self.next_call += 1;
        // A click-to-call nobody here asked for was originated by some other AMI application
        // (a CRM); Asterisk sends its OriginateResponse to every session.
        let origin_action_id = origin_action_id.or_else(|| {
            (scenario.direction() == Direction::Outbound)
                .then(|| format!("sim-originate-{id}").into_bytes())
        });
        self.calls.insert(
            id,
            LiveCall {
                scenario,
                template,
                bindings,
                next_frame: 0,
                shift_us: 0,
                origin_action_id,
                trigger: params.transfer,
                expected_channel,
                pending_action: None,
                generation: 0,
            },
        );
        self.schedule(id, shared);
        shared.active_calls.send_replace(self.calls.len());
        debug!(call = id, scenario = %scenario, "Simulated call started.");
        Ok(CallId(id))
    }

    /// When frame `next_frame` of a call is due.
    fn due_us(call: &LiveCall, action_wait_us: i64) -> i64 {
        let frame = &call.template.frames[call.next_frame];
        let t = call.bindings.start_us + frame.offset_us + call.shift_us;
        if frame.kind == FrameKind::ActionResponse
            && call.trigger == TransferTrigger::AwaitAction
            && call.pending_action.is_none()
        {
            return t + action_wait_us;
        }
        t
    }

    /// Puts a call's next frame on the agenda (again, after its due time changed).
    fn schedule(&mut self, id: u64, shared: &Shared) {
        let wait_us = shared.config.action_wait.as_micros() as i64;
        if let Some(call) = self.calls.get_mut(&id) {
            call.generation += 1;
            let due = Core::due_us(call, wait_us);
            self.agenda.push(Reverse((due, id, call.generation)));
        }
    }

    /// Emits every frame due by `now_us`, in time order across calls; returns when the next
    /// frame is due.
    fn emit_due(&mut self, shared: &Shared, now_us: i64) -> Option<i64> {
        let wait_us = shared.config.action_wait.as_micros() as i64;
        while let Some(Reverse((due_us, id, generation))) = self.agenda.peek().copied() {
            let current = self.calls.get(&id).map(|c| c.generation);
            if current != Some(generation) {
                self.agenda.pop();
                continue;
            }
            if due_us > now_us {
                return Some(due_us);
            }
            self.agenda.pop();
            self.emit_frame(shared, id, wait_us);
            self.schedule(id, shared);
        }
        None
    }

    fn emit_frame(&mut self, shared: &Shared, id: u64, wait_us: i64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let idx = call.next_frame;
        let frame = &call.template.frames[idx];
        let mut out = Vec::with_capacity(1024);
        enum Deliver {
            All { varset: bool },
            One(u64),
            Nobody,
        }
        let deliver = match frame.kind {
            FrameKind::Event => {
                call.template
                    .render_frame(idx, &call.bindings, call.shift_us, b"", &mut out);
                Deliver::All {
                    varset: &*frame.event == b"VarSet",
                }
            }
            FrameKind::OriginateResponse => match &call.origin_action_id {
                Some(action_id) => {
                    call.template.render_frame(
                        idx,
                        &call.bindings,
                        call.shift_us,
                        action_id,
                        &mut out,
                    );
                    Deliver::All { varset: false }
                }
                None => Deliver::Nobody,
            },
            FrameKind::ActionResponse => match call.pending_action.take() {
                Some((session, action_id)) => {
                    let action_id = action_id.unwrap_or_default();
                    let mut response = Vec::new();
                    call.template.render_frame(
                        idx,
                        &call.bindings,
                        call.shift_us,
                        &action_id,
                        &mut response,
                    );
                    // Without an ActionID Asterisk writes no ActionID line.
                    out = if action_id.is_empty() {
                        strip_header(&response, b"ActionID")
                    } else {
                        response
                    };
                    Deliver::One(session)
                }
                None => {
                    if call.trigger == TransferTrigger::AwaitAction {
                        // Nobody transferred within the wait: the call goes on as recorded,
                        // later by the time it waited.
                        call.shift_us += wait_us;
                    }
                    Deliver::Nobody
                }
            },
        };
        call.next_frame += 1;
        let finished = call.next_frame >= call.template.frames.len();
        let frame_us = call.bindings.start_us + frame.offset_us + call.shift_us;
        let scenario = call.scenario;
        match deliver {
            Deliver::All { varset } => {
                if let Some(patched) = self.live.patch_member_frame(&out) {
                    out = patched;
                }
                self.live.apply(id, &out, frame_us);
                self.broadcast(out.into(), varset);
            }
            Deliver::One(session) => self.send_to(session, out.into()),
            Deliver::Nobody => {}
        }
        if finished {
            self.calls.remove(&id);
            self.live.remove_call(id);
            self.calls_processed += 1;
            shared.active_calls.send_replace(self.calls.len());
            debug!(call = id, scenario = %scenario, "Simulated call ended.");
        }
    }

    fn broadcast(&mut self, frame: Arc<[u8]>, varset: bool) {
        if !self.watchers.is_empty() {
            let at_unix_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            self.watchers.retain(|w| {
                w.send(SentFrame {
                    at_unix_us,
                    bytes: frame.clone(),
                })
                .is_ok()
            });
        }
        let mut stuck = Vec::new();
        for s in &self.sessions {
            if !s.events || (varset && s.drop_varset) {
                continue;
            }
            if s.tx.try_send(frame.clone()).is_err() {
                stuck.push(s.id);
            }
        }
        for id in stuck {
            self.drop_session(id, "it does not read its events");
        }
    }

    fn send_to(&mut self, session: u64, frame: Arc<[u8]>) {
        let failed = match self.sessions.iter().find(|s| s.id == session) {
            Some(s) => s.tx.try_send(frame).is_err(),
            None => false,
        };
        if failed {
            self.drop_session(session, "it does not read its responses");
        }
    }

    fn drop_session(&mut self, id: u64, why: &str) {
        if let Some(pos) = self.sessions.iter().position(|s| s.id == id) {
            let s = self.sessions.remove(pos);
            s.kill.notify_one();
            warn!(session = id, reason = why, "Dropping an AMI session.");
        }
    }

    /// Ends a call now: its remaining frames are dropped and every live channel hangs up.
    fn hang_up_call(&mut self, shared: &Shared, id: u64, channel: &[u8], cause: u8, now_us: i64) {
        let channels = self.live.channels_of_call(id);
        for frame in hangup_events(&channels, channel, cause, now_us) {
            self.live.apply(id, &frame, now_us);
            self.broadcast(frame.into(), false);
        }
        self.calls.remove(&id);
        self.live.remove_call(id);
        self.calls_processed += 1;
        shared.active_calls.send_replace(self.calls.len());
    }
}

/// One AMI connection.
async fn session(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) {
    let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(shared.config.session_queue.max(16));
    let kill = Arc::new(Notify::new());
    let session_id = {
        let mut core = shared.lock();
        let id = core.next_session;
        core.next_session += 1;
        id
    };
    debug!(session = session_id, %peer, "AMI connection accepted.");
    let (mut reader, writer) = stream.into_split();
    let write_loop = async move {
        let mut writer = BufWriter::with_capacity(64 * 1024, writer);
        if writer.write_all(BANNER).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
            // Write whatever else is queued before flushing, so a burst is one syscall.
            while let Ok(frame) = rx.try_recv() {
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
            }
            if writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    let read_loop = {
        let shared = shared.clone();
        let kill = kill.clone();
        async move {
            let mut conn = Connection {
                id: session_id,
                tx,
                kill: kill.clone(),
                peer,
                local,
                user: None,
                challenge: None,
            };
            // Asterisk discards client lines over 1024 bytes and actions over 128 headers.
            let mut decoder = Decoder::new(Limits {
                max_line: 1024,
                max_frame: 128 * 1026,
                max_headers: 128,
            });
            let mut buf = vec![0u8; 16 * 1024];
            'session: loop {
                let n = tokio::select! {
                    n = reader.read(&mut buf) => n,
                    _ = kill.notified() => break 'session,
                };
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                while let Some(item) = decoder.next_item() {
                    let step = match item {
                        Item::Frame(frame) => conn.handle(&shared, &frame),
                        Item::Banner(_) => Step::Continue,
                        Item::Error(e) => {
                            warn!(session = session_id, error = %e, "Skipping a malformed AMI action.");
                            Step::Continue
                        }
                    };
                    match step {
                        Step::Continue => {}
                        Step::Close => break 'session,
                        Step::CloseAfter(delay) => {
                            tokio::time::sleep(delay).await;
                            break 'session;
                        }
                    }
                }
            }
            let mut core = shared.lock();
            core.sessions.retain(|s| s.id != session_id);
            drop(core);
            debug!(session = session_id, "AMI connection closed.");
            // Dropping `conn` drops the last sender: the writer flushes and closes.
        }
    };
    tokio::join!(read_loop, write_loop);
}

enum Step {
    Continue,
    Close,
    CloseAfter(Duration),
}

struct Connection {
    id: u64,
    tx: mpsc::Sender<Arc<[u8]>>,
    kill: Arc<Notify>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    user: Option<AmiUser>,
    challenge: Option<String>,
}

/// The parsed fields of one action, with owned values so the decoder can move on.
struct Action<'a> {
    frame: &'a FrameRef<'a>,
    action_id: Option<Vec<u8>>,
}

impl Action<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.frame
            .get(name)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn id(&self) -> Option<&[u8]> {
        self.action_id.as_deref()
    }
}

impl Connection {
    fn handle(&mut self, shared: &Shared, frame: &FrameRef<'_>) -> Step {
        let action = Action {
            frame,
            action_id: frame.action_id().map(<[u8]>::to_vec),
        };
        let Some(name) = action.get("Action") else {
            self.reply(shared, error(action.id(), "Missing action in request"));
            return Step::Continue;
        };
        {
            let mut core = shared.lock();
            if core.action_log.len() >= ACTION_LOG_LIMIT {
                core.action_log.pop_front();
            }
            core.action_log.push_back(ActionRecord {
                session: self.id,
                action: name.clone(),
                action_id: action.id().map(|v| String::from_utf8_lossy(v).into_owned()),
                at_us: shared.clock.now_us(),
            });
        }
        let name = name.to_ascii_lowercase();
        if self.user.is_none() && !matches!(name.as_str(), "login" | "challenge" | "logoff") {
            self.reply(shared, error(action.id(), "Permission denied"));
            return Step::Continue;
        }
        let now_us = shared.clock.now_us();
        match name.as_str() {
            "login" => return self.login(shared, &action, now_us),
            "challenge" => {
                let auth_type = action.get("AuthType").unwrap_or_default();
                if !auth_type.eq_ignore_ascii_case("md5") {
                    self.reply(shared, error(action.id(), "Must specify AuthType"));
                } else {
                    let challenge = self
                        .challenge
                        .get_or_insert_with(|| {
                            shared
                                .lock()
                                .rng
                                .gen_range(100_000_000..1_000_000_000u32)
                                .to_string()
                        })
                        .clone();
                    let mut out = response_head(b"Success", action.id());
                    push_header(&mut out, b"Challenge", challenge.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    self.reply(shared, out);
                }
            }
            "logoff" => {
                self.reply(
                    shared,
                    response(b"Goodbye", action.id(), "Thanks for all the fish."),
                );
                return Step::Close;
            }
            "ping" => {
                let mut out = response_head(b"Success", action.id());
                push_header(&mut out, b"Ping", b"Pong");
                let ts = format!(
                    "{}.{:06}",
                    now_us.div_euclid(1_000_000),
                    now_us.rem_euclid(1_000_000)
                );
                push_header(&mut out, b"Timestamp", ts.as_bytes());
                out.extend_from_slice(b"\r\n");
                self.reply(shared, out);
            }
            "events" => {
                let mask = action.get("EventMask").unwrap_or_default();
                let on = !(mask.eq_ignore_ascii_case("off") || mask == "0");
                let mut core = shared.lock();
                if let Some(s) = core.sessions.iter_mut().find(|s| s.id == self.id) {
                    s.events = on;
                }
                let mut out = response_head(b"Success", action.id());
                push_header(&mut out, b"Events", if on { b"On" } else { b"Off" });
                out.extend_from_slice(b"\r\n");
                self.send_locked(&mut core, out);
            }
            "coreshowchannels" => {
                let mut core = shared.lock();
                let out = core.live.core_show_channels(action.id(), now_us);
                self.send_locked(&mut core, out);
            }
            "queuestatus" => {
                let queue = action.get("Queue");
                let member = action.get("Member");
                let mut core = shared.lock();
                let out = core.live.queue_status(
                    action.id(),
                    queue.as_deref().map(str::as_bytes),
                    member.as_deref().map(str::as_bytes),
                    now_us,
                );
                self.send_locked(&mut core, out);
            }
            "devicestatelist" => {
                let mut core = shared.lock();
                let out = core.live.device_state_list(action.id());
                self.send_locked(&mut core, out);
            }
            "extensionstatelist" => {
                let mut core = shared.lock();
                let out = core.live.extension_state_list(action.id());
                self.send_locked(&mut core, out);
            }
            "queuepause" => self.queue_pause(shared, &action, now_us),
            "originate" => self.originate(shared, &action, now_us),
            "redirect" | "blindtransfer" | "atxfer" => {
                self.transfer(shared, &action, &name, now_us)
            }
            "hangup" => self.hangup(shared, &action, now_us),
            "command" => self.command(shared, &action),
            _ => {
                let shown = action.get("Action").unwrap_or_default();
                let msg = format!(
                    "Invalid/unknown command: {shown}. Use Action: ListCommands to show available commands."
                );
                self.reply(shared, error(action.id(), &msg));
            }
        }
        Step::Continue
    }

    fn login(&mut self, shared: &Shared, action: &Action<'_>, now_us: i64) -> Step {
        if self.user.is_some() {
            self.reply(
                shared,
                response(b"Success", action.id(), "Already authenticated"),
            );
            return Step::Continue;
        }
        let username = action.get("Username").unwrap_or_default();
        let user = shared
            .config
            .users
            .iter()
            .find(|u| u.username == username)
            .cloned();
        let md5 = action
            .get("AuthType")
            .is_some_and(|t| t.eq_ignore_ascii_case("md5"));
        let ok = user.as_ref().is_some_and(|u| {
            if md5 {
                match (&self.challenge, action.get("Key")) {
                    (Some(challenge), Some(key)) => {
                        let digest = Md5::digest(format!("{challenge}{}", u.secret));
                        hex::encode(digest).eq_ignore_ascii_case(&key)
                    }
                    _ => false,
                }
            } else {
                // Exact comparison; the secret is configuration, not network input.
                action.frame.get("Secret").unwrap_or_default() == u.secret.as_bytes()
            }
        });
        let Some(user) = user.filter(|_| ok) else {
            info!(session = self.id, "AMI login failed.");
            self.reply(shared, error(action.id(), "Authentication failed"));
            return Step::CloseAfter(shared.config.auth_failure_delay);
        };
        let events = action
            .get("Events")
            .is_none_or(|e| !(e.eq_ignore_ascii_case("off") || e == "0"));
        let mut core = shared.lock();
        let mut out = response(b"Success", action.id(), "Authentication accepted");
        if events {
            let uptime = (now_us - core.boot_us).div_euclid(1_000_000);
            write_fully_booted(&mut out, uptime);
        }
        self.send_locked(&mut core, out);
        core.sessions.push(SessionTx {
            id: self.id,
            tx: self.tx.clone(),
            kill: self.kill.clone(),
            events,
            drop_varset: user.drop_varset,
        });
        let auth = successful_auth(&user.username, self.id, self.local, self.peer, now_us);
        core.broadcast(auth.into(), false);
        info!(session = self.id, user = %user.username, "AMI login accepted.");
        self.user = Some(user);
        Step::Continue
    }

    fn queue_pause(&mut self, shared: &Shared, action: &Action<'_>, now_us: i64) {
        let (Some(interface), Some(paused)) = (action.get("Interface"), action.get("Paused"))
        else {
            self.reply(
                shared,
                error(action.id(), "Need 'Interface' and 'Paused' parameters."),
            );
            return;
        };
        let paused = ast_true(&paused);
        let queue = action.get("Queue");
        let reason = action.get("Reason");
        let mut core = shared.lock();
        let outcome = core.live.pause(
            &interface,
            queue.as_deref(),
            paused,
            reason.as_deref().unwrap_or(""),
            now_us,
        );
        let accepted = matches!(outcome, PauseOutcome::Changed(_));
        core.pause_log.push(QueuePauseRecord {
            action_id: action.id().map(|v| String::from_utf8_lossy(v).into_owned()),
            interface,
            queue,
            paused,
            reason,
            accepted,
            at_us: now_us,
        });
        match outcome {
            PauseOutcome::Changed(events) => {
                let msg = if paused {
                    "Interface paused successfully"
                } else {
                    "Interface unpaused successfully"
                };
                self.send_locked(&mut core, response(b"Success", action.id(), msg));
                for e in events {
                    core.broadcast(e.into(), false);
                }
            }
            PauseOutcome::NotFound => {
                self.send_locked(&mut core, error(action.id(), "Interface not found"));
            }
        }
    }

    fn originate(&mut self, shared: &Shared, action: &Action<'_>, now_us: i64) {
        let Some(channel) = action.get("Channel") else {
            self.reply(shared, error(action.id(), "Channel not specified"));
            return;
        };
        let exten = action.get("Exten");
        let application = action.get("Application");
        let variables: Vec<String> = action
            .frame
            .get_all("Variable")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let caller_id = action.get("CallerID");
        let is_async = action.get("Async").is_some_and(|v| ast_true(&v));
        let mut record = OriginateRecord {
            action_id: action.id().map(|v| String::from_utf8_lossy(v).into_owned()),
            channel: channel.clone(),
            context: action.get("Context"),
            exten: exten.clone(),
            application: application.clone(),
            data: action.get("Data"),
            caller_id: caller_id.clone(),
            variables: variables.clone(),
            is_async,
            channel_id: action.get("ChannelId"),
            call: None,
            at_us: now_us,
        };
        let channel_id = action.get("ChannelId").filter(|id| !id.is_empty());
        let too_long = [
            channel_id.as_deref(),
            action.get("OtherChannelId").as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|id| id.len() >= MAX_PUBLIC_UNIQUEID);
        if too_long {
            let mut core = shared.lock();
            core.originate_log.push(record);
            let message = format!("Uniqueid length exceeds maximum of {MAX_PUBLIC_UNIQUEID}");
            self.send_locked(&mut core, error(action.id(), &message));
            return;
        }
        if exten.is_none() && application.is_none() {
            let mut core = shared.lock();
            core.originate_log.push(record);
            self.send_locked(&mut core, error(action.id(), "Exten not specified"));
            return;
        }
        // What call would the recorded dialplan make of this?
        let variable = |name: &str| {
            variables.iter().find_map(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
            })
        };
        let (cid_name, cid_num) = split_caller_id(caller_id.as_deref().unwrap_or(""));
        let plan = if let Some(did) = did_of_channel(&channel).filter(|_| application.is_some()) {
            scenario_for_did(did).map(|s| {
                (
                    s,
                    CallParams {
                        caller: variable("CALLER_NUM").or(cid_num),
                        caller_name: variable("CALLER_NAME").or(cid_name),
                        did: Some(did.to_owned()),
                        ..CallParams::default()
                    },
                )
            })
        } else if let (Some(exten), Some(agent)) = (&exten, extension_of_channel(&channel)) {
            // `ChannelId` names the originated channel (the call's Linkedid); a Local
            // channel's `;2` half gets `OtherChannelId`, or `<ChannelId>;2` as Asterisk does.
            let other_channel_id = action.get("OtherChannelId").or_else(|| {
                let id = channel_id.as_ref()?;
                channel.starts_with("Local/").then(|| format!("{id};2"))
            });
            Some((
                Scenario::ClickToCall,
                CallParams {
                    caller: Some(exten.clone()),
                    agent: Some(agent.to_owned()),
                    channel_id: channel_id.clone(),
                    other_channel_id,
                    ..CallParams::default()
                },
            ))
        } else {
            None
        };
        let mut core = shared.lock();
        self.send_locked(
            &mut core,
            response(b"Success", action.id(), "Originate successfully queued"),
        );
        let origin_id = action.id().map(<[u8]>::to_vec).unwrap_or_default();
        let started = plan.and_then(|(scenario, params)| {
            match core.start_call(shared, scenario, &params, now_us, Some(origin_id.clone())) {
                Ok(id) => Some(id),
                Err(e) => {
                    warn!(error = %e, "Originate cannot be simulated.");
                    None
                }
            }
        });
        record.call = started;
        core.originate_log.push(record);
        match started {
            Some(_) => shared.wake.notify_one(),
            None => {
                // Asterisk could not create the channel: the async originate fails at once.
                let frame = originate_failure(action, &channel, now_us);
                core.broadcast(frame.into(), false);
            }
        }
    }

    fn transfer(&mut self, shared: &Shared, action: &Action<'_>, name: &str, now_us: i64) {
        let Some(channel) = action.get("Channel") else {
            let msg = if name == "redirect" {
                "Channel not specified"
            } else {
                "No channel specified"
            };
            self.reply(shared, error(action.id(), msg));
            return;
        };
        let Some(exten) = action.get("Exten") else {
            self.reply(shared, error(action.id(), "No extension specified"));
            return;
        };
        let mut core = shared.lock();
        let Some(call_id) = core.live.call_of_channel(channel.as_bytes()) else {
            let msg = if name == "redirect" {
                format!("Channel does not exist: {channel}")
            } else {
                "Channel specified does not exist".to_owned()
            };
            self.send_locked(&mut core, error(action.id(), &msg));
            return;
        };
        let wait_us = shared.config.action_wait.as_micros() as i64;
        let session = self.id;
        let accepted = core.calls.get_mut(&call_id).is_some_and(|call| {
            let Some(point) = &call.template.action_point else {
                return false;
            };
            let matches = point.action.eq_ignore_ascii_case(name)
                && call.expected_channel.as_deref() == Some(channel.as_bytes())
                && point.exten == exten
                && action.get("Context").is_none_or(|c| c == point.context)
                && call.next_frame <= point.frame_idx
                && call.pending_action.is_none();
            if !matches {
                return false;
            }
            if call.next_frame == point.frame_idx && call.trigger == TransferTrigger::AwaitAction {
                // The call has been waiting at the transfer point: the rest of it starts now.
                let due = Core::due_us(call, wait_us) - wait_us;
                call.shift_us += (now_us - due).max(0);
            }
            call.pending_action = Some((session, action.action_id.clone()));
            true
        });
        if accepted {
            core.schedule(call_id, shared);
            // The response is the recorded one, emitted at the transfer point.
            core.emit_due(shared, now_us);
            drop(core);
            shared.wake.notify_one();
            return;
        }
        // The simulator can only play transfers it has a recording of; say what Asterisk says
        // when it cannot do this one.
        let out = match name {
            "atxfer" => response(b"Success", action.id(), "Atxfer successfully queued"),
            "blindtransfer" => error(action.id(), "Transfer failed"),
            _ => error(action.id(), "Redirect failed"),
        };
        self.send_locked(&mut core, out);
    }

    fn hangup(&mut self, shared: &Shared, action: &Action<'_>, now_us: i64) {
        let Some(channel) = action.get("Channel") else {
            self.reply(shared, error(action.id(), "No channel specified"));
            return;
        };
        let cause = action
            .get("Cause")
            .and_then(|c| c.parse::<u8>().ok())
            .filter(|c| *c <= 127)
            .unwrap_or(16);
        let mut core = shared.lock();
        match core.live.call_of_channel(channel.as_bytes()) {
            Some(call) => {
                self.send_locked(
                    &mut core,
                    response(b"Success", action.id(), "Channel Hungup"),
                );
                core.hang_up_call(shared, call, channel.as_bytes(), cause, now_us);
                drop(core);
                shared.wake.notify_one();
            }
            None => self.send_locked(&mut core, error(action.id(), "No such channel")),
        }
    }

    fn command(&mut self, shared: &Shared, action: &Action<'_>) {
        let command = action.get("Command").unwrap_or_default();
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut core = shared.lock();
        let lines: Option<Vec<String>> = match words.as_slice() {
            ["core", "show", "version"] => Some(vec![
                "Asterisk 22.10.1 built by kommutator pbx-simulator".to_owned(),
            ]),
            ["core", "show", "channels", ..] => Some(vec![
                format!("{} active channels", core.live.n_channels()),
                format!("{} active calls", core.calls.len()),
                format!("{} calls processed", core.calls_processed),
            ]),
            ["core", "show", "uptime", ..] => {
                let secs = (shared.clock.now_us() - core.boot_us).div_euclid(1_000_000);
                Some(vec![format!("System uptime: {secs} seconds")])
            }
            _ => None,
        };
        let (status, lines): (&[u8], Vec<String>) = match lines {
            Some(lines) => (b"Success", lines),
            None => (
                b"Error",
                vec![format!(
                    "No such command '{command}' (type 'core show help {command}' for other possible commands)"
                )],
            ),
        };
        let mut out = response_head(status, action.id());
        push_header(&mut out, b"Message", b"Command output follows");
        for line in lines {
            push_header(&mut out, b"Output", line.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        self.send_locked(&mut core, out);
    }

    fn reply(&mut self, shared: &Shared, out: Vec<u8>) {
        let mut core = shared.lock();
        self.send_locked(&mut core, out);
    }

    /// Sends under the core lock, so the response is ordered with the events emitted around it.
    fn send_locked(&self, core: &mut Core, out: Vec<u8>) {
        if self.tx.try_send(out.into()).is_err() {
            core.drop_session(self.id, "it does not read its responses");
            self.kill.notify_one();
        }
    }
}

/// `Response: <status>` and the ActionID line.
fn response_head(status: &[u8], action_id: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    push_header(&mut out, b"Response", status);
    if let Some(id) = action_id {
        push_header(&mut out, b"ActionID", id);
    }
    out
}

fn response(status: &[u8], action_id: Option<&[u8]>, message: &str) -> Vec<u8> {
    let mut out = response_head(status, action_id);
    push_header(&mut out, b"Message", message.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

fn error(action_id: Option<&[u8]>, message: &str) -> Vec<u8> {
    response(b"Error", action_id, message)
}

/// `ast_true`: yes, true, y, t, 1, on.
fn ast_true(v: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
}

/// `"Name" <number>` → (name, number).
fn split_caller_id(cid: &str) -> (Option<String>, Option<String>) {
    let cid = cid.trim();
    let (name, num) = match (cid.rfind('<'), cid.rfind('>')) {
        (Some(open), Some(close)) if open < close => (&cid[..open], &cid[open + 1..close]),
        _ => ("", cid),
    };
    let name = name.trim().trim_matches('"').trim();
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    (some(name), some(num.trim()))
}

fn strip_header(frame: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    for line in frame.split_inclusive(|b| *b == b'\n') {
        let is_it = line.len() > name.len() + 1
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':';
        if !is_it {
            out.extend_from_slice(line);
        }
    }
    out
}

pub(crate) fn write_fully_booted(out: &mut Vec<u8>, uptime_secs: i64) {
    let _ = write!(
        out,
        "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {uptime_secs}\r\n\
LastReload: {uptime_secs}\r\nStatus: Fully Booted\r\n\r\n"
    );
}

/// The security event Asterisk raises for a login, in the recording's layout.
fn successful_auth(
    user: &str,
    session: u64,
    local: Option<SocketAddr>,
    peer: SocketAddr,
    now_us: i64,
) -> Vec<u8> {
    let addr = |a: SocketAddr| {
        let family = if a.is_ipv4() { "IPV4" } else { "IPV6" };
        format!("{family}/TCP/{}/{}", a.ip(), a.port())
    };
    let mut tv = Vec::new();
    crate::time::write_datetime(now_us.div_euclid(1_000_000), &mut tv);
    let tv = format!(
        "{}.{:03}+0000",
        String::from_utf8_lossy(&tv).replace(' ', "T"),
        now_us.rem_euclid(1_000_000) / 1000
    );
    let mut out = Vec::new();
    let _ = write!(
        out,
        "Event: SuccessfulAuth\r\nPrivilege: security,all\r\nTimestamp: {}.{:06}\r\n\
EventTV: {tv}\r\nSeverity: Informational\r\nService: AMI\r\nEventVersion: 1\r\n\
AccountID: {user}\r\nSessionID: 0x{:012x}\r\nLocalAddress: {}\r\nRemoteAddress: {}\r\n\
UsingPassword: 0\r\nSessionTV: {tv}\r\n\r\n",
        now_us.div_euclid(1_000_000),
        now_us.rem_euclid(1_000_000),
        0x7f00_0000_0000u64 + session,
        local
            .map(addr)
            .unwrap_or_else(|| "IPV4/TCP/0.0.0.0/5038".into()),
        addr(peer),
    );
    out
}

/// `OriginateResponse` for an originate whose channel could not be created.
fn originate_failure(action: &Action<'_>, channel: &str, now_us: i64) -> Vec<u8> {
    let mut out = Vec::new();
    push_header(&mut out, b"Event", b"OriginateResponse");
    push_header(&mut out, b"Privilege", b"call,all");
    let ts = format!(
        "{}.{:06}",
        now_us.div_euclid(1_000_000),
        now_us.rem_euclid(1_000_000)
    );
    push_header(&mut out, b"Timestamp", ts.as_bytes());
    if let Some(id) = action.id() {
        push_header(&mut out, b"ActionID", id);
    }
    push_header(&mut out, b"Response", b"Failure");
    push_header(&mut out, b"Channel", channel.as_bytes());
    match action.get("Application") {
        Some(app) => {
            push_header(&mut out, b"Application", app.as_bytes());
            let data = action.get("Data").unwrap_or_default();
            push_header(&mut out, b"Data", data.as_bytes());
        }
        None => {
            let context = action.get("Context").unwrap_or_default();
            let exten = action.get("Exten").unwrap_or_default();
            push_header(&mut out, b"Context", context.as_bytes());
            push_header(&mut out, b"Exten", exten.as_bytes());
        }
    }
    push_header(&mut out, b"Reason", b"0");
    push_header(&mut out, b"Uniqueid", b"<unknown>");
    let (name, num) = split_caller_id(&action.get("CallerID").unwrap_or_default());
    let unknown = || "<unknown>".to_owned();
    push_header(
        &mut out,
        b"CallerIDNum",
        num.unwrap_or_else(unknown).as_bytes(),
    );
    push_header(
        &mut out,
        b"CallerIDName",
        name.unwrap_or_else(unknown).as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_split_into_name_and_number() {
        assert_eq!(
            split_caller_id("\"Alice Anderson\" <+15551230001>"),
            (Some("Alice Anderson".into()), Some("+15551230001".into()))
        );
        assert_eq!(split_caller_id("+1555"), (None, Some("+1555".into())));
        assert_eq!(split_caller_id(""), (None, None));
    }

    #[test]
    fn ast_true_accepts_asterisk_spellings() {
        assert!(ast_true("yes") && ast_true("TRUE") && ast_true("1") && ast_true("on"));
        assert!(!ast_true("no") && !ast_true("false") && !ast_true(""));
    }

    #[test]
    fn strip_header_drops_only_that_header() {
        let f = b"Response: Success\r\nActionID: \r\nMessage: Transfer succeeded\r\n\r\n";
        assert_eq!(
            strip_header(f, b"ActionID"),
            b"Response: Success\r\nMessage: Transfer succeeded\r\n\r\n".to_vec()
        );
    }
}
