//! The delivery model test: random operation sequences applied to a
//! [`WebhookStore`] and to a simple model of the delivery state, compared after every step.
//!
//! The model ([`DeliveryModel`]) keeps deliveries in a `Vec` in outbox order and finds
//! everything by linear scan, applying the pure [delivery rules](crate::webhooks::rules). It
//! shares no code with the stores' own bookkeeping (`MemoryStore`'s indexed book, the SQL of
//! `PostgresStore`), so agreeing with it means something. It is also the webhook half of the
//! [`ReferenceStore`](super::ReferenceStore).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::fixtures::{epoch, key};
use crate::store::WebhookStore;
use crate::webhooks::rules;
use crate::webhooks::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, Endpoint, EventType, FailReason,
    Lease, NextStep, RetrySchedule, WebhookSecret,
};
use crate::{
    Account, AccountId, Error, Event, EventId, Flow, Link, LinkId, NewLink, Page, Paged, Rejection,
};

/// Endpoints and deliveries in plain `Vec`s, changed by the delivery rules.
#[derive(Debug, Default)]
pub(super) struct DeliveryModel {
    /// The last outbox `seq` taken by `queue`.
    cursor: u64,
    endpoints: Vec<Endpoint>,
    /// In outbox order (queueing takes events in `seq` order).
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    delivery: Delivery,
    event: Event,
    lease: Option<Uuid>,
}

impl Row {
    /// A pending delivery's next claim time: when due, or when its lease runs out.
    fn eligible_at(&self) -> Option<DateTime<Utc>> {
        match self.delivery.status {
            DeliveryStatus::Pending { next_attempt_at } => {
                Some(self.delivery.leased_until.unwrap_or(next_attempt_at))
            }
            DeliveryStatus::Delivered { .. } | DeliveryStatus::Failed { .. } => None,
        }
    }

    /// Moves to `status` and drops any lease.
    fn set_status(&mut self, status: DeliveryStatus) {
        self.delivery.status = status;
        self.delivery.leased_until = None;
        self.lease = None;
    }
}

impl DeliveryModel {
    /// Erases what `redaction` erased from the events kept for delivery.
    pub(super) fn scrub(&mut self, redaction: crate::rules::Redaction) {
        for row in &mut self.rows {
            crate::rules::scrub_labels(&mut row.event, redaction);
        }
    }

    pub(super) fn cursor(&self) -> u64 {
        self.cursor
    }

    pub(super) fn set_endpoint(&mut self, mut endpoint: Endpoint) -> Endpoint {
        endpoint.version = rules::endpoint_version(self.endpoint(endpoint.account));
        self.endpoints.retain(|e| e.account != endpoint.account);
        self.endpoints.push(endpoint.clone());
        endpoint
    }

    pub(super) fn endpoint(&self, account: AccountId) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.account == account)
    }

    /// Disables `account`'s endpoint (idempotent) and fails its pending deliveries.
    pub(super) fn disable_endpoint(
        &mut self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Option<Endpoint> {
        let endpoint = self.endpoints.iter_mut().find(|e| e.account == account)?;
        endpoint.disabled_at.get_or_insert(now);
        let endpoint = endpoint.clone();
        for row in &mut self.rows {
            if row.delivery.account == account
                && matches!(row.delivery.status, DeliveryStatus::Pending { .. })
            {
                row.set_status(DeliveryStatus::Failed {
                    at: now,
                    reason: FailReason::EndpointDisabled,
                });
            }
        }
        Some(endpoint)
    }

    /// Queues `events` (the outbox after `cursor()`, in order); returns how many were taken.
    pub(super) fn queue(&mut self, events: Vec<Event>, now: DateTime<Utc>) -> usize {
        let taken = events.len();
        for event in events {
            if event.seq <= self.cursor {
                continue;
            }
            self.cursor = event.seq;
            let Some(status) =
                rules::queued_status(self.endpoint(event.account), event.kind.event_type(), now)
            else {
                continue;
            };
            self.rows.push(Row {
                delivery: Delivery {
                    event: event.id,
                    seq: event.seq,
                    account: event.account,
                    status,
                    attempts: 0,
                    last_attempt: None,
                    leased_until: None,
                    queued_at: now,
                },
                event,
                lease: None,
            });
        }
        taken
    }

    pub(super) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Vec<Claim> {
        let until = rules::lease_until(now, lease);
        let mut due: Vec<(DateTime<Utc>, u64, usize)> = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let eligible = row.eligible_at()?;
                (eligible <= now).then_some((eligible, row.delivery.seq, i))
            })
            .collect();
        due.sort_unstable();
        let mut claims = Vec::new();
        for (_, _, i) in due {
            if claims.len() >= limit {
                break;
            }
            let endpoint = self.endpoint(self.rows[i].delivery.account).cloned();
            let row = &mut self.rows[i];
            if let Some(failed) = rules::fails_at_claim(endpoint.as_ref(), now) {
                row.set_status(failed);
                continue;
            }
            let Some(endpoint) = endpoint else { continue };
            let id = Uuid::new_v4();
            row.lease = Some(id);
            row.delivery.leased_until = Some(until);
            claims.push(Claim {
                lease: Lease {
                    id,
                    event: row.delivery.event,
                    attempt: row.delivery.attempts.saturating_add(1),
                    until,
                },
                event: row.event.clone(),
                endpoint,
            });
        }
        claims
    }

    pub(super) fn record(&mut self, lease: Lease, attempt: Attempt, next: NextStep) -> bool {
        let Some(i) = self
            .rows
            .iter()
            .position(|r| r.delivery.event == lease.event)
        else {
            return false;
        };
        let account = self.rows[i].delivery.account;
        let next = rules::step_to_apply(next, self.endpoint(account), attempt.at);
        let row = &mut self.rows[i];
        let current = row.lease == Some(lease.id);
        if !rules::accepts_attempt(&row.delivery.status, current, next) {
            return false;
        }
        let at = attempt.at;
        row.delivery.attempts = row.delivery.attempts.max(attempt.number);
        row.delivery.last_attempt = Some(attempt);
        row.set_status(rules::status_after(next, at));
        if let NextStep::DisableEndpoint { .. } = next {
            self.disable_endpoint(account, at);
        }
        true
    }

    /// Drops `lease` if it is a pending delivery's current one: due again when it was due.
    pub(super) fn release(&mut self, lease: Lease) -> bool {
        let Some(row) = self
            .rows
            .iter_mut()
            .find(|r| r.delivery.event == lease.event)
        else {
            return false;
        };
        let pending = matches!(row.delivery.status, DeliveryStatus::Pending { .. });
        if !pending || row.lease != Some(lease.id) {
            return false;
        }
        row.lease = None;
        row.delivery.leased_until = None;
        true
    }

    /// `account`'s delivery of `event`.
    pub(super) fn delivery(&self, account: AccountId, event: EventId) -> Option<Delivery> {
        self.rows
            .iter()
            .map(|r| &r.delivery)
            .find(|d| d.event == event && d.account == account)
            .cloned()
    }

    pub(super) fn failed(&self, account: AccountId, page: Page) -> Paged<Delivery> {
        let limit = page.clamped_limit();
        let mut items: Vec<Delivery> = self
            .rows
            .iter()
            .map(|r| &r.delivery)
            .filter(|d| d.account == account && d.seq > page.after)
            .filter(|d| matches!(d.status, DeliveryStatus::Failed { .. }))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = (items.len() > limit).then(|| items[limit - 1].seq);
        items.truncate(limit);
        Paged { items, next }
    }

    pub(super) fn requeue(
        &mut self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Option<Delivery> {
        let row = self
            .rows
            .iter_mut()
            .find(|r| r.delivery.event == event && r.delivery.account == account)?;
        if let DeliveryStatus::Failed { .. } = row.delivery.status {
            row.set_status(DeliveryStatus::Pending {
                next_attempt_at: now,
            });
            row.delivery.attempts = 0;
            row.delivery.queued_at = now;
        }
        Some(row.delivery.clone())
    }

    /// Removes up to `limit` deliveries delivered or failed before `before`, delivered ones
    /// first, each oldest first (as the stores' `LinkStore::prune` does).
    pub(super) fn prune_done(&mut self, before: DateTime<Utc>, limit: usize) -> usize {
        let delivered = self.prune(before, limit);
        let mut old: Vec<(DateTime<Utc>, u64)> = self
            .rows
            .iter()
            .filter_map(|r| match r.delivery.status {
                DeliveryStatus::Failed { at, .. } if at < before => Some((at, r.delivery.seq)),
                _ => None,
            })
            .collect();
        old.sort_unstable();
        old.truncate(limit - delivered);
        self.rows
            .retain(|r| !old.iter().any(|&(_, seq)| seq == r.delivery.seq));
        delivered + old.len()
    }

    /// The status of `event`'s delivery, if it has one.
    pub(super) fn status_of(&self, event: EventId) -> Option<&DeliveryStatus> {
        self.rows
            .iter()
            .find(|r| r.delivery.event == event)
            .map(|r| &r.delivery.status)
    }

    pub(super) fn prune(&mut self, before: DateTime<Utc>, limit: usize) -> usize {
        let mut old: Vec<(DateTime<Utc>, u64)> = self
            .rows
            .iter()
            .filter_map(|r| match r.delivery.status {
                DeliveryStatus::Delivered { at } if at < before => Some((at, r.delivery.seq)),
                _ => None,
            })
            .collect();
        old.sort_unstable();
        old.truncate(limit);
        self.rows
            .retain(|r| !old.iter().any(|&(_, seq)| seq == r.delivery.seq));
        old.len()
    }
}

/// One step of a random operation sequence for [`compare_delivery_with_model`]. Indices pick
/// among the accounts (three: the first two start with an endpoint, the third without),
/// events and claims made so far, modulo their number, so any sequence is meaningful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOp {
    /// Append an outbox event of an account: `credits.added` (a top-up) if `link` is false,
    /// else `link.created` (a new link).
    AddEvent {
        /// Which account.
        account: u8,
        /// A `link.created` event rather than `credits.added`.
        link: bool,
    },
    /// Set an account's endpoint (a new URL, `updated_at` now), disabled if `disabled`,
    /// receiving the event types `types` picks (`% 4`): 0 every type (no explicit choice),
    /// 1 `credits.added`, 2 `link.created`, 3 both.
    SetEndpoint {
        /// Which account.
        account: u8,
        /// Set it as disabled.
        disabled: bool,
        /// Which event types.
        types: u8,
    },
    /// Disable an account's endpoint.
    DisableEndpoint {
        /// Which account.
        account: u8,
    },
    /// Queue up to `limit` outbox events.
    Queue {
        /// How many.
        limit: u8,
    },
    /// Claim up to `limit` due deliveries under leases of `lease` seconds.
    Claim {
        /// How many.
        limit: u8,
        /// Lease length in seconds (0 is raised to the minimum).
        lease: u16,
    },
    /// Record an attempt under a claim made earlier (possibly a stale or used one), with the
    /// next step that [`rules::next_step`] decides for `reply`.
    Record {
        /// Which claim, counting back from the latest (0: the latest).
        claim: u8,
        /// What the receiver did.
        reply: AttemptReply,
    },
    /// The dispatcher's cycle: queue every outbox event, claim up to `limit` due deliveries
    /// under one-minute leases, and record `reply` for each claim. If `replaced`, the
    /// attempts take a second, during which the owners of the claimed deliveries set their
    /// endpoints anew.
    Dispatch {
        /// How many to claim.
        limit: u8,
        /// What the receiver does with every attempt.
        reply: AttemptReply,
        /// The endpoints are replaced while the attempts are in flight.
        replaced: bool,
    },
    /// Re-queue an event's delivery, as its owner or as another account.
    Requeue {
        /// Which event.
        event: u8,
        /// The acting account: `None` for the event's owner, else an account index (which may
        /// be the owner's too).
        by: Option<u8>,
    },
    /// Read an event's delivery, as its owner or as another account.
    Read {
        /// Which event.
        event: u8,
        /// The acting account, as in [`Requeue`](Self::Requeue).
        by: Option<u8>,
    },
    /// List an account's failed deliveries after an event's `seq` (0: from the start).
    ListFailed {
        /// Acting account.
        account: u8,
        /// 0 for the first page, else `1 + ` the index of the event whose `seq` is the cursor.
        after: u8,
        /// Page size.
        limit: u8,
    },
    /// Prune deliveries delivered more than `age` seconds ago, up to `limit`.
    Prune {
        /// Seconds.
        age: u16,
        /// How many at most.
        limit: u8,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        seconds: u16,
    },
}

/// What a receiver did with an attempt, in a [`DeliveryOp::Record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptReply {
    /// An HTTP response.
    Status {
        /// The status code.
        code: u16,
        /// Its `Retry-After` header.
        retry_after: Option<RetryAfterHeader>,
    },
    /// No response in time.
    Timeout,
    /// The connection failed.
    Refused,
}

/// A `Retry-After` header value in a [`AttemptReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfterHeader {
    /// Delay-seconds.
    Seconds(u32),
    /// An HTTP date this many seconds from the attempt (negative: in the past).
    DateIn(i32),
    /// Any text.
    Raw(String),
}

/// The retry schedule of the model test: four attempts, 5 s, 30 s and 2 min apart.
fn schedule() -> RetrySchedule {
    RetrySchedule::new(vec![
        Duration::from_secs(5),
        Duration::from_secs(30),
        Duration::from_secs(120),
    ])
}

/// The longest `Retry-After` honoured in the model test.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The page size the snapshots list failed deliveries with, walking every page.
const FAILED_PAGE: usize = 2;

/// An endpoint as compared: what a store keeps of it, without the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EndpointView {
    account: AccountId,
    url: String,
    secrets: usize,
    updated_at: DateTime<Utc>,
    version: u64,
    disabled_at: Option<DateTime<Utc>>,
    event_types: Vec<EventType>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            account: e.account,
            url: e.url().to_owned(),
            secrets: e.secrets().len(),
            updated_at: e.updated_at,
            version: e.version,
            disabled_at: e.disabled_at,
            event_types: e.event_types().to_vec(),
        }
    }
}

/// A claim as compared: everything but the lease id, which each side draws.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimView {
    event: Event,
    attempt: u32,
    until: DateTime<Utc>,
    endpoint: EndpointView,
}

impl From<&Claim> for ClaimView {
    fn from(c: &Claim) -> Self {
        assert_eq!(c.lease.event, c.event.id, "a lease names its claim's event");
        Self {
            event: c.event.clone(),
            attempt: c.lease.attempt,
            until: c.lease.until,
            endpoint: (&c.endpoint).into(),
        }
    }
}

/// What an operation returned, comparable across the store and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Returned {
    Endpoint(EndpointView),
    Delivery(Delivery),
    Failed(Paged<Delivery>),
    Claims(Vec<ClaimView>),
    Count(usize),
    Recorded(bool),
    Rejected(Rejection),
    /// The results of the steps of a [`DeliveryOp::Dispatch`].
    Steps(Vec<Returned>),
    None,
}

fn returned<T>(result: Result<T, Error>, ok: impl FnOnce(T) -> Returned) -> Returned {
    match result {
        Ok(v) => ok(v),
        Err(Error::Rejected(r)) => Returned::Rejected(r),
        Err(e) => panic!("unexpected failure: {e:?}"),
    }
}

fn found<T>(value: Option<T>, ok: impl FnOnce(T) -> Returned) -> Returned {
    value.map_or(Returned::Rejected(Rejection::NotFound), ok)
}

/// The objects a sequence made, shared by both sides.
#[derive(Debug)]
struct World {
    accounts: Vec<AccountId>,
    /// The store's outbox, in order (the model queues from it).
    events: Vec<Event>,
    /// Claims made so far: the store's lease, the model's, and the endpoint version the
    /// attempt goes to.
    claims: Vec<(Lease, Lease, u64)>,
    endpoints_set: usize,
    keys: usize,
}

impl World {
    fn account(&self, i: u8) -> AccountId {
        self.accounts[usize::from(i) % self.accounts.len()]
    }

    /// Event `i` and the account acting on it (`by`, or else its owner); an unknown event
    /// while there are none.
    fn event_by(&self, i: u8, by: Option<u8>) -> (AccountId, EventId) {
        let event =
            (!self.events.is_empty()).then(|| &self.events[usize::from(i) % self.events.len()]);
        let account = match (by, event) {
            (Some(a), _) => self.account(a),
            (None, Some(e)) => e.account,
            (None, None) => self.account(0),
        };
        let id = event.map_or(EventId::from_uuid(Uuid::nil()), |e| e.id);
        (account, id)
    }

    fn endpoint(&mut self, account: AccountId, now: DateTime<Utc>) -> Endpoint {
        self.endpoints_set += 1;
        let url = format!("https://hooks.example.com/{}/t0k3n", self.endpoints_set);
        let secrets = (0..1 + self.endpoints_set % 2)
            .map(|i| WebhookSecret::from_bytes(&[i as u8 + 1; 24]).expect("a 24-byte key"))
            .collect();
        Endpoint::new(account, &url, secrets, now).expect("a valid endpoint")
    }
}

/// Everything observable about the test's deliveries in one store.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    endpoints: Vec<Option<EndpointView>>,
    /// Every event's delivery, read as its owner (`None`: not queued, or pruned).
    deliveries: Vec<Option<Delivery>>,
    /// Each account's failed deliveries, every page of [`FAILED_PAGE`].
    failed: Vec<Vec<Paged<Delivery>>>,
}

async fn snapshot<S: WebhookStore>(store: &S, world: &World) -> Snapshot {
    let mut snap = Snapshot {
        endpoints: Vec::new(),
        deliveries: Vec::new(),
        failed: Vec::new(),
    };
    for &a in &world.accounts {
        let endpoint = store.endpoint(a).await.expect("endpoint");
        snap.endpoints
            .push(endpoint.as_ref().map(EndpointView::from));
        let mut pages = Vec::new();
        let mut page = Page::first(FAILED_PAGE);
        loop {
            let got = store.failed_deliveries(a, page).await;
            let got = got.expect("failed deliveries");
            let next = got.next;
            pages.push(got);
            match next {
                Some(after) if pages.len() <= world.events.len() => page.after = after,
                _ => break,
            }
        }
        snap.failed.push(pages);
    }
    for e in &world.events {
        snap.deliveries
            .push(match store.delivery(e.account, e.id).await {
                Ok(d) => Some(d),
                Err(Error::Rejected(Rejection::NotFound)) => None,
                Err(other) => panic!("delivery: {other:?}"),
            });
    }
    snap
}

fn model_snapshot(model: &DeliveryModel, world: &World) -> Snapshot {
    Snapshot {
        endpoints: world
            .accounts
            .iter()
            .map(|&a| model.endpoint(a).map(EndpointView::from))
            .collect(),
        deliveries: world
            .events
            .iter()
            .map(|e| model.delivery(e.account, e.id))
            .collect(),
        failed: world
            .accounts
            .iter()
            .map(|&a| {
                let mut pages = Vec::new();
                let mut page = Page::first(FAILED_PAGE);
                loop {
                    let got = model.failed(a, page);
                    let next = got.next;
                    pages.push(got);
                    match next {
                        Some(after) if pages.len() <= world.events.len() => page.after = after,
                        _ => break pages,
                    }
                }
            })
            .collect(),
    }
}

/// The outcome and `Retry-After` of a reply, at `now`.
fn reply_at(reply: &AttemptReply, now: DateTime<Utc>) -> (AttemptOutcome, Option<String>) {
    match reply {
        AttemptReply::Status { code, retry_after } => {
            let header = retry_after.as_ref().map(|r| match r {
                RetryAfterHeader::Seconds(s) => s.to_string(),
                RetryAfterHeader::DateIn(s) => (now + TimeDelta::seconds(i64::from(*s)))
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string(),
                RetryAfterHeader::Raw(text) => text.clone(),
            });
            (AttemptOutcome::Status { code: *code }, header)
        }
        AttemptReply::Timeout => (AttemptOutcome::Timeout, None),
        AttemptReply::Refused => (
            AttemptOutcome::Transport {
                failure: crate::webhooks::TransportFailure::Refused,
            },
            None,
        ),
    }
}

/// One comparison run: the store, the model, and what the sequence made so far.
struct Run<'a, S> {
    store: &'a S,
    model: DeliveryModel,
    world: World,
    schedule: RetrySchedule,
    now: DateTime<Utc>,
}

impl<S: WebhookStore> Run<'_, S> {
    async fn queue(&mut self, limit: u8) -> (Returned, Returned) {
        let limit = usize::from(limit);
        let cursor = self.model.cursor();
        let events = self.world.events.iter().filter(|e| e.seq > cursor);
        let events: Vec<Event> = events.take(limit).cloned().collect();
        (
            returned(
                self.store.queue_deliveries(self.now, limit).await,
                Returned::Count,
            ),
            Returned::Count(self.model.queue(events, self.now)),
        )
    }

    /// Claims on both sides; keeps the pairs of leases when both claimed the same.
    async fn claim(&mut self, limit: u8, lease: u16) -> (Returned, Returned) {
        let (limit, lease) = (usize::from(limit), Duration::from_secs(u64::from(lease)));
        let got = self.store.claim_due(self.now, lease, limit).await;
        let got = got.expect("claim");
        let want = self.model.claim(self.now, lease, limit);
        let views = |claims: &[Claim]| claims.iter().map(ClaimView::from).collect();
        let (got_views, want_views) = (views(&got), views(&want));
        if got_views == want_views {
            for (g, w) in got.iter().zip(&want) {
                let version = g.endpoint.version;
                self.world.claims.push((g.lease, w.lease, version));
            }
        }
        (Returned::Claims(got_views), Returned::Claims(want_views))
    }

    /// Records `reply` under the `back`-th latest claim on both sides.
    async fn record(&mut self, back: usize, reply: &AttemptReply) -> (Returned, Returned) {
        let claims = &self.world.claims;
        if claims.is_empty() {
            return (Returned::None, Returned::None);
        }
        let (theirs, ours, endpoint) = claims[claims.len() - 1 - back % claims.len()];
        let (outcome, retry_after) = reply_at(reply, self.now);
        let attempt = Attempt {
            number: theirs.attempt,
            at: self.now,
            outcome,
        };
        let next = rules::next_step(
            &attempt,
            retry_after.as_deref(),
            endpoint,
            &self.schedule,
            MAX_RETRY_AFTER,
        );
        let got = self
            .store
            .record_attempt(theirs, attempt.clone(), next)
            .await;
        (
            returned(got, Returned::Recorded),
            Returned::Recorded(self.model.record(ours, attempt, next)),
        )
    }

    async fn apply(&mut self, step: usize, op: &DeliveryOp) -> (Returned, Returned) {
        let (store, now) = (self.store, self.now);
        match op {
            DeliveryOp::AddEvent { account, link } => {
                let a = self.world.account(*account);
                if *link {
                    let spec = NewLink::new("delivery model", Flow::Selfie);
                    let link = Link::new(LinkId::new(), a, spec, now).expect("a valid link");
                    store.insert_link(link).await.expect("insert link");
                } else {
                    self.world.keys += 1;
                    let k = key(&format!("model-{}", self.world.keys));
                    store.top_up(a, 1, k, now).await.expect("top up");
                }
                let cursor = self.world.events.last().map_or(0, |e| e.seq);
                let new = store.outbox_after(cursor, 100).await.expect("outbox");
                assert_eq!(new.len(), 1, "step {step}: one event per top-up or link");
                self.world.events.extend(new);
                (Returned::None, Returned::None)
            }
            DeliveryOp::SetEndpoint {
                account,
                disabled,
                types,
            } => {
                let a = self.world.account(*account);
                let mut endpoint = self.world.endpoint(a, now);
                let chosen = match types % 4 {
                    0 => None,
                    1 => Some(vec![EventType::CreditsAdded]),
                    2 => Some(vec![EventType::LinkCreated]),
                    _ => Some(vec![EventType::LinkCreated, EventType::CreditsAdded]),
                };
                if let Some(chosen) = chosen {
                    endpoint = endpoint.with_event_types(chosen).expect("a type");
                }
                if *disabled {
                    endpoint.disabled_at = Some(now);
                }
                (
                    returned(store.set_endpoint(endpoint.clone()).await, |e| {
                        Returned::Endpoint((&e).into())
                    }),
                    Returned::Endpoint((&self.model.set_endpoint(endpoint)).into()),
                )
            }
            DeliveryOp::DisableEndpoint { account } => {
                let a = self.world.account(*account);
                (
                    returned(store.disable_endpoint(a, now).await, |e| {
                        Returned::Endpoint((&e).into())
                    }),
                    found(self.model.disable_endpoint(a, now), |e| {
                        Returned::Endpoint((&e).into())
                    }),
                )
            }
            DeliveryOp::Queue { limit } => self.queue(*limit).await,
            DeliveryOp::Claim { limit, lease } => self.claim(*limit, *lease).await,
            DeliveryOp::Record { claim, reply } => self.record(usize::from(*claim), reply).await,
            DeliveryOp::Dispatch {
                limit,
                reply,
                replaced,
            } => {
                let mut got = Vec::new();
                let mut want = Vec::new();
                for (g, w) in [self.queue(u8::MAX).await, self.claim(*limit, 60).await] {
                    got.push(g);
                    want.push(w);
                }
                let mut owners = Vec::new();
                if let Some(Returned::Claims(claims)) = want.last() {
                    for claim in claims {
                        if !owners.contains(&claim.event.account) {
                            owners.push(claim.event.account);
                        }
                    }
                }
                let claimed = self.world.claims.len().min(match want.last() {
                    Some(Returned::Claims(claims)) => claims.len(),
                    _ => 0,
                });
                if *replaced {
                    self.now += TimeDelta::seconds(1);
                    for owner in owners {
                        let endpoint = self.world.endpoint(owner, self.now);
                        let set = store.set_endpoint(endpoint.clone()).await;
                        got.push(returned(set, |e| Returned::Endpoint((&e).into())));
                        let set = self.model.set_endpoint(endpoint);
                        want.push(Returned::Endpoint((&set).into()));
                    }
                }
                if got == want {
                    for back in (0..claimed).rev() {
                        let (g, w) = self.record(back, reply).await;
                        got.push(g);
                        want.push(w);
                    }
                }
                (Returned::Steps(got), Returned::Steps(want))
            }
            DeliveryOp::Requeue { event, by } => {
                let (a, e) = self.world.event_by(*event, *by);
                (
                    returned(store.requeue(a, e, now).await, Returned::Delivery),
                    found(self.model.requeue(a, e, now), Returned::Delivery),
                )
            }
            DeliveryOp::Read { event, by } => {
                let (a, e) = self.world.event_by(*event, *by);
                (
                    returned(store.delivery(a, e).await, Returned::Delivery),
                    found(self.model.delivery(a, e), Returned::Delivery),
                )
            }
            DeliveryOp::ListFailed {
                account,
                after,
                limit,
            } => {
                let a = self.world.account(*account);
                let after = match (*after, self.world.events.len()) {
                    (0, _) | (_, 0) => 0,
                    (i, n) => self.world.events[usize::from(i - 1) % n].seq,
                };
                let page = Page {
                    after,
                    limit: usize::from(*limit),
                };
                (
                    returned(store.failed_deliveries(a, page).await, Returned::Failed),
                    Returned::Failed(self.model.failed(a, page)),
                )
            }
            DeliveryOp::Prune { age, limit } => {
                let before = now - TimeDelta::seconds(i64::from(*age));
                let limit = usize::from(*limit);
                (
                    returned(store.prune_delivered(before, limit).await, Returned::Count),
                    Returned::Count(self.model.prune(before, limit)),
                )
            }
            DeliveryOp::Advance { seconds } => {
                self.now += TimeDelta::seconds(i64::from(*seconds));
                (Returned::None, Returned::None)
            }
        }
    }
}

/// Replays `ops` against `store` and against a fresh model of the delivery state (plain
/// `Vec`s and linear scans applying the [delivery rules](crate::webhooks::rules)), from
/// [`epoch`], with a retry schedule of four attempts. Attempts are recorded with the next step
/// [`rules::next_step`] decides, as the dispatcher does. After every step, checks that both
/// returned the same thing (claims compared without their lease ids) and hold the same state:
/// each account's endpoint and failed deliveries (walking every page), and every event's
/// delivery (status, attempts, last attempt, lease end, next attempt time).
///
/// `store` must be empty (its delivery cursor at the start of an outbox holding only this
/// test's events): a fresh `MemoryStore`, or a `PostgresStore` in a fresh schema.
///
/// # Panics
///
/// On the first difference, naming the step.
pub async fn compare_delivery_with_model<S: WebhookStore>(store: &S, ops: &[DeliveryOp]) {
    let mut run = Run {
        store,
        model: DeliveryModel::default(),
        world: World {
            accounts: Vec::new(),
            events: Vec::new(),
            claims: Vec::new(),
            endpoints_set: 0,
            keys: 0,
        },
        schedule: schedule(),
        now: epoch(),
    };
    for i in 0..3 {
        let id = AccountId::new();
        let account = Account::new(id, run.now);
        store.create_account(account).await.expect("account");
        run.world.accounts.push(id);
        if i < 2 {
            let endpoint = run.world.endpoint(id, run.now);
            let set = store.set_endpoint(endpoint.clone()).await;
            set.expect("endpoint");
            run.model.set_endpoint(endpoint);
        }
    }
    for (step, op) in ops.iter().enumerate() {
        let (got, want) = run.apply(step, op).await;
        assert_eq!(
            got, want,
            "step {step} ({op:?}): the store and the model disagree"
        );
        let after = snapshot(store, &run.world).await;
        let expected = model_snapshot(&run.model, &run.world);
        assert_eq!(
            after, expected,
            "step {step} ({op:?}): the delivery states differ"
        );
    }
}
