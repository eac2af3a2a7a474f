//! Account profiles, return secrets and the return URLs of links.

use super::fixtures::{account_with, epoch, ok, rejected};
use crate::returns::{ReturnOrigin, ReturnSecret, ReturnUrl};
use crate::store::LinkStore;
use crate::{AccountId, AccountProfile, Flow, InvalidInput, Link, LinkId, NewLink, Rejection};

/// A profile is stored whole and read back by `account` and `inspect` (with the link, in one
/// read); invalid profiles change nothing; return secrets rotate two at a time; links keep
/// their return and dead-link URLs.
pub async fn profiles_and_return_secrets<S: LinkStore>(store: &S) {
    let account = account_with(store, 1).await;
    assert_eq!(
        account.profile,
        AccountProfile::default(),
        "a new account has no profile"
    );
    let origin = |o: &str| ReturnOrigin::parse(o).expect("valid origin");
    let profile = AccountProfile {
        display_name: Some("Acme Bank".into()),
        support_url: Some(ReturnUrl::parse("https://acme.example/help").expect("valid")),
        return_origins: vec![
            origin("https://b.example"),
            origin("https://a.example:8443"),
        ],
        return_outcome: true,
    };
    let set = ok(
        store.set_profile(account.id, profile.clone()).await,
        "set_profile",
    );
    let stored = ok(store.account(account.id).await, "account");
    assert_eq!(set, stored, "set_profile returns the stored account");
    assert_eq!(stored.profile.display_name.as_deref(), Some("Acme Bank"));
    assert_eq!(stored.profile.support_url, profile.support_url);
    assert_eq!(
        stored.profile.return_origins,
        vec![
            origin("https://a.example:8443"),
            origin("https://b.example")
        ],
        "origins are kept sorted, without repeats"
    );
    assert!(stored.profile.return_outcome);
    assert_eq!(
        (stored.balance, stored.held),
        (account.balance, account.held)
    );

    let too_long = AccountProfile {
        display_name: Some("x".repeat(AccountProfile::MAX_DISPLAY_NAME_CHARS + 1)),
        ..AccountProfile::default()
    };
    match store.set_profile(account.id, too_long).await {
        Err(crate::Error::Invalid(InvalidInput::InvalidDisplayName { .. })) => {}
        other => panic!("an overlong display name must be refused: {other:?}"),
    }
    assert_eq!(
        ok(store.account(account.id).await, "account"),
        stored,
        "unchanged"
    );
    rejected(
        store.set_profile(AccountId::new(), profile.clone()).await,
        Rejection::NotFound,
        "set_profile of an unknown account",
    );

    // Links keep their URLs, and inspect reads the owner with them.
    let spec = NewLink::new("profile", Flow::Selfie)
        .return_url(ReturnUrl::parse("https://a.example:8443/done?x=1").expect("valid"))
        .dead_link_url(ReturnUrl::parse("https://b.example/gone").expect("valid"));
    let link = Link::new(LinkId::new(), account.id, spec, epoch()).expect("valid link");
    let inserted = ok(store.insert_link(link.clone()).await, "insert_link");
    assert_eq!(inserted, link);
    assert_eq!(ok(store.link(account.id, link.id).await, "link"), link);
    let (seen, owner) = ok(store.inspect(link.id).await, "inspect");
    assert_eq!(seen, link);
    assert_eq!(
        owner, stored,
        "inspect reads the owner, profile and credits"
    );

    // Return secrets: none, then one, then two (the newest first), never more.
    assert!(ok(store.return_secrets(account.id).await, "return_secrets").is_none());
    let secrets: Vec<ReturnSecret> = (0..3)
        .map(|_| ReturnSecret::generate().expect("random"))
        .collect();
    ok(
        store
            .rotate_return_secret(account.id, secrets[0].clone())
            .await,
        "rotate",
    );
    let one = ok(store.return_secrets(account.id).await, "return_secrets").expect("one secret");
    assert_eq!(one.current().key_bytes(), secrets[0].key_bytes());
    assert!(one.previous().is_none());
    for secret in &secrets[1..] {
        ok(
            store.rotate_return_secret(account.id, secret.clone()).await,
            "rotate",
        );
    }
    let two = ok(store.return_secrets(account.id).await, "return_secrets").expect("secrets");
    assert_eq!(two.current().key_bytes(), secrets[2].key_bytes());
    assert_eq!(
        two.previous().map(ReturnSecret::key_bytes),
        Some(secrets[1].key_bytes()),
        "the previous secret is kept, the older dropped"
    );
    rejected(
        store.return_secrets(AccountId::new()).await,
        Rejection::NotFound,
        "return_secrets of an unknown account",
    );
    rejected(
        store
            .rotate_return_secret(AccountId::new(), secrets[0].clone())
            .await,
        Rejection::NotFound,
        "rotate_return_secret of an unknown account",
    );
}
