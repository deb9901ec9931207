//! When and how long to wait before asking a server again.
//!
//! Transient answers (429, 500, 502, 503, 504) and broken connections are retried with
//! exponential backoff and jitter; a `Retry-After` header, in seconds or as an HTTP date, takes
//! precedence, capped so that a hostile server cannot park the command for hours.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Whether an answer with `status` is worth asking for again.
    pub fn is_transient(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
    }

    /// How long to wait before attempt number `attempt + 1` (0-based), given the headers of
    /// the answer that failed, if any.
    pub fn delay(&self, attempt: u32, headers: Option<&HeaderMap>) -> Duration {
        if let Some(wait) = headers.and_then(retry_after) {
            return wait.min(self.max_delay);
        }
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay);
        // Up to 25% jitter, so that many clients throttled together do not return together.
        let jitter = exponential.mul_f64(fastrand::f64() * 0.25);
        (exponential + jitter).min(self.max_delay)
    }
}

/// The wait a `Retry-After` header asks for.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether a transport error is a broken connection worth retrying, rather than a refusal or
/// a protocol mismatch that will happen again.
pub fn is_transient_error(error: &reqwest::Error) -> bool {
    if error.is_timeout() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut, UnexpectedEof,
            };
            return matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
            );
        }
        source = e.source();
    }
    // A connection closed before the response was complete surfaces as a body or request
    // error without an I/O cause.
    error.is_body() || (error.is_request() && !error.is_connect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_is_honoured() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, Some(&headers("3"))), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, Some(&headers("86400"))), policy.max_delay);
    }

    #[test]
    fn retry_after_http_date_is_understood() {
        let when = SystemTime::now() + Duration::from_secs(5);
        let wait = retry_after(&headers(&httpdate::fmt_http_date(when))).unwrap();
        assert!(
            wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3),
            "{wait:?}"
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = RetryPolicy::default();
        let first = policy.delay(0, None);
        let third = policy.delay(2, None);
        assert!(first >= policy.base_delay && first < policy.base_delay * 2);
        assert!(third >= policy.base_delay * 4);
        assert!(policy.delay(30, None) <= policy.max_delay);
    }

    #[test]
    fn transient_statuses() {
        for code in [429, 500, 502, 503, 504] {
            assert!(RetryPolicy::is_transient(
                StatusCode::from_u16(code).unwrap()
            ));
        }
        for code in [200, 400, 401, 403, 404] {
            assert!(!RetryPolicy::is_transient(
                StatusCode::from_u16(code).unwrap()
            ));
        }
    }
}
