//! The HTTP face of Kommutator: health and readiness probes, Prometheus metrics, and the
//! REST API under `/api/v1`.
//!
//! This crate owns the wire DTOs of the API and converts storage rows into them explicitly.
//! It decides nothing about calls: the core does that, and the binary wires the two together.
//! Entry point: [`run`], which serves until the `shutdown` future resolves, so tests start it
//! on `127.0.0.1:0`. Tests that need no socket call [`app`] with `tower::ServiceExt::oneshot`.

mod api;
mod error;
pub mod metrics;
pub mod password;
pub mod route;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use metrics::Metrics;

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub storage: storage::Storage,
    pub metrics: Arc<Metrics>,
}

/// The header that carries the request id in and out (generated when the client sent none).
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole router with its middleware. No socket is opened here.
pub fn app(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "http",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
        )
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .nest("/api/v1", api::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (graceful shutdown) and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Liveness: the process is up and serving. Never touches storage, so a slow database does not
/// get the process restarted.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: storage answers within a second. A load balancer stops sending traffic while this
/// fails.
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(1), state.storage.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "Readiness check failed: storage is not reachable.");
            (StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}\n")).into_response()
        }
        Err(_) => {
            tracing::warn!("Readiness check failed: storage did not answer within 1 s.");
            (StatusCode::SERVICE_UNAVAILABLE, "storage did not answer within 1 s\n").into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "Encoding metrics failed.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Counts every request by matched route (not raw path: labels stay low-cardinality) and status.
async fn count_requests(
    State(state): State<AppState>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .http_request(&method, &route, response.status().as_u16());
    response
}
