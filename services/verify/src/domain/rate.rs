//! Per-partner token buckets. Time is passed in (milliseconds on a monotonic clock), so
//! the rule is tested without sleeping.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// One token bucket per client id: `burst` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// A limiter allowing `rate` credentials per second sustained, `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            buckets: HashMap::new(),
        }
    }

    /// Takes `cost` tokens from `client`'s bucket at `now_ms`; on refusal returns how
    /// many whole seconds to wait before the same request can pass (at least 1).
    pub fn try_take(&mut self, client: &str, cost: u32, now_ms: u64) -> Result<(), u64> {
        let cost = f64::from(cost.max(1));
        let (rate, burst) = (self.rate, self.burst);
        let bucket = match self.buckets.get_mut(client) {
            Some(b) => b,
            None => self.buckets.entry(client.to_owned()).or_insert(Bucket {
                tokens: burst,
                last_ms: now_ms,
            }),
        };
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last_ms = now_ms;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            let missing = cost.min(burst) - bucket.tokens;
            Err(((missing / rate).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partner_is_refused_after_its_burst_and_told_when_to_retry() {
        let mut limiter = RateLimiter::new(1.0, 3);
        for _ in 0..3 {
            assert!(limiter.try_take("bank", 1, 0).is_ok());
        }
        assert_eq!(limiter.try_take("bank", 1, 0), Err(1));
        assert!(limiter.try_take("bank", 1, 1000).is_ok());
    }

    #[test]
    fn partners_have_separate_buckets() {
        let mut limiter = RateLimiter::new(1.0, 1);
        assert!(limiter.try_take("a", 1, 0).is_ok());
        assert!(limiter.try_take("a", 1, 0).is_err());
        assert!(limiter.try_take("b", 1, 0).is_ok());
    }

    #[test]
    fn a_batch_costs_one_token_per_credential() {
        let mut limiter = RateLimiter::new(2.0, 10);
        assert!(limiter.try_take("a", 10, 0).is_ok());
        assert_eq!(limiter.try_take("a", 4, 0), Err(2));
    }
}
