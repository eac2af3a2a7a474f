//! The small seam between the dispatcher and an HTTP client.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::webhooks::endpoint::RedactedUrl;
use crate::webhooks::{
    TransportFailure, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};

/// One signed webhook request: a `POST` of [`body`](Self::body) to [`url`](Self::url) with
/// [`headers`](Self::headers).
///
/// `Debug` hides the URL's path and query, which may hold a credential.
#[derive(Clone)]
#[non_exhaustive]
pub struct WebhookRequest {
    /// Where to send it.
    pub url: String,
    /// The `webhook-id` header: the event id, the same on every attempt.
    pub webhook_id: String,
    /// The `webhook-timestamp` header: this attempt's time, in Unix seconds.
    pub webhook_timestamp: String,
    /// The `webhook-signature` header: one `v1,<base64>` per secret.
    pub webhook_signature: String,
    /// The JSON payload.
    pub body: Vec<u8>,
    /// How long to wait for the response before giving up with [`TransportError::Timeout`].
    pub timeout: Duration,
}

impl WebhookRequest {
    /// A request; the dispatcher builds these.
    pub fn new(
        url: String,
        webhook_id: String,
        webhook_timestamp: String,
        webhook_signature: String,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Self {
        Self {
            url,
            webhook_id,
            webhook_timestamp,
            webhook_signature,
            body,
            timeout,
        }
    }

    /// Every header to send, `content-type` included, as `(lower-case name, value)`.
    pub fn headers(&self) -> [(&'static str, &str); 4] {
        [
            ("content-type", "application/json"),
            (WEBHOOK_ID_HEADER, &self.webhook_id),
            (WEBHOOK_TIMESTAMP_HEADER, &self.webhook_timestamp),
            (WEBHOOK_SIGNATURE_HEADER, &self.webhook_signature),
        ]
    }
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &RedactedUrl(&self.url))
            .field("webhook_id", &self.webhook_id)
            .field("webhook_timestamp", &self.webhook_timestamp)
            .field("webhook_signature", &self.webhook_signature)
            .field("body_len", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, if any, as sent (seconds or an HTTP date).
    pub retry_after: Option<String>,
}

impl WebhookResponse {
    /// A response with `status` and no `Retry-After`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
        }
    }

    /// Sets the `Retry-After` header value.
    #[must_use]
    pub fn with_retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
}

/// A request that got no HTTP response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No response within the request's timeout.
    #[error("the request timed out")]
    Timeout,
    /// The request could not be sent or its response not read (DNS, connection, TLS, ...).
    /// Only its kind ([`failure`](Self::failure)) is stored with the attempt; its source should
    /// not contain the URL (it may hold a credential) in case it is logged.
    #[error("the request failed")]
    Failed(#[source] Box<dyn StdError + Send + Sync>),
    /// The endpoint's address is not a global address and not on the transport's allowlist
    /// (loopback, private, link-local, ...): nothing was sent, and no connection was opened.
    /// The message names neither the URL nor the address, so it can be shown to the endpoint's
    /// owner.
    #[error("blocked: the endpoint's address is not public and not on the allowlist")]
    Blocked,
}

impl TransportError {
    /// Wraps a client error. Strip the URL from it first.
    pub fn failed(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Failed(err.into())
    }

    /// The kind of failure a delivery records for this error; `None` for a timeout, which is
    /// an outcome of its own. A connection refused, reset or aborted anywhere in the source
    /// chain is [`Refused`](TransportFailure::Refused); a chain that speaks of TLS, a
    /// certificate or a handshake is [`Tls`](TransportFailure::Tls).
    pub fn failure(&self) -> Option<TransportFailure> {
        let source: &(dyn StdError + 'static) = match self {
            Self::Timeout => return None,
            Self::Blocked => return Some(TransportFailure::Blocked),
            Self::Failed(source) => &**source,
        };
        let mut tls = false;
        let mut next = Some(source);
        while let Some(err) = next {
            let text = err.to_string().to_ascii_lowercase();
            tls |= ["tls", "certificate", "handshake"]
                .iter()
                .any(|word| text.contains(word));
            next = err.source();
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
                if matches!(
                    io.kind(),
                    ConnectionRefused | ConnectionReset | ConnectionAborted
                ) {
                    return Some(TransportFailure::Refused);
                }
                // An `io::Error` that wraps another error reports that error's source, not
                // the error itself: look at the wrapped one.
                if let Some(inner) = io.get_ref() {
                    next = Some(inner);
                }
            }
        }
        Some(if tls {
            TransportFailure::Tls
        } else {
            TransportFailure::Other
        })
    }
}

/// Sends webhook requests. The crate ships `HttpTransport` (feature
/// `http`); tests plug in their own.
///
/// An implementation sends one `POST` per call, does not follow redirects (a `3xx` is a failed
/// attempt), and gives up after [`WebhookRequest::timeout`] with [`TransportError::Timeout`].
///
/// # Examples
///
/// A transport that records requests and answers `204`:
///
/// ```
/// use std::sync::Mutex;
/// use magic_link::webhooks::{Transport, TransportError, WebhookRequest, WebhookResponse};
///
/// #[derive(Debug, Default)]
/// struct Recording(Mutex<Vec<WebhookRequest>>);
///
/// impl Transport for Recording {
///     async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
///         self.0.lock().unwrap().push(request);
///         Ok(WebhookResponse::new(204))
///     }
/// }
/// ```
pub trait Transport: Send + Sync {
    /// Sends `request` and returns the response's status and `Retry-After`.
    ///
    /// # Errors
    ///
    /// [`TransportError`] when no response arrived.
    fn send(
        &self,
        request: WebhookRequest,
    ) -> impl Future<Output = Result<WebhookResponse, TransportError>> + Send;
}

impl<T: Transport> Transport for Arc<T> {
    fn send(
        &self,
        request: WebhookRequest,
    ) -> impl Future<Output = Result<WebhookResponse, TransportError>> + Send {
        (**self).send(request)
    }
}

impl<T: Transport> Transport for &T {
    fn send(
        &self,
        request: WebhookRequest,
    ) -> impl Future<Output = Result<WebhookResponse, TransportError>> + Send {
        (**self).send(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_stored_as_categories() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = TransportError::failed(std::io::Error::other(refused));
        assert_eq!(wrapped.failure(), Some(TransportFailure::Refused));
        let tls = TransportError::failed("invalid peer certificate: UnknownIssuer");
        assert_eq!(tls.failure(), Some(TransportFailure::Tls));
        let dns = TransportError::failed("dns error: no record found for name");
        assert_eq!(dns.failure(), Some(TransportFailure::Other));
        assert_eq!(
            TransportError::Blocked.failure(),
            Some(TransportFailure::Blocked)
        );
        assert_eq!(TransportError::Timeout.failure(), None);
        for failure in [
            TransportFailure::Refused,
            TransportFailure::Tls,
            TransportFailure::Blocked,
            TransportFailure::Other,
        ] {
            assert_eq!(TransportFailure::from_name(failure.as_str()), failure);
        }
        assert_eq!(
            TransportFailure::from_name("connection refused (raw text of an older version)"),
            TransportFailure::Other
        );
    }
}
