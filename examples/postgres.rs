//! The life of a Magic Link on PostgreSQL, shared by two service instances.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres --features postgres
//! ```
//!
//! Works in the schema `magic_link_example` (created and migrated if needed). Without
//! `DATABASE_URL` it says how to run it and exits.

use magic_link::store::PostgresStore;
use magic_link::tokens::{Keyring, LinkBase};
use magic_link::{
    AccountId, Error, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, UsageLimit,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!(
            "DATABASE_URL is not set. Run with, for example:\n  \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
             cargo run --example postgres --features postgres"
        );
        return Ok(());
    };

    // Two instances of the service, each with its own pool, on one schema, sharing the keys.
    let keyring = match std::env::var("MAGIC_LINK_KEYS") {
        Ok(text) => Keyring::parse(&text)?,
        Err(_) => Keyring::generate()?,
    };
    let base = LinkBase::new("https://verify.example.com/l/")?;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let pool = PostgresStore::pool_options()
            .max_connections(4)
            .connect(&url)
            .await?;
        let store = PostgresStore::builder(pool)
            .schema("magic_link_example")
            .build()?;
        store.migrate().await?;
        instances.push(MagicLinks::new(store, keyring.clone(), base.clone()));
    }
    let (a, b) = (&instances[0], &instances[1]);

    let account = a.create_account(AccountId::new()).await?;
    a.top_up(account.id, 10, IdempotencyKey::new("invoice-2026-001")?)
        .await?;
    // A retried top-up (same key, same amount) on the other instance adds nothing.
    let credits = b
        .top_up(account.id, 10, IdempotencyKey::new("invoice-2026-001")?)
        .await?;
    println!("credits after a retried top-up: {}", credits.balance);

    let spec = NewLink::new("Spring onboarding", Flow::DocumentAndSelfie)
        .limit(UsageLimit::multi(3)?)
        .language("lt");
    let created = a.create_link(account.id, spec).await?;
    let link = created.link.id;
    println!(
        "created link {link} on instance A\n  share: {}",
        created.url
    );

    // Eight people press "Start verification" at once, half through each instance; the link
    // has three uses.
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let instance = instances[i % 2].clone();
            let token = created.token.clone();
            tokio::spawn(async move {
                instance
                    .redeem(&token, magic_link::start::Start::new())
                    .await
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for (i, attempt) in attempts.into_iter().enumerate() {
        match attempt.await? {
            Ok(started) => {
                let session = started.session;
                println!(
                    "attempt {i}: session {} (use {})",
                    session.id, session.number
                );
                sessions.push(session);
            }
            Err(Error::Rejected(why)) => println!("attempt {i}: rejected: {why}"),
            Err(other) => return Err(other.into()),
        }
    }

    b.complete_session(account.id, sessions[0].id, Outcome::Approved)
        .await?;
    a.abandon_session(account.id, sessions[1].id).await?;
    let stats = b.stats(account.id, link).await?;
    println!(
        "stats: uses {}, remaining {:?}, started {}, completed {}, abandoned {}",
        stats.uses,
        stats.remaining,
        stats.started,
        stats.completed.total(),
        stats.abandoned
    );
    let credits = a.account(account.id).await?;
    println!(
        "credits: balance {}, held {}, available {}",
        credits.balance,
        credits.held,
        credits.available()
    );

    println!("this account's events in the shared outbox:");
    let mut cursor = 0;
    loop {
        let batch = a.events_after(account.id, cursor, 500).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        for event in &batch {
            println!("  #{} {}", event.seq, event.kind.name());
        }
    }
    Ok(())
}
