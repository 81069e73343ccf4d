//! Users (agents, supervisors, admins), their extensions and queue interfaces, API tokens and
//! browser sessions.
//!
//! Secrets are stored only as hashes chosen by the caller (argon2 for passwords, a fast hash for
//! random tokens); this module never sees or compares plaintext secrets. Logins are stored as
//! given: the caller normalizes them (e.g. lower-case) before creating and looking up.

use chrono::{DateTime, Utc};

use crate::row::RowExt;
use crate::types::to_micros;
use crate::{in_tx, on_pool, ApiTokenId, Role, Storage, StorageError, UserId};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name.
    pub login: String,
    /// Name shown in the panel and reports.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// Password hash (PHC string); `None` for accounts that only use API tokens.
    pub password_hash: Option<String>,
    /// Extensions this user answers on (each extension belongs to at most one user).
    pub extensions: Vec<String>,
    /// Queue memberships.
    pub queues: Vec<UserQueue>,
}

/// A queue the user is a member of and the interface the PBX knows them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQueue {
    /// Queue name on the PBX.
    pub queue: String,
    /// Queue member interface, e.g. `PJSIP/101` or `Local/101@agents`.
    pub interface: String,
}

/// A stored user with extensions and queues.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// Row id.
    pub id: UserId,
    /// Unique login name.
    pub login: String,
    /// Name shown in the panel and reports.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// Password hash (PHC string), if a password is set.
    pub password_hash: Option<String>,
    /// Disabled users cannot log in and their tokens do not authenticate.
    pub disabled: bool,
    /// Extensions, sorted.
    pub extensions: Vec<String>,
    /// Queue memberships, sorted by queue.
    pub queues: Vec<UserQueue>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// Last change to the user row.
    pub updated_at: DateTime<Utc>,
}

/// A stored API token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTokenRow {
    /// Row id.
    pub id: ApiTokenId,
    /// Owner; the token acts with this user's role.
    pub user_id: UserId,
    /// Label chosen by the admin, e.g. "bitrix24 webhook".
    pub name: String,
    /// Hash of the secret token.
    pub token_hash: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A browser session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Hash of the session cookie value (the primary key).
    pub id_hash: String,
    /// Whose session.
    pub user_id: UserId,
    /// CSRF token the page must echo on state-changing requests.
    pub csrf_token: String,
    /// When the session starts.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// A stored browser session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Hash of the session cookie value.
    pub id_hash: String,
    /// Whose session.
    pub user_id: UserId,
    /// CSRF token.
    pub csrf_token: String,
    /// When the session started.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
}

const USER_COLUMNS: &str =
    "id, login, display_name, role, password_hash, disabled, created_at, updated_at";
const TOKEN_COLUMNS: &str = "id, user_id, name, token_hash, created_at, revoked_at";

fn user_from_row(row: &impl RowExt) -> Result<UserRow, StorageError> {
    Ok(UserRow {
        id: UserId(row.int("id")?),
        login: row.text("login")?,
        display_name: row.text("display_name")?,
        role: Role::decode(&row.text("role")?)?,
        password_hash: row.opt_text("password_hash")?,
        disabled: row.flag("disabled")?,
        extensions: Vec::new(),
        queues: Vec::new(),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn token_from_row(row: &impl RowExt) -> Result<ApiTokenRow, StorageError> {
    Ok(ApiTokenRow {
        id: ApiTokenId(row.int("id")?),
        user_id: UserId(row.int("user_id")?),
        name: row.text("name")?,
        token_hash: row.text("token_hash")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

fn session_from_row(row: &impl RowExt) -> Result<SessionRow, StorageError> {
    Ok(SessionRow {
        id_hash: row.text("id")?,
        user_id: UserId(row.int("user_id")?),
        csrf_token: row.text("csrf_token")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

impl Storage {
    /// Creates a user with extensions and queues in one transaction.
    ///
    /// Fails with [`StorageError::Conflict`] when the login or an extension is taken.
    pub async fn create_user(
        &self,
        user: &NewUser,
        now: DateTime<Utc>,
    ) -> Result<UserId, StorageError> {
        let now = to_micros(now);
        let id = in_tx!(self, tx => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (login, display_name, role, password_hash, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, FALSE, $5, $5) RETURNING id",
            )
            .bind(&user.login)
            .bind(&user.display_name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            for extension in &user.extensions {
                sqlx::query("INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)")
                    .bind(extension)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for queue in &user.queues {
                sqlx::query("INSERT INTO user_queues (user_id, queue, interface) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(&queue.queue)
                    .bind(&queue.interface)
                    .execute(&mut *tx)
                    .await?;
            }
            id
        });
        Ok(UserId(id))
    }

    /// The user with this id, with extensions and queues.
    pub async fn get_user(&self, id: UserId) -> Result<Option<UserRow>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let user = on_pool!(self, pool => {
            match sqlx::query(&sql).bind(id.0).fetch_optional(pool).await? {
                Some(row) => Some(user_from_row(&row)?),
                None => None,
            }
        });
        self.with_memberships(user.into_iter().collect())
            .await
            .map(|mut users| users.pop())
    }

    /// The user with this login, with extensions and queues.
    pub async fn get_user_by_login(&self, login: &str) -> Result<Option<UserRow>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE login = $1");
        let user = on_pool!(self, pool => {
            match sqlx::query(&sql).bind(login).fetch_optional(pool).await? {
                Some(row) => Some(user_from_row(&row)?),
                None => None,
            }
        });
        self.with_memberships(user.into_iter().collect())
            .await
            .map(|mut users| users.pop())
    }

    /// Every user, ordered by login, with extensions and queues.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY login");
        let users = on_pool!(self, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?
        });
        self.with_memberships(users).await
    }

    /// The user who answers on `extension`, if any.
    pub async fn find_user_by_extension(
        &self,
        extension: &str,
    ) -> Result<Option<UserRow>, StorageError> {
        let user_id: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT user_id FROM user_extensions WHERE extension = $1")
                .bind(extension)
                .fetch_optional(pool)
                .await?
        });
        match user_id {
            Some(id) => self.get_user(UserId(id)).await,
            None => Ok(None),
        }
    }

    /// Replaces the password hash; `None` removes password login.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(password_hash)
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("user {id}"))
    }

    /// Enables or disables a user.
    pub async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
                .bind(disabled)
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("user {id}"))
    }

    /// Changes the role and display name.
    pub async fn update_user_profile(
        &self,
        id: UserId,
        display_name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE users SET display_name = $1, role = $2, updated_at = $3 WHERE id = $4")
                .bind(display_name)
                .bind(role.as_str())
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("user {id}"))
    }

    /// Replaces the user's extensions with exactly `extensions`.
    ///
    /// Fails with [`StorageError::Conflict`] (changing nothing) if one belongs to another user.
    pub async fn set_user_extensions(
        &self,
        id: UserId,
        extensions: &[String],
    ) -> Result<(), StorageError> {
        in_tx!(self, tx => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StorageError::not_found(format!("user {id}")));
            }
            sqlx::query("DELETE FROM user_extensions WHERE user_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            for extension in extensions {
                sqlx::query("INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)")
                    .bind(extension)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Replaces the user's queue memberships with exactly `queues`.
    pub async fn set_user_queues(
        &self,
        id: UserId,
        queues: &[UserQueue],
    ) -> Result<(), StorageError> {
        in_tx!(self, tx => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StorageError::not_found(format!("user {id}")));
            }
            sqlx::query("DELETE FROM user_queues WHERE user_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            for queue in queues {
                sqlx::query("INSERT INTO user_queues (user_id, queue, interface) VALUES ($1, $2, $3)")
                    .bind(id.0)
                    .bind(&queue.queue)
                    .bind(&queue.interface)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Loads extensions and queues for the given users (two queries, whatever the count).
    async fn with_memberships(
        &self,
        mut users: Vec<UserRow>,
    ) -> Result<Vec<UserRow>, StorageError> {
        if users.is_empty() {
            return Ok(users);
        }
        // One user (the common lookup) reads only its rows; a listing reads all rows at once.
        let only = match users.as_slice() {
            [one] => one.id.0,
            _ => 0,
        };
        let (extensions, queues) = on_pool!(self, pool => {
            let ext_rows = sqlx::query(
                "SELECT user_id, extension FROM user_extensions WHERE ($1 = 0 OR user_id = $1) ORDER BY extension",
            )
            .bind(only)
            .fetch_all(pool)
            .await?;
            let queue_rows = sqlx::query(
                "SELECT user_id, queue, interface FROM user_queues WHERE ($1 = 0 OR user_id = $1) ORDER BY queue",
            )
            .bind(only)
            .fetch_all(pool)
            .await?;
            let mut extensions = Vec::with_capacity(ext_rows.len());
            for row in &ext_rows {
                extensions.push((row.int("user_id")?, row.text("extension")?));
            }
            let mut queues = Vec::with_capacity(queue_rows.len());
            for row in &queue_rows {
                queues.push((
                    row.int("user_id")?,
                    UserQueue { queue: row.text("queue")?, interface: row.text("interface")? },
                ));
            }
            (extensions, queues)
        });
        for user in &mut users {
            user.extensions = extensions
                .iter()
                .filter(|(uid, _)| *uid == user.id.0)
                .map(|(_, ext)| ext.clone())
                .collect();
            user.queues = queues
                .iter()
                .filter(|(uid, _)| *uid == user.id.0)
                .map(|(_, q)| q.clone())
                .collect();
        }
        Ok(users)
    }

    /// Stores a new API token hash for a user.
    pub async fn create_api_token(
        &self,
        user_id: UserId,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiTokenId, StorageError> {
        let id: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(user_id.0)
            .bind(name)
            .bind(token_hash)
            .bind(to_micros(now))
            .fetch_one(pool)
            .await?
        });
        Ok(ApiTokenId(id))
    }

    /// Revokes a token; revoking an already revoked token keeps the first revocation time.
    pub async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(to_micros(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("API token {id}"))
    }

    /// The token with this hash if it is not revoked and its user is not disabled.
    pub async fn find_active_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, StorageError> {
        let sql = "SELECT t.id, t.user_id, t.name, t.token_hash, t.created_at, t.revoked_at \
                   FROM api_tokens t JOIN users u ON u.id = t.user_id \
                   WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled = FALSE";
        let res = on_pool!(self, pool => {
            match sqlx::query(sql).bind(token_hash).fetch_optional(pool).await? {
                Some(row) => Some(token_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Every token of a user (including revoked ones), newest first.
    pub async fn list_api_tokens(&self, user_id: UserId) -> Result<Vec<ApiTokenRow>, StorageError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC");
        let res = on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(user_id.0).fetch_all(pool).await?;
            rows.iter().map(token_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(res)
    }

    /// Stores a new browser session.
    pub async fn create_session(&self, session: &NewSession) -> Result<(), StorageError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&session.id_hash)
            .bind(session.user_id.0)
            .bind(&session.csrf_token)
            .bind(to_micros(session.created_at))
            .bind(to_micros(session.expires_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The session if it exists, has not expired at `now`, and its user is not disabled.
    pub async fn get_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StorageError> {
        let sql = "SELECT s.id, s.user_id, s.csrf_token, s.created_at, s.expires_at \
                   FROM sessions s JOIN users u ON u.id = s.user_id \
                   WHERE s.id = $1 AND s.expires_at > $2 AND u.disabled = FALSE";
        let res = on_pool!(self, pool => {
            match sqlx::query(sql).bind(id_hash).bind(to_micros(now)).fetch_optional(pool).await? {
                Some(row) => Some(session_from_row(&row)?),
                None => None,
            }
        });
        Ok(res)
    }

    /// Moves a session's expiry (sliding sessions).
    pub async fn extend_session(
        &self,
        id_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
                .bind(to_micros(expires_at))
                .bind(id_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || "the session".to_owned())
    }

    /// Deletes one session (logout); deleting a missing session is not an error.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StorageError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id_hash).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes every session of a user (password change, disable); returns how many.
    pub async fn delete_user_sessions(&self, user_id: UserId) -> Result<u64, StorageError> {
        let res = on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(res)
    }

    /// Deletes sessions that expired at or before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StorageError> {
        let res = on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(to_micros(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(res)
    }
}

pub(crate) fn require_affected(
    affected: u64,
    what: impl FnOnce() -> String,
) -> Result<(), StorageError> {
    if affected == 0 {
        Err(StorageError::not_found(what()))
    } else {
        Ok(())
    }
}
