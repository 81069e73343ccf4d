//! HTTP plumbing shared by the remote connectors: one way to build a client, to classify
//! transport failures and status codes, and to read `Retry-After`.
//!
//! Connectors still parse their own bodies (every CRM words its errors differently); this only
//! makes sure that a timeout, a refused connection or a 503 means the same thing everywhere.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::connector::{ConnectorError, ErrorKind};

/// Longest body text kept in an error message.
const MAX_BODY_IN_ERROR: usize = 300;

/// A client with connect and request timeouts and no proxy surprises.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("kommutator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// Classifies a failure to get any answer.
pub fn send_error(err: reqwest::Error) -> ConnectorError {
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    // reqwest's Display names the URL; strip it (a webhook URL can carry a secret code).
    let without_url = err.without_url();
    ConnectorError::transient(kind, format!("request failed: {without_url}"))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    wait.to_std().ok()
}

/// Classifies a non-success status: 429 and 5xx are connector-wide and transient, 401/403 are
/// credentials (transient: an administrator fixes them and the jobs go out), other 4xx reject
/// the job.
pub fn status_error(status: StatusCode, headers: &HeaderMap, body: &str) -> ConnectorError {
    let message = format!("HTTP {}: {}", status.as_u16(), shorten(body));
    let retry_after = retry_after(headers);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ConnectorError::Transient {
            kind: ErrorKind::RateLimited,
            message,
            retry_after,
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return ConnectorError::Transient {
            kind: ErrorKind::Unavailable,
            message,
            retry_after,
        };
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return ConnectorError::transient(ErrorKind::Auth, message);
    }
    ConnectorError::rejected(message)
}

/// The first characters of a body, on one line.
pub fn shorten(body: &str) -> String {
    let one_line: String = body
        .chars()
        .take(MAX_BODY_IN_ERROR)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let cases = [
            (429, "rate_limited"),
            (503, "unavailable"),
            (500, "unavailable"),
            (401, "auth"),
            (403, "auth"),
            (400, "rejected"),
            (404, "rejected"),
        ];
        for (code, kind) in cases {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert_eq!(
                status_error(status, &headers, "x").kind().as_str(),
                kind,
                "{code}"
            );
        }
        match status_error(StatusCode::TOO_MANY_REQUESTS, &headers, "") {
            ConnectorError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers),
            None,
            "a date in the past means no wait"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
