//! Starting through the facade: idempotent starts with a start key, resume on the landing page,
//! and hand-offs to a phone.

use chrono::Duration;
use magic_link::clock::{Clock, ManualClock};
use magic_link::start::{HandoffTtl, Start, StartKey};
use magic_link::store::MemoryStore;
use magic_link::tokens::{Keyring, TokenError};
use magic_link::{
    AccountId, Error, EventKind, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, Rejection,
    SessionTtl, UsageLimit,
};

type Links = MagicLinks<MemoryStore, ManualClock>;

fn setup() -> (Links, ManualClock) {
    let clock = ManualClock::at_timestamp(1_900_000_000);
    let links = MagicLinks::new(
        MemoryStore::new(),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(clock.clone())
    .session_ttl(SessionTtl::new(Duration::hours(1)).unwrap());
    (links, clock)
}

async fn funded(links: &Links, credits: u64) -> AccountId {
    let account = links.create_account(AccountId::new()).await.unwrap();
    links
        .top_up(account.id, credits, IdempotencyKey::new("seed").unwrap())
        .await
        .unwrap();
    account.id
}

/// A double submit, a reload and the back button: the same key on the same link is one
/// session while it is open; the landing page offers "Continue" for it; another browser
/// without the key sees the normal page and starts its own.
#[tokio::test]
async fn the_same_browser_resumes_its_open_session() {
    let (links, clock) = setup();
    let account = funded(&links, 5).await;
    let created = links
        .create_link(
            account,
            NewLink::new("x", Flow::Selfie).limit(UsageLimit::multi(3).unwrap()),
        )
        .await
        .unwrap();
    let key = StartKey::generate().unwrap();

    let page = links.inspect(&created.token, Some(&key)).await.unwrap();
    assert_eq!(page.open_session, None, "nothing to continue yet");
    let form = page.form_token.unwrap();
    let first = links
        .redeem(
            &created.token,
            Start::from_landing_page(key.clone(), form.clone()),
        )
        .await
        .unwrap();
    assert!(!first.resumed);
    let again = links
        .redeem(&created.token, Start::from_landing_page(key.clone(), form))
        .await
        .unwrap();
    assert!(again.resumed, "a double submit resumes");
    assert_eq!(again.session, first.session);
    assert_eq!(again.session_token, first.session_token);

    // Back on the landing page (reload, back button, the email again).
    clock.advance(Duration::minutes(10));
    let page = links.inspect(&created.token, Some(&key)).await.unwrap();
    assert_eq!(page.open_session.as_ref(), Some(&first.session), "Continue");
    let resumed = links
        .redeem(
            &created.token,
            Start::from_landing_page(key.clone(), page.form_token.unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(resumed.session.id, first.session.id);

    // Another device, without the cookie.
    let page = links.inspect(&created.token, None).await.unwrap();
    assert_eq!((page.open_session, page.form_token), (None, None));
    let phone_key = StartKey::generate().unwrap();
    let elsewhere = links
        .redeem(&created.token, Start::with_key(phone_key))
        .await
        .unwrap();
    assert_ne!(elsewhere.session.id, first.session.id);
    assert_eq!(links.link(account, created.link.id).await.unwrap().uses, 2);

    // Once the session completes, the key starts a new one.
    links
        .complete_session_with_token(&first.session_token, Outcome::Approved)
        .await
        .unwrap();
    let page = links.inspect(&created.token, Some(&key)).await.unwrap();
    assert_eq!(page.open_session, None);
    let next = links
        .redeem(&created.token, Start::with_key(key.clone()))
        .await
        .unwrap();
    assert!(!next.resumed);
    assert_ne!(next.session.id, first.session.id);

    // Backends without a key start a new session every time; the link is used up now.
    let rejected = links
        .redeem(&created.token, Start::new())
        .await
        .unwrap_err();
    assert_eq!(rejected.rejection(), Some(Rejection::Exhausted));
    // But the key's open session still resumes on the exhausted link.
    let still = links
        .redeem(&created.token, Start::with_key(key))
        .await
        .unwrap();
    assert_eq!(still.session.id, next.session.id);
    let redeemed = links
        .events_after(account, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::LinkRedeemed { .. }))
        .count();
    assert_eq!(redeemed, 3, "one link.redeemed per use, none per resume");
}

/// A hand-off: a session token on the desktop makes a single-use token; the phone accepts it
/// and gets a session token for the same session, with `session.handed_off`; the phone
/// completes the session. A second use, an expired hand-off and one of an ended session are
/// refused with typed errors. No use and no credit are consumed.
#[tokio::test]
async fn a_session_moves_to_a_phone_once() {
    let (links, clock) = setup();
    let account = funded(&links, 5).await;
    let created = links
        .create_link(account, NewLink::new("x", Flow::Selfie))
        .await
        .unwrap();
    let desktop = links.redeem(&created.token, Start::new()).await.unwrap();
    let handoff = links.handoff(&desktop.session_token).await.unwrap();
    assert_eq!(handoff.session, desktop.session);
    assert_eq!(handoff.expires_at, clock.now() + Duration::minutes(10));
    assert!(format!("https://verify.example.com/h/{}", handoff.token).len() <= 100);
    assert!(!format!("{handoff:?}").contains(&handoff.token));

    clock.advance(Duration::minutes(2));
    let phone = links.accept_handoff(&handoff.token).await.unwrap();
    assert_eq!(phone.session.id, desktop.session.id);
    assert!(phone.resumed);
    let second = links.accept_handoff(&handoff.token).await.unwrap_err();
    assert_eq!(second.rejection(), Some(Rejection::HandoffUsed));

    let events = links.events_after(account, 0, 100).await.unwrap();
    let handed_off: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SessionHandedOff { .. }))
        .collect();
    assert_eq!(handed_off.len(), 1);
    assert_eq!(
        handed_off[0].kind,
        EventKind::SessionHandedOff {
            link: created.link.id,
            session: desktop.session.id
        }
    );
    let funds = links.account(account).await.unwrap();
    assert_eq!((funds.balance, funds.held), (5, 1), "no credit moved");
    assert_eq!(links.link(account, created.link.id).await.unwrap().uses, 1);

    // Expired: 10 minutes by default.
    let late = links.handoff(&desktop.session_token).await.unwrap();
    clock.advance(Duration::minutes(10));
    assert!(matches!(
        links.accept_handoff(&late.token).await,
        Err(Error::InvalidToken(TokenError::Expired))
    ));
    // Garbage.
    assert!(matches!(
        links.accept_handoff("garbage").await,
        Err(Error::InvalidToken(_))
    ));

    // The phone completes; a pending hand-off of the ended session is refused.
    let pending = links.handoff(&desktop.session_token).await.unwrap();
    links
        .complete_session_with_token(&phone.session_token, Outcome::Approved)
        .await
        .unwrap();
    let ended = links.accept_handoff(&pending.token).await.unwrap_err();
    assert_eq!(ended.rejection(), Some(Rejection::SessionCompleted));
    let no_more = links.handoff(&desktop.session_token).await.unwrap_err();
    assert_eq!(no_more.rejection(), Some(Rejection::SessionCompleted));
    assert_eq!(
        links.account(account).await.unwrap().balance,
        4,
        "billed once"
    );
}

/// The hand-off's time to live is configurable and never outlasts its session.
#[tokio::test]
async fn handoff_ttl_is_configurable_and_bounded_by_the_session() {
    let (links, clock) = setup();
    let links = links.handoff_ttl(HandoffTtl::new(Duration::minutes(90)).unwrap());
    assert!(HandoffTtl::new(Duration::zero()).is_err());
    assert!(HandoffTtl::new(Duration::days(2)).is_err());
    let account = funded(&links, 5).await;
    let created = links
        .create_link(account, NewLink::new("x", Flow::Selfie))
        .await
        .unwrap();
    let started = links.redeem(&created.token, Start::new()).await.unwrap();
    let handoff = links.handoff(&started.session_token).await.unwrap();
    assert_eq!(
        handoff.expires_at, started.session.expires_at,
        "an hour, the session's ttl"
    );
    let short = links.handoff_ttl(HandoffTtl::new(Duration::minutes(1)).unwrap());
    let quick = short.handoff(&started.session_token).await.unwrap();
    assert_eq!(quick.expires_at, clock.now() + Duration::minutes(1));
}

/// Invalid start keys are typed errors.
#[test]
fn start_keys_are_validated() {
    for bad in [
        "",
        "short",
        &"x".repeat(65),
        "has spaces in it ok",
        "ünïcödé-ünïcödé-",
    ] {
        assert_eq!(
            StartKey::new(bad).unwrap_err(),
            magic_link::InvalidInput::InvalidStartKey,
            "{bad:?}"
        );
    }
    assert!(StartKey::new("x".repeat(16)).is_ok());
    assert!(StartKey::new("x".repeat(64)).is_ok());
}
