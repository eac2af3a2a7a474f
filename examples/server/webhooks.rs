//! The account owner's webhook endpoint: where the service sends its events (the URL and the
//! signing secret), stopping them, and sending a failed delivery again. Every handler is scoped
//! to the [`Owner`]'s account.
//!
//! | method and path                              | body                          | answer |
//! |----------------------------------------------|-------------------------------|--------|
//! | `GET /api/webhook`                           |                               | the endpoint (or `null`) and failed deliveries |
//! | `PUT /api/webhook`                           | `{"url", "secret"?, "event_types"?}` | the endpoint, and the secret if one was generated |
//! | `DELETE /api/webhook`                        |                               | the endpoint, disabled |
//! | `POST /api/webhook/deliveries/{event}/retry` |                               | the delivery, queued again |
//!
//! `event_types` lists the event types the endpoint receives (`["session.completed",
//! "session.reviewed"]`); without it, it receives every type this version knows. An unknown
//! name is `422 unknown_event_type`, an empty list `422 no_event_types`.
//!
//! The events themselves are delivered in the background (see `background.rs`), and the demo
//! inbox that receives them is in `inbox.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use magic_link::store::WebhookStore;
use magic_link::webhooks::{Delivery, Endpoint, EventType, WebhookSecret};
use magic_link::{EventId, Page};
use serde::{Deserialize, Serialize};

use crate::errors::{log_error, ApiError};
use crate::extract::{ApiId, ApiJson, Owner};
use crate::AppState;

/// An endpoint as the API shows it. The secrets are never shown again after they are set.
#[derive(Debug, Serialize)]
pub(crate) struct EndpointView {
    url: String,
    enabled: bool,
    secrets: usize,
    updated_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
    event_types: Vec<EventType>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            url: e.url().to_owned(),
            enabled: e.is_enabled(),
            secrets: e.secrets().len(),
            updated_at: e.updated_at,
            disabled_at: e.disabled_at,
            event_types: e.event_types().to_vec(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WebhookView {
    endpoint: Option<EndpointView>,
    failed: Vec<Delivery>,
}

/// `GET /api/webhook`.
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
    /// The event types to receive, by name; all of them when absent.
    #[serde(default)]
    event_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SetAnswer {
    endpoint: EndpointView,
    /// The generated secret (`whsec_...`): shown this once, for the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// `PUT /api/webhook`: sets the endpoint (enabled), replacing the previous one.
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
                ApiError::invalid(
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
    let url = req.url.trim();
    let endpoint = match req.event_types {
        Some(types) => {
            app.links
                .set_webhook_endpoint_receiving(account, url, vec![secret], types)
                .await?
        }
        None => {
            app.links
                .set_webhook_endpoint(account, url, vec![secret])
                .await?
        }
    };
    Ok(Json(SetAnswer {
        endpoint: EndpointView::from(&endpoint),
        secret: shown,
    }))
}

/// `DELETE /api/webhook`: stops sending; events stay in the outbox.
pub(crate) async fn disable<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = app.links.disable_webhook_endpoint(account).await?;
    Ok(Json(EndpointView::from(&endpoint)))
}

/// `POST /api/webhook/deliveries/{event}/retry`: a failed delivery, queued again.
pub(crate) async fn retry<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(event): ApiId<EventId>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(app.links.requeue_delivery(account, event).await?))
}
