//! The work the server does besides answering requests: delivering the webhook outbox, and
//! abandoning sessions left open past their time to live. `serve` spawns both and stops them
//! at shutdown.

use std::time::Duration;

use magic_link::store::{LinkStore, WebhookStore};
use magic_link::webhooks::{Dispatcher, HttpTransport, Transport, TransportError};

use crate::errors::log_error;
use crate::AppState;

/// The dispatcher over HTTP(S).
pub(crate) fn dispatcher<S: WebhookStore>(
    store: S,
) -> Result<Dispatcher<S, HttpTransport>, TransportError> {
    Ok(Dispatcher::new(store, HttpTransport::new()?).timeout(Duration::from_secs(10)))
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

/// Abandons sessions left open past their time to live, releasing their credit, every 30
/// seconds for as long as the server runs.
pub(crate) async fn expire_sessions<S: LinkStore>(app: AppState<S>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        if let Err(err) = app.links.expire_sessions(500).await {
            eprintln!("expiring sessions failed: {err}");
        }
    }
}
