//! `kommutator`: the binary. Parses the command line, loads the configuration, wires the
//! components (PBX adapters → core → storage and sinks, HTTP server) as tokio tasks and shuts
//! them down cleanly. It holds no domain logic of its own.

mod click_to_call;
mod config;
mod crm;
mod cti;
mod demo;
mod insight;
mod logging;
mod pipeline;
mod replay;
mod route_cli;
mod routing;
mod serve;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// Kommutator: telephony ↔ CRM integration server.
#[derive(Debug, Parser)]
#[command(name = "kommutator", version, about, propagate_version = true)]
struct Cli {
    /// Log line format: auto (pretty on a terminal, JSON otherwise), pretty or json.
    /// Default: the config file's `log.format`, else auto.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `info,pbx_ami=debug`. Default: the config file's `log.level`.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server with a configuration file (production).
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run everything on this machine with a simulated Asterisk and sample customers.
    Demo(demo::DemoArgs),
    /// Check a configuration file and print what it resolves to (secrets masked).
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage operator, supervisor and administrator accounts.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Feed a raw AMI capture through the codec and the call tracker and print the call records.
    Replay(replay::ReplayArgs),
    /// Explain or simulate call routing with the configured rules.
    Route {
        #[command(subcommand)]
        command: route_cli::RouteCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line that names what failed and why; the causes are joined with ": ".
            eprintln!("kommutator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = cli.log_format;
    let log_level = cli.log_level;
    match cli.command {
        Command::CheckConfig { file } => {
            let settings = load_settings(&file)?;
            print!("{}", settings.describe());
            println!("{}: configuration is valid.", file.display());
            Ok(())
        }
        Command::Replay(args) => replay::run(args),
        Command::Route { command } => {
            let config = match &command {
                route_cli::RouteCommand::Explain { config, .. }
                | route_cli::RouteCommand::Simulate { config, .. } => config.clone(),
            };
            let settings = load_settings(&config)?;
            init_logging(
                &settings,
                log_format,
                Some(log_level.as_deref().unwrap_or("warn")),
            )?;
            runtime()?.block_on(route_cli::run(command, settings))
        }
        Command::Serve { config } => {
            let settings = load_settings(&config)?;
            init_logging(&settings, log_format, log_level.as_deref())?;
            runtime()?.block_on(serve::serve(settings))
        }
        Command::Migrate { config } => {
            let settings = load_settings(&config)?;
            init_logging(&settings, log_format, log_level.as_deref())?;
            runtime()?.block_on(serve::migrate(&settings))
        }
        Command::User { command } => runtime()?.block_on(users::run(command)),
        Command::Demo(args) => {
            logging::init(
                log_format.unwrap_or(LogFormat::Pretty),
                log_level.as_deref().unwrap_or("info,sqlx=warn"),
            )?;
            runtime()?.block_on(demo::run(args))
        }
    }
}

fn load_settings(path: &std::path::Path) -> anyhow::Result<config::Settings> {
    Ok(config::load(path, &|name| std::env::var(name).ok())?)
}

fn init_logging(
    settings: &config::Settings,
    format: Option<LogFormat>,
    level: Option<&str>,
) -> anyhow::Result<()> {
    logging::init(
        format.unwrap_or(settings.log.format),
        level.unwrap_or(&settings.log.level),
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "Cannot listen for Ctrl-C; use SIGTERM to stop.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot listen for SIGTERM; use Ctrl-C to stop.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down."),
        () = terminate => tracing::info!("SIGTERM received; shutting down."),
    }
}
