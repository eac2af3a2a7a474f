//! [`Transport`] over HTTP(S) with reqwest and rustls (feature `http`), sending only to global
//! addresses and those on an [`AllowList`].

use std::collections::hash_map::{Entry, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::webhooks::{
    AllowList, IpNetwork, Transport, TransportError, WebhookRequest, WebhookResponse,
};

/// Sends webhooks over HTTP(S) with [`reqwest`] (rustls, the Mozilla root certificates), to
/// global addresses only unless told otherwise.
///
/// Endpoint URLs are customer input, so by default a request goes only to a
/// [global](crate::webhooks::is_global) address: never to loopback, private, link-local
/// (cloud metadata at `169.254.169.254`), shared (CGNAT), multicast, documentation or reserved
/// addresses, in any of their spellings (`127.1`, `0x7f.0.0.1`, `2130706433`, `[::1]`,
/// `[::ffff:127.0.0.1]`, a name that resolves to one). Such a request fails with
/// [`TransportError::Blocked`] without opening a connection. The check runs where it cannot
/// be raced:
///
/// - a host written as an IP address is checked before the request is made;
/// - a host name is checked by the client's DNS resolver, on the addresses it resolved, just
///   before connecting to them; the client connects only to addresses that passed. A name that
///   resolved to a public address when the endpoint was set and to `127.0.0.1` now (DNS
///   rebinding) is refused now.
///
/// Addresses that a deployment needs on purpose (a receiver on `127.0.0.1` in development, a
/// private network) are opened with an [`AllowList`]:
/// [`allow_network`](HttpTransportBuilder::allow_network),
/// [`allow_socket_addr`](HttpTransportBuilder::allow_socket_addr) or
/// [`allow`](HttpTransportBuilder::allow) on the [builder](Self::builder).
///
/// No proxy is taken from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, ...); an egress proxy
/// is set with [`proxy`](HttpTransportBuilder::proxy).
///
/// The client follows no redirects (a `3xx` is a failed attempt) and identifies itself as
/// `magic-link-webhooks/<version>`. Transport errors are stored without the URL.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use magic_link::store::MemoryStore;
/// use magic_link::webhooks::{Dispatcher, HttpTransport};
///
/// # fn main() -> Result<(), magic_link::webhooks::TransportError> {
/// let store = Arc::new(MemoryStore::new());
/// let dispatcher = Dispatcher::new(store, HttpTransport::new()?);
/// # Ok(()) }
/// ```
///
/// In development, with a receiver on this machine, allow it by its socket address:
///
/// ```no_run
/// use magic_link::webhooks::HttpTransport;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = HttpTransport::builder()
///     .allow_socket_addr("127.0.0.1:4000".parse()?)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    allow: Arc<AllowList>,
    proxied: bool,
    /// For requests to a port that an allowed socket address names: a client whose resolver
    /// also lets through the addresses allowed on that port.
    by_port: HashMap<u16, reqwest::Client>,
    /// For every other request.
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport that sends to global addresses only, without a proxy, resolving names with
    /// the system resolver.
    ///
    /// # Errors
    ///
    /// The TLS backend could not be initialised.
    pub fn new() -> Result<Self, TransportError> {
        Self::builder().build()
    }

    /// A builder, to allow networks, set a proxy or a DNS resolver.
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }

    /// The networks and socket addresses allowed besides the global addresses.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Whether requests go through a proxy.
    pub fn is_proxied(&self) -> bool {
        self.proxied
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("allow", &self.allow)
            .field("proxied", &self.proxied)
            .finish_non_exhaustive()
    }
}

/// Configures an [`HttpTransport`]: what it may send to besides global addresses, a proxy, a
/// DNS resolver.
///
/// # Examples
///
/// Allow what an environment variable lists (such as `WEBHOOK_ALLOW_NETWORKS=127.0.0.1/32`):
///
/// ```no_run
/// use magic_link::webhooks::{AllowList, HttpTransport};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let allowed: AllowList = std::env::var("WEBHOOK_ALLOW_NETWORKS")
///     .unwrap_or_default()
///     .parse()?;
/// let transport = HttpTransport::builder().allow(allowed).build()?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct HttpTransportBuilder {
    allow: AllowList,
    proxy: Option<reqwest::Url>,
    resolver: Option<Arc<dyn Resolve>>,
}

impl HttpTransportBuilder {
    /// Allows every port of the addresses of `network`, such as `127.0.0.1/32` or
    /// `10.20.0.0/16`.
    ///
    /// # Security
    ///
    /// Every customer's endpoint can then reach these addresses. Keep the network small.
    #[must_use]
    pub fn allow_network(mut self, network: IpNetwork) -> Self {
        self.allow = self.allow.network(network);
        self
    }

    /// Allows one port of one address, such as `127.0.0.1:4000`.
    ///
    /// # Security
    ///
    /// Every customer's endpoint can then reach this address.
    #[must_use]
    pub fn allow_socket_addr(mut self, addr: SocketAddr) -> Self {
        self.allow = self.allow.socket_addr(addr);
        self
    }

    /// Allows every entry of `list` (parsed from configuration, say).
    ///
    /// # Security
    ///
    /// Every customer's endpoint can then reach these addresses.
    #[must_use]
    pub fn allow(mut self, list: AllowList) -> Self {
        self.allow = self.allow.extend(&list);
        self
    }

    /// Sends every request through the proxy at `url` (`http://`, `https://`; credentials in
    /// the URL are sent to the proxy as basic authentication).
    ///
    /// # Security
    ///
    /// Through a proxy, host names are resolved by the proxy, not here, so **the proxy does the
    /// filtering**: use an egress proxy that refuses internal destinations. Hosts written as IP
    /// addresses are still checked here; the proxy's own address is not (it may be private).
    #[must_use]
    pub fn proxy(mut self, url: reqwest::Url) -> Self {
        self.proxy = Some(url);
        self
    }

    /// Resolves host names with `resolver` instead of the system resolver (`getaddrinfo`).
    /// Its answers are checked as the system resolver's are; the ports it returns are ignored
    /// (a request goes to the URL's port).
    #[must_use]
    pub fn dns_resolver<R: Resolve + 'static>(mut self, resolver: Arc<R>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The transport.
    ///
    /// # Errors
    ///
    /// The TLS backend could not be initialised, or the proxy URL is not one reqwest takes.
    pub fn build(self) -> Result<HttpTransport, TransportError> {
        let allow = Arc::new(self.allow);
        let proxy = self.proxy.as_ref();
        if proxy.is_some() {
            // Names are resolved by the proxy; this resolver finds the proxy only.
            let plain = Checked {
                inner: self.resolver,
                allow: None,
            };
            return Ok(HttpTransport {
                client: client(plain, proxy)?,
                by_port: HashMap::new(),
                allow,
                proxied: true,
            });
        }
        let checked = |port| Checked {
            inner: self.resolver.clone(),
            allow: Some((allow.clone(), port)),
        };
        let mut by_port = HashMap::new();
        for port in allow.socket_addrs().iter().map(SocketAddr::port) {
            if let Entry::Vacant(entry) = by_port.entry(port) {
                entry.insert(client(checked(Some(port)), None)?);
            }
        }
        Ok(HttpTransport {
            client: client(checked(None), None)?,
            by_port,
            allow,
            proxied: false,
        })
    }
}

impl fmt::Debug for HttpTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransportBuilder")
            .field("allow", &self.allow)
            .field("proxy", &self.proxy.is_some())
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

fn client(
    resolver: Checked,
    proxy: Option<&reqwest::Url>,
) -> Result<reqwest::Client, TransportError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("magic-link-webhooks/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .dns_resolver(Arc::new(resolver));
    if let Some(url) = proxy {
        let proxy = reqwest::Proxy::all(url.clone())
            .map_err(|e| TransportError::failed(e.without_url()))?;
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| TransportError::failed(e.without_url()))
}

/// A resolver that keeps only the addresses the allowlist permits (on one port, or through
/// its networks only), with their ports cleared so that the URL's port is used.
struct Checked {
    /// `None`: the system resolver.
    inner: Option<Arc<dyn Resolve>>,
    /// `None`: no check (behind a proxy, only the proxy's name is resolved).
    allow: Option<(Arc<AllowList>, Option<u16>)>,
}

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = match &self.inner {
            Some(inner) => inner.resolve(name),
            None => system_lookup(name),
        };
        let allow = self.allow.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = lookup.await?.collect();
            let Some((allow, port)) = allow else {
                return Ok(Box::new(found.into_iter()) as Addrs);
            };
            let permitted: Vec<SocketAddr> = found
                .iter()
                .filter(|a| allow.permits_ip_on(a.ip(), port))
                .map(|a| SocketAddr::new(a.ip(), 0))
                .collect();
            if permitted.is_empty() && !found.is_empty() {
                return Err(Box::new(Refused) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

fn system_lookup(name: Name) -> Resolving {
    let host = name.as_str().to_owned();
    Box::pin(async move {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
        Ok(Box::new(found.into_iter()) as Addrs)
    })
}

/// Every address a name resolved to was refused; found again in the client's error chain.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no address of the host is public or allowed")
    }
}

impl StdError for Refused {}

/// A request URL that could not be read; the URL is not repeated.
#[derive(Debug)]
struct InvalidUrl;

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request URL is not an absolute http or https URL with a host")
    }
}

impl StdError for InvalidUrl {}

impl HttpTransport {
    /// The client for `url`, or `Blocked` when its host is an IP address that is not permitted
    /// (the client's connector does not resolve IP addresses, so its resolver never sees them).
    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, TransportError> {
        let port = match url.scheme() {
            "http" | "https" => url.port_or_known_default(),
            _ => None,
        };
        let (Some(port), Some(host)) = (port, url.host()) else {
            return Err(TransportError::failed(InvalidUrl));
        };
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            if !self.allow.permits(SocketAddr::new(ip, port)) {
                return Err(TransportError::Blocked);
            }
        }
        if self.proxied {
            return Ok(&self.client);
        }
        Ok(self.by_port.get(&port).unwrap_or(&self.client))
    }
}

impl Transport for HttpTransport {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let url = Url::parse(&request.url).map_err(|_| TransportError::failed(InvalidUrl))?;
        let client = self.client_for(&url)?;
        let mut builder = client.post(url).timeout(request.timeout);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let response = builder.body(request.body).send().await.map_err(|e| {
            if refused(&e) {
                TransportError::Blocked
            } else if e.is_timeout() {
                TransportError::Timeout
            } else {
                TransportError::failed(e.without_url())
            }
        })?;
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(WebhookResponse {
            status: response.status().as_u16(),
            retry_after,
        })
    }
}

/// Whether the resolver refused every address of the host.
fn refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(err) = source {
        if err.is::<Refused>() {
            return true;
        }
        source = err.source();
    }
    false
}
