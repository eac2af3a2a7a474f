//! What the server refuses before any handler runs: a request for a host it does not serve
//! (421 Misdirected Request), and an owner request from another site that would change
//! something (403).
//!
//! - **Hosts.** Every request names the host it is for (`Host`, or the authority of an
//!   absolute request target). A page that a hostile site's DNS name points at this server
//!   (DNS rebinding) names the hostile host, so it is refused, on every route. The hosts
//!   served are `ALLOWED_HOSTS`, by default the base URL's host and port only.
//! - **Cross-site owner requests.** The owner's routes (`/api/...`, `/dashboard...`) act for
//!   the account without a login in this demo, and with a cookie in a real service: a form or
//!   script on another site must not use them. A request that is not `GET`, `HEAD` or
//!   `OPTIONS` is refused when its `Sec-Fetch-Site` is anything but `same-origin` (or `none`,
//!   a request the person made themselves), or when its `Origin` is not one of this server's
//!   own origins. Browsers send at least one of the two on every such request; a client that
//!   sends neither (curl, a backend) is not a browser that another site can drive, and is
//!   served.
//!
//! The public pages (`/l/...`, `/s/...`) are not owner routes: their tokens are the capability,
//! and a "Verify now" button on the owner's own site links to them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::{Host, Origin, Url};

use crate::errors::ApiError;

/// A host and port as a request names them, normalised (lower case, the port always given).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: Host<String>,
    port: u16,
}

/// The hosts and origins this server answers for.
#[derive(Debug)]
pub(crate) struct Sites {
    /// The base URL's scheme: an authority without a port is on its default port.
    scheme: String,
    hosts: Vec<Authority>,
    /// The base URL's origin, and the allowed hosts' with its scheme, serialised.
    origins: Vec<String>,
}

impl Sites {
    /// The sites of a server reached at `base_url` under the names in `allowed_hosts`
    /// (comma-separated `host` or `host:port`; a host without a port is on the base URL's
    /// port). Without `allowed_hosts`, only the base URL's host and port.
    pub(crate) fn new(base_url: &str, allowed_hosts: Option<&str>) -> Result<Self, String> {
        let base = Url::parse(base_url).map_err(|e| format!("BASE_URL {base_url:?}: {e}"))?;
        let (Some(host), Some(port)) = (base.host(), base.port_or_known_default()) else {
            return Err(format!("BASE_URL {base_url:?} has no host and port"));
        };
        let scheme = base.scheme().to_owned();
        let own = Authority {
            host: host.to_owned(),
            port,
        };
        let hosts = match allowed_hosts {
            None => vec![own],
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    let authority = parse_authority(&scheme, entry)
                        .ok_or_else(|| format!("ALLOWED_HOSTS: {entry:?} is not a host[:port]"))?;
                    // No port: the base URL's (`localhost` means localhost on this server's port).
                    Ok(if has_port(entry) {
                        authority
                    } else {
                        Authority { port, ..authority }
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        };
        if hosts.is_empty() {
            return Err("ALLOWED_HOSTS names no host".to_owned());
        }
        let mut origins = vec![base.origin().ascii_serialization()];
        for authority in &hosts {
            let origin = Origin::Tuple(scheme.clone(), authority.host.clone(), authority.port)
                .ascii_serialization();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self {
            scheme,
            hosts,
            origins,
        })
    }

    /// Whether a request's `Host` (or absolute target's authority) is one this server serves.
    fn serves(&self, authority: &str) -> bool {
        parse_authority(&self.scheme, authority).is_some_and(|a| self.hosts.contains(&a))
    }

    /// Whether an `Origin` header names one of this server's origins, serialised as browsers
    /// send them (`http://127.0.0.1:3000`: lower case, no default port, no path). `null` never
    /// does.
    fn is_own_origin(&self, origin: &HeaderValue) -> bool {
        self.origins
            .iter()
            .any(|own| own.as_bytes() == origin.as_bytes())
    }

    /// Whether a state-changing request may reach an owner route: see the module docs.
    fn allows_owner_change(&self, headers: &axum::http::HeaderMap) -> bool {
        let fetch_site_ok = headers
            .get_all("sec-fetch-site")
            .iter()
            .all(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
        let origin_ok = headers
            .get_all(header::ORIGIN)
            .iter()
            .all(|origin| self.is_own_origin(origin));
        fetch_site_ok && origin_ok
    }
}

/// Whether an authority has a port (`[::1]` has none, `[::1]:3000` and `host:80` have one).
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        Some((host, _)) => !host.starts_with('[') || host.ends_with(']'),
        None => false,
    }
}

/// Parses `host[:port]` as the base URL's scheme would, normalised; `None` for anything else
/// (user info, a path, percent-escapes, spaces, an empty host).
fn parse_authority(scheme: &str, authority: &str) -> Option<Authority> {
    let forbidden = |c: char| "@/\\?#% ".contains(c) || c.is_control();
    if authority.is_empty() || authority.contains(forbidden) {
        return None;
    }
    let url = Url::parse(&format!("{scheme}://{authority}/")).ok()?;
    Some(Authority {
        host: url.host()?.to_owned(),
        port: url.port_or_known_default()?,
    })
}

/// The host a request is for: the authority of an absolute request target, else its one
/// `Host` header. Two `Host` headers name none.
fn requested_host(req: &Request) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str());
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        _ => None,
    }
}

/// Middleware on every route: 421 Misdirected Request for a host this server does not serve.
pub(crate) async fn known_host(
    State(sites): State<Arc<Sites>>,
    req: Request,
    next: Next,
) -> Response {
    if requested_host(&req).is_some_and(|host| sites.serves(host)) {
        return next.run(req).await;
    }
    let status = StatusCode::MISDIRECTED_REQUEST;
    if req.uri().path().starts_with("/api/") {
        ApiError::new(
            status,
            "unknown_host",
            "this server does not serve that host",
        )
        .into_response()
    } else {
        (status, "This server does not serve that host name.\n").into_response()
    }
}

/// Middleware on the owner's routes: 403 for a state-changing request from another site.
pub(crate) async fn same_origin_owner(
    State(sites): State<Arc<Sites>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method().is_safe() || sites.allows_owner_change(req.headers()) {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_site",
        "owner requests from another site are refused",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(base: &str, allowed: Option<&str>) -> Sites {
        Sites::new(base, allowed).expect("valid sites")
    }

    #[test]
    fn the_base_url_host_and_port_only_by_default() {
        let s = sites("http://127.0.0.1:3000", None);
        assert!(s.serves("127.0.0.1:3000"));
        for foreign in [
            "127.0.0.1",
            "127.0.0.1:3001",
            "localhost:3000",
            "evil.example",
            "evil.example:3000",
            "127.0.0.1:3000@evil.example",
            "evil.example/127.0.0.1:3000",
            "",
            " 127.0.0.1:3000",
            "%31%32%37.0.0.1:3000",
        ] {
            assert!(!s.serves(foreign), "{foreign:?}");
        }
        let s = sites("https://Verify.Example.com/kyc/", None);
        assert!(s.serves("verify.example.com"));
        assert!(s.serves("VERIFY.example.com:443"));
        assert!(!s.serves("verify.example.com:80"));
        assert!(!s.serves("example.com"));
    }

    #[test]
    fn allowed_hosts_without_a_port_take_the_base_urls() {
        let s = sites(
            "http://127.0.0.1:3000",
            Some("localhost, 127.0.0.1 ,[::1], proxy.internal:8080"),
        );
        for ok in [
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "proxy.internal:8080",
        ] {
            assert!(s.serves(ok), "{ok}");
        }
        for foreign in [
            "localhost",
            "localhost:8080",
            "proxy.internal:3000",
            "[::1]",
        ] {
            assert!(!s.serves(foreign), "{foreign}");
        }
        assert!(Sites::new("http://127.0.0.1:3000", Some(" , ")).is_err());
        assert!(Sites::new("http://127.0.0.1:3000", Some("a@b")).is_err());
        assert!(Sites::new("not a url", None).is_err());
    }

    #[test]
    fn own_origins_are_the_base_urls_and_the_allowed_hosts() {
        let s = sites("http://127.0.0.1:3000/prefix", Some("127.0.0.1,localhost"));
        let origin = |v: &'static str| HeaderValue::from_static(v);
        assert!(s.is_own_origin(&origin("http://127.0.0.1:3000")));
        assert!(s.is_own_origin(&origin("http://localhost:3000")));
        for foreign in [
            "null",
            "https://127.0.0.1:3000",
            "http://127.0.0.1:3001",
            "http://localhost",
            "https://evil.example",
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/prefix",
            "http://user@127.0.0.1:3000",
            "",
        ] {
            assert!(!s.is_own_origin(&origin(foreign)), "{foreign:?}");
        }
        let s = sites("https://verify.example.com", None);
        assert!(s.is_own_origin(&origin("https://verify.example.com")));
        assert!(!s.is_own_origin(&origin("https://verify.example.com:443")));
        assert!(!s.is_own_origin(&origin("http://verify.example.com")));
    }

    #[test]
    fn owner_changes_need_a_same_origin_browser_or_no_browser() {
        let s = sites("http://127.0.0.1:3000", None);
        let allows = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            s.allows_owner_change(&headers)
        };
        assert!(allows(&[]), "curl, a backend");
        assert!(allows(&[("sec-fetch-site", "same-origin")]));
        assert!(allows(&[("sec-fetch-site", "none")]));
        assert!(allows(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:3000")
        ]));
        assert!(!allows(&[("sec-fetch-site", "cross-site")]));
        assert!(!allows(&[("sec-fetch-site", "same-site")]));
        assert!(!allows(&[("sec-fetch-site", "something-new")]));
        assert!(!allows(&[("origin", "https://evil.example")]));
        assert!(!allows(&[("origin", "null")]));
        assert!(!allows(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example")
        ]));
        assert!(!allows(&[
            ("origin", "http://127.0.0.1:3000"),
            ("origin", "https://evil.example")
        ]));
    }
}
