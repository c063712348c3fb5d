//! Per-client-IP rate limits on the endpoints worth abusing, and a limit on the log lines
//! that floods of refused requests would write.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{config::RateLimits, error::Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Signin,
    Signup,
    Refresh,
    /// Requests that mail someone (forgotten password, verification, address change).
    Mail,
    /// Attempts with a mailed code or link.
    Code,
}

#[derive(Clone)]
pub struct IpLimits {
    signin: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    signup: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    refresh: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    mail: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    code: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Refusals are logged, but not one line each.
    refusals: Arc<LogThrottle>,
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
            mail: limiter(limits.mail),
            code: limiter(limits.code),
            refusals: Arc::new(LogThrottle::new(LogThrottle::INTERVAL)),
        }
    }

    /// Counts a request from `ip`; refuses it with 429 and `Retry-After` when over the limit.
    pub fn check(&self, limit: Limit, ip: IpAddr) -> Result<(), Error> {
        let limiter = match limit {
            Limit::Signin => &self.signin,
            Limit::Signup => &self.signup,
            Limit::Refresh => &self.refresh,
            Limit::Mail => &self.mail,
            Limit::Code => &self.code,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&bucket_key(ip)).map_err(|not_until| {
            if let Some(held_back) = self.refusals.admit(Instant::now()) {
                tracing::warn!(
                    ?limit,
                    %ip,
                    held_back,
                    "per-IP rate limit: refusing requests with 429 (logged at most every 10 s)"
                );
            }
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Error::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// Forgets clients that have been quiet long enough to be back at a full allowance.
    pub fn purge(&self) {
        for limiter in [
            &self.signin,
            &self.signup,
            &self.refresh,
            &self.mail,
            &self.code,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Lets one log line through per interval for an event that can come in floods (a refused
/// request), and counts the events held back in between, so a flood costs one line per interval.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last_logged: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    /// The interval used for refused requests.
    pub const INTERVAL: Duration = Duration::from_secs(10);

    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    /// Counts an event happening at `now`. `Some(held_back)` when it is to be logged, with the
    /// number of events held back since the last line; `None` when it is to be held back.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last_logged {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last_logged = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
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
            mail: None,
            code: None,
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

    #[test]
    fn a_flood_is_logged_once_per_interval_with_a_count() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(throttle.admit(at(0)), Some(0));
        for secs in [0, 1, 5, 9] {
            assert_eq!(throttle.admit(at(secs)), None);
        }
        assert_eq!(throttle.admit(at(10)), Some(4));
        assert_eq!(throttle.admit(at(15)), None);
        // After a quiet spell the next event is logged at once.
        assert_eq!(throttle.admit(at(60)), Some(1));
        assert_eq!(throttle.admit(at(61)), None);
    }
}
