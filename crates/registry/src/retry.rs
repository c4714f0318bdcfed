//! Retries with exponential backoff, and what is worth retrying.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// The first backoff delay; it doubles with every retry.
const BASE_DELAY: Duration = Duration::from_millis(200);
/// The longest backoff delay.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest Retry-After we wait for; a longer one fails at once (Docker
/// Hub's pull limit answers in hours).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The outcome of one failed attempt.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt: a connection error, a dropped body, 429, 5xx.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Not worth another attempt.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl Failure {
    pub(crate) fn retry(reason: impl Into<String>) -> Failure {
        Failure::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// The retry budget of one operation (one manifest, one blob).
pub(crate) struct Retry<'a> {
    host: &'a str,
    what: &'a str,
    max_retries: u32,
    retries: u32,
}

impl<'a> Retry<'a> {
    pub(crate) fn new(host: &'a str, what: &'a str, max_retries: u32) -> Self {
        Retry {
            host,
            what,
            max_retries,
            retries: 0,
        }
    }

    /// Handles a failed attempt: sleeps before the next one, or returns the
    /// error that ends the operation.
    pub(crate) fn handle(&mut self, failure: Failure) -> Result<(), Error> {
        match failure {
            Failure::Fatal(e) => Err(e),
            Failure::Retry { reason, after } => self.wait(reason, after),
        }
    }

    fn wait(&mut self, reason: String, after: Option<Duration>) -> Result<(), Error> {
        if let Some(after) = after {
            if after > MAX_RETRY_AFTER {
                return Err(Error::RateLimited {
                    host: self.host.to_string(),
                    what: self.what.to_string(),
                    seconds: after.as_secs(),
                });
            }
        }
        if self.retries >= self.max_retries {
            return Err(Error::RetriesExhausted {
                host: self.host.to_string(),
                what: self.what.to_string(),
                attempts: self.retries + 1,
                last: reason,
            });
        }
        self.retries += 1;
        std::thread::sleep(after.unwrap_or_else(|| backoff(self.retries)));
        Ok(())
    }

    /// Forgets earlier failures: used when a download got further than ever
    /// before, so a long download over a flaky link is not cut short.
    pub(crate) fn reset(&mut self) {
        self.retries = 0;
    }
}

/// The delay before retry number `n` (from 1): 200 ms, 400 ms, 800 ms, …
/// up to 10 s, plus up to 25% of jitter so that parallel downloads do not
/// hammer a struggling registry in step.
pub(crate) fn backoff(n: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << n.saturating_sub(1).min(16));
    let delay = exp.min(MAX_DELAY);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    delay + delay / 4 * (nanos % 1000) / 1000
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// Parses a Retry-After header given in seconds. (The HTTP-date form is
/// ignored: exponential backoff applies instead.)
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let in_range = |n, lo: u64| {
            let d = backoff(n);
            assert!(
                d >= Duration::from_millis(lo) && d <= Duration::from_millis(lo * 5 / 4),
                "{n}: {d:?}"
            );
        };
        in_range(1, 200);
        in_range(2, 400);
        in_range(3, 800);
        in_range(7, 10_000);
        in_range(100, 10_000);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 416, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn budget_runs_out() {
        let mut r = Retry::new("h", "blob sha256:ab in h/r", 1);
        let fail = || Failure::Retry {
            reason: "503".into(),
            after: Some(Duration::ZERO),
        };
        assert!(r.handle(fail()).is_ok());
        let e = r.handle(fail()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "giving up on blob sha256:ab in h/r after 2 attempts: 503"
        );
        r.reset();
        assert!(r.handle(fail()).is_ok());
    }

    #[test]
    fn long_retry_after_fails_at_once() {
        let mut r = Retry::new("h", "manifest h/r:t", 5);
        let e = r
            .handle(Failure::Retry {
                reason: "429".into(),
                after: Some(Duration::from_secs(3600)),
            })
            .unwrap_err();
        assert!(matches!(e, Error::RateLimited { seconds: 3600, .. }), "{e}");
    }
}
