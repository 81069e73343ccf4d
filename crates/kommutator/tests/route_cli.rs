//! `kommutator route explain` and `check-config` on routing rules, against a real migrated
//! SQLite database with customers written through the storage crate.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kommutator");

const RULES: &str = r#"
[routing]
region = "RU"
utc_offset = "+03:00"

[[routing.rules]]
name = "blacklist"
kind = "blacklist"

[[routing.rules]]
name = "manager"
kind = "assigned_manager"

[[routing.rules]]
name = "vip"
kind = "vip"
segments = ["vip"]
priority = 10

[[routing.rules]]
name = "default"
kind = "default"
queue = "support"
"#;

fn kommutator(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("kommutator.toml");
    let db = dir.join("k.db");
    std::fs::write(
        &path,
        format!("[storage]\nurl = \"sqlite://{}\"\n{extra}", db.display()),
    )
    .unwrap();
    path
}

fn customer(name: &str, phone: &str) -> storage::CustomerUpsert {
    storage::CustomerUpsert {
        name: name.to_owned(),
        phones: vec![storage::CustomerPhone {
            phone_e164: phone.to_owned(),
            phone_raw: None,
            kind: None,
        }],
        ..storage::CustomerUpsert::default()
    }
}

#[test]
fn explain_prints_route_and_reason_for_stored_customers() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), RULES);
    let config = config.to_str().unwrap();
    let out = kommutator(&["migrate", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kommutator(&[
        "user",
        "add",
        "--config",
        config,
        "--login",
        "anna",
        "--name",
        "Anna",
        "--role",
        "agent",
        "--extension",
        "101",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let storage = storage::Storage::connect(&db).await.unwrap();
        let mut spam = customer("Spammer", "+79160000001");
        spam.blacklisted = true;
        storage
            .upsert_customer(&spam, chrono::Utc::now())
            .await
            .unwrap();
        let mut vip = customer("Romashka", "+79160000005");
        vip.segment = Some("vip".to_owned());
        storage
            .upsert_customer(&vip, chrono::Utc::now())
            .await
            .unwrap();
        storage.close().await;
    });

    for (from, route, rule) in [
        ("89160000001", "reject", "blacklist"),
        ("+79160000005", "support", "vip"),
        ("+79169999999", "support", "default"),
    ] {
        let out = kommutator(&["route", "explain", "--from", from, "--config", config]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{from}: {}", text(&out.stderr));
        let first = stdout.lines().next().unwrap_or_default().to_lowercase();
        assert!(
            first.starts_with("route:") && first.contains(route),
            "{from}: {stdout}"
        );
        assert!(stdout.contains(rule), "{from}: {stdout}");
        assert!(stdout.contains("reason:"), "{from}: {stdout}");
    }
    // The VIP rule raises the priority of the default queue; the anonymous caller does not.
    let vip = text(
        &kommutator(&[
            "route",
            "explain",
            "--from",
            "+79160000005",
            "--config",
            config,
        ])
        .stdout,
    );
    let other = text(
        &kommutator(&[
            "route",
            "explain",
            "--from",
            "+79169999999",
            "--config",
            config,
        ])
        .stdout,
    );
    assert_ne!(vip.lines().next(), other.lines().next(), "{vip}\n{other}");
}

#[test]
fn check_config_names_the_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[routing.rules]]\nname = \"collections\"\nkind = \"debtors\"\n",
    );
    let out = kommutator(&["check-config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("collections") && stderr.contains("queue"),
        "{stderr}"
    );
}

/// A finished inbound call from `caller` that started `days_ago` days ago.
fn past_call(id: &str, caller: &str, days_ago: i64) -> storage::NewCall {
    let started = chrono::Utc::now() - chrono::Duration::days(days_ago);
    storage::NewCall {
        id: storage::CallId::new(id),
        source: "asterisk".into(),
        direction: storage::Direction::Inbound,
        customer_number: Some(caller.to_owned()),
        customer_number_raw: Some(caller.to_owned()),
        line: Some("+74950000001".into()),
        queue: Some("support".into()),
        started_at: started,
        answered_at: None,
        ended_at: Some(started + chrono::Duration::seconds(30)),
        outcome: Some(storage::Outcome::Missed),
        answered_by: None,
        agent_user_id: None,
        wait_ms: 30_000,
        talk_ms: 0,
        hold_ms: 0,
        recording: None,
        degraded: false,
        short_abandon: false,
        internal: false,
        route_decision: None,
        record: serde_json::json!({"call_id": id}),
        updated_at: started,
    }
}

/// The count columns of the `target current new` table, by target.
fn simulate_table(stdout: &str) -> std::collections::BTreeMap<String, (usize, usize)> {
    let mut table = std::collections::BTreeMap::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if line.starts_with("target") {
            in_table = true;
            continue;
        }
        if line.starts_with("changed calls") {
            break;
        }
        if in_table {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let new = words.pop().and_then(|w| w.parse().ok()).expect("new count");
            let current = words
                .pop()
                .and_then(|w| w.parse().ok())
                .expect("current count");
            table.insert(words.join(" "), (current, new));
        }
    }
    table
}

#[test]
fn simulate_replays_stored_calls_against_new_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), RULES);
    let config = config.to_str().unwrap();
    let out = kommutator(&["migrate", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let storage = storage::Storage::connect(&db).await.unwrap();
        let mut spam = customer("Spammer", "+79160000001");
        spam.blacklisted = true;
        storage
            .upsert_customer(&spam, chrono::Utc::now())
            .await
            .unwrap();
        let mut vip = customer("Romashka", "+79160000005");
        vip.segment = Some("vip".to_owned());
        storage
            .upsert_customer(&vip, chrono::Utc::now())
            .await
            .unwrap();
        for (id, caller, days_ago) in [
            ("past.spam", "+79160000001", 1),
            ("past.vip", "+79160000005", 2),
            ("past.unknown1", "+79169999991", 3),
            ("past.unknown2", "+79169999992", 4),
            // Outside --since 30d: not replayed.
            ("past.old", "+79169999993", 40),
        ] {
            let call = past_call(id, caller, days_ago);
            storage
                .write_call(&storage::CallWrite {
                    call: &call,
                    agents: &[],
                    events: &[],
                    jobs: &[],
                })
                .await
                .unwrap();
        }
        storage.close().await;
    });

    // The new rule set drops the VIP rule and sends everyone else to sales.
    let new_rules = dir.path().join("new.toml");
    std::fs::write(
        &new_rules,
        r#"
[routing]
region = "RU"
utc_offset = "+03:00"

[[routing.rules]]
name = "blacklist"
kind = "blacklist"

[[routing.rules]]
name = "everyone-to-sales"
kind = "default"
queue = "sales"
"#,
    )
    .unwrap();
    let out = kommutator(&[
        "route",
        "simulate",
        "--config",
        config,
        "--rules",
        new_rules.to_str().unwrap(),
        "--since",
        "30d",
        "--sample",
        "2",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(
        stdout.starts_with("calls replayed: 4, route changed: 3\n"),
        "{stdout}"
    );
    let table = simulate_table(&stdout);
    assert_eq!(table.get("reject"), Some(&(1, 1)), "{stdout}");
    let current_support: usize = table
        .iter()
        .filter(|(target, _)| target.starts_with("queue support"))
        .map(|(_, (current, _))| current)
        .sum();
    assert_eq!(current_support, 3, "{stdout}");
    let new_sales: usize = table
        .iter()
        .filter(|(target, _)| target.starts_with("queue sales"))
        .map(|(_, (_, new))| new)
        .sum();
    assert_eq!(new_sales, 3, "{stdout}");
    assert!(
        table
            .iter()
            .all(|(target, (_, new))| !target.starts_with("queue support") || *new == 0),
        "{stdout}"
    );
    // The VIP call kept its raised priority under the current rules only.
    assert_eq!(
        table
            .keys()
            .filter(|target| target.starts_with("queue support"))
            .count(),
        2,
        "{stdout}"
    );
    // The sample holds at most --sample changed calls, each with old and new route and why.
    let sample: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("changed calls"))
        .skip(1)
        .collect();
    assert_eq!(sample.len(), 2, "{stdout}");
    for line in &sample {
        assert!(
            line.contains("-> queue sales") && line.contains("everyone-to-sales"),
            "{line}"
        );
        assert!(
            !line.contains("past.spam") && !line.contains("past.old"),
            "{line}"
        );
    }
}
