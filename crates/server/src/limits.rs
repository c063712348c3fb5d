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
        limiter.check_key(&bucket_key(ip)).map_err(|not_until| {
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

/// The key a client is limited under: its IPv4 address, or its IPv6 /64 (one subscriber's
/// network: an attacker holding a /64 must not get 2^64 allowances).
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_key(a), bucket_key(b));
        assert_ne!(bucket_key(a), bucket_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(bucket_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn over_the_limit_is_429_with_retry_after() {
        let limits = IpLimits::new(&RateLimits {
            signin: NonZeroU32::new(2),
            signup: None,
            refresh: None,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check(Limit::Signin, ip).is_ok());
        assert!(limits.check(Limit::Signin, ip).is_ok());
        assert!(matches!(
            limits.check(Limit::Signin, ip),
            Err(Error::RateLimited { retry_after_secs }) if retry_after_secs >= 1
        ));
        assert!(limits.check(Limit::Signup, ip).is_ok());
    }
}
