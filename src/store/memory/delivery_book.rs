//! Endpoints and delivery state in plain memory, indexed for the dispatcher's queries: the
//! [`WebhookStore`] of `MemoryStore`, applied under its lock. The decisions are the pure
//! [delivery rules](crate::webhooks::rules); this file only keeps the indexes in step.
//!
//! [`WebhookStore`]: crate::store::WebhookStore

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::IdSource;
use crate::webhooks::rules;
use crate::webhooks::Endpoint;
use crate::webhooks::{Attempt, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep};
use crate::{AccountId, Event, EventId};
use crate::{Page, Paged};

#[derive(Debug, Default)]
pub(crate) struct DeliveryBook {
    /// The last outbox `seq` taken by `queue`.
    cursor: u64,
    endpoints: HashMap<AccountId, Endpoint>,
    /// By `seq`.
    deliveries: BTreeMap<u64, Entry>,
    by_event: HashMap<EventId, u64>,
    /// Pending deliveries by the time they may next be claimed: when due, or when their lease
    /// runs out.
    due: BTreeSet<(DateTime<Utc>, u64)>,
    failed: BTreeSet<u64>,
    delivered: BTreeSet<(DateTime<Utc>, u64)>,
}

#[derive(Debug)]
struct Entry {
    delivery: Delivery,
    event: Event,
    lease: Option<Uuid>,
    /// The key of this entry in `due`, while pending.
    eligible_at: DateTime<Utc>,
}

impl DeliveryBook {
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    pub(crate) fn set_endpoint(&mut self, mut endpoint: Endpoint) -> Endpoint {
        endpoint.version = rules::endpoint_version(self.endpoints.get(&endpoint.account));
        self.endpoints.insert(endpoint.account, endpoint.clone());
        endpoint
    }

    pub(crate) fn endpoint(&self, account: AccountId) -> Option<Endpoint> {
        self.endpoints.get(&account).cloned()
    }

    pub(crate) fn disable_endpoint(
        &mut self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Option<Endpoint> {
        let endpoint = self.endpoints.get_mut(&account)?;
        endpoint.disabled_at.get_or_insert(now);
        let endpoint = endpoint.clone();
        let pending: Vec<u64> = self
            .deliveries
            .iter()
            .filter(|(_, e)| {
                e.delivery.account == account
                    && matches!(e.delivery.status, DeliveryStatus::Pending { .. })
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in pending {
            self.set_status(
                seq,
                DeliveryStatus::Failed {
                    at: now,
                    reason: FailReason::EndpointDisabled,
                },
            );
        }
        Some(endpoint)
    }

    /// Queues deliveries for `events` (read from the outbox after `cursor()`); returns how
    /// many events were taken.
    pub(crate) fn queue(&mut self, events: Vec<Event>, now: DateTime<Utc>) -> usize {
        let taken = events.len();
        for event in events {
            if event.seq <= self.cursor || self.by_event.contains_key(&event.id) {
                continue; // another caller took it
            }
            self.cursor = event.seq;
            let Some(status) = rules::queued_status(
                self.endpoints.get(&event.account),
                event.kind.event_type(),
                now,
            ) else {
                continue;
            };
            let seq = event.seq;
            self.by_event.insert(event.id, seq);
            self.deliveries.insert(
                seq,
                Entry {
                    delivery: Delivery {
                        event: event.id,
                        seq,
                        account: event.account,
                        status,
                        attempts: 0,
                        last_attempt: None,
                        leased_until: None,
                        queued_at: now,
                    },
                    event,
                    lease: None,
                    eligible_at: now,
                },
            );
            self.enter_status(seq);
        }
        taken
    }

    pub(crate) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        ids: &IdSource,
    ) -> Vec<Claim> {
        let until = rules::lease_until(now, lease);
        let mut claims = Vec::new();
        while claims.len() < limit {
            let Some(&(eligible, seq)) = self.due.first() else {
                break;
            };
            if eligible > now {
                break;
            }
            let Some(entry) = self.deliveries.get(&seq) else {
                self.due.remove(&(eligible, seq));
                continue;
            };
            let endpoint = self.endpoints.get(&entry.delivery.account);
            if let Some(failed) = rules::fails_at_claim(endpoint, now) {
                self.set_status(seq, failed);
                continue;
            }
            let Some(endpoint) = endpoint.cloned() else {
                continue;
            };
            let id = ids.next();
            self.due.remove(&(eligible, seq));
            self.due.insert((until, seq));
            let Some(entry) = self.deliveries.get_mut(&seq) else {
                continue;
            };
            entry.lease = Some(id);
            entry.eligible_at = until;
            entry.delivery.leased_until = Some(until);
            claims.push(Claim {
                lease: Lease {
                    id,
                    event: entry.delivery.event,
                    attempt: entry.delivery.attempts.saturating_add(1),
                    until,
                },
                event: entry.event.clone(),
                endpoint,
            });
        }
        claims
    }

    pub(crate) fn record(&mut self, lease: Lease, attempt: Attempt, next: NextStep) -> bool {
        let Some(&seq) = self.by_event.get(&lease.event) else {
            return false;
        };
        let Some(entry) = self.deliveries.get(&seq) else {
            return false;
        };
        let account = entry.delivery.account;
        let next = rules::step_to_apply(next, self.endpoints.get(&account), attempt.at);
        let current = entry.lease == Some(lease.id);
        if !rules::accepts_attempt(&entry.delivery.status, current, next) {
            return false;
        }
        let at = attempt.at;
        if let Some(entry) = self.deliveries.get_mut(&seq) {
            entry.delivery.attempts = entry.delivery.attempts.max(attempt.number);
            entry.delivery.last_attempt = Some(attempt);
        }
        self.set_status(seq, rules::status_after(next, at));
        if let NextStep::DisableEndpoint { .. } = next {
            self.disable_endpoint(account, at);
        }
        true
    }

    /// Drops `lease` if it is still the delivery's current one; the delivery is claimable
    /// again from when it was due.
    pub(crate) fn release(&mut self, lease: Lease) -> bool {
        let Some(&seq) = self.by_event.get(&lease.event) else {
            return false;
        };
        let Some(entry) = self.deliveries.get_mut(&seq) else {
            return false;
        };
        let DeliveryStatus::Pending { next_attempt_at } = entry.delivery.status else {
            return false;
        };
        if entry.lease != Some(lease.id) {
            return false;
        }
        self.due.remove(&(entry.eligible_at, seq));
        self.due.insert((next_attempt_at, seq));
        entry.eligible_at = next_attempt_at;
        entry.lease = None;
        entry.delivery.leased_until = None;
        true
    }

    /// The delivery of `event` if it is `account`'s.
    pub(crate) fn delivery(&self, account: AccountId, event: EventId) -> Option<Delivery> {
        self.entry_of(account, event)
            .map(|(_, e)| e.delivery.clone())
    }

    fn entry_of(&self, account: AccountId, event: EventId) -> Option<(u64, &Entry)> {
        let seq = *self.by_event.get(&event)?;
        let entry = self.deliveries.get(&seq)?;
        (entry.delivery.account == account).then_some((seq, entry))
    }

    pub(crate) fn failed(&self, account: AccountId, page: Page) -> Paged<Delivery> {
        let limit = page.clamped_limit();
        let mut items: Vec<Delivery> = self
            .failed
            .range(page.after.saturating_add(1)..)
            .filter_map(|seq| self.deliveries.get(seq))
            .filter(|e| e.delivery.account == account)
            .take(limit + 1)
            .map(|e| e.delivery.clone())
            .collect();
        let next = (items.len() > limit).then(|| items[limit - 1].seq);
        items.truncate(limit);
        Paged { items, next }
    }

    /// Re-queues `account`'s delivery of `event` if it failed.
    pub(crate) fn requeue(
        &mut self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Option<Delivery> {
        let (seq, entry) = self.entry_of(account, event)?;
        if matches!(entry.delivery.status, DeliveryStatus::Failed { .. }) {
            self.set_status(
                seq,
                DeliveryStatus::Pending {
                    next_attempt_at: now,
                },
            );
            let entry = self.deliveries.get_mut(&seq)?;
            entry.delivery.attempts = 0;
            entry.delivery.queued_at = now;
        }
        self.delivery(account, event)
    }

    pub(crate) fn prune(&mut self, before: DateTime<Utc>, limit: usize) -> usize {
        let old: Vec<(DateTime<Utc>, u64)> = self
            .delivered
            .iter()
            .take_while(|(at, _)| *at < before)
            .take(limit)
            .copied()
            .collect();
        for key in &old {
            self.delivered.remove(key);
            if let Some(entry) = self.deliveries.remove(&key.1) {
                self.by_event.remove(&entry.delivery.event);
            }
        }
        old.len()
    }

    /// The status of `event`'s delivery, if it has one.
    pub(crate) fn status_of(&self, event: EventId) -> Option<&DeliveryStatus> {
        let seq = self.by_event.get(&event)?;
        self.deliveries.get(seq).map(|e| &e.delivery.status)
    }

    /// Removes up to `limit` deliveries that were delivered or failed before `before`
    /// ([`rules::prunable_delivery`](crate::rules::prunable_delivery)): delivered ones first,
    /// then failed ones, each oldest first.
    pub(crate) fn prune_done(&mut self, before: DateTime<Utc>, limit: usize) -> usize {
        let delivered = self.prune(before, limit);
        let mut failed: Vec<(DateTime<Utc>, u64)> = self
            .failed
            .iter()
            .filter_map(|seq| match self.deliveries.get(seq)?.delivery.status {
                DeliveryStatus::Failed { at, .. } if at < before => Some((at, *seq)),
                _ => None,
            })
            .collect();
        failed.sort_unstable();
        failed.truncate(limit - delivered);
        for (_, seq) in &failed {
            self.leave_status(*seq);
            if let Some(entry) = self.deliveries.remove(seq) {
                self.by_event.remove(&entry.delivery.event);
            }
        }
        delivered + failed.len()
    }

    /// Erases what `redaction` erased from the events kept for delivery. A delivery keeps no
    /// response text (an attempt records its status code or failure kind only).
    pub(crate) fn scrub(&mut self, redaction: crate::rules::Redaction) {
        for entry in self.deliveries.values_mut() {
            crate::rules::scrub_labels(&mut entry.event, redaction);
        }
    }

    /// Moves a delivery to `status`, in the indexes too, and drops its lease.
    fn set_status(&mut self, seq: u64, status: DeliveryStatus) {
        self.leave_status(seq);
        if let Some(entry) = self.deliveries.get_mut(&seq) {
            entry.delivery.status = status;
        }
        self.enter_status(seq);
    }

    /// Adds a delivery to the index of its status.
    fn enter_status(&mut self, seq: u64) {
        let Some(entry) = self.deliveries.get_mut(&seq) else {
            return;
        };
        match entry.delivery.status {
            DeliveryStatus::Pending { next_attempt_at } => {
                entry.eligible_at = next_attempt_at;
                self.due.insert((next_attempt_at, seq));
            }
            DeliveryStatus::Delivered { at } => {
                self.delivered.insert((at, seq));
            }
            DeliveryStatus::Failed { .. } => {
                self.failed.insert(seq);
            }
        }
    }

    /// Removes a delivery from the index of its current status and drops its lease.
    fn leave_status(&mut self, seq: u64) {
        let Some(entry) = self.deliveries.get_mut(&seq) else {
            return;
        };
        match entry.delivery.status {
            DeliveryStatus::Pending { .. } => {
                self.due.remove(&(entry.eligible_at, seq));
            }
            DeliveryStatus::Delivered { at } => {
                self.delivered.remove(&(at, seq));
            }
            DeliveryStatus::Failed { .. } => {
                self.failed.remove(&seq);
            }
        }
        entry.lease = None;
        entry.delivery.leased_until = None;
    }
}
