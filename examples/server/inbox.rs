//! The demo inbox: the receiving side of webhooks, as the customer's backend runs it. Point the
//! account's endpoint at `POST /demo/webhook-inbox` to watch this server receive and verify its
//! own webhooks; the dashboard lists the last few.
//!
//! | method and path            | body      | answer                                   |
//! |----------------------------|-----------|------------------------------------------|
//! | `POST /demo/webhook-inbox` | a webhook | 204 if its signature verifies, else 401  |

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use magic_link::clock::Clock;
use magic_link::store::WebhookStore;
use magic_link::webhooks::{WebhookHeaders, WebhookPayload, WebhookVerifier};
use tokio::sync::watch;

use crate::errors::ApiError;
use crate::AppState;

/// How many received webhooks the demo inbox keeps.
const INBOX_LEN: usize = 20;

/// Webhooks the demo inbox received, newest first, and a counter of them that the dashboard's
/// live stream watches.
#[derive(Debug, Default)]
pub(crate) struct Inbox(Mutex<VecDeque<Received>>, watch::Sender<u64>);

/// A webhook the inbox received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) at: DateTime<Utc>,
    /// Its `webhook-id` header (at most 80 characters of it).
    pub(crate) id: String,
    /// The event type, from the payload.
    pub(crate) kind: String,
    /// The outcome, for `session.completed`; the decision, for `session.reviewed`.
    pub(crate) outcome: Option<String>,
    /// Whether the signature verified, or why not.
    pub(crate) verified: Result<(), String>,
}

impl Inbox {
    fn push(&self, received: Received) {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_front(received);
        entries.truncate(INBOX_LEN);
        drop(entries);
        self.1.send_modify(|received| *received += 1);
    }

    /// Changes whenever a webhook is received.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.1.subscribe()
    }

    /// What it received, newest first.
    pub(crate) fn entries(&self) -> Vec<Received> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

/// `POST /demo/webhook-inbox`: the receiving side, as the customer's backend runs it: verify
/// the signature over the raw body (with the tolerance on the timestamp), then parse.
///
/// In this demo the receiver shares the process, so it reads the secrets from the endpoint;
/// a real receiver has its own copy of the secret.
pub(crate) async fn receive<S: WebhookStore>(
    State(app): State<AppState<S>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secrets = match app.links.webhook_endpoint(app.account).await {
        Ok(Some(endpoint)) => endpoint.secrets().to_vec(),
        Ok(None) => Vec::new(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let mut secrets = secrets.into_iter();
    let verified = match secrets.next() {
        None => Err("no endpoint secret to verify with".to_owned()),
        Some(first) => {
            let verifier = secrets.fold(WebhookVerifier::new(first), WebhookVerifier::with_secret);
            let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
            verifier
                .verify(WebhookHeaders::from_fn(header), &body)
                .map_err(|e| e.to_string())
        }
    };
    let payload = serde_json::from_slice::<WebhookPayload>(&body).ok();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect::<String>()
    };
    let ok = verified.is_ok();
    app.inbox.push(Received {
        at: app.links.clock().now(),
        id: text("webhook-id"),
        kind: payload
            .as_ref()
            .map_or_else(|| "(unreadable)".to_owned(), |p| p.kind.clone()),
        outcome: payload
            .as_ref()
            .and_then(|p| p.data.outcome.or(p.data.decision))
            .map(|o| o.as_str().to_owned()),
        verified,
    });
    if ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}
