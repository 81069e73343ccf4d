//! The binary as a user runs it: configuration checks, migrations, accounts, `serve` and
//! `demo` with their probes, and a clean stop on SIGTERM / Ctrl-C.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kommutator");

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

use common::get as http_get;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_health(addr: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited early with {status}");
        }
        if TcpStream::connect(addr).is_ok() && http_get(addr, "/healthz").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not become healthy on {addr}");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not stop after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

#[test]
fn version_is_printed() {
    let out = kommutator(&["--version"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("kommutator "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_config_names_a_misspelled_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:8080\"\nlisten_adress = \"x\"\n",
    )
    .unwrap();
    let out = kommutator(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unknown field `listen_adress`"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
}

#[test]
fn check_config_accepts_the_example_and_masks_secrets() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../kommutator.example.toml");
    let out = Command::new(BIN)
        .args(["check-config", example])
        .env("KOMMUTATOR_ASTERISK_OFFICE_SECRET", "very-secret-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(!stdout.contains("very-secret-value"), "{stdout}");
    assert!(stdout.contains("secret=********"), "{stdout}");
}

#[test]
fn a_missing_config_file_is_one_sentence() {
    let out = kommutator(&["check-config", "/nonexistent/kommutator.toml"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read config file /nonexistent/kommutator.toml"),
        "{err}"
    );
}

#[test]
fn migrate_then_manage_users() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let config = config.to_str().unwrap();
    let out = kommutator(&["migrate", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Running it again is a no-op.
    assert!(kommutator(&["migrate", "--config", config])
        .status
        .success());

    let out = kommutator(&[
        "user",
        "add",
        "--config",
        config,
        "--login",
        "anna",
        "--name",
        "Anna Petrova",
        "--role",
        "agent",
        "--extension",
        "101",
        "--queue",
        "sales=PJSIP/101",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Created agent `anna`"), "{stdout}");
    assert!(
        stdout.contains("Password: "),
        "a generated password is shown: {stdout}"
    );

    let out = kommutator(&[
        "user", "add", "--config", config, "--login", "anna", "--name", "Again",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot create user `anna`"),
        "{}",
        text(&out.stderr)
    );

    let out = kommutator(&[
        "user", "add", "--config", config, "--login", "x", "--name", "X", "--role", "boss",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown role `boss`"),
        "{}",
        text(&out.stderr)
    );

    let mut child = Command::new(BIN)
        .args([
            "user",
            "passwd",
            "--config",
            config,
            "anna",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("Password:"),
        "a typed password is not echoed"
    );

    let out = kommutator(&["user", "list", "--config", config]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("anna") && stdout.contains("Anna Petrova") && stdout.contains("101"),
        "{stdout}"
    );
}

/// `user token create|list|revoke`: the printed token opens the API, a revoked one does not.
#[test]
fn api_tokens_are_issued_used_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let config = config.to_str().unwrap();
    assert!(kommutator(&["migrate", "--config", config])
        .status
        .success());
    let out = kommutator(&[
        "user",
        "add",
        "--config",
        config,
        "--login",
        "crm",
        "--name",
        "CRM bot",
        "--role",
        "supervisor",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = kommutator(&[
        "user", "token", "create", "--config", config, "--user", "nobody",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no user `nobody`"),
        "{}",
        text(&out.stderr)
    );

    let out = kommutator(&[
        "user", "token", "create", "--config", config, "--user", "crm", "--name", "bitrix24",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Token: "))
        .unwrap_or_else(|| panic!("the token is printed: {stdout}"))
        .to_owned();
    assert!(token.starts_with("kmt_"), "{token}");

    let out = kommutator(&["user", "token", "list", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let row = listing
        .lines()
        .find(|l| l.contains("bitrix24"))
        .unwrap_or_else(|| panic!("the token is listed: {listing}"));
    assert!(
        row.contains("crm") && row.trim_end().ends_with('-'),
        "{row}"
    );
    assert!(
        !listing.contains(&token),
        "the secret is never listed again"
    );
    let id = row.split_whitespace().next().unwrap().to_owned();

    let mut child = Command::new(BIN)
        .args(["serve", "--config", config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for_health(&addr, &mut child);
    let bearer = format!("Bearer {token}");
    let calls = |auth: &str| {
        common::request(
            &addr,
            "GET",
            "/api/v1/calls",
            &[("Authorization", auth)],
            "",
        )
        .status
    };
    assert_eq!(calls(&bearer), 200);
    assert_eq!(calls("Bearer kmt_0000"), 401, "an unknown token is refused");

    let out = kommutator(&["user", "token", "revoke", "--config", config, &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(calls(&bearer), 401, "a revoked token stops working at once");
    let out = kommutator(&["user", "token", "revoke", "--config", config, "9999"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no API token 9999"),
        "{}",
        text(&out.stderr)
    );
    let out = kommutator(&["user", "token", "list", "--config", config, "--user", "crm"]);
    let listing = text(&out.stdout);
    let row = listing.lines().find(|l| l.contains("bitrix24")).unwrap();
    assert!(
        !row.trim_end().ends_with('-'),
        "revocation time shown: {row}"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child).success());
}

#[test]
fn serve_answers_probes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for_health(&addr, &mut child);
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("kommutator_build_info"), "{metrics}");
    signal(&child, "TERM");
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let first = stderr.lines().next().unwrap_or("");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|_| panic!("JSON log line: {first}"));
    assert!(line.get("level").is_some(), "{first}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
}

#[test]
fn serve_explains_a_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let out = kommutator(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn demo_serves_calls_from_the_simulated_pbx_and_stops_on_ctrl_c() {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--calls-per-minute",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    let mut admin_password = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim_start().strip_prefix("admin ") {
            admin_password = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("http://").nth(1) {
            if addr.is_none() {
                addr = rest.split('/').next().map(str::to_owned);
            }
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let addr = addr.expect("the demo prints its URL");
    let admin_password = admin_password.expect("demo accounts are listed with passwords");
    std::thread::spawn(move || for _ in lines {});
    wait_for_health(&addr, &mut child);
    assert!(http_get(&addr, "/metrics")
        .1
        .contains("kommutator_ami_events_in_total"));
    // The API needs a login; the demo printed the accounts.
    assert_eq!(http_get(&addr, "/api/v1/calls").0, 401);
    let cookie = common::login(&addr, "admin", &admin_password);

    // Simulated calls reach storage through the real AMI client and tracker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let calls = loop {
        let (status, body) = common::get_as(&addr, &cookie, "/api/v1/calls");
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let calls = page["calls"].as_array().cloned().unwrap_or_default();
        if calls.iter().any(|c| !c["outcome"].is_null()) {
            break calls;
        }
        assert!(
            Instant::now() < deadline,
            "no finished call arrived: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(calls.iter().all(|c| c["source"] == "demo"));

    signal(&child, "INT");
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
}
