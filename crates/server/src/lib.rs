//! The HTTP face of Kommutator: health and readiness probes, Prometheus metrics, and the
//! REST API under `/api/v1`.
//!
//! This crate owns the wire DTOs of the API and converts storage rows into them explicitly.
//! It decides nothing about calls: the core does that, and the binary wires the two together.
//! Entry point: [`run`], which serves until the `shutdown` future resolves, so tests start it
//! on `127.0.0.1:0`. Tests that need no socket call [`app`] with `tower::ServiceExt::oneshot`.

mod api;
pub mod auth;
pub mod cti;
pub mod dashboard;
mod error;
pub mod metrics;
mod outbox_api;
pub mod password;
pub mod reports;
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
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use metrics::Metrics;

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub storage: storage::Storage,
    pub metrics: Arc<Metrics>,
    /// The CTI hub (panel events, agent presence, call control).
    pub cti: cti::Hub,
    /// Sessions and login limits.
    pub auth: Arc<auth::Auth>,
    /// How historical reports compute and label their numbers.
    pub reports: Arc<reports::ReportsConfig>,
    /// The live supervisor dashboard.
    pub dashboard: dashboard::Dashboard,
    /// Call routing for `POST /api/v1/route`; `None` when routing is off.
    pub routing: Option<Arc<directory::RoutingService>>,
}

impl AppState {
    /// State with a CTI hub on default settings and default auth settings (tests, tools).
    /// Needs a tokio runtime (the hub is a task).
    pub fn new(storage: storage::Storage, metrics: Arc<Metrics>) -> Self {
        let cti = cti::Hub::start(storage.clone(), cti::CtiConfig::default());
        let reports = Arc::new(reports::ReportsConfig::default());
        let (storage_for_dashboard, hub_for_dashboard) = (storage.clone(), cti.clone());
        Self {
            storage,
            metrics,
            cti,
            auth: Arc::new(auth::Auth::new(auth::AuthSettings::default())),
            reports: reports.clone(),
            dashboard: dashboard::Dashboard::start(
                storage_for_dashboard,
                hub_for_dashboard,
                reports,
                dashboard::DashboardConfig::default(),
            ),
            routing: None,
        }
    }
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
        .merge(cti::panel_router())
        .merge(reports::page_router())
        .merge(dashboard::page_router())
        .nest("/api/v1", api_router(&state))
        .merge(routing_router(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// `POST /api/v1/route` when routing is on. It answers with customer names and segments,
/// so it sits behind [`auth::require_auth`] like the rest of `/api/v1`.
fn routing_router(state: &AppState) -> Router<AppState> {
    match &state.routing {
        Some(service) => route::router(service.clone()).route_layer(
            axum::middleware::from_fn_with_state(state.clone(), auth::require_auth),
        ),
        None => Router::new(),
    }
}

/// Every `/api/v1` route. All but login sit behind [`auth::require_auth`]: add new routes
/// to the `protected` router so they are authenticated too.
fn api_router(state: &AppState) -> Router<AppState> {
    let protected = api::router()
        .merge(auth::protected_router())
        .merge(cti::rest_router())
        .merge(cti::ws_router())
        .merge(reports::router())
        .merge(dashboard::router())
        .merge(outbox_api::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    protected.merge(auth::router())
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (graceful shutdown) and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_routes(listener, state, Router::new(), shutdown).await
}

/// [`run`] plus routes other components own (e.g. inbound CRM webhooks under `/hooks`), which
/// authenticate their callers themselves.
pub async fn run_with_routes(
    listener: TcpListener,
    state: AppState,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Client addresses feed the per-address login limit.
    axum::serve(
        listener,
        app(state)
            .merge(extra)
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storage unavailable: {err}\n"),
            )
                .into_response()
        }
        Err(_) => {
            tracing::warn!("Readiness check failed: storage did not answer within 1 s.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage did not answer within 1 s\n",
            )
                .into_response()
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
