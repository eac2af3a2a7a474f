//! How a service tests its own integration with the kit (`magic_link::testing`, feature
//! `test-util`): copy this file into your service's `tests/` and replace `Receiver` with your
//! webhook handler.
//!
//! The "service" here is the smallest that uses Magic Links: a webhook receiver that verifies
//! each request and keeps, per verification session, the outcome and whether it bills its own
//! customer. Every test runs on the in-memory store with a manual clock: no HTTP, no database,
//! no sleeping, and the same ids and signatures on every run.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use magic_link::testing::{RecordedRequest, Reply, SignedWebhook, TestKit};
use magic_link::webhooks::{
    WebhookError, WebhookHeaders, WebhookPayload, WebhookSecret, WebhookVerifier,
};
use magic_link::{Outcome, SessionId};

/// The service's webhook handler: verify, parse, record. Returns the HTTP status it answers.
struct Receiver {
    verifier: WebhookVerifier,
    /// Sessions completed, with their outcome: what the service bills its customer for.
    completed: HashMap<SessionId, Outcome>,
    /// Webhook ids already handled: deliveries are at least once.
    seen: Vec<String>,
}

impl Receiver {
    fn new(secret: WebhookSecret) -> Self {
        Self {
            verifier: WebhookVerifier::new(secret),
            completed: HashMap::new(),
            seen: Vec::new(),
        }
    }

    fn handle(
        &mut self,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<u16, WebhookError> {
        let (id, timestamp, signature) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        );
        let headers = WebhookHeaders::from_fn(|name| match name {
            "webhook-id" => id.as_deref().map(str::as_bytes),
            "webhook-timestamp" => timestamp.as_deref().map(str::as_bytes),
            "webhook-signature" => signature.as_deref().map(str::as_bytes),
            _ => None,
        });
        self.verifier.verify_at(headers, body, now)?;
        let id = id.unwrap_or_default();
        if self.seen.contains(&id) {
            return Ok(200); // a retry of a webhook already handled
        }
        self.seen.push(id);
        let payload: WebhookPayload =
            serde_json::from_slice(body).map_err(|_| WebhookError::MalformedHeader("body"))?;
        if payload.kind == "session.completed" {
            if let (Some(session), Some(outcome)) = (payload.data.session_id, payload.data.outcome)
            {
                self.completed.insert(session, outcome);
            }
        }
        Ok(204)
    }

    fn handle_recorded(
        &mut self,
        request: &RecordedRequest,
        now: DateTime<Utc>,
    ) -> Result<u16, WebhookError> {
        self.handle(
            |name| request.header(name).map(str::to_owned),
            &request.body,
            now,
        )
    }
}

#[tokio::test]
async fn a_completion_is_delivered_parsed_and_billed_once() -> Result<(), Box<dyn std::error::Error>>
{
    let kit = TestKit::new().await?;
    let link = kit.multi_use_link(2).await?;
    let started = kit.start(&link).await?;
    kit.complete(&started, Outcome::Approved).await?;

    let report = kit.deliver().await?;
    assert_eq!(report.failed, 0);

    let mut receiver = Receiver::new(kit.webhook_secret().clone());
    for request in kit.transport().requests() {
        assert_eq!(receiver.handle_recorded(&request, kit.now())?, 204);
    }
    assert_eq!(
        receiver.completed.get(&started.session.id),
        Some(&Outcome::Approved),
        "the receiver saw the completion"
    );
    let kinds: Vec<String> = kit
        .transport()
        .delivered()?
        .into_iter()
        .map(|p| p.kind)
        .collect();
    assert!(kinds.contains(&"session.completed".to_owned()), "{kinds:?}");
    // The crate billed exactly one credit for the one completed verification.
    let account = kit.links().account(kit.account()).await?;
    assert_eq!(account.balance, TestKit::CREDITS - 1);
    assert_eq!(account.held, 0);
    Ok(())
}

#[tokio::test]
async fn a_500_then_a_200_is_one_retry_found_by_advancing_the_clock(
) -> Result<(), Box<dyn std::error::Error>> {
    let kit = TestKit::new().await?;
    let link = kit.single_use_link().await?;
    let started = kit.start(&link).await?;
    kit.deliver().await?; // link.created, link.redeemed (and credits.added) go through
    kit.transport().clear();

    kit.complete(&started, Outcome::Denied).await?;
    kit.transport()
        .push([Reply::Status(500), Reply::Status(200)]);
    let first = kit.deliver().await?;
    assert_eq!(
        (first.attempted, first.retrying, first.delivered),
        (1, 1, 0)
    );

    // Nothing is due until the first retry delay (5 s) has passed.
    kit.advance(Duration::seconds(4));
    assert_eq!(kit.deliver().await?.attempted, 0, "not due yet");
    kit.advance(Duration::seconds(1));
    let retry = kit.deliver().await?;
    assert_eq!((retry.attempted, retry.delivered), (1, 1));

    let requests = kit.transport().requests();
    assert_eq!(requests.len(), 2, "one attempt and one retry");
    assert_eq!(
        requests[0].id, requests[1].id,
        "the retry carries the same webhook-id"
    );
    assert_ne!(
        requests[0].timestamp, requests[1].timestamp,
        "and a fresh timestamp"
    );
    assert_eq!(requests[1].payload()?.data.outcome, Some(Outcome::Denied));
    Ok(())
}

#[tokio::test]
async fn the_receiver_refuses_a_wrong_secret_an_old_timestamp_and_an_altered_body(
) -> Result<(), Box<dyn std::error::Error>> {
    let kit = TestKit::new().await?;
    let link = kit.unlimited_link().await?;
    let started = kit.start(&link).await?;
    kit.complete(&started, Outcome::NeedsReview).await?;
    let events = kit.links().events_after(kit.account(), 0, 100).await?;
    let completed = events
        .iter()
        .find(|e| e.kind.name() == "session.completed")
        .ok_or("no completion event")?;
    let now = kit.now().timestamp();
    let mut receiver = Receiver::new(kit.webhook_secret().clone());
    let header = |signed: &SignedWebhook| {
        let signed = signed.clone();
        move |name: &str| signed.header(name).map(str::to_owned)
    };

    let wrong = WebhookSecret::from_bytes(&[9; 32])?;
    let forged = SignedWebhook::for_event(&wrong, completed, now);
    assert_eq!(
        receiver.handle(header(&forged), &forged.body, kit.now()),
        Err(WebhookError::NoMatchingSignature)
    );

    let old = SignedWebhook::for_event(kit.webhook_secret(), completed, now - 3600);
    assert_eq!(
        receiver.handle(header(&old), &old.body, kit.now()),
        Err(WebhookError::TimestampTooOld)
    );

    let genuine = SignedWebhook::for_event(kit.webhook_secret(), completed, now);
    let mut altered = genuine.body.clone();
    let at = altered.len() / 2;
    altered[at] ^= 1;
    assert_eq!(
        receiver.handle(header(&genuine), &altered, kit.now()),
        Err(WebhookError::NoMatchingSignature)
    );
    assert!(
        receiver.completed.is_empty(),
        "nothing refused was recorded"
    );

    assert_eq!(
        receiver.handle(header(&genuine), &genuine.body, kit.now())?,
        204
    );
    assert_eq!(
        receiver.completed.get(&started.session.id),
        Some(&Outcome::NeedsReview)
    );
    Ok(())
}

/// A snapshot of what the receiver gets for a completion, with the link's token and the
/// signature headers: byte-identical on every run. Set `UPDATE_SNAPSHOTS=1` to rewrite it after
/// an intended change, and review the diff.
#[tokio::test]
async fn the_completion_webhook_is_the_same_on_every_run() -> Result<(), Box<dyn std::error::Error>>
{
    let render = |kit: TestKit| async move {
        let link = kit.single_use_link().await?;
        let started = kit.start(&link).await?;
        kit.advance(Duration::minutes(3));
        kit.complete(&started, Outcome::Approved).await?;
        kit.advance(Duration::seconds(2));
        kit.deliver().await?;
        let request = kit
            .transport()
            .requests()
            .into_iter()
            .rfind(|r| r.payload().is_ok_and(|p| p.kind == "session.completed"))
            .ok_or("no completion webhook")?;
        let mut out = format!(
            "link url: {}\nsession token: {}\n",
            link.url, started.session_token
        );
        for (name, value) in &request.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out.push_str(&String::from_utf8(request.body.clone())?);
        out.push('\n');
        Ok::<String, Box<dyn std::error::Error>>(out)
    };
    let first = render(TestKit::new().await?).await?;
    let second = render(TestKit::new().await?).await?;
    assert_eq!(first, second, "two runs in one process agree");

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/snapshots/testing_kit_completion.txt"
    );
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &first)?;
    }
    let expected = std::fs::read_to_string(path)?;
    assert_eq!(first, expected, "the snapshot in {path} changed");

    let other = render(TestKit::with_seed(1).await?).await?;
    assert_ne!(first, other, "another seed makes other ids");
    Ok(())
}

/// Every id the crate makes comes from the kit's sequence: links, sessions, events and the
/// dispatcher's leases are the same in two kits with one seed.
#[tokio::test]
async fn every_id_repeats_with_the_seed() -> Result<(), Box<dyn std::error::Error>> {
    use magic_link::store::{LinkStore, WebhookStore};
    let ids = |kit: TestKit| async move {
        let link = kit.multi_use_link(3).await?;
        let started = kit.start(&link).await?;
        let store = kit.store();
        store.queue_deliveries(kit.now(), 100).await?;
        let claims = store
            .claim_due(kit.now(), std::time::Duration::from_secs(60), 100)
            .await?;
        let events = store.outbox_after(0, 100).await?;
        Ok::<_, Box<dyn std::error::Error>>((
            link.link.id,
            started.session.id,
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            claims.iter().map(|c| c.lease.id).collect::<Vec<_>>(),
        ))
    };
    let first = ids(TestKit::new().await?).await?;
    let second = ids(TestKit::new().await?).await?;
    assert!(!first.3.is_empty(), "leases were made");
    assert_eq!(first, second);
    assert_ne!(first, ids(TestKit::with_seed(9).await?).await?);
    Ok(())
}
