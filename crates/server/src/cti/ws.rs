//! `GET /api/v1/ws`: the panel's WebSocket (protocol in `docs/ws-protocol.md`).
//!
//! The route sits behind `require_auth` like every API route, so the upgrade itself needs a
//! session cookie or a bearer token. A browser upgrade must also come from our own origin:
//! with a cross-site cookie (`SameSite=None`, for CRM iframes) this is what stops another site
//! from opening the socket with the agent's cookie.
//!
//! One task per socket forwards the hub's frames, parses commands, and sends heartbeats
//! (an app-level `heartbeat` with the newest `seq`, plus a WebSocket ping); a socket silent
//! for three heartbeats is closed, and the client resumes with `?since=<last seq>`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::hub::{rfc3339, Viewer};
use super::protocol::{ClientMessage, ErrorView, ServerMessage};
use super::Hub;
use crate::auth::AuthUser;
use crate::{ApiError, AppState};

/// Largest client message accepted; commands are small.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsQuery {
    /// The last `seq` the client saw; missed events after it are replayed.
    since: Option<u64>,
}

async fn upgrade(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthUser>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "the WebSocket must be opened by the panel's own page".to_owned(),
        ));
    }
    let hub = state.cti.clone();
    let viewer = auth.viewer();
    // Small buffers: a panel receives a few small frames a minute, and a thousand panels
    // must fit in a few tens of megabytes.
    Ok(ws
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, hub, viewer, query.since))
        .into_response())
}

/// True when the request has no `Origin` (not a browser) or its host is the `Host` we serve.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

async fn serve(mut socket: WebSocket, hub: Hub, viewer: Viewer, since: Option<u64>) {
    let Some(subscription) = hub.subscribe(viewer.clone(), since).await else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let mut frames = subscription.frames;
    let reply: mpsc::Sender<Arc<str>> = subscription.reply;
    let heartbeat = Duration::from_secs(hub.config().heartbeat_secs.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut silent_beats = 0u32;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(text) = frame else {
                    // The hub dropped us (too slow) or is gone: the client reconnects and resumes.
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                };
                if socket.send(Message::Text((*text).into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                silent_beats = 0;
                match message {
                    Message::Text(text) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
                        Ok(command) => hub.command(viewer.clone(), command, reply.clone()).await,
                        Err(err) => {
                            let error = ServerMessage::Error {
                                error: ErrorView {
                                    code: "bad_message",
                                    message: format!("not a valid message: {err}"),
                                },
                            };
                            if let Ok(text) = serde_json::to_string(&error) {
                                let _ = reply.try_send(text.into());
                            }
                        }
                    },
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                silent_beats += 1;
                if silent_beats > 3 {
                    tracing::info!(user = %viewer.login, "Closing a silent panel socket.");
                    break;
                }
                let beat = ServerMessage::Heartbeat {
                    seq: hub.head(),
                    server_time: rfc3339(chrono::Utc::now()),
                };
                let Ok(text) = serde_json::to_string(&beat) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err()
                    || socket.send(Message::Ping(Vec::new().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_our_own_origin_may_open_the_socket() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "no Origin: not a browser");
        headers.insert(header::HOST, HeaderValue::from_static("cti.example.com"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://cti.example.com"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example.com"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
