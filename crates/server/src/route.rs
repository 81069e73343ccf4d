//! `POST /api/v1/route`: the router over HTTP, for cloud PBXs and other systems that cannot
//! speak FastAGI. Same service, same budget, same decision log as the FastAGI server.
//!
//! Request: `{"caller": "+79161234567", "line": "+74951112233", "call_id": "abc",
//! "language": "ru"}` (only `caller` is required). Response: the decision as stored with the
//! call (`route`, `target`, `priority`, `reason`, customer fields, `degraded`, `trace`).
//!
//! What it is not: authenticated by itself; it is mounted where the integrator decides (the
//! API token layer), and it never exposes more of the customer than the IVR variables do.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use directory::{RouteQuery, RoutingService};
use serde::Deserialize;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// Caller ID number as the PBX has it.
    pub caller: String,
    /// The dialled line (DID).
    #[serde(default)]
    pub line: Option<String>,
    /// The PBX's call id, to attach the decision to the call record.
    #[serde(default)]
    pub call_id: Option<String>,
    /// Prompt language the PBX would use.
    #[serde(default)]
    pub language: Option<String>,
}

/// The routes of this module, for `Router::merge` into any state type.
pub fn router<S>(service: Arc<RoutingService>) -> Router<S> {
    Router::new()
        .route("/api/v1/route", post(route))
        .with_state(service)
}

async fn route(
    State(service): State<Arc<RoutingService>>,
    Json(body): Json<RouteBody>,
) -> Json<serde_json::Value> {
    let query = RouteQuery {
        caller: body.caller,
        line: body.line,
        channel_language: body.language,
        call_ids: body.call_id.into_iter().collect(),
    };
    let decision = service.route(&query).await;
    Json(directory::service::decision_json(&decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use cti_core::routing::{
        KnownExtensions, Route, Router as CoreRouter, RouterConfig, Rule, WorkingHours,
    };
    use directory::{DecisionLog, Directory, ServiceSettings};
    use std::time::Duration;
    use tower::ServiceExt;

    fn app() -> (Router, Arc<RoutingService>) {
        let router = CoreRouter::new(RouterConfig {
            rules: vec![
                Rule::area_code("regional", vec![("Moscow".into(), "moscow".into())]),
                Rule::default_queue("default", "sales".into()),
            ],
            hours: WorkingHours::always_open(),
            fallback: Route::Reject,
        })
        .expect("rules are valid");
        let service = Arc::new(RoutingService::new(
            router,
            Arc::new(Directory::default()),
            Arc::new(KnownExtensions::default()),
            ServiceSettings {
                budget: Duration::from_millis(300),
                region: directory::phone::Region::russia(),
                utc_offset_minutes: 180,
            },
            Arc::new(DecisionLog::default()),
        ));
        (router_for_test(service.clone()), service)
    }

    fn router_for_test(service: Arc<RoutingService>) -> Router {
        router(service)
    }

    #[tokio::test]
    async fn routes_over_http_and_files_the_decision() {
        let (app, service) = app();
        let request = Request::post("/api/v1/route")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"caller": "8 (495) 123-45-67", "call_id": "cloud-1"}"#,
            ))
            .expect("request builds");
        let response = app.oneshot(request).await.expect("handler runs");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["route"], "queue");
        assert_eq!(json["target"], "moscow");
        assert_eq!(json["degraded"], false);
        assert!(service.log().get("cloud-1").is_some());
    }

    #[tokio::test]
    async fn bad_bodies_are_client_errors() {
        let (app, _) = app();
        let request = Request::post("/api/v1/route")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"number": "+7"}"#))
            .expect("request builds");
        let response = app.oneshot(request).await.expect("handler runs");
        assert!(response.status().is_client_error());
    }
}
