//! FastAGI server: Asterisk asks `AGI(agi://kommutator:4573/route,${EXTEN})` where a call
//! should go, and gets the answer as channel variables.
//!
//! One session, as Asterisk 22 runs it (see `test_data/` for real bytes):
//! 1. Asterisk connects and sends the `agi_*` environment block and a blank line.
//! 2. We ask `GET VARIABLE CHANNEL(linkedid)` (the header has only the uniqueid) so the
//!    decision can be filed under the call's id.
//! 3. The routing service decides within its budget.
//! 4. We send `SET VARIABLE` for `KOMMUTATOR_ROUTE`, `_TARGET`, `_PRIORITY`, `_CUSTOMER_NAME`,
//!    `_SEGMENT`, `_LANGUAGE`, `_REASON`, plus any IVR variables a rule set, and close; the
//!    dialplan continues and reads them (see docs/asterisk.md).
//!
//! `HANGUP` may arrive at any moment (even between a command and its reply): the session
//! stops talking and closes. Garbage, over-long lines, silent or slow peers end the session
//! after a bounded wait; the dialplan then takes its fallback (`AGISTATUS=FAILURE`).
//!
//! What it is not: a general AGI toolkit. It sends only the commands routing needs and never
//! runs `EXEC` (Dial/Queue stay in the dialplan, where Asterisk handles them best).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use directory::{RouteQuery, RoutingService};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Limits of one session.
#[derive(Debug, Clone, Copy)]
pub struct AgiSettings {
    /// How long Asterisk may take to send the whole environment block.
    pub header_timeout: Duration,
    /// How long we wait for the reply to one command.
    pub reply_timeout: Duration,
    /// Longest accepted line (Asterisk's own limit is 8192 bytes).
    pub max_line: usize,
    /// Most environment lines accepted (20 standard ones plus arguments).
    pub max_header_lines: usize,
    /// Sessions served at once; more connections are closed at once so Asterisk falls back.
    pub max_sessions: usize,
}

impl Default for AgiSettings {
    fn default() -> Self {
        AgiSettings {
            header_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(2),
            max_line: 8192,
            max_header_lines: 200,
            max_sessions: 4096,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Variables set, connection closed by us.
    Routed,
    /// The channel hung up (`HANGUP`) before we were done.
    HungUp,
    /// The peer closed the connection early.
    Closed,
    /// The peer sent something that is not AGI.
    Garbage(String),
    /// The peer was silent or too slow.
    TimedOut,
    /// A socket error.
    Io(String),
}

/// The variables of a decision, in the order they are sent.
pub fn decision_variables(decision: &cti_core::routing::Decision) -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "KOMMUTATOR_ROUTE".to_owned(),
            decision.route.kind().to_owned(),
        ),
        (
            "KOMMUTATOR_TARGET".to_owned(),
            decision.route.target().to_owned(),
        ),
        (
            "KOMMUTATOR_PRIORITY".to_owned(),
            decision.route.priority().to_string(),
        ),
        (
            "KOMMUTATOR_CUSTOMER_NAME".to_owned(),
            decision.customer_name.clone().unwrap_or_default(),
        ),
        (
            "KOMMUTATOR_SEGMENT".to_owned(),
            decision.segment.clone().unwrap_or_default(),
        ),
        (
            "KOMMUTATOR_LANGUAGE".to_owned(),
            decision.language.clone().unwrap_or_default(),
        ),
        ("KOMMUTATOR_REASON".to_owned(), decision.reason.clone()),
        (
            "KOMMUTATOR_DEGRADED".to_owned(),
            if decision.degraded.is_some() {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
    ];
    for (name, value) in &decision.variables {
        vars.push((
            format!("KOMMUTATOR_{}", name.to_ascii_uppercase()),
            value.clone(),
        ));
    }
    vars
}

/// Serves FastAGI on `listener` with default limits until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    service: Arc<RoutingService>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with(listener, service, AgiSettings::default(), shutdown).await
}

/// Serves FastAGI with explicit limits. On shutdown it stops accepting, gives running
/// sessions one second to finish and drops the rest.
pub async fn run_with(
    listener: TcpListener,
    service: Arc<RoutingService>,
    settings: AgiSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(settings.max_sessions.max(1)));
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "FastAGI accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "FastAGI session limit reached; connection closed.");
                    drop(stream);
                    continue;
                };
                let service = service.clone();
                sessions.spawn(async move {
                    let _permit = permit;
                    let _ = stream.set_nodelay(true);
                    let end = serve_connection(stream, &service, &settings).await;
                    match &end {
                        SessionEnd::Routed | SessionEnd::HungUp => {
                            tracing::debug!(%peer, end = ?end, "FastAGI session ended.");
                        }
                        other => tracing::info!(%peer, end = ?other, "FastAGI session ended early."),
                    }
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        sessions.abort_all();
    }
    Ok(())
}

/// Runs one session on an accepted connection.
pub async fn serve_connection(
    stream: TcpStream,
    service: &RoutingService,
    settings: &AgiSettings,
) -> SessionEnd {
    let (read, write) = stream.into_split();
    serve_session(BufReader::new(read), write, service, settings).await
}

/// Runs one session over any byte stream (tests use in-memory pipes too).
pub async fn serve_session<R, W>(
    mut reader: BufReader<R>,
    mut writer: W,
    service: &RoutingService,
    settings: &AgiSettings,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let env = match tokio::time::timeout(
        settings.header_timeout,
        read_environment(&mut reader, settings),
    )
    .await
    {
        Err(_) => return SessionEnd::TimedOut,
        Ok(Err(end)) => return end,
        Ok(Ok(env)) => env,
    };
    let uniqueid = env.get("agi_uniqueid").cloned().unwrap_or_default();
    let mut call_ids = vec![uniqueid];
    match command(
        &mut reader,
        &mut writer,
        "GET VARIABLE CHANNEL(linkedid)",
        settings,
    )
    .await
    {
        Ok(reply) => {
            if let Some(linkedid) = reply.data.filter(|l| !l.is_empty() && *l != call_ids[0]) {
                call_ids.push(linkedid);
            }
        }
        Err(end) => {
            // The channel is gone (or the peer is broken) before routing: nothing to set, but
            // the decision is still worth filing for the call record when it hung up.
            if end == SessionEnd::HungUp {
                let query = query_from_env(&env, call_ids);
                service.route(&query).await;
            }
            return end;
        }
    }
    let query = query_from_env(&env, call_ids);
    let decision = service.route(&query).await;
    for (name, value) in decision_variables(&decision) {
        let line = format!("SET VARIABLE {name} {}", quote(&value));
        if let Err(end) = command(&mut reader, &mut writer, &line, settings).await {
            return end;
        }
    }
    let _ = writer.shutdown().await;
    SessionEnd::Routed
}

/// The routing question an AGI environment asks.
///
/// Caller: `agi_callerid`, else the second argument. Line (DID): the first argument
/// (`AGI(agi://host/route,${EXTEN})`), else `agi_dnid`, else `agi_extension`.
pub fn query_from_env(env: &HashMap<String, String>, call_ids: Vec<String>) -> RouteQuery {
    let known = |key: &str| {
        env.get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("unknown"))
            .map(str::to_owned)
    };
    RouteQuery {
        caller: known("agi_callerid")
            .or_else(|| known("agi_arg_2"))
            .unwrap_or_default(),
        line: known("agi_arg_1")
            .or_else(|| known("agi_dnid"))
            .or_else(|| known("agi_extension")),
        channel_language: known("agi_language"),
        call_ids,
    }
}

struct Reply {
    data: Option<String>,
}

async fn read_environment<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    settings: &AgiSettings,
) -> Result<HashMap<String, String>, SessionEnd> {
    let mut env = HashMap::new();
    loop {
        let line = read_line(reader, settings.max_line).await?;
        if line.is_empty() {
            if env.is_empty() {
                return Err(SessionEnd::Garbage("empty environment".to_owned()));
            }
            return Ok(env);
        }
        if line == "HANGUP" {
            return Err(SessionEnd::HungUp);
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(SessionEnd::Garbage(format!(
                "not an AGI header line: {}",
                excerpt(&line)
            )));
        };
        if !key.starts_with("agi_") || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SessionEnd::Garbage(format!(
                "not an AGI header line: {}",
                excerpt(&line)
            )));
        }
        if env.len() >= settings.max_header_lines {
            return Err(SessionEnd::Garbage("too many environment lines".to_owned()));
        }
        env.insert(key.to_owned(), value.trim_start().to_owned());
    }
}

/// Sends one command and reads its reply, skipping (and remembering) an interleaved HANGUP.
async fn command<R, W>(
    reader: &mut BufReader<R>,
    writer: &mut W,
    line: &str,
    settings: &AgiSettings,
) -> Result<Reply, SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    writer
        .write_all(&bytes)
        .await
        .map_err(|e| SessionEnd::Io(e.to_string()))?;
    // A HANGUP in place of the reply ends the session: the reply that may still follow is
    // not worth waiting for, since nothing more will be sent on a dead channel.
    let reply = tokio::time::timeout(settings.reply_timeout, async {
        {
            let line = read_line(reader, settings.max_line).await?;
            if line == "HANGUP" {
                return Err(SessionEnd::HungUp);
            }
            if let Some(rest) = line.strip_prefix("200 ") {
                return Ok(parse_result(rest));
            }
            if line.starts_with("510") || line.starts_with("511") {
                // Unknown or not permitted (dead channel): nothing more to do on this channel.
                return Err(SessionEnd::Closed);
            }
            if line.starts_with("520-") {
                // Multi-line usage text; read to its end, then give up on the session.
                loop {
                    let more = read_line(reader, settings.max_line).await?;
                    if more.starts_with("520 ") {
                        return Err(SessionEnd::Garbage("command syntax refused".to_owned()));
                    }
                }
            }
            Err(SessionEnd::Garbage(format!(
                "not an AGI reply: {}",
                excerpt(&line)
            )))
        }
    })
    .await;
    match reply {
        Err(_) => Err(SessionEnd::TimedOut),
        Ok(res) => res,
    }
}

/// `result=1 (value)` → the value in parentheses, if any.
fn parse_result(rest: &str) -> Reply {
    let data = match (rest.find('('), rest.rfind(')')) {
        (Some(open), Some(close)) if close > open => Some(rest[open + 1..close].to_owned()),
        _ => None,
    };
    Reply { data }
}

/// Reads one `\n`-terminated line (a trailing `\r` is dropped), at most `max` bytes.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> Result<String, SessionEnd> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| SessionEnd::Io(e.to_string()))?;
    if n == 0 {
        return Err(SessionEnd::Closed);
    }
    if buf.last() != Some(&b'\n') {
        return if buf.len() > max {
            Err(SessionEnd::Garbage("line too long".to_owned()))
        } else {
            Err(SessionEnd::Closed)
        };
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    // Caller names may arrive in a legacy 8-bit charset; keep what is valid.
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Quotes a value for `SET VARIABLE`: in double quotes, `"` and `\` escaped, and control
/// characters (a newline would end the command and start another) replaced by spaces.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn excerpt(line: &str) -> String {
    line.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_cannot_inject_commands() {
        let cases = [
            ("support", "\"support\""),
            ("Иван \"Ваня\" Петров", "\"Иван \\\"Ваня\\\" Петров\""),
            ("a\nEXEC System rm", "\"a EXEC System rm\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("", "\"\""),
        ];
        for (value, want) in cases {
            assert_eq!(quote(value), want);
        }
    }

    #[test]
    fn results_parse_their_data() {
        assert_eq!(
            parse_result("result=1 (1795335185.240)").data.as_deref(),
            Some("1795335185.240")
        );
        assert_eq!(parse_result("result=1").data, None);
        assert_eq!(
            parse_result("result=1 (a (b))").data.as_deref(),
            Some("a (b)")
        );
    }
}
