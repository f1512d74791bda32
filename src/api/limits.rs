//! Rate limits: per client IP (every request but the health probes) and per user (every
//! authenticated request), `governor` keyed limiters; beyond them a 429 problem document with
//! `Retry-After`. Idle keys are evicted every minute, so memory follows the clients active now,
//! not all clients ever seen. The client IP is the socket's peer, unless the peer is a configured
//! trusted proxy: then the right-most `X-Forwarded-For` address that is not a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::ApiState;
use super::error::ApiError;

pub use crate::config::LimitSettings;

/// The limiters.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<Uuid>,
    trusted_proxies: Vec<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("ips", &self.per_ip.len())
            .field("users", &self.per_user.len())
            .finish()
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limiters for `settings`.
    pub fn new(settings: &LimitSettings) -> Arc<Self> {
        Arc::new(Self {
            per_ip: RateLimiter::dashmap(quota(settings.per_ip_per_minute)),
            per_user: RateLimiter::dashmap(quota(settings.per_user_per_minute)),
            trusted_proxies: settings.trusted_proxies.clone(),
            clock: DefaultClock::default(),
        })
    }

    fn retry_after(&self, not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
        not_until
            .wait_time_from(self.clock.now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64
    }

    /// Counts a request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip.check_key(&ip).map_err(|not_until| {
            metrics::counter!("locker_http_rate_limited_total", "scope" => "ip").increment(1);
            ApiError::TooManyRequests {
                retry_after_secs: self.retry_after(&not_until),
            }
        })
    }

    /// Counts a request by `user`.
    pub fn check_user(&self, user: Uuid) -> Result<(), ApiError> {
        self.per_user.check_key(&user).map_err(|not_until| {
            metrics::counter!("locker_http_rate_limited_total", "scope" => "user").increment(1);
            ApiError::TooManyRequests {
                retry_after_secs: self.retry_after(&not_until),
            }
        })
    }

    /// Forgets keys whose budget is full again (idle clients).
    pub fn evict_idle(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
    }

    /// How many clients and users are tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.per_ip.len(), self.per_user.len())
    }

    /// Whether the request came over TLS, as a trusted proxy says (`X-Forwarded-Proto: https`);
    /// the gateway itself serves plain HTTP.
    pub fn over_tls(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.trusted_proxies.contains(&peer)
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    /// The client's address: the peer, or what a trusted proxy says.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }

    /// Evicts idle keys every minute until `stop`.
    pub async fn evict_until(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => self.evict_idle(),
            }
        }
    }
}

/// The per-IP middleware (health probes are not limited).
pub async fn per_ip(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // A broker asking about every locker's login and topics, with its secret.
    let broker = path.starts_with("/v1/broker/")
        && state
            .broker_hooks
            .as_ref()
            .is_some_and(|hooks| hooks.called_by_broker(request.headers()));
    if path != "/livez" && path != "/readyz" && !broker {
        let ip = state.limits.client_ip(peer.ip(), request.headers());
        if let Err(e) = state.limits.check_ip(ip) {
            return e.into_response();
        }
        if let Some(fleet) = &state.fleet_limits
            && let Err(e) = fleet.check_ip(ip).await
        {
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let limits = RateLimits::new(&LimitSettings {
            trusted_proxies: vec![proxy],
            ..LimitSettings::default()
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 5.6.7.8, 10.0.0.1".parse().expect("v"),
        );
        let stranger: IpAddr = "9.9.9.9".parse().expect("ip");
        assert_eq!(limits.client_ip(stranger, &headers), stranger);
        assert_eq!(
            limits.client_ip(proxy, &headers),
            "5.6.7.8".parse::<IpAddr>().expect("ip"),
            "the right-most untrusted address; the rest could be forged by the client"
        );
        assert_eq!(limits.client_ip(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn idle_keys_are_evicted() {
        let limits = RateLimits::new(&LimitSettings {
            per_ip_per_minute: 60_000,
            ..LimitSettings::default()
        });
        for n in 0..1000u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            assert!(limits.check_ip(ip).is_ok());
        }
        assert_eq!(limits.tracked().0, 1000);
        // At 60,000 a minute one request is replenished in 1 ms.
        std::thread::sleep(Duration::from_millis(20));
        limits.evict_idle();
        assert_eq!(limits.tracked().0, 0);
    }

    #[test]
    fn beyond_the_quota_the_answer_says_when_to_retry() {
        let limits = RateLimits::new(&LimitSettings {
            per_user_per_minute: 2,
            ..LimitSettings::default()
        });
        let user = Uuid::now_v7();
        assert!(limits.check_user(user).is_ok());
        assert!(limits.check_user(user).is_ok());
        let Err(ApiError::TooManyRequests { retry_after_secs }) = limits.check_user(user) else {
            panic!("the third request is limited");
        };
        assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
        assert!(limits.check_user(Uuid::now_v7()).is_ok(), "per user");
    }
}
