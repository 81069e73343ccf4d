//! `kommutator user add|list|passwd|token`: account management from the command line, so the
//! first administrator can be created before anyone can log in to a web page, and integrations
//! get bearer tokens without a browser.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use storage::{NewUser, Role, UserQueue};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a random password is generated and printed.
    Add {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
        /// Login name, e.g. `anna`.
        #[arg(long)]
        login: String,
        /// Name shown in the panel and reports, e.g. "Anna Petrova".
        #[arg(long)]
        name: String,
        /// agent, supervisor or admin.
        #[arg(long, default_value = "agent")]
        role: String,
        /// An extension this user answers on, e.g. 101; repeat for several.
        #[arg(long = "extension")]
        extensions: Vec<String>,
        /// Queue membership as QUEUE=INTERFACE, e.g. `sales=PJSIP/101`; repeat for several.
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Set a new password. Without --password-stdin a random one is generated and printed.
    Passwd {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
        /// Login name.
        login: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// API bearer tokens for integrations (`Authorization: Bearer kmt_…`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token that acts as USER; it is printed once and only its hash is stored.
    Create {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
        /// Login of the user the token acts as (its role decides what the token may do).
        #[arg(long)]
        user: String,
        /// A label that says who uses the token, e.g. "bitrix24".
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List tokens (never the secrets): id, user, label, when issued, when revoked.
    List {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id (from `user token list`); it stops working at once.
    Revoke {
        /// The TOML configuration file (for the database).
        #[arg(long, short)]
        config: PathBuf,
        /// The token's id.
        id: i64,
    },
}

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            config,
            login,
            name,
            role,
            extensions,
            queues,
            password_stdin,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role `{role}`: use agent, supervisor or admin")
            })?;
            let queues = queues
                .iter()
                .map(|spec| parse_queue(spec))
                .collect::<anyhow::Result<Vec<_>>>()?;
            validate_login(&login)?;
            let (password, generated) = password(password_stdin)?;
            let storage = open(&config).await?;
            let user = NewUser {
                login: login.clone(),
                display_name: name,
                role,
                password_hash: Some(server::password::hash(&password)?),
                extensions,
                queues,
            };
            storage
                .create_user(&user, chrono::Utc::now())
                .await
                .with_context(|| format!("cannot create user `{login}`"))?;
            storage.close().await;
            println!("Created {} `{login}`.", role.as_str());
            if generated {
                println!("Password: {password}");
            }
            Ok(())
        }
        UserCommand::List { config } => {
            let storage = open(&config).await?;
            let users = storage.list_users().await.context("cannot list users")?;
            storage.close().await;
            // The header goes through the row format so the columns line up.
            #[allow(clippy::print_literal)]
            {
                println!(
                    "{:<16} {:<11} {:<24} {:<12} {}",
                    "LOGIN", "ROLE", "NAME", "EXTENSIONS", "STATE"
                );
            }
            for user in users {
                println!(
                    "{:<16} {:<11} {:<24} {:<12} {}",
                    user.login,
                    user.role.as_str(),
                    user.display_name,
                    user.extensions.join(","),
                    if user.disabled { "disabled" } else { "active" }
                );
            }
            Ok(())
        }
        UserCommand::Passwd {
            config,
            login,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            let hash = server::password::hash(&password)?;
            let storage = open(&config).await?;
            let user = storage
                .get_user_by_login(&login)
                .await
                .context("cannot look up the user")?
                .with_context(|| {
                    format!("there is no user `{login}`: see `kommutator user list`")
                })?;
            storage
                .set_password_hash(user.id, Some(&hash), chrono::Utc::now())
                .await
                .context("cannot store the new password")?;
            // A new password ends every open browser session of that user.
            storage
                .delete_user_sessions(user.id)
                .await
                .context("cannot end the user's sessions")?;
            storage.close().await;
            println!("Password of `{login}` changed.");
            if generated {
                println!("Password: {password}");
            }
            Ok(())
        }
        UserCommand::Token { command } => token(command).await,
    }
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { config, user, name } => {
            anyhow::ensure!(
                !name.trim().is_empty() && name.len() <= 100,
                "the token label must be 1-100 characters"
            );
            let storage = open(&config).await?;
            let row = find_user(&storage, &user).await?;
            anyhow::ensure!(
                !row.disabled,
                "user `{user}` is disabled; a token for it would not authenticate"
            );
            let (token, id) = server::auth::issue_api_token(&storage, row.id, name.trim())
                .await
                .context("cannot store the token")?;
            storage.close().await;
            println!(
                "Created API token {id} for `{user}` ({}).",
                row.role.as_str()
            );
            println!("Token: {token}");
            println!("It is shown only now; send it as `Authorization: Bearer <token>`.");
            Ok(())
        }
        TokenCommand::List { config, user } => {
            let storage = open(&config).await?;
            let users = match &user {
                Some(login) => vec![find_user(&storage, login).await?],
                None => storage.list_users().await.context("cannot list users")?,
            };
            let mut rows = Vec::new();
            for user in &users {
                let tokens = storage
                    .list_api_tokens(user.id)
                    .await
                    .context("cannot list tokens")?;
                rows.extend(tokens.into_iter().map(|t| (user.login.clone(), t)));
            }
            storage.close().await;
            rows.sort_by_key(|(_, t)| t.id.0);
            // The header goes through the row format so the columns line up.
            #[allow(clippy::print_literal)]
            {
                println!(
                    "{:<6} {:<16} {:<24} {:<20} {}",
                    "ID", "USER", "LABEL", "CREATED", "REVOKED"
                );
            }
            let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
            for (login, t) in rows {
                println!(
                    "{:<6} {:<16} {:<24} {:<20} {}",
                    t.id.0,
                    login,
                    t.name,
                    time(t.created_at),
                    t.revoked_at.map_or_else(|| "-".to_owned(), time)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { config, id } => {
            let storage = open(&config).await?;
            let res = storage
                .revoke_api_token(storage::ApiTokenId(id), chrono::Utc::now())
                .await;
            storage.close().await;
            match res {
                Ok(()) => {
                    println!("API token {id} revoked.");
                    Ok(())
                }
                Err(storage::StorageError::NotFound { .. }) => {
                    anyhow::bail!("there is no API token {id}: see `kommutator user token list`")
                }
                Err(err) => Err(err).context("cannot revoke the token"),
            }
        }
    }
}

async fn find_user(storage: &storage::Storage, login: &str) -> anyhow::Result<storage::UserRow> {
    storage
        .get_user_by_login(login)
        .await
        .context("cannot look up the user")?
        .with_context(|| format!("there is no user `{login}`: see `kommutator user list`"))
}

async fn open(config: &std::path::Path) -> anyhow::Result<storage::Storage> {
    let settings = crate::load_settings(config)?;
    crate::serve::open_storage(&settings).await
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((server::password::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "standard input held no password");
    Ok((password, false))
}

fn parse_queue(spec: &str) -> anyhow::Result<UserQueue> {
    match spec.split_once('=') {
        Some((queue, interface)) if !queue.is_empty() && !interface.is_empty() => Ok(UserQueue {
            queue: queue.to_owned(),
            interface: interface.to_owned(),
        }),
        _ => anyhow::bail!("`--queue {spec}` must look like QUEUE=INTERFACE, e.g. sales=PJSIP/101"),
    }
}

fn validate_login(login: &str) -> anyhow::Result<()> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'));
    anyhow::ensure!(
        ok,
        "login `{login}` must be 1-64 letters, digits, '.', '-', '_' or '@'"
    );
    Ok(())
}
