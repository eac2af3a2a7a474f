//! A webhook transport for tests: it records every request and answers from a script.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::webhooks::{Transport, TransportError, WebhookPayload, WebhookRequest, WebhookResponse};

/// One scripted answer of a [`RecordingTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// An HTTP response with this status (`200`, `500`, `410`, ...).
    Status(u16),
    /// An HTTP response with this status and a `Retry-After` header (seconds or an HTTP date),
    /// such as `429` with `"120"`.
    RetryAfter(u16, String),
    /// No response within the request's timeout ([`TransportError::Timeout`]).
    Timeout,
    /// The connection failed ([`TransportError::Failed`]).
    ConnectionError,
}

/// A webhook request as the receiver would have seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The endpoint URL it was sent to.
    pub url: String,
    /// The `webhook-id` header: the event id.
    pub id: String,
    /// The `webhook-timestamp` header, in Unix seconds.
    pub timestamp: String,
    /// Every header sent, `(lower-case name, value)`, `content-type` included.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// What the transport answered.
    pub reply: Reply,
}

impl RecordedRequest {
    /// The value of header `name` (lower case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as a [`WebhookPayload`].
    ///
    /// # Errors
    ///
    /// The JSON error, if the body is not a payload.
    pub fn payload(&self) -> Result<WebhookPayload, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A [`Transport`] for tests: it records every request (id, timestamp, headers, raw body) and
/// answers from a script of [`Reply`]s, in order, then `200` once the script is used up.
/// Nothing goes over the network.
///
/// Give it to a [`Dispatcher`](crate::webhooks::Dispatcher) behind an `Arc` (or by
/// reference), keep a handle, and assert on what was sent:
///
/// ```
/// use magic_link::testing::{RecordingTransport, Reply};
///
/// let transport = RecordingTransport::new().script([Reply::Status(500), Reply::Status(200)]);
/// assert!(transport.requests().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct RecordingTransport {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
}

impl RecordingTransport {
    /// A transport that answers `200` to everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `replies` to the script: the next requests get them, in order.
    #[must_use]
    pub fn script(self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.push(replies);
        self
    }

    /// Appends `replies` to the script of a transport already in use.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The payloads of the requests so far that got a `2xx`, oldest first: what the receiver
    /// accepted. An event retried until it succeeds appears once.
    ///
    /// # Errors
    ///
    /// The JSON error of a body that is not a payload (the dispatcher never sends one).
    pub fn delivered(&self) -> Result<Vec<WebhookPayload>, serde_json::Error> {
        self.lock()
            .requests
            .iter()
            .filter(|r| matches!(r.reply, Reply::Status(200..=299)))
            .map(RecordedRequest::payload)
            .collect()
    }

    /// Forgets the requests recorded so far (the script stays).
    pub fn clear(&self) {
        self.lock().requests.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for RecordingTransport {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let mut state = self.lock();
        let reply = state.script.pop_front().unwrap_or(Reply::Status(200));
        state.requests.push(RecordedRequest {
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            url: request.url,
            id: request.webhook_id,
            timestamp: request.webhook_timestamp,
            body: request.body,
            reply: reply.clone(),
        });
        drop(state);
        match reply {
            Reply::Status(code) => Ok(WebhookResponse::new(code)),
            Reply::RetryAfter(code, after) => {
                Ok(WebhookResponse::new(code).with_retry_after(after))
            }
            Reply::Timeout => Err(TransportError::Timeout),
            Reply::ConnectionError => Err(TransportError::failed("connection refused (scripted)")),
        }
    }
}
