//! Retries with exponential backoff and full jitter for the failures a
//! retry can cure (throttling, timeouts, an unreachable daemon), as the
//! AWS SDKs do. Any other answer is returned at once.

use std::future::Future;
use std::time::Duration;

use tonic::{Response, Status};

use super::error::ApiError;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; it doubles with each retry.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Up to 5 attempts, backing off from 50 ms up to 2 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The ceiling of the wait before retry number `retry` (0-based):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait before retry number `retry`: uniformly random in
    /// `[0, ceiling]` ("full jitter"), so clients throttled together do not
    /// come back together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let r = crate::crypto::rng::array::<8>().map_or(u64::MAX / 2, u64::from_le_bytes);
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    /// Runs `call` until it succeeds, fails with an error a retry cannot
    /// cure, or the attempts run out; returns the last answer.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut retry = 0;
        loop {
            match call().await {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => {
                    let e = ApiError::from(status);
                    if !e.code.is_retryable() || retry + 1 >= self.max_attempts {
                        return Err(e);
                    }
                    tracing::debug!(error = %e.code, retry, "retrying");
                    tokio::time::sleep(self.backoff(retry)).await;
                    retry += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KmsError;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(50));
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(2));
        for retry in 0..8 {
            assert!(p.backoff(retry) <= p.ceiling(retry));
        }
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let r = fast(5)
            .run(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(KmsError::ThrottlingException("slow down".into()).into())
                    } else {
                        Ok(Response::new(n))
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_run_out_and_other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = fast(3)
            .run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::unavailable("down")) }
            })
            .await;
        assert_eq!(
            r.unwrap_err().code,
            super::super::ErrorCode::Transport(tonic::Code::Unavailable)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = fast(3)
            .run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(KmsError::AccessDeniedException("no".into()).into()) }
            })
            .await;
        assert_eq!(r.unwrap_err().code, super::super::ErrorCode::AccessDenied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
