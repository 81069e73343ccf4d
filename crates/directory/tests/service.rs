//! The routing service under its deadline: a hanging or failing lookup still yields a
//! decision within the budget, marked degraded; a slow-but-in-time lookup is used and cached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cti_core::routing::{KnownExtensions, Route, Router, RouterConfig, Rule, WorkingHours};
use directory::phone::{Region, E164};
use directory::{
    BoxFuture, CustomerRecord, DecisionLog, Directory, LookupError, LookupSource, RouteQuery,
    RoutingService, ServiceSettings,
};

enum Behaviour {
    Hang,
    Fail,
    AnswerAfter(Duration),
}

struct FakeCrm {
    behaviour: Behaviour,
    calls: AtomicUsize,
}

impl LookupSource for FakeCrm {
    fn lookup(&self, phone: E164) -> BoxFuture<'_, Result<Option<CustomerRecord>, LookupError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match self.behaviour {
                Behaviour::Hang => std::future::pending().await,
                Behaviour::Fail => Err(LookupError::Transient("connection refused".into())),
                Behaviour::AnswerAfter(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(Some(CustomerRecord {
                        id: 7,
                        name: "Ольга Смирнова".into(),
                        responsible_extension: Some("105".into()),
                        phones: vec![phone],
                        ..CustomerRecord::default()
                    }))
                }
            }
        })
    }
}

fn service(behaviour: Behaviour, budget_ms: u64) -> (RoutingService, Arc<FakeCrm>) {
    let crm = Arc::new(FakeCrm {
        behaviour,
        calls: AtomicUsize::new(0),
    });
    let directory = Arc::new(Directory::new(Some(crm.clone())));
    let router = Router::new(RouterConfig {
        rules: vec![
            Rule::assigned_manager("manager"),
            Rule::area_code("regional", vec![("Moscow".into(), "moscow".into())]),
            Rule::default_queue("default", "sales".into()),
        ],
        hours: WorkingHours::always_open(),
        fallback: Route::Reject,
    })
    .expect("rules are valid");
    let service = RoutingService::new(
        router,
        directory,
        Arc::new(KnownExtensions::new(["105".into()])),
        ServiceSettings {
            budget: Duration::from_millis(budget_ms),
            region: Region::russia(),
            utc_offset_minutes: 180,
        },
        Arc::new(DecisionLog::default()),
    );
    (service, crm)
}

fn query(caller: &str) -> RouteQuery {
    RouteQuery {
        caller: caller.into(),
        line: Some("8 (495) 111-22-33".into()),
        channel_language: Some("ru".into()),
        call_ids: vec!["1795335185.241".into()],
    }
}

#[tokio::test]
async fn hanging_crm_still_decides_within_the_budget_and_is_degraded() {
    let (service, _crm) = service(Behaviour::Hang, 100);
    let started = Instant::now();
    let decision = service.route(&query("8 495 123-45-67")).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(95), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(200), "{elapsed:?}");
    assert_eq!(decision.route.target(), "moscow", "{}", decision.explain());
    assert_eq!(
        decision.degraded.as_deref(),
        Some("the customer lookup did not answer within the 100 ms budget")
    );
    let logged = service
        .log()
        .get("1795335185.241")
        .expect("decision is filed");
    assert_eq!(logged.route, decision.route);
    let json = directory::service::decision_json(&decision);
    assert_eq!(json["degraded"], true);
    assert_eq!(json["route"], "queue");
}

#[tokio::test]
async fn failing_crm_is_degraded_at_once() {
    let (service, _crm) = service(Behaviour::Fail, 300);
    let started = Instant::now();
    let decision = service.route(&query("+79161234567")).await;
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(decision.route.target(), "sales");
    assert!(decision
        .degraded
        .as_deref()
        .is_some_and(|d| d.contains("connection refused")));
}

#[tokio::test]
async fn answer_in_time_is_used_and_then_served_from_the_cache() {
    let (service, crm) = service(Behaviour::AnswerAfter(Duration::from_millis(20)), 300);
    let decision = service.route(&query("89161234567")).await;
    assert_eq!(
        decision.route,
        Route::Agent("105".into()),
        "{}",
        decision.explain()
    );
    assert_eq!(decision.customer_name.as_deref(), Some("Ольга Смирнова"));
    assert_eq!(decision.degraded, None);
    let again = service.route(&query("+7 916 123 45 67")).await;
    assert_eq!(again.route, Route::Agent("105".into()));
    assert_eq!(
        crm.calls.load(Ordering::SeqCst),
        1,
        "second call hit the cache"
    );
}

#[tokio::test]
async fn withheld_callers_skip_the_lookup() {
    let (service, crm) = service(Behaviour::Hang, 300);
    let started = Instant::now();
    let decision = service.route(&query("anonymous")).await;
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(decision.route.target(), "sales");
    assert_eq!(crm.calls.load(Ordering::SeqCst), 0);
}
