//! Against the NATS server of the dev machine and CI (127.0.0.1:4222 with JetStream, or
//! `KOMMUTATOR_TEST_NATS_URL`): a queue call from the real Asterisk capture goes through the
//! real codec, translation and tracker, its effects become domain events, the publisher puts
//! them on JetStream, and a subscriber receives every one, in order, as documented JSON.

use std::time::Duration;

use cti_core::{CallTracker, Effect, Timestamp, TrackerConfig};
use futures_util::StreamExt;
use pbx_ami::codec::{Decoder, Item, Limits};
use pbx_simulator::{Mix, Scenario};
use sink_nats::{EventMapper, NatsConfig, Publisher};

fn nats_url() -> String {
    std::env::var("KOMMUTATOR_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// The effects of one rendered call of `scenario`.
fn effects_of(scenario: Scenario) -> Vec<(Timestamp, Effect)> {
    let bytes = pbx_simulator::render_trace(&Mix::only(scenario), 1, 1, 3);
    let mut decoder = Decoder::new(Limits::default());
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut clock = Timestamp::default();
    let mut out = Vec::new();
    decoder.push(&bytes);
    while let Some(item) = decoder.next_item() {
        if let Item::Frame(frame) = item {
            for effect in pbx_ami::translate::apply_frame(&mut tracker, &frame, &mut clock) {
                out.push((clock, effect));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_subscriber_receives_every_event_of_a_call_in_order() {
    let unique = format!("{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let config = NatsConfig {
        url: nats_url(),
        token: None,
        stream: format!("KMT_TEST_{unique}"),
        subject_prefix: format!("kmt_test_{unique}.events"),
        max_age: Duration::from_secs(600),
        buffer: 10_000,
    };
    // The stream is created by the publisher's own set-up, as in production.
    let js = sink_nats::connect(&config)
        .await
        .expect("NATS with JetStream on 127.0.0.1:4222");
    let client = async_nats::connect(nats_url()).await.unwrap();
    let mut subscriber = client
        .subscribe(format!("{}.>", config.subject_prefix))
        .await
        .unwrap();
    client.flush().await.unwrap();

    let mut mapper = EventMapper::new();
    let mut expected = Vec::new();
    for scenario in [Scenario::QueueAnswered, Scenario::BlindTransfer] {
        for (at, effect) in effects_of(scenario) {
            expected.extend(mapper.map("pbx1", at, &effect));
        }
    }
    let kinds: Vec<&str> = expected.iter().map(|e| e.kind).collect();
    for kind in [
        "call.started",
        "queue.joined",
        "call.ringing",
        "queue.left",
        "call.answered",
        "call.transferred",
        "call.ended",
    ] {
        assert!(kinds.contains(&kind), "{kind} among {kinds:?}");
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (publisher, task) = Publisher::start(config.clone(), stop_rx);
    publisher.publish(expected.clone());

    let mut received = Vec::new();
    while received.len() < expected.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
            .await
            .expect("events arrive within 10 s")
            .expect("subscription open");
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let kind = event["kind"].as_str().unwrap().to_owned();
        assert_eq!(
            message.subject.as_str(),
            format!("{}.{kind}", config.subject_prefix)
        );
        received.push(event);
    }
    for (got, want) in received.iter().zip(&expected) {
        assert_eq!(got["id"], want.id.as_str(), "in order");
        assert_eq!(got["kind"], want.kind);
        assert_eq!(got["v"], 1);
        assert_eq!(got["source"], "pbx1");
        assert!(got["at"].as_str().unwrap().ends_with('Z'));
    }
    let ended = received.iter().find(|e| e["kind"] == "call.ended").unwrap();
    assert_eq!(ended["call"]["outcome"], "answered");
    assert_eq!(ended["call"]["direction"], "inbound");

    // JetStream stored them all, once.
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert_eq!(
        publisher
            .stats()
            .published
            .load(std::sync::atomic::Ordering::Relaxed),
        expected.len() as u64
    );
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        expected.len() as u64
    );
    js.delete_stream(&config.stream).await.unwrap();
}
