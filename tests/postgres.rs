//! PostgresStore against a real PostgreSQL: the conformance suites, the model comparisons (links
//! and deliveries), the races, cancelled redemptions, and the gap-free outbox under concurrent
//! writers.
//!
//! The tests read `DATABASE_URL` at run time (e.g. `postgres://postgres@127.0.0.1:5432/test`)
//! and, without it, print why they skip and pass. Each works in a schema of its own, so they
//! run in parallel; the schema is dropped when the test passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use magic_link::clock::ManualClock;
use magic_link::conformance::{
    self, compare_delivery_with_model, compare_with_model, delivery, epoch, race,
};
use magic_link::store::sqlx::{self, postgres::PgPool};
use magic_link::store::{LinkStore, PostgresStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    DeliveryStatus, Dispatcher, Endpoint, EventType, Transport, TransportError, WebhookHeaders,
    WebhookRequest, WebhookResponse, WebhookSecret, WebhookVerifier,
};
use magic_link::{
    Error, EventKind, Flow, MagicLinks, NewLink, Outcome, Page, Rejection, SessionId, SessionTtl,
    UsageLimit,
};
use proptest::prelude::*;

#[path = "common/ops.rs"]
mod ops;
use ops::op;

#[path = "common/delivery_ops.rs"]
mod delivery_ops;
use delivery_ops::delivery_op;

/// A store in a fresh schema of the database at `DATABASE_URL`.
struct TestDb {
    store: PostgresStore,
}

impl TestDb {
    /// `None`, after saying why, when `DATABASE_URL` is not set.
    async fn new(connections: u32) -> Option<Self> {
        let url = database_url()?;
        let pool = PostgresStore::pool_options()
            .max_connections(connections)
            .connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        let schema = format!("ml_test_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::builder(pool)
            .schema(schema)
            .build()
            .expect("valid schema name");
        store.migrate().await.expect("migrate");
        Some(Self { store })
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    /// Another instance of the service: its own pool, the same schema.
    async fn second_instance(&self, connections: u32) -> PostgresStore {
        let pool = PostgresStore::pool_options()
            .max_connections(connections)
            .connect(&database_url().expect("DATABASE_URL"))
            .await
            .expect("connect");
        PostgresStore::builder(pool)
            .schema(self.store.schema())
            .build()
            .expect("valid schema name")
    }

    async fn drop_schema(self) {
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.store.schema()))
            .execute(self.pool())
            .await
            .expect("drop schema");
        self.pool().close().await;
    }
}

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping: DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

fn ttl() -> SessionTtl {
    SessionTtl::new(Duration::minutes(30)).expect("ttl")
}

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    conformance::run_all(&db.store).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn postgres_store_passes_the_delivery_suite() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    delivery::run_all(&db.store).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn postgres_store_passes_the_retention_check() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    conformance::retention(&db.store).await;
    db.drop_schema().await;
}

/// Both suites on one store, the delivery suite after the core suite filled the outbox.
#[tokio::test]
async fn one_store_for_both_suites() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    conformance::run_all(&db.store).await;
    delivery::run_all(&db.store).await;
    db.drop_schema().await;
}

/// Two dispatchers on two instances claim at once: no delivery is claimed twice, and every
/// due one is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_claim_one_delivery_twice() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let other = db.second_instance(4).await;
    let account = conformance::account_with(&db.store, 0).await;
    let secret = WebhookSecret::from_bytes(&[7; 24]).expect("secret");
    let endpoint = Endpoint::new(
        account.id,
        "https://example.com/hook",
        vec![secret],
        epoch(),
    )
    .expect("endpoint");
    db.store.set_endpoint(endpoint).await.expect("set endpoint");
    for i in 0..60 {
        let key = magic_link::IdempotencyKey::new(format!("k{i}")).expect("key");
        db.store
            .top_up(account.id, 1, key, epoch())
            .await
            .expect("top up");
    }
    let (a, b) = tokio::join!(
        db.store.queue_deliveries(epoch(), 1000),
        other.queue_deliveries(epoch(), 1000)
    );
    assert_eq!(a.expect("queue") + b.expect("queue"), 60);
    let claimers: Vec<_> = [db.store.clone(), other.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claims = store
                        .claim_due(epoch(), StdDuration::from_secs(60), 7)
                        .await
                        .expect("claim");
                    if claims.is_empty() {
                        return mine;
                    }
                    mine.extend(claims.into_iter().map(|c| c.event.id));
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("claimer"));
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "no delivery claimed twice");
    assert_eq!(total, 60, "every due delivery claimed");
    other.pool().close().await;
    db.drop_schema().await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let (a, b) = tokio::join!(db.store.migrate(), db.store.migrate());
    a.expect("migrate");
    b.expect("migrate");
    let versions: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{}\".schema_migrations ORDER BY version",
        db.store.schema()
    ))
    .fetch_all(db.pool())
    .await
    .expect("versions");
    assert_eq!(versions, (1..=12).collect::<Vec<i64>>());

    // Migrations 5, 8 and 11: each of these functions names the Rust rule it mirrors.
    for (function, rule) in [
        ("queue_deliveries", "rules::queued_status"),
        ("claim_due", "rules::fails_at_claim"),
        ("record_attempt", "rules::step_to_apply"),
        ("review_session", "rules::review"),
        ("redact_link", "rules::redact_link"),
        ("redact_session", "rules::redact_session"),
    ] {
        let comment: Option<String> = sqlx::query_scalar(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
        )
        .bind(db.store.schema())
        .bind(function)
        .fetch_one(db.pool())
        .await
        .expect("comment");
        assert!(
            comment.is_some_and(|c| c.contains(rule)),
            "{function} cites {rule}"
        );
    }

    // A fresh schema migrated by two instances at once.
    let fresh = PostgresStore::builder(db.pool().clone())
        .schema(format!("ml_test_{}", uuid::Uuid::new_v4().simple()))
        .build()
        .expect("valid");
    let twin = fresh.clone();
    let (a, b) = tokio::join!(fresh.migrate(), twin.migrate());
    a.expect("migrate");
    b.expect("migrate");
    conformance::accounts_and_links(&fresh).await;
    sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", fresh.schema()))
        .execute(db.pool())
        .await
        .expect("drop");

    // An edited migration is refused.
    sqlx::query(&format!(
        "UPDATE \"{}\".schema_migrations SET checksum = 'edited'",
        db.store.schema()
    ))
    .execute(db.pool())
    .await
    .expect("update");
    assert!(matches!(db.store.migrate().await, Err(Error::Backend(_))));
    db.drop_schema().await;
}

/// The acceptance race: 32 tasks over 16 connections, 4,000 attempts on one link of limit
/// 1,000 whose account has 700 credits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_of_32_tasks_stops_at_700_credits() {
    let Some(db) = TestDb::new(16).await else {
        return;
    };
    let store = Arc::new(db.store.clone());
    let limit = UsageLimit::multi(1000).expect("limit");
    let report = race(Arc::clone(&store), 32, 125, limit, 700).await;
    assert_eq!(report.successes, 700);
    assert_eq!(report.sessions, 700);
    assert_eq!(report.held, 700);
    assert_eq!(report.redeemed_events, 700);
    assert_eq!(report.uses, 700);
    assert_eq!(
        report.rejections,
        HashMap::from([(Rejection::NoCredits, 3300)])
    );
    db.drop_schema().await;
}

/// 32 tasks over 16 connections review one `needs_review` session at once, 16 approving and
/// 16 denying: one decision wins, with exactly one `session.reviewed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_reviews_record_one_decision() {
    let Some(db) = TestDb::new(16).await else {
        return;
    };
    let store = Arc::new(db.store.clone());
    for _ in 0..5 {
        let report = conformance::review_race(Arc::clone(&store), 32).await;
        assert_eq!(report.successes, 16, "{report:?}");
        assert_eq!(report.reviewed_events, 1, "{report:?}");
        assert_eq!(
            report.rejections.get(&Rejection::ReviewConflict),
            Some(&16),
            "{report:?}"
        );
    }
    db.drop_schema().await;
}

/// 32 tasks over 16 connections redeem one link at once with one start key: 1 use and 1
/// session, which every task gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_starts_with_one_key_make_one_session() {
    let Some(db) = TestDb::new(16).await else {
        return;
    };
    let store = Arc::new(db.store.clone());
    for _ in 0..5 {
        let report =
            conformance::keyed_race(Arc::clone(&store), 32, UsageLimit::Unlimited, |_| 7).await;
        assert_eq!(report.successes, 32, "{report:?}");
        assert_eq!(report.distinct_sessions, 1, "{report:?}");
        assert_eq!(report.uses, 1, "{report:?}");
    }
    db.drop_schema().await;
}

/// 32 tasks over 16 connections with distinct start keys on a link of 5 uses: exactly 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_starts_with_distinct_keys_stop_at_the_limit() {
    let Some(db) = TestDb::new(16).await else {
        return;
    };
    let store = Arc::new(db.store.clone());
    for _ in 0..5 {
        let limit = UsageLimit::multi(5).unwrap();
        let report = conformance::keyed_race(Arc::clone(&store), 32, limit, |t| t as u64).await;
        assert_eq!(report.successes, 5, "{report:?}");
        assert_eq!(report.distinct_sessions, 5, "{report:?}");
        assert_eq!(report.uses, 5, "{report:?}");
        assert_eq!(
            report.rejections.get(&Rejection::Exhausted),
            Some(&27),
            "{report:?}"
        );
    }
    db.drop_schema().await;
}

/// 32 tasks over 16 connections accept one hand-off at once: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_accepts_of_one_handoff_have_one_winner() {
    let Some(db) = TestDb::new(16).await else {
        return;
    };
    let store = Arc::new(db.store.clone());
    for _ in 0..5 {
        assert_eq!(conformance::handoff_race(Arc::clone(&store), 32).await, 1);
    }
    db.drop_schema().await;
}

/// Two service instances, each with its own pool, race on one single-use link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_on_a_single_use_link_have_one_winner() {
    let Some(db) = TestDb::new(8).await else {
        return;
    };
    let other = db.second_instance(8).await;
    let account = conformance::account_with(&db.store, 10).await;
    let link = conformance::link_with(&db.store, account.id, UsageLimit::Single, None).await;
    let instances = [db.store.clone(), other.clone()];
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = instances[i % 2].clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..10 {
                    let result = store
                        .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
                        .await;
                    outcomes.push(result.map(|_| ()).map_err(|e| e.rejection()));
                }
                outcomes
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        for outcome in task.await.expect("task") {
            match outcome {
                Ok(()) => wins += 1,
                Err(rejection) => assert_eq!(rejection, Some(Rejection::Exhausted)),
            }
        }
    }
    assert_eq!(wins, 1, "exactly one redemption of a single-use link");
    let stats = other.stats(account.id, link.id).await.expect("stats");
    assert_eq!((stats.uses, stats.started), (1, 1));
    assert_eq!(db.store.account(account.id).await.expect("account").held, 1);
    other.pool().close().await;
    db.drop_schema().await;
}

/// Everything a failed redemption must leave as it was.
#[derive(Debug, PartialEq)]
struct State {
    link: magic_link::Link,
    account: magic_link::Account,
    ledger: usize,
    events: usize,
    sessions: usize,
}

async fn state(
    store: &PostgresStore,
    account: magic_link::AccountId,
    link: magic_link::LinkId,
) -> State {
    let mut events = 0;
    let mut cursor = 0;
    loop {
        let batch = store.outbox_after(cursor, 1000).await.expect("outbox");
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        events += batch.iter().filter(|e| e.account == account).count();
    }
    State {
        link: store.link(account, link).await.expect("link"),
        account: store.account(account).await.expect("account"),
        ledger: store
            .ledger(account, Page::first(1000))
            .await
            .expect("ledger")
            .items
            .len(),
        events,
        sessions: store
            .sessions(account, link, Page::first(1000))
            .await
            .expect("sessions")
            .items
            .len(),
    }
}

/// The backend of the redemption of `session`, once it waits on a lock.
async fn waiting_redemption(pool: &PgPool, schema: &str) -> i32 {
    let pattern = format!("%\"{schema}\".redeem(%");
    for _ in 0..500 {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE query LIKE $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .bind(&pattern)
        .fetch_optional(pool)
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("the redemption never waited on the lock");
}

/// A redemption cancelled, or whose connection is killed, after it has updated the link and
/// the account but before it commits, changes nothing; the same redemption then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_that_fails_midway_changes_nothing() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let schema = db.store.schema().to_owned();
    let account = conformance::account_with(&db.store, 5).await;
    let link = conformance::link_with(
        &db.store,
        account.id,
        UsageLimit::multi(3).expect("n"),
        None,
    )
    .await;
    let before = state(&db.store, account.id, link.id).await;
    let session = SessionId::new();

    for how in ["pg_cancel_backend", "pg_terminate_backend"] {
        // Another transaction holds an uncommitted session row with the same id: the redemption
        // locks the link, updates the link and the account, then waits on the unique index.
        let mut blocker = db.pool().begin().await.expect("begin");
        sqlx::query(&format!(
            "INSERT INTO \"{schema}\".sessions (id, account_id, link_id, number, flow, language, \
             status, started_at, expires_at) \
             VALUES ($1, $2, gen_random_uuid(), 1, 'selfie', 'en', 'started', now(), now())"
        ))
        .bind(session.as_uuid())
        .bind(account.id.as_uuid())
        .execute(&mut *blocker)
        .await
        .expect("blocking insert");

        let store = db.store.clone();
        let redemption = tokio::spawn(async move {
            store
                .redeem(link.id, session, None, None, ttl(), epoch())
                .await
        });
        let pid = waiting_redemption(db.pool(), &schema).await;
        let wrote: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_locks k JOIN pg_class c ON c.oid = k.relation \
             WHERE k.pid = $1 AND k.mode = 'RowExclusiveLock' AND c.relname IN ('links', 'accounts') \
             ORDER BY 1",
        )
        .bind(pid)
        .fetch_all(db.pool())
        .await
        .expect("pg_locks");
        assert_eq!(wrote, ["accounts", "links"], "it had written both rows");

        let signalled: bool = sqlx::query_scalar(&format!("SELECT {how}($1)"))
            .bind(pid)
            .fetch_one(db.pool())
            .await
            .expect("signal");
        assert!(signalled);
        let result = redemption.await.expect("task");
        assert!(
            matches!(result, Err(Error::Backend(_))),
            "{how}: the redemption fails with a backend error: {result:?}"
        );
        blocker.rollback().await.expect("rollback");
        assert_eq!(
            state(&db.store, account.id, link.id).await,
            before,
            "{how}: nothing changed"
        );
    }

    let session = db
        .store
        .redeem(link.id, session, None, None, ttl(), epoch())
        .await
        .expect("the same redemption succeeds afterwards");
    assert_eq!(session.number, 1);
    db.drop_schema().await;
}

/// Two redemptions with one new session id at once: the second waits on the first's
/// uncommitted session row, then answers `AlreadyExists` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_duplicate_session_id_is_already_exists() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let schema = db.store.schema().to_owned();
    let account = conformance::account_with(&db.store, 5).await;
    let link = conformance::link_with(&db.store, account.id, UsageLimit::Unlimited, None).await;
    let before = state(&db.store, account.id, link.id).await;
    let session = SessionId::new();

    // Another account's redemption holds the session id, uncommitted, until we commit it.
    let other = conformance::account_with(&db.store, 5).await;
    let mut first = db.pool().begin().await.expect("begin");
    sqlx::query(&format!(
        "SELECT r_code FROM \"{schema}\".redeem($1, $2, NULL, $3, $4, NULL)"
    ))
    .bind(
        conformance::link_with(&db.store, other.id, UsageLimit::Unlimited, None)
            .await
            .id
            .as_uuid(),
    )
    .bind(session.as_uuid())
    .bind(epoch())
    .bind(epoch() + Duration::minutes(30))
    .execute(&mut *first)
    .await
    .expect("first redemption");

    let store = db.store.clone();
    let second = tokio::spawn(async move {
        store
            .redeem(link.id, session, None, None, ttl(), epoch())
            .await
    });
    waiting_redemption(db.pool(), &schema).await;
    first.commit().await.expect("commit");
    let result = second.await.expect("task");
    assert!(
        matches!(result, Err(Error::AlreadyExists)),
        "the second redemption finds the id taken: {result:?}"
    );
    assert_eq!(
        state(&db.store, account.id, link.id).await,
        before,
        "nothing changed"
    );
    db.drop_schema().await;
}

/// Readers polling while writers commit in any order see every event once, in `seq` order,
/// with no gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_is_gap_free_under_concurrent_writers() {
    let Some(db) = TestDb::new(12).await else {
        return;
    };
    let account = conformance::account_with(&db.store, 10_000).await;
    let mut links = Vec::new();
    for _ in 0..8 {
        links
            .push(conformance::link_with(&db.store, account.id, UsageLimit::Unlimited, None).await);
    }
    let start = db.store.outbox_after(0, 1000).await.expect("outbox").len();
    let writers: Vec<_> = links
        .iter()
        .map(|link| {
            let (store, link) = (db.store.clone(), link.id);
            tokio::spawn(async move {
                for _ in 0..100 {
                    store
                        .redeem(link, SessionId::new(), None, None, ttl(), epoch())
                        .await
                        .expect("redeem");
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut cursor = 0;
                while seen.len() < start + 800 {
                    let batch = store.outbox_after(cursor, 37).await.expect("outbox");
                    for event in batch {
                        assert_eq!(event.seq, cursor + 1, "no gap, no repeat");
                        cursor = event.seq;
                        seen.push(event);
                    }
                }
                seen
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let mut views = Vec::new();
    for reader in readers {
        views.push(reader.await.expect("reader"));
    }
    assert_eq!(views[0], views[1], "every reader sees the same sequence");
    let redeemed = views[0]
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LinkRedeemed { .. }))
        .count();
    assert_eq!(redeemed, 800);
    db.drop_schema().await;
}

/// Schema names that are not plain identifiers are refused before anything is sent.
#[tokio::test]
async fn schema_names_are_validated() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .expect("lazy pool");
    for bad in ["Public", "a;b", "x\"y", "pg_toast", ""] {
        assert!(
            PostgresStore::builder(pool.clone())
                .schema(bad)
                .build()
                .is_err(),
            "{bad:?}"
        );
    }
}

/// References and redaction in a fixed sequence, against the model.
#[tokio::test]
async fn references_and_redaction_match_the_model() {
    let Some(db) = TestDb::new(2).await else {
        return;
    };
    compare_with_model(&db.store, &ops::redaction_sequence()).await;
    db.drop_schema().await;
}

proptest! {
    // Each case migrates a schema of its own: fewer cases than on the in-memory stores.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let Some(db) = TestDb::new(2).await else {
                return;
            };
            compare_with_model(&db.store, &ops).await;
            db.drop_schema().await;
        });
    }
}

proptest! {
    // The delivery model test (see tests/delivery_model.rs), each case in a fresh schema.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_matches_the_delivery_model(
        ops in proptest::collection::vec(delivery_op(), 1..80)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let Some(db) = TestDb::new(2).await else {
                return;
            };
            compare_delivery_with_model(&db.store, &ops).await;
            db.drop_schema().await;
        });
    }
}

/// Answers `503` to the first request, then `200`; records what it was sent.
#[derive(Debug, Default)]
struct Recorder {
    sent: std::sync::Mutex<Vec<WebhookRequest>>,
}

impl Transport for Recorder {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, TransportError> {
        let mut sent = self.sent.lock().expect("lock");
        sent.push(request);
        Ok(WebhookResponse::new(if sent.len() == 1 {
            503
        } else {
            200
        }))
    }
}

/// The dispatcher delivers, signed, every event of a link's life from PostgreSQL, retrying
/// the one that failed.
#[tokio::test]
async fn the_dispatcher_delivers_from_postgres() {
    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let clock = ManualClock::at_timestamp(1_750_000_000);
    let links = MagicLinks::new(
        db.store.clone(),
        Keyring::generate().expect("keyring"),
        "https://verify.example.com/l/".parse().expect("base"),
    )
    .with_clock(clock.clone());
    let account = links
        .create_account(magic_link::AccountId::new())
        .await
        .expect("account")
        .id;
    let secret = WebhookSecret::generate().expect("secret");
    links
        .set_webhook_endpoint(account, "https://hooks.example.com/x", vec![secret.clone()])
        .await
        .expect("endpoint");
    let key = magic_link::IdempotencyKey::new("invoice").expect("key");
    links.top_up(account, 3, key).await.expect("top up");
    let created = links
        .create_link(account, NewLink::new("Invite", Flow::Selfie))
        .await
        .expect("link");
    let started = links
        .redeem(&created.token, magic_link::start::Start::new())
        .await
        .expect("redeem");
    links
        .complete_session_with_token(&started.session_token, Outcome::Approved)
        .await
        .expect("complete");

    let transport = Arc::new(Recorder::default());
    let dispatcher =
        Dispatcher::new(db.store.clone(), Arc::clone(&transport)).with_clock(clock.clone());
    let first = dispatcher.run_once().await.expect("dispatch");
    assert_eq!(
        (first.attempted, first.delivered, first.retrying),
        (5, 4, 1),
        "credits.added, link.created, link.redeemed, link.exhausted (the link was single-use), \
         session.completed"
    );
    for _ in 0..20 {
        clock.advance(Duration::minutes(10));
        dispatcher.run_once().await.expect("dispatch");
    }
    let sent = transport.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 6, "five events, one of them twice");
    let verifier = WebhookVerifier::new(secret);
    for request in &sent {
        let headers = WebhookHeaders::new(
            &request.webhook_id,
            &request.webhook_timestamp,
            &request.webhook_signature,
        );
        let at = chrono::DateTime::from_timestamp(
            request.webhook_timestamp.parse().expect("timestamp"),
            0,
        )
        .expect("time");
        verifier
            .verify_at(headers, &request.body, at)
            .expect("a valid signature");
        let event: magic_link::EventId = request.webhook_id.parse().expect("event id");
        let delivery = db.store.delivery(account, event).await.expect("delivery");
        assert!(matches!(delivery.status, DeliveryStatus::Delivered { .. }));
    }
    db.drop_schema().await;
}

/// An endpoint stored before secrets were bounded to 24..64 bytes, with a 16-byte secret, still
/// loads, and its deliveries are signed with it; new input of that length is refused.
#[tokio::test]
async fn endpoints_stored_with_short_secrets_still_load_and_sign() {
    let Some(db) = TestDb::new(2).await else {
        return;
    };
    let account = conformance::account_with(&db.store, 0).await;
    let long = WebhookSecret::from_bytes(&[7; 24]).expect("secret");
    let endpoint = Endpoint::new(account.id, "https://example.com/hook", vec![long], epoch())
        .expect("endpoint");
    db.store.set_endpoint(endpoint).await.expect("set endpoint");
    let short = [5u8; 16];
    assert!(
        WebhookSecret::from_bytes(&short).is_err(),
        "new input is bounded"
    );
    sqlx::query(&format!(
        "UPDATE \"{}\".endpoints SET secrets = ARRAY[$1::bytea] WHERE account_id = $2",
        db.store.schema()
    ))
    .bind(short.as_slice())
    .bind(account.id.as_uuid())
    .execute(db.pool())
    .await
    .expect("store a short secret as an older version would have");

    let loaded = db
        .store
        .endpoint(account.id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(loaded.secrets()[0].key_bytes(), short.as_slice());
    let key = magic_link::IdempotencyKey::new("k").expect("key");
    db.store
        .top_up(account.id, 1, key, epoch())
        .await
        .expect("top up");
    db.store
        .queue_deliveries(epoch(), 100)
        .await
        .expect("queue");
    let claims = db
        .store
        .claim_due(epoch(), StdDuration::from_secs(60), 10)
        .await
        .expect("claim");
    let claim = claims
        .into_iter()
        .find(|c| c.event.account == account.id)
        .expect("the delivery");
    assert_eq!(claim.endpoint.secrets()[0].key_bytes(), short.as_slice());
    db.drop_schema().await;
}

/// Migration 8 gives an endpoint set before it the event types that existed then, so the new
/// `session.reviewed` is not sent to it until its owner chooses it; an endpoint set afterwards
/// without a choice takes every type.
#[tokio::test]
async fn endpoints_set_before_event_types_keep_the_types_of_their_time() {
    let Some(url) = database_url() else {
        return;
    };
    let pool = PostgresStore::pool_options()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect");
    let schema = format!("ml_test_{}", uuid::Uuid::new_v4().simple());
    let quoted = format!("\"{schema}\"");
    // Migrations 1 to 6, applied and recorded as the runner of that version did.
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {quoted}; CREATE TABLE {quoted}.schema_migrations (
             version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .execute(&pool)
    .await
    .expect("schema");
    for (version, name, template) in [
        (
            1i64,
            "initial",
            include_str!("../migrations/0001_initial.sql"),
        ),
        (
            2,
            "webhooks",
            include_str!("../migrations/0002_webhooks.sql"),
        ),
        (
            3,
            "gone_only_disables_the_current_endpoint",
            include_str!("../migrations/0003_gone_only_disables_the_current_endpoint.sql"),
        ),
        (
            4,
            "lifecycle_events",
            include_str!("../migrations/0004_lifecycle_events.sql"),
        ),
        (
            5,
            "delivery_rules_cited",
            include_str!("../migrations/0005_delivery_rules_cited.sql"),
        ),
        (
            6,
            "endpoint_versions",
            include_str!("../migrations/0006_endpoint_versions.sql"),
        ),
    ] {
        sqlx::raw_sql(&template.replace("__SCHEMA__", &quoted))
            .execute(&pool)
            .await
            .expect("an old migration");
        sqlx::query(&format!(
            "INSERT INTO {quoted}.schema_migrations (version, name, checksum) \
             VALUES ($1, $2, md5($3))"
        ))
        .bind(version)
        .bind(name)
        .bind(template)
        .execute(&pool)
        .await
        .expect("record");
    }
    let old = magic_link::AccountId::new();
    sqlx::query(&format!(
        "INSERT INTO {quoted}.accounts (id, balance, held, created_at) VALUES ($1, 0, 0, $2); \
         "
    ))
    .bind(old.as_uuid())
    .bind(epoch())
    .execute(&pool)
    .await
    .expect("account");
    sqlx::query(&format!(
        "INSERT INTO {quoted}.endpoints (account_id, url, secrets, updated_at) \
         VALUES ($1, 'https://old.example/', ARRAY[$2::bytea], $3)"
    ))
    .bind(old.as_uuid())
    .bind([7u8; 24].as_slice())
    .bind(epoch())
    .execute(&pool)
    .await
    .expect("an endpoint set by the previous version");

    let store = PostgresStore::builder(pool.clone())
        .schema(schema)
        .build()
        .expect("valid");
    store.migrate().await.expect("migrate to this version");
    let endpoint = store
        .endpoint(old)
        .await
        .expect("read")
        .expect("an endpoint");
    let expected: Vec<EventType> = EventType::ALL
        .iter()
        .copied()
        .filter(|&t| {
            !matches!(
                t,
                EventType::SessionReviewed
                    | EventType::SessionHandedOff
                    | EventType::LinkRedacted
                    | EventType::SessionRedacted
            )
        })
        .collect();
    assert_eq!(endpoint.event_types(), expected);

    let fresh = conformance::account_with(&store, 0).await;
    let set = Endpoint::new(
        fresh.id,
        "https://new.example/",
        vec![WebhookSecret::from_bytes(&[8; 24]).expect("secret")],
        epoch(),
    )
    .expect("endpoint");
    store.set_endpoint(set).await.expect("set");
    let read = store
        .endpoint(fresh.id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(read.event_types(), EventType::ALL);
    sqlx::raw_sql(&format!("DROP SCHEMA {quoted} CASCADE"))
        .execute(&pool)
        .await
        .expect("drop");
}

/// A view is one statement that locks only its link's counters row: it never waits on what a
/// redemption holds (the link's row, the account's row), and redemptions, of that link or
/// another, never wait on a view in flight. The second instance's lock waits fail after 5 s,
/// so a wait fails the test instead of hanging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_wait_on_no_redemption_and_block_none() {
    use magic_link::funnel::{ViewChange, ViewCounts, ViewKind};

    let Some(db) = TestDb::new(4).await else {
        return;
    };
    let pool = PostgresStore::pool_options()
        .max_connections(2)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET lock_timeout = '5s'")
                    .await
                    .map(drop)
            })
        })
        .connect(&database_url().expect("DATABASE_URL"))
        .await
        .expect("connect");
    let impatient = PostgresStore::builder(pool)
        .schema(db.store.schema())
        .build()
        .expect("valid schema name");
    let account = conformance::account_with(&db.store, 10).await;
    let viewed = conformance::link_with(&db.store, account.id, UsageLimit::Unlimited, None).await;
    let other = conformance::link_with(&db.store, account.id, UsageLimit::Unlimited, None).await;
    let schema = db.store.schema().to_owned();

    // What a redemption of `viewed` holds while it runs: its link's row and its account's.
    let mut redeeming = db.pool().begin().await.expect("begin");
    sqlx::query(&format!(
        "SELECT 1 FROM \"{schema}\".links WHERE id = $1 FOR UPDATE"
    ))
    .bind(viewed.id.as_uuid())
    .execute(&mut *redeeming)
    .await
    .expect("lock the link");
    sqlx::query(&format!(
        "SELECT 1 FROM \"{schema}\".accounts WHERE id = $1 FOR UPDATE"
    ))
    .bind(account.id.as_uuid())
    .execute(&mut *redeeming)
    .await
    .expect("lock the account");
    impatient
        .record_view(viewed.id, ViewKind::Unconfirmed.into())
        .await
        .expect("a view does not wait on the link's redemption");
    let counts = impatient
        .record_view(viewed.id, ViewChange::Confirm)
        .await
        .expect("a confirmation does not wait either");
    assert_eq!(
        counts,
        ViewCounts {
            human: 1,
            scanner: 0,
            unconfirmed: 0
        }
    );
    redeeming.rollback().await.expect("rollback");

    // A view of `viewed` in flight, holding its counters row.
    let mut viewing = db.pool().begin().await.expect("begin");
    db.store
        .record_view(viewed.id, ViewKind::Scanner.into())
        .await
        .expect("first view");
    sqlx::query(&format!(
        "UPDATE \"{schema}\".link_views SET scanner = scanner + 1 WHERE link_id = $1"
    ))
    .bind(viewed.id.as_uuid())
    .execute(&mut *viewing)
    .await
    .expect("hold the counters row");
    for link in [viewed.id, other.id] {
        impatient
            .redeem(link, SessionId::new(), None, None, ttl(), epoch())
            .await
            .expect("a redemption does not wait on a view");
    }
    impatient
        .record_view(other.id, ViewKind::Human.into())
        .await
        .expect("another link's view does not wait either");
    viewing.commit().await.expect("commit");

    let stats = db.store.stats(account.id, viewed.id).await.expect("stats");
    assert_eq!(
        (stats.uses, stats.views.human, stats.views.scanner),
        (1, 1, 2)
    );
    impatient.pool().close().await;
    db.drop_schema().await;
}
