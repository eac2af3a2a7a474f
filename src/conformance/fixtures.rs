//! Fixtures shared by the checks: a fixed start time, accounts and links made through the
//! store, and assertions that name the rule they check.

use std::fmt::Debug;

use chrono::{DateTime, Duration, Utc};

use crate::store::LinkStore;
use crate::{
    Account, AccountId, Error, Event, EventKind, IdempotencyKey, Link, LinkId, NewLink, Rejection,
    SessionTtl, UsageLimit,
};

/// The time the checks start at: 2030-01-01T00:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default()
}

pub(crate) fn ttl() -> SessionTtl {
    SessionTtl::new(Duration::minutes(30)).unwrap_or_default()
}

pub(crate) fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).expect("valid key")
}

#[track_caller]
pub(crate) fn rejected<T: Debug>(result: Result<T, Error>, expected: Rejection, rule: &str) {
    match result {
        Err(Error::Rejected(r)) if r == expected => {}
        other => panic!("{rule}: expected {expected:?}, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

/// A new account with `credits` credits.
pub async fn account_with<S: LinkStore>(store: &S, credits: u64) -> Account {
    let id = AccountId::new();
    ok(
        store.create_account(Account::new(id, epoch())).await,
        "create_account",
    );
    if credits > 0 {
        ok(
            store.top_up(id, credits, key("initial"), epoch()).await,
            "top_up",
        );
    }
    ok(store.account(id).await, "account")
}

/// A new link of `account` with `limit`, created at [`epoch`].
pub async fn link_with<S: LinkStore>(
    store: &S,
    account: AccountId,
    limit: UsageLimit,
    expires_at: Option<DateTime<Utc>>,
) -> Link {
    let mut spec = NewLink::new("conformance", crate::Flow::DocumentAndSelfie)
        .limit(limit)
        .language("lt");
    spec.expires_at = expires_at;
    let link = Link::new(LinkId::new(), account, spec, epoch()).expect("valid link");
    ok(store.insert_link(link).await, "insert_link")
}

pub(crate) async fn events_of<S: LinkStore>(store: &S, account: AccountId) -> Vec<Event> {
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let batch = store
            .outbox_after(cursor, 1000)
            .await
            .expect("outbox_after");
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        all.extend(batch.into_iter().filter(|e| e.account == account));
    }
    all
}

pub(crate) async fn kinds_of<S: LinkStore>(store: &S, account: AccountId) -> Vec<EventKind> {
    events_of(store, account)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect()
}
