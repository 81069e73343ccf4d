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
