//! End-to-end ingest benchmark client for `shared/bench/ami-ingest/run_all.sh` ("Client
//! contract"): socket → AMI codec → translation → call tracker, on one core.
//!
//! `ami-ingest-track HOST PORT [expect=N]`: logs in through the real [`pbx_ami::client`] on
//! a current-thread runtime (client and consumer share one core, as in production where the
//! pipeline task sits next to the client task), runs every delivered frame through
//! [`pbx_ami::translate::apply_frame`] into a [`CallTracker`] until
//! `Event: UserEvent` / `UserEvent: BenchDone`, then prints
//! `events=N seconds=S rate=R calls_ended=M ...` and exits.
//!
//! Zero loss is checked, not assumed: the run fails (exit 1) when the client saw a frame it
//! did not deliver, when a frame failed to decode, or when `expect=N` is given and the count
//! differs (the harness expects trace events + 2: `FullyBooted` and `BenchDone`).
//! `cpu_s` is this process's on-CPU time over the run (`/proc/self/stat`, user + system), so
//! that a run on a shared machine can be converted to events per on-CPU second.
//! Not a product binary.

use std::time::{Duration, Instant};

use cti_core::{CallTracker, Effect, Outcome, Timestamp, TrackerConfig};
use pbx_ami::client::{client, AmiClientConfig, AmiMetrics, AmiUpdate, AuthMethod};
use pbx_ami::translate::apply_frame;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(host), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!("usage: ami-ingest-track HOST PORT [expect=N]");
        return std::process::ExitCode::from(2);
    };
    let expect = args
        .iter()
        .skip(3)
        .find_map(|a| a.strip_prefix("expect="))
        .and_then(|n| n.parse::<u64>().ok());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(bench(host.clone(), port, expect))
}

/// User + system CPU seconds of this process (`/proc/self/stat`, clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

async fn bench(host: String, port: u16, expect: Option<u64>) -> std::process::ExitCode {
    let mut config = AmiClientConfig::new(host, port, "bench", "bench");
    config.auth = AuthMethod::Plain;
    config.ping_interval = Duration::from_secs(10);
    let (handle, mut updates, task) = client(config);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(task.run(async {
        let _ = stop_rx.await;
    }));

    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut clock = Timestamp::default();
    let (mut events, mut batches, mut effects) = (0u64, 0u64, 0u64);
    let (mut ended, mut answered) = (0u64, 0u64);
    let mut first: Option<(Instant, Option<f64>)> = None;
    let mut done = false;
    'updates: while let Some(update) = updates.recv().await {
        match update {
            AmiUpdate::Events(batch) => {
                batches += 1;
                if first.is_none() {
                    first = Some((Instant::now(), process_cpu_seconds()));
                }
                for frame in &batch {
                    let frame = frame.as_ref();
                    events += 1;
                    for effect in apply_frame(&mut tracker, &frame, &mut clock) {
                        effects += 1;
                        if let Effect::CallEnded(record) = effect {
                            ended += 1;
                            answered += u64::from(record.outcome == Some(Outcome::Answered));
                        }
                    }
                    // The end marker, checked by prefix first: the bench's own bookkeeping
                    // should not cost like a second consumer.
                    if frame.raw().starts_with(b"Event: UserEvent\r\n")
                        && frame.get("UserEvent") == Some(b"BenchDone")
                    {
                        done = true;
                        break 'updates;
                    }
                }
            }
            AmiUpdate::ConnectFailed { reason, .. } => {
                eprintln!("connect failed: {reason}");
                break;
            }
            AmiUpdate::Disconnected { reason, .. } => {
                eprintln!("disconnected: {reason}");
                break;
            }
            AmiUpdate::Connected { .. } | AmiUpdate::Resynced { .. } => {}
        }
    }
    let (seconds, cpu) = match first {
        Some((t, cpu0)) => (
            t.elapsed().as_secs_f64(),
            process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a),
        ),
        None => (0.0, None),
    };
    let metrics = handle.metrics();
    let _ = stop_tx.send(());
    let _ = task.await;
    if !done {
        eprintln!("stream ended before BenchDone after {events} events");
        return std::process::ExitCode::FAILURE;
    }
    let seen = AmiMetrics::get(&metrics.events_in);
    let decode_errors = AmiMetrics::get(&metrics.decode_errors);
    println!(
        "events={events} seconds={seconds:.3} rate={:.0} calls_ended={ended} calls_answered={answered} \
         open_calls={} effects={effects} batches={batches} cpu_s={} decode_errors={decode_errors} \
         events_seen={seen}",
        events as f64 / seconds.max(1e-9),
        tracker.open_calls(),
        cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
    );
    // `events_in` counts every event frame the client decoded; all of them must have been
    // handed to us (no filter is configured).
    let mut lost = false;
    if seen != events {
        eprintln!("LOSS: the client decoded {seen} events but delivered {events}");
        lost = true;
    }
    if decode_errors != 0 {
        eprintln!("LOSS: {decode_errors} decode errors");
        lost = true;
    }
    if let Some(expect) = expect.filter(|&n| n != events) {
        eprintln!("LOSS: expected {expect} events, counted {events}");
        lost = true;
    }
    if lost {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
