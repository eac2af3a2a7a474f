//! Endpoints and delivery state in plain memory: the [`WebhookStore`] logic that the
//! in-memory stores share, applied under their own lock.
//!
//! [`WebhookStore`]: crate::store::WebhookStore

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

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

    pub(crate) fn set_endpoint(&mut self, endpoint: Endpoint) -> Endpoint {
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
            self.fail(seq, now, FailReason::EndpointDisabled);
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
            let Some(endpoint) = self.endpoints.get(&event.account) else {
                continue;
            };
            let status = if endpoint.is_enabled() {
                DeliveryStatus::Pending {
                    next_attempt_at: now,
                }
            } else {
                DeliveryStatus::Failed {
                    at: now,
                    reason: FailReason::EndpointDisabled,
                }
            };
            let seq = event.seq;
            match status {
                DeliveryStatus::Pending { .. } => {
                    self.due.insert((now, seq));
                }
                _ => {
                    self.failed.insert(seq);
                }
            }
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
        }
        taken
    }

    pub(crate) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Vec<Claim> {
        let lease = TimeDelta::from_std(lease.max(Duration::from_secs(1)))
            .unwrap_or(TimeDelta::MAX)
            .min(TimeDelta::days(365));
        let until = now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
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
            let endpoint = self
                .endpoints
                .get(&entry.delivery.account)
                .filter(|e| e.is_enabled())
                .cloned();
            let Some(endpoint) = endpoint else {
                self.fail(seq, now, FailReason::EndpointDisabled);
                continue;
            };
            let id = Uuid::new_v4();
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
        // A `410` from an endpoint that has since been replaced disables nothing: the delivery
        // is due again at once, for the new endpoint.
        let next = match next {
            NextStep::DisableEndpoint {
                endpoint_updated_at,
            } => {
                let account = self.deliveries.get(&seq).map(|e| e.delivery.account);
                let replaced = account
                    .and_then(|a| self.endpoints.get(&a))
                    .is_some_and(|e| e.updated_at != endpoint_updated_at);
                if replaced {
                    NextStep::RetryAt(attempt.at)
                } else {
                    next
                }
            }
            other => other,
        };
        let Some(entry) = self.deliveries.get_mut(&seq) else {
            return false;
        };
        let current = entry.lease == Some(lease.id)
            && matches!(entry.delivery.status, DeliveryStatus::Pending { .. });
        let accepted = match next {
            NextStep::Delivered => {
                !matches!(entry.delivery.status, DeliveryStatus::Delivered { .. })
            }
            _ => current,
        };
        if !accepted {
            return false;
        }
        let at = attempt.at;
        entry.delivery.attempts = entry.delivery.attempts.max(attempt.number);
        entry.delivery.last_attempt = Some(attempt);
        match next {
            NextStep::Delivered => {
                self.leave_status(seq);
                if let Some(entry) = self.deliveries.get_mut(&seq) {
                    entry.delivery.status = DeliveryStatus::Delivered { at };
                }
                self.delivered.insert((at, seq));
            }
            NextStep::RetryAt(when) => {
                self.leave_status(seq);
                if let Some(entry) = self.deliveries.get_mut(&seq) {
                    entry.delivery.status = DeliveryStatus::Pending {
                        next_attempt_at: when,
                    };
                    entry.eligible_at = when;
                }
                self.due.insert((when, seq));
            }
            NextStep::GiveUp => self.fail(seq, at, FailReason::Exhausted),
            NextStep::DisableEndpoint { .. } => {
                let account = entry.delivery.account;
                self.fail(seq, at, FailReason::EndpointDisabled);
                self.disable_endpoint(account, at);
            }
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

    pub(crate) fn delivery(&self, event: EventId) -> Option<Delivery> {
        let seq = self.by_event.get(&event)?;
        self.deliveries.get(seq).map(|e| e.delivery.clone())
    }

    pub(crate) fn failed(&self, account: Option<AccountId>, page: Page) -> Paged<Delivery> {
        let limit = page.clamped_limit();
        let mut items: Vec<Delivery> = self
            .failed
            .range(page.after.saturating_add(1)..)
            .filter_map(|seq| self.deliveries.get(seq))
            .filter(|e| account.is_none_or(|a| e.delivery.account == a))
            .take(limit + 1)
            .map(|e| e.delivery.clone())
            .collect();
        let next = (items.len() > limit).then(|| items[limit - 1].seq);
        items.truncate(limit);
        Paged { items, next }
    }

    pub(crate) fn requeue(&mut self, event: EventId, now: DateTime<Utc>) -> Option<Delivery> {
        let seq = *self.by_event.get(&event)?;
        let entry = self.deliveries.get(&seq)?;
        if matches!(entry.delivery.status, DeliveryStatus::Failed { .. }) {
            self.leave_status(seq);
            self.due.insert((now, seq));
            let entry = self.deliveries.get_mut(&seq)?;
            entry.delivery.status = DeliveryStatus::Pending {
                next_attempt_at: now,
            };
            entry.delivery.attempts = 0;
            entry.delivery.queued_at = now;
            entry.eligible_at = now;
        }
        self.delivery(event)
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

    /// Fails a delivery if it is pending.
    fn fail(&mut self, seq: u64, at: DateTime<Utc>, reason: FailReason) {
        let pending = self
            .deliveries
            .get(&seq)
            .is_some_and(|e| matches!(e.delivery.status, DeliveryStatus::Pending { .. }));
        if !pending {
            return;
        }
        self.leave_status(seq);
        if let Some(entry) = self.deliveries.get_mut(&seq) {
            entry.delivery.status = DeliveryStatus::Failed { at, reason };
        }
        self.failed.insert(seq);
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
