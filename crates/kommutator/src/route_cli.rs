//! `kommutator route explain` and `kommutator route simulate`: the configured router run by
//! hand against the real directory, for operators who want to know why a call went where it
//! did, or what a rule change would do to last month's calls. Read-only: nothing is written
//! to storage and no decision is filed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use cti_core::Timestamp;
use directory::{DecisionLog, RouteQuery, RoutingService};

/// `kommutator route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route one call as the server would and print the decision with its trace.
    Explain {
        /// Caller number as the PBX would send it.
        #[arg(long)]
        from: String,
        /// The dialled line (DID).
        #[arg(long)]
        line: Option<String>,
        /// When the call happens: RFC 3339 (`2026-03-02T10:00:00+03:00`); default now.
        #[arg(long)]
        at: Option<String>,
        /// The TOML configuration file (with a `[routing]` section).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Replay stored calls through the current and a new rule set and compare.
    Simulate {
        /// A TOML file with a `[routing]` section holding the new rules.
        #[arg(long)]
        rules: PathBuf,
        /// How far back to replay, in days (`30d` or `30`).
        #[arg(long, default_value = "30d")]
        since: String,
        /// How many changed calls to print.
        #[arg(long, default_value_t = 20)]
        sample: usize,
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Runs a `route` subcommand.
pub async fn run(command: RouteCommand, settings: crate::config::Settings) -> anyhow::Result<()> {
    let routing = settings
        .routing
        .clone()
        .context("the configuration has no [[routing.rules]]")?;
    let storage = crate::serve::open_storage(&settings).await?;
    let service =
        crate::routing::build_service(&routing, &storage, Arc::new(DecisionLog::default()))
            .await
            .context("cannot build the routing service")?;
    let index = directory::from_storage::full_load(&storage, routing.last_agent_days)
        .await
        .context("cannot load the customer directory")?;
    service.directory().replace(index);
    let result = match command {
        RouteCommand::Explain { from, line, at, .. } => {
            let at = match at {
                Some(text) => parse_time(&text)?,
                None => directory::service::now_timestamp(),
            };
            let query = RouteQuery {
                caller: from,
                line,
                ..RouteQuery::default()
            };
            let decision = decide(&service, &query, at).await;
            print!("{}", decision.explain());
            Ok(())
        }
        RouteCommand::Simulate {
            rules,
            since,
            sample,
            ..
        } => simulate(&service, &storage, &rules, &since, sample).await,
    };
    storage.close().await;
    result
}

async fn decide(
    service: &RoutingService,
    query: &RouteQuery,
    at: Timestamp,
) -> cti_core::routing::Decision {
    // An operator at a terminal waits longer than a PBX: the budget is about production.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    service.route_at(query, at, deadline).await
}

fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("`{text}` is not a time such as 2026-03-02T10:00:00+03:00"))?;
    Ok(Timestamp::from_micros(at.timestamp_micros()))
}

fn parse_days(text: &str) -> anyhow::Result<u32> {
    text.trim_end_matches('d')
        .parse()
        .with_context(|| format!("`{text}` is not a number of days such as 30d"))
}

async fn simulate(
    current: &RoutingService,
    storage: &storage::Storage,
    rules: &std::path::Path,
    since: &str,
    sample: usize,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(rules)
        .with_context(|| format!("cannot read {}", rules.display()))?;
    let router = crate::routing::router_from_toml(&text)
        .with_context(|| format!("invalid rules in {}", rules.display()))?;
    let proposed = RoutingService::new(
        router,
        current.directory().clone(),
        Arc::new(cti_core::routing::KnownExtensions::new(
            directory::from_storage::UserExtensions::load(storage)
                .await?
                .extensions()
                .map(Into::into),
        )),
        current.settings(),
        Arc::new(DecisionLog::default()),
    );
    let days = parse_days(since)?;
    let mut filter = storage::CallFilter {
        from: Some(chrono::Utc::now() - chrono::Duration::days(i64::from(days))),
        limit: 1000,
        ..storage::CallFilter::default()
    };
    let (mut total, mut changed) = (0usize, 0usize);
    let mut before: BTreeMap<String, usize> = BTreeMap::new();
    let mut after: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples = Vec::new();
    loop {
        let page = storage.list_calls(&filter).await?;
        for row in &page.calls {
            let call = &row.call;
            let Some(caller) = call
                .customer_number_raw
                .clone()
                .or_else(|| call.customer_number.clone())
            else {
                continue;
            };
            let query = RouteQuery {
                caller,
                line: call.line.clone(),
                ..RouteQuery::default()
            };
            let at = Timestamp::from_micros(call.started_at.timestamp_micros());
            let old = decide(current, &query, at).await;
            let new = decide(&proposed, &query, at).await;
            total += 1;
            *before.entry(old.route.to_string()).or_default() += 1;
            *after.entry(new.route.to_string()).or_default() += 1;
            if old.route != new.route {
                changed += 1;
                if examples.len() < sample {
                    examples.push(format!(
                        "{} {} {}: {} ({}) -> {} ({})",
                        call.started_at.format("%Y-%m-%d %H:%M"),
                        call.id.0,
                        query.caller,
                        old.route,
                        old.reason,
                        new.route,
                        new.reason
                    ));
                }
            }
        }
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    println!("calls replayed: {total}, route changed: {changed}");
    let targets: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    println!("{:<40} {:>8} {:>8}", "target", "current", "new");
    for target in targets {
        println!(
            "{:<40} {:>8} {:>8}",
            target,
            before.get(target).copied().unwrap_or(0),
            after.get(target).copied().unwrap_or(0)
        );
    }
    if !examples.is_empty() {
        println!("changed calls (sample):");
        for line in examples {
            println!("  {line}");
        }
    }
    Ok(())
}
