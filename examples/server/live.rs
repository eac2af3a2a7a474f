//! Server-Sent Events: the dashboard and the flow page learn of changes as they commit, from
//! [`MagicLinks::subscribe`](magic_link::MagicLinks::subscribe), instead of polling.
//!
//! | method and path          | who                         | events                            |
//! |--------------------------|-----------------------------|-----------------------------------|
//! | `GET /dashboard/events`  | the owner                   | `change` (each of the account's events, `id:` its `seq`, data its JSON), then `live` (the dashboard's live parts, rendered here) |
//! | `GET /s/{token}/events`  | the holder of a session token | `handed_off` when that session moves to a phone ("Continue on your phone"), `ended` (data: its status and outcome) once it is completed or abandoned; nothing of other sessions |
//!
//! A browser's `EventSource` reconnects by itself and sends back the `id` of the last event it
//! got as `Last-Event-ID`: the subscription resumes after it, so no change is missed or sent
//! twice. Each connection starts with a `live` message (dashboard) or the session's state
//! (flow), so what a page shows is never older than its stream. The streams end when the
//! server shuts down, so they do not hold up its graceful shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use futures_util::{FutureExt, StreamExt};
use magic_link::live::Subscription;
use magic_link::store::{Changes, WebhookStore};
use magic_link::{AccountId, EventKind, SessionStatus};

use crate::dashboard;
use crate::errors::ApiError;
use crate::extract::{Owner, Token};
use crate::AppState;

/// How long a browser waits before reconnecting a dropped stream.
const RETRY: Duration = Duration::from_secs(2);

/// The cursor a reconnecting `EventSource` sends back, if any.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let cursor = value.to_str().ok().and_then(|v| v.trim().parse().ok());
    cursor.map(Some).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
            "Last-Event-ID is not an event id of this stream",
        )
    })
}

/// The response: the stream, with a comment every 15 s to keep proxies from closing it.
fn sse(stream: impl Stream<Item = SseEvent> + Send + 'static) -> Response {
    Sse::new(stream.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What the dashboard's stream waits for next.
enum Next {
    Event(SseEvent),
    Render,
    End,
}

struct DashboardStream<S> {
    app: AppState<S>,
    account: AccountId,
    events: Subscription,
    inbox: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Whether the live parts must be sent again (first, and after changes).
    render: bool,
}

impl<S: WebhookStore> DashboardStream<S> {
    /// The next message: pending changes first (each as it is), then one `live` render for
    /// all of them.
    async fn next(&mut self) -> Next {
        loop {
            if self.render {
                // Changes already due go out before the render that shows them all.
                match self.events.next().now_or_never() {
                    Some(Ok(event)) => return Next::Event(change(&event)),
                    Some(Err(_)) => return Next::End,
                    None => {
                        self.render = false;
                        return Next::Render;
                    }
                }
            }
            tokio::select! {
                event = self.events.next() => match event {
                    Ok(event) => {
                        self.render = true;
                        return Next::Event(change(&event));
                    }
                    // The client reconnects and resumes from its last id.
                    Err(_) => return Next::End,
                },
                // The demo inbox received a webhook: not an event of the store.
                changed = self.inbox.changed() => {
                    if changed.is_err() {
                        return Next::End;
                    }
                    self.render = true;
                }
                _ = self.closing.wait_for(|closing| *closing) => return Next::End,
            }
        }
    }

    async fn live(&self) -> Option<SseEvent> {
        let parts = dashboard::parts(&self.app, self.account).await.ok()?;
        Some(SseEvent::default().event("live").data(parts.to_string()))
    }
}

/// A `change` message: the event, with its `seq` as the id to resume from.
fn change(event: &magic_link::Event) -> SseEvent {
    SseEvent::default()
        .event("change")
        .id(event.seq.to_string())
        .data(serde_json::to_string(event).unwrap_or_default())
}

/// `GET /dashboard/events`: the account's changes, each followed by the live parts rendered
/// again.
pub(crate) async fn dashboard<S>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    headers: HeaderMap,
) -> Result<Response, ApiError>
where
    S: WebhookStore + Changes + Clone + 'static,
{
    let after = last_event_id(&headers)?;
    // Subscribed before the first render: whatever the render misses comes as a change.
    let events = app.links.subscribe(account, after).await?;
    let state = DashboardStream {
        inbox: app.inbox.watch(),
        closing: app.closing.clone(),
        app,
        account,
        events,
        render: true,
    };
    let retry = SseEvent::default().retry(RETRY).comment("live");
    let stream =
        stream::once(async move { retry }).chain(stream::unfold(state, |mut state| async move {
            loop {
                match state.next().await {
                    Next::Event(event) => return Some((event, state)),
                    Next::Render => {
                        if let Some(live) = state.live().await {
                            return Some((live, state));
                        }
                    }
                    Next::End => return None,
                }
            }
        }));
    Ok(sse(stream))
}

/// `GET /s/{session token}/events`: `handed_off` when the session moves to another device,
/// `ended` once the session is completed or abandoned. The
/// session token authorizes it; nothing of any other session (or the account) is sent.
pub(crate) async fn flow<S>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    headers: HeaderMap,
) -> Result<Response, ApiError>
where
    S: WebhookStore + Changes + Clone + 'static,
{
    let claims = app.links.verify_session_token(&token)?;
    let after = last_event_id(&headers)?;
    let (account, session) = (claims.account(), claims.session());
    let events = app.links.subscribe(account, after).await?;
    // After subscribing: a change after this read comes as an event.
    let state = match app.links.session(account, session).await?.status {
        SessionStatus::Started => Flow::Watching(events, app.closing.clone()),
        SessionStatus::Completed { outcome, .. } => Flow::Ended(ended(Some(outcome.as_str()))),
        SessionStatus::Abandoned { .. } => Flow::Ended(ended(None)),
    };
    let retry = SseEvent::default().retry(RETRY).comment("session");
    let ended = stream::unfold(state, move |state| async move {
        match state {
            Flow::Ended(message) => Some((message, Flow::Done)),
            Flow::Done => None,
            Flow::Watching(mut events, mut closing) => loop {
                let event = tokio::select! {
                    event = events.next() => event.ok()?,
                    _ = closing.wait_for(|closing| *closing) => return None,
                };
                match &event.kind {
                    EventKind::SessionCompleted {
                        session: s,
                        outcome,
                        ..
                    } if *s == session => {
                        let message = ended(Some(outcome.as_str())).id(event.seq.to_string());
                        return Some((message, Flow::Done));
                    }
                    EventKind::SessionAbandoned { session: s, .. } if *s == session => {
                        let message = ended(None).id(event.seq.to_string());
                        return Some((message, Flow::Done));
                    }
                    // The phone took over: the page says so and keeps watching for the end.
                    EventKind::SessionHandedOff { session: s, .. } if *s == session => {
                        let message = SseEvent::default()
                            .event("handed_off")
                            .id(event.seq.to_string())
                            .data("{}");
                        return Some((message, Flow::Watching(events, closing)));
                    }
                    // Nothing of another session, or of the account, is sent.
                    _ => {}
                }
            },
        }
    });
    Ok(sse(stream::once(async move { retry }).chain(ended)))
}

/// Where the flow page's stream is.
enum Flow {
    /// Watching the account's events for the session's end.
    Watching(Subscription, tokio::sync::watch::Receiver<bool>),
    /// The session had ended when the stream started: say so.
    Ended(SseEvent),
    Done,
}

/// An `ended` message: the outcome of a completed session, none for an abandoned one.
fn ended(outcome: Option<&str>) -> SseEvent {
    let data = match outcome {
        Some(outcome) => serde_json::json!({"status": "completed", "outcome": outcome}),
        None => serde_json::json!({"status": "abandoned"}),
    };
    SseEvent::default().event("ended").data(data.to_string())
}
