//! [`Transport`] over HTTP(S) with reqwest and rustls (feature `http`).

use crate::webhooks::{Transport, TransportError, WebhookRequest, WebhookResponse};

/// Sends webhooks over HTTP(S) with [`reqwest`] (rustls, the Mozilla root certificates).
///
/// The client built by [`new`](Self::new) follows no redirects (a `3xx` is a failed attempt)
/// and identifies itself as `magic-link-webhooks/<version>`. Transport errors are stored
/// without the URL.
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
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport with its own client.
    ///
    /// # Errors
    ///
    /// The TLS backend could not be initialised.
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("magic-link-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::failed(e.without_url()))?;
        Ok(Self { client })
    }

    /// A transport over a client of your own (proxy, connection pool, resolver settings).
    /// Configure it not to follow redirects.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl Transport for HttpTransport {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let mut builder = self.client.post(&request.url).timeout(request.timeout);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let response = builder.body(request.body).send().await.map_err(|e| {
            if e.is_timeout() {
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
