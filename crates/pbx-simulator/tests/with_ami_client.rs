//! The production AMI client (`pbx_ami::client`) against the simulator: login, resync, an
//! Originate, then the simulator killed mid-call and restarted on the same port. The client
//! must reconnect and resync to an empty PBX, and no Originate may reach Asterisk twice.

use std::time::Duration;

use pbx_ami::client::{client, Action, AmiClientConfig, AmiUpdate};
use pbx_simulator::{CallParams, Scenario, Simulator, SimulatorConfig};
use tokio::sync::mpsc::Receiver;

async fn next_update(updates: &mut Receiver<AmiUpdate>) -> AmiUpdate {
    tokio::time::timeout(Duration::from_secs(20), updates.recv())
        .await
        .expect("timed out waiting for the client")
        .expect("client stopped")
}

/// Skips updates until `pred` matches one.
async fn wait_for(
    updates: &mut Receiver<AmiUpdate>,
    pred: impl Fn(&AmiUpdate) -> bool,
) -> AmiUpdate {
    loop {
        let u = next_update(updates).await;
        if pred(&u) {
            return u;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_survives_a_simulator_restart_without_repeating_an_originate() {
    let sim_config = || SimulatorConfig {
        time_factor: 5.0,
        seed: None,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(sim_config(), "127.0.0.1:0")
        .await
        .expect("bind");
    let addr = sim.local_addr();
    let mut config = AmiClientConfig::new("127.0.0.1", addr.port(), "cti", "cti-secret");
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config.channel_capacity = 1024;
    let (ami, mut updates, task) = client(config);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let client_task = tokio::spawn(task.run(async move {
        let _ = stop_rx.await;
    }));

    let connected = wait_for(&mut updates, |u| matches!(u, AmiUpdate::Connected { .. })).await;
    let AmiUpdate::Connected { session, banner } = connected else {
        unreachable!()
    };
    assert_eq!(session, 1);
    assert_eq!(banner, "Asterisk Call Manager/11.0.0");
    let AmiUpdate::Resynced {
        channels,
        queue_status,
        ..
    } = wait_for(&mut updates, |u| matches!(u, AmiUpdate::Resynced { .. })).await
    else {
        unreachable!()
    };
    assert!(channels.is_empty());
    assert!(queue_status
        .iter()
        .any(|f| f.event() == Some(b"QueueMember")));

    // Click-to-call through the client; its OriginateResponse comes back.
    let originate = Action::new("Originate")
        .header("Channel", "Local/101@agents/nm")
        .header("Context", "outbound")
        .header("Exten", "+79161234567")
        .header("Priority", "1")
        .header("Async", "true");
    let response = ami.originate(originate).await.expect("originate");
    assert_eq!(response.get_str("Response").as_deref(), Some("Success"));

    // A long inbound call, killed in the middle.
    sim.handle()
        .start_call(Scenario::AttendedTransfer, CallParams::default())
        .expect("start");
    wait_for(&mut updates, |u| match u {
        AmiUpdate::Events(frames) => frames.iter().any(|f| f.event() == Some(b"AgentConnect")),
        _ => false,
    })
    .await;
    let old = sim.handle().clone();
    assert!(old.live_channels() > 0);
    sim.shutdown().await.expect("shutdown");
    wait_for(&mut updates, |u| {
        matches!(u, AmiUpdate::Disconnected { .. })
    })
    .await;

    let sim = Simulator::start(sim_config(), addr)
        .await
        .expect("restart on the same port");
    let AmiUpdate::Connected { session, .. } =
        wait_for(&mut updates, |u| matches!(u, AmiUpdate::Connected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(session, 2);
    let AmiUpdate::Resynced { channels, .. } =
        wait_for(&mut updates, |u| matches!(u, AmiUpdate::Resynced { .. })).await
    else {
        unreachable!()
    };
    // The restarted Asterisk has no channels: the call in progress must be closed by the
    // tracker as degraded.
    assert!(channels.is_empty());
    let resync_actions: Vec<String> = sim
        .handle()
        .action_log()
        .into_iter()
        .map(|a| a.action.to_ascii_lowercase())
        .collect();
    assert!(
        resync_actions.contains(&"coreshowchannels".to_owned()),
        "{resync_actions:?}"
    );
    // The Originate reached the first simulator once, and the second never.
    assert_eq!(old.originate_log().len(), 1);
    assert!(sim.handle().originate_log().is_empty());

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), client_task).await;
    sim.shutdown().await.expect("shutdown");
}
