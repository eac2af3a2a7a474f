//! The whole life of a Magic Link, in memory.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use magic_link::{
    AccountId, Error, Flow, IdempotencyKey, MagicLinks, MemoryStore, NewLink, Outcome, UsageLimit,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let links = MagicLinks::new(MemoryStore::new());

    // The customer's account, with credits bought in advance.
    let account = links.create_account(AccountId::new()).await?;
    links
        .top_up(account.id, 10, IdempotencyKey::new("invoice-2026-001")?)
        .await?;

    // A link for three people: document and selfie, in Lithuanian.
    let spec = NewLink::new("Spring onboarding", Flow::DocumentAndSelfie)
        .limit(UsageLimit::multi(3)?)
        .language("lt");
    let link = links.create_link(account.id, spec).await?;
    println!(
        "created link {} ({:?}, {:?})",
        link.id, link.flow, link.limit
    );

    // Opening the link (a person, or an email scanner) only inspects it.
    let seen = links.inspect(link.id).await?;
    println!(
        "inspected: status {:?}, can start: {:?}, uses so far: {}",
        seen.status,
        seen.can_start(),
        seen.link.uses
    );

    // Four people press "Start verification"; the link has three uses.
    let mut sessions = Vec::new();
    for attempt in 1..=4 {
        match links.redeem(link.id).await {
            Ok(session) => {
                println!("redemption {attempt}: session {} started", session.id);
                sessions.push(session);
            }
            Err(err) => println!("redemption {attempt}: rejected: {err}"),
        }
    }

    // One verification completes (billed), one person gives up (not billed), one is running.
    links
        .complete_session(account.id, sessions[0].id, Outcome::Approved)
        .await?;
    links.abandon_session(account.id, sessions[1].id).await?;

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
    for event in links.events_after(0, 100).await? {
        println!(
            "  #{} {} {}",
            event.seq,
            event.kind.name(),
            serde_json::to_string(&event.kind).map_err(Error::backend)?
        );
    }
    Ok(())
}
