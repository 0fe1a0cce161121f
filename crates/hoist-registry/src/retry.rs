//! When and how an HTTP request is tried again: the one retry policy of hoist's network
//! code, used by the registry client (requests, token fetches, blob transfers) and by the
//! engine's `ADD <url>` downloads.
//!
//! - [`RetryPolicy`]: attempts in all, exponential backoff from `initial_delay`, each delay
//!   capped at `max_delay`.
//! - [`Attempts`]: one operation's count of tries under a policy; [`Attempts::wait`] sleeps
//!   before the next one, for as long as the answer's `Retry-After` asked when it did.
//! - What is worth another try: [`is_retryable_transport`] (connection trouble, timeouts, a
//!   body cut short) and [`is_retryable_status`] (`429`, `500`, `502`, `503`, `504`).
//! - [`send`]: one request sent under those rules, for callers with nothing else to do
//!   between tries (the registry client's authorised `send` uses [`Attempts`] directly).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// How requests are retried on connection errors, 429 and 5xx answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub initial_delay: Duration,
    /// Upper bound for one delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The count of one operation's tries under this policy.
    pub fn attempts(&self) -> Attempts {
        Attempts {
            policy: self.clone(),
            retries: 0,
        }
    }

    /// The same policy without retries: one attempt.
    pub fn once(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..self.clone()
        }
    }
}

/// The tries of one operation so far.
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    /// Retries made (waits taken).
    retries: u32,
}

impl Attempts {
    /// Whether the policy allows another try after the current one.
    pub fn can_retry(&self) -> bool {
        self.retries + 1 < self.policy.attempts.max(1)
    }

    /// Waits before the next try: `asked` (a `Retry-After`, see [`retry_after`]) when the
    /// answer gave one, else the backoff; never longer than the policy's `max_delay`.
    pub async fn wait(&mut self, asked: Option<Duration>) {
        let delay = self.next_delay(asked);
        tokio::time::sleep(delay).await;
    }

    /// The delay [`Attempts::wait`] sleeps, counting the retry.
    fn next_delay(&mut self, asked: Option<Duration>) -> Duration {
        let delay = asked
            .unwrap_or_else(|| self.policy.delay(self.retries))
            .min(self.policy.max_delay);
        self.retries += 1;
        delay
    }
}

/// Whether a transport error is worth a retry (connection trouble, not a bad request).
pub fn is_retryable_transport(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body() || err.is_decode()
}

/// Whether a status is worth a retry.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The delay a `Retry-After` header asks for (delta-seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Sends the request `build` makes, again (built anew) after retryable transport errors and
/// statuses while `attempts` allows. Returns the last answer or error; callers check the
/// status.
pub async fn send(
    mut attempts: Attempts,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    loop {
        let result = build().send().await;
        if !attempts.can_retry() {
            return result;
        }
        match result {
            Err(err) if is_retryable_transport(&err) => attempts.wait(None).await,
            Ok(resp) if is_retryable_status(resp.status()) => {
                let asked = retry_after(resp.headers());
                drop(resp);
                attempts.wait(asked).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn backoff_doubles_and_retry_after_is_honoured_within_the_cap() {
        let policy = RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        };
        assert_eq!(policy.delay(0), Duration::from_millis(100));
        assert_eq!(policy.delay(2), Duration::from_millis(400));
        assert_eq!(policy.delay(40), Duration::from_secs(5));

        let mut attempts = policy.attempts();
        assert!(attempts.can_retry());
        assert_eq!(attempts.next_delay(None), Duration::from_millis(100));
        assert_eq!(
            attempts.next_delay(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            attempts.next_delay(Some(Duration::from_secs(60))),
            Duration::from_secs(5),
            "Retry-After is capped at max_delay"
        );
        assert!(!attempts.can_retry(), "four attempts: three retries");
        assert!(!policy.once().attempts().can_retry());

        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let got = retry_after(&h).unwrap();
        assert!(
            got > Duration::from_secs(90) && got <= Duration::from_secs(100),
            "{got:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable_status(StatusCode::NOT_FOUND));
    }
}
