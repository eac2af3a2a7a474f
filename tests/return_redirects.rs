//! Signed return URLs end to end on the facade: origins checked at creation and at redirect,
//! the outcome only when opted in, rotation, and the verifier on the owner's side.

use chrono::Duration;
use magic_link::clock::{Clock, ManualClock};
use magic_link::returns::{
    ReturnError, ReturnOrigin, ReturnSecrets, ReturnStatus, ReturnUrl, ReturnVerifier,
};
use magic_link::start::Start;
use magic_link::store::MemoryStore;
use magic_link::tokens::{token_from_url, Keyring};
use magic_link::{
    AccountId, AccountProfile, Error, Flow, IdempotencyKey, InvalidInput, MagicLinks, NewLink,
    Outcome, Reference, UsageLimit,
};

type Links = MagicLinks<MemoryStore, ManualClock>;

fn links() -> Links {
    MagicLinks::new(
        MemoryStore::new(),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    )
    .with_clock(ManualClock::at_timestamp(1_900_000_000))
}

fn shop() -> AccountProfile {
    AccountProfile {
        display_name: Some("Shop".into()),
        return_origins: vec![ReturnOrigin::parse("https://shop.example").unwrap()],
        ..Default::default()
    }
}

async fn account(links: &Links) -> AccountId {
    let account = links.create_account(AccountId::new()).await.unwrap();
    links
        .top_up(account.id, 10, IdempotencyKey::new("k").unwrap())
        .await
        .unwrap();
    links.set_account_profile(account.id, shop()).await.unwrap();
    account.id
}

fn done_url() -> ReturnUrl {
    ReturnUrl::parse("https://shop.example/done?order=42").unwrap()
}

async fn shared_link(links: &Links, account: AccountId) -> magic_link::Link {
    links
        .create_link(
            account,
            NewLink::new("internal", Flow::Selfie)
                .limit(UsageLimit::Unlimited)
                .return_url(done_url()),
        )
        .await
        .unwrap()
        .link
}

#[tokio::test]
async fn a_return_url_off_the_allowed_origins_is_refused_at_creation() {
    let links = links();
    let account = account(&links).await;
    for url in [
        "https://evil.example/x",
        "https://shop.example.evil.example/",
    ] {
        let spec = NewLink::new("x", Flow::Selfie).return_url(ReturnUrl::parse(url).unwrap());
        let refused = links.create_link(account, spec).await.unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Invalid(InvalidInput::ReturnOriginNotAllowed)
            ),
            "{url}: {refused:?}"
        );
        let spec = NewLink::new("x", Flow::Selfie).dead_link_url(ReturnUrl::parse(url).unwrap());
        assert!(links.create_link(account, spec).await.is_err(), "{url}");
    }
    // Plain http is not a return URL at all, except to this machine.
    assert_eq!(
        ReturnUrl::parse("http://shop.example/done").unwrap_err(),
        InvalidInput::InvalidReturnUrl
    );
    assert!(ReturnUrl::parse("http://127.0.0.1:8080/done").is_ok());
    let none = links.links(account, Default::default()).await.unwrap();
    assert!(none.items.is_empty(), "nothing was created");
}

#[tokio::test]
async fn an_ended_session_returns_signed_and_verifiable() {
    let links = links();
    let account = account(&links).await;
    let secret = links.rotate_return_secret(account).await.unwrap();
    let link = shared_link(&links, account).await;
    let url = links.personal_url_of(&link, Reference::new("cus_42").unwrap());
    let started = links
        .redeem(token_from_url(&url).unwrap(), Start::new())
        .await
        .unwrap();
    // Open: nowhere to return yet.
    assert_eq!(
        links.return_redirect(&started.session_token).await.unwrap(),
        None
    );
    links
        .complete_session(account, started.session.id, Outcome::Denied)
        .await
        .unwrap();
    let back = links
        .return_redirect(&started.session_token)
        .await
        .unwrap()
        .expect("a return URL");
    assert!(
        back.starts_with("https://shop.example/done?order=42&session_id="),
        "{back}"
    );
    let verifier = ReturnVerifier::new(secret.clone());
    let now = links.clock().now();
    let verified = verifier.verify_at(&back, now).unwrap();
    assert_eq!(verified.session, started.session.id);
    assert_eq!(verified.link, link.id);
    assert_eq!(verified.reference.unwrap().as_str(), "cus_42");
    assert_eq!(verified.status, ReturnStatus::Completed);
    assert_eq!(
        verified.outcome, None,
        "the outcome stays out unless opted in"
    );
    assert!(!back.contains("denied"));
    // Too late, and tampered with.
    assert_eq!(
        verifier
            .verify_at(&back, now + Duration::minutes(6))
            .unwrap_err(),
        ReturnError::TimestampTooOld
    );
    let tampered = back.replace("order=42", "order=43");
    assert_eq!(
        verifier.verify_at(&tampered, now).unwrap_err(),
        ReturnError::BadSignature
    );

    // Opted in: the outcome rides along.
    links
        .set_account_profile(
            account,
            AccountProfile {
                return_outcome: true,
                ..shop()
            },
        )
        .await
        .unwrap();
    let back = links
        .return_redirect(&started.session_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        verifier.verify_at(&back, now).unwrap().outcome,
        Some(Outcome::Denied)
    );

    // Rotation: new URLs are signed with the new secret; a verifier with both accepts both.
    let newer = links.rotate_return_secret(account).await.unwrap();
    let after = links
        .return_redirect(&started.session_token)
        .await
        .unwrap()
        .unwrap();
    assert!(ReturnVerifier::new(secret.clone())
        .verify_at(&after, now)
        .is_err());
    let mut both = ReturnSecrets::new(secret);
    both.rotate(newer);
    let both = ReturnVerifier::new(both);
    assert!(both.verify_at(&after, now).is_ok() && both.verify_at(&back, now).is_ok());
    let stored = links.return_secrets(account).await.unwrap().unwrap();
    assert!(stored.previous().is_some());

    // The owner removes the origin: no redirect from then on.
    links
        .set_account_profile(account, AccountProfile::default())
        .await
        .unwrap();
    assert_eq!(
        links.return_redirect(&started.session_token).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_quit_returns_quit_and_no_secret_means_no_redirect() {
    let links = links();
    let account = account(&links).await;
    let link = shared_link(&links, account).await;
    let url = links.url_of(&link);
    let started = links
        .redeem(token_from_url(&url).unwrap(), Start::new())
        .await
        .unwrap();
    links
        .abandon_session_with_token(&started.session_token)
        .await
        .unwrap();
    assert_eq!(
        links.return_redirect(&started.session_token).await.unwrap(),
        None,
        "no return secret yet: nothing to sign with"
    );
    let secret = links.rotate_return_secret(account).await.unwrap();
    let back = links
        .return_redirect(&started.session_token)
        .await
        .unwrap()
        .unwrap();
    let verified = ReturnVerifier::new(secret)
        .verify_at(&back, links.clock().now())
        .unwrap();
    assert_eq!(verified.status, ReturnStatus::Quit);
    assert_eq!(verified.reference, None);
    assert_eq!(verified.outcome, None);
}
