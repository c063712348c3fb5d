//! Per-client-IP rate limits on the endpoints worth abusing.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{config::RateLimits, error::Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Signin,
    Signup,
    Refresh,
}

#[derive(Clone)]
pub struct IpLimits {
    signin: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    signup: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    refresh: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

fn limiter(per_minute: Option<NonZeroU32>) -> Option<Arc<DefaultKeyedRateLimiter<IpAddr>>> {
    per_minute.map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
}

impl IpLimits {
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            signin: limiter(limits.signin),
            signup: limiter(limits.signup),
            refresh: limiter(limits.refresh),
        }
    }

    /// Counts a request from `ip`; refuses it with 429 and `Retry-After` when over the limit.
    pub fn check(&self, limit: Limit, ip: IpAddr) -> Result<(), Error> {
        let limiter = match limit {
            Limit::Signin => &self.signin,
            Limit::Signup => &self.signup,
            Limit::Refresh => &self.refresh,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Error::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// Forgets clients that have been quiet long enough to be back at a full allowance.
    pub fn purge(&self) {
        for limiter in [&self.signin, &self.signup, &self.refresh]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
