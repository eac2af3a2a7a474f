//! Delivery from the outbox with a manual clock and a scripted transport: success, the
//! default schedule, 410, Retry-After, exhaustion, restarts.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use magic_link::clock::{Clock, ManualClock};
use magic_link::store::{MemoryStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    AttemptOutcome, DeliveryStatus, Dispatcher, FailReason, RetrySchedule, Transport,
    TransportError, WebhookHeaders, WebhookPayload, WebhookRequest, WebhookResponse, WebhookSecret,
    WebhookVerifier,
};
use magic_link::{
    AccountId, Event, EventId, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, Page, Rejection,
};

type Store = Arc<MemoryStore>;

/// What the scripted transport answers next.
#[derive(Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    Timeout,
    Refused,
    /// Never answers: the process "crashes" mid-request.
    Hang,
}

/// Answers from a script (then `200`), and records every request with the clock's time.
#[derive(Debug)]
struct Scripted {
    clock: ManualClock,
    script: Mutex<VecDeque<Reply>>,
    sent: Mutex<Vec<(DateTime<Utc>, WebhookRequest)>>,
}

impl Scripted {
    fn new(clock: &ManualClock, script: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        Arc::new(Self {
            clock: clock.clone(),
            script: Mutex::new(script.into_iter().collect()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<(DateTime<Utc>, WebhookRequest)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Transport for Scripted {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        self.sent.lock().unwrap().push((self.clock.now(), request));
        let reply = self.script.lock().unwrap().pop_front();
        match reply.unwrap_or(Reply::Status(200)) {
            Reply::Status(code) => Ok(WebhookResponse::new(code)),
            Reply::RetryAfter(code, after) => {
                Ok(WebhookResponse::new(code).with_retry_after(after))
            }
            Reply::Timeout => Err(TransportError::Timeout),
            Reply::Refused => Err(TransportError::failed(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))),
            Reply::Hang => std::future::pending().await,
        }
    }
}

struct World {
    clock: ManualClock,
    links: MagicLinks<Store, ManualClock>,
    account: AccountId,
    secrets: [WebhookSecret; 2],
}

const URL: &str = "https://hooks.example.com/idv/t0k3n";

async fn world() -> World {
    let clock = ManualClock::at_timestamp(1_750_000_000);
    let links = MagicLinks::new(
        Arc::new(MemoryStore::new()),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(clock.clone());
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    let secrets = [
        WebhookSecret::generate().unwrap(),
        WebhookSecret::generate().unwrap(),
    ];
    links
        .set_webhook_endpoint(account, URL, secrets.to_vec())
        .await
        .unwrap();
    World {
        clock,
        links,
        account,
        secrets,
    }
}

impl World {
    fn dispatcher(
        &self,
        transport: &Arc<Scripted>,
    ) -> Dispatcher<Store, Arc<Scripted>, ManualClock> {
        Dispatcher::new(self.links.store().clone(), transport.clone())
            .with_clock(self.clock.clone())
    }

    /// Appends one event (`credits.added`).
    async fn event(&self) -> Event {
        let key = IdempotencyKey::new(EventId::new().to_string()).unwrap();
        self.links.top_up(self.account, 1, key).await.unwrap();
        self.links
            .events_after(self.account, 0, 1000)
            .await
            .unwrap()
            .pop()
            .unwrap()
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(TimeDelta::seconds(seconds));
    }

    /// Checks a request as a receiver would: each secret alone verifies it at its send time.
    fn assert_signed(&self, sent_at: DateTime<Utc>, request: &WebhookRequest) {
        assert_eq!(request.webhook_timestamp, sent_at.timestamp().to_string());
        let headers = WebhookHeaders::new(
            &request.webhook_id,
            &request.webhook_timestamp,
            &request.webhook_signature,
        );
        assert_eq!(request.webhook_signature.split(' ').count(), 2);
        for secret in &self.secrets {
            WebhookVerifier::new(secret.clone())
                .verify_at(headers, &request.body, sent_at)
                .unwrap();
        }
    }
}

#[tokio::test]
async fn every_event_is_delivered_signed_with_its_id() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, []);
    let dispatcher = w.dispatcher(&transport);
    w.links
        .top_up(w.account, 2, IdempotencyKey::new("inv-1").unwrap())
        .await
        .unwrap();
    let link = w
        .links
        .create_link(w.account, NewLink::new("Invite", Flow::Selfie))
        .await
        .unwrap();
    let session = w
        .links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .unwrap()
        .session;
    w.links
        .complete_session(w.account, session.id, Outcome::Approved)
        .await
        .unwrap();
    w.links
        .deactivate_link(w.account, link.link.id)
        .await
        .unwrap();
    let events = w.links.events_after(w.account, 0, 100).await.unwrap();
    assert_eq!(events.len(), 6);

    let report = dispatcher.run_once().await.unwrap();
    assert_eq!(report.taken, 6);
    assert_eq!(report.attempted, 6);
    assert_eq!(report.delivered, 6);

    let sent = transport.sent();
    assert_eq!(sent.len(), 6);
    for (event, (at, request)) in events.iter().zip(&sent) {
        assert_eq!(request.url, URL);
        assert_eq!(request.webhook_id, event.id.to_string());
        assert_eq!(request.timeout, Duration::from_secs(15));
        assert_eq!(request.body, WebhookPayload::from_event(event).to_json());
        let payload: WebhookPayload = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(payload.kind, event.kind.name());
        assert_eq!(payload.data.account_id, w.account);
        w.assert_signed(*at, request);
        let delivery = w.links.store().delivery(w.account, event.id).await.unwrap();
        assert_eq!(delivery.status, DeliveryStatus::Delivered { at: *at });
        assert_eq!(delivery.attempts, 1);
    }
    let kinds: Vec<String> = sent
        .iter()
        .map(|(_, r)| {
            serde_json::from_slice::<WebhookPayload>(&r.body)
                .unwrap()
                .kind
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "credits.added",
            "link.created",
            "link.redeemed",
            "link.exhausted",
            "session.completed",
            "link.deactivated"
        ]
    );
    let completed: WebhookPayload = serde_json::from_slice(&sent[4].1.body).unwrap();
    assert_eq!(completed.data.outcome, Some(Outcome::Approved));
    assert_eq!(completed.data.session_id, Some(session.id));

    assert_eq!(
        dispatcher.run_once().await.unwrap().attempted,
        0,
        "nothing twice"
    );
    w.advance(100_000);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    assert_eq!(transport.sent().len(), 6);
}

#[tokio::test]
async fn failures_retry_on_the_default_schedule_with_the_same_id_then_fail() {
    let w = world().await;
    let transport = Scripted::new(
        &w.clock,
        [
            Reply::Status(500),
            Reply::Status(404),
            Reply::Status(301),
            Reply::Timeout,
            Reply::Refused,
            Reply::Status(400),
            Reply::Status(503),
            Reply::Status(502),
        ],
    );
    let dispatcher = w.dispatcher(&transport);
    let event = w.event().await;
    let start = w.clock.now();

    // Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after each failure.
    let delays = [5, 300, 1800, 7200, 18000, 36000, 36000];
    assert_eq!(dispatcher.run_once().await.unwrap().retrying, 1);
    for delay in delays {
        w.advance(delay - 1);
        assert_eq!(
            dispatcher.run_once().await.unwrap().attempted,
            0,
            "not before {delay} s"
        );
        w.advance(1);
        assert_eq!(
            dispatcher.run_once().await.unwrap().attempted,
            1,
            "at {delay} s"
        );
    }

    let sent = transport.sent();
    assert_eq!(sent.len(), 8);
    let mut expected = start;
    let mut timestamps = Vec::new();
    for (i, (at, request)) in sent.iter().enumerate() {
        if i > 0 {
            expected += TimeDelta::seconds(delays[i - 1]);
        }
        assert_eq!(*at, expected);
        assert_eq!(
            request.webhook_id,
            event.id.to_string(),
            "the same webhook-id every time"
        );
        w.assert_signed(*at, request);
        timestamps.push(request.webhook_timestamp.clone());
    }
    timestamps.dedup();
    assert_eq!(timestamps.len(), 8, "a fresh timestamp per attempt");

    let delivery = w.links.store().delivery(w.account, event.id).await.unwrap();
    assert_eq!(
        delivery.status,
        DeliveryStatus::Failed {
            at: expected,
            reason: FailReason::Exhausted
        }
    );
    assert_eq!(delivery.attempts, 8);
    assert_eq!(
        delivery.last_attempt.unwrap().outcome,
        AttemptOutcome::Status { code: 502 }
    );
    let failed = w
        .links
        .failed_deliveries(w.account, Page::first(10))
        .await
        .unwrap();
    assert_eq!(
        failed.items,
        vec![w.links.store().delivery(w.account, event.id).await.unwrap()]
    );

    // Kept, never retried again by itself...
    w.advance(1_000_000);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    // ...until re-queued, with a fresh schedule.
    w.links.requeue_delivery(w.account, event.id).await.unwrap();
    let report = dispatcher.run_once().await.unwrap();
    assert_eq!(report.delivered, 1);
    let sent = transport.sent();
    assert_eq!(sent.len(), 9);
    assert_eq!(sent[8].1.webhook_id, event.id.to_string());
}

#[tokio::test]
async fn attempts_record_what_happened() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Timeout, Reply::Refused]);
    let dispatcher = w.dispatcher(&transport);
    let event = w.event().await;
    dispatcher.run_once().await.unwrap();
    let attempt = w
        .links
        .store()
        .delivery(w.account, event.id)
        .await
        .unwrap()
        .last_attempt
        .unwrap();
    assert_eq!(attempt.number, 1);
    assert_eq!(attempt.outcome, AttemptOutcome::Timeout);
    w.advance(5);
    dispatcher.run_once().await.unwrap();
    let attempt = w
        .links
        .store()
        .delivery(w.account, event.id)
        .await
        .unwrap()
        .last_attempt
        .unwrap();
    assert_eq!(attempt.number, 2);
    assert_eq!(
        attempt.outcome,
        AttemptOutcome::Transport {
            failure: magic_link::webhooks::TransportFailure::Refused
        }
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Status(410)]);
    let dispatcher = w.dispatcher(&transport).batch_size(1);
    let first = w.event().await;
    let second = w.event().await;

    let report = dispatcher.run_once().await.unwrap();
    assert_eq!(report.endpoints_disabled, 1);
    let endpoint = w.links.webhook_endpoint(w.account).await.unwrap().unwrap();
    assert_eq!(endpoint.disabled_at, Some(w.clock.now()));
    for event in [&first, &second] {
        assert!(matches!(
            w.links
                .store()
                .delivery(w.account, event.id)
                .await
                .unwrap()
                .status,
            DeliveryStatus::Failed {
                reason: FailReason::EndpointDisabled,
                ..
            }
        ));
    }
    // Nothing more is sent to it: later events wait, failed, for it to come back.
    let third = w.event().await;
    w.advance(100_000);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    assert_eq!(transport.sent().len(), 1);
    let failed = w
        .links
        .failed_deliveries(w.account, Page::first(10))
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 3);

    w.links
        .set_webhook_endpoint(w.account, URL, w.secrets.to_vec())
        .await
        .unwrap();
    for event in [&first, &second, &third] {
        w.links.requeue_delivery(w.account, event.id).await.unwrap();
    }
    let dispatcher = dispatcher.batch_size(10);
    assert_eq!(dispatcher.run_once().await.unwrap().delivered, 3);
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_502_503_504() {
    for code in [429, 502, 503, 504] {
        let w = world().await;
        let transport = Scripted::new(&w.clock, [Reply::RetryAfter(code, "120")]);
        let dispatcher = w.dispatcher(&transport);
        w.event().await;
        dispatcher.run_once().await.unwrap();
        w.advance(5);
        assert_eq!(
            dispatcher.run_once().await.unwrap().attempted,
            0,
            "{code}: not at 5 s"
        );
        w.advance(114);
        assert_eq!(
            dispatcher.run_once().await.unwrap().attempted,
            0,
            "{code}: not at 119 s"
        );
        w.advance(1);
        assert_eq!(
            dispatcher.run_once().await.unwrap().delivered,
            1,
            "{code}: at 120 s"
        );
    }
}

#[tokio::test]
async fn retry_after_takes_http_dates_and_never_shortens_the_schedule() {
    let w = world().await;
    let retry_at = w.clock.now() + TimeDelta::seconds(600);
    let date: &'static str = retry_at
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
        .leak();
    let transport = Scripted::new(
        &w.clock,
        [
            Reply::RetryAfter(503, date),
            // At attempt 2 the schedule says 5 min: a shorter Retry-After does not win.
            Reply::RetryAfter(429, "1"),
            // Only 429, 502, 503 and 504 are honoured.
            Reply::RetryAfter(500, "99999"),
        ],
    );
    let dispatcher = w.dispatcher(&transport);
    w.event().await;
    dispatcher.run_once().await.unwrap();
    w.advance(599);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    w.advance(1);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 1);
    w.advance(299);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    w.advance(1);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 1);
    w.advance(1800);
    assert_eq!(dispatcher.run_once().await.unwrap().delivered, 1);
}

#[tokio::test]
async fn a_huge_retry_after_is_capped() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::RetryAfter(503, "31536000")]);
    let dispatcher = w
        .dispatcher(&transport)
        .max_retry_after(Duration::from_secs(3600));
    w.event().await;
    dispatcher.run_once().await.unwrap();
    w.advance(3599);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);
    w.advance(1);
    assert_eq!(dispatcher.run_once().await.unwrap().delivered, 1);
}

#[tokio::test]
async fn schedule_and_timeout_are_configurable() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Status(500), Reply::Status(500)]);
    let dispatcher = w
        .dispatcher(&transport)
        .schedule(RetrySchedule::new(vec![Duration::from_secs(1)]))
        .timeout(Duration::from_secs(3));
    let event = w.event().await;
    dispatcher.run_once().await.unwrap();
    w.advance(1);
    assert_eq!(dispatcher.run_once().await.unwrap().failed, 1);
    assert!(transport
        .sent()
        .iter()
        .all(|(_, r)| r.timeout == Duration::from_secs(3)));
    assert!(matches!(
        w.links
            .store()
            .delivery(w.account, event.id)
            .await
            .unwrap()
            .status,
        DeliveryStatus::Failed {
            reason: FailReason::Exhausted,
            ..
        }
    ));
}

/// Polls a future once and drops it: the process dies mid-request.
async fn crash_during<F: Future>(future: F) {
    let mut future = pin!(future);
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
}

#[tokio::test]
async fn a_restarted_dispatcher_resumes_without_losing_or_repeating_deliveries() {
    let w = world().await;
    let delivered = w.event().await;
    let retried = w.event().await;
    let before = Scripted::new(&w.clock, [Reply::Status(204), Reply::Status(500)]);
    let report = w.dispatcher(&before).run_once().await.unwrap();
    assert_eq!((report.delivered, report.retrying), (1, 1));

    // A third event is in flight when the process dies.
    let in_flight = w.event().await;
    let dying = Scripted::new(&w.clock, [Reply::Hang]);
    crash_during(w.dispatcher(&dying).run_once()).await;
    assert_eq!(dying.sent().len(), 1);
    assert_eq!(dying.sent()[0].1.webhook_id, in_flight.id.to_string());
    let unsent = w.event().await;

    // A new process: a new dispatcher over the same store.
    let after = Scripted::new(&w.clock, []);
    let dispatcher = w.dispatcher(&after);
    assert_eq!(
        dispatcher.run_once().await.unwrap().delivered,
        1,
        "the new event"
    );
    w.advance(5);
    assert_eq!(
        dispatcher.run_once().await.unwrap().delivered,
        1,
        "the retry"
    );
    w.advance(55);
    assert_eq!(
        dispatcher.run_once().await.unwrap().delivered,
        1,
        "the in-flight one, once its lease ran out"
    );
    w.advance(1_000_000);
    assert_eq!(dispatcher.run_once().await.unwrap().attempted, 0);

    let ids: Vec<String> = after
        .sent()
        .iter()
        .map(|(_, r)| r.webhook_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            unsent.id.to_string(),
            retried.id.to_string(),
            in_flight.id.to_string()
        ]
    );
    assert!(
        !ids.contains(&delivered.id.to_string()),
        "a completed delivery is not repeated"
    );
    for event in [&delivered, &retried, &in_flight, &unsent] {
        assert!(matches!(
            w.links
                .store()
                .delivery(w.account, event.id)
                .await
                .unwrap()
                .status,
            DeliveryStatus::Delivered { .. }
        ));
    }
    for (at, request) in after.sent() {
        w.assert_signed(at, &request);
    }
}

#[tokio::test]
async fn two_dispatchers_share_the_work() {
    let w = world().await;
    for _ in 0..40 {
        w.event().await;
    }
    let one = Scripted::new(&w.clock, []);
    let two = Scripted::new(&w.clock, []);
    let a = w.dispatcher(&one).batch_size(8);
    let b = w.dispatcher(&two).batch_size(8);
    let mut delivered = 0;
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        delivered += ra.unwrap().delivered + rb.unwrap().delivered;
    }
    assert_eq!(delivered, 40);
    let mut ids: Vec<String> = one
        .sent()
        .into_iter()
        .chain(two.sent())
        .map(|(_, r)| r.webhook_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "each event sent once");
}

#[tokio::test]
async fn accounts_without_an_endpoint_get_nothing() {
    let w = world().await;
    let other = w.links.create_account(AccountId::new()).await.unwrap().id;
    w.links
        .top_up(other, 1, IdempotencyKey::new("x").unwrap())
        .await
        .unwrap();
    let transport = Scripted::new(&w.clock, []);
    let report = w.dispatcher(&transport).run_once().await.unwrap();
    assert_eq!((report.taken, report.attempted), (1, 0));
    let error = w
        .links
        .requeue_delivery(
            other,
            w.links.events_after(other, 0, 10).await.unwrap()[0].id,
        )
        .await
        .unwrap_err();
    assert_eq!(error.rejection(), Some(Rejection::NotFound));
}

#[tokio::test]
async fn requeue_is_scoped_to_the_account() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Status(410)]);
    let event = w.event().await;
    w.dispatcher(&transport).run_once().await.unwrap();
    let stranger = w.links.create_account(AccountId::new()).await.unwrap().id;
    let error = w
        .links
        .requeue_delivery(stranger, event.id)
        .await
        .unwrap_err();
    assert_eq!(error.rejection(), Some(Rejection::NotFound));
    assert!(w
        .links
        .failed_deliveries(stranger, Page::first(10))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn delivered_deliveries_are_pruned_after_the_retention() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Status(200), Reply::Status(500)]);
    let dispatcher = w
        .dispatcher(&transport)
        .retention(Duration::from_secs(3600));
    let delivered = w.event().await;
    let pending = w.event().await;
    dispatcher.run_once().await.unwrap();
    assert_eq!(dispatcher.prune().await.unwrap(), 0);
    w.advance(3601);
    assert_eq!(dispatcher.prune().await.unwrap(), 1);
    assert!(w
        .links
        .store()
        .delivery(w.account, delivered.id)
        .await
        .is_err());
    assert!(w
        .links
        .store()
        .delivery(w.account, pending.id)
        .await
        .is_ok());
}

#[tokio::test]
async fn nothing_shows_the_url_or_the_secrets() {
    let w = world().await;
    let transport = Scripted::new(&w.clock, [Reply::Hang]);
    w.event().await;
    crash_during(w.dispatcher(&transport).run_once()).await;
    let claim_store = w.links.store().clone();
    w.advance(3600);
    let claims = claim_store
        .claim_due(w.clock.now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    let endpoint = w.links.webhook_endpoint(w.account).await.unwrap().unwrap();
    let request = transport.sent().remove(0).1;
    let shown = format!("{claims:?} {endpoint:?} {request:?} {:?}", w.secrets);
    assert!(!shown.contains("t0k3n"), "{shown}");
    for secret in &w.secrets {
        let exposed = secret.expose();
        let encoded = exposed.trim_start_matches("whsec_");
        assert!(!shown.contains(&encoded[..12]), "{shown}");
    }
    assert!(shown.contains("https://hooks.example.com/[redacted]"));
}
