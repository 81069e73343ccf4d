//! Ingest benchmark client for `shared/bench/ami-ingest/run_all.sh` ("Client contract").
//!
//! `ami-ingest-bench HOST PORT [multi]`: logs in through the real [`pbx_ami::client`],
//! counts every frame delivered through its bounded update channel until
//! `Event: UserEvent` / `UserEvent: BenchDone`, prints
//! `events=N seconds=S rate=R ...` and exits. Runs on a current-thread runtime (client and
//! consumer share one core) unless `multi` is given.
//! Not a product binary: it exists to measure the client path end to end.

use std::time::{Duration, Instant};

use pbx_ami::client::{client, AmiClientConfig, AmiMetrics, AmiUpdate, AuthMethod};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(host), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!("usage: ami-ingest-bench HOST PORT [multi]");
        return std::process::ExitCode::from(2);
    };
    let multi = args.get(3).is_some_and(|a| a == "multi");
    let runtime = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(bench(host.clone(), port))
}

async fn bench(host: String, port: u16) -> std::process::ExitCode {
    let mut config = AmiClientConfig::new(host, port, "bench", "bench");
    config.auth = AuthMethod::Plain;
    config.ping_interval = Duration::from_secs(10);
    let (handle, mut updates, task) = client(config);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(task.run(async {
        let _ = stop_rx.await;
    }));
    let mut events: u64 = 0;
    let mut batches: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut done = false;
    while let Some(update) = updates.recv().await {
        match update {
            AmiUpdate::Events(batch) => {
                batches += 1;
                if first.is_none() {
                    first = Some(Instant::now());
                }
                events += batch.len() as u64;
                // Look at every frame, as a consumer would, but cheaply: the prefix first.
                if batch.iter().any(|f| {
                    f.raw().starts_with(b"Event: UserEvent\r\n")
                        && f.get("UserEvent") == Some(b"BenchDone")
                }) {
                    done = true;
                    break;
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
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let metrics = handle.metrics();
    let _ = stop_tx.send(());
    let _ = task.await;
    if !done {
        eprintln!("stream ended before BenchDone after {events} events");
        return std::process::ExitCode::FAILURE;
    }
    println!(
        "events={events} seconds={seconds:.3} rate={:.0} batches={batches} decode_errors={} bytes_in={}",
        events as f64 / seconds.max(1e-9),
        AmiMetrics::get(&metrics.decode_errors),
        AmiMetrics::get(&metrics.bytes_in),
    );
    std::process::ExitCode::SUCCESS
}
