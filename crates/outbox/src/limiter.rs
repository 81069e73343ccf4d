//! A token bucket: at most `burst` requests at once, refilled at `rate_per_sec`.
//!
//! Shared by everything that talks to one remote service (a clone shares the bucket), so the
//! connector's own limit holds however many worker slots run. It is not a fairness scheduler:
//! waiters are served in the order the mutex lets them in.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A bucket that starts full. `rate_per_sec <= 0` means unlimited.
    pub fn new(rate_per_sec: f64, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            inner: Arc::new(Mutex::new(Bucket {
                rate_per_sec,
                burst,
                tokens: burst,
                updated: Instant::now(),
            })),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        let mut bucket = self.inner.lock().await;
        if bucket.rate_per_sec <= 0.0 {
            return;
        }
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.rate_per_sec).min(bucket.burst);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - bucket.tokens) / bucket.rate_per_sec;
            // Holding the lock while sleeping is deliberate: the next waiter needs the same
            // token and would only spin.
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// Empties the bucket, e.g. after the remote side said we went too fast.
    pub async fn drain(&self) {
        let mut bucket = self.inner.lock().await;
        bucket.tokens = 0.0;
        bucket.updated = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_steady_rate() {
        let limiter = RateLimiter::new(20.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the burst is immediate"
        );
        for _ in 0..4 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(195) && elapsed <= Duration::from_millis(400),
            "four more tokens at 20/s take 200 ms, took {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn zero_rate_is_unlimited() {
        let limiter = RateLimiter::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
