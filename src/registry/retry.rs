//! Retry policy for registry requests: how many attempts, how long to wait
//! between them (exponential backoff with jitter, capped, within a total time
//! budget), the per-request timeout, and which HTTP statuses are worth a
//! retry (5xx, 429 honouring `Retry-After`; never other 4xx). The schedule is
//! pure and unit-tested; [`run`] drives an async operation with it. Jitter
//! comes from std's randomly keyed hasher over time and a counter, so no
//! `rand` crate is needed.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How a registry request is retried and timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts in total, including the first one (at least 1 is used).
    pub attempts: u32,
    /// Backoff before the first retry; doubled for each following retry.
    pub base_delay: Duration,
    /// Longest single wait between attempts.
    pub max_delay: Duration,
    /// Time budget for all attempts and waits of one request; no retry
    /// starts that would wait beyond it.
    pub total: Duration,
    /// Timeout of a single HTTP request (connect, send and read the body).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            total: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that tries once and never retries.
    #[cfg(test)]
    pub(crate) fn no_retry() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), given a
    /// jitter value in `[0, 1)`: "equal jitter", i.e. between half and all of
    /// `base_delay * 2^(retry-1)`, never above `max_delay`.
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = full / 2;
        half + (full - half).mul_f64(jitter)
    }

    /// The wait before retry number `retry`: the server's `Retry-After` when
    /// it asks for longer than the backoff, else the jittered backoff.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(retry, jitter());
        match retry_after {
            Some(after) if after > backoff => after,
            _ => backoff,
        }
    }
}

/// Whether an HTTP status is worth another attempt: 5xx and 429.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Parses a `Retry-After` header given in seconds. HTTP dates and anything
/// else give `None` (the backoff schedule is used instead).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// A number in `[0, 1)` that differs between calls and processes.
pub(crate) fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(nanos);
    // 53 random bits give a uniform f64 in [0, 1).
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What one attempt of an operation produced.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// Final: return this, do not retry.
    Done(T),
    /// Transient: retry after the backoff (or `after`, if longer) while
    /// attempts and time remain; when they run out, return `last`.
    Retry {
        /// What to return if this was the last attempt.
        last: T,
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
    },
}

/// Runs `op` (called with the 1-based attempt number) until it is done, or
/// the policy's attempts or time budget run out; returns the last result and
/// the number of attempts made.
pub(crate) async fn run<T, F, Fut>(policy: &RetryPolicy, op: F) -> (T, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    run_observed(policy, op, |_, _, _| {}).await
}

/// [`run`], calling `on_retry(attempt, wait, &last)` before each wait.
pub(crate) async fn run_observed<T, F, Fut>(
    policy: &RetryPolicy,
    mut op: F,
    mut on_retry: impl FnMut(u32, Duration, &T),
) -> (T, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let start = Instant::now();
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Attempt::Done(v) => return (v, attempt),
            Attempt::Retry { last, after } => {
                if attempt >= attempts {
                    return (last, attempt);
                }
                let wait = policy.delay(attempt, after);
                if start.elapsed() + wait > policy.total {
                    return (last, attempt);
                }
                on_retry(attempt, wait, &last);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn backoff_doubles_and_stays_within_half_to_full() {
        let p = policy();
        for retry in 1..=4 {
            let full = Duration::from_millis(200 * (1 << (retry - 1)));
            assert_eq!(p.backoff(retry, 0.0), full / 2, "retry {retry}");
            let top = p.backoff(retry, 0.999_999);
            assert!(top <= full && top > full * 9 / 10, "retry {retry}: {top:?}");
        }
    }

    #[test]
    fn backoff_is_capped_by_max_delay_even_for_huge_retry_numbers() {
        let p = policy();
        for retry in [6, 10, 31, 32, 1000, u32::MAX] {
            let d = p.backoff(retry, 0.99);
            assert!(d <= p.max_delay, "retry {retry}: {d:?}");
            assert!(d >= p.max_delay / 2, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn backoff_tolerates_odd_jitter_values() {
        let p = policy();
        for j in [f64::NAN, f64::INFINITY, -1.0, 7.0] {
            assert!(p.backoff(1, j) <= Duration::from_millis(200));
        }
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(100));
    }

    #[test]
    fn delay_honours_a_longer_retry_after() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(p.delay(1, Some(Duration::ZERO)) <= Duration::from_millis(200));
    }

    #[test]
    fn jitter_is_in_unit_interval_and_varies() {
        let values: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let first = values[0];
        assert!(values.iter().any(|v| *v != first));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(
            parse_retry_after("99999999999999"),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn only_5xx_and_429_are_retryable() {
        for s in [500, 502, 503, 504, 429] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 405, 409, 416] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn run_stops_after_the_configured_attempts() {
        let (v, n) = run(&fast(3), |a| async move {
            Attempt::Retry {
                last: a,
                after: None,
            }
        })
        .await;
        assert_eq!((v, n), (3, 3));
    }

    #[tokio::test]
    async fn run_returns_as_soon_as_done() {
        let (v, n) = run(&fast(5), |a| async move {
            if a == 2 {
                Attempt::Done("ok")
            } else {
                Attempt::Retry {
                    last: "busy",
                    after: None,
                }
            }
        })
        .await;
        assert_eq!((v, n), ("ok", 2));
    }

    #[tokio::test]
    async fn run_gives_up_when_retry_after_exceeds_the_budget() {
        let p = RetryPolicy {
            total: Duration::from_millis(50),
            ..fast(5)
        };
        let t = Instant::now();
        let (_, n) = run(&p, |_| async {
            Attempt::Retry {
                last: (),
                after: Some(Duration::from_secs(30)),
            }
        })
        .await;
        assert_eq!(n, 1);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn zero_attempts_still_tries_once() {
        let (_, n) = run(&fast(0), |_| async { Attempt::Done(()) }).await;
        assert_eq!(n, 1);
    }
}
