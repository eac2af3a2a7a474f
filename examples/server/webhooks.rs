//! Webhooks: the account's endpoint (URL and signing secret), the dispatcher that delivers the
//! outbox in the Standard Webhooks form, and a demo inbox that receives and verifies them as
//! the customer's backend would.
//!
//! | method and path                              | body                          | answer |
//! |----------------------------------------------|-------------------------------|--------|
//! | `GET /api/webhook`                           |                               | the endpoint (or `null`) and failed deliveries |
//! | `PUT /api/webhook`                           | `{"url", "secret"?}`          | the endpoint, and the secret if one was generated |
//! | `DELETE /api/webhook`                        |                               | the endpoint, disabled |
//! | `POST /api/webhook/deliveries/{event}/retry` |                               | the delivery, queued again |
//! | `POST /demo/webhook-inbox`                   | a webhook                     | 204 if its signature verifies, else 401 |

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use magic_link::clock::Clock;
use magic_link::store::WebhookStore;
use magic_link::webhooks::{
    Delivery, DeliveryStatus, Dispatcher, Endpoint, HttpTransport, Transport, WebhookHeaders,
    WebhookPayload, WebhookSecret, WebhookVerifier,
};
use magic_link::{Error, EventId, Page};
use serde::{Deserialize, Serialize};

use crate::api::{log_error, ApiError, ApiJson};
use crate::html::esc;
use crate::{AppState, Owner};

/// How many received webhooks the demo inbox keeps.
const INBOX_LEN: usize = 20;

/// Webhooks the demo inbox received, newest first.
#[derive(Debug, Default)]
pub(crate) struct Inbox(Mutex<VecDeque<Received>>);

#[derive(Debug, Clone)]
struct Received {
    at: DateTime<Utc>,
    id: String,
    kind: String,
    outcome: Option<String>,
    verified: Result<(), String>,
}

impl Inbox {
    fn push(&self, received: Received) {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_front(received);
        entries.truncate(INBOX_LEN);
    }

    fn entries(&self) -> Vec<Received> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

/// Delivers the outbox for as long as the server runs: one pass, then a short pause when
/// there was nothing to send. All delivery state is in the store, so a restart resumes.
pub(crate) async fn deliver<S: WebhookStore, T: Transport>(dispatcher: Dispatcher<S, T>) {
    let mut last_prune = std::time::Instant::now();
    loop {
        match dispatcher.run_once().await {
            Ok(report) if report.attempted == 0 => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(_) => {}
            Err(err) => {
                log_error("webhook delivery", &err);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            if let Err(err) = dispatcher.prune().await {
                log_error("pruning deliveries", &err);
            }
        }
    }
}

/// The dispatcher over HTTP(S).
pub(crate) fn dispatcher<S: WebhookStore>(
    store: S,
) -> Result<Dispatcher<S, HttpTransport>, magic_link::webhooks::TransportError> {
    Ok(Dispatcher::new(store, HttpTransport::new()?).timeout(Duration::from_secs(10)))
}

/// An endpoint as the API shows it. The secrets are never shown again after they are set.
#[derive(Debug, Serialize)]
pub(crate) struct EndpointView {
    url: String,
    enabled: bool,
    secrets: usize,
    updated_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            url: e.url().to_owned(),
            enabled: e.is_enabled(),
            secrets: e.secrets().len(),
            updated_at: e.updated_at,
            disabled_at: e.disabled_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WebhookView {
    endpoint: Option<EndpointView>,
    failed: Vec<Delivery>,
}

pub(crate) async fn get<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Json<WebhookView>, ApiError> {
    let endpoint = app.links.webhook_endpoint(account).await?;
    let failed = app
        .links
        .failed_deliveries(account, Page::first(100))
        .await?;
    Ok(Json(WebhookView {
        endpoint: endpoint.as_ref().map(EndpointView::from),
        failed: failed.items,
    }))
}

/// The endpoint to set. Without `secret`, one is generated and returned once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetEndpoint {
    url: String,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SetAnswer {
    endpoint: EndpointView,
    /// The generated secret (`whsec_...`): shown this once, for the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

pub(crate) async fn set<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiJson(req): ApiJson<SetEndpoint>,
) -> Result<Json<SetAnswer>, ApiError> {
    let given = req
        .secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (secret, generated) = match given {
        Some(text) => {
            let secret = text.parse::<WebhookSecret>().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_secret",
                    "the secret must be whsec_ followed by base64",
                )
            })?;
            (secret, false)
        }
        None => {
            let secret = WebhookSecret::generate().map_err(|err| {
                log_error("generating a webhook secret", &err);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "no random source; try again",
                )
            })?;
            (secret, true)
        }
    };
    let shown = generated.then(|| secret.expose().to_string());
    let endpoint = app
        .links
        .set_webhook_endpoint(account, req.url.trim(), vec![secret])
        .await?;
    Ok(Json(SetAnswer {
        endpoint: EndpointView::from(&endpoint),
        secret: shown,
    }))
}

pub(crate) async fn disable<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = app.links.disable_webhook_endpoint(account).await?;
    Ok(Json(EndpointView::from(&endpoint)))
}

/// An event id in the path; anything else is a 404.
pub(crate) struct EventPath(EventId);

impl<S: Send + Sync> FromRequestParts<S> for EventPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found");
        let Path(id): Path<String> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        id.parse().map(Self).map_err(|_| not_found())
    }
}

pub(crate) async fn retry<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    EventPath(event): EventPath,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(app.links.requeue_delivery(account, event).await?))
}

/// `POST /demo/webhook-inbox`: the receiving side, as the customer's backend runs it: verify
/// the signature over the raw body (with the tolerance on the timestamp), then parse.
///
/// In this demo the receiver shares the process, so it reads the secrets from the endpoint;
/// a real receiver has its own copy of the secret.
pub(crate) async fn inbox<S: WebhookStore>(
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
            .and_then(|p| p.data.outcome)
            .map(|o| o.as_str().to_owned()),
        verified,
    });
    if ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

/// The dashboard's live webhook part: the endpoint, failed deliveries, the demo inbox.
pub(crate) async fn live_part<S: WebhookStore>(
    app: &AppState<S>,
    account: magic_link::AccountId,
) -> Result<String, Error> {
    let endpoint = app.links.webhook_endpoint(account).await?;
    let mut html = match &endpoint {
        None => "<p class=\"note\" id=\"webhook-state\" data-state=\"none\">No endpoint: events \
                 are kept in the outbox but not sent.</p>"
            .to_owned(),
        Some(e) => format!(
            "<p id=\"webhook-state\" data-state=\"{state}\">Sending to <code>{url}</code> \
             <span class=\"badge {class}\">{state}</span></p>",
            state = if e.is_enabled() {
                "enabled"
            } else {
                "disabled"
            },
            class = if e.is_enabled() {
                "active"
            } else {
                "deactivated"
            },
            url = esc(e.url()),
        ),
    };
    if endpoint.as_ref().is_some_and(Endpoint::is_enabled) {
        html.push_str(
            "<p><button type=\"button\" class=\"secondary\" id=\"webhook-disable\">\
             Stop sending</button></p>",
        );
    }
    let failed = app
        .links
        .failed_deliveries(account, Page::first(20))
        .await?
        .items;
    if !failed.is_empty() {
        html.push_str("<h3>Failed deliveries</h3><table><tbody>");
        for d in &failed {
            let why = match d.status {
                DeliveryStatus::Failed { reason, .. } => format!("{reason:?}"),
                _ => String::new(),
            };
            html.push_str(&format!(
                "<tr><td><code>{event}</code></td><td>{attempts} attempts</td><td>{why}</td>\
                 <td><button type=\"button\" class=\"secondary\" data-retry=\"{event}\">Retry</button></td></tr>",
                event = d.event,
                attempts = d.attempts,
                why = esc(&why),
            ));
        }
        html.push_str("</tbody></table>");
    }
    let received = app.inbox.entries();
    html.push_str(&format!(
        "<h3>Demo inbox</h3><p class=\"note\">Point the endpoint at \
         <code id=\"inbox-url\">{}/demo/webhook-inbox</code> to watch this server receive and \
         verify its own webhooks, as your backend would.</p>",
        esc(&app.base_url)
    ));
    if received.is_empty() {
        html.push_str("<p class=\"note\">Nothing received yet.</p>");
    } else {
        html.push_str("<table id=\"inbox\"><tbody>");
        for r in &received {
            let (class, verdict) = match &r.verified {
                Ok(()) => ("approved", "signature verified".to_owned()),
                Err(why) => ("denied", format!("rejected: {why}")),
            };
            let outcome = r
                .outcome
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            html.push_str(&format!(
                "<tr title=\"webhook-id {id}\"><td>{at}</td><td class=\"inbox-type\">{kind}{outcome}</td>\
                 <td><span class=\"badge {class}\">{verdict}</span></td></tr>",
                at = r.at.format("%H:%M:%S"),
                kind = esc(&r.kind),
                outcome = esc(&outcome),
                verdict = esc(&verdict),
                id = esc(&r.id),
            ));
        }
        html.push_str("</tbody></table>");
    }
    Ok(html)
}

/// The dashboard's static webhook form.
pub(crate) const FORM: &str = r#"<section class="card" id="webhooks"><h2>Webhooks</h2>
<p class="note">Every change (link redeemed, session completed, ...) is sent to your endpoint, signed as Standard Webhooks specify, and retried with backoff until it is accepted.</p>
<form id="webhook-form" autocomplete="off">
<label for="webhook-url">Endpoint URL</label><input type="url" id="webhook-url" placeholder="https://example.com/webhooks/idv" required>
<label for="webhook-secret">Signing secret</label><input type="text" id="webhook-secret" placeholder="whsec_... (leave empty to generate one)">
<p><button type="submit" id="webhook-save">Save endpoint</button>
<button type="button" class="secondary" id="webhook-use-inbox">Use the demo inbox</button></p>
<p class="error" id="webhook-error" role="alert"></p>
<div id="webhook-new-secret" hidden><label for="webhook-secret-shown">Your new secret (shown once: give it to your receiver)</label>
<div class="copyrow"><input type="text" readonly id="webhook-secret-shown"><button type="button" class="secondary" data-copy="webhook-secret-shown">Copy</button></div></div>
</form><div id="webhook-live"></div></section>"#;

/// The dashboard's webhook script, appended to the dashboard's.
pub(crate) const SCRIPT: &str = r#"
(function(){
'use strict';
const $ = (id) => document.getElementById(id);
const P = $('dashboard').dataset.prefix;
async function call(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(P + path, init);
  let data = {};
  try { data = await res.json(); } catch (e) {}
  if (!res.ok) throw new Error(data.error || ('HTTP ' + res.status));
  return data;
}
$('webhook-use-inbox').addEventListener('click', () => {
  $('webhook-url').value = $('inbox-url') ? $('inbox-url').textContent : '';
});
$('webhook-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('webhook-error').textContent = '';
  $('webhook-save').disabled = true;
  try {
    const body = {url: $('webhook-url').value};
    if ($('webhook-secret').value.trim()) body.secret = $('webhook-secret').value.trim();
    const answer = await call('PUT', '/api/webhook', body);
    $('webhook-secret').value = '';
    if (answer.secret) { $('webhook-secret-shown').value = answer.secret; $('webhook-new-secret').hidden = false; }
    else { $('webhook-new-secret').hidden = true; }
    window.dashboardRefresh && window.dashboardRefresh();
  } catch (err) {
    $('webhook-error').textContent = err.message;
  } finally {
    $('webhook-save').disabled = false;
  }
});
document.addEventListener('click', async (e) => {
  const t = e.target;
  try {
    if (t.id === 'webhook-disable') { await call('DELETE', '/api/webhook'); }
    else if (t.dataset && t.dataset.retry) { t.disabled = true; await call('POST', '/api/webhook/deliveries/' + t.dataset.retry + '/retry'); }
    else return;
  } catch (err) { $('webhook-error').textContent = err.message; }
  window.dashboardRefresh && window.dashboardRefresh();
});
})();
"#;
