//! The facade on tokens: URLs, session tokens, rotation, and invalid tokens kept away from the
//! store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use magic_link::clock::ManualClock;
use magic_link::store::{LinkStore, MemoryStore};
use magic_link::tokens::{Keyring, LinkToken, SigningKey, TokenError};
use magic_link::{
    Account, AccountId, Error, Event, Flow, IdempotencyKey, LedgerEntry, Link, LinkId, LinkStats,
    MagicLinks, NewLink, Outcome, Page, Paged, Rejection, Session, SessionId, SessionStatus,
    SessionTtl, UsageLimit,
};

/// A shared [`MemoryStore`] that counts every call made to it.
#[derive(Debug, Clone, Default)]
struct Watched {
    inner: Arc<MemoryStore>,
    calls: Arc<AtomicUsize>,
}

impl Watched {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn touch(&self) -> &MemoryStore {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

impl LinkStore for Watched {
    async fn create_account(&self, account: Account) -> Result<Account, Error> {
        self.touch().create_account(account).await
    }
    async fn insert_link(&self, link: Link) -> Result<Link, Error> {
        self.touch().insert_link(link).await
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
        self.touch()
            .redeem(link, session, key, reference, ttl, now)
            .await
    }
    async fn started_session(
        &self,
        link: LinkId,
        key: magic_link::start::StartKeyHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Error> {
        self.touch().started_session(link, key, now).await
    }
    async fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: magic_link::start::HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch()
            .create_handoff(account, session, handoff, expires_at, now)
            .await
    }
    async fn accept_handoff(
        &self,
        handoff: magic_link::start::HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().accept_handoff(handoff, now).await
    }
    async fn check_handoff(
        &self,
        handoff: magic_link::start::HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().check_handoff(handoff, now).await
    }
    async fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().complete(account, session, outcome, now).await
    }
    async fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().review(account, session, decision, now).await
    }
    async fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().abandon(account, session, now).await
    }
    async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.touch().expire_sessions(now, limit).await
    }
    async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.touch().expire_links(now, limit).await
    }
    async fn prune(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<magic_link::Pruned, Error> {
        self.touch().prune(before, limit).await
    }
    async fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.touch().deactivate(account, link, now).await
    }
    async fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        self.touch().redact_link(account, link, now).await
    }
    async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.touch().redact_session(account, session, now).await
    }
    async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Account, Error> {
        self.touch().top_up(account, amount, key, now).await
    }
    async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
        self.touch().inspect(link).await
    }
    async fn set_profile(
        &self,
        account: AccountId,
        profile: magic_link::AccountProfile,
    ) -> Result<Account, Error> {
        self.touch().set_profile(account, profile).await
    }
    async fn return_secrets(
        &self,
        account: AccountId,
    ) -> Result<Option<magic_link::returns::ReturnSecrets>, Error> {
        self.touch().return_secrets(account).await
    }
    async fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: magic_link::returns::ReturnSecret,
    ) -> Result<(), Error> {
        self.touch().rotate_return_secret(account, secret).await
    }
    async fn record_view(
        &self,
        link: LinkId,
        change: magic_link::funnel::ViewChange,
    ) -> Result<magic_link::funnel::ViewCounts, Error> {
        self.touch().record_view(link, change).await
    }
    async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.touch().link(account, link).await
    }
    async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        self.touch().links(account, page).await
    }
    async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &magic_link::Reference,
    ) -> Result<Vec<Link>, Error> {
        self.touch().links_by_reference(account, reference).await
    }
    async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &magic_link::Reference,
    ) -> Result<Vec<Session>, Error> {
        self.touch().sessions_by_reference(account, reference).await
    }
    async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        self.touch().session(account, session).await
    }
    async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        self.touch().sessions(account, link, page).await
    }
    async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        self.touch().stats(account, link).await
    }
    async fn account(&self, account: AccountId) -> Result<Account, Error> {
        self.touch().account(account).await
    }
    async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
        self.touch().ledger(account, page).await
    }
    async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        self.touch().outbox_after(cursor, limit).await
    }
}

type Links = MagicLinks<Watched, ManualClock>;

const BASE: &str = "https://verify.example.com/l/";

fn links_over(store: &Watched, keyring: Keyring, clock: &ManualClock) -> Links {
    MagicLinks::new(store.clone(), keyring, BASE.parse().unwrap()).with_clock(clock.clone())
}

fn setup() -> (Links, Watched, ManualClock) {
    let store = Watched::default();
    let clock = ManualClock::at_timestamp(1_900_000_000);
    let links = links_over(&store, Keyring::generate().unwrap(), &clock);
    (links, store, clock)
}

async fn funded(links: &Links, credits: u64) -> AccountId {
    let account = links.create_account(AccountId::new()).await.unwrap();
    links
        .top_up(account.id, credits, IdempotencyKey::new("seed").unwrap())
        .await
        .unwrap();
    account.id
}

#[track_caller]
fn token_error<T: std::fmt::Debug>(result: Result<T, Error>) -> TokenError {
    match result {
        Err(Error::InvalidToken(e)) => e,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn create_link_returns_a_url_that_inspects_and_redeems() {
    let (links, _, _) = setup();
    let account = funded(&links, 2).await;
    let created = links
        .create_link(account, NewLink::new("Invite", Flow::Selfie))
        .await
        .unwrap();
    assert_eq!(created.url, format!("{BASE}{}", created.token));
    assert_eq!(created.token.len(), LinkToken::LEN);
    assert!(created.token.len() <= 64);
    assert_eq!(
        links.link_url(account, created.link.id).await.unwrap(),
        created.url,
        "the URL is derived again, not stored"
    );
    let claims = links.verify_link_token(&created.token).unwrap();
    assert_eq!(claims.link(), created.link.id);

    let seen = links.inspect(&created.token, None).await.unwrap();
    assert_eq!(seen.link, created.link);
    let started = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();
    assert_eq!(started.session.link, created.link.id);
    assert_eq!(
        links
            .redeem(&created.token, magic_link::start::Start::new())
            .await
            .unwrap_err()
            .rejection(),
        Some(Rejection::Exhausted)
    );
}

#[tokio::test]
async fn session_tokens_drive_their_session() {
    let (links, _, clock) = setup();
    let links = links.session_ttl(SessionTtl::new(Duration::minutes(30)).unwrap());
    let account = funded(&links, 5).await;
    let created = links
        .create_link(
            account,
            NewLink::new("Campaign", Flow::Document).limit(UsageLimit::Unlimited),
        )
        .await
        .unwrap();
    let first = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();
    let second = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();
    let third = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();

    let claims = links.verify_session_token(&first.session_token).unwrap();
    assert_eq!(
        (claims.account(), claims.session()),
        (account, first.session.id)
    );
    assert_eq!(claims.expires_at(), first.session.expires_at);
    assert_eq!(
        links
            .session_token(account, first.session.id)
            .await
            .unwrap(),
        first.session_token,
        "the session token is derived again, not stored"
    );

    let done = links
        .complete_session_with_token(&first.session_token, Outcome::Approved)
        .await
        .unwrap();
    assert!(matches!(
        done.status,
        SessionStatus::Completed {
            outcome: Outcome::Approved,
            ..
        }
    ));
    // Idempotent, and a different outcome is refused, as with ids.
    links
        .complete_session_with_token(&first.session_token, Outcome::Approved)
        .await
        .unwrap();
    assert_eq!(
        links
            .complete_session_with_token(&first.session_token, Outcome::Denied)
            .await
            .unwrap_err()
            .rejection(),
        Some(Rejection::OutcomeConflict)
    );
    let quit = links
        .abandon_session_with_token(&second.session_token)
        .await
        .unwrap();
    assert!(matches!(quit.status, SessionStatus::Abandoned { .. }));
    let credits = links.account(account).await.unwrap();
    assert_eq!((credits.balance, credits.held), (4, 1));

    // The session token expires with the session, at exactly its expiry.
    clock.set(third.session.expires_at - Duration::microseconds(1));
    assert!(links.verify_session_token(&third.session_token).is_ok());
    clock.set(third.session.expires_at);
    assert_eq!(
        token_error(
            links
                .complete_session_with_token(&third.session_token, Outcome::Approved)
                .await
        ),
        TokenError::Expired
    );
}

#[tokio::test]
async fn invalid_tokens_never_reach_the_store() {
    let (links, store, clock) = setup();
    let account = funded(&links, 5).await;
    let expiry = magic_link::clock::Clock::now(&clock) + Duration::hours(1);
    let created = links
        .create_link(
            account,
            NewLink::new("x", Flow::Selfie)
                .limit(UsageLimit::Unlimited)
                .expires_at(expiry),
        )
        .await
        .unwrap();
    let started = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();
    let foreign = links_over(&store, Keyring::generate().unwrap(), &clock);
    let mut forged = created.token.clone();
    forged.replace_range(40..41, if &forged[40..41] == "A" { "B" } else { "A" });
    let mut other_keyring = Keyring::new(
        links.keyring().signing_key_id(),
        SigningKey::generate().unwrap(),
    );
    other_keyring.rotate().unwrap();
    let other_key_token = LinkToken::new(created.link.id, None).sign(&other_keyring);

    let link_cases: Vec<(String, TokenError)> = vec![
        (String::new(), TokenError::Truncated),
        ("!not a token".into(), TokenError::Malformed),
        (
            "not a token".into(),
            TokenError::UnknownVersion { version: 158 },
        ),
        (created.token[..50].into(), TokenError::Truncated),
        // Longer than a link token: read as a personal token, whose fields it does not fit.
        (format!("{}AAAA", created.token), TokenError::Malformed),
        (forged, TokenError::Forged),
        (
            other_key_token,
            TokenError::UnknownKey {
                key_id: other_keyring.signing_key_id(),
            },
        ),
        (started.session_token.clone(), TokenError::Malformed),
        (
            created.url.clone(),
            TokenError::UnknownVersion { version: 134 },
        ),
    ];
    let before = store.calls();
    for (token, expected) in &link_cases {
        assert_eq!(
            token_error(links.inspect(token, None).await),
            *expected,
            "{token}"
        );
        assert_eq!(
            token_error(links.redeem(token, magic_link::start::Start::new()).await),
            *expected,
            "{token}"
        );
        assert_eq!(
            token_error(
                links
                    .record_view(token, magic_link::funnel::ViewKind::Human)
                    .await
            ),
            *expected,
            "{token}"
        );
        // A dead link's redirect reads the store only for an authentic token.
        assert_eq!(
            links
                .dead_link_redirect(token)
                .await
                .unwrap_err()
                .token_error(),
            Some(*expected),
            "{token}"
        );
    }
    assert_eq!(
        token_error(foreign.inspect(&created.token, None).await),
        TokenError::Forged
    );
    assert_eq!(
        token_error(foreign.verify_session_token(&started.session_token)),
        TokenError::Forged
    );
    for token in ["", "garbage", created.token.as_str()] {
        assert!(matches!(
            links
                .complete_session_with_token(token, Outcome::Approved)
                .await,
            Err(Error::InvalidToken(_))
        ));
        assert!(matches!(
            links.abandon_session_with_token(token).await,
            Err(Error::InvalidToken(_))
        ));
    }
    clock.set(expiry);
    assert_eq!(
        token_error(
            links
                .redeem(&created.token, magic_link::start::Start::new())
                .await
        ),
        TokenError::Expired
    );
    assert_eq!(
        token_error(
            links
                .record_view(&created.token, magic_link::funnel::ViewChange::Confirm)
                .await
        ),
        TokenError::Expired,
        "a view of an expired link is not counted"
    );
    assert_eq!(store.calls(), before, "no invalid token reached the store");
}

#[tokio::test]
async fn rotation_keeps_sent_links_working_until_their_key_is_removed() {
    let store = Watched::default();
    let clock = ManualClock::at_timestamp(1_900_000_000);
    let mut keyring = Keyring::generate().unwrap();
    let v1 = links_over(&store, keyring.clone(), &clock);
    let account = funded(&v1, 5).await;
    let created = v1
        .create_link(
            account,
            NewLink::new("x", Flow::Selfie).limit(UsageLimit::Unlimited),
        )
        .await
        .unwrap();
    let started = v1
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();

    // The service restarts with a rotated keyring (key 2 signs, key 1 still verifies).
    assert_eq!(keyring.rotate().unwrap(), 2);
    let v2 = links_over(
        &store,
        Keyring::parse(keyring.export().expose_secret()).unwrap(),
        &clock,
    );
    assert!(v2.inspect(&created.token, None).await.is_ok());
    assert!(v2.verify_session_token(&started.session_token).is_ok());
    let new_url = v2.link_url(account, created.link.id).await.unwrap();
    assert_ne!(new_url, created.url);
    let new_token = magic_link::tokens::token_from_url(&new_url).unwrap();
    assert!(v2.inspect(new_token, None).await.is_ok());

    // Later, key 1 is retired: links sent before the rotation stop working.
    keyring.remove(1).unwrap();
    let v3 = links_over(&store, keyring, &clock);
    assert_eq!(
        token_error(v3.inspect(&created.token, None).await),
        TokenError::UnknownKey { key_id: 1 }
    );
    assert_eq!(
        token_error(v3.verify_session_token(&started.session_token)),
        TokenError::UnknownKey { key_id: 1 }
    );
    assert!(v3
        .redeem(new_token, magic_link::start::Start::new())
        .await
        .is_ok());
}

#[tokio::test]
async fn debug_hides_link_and_session_tokens() {
    let (links, _, _) = setup();
    let account = funded(&links, 1).await;
    let created = links
        .create_link(account, NewLink::new("x", Flow::Selfie))
        .await
        .unwrap();
    let printed = format!("{created:?}");
    assert!(!printed.contains(&created.token[10..40]), "{printed}");
    assert!(printed.contains(&created.link.id.to_string()));
    let started = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .unwrap();
    let printed = format!("{started:?}");
    assert!(!printed.contains(&started.session_token));
    assert!(!printed.contains(&started.session_token[10..30]));
    assert!(printed.contains("[redacted]"));
    let printed = format!("{links:?}");
    assert!(printed.contains("Keyring { signing_key_id: 1, key_ids: [1], .. }"));
}

/// The checks of a start run in order, link token, form token, store, and a rejected form
/// token costs no store access: a missing one (empty), one for another link, another browser's
/// key, an expired one, garbage. A bad link token is reported as such, whatever the form token.
#[tokio::test]
async fn bad_form_tokens_never_reach_the_store() {
    use magic_link::start::{Start, StartKey};
    let (links, store, clock) = setup();
    let account = funded(&links, 5).await;
    let spec = || NewLink::new("x", Flow::Selfie).limit(UsageLimit::Unlimited);
    let created = links.create_link(account, spec()).await.unwrap();
    let other = links.create_link(account, spec()).await.unwrap();
    let key = StartKey::new("browser-a-0123456789").unwrap();
    let other_key = StartKey::new("browser-b-0123456789").unwrap();
    let form = links
        .inspect(&created.token, Some(&key))
        .await
        .unwrap()
        .form_token
        .expect("a form token for a key");
    let other_form = links
        .inspect(&other.token, Some(&key))
        .await
        .unwrap()
        .form_token
        .unwrap();
    let stale_form = form.clone();
    clock.advance(Duration::minutes(59));
    let fresh_form = links
        .inspect(&created.token, Some(&key))
        .await
        .unwrap()
        .form_token
        .unwrap();
    clock.advance(Duration::minutes(1));

    let before = store.calls();
    let cases: Vec<(Start, TokenError)> = vec![
        (
            Start::from_landing_page(key.clone(), ""),
            TokenError::Truncated,
        ),
        (
            Start::from_landing_page(key.clone(), "!garbage"),
            TokenError::Malformed,
        ),
        (
            Start::from_landing_page(key.clone(), other_form),
            TokenError::Forged,
        ),
        (
            Start::from_landing_page(other_key.clone(), fresh_form.clone()),
            TokenError::Forged,
        ),
        (
            Start::from_landing_page(key.clone(), stale_form),
            TokenError::Expired,
        ),
        (
            Start::from_landing_page(key.clone(), created.token.clone()),
            TokenError::TooLong,
        ),
    ];
    for (start, expected) in cases {
        let got = links.redeem(&created.token, start.clone()).await;
        match got {
            Err(Error::InvalidFormToken(e)) => assert_eq!(e, expected, "{start:?}"),
            other => panic!("{start:?}: expected a form token error, got {other:?}"),
        }
        // The link token is checked first.
        assert_eq!(
            token_error(links.redeem("garbage", start).await),
            TokenError::UnknownVersion { version: 129 }
        );
    }
    assert_eq!(
        store.calls(),
        before,
        "no rejected form token reached the store"
    );

    let started = links
        .redeem(&created.token, Start::from_landing_page(key, fresh_form))
        .await
        .expect("the page's own form token");
    assert!(!started.resumed);
    assert_eq!(links.link(account, created.link.id).await.unwrap().uses, 1);
}

/// An owner who sends visitors of dead links to their own page: `shop.example` allowed.
async fn with_dead_link_page(links: &Links, account: AccountId, expires: DateTime<Utc>) -> Link {
    let origin = magic_link::returns::ReturnOrigin::parse("https://shop.example").unwrap();
    links
        .set_account_profile(
            account,
            magic_link::AccountProfile {
                return_origins: vec![origin],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let url = magic_link::returns::ReturnUrl::parse("https://shop.example/expired").unwrap();
    links
        .create_link(
            account,
            NewLink::new("x", Flow::Selfie)
                .expires_at(expires)
                .dead_link_url(url),
        )
        .await
        .unwrap()
        .link
}

#[tokio::test]
async fn an_expired_links_dead_link_redirect_costs_one_store_read() {
    let (links, store, clock) = setup();
    let account = funded(&links, 1).await;
    let expires = magic_link::clock::Clock::now(&clock) + Duration::hours(1);
    let link = with_dead_link_page(&links, account, expires).await;
    let token = links.url_of(&link);
    let token = magic_link::tokens::token_from_url(&token)
        .unwrap()
        .to_owned();
    // Alive: no redirect.
    assert_eq!(links.dead_link_redirect(&token).await.unwrap(), None);

    clock.set(expires);
    let before = store.calls();
    assert_eq!(
        token_error(links.inspect(&token, None).await),
        TokenError::Expired
    );
    assert_eq!(
        store.calls(),
        before,
        "an expired token is refused before the store"
    );
    let to = links.dead_link_redirect(&token).await.unwrap();
    assert_eq!(
        to.map(|u| u.as_str().to_owned()).as_deref(),
        Some("https://shop.example/expired")
    );
    assert_eq!(
        store.calls(),
        before + 1,
        "one store read for an authentic token"
    );

    // The owner removes the origin: no more redirects, at once.
    links
        .set_account_profile(account, magic_link::AccountProfile::default())
        .await
        .unwrap();
    assert_eq!(links.dead_link_redirect(&token).await.unwrap(), None);
}

#[tokio::test]
async fn a_deactivated_links_landing_page_names_its_dead_link_url() {
    let (links, _, clock) = setup();
    let account = funded(&links, 1).await;
    let expires = magic_link::clock::Clock::now(&clock) + Duration::hours(1);
    let link = with_dead_link_page(&links, account, expires).await;
    let url = links.url_of(&link);
    let token = magic_link::tokens::token_from_url(&url).unwrap();
    assert_eq!(
        links.inspect(token, None).await.unwrap().dead_link_url,
        None
    );
    links.deactivate_link(account, link.id).await.unwrap();
    let seen = links.inspect(token, None).await.unwrap();
    assert_eq!(
        seen.dead_link_url.map(|u| u.as_str().to_owned()).as_deref(),
        Some("https://shop.example/expired")
    );
}
