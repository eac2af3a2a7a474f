//! Real time across PostgreSQL stores (features `background` and `postgres`): every change is
//! made through a second `PostgresStore` with its own pool on the same schema, as another
//! instance of the service would, so only `LISTEN`/`NOTIFY` (or the fallback poll) can tell
//! the first store about it; no in-process shortcut can pass these tests.
//!
//! Each test waits only on the first store's signal, subscription or dispatcher, with a
//! generous timeout that only keeps a broken build from hanging: none is a timing assertion.
//!
//! They read `DATABASE_URL` at run time and, without it, say why they skip and pass.

use std::sync::Arc;
use std::time::Duration;

use magic_link::store::sqlx;
use magic_link::store::{ChangeSignal, Changes, LinkStore, PostgresStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    Dispatcher, Transport, TransportError, WebhookRequest, WebhookResponse, WebhookSecret,
};
use magic_link::{AccountId, EventKind, IdempotencyKey, MagicLinks};
use tokio::sync::{mpsc, oneshot};

const SAFETY_NET: Duration = Duration::from_secs(30);

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping: DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// Two instances of a service on one fresh schema, each with its own pool; the second
/// notifies (or not).
struct Instances {
    first: PostgresStore,
    second: PostgresStore,
}

impl Instances {
    async fn new(second_notifies: bool) -> Option<Self> {
        let url = database_url()?;
        let pool = || async {
            PostgresStore::pool_options()
                .max_connections(2)
                .connect(&url)
                .await
                .expect("connect to DATABASE_URL")
        };
        let schema = format!("ml_test_{}", uuid::Uuid::new_v4().simple());
        let first = PostgresStore::builder(pool().await)
            .schema(&schema)
            .build()
            .unwrap();
        first.migrate().await.expect("migrate");
        let second = PostgresStore::builder(pool().await)
            .schema(&schema)
            .notify(second_notifies)
            .build()
            .unwrap();
        Some(Self { first, second })
    }

    async fn drop_schema(self) {
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.first.schema()))
            .execute(self.first.pool())
            .await
            .expect("drop schema");
    }
}

fn facade(store: PostgresStore) -> MagicLinks<PostgresStore> {
    MagicLinks::new(
        store,
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
}

/// A facade whose subscriptions' reader polls only every `poll` without a wake-up.
fn polling_every(store: PostgresStore, poll: Duration) -> MagicLinks<PostgresStore> {
    facade(store).subscription_poll_interval(poll)
}

async fn top_up(links: &MagicLinks<PostgresStore>, account: AccountId) {
    let key = IdempotencyKey::new(uuid::Uuid::new_v4().to_string()).unwrap();
    links.top_up(account, 1, key).await.unwrap();
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY_NET, future)
        .await
        .unwrap_or_else(|_| panic!("not within {SAFETY_NET:?}: {what}"))
}

#[tokio::test]
async fn a_change_committed_by_another_instance_raises_the_signal() {
    let Some(db) = Instances::new(true).await else {
        return;
    };
    let mut listener = db.first.changes().await.unwrap().listen();
    let other = facade(db.second.clone());
    let account = other.create_account(AccountId::new()).await.unwrap().id;
    top_up(&other, account).await;
    within("the notification", listener.changed()).await;
    let events = db.first.outbox_after(0, 10).await.unwrap();
    assert!(
        events.iter().any(|e| e.account == account),
        "woken after the commit: the change is readable"
    );
    db.drop_schema().await;
}

/// The reader's fallback poll is an hour: only the notification can bring the changes.
#[tokio::test]
async fn a_subscriber_sees_a_change_committed_by_another_instance() {
    let Some(db) = Instances::new(true).await else {
        return;
    };
    let links = polling_every(db.first.clone(), Duration::from_secs(3600));
    let other = facade(db.second.clone());
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    let mut events = links.subscribe(account, None).await.unwrap();
    top_up(&other, account).await;
    let first = within("the first change", events.next()).await.unwrap();
    assert!(matches!(first.kind, EventKind::CreditsAdded { .. }));
    top_up(&other, account).await;
    let second = within("the second change", events.next()).await.unwrap();
    assert!(second.seq > first.seq);
    assert_eq!(second.account, account);

    // A client that reconnects from the first event's cursor gets the second again.
    let mut resumed = links.subscribe(account, Some(first.seq)).await.unwrap();
    assert_eq!(
        within("the resumed event", resumed.next()).await.unwrap(),
        second
    );
    drop((events, resumed, links));
    db.drop_schema().await;
}

/// An instance that does not notify (as if every notification were lost): subscriptions find
/// its changes by the reader's fallback poll.
#[tokio::test]
async fn without_notifications_subscribers_still_get_changes() {
    let Some(db) = Instances::new(false).await else {
        return;
    };
    let links = polling_every(db.first.clone(), Duration::from_millis(200));
    let silent = facade(db.second.clone());
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    let mut events = links.subscribe(account, None).await.unwrap();
    top_up(&silent, account).await;
    let event = within("the polled change", events.next()).await.unwrap();
    assert!(matches!(event.kind, EventKind::CreditsAdded { .. }));
    drop((events, links));
    db.drop_schema().await;
}

/// A transport that answers 204 and reports each `webhook-id` it gets.
struct Reporting(mpsc::UnboundedSender<String>);

impl Transport for Reporting {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let _ = self.0.send(request.webhook_id);
        Ok(WebhookResponse::new(204))
    }
}

/// Runs a dispatcher over the first instance until the returned sender fires.
fn dispatch(
    dispatcher: Dispatcher<Arc<PostgresStore>, Reporting>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<usize>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        dispatcher
            .run(async {
                let _ = stopped.await;
            })
            .await
            .delivered
    });
    (stop, run)
}

/// The dispatcher's poll is an hour: only the notification of the other instance's commit can
/// bring the event within the test.
#[tokio::test]
async fn the_dispatcher_is_woken_by_another_instance() {
    let Some(db) = Instances::new(true).await else {
        return;
    };
    let store = Arc::new(db.first.clone());
    let other = facade(db.second.clone());
    let account = other.create_account(AccountId::new()).await.unwrap().id;
    other
        .set_webhook_endpoint(
            account,
            "https://hooks.example.com/idv",
            vec![WebhookSecret::generate().unwrap()],
        )
        .await
        .unwrap();
    let (sent, mut received) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new(store.clone(), Reporting(sent))
        .poll_interval(Duration::from_secs(3600))
        .wake_on_changes(store.changes().await.unwrap());
    let (stop, run) = dispatch(dispatcher);
    // Its first pass finds nothing to send.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    top_up(&other, account).await;
    let id = within("the webhook", received.recv()).await.unwrap();
    let events = other.events_after(account, 0, 10).await.unwrap();
    assert_eq!(id, events.last().unwrap().id.to_string());
    stop.send(()).unwrap();
    assert_eq!(within("run stops", run).await.unwrap(), 1);
    db.drop_schema().await;
}

/// A lost notification (a signal nobody raises, an instance that does not notify): the slow
/// poll delivers.
#[tokio::test]
async fn the_dispatcher_falls_back_to_its_poll() {
    let Some(db) = Instances::new(false).await else {
        return;
    };
    let store = Arc::new(db.first.clone());
    let silent = facade(db.second.clone());
    let account = silent.create_account(AccountId::new()).await.unwrap().id;
    silent
        .set_webhook_endpoint(
            account,
            "https://hooks.example.com/idv",
            vec![WebhookSecret::generate().unwrap()],
        )
        .await
        .unwrap();
    let (sent, mut received) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new(store.clone(), Reporting(sent))
        .poll_interval(Duration::from_millis(200))
        .wake_on_changes(ChangeSignal::new());
    let (stop, run) = dispatch(dispatcher);
    top_up(&silent, account).await;
    within("the webhook", received.recv()).await.unwrap();
    stop.send(()).unwrap();
    assert_eq!(within("run stops", run).await.unwrap(), 1);
    db.drop_schema().await;
}
