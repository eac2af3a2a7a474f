//! Real time on the in-memory store (feature `background`): the change signal wakes
//! `Dispatcher::run` at once, its slow poll still delivers when no wake-up comes, and
//! `MagicLinks::subscribe` yields an account's events from a cursor, then live, without gaps,
//! also for a subscriber that falls behind.
//!
//! Waits are bounded by generous timeouts that only keep a broken build from hanging; what is
//! asserted is what arrived (and, on Tokio's paused clock, that it arrived before the next
//! poll could have brought it).
//!
//! `tests/realtime_postgres.rs` does the same across two PostgreSQL stores.

use std::sync::Arc;
use std::time::Duration;

use magic_link::clock::ManualClock;
use magic_link::store::{ChangeSignal, Changes, MemoryStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    Dispatcher, Transport, TransportError, WebhookRequest, WebhookResponse, WebhookSecret,
};
use magic_link::{AccountId, Event, EventKind, IdempotencyKey, MagicLinks};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The longest any test waits for something.
const SAFETY_NET: Duration = Duration::from_secs(30);

type Store = Arc<MemoryStore>;

fn links_over(store: Store, clock: &ManualClock) -> MagicLinks<Store, ManualClock> {
    MagicLinks::new(
        store,
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(clock.clone())
}

/// A facade over a fresh store, and an account with a webhook endpoint.
async fn world() -> (Store, MagicLinks<Store, ManualClock>, AccountId) {
    let store = Store::default();
    let links = links_over(store.clone(), &ManualClock::at_timestamp(1_750_000_000));
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    links
        .set_webhook_endpoint(
            account,
            "https://hooks.example.com/idv",
            vec![WebhookSecret::generate().unwrap()],
        )
        .await
        .unwrap();
    (store, links, account)
}

/// Appends one event to `account`'s outbox (`credits.added`).
async fn change(links: &MagicLinks<Store, ManualClock>, account: AccountId) {
    let key = IdempotencyKey::new(uuid::Uuid::new_v4().to_string()).unwrap();
    links.top_up(account, 1, key).await.unwrap();
}

/// A transport that answers 204 and reports each `webhook-id` it gets.
struct Reporting(mpsc::UnboundedSender<String>);

impl Transport for Reporting {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let _ = self.0.send(request.webhook_id);
        Ok(WebhookResponse::new(204))
    }
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY_NET, future)
        .await
        .unwrap_or_else(|_| panic!("not within {SAFETY_NET:?}: {what}"))
}

#[tokio::test(start_paused = true)]
async fn the_dispatcher_wakes_on_a_committed_change() {
    let (store, links, account) = world().await;
    let (sent, mut received) = mpsc::unbounded_channel();
    let poll = Duration::from_secs(3600);
    let dispatcher = Dispatcher::new(store.clone(), Reporting(sent))
        .poll_interval(poll)
        .wake_on_changes(store.changes().await.unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let next_poll = Instant::now() + poll;
    let run = tokio::spawn(async move {
        dispatcher
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    tokio::time::sleep(Duration::from_secs(60)).await; // idle after its first pass
    change(&links, account).await; // nothing but the store's own signal wakes it
    let id = within("the event is sent", received.recv()).await.unwrap();
    let events = links.events_after(account, 0, 10).await.unwrap();
    assert_eq!(id, events.last().unwrap().id.to_string());
    // Tokio's clock is paused and moves only to the next timer: without the wake-up, the
    // event would be sent with the next poll, an hour after the first pass.
    assert!(Instant::now() < next_poll, "woken, not polled");

    stop.send(()).unwrap();
    assert_eq!(within("run stops", run).await.unwrap().delivered, 1);
}

/// A lost notification (here: a signal nobody raises) costs only time: the slow poll, 5 s by
/// default when woken by changes, still delivers.
#[tokio::test(start_paused = true)]
async fn without_a_wake_up_the_slow_poll_still_delivers() {
    let (store, links, account) = world().await;
    let (sent, mut received) = mpsc::unbounded_channel();
    let dispatcher =
        Dispatcher::new(store.clone(), Reporting(sent)).wake_on_changes(ChangeSignal::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        dispatcher
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // Between two polls (they come every 5 s from the start).
    tokio::time::sleep(Duration::from_millis(62_500)).await;
    let changed_at = Instant::now();
    change(&links, account).await;
    within("the event is sent", received.recv()).await.unwrap();
    let waited = Instant::now() - changed_at;
    assert!(
        waited <= Duration::from_secs(5),
        "sent by the next poll, 5 s at most: {waited:?}"
    );

    stop.send(()).unwrap();
    assert_eq!(within("run stops", run).await.unwrap().delivered, 1);
}

/// The reader's fallback poll is an hour: only the store's signal can bring the change.
#[tokio::test]
async fn a_subscriber_sees_a_committed_change_without_polling() {
    let (_store, links, account) = world().await;
    let links = links.subscription_poll_interval(Duration::from_secs(3600));
    let mut events = links.subscribe(account, None).await.unwrap();
    // The first change may be found by the reader's first read; by the second, it is idle.
    for _ in 0..2 {
        change(&links, account).await;
        let event = within("the change arrives", events.next()).await.unwrap();
        assert_eq!(event.account, account);
        assert!(matches!(
            event.kind,
            EventKind::CreditsAdded { amount: 1, .. }
        ));
        assert_eq!(events.cursor(), event.seq);
    }
}

/// A subscription from a cursor yields the account's events after it, in order, then the live
/// ones; another account's events never.
#[tokio::test]
async fn a_subscription_resumes_from_its_cursor_without_gaps() {
    let (store, links, account) = world().await;
    let other = links.create_account(AccountId::new()).await.unwrap().id;
    for _ in 0..3 {
        change(&links, account).await;
        change(&links, other).await;
    }
    let before = links.events_after(account, 0, 100).await.unwrap();
    assert_eq!(before.len(), 3);
    let mut events = links.subscribe(account, Some(before[0].seq)).await.unwrap();
    for expected in &before[1..] {
        assert_eq!(
            &within("a past event", events.next()).await.unwrap(),
            expected
        );
    }
    change(&links, other).await;
    change(&links, account).await;
    let live = within("a live event", events.next()).await.unwrap();
    let all = links.events_after(account, 0, 100).await.unwrap();
    assert_eq!(&live, all.last().unwrap());
    assert_eq!(all.len(), 4);
    assert_eq!(events.cursor(), live.seq);

    // Resuming from the cursor: only what came after it.
    change(&links, account).await;
    let mut resumed = links
        .subscribe(account, Some(events.cursor()))
        .await
        .unwrap();
    let next = within("the next event", resumed.next()).await.unwrap();
    assert_eq!(next.seq, store.outbox_head().await.unwrap());
    assert!(next.seq > live.seq);
}

/// A burst larger than a subscription's queue (512): the reader drops the queues it cannot
/// fill and the subscriptions catch up from the store, so each still gets every event of its
/// account once, in order.
#[tokio::test]
async fn subscribers_that_fall_behind_catch_up_without_gaps() {
    let (_store, links, account) = world().await;
    let other = links.create_account(AccountId::new()).await.unwrap().id;
    let mut first = links.subscribe(account, None).await.unwrap();
    let mut slow = links.subscribe(account, None).await.unwrap();
    // Both are registered with the reader before the burst.
    change(&links, account).await;
    let warm_up = within("the first event", first.next()).await.unwrap();
    assert_eq!(
        within("the first event", slow.next()).await.unwrap(),
        warm_up
    );

    for i in 0..1500 {
        change(&links, account).await;
        if i % 3 == 0 {
            change(&links, other).await;
        }
    }
    let expected: Vec<Event> = links
        .events_after(account, warm_up.seq, 10_000)
        .await
        .unwrap();
    assert_eq!(expected.len(), 1500);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(within("the burst", first.next()).await.unwrap());
    }
    assert!(
        got == expected,
        "the first subscriber got every event in order"
    );
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(within("the burst", slow.next()).await.unwrap());
    }
    assert!(
        got == expected,
        "the slow subscriber got every event in order"
    );
}

/// A store of your own raises its signal; a listener made before the raise sees it even if it
/// waits only afterwards, and a raise with no one listening is not lost for the next waiter.
#[tokio::test]
async fn a_listener_sees_raises_since_it_was_made() {
    let signal = ChangeSignal::new();
    let mut listener = signal.listen();
    assert!(!listener.has_changed());
    signal.raise();
    assert!(listener.has_changed());
    within("the raise", listener.changed()).await;
    assert!(!listener.has_changed());
    let waiting = tokio::spawn(async move {
        listener.changed().await;
    });
    tokio::task::yield_now().await;
    signal.raise();
    within("the waiting task is woken", waiting).await.unwrap();
}
