//! The in-memory store: the embedded default.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::funnel::{ViewChange, ViewCounts};
use crate::returns::{ReturnSecret, ReturnSecrets};
use crate::rules::{self, Effects};
use crate::start::{HandoffId, StartKeyHash};
use crate::store::{ChangeSignal, Changes, IdSource, LinkStore, MAX_BY_REFERENCE};
use crate::{
    Account, AccountId, AccountProfile, Error, Event, EventId, EventKind, IdempotencyKey, Labels,
    LedgerEntry, LedgerKind, Link, LinkId, Metadata, Outcome, Reference, Rejection, Session,
    SessionId, SessionTtl,
};
use crate::{LinkStats, Page, Paged, Pruned, PrunedTally};

pub(crate) use delivery_book::DeliveryBook;
use shards::{lock, ShardKey, Shards};

mod delivery_book;
mod shards;
mod webhook_store;

const SHARDS: usize = 64;

/// An in-memory [`LinkStore`]: for tests and single-process services.
///
/// Links, accounts, sessions and the outbox live in 64 independently locked shards each, so
/// redemptions of different links on different threads do not wait on one another. An
/// operation takes at most one lock of each kind at a time, always in the order link, account,
/// session, labels, outbox, and holds them until it is complete: its state change and its
/// event become visible together. Reading the outbox takes every outbox shard at once, which
/// is what makes it gap-free.
///
/// It is also a [`WebhookStore`](crate::store::WebhookStore): endpoints and delivery state sit behind
/// one more lock, never on the redemption path: taken by webhook operations (queueing reads
/// the outbox under it) and, after the outbox lock is released, by redactions, which scrub the
/// labels they erase from the copies of events kept for delivery.
///
/// # Examples
///
/// ```
/// use magic_link::store::MemoryStore;
/// use magic_link::MagicLinks;
/// let keyring = magic_link::tokens::Keyring::generate().unwrap();
/// let base = "https://verify.example.com/l/".parse().unwrap();
/// let links = MagicLinks::new(MemoryStore::new(), keyring, base);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    links: Shards<LinkId, LinkEntry>,
    accounts: Shards<AccountId, AccountEntry>,
    sessions: Shards<SessionId, Session>,
    outbox: Box<[Mutex<Vec<Event>>]>,
    /// The owner's labels of links that have any, and of their sessions with a reference: what
    /// `emit` copies into each event. Locked after links, accounts and sessions, and before
    /// the outbox; `emit` holds it while appending, so a redaction (which erases here, then in
    /// the outbox) never misses an event being written.
    labels: Shards<LinkId, LinkLabels>,
    seq: AtomicU64,
    /// Hand-offs; locked before any session lock, never with a link or account lock.
    handoffs: Mutex<HashMap<HandoffId, HandoffEntry>>,
    webhooks: Mutex<DeliveryBook>,
    ids: IdSource,
    /// Raised after each step's events are appended (see [`Changes`](crate::store::Changes)).
    changes: ChangeSignal,
}

#[derive(Debug)]
struct LinkEntry {
    link: Link,
    /// Sessions by number (redemption order); pruned ones are gone.
    sessions: BTreeMap<u64, SessionId>,
    /// What the pruned sessions counted in the link's statistics.
    pruned: PrunedTally,
    /// Whether the expiry sweep wrote `link.expired`.
    expiry_reported: bool,
    /// Landing-page views, by kind.
    views: ViewCounts,
    /// The last session each start key (by its hash) started on this link.
    started: HashMap<StartKeyHash, SessionId>,
}

/// A link's labels, and the references of its sessions that have one.
#[derive(Debug, Default)]
struct LinkLabels {
    reference: Option<Reference>,
    metadata: Metadata,
    sessions: HashMap<SessionId, Reference>,
}

/// A hand-off: its session, expiry and single use.
#[derive(Debug)]
struct HandoffEntry {
    account: AccountId,
    session: SessionId,
    expires_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug)]
struct AccountEntry {
    account: Account,
    links: Vec<LinkId>,
    ledger: Vec<LedgerEntry>,
    top_ups: HashMap<IdempotencyKey, u64>,
    /// The secrets that sign the account's return URLs.
    return_secrets: Option<ReturnSecrets>,
}

impl AccountEntry {
    fn record(&mut self, ledger: Option<LedgerEntry>) {
        if let Some(entry) = ledger {
            if let LedgerKind::TopUp { key } = &entry.kind {
                self.top_ups.insert(key.clone(), entry.amount);
            }
            self.ledger.push(entry);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            links: Shards::new(),
            accounts: Shards::new(),
            sessions: Shards::new(),
            outbox: (0..SHARDS).map(|_| Mutex::default()).collect(),
            labels: Shards::new(),
            seq: AtomicU64::new(0),
            handoffs: Mutex::default(),
            webhooks: Mutex::default(),
            ids: IdSource::random(),
            changes: ChangeSignal::new(),
        }
    }

    /// The same store taking the ids of the events and leases it makes from `ids` (random by
    /// default; [`IdSource::sequential`] in tests whose payloads must be the same on every
    /// run). Set it before the store is used.
    #[must_use]
    pub fn with_ids(mut self, ids: IdSource) -> Self {
        self.ids = ids;
        self
    }

    fn event_id(&self) -> EventId {
        EventId::from_uuid(self.ids.next())
    }

    /// Appends the events of one step. Must be called while holding the locks of the objects
    /// they describe; sequence numbers are taken under the outbox shard lock (see
    /// `outbox_after`). `id` is the first event's id, made before any lock was taken; a second
    /// event of the same step gets a fresh one.
    fn emit(&self, account: AccountId, id: EventId, at: DateTime<Utc>, kinds: Vec<EventKind>) {
        if kinds.is_empty() {
            return;
        }
        {
            // A step's events are all about one link (or none: credits).
            let link = kinds.iter().find_map(EventKind::link);
            let labels = link.map(|link| (link, self.labels.lock(&link)));
            let mut shard = lock(&self.outbox[account.shard()]);
            let mut id = Some(id);
            for kind in kinds {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
                let labels = match (&labels, kind.session()) {
                    (Some((link, map)), session) => map
                        .get(link)
                        .map(|l| Labels {
                            reference: l.reference.clone(),
                            session_reference: session.and_then(|s| l.sessions.get(&s).cloned()),
                            metadata: l.metadata.clone(),
                        })
                        .unwrap_or_default(),
                    (None, _) => Labels::default(),
                };
                shard.push(Event {
                    seq,
                    id: id.take().unwrap_or_else(|| self.event_id()),
                    account,
                    at,
                    kind,
                    labels,
                });
            }
        }
        // The events are readable now (the outbox shard is unlocked): wake those who wait.
        // The step's other locks are still held, so a woken reader of its objects waits for
        // them and sees the whole change.
        self.changes.raise();
    }

    /// Applies a change to one session of `account` under the account and session locks.
    fn change_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
        rule: impl FnOnce(&mut Session, &mut Account) -> Result<Effects<Session>, Rejection>,
    ) -> Result<Session, Error> {
        let event_id = self.event_id();
        let mut accounts = self.accounts.lock(&account);
        let entry = accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
        let mut sessions = self.sessions.lock(&session);
        let stored = sessions
            .get_mut(&session)
            .filter(|s| s.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rule(stored, &mut entry.account)?;
        entry.record(effects.ledger);
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    fn owned_link<T>(
        &self,
        account: AccountId,
        link: LinkId,
        read: impl FnOnce(&LinkEntry) -> T,
    ) -> Result<T, Error> {
        let links = self.links.lock(&link);
        links
            .get(&link)
            .filter(|e| e.link.account == account)
            .map(read)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    /// Removes up to `limit` prunable outbox events (see [`rules::prunable_event`]), under
    /// the delivery book's lock and then every outbox shard's: the order `queue_deliveries`
    /// takes them in (it reads the outbox under the book's lock).
    fn prune_events(&self, before: DateTime<Utc>, limit: usize) -> usize {
        let book = lock(&self.webhooks);
        let mut shards: Vec<_> = self.outbox.iter().map(lock).collect();
        let queued = book.cursor();
        // The first `limit` prunable events by `seq`. Events are in `seq` order within a
        // shard: only its queued prefix can go.
        let mut gone: Vec<u64> = shards
            .iter()
            .flat_map(|shard| {
                shard[..shard.partition_point(|e| e.seq <= queued)]
                    .iter()
                    .filter(|e| {
                        rules::prunable_event(e.at, e.seq, queued, book.status_of(e.id), before)
                    })
                    .map(|e| e.seq)
            })
            .collect();
        gone.sort_unstable();
        gone.truncate(limit);
        if !gone.is_empty() {
            for shard in &mut shards {
                shard.retain(|e| gone.binary_search(&e.seq).is_err());
            }
        }
        gone.len()
    }

    /// Removes up to `limit` prunable sessions (see [`rules::prunable_session`]), oldest
    /// first, each under its link's lock and then its own, keeping its counts in the link's
    /// [`PrunedTally`] and dropping its start key and labels.
    fn prune_sessions(&self, before: DateTime<Utc>, limit: usize) -> Vec<SessionId> {
        let mut due = Vec::new();
        for shard in self.sessions.0.iter() {
            due.extend(
                lock(shard)
                    .values()
                    .filter(|s| rules::prunable_session(s, before))
                    .map(|s| (ended_at(s), s.id, s.link)),
            );
        }
        due.sort_unstable();
        due.truncate(limit);
        let mut removed = Vec::new();
        for (_, session, link) in due {
            let mut links = self.links.lock(&link);
            let Some(entry) = links.get_mut(&link) else {
                continue;
            };
            let pruned = {
                let mut sessions = self.sessions.lock(&session);
                match sessions.get(&session) {
                    Some(s) if rules::prunable_session(s, before) => sessions.remove(&session),
                    _ => None,
                }
            };
            let Some(pruned) = pruned else {
                continue;
            };
            entry.pruned.add(&pruned);
            entry.sessions.remove(&pruned.number);
            entry.started.retain(|_, id| *id != session);
            if let Some(labels) = self.labels.lock(&link).get_mut(&link) {
                labels.sessions.remove(&session);
            }
            removed.push(session);
        }
        removed
    }

    /// Removes up to `limit` hand-offs, in order of expiry, that expired before `before` or
    /// whose session is one of `pruned`.
    fn prune_handoffs(&self, before: DateTime<Utc>, limit: usize, pruned: &[SessionId]) -> usize {
        let mut handoffs = lock(&self.handoffs);
        let mut gone: Vec<(DateTime<Utc>, HandoffId)> = handoffs
            .iter()
            .filter(|(_, h)| {
                rules::prunable_handoff(h.expires_at, before) || pruned.contains(&h.session)
            })
            .map(|(id, h)| (h.expires_at, *id))
            .collect();
        gone.sort_unstable();
        gone.truncate(limit);
        for (_, id) in &gone {
            handoffs.remove(id);
        }
        gone.len()
    }

    /// Erases what `redaction` erased from the labels side table and from every stored copy
    /// of the events of `account` about `link`: the outbox (the account's shard) and the
    /// delivery book. The `labels` shard lock is held while the outbox shard is scrubbed, so
    /// an `emit` running meanwhile either appended its copy before (and it is scrubbed here)
    /// or reads the erased labels. The delivery book is scrubbed after, under its own lock,
    /// which `queue_deliveries` holds while it reads the outbox and queues what it read: a
    /// copy read before the outbox scrub is queued before the book's scrub.
    ///
    /// A linear pass over the account's outbox shard and the delivery book: redaction is rare.
    /// The caller holds the lock of the link or session redacted.
    fn scrub(&self, account: AccountId, link: LinkId, redaction: rules::Redaction) {
        {
            let mut labels = self.labels.lock(&link);
            match redaction {
                rules::Redaction::Link(_) => {
                    labels.remove(&link);
                }
                rules::Redaction::Session(session) => {
                    if let Some(entry) = labels.get_mut(&link) {
                        entry.sessions.remove(&session);
                        if entry.reference.is_none()
                            && entry.metadata.is_empty()
                            && entry.sessions.is_empty()
                        {
                            labels.remove(&link);
                        }
                    }
                }
            }
            let mut outbox = lock(&self.outbox[account.shard()]);
            for event in outbox.iter_mut() {
                rules::scrub_labels(event, redaction);
            }
        }
        lock(&self.webhooks).scrub(redaction);
    }

    /// Reads the outbox after `cursor` (see [`LinkStore::outbox_after`]).
    fn read_outbox(&self, cursor: u64, limit: usize) -> Vec<Event> {
        // Holding every shard at once: each sequence number is taken and its event pushed
        // under one shard's lock, so all numbers handed out so far are visible now. Within a
        // shard events are in `seq` order.
        let limit = limit.min(crate::Page::MAX_LIMIT);
        let shards: Vec<_> = self.outbox.iter().map(lock).collect();
        // Merge the shards' tails, cloning only the `limit` events returned.
        let mut tails: Vec<&[Event]> = shards
            .iter()
            .map(|shard| &shard[shard.partition_point(|e| e.seq <= cursor)..])
            .filter(|tail| !tail.is_empty())
            .collect();
        let mut events = Vec::with_capacity(limit.min(1024));
        while events.len() < limit {
            let Some((i, _)) = tails.iter().enumerate().min_by_key(|(_, t)| t[0].seq) else {
                break;
            };
            events.push(tails[i][0].clone());
            tails[i] = &tails[i][1..];
            if tails[i].is_empty() {
                tails.swap_remove(i);
            }
        }
        events
    }

    fn read_sessions(&self, ids: &[SessionId]) -> Vec<Session> {
        ids.iter()
            .filter_map(|id| self.sessions.lock(id).get(id).cloned())
            .collect()
    }
}

impl LinkStore for MemoryStore {
    async fn create_account(&self, account: Account) -> Result<Account, Error> {
        let account = rules::create_account(&account)?;
        let mut accounts = self.accounts.lock(&account.id);
        if accounts.contains_key(&account.id) {
            return Err(Error::AlreadyExists);
        }
        accounts.insert(
            account.id,
            AccountEntry {
                account: account.clone(),
                links: Vec::new(),
                ledger: Vec::new(),
                top_ups: HashMap::new(),
                return_secrets: None,
            },
        );
        Ok(account)
    }

    async fn insert_link(&self, link: Link) -> Result<Link, Error> {
        let effects = rules::create_link(&link)?;
        let event_id = self.event_id();
        let mut links = self.links.lock(&link.id);
        if links.contains_key(&link.id) {
            return Err(Error::AlreadyExists);
        }
        let mut accounts = self.accounts.lock(&link.account);
        let owner = accounts.get_mut(&link.account).ok_or(Rejection::NotFound)?;
        owner.links.push(link.id);
        let created = &effects.value;
        if created.reference.is_some() || !created.metadata.is_empty() {
            self.labels.lock(&link.id).insert(
                link.id,
                LinkLabels {
                    reference: created.reference.clone(),
                    metadata: created.metadata.clone(),
                    sessions: HashMap::new(),
                },
            );
        }
        links.insert(
            link.id,
            LinkEntry {
                link: effects.value.clone(),
                sessions: BTreeMap::new(),
                pruned: PrunedTally::default(),
                expiry_reported: false,
                views: ViewCounts::default(),
                started: HashMap::new(),
            },
        );
        self.emit(
            owner.account.id,
            event_id,
            effects.value.created_at,
            effects.events,
        );
        Ok(effects.value)
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
        let event_id = self.event_id();
        let mut links = self.links.lock(&link);
        let entry = links.get_mut(&link).ok_or(Rejection::NotFound)?;
        let owner = entry.link.account;
        let mut accounts = self.accounts.lock(&owner);
        let account = accounts.get_mut(&owner).ok_or(Rejection::NotFound)?;
        // The key's last session on this link, read under its own shard lock (released before
        // the new session's is taken: one session lock at a time). The account lock, held
        // throughout, keeps its status from changing meanwhile.
        let previous = key
            .and_then(|k| entry.started.get(&k).copied())
            .and_then(|id| self.sessions.lock(&id).get(&id).cloned());
        let mut owner_after = account.account.clone();
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
        let mut sessions = self.sessions.lock(&session);
        if sessions.contains_key(&session) {
            return Err(Error::AlreadyExists);
        }
        // On a rejection nothing changed: the expiry above was on copies.
        let effects = rules::redeem(
            &mut entry.link,
            &mut owner_after,
            session,
            reference,
            ttl,
            now,
        )?;
        account.account = owner_after;
        let mut events = Vec::new();
        if let Some(expired) = expired {
            account.record(expired.ledger);
            events.extend(expired.events);
            let id = expired.value.id;
            if id.shard() == session.shard() {
                sessions.insert(id, expired.value);
            } else {
                drop(sessions);
                self.sessions.lock(&id).insert(id, expired.value);
                sessions = self.sessions.lock(&session);
            }
        }
        account.record(effects.ledger);
        events.extend(effects.events);
        entry.sessions.insert(effects.value.number, session);
        if let Some(key) = key {
            entry.started.insert(key, session);
        }
        if let Some(reference) = &effects.value.reference {
            self.labels
                .lock(&link)
                .entry(link)
                .or_default()
                .sessions
                .insert(session, reference.clone());
        }
        sessions.insert(session, effects.value.clone());
        self.emit(owner, event_id, now, events);
        Ok(effects.value)
    }

    async fn started_session(
        &self,
        link: LinkId,
        key: StartKeyHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Error> {
        let id = self
            .links
            .lock(&link)
            .get(&link)
            .and_then(|e| e.started.get(&key).copied());
        Ok(id
            .and_then(|id| self.sessions.lock(&id).get(&id).cloned())
            .filter(|s| rules::check_open(s, now).is_ok()))
    }

    async fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let mut handoffs = lock(&self.handoffs);
        if handoffs.contains_key(&handoff) {
            return Err(Error::AlreadyExists);
        }
        let stored = self
            .sessions
            .lock(&session)
            .get(&session)
            .filter(|s| s.account == account)
            .cloned()
            .ok_or(Rejection::NotFound)?;
        rules::check_open(&stored, now)?;
        handoffs.insert(
            handoff,
            HandoffEntry {
                account,
                session,
                expires_at,
                used: false,
            },
        );
        Ok(stored)
    }

    async fn accept_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let event_id = self.event_id();
        let mut handoffs = lock(&self.handoffs);
        let entry = handoffs.get_mut(&handoff).ok_or(Rejection::NotFound)?;
        // The session's lock, held while its status is checked and the event appended.
        let sessions = self.sessions.lock(&entry.session);
        let stored = sessions
            .get(&entry.session)
            .filter(|s| s.account == entry.account)
            .ok_or(Rejection::NotFound)?;
        let effects = rules::accept_handoff(&mut entry.used, entry.expires_at, stored, now)?;
        self.emit(entry.account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn check_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let handoffs = lock(&self.handoffs);
        let entry = handoffs.get(&handoff).ok_or(Rejection::NotFound)?;
        let sessions = self.sessions.lock(&entry.session);
        let stored = sessions
            .get(&entry.session)
            .filter(|s| s.account == entry.account)
            .ok_or(Rejection::NotFound)?;
        rules::check_handoff(entry.used, entry.expires_at, stored, now)?;
        Ok(stored.clone())
    }

    async fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.change_session(account, session, now, |s, a| {
            rules::complete(s, a, outcome, now)
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
        // Only the session changes: its lock alone makes the review and its event atomic.
        let event_id = self.event_id();
        let mut sessions = self.sessions.lock(&session);
        let stored = sessions
            .get_mut(&session)
            .filter(|s| s.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rules::review(stored, decision, now)?;
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.change_session(account, session, now, |s, a| {
            rules::abandon(s, a, crate::AbandonReason::Explicit, now)
        })
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        // Find candidates shard by shard, then expire each under the account lock first, as
        // the lock order requires; the rule re-checks each one.
        let mut stale = Vec::new();
        for shard in self.sessions.0.iter() {
            stale.extend(
                lock(shard)
                    .values()
                    .filter(|s| s.is_stale(now))
                    .map(|s| (s.expires_at, s.id, s.account)),
            );
        }
        stale.sort_unstable();
        stale.truncate(limit);
        let mut expired = 0;
        for (_, session, account) in stale {
            let changed = self.change_session(account, session, now, |s, a| {
                rules::expire(s, a, now).ok_or(Rejection::NotFound)
            });
            expired += usize::from(changed.is_ok());
        }
        Ok(expired)
    }

    async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let mut due = Vec::new();
        for shard in self.links.0.iter() {
            due.extend(lock(shard).values().filter_map(|e| {
                let reported = e.expiry_reported;
                rules::expire_link(&e.link, reported, now)?;
                Some((e.link.expires_at, e.link.id))
            }));
        }
        due.sort_unstable();
        due.truncate(limit);
        let mut reported = 0;
        for (_, link) in due {
            let event_id = self.event_id();
            let mut links = self.links.lock(&link);
            let Some(entry) = links.get_mut(&link) else {
                continue;
            };
            // The rule re-checks under the lock: a concurrent sweep may have reported it.
            if let Some(effects) = rules::expire_link(&entry.link, entry.expiry_reported, now) {
                entry.expiry_reported = true;
                self.emit(entry.link.account, event_id, now, effects.events);
                reported += 1;
            }
        }
        Ok(reported)
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<Pruned, Error> {
        let deliveries = lock(&self.webhooks).prune_done(before, limit);
        let events = self.prune_events(before, limit);
        let sessions = self.prune_sessions(before, limit);
        let handoffs = self.prune_handoffs(before, limit, &sessions);
        Ok(Pruned {
            sessions: sessions.len() as u64,
            events: events as u64,
            deliveries: deliveries as u64,
            handoffs: handoffs as u64,
        })
    }

    async fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        let event_id = self.event_id();
        let mut links = self.links.lock(&link);
        let entry = links
            .get_mut(&link)
            .filter(|e| e.link.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rules::deactivate(&mut entry.link, now);
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        let event_id = self.event_id();
        let mut links = self.links.lock(&link);
        let entry = links
            .get_mut(&link)
            .filter(|e| e.link.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rules::redact_link(&mut entry.link, now);
        if effects.events.is_empty() {
            return Ok(effects.value);
        }
        // Under the link's lock, one session lock at a time (the lock order).
        for id in entry.sessions.values() {
            if let Some(session) = self.sessions.lock(id).get_mut(id) {
                rules::erase_session_reference(session, now);
            }
        }
        self.scrub(account, link, rules::Redaction::Link(link));
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let event_id = self.event_id();
        let mut sessions = self.sessions.lock(&session);
        let stored = sessions
            .get_mut(&session)
            .filter(|s| s.account == account)
            .ok_or(Rejection::NotFound)?;
        let effects = rules::redact_session(stored, now);
        if effects.events.is_empty() {
            return Ok(effects.value);
        }
        let link = stored.link;
        self.scrub(account, link, rules::Redaction::Session(session));
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Account, Error> {
        let event_id = self.event_id();
        let mut accounts = self.accounts.lock(&account);
        let entry = accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
        let previous = entry.top_ups.get(&key).copied();
        let effects = rules::top_up(&mut entry.account, amount, &key, previous, now)?;
        entry.record(effects.ledger);
        self.emit(account, event_id, now, effects.events);
        Ok(effects.value)
    }

    async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
        let link = self
            .links
            .lock(&link)
            .get(&link)
            .map(|e| e.link.clone())
            .ok_or(Rejection::NotFound)?;
        let owner = self
            .accounts
            .lock(&link.account)
            .get(&link.account)
            .map(|a| a.account.clone())
            .ok_or(Rejection::NotFound)?;
        Ok((link, owner))
    }

    async fn set_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> Result<Account, Error> {
        let profile = profile.validate()?;
        let mut accounts = self.accounts.lock(&account);
        let entry = accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
        entry.account.profile = profile;
        Ok(entry.account.clone())
    }

    async fn return_secrets(&self, account: AccountId) -> Result<Option<ReturnSecrets>, Error> {
        let accounts = self.accounts.lock(&account);
        let entry = accounts.get(&account).ok_or(Rejection::NotFound)?;
        Ok(entry.return_secrets.clone())
    }

    async fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: ReturnSecret,
    ) -> Result<(), Error> {
        let mut accounts = self.accounts.lock(&account);
        let entry = accounts.get_mut(&account).ok_or(Rejection::NotFound)?;
        match &mut entry.return_secrets {
            Some(secrets) => secrets.rotate(secret),
            None => entry.return_secrets = Some(ReturnSecrets::new(secret)),
        }
        Ok(())
    }

    async fn record_view(&self, link: LinkId, change: ViewChange) -> Result<ViewCounts, Error> {
        // Under the link's shard lock only: no account, session or outbox lock.
        let mut links = self.links.lock(&link);
        let entry = links.get_mut(&link).ok_or(Rejection::NotFound)?;
        entry.views.apply(change);
        Ok(entry.views)
    }

    async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.owned_link(account, link, |e| e.link.clone())
    }

    async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        // Copy the ids out before taking link locks: the lock order is link, then account.
        let ids = {
            let accounts = self.accounts.lock(&account);
            let entry = accounts.get(&account).ok_or(Rejection::NotFound)?;
            page_of(&entry.links, page)
        };
        let items = ids
            .0
            .iter()
            .filter_map(|id| self.links.lock(id).get(id).map(|e| e.link.clone()))
            .collect();
        Ok(Paged { items, next: ids.1 })
    }

    async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Link>, Error> {
        let ids = match self.accounts.lock(&account).get(&account) {
            Some(entry) => entry.links.clone(),
            None => return Ok(Vec::new()),
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                let links = self.links.lock(id);
                links
                    .get(id)
                    .filter(|e| e.link.reference.as_ref() == Some(reference))
                    .map(|e| e.link.clone())
            })
            .take(MAX_BY_REFERENCE)
            .collect())
    }

    async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Session>, Error> {
        let links = match self.accounts.lock(&account).get(&account) {
            Some(entry) => entry.links.clone(),
            None => return Ok(Vec::new()),
        };
        let mut found = Vec::new();
        for link in links {
            let ids = self
                .links
                .lock(&link)
                .get(&link)
                .map(|e| e.sessions.values().copied().collect::<Vec<_>>())
                .unwrap_or_default();
            found.extend(
                self.read_sessions(&ids)
                    .into_iter()
                    .filter(|s| s.reference.as_ref() == Some(reference)),
            );
        }
        found.sort_by_key(|s| (s.started_at, s.id));
        found.truncate(MAX_BY_REFERENCE);
        Ok(found)
    }

    async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        self.sessions
            .lock(&session)
            .get(&session)
            .filter(|s| s.account == account)
            .cloned()
            .ok_or_else(|| Rejection::NotFound.into())
    }

    async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        let (ids, next) = self.owned_link(account, link, |e| {
            // By number: pruned sessions leave gaps.
            let limit = page.clamped_limit();
            let mut ids: Vec<(u64, SessionId)> = e
                .sessions
                .range(page.after.saturating_add(1)..)
                .take(limit + 1)
                .map(|(n, id)| (*n, *id))
                .collect();
            let next = (ids.len() > limit).then(|| ids[limit - 1].0);
            ids.truncate(limit);
            (ids.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), next)
        })?;
        Ok(Paged {
            items: self.read_sessions(&ids),
            next,
        })
    }

    async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        let (link, ids, views, pruned) = self.owned_link(account, link, |e| {
            let ids: Vec<SessionId> = e.sessions.values().copied().collect();
            (e.link.clone(), ids, e.views, e.pruned.clone())
        })?;
        Ok(LinkStats {
            views,
            ..LinkStats::tally_with(&link, &self.read_sessions(&ids), &pruned)
        })
    }

    async fn account(&self, account: AccountId) -> Result<Account, Error> {
        self.accounts
            .lock(&account)
            .get(&account)
            .map(|e| e.account.clone())
            .ok_or_else(|| Rejection::NotFound.into())
    }

    async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
        let accounts = self.accounts.lock(&account);
        let entry = accounts.get(&account).ok_or(Rejection::NotFound)?;
        let (items, next) = page_of(&entry.ledger, page);
        Ok(Paged { items, next })
    }

    async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        Ok(self.read_outbox(cursor, limit))
    }
}

/// When a finished session ended (its start for an open one).
fn ended_at(session: &Session) -> DateTime<Utc> {
    match session.status {
        crate::SessionStatus::Started => session.started_at,
        crate::SessionStatus::Completed { at, .. } | crate::SessionStatus::Abandoned { at, .. } => {
            at
        }
    }
}

/// The items after position `page.after` of an append-only list, and the next cursor.
fn page_of<T: Clone>(items: &[T], page: Page) -> (Vec<T>, Option<u64>) {
    let start = usize::try_from(page.after)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let end = start.saturating_add(page.clamped_limit()).min(items.len());
    let next = (end < items.len()).then_some(end as u64);
    (items[start..end].to_vec(), next)
}

impl Changes for MemoryStore {
    /// The store's in-process signal, raised after every step that appends events.
    async fn changes(&self) -> Result<ChangeSignal, Error> {
        Ok(self.changes.clone())
    }

    async fn outbox_head(&self) -> Result<u64, Error> {
        // Under every outbox shard lock, as `outbox_after`: every number up to the result is
        // readable.
        // Pruning may have emptied the shards: the counter is the head. Each number is taken
        // under a shard lock, so with all of them held every number taken is visible.
        let _shards: Vec<_> = self.outbox.iter().map(lock).collect();
        Ok(self.seq.load(Ordering::Relaxed))
    }
}
