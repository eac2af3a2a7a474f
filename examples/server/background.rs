//! The work the server does besides answering requests, with the crate's own loops (feature
//! `background`): the dispatcher delivers the webhook outbox, and the sweepers abandon sessions
//! left open past their time to live, report expired links and prune records older than the
//! retention period (`RETENTION_DAYS`). `serve` runs them until
//! shutdown; the dispatcher then lets sends in flight finish and gives back the rest.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use magic_link::clock::Clock;
use magic_link::store::{ChangeSignal, LinkStore, WebhookStore};
use magic_link::webhooks::{AllowList, Dispatcher, HttpTransport, TransportError};

use crate::errors::log_error;
use crate::AppState;

/// The dispatcher over HTTP(S), woken by the store's `changes` signal. It sends to public addresses, to the server's own address
/// (`own`: its demo inbox) and to what `allow` names (`WEBHOOK_ALLOW_NETWORKS`), nowhere else.
pub(crate) fn dispatcher<S: WebhookStore>(
    store: S,
    changes: ChangeSignal,
    own: SocketAddr,
    allow: AllowList,
) -> Result<Dispatcher<S, HttpTransport>, TransportError> {
    let transport = HttpTransport::builder()
        .allow_socket_addr(own)
        .allow(allow)
        .build()?;
    Ok(Dispatcher::new(store, transport)
        .timeout(Duration::from_secs(10))
        // Woken as soon as a change commits; the poll (5 s) is the fallback.
        .wake_on_changes(changes)
        .shutdown_grace(Duration::from_secs(5))
        .on_error(|err| log_error("webhook delivery", err)))
}

/// Abandons sessions left open past their time to live and reports expired links
/// (`link.expired`), every 30 seconds, and prunes what is older than `retention` (finished
/// sessions, delivered webhook events, spent hand-offs: see `MagicLinks::prune`; statistics
/// and the ledger stay exact) every hour, starting at once; `None` prunes nothing. Until
/// `shutdown`.
pub(crate) async fn sweep<S: LinkStore>(
    app: AppState<S>,
    retention: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) {
    let prune = async {
        let Some(retention) = retention else {
            return std::future::pending().await;
        };
        let retention = chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = app.links.clock().now() - retention;
            if let Err(err) = app.links.prune(before).await {
                log_error("pruning old records", &err);
            }
        }
    };
    let links = async {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(err) = app.links.expire_links(500).await {
                log_error("expiring links", &err);
            }
        }
    };
    let sessions = app.links.run_session_sweeper(
        Duration::from_secs(30),
        |err| log_error("expiring sessions", err),
        shutdown,
    );
    tokio::select! {
        _ = sessions => {}
        () = links => {}
        () = prune => {}
    }
}
