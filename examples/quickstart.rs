//! The whole life of a Magic Link, in memory.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use magic_link::store::MemoryStore;
use magic_link::tokens::{token_from_url, Keyring, LinkBase};
use magic_link::{
    AccountId, Error, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, UsageLimit,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The signing keys. In production they come from a secret manager or an environment
    // variable holding `keyring.export()`; here, a fresh keyring.
    let keyring = match std::env::var("MAGIC_LINK_KEYS") {
        Ok(text) => Keyring::parse(&text)?,
        Err(_) => Keyring::generate()?,
    };
    let base = LinkBase::new("https://verify.example.com/l/")?;
    let links = MagicLinks::new(MemoryStore::new(), keyring, base);

    // The customer's account, with credits bought in advance.
    let account = links.create_account(AccountId::new()).await?;
    links
        .top_up(account.id, 10, IdempotencyKey::new("invoice-2026-001")?)
        .await?;

    // A link for three people: document and selfie, in Lithuanian.
    let spec = NewLink::new("Spring onboarding", Flow::DocumentAndSelfie)
        .limit(UsageLimit::multi(3)?)
        .language("lt");
    let created = links.create_link(account.id, spec).await?;
    let link = &created.link;
    println!(
        "created link {} ({:?}, {:?})\n  share: {}",
        link.id, link.flow, link.limit, created.url
    );

    // The landing page gets the URL's path; the token is its last segment.
    let path = created.url.trim_start_matches("https://verify.example.com");
    let token = token_from_url(path)?;

    // Opening the link (a person, or an email scanner) only inspects it.
    let seen = links.inspect(token, None).await?;
    println!(
        "inspected: status {:?}, can start: {:?}, uses so far: {}",
        seen.status,
        seen.can_start(),
        seen.link.uses
    );

    // Four people press "Start verification"; the link has three uses.
    let mut sessions = Vec::new();
    for attempt in 1..=4 {
        match links.redeem(token, magic_link::start::Start::new()).await {
            Ok(started) => {
                println!(
                    "redemption {attempt}: session {} started",
                    started.session.id
                );
                sessions.push(started);
            }
            Err(err) => println!("redemption {attempt}: rejected: {err}"),
        }
    }

    // One verification completes (billed), one person gives up (not billed), one is running.
    // The flow page identifies its session with the session token it was given.
    links
        .complete_session_with_token(&sessions[0].session_token, Outcome::Approved)
        .await?;
    links
        .abandon_session_with_token(&sessions[1].session_token)
        .await?;

    // A tampered or foreign token is refused before the store is asked.
    let mut forged = token.to_owned();
    forged.replace_range(10..11, if &forged[10..11] == "A" { "B" } else { "A" });
    match links.inspect(&forged, None).await {
        Err(err) => println!("forged token: rejected: {err}"),
        Ok(_) => unreachable!("a forged token never verifies"),
    }

    let stats = links.stats(account.id, link.id).await?;
    println!(
        "stats: uses {}, remaining {:?}, started {}, completed {} (approved {}), abandoned {}",
        stats.uses,
        stats.remaining,
        stats.started,
        stats.completed.total(),
        stats.completed.approved,
        stats.abandoned
    );
    let credits = links.account(account.id).await?;
    println!(
        "credits: balance {}, held {}, available {}",
        credits.balance,
        credits.held,
        credits.available()
    );

    println!("outbox:");
    for event in links.events_after(account.id, 0, 100).await? {
        println!(
            "  #{} {} {}",
            event.seq,
            event.kind.name(),
            serde_json::to_string(&event.kind).map_err(Error::backend)?
        );
    }
    Ok(())
}
