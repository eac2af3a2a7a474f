//! The facade: scanner-safe inspection, time-driven rules, validation.

use chrono::Duration;
use magic_link::clock::ManualClock;
use magic_link::store::MemoryStore;
use magic_link::tokens::{Keyring, TokenError};
use magic_link::{
    AccountId, Error, Flow, IdempotencyKey, InvalidInput, LinkStatus, MagicLinks, NewLink, Outcome,
    Rejection, SessionStatus, SessionTtl, UsageLimit,
};

fn setup() -> (MagicLinks<MemoryStore, ManualClock>, ManualClock) {
    let clock = ManualClock::at_timestamp(1_900_000_000);
    let links = MagicLinks::new(
        MemoryStore::new(),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(clock.clone());
    (links, clock)
}

async fn funded(links: &MagicLinks<MemoryStore, ManualClock>, credits: u64) -> AccountId {
    let account = links.create_account(AccountId::new()).await.unwrap();
    links
        .top_up(account.id, credits, IdempotencyKey::new("seed").unwrap())
        .await
        .unwrap();
    account.id
}

#[tokio::test]
async fn inspecting_never_consumes_a_use() {
    let (links, _) = setup();
    let account = funded(&links, 1).await;
    let created = links
        .create_link(account, NewLink::new("Invite", Flow::Document))
        .await
        .unwrap();
    let (link, token) = (created.link, created.token);
    let events = links.events_after(account, 0, 100).await.unwrap().len();
    // An email scanner, a link preview and the person's browser all open the page.
    for _ in 0..50 {
        let seen = links.inspect(&token, None).await.unwrap();
        assert_eq!(seen.status, LinkStatus::Active);
        assert_eq!(seen.can_start(), Ok(()));
    }
    assert_eq!(links.link(account, link.id).await.unwrap().uses, 0);
    assert_eq!(links.account(account).await.unwrap().held, 0);
    assert_eq!(
        links.events_after(account, 0, 100).await.unwrap().len(),
        events
    );

    links
        .redeem(&token, magic_link::start::Start::new())
        .await
        .unwrap();
    let used = links.inspect(&token, None).await.unwrap();
    assert_eq!(used.status, LinkStatus::Exhausted);
    assert_eq!(used.can_start(), Err(Rejection::Exhausted));
}

#[tokio::test]
async fn inspection_reports_missing_credit() {
    let (links, _) = setup();
    let account = funded(&links, 1).await;
    let a = links
        .create_link(account, NewLink::new("A", Flow::Selfie))
        .await
        .unwrap();
    let b = links
        .create_link(account, NewLink::new("B", Flow::Selfie))
        .await
        .unwrap();
    links
        .redeem(&a.token, magic_link::start::Start::new())
        .await
        .unwrap();
    let seen = links.inspect(&b.token, None).await.unwrap();
    assert_eq!(seen.status, LinkStatus::Active);
    assert_eq!(seen.can_start(), Err(Rejection::NoCredits));
}

#[tokio::test]
async fn links_expire_on_the_clock_and_are_never_extended() {
    let (links, clock) = setup();
    let account = funded(&links, 5).await;
    let expiry = clock.now_plus(Duration::hours(2));
    let link = links
        .create_link(
            account,
            NewLink::new("Campaign", Flow::DocumentAndSelfie)
                .limit(UsageLimit::Unlimited)
                .expires_at(expiry),
        )
        .await
        .unwrap();
    clock.advance(Duration::hours(2) - Duration::microseconds(1));
    links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .unwrap();
    clock.advance(Duration::microseconds(1));
    // The token carries the expiry: an expired link is refused before the store is asked.
    let err = links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .unwrap_err();
    assert_eq!(err.token_error(), Some(TokenError::Expired));
    let err = links.inspect(&link.token, None).await.unwrap_err();
    assert_eq!(err.token_error(), Some(TokenError::Expired));
    // The owner still sees the link, expired.
    let owned = links.link(account, link.link.id).await.unwrap();
    assert_eq!(
        owned.status(clock.now_plus(Duration::zero())),
        LinkStatus::Expired
    );
}

#[tokio::test]
async fn sessions_time_out_and_release_their_credit() {
    let (links, clock) = setup();
    let links = links.session_ttl(SessionTtl::new(Duration::minutes(10)).unwrap());
    let account = funded(&links, 1).await;
    let link = links
        .create_link(account, NewLink::new("x", Flow::Selfie))
        .await
        .unwrap();
    let session = links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .unwrap()
        .session;
    clock.advance(Duration::minutes(10));
    let late = links
        .complete_session(account, session.id, Outcome::Approved)
        .await
        .unwrap_err();
    assert_eq!(late.rejection(), Some(Rejection::SessionExpired));
    assert_eq!(links.expire_sessions(100).await.unwrap(), 1);
    let swept = links.session(account, session.id).await.unwrap();
    assert!(matches!(swept.status, SessionStatus::Abandoned { .. }));
    let credits = links.account(account).await.unwrap();
    assert_eq!((credits.balance, credits.held), (1, 0));
}

#[tokio::test]
async fn bad_settings_are_typed_errors() {
    let (links, clock) = setup();
    let account = funded(&links, 1).await;
    let cases = [
        (NewLink::new("", Flow::Selfie), InvalidInput::EmptyName),
        (
            NewLink::new("x".repeat(201), Flow::Selfie),
            InvalidInput::NameTooLong { max: 200 },
        ),
        (
            NewLink::new("x", Flow::Selfie).expires_at(clock.now_plus(Duration::zero())),
            InvalidInput::ExpiryInPast,
        ),
        (
            NewLink::new("x", Flow::Selfie).language("en_US"),
            InvalidInput::InvalidLanguage,
        ),
    ];
    for (spec, expected) in cases {
        match links.create_link(account, spec).await {
            Err(Error::Invalid(got)) => assert_eq!(got, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        links
            .create_link(AccountId::new(), NewLink::new("x", Flow::Selfie))
            .await,
        Err(Error::Rejected(Rejection::NotFound))
    ));
    assert_eq!(
        links
            .links(account, Default::default())
            .await
            .unwrap()
            .items
            .len(),
        0,
        "nothing was stored"
    );
}

trait NowPlus {
    fn now_plus(&self, by: Duration) -> chrono::DateTime<chrono::Utc>;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, by: Duration) -> chrono::DateTime<chrono::Utc> {
        magic_link::clock::Clock::now(self) + by
    }
}

#[tokio::test]
async fn events_after_returns_only_the_accounts_events() {
    let (links, _) = setup();
    let mine = funded(&links, 3).await;
    let theirs = funded(&links, 3).await;
    for i in 0..1500 {
        // Enough of the other account's events to span more than one outbox page.
        let key = IdempotencyKey::new(format!("theirs-{i}")).unwrap();
        links.top_up(theirs, 1, key).await.unwrap();
    }
    links
        .create_link(mine, NewLink::new("Mine", Flow::Selfie))
        .await
        .unwrap();
    let events = links.events_after(mine, 0, 100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["credits.added", "link.created"]);
    assert!(events.iter().all(|e| e.account == mine));
    let after_first = links.events_after(mine, events[0].seq, 100).await.unwrap();
    assert_eq!(
        after_first.len(),
        1,
        "the cursor pages through the account's events"
    );
    assert_eq!(links.events_after(theirs, 0, 10).await.unwrap().len(), 10);
}
