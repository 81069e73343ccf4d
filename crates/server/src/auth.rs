//! Who is calling the API: browser sessions and bearer API tokens, and the role checks built
//! on them.
//!
//! - Browser login (`POST /api/v1/auth/login`) checks the argon2 password hash and sets an
//!   `HttpOnly` session cookie (`SameSite` as configured; `Secure` when served over HTTPS).
//!   The response carries a CSRF token; every state-changing request made with the cookie
//!   must echo it in `X-CSRF-Token`. Only hashes of session ids and tokens are stored.
//! - Integrations send `Authorization: Bearer kmt_…` (tokens are issued and revoked by an
//!   admin; a bearer request needs no CSRF token because a browser never adds it by itself).
//! - Failed logins are rate-limited per login and per client address.
//! - [`require_auth`] guards every API route; handlers read the [`AuthUser`] it attaches.
//!
//! What it is not: it holds no user data of its own (storage does) and no TLS (a reverse
//! proxy terminates it).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kommutator_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Prefix of API tokens, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "kmt_";

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Never sent cross-site: the panel cannot work inside another site's iframe.
    Strict,
    /// Sent on top-level navigation only.
    Lax,
    /// Sent in a CRM's iframe too; browsers require `Secure` (HTTPS) with it.
    None,
}

/// How sessions and login limits behave.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Mark the cookie `Secure` (the server is reached over HTTPS).
    pub secure_cookie: bool,
    /// The cookie's `SameSite`.
    pub same_site: SameSite,
    /// A session ends this long after its last use.
    pub session_ttl: Duration,
    /// Failed logins allowed per login within `login_window`.
    pub max_failures_per_login: u32,
    /// Failed logins allowed per client address within `login_window`.
    pub max_failures_per_ip: u32,
    /// The window of the login limits.
    pub login_window: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            secure_cookie: false,
            same_site: SameSite::Strict,
            session_ttl: Duration::from_secs(12 * 3600),
            max_failures_per_login: 5,
            max_failures_per_ip: 20,
            login_window: Duration::from_secs(15 * 60),
        }
    }
}

/// Session and limiter state shared by the handlers.
#[derive(Debug)]
pub struct Auth {
    settings: AuthSettings,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    by_login: HashMap<String, VecDeque<Instant>>,
    by_ip: HashMap<String, VecDeque<Instant>>,
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session (cookie); the CSRF token it must echo.
    Session {
        /// Hash of the session id.
        id_hash: String,
        /// The session's CSRF token.
        csrf_token: String,
    },
    /// A bearer API token.
    Token,
}

/// The authenticated user of a request (attached by [`require_auth`]).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user.
    pub user: storage::UserRow,
    /// How they authenticated.
    pub via: Via,
}

impl AuthUser {
    /// Supervisors and admins see everything; agents only their own.
    pub fn sees_everything(&self) -> bool {
        matches!(
            self.user.role,
            storage::Role::Supervisor | storage::Role::Admin
        )
    }

    /// Fails unless the user is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.role == storage::Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only an administrator may do this".to_owned(),
            ))
        }
    }

    pub(crate) fn viewer(&self) -> crate::cti::Viewer {
        crate::cti::Viewer {
            user_id: self.user.id,
            login: self.user.login.clone(),
            display_name: self.user.display_name.clone(),
            role: self.user.role,
            extensions: self.user.extensions.clone(),
        }
    }
}

impl Auth {
    /// New state with `settings`.
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            settings,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// `Some(retry_after)` when this login or address has failed too often.
    fn blocked(&self, login: &str, ip: &str) -> Option<Duration> {
        let now = Instant::now();
        let window = self.settings.login_window;
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let check = |map: &mut HashMap<String, VecDeque<Instant>>, key: &str, max: u32| {
            let times = map.get_mut(key)?;
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                times.pop_front();
            }
            (times.len() >= max as usize).then(|| {
                times
                    .front()
                    .map_or(window, |t| window.saturating_sub(now.duration_since(*t)))
            })
        };
        let by_login = check(
            &mut failures.by_login,
            login,
            self.settings.max_failures_per_login,
        );
        let by_ip = check(&mut failures.by_ip, ip, self.settings.max_failures_per_ip);
        by_login.max(by_ip)
    }

    fn record_failure(&self, login: &str, ip: &str) {
        let now = Instant::now();
        let mut guard = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let failures = &mut *guard;
        // Bound memory under a spray of made-up logins: forget everything rather than grow.
        for map in [&mut failures.by_login, &mut failures.by_ip] {
            if map.len() > 50_000 {
                map.clear();
            }
        }
        failures
            .by_login
            .entry(login.to_owned())
            .or_default()
            .push_back(now);
        failures
            .by_ip
            .entry(ip.to_owned())
            .or_default()
            .push_back(now);
    }

    fn record_success(&self, login: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.by_login.remove(login);
    }

    fn cookie(&self, value: &str, max_age: Duration) -> String {
        let same_site = match self.settings.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        };
        let secure = if self.settings.secure_cookie || self.settings.same_site == SameSite::None {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={}{secure}",
            max_age.as_secs()
        )
    }
}

/// Hex SHA-256 of a secret (session ids and API tokens are random 256-bit values, so a fast
/// hash is enough: there is nothing to guess).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret: 32 bytes as hex.
fn random_hex() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Issues an API token for a user; returns the token (shown once) and its row id.
pub async fn issue_api_token(
    storage: &storage::Storage,
    user_id: storage::UserId,
    name: &str,
) -> Result<(String, storage::ApiTokenId), storage::StorageError> {
    let token = format!("{TOKEN_PREFIX}{}", random_hex());
    let id = storage
        .create_api_token(user_id, name, &hash_secret(&token), Utc::now())
        .await?;
    Ok((token, id))
}

/// Routes that work without authentication (login) and the session routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/auth/login", post(login))
}

/// Session routes that need an authenticated user.
pub(crate) fn protected_router() -> Router<AppState> {
    Router::new()
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/tokens", post(create_token))
        .route("/auth/tokens/{id}", delete(revoke_token))
}

/// Middleware: authenticates the request (session cookie or bearer token), enforces CSRF on
/// state-changing cookie requests, and attaches [`AuthUser`]. Refuses with 401 otherwise.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers(), request.method()).await {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<AuthUser, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not `Bearer kmt_…`".to_owned())
            })?;
        let row = state
            .storage
            .find_active_api_token(&hash_secret(token))
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized("the API token is unknown or revoked".to_owned())
            })?;
        let user = active_user(state, row.user_id).await?;
        return Ok(AuthUser {
            user,
            via: Via::Token,
        });
    }
    let session_id =
        session_cookie(headers).ok_or_else(|| ApiError::Unauthorized("log in first".to_owned()))?;
    let id_hash = hash_secret(session_id);
    let now = Utc::now();
    let session = state
        .storage
        .get_session(&id_hash, now)
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized("the session has expired; log in again".to_owned())
        })?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|s| constant_time_eq(s.as_bytes(), session.csrf_token.as_bytes())) {
            return Err(ApiError::Forbidden(
                "the CSRF token is missing or wrong; reload the page".to_owned(),
            ));
        }
    }
    let user = active_user(state, session.user_id).await?;
    // Sliding expiry, written at most once a minute per session.
    let ttl = state.auth.settings.session_ttl;
    let wanted = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    if wanted - session.expires_at > chrono::Duration::seconds(60) {
        let _ = state.storage.extend_session(&id_hash, wanted).await;
    }
    Ok(AuthUser {
        user,
        via: Via::Session {
            id_hash,
            csrf_token: session.csrf_token,
        },
    })
}

async fn active_user(state: &AppState, id: storage::UserId) -> Result<storage::UserRow, ApiError> {
    match state.storage.get_user(id).await? {
        Some(user) if !user.disabled => Ok(user),
        _ => Err(ApiError::Unauthorized("the account is disabled".to_owned())),
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    login: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct SessionDto {
    user: UserDto,
    csrf_token: Option<String>,
}

#[derive(Debug, Serialize)]
struct UserDto {
    login: String,
    display_name: String,
    role: &'static str,
    extensions: Vec<String>,
}

fn user_dto(user: &storage::UserRow) -> UserDto {
    UserDto {
        login: user.login.clone(),
        display_name: user.display_name.clone(),
        role: user.role.as_str(),
        extensions: user.extensions.clone(),
    }
}

/// Where a login attempt comes from, for the per-address limit.
fn client_ip(connect: Option<&ConnectInfo<SocketAddr>>) -> String {
    connect.map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let ip = client_ip(extensions.get::<ConnectInfo<SocketAddr>>());
    let login = body.login.trim().to_lowercase();
    if let Some(retry) = state.auth.blocked(&login, &ip) {
        tracing::warn!(ip = %ip, "Login attempts rate-limited.");
        return Err(ApiError::TooManyRequests {
            message: "too many failed logins; wait and try again".to_owned(),
            retry_after_s: retry.as_secs().max(1),
        });
    }
    let user = state.storage.get_user_by_login(&login).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    // Verify even when the user does not exist, so timing does not reveal which logins exist.
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => crate::password::verify(&password, &hash),
        None => {
            let _ = crate::password::verify(&password, DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false);
    let user = match user {
        Some(user) if ok && !user.disabled => user,
        _ => {
            state.auth.record_failure(&login, &ip);
            return Err(ApiError::Unauthorized("wrong login or password".to_owned()));
        }
    };
    state.auth.record_success(&login);
    let session_id = random_hex();
    let csrf_token = random_hex();
    let now = Utc::now();
    let ttl = state.auth.settings.session_ttl;
    state
        .storage
        .create_session(&storage::NewSession {
            id_hash: hash_secret(&session_id),
            user_id: user.id,
            csrf_token: csrf_token.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        })
        .await?;
    tracing::info!(user = %user.login, "User logged in.");
    let cookie = state.auth.cookie(&session_id, ttl);
    let mut response = Json(SessionDto {
        user: user_dto(&user),
        csrf_token: Some(csrf_token),
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// An argon2 hash of a random string, verified against when the login does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$W8iJ2Sxb8rw8vUx9yyG0yGwEqE1cjXbPC7dlm0yOdoA";

async fn logout(
    State(state): State<AppState>,
    axum::extract::Extension(auth): axum::extract::Extension<AuthUser>,
) -> Result<Response, ApiError> {
    if let Via::Session { id_hash, .. } = &auth.via {
        state.storage.delete_session(id_hash).await?;
        state
            .cti
            .set_status(auth.viewer(), cti_core::agents::RequestedStatus::Offline)
            .await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&state.auth.cookie("", Duration::ZERO)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn me(axum::extract::Extension(auth): axum::extract::Extension<AuthUser>) -> Response {
    let csrf_token = match auth.via {
        Via::Session { csrf_token, .. } => Some(csrf_token),
        Via::Token => None,
    };
    let mut response = Json(SessionDto {
        user: user_dto(&auth.user),
        csrf_token,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// Whose token (login).
    login: String,
    /// A label, e.g. "bitrix24".
    name: String,
}

#[derive(Debug, Serialize)]
struct TokenDto {
    id: i64,
    /// Shown once; only its hash is stored.
    token: String,
}

async fn create_token(
    State(state): State<AppState>,
    axum::extract::Extension(auth): axum::extract::Extension<AuthUser>,
    Json(body): Json<TokenRequest>,
) -> Result<Json<TokenDto>, ApiError> {
    auth.require_admin()?;
    let user = state
        .storage
        .get_user_by_login(&body.login.trim().to_lowercase())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no user `{}`", body.login)))?;
    let (token, id) = issue_api_token(&state.storage, user.id, &body.name).await?;
    tracing::info!(user = %user.login, token_id = id.0, "API token issued.");
    Ok(Json(TokenDto { id: id.0, token }))
}

async fn revoke_token(
    State(state): State<AppState>,
    axum::extract::Extension(auth): axum::extract::Extension<AuthUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    state
        .storage
        .revoke_api_token(storage::ApiTokenId(id), Utc::now())
        .await?;
    tracing::info!(token_id = id, "API token revoked.");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_repeated_failures_and_success_clears_the_login() {
        let auth = Auth::new(AuthSettings {
            max_failures_per_login: 3,
            max_failures_per_ip: 5,
            ..AuthSettings::default()
        });
        for _ in 0..3 {
            assert!(auth.blocked("anna", "10.0.0.1").is_none());
            auth.record_failure("anna", "10.0.0.1");
        }
        assert!(
            auth.blocked("anna", "10.0.0.2").is_some(),
            "per login, whatever the address"
        );
        assert!(auth.blocked("boris", "10.0.0.9").is_none());
        auth.record_success("anna");
        assert!(auth.blocked("anna", "10.0.0.2").is_none());
        for login in ["a", "b"] {
            auth.record_failure(login, "10.0.0.1");
        }
        assert!(
            auth.blocked("carol", "10.0.0.1").is_some(),
            "per address, whatever the login"
        );
    }

    #[test]
    fn cookies_are_http_only_and_secure_when_cross_site() {
        let strict = Auth::new(AuthSettings::default()).cookie("ab", Duration::from_secs(60));
        assert_eq!(
            strict,
            "kommutator_session=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let none = Auth::new(AuthSettings {
            same_site: SameSite::None,
            ..AuthSettings::default()
        })
        .cookie("ab", Duration::from_secs(60));
        assert!(none.ends_with("SameSite=None; Max-Age=60; Secure"));
    }

    #[test]
    fn session_cookie_is_found_among_others_and_must_look_like_ours() {
        let mut headers = HeaderMap::new();
        let id = "a".repeat(64);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {SESSION_COOKIE}={id}")).unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some(id.as_str()));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("kommutator_session=../../etc"),
        );
        assert_eq!(session_cookie(&headers), None);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2_hash() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
