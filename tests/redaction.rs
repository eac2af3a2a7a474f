//! Redaction leaves the owner's labels nowhere: one distinctive string, put into a link's
//! reference and metadata and into a personal URL's reference, delivered by webhook, is
//! searched for in the whole state of the store after `redact_session` and `redact_link` (the
//! `Debug` of a `MemoryStore`; every table of a PostgreSQL schema), and in the webhooks sent
//! after. The search is shown to find it before.
//!
//! The PostgreSQL test reads `DATABASE_URL` at run time and, without it, prints why it skips.

use std::sync::Arc;

use chrono::TimeDelta;
use magic_link::clock::ManualClock;
use magic_link::start::Start;
use magic_link::store::{LinkStore, MemoryStore, WebhookStore};
use magic_link::testing::{RecordingTransport, Reply};
use magic_link::tokens::{token_from_url, Keyring};
use magic_link::webhooks::{Dispatcher, WebhookSecret};
use magic_link::{
    AccountId, Flow, IdempotencyKey, LedgerEntry, LinkId, LinkStats, MagicLinks, Metadata, NewLink,
    Outcome, Page, Reference, SessionId, UsageLimit,
};

/// The string that must be gone.
const ERASE: &str = "zz-erase-me-7Q";

/// A service on `store` after a labelled link's personal session completed and its webhooks
/// went out: two of them failed once and wait for a retry.
struct Scene<S> {
    clock: ManualClock,
    links: MagicLinks<Arc<S>, ManualClock>,
    transport: Arc<RecordingTransport>,
    dispatcher: Dispatcher<Arc<S>, Arc<RecordingTransport>, ManualClock>,
    account: AccountId,
    link: LinkId,
    session: SessionId,
}

/// What redaction must not change.
#[derive(Debug, PartialEq)]
struct Kept {
    stats: LinkStats,
    ledger: Vec<LedgerEntry>,
}

impl<S: LinkStore + WebhookStore> Scene<S> {
    async fn new(store: S) -> Self {
        let store = Arc::new(store);
        let clock = ManualClock::at_timestamp(1_893_456_000);
        let links = MagicLinks::new(
            Arc::clone(&store),
            Keyring::generate().unwrap(),
            "https://verify.example.com/l/".parse().unwrap(),
        )
        .with_clock(clock.clone());
        let account = links.create_account(AccountId::new()).await.unwrap().id;
        links
            .top_up(account, 5, IdempotencyKey::new("redaction").unwrap())
            .await
            .unwrap();
        links
            .set_webhook_endpoint(
                account,
                "https://hooks.example.com/idv",
                vec![WebhookSecret::generate().unwrap()],
            )
            .await
            .unwrap();
        let erase = Reference::new(ERASE).unwrap();
        let spec = NewLink::new("Erasure", Flow::Selfie)
            .limit(UsageLimit::Unlimited)
            .reference(erase.clone())
            .metadata(Metadata::from_pairs([("case", ERASE)]).unwrap());
        let link = links.create_link(account, spec).await.unwrap().link.id;
        let url = links
            .personal_url(account, link, erase.clone())
            .await
            .unwrap();
        let started = links
            .redeem(token_from_url(&url).unwrap(), Start::new())
            .await
            .unwrap();
        assert_eq!(started.session.reference, Some(erase));
        let session = started.session.id;
        links
            .complete_session(account, session, Outcome::Approved)
            .await
            .unwrap();
        // credits.added, link.created, link.redeemed, session.completed: the second and the
        // third fail once, with a response and without one.
        let transport = Arc::new(RecordingTransport::new().script([
            Reply::Status(200),
            Reply::Status(500),
            Reply::ConnectionError,
        ]));
        let dispatcher =
            Dispatcher::new(Arc::clone(&store), Arc::clone(&transport)).with_clock(clock.clone());
        let scene = Self {
            clock,
            links,
            transport,
            dispatcher,
            account,
            link,
            session,
        };
        scene.deliver().await;
        let requests = scene.transport.requests();
        assert_eq!(requests.len(), 4, "every event was sent once");
        assert!(
            requests.iter().filter(|r| sent(&r.body)).count() == 3,
            "the labels went out with the events of the link"
        );
        scene
    }

    async fn deliver(&self) {
        for _ in 0..100 {
            let report = self.dispatcher.run_once().await.unwrap();
            if report.taken == 0 && report.attempted == 0 {
                break;
            }
        }
    }

    async fn kept(&self) -> Kept {
        let store = self.links.store();
        Kept {
            stats: store.stats(self.account, self.link).await.unwrap(),
            ledger: store
                .ledger(self.account, Page::first(100))
                .await
                .unwrap()
                .items,
        }
    }

    /// Redacts the session, then the link, and checks what they return; then lets the
    /// pending retries go out and checks that they, and the redaction events, carry nothing.
    async fn redact(&self) {
        self.clock.advance(TimeDelta::seconds(1));
        let session = self
            .links
            .redact_session(self.account, self.session)
            .await
            .unwrap();
        assert_eq!(session.reference, None);
        let link = self
            .links
            .redact_link(self.account, self.link)
            .await
            .unwrap();
        assert_eq!((link.reference, link.metadata.is_empty()), (None, true));
    }

    async fn retries_send_nothing(&self) {
        let before = self.transport.requests().len();
        self.clock.advance(TimeDelta::hours(2));
        self.deliver().await;
        let requests = self.transport.requests();
        assert_eq!(
            requests.len(),
            before + 4,
            "the two retries and the two redaction events went out"
        );
        for request in &requests[before..] {
            assert!(
                !sent(&request.body),
                "a webhook sent after the redaction carries the erased labels"
            );
        }
    }
}

fn sent(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains(ERASE)
}

#[tokio::test]
async fn memory_store_keeps_no_erased_label() {
    let scene = Scene::new(MemoryStore::new()).await;
    let dump = format!("{:?}", scene.links.store());
    for part in [
        "outbox:",
        "labels:",
        "sessions:",
        "webhooks:",
        "deliveries:",
        "event: Event",
    ] {
        assert!(
            dump.contains(part),
            "the store's Debug shows its {part} (else the search proves nothing)"
        );
    }
    // The link's reference and metadata, the session's reference, the labels table (3) and
    // the outbox and delivery copies of the three labelled events (3 + 2 each).
    assert!(
        dump.matches(ERASE).count() >= 3 + 3 + 3 * 5,
        "the search finds the string before the redaction: {} times",
        dump.matches(ERASE).count()
    );
    let kept = scene.kept().await;

    scene.redact().await;

    let dump = format!("{:?}", scene.links.store());
    assert!(
        !dump.contains(ERASE),
        "the memory store keeps an erased label: {}",
        &dump[dump.find(ERASE).unwrap().saturating_sub(300)..][..400]
    );
    assert_eq!(scene.kept().await, kept, "stats and ledger unchanged");
    scene.retries_send_nothing().await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use magic_link::store::sqlx::{self, Row};
    use magic_link::store::PostgresStore;

    use super::*;

    /// Every row of every table of the store's schema, as text.
    async fn dump(store: &PostgresStore) -> String {
        let pool = store.pool();
        let tables: Vec<String> = sqlx::query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
        )
        .bind(store.schema())
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
        for table in [
            "links",
            "sessions",
            "outbox",
            "deliveries",
            "ledger",
            "endpoints",
        ] {
            assert!(tables.iter().any(|t| t == table), "{table} is dumped");
        }
        let mut dump = String::new();
        for table in tables {
            let rows = sqlx::query(&format!(
                "SELECT t::text FROM \"{}\".\"{table}\" t",
                store.schema()
            ))
            .fetch_all(pool)
            .await
            .unwrap();
            for row in rows {
                dump.push_str(&table);
                dump.push_str(": ");
                dump.push_str(row.get::<&str, _>(0));
                dump.push('\n');
            }
        }
        dump
    }

    #[tokio::test]
    async fn postgres_store_keeps_no_erased_label() {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("skipping: DATABASE_URL is not set");
            return;
        };
        let pool = PostgresStore::pool_options()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        let schema = format!("ml_redact_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::builder(pool).schema(schema).build().unwrap();
        store.migrate().await.unwrap();
        let scene = Scene::new(store).await;
        let store = Arc::clone(scene.links.store());
        let before = dump(&store).await;
        // The link's reference and metadata, the session's reference, and the labels of the
        // three labelled events in the outbox (3 + 2 + 2).
        assert!(
            before.matches(ERASE).count() >= 3 + 7,
            "the search finds the string before the redaction: {before}"
        );
        let kept = scene.kept().await;

        scene.redact().await;

        let after = dump(&store).await;
        let found: Vec<&str> = after.lines().filter(|l| l.contains(ERASE)).collect();
        assert!(
            found.is_empty(),
            "PostgreSQL keeps an erased label: {found:#?}"
        );
        assert_eq!(scene.kept().await, kept, "stats and ledger unchanged");
        scene.retries_send_nothing().await;
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .execute(store.pool())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_redaction_races_with_writers_and_queueing() {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("skipping: DATABASE_URL is not set");
            return;
        };
        let pool = PostgresStore::pool_options()
            .max_connections(8)
            .connect(&url)
            .await
            .unwrap();
        for _ in 0..3 {
            let schema = format!("ml_redact_{}", uuid::Uuid::new_v4().simple());
            let store = PostgresStore::builder(pool.clone())
                .schema(schema)
                .build()
                .unwrap();
            store.migrate().await.unwrap();
            let store = race(Arc::new(store)).await;
            let found: Vec<String> = dump(&store)
                .await
                .lines()
                .filter(|l| l.contains(ERASE))
                .map(str::to_owned)
                .collect();
            assert!(found.is_empty(), "a label survived the race: {found:#?}");
            sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

/// Redaction racing with writers of the link's events (completions, new personal
/// redemptions) and with queueing for delivery: afterwards no stored event about the link, in
/// the outbox or kept for delivery, has a label.
async fn race<S: LinkStore + WebhookStore + 'static>(store: Arc<S>) -> Arc<S> {
    use magic_link::webhooks::Endpoint;
    use magic_link::SessionTtl;

    let now = chrono::DateTime::from_timestamp(1_893_456_000, 0).unwrap();
    let ttl = SessionTtl::new(chrono::Duration::minutes(30)).unwrap();
    let account = AccountId::new();
    store
        .create_account(magic_link::Account::new(account, now))
        .await
        .unwrap();
    store
        .top_up(account, 1000, IdempotencyKey::new("race").unwrap(), now)
        .await
        .unwrap();
    let secret = WebhookSecret::generate().unwrap();
    let endpoint = Endpoint::new(account, "https://hooks.example.com/idv", vec![secret], now);
    store.set_endpoint(endpoint.unwrap()).await.unwrap();
    let erase = Reference::new(ERASE).unwrap();
    let spec = NewLink::new("Race", Flow::Selfie)
        .limit(UsageLimit::Unlimited)
        .reference(erase.clone())
        .metadata(Metadata::from_pairs([("case", ERASE)]).unwrap());
    let link = magic_link::Link::new(LinkId::new(), account, spec, now).unwrap();
    let link = store.insert_link(link).await.unwrap().id;
    let mut sessions = Vec::new();
    for _ in 0..24 {
        let id = SessionId::new();
        store
            .redeem(link, id, None, Some(erase.clone()), ttl, now)
            .await
            .unwrap();
        sessions.push(id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            tokio::task::yield_now().await;
            let outcome = [Outcome::Approved, Outcome::Denied][i % 2];
            store
                .complete(account, session, outcome, now)
                .await
                .unwrap();
        });
    }
    for _ in 0..4 {
        let (store, erase) = (Arc::clone(&store), erase.clone());
        tasks.spawn(async move {
            for _ in 0..6 {
                store
                    .redeem(link, SessionId::new(), None, Some(erase.clone()), ttl, now)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    for _ in 0..2 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _ in 0..20 {
                store.queue_deliveries(now, 1000).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    {
        // Pruning too: it takes the outbox and the delivery book as queueing does (a lock
        // order that differs deadlocks here; the memory test's timeout reports it).
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _ in 0..20 {
                store
                    .prune(now + chrono::Duration::days(1), 1000)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            store.redact_link(account, link, now).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    store.queue_deliveries(now, 1000).await.unwrap();
    let mut cursor = 0;
    loop {
        let events = store.outbox_after(cursor, 1000).await.unwrap();
        let Some(last) = events.last() else { break };
        cursor = last.seq;
        for event in events.iter().filter(|e| e.kind.link() == Some(link)) {
            assert!(
                event.labels.is_empty(),
                "a label survived the race: {event:?}"
            );
        }
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_redaction_races_with_writers_and_queueing() {
    // A deadlock blocks the runtime's threads, so no timer of its own can report it: a
    // watchdog thread ends the process with a message instead of letting the test hang.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let waited = finished.recv_timeout(std::time::Duration::from_secs(120));
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("deadlock: the memory race did not end within 120 s");
            std::process::exit(101);
        }
    });
    for _ in 0..20 {
        let store = race(Arc::new(MemoryStore::new())).await;
        let dump = format!("{store:?}");
        assert!(
            !dump.contains(ERASE),
            "a label survived in the memory store"
        );
    }
    let _ = done.send(());
}
