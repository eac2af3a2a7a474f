//! Per-client rate limits: one for starting sessions (`POST /l/{token}`), one for the owner's
//! API (`/api/...`), one for the landing page's beacon (`POST /l/{token}/seen`). Over its limit, a client gets 429 Too Many Requests with `Retry-After`
//! (whole seconds, at least 1) and the request does nothing.
//!
//! A limit of `n` per minute is a bucket of `n` requests refilled evenly over the minute
//! (governor's GCRA). The client is the peer's IP address, or, when the peer is one of
//! `TRUSTED_PROXIES`, the rightmost address of `X-Forwarded-For` that is not a trusted proxy:
//! every trusted proxy appends the address it got the request from, so that one is the nearest
//! address no client could forge. IPv6 clients are counted by their /64, since one host
//! commonly holds a whole /64. Idle clients are swept every minute, so the table stays as small
//! as the set of clients seen within the last minute.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::errors::{ApiError, Problem};
use crate::html::CspNonce;
use crate::i18n;

/// How often idle clients are dropped from the limiters.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The addresses whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated IP addresses and CIDRs: `127.0.0.1, 10.0.0.0/8, ::1`.
    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("TRUSTED_PROXIES: {entry:?} is not an IP address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client a request counts against: see the module docs. `forwarded` are the
/// `X-Forwarded-For` header values, in order.
pub(crate) fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    proxies: &TrustedProxies,
) -> IpAddr {
    let mut client = peer.to_canonical();
    if !proxies.contains(client) {
        return client;
    }
    // From the right: each hop was written by the trusted proxy after it.
    for value in forwarded.rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            match parse_hop(hop.trim()) {
                Some(ip) if proxies.contains(ip) => client = ip,
                Some(ip) => return ip,
                // A hop no trusted proxy would write: the last one read is the nearest known.
                None => return client,
            }
        }
    }
    client
}

/// One `X-Forwarded-For` hop: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(net))
        }
        v4 => v4,
    }
}

/// Who is told "too many requests", and how.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Audience {
    /// The owner's API: a JSON error.
    Api,
    /// The person verifying: a page in their language.
    Visitor,
}

/// One rate limit, shared by its routes.
pub(crate) struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    proxies: TrustedProxies,
    audience: Audience,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("clients", &self.limiter.len())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `per_minute` requests a minute per client, or `None` for no limit (0).
    pub(crate) fn per_minute(
        per_minute: u32,
        proxies: TrustedProxies,
        audience: Audience,
    ) -> Option<Arc<Self>> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            proxies,
            audience,
        }))
    }

    /// Counts a request of `client`; `Err` with how long to wait when it is over the limit.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&bucket(client))
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Drops the clients whose buckets are full again, every minute, until `shutdown`.
    pub(crate) async fn sweep(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let sweep = async {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
            }
        };
        tokio::select! {
            () = sweep => {}
            () = shutdown => {}
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after(wait: Duration) -> HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

/// Middleware: 429 for a client over `limit`, before the handler runs.
pub(crate) async fn limit(
    State(limit): State<Arc<RateLimit>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    let client = client_ip(
        peer,
        req.headers().get_all("x-forwarded-for").iter(),
        &limit.proxies,
    );
    let wait = match limit.check(client) {
        Ok(()) => return next.run(req).await,
        Err(wait) => wait,
    };
    let mut res = match limit.audience {
        Audience::Api => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; try again after Retry-After seconds",
        )
        .into_response(),
        Audience::Visitor => {
            let nonce = req
                .extensions()
                .get::<CspNonce>()
                .cloned()
                .unwrap_or_default();
            Problem::TooManyRequests.page(&nonce, i18n::for_request(req.headers()))
        }
    };
    res.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(wait));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The client of a request from `peer` with these `X-Forwarded-For` lines.
    fn client_of(peer: &str, forwarded: &[&'static str], proxies: &str) -> IpAddr {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        client_ip(
            ip(peer),
            headers.get_all("x-forwarded-for").iter(),
            &proxies.parse().unwrap(),
        )
    }

    #[test]
    fn forwarded_for_only_from_a_trusted_proxy() {
        // An untrusted peer: its header is ignored.
        assert_eq!(
            client_of("127.0.0.1", &["203.0.113.7"], ""),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_of("198.51.100.1", &["203.0.113.7"], "127.0.0.1"),
            ip("198.51.100.1")
        );
        // A trusted one: the rightmost untrusted hop; what the client wrote to its left is not
        // believed.
        assert_eq!(
            client_of("127.0.0.1", &["203.0.113.7"], "127.0.0.1"),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_of(
                "10.0.0.2",
                &["1.1.1.1, 203.0.113.7, 10.0.0.9"],
                "10.0.0.0/8"
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_of(
                "10.0.0.2",
                &["1.1.1.1, 203.0.113.7", "10.0.0.9"],
                "10.0.0.0/8"
            ),
            ip("203.0.113.7"),
            "several header lines are one list"
        );
        // Ports, IPv6, IPv4-mapped.
        assert_eq!(
            client_of("::1", &["[2001:db8::5]:443"], "::1"),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_of("::ffff:127.0.0.1", &["203.0.113.7:5000"], "127.0.0.1"),
            ip("203.0.113.7")
        );
        // No header, all hops trusted, or an unreadable hop: the nearest address known.
        assert_eq!(client_of("127.0.0.1", &[], "127.0.0.1"), ip("127.0.0.1"));
        assert_eq!(
            client_of("10.0.0.2", &["10.0.0.3, 10.0.0.4"], "10.0.0.0/8"),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_of(
                "10.0.0.2",
                &["203.0.113.7, unknown, 10.0.0.4"],
                "10.0.0.0/8"
            ),
            ip("10.0.0.4")
        );
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_cidrs() {
        let proxies: TrustedProxies = " 127.0.0.1 , 10.1.2.3/8,::1,".parse().unwrap();
        assert!(proxies.contains(ip("127.0.0.1")));
        assert!(proxies.contains(ip("10.200.0.1")));
        assert!(proxies.contains(ip("::1")));
        assert!(!proxies.contains(ip("127.0.0.2")));
        assert!(!proxies.contains(ip("11.0.0.1")));
        assert!("".parse::<TrustedProxies>().unwrap().0.is_empty());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("example.com".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket(ip("2001:db8:1:2:bbbb::9")),
            bucket(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_ne!(bucket(ip("2001:db8:1:3::1")), bucket(ip("2001:db8:1:2::1")));
        assert_eq!(bucket(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(bucket(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
    }

    #[test]
    fn over_the_limit_says_how_long_to_wait() {
        let limit = RateLimit::per_minute(2, TrustedProxies::default(), Audience::Api).unwrap();
        let a = ip("203.0.113.7");
        assert_eq!(limit.check(a), Ok(()));
        assert_eq!(limit.check(a), Ok(()));
        let wait = limit.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(limit.check(ip("203.0.113.8")), Ok(()), "another client");
        assert!(RateLimit::per_minute(0, TrustedProxies::default(), Audience::Api).is_none());

        assert_eq!(retry_after(Duration::from_millis(1)), "1");
        assert_eq!(retry_after(Duration::ZERO), "1");
        assert_eq!(retry_after(Duration::from_millis(29_001)), "30");
        assert_eq!(retry_after(Duration::from_secs(30)), "30");
    }
}
