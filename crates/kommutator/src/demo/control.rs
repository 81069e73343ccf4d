//! `kommutator demo --control <addr>`: a small HTTP endpoint on its own loopback listener that
//! lets a test harness (the browser end-to-end tests) drive the simulated Asterisk: start a
//! scripted call and read what the simulator received (`QueuePause`, `Originate`).
//!
//! It exists only in the demo, only when the flag is given, and only on a loopback address;
//! it is never part of the product's API.

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartCall {
    /// A scenario name, e.g. `blind_transfer`, `direct_answered`.
    scenario: String,
    caller: Option<String>,
    caller_name: Option<String>,
    did: Option<String>,
    /// `true`: a transfer scenario waits for the panel's transfer action.
    #[serde(default)]
    await_transfer: bool,
}

#[derive(Debug, Serialize)]
struct Started {
    id: u64,
}

#[derive(Debug, Serialize)]
struct Pause {
    interface: String,
    queue: Option<String>,
    paused: bool,
    reason: Option<String>,
    accepted: bool,
}

#[derive(Debug, Serialize)]
struct Originate {
    channel: String,
    context: Option<String>,
    exten: Option<String>,
    /// `ChannelId`, when the originator chose the call's id.
    channel_id: Option<String>,
}

/// Binds the control listener (loopback only) and serves it until the task is dropped.
pub async fn start(
    addr: SocketAddr,
    sim: pbx_simulator::SimulatorHandle,
) -> anyhow::Result<SocketAddr> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--control must be a loopback address such as 127.0.0.1:0"
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the demo control endpoint"))?;
    let local = listener
        .local_addr()
        .context("cannot read the control address")?;
    let app = Router::new()
        .route("/calls", post(start_call))
        .route("/pause-log", get(pause_log))
        .route("/originate-log", get(originate_log))
        .with_state(sim);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::warn!(error = %err, "The demo control endpoint stopped.");
        }
    });
    Ok(local)
}

async fn start_call(
    State(sim): State<pbx_simulator::SimulatorHandle>,
    Json(body): Json<StartCall>,
) -> Result<Json<Started>, (StatusCode, String)> {
    let scenario = pbx_simulator::Scenario::from_name(&body.scenario).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("no scenario `{}`", body.scenario),
        )
    })?;
    let params = pbx_simulator::CallParams {
        caller: body.caller,
        caller_name: body.caller_name,
        did: body.did,
        agent: None,
        transfer: if body.await_transfer {
            pbx_simulator::TransferTrigger::AwaitAction
        } else {
            pbx_simulator::TransferTrigger::Scripted
        },
        ..pbx_simulator::CallParams::default()
    };
    let id = sim
        .start_call(scenario, params)
        .map_err(|err| (StatusCode::BAD_REQUEST, err.to_string()))?;
    Ok(Json(Started { id: id.0 }))
}

async fn pause_log(State(sim): State<pbx_simulator::SimulatorHandle>) -> Json<Vec<Pause>> {
    Json(
        sim.pause_log()
            .into_iter()
            .map(|p| Pause {
                interface: p.interface,
                queue: p.queue,
                paused: p.paused,
                reason: p.reason,
                accepted: p.accepted,
            })
            .collect(),
    )
}

async fn originate_log(State(sim): State<pbx_simulator::SimulatorHandle>) -> Json<Vec<Originate>> {
    Json(
        sim.originate_log()
            .into_iter()
            .map(|o| Originate {
                channel: o.channel,
                context: o.context,
                exten: o.exten,
                channel_id: o.channel_id,
            })
            .collect(),
    )
}
