//! Routing tests as data: one line per call, rendered as `route target prio | reason`.

use super::*;

struct Agents(&'static [&'static str]);

impl AgentAvailability for Agents {
    fn is_available(&self, extension: &Extension) -> bool {
        self.0.contains(&extension.as_str())
    }
}

const DAY: i64 = 86_400_000_000;

fn now() -> Timestamp {
    Timestamp::from_secs(1_800_000_000)
}

fn seed_rules() -> RouterConfig {
    let mut hours = WorkingHours::default();
    for day in 0..5 {
        hours.days[day] = vec![(9 * 60, 18 * 60)];
    }
    hours.holidays.push(Date {
        year: 2027,
        month: 1,
        day: 1,
    });
    RouterConfig {
        rules: vec![
            Rule::blacklist("blacklist"),
            Rule::after_hours("after-hours", Action::Voicemail("general".into())),
            Rule::debtors("debtors", "collections".into()),
            Rule::assigned_manager("manager"),
            Rule::last_agent("last-agent", 30),
            Rule::vip("vip", vec!["vip".into()], 10, None),
            Rule::area_code(
                "regional",
                vec![
                    ("Moscow".into(), "moscow".into()),
                    ("Saint Petersburg".into(), "spb".into()),
                    ("Novosibirsk".into(), "nsk".into()),
                ],
            ),
            Rule::default_queue("default", "sales".into()),
        ],
        hours,
        fallback: Route::Queue {
            queue: "sales".into(),
            priority: 0,
        },
    }
}

fn customer(segment: Option<&str>) -> CustomerSummary {
    CustomerSummary {
        id: "1".into(),
        name: "Иван Петров".into(),
        segment: segment.map(str::to_owned),
        ..CustomerSummary::default()
    }
}

fn open_time() -> LocalTime {
    LocalTime {
        date: Date {
            year: 2026,
            month: 12,
            day: 2,
        },
        weekday: Weekday::Wed,
        minute_of_day: 11 * 60,
    }
}

fn request(caller: &str, customer: CustomerLookup) -> RouteRequest {
    RouteRequest {
        caller: Caller::E164(caller.to_owned()),
        line: Some("+74951112233".into()),
        channel_language: Some("ru".into()),
        local_time: open_time(),
        now: now(),
        customer,
        degraded: None,
    }
}

fn render(decision: &Decision) -> String {
    format!(
        "{} {} {} | {}",
        decision.route.kind(),
        decision.route.target(),
        decision.route.priority(),
        decision.reason
    )
}

fn check(router: &Router, req: &RouteRequest, agents: &Agents, want: &str) {
    let decision = router.decide(req, agents);
    assert_eq!(render(&decision), want, "\n{}", decision.explain());
}

#[test]
fn seed_cases_route_as_expected() {
    let router = Router::new(seed_rules()).expect("seed rules are valid");
    let free = Agents(&["105", "107"]);
    let found = CustomerLookup::Found;
    let mut blacklisted = customer(None);
    blacklisted.blacklisted = true;
    let mut debtor = customer(None);
    debtor.debtor = true;
    debtor.responsible = Some("105".into());
    let mut managed = customer(None);
    managed.responsible = Some("105".into());
    let mut managed_busy = customer(Some("vip"));
    managed_busy.responsible = Some("106".into());
    let mut served = customer(None);
    served.last_agent = Some(("107".into(), now().plus_micros(-3 * DAY)));
    let mut served_long_ago = customer(None);
    served_long_ago.last_agent = Some(("107".into(), now().plus_micros(-40 * DAY)));
    let cases: Vec<(&str, CustomerLookup, &str)> = vec![
        ("+79160000001", found(blacklisted), "reject  0 | blacklist: rejected"),
        ("+79160000002", found(debtor), "queue collections 0 | debtors: to queue collections (priority 0)"),
        ("+79160000003", found(managed), "agent 105 0 | manager: responsible manager 105 is available"),
        ("+79160000004", found(served), "agent 107 0 | last-agent: last agent (3 days ago) 107 is available"),
        ("+79160000005", found(served_long_ago), "queue sales 0 | default: to queue sales (priority 0)"),
        ("+79160000006", found(managed_busy), "queue sales 10 | default: to queue sales (priority 10)"),
        ("+74951234567", CustomerLookup::NotFound, "queue moscow 0 | regional: caller from Moscow; to the regional office, queue moscow (priority 0)"),
        ("+78121234567", CustomerLookup::NotFound, "queue spb 0 | regional: caller from Saint Petersburg; to the regional office, queue spb (priority 0)"),
        ("+73431234567", CustomerLookup::NotFound, "queue sales 0 | default: to queue sales (priority 0)"),
        ("+79161234567", CustomerLookup::NotFound, "queue sales 0 | default: to queue sales (priority 0)"),
    ];
    for (caller, lookup, want) in cases {
        check(&router, &request(caller, lookup), &free, want);
    }
}

#[test]
fn regional_rule_uses_the_crm_region_for_mobile_numbers() {
    let router = Router::new(seed_rules()).expect("seed rules are valid");
    let mut c = customer(None);
    c.region = Some("novosibirsk".into());
    check(
        &router,
        &request("+79161234567", CustomerLookup::Found(c)),
        &Agents(&[]),
        "queue nsk 0 | regional: caller from novosibirsk; to the regional office, queue nsk (priority 0)",
    );
}

#[test]
fn after_hours_weekends_and_holidays_go_to_voicemail() {
    let router = Router::new(seed_rules()).expect("seed rules are valid");
    let mut late = request("+79161234567", CustomerLookup::NotFound);
    late.local_time.minute_of_day = 19 * 60;
    check(
        &router,
        &late,
        &Agents(&[]),
        "voicemail general 0 | after-hours: to voicemail general",
    );
    let mut saturday = request("+79161234567", CustomerLookup::NotFound);
    saturday.local_time.weekday = Weekday::Sat;
    check(
        &router,
        &saturday,
        &Agents(&[]),
        "voicemail general 0 | after-hours: to voicemail general",
    );
    let mut new_year = request("+79161234567", CustomerLookup::NotFound);
    new_year.local_time.date = Date {
        year: 2027,
        month: 1,
        day: 1,
    };
    check(
        &router,
        &new_year,
        &Agents(&[]),
        "voicemail general 0 | after-hours: to voicemail general",
    );
}

#[test]
fn degraded_lookup_still_decides_and_says_so() {
    let router = Router::new(seed_rules()).expect("seed rules are valid");
    let mut req = request("+74951234567", CustomerLookup::Unavailable);
    req.degraded = Some("directory lookup exceeded the 300 ms budget".into());
    let decision = router.decide(&req, &Agents(&[]));
    assert_eq!(decision.route.target(), "moscow");
    assert_eq!(
        decision.degraded.as_deref(),
        Some("directory lookup exceeded the 300 ms budget")
    );
    let explained = decision.explain();
    assert!(
        explained.contains("manager: the directory did not answer in time"),
        "{explained}"
    );
    assert!(
        explained.contains("degraded: directory lookup exceeded"),
        "{explained}"
    );
}

#[test]
fn decisions_carry_ivr_fields_and_variables() {
    let mut config = seed_rules();
    config.rules.insert(
        0,
        Rule::new(
            "english-line",
            Conditions {
                lines: vec!["+74951112299".into()],
                ..Conditions::default()
            },
            Action::SetVariables(vec![
                ("LANGUAGE".into(), "en".into()),
                ("GREETING".into(), "welcome-en".into()),
            ]),
        ),
    );
    let router = Router::new(config).expect("rules are valid");
    let mut vip = customer(Some("VIP"));
    vip.language = Some("ru".into());
    let mut req = request("+79161234567", CustomerLookup::Found(vip));
    let decision = router.decide(&req, &Agents(&[]));
    assert_eq!(decision.customer_name.as_deref(), Some("Иван Петров"));
    assert_eq!(decision.segment.as_deref(), Some("VIP"));
    assert_eq!(decision.language.as_deref(), Some("ru"));
    assert_eq!(decision.route.priority(), 10);
    req.line = Some("+74951112299".into());
    let decision = router.decide(&req, &Agents(&[]));
    assert_eq!(decision.language.as_deref(), Some("en"));
    assert_eq!(
        decision.variables,
        vec![
            ("LANGUAGE".to_owned(), "en".to_owned()),
            ("GREETING".to_owned(), "welcome-en".to_owned())
        ]
    );
}

#[test]
fn agent_else_queue_and_patterns() {
    let config = RouterConfig {
        rules: vec![Rule::new(
            "support-line",
            Conditions {
                caller_patterns: vec![NumberPattern::parse("_+7[89]XX.").expect("valid")],
                time_of_day: Some((22 * 60, 6 * 60)),
                ..Conditions::default()
            },
            Action::AgentElseQueue {
                agent: AgentTarget::Extension("200".into()),
                queue: "night".into(),
                priority: Some(3),
            },
        )],
        hours: WorkingHours::always_open(),
        fallback: Route::Queue {
            queue: "sales".into(),
            priority: 0,
        },
    };
    let router = Router::new(config).expect("valid");
    let mut req = request("+79161234567", CustomerLookup::NotFound);
    req.local_time.minute_of_day = 23 * 60;
    check(
        &router,
        &req,
        &Agents(&["200"]),
        "agent 200 0 | support-line: agent 200 is available",
    );
    check(&router, &req, &Agents(&[]), "queue night 3 | support-line: agent 200 is not available; to queue night (priority 3) instead");
    req.local_time.minute_of_day = 12 * 60;
    check(
        &router,
        &req,
        &Agents(&["200"]),
        "queue sales 0 | no rule matched; fallback to queue sales (priority 0)",
    );
}

#[test]
fn bad_configurations_name_the_rule() {
    let cases: Vec<(Vec<Rule>, &str)> = vec![
        (
            vec![
                Rule::default_queue("a", "sales".into()),
                Rule::blacklist("b"),
            ],
            "routing rule \"b\": can never match: rule \"a\" before it matches every call",
        ),
        (
            vec![Rule::blacklist("a"), Rule::blacklist("a")],
            "routing rule \"a\": the name is used by an earlier rule",
        ),
        (
            vec![Rule::debtors("debtors", "".into())],
            "routing rule \"debtors\": the queue is empty",
        ),
        (
            vec![Rule::area_code("offices", vec![])],
            "routing rule \"offices\": an area_code rule needs at least one office",
        ),
    ];
    for (rules, want) in cases {
        let config = RouterConfig {
            rules,
            hours: WorkingHours::always_open(),
            fallback: Route::Reject,
        };
        let err = Router::new(config).expect_err("configuration is invalid");
        assert_eq!(err.to_string(), want);
    }
}
