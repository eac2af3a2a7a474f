//! Background work (feature `background`): `Dispatcher::run` and
//! `MagicLinks::run_session_sweeper`, on Tokio's paused clock (timers) and a manual clock (the
//! time the store is told). Timeouts here are safety nets; what is asserted is the state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use magic_link::clock::{Clock, ManualClock};
use magic_link::store::{LinkStore, MemoryStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    Attempt, Claim, Delivery, DeliveryStatus, Dispatcher, Endpoint, Lease, NextStep, Transport,
    TransportError, WebhookRequest, WebhookResponse, WebhookSecret,
};
use magic_link::{
    AbandonReason, Account, AccountId, Error, Event, EventId, Flow, IdempotencyKey, LedgerEntry,
    Link, LinkId, LinkStats, MagicLinks, NewLink, Outcome, Page, Paged, Session, SessionId,
    SessionStatus, SessionTtl, UsageLimit,
};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest any test waits for something, in Tokio's (paused) time.
const SAFETY_NET: Duration = Duration::from_secs(24 * 3600);

type Store = Arc<MemoryStore>;

struct World {
    clock: ManualClock,
    store: Store,
    links: MagicLinks<Store, ManualClock>,
    account: AccountId,
}

/// An account with an endpoint and credits, on a manual clock.
async fn world() -> World {
    let clock = ManualClock::at_timestamp(1_750_000_000);
    let store = Store::default();
    let links = links_over(store.clone(), &clock);
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    links
        .set_webhook_endpoint(
            account,
            "https://hooks.example.com/idv",
            vec![WebhookSecret::generate().unwrap()],
        )
        .await
        .unwrap();
    World {
        clock,
        store,
        links,
        account,
    }
}

fn links_over<S: LinkStore>(store: S, clock: &ManualClock) -> MagicLinks<S, ManualClock> {
    MagicLinks::new(
        store,
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(clock.clone())
    .session_ttl(SessionTtl::new(TimeDelta::seconds(60)).unwrap())
}

/// Appends one event (`credits.added`) and returns its id.
async fn event(w: &World) -> EventId {
    let key = IdempotencyKey::new(EventId::new().to_string()).unwrap();
    w.links.top_up(w.account, 1, key).await.unwrap();
    let events = w.links.events_after(w.account, 0, 10_000).await.unwrap();
    events.last().expect("the event").id
}

/// Waits (in Tokio's time) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let polled = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(SAFETY_NET, polled)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"));
}

/// Waits for a background task to end.
async fn ended<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(SAFETY_NET, task)
        .await
        .expect("the task stops on shutdown")
        .expect("the task does not panic")
}

/// A shutdown signal: the future to hand over and the trigger.
fn shutdown() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async {
        let _ = stopped.await;
    })
}

/// A receiver that answers `204`, after a delay set per event, and counts what it received
/// by `webhook-id` when it answers (a send cancelled before its answer is not received).
#[derive(Debug, Default)]
struct Receiver {
    delays: Mutex<HashMap<String, Duration>>,
    started: AtomicUsize,
    received: Mutex<HashMap<String, usize>>,
}

impl Receiver {
    fn delay(&self, event: EventId, delay: Duration) {
        self.delays.lock().unwrap().insert(event.to_string(), delay);
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn received(&self) -> HashMap<String, usize> {
        self.received.lock().unwrap().clone()
    }

    fn has(&self, event: EventId) -> bool {
        self.received().contains_key(&event.to_string())
    }
}

impl Transport for Receiver {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let delay = self
            .delays
            .lock()
            .unwrap()
            .get(&request.webhook_id)
            .copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        *self
            .received
            .lock()
            .unwrap()
            .entry(request.webhook_id)
            .or_default() += 1;
        Ok(WebhookResponse::new(204))
    }
}

fn is_delivered(delivery: &Delivery) -> bool {
    matches!(delivery.status, DeliveryStatus::Delivered { .. })
}

#[tokio::test(start_paused = true)]
async fn the_dispatcher_delivers_events_that_appear_while_it_runs() {
    let w = world().await;
    let receiver = Arc::new(Receiver::default());
    let dispatcher = Dispatcher::new(w.store.clone(), receiver.clone()).with_clock(w.clock.clone());
    let (stop, signal) = shutdown();
    let run = tokio::spawn(async move { dispatcher.run(signal).await });

    // It idles through a few polls with nothing to send, then events appear.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(receiver.received().is_empty());
    let first = event(&w).await;
    eventually("the first event is received", || receiver.has(first)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = event(&w).await;
    let third = event(&w).await;
    eventually("the later events are received", || {
        receiver.has(second) && receiver.has(third)
    })
    .await;

    stop.send(()).unwrap();
    let report = ended(run).await;
    assert_eq!(report.delivered, 3);
    assert_eq!(report.attempted, 3);
    assert_eq!(report.released, 0);
    assert_eq!(report.store_errors, 0);
    for event in [first, second, third] {
        assert!(is_delivered(
            &w.store.delivery(w.account, event).await.unwrap()
        ));
    }
    assert!(receiver.received().values().all(|&n| n == 1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_sends_finish_within_the_grace_period_and_gives_the_rest_back() {
    let w = world().await;
    let receiver = Arc::new(Receiver::default());
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for i in 0..8 {
        let e = event(&w).await;
        if i % 2 == 0 {
            receiver.delay(e, Duration::from_secs(2));
            fast.push(e);
        } else {
            receiver.delay(e, Duration::from_secs(100));
            slow.push(e);
        }
    }
    let dispatcher = Dispatcher::new(w.store.clone(), receiver.clone())
        .with_clock(w.clock.clone())
        .shutdown_grace(Duration::from_secs(10));
    let (stop, signal) = shutdown();
    let run = tokio::spawn(async move { dispatcher.run(signal).await });

    eventually("all eight sends are under way", || receiver.started() == 8).await;
    stop.send(()).unwrap();
    let report = ended(run).await;
    assert_eq!(report.attempted, 8);
    assert_eq!(
        report.delivered, 4,
        "the sends that finished within the grace"
    );
    assert_eq!(report.released, 4, "the sends cut at the end of the grace");
    assert_eq!(report.store_errors, 0);

    // Nothing is lost or left leased: delivered, or pending with no lease and no attempt.
    for &e in &fast {
        assert!(is_delivered(&w.store.delivery(w.account, e).await.unwrap()));
    }
    for &e in &slow {
        let d = w.store.delivery(w.account, e).await.unwrap();
        assert_eq!(
            d.status,
            DeliveryStatus::Pending {
                next_attempt_at: w.clock.now()
            }
        );
        assert_eq!(d.leased_until, None, "released, not left leased");
        assert_eq!(d.attempts, 0, "a cancelled send is no attempt");
    }

    // Another dispatcher delivers the rest at once: the manual clock has not moved, so only
    // the release (not a lease running out) lets it claim them.
    receiver.delays.lock().unwrap().clear();
    let second = Dispatcher::new(w.store.clone(), receiver.clone()).with_clock(w.clock.clone());
    let report = second.run_once().await.unwrap();
    assert_eq!(report.delivered, 4);
    for &e in fast.iter().chain(&slow) {
        assert!(is_delivered(&w.store.delivery(w.account, e).await.unwrap()));
    }
    // Each event reached the receiver exactly once in all.
    let received = receiver.received();
    assert_eq!(received.len(), 8);
    assert!(received.values().all(|&n| n == 1), "{received:?}");
}

#[tokio::test(start_paused = true)]
async fn claims_taken_as_shutdown_fires_are_given_back_unsent() {
    let w = world().await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(event(&w).await);
    }
    let store = Faulty::new(w.store.clone());
    let gate = store.gate_claims();
    let receiver = Arc::new(Receiver::default());
    let dispatcher = Dispatcher::new(store.clone(), receiver.clone()).with_clock(w.clock.clone());
    let (stop, signal) = shutdown();
    let run = tokio::spawn(async move { dispatcher.run(signal).await });

    eventually("a claim is under way", || store.claims_waiting() == 1).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    gate.notify_one();
    let report = ended(run).await;
    assert_eq!(report.attempted, 0);
    assert_eq!(report.released, 3);
    assert_eq!(receiver.started(), 0, "nothing is sent after shutdown");
    for e in events {
        let d = w.store.delivery(w.account, e).await.unwrap();
        assert!(matches!(d.status, DeliveryStatus::Pending { .. }));
        assert_eq!(d.leased_until, None);
    }
}

#[tokio::test(start_paused = true)]
async fn store_failures_make_it_back_off_then_it_recovers() {
    let w = world().await;
    let e = event(&w).await;
    let store = Faulty::new(w.store.clone());
    store.fail_queueing(4);
    let errors = Arc::new(AtomicUsize::new(0));
    let receiver = Arc::new(Receiver::default());
    let dispatcher = Dispatcher::new(store.clone(), receiver.clone())
        .with_clock(w.clock.clone())
        .poll_interval(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(3))
        .on_error({
            let errors = errors.clone();
            move |err| {
                assert!(matches!(err, Error::Backend(_)), "{err:?}");
                errors.fetch_add(1, Ordering::SeqCst);
            }
        });
    let (stop, signal) = shutdown();
    let run = tokio::spawn(async move { dispatcher.run(signal).await });

    eventually("seven passes", || store.queue_calls().len() >= 7).await;
    stop.send(()).unwrap();
    let report = ended(run).await;
    assert!(receiver.has(e), "it recovered and delivered");
    assert_eq!(report.delivered, 1);
    assert_eq!(report.store_errors, 4);
    assert_eq!(errors.load(Ordering::SeqCst), 4);

    // Waits between passes, in whole seconds of Tokio's paused time: 1, 2, 3 and 3 after the
    // four failures (doubling from the poll interval, capped at 3); then at once after the
    // pass that delivered, and one poll interval after the idle one.
    let calls = store.queue_calls();
    let waits: Vec<u128> = calls.windows(2).take(6).map(seconds_between).collect();
    assert_eq!(waits, [1, 2, 3, 3, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_cuts_the_idle_wait_short() {
    let w = world().await;
    let receiver = Arc::new(Receiver::default());
    let wake = Arc::new(Notify::new());
    let poll = Duration::from_secs(3600);
    let dispatcher = Dispatcher::new(w.store.clone(), receiver.clone())
        .with_clock(w.clock.clone())
        .poll_interval(poll)
        .wake_on(wake.clone());
    let (stop, signal) = shutdown();
    let next_poll = Instant::now() + poll;
    let run = tokio::spawn(async move { dispatcher.run(signal).await });

    tokio::time::sleep(Duration::from_secs(60)).await; // idle after its first pass
    let e = event(&w).await;
    wake.notify_one();
    eventually("the event is received", || receiver.has(e)).await;
    // Tokio's clock is paused and moves only to the next timer: without the wake-up, the
    // event would arrive with the next poll, an hour after the first pass.
    assert!(Instant::now() < next_poll, "woken, not polled");

    stop.send(()).unwrap();
    assert_eq!(ended(run).await.delivered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_before_the_start_does_nothing() {
    let w = world().await;
    let e = event(&w).await;
    let receiver = Arc::new(Receiver::default());
    let dispatcher = Dispatcher::new(w.store.clone(), receiver.clone()).with_clock(w.clock.clone());
    let report = dispatcher.run(async {}).await;
    assert_eq!(report.attempted, 0);
    assert_eq!(receiver.started(), 0);
    assert!(
        w.store.delivery(w.account, e).await.is_err(),
        "the outbox was not even read"
    );
}

/// Starts a session on a fresh unlimited link.
async fn started_session<S: LinkStore>(
    links: &MagicLinks<S, ManualClock>,
    account: AccountId,
) -> SessionId {
    let created = links
        .create_link(
            account,
            NewLink::new("Sweep", Flow::Selfie).limit(UsageLimit::Unlimited),
        )
        .await
        .unwrap();
    links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap()
        .session
        .id
}

async fn funded<S: LinkStore>(links: &MagicLinks<S, ManualClock>) -> AccountId {
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    links
        .top_up(account, 10, IdempotencyKey::new("seed").unwrap())
        .await
        .unwrap();
    account
}

fn is_expired(session: &Session) -> bool {
    matches!(
        session.status,
        SessionStatus::Abandoned {
            reason: AbandonReason::Expired,
            ..
        }
    )
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_abandons_expired_sessions_until_shutdown() {
    let w = world().await;
    let links = Arc::new(links_over(w.store.clone(), &w.clock));
    let account = funded(&links).await;
    let a = started_session(&links, account).await;
    let b = started_session(&links, account).await;
    w.clock.advance(TimeDelta::seconds(61)); // a and b are past their 60 s

    let (stop, signal) = shutdown();
    let run = tokio::spawn({
        let links = links.clone();
        async move {
            links
                .run_session_sweeper(
                    Duration::from_secs(30),
                    |err| panic!("no store failure: {err}"),
                    signal,
                )
                .await
        }
    });
    let swept = |ids: Vec<SessionId>| {
        let links = links.clone();
        move || {
            ids.iter().all(|&id| {
                let session = links.store().session(account, id);
                is_expired(&now_or_never(session).unwrap().unwrap())
            })
        }
    };
    eventually("a and b are abandoned", swept(vec![a, b])).await;

    // A session that expires while the sweeper runs is abandoned by a later sweep; one that
    // has not expired stays open.
    let c = started_session(&links, account).await;
    w.clock.advance(TimeDelta::seconds(61));
    let d = started_session(&links, account).await;
    eventually("c is abandoned", swept(vec![c])).await;
    tokio::time::sleep(Duration::from_secs(120)).await; // a few more sweeps
    let d = links.session(account, d).await.unwrap();
    assert_eq!(d.status, SessionStatus::Started);

    stop.send(()).unwrap();
    assert_eq!(ended(run).await, 3);
    let account = links.account(account).await.unwrap();
    assert_eq!(account.held, 1, "only d still holds a credit");
    assert_eq!(account.balance, 10, "expired sessions bill nothing");
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_backs_off_on_store_failures() {
    let clock = ManualClock::at_timestamp(1_750_000_000);
    let store = Faulty::new(Store::default());
    let links = Arc::new(links_over(store.clone(), &clock));
    let account = funded(&links).await;
    let session = started_session(&links, account).await;
    clock.advance(TimeDelta::seconds(61));
    store.fail_expiring(2);

    let errors = Arc::new(AtomicUsize::new(0));
    let (stop, signal) = shutdown();
    let run = tokio::spawn({
        let links = links.clone();
        let errors = errors.clone();
        async move {
            let count = move |_: &Error| {
                errors.fetch_add(1, Ordering::SeqCst);
            };
            links
                .run_session_sweeper(Duration::from_secs(30), count, signal)
                .await
        }
    });
    eventually("four sweeps", || store.expire_calls().len() >= 4).await;
    stop.send(()).unwrap();
    assert_eq!(ended(run).await, 1);
    assert_eq!(errors.load(Ordering::SeqCst), 2);
    assert!(is_expired(&links.session(account, session).await.unwrap()));

    // Sweeps at 0 s (fails), 30 s (fails), 90 s (abandons the session), 120 s.
    let calls = store.expire_calls();
    let waits: Vec<u128> = calls.windows(2).take(3).map(seconds_between).collect();
    assert_eq!(waits, [30, 60, 30]);
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_stops_at_once_while_idle() {
    let w = world().await;
    let (stop, signal) = shutdown();
    let links = Arc::new(links_over(w.store.clone(), &w.clock));
    let period = Duration::from_secs(3600);
    let next_sweep = Instant::now() + period;
    let run = tokio::spawn({
        let links = links.clone();
        async move { links.run_session_sweeper(period, |_| {}, signal).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(()).unwrap();
    assert_eq!(ended(run).await, 0);
    assert!(
        Instant::now() < next_sweep,
        "stopped, not at its next sweep"
    );
}

/// The time between two calls in whole seconds (timers fire on whole milliseconds).
fn seconds_between(calls: &[Instant]) -> u128 {
    (calls[1] - calls[0]).as_millis().saturating_add(500) / 1000
}

/// Polls a future once; the memory store answers without waiting.
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// A shared [`MemoryStore`] that can fail or hold calls, and notes when calls were made.
#[derive(Debug, Clone, Default)]
struct Faulty {
    inner: Store,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_queueing: AtomicUsize,
    fail_expiring: AtomicUsize,
    queue_calls: Mutex<Vec<Instant>>,
    expire_calls: Mutex<Vec<Instant>>,
    claim_gate: Mutex<Option<Arc<Notify>>>,
    claims_waiting: AtomicUsize,
}

impl Faulty {
    fn new(inner: Store) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }

    /// The next `n` calls of `queue_deliveries` fail.
    fn fail_queueing(&self, n: usize) {
        self.faults.fail_queueing.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls of `expire_sessions` fail.
    fn fail_expiring(&self, n: usize) {
        self.faults.fail_expiring.store(n, Ordering::SeqCst);
    }

    /// Makes the next `claim_due` wait for the returned gate.
    fn gate_claims(&self) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        *self.faults.claim_gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    fn claims_waiting(&self) -> usize {
        self.faults.claims_waiting.load(Ordering::SeqCst)
    }

    fn queue_calls(&self) -> Vec<Instant> {
        self.faults.queue_calls.lock().unwrap().clone()
    }

    fn expire_calls(&self) -> Vec<Instant> {
        self.faults.expire_calls.lock().unwrap().clone()
    }

    fn failure(counter: &AtomicUsize) -> Result<(), Error> {
        let left = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match left {
            Ok(_) => Err(Error::backend(std::io::Error::other(
                "the database is down",
            ))),
            Err(_) => Ok(()),
        }
    }
}

impl LinkStore for Faulty {
    async fn create_account(&self, account: Account) -> Result<Account, Error> {
        self.inner.create_account(account).await
    }
    async fn insert_link(&self, link: Link) -> Result<Link, Error> {
        self.inner.insert_link(link).await
    }
    async fn redeem(
        &self,
        link: LinkId,
        session: SessionId,
        key: Option<magic_link::start::StartKeyHash>,
        reference: Option<magic_link::Reference>,
        ttl: SessionTtl,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner
            .redeem(link, session, key, reference, ttl, now)
            .await
    }
    async fn started_session(
        &self,
        link: LinkId,
        key: magic_link::start::StartKeyHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Error> {
        self.inner.started_session(link, key, now).await
    }
    async fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: magic_link::start::HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner
            .create_handoff(account, session, handoff, expires_at, now)
            .await
    }
    async fn accept_handoff(
        &self,
        handoff: magic_link::start::HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.accept_handoff(handoff, now).await
    }
    async fn check_handoff(
        &self,
        handoff: magic_link::start::HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.check_handoff(handoff, now).await
    }
    async fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.complete(account, session, outcome, now).await
    }
    async fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.review(account, session, decision, now).await
    }
    async fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.abandon(account, session, now).await
    }
    async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.faults
            .expire_calls
            .lock()
            .unwrap()
            .push(Instant::now());
        Self::failure(&self.faults.fail_expiring)?;
        self.inner.expire_sessions(now, limit).await
    }
    async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.inner.expire_links(now, limit).await
    }
    async fn prune(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<magic_link::Pruned, Error> {
        self.inner.prune(before, limit).await
    }
    async fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.inner.deactivate(account, link, now).await
    }
    async fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.inner.redact_link(account, link, now).await
    }
    async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.inner.redact_session(account, session, now).await
    }
    async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Account, Error> {
        self.inner.top_up(account, amount, key, now).await
    }
    async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
        self.inner.inspect(link).await
    }
    async fn set_profile(
        &self,
        account: AccountId,
        profile: magic_link::AccountProfile,
    ) -> Result<Account, Error> {
        self.inner.set_profile(account, profile).await
    }
    async fn return_secrets(
        &self,
        account: AccountId,
    ) -> Result<Option<magic_link::returns::ReturnSecrets>, Error> {
        self.inner.return_secrets(account).await
    }
    async fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: magic_link::returns::ReturnSecret,
    ) -> Result<(), Error> {
        self.inner.rotate_return_secret(account, secret).await
    }
    async fn record_view(
        &self,
        link: LinkId,
        change: magic_link::funnel::ViewChange,
    ) -> Result<magic_link::funnel::ViewCounts, Error> {
        self.inner.record_view(link, change).await
    }
    async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.inner.link(account, link).await
    }
    async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        self.inner.links(account, page).await
    }
    async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &magic_link::Reference,
    ) -> Result<Vec<Link>, Error> {
        self.inner.links_by_reference(account, reference).await
    }
    async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &magic_link::Reference,
    ) -> Result<Vec<Session>, Error> {
        self.inner.sessions_by_reference(account, reference).await
    }
    async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        self.inner.session(account, session).await
    }
    async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        self.inner.sessions(account, link, page).await
    }
    async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        self.inner.stats(account, link).await
    }
    async fn account(&self, account: AccountId) -> Result<Account, Error> {
        self.inner.account(account).await
    }
    async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
        self.inner.ledger(account, page).await
    }
    async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        self.inner.outbox_after(cursor, limit).await
    }
}

impl WebhookStore for Faulty {
    async fn set_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        self.inner.set_endpoint(endpoint).await
    }
    async fn endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        self.inner.endpoint(account).await
    }
    async fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Endpoint, Error> {
        self.inner.disable_endpoint(account, now).await
    }
    async fn queue_deliveries(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.faults.queue_calls.lock().unwrap().push(Instant::now());
        Self::failure(&self.faults.fail_queueing)?;
        self.inner.queue_deliveries(now, limit).await
    }
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, Error> {
        let gate = self.faults.claim_gate.lock().unwrap().take();
        if let Some(gate) = gate {
            self.faults.claims_waiting.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
        }
        self.inner.claim_due(now, lease, limit).await
    }
    async fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<bool, Error> {
        self.inner.record_attempt(lease, attempt, next).await
    }
    async fn release(&self, lease: Lease) -> Result<bool, Error> {
        self.inner.release(lease).await
    }
    async fn delivery(&self, account: AccountId, event: EventId) -> Result<Delivery, Error> {
        self.inner.delivery(account, event).await
    }
    async fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        self.inner.failed_deliveries(account, page).await
    }
    async fn requeue(
        &self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Delivery, Error> {
        self.inner.requeue(account, event, now).await
    }
    async fn prune_delivered(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.inner.prune_delivered(before, limit).await
    }
}

/// `Dispatcher::run` on PostgreSQL, in real time: the unfinished claims are released there
/// too. Reads `DATABASE_URL` at run time and, without it, says why it skips.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use magic_link::store::{sqlx, PostgresStore};

    #[tokio::test]
    async fn shutdown_releases_unfinished_claims_on_postgres() {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!(
                "skipping: DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return;
        };
        let pool = PostgresStore::pool_options()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        let schema = format!("ml_test_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::builder(pool.clone())
            .schema(schema.clone())
            .build()
            .expect("a valid schema name");
        store.migrate().await.expect("migrate");

        let clock = ManualClock::at_timestamp(1_750_000_000);
        let links = links_over(store.clone(), &clock);
        let account = links.create_account(AccountId::new()).await.unwrap().id;
        links
            .set_webhook_endpoint(
                account,
                "https://hooks.example.com/idv",
                vec![WebhookSecret::generate().unwrap()],
            )
            .await
            .unwrap();
        let receiver = Arc::new(Receiver::default());
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for i in 0..6 {
            let key = IdempotencyKey::new(format!("top-up-{i}")).unwrap();
            links.top_up(account, 1, key).await.unwrap();
            let e = links
                .events_after(account, 0, 100)
                .await
                .unwrap()
                .last()
                .unwrap()
                .id;
            if i % 2 == 0 {
                fast.push(e);
            } else {
                receiver.delay(e, Duration::from_secs(3600));
                slow.push(e);
            }
        }

        let dispatcher = Dispatcher::new(store.clone(), receiver.clone())
            .with_clock(clock.clone())
            .shutdown_grace(Duration::from_millis(200));
        let (stop, signal) = shutdown();
        let run = tokio::spawn(async move { dispatcher.run(signal).await });
        // Shut down once the fast sends are recorded and the slow ones are under way.
        let settled = async {
            loop {
                let mut delivered = 0;
                for &e in &fast {
                    if store
                        .delivery(account, e)
                        .await
                        .is_ok_and(|d| is_delivered(&d))
                    {
                        delivered += 1;
                    }
                }
                if delivered == fast.len() && receiver.started() == 6 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), settled)
            .await
            .expect("the fast sends are recorded");
        stop.send(()).unwrap();
        let report = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("it stops")
            .unwrap();
        assert_eq!((report.delivered, report.released), (3, 3));

        for &e in &slow {
            let d = store.delivery(account, e).await.unwrap();
            assert!(matches!(d.status, DeliveryStatus::Pending { .. }));
            assert_eq!(d.leased_until, None, "released, not left leased");
            assert_eq!(d.attempts, 0);
        }
        receiver.delays.lock().unwrap().clear();
        let second = Dispatcher::new(store.clone(), receiver.clone()).with_clock(clock.clone());
        assert_eq!(second.run_once().await.unwrap().delivered, 3);
        let received = receiver.received();
        assert_eq!(received.len(), 6);
        assert!(received.values().all(|&n| n == 1), "{received:?}");

        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&pool)
            .await
            .expect("drop schema");
        pool.close().await;
    }
}
