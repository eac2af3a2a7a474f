//! The reference model: the rules applied to plain maps, one operation at a time.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::delivery_model::DeliveryModel;
use crate::funnel::{ViewChange, ViewCounts};
use crate::returns::{ReturnSecret, ReturnSecrets};
use crate::rules;
use crate::start::{HandoffId, StartKeyHash};
use crate::store::{LinkStore, WebhookStore};
use crate::webhooks::{Attempt, Claim, Delivery, Endpoint, Lease, NextStep};
use crate::{
    AbandonReason, Account, AccountId, AccountProfile, Error, Event, EventId, EventKind,
    IdempotencyKey, Labels, LedgerEntry, LedgerKind, Link, LinkId, Outcome, Pruned, Reference,
    Rejection, Session, SessionId, SessionStatus, SessionTtl,
};
use crate::{LinkStats, Page, Paged};

/// The rules applied to plain maps: the simplest correct [`LinkStore`] and [`WebhookStore`]
/// (its deliveries are the delivery model's: `Vec`s and linear scans applying the
/// [delivery rules](crate::webhooks::rules)).
///
/// All state sits behind one `Mutex`. The property tests compare every store with it, and the
/// benches use it as the baseline a concurrent store must beat. Not meant for production.
#[derive(Debug, Default)]
pub struct ReferenceStore(Mutex<Model>);

#[derive(Debug, Default)]
struct Model {
    links: HashMap<LinkId, Link>,
    link_order: Vec<LinkId>,
    sessions: HashMap<SessionId, Session>,
    sessions_of: HashMap<LinkId, Vec<SessionId>>,
    accounts: HashMap<AccountId, Account>,
    return_secrets: HashMap<AccountId, ReturnSecrets>,
    ledger: Vec<LedgerEntry>,
    outbox: Vec<Event>,
    /// The last `seq` handed out (events may have been pruned since).
    seq: u64,
    /// Links whose `link.expired` was written.
    expiry_reported: std::collections::HashSet<LinkId>,
    /// What pruned sessions counted, by link.
    pruned: HashMap<LinkId, crate::PrunedTally>,
    /// Landing-page views by link.
    views: HashMap<LinkId, ViewCounts>,
    /// The last session each start key started on each link.
    started: HashMap<(LinkId, StartKeyHash), SessionId>,
    /// Hand-offs: account, session, expiry, used.
    handoffs: HashMap<HandoffId, (AccountId, SessionId, DateTime<Utc>, bool)>,
    webhooks: DeliveryModel,
}

impl Model {
    /// Appends exactly the events the rule returned, in order, with the labels their link and
    /// session have now.
    fn emit(&mut self, account: AccountId, at: DateTime<Utc>, kinds: Vec<EventKind>) {
        for kind in kinds {
            let link = kind.link().and_then(|id| self.links.get(&id));
            let session = kind.session().and_then(|id| self.sessions.get(&id));
            let labels = Labels {
                reference: link.and_then(|l| l.reference.clone()),
                session_reference: session.and_then(|s| s.reference.clone()),
                metadata: link.map(|l| l.metadata.clone()).unwrap_or_default(),
            };
            self.seq += 1;
            self.outbox.push(Event {
                seq: self.seq + 1,
                id: EventId::new(),
                account,
                at,
                kind,
                labels,
            });
        }
    }

    /// Erases what `redaction` erased from the outbox and the events kept for delivery.
    fn scrub(&mut self, redaction: rules::Redaction) {
        for event in &mut self.outbox {
            rules::scrub_labels(event, redaction);
        }
        self.webhooks.scrub(redaction);
    }

    fn owned_link(&self, account: AccountId, link: LinkId) -> Result<&Link, Error> {
        self.links
            .get(&link)
            .filter(|l| l.account == account)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    fn change_session(
        &mut self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
        rule: impl FnOnce(&mut Session, &mut Account) -> Result<rules::Effects<Session>, Rejection>,
    ) -> Result<Session, Error> {
        let owner = self.accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
        let stored = self
            .sessions
            .get_mut(&session)
            .filter(|s| s.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rule(stored, owner)?;
        self.ledger.extend(effects.ledger);
        self.emit(account, now, effects.events);
        Ok(effects.value)
    }

    fn sessions_of(&self, link: LinkId) -> impl Iterator<Item = &Session> {
        self.sessions_of
            .get(&link)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
    }
}

fn page_of<T: Clone>(items: impl Iterator<Item = T>, page: Page) -> Paged<T> {
    let mut items: Vec<T> = items
        .skip(usize::try_from(page.after).unwrap_or(usize::MAX))
        .take(page.clamped_limit() + 1)
        .collect();
    let more = items.len() > page.clamped_limit();
    items.truncate(page.clamped_limit());
    let next = more.then(|| page.after + items.len() as u64);
    Paged { items, next }
}

impl ReferenceStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl LinkStore for ReferenceStore {
    async fn create_account(&self, account: Account) -> Result<Account, Error> {
        let account = rules::create_account(&account)?;
        self.with(|m| {
            if m.accounts.contains_key(&account.id) {
                return Err(Error::AlreadyExists);
            }
            m.accounts.insert(account.id, account.clone());
            Ok(account)
        })
    }

    async fn insert_link(&self, link: Link) -> Result<Link, Error> {
        let effects = rules::create_link(&link)?;
        self.with(|m| {
            if m.links.contains_key(&link.id) {
                return Err(Error::AlreadyExists);
            }
            if !m.accounts.contains_key(&link.account) {
                return Err(Rejection::NotFound.into());
            }
            m.link_order.push(link.id);
            m.links.insert(link.id, effects.value.clone());
            m.emit(
                effects.value.account,
                effects.value.created_at,
                effects.events,
            );
            Ok(effects.value)
        })
    }

    async fn redeem(
        &self,
        link: LinkId,
        session: SessionId,
        key: Option<StartKeyHash>,
        reference: Option<Reference>,
        ttl: SessionTtl,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            let previous = key
                .and_then(|k| m.started.get(&(link, k)))
                .and_then(|id| m.sessions.get(id))
                .cloned();
            let stored = m.links.get_mut(&link).ok_or(Rejection::NotFound)?;
            let owner = m
                .accounts
                .get_mut(&stored.account)
                .ok_or(Rejection::NotFound)?;
            let mut owner_after = owner.clone();
            let mut expired = None;
            if let Some(mut previous) = previous {
                match rules::keyed_start(&previous, now) {
                    rules::KeyedStart::Resume => return Ok(previous),
                    rules::KeyedStart::ExpireThenRedeem => {
                        expired = rules::expire(&mut previous, &mut owner_after, now);
                    }
                    rules::KeyedStart::Redeem => {}
                }
            }
            if m.sessions.contains_key(&session) {
                return Err(Error::AlreadyExists);
            }
            let effects = rules::redeem(stored, &mut owner_after, session, reference, ttl, now)?;
            *owner = owner_after;
            let account = owner.id;
            if let Some(expired) = expired {
                m.ledger.extend(expired.ledger);
                m.emit(account, now, expired.events);
                m.sessions.insert(expired.value.id, expired.value);
            }
            m.ledger.extend(effects.ledger);
            m.sessions.insert(session, effects.value.clone());
            m.sessions_of.entry(link).or_default().push(session);
            if let Some(key) = key {
                m.started.insert((link, key), session);
            }
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn started_session(
        &self,
        link: LinkId,
        key: StartKeyHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Error> {
        Ok(self.with(|m| {
            m.started
                .get(&(link, key))
                .and_then(|id| m.sessions.get(id))
                .filter(|s| rules::check_open(s, now).is_ok())
                .cloned()
        }))
    }

    async fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            if m.handoffs.contains_key(&handoff) {
                return Err(Error::AlreadyExists);
            }
            let stored = m
                .sessions
                .get(&session)
                .filter(|s| s.account == account)
                .cloned()
                .ok_or(Rejection::NotFound)?;
            rules::check_open(&stored, now)?;
            m.handoffs
                .insert(handoff, (account, session, expires_at, false));
            Ok(stored)
        })
    }

    async fn accept_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            let (account, session, expires_at, used) =
                m.handoffs.get_mut(&handoff).ok_or(Rejection::NotFound)?;
            let stored = m.sessions.get(session).ok_or(Rejection::NotFound)?;
            let effects = rules::accept_handoff(used, *expires_at, stored, now)?;
            let account = *account;
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn check_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            let (_, session, expires_at, used) =
                m.handoffs.get(&handoff).ok_or(Rejection::NotFound)?;
            let stored = m.sessions.get(session).ok_or(Rejection::NotFound)?;
            rules::check_handoff(*used, *expires_at, stored, now)?;
            Ok(stored.clone())
        })
    }

    async fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            m.change_session(account, session, now, |s, a| {
                rules::complete(s, a, outcome, now)
            })
        })
    }

    async fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        rules::check_decision(decision)?;
        self.with(|m| {
            let stored = m
                .sessions
                .get_mut(&session)
                .filter(|s| s.account == account)
                .ok_or(Rejection::NotFound)?;
            let effects = rules::review(stored, decision, now)?;
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            m.change_session(account, session, now, |s, a| {
                rules::abandon(s, a, AbandonReason::Explicit, now)
            })
        })
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.with(|m| {
            let mut stale: Vec<_> = m
                .sessions
                .values()
                .filter(|s| s.is_stale(now))
                .map(|s| (s.expires_at, s.id, s.account))
                .collect();
            stale.sort_unstable();
            stale.truncate(limit);
            for &(_, session, account) in &stale {
                m.change_session(account, session, now, |s, a| {
                    rules::expire(s, a, now).ok_or(Rejection::NotFound)
                })?;
            }
            Ok(stale.len())
        })
    }

    async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.with(|m| {
            let mut due: Vec<_> = m
                .links
                .values()
                .filter(|l| rules::expire_link(l, m.expiry_reported.contains(&l.id), now).is_some())
                .map(|l| (l.expires_at, l.id, l.account))
                .collect();
            due.sort_unstable();
            due.truncate(limit);
            for &(_, link, account) in &due {
                let reported = m.expiry_reported.contains(&link);
                let effects = m
                    .links
                    .get(&link)
                    .and_then(|l| rules::expire_link(l, reported, now))
                    .ok_or(Rejection::NotFound)?;
                m.expiry_reported.insert(link);
                m.emit(account, now, effects.events);
            }
            Ok(due.len())
        })
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<Pruned, Error> {
        self.with(|m| {
            let deliveries = m.webhooks.prune_done(before, limit);
            let queued = m.webhooks.cursor();
            let mut events = 0;
            let outbox = std::mem::take(&mut m.outbox);
            for event in outbox {
                let status = m.webhooks.status_of(event.id);
                if events < limit
                    && rules::prunable_event(event.at, event.seq, queued, status, before)
                {
                    events += 1;
                } else {
                    m.outbox.push(event);
                }
            }
            let mut due: Vec<(DateTime<Utc>, SessionId)> =
                m.sessions
                    .values()
                    .filter(|s| rules::prunable_session(s, before))
                    .map(|s| match s.status {
                        SessionStatus::Completed { at, .. }
                        | SessionStatus::Abandoned { at, .. } => (at, s.id),
                        SessionStatus::Started => (s.started_at, s.id),
                    })
                    .collect();
            due.sort_unstable();
            due.truncate(limit);
            for &(_, id) in &due {
                let Some(session) = m.sessions.remove(&id) else {
                    continue;
                };
                m.pruned.entry(session.link).or_default().add(&session);
                if let Some(ids) = m.sessions_of.get_mut(&session.link) {
                    ids.retain(|s| *s != id);
                }
                m.started.retain(|_, s| *s != id);
            }
            let mut gone: Vec<(DateTime<Utc>, HandoffId)> = m
                .handoffs
                .iter()
                .filter(|(_, (_, session, expires_at, _))| {
                    rules::prunable_handoff(*expires_at, before)
                        || due.iter().any(|(_, id)| id == session)
                })
                .map(|(id, (_, _, expires_at, _))| (*expires_at, *id))
                .collect();
            gone.sort_unstable();
            gone.truncate(limit);
            for (_, id) in &gone {
                m.handoffs.remove(id);
            }
            Ok(Pruned {
                sessions: due.len() as u64,
                events: events as u64,
                deliveries: deliveries as u64,
                handoffs: gone.len() as u64,
            })
        })
    }

    async fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.with(|m| {
            m.owned_link(account, link)?;
            let stored = m.links.get_mut(&link).ok_or(Rejection::NotFound)?;
            let effects = rules::deactivate(stored, now);
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.with(|m| {
            m.owned_link(account, link)?;
            let stored = m.links.get_mut(&link).ok_or(Rejection::NotFound)?;
            let effects = rules::redact_link(stored, now);
            if !effects.events.is_empty() {
                let ids = m.sessions_of.get(&link).cloned().unwrap_or_default();
                for id in ids {
                    if let Some(session) = m.sessions.get_mut(&id) {
                        rules::erase_session_reference(session, now);
                    }
                }
                m.scrub(rules::Redaction::Link(link));
            }
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.with(|m| {
            let stored = m
                .sessions
                .get_mut(&session)
                .filter(|s| s.account == account)
                .ok_or(Rejection::NotFound)?;
            let effects = rules::redact_session(stored, now);
            if !effects.events.is_empty() {
                m.scrub(rules::Redaction::Session(session));
            }
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Account, Error> {
        self.with(|m| {
            let previous = m.ledger.iter().find_map(|e| match &e.kind {
                LedgerKind::TopUp { key: k } if e.account == account && *k == key => Some(e.amount),
                _ => None,
            });
            let owner = m.accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
            let effects = rules::top_up(owner, amount, &key, previous, now)?;
            m.ledger.extend(effects.ledger);
            m.emit(account, now, effects.events);
            Ok(effects.value)
        })
    }

    async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
        self.with(|m| {
            let link = m.links.get(&link).ok_or(Rejection::NotFound)?.clone();
            let owner = m
                .accounts
                .get(&link.account)
                .ok_or(Rejection::NotFound)?
                .clone();
            Ok((link, owner))
        })
    }

    async fn set_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> Result<Account, Error> {
        let profile = profile.validate()?;
        self.with(|m| {
            let stored = m.accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
            stored.profile = profile;
            Ok(stored.clone())
        })
    }

    async fn return_secrets(&self, account: AccountId) -> Result<Option<ReturnSecrets>, Error> {
        self.with(|m| {
            if !m.accounts.contains_key(&account) {
                return Err(Rejection::NotFound.into());
            }
            Ok(m.return_secrets.get(&account).cloned())
        })
    }

    async fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: ReturnSecret,
    ) -> Result<(), Error> {
        self.with(|m| {
            if !m.accounts.contains_key(&account) {
                return Err(Rejection::NotFound.into());
            }
            match m.return_secrets.get_mut(&account) {
                Some(secrets) => secrets.rotate(secret),
                None => {
                    m.return_secrets.insert(account, ReturnSecrets::new(secret));
                }
            }
            Ok(())
        })
    }

    async fn record_view(&self, link: LinkId, change: ViewChange) -> Result<ViewCounts, Error> {
        self.with(|m| {
            if !m.links.contains_key(&link) {
                return Err(Rejection::NotFound.into());
            }
            let views = m.views.entry(link).or_default();
            views.apply(change);
            Ok(*views)
        })
    }

    async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.with(|m| m.owned_link(account, link).cloned())
    }

    async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        self.with(|m| {
            if !m.accounts.contains_key(&account) {
                return Err(Rejection::NotFound.into());
            }
            let owned = m
                .link_order
                .iter()
                .filter_map(|id| m.links.get(id))
                .filter(|l| l.account == account)
                .cloned();
            Ok(page_of(owned, page))
        })
    }

    async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Link>, Error> {
        Ok(self.with(|m| {
            m.link_order
                .iter()
                .filter_map(|id| m.links.get(id))
                .filter(|l| l.account == account && l.reference.as_ref() == Some(reference))
                .take(crate::store::MAX_BY_REFERENCE)
                .cloned()
                .collect()
        }))
    }

    async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Session>, Error> {
        Ok(self.with(|m| {
            let mut found: Vec<Session> = m
                .sessions
                .values()
                .filter(|s| s.account == account && s.reference.as_ref() == Some(reference))
                .cloned()
                .collect();
            found.sort_by_key(|s| (s.started_at, s.id));
            found.truncate(crate::store::MAX_BY_REFERENCE);
            found
        }))
    }

    async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        self.with(|m| {
            m.sessions
                .get(&session)
                .filter(|s| s.account == account)
                .cloned()
                .ok_or_else(|| Rejection::NotFound.into())
        })
    }

    async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        self.with(|m| {
            m.owned_link(account, link)?;
            // By number: pruned sessions leave gaps.
            let limit = page.clamped_limit();
            let mut items: Vec<Session> = m
                .sessions_of(link)
                .filter(|s| s.number > page.after)
                .take(limit + 1)
                .cloned()
                .collect();
            let next = (items.len() > limit).then(|| items[limit - 1].number);
            items.truncate(limit);
            Ok(Paged { items, next })
        })
    }

    async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        self.with(|m| {
            let stored = m.owned_link(account, link)?;
            let pruned = m.pruned.get(&link).cloned().unwrap_or_default();
            Ok(LinkStats {
                views: m.views.get(&link).copied().unwrap_or_default(),
                ..LinkStats::tally_with(stored, m.sessions_of(link), &pruned)
            })
        })
    }

    async fn account(&self, account: AccountId) -> Result<Account, Error> {
        self.with(|m| {
            m.accounts
                .get(&account)
                .cloned()
                .ok_or_else(|| Rejection::NotFound.into())
        })
    }

    async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
        self.with(|m| {
            if !m.accounts.contains_key(&account) {
                return Err(Rejection::NotFound.into());
            }
            let entries = m.ledger.iter().filter(|e| e.account == account).cloned();
            Ok(page_of(entries, page))
        })
    }

    async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        self.with(|m| {
            let start = m.outbox.partition_point(|e| e.seq <= cursor);
            Ok(m.outbox[start..].iter().take(limit).cloned().collect())
        })
    }
}

impl WebhookStore for ReferenceStore {
    async fn set_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        self.with(|m| {
            if !m.accounts.contains_key(&endpoint.account) {
                return Err(Rejection::NotFound.into());
            }
            Ok(m.webhooks.set_endpoint(endpoint))
        })
    }

    async fn endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        self.with(|m| Ok(m.webhooks.endpoint(account).cloned()))
    }

    async fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Endpoint, Error> {
        self.with(|m| {
            m.webhooks
                .disable_endpoint(account, now)
                .ok_or_else(|| Rejection::NotFound.into())
        })
    }

    async fn queue_deliveries(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.with(|m| {
            let events = m
                .outbox
                .iter()
                .filter(|e| e.seq > m.webhooks.cursor())
                .take(limit)
                .cloned()
                .collect();
            Ok(m.webhooks.queue(events, now))
        })
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, Error> {
        self.with(|m| Ok(m.webhooks.claim(now, lease, limit)))
    }

    async fn release(&self, lease: Lease) -> Result<bool, Error> {
        self.with(|m| Ok(m.webhooks.release(lease)))
    }

    async fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<bool, Error> {
        self.with(|m| Ok(m.webhooks.record(lease, attempt, next)))
    }

    async fn delivery(&self, account: AccountId, event: EventId) -> Result<Delivery, Error> {
        self.with(|m| {
            m.webhooks
                .delivery(account, event)
                .ok_or_else(|| Rejection::NotFound.into())
        })
    }

    async fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        self.with(|m| Ok(m.webhooks.failed(account, page)))
    }

    async fn requeue(
        &self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Delivery, Error> {
        self.with(|m| {
            m.webhooks
                .requeue(account, event, now)
                .ok_or_else(|| Rejection::NotFound.into())
        })
    }

    async fn prune_delivered(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.with(|m| Ok(m.webhooks.prune(before, limit)))
    }
}
